"""Splits by z-range (gap invariant), the seeded patch sampler and its Dataset wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.data.sampling import PatchDataset, PatchSampler, split_z, subset_count
from slicewise.data.stacking import stack_indices, stack_slices
from slicewise.data.synthetic import MITOCHONDRION, Phantom
from slicewise.errors import InputError

NO_INTENSITY = dict(brightness=0.0, contrast=0.0, gamma=0.0, noise=0.0, blur=0.0)  # geometric augmentation only


def _context(z: int, depth: int, k: int, dz: int, border: str) -> set[int]:
    return set(stack_indices(int(z), depth, k, dz, border).tolist())


@settings(max_examples=150, deadline=None)
@given(
    depth=st.integers(1, 60),
    r=st.integers(0, 3),
    dz=st.integers(1, 4),
    val_fraction=st.floats(0.05, 0.6),
    border=st.sampled_from(["reflect", "replicate", "skip"]),
)
def test_split_gap_separates_contexts(depth: int, r: int, dz: int, val_fraction: float, border: str) -> None:
    k = 2 * r + 1
    try:
        train, val = split_z(depth, k, dz, val_fraction=val_fraction, border=border)
    except InputError:
        return  # too shallow for this k, d and fraction: a one-line error is the right answer
    assert train.size > 0 and not set(train) & set(val)
    train_set, val_set = set(train.tolist()), set(val.tolist())
    for v in val:
        assert not _context(v, depth, k, dz, border) & train_set
    for t in train:
        assert not _context(t, depth, k, dz, border) & val_set
    if val.size:
        assert min(abs(int(t) - int(v)) for t in train for v in val) > r * dz


@settings(max_examples=80, deadline=None)
@given(depth=st.integers(8, 50), r=st.integers(0, 2), dz=st.integers(1, 3), data=st.data())
def test_split_val_range_in_the_middle(depth: int, r: int, dz: int, data: st.DataObject) -> None:
    k = 2 * r + 1
    if (k - 1) * dz + 1 > depth:
        return
    z0 = data.draw(st.integers(0, depth - 1))
    z1 = data.draw(st.integers(z0 + 1, depth))
    try:
        train, val = split_z(depth, k, dz, val_range=(z0, z1))
    except InputError:
        return
    np.testing.assert_array_equal(val, np.arange(z0, z1))
    train_set = set(train.tolist())
    for v in val:
        assert not _context(v, depth, k, dz, "reflect") & train_set
    # everything outside [z0 - r·d, z1 + r·d) is training: the gap is exactly r·d slices
    expected = [z for z in range(depth) if z <= z0 - r * dz - 1 or z >= z1 + r * dz]
    np.testing.assert_array_equal(train, expected)


@settings(max_examples=80, deadline=None)
@given(
    depth=st.integers(10, 50),
    r=st.integers(0, 2),
    dz=st.integers(1, 3),
    val_fraction=st.floats(0.0, 0.4),
    border=st.sampled_from(["reflect", "replicate", "skip"]),
    data=st.data(),
)
def test_split_test_range_is_read_by_no_training_or_validation_stack(
    depth: int, r: int, dz: int, val_fraction: float, border: str, data: st.DataObject
) -> None:
    k = 2 * r + 1
    t0 = data.draw(st.integers(0, depth - 1))
    t1 = data.draw(st.integers(t0 + 1, depth))
    try:
        train, val = split_z(depth, k, dz, val_fraction=val_fraction, border=border, test_range=(t0, t1))
    except InputError:
        return
    test = set(range(t0, t1))
    for z in [*train, *val]:
        assert not _context(z, depth, k, dz, border) & test
    plain_train, plain_val = split_z(depth, k, dz, val_fraction=val_fraction, border=border)
    assert set(train) <= set(plain_train) and set(val) <= set(plain_val)  # only removes centres


def test_split_isbi_example_holds_out_24_to_29() -> None:
    train, val = split_z(30, 3, 1, val_range=(18, 23), test_range=(24, 30))
    assert train.tolist() == list(range(17)) and val.tolist() == list(range(18, 23))


def test_split_errors() -> None:
    with pytest.raises(InputError):
        split_z(4, 3, 1, val_fraction=0.9)
    train, val = split_z(10, 3, 1, val_fraction=0.0)
    assert val.size == 0 and train.size == 10
    with pytest.raises(InputError, match="test_range"):
        split_z(10, 3, 1, test_range=(8, 12))


def test_patch_shapes_and_centre_label(phantom: Phantom) -> None:
    sampler = PatchSampler(phantom.raw, phantom.semantic, patch=(32, 40), k=3, dz=2)
    x, y = sampler.sample(5, np.random.default_rng(0))
    assert x.shape == (5, 3, 32, 40) and x.dtype == np.uint8
    assert y.shape == (5, 32, 40) and y.dtype == phantom.semantic.dtype
    # each patch equals the stack/label found at some crop of the volume: check via the first draw
    rng = np.random.default_rng(7)
    x1, y1 = sampler.sample_one(rng)
    rng = np.random.default_rng(7)
    v, z = sampler.items[rng.integers(len(sampler.items))]
    y0, x0 = int(rng.integers(0, 96 - 32 + 1)), int(rng.integers(0, 96 - 40 + 1))
    np.testing.assert_array_equal(
        x1, stack_slices(phantom.raw, int(z), 3, 2, yx=(slice(y0, y0 + 32), slice(x0, x0 + 40)))
    )
    np.testing.assert_array_equal(y1, phantom.semantic[z, y0 : y0 + 32, x0 : x0 + 40])
    np.testing.assert_array_equal(x1[1], phantom.raw[z, y0 : y0 + 32, x0 : x0 + 40])


def test_extras_cropped_at_the_same_place(phantom: Phantom) -> None:
    plain = PatchSampler(phantom.raw, phantom.semantic, patch=(24, 24), foreground_fraction=0.5, seed=2)
    with_ids = PatchSampler(
        phantom.raw, phantom.semantic, patch=(24, 24), foreground_fraction=0.5, seed=2, extras={"cells": phantom.cells}
    )
    x, y, extra = with_ids.sample(6, 5)
    x0, y0 = plain.sample(6, 5)  # the extras do not change the draws
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    assert extra["cells"].shape == (6, 24, 24) and extra["cells"].dtype == phantom.cells.dtype
    # membranes (semantic 1) are exactly where the cell ids are 0, in every crop
    np.testing.assert_array_equal(extra["cells"] == 0, y == 1)
    assert with_ids.sample(0, 1)[2]["cells"].shape == (0, 24, 24)
    with pytest.raises(InputError, match="extra 'cells'"):
        PatchSampler(phantom.raw, phantom.semantic, patch=(24, 24), extras={"cells": phantom.cells[:-1]})


def test_determinism_and_dataset_independent_of_workers(phantom: Phantom) -> None:
    sampler = PatchSampler(phantom.raw, phantom.semantic, patch=(16, 16), foreground_fraction=0.5)
    a = sampler.sample(6, 3)
    b = sampler.sample(6, 3)
    c = sampler.sample(6, 4)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    ds = PatchDataset(sampler, length=8, seed=11)
    serial = torch.cat([xb for xb, _ in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0)])
    parallel = torch.cat([xb for xb, _ in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)])
    torch.testing.assert_close(serial, parallel)
    assert serial.shape == (8, 3, 16, 16) and serial.dtype == torch.uint8
    assert not np.array_equal(ds[0][0], ds[1][0])  # items differ by index


def test_foreground_balance_raises_foreground_share(phantom: Phantom) -> None:
    def share(fraction: float) -> float:
        s = PatchSampler(
            phantom.raw,
            phantom.semantic,
            patch=(16, 16),
            foreground_fraction=fraction,
            foreground_classes=[MITOCHONDRION],
        )
        _, y = s.sample(200, np.random.default_rng(0))
        return float(np.mean(y == MITOCHONDRION))

    base, balanced = share(0.0), share(1.0)
    assert balanced > 2 * base


def test_train_fraction_counts_and_nesting(phantom: Phantom) -> None:
    train, _ = split_z(16, 3, 1, val_fraction=0.25)
    small = PatchSampler(phantom.raw, phantom.semantic, centres=train, patch=(16, 16), train_fraction=0.25, seed=5)
    large = PatchSampler(phantom.raw, phantom.semantic, centres=train, patch=(16, 16), train_fraction=0.5, seed=5)
    assert len(small) == round(0.25 * len(train)) and len(large) == round(0.5 * len(train))
    assert {tuple(i) for i in small.items} <= {tuple(i) for i in large.items}
    assert set(small.items[:, 1]) <= set(train.tolist())
    counted = PatchSampler(phantom.raw, phantom.semantic, centres=train, patch=(16, 16), train_count=3, seed=5)
    assert len(counted) == 3
    assert subset_count(10, train_fraction=0.01) == 1
    with pytest.raises(InputError):
        subset_count(10, train_fraction=0.5, train_count=3)


def test_image_set_of_depth_one_rgb() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40 + 4 * i, 48, 3), dtype=np.uint8) for i in range(5)]
    masks = [rng.integers(0, 3, (40 + 4 * i, 48), dtype=np.int32) for i in range(5)]
    sampler = PatchSampler(images, masks, patch=(32, 32), k=1, train_count=2, seed=0)
    assert len(sampler) == 2 and set(sampler.items[:, 1]) == {0}
    x, y = sampler.sample(4, 0)
    assert x.shape == (4, 3, 32, 32) and y.shape == (4, 32, 32)
    chosen = set(sampler.items[:, 0].tolist())
    for xi, yi in zip(x, y):
        hits = []
        for v in chosen:
            img = images[v]
            for y0 in range(img.shape[0] - 31):
                for x0 in range(17):
                    if np.array_equal(np.moveaxis(img[y0 : y0 + 32, x0 : x0 + 32], 2, 0), xi):
                        hits.append((v, y0, x0))
        assert len(hits) == 1
        v, y0, x0 = hits[0]
        np.testing.assert_array_equal(masks[v][y0 : y0 + 32, x0 : x0 + 32], yi)


def test_one_line_errors(phantom: Phantom) -> None:
    cases = [
        dict(raw=phantom.raw, labels=phantom.semantic, patch=(128, 16)),
        dict(raw=phantom.raw, labels=phantom.semantic[:, :50]),
        dict(raw=phantom.raw, labels=phantom.semantic, centres=[0], border="skip", patch=(16, 16)),
        dict(raw=phantom.raw, labels=phantom.semantic, patch=(16, 16), train_count=100),
    ]
    for kwargs in cases:
        with pytest.raises(InputError) as err:
            PatchSampler(**kwargs)
        assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- device-resident sampler


def _volume(depth: int = 9, h: int = 24, w: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (depth, h, w), dtype=np.uint8)
    labels = (rng.random((depth, h, w)) < 0.03).astype(np.int64) * rng.integers(1, 3, (depth, h, w))
    return raw, labels


@pytest.mark.parametrize("ff, classes", [(0.0, None), (0.7, None), (1.0, (2,))])
def test_device_patches_equal_the_numpy_sampler_given_the_same_draws(ff, classes) -> None:
    """Replaying the numpy sampler's draws (item, origin) through the device gather gives its patches exactly."""
    from slicewise.data.sampling import DevicePatchSampler

    raw, labels = _volume()
    train, _ = split_z(9, 3, 1, val_fraction=0.3)
    ps = PatchSampler(raw, labels, centres=train, patch=(8, 6), k=3, foreground_fraction=ff, foreground_classes=classes)
    dev = DevicePatchSampler(ps)
    for seed in range(12):
        x, y = ps.sample_one(np.random.default_rng(seed))
        replay = np.random.default_rng(seed)
        v, z = (int(t) for t in ps.items[replay.integers(len(ps.items))])
        origin = ps._crop_origin(v, z, replay)
        gx, gy = dev.gather(torch.tensor([z]), torch.tensor([origin]))
        np.testing.assert_array_equal(gx[0].numpy(), x)
        np.testing.assert_array_equal(gy[0].numpy(), y)
    assert dev.labels.dtype == torch.uint8 and dev.raw.dtype == torch.uint8


