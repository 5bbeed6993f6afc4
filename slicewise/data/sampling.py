"""Training patches: train/validation splits by z-range and a seeded 2.5D patch sampler.

Conventions
-----------
- A *volume* is Z×Y×X (gray) or Z×Y×X×C (color, C last) with labels Z×Y×X. A 2-D image set
  (e.g. MoNuSeg) is a **list of volumes of depth 1** (``k = 1``); 2-D arrays (H×W labels) are
  promoted to depth 1 automatically. The sampler's *items* are ``(volume index, centre z)``
  pairs, so for a 2-D image set an item is one image.
- Patches are built by :func:`slicewise.data.stacking.stack_slices` only: ``x`` has shape
  ``(k·C, ph, pw)`` in the raw dtype (convert with ``to_unit_float`` on the device), ``y`` is the
  label crop of the centre slice ``(ph, pw)``.
- A patch larger than an image raises a one-line :class:`InputError` (no padding): pick a
  smaller patch or pad the data yourself.
- Determinism: every random draw comes from a ``numpy.random.Generator`` passed in;
  :class:`PatchDataset` item ``i`` is a function of ``(seed, epoch, i)`` only, so the patches do
  not depend on the number of DataLoader workers or the order they run in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from slicewise.data.augment import apply_intensity, dihedral, draw_geometry, draw_intensity, intensity_chain
from slicewise.data.stacking import (
    check_stack_params,
    crop_gather,
    crop_views,
    stack_index_tensor,
    stack_slices,
    to_device_tensor,
    to_unit_float,
    valid_centres,
)
from slicewise.errors import InputError


def split_z(
    depth: int,
    k: int = 3,
    dz: int = 1,
    val_fraction: float = 0.2,
    val_range: tuple[int, int] | None = None,
    border: str = "reflect",
    test_range: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split the centre slices of one volume into training and validation centres by z-range.

    Validation takes ``val_range = (z0, z1)`` (centres ``z0 … z1-1``) or, by default, the last
    ``round(val_fraction · depth)`` slices (at least 1 when ``val_fraction > 0``). A **gap of
    r·d slices** (``r = (k-1)/2``, ``d = dz``) on each side of the validation range is dropped from
    training: training centres satisfy ``z <= z0 - r·d - 1`` or ``z >= z1 + r·d``. Every stack
    reads only slices within ``[z - r·d, z + r·d]`` — ``reflect`` and ``replicate`` map indices
    outside the volume back *into* that window — so under every border policy no context slice
    of a validation centre is a training centre, and no context slice of a training centre is
    a validation centre. Under ``border="skip"`` centres without full context are left out of both.

    ``test_range = (t0, t1)`` holds slices t0 … t1-1 out of both: no training or validation centre lies
    within r·d slices of them, so no training or validation stack reads a test slice (a test score is
    then free of training and of model selection).

    Returns ``(train_centres, val_centres)`` as sorted int64 arrays; ``val_fraction=0`` gives an
    empty validation set. Raises :class:`InputError` when no training centre is left.
    """
    r = check_stack_params(depth, k, dz, border)
    gap = r * dz
    if val_range is not None:
        z0, z1 = (int(v) for v in val_range)
        if not 0 <= z0 < z1 <= depth:
            raise InputError(f"val_range={tuple(val_range)} must satisfy 0 <= z0 < z1 <= depth={depth}")
    else:
        if not 0.0 <= val_fraction < 1.0:
            raise InputError(f"val_fraction={val_fraction} must be in [0, 1)")
        n_val = int(round(val_fraction * depth))
        n_val = max(n_val, 1) if val_fraction > 0 else 0
        z0, z1 = depth - n_val, depth
    centres = valid_centres(depth, k, dz, border)
    if z1 <= z0 and test_range is None:
        return centres.astype(np.int64), np.zeros(0, np.int64)
    val = centres[(centres >= z0) & (centres < z1)]
    train = centres[(centres <= z0 - gap - 1) | (centres >= z1 + gap)] if z1 > z0 else centres
    if test_range is not None:
        t0, t1 = (int(v) for v in test_range)
        if not 0 <= t0 < t1 <= depth:
            raise InputError(f"test_range={tuple(test_range)} must satisfy 0 <= t0 < t1 <= depth={depth}")
        train, val = (c[(c < t0 - gap) | (c >= t1 + gap)] for c in (train, val))
    if train.size == 0:
        raise InputError(
            f"no training slices left: depth {depth}, validation z {z0}-{z1 - 1} and a gap of {gap} slices "
            f"(k={k}, d={dz}) on each side: lower val_fraction, k or the z-step"
        )
    return train.astype(np.int64), val.astype(np.int64)


