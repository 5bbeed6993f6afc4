"""Block-wise prediction: planning blocks, reading a block's input with its halo, computing a block.

A *block* is an output region ``[z0, z1) × [y0, y1) × [x0, x1)`` in volume coordinates (docs/design-notes.md,
"Block-wise processing"). Its input read is the region grown by a halo:

- z: the ``r·dz`` context slices either side (``k = 2r+1``), clipped to the volume; context slices
  beyond the volume's *true* ends are reflected / replicated (:func:`slicewise.data.stacking.stack_indices`),
  never at block borders;
- y/x: from the start of the first tile of the **volume's** tile grid
  (:func:`slicewise.data.tiling.tile_starts` on the whole plane) that covers the block's first pixel to the
  end of the last grid tile covering its last pixel (at most ``T−1`` either side).

Every pixel of a block is therefore blended from exactly the tiles, inputs and Gaussian weights
that cover it in a whole-volume run, accumulated in the same (row-major) order, so block-wise output
equals in-memory output for any block shape (up to float round-off from batch composition, well
under 1e-6 in fp32). In-memory prediction is the same code with the blocks assembled in an array.

On the device: the block's input (uint8 or its native dtype) is copied as is (pinned host memory and
``non_blocking`` on CUDA), converted to [0, 1], padded, stacked, tiled, run and Gaussian-blended there;
finished blocks come back to the host on a side CUDA stream while the next block computes, and the next
block's input is read on a background thread meanwhile. On CPU these are plain synchronous copies.

Cost of the halo: a tile that straddles a block border is computed by every block it touches, so blocks
smaller than the plane compute ≈ (1 + step / B)² times the tiles of a whole-plane run (y/x block side B,
tile step = T·(1 − overlap); counted on a 16384² plane with T = 256, overlap 0.25: 1.38× for B = 1024,
1.07× for B = 4096, 1× for whole planes, which :func:`slicewise.infer.predict.predict` uses by default).
Choose the largest y/x block memory allows.

Memory per block ≈ (block + halo) voxels × (input bytes + 4 for the float copy) + accumulators
``(bz, C, by + halo, bx + halo)`` float32: bounded by the block, never the section or the volume.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from slicewise.data.grid import Box, block_grid
from slicewise.data.io import Volume, as_volume, check_intensity_range, check_raw, intensity_dtype
from slicewise.data.stacking import stack_indices, to_device_tensor
from slicewise.data.tiling import gaussian_weight, reflect_index, tile_starts
from slicewise.errors import InputError

DEFAULT_BLOCK: tuple[int, int, int] = (32, 1024, 1024)
NORMALIZE_PERCENTILES: tuple[float, float] = (0.1, 99.9)
NORMALIZE_OPTION = "--normalize percentile (normalize='percentile')"  # named in predict's intensity errors

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BLOCK",
    "Block",
    "InputRegion",
    "InputValueError",
    "Plan",
    "StaticForward",
    "check_input",
    "iter_predicted_blocks",
    "model_hash",
    "plan_blocks",
    "predict_block",
    "read_block_input",
    "read_region",
    "static_forward",
]


class InputValueError(InputError):
    """The input's values cannot be predicted (NaN/Inf, float outside [0, 1] without normalization): a partial
    output is useless then, so :func:`slicewise.infer.predict.predict_to` deletes it."""


@dataclass(frozen=True)
class Plan:
    """Resolved prediction settings for one volume (JSON-ready; with the model hash, the resume fingerprint).

    ``shape``: the input volume (Z, Y, X[, C]); ``roi``: the output region ((z0, z1), (y0, y1), (x0, x1))
    in volume voxels; ``tile``: effective (h, w) tile; ``heads``: (name, start, stop) channel ranges;
    ``normalize``: ``None`` (integers ÷ dtype max, floats taken as in [0, 1]) or the (lo, hi) intensities
    mapped to 0 and 1 (then clipped); ``dtype``: probability storage dtype.
    """

    shape: tuple[int, ...]
    k: int
    dz: int
    border: str
    tile: tuple[int, int]
    overlap: float
    batch_size: int
    tta: bool
    device: str
    heads: tuple[tuple[str, int, int], ...]
    out_channels: int
    channel_names: tuple[str, ...]
    output_kind: str
    dtype: str
    block: tuple[int, int, int]
    roi: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    normalize: tuple[float, float] | None = None
    model_hash: str = field(default="")

    @property
    def n_classes(self) -> int:
        """Number of seg classes (0 if the model has no ``seg`` head)."""
        return next((stop - start for name, start, stop in self.heads if name == "seg"), 0)

    @property
    def colors(self) -> int:
        return int(self.shape[3]) if len(self.shape) == 4 else 1

    @property
    def roi_slices(self) -> Box:
        return tuple(slice(a, b) for a, b in self.roi)  # type: ignore[return-value]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """Spatial shape (Z, Y, X) of the output = the ROI."""
        return tuple(b - a for a, b in self.roi)  # type: ignore[return-value]

    @property
    def offset(self) -> tuple[int, int, int]:
        """Voxel offset (z, y, x) of the output in the source volume."""
        return tuple(a for a, _ in self.roi)  # type: ignore[return-value]

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        def tup(v: Any) -> Any:
            return tuple(tup(x) for x in v) if isinstance(v, list) else v

        known = {f.name for f in fields(cls)}
        return cls(**{k: tup(v) for k, v in d.items() if k in known})

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a partial output to be resumed (device and batch size may change)."""
        d = self.to_json()
        d.pop("device")
        d.pop("batch_size")
        return d


