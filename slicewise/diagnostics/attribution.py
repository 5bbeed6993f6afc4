"""Input attribution of a segmentation network, per input slice (Captum, batched on the device).

Tile ``x`` (``k·C × H × W`` float in [0, 1]; the model normalizes inside). Scalar target per
tile ``T(x) = Σ_{p∈R} logit_class(x)_p`` with ``R`` the whole tile, the predicted mask
(``argmax == class`` on the unperturbed tile) or a user ROI. Attribution ``A``:

- ``saliency``: ``|∂T/∂x|`` (:class:`captum.attr.Saliency`);
- ``ixg``: ``|x ⊙ ∂T/∂x|`` (:class:`captum.attr.InputXGradient`);
- ``ig``: ``|IG(x)|`` with the tile's mean intensity as baseline
  (:class:`captum.attr.IntegratedGradients`, ``n_steps``, ``internal_batch_size``).

Slice share per tile ``s_c = Σ_p |A_{c,p}| / Σ_{c',p} |A_{c',p}|`` (color channels of one slice
summed); averaged over tiles with bootstrap CIs (:mod:`slicewise.diagnostics.asymmetry`).

Speed option (``bf16=True``, ``channels_last=True``): the network runs under bf16 autocast on the
tiles' device (tensor cores on a GPU) with channels-last activations; the input, its gradient, the
target sum and the shares stay float32. Slice shares stay within 0.01 of fp32 (tested on CPU);
maps differ by bf16 round-off, so fp32 remains the default for reported figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from slicewise.data.io import as_volume, check_block, check_raw
from slicewise.data.roi import resolve_roi
from slicewise.data.stacking import check_stack_params, stack_slices, to_unit_float, valid_centres
from slicewise.diagnostics.asymmetry import summarize_shares
from slicewise.errors import InputError
from slicewise.utils.device import resolve_device
from slicewise.utils.progress import progress

METHODS: tuple[str, ...] = ("saliency", "ixg", "ig")
REGIONS: tuple[str, ...] = ("tile", "mask")


def seg_channel(model: nn.Module, target_class: int | None) -> tuple[int, int, int]:
    """(output channel, class, number of classes) of ``target_class`` in the "seg" head; default class 1
    (0 if one channel)."""
    heads = getattr(model, "heads", None) or {}
    seg = heads.get("seg", slice(0, int(getattr(model, "out_channels", 1))))
    start, stop = seg.start or 0, seg.stop
    n = stop - start
    cls = (1 if n > 1 else 0) if target_class is None else int(target_class)
    if not 0 <= cls < n:
        raise InputError(f"class {cls} does not exist: the model's segmentation head has classes 0..{n - 1}")
    return start + cls, cls, n


class TargetLogitSum(nn.Module):
    """Wrapper forward: ``(x, region) ↦ Σ_p region_p · logit_class(x)_p``, one scalar per sample (float32;
    with ``bf16`` the network runs under bf16 autocast on ``x``'s device)."""

    def __init__(self, model: nn.Module, channel: int, bf16: bool = False) -> None:
        super().__init__()
        self.model = model
        self.channel = channel
        self.bf16 = bf16

    def forward(self, x: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(x)
        return (logits[:, self.channel].float() * region).flatten(1).sum(1)


def predicted_mask(model: nn.Module, x: torch.Tensor, target_class: int | None = None) -> torch.Tensor:
    """``(B, H, W)`` float mask where the model predicts ``target_class`` (argmax over seg channels; logit > 0
    if one)."""
    channel, cls, n = seg_channel(model, target_class)
    with torch.no_grad():
        seg = model(x)[:, channel - cls : channel - cls + n]
    if n == 1:
        return (seg[:, 0] > 0).to(x.dtype)
    return (seg.argmax(1) == cls).to(x.dtype)


def attribute(
    model: nn.Module,
    x: torch.Tensor,
    *,
    method: str = "saliency",
    target_class: int | None = None,
    region: str | torch.Tensor = "tile",
    n_steps: int = 32,
    internal_batch_size: int | None = None,
    bf16: bool = False,
    channels_last: bool = False,
) -> torch.Tensor:
    """Absolute attribution ``|A|`` of ``T(x)`` for a batch ``x`` ``(B, C, H, W)`` in [0, 1].

    ``region``: ``"tile"``, ``"mask"`` (predicted ``argmax == class``) or a ``(B, H, W)`` ROI tensor.
    ``internal_batch_size``: IG samples per forward pass (at least B; default B). Runs on ``x``'s
    device; the model should be in eval mode. ``bf16``: bf16 autocast for the network;
    ``channels_last``: channels-last input (put the model in channels_last too; the module docstring
    says what changes). ``|A|`` is float32 in x's shape either way.
    """
    from captum.attr import InputXGradient, IntegratedGradients, Saliency

    if method not in METHODS:
        raise InputError(f"attribution method {method!r} is unknown: use one of {', '.join(METHODS)}")
    channel, _, _ = seg_channel(model, target_class)
    if isinstance(region, str):
        if region == "tile":
            mask = torch.ones(x.shape[0], *x.shape[2:], dtype=x.dtype, device=x.device)
        elif region == "mask":
            mask = predicted_mask(model, x, target_class)
        else:
            raise InputError(f"region {region!r} is unknown: use 'tile', 'mask' or an ROI mask file")
    else:
        mask = region.to(device=x.device, dtype=x.dtype)
    fwd = TargetLogitSum(model, channel, bf16=bf16)
    x = x.detach()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.requires_grad_(True)
    if method == "saliency":
        a = Saliency(fwd).attribute(x, additional_forward_args=(mask,), abs=True)
    elif method == "ixg":
        a = InputXGradient(fwd).attribute(x, additional_forward_args=(mask,))
    else:
        baseline = x.detach().mean(dim=(1, 2, 3), keepdim=True).expand_as(x).contiguous()
        a = IntegratedGradients(fwd).attribute(
            x,
            baselines=baseline,
            additional_forward_args=(mask,),
            n_steps=n_steps,
            internal_batch_size=max(internal_batch_size or 0, x.shape[0]),
        )
    return a.detach().float().abs()


def tile_slice_shares(attr: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, k·C, H, W)`` absolute attribution → per-tile slice shares ``(B, k)`` (colors of a slice summed)."""
    per = attr.reshape(attr.shape[0], k, -1).sum(-1).double()
    return per / per.sum(1, keepdim=True)


def sample_tiles(
    shape: tuple[int, ...],
    n_tiles: int,
    tile: int,
    k: int,
    dz: int = 1,
    border: str = "reflect",
    seed: int = 0,
    roi: Sequence[slice] | None = None,
) -> list[tuple[int, int, int]]:
    """``n_tiles`` seeded ``(z, y0, x0)`` tile origins inside a Z×Y×X(×C) volume of ``shape``.

    ``roi`` ((z, y, x) slices, ``--z`` / ``--roi``): centre slices and whole tiles inside that box;
    the stacks still read their context slices outside it. Without it, the same origins as before.
    """
    depth = int(shape[0])
    zr, yr, xr = resolve_roi(roi, shape[:3])
    h, w = yr.stop - yr.start, xr.stop - xr.start
    if tile > h or tile > w:
        raise InputError(f"tile size {tile} is larger than the image ({h}x{w}): pass a smaller --tile")
    if n_tiles < 1:
        raise InputError(f"number of tiles {n_tiles} must be >= 1")
    check_stack_params(depth, k, dz, border)
    rng = np.random.default_rng(seed)
    centres = valid_centres(depth, k, dz, border)
    centres = centres[(centres >= zr.start) & (centres < zr.stop)]
    if not centres.size:
        raise InputError(
            f"no slice in the z range {zr.start}:{zr.stop} has the context k={k}, dz={dz} needs: widen --z"
        )
    zs = rng.choice(centres, size=n_tiles)
    ys = yr.start + rng.integers(0, h - tile + 1, size=n_tiles)
    xs = xr.start + rng.integers(0, w - tile + 1, size=n_tiles)
    return [(int(z), int(y), int(x)) for z, y, x in zip(zs, ys, xs)]


def read_tiles(
    volume: Any, origins: list[tuple[int, int, int]], tile: int, k: int, dz: int = 1, border: str = "reflect"
) -> np.ndarray:
    """Stack the tiles at ``origins`` through :func:`stack_slices` → float32 ``(N, k·C, tile, tile)`` in [0, 1].

    The intensities pass :func:`slicewise.data.io.check_raw` (``per_block``: sampled only for the range use of
    wide integers, remembered on a Volume) and every tile read passes :func:`slicewise.data.io.check_block`
    before conversion, so a shift or attribution never runs on NaN, float outside [0, 1] or crushed integers."""
    vol = as_volume(volume)
    check_raw(vol, per_block=True)
    out = []
    for z, y, x in origins:
        raw = stack_slices(vol, z, k, dz, border, (slice(y, y + tile), slice(x, x + tile)))
        check_block(raw, f"raw volume {vol.source} (tile at z={z}, y={y}, x={x})")
        out.append(to_unit_float(raw))
    return np.stack(out)


def model_k(model: nn.Module, k: int | None) -> int:
    """The model's input slice count; a different explicit ``k`` is an error."""
    mk = int(getattr(model, "in_slices", k or 1))
    if k is not None and int(k) != mk:
        raise InputError(
            f"k={k} does not match the model, which takes {mk} input slices: drop k or use a model built for {k}"
        )
    return mk


def describe_model(model: nn.Module) -> dict[str, Any]:
    """JSON-ready description: the model's config when it has one, else its class name."""
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "model_dump"):
        return cfg.model_dump(mode="json")
    return {"class": type(model).__name__}


def attribution_report(
    model: nn.Module,
    volume: Any,
    *,
    method: str = "saliency",
    target_class: int | None = None,
    region: str | Any = "tile",
    n_tiles: int = 32,
    tile: int = 128,
    k: int | None = None,
    dz: int = 1,
    seed: int = 0,
    device: str | torch.device | None = None,
    n_steps: int = 32,
    batch_size: int = 16,
    internal_batch_size: int | None = None,
    n_maps: int = 3,
    n_resamples: int = 2000,
    roi: Sequence[slice] | None = None,
    bf16: bool = False,
    channels_last: bool = False,
) -> dict[str, Any]:
    """Slice shares, MA, centre share and pair difference (with bootstrap CIs over tiles) of one model.

    ``volume``: a :class:`Volume`, a path or a Z×Y×X(×C) array-like (2-D: depth 1); ``region``: ``"tile"``,
    ``"mask"`` or an ROI array shaped like the volume's Z×Y×X (non-zero = inside). Tiles whose
    target region is empty (all-zero attribution) are dropped and counted in ``n_tiles_empty``.
    Returns a dict of plain numbers plus ``"maps"`` (numpy: ``inputs`` and ``attributions`` of the
    first ``n_maps`` tiles, and their ``origins`` (z, y, x)) for pictures;
    :func:`slicewise.diagnostics.report.jsonable` drops it.
    ``batch_size`` tiles go to the device at once; IG runs ``internal_batch_size`` (default
    ``batch_size``) path samples per forward pass. The model is moved to ``device`` and left there.
    ``roi`` ((z, y, x) slices) draws the tiles inside that box (see :func:`sample_tiles`).
    ``bf16`` / ``channels_last``: the speed option of the module docstring (the model's memory format is
    restored afterwards); recorded in the result as ``precision``. The volume first passes
    :func:`slicewise.data.io.check_raw` (there is no normalization here: integers ÷ dtype maximum, float in [0, 1]).
    """
    if method not in METHODS:
        raise InputError(f"attribution method {method!r} is unknown: use one of {', '.join(METHODS)}")
    volume = check_raw(as_volume(volume))  # intensities (dtype, NaN/Inf, value rule) before any model work
    k = model_k(model, k)
    if hasattr(model, "check_input_size"):
        model.check_input_size(tile, tile)
    roi_mask = None
    if not isinstance(region, str):
        roi_mask = np.asarray(region)
        if roi_mask.shape[:3] != tuple(volume.shape[:3]):
            raise InputError(
                f"ROI mask shape {roi_mask.shape} does not match the volume's Z×Y×X {tuple(volume.shape[:3])}: use a "
                "mask of the same size"
            )
        region_name = "roi"
    elif region not in REGIONS:
        raise InputError(f"region {region!r} is unknown: use 'tile', 'mask' or an ROI mask file")
    else:
        region_name = region
    dev = resolve_device(device)
    _, cls, _ = seg_channel(model, target_class)
    origins = sample_tiles(volume.shape, n_tiles, tile, k, dz, seed=seed, roi=roi)
    was_training = model.training
    model.eval().to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    shares, maps_in, maps_attr = [], [], []
    try:
        starts = range(0, n_tiles, batch_size)
        for i in progress(starts, desc=f"attribution ({method})", total=len(starts)):
            batch = origins[i : i + batch_size]
            x = torch.from_numpy(read_tiles(volume, batch, tile, k, dz)).to(dev)
            reg: str | torch.Tensor = region_name
            if roi_mask is not None:
                reg = torch.from_numpy(
                    np.stack([roi_mask[z, y : y + tile, x0 : x0 + tile] != 0 for z, y, x0 in batch]).astype(np.float32)
                )
            a = attribute(
                model,
                x,
                method=method,
                target_class=target_class,
                region=reg,
                n_steps=n_steps,
                internal_batch_size=internal_batch_size or batch_size,
                bf16=bf16,
                channels_last=channels_last,
            )
            shares.append(tile_slice_shares(a, k).cpu())
            if sum(m.shape[0] for m in maps_in) < n_maps:  # keep pictures of the first n_maps tiles only
                maps_in.append(x.detach().cpu().numpy())
                maps_attr.append(a.cpu().numpy())
    finally:
        model.train(was_training)
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
    s = torch.cat(shares).numpy()
    keep = np.isfinite(s).all(axis=1)
    if not keep.any():
        raise InputError(
            f"the target region is empty in all {n_tiles} tiles (class {cls}, region {region_name}): use region "
            "'tile' or another class"
        )
    out: dict[str, Any] = {
        "kind": "attribution",
        "method": method,
        "target_class": int(cls),
        "region": region_name,
        "tile": int(tile),
        "k": int(k),
        "dz": int(dz),
        "seed": int(seed),
        "n_steps": int(n_steps) if method == "ig" else None,
        "precision": "bf16" if bf16 else "fp32",
        "n_tiles_requested": int(n_tiles),
        "n_tiles_empty": int((~keep).sum()),
        "model": describe_model(model),
    }
    out.update(summarize_shares(s[keep], seed=seed, n_resamples=n_resamples))
    out["tile_shares"] = s[keep].tolist()
    if maps_in:
        inputs = np.concatenate(maps_in)[:n_maps]
        origins_kept = np.asarray(origins[: len(inputs)], dtype=np.int64).reshape(len(inputs), 3)
        out["maps"] = {"inputs": inputs, "attributions": np.concatenate(maps_attr)[:n_maps], "origins": origins_kept}
    return out


def compare_models(models: Mapping[str, nn.Module], volume: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`attribution_report` for each named model on the same tiles (same seed), side by side.

    E.g. ``compare_models({"pretrained": m0, "fine-tuned": m1}, vol, method="saliency")``.
    """
    if not models:
        raise InputError("compare_models needs at least one model")
    reports = {name: attribution_report(m, volume, **kwargs) for name, m in models.items()}
    first = next(iter(reports.values()))
    common = {key: first[key] for key in ("method", "target_class", "region", "tile", "k", "dz", "seed", "n_steps")}
    return {"kind": "attribution_comparison", **common, "models": reports}
