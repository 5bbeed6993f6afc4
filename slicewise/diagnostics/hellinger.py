"""Layer domain susceptibility: Hellinger distance between activation histograms, source vs shifted.

For a layer with C channels (docs/design-notes.md, "Layer domain susceptibility (Hellinger)"): per
channel ``j`` histograms ``P_j`` (source tiles) and ``Q_j`` (the same tiles under a shift) over
all positions and tiles, on common edges: ``bins`` (64) equal bins between the 0.1 and 99.9
percentiles of the source activations of that channel; values outside go to the end bins.
``H_j = sqrt(1 − Σ_b sqrt(p_b q_b))`` in [0, 1]; layer score = ``mean_j H_j``.

Streaming: activations are never stored. A first pass over the source tiles keeps a seeded
random sample of positions per layer (at most ``range_samples`` per channel) for the
percentiles; later passes bin each batch on the device (``torch.bincount`` per channel) as the
forward hooks see it. A channel whose range is empty (constant on the sample) gets unit-width
bins starting at its value.

Bias correction (the plug-in ``H`` of two finite samples of ONE distribution is > 0, and the more so
the fewer values a histogram holds, so a coarse layer would look "susceptible" for its size alone):

- equal values per channel across layers: every layer's histograms take the same number of positions
  per tile, ``n = ⌊m / 2⌋`` with ``m`` the smallest layer's positions per tile (H·W of the coarsest
  layer): two disjoint position sets A and B of n positions each, drawn once per layer (seeded) and
  used for every tile;
- the comparison (``raw``) is source set A vs shifted set B; the null baseline per layer is source set
  A vs source set B: two disjoint halves of the *unshifted* data with the same sample size per half
  (T·n values per channel) and the same sampling structure as the comparison, so it is the distance
  that sample size alone produces;
- the score reported, ranked and plotted is ``corrected = raw − null``: exactly 0 for the identity
  shift, ≈ 0 in expectation for a shift that changes nothing; ``raw`` and ``null`` are reported beside
  it. A coarsest layer with a single position per tile falls back to halves by tiles (even tiles
  source, odd tiles shifted / unshifted).

Intervals: histograms are kept per tile (``ChannelHistograms.tile_counts``, memory tiles × channels ×
bins), so :func:`bootstrap_layer_score` resamples tiles (paired: the same tiles source and shifted)
for a 95% percentile interval of each layer's raw score; the corrected score's interval is that interval
minus the layer's null baseline.

Hooked layers: every encoder feature stage (the encoder's list output, named ``enc_s<stride>``)
and every decoder block (``dec_s<stride>``), found from ``model.encoder`` / ``model.decoder.blocks``;
a model without them falls back to its named children.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from slicewise.data.io import as_volume
from slicewise.data.shifts import apply_shift, parse_shift
from slicewise.diagnostics.attribution import describe_model, model_k, read_tiles, sample_tiles
from slicewise.errors import InputError
from slicewise.utils.device import resolve_device
from slicewise.utils.progress import progress

Callback = Callable[[str, torch.Tensor], None]


def _names(prefix: str, n: int, strides: Sequence[int] | None) -> list[str]:
    if strides is not None and len(strides) == n:
        return [f"{prefix}_s{s}" for s in strides]
    return [f"{prefix}{i}" for i in range(n)]


def hook_points(model: nn.Module) -> list[tuple[nn.Module, Callable[[Any], list[tuple[str, torch.Tensor]]]]]:
    """(module, output → [(layer name, activation)]) for every hooked layer of ``model``."""
    points: list[tuple[nn.Module, Callable[[Any], list[tuple[str, torch.Tensor]]]]] = []
    encoder = getattr(model, "encoder", None)
    blocks = getattr(getattr(model, "decoder", None), "blocks", None)
    if isinstance(encoder, nn.Module):
        strides = getattr(encoder, "reductions", None)

        def split(out: Any, strides: Sequence[int] | None = strides) -> list[tuple[str, torch.Tensor]]:
            feats = [out] if torch.is_tensor(out) else [f for f in out if torch.is_tensor(f)]
            return list(zip(_names("enc", len(feats), strides), feats))

        points.append((encoder, split))
    if isinstance(blocks, nn.ModuleList):
        names = _names("dec", len(blocks), getattr(model.decoder, "block_strides", None))
        for name, block in zip(names, blocks):
            points.append((block, lambda out, name=name: [(name, out)] if torch.is_tensor(out) else []))
    if not points:
        for name, child in model.named_children():
            points.append((child, lambda out, name=name: [(name, out)] if torch.is_tensor(out) else []))
    return points


@contextlib.contextmanager
def capture(model: nn.Module, callback: Callback) -> Iterator[None]:
    """Call ``callback(layer, activation (B, C, H, W))`` for every hooked layer during forwards."""
    handles = []
    for module, split in hook_points(model):

        def hook(_m: nn.Module, _inp: Any, out: Any, split: Callable = split) -> None:
            for name, act in split(out):
                if act.ndim >= 2:
                    callback(name, act.detach())

        handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _channels_first(act: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) → (C, B·...) float32."""
    return act.transpose(0, 1).reshape(act.shape[1], -1).float()


