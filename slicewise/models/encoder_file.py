"""Encoder weights files written by ``slicewise pretrain``: a ``.safetensors`` state dict with provenance.

Layout: the tensors of the timm model ``timm.create_model(encoder)`` under timm's own key names (what
``model.weights=PATH`` reads, like any local checkpoint), without its classifier. The first layer
(``pretrained_cfg['first_conv']``) holds the **adapted** kernel of k·colors input channels that
pretraining trained (for ``mirror`` its effective, exactly symmetric weight W = (V + V reversed) / 2);
model parts the encoder does not use (e.g. EfficientNet's ``conv_head``) keep a fresh initialization so
the file is a whole timm model. The safetensors metadata (strings) hold ``format`` =
:data:`FORMAT` and the provenance (:data:`PROVENANCE_KEYS`: method, steps, data identity, k, dz,
strategy, start point, encoder, slicewise version, environment); JSON values are JSON-encoded.

Loading (``build_model(weights=PATH)``, ``train model.weights=PATH``, studies): the encoder, k, colors and
``channel_init`` of the model must be the file's (one-line :class:`WeightsError` naming which differs),
and the first layer is set to the file's kernel after the strategy is applied
(:func:`slicewise.models.build.build_adapted_encoder`), so fine-tuning starts exactly where
pretraining stopped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from slicewise.data.io.outputs import atomic_path
from slicewise.errors import WeightsError
from slicewise.models.encoders import pretrained_cfg
from slicewise.models.spec import check_encoder_name

FORMAT = "slicewise-encoder"
VERSION = "1"
# provenance fields (metadata keys); JSON-encoded where the value is not a plain string
PROVENANCE_KEYS = (
    "encoder",
    "in_slices",
    "colors",
    "channel_init",
    "dz",
    "border",
    "start_weights",
    "method",
    "steps",
    "seed",
    "data",
    "first_conv",
    "mean",
    "std",
    "slicewise_version",
    "environment",
    "created",
)


def _norm(key: str) -> str:
    return re.sub(r"[._]", ".", key)


def _timm_keys(encoder: str, in_chans: int) -> dict[str, torch.Tensor]:
    """A freshly initialized full timm model's state dict (classifier dropped)."""
    import timm

    check_encoder_name(encoder)
    model = timm.create_model(encoder, pretrained=False, in_chans=in_chans)
    classifier = pretrained_cfg(encoder).get("classifier") or ()
    heads = tuple(f"{c}." for c in ((classifier,) if isinstance(classifier, str) else classifier))
    return {k: v for k, v in model.state_dict().items() if not (heads and k.startswith(heads))}


