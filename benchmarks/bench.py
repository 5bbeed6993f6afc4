"""Side-by-side GPU benchmark: slicewise against the field's libraries used straightforwardly.

Run on a GPU: ``python benchmarks/bench.py --device cuda --out benchmarks/results/h100.json``;
CPU smoke (tiny shapes, seconds): ``python benchmarks/bench.py --device cpu --smoke``.
``--only train,predict,attribution,sam,mfu`` picks groups. Not a test: it prints a table of
ratios (slicewise / peer; > 1 means slicewise is faster) and writes JSON with every figure,
the settings, the device name and the library versions. See benchmarks/README.md for what each
row includes.

Timing: ``warmup`` untimed iterations, then ``repeats`` timed windows of ``steps`` iterations each,
``torch.cuda.synchronize()`` at both ends of every window; the reported figure is the median
over the windows. Full runs use bf16 autocast on CUDA, fp32 elsewhere; Captum attribution runs
in fp32 on both sides (as slicewise does).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slicewise.utils.atomic import write_json

GROUPS: dict[str, tuple[str, ...]] = {
    "train": ("train", "train_model"),
    "input": ("train_input", "train_input_full"),
    "predict": ("predict",),
    "overhead": ("predict_overhead",),
    "attribution": ("attribution_saliency", "attribution_ig", "attribution_saliency_bf16"),
    "sam": ("sam",),
    "mfu": ("mfu_train", "mfu_sam"),
    "pretrain": ("pretrain",),
}
CPU_GROUPS = "input,overhead,attribution,sam,pretrain"  # what a --device cpu run measures by default
ROWS: tuple[str, ...] = tuple(r for rows in GROUPS.values() for r in rows)


@dataclass(frozen=True)
class Settings:
    """Benchmark sizes. ``size``: training patch / prediction tile / attribution tile (px);
    ``volume``: Z×Y×X of the uint8 test volume; ``batch``: images (tiles) per step;
    ``compile``: ``torch.compile`` the networks of the training rows on both sides;
    ``input_workers``: DataLoader workers of the training-input rows' peer; ``predict_volume``: Z×Y×X
    of the ``predict_overhead`` input (``None``: the whole test volume)."""

    device: str
    smoke: bool
    bf16: bool
    size: int = 512
    volume: tuple[int, int, int] = (64, 1024, 1024)
    k: int = 3
    batch: int = 32
    encoder: str = "resnet34"
    workers: int = 12
    warmup: int = 10
    steps: int = 10
    repeats: int = 5
    predict_planes: int = 8
    attr_tiles: int = 128
    ig_tiles: int = 32
    ig_steps: int = 32
    sam_encoder: str = "samvit_base_patch16"
    sam_size: int = 1024
    sam_batch: int = 8
    matmul_n: int = 8192
    compile: bool = False
    input_workers: int = 2
    input_steps: int = 40
    predict_volume: tuple[int, int, int] | None = None
    on_device: str = "auto"
    ssl_encoder: str = "resnet18"
    ssl_size: int = 224
    ssl_batch: int = 256

    @classmethod
    def make(cls, device: str, smoke: bool, compile: bool = False) -> Settings:
        """Full sizes (the anchors of docs/design-notes.md) on CUDA; on CPU reduced sizes (the same 64×1024² volume,
        256² patches, batch 16, ResNet-34, a 4×512² prediction input, 8 attribution tiles, SAM ViT-B at
        128²); or the CPU smoke sizes."""
        bf16 = device.startswith("cuda")
        if not smoke and not bf16:
            return cls(
                device=device,
                smoke=False,
                bf16=False,
                compile=compile,
                size=256,
                batch=16,
                workers=2,
                warmup=3,
                steps=5,
                repeats=5,
                predict_planes=4,
                attr_tiles=8,
                ig_tiles=2,
                ig_steps=8,
                sam_size=128,
                sam_batch=2,
                matmul_n=1024,
                predict_volume=(4, 512, 512),
                ssl_size=96,
                ssl_batch=16,
            )
        if not smoke:
            return cls(device=device, smoke=False, bf16=bf16, workers=min(12, os.cpu_count() or 1), compile=compile)
        return cls(
            device=device,
            smoke=True,
            bf16=bf16,
            compile=compile,
            size=64,
            volume=(4, 96, 96),
            batch=2,
            encoder="resnet18",
            workers=0,
            warmup=1,
            steps=1,
            repeats=2,
            predict_planes=2,
            attr_tiles=4,
            ig_tiles=2,
            ig_steps=4,
            input_workers=1,
            input_steps=2,
            sam_encoder="slicewise_samvit_tiny_patch16",
            sam_size=64,
            sam_batch=2,
            matmul_n=512,
            ssl_size=32,
            ssl_batch=4,
        )


# ----------------------------------------------------------------------------- timing helpers


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_timer(s: Any, device: Any) -> Any:
    """A Lightning callback that synchronizes ``device`` and stamps the time after steps ``s.warmup``,
    ``s.warmup + s.steps``, … (``.stamps``); shared by the training and pretraining rows."""
    import pytorch_lightning as pl

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.n, self.stamps = 0, []
            self.marks = {s.warmup + i * s.steps for i in range(s.repeats + 1)}

        def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
            self.n += 1
            if self.n in self.marks:
                sync(device)
                self.stamps.append(time.perf_counter())

    return StepTimer()


def time_windows(step: Callable[[], Any], s: Settings, device: torch.device) -> list[float]:
    """Run ``step`` ``warmup`` times untimed, then ``repeats`` windows of ``steps`` calls; seconds per window."""
    return interleaved_windows({"step": step}, s, device)[0]


def interleaved_windows(
    steps: dict[str, Callable[[], Any]],
    s: Settings,
    device: torch.device,
    threads: dict[str, int] | None = None,
    settle: float = 0.0,
) -> list[list[float]]:
    """:func:`time_windows` for several sides at once: ``warmup`` calls of each, then ``repeats`` rounds of
    one window of ``steps`` calls per side, side after side (each under its own torch thread count when
    ``threads`` names them); seconds per window, one list per side (in the order of ``steps``).

    ``settle``: seconds of sleep before each window, so background work a side left running (a DataLoader's
    workers filling their prefetch queue) finishes before the next side's window instead of inside it."""

    def use_threads(name: str) -> None:
        if threads is not None:
            torch.set_num_threads(threads[name])

    out: dict[str, list[float]] = {name: [] for name in steps}
    for name, step in steps.items():
        use_threads(name)
        for _ in range(s.warmup):
            step()
    sync(device)
    for _ in range(s.repeats):
        for name, step in steps.items():
            use_threads(name)
            time.sleep(settle)
            t0 = time.perf_counter()
            for _ in range(s.steps):
                step()
            sync(device)
            out[name].append(time.perf_counter() - t0)
    return [out[name] for name in steps]