class ChannelHistograms:
    """Per-tile, per-channel counts on fixed equal-width edges ``[lo, hi]`` (end bins take the outside).

    ``tile_counts`` (T, C, bins) keeps one histogram per tile (the batch dimension of each update), so a
    bootstrap over tiles can resample them: memory T·C·bins float32 (32 tiles × 320 channels × 64 bins
    = 2.6 MB per layer); ``counts`` (C, bins) is their sum."""

    def __init__(
        self, lo: torch.Tensor, hi: torch.Tensor, bins: int = 64, positions: torch.Tensor | None = None
    ) -> None:
        self.bins = bins
        self.lo = lo
        self.positions = positions  # flat spatial indices taken from every tile (None: all)
        width = (hi - lo) / bins
        self.width = torch.where(width > 0, width, torch.ones_like(width))
        self._parts: list[torch.Tensor] = []

    def update(self, act: torch.Tensor) -> None:
        """Add the values of ``act`` (B, C, ...) as B more tiles."""
        b, c = int(act.shape[0]), int(act.shape[1])
        v = act.reshape(b, c, -1).float()
        if self.positions is not None:
            v = v[:, :, self.positions.to(v.device)]
        idx = torch.floor((v - self.lo[None, :, None]) / self.width[None, :, None]).clamp_(0, self.bins - 1).long()
        idx += (torch.arange(b * c, device=v.device) * self.bins).view(b, c, 1)
        counts = torch.bincount(idx.flatten(), minlength=b * c * self.bins).view(b, c, self.bins)
        self._parts.append(counts.float())

    @property
    def tile_counts(self) -> torch.Tensor:
        """(T, C, bins) counts, one histogram per tile in the order seen."""
        if not self._parts:
            return torch.zeros(0, self.lo.shape[0], self.bins, device=self.lo.device)
        if len(self._parts) > 1:
            self._parts = [torch.cat(self._parts, 0)]
        return self._parts[0]

    @property
    def counts(self) -> torch.Tensor:
        """(C, bins) counts summed over tiles (float64)."""
        return self.tile_counts.double().sum(0)


def hellinger(p_counts: torch.Tensor, q_counts: torch.Tensor) -> torch.Tensor:
    """Per-row Hellinger distance ``sqrt(1 − Σ_b sqrt(p_b q_b))`` of two count tables (C, bins).

    Evaluated as the equal ``sqrt(½ Σ_b (√p_b − √q_b)²)`` (p, q sum to 1), which is exactly 0 for
    equal histograms and free of cancellation near 0; clipped to [0, 1]."""
    p = p_counts.double() / p_counts.double().sum(1, keepdim=True)
    q = q_counts.double() / q_counts.double().sum(1, keepdim=True)
    return torch.sqrt(0.5 * (p.sqrt() - q.sqrt()).pow(2).sum(1)).clamp(max=1.0)


