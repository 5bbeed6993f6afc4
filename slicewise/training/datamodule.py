"""Training data: volumes → labels → seeded 2.5D patches (Lightning DataModule).

- Data come from ``data.raw`` / ``data.labels`` (read with ``open_volume``; labels are held in
  memory, raw stays lazy unless it is small) or the synthetic phantom (``data.synthetic``). Raw
  intensities pass :func:`slicewise.data.io.check_raw` before training starts (integers ÷ dtype
  maximum, so no negative values and, beyond uint8/uint16, at least 1/256 of the dtype range; float in
  [0, 1]; no NaN/Inf); training has no intensity normalization, so the fix is to convert the file.
- ``data.label_map`` maps raw label values to classes; afterwards every label must be a class
  ``0 … model.classes-1`` (or ``loss.ignore_index``), else a one-line :class:`ConfigError`.
- Split: :func:`slicewise.data.sampling.split_z` (validation z-range, gap of r·dz slices).
- Training patches: :class:`~slicewise.data.sampling.PatchSampler` /
  :class:`~slicewise.data.sampling.PatchDataset`; sample ``i`` of the run is a pure function of
  ``(seed, i)``. :class:`StepSampler` hands rank ``q`` of ``W`` the samples of optimizer step
  ``s``: ``(s·W + q)·B … (s·W + q)·B + B − 1`` (B = batch size), starting at the trainer's
  global step, so a resumed run sees exactly the patches of an uninterrupted one; one loader
  "epoch" is ``trainer.val_every`` steps (validation and checkpoints at its end).
- Validation: non-overlapping patch-size tiles (``slicewise.data.tiling.iter_tiles``) over the
  validation slices, at most ``data.val_patches`` of them (a seeded choice), fixed for the run.
- Extra heads: boundary and distance targets (``slicewise.training.losses``) are computed per
  patch from the instance crop, before augmentation (which moves them with the image).
- Device-resident training data (``data.on_device``, see :func:`resolve_on_device`): the volume and
  labels are put on the training device once (:class:`~slicewise.data.sampling.DevicePatchSampler`);
  the training loader then yields only the global step numbers of this rank (no workers), and
  :meth:`SliceDataModule.on_after_batch_transfer` turns step ``s`` into a batch drawn on the device
  with a generator seeded from ``(seed, s, rank)`` (:func:`~slicewise.data.sampling.sample_seed`),
  augmented in the same pass (flips, quarter turns and z-reversal folded into the gather):
  Lightning keeps the loop, each DDP rank has its own stream, and a resumed run draws exactly the
  batches of an uninterrupted one with no sampler state in the checkpoint. Its patches follow the
  worker path's distribution (not its exact draws: see ``DevicePatchSampler``).

Batches are dicts: ``image`` (B, k·C, H, W) raw dtype, ``target`` (B, H, W) int64 and, with
extra heads, ``boundary`` / ``distance`` (B, 1, H, W) float32. Device-path training batches arrive
augmented: ``image`` float32 in [0, 1] and ``"augmented": True`` (raw dtype when augmentation is off).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from slicewise.config import DataConfig, TrainConfig
from slicewise.data.augment import AugmentConfig
from slicewise.data.components import label
from slicewise.data.io import check_labels, check_raw, open_volume
from slicewise.data.sampling import DevicePatchSampler, PatchDataset, PatchSampler, sample_seed, split_z
from slicewise.data.stacking import stack_slices
from slicewise.data.synthetic import make_phantom
from slicewise.data.tiling import iter_tiles
from slicewise.errors import ConfigError, InputError
from slicewise.training.losses import boundary_map, distance_map

IN_MEMORY_BYTES = 2 << 30  # raw volumes up to 2 GiB are read into memory once
ON_DEVICE_FRACTION = 0.25  # data.on_device=auto: the volume may take this share of the device's memory

log = logging.getLogger(__name__)


def device_memory(device: torch.device) -> int | None:
    """Total memory of ``device`` in bytes: CUDA total memory, physical RAM for CPU, ``None`` otherwise."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "cpu":
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def resident_bytes(volume: TrainVolume) -> int:
    """Bytes the device-resident sampler holds: raw in its dtype, labels as uint8 (int16/int32 when the
    classes or ``ignore_index`` need it), and the foreground row counts (Z×Y int64)."""
    z, h = int(volume.labels.shape[0]), int(volume.labels.shape[1])
    lo, hi = int(volume.labels.min()), int(volume.labels.max())
    label_bytes = 1 if 0 <= lo and hi < 256 else 2 if -(2**15) <= lo and hi < 2**15 else 4
    return int(volume.raw.size * volume.raw.dtype.itemsize + volume.labels.size * label_bytes + z * h * 8)