def test_device_draws_respect_the_split_and_have_the_numpy_distribution() -> None:
    """Statistical equivalence of the drawn parameters (two-sample chi-square against the numpy sampler):
    centres, foreground-centered origins (jitter 0 at patch 3) and the foreground fraction."""
    from scipy.stats import binomtest, chi2_contingency

    from slicewise.data.sampling import DevicePatchSampler

    depth, h, w = 12, 16, 16
    labels = np.zeros((depth, h, w), np.int64)
    pts = [(3, 4), (3, 11), (8, 8), (12, 2), (12, 13), (6, 6)]
    for z in range(depth):
        for y, x in pts[: 1 + z % 6]:
            labels[z, y, x] = 1
    raw = np.arange(depth * h * w, dtype=np.int64).reshape(depth, h, w).astype(np.uint8)
    train, _ = split_z(depth, 3, 2, val_fraction=0.25)  # gap of r·dz = 2 slices
    ps = PatchSampler(raw, labels, centres=train, patch=(3, 3), k=3, dz=2, foreground_fraction=0.6, seed=0)
    dev = DevicePatchSampler(ps)
    n = 6000
    z_t, o_t = dev.draw(n, torch.Generator().manual_seed(0))
    assert set(z_t.tolist()) <= set(train.tolist())
    rng = np.random.default_rng(1)
    z_n, o_n = [], []
    for _ in range(n):
        v, z = (int(t) for t in ps.items[rng.integers(len(ps.items))])
        z_n.append(z)
        o_n.append(ps._crop_origin(v, z, rng))
    zs = sorted(set(train.tolist()))
    table = [[int((z_t == z).sum()) for z in zs], [z_n.count(z) for z in zs]]
    assert chi2_contingency(table).pvalue > 1e-3

    # origins of the patches whose centre pixel is foreground: the foreground-centered draws (plus rare uniform hits)
    def fg_hits(zz: list[int], oo: list[tuple[int, int]]) -> dict[tuple[int, int, int], int]:
        out: dict[tuple[int, int, int], int] = {}
        for z, (y, x) in zip(zz, oo):
            if labels[z, y + 1, x + 1]:
                out[(z, y + 1, x + 1)] = out.get((z, y + 1, x + 1), 0) + 1
        return out

    a = fg_hits(z_t.tolist(), [tuple(o) for o in o_t.tolist()])
    b = fg_hits(z_n, o_n)
    keys = sorted(set(a) | set(b))
    assert chi2_contingency([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]]).pvalue > 1e-3
    fg_share = sum(a.values()) / n  # ≈ 0.6 + 0.4 · P(uniform crop centered on foreground)
    expected = 0.6 + 0.4 * np.mean([labels[z, 1:-1, 1:-1].mean() for z in z_t.tolist()])
    assert binomtest(sum(a.values()), n, expected).pvalue > 1e-3 and abs(fg_share - expected) < 0.03