def rate(count: float, seconds: list[float]) -> float:
    """Median rate (count per second) over timed windows."""
    return float(statistics.median(count / t for t in seconds))


def autocast(s: Settings) -> Any:
    """bf16 autocast on CUDA when ``s.bf16``; a disabled context otherwise."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=s.bf16)


def forward_gflops(
    module: nn.Module, shape: tuple[int, ...], fn: Callable[[nn.Module, torch.Tensor], Any] | None = None
) -> float:
    """Forward GFLOP per image (``torch.utils.flop_counter``, a multiply-add = 2) for one input of
    ``shape`` (C, H, W), counted on a ``meta`` copy (no arithmetic)."""
    from torch.utils.flop_counter import FlopCounterMode

    shadow = copy.deepcopy(module).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        (fn or (lambda m, x: m(x)))(shadow, torch.zeros(1, *shape, device="meta"))
    return counter.get_total_flops() / 1e9


# ----------------------------------------------------------------------------- data


def make_volume(s: Settings, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 raw volume (Z×Y×X) and binary uint8 labels (content is irrelevant to timing)."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=s.volume, dtype=np.uint8)
    return raw, (raw > 127).astype(np.uint8)


def reflect_window(z: int, depth: int, k: int) -> np.ndarray:
    """Peer-side 3-slice indices around ``z`` mirrored at the ends (written independently of slicewise)."""
    idx = z + np.arange(k) - k // 2
    idx = np.where(idx < 0, -idx, idx)
    return np.where(idx >= depth, 2 * (depth - 1) - idx, idx)


class PeerCrops(torch.utils.data.Dataset):
    """Reference training data: random k-slice crops, y/x flips and z-reversal in numpy (item i seeded by i)."""

    def __init__(self, raw: np.ndarray, labels: np.ndarray, size: int, k: int, length: int) -> None:
        self.raw, self.labels, self.size, self.k, self.length = raw, labels, size, k, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(i)
        depth, h, w = self.raw.shape
        z = int(rng.integers(depth))
        y0, x0 = int(rng.integers(h - self.size + 1)), int(rng.integers(w - self.size + 1))
        ys, xs = slice(y0, y0 + self.size), slice(x0, x0 + self.size)
        x = self.raw[reflect_window(z, depth, self.k), ys, xs]
        y = self.labels[z, ys, xs]
        if rng.random() < 0.5:
            x, y = x[:, ::-1], y[::-1]
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, ::-1]
        if rng.random() < 0.5:
            x = x[::-1]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


# ----------------------------------------------------------------------------- models


def slicewise_unet(s: Settings) -> nn.Module:
    """slicewise's U-Net: ``build_model(encoder, weights="random", in_slices=k, channel_init="uniform", classes=2)``."""
    from slicewise.models import build_model

    return build_model(encoder=s.encoder, weights="random", in_slices=s.k, channel_init="uniform", classes=2)


def peer_unet(s: Settings) -> nn.Module:
    """segmentation_models_pytorch ``Unet(encoder, encoder_weights=None, in_channels=k, classes=2)``."""
    import segmentation_models_pytorch as smp

    return smp.Unet(s.encoder, encoder_weights=None, in_channels=s.k, classes=2)


def on_device(model: nn.Module, s: Settings, device: torch.device) -> nn.Module:
    """Model on the device; channels_last on CUDA (as both peers' anchors were measured)."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


# ----------------------------------------------------------------------------- training


def slicewise_train_rate(s: Settings, raw_path: Path, labels_path: Path, device: torch.device) -> dict[str, Any]:
    """Images/s of slicewise's own ``train()``: SliceDataModule (stack_slices crops in DataLoader
    workers) → SegmentationModule (to_unit_float + augment on the device, CE + Dice loss, AdamW,
    LR schedule, grad clipping, logging) under a Lightning Trainer. A callback synchronizes and
    stamps the time after steps ``warmup``, ``warmup + steps``, …; checkpoint writing happens after
    the last stamp and is not timed. Augmentation is set to the peer's work (flips, z-reversal)."""

    from slicewise.training import train

    total = s.warmup + s.repeats * s.steps
    aug = {
        "flip": 0.5,
        "z_reverse": 0.5,
        "rot90": 0.0,
        "brightness": 0.0,
        "contrast": 0.0,
        "gamma": 0.0,
        "noise": 0.0,
        "blur": 0.0,
    }
    config = {
        "seed": 0,
        "data": {
            "raw": str(raw_path),
            "labels": str(labels_path),
            "patch_size": [s.size, s.size],
            "batch_size": s.batch,
            "val_fraction": 0.0,
            "foreground_fraction": 0.0,
            "num_workers": s.workers,
            "on_device": {"true": True, "false": False}.get(s.on_device, "auto"),
        },
        "model": {"encoder": s.encoder, "weights": "random", "in_slices": s.k, "channel_init": "uniform", "classes": 2},
        "augment": aug,
        "trainer": {
            "max_steps": total,
            "val_every": total,
            "log_every": 10,
            "accelerator": "gpu" if device.type == "cuda" else "cpu",
            "devices": 1,
            "precision": "bf16-mixed" if s.bf16 else "32",
            "compile": s.compile,
        },
    }
    timer = step_timer(s, device)
    with tempfile.TemporaryDirectory() as tmp:
        train(config, out=Path(tmp) / "run", callbacks=[timer])
    windows = [b - a for a, b in zip(timer.stamps, timer.stamps[1:])]
    return {"value": rate(s.steps * s.batch, windows), "config": config}