def subset_count(n_items: int, train_fraction: float | None = None, train_count: int | None = None) -> int:
    """How many of ``n_items`` a data-size setting keeps: ``train_count`` items, or
    ``round(train_fraction · n)`` (at least 1), or all when both are ``None``."""
    if train_fraction is not None and train_count is not None:
        raise InputError("give train_fraction or train_count, not both")
    if train_count is not None:
        if not 1 <= int(train_count) <= n_items:
            raise InputError(f"train_count={train_count} must be between 1 and the {n_items} training items")
        return int(train_count)
    if train_fraction is not None:
        if not 0.0 < float(train_fraction) <= 1.0:
            raise InputError(f"train_fraction={train_fraction} must be in (0, 1]")
        return max(1, int(round(float(train_fraction) * n_items)))
    return n_items


def _as_volume_list(raw: Any, labels: Any) -> tuple[list[Any], list[Any]]:
    """Normalize one volume or a list of volumes (and their labels) to lists of depth-≥1 arrays."""
    if isinstance(raw, (list, tuple)):
        if not isinstance(labels, (list, tuple)) or len(labels) != len(raw):
            raise InputError("give as many label volumes as raw volumes (two lists of equal length)")
        raws, labs = list(raw), list(labels)
    else:
        raws, labs = [raw], [labels]
    if not raws:
        raise InputError("no volumes given to sample from")
    out_r, out_l = [], []
    for i, (r, lab) in enumerate(zip(raws, labs)):
        if len(lab.shape) == 2:  # a 2-D image: promote to depth 1
            r, lab = np.asarray(r)[None], np.asarray(lab)[None]
        if len(lab.shape) != 3 or tuple(r.shape[:3]) != tuple(lab.shape) or len(r.shape) not in (3, 4):
            raise InputError(
                f"volume {i}: raw shape {tuple(r.shape)} does not match labels {tuple(lab.shape)}: "
                "expected raw Z×Y×X or Z×Y×X×C with labels Z×Y×X"
            )
        out_r.append(r)
        out_l.append(lab)
    return out_r, out_l


def _as_extra_lists(extras: Mapping[str, Any] | None, labels: list[Any]) -> dict[str, list[Any]]:
    """Each extra volume (or list of them, one per volume) as a list shaped like ``labels``."""
    out: dict[str, list[Any]] = {}
    for name, ex in (extras or {}).items():
        vols = list(ex) if isinstance(ex, (list, tuple)) else [ex]
        if len(vols) != len(labels):
            raise InputError(f"extra {name!r}: give one volume per label volume ({len(vols)} for {len(labels)})")
        vols = [np.asarray(e)[None] if len(e.shape) == 2 else e for e in vols]
        for i, (e, lab) in enumerate(zip(vols, labels)):
            if tuple(e.shape) != tuple(lab.shape):
                raise InputError(
                    f"extra {name!r} of volume {i} has shape {tuple(e.shape)}, the labels {tuple(lab.shape)}: "
                    f"they must match"
                )
        out[str(name)] = vols
    return out