def test_device_sampler_streams_are_per_rank_and_reproducible() -> None:
    """DDP: two ranks built like the datamodule builds them draw different patches; a rank redraws its own."""
    from slicewise.data.sampling import DevicePatchSampler, sample_seed

    raw, labels = _volume(seed=3)
    ps = PatchSampler(raw, labels, patch=(8, 8), k=3, foreground_fraction=0.5)
    ranks = [DevicePatchSampler(ps) for _ in range(2)]
    batch = [r.sample(4, torch.Generator().manual_seed(sample_seed(0, 5, q))) for q, r in enumerate(ranks)]
    assert not torch.equal(batch[0][0], batch[1][0])
    again = ranks[1].sample(4, torch.Generator().manual_seed(sample_seed(0, 5, 1)))
    assert torch.equal(again[0], batch[1][0]) and torch.equal(again[1], batch[1][1])
    assert len({sample_seed(0, s, q) for s in range(50) for q in range(4)}) == 200


def test_device_sampler_takes_two_d_image_sets_and_refuses_what_it_cannot_hold() -> None:
    from slicewise.data.sampling import DevicePatchSampler

    imgs = [np.full((10, 12), i, np.uint8) for i in range(4)]
    labs = [np.full((10, 12), i % 2, np.int64) for i in range(4)]
    dev = DevicePatchSampler(PatchSampler(imgs, labs, patch=(4, 4), k=1, foreground_fraction=0.5))
    x, y = dev.sample(32, torch.Generator().manual_seed(0))
    assert x.shape == (32, 1, 4, 4) and torch.equal(x[:, 0, 0, 0].long() % 2, y[:, 0, 0].long())  # image i ↔ its label
    with pytest.raises(InputError, match="on_device=false"):
        DevicePatchSampler(
            PatchSampler(
                [np.zeros((10, 12), np.uint8), np.zeros((12, 12), np.uint8)],
                [np.zeros((10, 12), np.int64), np.zeros((12, 12), np.int64)],
                patch=(4, 4),
                k=1,
            )
        )
    raw, labels = _volume()
    with pytest.raises(InputError, match="on_device=false"):
        DevicePatchSampler(PatchSampler(raw, labels, patch=(4, 4), extras={"instances": labels}))