@dataclass(frozen=True)
class Block:
    """Block ``index`` of a plan: its output region ``out`` = (z, y, x) slices in volume coordinates."""

    index: int
    out: Box

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(s.stop - s.start for s in self.out)  # type: ignore[return-value]

    def local(self, origin: Sequence[int]) -> Box:
        """The output region relative to ``origin`` (the ROI start): where the block goes in the output array."""
        return tuple(slice(s.start - o, s.stop - o) for s, o in zip(self.out, origin))  # type: ignore[return-value]


@dataclass(frozen=True)
class InputRegion:
    """The input a block reads: slices ``z``, ``y``, ``x`` of the volume, then ``pad`` = (py, px) pixels of
    bottom/right reflection (only when a plane is smaller than the tile); ``ys``/``xs`` = tile starts
    relative to the region."""

    z: slice
    y: slice
    x: slice
    pad: tuple[int, int]
    ys: tuple[int, ...]
    xs: tuple[int, ...]


def _check_block_shape(block_shape: Sequence[int]) -> tuple[int, int, int]:
    bs = tuple(int(b) for b in block_shape)
    if len(bs) != 3 or min(bs) < 1:
        raise InputError(f"block shape {tuple(block_shape)} must be three sizes >= 1 (z, y, x), e.g. 32,1024,1024")
    return bs  # type: ignore[return-value]


def plan_blocks(
    shape_zyx: Sequence[int],
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    roi: Sequence[slice] | Sequence[tuple[int, int]] | None = None,
) -> list[Block]:
    """Cut the ROI (default the whole volume) into blocks of ``block_shape`` with THE block grid
    (:func:`slicewise.data.grid.block_grid`: C order, clipped to the ROI, anchored at the ROI's start), so block
    ``i`` is exactly chunk ``i`` of an output array chunked by the block shape. Block indices are stable for a
    given (shape, block, roi)."""
    bs = _check_block_shape(block_shape)
    bounds = []
    for axis in range(3):
        n = int(shape_zyx[axis])
        r = None if roi is None else roi[axis]
        a, b = (0, n) if r is None else ((r.start, r.stop) if isinstance(r, slice) else r)
        a, b = (0 if a is None else int(a)), (n if b is None else int(b))
        if not 0 <= a < b <= n:
            raise InputError(
                f"region {a}:{b} on axis {'zyx'[axis]} is not inside 0..{n}: give 0 <= start < stop <= size"
            )
        bounds.append((a, b))
    extent = [b - a for a, b in bounds]
    origin = [a for a, _ in bounds]
    return [Block(i, box) for i, box in enumerate(block_grid(extent, bs, origin))]