def resolve_on_device(setting: bool | str, volume: TrainVolume, device: torch.device) -> bool:
    """Whether training data live on ``device`` (``data.on_device``). ``auto``: yes when no instance targets
    are needed and :func:`resident_bytes` ≤ ``ON_DEVICE_FRACTION`` (¼) of :func:`device_memory` — on CPU
    the raw array is shared, not copied, so the test is against RAM; ``true`` raises a one-line
    :class:`ConfigError` where the device path cannot apply (extra heads)."""
    if setting is False:
        return False
    if volume.instances is not None:
        if setting is True:
            raise ConfigError(
                "data.on_device=true cannot train extra heads (their boundary/distance targets are computed on "
                "the host): set data.on_device=auto or false"
            )
        return False
    if setting is True:
        return True
    return fits_on_device(resident_bytes(volume), device, "training data", "DataLoader workers")


def fits_on_device(need: int, device: torch.device, what: str, otherwise: str) -> bool:
    """``data.on_device=auto``'s rule: ``need`` bytes take at most ``ON_DEVICE_FRACTION`` (¼) of
    :func:`device_memory`; logs the decision (``otherwise``: what runs instead)."""
    capacity = device_memory(device)
    fits = capacity is not None and need <= ON_DEVICE_FRACTION * capacity
    log.info(
        "data.on_device=auto: %.1f MB of %s %s a quarter of %s memory (%s)",
        need / 1e6,
        what,
        "fit in" if fits else "exceed",
        device,
        "device-resident sampling" if fits else otherwise,
    )
    return fits


@dataclass
class TrainVolume:
    """One training volume: ``raw`` Z×Y×X[×C] (numpy or lazy Volume), ``labels`` Z×Y×X int64
    classes, ``instances`` Z×Y×X ids or ``None`` (only needed by the extra heads)."""

    raw: Any
    labels: np.ndarray
    instances: np.ndarray | None = None


def map_labels(labels: np.ndarray, label_map: dict[int, int] | None) -> np.ndarray:
    """Apply ``data.label_map`` (raw value → class); every value present must be a key."""
    lab = np.asarray(labels)
    if not label_map:
        return lab.astype(np.int64, copy=False)
    keys = np.array(sorted(label_map), dtype=np.int64)
    values = np.array([label_map[k] for k in keys.tolist()], dtype=np.int64)
    present = np.unique(lab)
    missing = np.setdiff1d(present, keys)
    if missing.size:
        raise ConfigError(
            f"labels hold values {missing[:10].tolist()} that data.label_map {label_map} does not map: "
            f"add them to data.label_map"
        )
    return values[np.searchsorted(keys, lab)]


def check_classes(labels: np.ndarray, classes: int, ignore_index: int | None = None) -> None:
    """One-line error when a label is outside ``0 … classes-1`` (``ignore_index`` allowed).

    Negative labels are refused as such (the fix is a label map or ``loss.ignore_index``, never a
    class count); values ``>= classes`` suggest ``model.classes = max + 1``.
    """
    values = np.unique(labels)
    if ignore_index is not None:
        values = values[values != ignore_index]
    negative = values[values < 0]
    if negative.size:
        shown = ", ".join(map(str, negative[:5].tolist())) + (", ..." if negative.size > 5 else "")
        raise ConfigError(
            f"labels hold negative values ({shown}): classes are 0..{classes - 1}; map them to classes with "
            f"data.label_map (e.g. {{{int(negative[0])}: 0}}) or set loss.ignore_index={int(negative[0])} "
            f"to ignore them"
        )
    bad = values[values >= classes]
    if bad.size:
        raise ConfigError(
            f"labels hold classes {values[:10].tolist()} but model.classes={classes}: "
            f"set model.classes={int(values.max()) + 1} or map the label values to 0..{classes - 1} with data.label_map"
        )


def regions_as_instances(labels: np.ndarray) -> np.ndarray:
    """Instance ids when none are given: the 4-connected regions of each class in each z-slice.

    Ids are unique over the whole volume (across classes and slices), int32.
    """
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, dtype=np.int32)
    offset = 0
    for c in np.unique(labels):
        ids = label(labels == c, per_slice=True)
        out[ids > 0] = ids[ids > 0] + offset
        offset += int(ids.max())
    return out