@pytest.mark.parametrize("colors", [0, 3])
@pytest.mark.parametrize("patch", [(8, 8), (8, 6)])
def test_device_sample_with_augmentation_equals_augment_of_the_plain_patches(colors, patch) -> None:
    """The geometry folded into the gather (flips, quarter turns, z-reversal) plus the intensity steps give
    exactly ``augment`` of the plain gather, for the same generator state."""
    from slicewise.data.augment import AugmentConfig, augment
    from slicewise.data.sampling import DevicePatchSampler

    rng = np.random.default_rng(5)
    shape = (9, 20, 18) + ((colors,) if colors else ())
    raw = rng.integers(0, 256, shape, dtype=np.uint8)
    labels = rng.integers(0, 3, shape[:3]).astype(np.int64)
    dev = DevicePatchSampler(PatchSampler(raw, labels, patch=patch, k=3, foreground_fraction=0.5))
    c = max(colors, 1)
    for cfg in (
        AugmentConfig(flip=0.5, rot90=0.5, z_reverse=0.5, noise=0.5, blur=0.3),
        AugmentConfig(**NO_INTENSITY),
        AugmentConfig.from_dict({"rot90": 1.0, "flip": 0.0, "z_reverse": 0.0}),
    ):
        for seed in range(4):
            x, y = dev.sample(6, torch.Generator().manual_seed(seed), augment=cfg, colors=c)
            g = torch.Generator().manual_seed(seed)
            rx, ry = augment(*dev.gather(*dev.draw(6, g)), config=cfg, generator=g, colors=c)
            assert x.dtype == torch.float32 and y.dtype == torch.uint8
            assert torch.equal(x, rx) and torch.equal(y, ry)


