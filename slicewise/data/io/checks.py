"""Input checks and summaries: :func:`check_raw` (the one intensity check: dtype, NaN/Inf, value range; on a
bounded sample), :func:`check_labels` and :func:`summarize_volume` (chunk by chunk). Damaged files:
:mod:`slicewise.data.io.integrity`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slicewise.data.io.coerce import as_volume
from slicewise.data.io.volume import Volume
from slicewise.errors import InputError

UNIT_TOLERANCE = 1e-6  # float intensities may exceed [0, 1] by round-off only
RANGE_FRACTION = 256  # integers (beyond uint8/uint16) must reach 1/256 of their dtype maximum
FULL_SCAN_BYTES = 256 << 20  # check_raw scans volumes up to this size whole, larger ones by a sample
SAMPLE_BLOCKS = 16
SAMPLE_BLOCK = (8, 256, 256)
_NO_VALUE_RULE = (np.dtype(np.uint8), np.dtype(np.uint16))  # ÷ dtype maximum is right for any of their values


def _option_fix(option: str | None) -> str:
    """The ", or pass <option> ..." tail of a message, when the command offers percentile normalization."""
    return f", or pass {option} to map its 0.1–99.9th percentiles to [0, 1]" if option else ""


def intensity_dtype(dtype: Any, what: str) -> np.dtype:
    """``dtype`` if it holds intensities (bool, integers, float up to 64 bit), else a one-line :class:`InputError`
    (complex, strings, objects, dates, float128)."""
    dt = np.dtype(dtype)
    if dt.kind in "biu" or (dt.kind == "f" and dt.itemsize <= 8):
        return dt
    if dt.kind == "f":
        raise InputError(f"{what} has dtype {dt}: floats wider than 64 bit are not supported: save it as float32")
    raise InputError(
        f"{what} has dtype {dt}: expected integer or float intensities: save it as uint8, uint16 or float32 in [0, 1]"
    )


def check_intensity_range(
    dtype: Any,
    lo: float,
    hi: float,
    what: str,
    *,
    normalized: bool = False,
    option: str | None = None,
    whole: bool = True,
) -> None:
    """The intensity rule on the finite range ``lo..hi`` of a volume (``whole``: a sample standing for the
    volume) or of one block being read (``whole=False``: only the rules a block decides on its own).

    Without normalization (``normalized=False``) integers are divided by their dtype maximum and floats
    are taken as they are (:func:`slicewise.data.stacking.to_unit_float`), so the rule refuses what that
    would silently crush:

    - float outside [0, 1] (±1e-6 round-off);
    - integers other than bool/uint8/uint16 holding negative values;
    - integers other than bool/uint8/uint16 whose maximum is under 1/256 of the dtype maximum (``whole``
      only: a single dark block says nothing), e.g. int64 or int32 holding 0..255 — the network would see
      an almost black image.

    With normalization (percentile mapping) only the dtype and NaN/Inf rules apply. ``option``: the
    command's switch for percentile normalization (named in the fix), ``None`` where it has none.
    """
    dt = np.dtype(dtype)
    if normalized:
        return
    if dt.kind == "f":
        if lo < -UNIT_TOLERANCE or hi > 1.0 + UNIT_TOLERANCE:
            raise InputError(
                f"{what} is float with values {lo:.4g}..{hi:.4g} outside [0, 1]: rescale it to [0, 1]"
                + (_option_fix(option) if option else " or save it as uint8 (0..255) / uint16 (0..65535)")
            )
        return
    if dt.kind not in "iu" or dt in _NO_VALUE_RULE:
        return
    top = int(np.iinfo(dt).max)
    lo, hi = int(lo), int(hi)
    if lo < 0:
        raise InputError(
            f"{what} is {dt} with negative values (min {lo}): integer intensities are divided by the {dt} "
            f"maximum ({top}), so negative values are not intensities: shift and save it as uint8 (0..255) "
            f"or uint16 (0..65535){_option_fix(option)}"
        )
    if whole and hi * RANGE_FRACTION < top:
        cast = (
            "save it as uint8"
            if hi <= 255
            else "save it as uint16"
            if hi <= 65535
            else "rescale it to uint16 (0..65535)"
        )
        raise InputError(
            f"{what} is {dt} with values {lo}..{hi}, under 1/{RANGE_FRACTION} of the {dt} maximum ({top}) "
            f"that integer intensities are divided by, so the network would see an almost black image: "
            f"{cast}{_option_fix(option)}"
        )


def _check_finite(block: np.ndarray, what: str, z0: int | None = None) -> None:
    """NaN/Inf in a float block (axis 0 = z from ``z0``, named in the message when given) → one-line error."""
    if block.dtype.kind != "f":
        return
    bad = ~np.isfinite(block)
    if bad.any():
        at = f" (first at slice z={z0 + int(np.argwhere(bad)[0][0])})" if z0 is not None else ""
        raise InputError(f"{what} contains NaN or Inf values{at}: replace or mask them (e.g. by 0) before use")


def check_block(block: Any, what: str, *, normalized: bool = False, option: str | None = None) -> None:
    """The part of :func:`check_raw` one block (or tile) being read decides on its own: dtype, NaN/Inf and
    :func:`check_intensity_range` with ``whole=False``. For commands that check what they read as they go."""
    a = np.asarray(block)
    dt = intensity_dtype(a.dtype, what)
    if a.size == 0 or dt.kind == "b":
        return
    _check_finite(a, what)
    lo, hi = a.min(), a.max()
    check_intensity_range(dt, lo.item(), hi.item(), what, normalized=normalized, option=option, whole=False)


def _sample(vol: Volume, seed: int = 0) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """The blocks :func:`check_raw` reads: the whole volume (in ~64 MB slabs) when it is in memory or at most
    :data:`FULL_SCAN_BYTES`, else :data:`SAMPLE_BLOCKS` seeded blocks of up to 8×256×256 voxels."""
    in_memory = isinstance(getattr(vol, "_array", None), np.ndarray)
    if in_memory or vol.size * vol.dtype.itemsize <= FULL_SCAN_BYTES:
        yield from vol.iter_chunks()
        return
    shape = vol.shape[:3]
    step = tuple(min(b, n) for b, n in zip(SAMPLE_BLOCK, shape))
    counts = [-(-n // s) for n, s in zip(shape, step)]
    total = counts[0] * counts[1] * counts[2]
    rng = np.random.default_rng(seed)
    for i in sorted(rng.choice(total, size=min(SAMPLE_BLOCKS, total), replace=False).tolist()):
        iz, rest = divmod(i, counts[1] * counts[2])
        iy, ix = divmod(rest, counts[2])
        sl = tuple(slice(j * s, min(j * s + s, n)) for j, s, n in zip((iz, iy, ix), step, shape))
        yield sl, vol[sl]


def check_raw(
    volume: Any,
    *,
    normalized: bool = False,
    option: str | None = None,
    what: str | None = None,
    per_block: bool = False,
) -> Volume:
    """The one check of raw intensities, run by every command that reads them before any expensive work;
    returns the volume as a :class:`Volume`.

    Refuses, in one line: an empty volume; a dtype that does not hold intensities (:func:`intensity_dtype`:
    complex, strings, ...); NaN/Inf; and values the intensity convention would silently crush
    (:func:`check_intensity_range`: float outside [0, 1]; integers other than bool/uint8/uint16 with negative
    values or a maximum under 1/256 of their dtype maximum) unless ``normalized`` (the command maps
    percentiles to [0, 1]). ``option``: the command's switch that turns percentile normalization on, named in
    the fix (``None``: the command has none, the fix is to convert the file). ``what``: how messages name it.
    ``per_block``: the caller checks every block it reads (NaN/Inf and :func:`check_intensity_range` with
    ``whole=False``, as prediction does), so only what no single block decides is read here: the range use of
    integers other than bool/uint8/uint16 without normalization; nothing is read for other dtypes. Nothing is
    read either for bool, uint8 and uint16 (no value of theirs is refused) or for integers under normalization.

    Bounded reads: a volume in memory or of at most :data:`FULL_SCAN_BYTES` is scanned whole, chunk by
    chunk; a larger (lazy) one through :data:`SAMPLE_BLOCKS` seeded blocks; predict and the audits then
    check every block or tile they read with the same rule (``whole=False``). A passed check is remembered
    on the Volume, so calling it again with the same settings reads nothing.
    """
    vol = as_volume(volume)
    what = what or f"raw volume {vol.source}"
    if vol.size == 0:
        raise InputError(f"{what} is empty (shape {vol.shape}): check the file and key")
    dt = intensity_dtype(vol.dtype, what)
    key = (normalized, option)
    if key in vol.intensity_checks:
        return vol
    if dt.kind == "b" or dt in _NO_VALUE_RULE or (normalized and dt.kind in "iu"):
        vol.intensity_checks.add(key)  # no value of these can be refused: nothing to read
        return vol
    if per_block and dt.kind == "f":
        return vol
    lo = hi = None
    for sl, block in _sample(vol):
        if block.size == 0:
            continue
        _check_finite(block, what, z0=sl[0].start)
        bmin, bmax = block.min(), block.max()
        lo = bmin if lo is None else min(lo, bmin)
        hi = bmax if hi is None else max(hi, bmax)
    if lo is not None and hi is not None:
        check_intensity_range(dt, lo.item(), hi.item(), what, normalized=normalized, option=option)
    vol.intensity_checks.add(key)
    return vol


def _check_label_layout(lab: Volume, raw_shape: Sequence[int] | None) -> None:
    """Non-empty, one value per voxel, the raw volume's Z×Y×X shape, numeric dtype."""
    if lab.size == 0:
        raise InputError(f"label volume {lab.source} is empty (shape {lab.shape})")
    if lab.ndim != 3:
        raise InputError(
            f"labels {lab.source} have shape {lab.shape}: expected one value per voxel (Z×Y×X), "
            f"not {lab.shape[-1]} channels"
        )
    if raw_shape is not None and tuple(raw_shape[:3]) != lab.shape:
        raw_zyx = tuple(raw_shape[:3]) if len(raw_shape) >= 3 else tuple(raw_shape)
        raise InputError(
            f"labels {lab.source} have shape {lab.shape} but the raw volume is {raw_zyx}: "
            f"they must match voxel for voxel"
        )
    if not (np.issubdtype(lab.dtype, np.number) or lab.dtype == bool):
        raise InputError(f"labels {lab.source} have dtype {lab.dtype}: expected integers")