def load_volume(
    cfg: DataConfig, classes: int, ignore_index: int | None = None, need_instances: bool = False
) -> TrainVolume:
    """Read (or synthesize) the training volume, map and check its labels."""
    if cfg.raw is None:
        ph = make_phantom(shape=cfg.synthetic.shape, seed=cfg.synthetic.seed)
        raw, labels, instances = ph.raw, ph.semantic, ph.cells
    else:
        if cfg.labels is None:
            raise ConfigError("data.raw is set but data.labels is not: give the label volume (data.labels)")
        raw = open_volume(cfg.raw, cfg.raw_key)
        if raw.size * raw.dtype.itemsize <= IN_MEMORY_BYTES:
            raw = check_raw(raw.numpy(), what=f"data.raw {raw.source}").numpy()  # scanned whole, in memory
        else:
            raw = check_raw(raw, what=f"data.raw {raw.source}")  # lazy: a bounded sample
        labels = check_labels(open_volume(cfg.labels, cfg.labels_key), raw.shape).numpy()
        instances = None
        if cfg.instances is not None:
            instances = check_labels(open_volume(cfg.instances, cfg.instances_key), raw.shape, kind="instance").numpy()
    labels = map_labels(labels, cfg.label_map)
    check_classes(labels, classes, ignore_index)
    if not need_instances:
        instances = None
    elif instances is None:
        instances = regions_as_instances(labels)
    return TrainVolume(raw=raw, labels=labels, instances=instances)


def _targets(y: np.ndarray, inst: np.ndarray | None) -> dict[str, Any]:
    out: dict[str, Any] = {"target": y.astype(np.int64)}
    if inst is not None:
        out["boundary"] = boundary_map(inst)[None].astype(np.float32)
        out["distance"] = distance_map(inst)[None]
    return out


class InstancePatchSampler(PatchSampler):
    """:class:`PatchSampler` that also crops the instance ids at the same place (its ``extras``)
    and derives the boundary/distance targets; :meth:`sample_one` returns a batch-item dict."""

    def __init__(self, raw: Any, labels: Any, instances: np.ndarray | None, **kwargs: Any) -> None:
        super().__init__(raw, labels, extras=None if instances is None else {"instances": instances}, **kwargs)

    def sample_one(self, rng: np.random.Generator) -> dict[str, Any]:  # type: ignore[override]
        """One patch as ``{"image", "target"[, "boundary", "distance"]}``."""
        x, y, *extra = super().sample_one(rng)
        return {"image": x, **_targets(y, extra[0]["instances"] if extra else None)}


class ValTiles(Dataset):
    """Fixed validation tiles: ``(z, y-slice, x-slice)`` over the validation centres."""

    def __init__(
        self,
        volume: TrainVolume,
        centres: np.ndarray,
        patch: tuple[int, int],
        k: int,
        dz: int,
        border: str,
        limit: int,
        seed: int = 0,
    ) -> None:
        self.volume, self.k, self.dz, self.border = volume, k, dz, border
        shape = tuple(int(s) for s in volume.labels.shape[1:3])
        tiles = [(int(z), yx) for z in centres for yx in iter_tiles(shape, patch, overlap=0.0)]
        if len(tiles) > limit:
            keep = np.sort(np.random.default_rng(seed).permutation(len(tiles))[:limit])
            tiles = [tiles[i] for i in keep]
        self.tiles = tiles

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> dict[str, Any]:
        z, (ys, xs) = self.tiles[i]
        v = self.volume
        item = {"image": np.asarray(stack_slices(v.raw, z, self.k, self.dz, self.border, yx=(ys, xs)))}
        inst = None if v.instances is None else np.asarray(v.instances[z, ys, xs])
        return {**item, **_targets(np.asarray(v.labels[z, ys, xs]), inst)}


class StepSampler(Sampler[int]):
    """Sample indices of one rank for up to ``steps`` optimizer steps from ``start()`` (the global
    step when the loader is iterated), never past step ``total``: rank ``q`` of ``W`` gets
    ``(s·W + q)·B … (s·W + q)·B + B − 1`` for step ``s``."""

    def __init__(
        self, steps: int, batch_size: int, start: Callable[[], int], total: int, rank: int = 0, world: int = 1
    ) -> None:
        self.steps, self.batch_size, self.start, self.total = steps, batch_size, start, total
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return self.steps * self.batch_size

    def __iter__(self) -> Iterator[int]:
        s0 = int(self.start())
        for s in range(s0, min(s0 + self.steps, self.total)):
            base = (s * self.world + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)