@pytest.mark.parametrize("border", ["reflect", "replicate"])
def test_device_sample_of_float_raw_with_steps_of_two_slices_equals_augment(border) -> None:
    """Float raw outside [0, 1] (clipped before the intensity steps), dz = 2 and border slices (stacks that
    are not one strided view): the per-sample CPU way still equals ``augment`` of the plain patches."""
    from slicewise.data.augment import AugmentConfig, augment
    from slicewise.data.sampling import DevicePatchSampler

    rng = np.random.default_rng(7)
    raw = rng.uniform(-0.2, 1.2, (7, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 2, raw.shape).astype(np.int64)
    dev = DevicePatchSampler(PatchSampler(raw, labels, patch=(8, 8), k=3, dz=2, border=border, foreground_fraction=0.5))
    steps = AugmentConfig(
        flip=0.5, rot90=0.5, z_reverse=0.5, brightness=0.5, contrast=0.5, gamma=0.5, noise=0.5, blur=0.5
    )
    for cfg in (steps, AugmentConfig(**NO_INTENSITY)):
        for seed in range(3):
            x, y = dev.sample(8, torch.Generator().manual_seed(seed), augment=cfg)
            g = torch.Generator().manual_seed(seed)
            rx, ry = augment(*dev.gather(*dev.draw(8, g)), config=cfg, generator=g)
            assert torch.equal(x, rx) and torch.equal(y, ry)
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0  # clipped, with or without intensity steps
