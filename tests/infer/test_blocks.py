"""Block planning, halo regions and block computation: block-wise == whole-volume for any block shape."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.data.grid import block_grid
from slicewise.data.io import Volume
from slicewise.data.stacking import stack_slices, to_unit_float
from slicewise.data.tiling import gaussian_weight, iter_tiles, weight_sum
from slicewise.errors import InputError
from slicewise.infer.blocks import Block, plan_blocks, predict_block, read_region
from slicewise.infer.predict import make_plan, predict

KW = dict(batch_size=5, progress=False, device="cpu")


def reference(model, vol, plan):
    """An independent whole-plane oracle: stack, pad (numpy reflect), tile over the whole plane, blend."""
    from slicewise.infer.blocks import forward

    stacks = to_unit_float(stack_slices(vol, np.arange(vol.shape[0]), plan.k, plan.dz, plan.border))
    n, _, h, w = stacks.shape
    th, tw = plan.tile
    mode = "edge" if min(h, w) == 1 else "reflect"
    padded = np.pad(stacks, ((0, 0), (0, 0), (0, max(0, th - h)), (0, max(0, tw - w))), mode=mode)
    g = torch.from_numpy(np.array(gaussian_weight(plan.tile)))
    acc = torch.zeros((n, plan.out_channels, *padded.shape[-2:]))
    with torch.inference_mode():
        for i in range(n):
            for ys, xs in iter_tiles((h, w), plan.tile, plan.overlap):
                y = forward(model, torch.from_numpy(padded[i : i + 1, :, ys, xs].copy()), plan)[0] * g
                acc[i, :, ys, xs] += y
    acc /= torch.from_numpy(weight_sum((h, w), plan.tile, plan.overlap))
    return acc[:, :, :h, :w].permute(1, 0, 2, 3).numpy()


class Recording:
    """A Volume wrapper that records every region read (z, y, x slices)."""

    def __init__(self, array):
        self.inner = Volume(array)
        self.shape, self.dtype = self.inner.shape, self.inner.dtype
        self.reads = []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.inner[key]


@settings(max_examples=30, deadline=None)
@given(
    z=st.integers(1, 6),
    y=st.integers(3, 40),
    x=st.integers(3, 40),
    bz=st.integers(1, 6),
    by=st.integers(1, 40),
    bx=st.integers(1, 40),
    tile=st.sampled_from([8, 16, 24]),
    overlap=st.sampled_from([0.0, 0.25, 0.5, 0.7]),
    k=st.sampled_from([1, 3, 5]),
    dz=st.integers(1, 2),
    tta=st.booleans(),
    border=st.sampled_from(["reflect", "replicate"]),
    data=st.data(),
)
def test_blockwise_equals_whole_volume_and_reads_only_the_halo(
    stub, z, y, x, bz, by, bx, tile, overlap, k, dz, tta, border, data
):
    if (k - 1) * dz + 1 > z:
        k, dz = 1, 1
    vol = np.random.default_rng(z * 1000 + y * 40 + x).integers(0, 256, (z, y, x), dtype=np.uint8)
    model = stub(in_slices=k).eval()
    plan = make_plan(
        model,
        vol.shape,
        tile=tile,
        overlap=overlap,
        k=k,
        dz=dz,
        border=border,
        tta=tta,
        **{k_: v for k_, v in KW.items() if k_ != "progress"},
    )
    ref = reference(model, vol, plan)
    whole = predict(model, vol, tile=tile, overlap=overlap, k=k, dz=dz, border=border, tta=tta, block=(z, y, x), **KW)
    np.testing.assert_allclose(whole, ref, rtol=0, atol=1e-6)
    rec = Recording(vol)
    blocks = predict(
        model, rec, tile=tile, overlap=overlap, k=k, dz=dz, border=border, tta=tta, block=(bz, by, bx), **KW
    )
    assert np.abs(blocks - whole).max() <= 1e-6
    plan = make_plan(
        model,
        vol.shape,
        tile=tile,
        overlap=overlap,
        k=k,
        dz=dz,
        border=border,
        tta=tta,
        block=(bz, by, bx),
        batch_size=5,
        device="cpu",
    )
    grid = plan_blocks(vol.shape, plan.block)
    assert len(rec.reads) == len(grid)  # one read per block
    r, (th, tw) = (k - 1) // 2 * dz, plan.tile
    for b, key in zip(grid, rec.reads):
        reg = read_region(b, plan)
        assert [(s.start, s.stop) for s in key] == [(s.start, s.stop) for s in (reg.z, reg.y, reg.x)]
        assert reg.z.start == max(0, b.out[0].start - r) and reg.z.stop == min(z, b.out[0].stop + r)
        assert b.out[1].start - reg.y.start <= th - 1 and reg.y.stop - b.out[1].stop <= th - 1
        assert b.out[2].start - reg.x.start <= tw - 1 and reg.x.stop - b.out[2].stop <= tw - 1
    # a ROI is the same numbers as the whole-volume prediction's crop, whatever the block shape
    roi = tuple(
        slice(*sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=2, unique=True)))) for n in (z, y, x)
    )
    part = predict(
        model, vol, tile=tile, overlap=overlap, k=k, dz=dz, border=border, tta=tta, block=(bz, by, bx), roi=roi, **KW
    )
    assert np.abs(part - whole[(slice(None), *roi)]).max() <= 1e-6


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 20), st.integers(1, 50), st.integers(1, 50)),
    block=st.tuples(st.integers(1, 8), st.integers(1, 30), st.integers(1, 30)),
)
def test_plan_blocks_tile_the_roi_exactly_once_in_chunk_order(shape, block):
    blocks = plan_blocks(shape, block)
    cover = np.zeros(shape, np.int32)
    for i, b in enumerate(blocks):
        assert b.index == i and all(0 < n <= s for n, s in zip(b.shape, block))
        assert all(s.start % bs == 0 for s, bs in zip(b.out, block))  # chunk-aligned: block i = chunk i
        cover[b.out] += 1
    assert (cover == 1).all()


def test_roi_blocks_are_anchored_at_the_roi_start():
    blocks = plan_blocks((10, 40, 40), (4, 16, 16), roi=(slice(3, 9), slice(5, 40), slice(0, 10)))
    assert blocks[0].out == (slice(3, 7), slice(5, 21), slice(0, 10))
    assert blocks[0].local((3, 5, 0)) == (slice(0, 4), slice(0, 16), slice(0, 10))
    assert blocks[-1].out == (slice(7, 9), slice(37, 40), slice(0, 10))
    with pytest.raises(InputError, match="block shape"):
        plan_blocks((10, 40, 40), (0, 16, 16))
    with pytest.raises(InputError, match="not inside"):
        plan_blocks((10, 40, 40), (4, 16, 16), roi=(slice(3, 12), slice(None), slice(None)))
    roi_grid = block_grid((6, 35, 10), (4, 16, 16), origin=(3, 5, 0))  # THE block grid, anchored at the ROI
    assert [b.out for b in blocks] == roi_grid


def test_halo_follows_the_volume_grid_not_the_block(stub):
    model = stub()
    plan = make_plan(model, (5, 100, 100), tile=32, overlap=0.25, device="cpu")  # grid 0, 24, 48, 68
    reg = read_region(Block(0, (slice(0, 5), slice(50, 60), slice(0, 100))), plan)
    assert (reg.y.start, reg.y.stop) == (24, 80) and reg.ys == (0, 24)  # tiles 24 and 48 cover 50..59
    assert (reg.z.start, reg.z.stop) == (0, 5)
    reg = read_region(Block(0, (slice(2, 3), slice(0, 1), slice(99, 100))), plan)
    assert (reg.z.start, reg.z.stop) == (1, 4) and (reg.y.start, reg.y.stop) == (0, 32) and reg.x.start == 68


def test_predict_block_equals_the_crop_of_the_whole_prediction(stub, small_volume):
    model = stub().eval()
    plan = make_plan(model, small_volume.shape, tile=16, device="cpu", block=(3, 17, 23))
    whole = predict(model, small_volume, tile=16, **KW)
    for b in plan_blocks(small_volume.shape, plan.block)[::3]:
        out = predict_block(model, small_volume, b, plan)
        assert out.shape == (3, *b.shape) and out.dtype == np.float32
        np.testing.assert_allclose(out, whole[(slice(None), *b.out)], rtol=0, atol=1e-6)


def test_nan_inf_and_out_of_range_floats_are_refused_and_percentile_normalizes(stub):
    model = stub(kind="plus_one")
    vol = np.random.default_rng(0).random((4, 16, 24)).astype(np.float32)
    vol[3, 5, 7] = np.nan
    with pytest.raises(InputError, match="NaN or Inf") as e:
        predict(model, vol, tile=16, block=(2, 16, 24), **KW)
    assert "\n" not in str(e.value)
    vol[3, 5, 7] = np.inf
    with pytest.raises(InputError, match="NaN or Inf"):
        predict(model, vol, tile=16, **KW)
    wide = (np.random.default_rng(1).random((4, 16, 24)) * 943 - 100).astype(np.float32)
    with pytest.raises(InputError, match="--normalize percentile"):
        predict(model, wide, tile=16, **KW)
    probs = predict(model, wide, tile=16, normalize="percentile", **KW)
    lo, hi = np.percentile(wide.astype(np.float64), (0.1, 99.9))  # the sample covers this small volume whole
    np.testing.assert_allclose(probs[2] - 1, np.clip((wide - lo) / (hi - lo), 0, 1), rtol=0, atol=2e-6)
    ints = (wide + 100).astype(np.uint16)
    np.testing.assert_allclose(predict(model, ints, tile=16, **KW)[2] - 1, ints / np.float32(65535), rtol=0, atol=2e-6)


def test_color_volumes_and_normalized_rois_are_block_shape_independent(stub):
    rgb = np.random.default_rng(4).integers(0, 256, (5, 30, 37, 3), dtype=np.uint8)
    model = stub(in_slices=3, colors=3)
    whole = predict(model, rgb, tile=16, block=(5, 30, 37), **KW)
    np.testing.assert_allclose(
        predict(model, rgb, tile=16, block=(2, 11, 7), tta=False, **KW), whole, rtol=0, atol=1e-6
    )
    wide = (np.random.default_rng(5).random((6, 30, 37)) * 500 - 50).astype(np.float32)
    gray = stub()
    ref = predict(gray, wide, tile=16, normalize="percentile", **KW)
    part = predict(gray, wide, tile=16, normalize="percentile", roi="2:5,3:20,10:", block=(1, 8, 8), **KW)
    np.testing.assert_allclose(part, ref[:, 2:5, 3:20, 10:], rtol=0, atol=1e-6)  # percentiles from the whole volume


def test_big_endian_and_wide_integer_inputs(stub):
    vol = np.random.default_rng(6).integers(0, 65535, (3, 16, 16)).astype(">u2")
    out = predict(stub(kind="plus_one"), vol, tile=16, **KW)
    np.testing.assert_allclose(out[2] - 1, vol.astype(np.float32) / 65535, rtol=0, atol=2e-6)
