"""The models an audit compares, with their names and report notes.

A MODEL argument (:mod:`slicewise.models.spec`) is a saved model file or an encoder spec. A spec builds the
pretrained network: its decoder is at initialization, seeded, which the report says in a note. With
``pretrained`` a saved model is audited beside its *pretrained twin*: the network it started from, rebuilt
from its config (pretrained encoder, decoder initialized with the same seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from slicewise.diagnostics.report import run_name
from slicewise.diagnostics.weights_audit import audit_weights
from slicewise.models.build import build_model, open_model


@dataclass
class AuditedModels:
    """Models by display name (``models``), the report's note per name (``notes``), the model whose pretrained
    first layer a report audits, where the pretrained network was built anyway (``pretrained_of``), and the
    audited model's own name (``name``: a twin pair is keyed ``pretrained`` / ``fine-tuned``)."""

    name: str = ""
    models: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    pretrained_of: Any = None

    def weights_audit(self) -> dict[str, Any] | None:
        """:func:`first_layer_audit` of ``pretrained_of`` (None when there is none)."""
        return None if self.pretrained_of is None else first_layer_audit(self.pretrained_of)


def named_model(
    spec: str, *, weights: str, in_slices: int, channel_init: str, seed: int, name: str | None = None
) -> tuple[str, Any]:
    """(display name, model) from a saved file or an encoder spec (decoder init seeded with ``seed``).

    The name is ``name``, else :func:`slicewise.diagnostics.report.run_name` of the spec
    (``runs/uniform/best.pt`` → ``uniform``)."""
    torch.manual_seed(seed)
    return name or run_name(spec), open_model(spec, weights=weights, in_slices=in_slices, channel_init=channel_init)


def spec_note(spec: str, seed: int) -> str | None:
    """The report's note for a model built from an encoder spec (None for a saved model file)."""
    if Path(spec).is_file():
        return None
    return (
        f"built from the encoder spec {spec!r}: pretrained encoder, decoder randomly initialized (seed {seed}), "
        f"so its decoder layers and outputs describe an untrained decoder"
    )


def pretrained_twin(model: Any, seed: int) -> Any:
    """The network ``model`` started from: ``build_model`` of its config (seeded decoder init)."""
    torch.manual_seed(seed)
    return build_model(model.config)


def first_layer_audit(model: Any) -> dict[str, Any] | None:
    """:func:`~slicewise.diagnostics.weights_audit.audit_weights` of the model's pretrained first layer (its
    config's encoder, weights, k and strategy); None for a model without a config."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return None
    return audit_weights(cfg.encoder, cfg.weights, cfg.in_slices, cfg.channel_init, cfg.img_size)


def attribution_models(
    spec: str, *, seed: int, pretrained: bool, name: str | None = None, **build: Any
) -> AuditedModels:
    """The models ``slicewise audit attribution`` compares: the model of ``spec`` (``build``: ``weights``,
    ``in_slices``, ``channel_init`` for encoder specs), and with ``pretrained`` and a saved model file its
    pretrained twin first (``{"pretrained": twin, "fine-tuned": model}``); with the report's notes and, where
    the pretrained network was built (an encoder spec, or ``pretrained``), the model whose first layer to audit."""
    name, net = named_model(spec, seed=seed, name=name, **build)
    is_file = Path(spec).is_file()
    out = AuditedModels(name=name, models={name: net})
    if pretrained and is_file:
        out.models = {"pretrained": pretrained_twin(net, seed), "fine-tuned": net}
        out.notes = {
            "pretrained": f"the network {name} started from: its pretrained encoder with a decoder randomly "
            f"initialized (seed {seed}), rebuilt from the saved config"
        }
    else:
        note = spec_note(spec, seed)
        out.notes = {name: note} if note else {}
    if pretrained or not is_file:
        out.pretrained_of = net
    return out


def shift_models(specs: list[str], *, seed: int, names: list[str] | None = None, **build: Any) -> AuditedModels:
    """The models ``slicewise audit shift`` compares, in order, named by ``names`` (one per spec) or their run
    folders (a repeated name gets `` (2)``, `` (3)``, ...), with a note for each built from an encoder spec."""
    out = AuditedModels()
    for i, spec in enumerate(specs):
        name, net = named_model(spec, seed=seed, name=names[i] if names else None, **build)
        name = name if name not in out.models else f"{name} ({len(out.models) + 1})"
        out.models[name] = net
        note = spec_note(spec, seed)
        if note:
            out.notes[name] = note
    return out