def _check_label_block(source: str, z0: int, block: np.ndarray, kind: str) -> None:
    """Whole-number values (float labels) and non-negative ids (instances) in one block starting at slice ``z0``."""
    if np.issubdtype(block.dtype, np.floating):
        bad = ~np.isfinite(block) | (block != np.round(block))
        if bad.any():
            z = z0 + int(np.argwhere(bad)[0][0])
            what = "instance ids" if kind == "instance" else "class labels"
            raise InputError(
                f"labels {source} are float with non-integer values (first at slice z={z}) "
                f"where {what} are expected: threshold probabilities or cast ids to integers"
            )
    if kind == "instance" and block.size and block.min() < 0:
        raise InputError(f"labels {source} hold negative ids: instance ids must be >= 0 (0 = background)")


def check_labels(
    labels: Any, raw_shape: Sequence[int] | None = None, kind: str = "semantic", n_classes: int | None = None
) -> Volume:
    """Check a label volume against its raw volume and the task; returns it as a Volume.

    ``kind`` is ``"semantic"`` (class values; at most ``n_classes`` distinct values, any values,
    e.g. ISBI's {0, 255}) or ``"instance"`` (integer ids, 0 = background). Float labels are
    accepted only when every value is a whole number. Checks run chunk by chunk.
    """
    if kind not in ("semantic", "instance"):
        raise InputError(f"label kind {kind!r} is unknown: use 'semantic' or 'instance'")
    lab = as_volume(labels)
    _check_label_layout(lab, raw_shape)
    count = n_classes is not None and kind == "semantic"
    values: set[int] = set()
    for sl, block in lab.iter_chunks():
        _check_label_block(lab.source, sl[0].start, block, kind)
        if count:
            values.update(int(v) for v in np.unique(block))
            if len(values) > n_classes:  # type: ignore[operator]
                shown = ", ".join(map(str, sorted(values)[:8])) + (", ..." if len(values) > 8 else "")
                raise InputError(
                    f"labels {lab.source} hold more than {n_classes} distinct values ({shown}) "
                    f"but n_classes={n_classes}: raise n_classes or relabel"
                )
    return lab