def shift_tiles(x: np.ndarray, name: str, strength: float, colors: int = 1, seed: int = 0) -> np.ndarray:
    """Apply a synthetic shift (:func:`slicewise.data.shifts.apply_shift`) to unit-float tiles
    ``(N, k·colors, H, W)``; RGB tiles (``colors = 3``) are shifted with their color axis named."""
    if colors == 1:
        return np.asarray(apply_shift(x, name, strength, seed=seed), dtype=np.float32)
    n, c, h, w = x.shape
    y = apply_shift(x.reshape(n, c // colors, colors, h, w), name, strength, seed=seed, channel_axis=-3)
    return np.asarray(y, dtype=np.float32).reshape(n, c, h, w)


def parse_shifts(shifts: Sequence[str | tuple[str, float]]) -> list[tuple[str, float]]:
    """``["contrast=0.5", ("gaussian_noise", 0.1)]`` → ``[("contrast", 0.5), ("gaussian_noise", 0.1)]``
    (names checked)."""
    out = [parse_shift(s) if isinstance(s, str) else parse_shift(f"{s[0]}={float(s[1])!r}") for s in shifts]
    if not out:
        raise InputError("no shift given: pass at least one, e.g. --shift contrast=0.5")
    return out


def _forward_all(model: nn.Module, tiles: np.ndarray, dev: torch.device, batch_size: int, desc: str) -> None:
    with torch.no_grad():
        starts = range(0, len(tiles), batch_size)
        for i in progress(starts, desc=desc, total=len(starts)):
            model(torch.from_numpy(tiles[i : i + batch_size]).to(dev))


def layer_ranges(
    model: nn.Module,
    tiles: np.ndarray,
    dev: torch.device,
    *,
    batch_size: int = 16,
    range_samples: int = 20000,
    seed: int = 0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, per channel 0.1 and 99.9 percentiles of the source activations (from a seeded position sample)."""
    n_batches = math.ceil(len(tiles) / batch_size)
    per_batch = max(1, math.ceil(range_samples / n_batches))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    samples: dict[str, list[torch.Tensor]] = {}

    def collect(name: str, act: torch.Tensor) -> None:
        v = _channels_first(act)
        if v.shape[1] > per_batch:
            v = v[:, torch.randperm(v.shape[1], generator=gen)[:per_batch].to(v.device)]
        samples.setdefault(name, []).append(v)

    with capture(model, collect):
        _forward_all(model, tiles, dev, batch_size, "activation ranges")
    out = {}
    for name, parts in samples.items():
        v = torch.cat(parts, 1)
        qs = torch.tensor([0.001, 0.999], dtype=torch.float64, device=v.device)
        rows = max(1, (1 << 24) // v.shape[1])  # torch.quantile takes at most 2**24 elements per call
        q = torch.cat([torch.quantile(v[i : i + rows].double(), qs, dim=1) for i in range(0, v.shape[0], rows)], 1)
        out[name] = (q[0].float(), q[1].float())
    return out


def layer_histograms(
    model: nn.Module,
    tiles: np.ndarray,
    dev: torch.device,
    ranges: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    bins: int = 64,
    batch_size: int = 16,
    desc: str = "histograms",
    positions: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-layer per-tile per-channel counts (T, C, bins) of the activations on ``tiles`` (only the flat
    spatial ``positions`` of a layer where given)."""
    positions = positions or {}
    hists = {name: ChannelHistograms(lo, hi, bins, positions.get(name)) for name, (lo, hi) in ranges.items()}
    with capture(model, lambda name, act: hists[name].update(act)):
        _forward_all(model, tiles, dev, batch_size, desc)
    return {name: h.tile_counts for name, h in hists.items()}


def layer_positions(
    model: nn.Module, tiles: np.ndarray, dev: torch.device, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """Equal-size disjoint position sets per layer: ``(set_a, set_b, n)``.

    ``n = ⌊m / 2⌋`` with ``m`` the smallest layer's positions (H·W) per tile; per layer a seeded random
    permutation of its H·W flat positions gives set A (the first n) and set B (the next n). With
    ``m < 2`` both sets are all positions of the layer (and ``n`` is 0: the caller halves by tiles).
    """
    sizes: dict[str, int] = {}
    with capture(model, lambda name, act: sizes.setdefault(name, int(np.prod(act.shape[2:])))), torch.no_grad():
        model(torch.from_numpy(tiles[:1]).to(dev))
    m = min(sizes.values())
    n = m // 2
    set_a, set_b = {}, {}
    for i, (name, size) in enumerate(sizes.items()):
        if n < 1:
            set_a[name] = set_b[name] = torch.arange(size)
            continue
        perm = torch.randperm(size, generator=torch.Generator().manual_seed(int(seed) * 1009 + i))
        set_a[name], set_b[name] = perm[:n].sort().values, perm[n : 2 * n].sort().values
    return set_a, set_b, n


def layer_distance(
    source: torch.Tensor, shifted: torch.Tensor, null_a: torch.Tensor, null_b: torch.Tensor
) -> dict[str, float]:
    """``{"raw", "null", "corrected"}``: mean_j H_j of source vs shifted, of the null pair (two disjoint
    halves of the unshifted data, each the size of the comparison's samples), and raw − null.

    In :func:`shift_report` ``source`` and ``null_a`` are the unshifted set A, ``shifted`` the shifted set B
    and ``null_b`` the unshifted set B.

    Count tables (C, bins) or per-tile (T, C, bins) (summed over tiles)."""

    def total(c: torch.Tensor) -> torch.Tensor:
        return c.double().sum(0) if c.ndim == 3 else c.double()

    raw = float(hellinger(total(source), total(shifted)).mean())
    null = float(hellinger(total(null_a), total(null_b)).mean())
    return {"raw": raw, "null": null, "corrected": raw - null}


def bootstrap_layer_score(
    source: torch.Tensor,
    shifted: torch.Tensor,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 100,
) -> tuple[float, float, float]:
    """(score, low, high): the layer score ``mean_j H_j`` of the summed histograms and its percentile
    bootstrap interval over tiles.

    ``source`` / ``shifted``: (T, C, bins) per-tile counts of the same tiles (paired: a resample takes
    the same tiles from both). Each of ``n_resamples`` resamples draws T tiles with replacement (seeded),
    sums their histograms and scores them; resamples are processed ``chunk`` at a time (memory
    chunk·C·bins). With one tile the interval is the point (nothing to resample). The plug-in distance is
    biased upwards when histograms hold few values, so resampled scores tend to lie above the point: the
    interval is reported as computed (percentile), widened only to contain the point."""
    t = int(source.shape[0])
    score = float(hellinger(source.double().sum(0), shifted.double().sum(0)).mean())
    if t < 2 or n_resamples < 1:
        return score, score, score
    gen = torch.Generator(device="cpu").manual_seed(seed)
    flat_s = source.reshape(t, -1).float()
    flat_q = shifted.reshape(t, -1).float()
    c, bins = int(source.shape[1]), int(source.shape[2])
    scores: list[torch.Tensor] = []
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        draw = torch.randint(0, t, (m, t), generator=gen)
        w = torch.zeros(m, t).scatter_add_(1, draw, torch.ones(m, t)).to(flat_s.device)
        ps, qs = (w @ flat_s).view(m * c, bins), (w @ flat_q).view(m * c, bins)
        scores.append(hellinger(ps, qs).view(m, c).mean(1).cpu())
    dist = torch.cat(scores).numpy()
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(dist, [alpha, 1.0 - alpha])
    return score, float(min(lo, score)), float(max(hi, score))


def shift_report(
    models: Mapping[str, nn.Module] | nn.Module,
    volume: Any,
    shifts: Sequence[str | tuple[str, float]] = (("contrast", 0.5),),
    *,
    n_tiles: int = 32,
    tile: int = 128,
    dz: int = 1,
    seed: int = 0,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    bins: int = 64,
    range_samples: int = 20000,
    roi: Sequence[slice] | None = None,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """Hellinger layer scores of each model for each (shift, strength), on the same seeded tiles.

    ``shifts``: ``(name, strength)`` pairs or ``"name=strength"`` strings (names from
    :data:`slicewise.data.shifts.SHIFTS`; the identity strength, e.g. ``brightness=0``, gives 0). Returns
    ``{"kind": "shift", "shifts": [{"name", "strength", "label"}...], "models": {model:
    {"layers": [...], "channels": {layer: C}, "values_per_channel": {layer: n}, "scores": {label: {layer: score}},
    "raw": {label: {layer: H}}, "null": {layer: H0}, "ci": {label: {layer: [low, high]}}, "model": {...}}}}``:
    ``scores`` are the bias-corrected distances ``raw − null`` (see the module docstring; equal
    ``values_per_channel`` in every layer), ``ci`` the 95% percentile bootstrap interval over tiles of the
    raw score (``n_resamples`` resamples, :func:`bootstrap_layer_score`) minus the null baseline.
    ``roi`` ((z, y, x) slices) draws the tiles inside that box; stacks read context outside it.
    """
    if isinstance(models, nn.Module):
        models = {"model": models}
    if not models:
        raise InputError("shift_report needs at least one model")
    pairs = parse_shifts(shifts)
    volume = as_volume(volume)
    dev = resolve_device(device)
    labels = [f"{n}={s:g}" for n, s in pairs]
    result: dict[str, Any] = {
        "kind": "shift",
        "tile": int(tile),
        "dz": int(dz),
        "seed": int(seed),
        "bins": int(bins),
        "n_tiles": int(n_tiles),
        "n_resamples": int(n_resamples),
        "confidence": 0.95,
        "scores_are": "bias-corrected: raw − null (raw: source positions A vs shifted positions B; null: A vs B "
        "unshifted)",
        "shifts": [{"name": n, "strength": float(s), "label": lab} for (n, s), lab in zip(pairs, labels)],
        "models": {},
    }
    for model_name, model in models.items():
        k = model_k(model, None)
        if hasattr(model, "check_input_size"):
            model.check_input_size(tile, tile)
        tiles = read_tiles(volume, sample_tiles(volume.shape, n_tiles, tile, k, dz, seed=seed, roi=roi), tile, k, dz)
        was_training = model.training
        model.eval().to(dev)
        try:
            ranges = layer_ranges(model, tiles, dev, batch_size=batch_size, range_samples=range_samples, seed=seed)
            set_a, set_b, per_tile = layer_positions(model, tiles, dev, seed=seed)
            source = layer_histograms(
                model, tiles, dev, ranges, bins=bins, batch_size=batch_size, desc="source histograms", positions=set_a
            )
            if per_tile >= 1:
                other = layer_histograms(
                    model, tiles, dev, ranges, bins=bins, batch_size=batch_size, desc="null histograms", positions=set_b
                )
            else:  # one position per tile in the coarsest layer: halves by tiles
                half = len(tiles) // 2
                other = {layer: c[half : 2 * half] for layer, c in source.items()}
                source = {layer: c[:half] for layer, c in source.items()}
            halves = {layer: (source[layer], other[layer]) for layer in source}
            nulls = {layer: layer_distance(a, b, a, b)["raw"] for layer, (a, b) in halves.items()}
            scores: dict[str, dict[str, float]] = {}
            raws: dict[str, dict[str, float]] = {}
            cis: dict[str, dict[str, list[float]]] = {}
            for (name, strength), label in zip(pairs, labels):
                shifted = shift_tiles(tiles, name, strength, colors=int(tiles.shape[1]) // k, seed=seed)
                counts = layer_histograms(
                    model, shifted, dev, ranges, bins=bins, batch_size=batch_size, desc=label, positions=set_b
                )  # set B shifted vs set A unshifted: the null's design
                if per_tile < 1:
                    counts = {layer: c[half : 2 * half] for layer, c in counts.items()}
                scores[label], raws[label], cis[label] = {}, {}, {}
                for layer in source:
                    v, lo, hi = bootstrap_layer_score(source[layer], counts[layer], n_resamples=n_resamples, seed=seed)
                    null = nulls[layer]
                    raws[label][layer] = v
                    scores[label][layer], cis[label][layer] = v - null, [lo - null, hi - null]
        finally:
            model.train(was_training)
        result["models"][model_name] = {
            "layers": list(source),
            "channels": {layer: int(c.shape[1]) for layer, c in source.items()},
            "values_per_channel": {layer: int(c[:, 0].sum()) for layer, c in source.items()},
            "null_values_per_half": {layer: int(halves[layer][0][:, 0].sum()) for layer in source},
            "scores": scores,
            "raw": raws,
            "null": nulls,
            "ci": cis,
            "model": describe_model(model),
        }
    return result
