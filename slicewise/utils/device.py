"""Torch device resolution shared by prediction and the diagnostics."""

from __future__ import annotations

from typing import Any

from slicewise.errors import InputError


def resolve_device(device: Any = None) -> Any:
    """``None``/``"auto"`` → CUDA when available, else CPU; anything else checked as a ``torch.device``.

    Raises a one-line :class:`InputError` for a name torch does not know or for CUDA on a
    machine without it.
    """
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device {device!r} is not a torch device: use auto, cpu, cuda or cuda:N") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available here: use --device cpu")
    return d