def _axis_region(a: int, b: int, size: int, tile: int, overlap: float) -> tuple[int, int, int, tuple[int, ...]]:
    """(read start, read stop, bottom pad, tile starts relative to the read start) for output pixels [a, b)."""
    padded = max(size, tile)
    grid = tile_starts(padded, tile, overlap)
    used = [s for s in grid if s < b and s + tile > a]
    lo, hi = used[0], used[-1] + tile
    return lo, min(hi, size), max(0, hi - size), tuple(s - lo for s in used)


def read_region(block: Block, plan: Plan, shape: Sequence[int] | None = None) -> InputRegion:
    """The input region block ``block`` reads (see the module docstring): z context clipped to the volume,
    y/x from the volume's tile grid. ``shape`` defaults to ``plan.shape``."""
    shape = tuple(plan.shape if shape is None else shape)
    depth = int(shape[0])
    r = (plan.k - 1) // 2 * plan.dz
    zs = block.out[0]
    z = slice(max(0, zs.start - r), min(depth, zs.stop + r))
    y0, y1, py, ys = _axis_region(block.out[1].start, block.out[1].stop, int(shape[1]), plan.tile[0], plan.overlap)
    x0, x1, px, xs = _axis_region(block.out[2].start, block.out[2].stop, int(shape[2]), plan.tile[1], plan.overlap)
    return InputRegion(z, slice(y0, y1), slice(x0, x1), (py, px), ys, xs)


def read_block_input(volume: Any, block: Block, plan: Plan) -> np.ndarray:
    """The raw input of ``block`` (one read of its region, in the volume's dtype): (nz, h, w[, C])."""
    reg = read_region(block, plan)
    return np.asarray(volume[reg.z, reg.y, reg.x])


# ------------------------------------------------------------------------------------------------
# Computing a block (on the device)
# ------------------------------------------------------------------------------------------------


def _unit(t: Any, src_dtype: np.dtype, plan: Plan, what: str) -> Any:
    """Intensities → float32 in [0, 1] on the device, with the value checks a block decides on its own (the
    rule of :func:`slicewise.data.io.check_raw` with ``whole=False``; see :func:`predict_block`)."""
    import torch

    with _as_value_errors():
        dt = intensity_dtype(src_dtype, what)
        if dt.kind == "f":
            x = t.float()
            if not bool(torch.isfinite(x).all()):
                raise InputError(
                    f"{what} contains NaN or Inf values: clean the input (e.g. replace them by 0) before predicting"
                )
            if plan.normalize is None:
                check_intensity_range(dt, float(x.min()), float(x.max()), what, option=NORMALIZE_OPTION, whole=False)
                return x
        elif dt.kind == "b":
            x = t.float()
        else:
            if plan.normalize is None and dt.kind == "i" and t.numel():
                check_intensity_range(dt, int(t.min()), int(t.max()), what, option=NORMALIZE_OPTION, whole=False)
            x = t.float() if plan.normalize is not None else t.float() / float(np.iinfo(dt).max)
            if plan.normalize is None:
                return x
    if plan.normalize is not None:
        lo, hi = plan.normalize
        return ((x - lo) / max(hi - lo, 1e-12)).clamp_(0.0, 1.0)
    return x


def check_input(volume: Any, plan: Plan, normalized: bool | None = None) -> None:
    """Predict's call of the one intensity check (:func:`slicewise.data.io.check_raw`, ``per_block``: every block
    is checked again as it is read, so only integers other than bool/uint8/uint16 are sampled here, for their
    range use; remembered on the Volume): dtype, and unless ``normalized`` (default: whether ``plan.normalize``
    is set) the value rule, with ``--normalize percentile`` as the fix. Raises :class:`InputValueError`, so a
    partial output is deleted."""
    vol = as_volume(volume)
    normalized = plan.normalize is not None if normalized is None else normalized
    with _as_value_errors():
        check_raw(vol, normalized=normalized, option=NORMALIZE_OPTION, what=f"the input {vol.source}", per_block=True)


@contextlib.contextmanager
def _as_value_errors() -> Iterator[None]:
    """Re-raise an :class:`InputError` about the input's values as :class:`InputValueError` (so a partial
    output is deleted)."""
    try:
        yield
    except InputValueError:
        raise
    except InputError as err:
        raise InputValueError(str(err)) from None