@dataclass
class _Scan:
    """Running summary of a volume's blocks: finite range, non-finite counts, distinct whole values (up to
    ``max_distinct`` + a block), and how often neighbours along X are equal."""

    dtype: np.dtype
    max_distinct: int
    lo: Any = None
    hi: Any = None
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    distinct: set[Any] = field(default_factory=set)
    same: int = 0
    pairs: int = 0

    def add(self, block: np.ndarray) -> None:
        is_float = np.issubdtype(self.dtype, np.floating)
        if is_float:
            self.nan += int(np.count_nonzero(np.isnan(block)))
            self.posinf += int(np.count_nonzero(np.isposinf(block)))
            self.neginf += int(np.count_nonzero(np.isneginf(block)))
        finite = block[np.isfinite(block)] if is_float else block
        if finite.size:
            bmin, bmax = finite.min(), finite.max()
            self.lo = bmin if self.lo is None else min(self.lo, bmin)
            self.hi = bmax if self.hi is None else max(self.hi, bmax)
        is_int = np.issubdtype(self.dtype, np.integer) or self.dtype == bool
        integral = is_int or (is_float and finite.size and bool(np.all(finite == np.round(finite))))
        if integral and len(self.distinct) <= self.max_distinct:
            self.distinct.update(np.unique(finite).tolist())
        if block.shape[2] > 1:
            self.same += int(np.count_nonzero(block[:, :, 1:] == block[:, :, :-1]))
            self.pairs += block[:, :, 1:].size

    def looks_like(self) -> str:
        """``"image"``, ``"semantic labels"`` (≤ 16 values), ``"instance labels"`` (many values, constant
        over regions)."""
        n = len(self.distinct) if self.distinct else None
        smooth = self.same / self.pairs if self.pairs else 1.0
        if n is None:
            return "image"
        if n <= 16:
            return "semantic labels" if n > 1 or self.dtype != np.uint8 else "semantic labels (constant)"
        return "instance labels" if smooth > 0.8 else "image"