def effective_state_dict(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's state dict (CPU copies) with parametrised weights (``mirror``) under their plain names and
    their effective value (``X.parametrizations.weight.original`` → ``X.weight``); the encoder is not changed."""
    out: dict[str, torch.Tensor] = {}
    for key, value in encoder.state_dict().items():
        if ".parametrizations." not in key:
            out[key] = value.detach().cpu().clone().contiguous()
    with torch.no_grad():
        for name, module in encoder.named_modules():
            if parametrize.is_parametrized(module):
                for tensor in module.parametrizations.keys():
                    out[f"{name}.{tensor}" if name else tensor] = (
                        getattr(module, tensor).detach().cpu().clone().contiguous()
                    )
    return out


def timm_state_dict(encoder: nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """``(state dict under timm's key names, timm key of the first layer's weight)`` of a slicewise
    encoder (``CNNEncoder``: ``body.*``; ``ViTEncoder``: ``vit.*``, its ladders are not timm's)."""
    name, first = encoder.name, encoder.first_conv
    prefix = "vit." if first.startswith("vit.") else "body."
    own = {k[len(prefix) :]: v for k, v in effective_state_dict(encoder).items() if k.startswith(prefix)}
    in_chans = int(own[first[len(prefix) :] + ".weight"].shape[1])
    full = _timm_keys(name, in_chans)
    by_norm: dict[str, str] = {}
    for k in full:
        by_norm.setdefault(_norm(k), k)
    out = dict(full)
    first_key = ""
    for k, v in own.items():
        target = k if k in full else by_norm.get(_norm(k))
        if target is None or tuple(full[target].shape) != tuple(v.shape):
            raise WeightsError(
                f"encoder tensor {k} {tuple(v.shape)} has no counterpart in timm's {name}: "
                f"this encoder cannot be written as a timm weights file"
            )
        out[target] = v
        if k == first[len(prefix) :] + ".weight":
            first_key = target
    return out, first_key


def save_encoder(encoder: nn.Module, path: str | Path, provenance: dict[str, Any], overwrite: bool = True) -> Path:
    """Write ``encoder`` (a slicewise encoder) as a timm-keyed ``.safetensors`` with ``provenance`` metadata."""
    from safetensors.torch import save_file

    sd, first_key = timm_state_dict(encoder)
    meta = {"format": FORMAT, "version": VERSION, "first_layer_key": first_key}
    for key, value in provenance.items():
        meta[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    return Path(path)


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """The provenance of a slicewise encoder file (JSON values decoded), or ``None`` for any other file."""
    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:
        raise WeightsError(f"cannot read {p} ({type(err).__name__}): the safetensors file is damaged") from None
    if meta.get("format") != FORMAT:
        return None
    out: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            out[key] = json.loads(value) if key in PROVENANCE_KEYS else value
        except ValueError:  # a plain string (encoder name, strategy, time stamp, version)
            out[key] = value
    return out


def check_fits(
    provenance: dict[str, Any], path: str | Path, encoder: str, in_slices: int, colors: int, channel_init: str
) -> None:
    """One-line :class:`WeightsError` unless the model's encoder, k, colors and strategy are the file's."""
    want = {"encoder": encoder, "in_slices": int(in_slices), "colors": int(colors), "channel_init": channel_init}
    option = {
        "encoder": "model.encoder",
        "in_slices": "model.in_slices",
        "colors": "model.colors",
        "channel_init": "model.channel_init",
    }
    for key, value in want.items():
        have = provenance.get(key)
        if have != value:
            raise WeightsError(
                f"encoder weights {path} were pretrained with {key}={have} but the model has {key}={value}: "
                f"set {option[key]}={have} (or pretrain again with {key}={value})"
            )


def split_first_layer(
    path: str | Path, provenance: dict[str, Any], state_dict: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(overlay state dict, first layer)``: the file's first-layer kernel (k·colors channels) is replaced
    by a 3-channel placeholder so timm loads the rest as usual; the kernel (and bias) is returned apart."""
    key = str(provenance.get("first_layer_key") or "")
    if key not in state_dict:
        raise WeightsError(f"encoder weights {path} lack their first layer {key!r}: the file is damaged")
    sd = dict(state_dict)
    w = sd[key]
    sd[key] = torch.zeros((w.shape[0], 3, *w.shape[2:]), dtype=w.dtype)
    first = {"weight": w}
    bias_key = key.removesuffix(".weight") + ".bias"
    if bias_key in sd:
        first["bias"] = sd[bias_key]
    return sd, first


def set_first_layer(conv: nn.Module, first: dict[str, torch.Tensor]) -> None:
    """Put a stored first-layer kernel (and bias) into an adapted first layer; for a ``mirror`` layer its
    free parameter V is set to the (symmetric) kernel, so the effective weight equals it exactly."""
    with torch.no_grad():
        if parametrize.is_parametrized(conv, "weight"):
            original = conv.parametrizations.weight.original
        else:
            original = conv.weight
        if tuple(original.shape) != tuple(first["weight"].shape):
            raise WeightsError(
                f"the stored first layer {tuple(first['weight'].shape)} does not fit the model's "
                f"{tuple(original.shape)}: the file and the model differ in k or colors"
            )
        original.copy_(first["weight"])
        if "bias" in first and getattr(conv, "bias", None) is not None:
            conv.bias.copy_(first["bias"])


CEM500K_DOI = "10.7554/eLife.65894"


def pretrain_citation(weights: str | Path) -> tuple[str, str] | None:
    """``(text, DOI)`` to cite for a model whose initial ``weights`` are an encoder file of ``slicewise pretrain``
    (the recipe's source, CEM500K's MoCo v2 on EM, with the file's method and steps), else ``None``."""
    try:
        prov = read_provenance(weights)
    except WeightsError:
        return None
    if prov is None:
        return None
    text = (
        f"Encoder pretrained self-supervised with slicewise pretrain ({prov.get('method')}, {prov.get('steps')} steps, "
        f"start {prov.get('start_weights')}) following Conrad & Narayan, CEM500K, eLife 2021"
    )
    return text, CEM500K_DOI


def encoder_file_info(path: str | Path) -> dict[str, Any]:
    """Provenance and size of an encoder file of ``slicewise pretrain`` (one-line :class:`WeightsError` for any
    other file): the metadata (:data:`PROVENANCE_KEYS`), ``tensors`` and ``params`` (element count)."""
    from safetensors import safe_open

    prov = read_provenance(path)
    if prov is None:
        raise WeightsError(f"{path} is not an encoder weights file of slicewise pretrain (no {FORMAT!r} metadata)")
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        params = sum(int(torch.Size(f.get_slice(k).get_shape()).numel()) for k in keys)
    return {**prov, "path": str(path), "tensors": len(keys), "params": params}