def _planes(x: Any, plan: Plan, region: InputRegion) -> Any:
    """(nz, h, w[, C]) float → (nz, C, H, W) padded at the bottom/right by reflection (region.pad)."""
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    py, px = region.pad
    if py:
        x = x.index_select(2, reflect_index(x.shape[2], x.shape[2] + py, x.device))
    if px:
        x = x.index_select(3, reflect_index(x.shape[3], x.shape[3] + px, x.device))
    return x.contiguous()


def _activate(logits: Any, heads: tuple[tuple[str, int, int], ...]) -> Any:
    """Softmax over ``seg``, sigmoid for ``boundary``, identity for the rest (float32)."""
    import torch

    logits = logits.float()
    parts = []
    for name, start, stop in heads:
        x = logits[:, start:stop]
        parts.append(torch.softmax(x, dim=1) if name == "seg" else torch.sigmoid(x) if name == "boundary" else x)
    return torch.cat(parts, dim=1) if parts else logits


def _augmentations(plan: Plan) -> list[tuple[tuple[int, ...], bool]]:
    """(flip dims, z-reverse) pairs: identity only, or flips in H, W, both, each with/without z-reversal."""
    if not plan.tta:
        return [((), False)]
    flips: list[tuple[int, ...]] = [(), (2,), (3,), (2, 3)]
    zrev = [False, True] if plan.k > 1 else [False]
    return [(f, z) for z in zrev for f in flips]


def forward(model: Any, x: Any, plan: Plan) -> Any:
    """Activated model output (float32, on the device) for stacks ``x`` (B, k·C, h, w) in [0, 1], averaged
    over the TTA variants (bf16 autocast and channels_last on CUDA)."""
    import torch

    cuda = plan.device.startswith("cuda")
    colors = x.shape[1] // plan.k
    acc = None
    augs = _augmentations(plan)
    for dims, zrev in augs:
        xi = x
        if zrev:
            xi = xi.reshape(xi.shape[0], plan.k, colors, *xi.shape[2:]).flip(1).reshape(x.shape)
        if dims:
            xi = xi.flip(dims)
        if cuda:
            xi = xi.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda, cache_enabled=False):
            y = model(xi)
        y = _activate(y, plan.heads)
        if dims:
            y = y.flip(dims)
        acc = y if acc is None else acc + y
    assert acc is not None
    return acc / len(augs) if len(augs) > 1 else acc


def block_tiles(block: Block, plan: Plan) -> int:
    """How many tiles (centre slice × window) :func:`compute_block` runs through the network for ``block``."""
    region = read_region(block, plan)
    return block.shape[0] * len(region.ys) * len(region.xs)


def compute_block(
    model: Any, raw: np.ndarray, block: Block, plan: Plan, tick: Callable[[int], None] | None = None
) -> Any:
    """Probabilities ``(C, bz, by, bx)`` float32 **on the device** of ``block`` from its raw input ``raw``
    (as :func:`read_block_input` returns it). ``tick(n)`` is called after each batch of ``n`` tiles (progress
    inside a block, :func:`slicewise.utils.progress.progress_counter`)."""
    import torch

    region = read_region(block, plan)
    dev = torch.device(plan.device)
    what = f"the input (block {block.index}, slices {region.z.start}..{region.z.stop - 1})"
    with torch.inference_mode():
        planes = _planes(_unit(to_device_tensor(raw, dev, pinned=True), raw.dtype, plan, what), plan, region)
        depth = int(plan.shape[0])
        centres = range(block.out[0].start, block.out[0].stop)
        idx = [
            torch.as_tensor(stack_indices(z, depth, plan.k, plan.dz, plan.border) - region.z.start, device=dev)
            for z in centres
        ]
        th, tw = plan.tile
        n, h, w = len(idx), planes.shape[2], planes.shape[3]
        g = torch.from_numpy(np.array(gaussian_weight(plan.tile))).to(dev)
        acc = torch.zeros((n, plan.out_channels, h, w), dtype=torch.float32, device=dev)
        wsum = torch.zeros((h, w), dtype=torch.float32, device=dev)
        windows = [(y, x) for y in region.ys for x in region.xs]
        for y, x in windows:
            wsum[y : y + th, x : x + tw] += g
        jobs = [(i, y, x) for i in range(n) for y, x in windows]
        for b in range(0, len(jobs), plan.batch_size):
            batch = jobs[b : b + plan.batch_size]
            xb = torch.stack([planes[idx[i], :, y : y + th, x : x + tw].reshape(-1, th, tw) for i, y, x in batch])
            yb = forward(model, xb, plan) * g
            for (i, y, x), yi in zip(batch, yb):
                acc[i, :, y : y + th, x : x + tw] += yi
            if tick is not None:
                tick(len(batch))
        oy = block.out[1].start - region.y.start
        ox = block.out[2].start - region.x.start
        by, bx = block.shape[1], block.shape[2]
        out = acc[:, :, oy : oy + by, ox : ox + bx] / wsum[oy : oy + by, ox : ox + bx]
        return out.permute(1, 0, 2, 3).contiguous()


