"""Unlabelled volumes and the two views of a self-supervised pair.

Sources: one or more volumes (``open_volume``: lazy; read by region) or the phantom. A volume that fits a
quarter of the device's memory (``data.on_device=auto``, as training) is put on the device once and the views
are gathered there; otherwise only the regions of a batch are read (a volume far larger than memory works).

A pair (:meth:`ViewSource.draw`), for each of the ``n`` samples, from one ``torch.Generator`` (seeded per
step by the caller, so a resumed run redraws the same views):

1. an item (volume, centre slice z) uniformly from the centres (``data.z_range``; all slices under
   ``reflect`` / ``replicate``, those with full context under ``skip``);
2. a square region of side R = min(``views.region_scale`` · patch, height, width) at a uniform origin;
   its k-slice stack is read through :func:`slicewise.data.stacking.stack_slices` (the one stacking
   function: k, dz, border as fine-tuning) and converted to [0, 1] (``to_unit_float``);
3. per view a random resized crop (area fraction ``views.crop_scale`` of the region, aspect ratio
   ``views.crop_ratio``), resampled to the patch size by ``torchvision.ops.roi_align`` (bilinear, 2×2
   samples per output pixel);
4. per view the train-time augmentation :func:`slicewise.data.augment.augment` (flips, quarter turns,
   z-reversal, brightness, contrast, gamma, noise, blur: the intensity kernels of ``data/shifts.py``).

**z-context positives** (``views.z_context`` = d > 0): view 2 is read at centre z ± m (m uniform in 1…d,
the sign flipped where it would leave the centres) with view 1's crop box: the same y/x of a nearby
section, a positive pair that serial-section continuity provides and no general SSL library has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision.ops import roi_align

from slicewise.config import PretrainConfig
from slicewise.data.augment import AugmentConfig, augment
from slicewise.data.stacking import check_stack_params, stack_slices, to_unit_float, valid_centres
from slicewise.errors import ConfigError, InputError

__all__ = ["ViewSource", "check_unlabelled", "looks_like_labels"]

log = logging.getLogger(__name__)
LABEL_DISTINCT = 16  # an integer volume with at most this many values in its sampled slices is taken for labels


def looks_like_labels(volume: Any) -> str | None:
    """Why ``volume`` looks like a label (class or instance) map rather than intensities, or ``None``.

    Heuristic on the middle slice (a central crop of at most 512²): an integer volume with at most
    :data:`LABEL_DISTINCT` distinct values (class maps: ISBI's {0, 255}, the phantom's {0, 1, 2}), or with
    more values but where more than 90 % of horizontally adjacent pixels are equal (piecewise-constant
    instance ids; EM intensities are noisy).
    """
    dt = np.dtype(volume.dtype)
    if dt.kind not in "iub":
        return None
    z, h, w = (int(s) for s in volume.shape[:3])
    ys = slice(max(0, h // 2 - 256), min(h, h // 2 + 256))
    xs = slice(max(0, w // 2 - 256), min(w, w // 2 + 256))
    plane = np.asarray(volume[z // 2, ys, xs])
    if plane.size < 64:
        return None
    distinct = np.unique(plane)
    if len(distinct) <= LABEL_DISTINCT:
        shown = ", ".join(str(v) for v in distinct[:6]) + (", ..." if len(distinct) > 6 else "")
        return f"its middle slice holds only {len(distinct)} distinct integer values ({shown})"
    flat = plane.reshape(plane.shape[0], -1) if plane.ndim == 2 else plane[..., 0]
    equal = float(np.mean(flat[:, 1:] == flat[:, :-1])) if flat.shape[1] > 1 else 0.0
    if equal > 0.9:
        return f"{equal:.0%} of neighbouring pixels of its middle slice are equal (piecewise-constant ids)"
    return None


def check_unlabelled(volume: Any, what: str) -> None:
    """One-line :class:`InputError` when ``volume`` looks like labels (:func:`looks_like_labels`)."""
    why = looks_like_labels(volume)
    if why:
        raise InputError(
            f"{what} looks like a label volume, not intensities ({why}): give the unlabelled raw "
            f"volume (labelled slices go to data.probe_labels)"
        )


@dataclass
class _Volume:
    data: Any  # a Volume / numpy array, or a torch tensor on the device (device-resident)
    centres: np.ndarray
    region: int


class ViewSource:
    """The unlabelled volumes of a run and the pair sampler (see the module docstring).

    ``volumes``: Z×Y×X[×C] arrays, :class:`~slicewise.data.io.Volume` objects or tensors (any mix);
    ``device``: where views are built (and where tensors live); the others are read by region on demand.
    """

    def __init__(self, volumes: list[Any], cfg: PretrainConfig, device: torch.device | str = "cpu") -> None:
        d, m = cfg.data, cfg.model
        self.k, self.dz, self.border, self.colors = m.in_slices, d.dz, d.border, m.colors
        self.patch = tuple(int(v) for v in d.patch_size)
        self.views = cfg.views
        self.augment = AugmentConfig.from_dict(cfg.views.augment)
        self.device = torch.device(device)
        self.volumes: list[_Volume] = []
        ph, pw = self.patch
        for i, vol in enumerate(volumes):
            shape = tuple(int(s) for s in vol.shape)
            colors = shape[3] if len(shape) == 4 else 1
            if colors != self.colors:
                raise ConfigError(
                    f"volume {i} has {colors} color channel(s) per slice but model.colors={self.colors}: "
                    f"set model.colors={colors}"
                )
            check_stack_params(shape[0], self.k, self.dz, self.border)
            if ph > shape[1] or pw > shape[2]:
                raise InputError(
                    f"data.patch_size {ph}x{pw} is larger than volume {i} ({shape[1]}x{shape[2]} in-plane): "
                    f"use a patch of at most {shape[1]}x{shape[2]}"
                )
            centres = valid_centres(shape[0], self.k, self.dz, self.border)
            if d.z_range is not None:
                centres = centres[(centres >= d.z_range[0]) & (centres < d.z_range[1])]
            if not len(centres):
                raise InputError(
                    f"volume {i} has no centre slice in data.z_range={list(d.z_range or ())} under "
                    f"border={self.border!r}: widen the range"
                )
            region = int(min(round(max(ph, pw) * self.views.region_scale), shape[1], shape[2]))
            self.volumes.append(_Volume(vol, centres, max(region, ph, pw)))
        if not self.volumes:
            raise InputError("no volume to pretrain on: give at least one raw volume")
        self.items = np.concatenate(
            [np.stack([np.full(len(v.centres), i), v.centres], 1) for i, v in enumerate(self.volumes)]
        )

    @property
    def resident(self) -> bool:
        """Whether every volume lives on the device as a tensor."""
        return all(isinstance(v.data, torch.Tensor) for v in self.volumes)

    def _regions(self, v: int, centres: torch.Tensor, origins: torch.Tensor) -> torch.Tensor:
        """Unit-float region stacks (n, k·C, R, R) of volume ``v`` on the device."""
        vol = self.volumes[v]
        size = (vol.region, vol.region)
        if isinstance(vol.data, torch.Tensor):
            x = stack_slices(
                vol.data,
                centres.to(vol.data.device),
                self.k,
                self.dz,
                self.border,
                origins=origins.to(vol.data.device),
                size=size,
            )
        else:
            x = torch.from_numpy(
                np.ascontiguousarray(
                    stack_slices(
                        vol.data,
                        centres.cpu().numpy(),
                        self.k,
                        self.dz,
                        self.border,
                        origins=origins.cpu().numpy(),
                        size=size,
                    )
                )
            )
        return to_unit_float(x.to(self.device))

    def _boxes(self, n: int, region: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random resized crop boxes (n, 4) ``x1, y1, x2, y2`` inside regions of side ``region``."""
        dev = region.device
        lo, hi = self.views.crop_scale
        area = lo + (hi - lo) * torch.rand(n, generator=g, device=dev, dtype=torch.float64)
        rlo, rhi = np.log(self.views.crop_ratio[0]), np.log(self.views.crop_ratio[1])
        ratio = torch.exp(rlo + (rhi - rlo) * torch.rand(n, generator=g, device=dev, dtype=torch.float64))
        side = region.to(torch.float64)
        w = torch.minimum(side * torch.sqrt(area * ratio), side)
        h = torch.minimum(side * torch.sqrt(area / ratio), side)
        x1 = (side - w) * torch.rand(n, generator=g, device=dev, dtype=torch.float64)
        y1 = (side - h) * torch.rand(n, generator=g, device=dev, dtype=torch.float64)
        return torch.stack([x1, y1, x1 + w, y1 + h], 1).float()

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two views (n, k·C, ph, pw) float32 in [0, 1] on the device; randomness from ``generator`` only."""
        g, gdev = generator, generator.device
        pick = torch.randint(len(self.items), (n,), generator=g, device=gdev).cpu().numpy()
        vs, zs = self.items[pick, 0], self.items[pick, 1].copy()
        u = torch.rand((n, 4), generator=g, device=gdev, dtype=torch.float64).cpu().numpy()
        sides = np.array([self.volumes[v].region for v in vs])
        heights = np.array([int(self.volumes[v].data.shape[1]) for v in vs])
        widths = np.array([int(self.volumes[v].data.shape[2]) for v in vs])
        origins = np.stack(
            [np.floor(u[:, 0] * (heights - sides + 1)), np.floor(u[:, 1] * (widths - sides + 1))], 1
        ).astype(np.int64)
        zs2 = zs.copy()
        d = self.views.z_context
        if d > 0:
            step = 1 + np.floor(u[:, 2] * d).astype(np.int64)
            sign = np.where(u[:, 3] < 0.5, -1, 1)
            for i, v in enumerate(vs):
                cs = self.volumes[v].centres
                lo, hi = int(cs[0]), int(cs[-1])
                z2 = zs[i] + sign[i] * step[i]
                if not lo <= z2 <= hi:
                    z2 = zs[i] - sign[i] * step[i]
                zs2[i] = int(np.clip(z2, lo, hi))
        region = torch.as_tensor(sides, device=gdev)
        box1 = self._boxes(n, region, g)
        box2 = box1.clone() if d > 0 else self._boxes(n, region, g)
        ph, pw = self.patch
        out = [torch.empty((n, self.k * self.colors, ph, pw), device=self.device) for _ in range(2)]
        for v in np.unique(vs):
            idx = np.flatnonzero(vs == v)
            it = torch.as_tensor(idx, device=self.device)
            o = torch.as_tensor(origins[idx])
            r1 = self._regions(int(v), torch.as_tensor(zs[idx]), o)
            r2 = r1 if d == 0 else self._regions(int(v), torch.as_tensor(zs2[idx]), o)
            for view, (reg, box) in enumerate(((r1, box1), (r2, box2))):
                rois = torch.cat(
                    [
                        torch.arange(len(idx), device=self.device, dtype=torch.float32)[:, None],
                        box[torch.as_tensor(idx, device=box.device)].to(self.device),
                    ],
                    1,
                )
                out[view][it] = roi_align(
                    reg, rois, output_size=(ph, pw), spatial_scale=1.0, sampling_ratio=2, aligned=True
                )
        x1 = augment(out[0], config=self.augment, generator=g, colors=self.colors)[0]
        x2 = augment(out[1], config=self.augment, generator=g, colors=self.colors)[0]
        return x1.clamp_(0.0, 1.0), x2.clamp_(0.0, 1.0)
