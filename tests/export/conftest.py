"""Fixtures for the bioimage.io bridge: a tiny trained-looking model, its package, and no network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch


def _refuse(*args: object, **kwargs: object) -> None:
    raise OSError("network access attempted during a slicewise export test")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket connection fails: export, validation and bioimage.io's test must stay offline."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)


def tiny_model():
    """timm test_resnet U-Net (435k parameters), k=3, uniform first layer, L1 pruned, 2 named classes + a boundary
    head; the head's weights are scaled ×20 so the random network's outputs vary strongly with the input."""
    from slicewise.models import build_model

    torch.manual_seed(0)
    model = build_model(
        encoder="test_resnet",
        weights="random",
        decoder_channels=(16, 16, 8, 8, 8),
        channel_init="uniform",
        skips="0111",
        classes=2,
        class_names=["cytoplasm", "membrane"],
        extra_heads=["boundary"],
    ).eval()
    with torch.no_grad():
        model.decoder.head.weight.mul_(20.0)
    return model


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, Path]:
    """(model, model file, package zip) — the package is written once per session (no network)."""
    pytest.importorskip(
        "bioimageio.spec", reason="the bioimageio extra is not installed: pip install 'slicewise[bioimageio]'"
    )
    from slicewise.export import bioimageio
    from slicewise.models import save_model

    root = tmp_path_factory.mktemp("bmz")
    model = tiny_model()
    model_file = save_model(model, root / "best.pt")
    (root / "config.yaml").write_text("data:\n  dz: 2\n  border: reflect\n  synthetic: {shape: [8, 64, 64], seed: 3}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse)
        mp.setattr(socket, "create_connection", _refuse)
        pkg = bioimageio(model_file, root / "model.zip", authors=["Ada Lovelace"], test_size=64)
    return model, model_file, pkg