class PatchSampler:
    """Seeded random 2.5D training patches from one volume or a list of volumes.

    ``raw``, ``labels``: one volume (Z×Y×X[×C] and Z×Y×X) or lists of them (a 2-D image set is
    a list of depth-1 volumes). ``centres``: centre slices to sample (an array for one volume,
    a list of arrays for a list; ``None`` → all valid centres), e.g. the training part of
    :func:`split_z`. ``patch`` (ph, pw) pixels. ``k``, ``dz``, ``border`` as in
    :func:`stack_slices`.

    ``foreground_fraction``: probability that a patch is centered (± a quarter patch) on a random
    foreground pixel of its centre slice — pixels whose label is in ``foreground_classes``
    (default: every nonzero label); slices without foreground fall back to a uniform crop.

    ``train_fraction`` / ``train_count`` keep a seeded subset of the items (``seed`` picks it;
    the subsets for one seed are nested: the 10% subset lies inside the 25% subset). Items are
    ``(volume, z)`` pairs, so for a 2-D image set the subset is over images.

    ``extras``: named label-like volumes shaped like ``labels`` (one each, or a list per volume
    for a list), e.g. instance ids; their centre slice is cropped at the same place as ``y`` and
    :meth:`sample_one` / :meth:`sample` then return ``(x, y, {name: crop})``.
    """

    def __init__(
        self,
        raw: Any,
        labels: Any,
        centres: Sequence[int] | np.ndarray | Sequence[Sequence[int]] | None = None,
        patch: tuple[int, int] = (256, 256),
        k: int = 3,
        dz: int = 1,
        border: str = "reflect",
        foreground_fraction: float = 0.0,
        foreground_classes: Sequence[int] | None = None,
        train_fraction: float | None = None,
        train_count: int | None = None,
        seed: int = 0,
        extras: Mapping[str, Any] | None = None,
    ) -> None:
        self.raws, self.labels = _as_volume_list(raw, labels)
        self.extras = _as_extra_lists(extras, self.labels)
        self.patch = (int(patch[0]), int(patch[1]))
        self.k, self.dz, self.border = int(k), int(dz), border
        if not 0.0 <= foreground_fraction <= 1.0:
            raise InputError(f"foreground_fraction={foreground_fraction} must be in [0, 1]")
        self.foreground_fraction = float(foreground_fraction)
        self.foreground_classes = None if foreground_classes is None else np.asarray(list(foreground_classes))
        ph, pw = self.patch
        if ph < 1 or pw < 1:
            raise InputError(f"patch size {self.patch} must be positive")
        per_volume = self._centres_per_volume(centres)
        items = []
        for v, (r, zs) in enumerate(zip(self.raws, per_volume)):
            depth, height, width = (int(s) for s in r.shape[:3])
            if ph > height or pw > width:
                raise InputError(
                    f"patch {ph}x{pw} is larger than volume {v} ({height}x{width} in-plane): "
                    f"use a patch of at most {height}x{width}"
                )
            allowed = set(valid_centres(depth, self.k, self.dz, border).tolist())
            bad = [int(z) for z in zs if int(z) not in allowed]
            if bad:
                raise InputError(
                    f"centres {bad[:5]} of volume {v} are outside the volume or lack context under border={border!r}"
                )
            items.extend((v, int(z)) for z in zs)
        if not items:
            raise InputError("no training centres to sample from")
        all_items = np.asarray(items, dtype=np.int64)
        count = subset_count(len(all_items), train_fraction, train_count)
        keep = np.sort(np.random.default_rng(seed).permutation(len(all_items))[:count])
        self.items: np.ndarray = all_items[keep]

    def _centres_per_volume(self, centres: Any) -> list[np.ndarray]:
        if centres is None:
            return [valid_centres(int(r.shape[0]), self.k, self.dz, self.border) for r in self.raws]
        if len(self.raws) == 1 and np.ndim(centres) == 1 and not any(np.ndim(c) for c in centres):
            return [np.asarray(centres, dtype=np.int64)]
        if len(centres) != len(self.raws):
            raise InputError(f"give one centre list per volume: {len(centres)} lists for {len(self.raws)} volumes")
        return [np.asarray(c, dtype=np.int64).reshape(-1) for c in centres]

    def __len__(self) -> int:
        """Number of items (``(volume, z)`` centres) the sampler draws from."""
        return len(self.items)

    def _foreground_mask(self, label_slice: np.ndarray) -> np.ndarray:
        if self.foreground_classes is None:
            return label_slice != 0
        return np.isin(label_slice, self.foreground_classes)

    def _crop_origin(self, v: int, z: int, rng: np.random.Generator) -> tuple[int, int]:
        height, width = (int(s) for s in self.raws[v].shape[1:3])
        ph, pw = self.patch
        if self.foreground_fraction > 0 and rng.random() < self.foreground_fraction:
            fg = np.flatnonzero(self._foreground_mask(np.asarray(self.labels[v][z])))
            if fg.size:
                py, px = np.unravel_index(fg[rng.integers(fg.size)], (height, width))
                jy, jx = rng.integers(-(ph // 4), ph // 4 + 1), rng.integers(-(pw // 4), pw // 4 + 1)
                y0 = int(np.clip(py - ph // 2 + jy, 0, height - ph))
                x0 = int(np.clip(px - pw // 2 + jx, 0, width - pw))
                return y0, x0
        return int(rng.integers(0, height - ph + 1)), int(rng.integers(0, width - pw + 1))

    def sample_one(self, rng: np.random.Generator) -> tuple[Any, ...]:
        """One patch: ``x`` (k·C, ph, pw) raw dtype, ``y`` (ph, pw) label of the centre slice
        (and ``{name: (ph, pw) crop}`` of the extras when there are any)."""
        v, z = (int(t) for t in self.items[rng.integers(len(self.items))])
        y0, x0 = self._crop_origin(v, z, rng)
        ys, xs = slice(y0, y0 + self.patch[0]), slice(x0, x0 + self.patch[1])
        x = np.asarray(stack_slices(self.raws[v], z, self.k, self.dz, self.border, yx=(ys, xs)))
        y = np.asarray(self.labels[v][z, ys, xs])
        if not self.extras:
            return x, y
        return x, y, {name: np.asarray(vols[v][z, ys, xs]) for name, vols in self.extras.items()}

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> tuple[Any, ...]:
        """``n`` patches: ``x`` (n, k·C, ph, pw) raw dtype, ``y`` (n, ph, pw) (and ``{name: (n, ph, pw)}``
        of the extras when there are any); ``rng`` a Generator or seed."""
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        items = [self.sample_one(rng) for _ in range(int(n))]
        if items:
            x, y = np.stack([p[0] for p in items]), np.stack([p[1] for p in items])
            extra = {name: np.stack([p[2][name] for p in items]) for name in self.extras}
        else:
            ph, pw = self.patch
            channels = self.k * (int(self.raws[0].shape[3]) if len(self.raws[0].shape) == 4 else 1)
            x, y = np.zeros((0, channels, ph, pw), self.raws[0].dtype), np.zeros((0, ph, pw), self.labels[0].dtype)
            extra = {name: np.zeros((0, ph, pw), vols[0].dtype) for name, vols in self.extras.items()}
        return (x, y, extra) if self.extras else (x, y)


class PatchDataset(Dataset):
    """A map-style ``torch.utils.data.Dataset`` of ``length`` random patches from ``sampler``.

    Item ``i`` is ``sampler.sample_one(numpy.random.default_rng([seed, 0, i]))`` — a pure
    function of ``(seed, i)``, hence identical for any number of DataLoader workers. Training makes
    the dataset as long as the whole run (steps × batch × ranks), so no patch is drawn twice and
    there are no epochs to reseed. Items are numpy ``(x, y)`` (``(x, y, extras)``
    with extras); the default collate makes ``(B, k·C, ph, pw)`` and ``(B, ph, pw)`` tensors in the
    raw / label dtypes.
    """

    def __init__(self, sampler: PatchSampler, length: int, seed: int = 0) -> None:
        if int(length) < 1:
            raise InputError(f"dataset length={length} must be >= 1")
        self.sampler, self.length, self.seed = sampler, int(length), int(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Any:
        if not 0 <= int(i) < self.length:
            raise IndexError(i)
        # the middle 0 (once an epoch number, always 0 in training) keeps the patches of earlier runs
        return self.sampler.sample_one(np.random.default_rng([self.seed, 0, int(i)]))


def sample_seed(seed: int, step: int, rank: int = 0) -> int:
    """Seed of the device sampler's generator for optimizer ``step`` on ``rank``: a SeedSequence hash of
    ``(seed, step, rank)``, so every rank has its own stream and a resumed run redraws the same patches."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank), 0x5A4D]).generate_state(1, np.uint64)[0] >> 1)


def _label_tensor_dtype(labels: list[Any]) -> Any:
    import torch

    lo = min(int(np.min(lab)) for lab in labels)
    hi = max(int(np.max(lab)) for lab in labels)
    if 0 <= lo and hi < 256:
        return torch.uint8
    if -(2**15) <= lo and hi < 2**15:
        return torch.int16
    return torch.int32


class DevicePatchSampler:
    """Device-resident :class:`PatchSampler`: the volume and its labels live on ``device`` (raw in its own
    dtype, uint8 for EM; labels uint8 when the classes fit), and a whole batch is drawn, cropped and stacked
    there with a ``torch.Generator`` on that device — no per-sample Python, no host→device copies per step.

    It takes a :class:`PatchSampler`'s validated items (the ``split_z`` centres with their r·dz gap, the
    nested ``train_fraction`` subset), patch size, k, dz, border and foreground settings, and draws from the
    **same distribution** as :meth:`PatchSampler.sample_one` (exact equality is impossible: numpy's PCG64
    per item vs one torch stream per batch):

    - item: uniform over the items;
    - with probability ``foreground_fraction``: a foreground pixel of the item's centre slice chosen
      uniformly (the r-th foreground pixel in row-major order, r uniform; located through per-row
      cumulative counts, so no index list is stored), jittered by ±patch//4 and clipped, as the numpy
      sampler does; a slice without foreground falls back to a uniform crop;
    - otherwise a uniform origin.

    Given the same item and origin, the patch is the numpy sampler's patch exactly (both go through
    :func:`slicewise.data.stacking.stack_slices`; tested). Supported: one volume, or a list of depth-1
    images of one in-plane size (a 2-D image set, k = 1); no extras (boundary / distance targets are
    computed on the host). Other inputs raise :class:`InputError`.
    """

    def __init__(self, sampler: PatchSampler, device: Any = "cpu") -> None:
        import torch

        if sampler.extras:
            raise InputError(
                "device-resident sampling does not crop extra volumes (instances for the boundary/distance heads): "
                "use data.on_device=false"
            )
        raws = sampler.raws
        if len(raws) > 1 and (any(int(r.shape[0]) != 1 for r in raws) or len({tuple(r.shape[1:]) for r in raws}) != 1):
            raise InputError(
                "device-resident sampling takes one volume or 2-D images of one size: use data.on_device=false"
            )
        self.device = torch.device(device)
        self.patch, self.k, self.dz, self.border = sampler.patch, sampler.k, sampler.dz, sampler.border
        self.foreground_fraction = sampler.foreground_fraction
        raw = np.concatenate([np.asarray(r) for r in raws]) if len(raws) > 1 else np.asarray(raws[0])
        labels = [np.asarray(lab) for lab in sampler.labels]
        self.raw = to_device_tensor(raw, self.device)
        lab = np.concatenate(labels) if len(labels) > 1 else labels[0]
        self.labels = torch.from_numpy(np.ascontiguousarray(lab)).to(self.device, _label_tensor_dtype(labels))
        offsets = np.cumsum([0] + [int(r.shape[0]) for r in raws])[:-1]
        self.centres = torch.as_tensor(offsets[sampler.items[:, 0]] + sampler.items[:, 1], device=self.device)
        self.row_counts: torch.Tensor | None = None
        classes = sampler.foreground_classes
        if classes is not None:  # classes the label dtype cannot hold are absent anyway (no wrap-around on the cast)
            info = torch.iinfo(self.labels.dtype)
            classes = [int(c) for c in classes if info.min <= int(c) <= info.max]
        self.foreground_classes = (
            None if classes is None else torch.as_tensor(classes, dtype=self.labels.dtype, device=self.device)
        )
        if self.foreground_fraction > 0:
            depth, height = self.labels.shape[:2]
            cum = torch.zeros((depth, height), dtype=torch.int64, device=self.device)
            for z in torch.unique(self.centres).tolist():  # once, at construction
                cum[z] = self._foreground(self.labels[z]).sum(-1).cumsum(0)
            self.row_counts = cum

    @property
    def nbytes(self) -> int:
        """Bytes the sampler holds on its device (raw, labels, foreground row counts)."""
        extra = 0 if self.row_counts is None else self.row_counts.numel() * 8
        return self.raw.numel() * self.raw.element_size() + self.labels.numel() * self.labels.element_size() + extra

    def _foreground(self, labels: Any) -> Any:
        import torch

        if self.foreground_classes is None:
            return labels != 0
        return torch.isin(labels, self.foreground_classes)

    def draw(self, n: int, generator: Any) -> tuple[Any, Any]:
        """``(centres (n,), origins (n, 2))`` int64 on the device: the patch parameters of a batch."""
        import torch

        g, dev = generator, self.device
        ph, pw = self.patch
        height, width = int(self.labels.shape[1]), int(self.labels.shape[2])
        item = torch.randint(len(self.centres), (n,), generator=g, device=dev)
        z = self.centres[item]
        y0 = torch.randint(0, height - ph + 1, (n,), generator=g, device=dev)
        x0 = torch.randint(0, width - pw + 1, (n,), generator=g, device=dev)
        if self.row_counts is not None:
            use = torch.rand(n, generator=g, device=dev) < self.foreground_fraction
            cum = self.row_counts[z]  # (n, H) cumulative foreground pixels per row
            total = cum[:, -1]
            r = (torch.rand(n, generator=g, device=dev, dtype=torch.float64) * total).long()
            r = torch.minimum(r, (total - 1).clamp_min(0))
            row = torch.searchsorted(cum, r[:, None], right=True).squeeze(1).clamp_max(height - 1)
            before = torch.where(
                row > 0, cum.gather(1, (row - 1).clamp_min(0)[:, None]).squeeze(1), torch.zeros_like(row)
            )
            in_row = self._foreground(self.labels[z, row]).to(torch.int64).cumsum(1)  # (n, W)
            col = torch.searchsorted(in_row, (r - before)[:, None], right=True).squeeze(1).clamp_max(width - 1)
            jy = torch.randint(-(ph // 4), ph // 4 + 1, (n,), generator=g, device=dev)
            jx = torch.randint(-(pw // 4), pw // 4 + 1, (n,), generator=g, device=dev)
            ok = use & (total > 0)
            y0 = torch.where(ok, (row - ph // 2 + jy).clamp(0, height - ph), y0)
            x0 = torch.where(ok, (col - pw // 2 + jx).clamp(0, width - pw), x0)
        return z, torch.stack([y0, x0], dim=1)

    def gather(self, centres: Any, origins: Any) -> tuple[Any, Any]:
        """The patches at ``centres`` / ``origins``: ``x`` (n, k·C, ph, pw) raw dtype through
        :func:`stack_slices` (torch path), ``y`` (n, ph, pw) labels of the centre slices."""
        import torch

        x = stack_slices(self.raw, centres, self.k, self.dz, self.border, origins=origins, size=self.patch)
        ph, pw = self.patch
        rows = origins[:, :1] + torch.arange(ph, device=self.device)
        cols = origins[:, 1:] + torch.arange(pw, device=self.device)
        y = crop_gather(self.labels, centres[:, None], rows, cols)[:, 0]
        return x, y

    def _geometric_indices(self, centres: Any, origins: Any, geo: Any) -> tuple[Any, Any, Any, Any]:
        """The indices of :meth:`gather` with the per-sample flips, quarter turns and z-reversal of ``geo``
        folded in: ``(index (n, k) slices, rows (n, ph), cols (n, pw), transpose (n,) or None)`` for
        :func:`crop_gather` — reversed rows / columns / slices, swapped roles and a transposed crop for a
        transpose — so the geometry costs no pass over the data: equal to ``augment``'s geometry on the
        plain patches."""
        import torch

        dev = self.device
        ph, pw = self.patch
        index = stack_index_tensor(centres, int(self.raw.shape[0]), self.k, self.dz, self.border)
        if geo.reverse:
            index = torch.where(geo.zrev.to(dev)[:, None], index.flip(1), index)
        transpose, fy, fx = (t.to(dev) for t in dihedral(geo.flip_y, geo.flip_x, geo.rot))
        turns = geo.rotations and ph == pw
        ar_h, ar_w = torch.arange(ph, device=dev), torch.arange(pw, device=dev)
        ci = torch.where(fy[:, None], ph - 1 - ar_h, ar_h)
        cj = torch.where(fx[:, None], pw - 1 - ar_w, ar_w)
        if turns:  # out[i, j] = crop[cj(j), ci(i)]: the crop at rows cj, columns ci, transposed
            ci, cj = torch.where(transpose[:, None], cj, ci), torch.where(transpose[:, None], ci, cj)
        return index, origins[:, :1] + ci, origins[:, 1:] + cj, transpose if turns else None

    def sample(self, n: int, generator: Any, augment: Any = None, colors: int = 1) -> tuple[Any, Any]:
        """``n`` patches ``(x, y)`` on the device drawn with ``generator`` (on the device). Without ``augment``
        (an :class:`~slicewise.data.augment.AugmentConfig`): :meth:`gather` of :meth:`draw`, raw dtype. With it:
        augmented, ``x`` float32 in [0, 1] — exactly ``augment(*self.gather(*self.draw(n, g)), config=augment,
        generator=g, colors=colors)`` for the same generator state, with the geometric part folded into the
        gather (uint8 indices, no extra pass) and ``y`` kept in the label dtype (cast it for the loss)."""
        import torch

        centres, origins = self.draw(int(n), generator)
        if augment is None:
            return self.gather(centres, origins)
        geo = draw_geometry(int(n), self.patch[0], self.patch[1], augment, generator)
        color = int(self.raw.shape[3]) if self.raw.ndim == 4 else 1
        draws = draw_intensity((int(n), self.k * color, *self.patch), self.device, augment, geo, generator)
        index, rows, cols, swap = self._geometric_indices(centres, origins, geo)
        y = crop_gather(self.labels, centres[:, None], rows, cols, swap)[:, 0]
        clipped = not self.raw.dtype.is_floating_point  # integers convert into [0, 1] exactly
        crops = None if draws.batched or self.device.type != "cpu" else crop_views(self.raw, index, rows, cols, swap)
        if crops is None:  # the batch at once (the GPU way)
            x = crop_gather(self.raw, index, rows, cols, swap)
            if x.ndim == 5:
                x = x.permute(0, 1, 4, 2, 3).flatten(1, 2)
            return apply_intensity(to_unit_float(x), draws, clipped, inplace=True), y
        # sample by sample (the CPU way): each crop is converted straight into the batch and its intensity
        # chain runs while it is in cache (the same values as the batch at once)
        x = torch.empty((len(crops), self.k * color, *self.patch), dtype=torch.float32)
        for i, crop in enumerate(crops):
            planes = x[i].view(self.k, color, *self.patch)
            to_unit_float(crop.permute(0, 3, 1, 2) if crop.ndim == 4 else crop[:, None], out=planes)
            if not clipped:
                x[i].clamp_(0.0, 1.0)
            if draws.on:
                intensity_chain(x[i], draws, i)
        return x, y