def model_hash(model: Any) -> str:
    """SHA-1 (16 hex) over the model's state dict: part of the resume fingerprint."""
    import torch

    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def prepare_model(model: Any, plan: Plan) -> Any:
    """Eval mode on ``plan.device`` (channels_last on CUDA)."""
    import torch

    model.eval()
    model.to(plan.device)
    if plan.device.startswith("cuda"):
        model.to(memory_format=torch.channels_last)
    return model


class StaticForward:
    """The prediction network called on fixed-shape batches (static shapes let cuDNN and torch.compile reuse
    their plans).

    Every call is padded with zero tiles to ``batch_size`` (the last batch of a block is usually short)
    and cut back, so the network only ever sees one input shape per TTA variant. On that:

    - ``compile``: ``True`` = ``torch.compile(model, dynamic=False)`` (inductor), a string = that backend
      (e.g. ``"aot_eager"``), ``False`` = eager;
    - ``cuda_graphs``: on CUDA each input shape is captured once in a ``torch.cuda.CUDAGraph`` (after two
      warm-up calls on a side stream) and replayed from a static input buffer; with ``compile`` the
      compiler's own graphs are used (``mode="reduce-overhead"``). On CPU it is a no-op with one log line
      (the padding still happens, so the static-shape path is exercised).

    Outputs equal the eager network's up to float round-off of batch composition (tested on CPU; in eval
    mode samples do not interact). Pass it wherever a model is called: :func:`compute_block` /
    :func:`iter_predicted_blocks` only call ``model(x)``.
    """

    def __init__(
        self, model: Any, batch_size: int, device: str, compile: bool | str = False, cuda_graphs: bool = False
    ) -> None:
        import torch

        self.model, self.batch_size = model, int(batch_size)
        self.graphs_on = bool(cuda_graphs) and str(device).startswith("cuda") and torch.cuda.is_available()
        if cuda_graphs and not self.graphs_on:
            log.info(
                "cuda_graphs: no CUDA device (%s): batches run without graphs, padded to %d tiles",
                device,
                self.batch_size,
            )
        net = model
        if compile:
            kwargs: dict[str, Any] = {"dynamic": False}
            if isinstance(compile, str):
                kwargs["backend"] = compile
            elif self.graphs_on:
                kwargs["mode"] = "reduce-overhead"
                self.graphs_on = False  # the compiler captures its own graphs
            net = torch.compile(model, **kwargs)
        self.net = net
        self.graphs: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}

    def _replay(self, x: Any) -> Any:
        import torch

        key = (tuple(x.shape), tuple(x.stride()), x.dtype, torch.is_autocast_enabled("cuda"))
        if key not in self.graphs:
            static_in = torch.empty_strided(x.size(), x.stride(), dtype=x.dtype, device=x.device)
            static_in.copy_(x)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self.net(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.net(static_in)
            self.graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def __call__(self, x: Any) -> Any:
        import torch

        n = x.shape[0]
        if n < self.batch_size:
            channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            x = torch.cat([x, x.new_zeros((self.batch_size - n, *x.shape[1:]))])
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        y = self._replay(x) if self.graphs_on else self.net(x)
        return y[:n]


def static_forward(model: Any, plan: Plan, compile: bool | str = False, cuda_graphs: bool = False) -> Any:
    """``model`` itself when neither flag is set, else a :class:`StaticForward` over it for ``plan``."""
    if not compile and not cuda_graphs:
        return model
    return StaticForward(model, plan.batch_size, plan.device, compile, cuda_graphs)


def predict_block(model: Any, volume: Any, block: Block, plan: Plan) -> np.ndarray:
    """Probabilities ``(C, bz, by, bx)`` float32 of ``block``, reading its own input (one region read, the
    halo included) from ``volume``. The input must pass the intensity check (:func:`check_input`: run once per
    :class:`~slicewise.data.io.Volume` and remembered on it, so dask workers check their volume once; other
    array-likes get the per-block checks only); violations raise a one-line :class:`InputError`."""
    if isinstance(volume, Volume):
        check_input(volume, plan)
    return compute_block(model, read_block_input(volume, block, plan), block, plan).cpu().numpy()


def iter_predicted_blocks(
    model: Any,
    volume: Any,
    blocks: Iterable[Block],
    plan: Plan,
    read: Callable[[Any, Block, Plan], np.ndarray] = read_block_input,
    tick: Callable[[int], None] | None = None,
) -> Iterator[tuple[Block, np.ndarray]]:
    """Yield ``(block, probabilities (C, bz, by, bx) float32)`` for ``blocks`` in order, pipelined: the next
    block's input is read on a background thread while this one computes, and on CUDA each result is copied
    back on a side stream into pinned memory while the next block runs (synchronous on CPU). The input passes
    :func:`check_input` before the first block is read. ``tick``: as in :func:`compute_block`."""
    import torch

    blocks = list(blocks)
    if not blocks:
        return
    check_input(volume, plan)
    cuda = plan.device.startswith("cuda") and torch.cuda.is_available()
    side = torch.cuda.Stream() if cuda else None
    pending: tuple[Block, Any, Any] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="slicewise-read") as pool:
        nxt = pool.submit(read, volume, blocks[0], plan)
        for j, block in enumerate(blocks):
            raw = nxt.result()
            if j + 1 < len(blocks):
                nxt = pool.submit(read, volume, blocks[j + 1], plan)
            out = compute_block(model, raw, block, plan, tick)
            if side is None:
                yield block, out.cpu().numpy()
                continue
            ready = torch.cuda.Event()
            ready.record()
            host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
            with torch.cuda.stream(side):
                side.wait_event(ready)
                host.copy_(out, non_blocking=True)
                out.record_stream(side)
                copied = torch.cuda.Event()
                copied.record(side)
            if pending is not None:
                pending[2].synchronize()
                yield pending[0], pending[1].numpy()
            pending = (block, host, copied)
    if pending is not None:
        pending[2].synchronize()
        yield pending[0], pending[1].numpy()


def sample_percentiles(
    volume: Any, plan: Plan, n_blocks: int = 16, seed: int = 0, q: tuple[float, float] = NORMALIZE_PERCENTILES
) -> tuple[float, float]:
    """The ``q`` percentiles of the volume's finite intensities, estimated from ``n_blocks`` blocks of up to
    8×256×256 voxels drawn with a seeded generator from the whole volume (not the ROI, so a ROI run and a
    whole-volume run normalize alike). The input first passes :func:`check_input` (its dtype; NaN/Inf are refused
    per block)."""
    check_input(volume, plan, normalized=True)
    shape = tuple(int(s) for s in plan.shape[:3])
    grid = plan_blocks(shape, (min(8, shape[0]), min(256, shape[1]), min(256, shape[2])))
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(grid), size=min(n_blocks, len(grid)), replace=False).tolist())
    values = [np.asarray(volume[grid[i].out], dtype=np.float64).ravel() for i in chosen]
    v = np.concatenate(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise InputError("the input has no finite values in the sampled blocks: check the file (all NaN/Inf?)")
    lo, hi = (float(p) for p in np.percentile(v, q))
    if not math.isfinite(hi - lo) or hi <= lo:
        hi = lo + 1.0
    return lo, hi
