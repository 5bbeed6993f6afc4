import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.data.stacking import stack_indices, stack_slices, to_unit_float, valid_centres
from slicewise.errors import InputError


def _reflect(i: int, depth: int) -> int:
    # independent reference: numpy's reflect padding
    pad = np.pad(np.arange(depth), depth, mode="reflect")
    return int(pad[i + depth])


@settings(max_examples=150, deadline=None)
@given(
    depth=st.integers(1, 12),
    r=st.integers(0, 3),
    dz=st.integers(1, 3),
    data=st.data(),
)
def test_channel_c_is_slice_z_plus_offset_with_reflection(depth, r, dz, data):
    k = 2 * r + 1
    if (k - 1) * dz + 1 > depth:
        with pytest.raises(InputError, match="span"):
            stack_indices(0, depth, k, dz)
        return
    h, w = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    vol = np.random.default_rng(depth * 31 + k).integers(0, 255, (depth, h, w), dtype=np.uint8)
    z = data.draw(st.integers(0, depth - 1))
    s = stack_slices(vol, z, k=k, dz=dz)
    assert s.shape == (k, h, w)
    for c in range(k):
        np.testing.assert_array_equal(s[c], vol[_reflect(z + (c - r) * dz, depth)])
    np.testing.assert_array_equal(s[r], vol[z])


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(3, 12), r=st.integers(0, 2), dz=st.integers(1, 2))
def test_replicate_and_skip(depth, r, dz):
    k = 2 * r + 1
    if (k - 1) * dz + 1 > depth:
        return
    for z in range(depth):
        rep = stack_indices(z, depth, k, dz, "replicate")
        assert list(rep) == [min(max(z + (c - r) * dz, 0), depth - 1) for c in range(k)]
        sk = stack_indices(z, depth, k, dz, "skip")
        full = r * dz <= z < depth - r * dz
        assert (sk is not None) == full
        assert (z in set(valid_centres(depth, k, dz, "skip"))) == full


def test_batch_and_multichannel_layout():
    vol = np.arange(5 * 2 * 2 * 3).reshape(5, 2, 2, 3)
    out = stack_slices(vol, [0, 4], k=3)
    assert out.shape == (2, 9, 2, 2)
    # slice-major: channel c*C + j is color j of slice c; centre 0 reflects to slices (1, 0, 1)
    np.testing.assert_array_equal(out[0, 0:3], np.moveaxis(vol[1], 2, 0))
    np.testing.assert_array_equal(out[0, 3:6], np.moveaxis(vol[0], 2, 0))
    np.testing.assert_array_equal(out[1, 6:9], np.moveaxis(vol[3], 2, 0))


def test_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    vol = np.random.default_rng(0).integers(0, 255, (7, 5, 6), dtype=np.uint8)
    a = stack_slices(vol, [0, 3, 6], k=5, yx=(slice(1, 4), slice(0, 5)))
    b = stack_slices(torch.from_numpy(vol), [0, 3, 6], k=5, yx=(slice(1, 4), slice(0, 5)))
    np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("k,dz,msg", [(2, 1, "odd"), (3, 0, "z-step"), (9, 1, "span")])
def test_bad_params_are_one_line_errors(k, dz, msg):
    with pytest.raises(InputError, match=msg) as ei:
        stack_slices(np.zeros((4, 2, 2)), 0, k=k, dz=dz)
    assert "\n" not in str(ei.value)


def test_to_unit_float():
    assert to_unit_float(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert to_unit_float(np.array([65535], np.uint16)).tolist() == [1.0]
    assert to_unit_float(np.array([0.5])).dtype == np.float32


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.float64])
def test_to_unit_float_into_a_buffer_equals_the_fresh_conversion(dtype):
    """``out=``: one fused pass, bit for bit the allocating conversion (every uint8 value; strided input)."""
    info = torch.finfo(dtype) if dtype.is_floating_point else torch.iinfo(dtype)
    x = (
        torch.arange(256).to(dtype)
        if dtype == torch.uint8
        else torch.linspace(max(info.min, -1e6), min(info.max, 1e6), 512).to(dtype)
    )
    x = x.reshape(-1, 16).t()  # a transposed view, as the sampler's crops are
    out = torch.full(x.shape, float("nan"))
    assert to_unit_float(x, out=out) is out
    want = x.float() if dtype.is_floating_point else x.float() / float(info.max)
    assert torch.equal(out, to_unit_float(x)) and torch.equal(out, want)