def peer_train_rate(s: Settings, raw: np.ndarray, labels: np.ndarray, device: torch.device) -> dict[str, Any]:
    """Images/s of the reference: smp Unet fed by a torch DataLoader (workers, pinned memory) over
    :class:`PeerCrops`; per step uint8 → float/255 on the device, bf16 autocast, CE + smp Dice
    loss, AdamW; channels_last on CUDA."""
    import segmentation_models_pytorch as smp

    model = on_device(peer_unet(s), s, device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    net = torch.compile(model) if s.compile else model
    dice = smp.losses.DiceLoss("multiclass")
    total = s.warmup + s.repeats * s.steps
    loader = torch.utils.data.DataLoader(
        PeerCrops(raw, labels, s.size, s.k, total * s.batch),
        batch_size=s.batch,
        shuffle=True,
        num_workers=s.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=s.workers > 0,
        drop_last=True,
    )
    it = iter(loader)

    def step() -> None:
        x, y = next(it)
        x = x.to(device, non_blocking=True).float().div_(255)
        y = y.to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(s):
            out = net(x)
        out = out.float()
        loss = F.cross_entropy(out, y) + dice(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return {"value": rate(s.steps * s.batch, time_windows(step, s, device))}


def model_train_rate(model: nn.Module, s: Settings, device: torch.device) -> float:
    """Images/s of a training step on one fixed batch already on the device (model only: bf16
    autocast, cross-entropy, backward, AdamW; compiled with ``s.compile``); the same loop for both networks."""
    model = on_device(model, s, device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    net = torch.compile(model) if s.compile else model
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(s.batch, s.k, s.size, s.size, generator=gen).to(device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (s.batch, s.size, s.size), generator=gen).to(device)

    def step() -> None:
        with autocast(s):
            out = net(x)
        F.cross_entropy(out.float(), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return rate(s.steps * s.batch, time_windows(step, s, device))


def bench_train(
    s: Settings, device: torch.device, data: tuple[np.ndarray, np.ndarray], results: dict[str, Any]
) -> None:
    """Rows ``train`` (end to end) and ``train_model`` (model only), images/s."""
    from slicewise.data.io import write_volume

    raw, labels = data
    with tempfile.TemporaryDirectory() as tmp:
        raw_path, labels_path = write_volume(Path(tmp) / "raw.tif", raw), write_volume(Path(tmp) / "labels.tif", labels)
        ours = slicewise_train_rate(s, raw_path, labels_path, device)
    free(device)
    theirs = peer_train_rate(s, raw, labels, device)
    free(device)
    results["train"] = row(
        "img/s",
        ours["value"],
        theirs["value"],
        "smp Unet + torch DataLoader (crops, flips, z-reversal)",
        slicewise_config=ours["config"],
    )
    sw_model, peer_model = slicewise_unet(s), peer_unet(s)
    shape = (s.k, s.size, s.size)
    fl = {
        "slicewise_gflop_per_image": forward_gflops(sw_model, shape),
        "peer_gflop_per_image": forward_gflops(peer_model, shape),
    }
    ours_m = model_train_rate(sw_model, s, device)
    free(device)
    theirs_m = model_train_rate(peer_model, s, device)
    free(device)
    results["train_model"] = row("img/s", ours_m, theirs_m, "smp Unet, same loop", **fl)


# ----------------------------------------------------------------------------- training input


MATCHED_AUG = {
    "flip": 0.5,
    "z_reverse": 0.5,
    "rot90": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "gamma": 0.0,
    "noise": 0.0,
    "blur": 0.0,
}


def bench_input(
    s: Settings, device: torch.device, data: tuple[np.ndarray, np.ndarray], results: dict[str, Any]
) -> None:
    """Rows ``train_input`` / ``train_input_full``: training batches/s × batch (img/s) ready on the device,
    augmented, as the training step receives them. slicewise: :meth:`DevicePatchSampler.sample` with the
    augmentation (volume and labels resident on the device; the whole batch drawn, cropped, stacked and
    geometrically augmented in one gather there, then the intensity steps), what ``data.on_device`` feeds
    the training step. Peer: today's worker path, a torch DataLoader (``input_workers`` workers,
    persistent, pinned on CUDA) over :class:`PatchDataset` (numpy sampling + ``stack_slices`` per item),
    batches copied to the device and augmented there the same way. Same volume, ``foreground_fraction``
    0.5 (the config default), k, patch and batch; ``train_input`` uses the matched augmentation
    (flips, z-reversal), ``train_input_full`` the default ``AugmentConfig`` (adds rot90, brightness,
    contrast, gamma, noise, blur).

    Each side runs with the torch threads ``slicewise train`` gives it on this machine
    (:func:`~slicewise.utils.device.configure_threads`): the device path is one process (all cores), the
    worker path's main process shares the cores with its workers (cores // (1 + workers), at least 1).
    Windows are ``input_steps`` batches (the rows run at thousands of img/s: short windows are noise) and
    alternate between the sides (:func:`interleaved_windows`), so a slow spell of a shared machine hits
    both; the peer's loader prefetches while slicewise's window runs (up to 2 batches per worker start
    each of its windows ready: in the peer's favour)."""
    from slicewise.data.augment import AugmentConfig, augment
    from slicewise.data.sampling import DevicePatchSampler, PatchDataset, PatchSampler, sample_seed
    from slicewise.utils.device import available_cores

    raw, labels = data
    before = torch.get_num_threads()
    threads = {"slicewise": available_cores(), "peer": max(1, available_cores() // (1 + s.input_workers))}
    timing = dataclasses.replace(s, steps=s.input_steps)
    sampler = PatchSampler(raw, labels, patch=(s.size, s.size), k=s.k, foreground_fraction=0.5, seed=0)
    resident = DevicePatchSampler(sampler, device)
    total = s.warmup + s.repeats * timing.steps
    for name, aug in (("train_input", AugmentConfig.from_dict(MATCHED_AUG)), ("train_input_full", AugmentConfig())):
        gen = torch.Generator(device=device)
        step = {"n": 0}

        def ours(aug: AugmentConfig = aug, gen: torch.Generator = gen, step: dict[str, int] = step) -> None:
            gen.manual_seed(sample_seed(0, step["n"]))
            x, y = resident.sample(s.batch, gen, augment=aug)
            y.long()
            step["n"] += 1

        loader = torch.utils.data.DataLoader(
            PatchDataset(sampler, (total + 4) * s.batch),
            batch_size=s.batch,
            shuffle=False,
            num_workers=s.input_workers,
            persistent_workers=s.input_workers > 0,
            pin_memory=device.type == "cuda",
            drop_last=True,
        )
        it = iter(loader)
        peer_gen = torch.Generator(device=device)

        def theirs(aug: AugmentConfig = aug, it: Any = it, gen: torch.Generator = peer_gen) -> None:
            x, y = next(it)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True).long()
            augment(x, y, config=aug, generator=gen)

        mine, peer = interleaved_windows({"slicewise": ours, "peer": theirs}, timing, device, threads, settle=0.5)
        del it, loader
        pairs = [b / a for a, b in zip(mine, peer)]  # slicewise / peer throughput, window by window
        results[name] = row(
            "img/s",
            rate(timing.steps * s.batch, mine),
            rate(timing.steps * s.batch, peer),
            f"torch DataLoader ({s.input_workers} workers) over PatchDataset",
            augmentation=dict(vars(aug)),
            resident_mbytes=resident.nbytes / 1e6,
            torch_threads=dict(threads),
            window_seconds={"slicewise": mine, "peer": peer},
            window_ratios=pairs,
            window_ratio_median=float(statistics.median(pairs)),
        )
    torch.set_num_threads(before)
    free(device)


# ----------------------------------------------------------------------------- prediction overhead


def profiled_fraction_outside(model: nn.Module, run: Callable[[], Any], device: torch.device) -> dict[str, float]:
    """Where the wall time of ``run()`` goes relative to ``model``'s forward. ``profiler``: 1 − (total of a
    ``record_function("network_forward")`` range opened and closed by forward hooks, CPU time or device
    time on CUDA, from ``torch.profiler``) / wall; ``outside_s``: wall − that total. ``timer``: the same
    fraction from ``perf_counter`` stamps in the hooks in a second, unprofiled run (a cross-check of the
    profiler's own overhead; on CUDA the stamps time launches, so only the profiler figure counts there)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    spans: list[Any] = []
    timer = {"t": 0.0, "t0": 0.0}

    def pre(m: nn.Module, args: Any) -> None:
        spans.append(record_function("network_forward"))
        spans[-1].__enter__()
        timer["t0"] = time.perf_counter()

    def post(m: nn.Module, args: Any, out: Any) -> None:
        timer["t"] += time.perf_counter() - timer["t0"]
        spans.pop().__exit__(None, None, None)

    hooks = [model.register_forward_pre_hook(pre), model.register_forward_hook(post)]
    try:
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            t0 = time.perf_counter()
            run()
            sync(device)
            wall = time.perf_counter() - t0
        ev = [e for e in prof.key_averages() if e.key == "network_forward"]
        inside = sum((e.device_time_total if device.type == "cuda" else e.cpu_time_total) for e in ev) / 1e6
        timer["t"] = 0.0
        t0 = time.perf_counter()
        run()
        sync(device)
        wall2 = time.perf_counter() - t0
    finally:
        for h in hooks:
            h.remove()
    return {
        "profiler": 1.0 - inside / wall,
        "timer": 1.0 - timer["t"] / wall2,
        "wall_s": wall,
        "outside_s": wall - inside,
    }


class ProbeNet(nn.Module):
    """A near-free stand-in network (one 1×1 convolution, k slices → 2 classes) with the model contract
    ``predict`` reads: with it, prediction time is the engine's own host and tensor work."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.in_slices, self.in_channels, self.out_channels, self.size_divisor = k, k, 2, 1
        self.heads = {"seg": slice(0, 2)}
        self.conv = nn.Conv2d(k, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def bench_overhead(
    s: Settings, device: torch.device, data: tuple[np.ndarray, np.ndarray], results: dict[str, Any]
) -> None:
    """Row ``predict_overhead`` (lower is better): fraction of whole-volume prediction wall time spent outside
    the network forward (torch profiler), slicewise ``predict`` (block engine) vs MONAI's sliding window with
    the same network (``encoder`` U-Net), tile, overlap and batch; median of up to 3 profiled passes after a
    warm-up. Extras: the same with :class:`ProbeNet` (``*_outside_ms_per_tile``: the engine's own cost per
    tile, to set against a GPU's forward time per tile) and the unprofiled timer fractions."""
    from slicewise.data.tiling import tile_starts
    from slicewise.infer.predict import predict

    z, h, w = s.predict_volume or data[0].shape
    raw = np.ascontiguousarray(data[0][:z, :h, :w])
    tiles = z * len(tile_starts(h, s.size, 0.25)) * len(tile_starts(w, s.size, 0.25))
    figures: dict[str, dict[str, list[dict[str, float]]]] = {}
    for label, net in (("unet", slicewise_unet(s)), ("probe", ProbeNet(s.k))):
        net = on_device(net, s, device).eval()

        def ours(net: nn.Module = net) -> Any:
            return predict(net, raw, tile=s.size, overlap=0.25, batch_size=s.batch, device=str(device), progress=False)

        def theirs(net: nn.Module = net) -> Any:
            return monai_predict(net, raw, s, device)

        ours()
        theirs()
        figures[label] = {"ours": [], "theirs": []}
        for _ in range(min(s.repeats, 3)):
            figures[label]["ours"].append(profiled_fraction_outside(net, ours, device))
            figures[label]["theirs"].append(profiled_fraction_outside(net, theirs, device))

    def med(label: str, side: str, key: str) -> float:
        return float(statistics.median(f[key] for f in figures[label][side]))

    results["predict_overhead"] = row(
        "fraction outside forward (lower is better)",
        med("unet", "ours", "profiler"),
        med("unet", "theirs", "profiler"),
        "MONAI sliding_window_inference, same network",
        volume=[z, h, w],
        tiles=tiles,
        slicewise_timer_fraction=med("unet", "ours", "timer"),
        peer_timer_fraction=med("unet", "theirs", "timer"),
        slicewise_wall_s=med("unet", "ours", "wall_s"),
        peer_wall_s=med("unet", "theirs", "wall_s"),
        slicewise_outside_ms_per_tile=1e3 * med("probe", "ours", "outside_s") / tiles,
        peer_outside_ms_per_tile=1e3 * med("probe", "theirs", "outside_s") / tiles,
        probe_slicewise_fraction=med("probe", "ours", "profiler"),
        probe_peer_fraction=med("probe", "theirs", "profiler"),
    )
    free(device)


# ----------------------------------------------------------------------------- prediction


def monai_predict(model: nn.Module, raw: np.ndarray, s: Settings, device: torch.device) -> np.ndarray:
    """Reference whole-volume prediction: 3-slice stacks of ``predict_planes`` centres at a time →
    MONAI ``sliding_window_inference`` (roi ``size``², overlap 0.25, Gaussian, bf16 autocast) →
    softmax → float32 (C, Z, Y, X) on the host, like slicewise's output."""
    from monai.inferers import sliding_window_inference

    depth = raw.shape[0]
    out = np.empty((2, *raw.shape), dtype=np.float32)
    with torch.inference_mode():
        for z0 in range(0, depth, s.predict_planes):
            zs = range(z0, min(z0 + s.predict_planes, depth))
            x = (
                torch.from_numpy(np.stack([raw[reflect_window(z, depth, s.k)] for z in zs]))
                .to(device)
                .float()
                .div_(255)
            )
            with autocast(s):
                logits = sliding_window_inference(
                    x, (s.size, s.size), sw_batch_size=s.batch, predictor=model, overlap=0.25, mode="gaussian"
                )
            out[:, zs.start : zs.stop] = torch.softmax(logits.float(), dim=1).permute(1, 0, 2, 3).cpu().numpy()
    return out


def bench_predict(
    s: Settings, device: torch.device, data: tuple[np.ndarray, np.ndarray], results: dict[str, Any]
) -> None:
    """Row ``predict``: Mvoxel/s over the whole volume, same network (slicewise's U-Net) on both sides."""
    from slicewise.infer.predict import predict

    raw = data[0]
    model = slicewise_unet(s)
    model.eval()
    mvox = raw.size / 1e6
    ours = time_windows(
        lambda: predict(model, raw, tile=s.size, overlap=0.25, batch_size=s.batch, device=str(device), progress=False),
        repeat_only(s),
        device,
    )
    peer_model = on_device(model, s, device).eval()  # the same network, as predict left it
    theirs = time_windows(lambda: monai_predict(peer_model, raw, s, device), repeat_only(s), device)
    free(device)
    results["predict"] = row(
        "Mvoxel/s", rate(mvox, ours), rate(mvox, theirs), "MONAI sliding_window_inference (gaussian, overlap 0.25)"
    )


def repeat_only(s: Settings) -> Settings:
    """Settings for whole-volume work: one warm-up pass, one pass per timed window."""
    return Settings(**{**asdict(s), "warmup": 1, "steps": 1, "repeats": min(s.repeats, 3)})


# ----------------------------------------------------------------------------- attribution


def captum_attribution(
    model: nn.Module, raw: np.ndarray, origins: np.ndarray, s: Settings, method: str, device: torch.device
) -> np.ndarray:
    """Reference: Captum ``Saliency`` / ``IntegratedGradients`` (``n_steps``, internal batch = batch,
    zero baseline) per batch of tiles, target = sum of the class-1 logit; fp32. Returns the
    per-slice share of |attribution| per tile (N, k) on the host."""
    from captum.attr import IntegratedGradients, Saliency

    def target(x: torch.Tensor) -> torch.Tensor:
        return model(x)[:, 1].sum(dim=(1, 2))

    depth = raw.shape[0]
    shares = []
    for i in range(0, len(origins), s.batch):
        tiles = [
            raw[reflect_window(z, depth, s.k), y : y + s.size, x : x + s.size] for z, y, x in origins[i : i + s.batch]
        ]
        x = torch.from_numpy(np.stack(tiles)).to(device).float().div_(255).requires_grad_(True)
        if method == "saliency":
            a = Saliency(target).attribute(x)
        else:
            a = IntegratedGradients(target).attribute(x, n_steps=s.ig_steps, internal_batch_size=s.batch)
        per = a.detach().abs().sum(dim=(2, 3))
        shares.append((per / per.sum(1, keepdim=True)).cpu().numpy())
    return np.concatenate(shares)


def bench_attribution(
    s: Settings, device: torch.device, data: tuple[np.ndarray, np.ndarray], results: dict[str, Any]
) -> None:
    """Rows ``attribution_saliency`` / ``attribution_ig``: tiles/s of slicewise ``attribution_report``
    (tile sampling, stacking, Captum on the device, slice shares, bootstrap summary) vs plain Captum."""
    from slicewise.diagnostics.attribution import attribution_report

    raw = data[0]
    model = slicewise_unet(s).to(device).eval()
    rng = np.random.default_rng(0)
    for name, method, n in (("attribution_saliency", "saliency", s.attr_tiles), ("attribution_ig", "ig", s.ig_tiles)):
        origins = np.stack(
            [
                rng.integers(0, raw.shape[0], n),
                rng.integers(0, raw.shape[1] - s.size + 1, n),
                rng.integers(0, raw.shape[2] - s.size + 1, n),
            ],
            axis=1,
        )
        # time_windows calls each closure at once, in this iteration; the defaults bind the loop values all the same
        ours = time_windows(
            lambda method=method, n=n: attribution_report(
                model,
                raw,
                method=method,
                n_tiles=n,
                tile=s.size,
                batch_size=s.batch,
                n_steps=s.ig_steps,
                device=device,
                n_maps=0,
            ),
            repeat_only(s),
            device,
        )
        theirs = time_windows(
            lambda origins=origins, method=method: captum_attribution(model, raw, origins, s, method, device),
            repeat_only(s),
            device,
        )
        peer = "Captum Saliency" if method == "saliency" else f"Captum IntegratedGradients ({s.ig_steps} steps)"
        results[name] = row("img/s", rate(n, ours), rate(n, theirs), peer + ", per batch, fp32", tiles=n)
        if method == "saliency":
            fast = time_windows(
                lambda method=method, n=n: attribution_report(
                    model,
                    raw,
                    method=method,
                    n_tiles=n,
                    tile=s.size,
                    batch_size=s.batch,
                    device=device,
                    n_maps=0,
                    bf16=True,
                    channels_last=True,
                ),
                repeat_only(s),
                device,
            )
            results["attribution_saliency_bf16"] = row(
                "img/s",
                rate(n, fast),
                rate(n, theirs),
                peer + ", per batch, fp32",
                tiles=n,
                slicewise_precision="bf16 autocast + channels_last",
            )
    free(device)


# ----------------------------------------------------------------------------- SAM ViT-B


def bench_sam(s: Settings, device: torch.device, results: dict[str, Any]) -> None:
    """Row ``sam``: images/s of slicewise's ViT encoder forward (timm ViT ``forward_intermediates``
    + deconvolution ladder) vs timm's SAM image encoder as is (``forward_features``, incl. neck),
    inference, bf16 autocast on CUDA; with ``--compile`` both forwards go through ``torch.compile``."""
    import timm

    from slicewise.models import build_model

    ours_model = build_model(
        encoder=s.sam_encoder, weights="random", in_slices=s.k, img_size=s.sam_size, classes=2
    ).encoder
    peer_model = timm.create_model(s.sam_encoder, pretrained=False, img_size=s.sam_size, in_chans=s.k)
    shape = (s.k, s.sam_size, s.sam_size)
    x = torch.rand(s.sam_batch, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    figures = {}
    for side, model, fn in (("slicewise", ours_model, None), ("peer", peer_model, lambda m, t: m.forward_features(t))):
        model = model.to(device).eval()
        call = fn or (lambda m, t: m(t))
        if s.compile:  # both sides compiled (--compile), as the training rows
            call = torch.compile(call, dynamic=False)

        def step(model: nn.Module = model, call: Callable[..., Any] = call) -> None:
            with torch.inference_mode(), autocast(s):
                call(model, x)

        figures[side] = rate(s.steps * s.sam_batch, time_windows(step, s, device))
        figures[f"{side}_gflop_per_image"] = forward_gflops(model.cpu(), shape, fn)
        free(device)
    results["sam"] = row(
        "img/s",
        figures["slicewise"],
        figures["peer"],
        f"timm {s.sam_encoder} forward_features",
        slicewise_gflop_per_image=figures["slicewise_gflop_per_image"],
        peer_gflop_per_image=figures["peer_gflop_per_image"],
    )


# ----------------------------------------------------------------------------- self-supervised pretraining


class PeerViews(torch.utils.data.Dataset):
    """Reference pretraining data for lightly's MoCo v2 recipe: per item a random k-slice region of the
    volume (reflected at the ends), and two views of it made by torchvision transforms on the tensor,
    as close as torchvision gets to slicewise's pretraining views: random resized crop (scale 0.2–1) to
    ``size``, y/x flips, z-reversal, brightness/contrast jitter (p 0.8), Gaussian blur (p 0.5), Gaussian
    noise. (lightly's ``MoCoV2Transform`` is PIL/RGB: hue, saturation and random grayscale would mix
    the slices of a 2.5D stack, so its geometric and intensity steps are rebuilt here.)"""

    def __init__(self, raw: np.ndarray, size: int, k: int, length: int) -> None:
        from torchvision.transforms import v2

        self.raw, self.size, self.k, self.length = raw, size, k, length
        self.region = min(2 * size, raw.shape[1], raw.shape[2])
        self.views = v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.RandomVerticalFlip(),
                v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8),
                v2.RandomApply([v2.GaussianBlur(9, sigma=(0.1, 2.0))], p=0.5),
            ]
        )

    def __len__(self) -> int:
        return self.length

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        v = self.views(x)
        if torch.rand(()) < 0.5:
            v = v.flip(0)  # z-reversal
        return (v + 0.02 * torch.randn_like(v)).clamp_(0, 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(i)
        depth, h, w = self.raw.shape
        z = int(rng.integers(depth))
        y0, x0 = int(rng.integers(h - self.region + 1)), int(rng.integers(w - self.region + 1))
        x = (
            torch.from_numpy(
                np.ascontiguousarray(
                    self.raw[reflect_window(z, depth, self.k), y0 : y0 + self.region, x0 : x0 + self.region]
                )
            )
            .float()
            .div_(255)
        )
        return self._view(x), self._view(x)


SSL_AUG = {
    "flip": 0.5,
    "rot90": 0.0,
    "z_reverse": 0.5,
    "brightness": 0.8,
    "brightness_range": (-0.2, 0.2),
    "contrast": 0.8,
    "contrast_range": (0.6, 1.4),
    "gamma": 0.0,
    "noise": 1.0,
    "noise_range": (0.0, 0.02),
    "blur": 0.5,
    "blur_range": (0.1, 2.0),
}
"""The pretraining views' augmentation, set to the peer's work (:class:`PeerViews`: flips, z-reversal, jitter, blur,
noise)."""


def slicewise_pretrain_rate(s: Settings, raw_path: Path, device: torch.device) -> dict[str, Any]:
    """Images/s (pairs of views per second) of ``slicewise.pretrain`` itself: MoCo v2 (lightly's loss, head and
    momentum update inside slicewise's Lightning module), views drawn by :class:`slicewise.selfsup.views.ViewSource`
    (device-resident volume when it fits: ``data.on_device`` auto), the peer's encoder, k, crop size, batch, head
    (512 → 128), temperature, memory bank and momentum; no validation. A callback synchronizes and stamps the
    time after steps ``warmup``, ``warmup + steps``, …; start-up and the final weights file are not timed."""

    from slicewise.selfsup import pretrain

    total = s.warmup + s.repeats * s.steps
    config = {
        "seed": 0,
        "data": {
            "patch_size": s.ssl_size,
            "batch_size": s.ssl_batch,
            "on_device": {"true": True, "false": False}.get(s.on_device, "auto"),
        },
        "model": {"encoder": s.ssl_encoder, "weights": "random", "in_slices": s.k, "channel_init": "uniform"},
        "method": {
            "name": "mocov2",
            "temperature": 0.1,
            "memory_bank": 4096,
            "momentum": 0.996,
            "hidden_dim": 512,
            "output_dim": 128,
        },
        "views": {"region_scale": 2.0, "crop_scale": (0.2, 1.0), "augment": SSL_AUG},
        "optim": {"warmup_steps": 0},
        "trainer": {
            "max_steps": total,
            "val_every": total + 1,
            "log_every": 10,
            "accelerator": "gpu" if device.type == "cuda" else "cpu",
            "devices": 1,
            "precision": "bf16-mixed" if s.bf16 else "32",
        },
    }
    timer = step_timer(s, device)
    with tempfile.TemporaryDirectory() as tmp:
        pretrain([str(raw_path)], out=Path(tmp) / "run", config=config, callbacks=[timer])
    windows = [b - a for a, b in zip(timer.stamps, timer.stamps[1:])]
    return {"value": rate(s.steps * s.ssl_batch, windows), "config": config}


def bench_pretrain(
    s: Settings, device: torch.device, data: tuple[np.ndarray, np.ndarray], results: dict[str, Any]
) -> None:
    """Row ``pretrain``: self-supervised MoCo v2 pretraining throughput, images (view pairs) per second,
    ``slicewise.pretrain`` (:func:`slicewise_pretrain_rate`) against lightly's own recipe fed by a torch
    DataLoader (:func:`peer_pretrain_rate`), on the same uint8 volume."""
    from slicewise.data.io import write_volume

    raw, _ = data
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / "raw.tif"
        write_volume(raw_path, raw)
        ours = slicewise_pretrain_rate(s, raw_path, device)
    free(device)
    theirs = peer_pretrain_rate(s, raw, device)
    free(device)
    results["pretrain"] = row(
        "img/s",
        ours["value"],
        theirs["value"],
        f"lightly MoCo v2 recipe fed by a torch DataLoader ({s.workers} workers, torchvision views)",
        encoder=s.ssl_encoder,
        crop=s.ssl_size,
        batch=s.ssl_batch,
        k=s.k,
        slicewise_config=ours["config"],
    )


def peer_pretrain_rate(s: Settings, raw: np.ndarray, device: torch.device) -> dict[str, Any]:
    """Images/s (pairs of views per second) of lightly's own MoCo v2 recipe (its ``examples/pytorch/moco.py``):
    a timm backbone (``ssl_encoder``, random, ``in_chans`` = k, global average pool) with lightly's
    ``MoCoProjectionHead`` (2-layer MLP → 128), momentum copies updated by ``update_momentum`` (m 0.996),
    ``NTXentLoss(temperature 0.1, memory bank 4096 × 128)``, SGD (lr 0.06, momentum 0.9, weight decay 5e-4);
    bf16 autocast on CUDA; fed by a torch DataLoader (``workers`` workers, pinned on CUDA) over :class:`PeerViews`."""
    import timm
    from lightly.loss import NTXentLoss
    from lightly.models.modules import MoCoProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum

    backbone = timm.create_model(s.ssl_encoder, pretrained=False, in_chans=s.k, num_classes=0)
    head = MoCoProjectionHead(backbone.num_features, 512, 128)
    backbone_m, head_m = copy.deepcopy(backbone), copy.deepcopy(head)
    deactivate_requires_grad(backbone_m)
    deactivate_requires_grad(head_m)
    for m in (backbone, head, backbone_m, head_m):
        m.to(device)
    criterion = NTXentLoss(temperature=0.1, memory_bank_size=(4096, 128))
    params = [*backbone.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=0.06, momentum=0.9, weight_decay=5e-4)
    total = s.warmup + s.repeats * s.steps
    loader = torch.utils.data.DataLoader(
        PeerViews(raw, s.ssl_size, s.k, (total + 2) * s.ssl_batch),
        batch_size=s.ssl_batch,
        shuffle=True,
        num_workers=s.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=s.workers > 0,
        drop_last=True,
    )
    it = iter(loader)

    def step() -> None:
        xq, xk = next(it)
        xq, xk = xq.to(device, non_blocking=True), xk.to(device, non_blocking=True)
        update_momentum(backbone, backbone_m, m=0.996)
        update_momentum(head, head_m, m=0.996)
        with autocast(s):
            q = head(backbone(xq))
            with torch.no_grad():
                key = head_m(backbone_m(xk)).detach()
        loss = criterion(q.float(), key.float())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return {"value": rate(s.steps * s.ssl_batch, time_windows(step, s, device))}


# ----------------------------------------------------------------------------- MFU


def matmul_peak_tflops(s: Settings, device: torch.device) -> float:
    """Measured dense matmul TFLOP/s of the card: (n×n)·(n×n) in bf16 on CUDA (fp32 elsewhere), 2n³ FLOP each."""
    dtype = torch.bfloat16 if s.bf16 else torch.float32
    a = torch.randn(s.matmul_n, s.matmul_n, device=device, dtype=dtype)
    b = torch.randn(s.matmul_n, s.matmul_n, device=device, dtype=dtype)
    reps = Settings(**{**asdict(s), "warmup": 3, "steps": 10, "repeats": 5})
    return rate(2 * s.matmul_n**3 / 1e12, time_windows(lambda: a @ b, reps, device))


def bench_mfu(
    s: Settings,
    device: torch.device,
    data: tuple[np.ndarray, np.ndarray],
    results: dict[str, Any],
    meta: dict[str, Any],
) -> None:
    """Rows ``mfu_train`` (model-only training step, 3 × forward FLOPs) and ``mfu_sam`` (encoder
    forward): achieved TFLOP/s over the measured matmul peak; measures the rows they need if absent."""
    peak = matmul_peak_tflops(s, device)
    meta["matmul_peak_tflops"] = peak
    if "train_model" not in results:
        sw, peer = slicewise_unet(s), peer_unet(s)
        shape = (s.k, s.size, s.size)
        results["train_model"] = row(
            "img/s",
            model_train_rate(sw, s, device),
            model_train_rate(peer, s, device),
            "smp Unet, same loop",
            slicewise_gflop_per_image=forward_gflops(sw, shape),
            peer_gflop_per_image=forward_gflops(peer, shape),
        )
        free(device)
    if "sam" not in results:
        bench_sam(s, device, results)
    for name, source, factor in (("mfu_train", "train_model", 3.0), ("mfu_sam", "sam", 1.0)):
        src = results[source]
        tf = {side: src[side] * factor * src[f"{side}_gflop_per_image"] / 1e3 for side in ("slicewise", "peer")}
        results[name] = row(
            "fraction of peak",
            tf["slicewise"] / peak,
            tf["peer"] / peak,
            f"{source} peer",
            slicewise_tflops=tf["slicewise"],
            peer_tflops=tf["peer"],
            peak_tflops=peak,
            flop_factor=factor,
        )


# ----------------------------------------------------------------------------- output


def row(unit: str, ours: float, theirs: float, peer: str, **extra: Any) -> dict[str, Any]:
    """One table row: both figures, ratio slicewise / peer, the peer's description, extras."""
    return {
        "unit": unit,
        "slicewise": float(ours),
        "peer": float(theirs),
        "ratio": float(ours) / float(theirs),
        "peer_name": peer,
        **extra,
    }


def free(device: torch.device) -> None:
    """Release cached CUDA memory between measurements."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def versions() -> dict[str, str]:
    """Versions of the libraries involved (missing ones omitted)."""
    import importlib.metadata as md

    out = {}
    for name in (
        "torch",
        "timm",
        "pytorch-lightning",
        "captum",
        "segmentation-models-pytorch",
        "monai",
        "lightly",
        "slicewise",
    ):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def table(results: dict[str, Any]) -> str:
    """Plain-text table: row, unit, slicewise, peer, ratio (errors shown in place)."""
    lines = [f"{'row':<27}{'unit':<26}{'slicewise':>12}{'peer':>12}{'ratio':>9}"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{name:<27}error: {r['error']}")
        else:
            unit = r["unit"].split(" (")[0]
            lines.append(f"{name:<27}{unit:<26}{r['slicewise']:>12.4g}{r['peer']:>12.4g}{r['ratio']:>9.3f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda, cuda:N or cpu")
    p.add_argument("--smoke", action="store_true", help="tiny shapes for a CPU check (seconds)")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/<device>.json)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training rows' networks and the SAM encoders (both sides)",
    )
    p.add_argument(
        "--only",
        default=None,
        help=f"comma-separated groups: {','.join(GROUPS)} (default: all; {CPU_GROUPS} for a full --device cpu run)",
    )
    p.add_argument(
        "--on-device",
        default="auto",
        choices=("auto", "true", "false"),
        help="data.on_device of the train row's slicewise run (device-resident batches or DataLoader workers)",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="run the groups this many times; rows are medians, every run is kept"
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of an existing --out file that this run does not measure (e.g. add one row to cpu.json)",
    )
    return p.parse_args(argv)


def machine() -> dict[str, Any]:
    """Host facts for the JSON: host name, CPU model, threads torch uses, load averages (1/5/15 min) now."""
    import platform

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "host": platform.node(),
        "cpu_model": model,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg": list(os.getloadavg()),
    }


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows over repeated runs: figures and ratio are medians over the runs (per-run ratios kept in ``ratio_runs``)."""
    out: dict[str, Any] = {}
    for name in ROWS:
        rows = [r["rows"][name] for r in runs if name in r["rows"]]
        if not rows:
            continue
        good = [r for r in rows if "error" not in r]
        if not good:
            out[name] = rows[0]
            continue
        med = dict(good[-1])
        for key in ("slicewise", "peer", "ratio"):
            med[key] = float(statistics.median(r[key] for r in good))
        if len(good) > 1:
            med["ratio_runs"] = [r["ratio"] for r in good]
        out[name] = med
    return out


def kept_rows(path: Path) -> dict[str, Any] | None:
    """The payload of an existing results file (``--merge``), or None when there is none."""
    import json

    return json.loads(path.read_text()) if path.is_file() else None


def merged(payload: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """``payload`` plus the rows of ``old`` it does not measure (``--merge``), in :data:`ROWS` order; ``merged``
    records which rows were kept with the meta (time, machine, load), settings and runs of the run that measured
    them."""
    if not old:
        return payload
    kept = {k: v for k, v in old.get("rows", {}).items() if k not in payload["rows"]}
    if not kept:
        return payload
    rows = {**kept, **payload["rows"]}
    order = [r for r in ROWS if r in rows] + [r for r in rows if r not in ROWS]
    history = [
        *old.get("merged", []),
        {
            "rows": sorted(kept),
            "meta": old.get("meta"),
            "settings": old.get("settings"),
            **({"runs": old["runs"]} if "runs" in old else {}),
        },
    ]
    return {**payload, "rows": {r: rows[r] for r in order}, "merged": history}


def _groups(args: argparse.Namespace, device: torch.device) -> tuple[list[str], str | None]:
    """The groups to run (``--only``, else the device's default set) and the one-line error that stops the run."""
    only = args.only or (CPU_GROUPS if device.type == "cpu" and not args.smoke else ",".join(GROUPS))
    groups = [g.strip() for g in only.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        return groups, f"unknown group(s) {', '.join(unknown)}: use {','.join(GROUPS)}"
    if device.type == "cuda" and not torch.cuda.is_available():
        return groups, "--device cuda but CUDA is not available here: use --device cpu"
    return groups, None


def _runners(
    s: Settings, device: torch.device, data: Any, meta: dict[str, Any]
) -> dict[str, Callable[[dict[str, Any]], None]]:
    """``{group: run}``: each run measures its group's rows into the results dict it is given."""
    return {
        "train": lambda r: bench_train(s, device, data, r),
        "input": lambda r: bench_input(s, device, data, r),
        "predict": lambda r: bench_predict(s, device, data, r),
        "overhead": lambda r: bench_overhead(s, device, data, r),
        "attribution": lambda r: bench_attribution(s, device, data, r),
        "sam": lambda r: bench_sam(s, device, r),
        "mfu": lambda r: bench_mfu(s, device, data, r, meta),
        "pretrain": lambda r: bench_pretrain(s, device, data, r),
    }


def _run_group(group: str, run: Callable[[dict[str, Any]], None], results: dict[str, Any]) -> bool:
    """Run one group into ``results``; a failure is recorded in its rows (the other groups' figures are kept) and
    returns False."""
    try:
        run(results)
    except Exception as err:  # record and go on: one failing group must not lose the others' figures
        traceback.print_exc()
        for r in GROUPS[group]:
            results.setdefault(r, {"error": f"{type(err).__name__}: {err}"})
        return False
    return True


def _bad_rows(ordered: dict[str, Any]) -> list[str]:
    """Rows with an error or a figure that is not a positive finite number."""
    return [
        r
        for r, v in ordered.items()
        if "error" in v or not all(math.isfinite(v[c]) and v[c] > 0 for c in ("slicewise", "peer"))
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the selected groups, print the table, write the JSON; exit status 1 if any group failed."""
    args = parse_args(argv)
    device = torch.device(args.device)
    groups, error = _groups(args, device)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    os.environ.setdefault("SLICEWISE_NO_PROGRESS", "1")
    s = replace(Settings.make(str(device), args.smoke, args.compile), on_device=args.on_device)
    from slicewise.models.tiny_sam import register_tiny_sam

    register_tiny_sam()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = args.out or Path("benchmarks/results") / f"{'smoke-' if s.smoke else ''}{name.replace(' ', '_')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    keep = kept_rows(out) if args.merge else None
    meta: dict[str, Any] = {
        "device_name": name,
        "machine": machine(),
        "versions": versions(),
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = make_volume(s)
    runs: list[dict[str, Any]] = []
    failed = False
    for rep in range(max(1, args.repeat)):
        results: dict[str, Any] = {}
        run_info: dict[str, Any] = {"loadavg_start": list(os.getloadavg()), "rows": results}
        runs.append(run_info)
        runners = _runners(s, device, data, meta)
        for g in groups:
            t0 = time.perf_counter()
            failed = not _run_group(g, runners[g], results) or failed
            print(f"[run {rep + 1}, {g}] {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            write_json(
                out,
                merged({"meta": meta, "settings": asdict(s), "rows": combine(runs), "runs": runs}, keep),
                overwrite=True,
            )
        run_info["loadavg_end"] = list(os.getloadavg())
    ordered = combine(runs)
    payload = {"meta": meta, "settings": asdict(s), "rows": ordered}
    if len(runs) > 1:
        payload["runs"] = runs
    write_json(out, merged(payload, keep), overwrite=True)
    peak = meta.get("matmul_peak_tflops")
    print(
        f"device: {name}; torch {meta['versions'].get('torch')}, timm {meta['versions'].get('timm')}"
        + (f"; matmul peak {peak:.4g} TFLOP/s" if peak else "")
    )
    print(table(ordered))
    print(f"wrote {out}")
    return 1 if failed or _bad_rows(ordered) else 0


if __name__ == "__main__":
    sys.exit(main())