def _item(v: Any) -> Any:
    return None if v is None else v.item() if hasattr(v, "item") else v


def summarize_volume(volume: Any, max_distinct: int = 1 << 16) -> dict[str, Any]:
    """Shape, dtype, value range, voxel size and a label summary of a volume, read chunk by chunk.

    ``min``/``max`` are over the finite values; ``nan``, ``posinf`` and ``neginf`` count the
    non-finite ones (always 0 for integer volumes), so a range never hides them.

    ``looks_like`` is a heuristic: ``"image"`` (float, or many values varying pixel to pixel),
    ``"semantic labels"`` (integers with at most 16 distinct values) or ``"instance labels"``
    (many integer values that are constant over regions).
    """
    vol = as_volume(volume)
    scan = _Scan(vol.dtype, max_distinct)
    for _, block in vol.iter_chunks(desc="scanning"):
        if block.size:
            scan.add(block)
    n = len(scan.distinct) if scan.distinct else None
    return {
        "source": vol.source,
        "shape": vol.shape,
        "dtype": str(vol.dtype),
        "channels": vol.channels,
        "min": _item(scan.lo),
        "max": _item(scan.hi),
        "nan": scan.nan,
        "posinf": scan.posinf,
        "neginf": scan.neginf,
        "voxel_size": vol.voxel_size,
        "distinct_values": None if n is None else (n if n <= max_distinct else f">{max_distinct}"),
        "looks_like": scan.looks_like(),
        "values": sorted(scan.distinct)[:16] if n is not None and n <= 16 else None,
    }