class StepNumbers(Dataset):
    """The device path's training "data": item ``s`` is the step number ``s`` itself. Read through a
    :class:`StepSampler` with batch size 1 it yields this rank's global steps ``start() …``;
    :meth:`SliceDataModule.on_after_batch_transfer` turns each into a batch on the device."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, step: int) -> int:
        return int(step)


class SliceDataModule(pl.LightningDataModule):
    """Lightning DataModule for a :class:`TrainConfig`: split, samplers and loaders."""

    def __init__(self, config: TrainConfig, world_size: int = 1) -> None:
        super().__init__()
        self.config = config
        self.world_size = int(world_size)
        self.volume: TrainVolume | None = None
        self.train_set: PatchDataset | None = None
        self.val_set: ValTiles | None = None
        self._train_loaders: dict[int, DataLoader] = {}
        self._val_loader: DataLoader | None = None
        self.device_sampler: DevicePatchSampler | None = None
        self._generator: torch.Generator | None = None

    def setup(self, stage: str | None = None) -> None:
        """Load the volume, split it by z and build the datasets (once)."""
        if self.train_set is not None:
            return
        cfg, d = self.config, self.config.data
        k = cfg.model.in_slices
        self.volume = vol = load_volume(
            d, cfg.model.classes, cfg.loss.ignore_index, need_instances=bool(cfg.model.extra_heads)
        )
        train_z, val_z = split_z(int(vol.labels.shape[0]), k, d.dz, d.val_fraction, d.val_range, d.border, d.test_range)
        sampler = InstancePatchSampler(
            vol.raw,
            vol.labels,
            vol.instances,
            centres=train_z,
            patch=d.patch_size,
            k=k,
            dz=d.dz,
            border=d.border,
            foreground_fraction=d.foreground_fraction,
            foreground_classes=d.foreground_classes,
            train_fraction=d.train_fraction,
            train_count=d.train_count,
            seed=cfg.seed,
        )
        self.train_set = PatchDataset(sampler, cfg.trainer.max_steps * d.batch_size * self.world_size, seed=cfg.seed)
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if resolve_on_device(d.on_device, vol, device):
            self.device_sampler = DevicePatchSampler(sampler, device)
            self._generator = torch.Generator(device=device)
        wants_val = d.val_fraction > 0 or d.val_range is not None
        if wants_val and not len(val_z):
            raise InputError(
                f"the validation z-range has no usable centre slice under border={d.border!r}: "
                f"widen it or use border=reflect"
            )
        self.val_set = (
            ValTiles(vol, val_z, d.patch_size, k, d.dz, d.border, d.val_patches, cfg.seed) if len(val_z) else None
        )

    def _loader(self, dataset: Dataset, sampler: Sampler[int] | list[int]) -> DataLoader:
        d = self.config.data
        return DataLoader(
            dataset,
            batch_size=d.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=d.num_workers,
            pin_memory=torch.cuda.is_available(),
            drop_last=False,
            persistent_workers=d.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Training batches of this rank; one loader "epoch" = ``trainer.val_every`` steps, the last
        one shorter so the run ends with validation and a checkpoint. Lightning asks for the loader
        every epoch; the same object (and its persistent workers) is returned while the epoch
        length stays: items depend only on their index and the sampler reads the global step."""
        assert self.train_set is not None
        t = self.trainer
        rank, world = (t.global_rank, t.world_size) if t is not None else (0, 1)
        done = t.global_step if t is not None else 0
        tc = self.config.trainer
        steps = max(1, min(tc.val_every, tc.max_steps - done))
        if steps not in self._train_loaders:
            start = (lambda: t.global_step) if t is not None else (lambda: 0)
            if self.device_sampler is not None:
                numbers = StepSampler(steps, 1, start, tc.max_steps)
                self._train_loaders[steps] = DataLoader(
                    StepNumbers(tc.max_steps), sampler=numbers, batch_size=None, num_workers=0
                )
            else:
                sampler = StepSampler(steps, self.config.data.batch_size, start, tc.max_steps, rank, world)
                self._train_loaders[steps] = self._loader(self.train_set, sampler)
        return self._train_loaders[steps]

    def device_batch(self, step: int) -> dict[str, Any]:
        """The training batch of global ``step`` on this rank, drawn on the device (device path only) and,
        unless augmentation is off, augmented there in the same pass (``"augmented": True``: the module
        then leaves it as it is); one generator seeded from ``(seed, step, rank)`` draws patches and
        augmentation."""
        assert self.device_sampler is not None and self._generator is not None
        rank = self.trainer.global_rank if self.trainer is not None else 0
        self._generator.manual_seed(sample_seed(self.config.seed, step, rank))
        aug = AugmentConfig.from_dict(self.config.augment)
        if aug == AugmentConfig.off():
            x, y = self.device_sampler.sample(self.config.data.batch_size, self._generator)
            return {"image": x, "target": y.long()}
        x, y = self.device_sampler.sample(
            self.config.data.batch_size, self._generator, augment=aug, colors=self.config.model.colors
        )
        return {"image": x, "target": y.long(), "augmented": True}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Device path: a step number from :class:`StepNumbers` becomes that step's batch; others pass."""
        if self.device_sampler is not None and isinstance(batch, int):
            return self.device_batch(batch)
        return batch

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """Validation tiles; rank q of W takes tiles q, q+W, q+2W, … (the metric sums over ranks)."""
        if self.val_set is None:
            return []
        if self._val_loader is None:
            t = self.trainer
            rank, world = (t.global_rank, t.world_size) if t is not None else (0, 1)
            self._val_loader = self._loader(self.val_set, list(range(rank, len(self.val_set), world)))
        return self._val_loader