@settings(max_examples=120, deadline=None)
@given(
    depth=st.integers(1, 9),
    r=st.integers(0, 2),
    dz=st.integers(1, 2),
    colors=st.sampled_from([0, 3]),
    border=st.sampled_from(["reflect", "replicate", "skip"]),
    crops=st.booleans(),
    data=st.data(),
)
def test_torch_path_equals_numpy_path(depth, r, dz, colors, border, crops, data):
    """THE stacking function: numpy and torch (indices computed on the tensor's device) agree exactly,
    for a common yx crop and for per-centre crop origins."""
    import torch

    k = 2 * r + 1
    if (k - 1) * dz + 1 > depth:
        return
    h, w = data.draw(st.integers(2, 6)), data.draw(st.integers(2, 6))
    shape = (depth, h, w) + ((colors,) if colors else ())
    vol = np.random.default_rng(depth * 7 + h).integers(0, 255, shape, dtype=np.uint8)
    valid = valid_centres(depth, k, dz, border)
    if not len(valid):
        return
    zs = data.draw(st.lists(st.sampled_from(valid.tolist()), min_size=0, max_size=5))
    vt = torch.from_numpy(vol)
    if crops:
        ph, pw = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
        origins = np.array(
            [[data.draw(st.integers(0, h - ph)), data.draw(st.integers(0, w - pw))] for _ in zs], np.int64
        ).reshape(-1, 2)
        ref = stack_slices(vol, zs, k, dz, border, origins=origins, size=(ph, pw))
        got = stack_slices(
            vt, torch.as_tensor(zs, dtype=torch.int64), k, dz, border, origins=torch.from_numpy(origins), size=(ph, pw)
        )
        for i, (z, (y, x)) in enumerate(zip(zs, origins)):  # a per-centre crop is the common-crop stack of that centre
            np.testing.assert_array_equal(
                ref[i], stack_slices(vol, z, k, dz, border, yx=(slice(y, y + ph), slice(x, x + pw)))
            )
    else:
        ref = stack_slices(vol, zs, k, dz, border, yx=(slice(1, None), slice(None, -1)))
        got = stack_slices(
            vt, torch.as_tensor(zs, dtype=torch.int64), k, dz, border, yx=(slice(1, None), slice(None, -1))
        )
    assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8
    assert tuple(got.shape) == ref.shape
    np.testing.assert_array_equal(got.numpy(), ref)


def test_torch_path_rejects_centres_without_context_under_skip():
    import torch

    vol = torch.zeros(6, 4, 4, dtype=torch.uint8)
    with pytest.raises(InputError, match="valid_centres"):
        stack_slices(vol, torch.tensor([0, 3]), k=3, border="skip")
    with pytest.raises(InputError, match="one origin per centre"):
        stack_slices(vol, torch.tensor([2, 3]), k=3, origins=torch.zeros(1, 2, dtype=torch.int64), size=(2, 2))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 5),
    colors=st.sampled_from([0, 2]),
    flip_y=st.lists(st.booleans(), min_size=5, max_size=5),
    flip_x=st.lists(st.booleans(), min_size=5, max_size=5),
    scattered=st.booleans(),
    data=st.data(),
    swap=st.one_of(st.none(), st.lists(st.booleans(), min_size=5, max_size=5)),
    dtype=st.sampled_from(["uint8", "uint16", "float32"]),
)
def test_crop_gather_cpu_slicing_equals_the_gather_path(n, colors, flip_y, flip_x, scattered, data, swap, dtype):
    """The CPU fast path (per-slice strided copies of consecutive rows/columns, plain or reversed, transposed)
    and the device path (row index_select + column gather, also the CPU fallback for scattered indices)
    both equal plain indexing, exactly."""
    import torch

    from slicewise.data.stacking import crop_gather, crop_views

    shape = (5, 9, 11) + ((colors,) if colors else ())
    vol = torch.from_numpy(np.random.default_rng(n).integers(0, 255, shape).astype(dtype))
    index = torch.tensor(
        [[data.draw(st.integers(0, 4)) for _ in range(3)] for _ in range(n)], dtype=torch.int64
    ).reshape(n, 3)
    y0 = torch.tensor([data.draw(st.integers(0, 5)) for _ in range(n)], dtype=torch.int64)
    x0 = torch.tensor([data.draw(st.integers(0, 7)) for _ in range(n)], dtype=torch.int64)
    ar_h, ar_w = torch.arange(4), torch.arange(4)
    rows = y0[:, None] + torch.where(torch.tensor(flip_y[:n], dtype=torch.bool).reshape(n, 1), 3 - ar_h, ar_h)
    cols = x0[:, None] + torch.where(torch.tensor(flip_x[:n], dtype=torch.bool).reshape(n, 1), 3 - ar_w, ar_w)
    if scattered and n:
        rows[:, 1] = rows[:, 3]
    want = vol[index[:, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    flags = None if swap is None else torch.tensor(swap[:n], dtype=torch.bool)
    if flags is not None:
        want = torch.stack([w.transpose(1, 2) if f else w for w, f in zip(want, flags)]) if n else want
    got = crop_gather(vol, index, rows, cols, flags)
    assert got.shape == want.shape and got.dtype == want.dtype and torch.equal(got, want)
    views = crop_views(vol, index, rows, cols, flags)  # the per-sample form the device sampler converts from
    assert (views is None) == (scattered and n > 0)
    assert views is None or all(torch.equal(v, w) for v, w in zip(views, want))
