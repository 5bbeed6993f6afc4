import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slicewise.errors import InputError
from slicewise.segment import choose_foreground, segment, segment_to
from slicewise.segment.watershed import remove_small


def _ball_volume(centres, radii, shape):
    zz, yy, xx = np.indices(shape)
    mask = np.zeros(shape, bool)
    for (z, y, x), r in zip(centres, radii):
        mask |= (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= r * r
    return mask


def _probs(mask, extra=None):
    fg = np.where(mask, 0.9, 0.1).astype(np.float32)
    chans = [1 - fg, fg] + ([extra.astype(np.float32)] if extra is not None else [])
    return np.stack(chans)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), seed=st.integers(0, 1000))
def test_cc_counts_separated_blobs(n, seed):
    rng = np.random.default_rng(seed)
    cells = rng.choice(9, size=n, replace=False)
    centres = [(5, 8 + 16 * (c // 3), 8 + 16 * (c % 3)) for c in cells]
    radii = rng.integers(2, 7, n)
    mask = _ball_volume(centres, radii, (11, 48, 48))
    lab = segment(_probs(mask), mode="cc")
    assert lab.dtype == np.int32 and lab.max() == n
    assert set(np.unique(lab[mask])) == set(range(1, n + 1)) and (lab[~mask] == 0).all()
    for c in centres:
        assert (lab[mask & (lab == lab[c])].size) == (lab == lab[c]).sum()


def _two_touching_discs(depth=3):
    yy, xx = np.indices((48, 64))
    a = (yy - 24) ** 2 + (xx - 22) ** 2 <= 12**2
    b = (yy - 24) ** 2 + (xx - 41) ** 2 <= 12**2
    d1 = np.hypot(yy - 24, xx - 22)
    d2 = np.hypot(yy - 24, xx - 41)
    contact = (a | b) & (np.abs(d1 - d2) < 2.0)
    rep = lambda m: np.repeat(m[None], depth, 0)  # noqa: E731
    return rep(a | b), rep(contact), rep(a & ~b), rep(b & ~a)


def test_watershed_splits_touching_discs_that_cc_merges():
    mask, contact, only_a, only_b = _two_touching_discs()
    assert segment(_probs(mask), mode="cc").max() == 1
    for kwargs in (dict(use="distance"), dict(use="boundary")):
        prob = _probs(mask, np.where(contact, 0.9, 0.05))
        lab = segment(prob, mode="watershed", channel_names=["class0", "class1", "boundary"], **kwargs)
        assert lab.max() == 2, kwargs
        la, lb = np.unique(lab[only_a]), np.unique(lab[only_b])
        assert len(la) == 1 and len(lb) == 1 and la[0] != lb[0] and 0 not in (la[0], lb[0])
        assert (lab[~mask] == 0).all() and (lab[mask] > 0).all()


def test_boundary_channel_by_index_and_distance_channel():
    mask, contact, _, _ = _two_touching_discs(1)
    prob = _probs(mask, np.where(contact, 0.9, 0.05))
    assert segment(prob, mode="watershed", boundary_channel=2).max() == 2
    assert segment(prob, mode="watershed", boundary_channel="2").max() == 2  # CLI passes strings
    outside = segment(prob, mode="watershed", boundary_channel=2, foreground_channel="0")  # class0 = background
    assert outside.max() == 1 and ((outside > 0) == ~mask).all()
    with pytest.raises(InputError, match="boundary-channel"):
        segment(prob, mode="watershed", use="boundary")
    with pytest.raises(InputError, match="not among the channel names"):
        segment(prob, mode="watershed", boundary_channel="edges", channel_names=["class0", "class1", "boundary"])
    with pytest.raises(InputError, match="out of range"):
        segment(prob, foreground_channel=5)
    from scipy import ndimage as ndi

    dist = np.stack([ndi.distance_transform_edt(m) for m in mask])
    lab = segment(
        np.concatenate([prob[:2], dist[None]]),
        mode="watershed",
        use="distance",
        channel_names=["class0", "class1", "distance"],
        per_slice=True,
    )
    assert lab.max() == 2


def test_per_slice_vs_3d():
    mask = np.zeros((3, 20, 20), bool)
    mask[:, 5:12, 5:12] = True
    mask[1, 15:18, 15:18] = True
    lab3 = segment(_probs(mask), mode="cc")
    lab2 = segment(_probs(mask), mode="cc", per_slice=True)
    assert lab3.max() == 2
    assert lab2.max() == 4  # column split into 3 per-slice objects + the small square
    ids = [set(np.unique(lab2[z])) - {0} for z in range(3)]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])  # ids unique across slices


def test_size_filter_removes_small_objects_and_renumbers():
    mask = np.zeros((2, 20, 20), bool)
    mask[:, 2:10, 2:10] = True
    mask[0, 15, 15:17] = True  # 2 voxels
    mask[:, 14:17, 2:5] = True  # 18 voxels
    lab = segment(_probs(mask), mode="cc", min_size=5)
    assert lab.max() == 2 and lab[0, 15, 15] == 0 and lab[0, 15, 16] == 0
    assert set(np.unique(lab)) == {0, 1, 2}
    np.testing.assert_array_equal(remove_small(np.array([[0, 3, 3, 7]]), 2), [[0, 1, 1, 0]])


def test_thresholds_move_the_mask():
    p = np.linspace(0, 1, 40, dtype=np.float32).reshape(1, 1, 40).repeat(4, 1)
    assert (segment(p, foreground_threshold=0.5) > 0).sum() == 4 * (p[0, 0] > 0.5).sum()
    assert (segment(p, foreground_threshold=0.9) > 0).sum() == 4 * (p[0, 0] > 0.9).sum()


def test_segment_reads_a_prediction_file(stub, tmp_path):
    from slicewise.infer.predict import predict_to

    class Bright(stub):
        def forward(self, x):
            c = x[:, 1:2] - 0.5
            return torch.cat([-20 * c, 20 * c, torch.zeros_like(c)], 1)

    mask = _ball_volume([(2, 10, 10), (2, 10, 30), (2, 28, 20)], [4, 4, 5], (5, 40, 40))
    vol = np.where(mask, 220, 30).astype(np.uint8)
    for name in ("p.zarr", "p.h5", "p.tif", "q.zarr"):
        dtype = "float16" if name == "q.zarr" else "float32"  # a half-precision store is read as float32
        out = predict_to(Bright(), vol, tmp_path / name, tile=16, progress=False, device="cpu", dtype=dtype)
        lab = segment(out, mode="cc")
        assert lab.max() == 3 and ((lab > 0) == mask).all(), name
    lab_out = tmp_path / "lab.tif"
    segment(tmp_path / "p.zarr", output=lab_out)
    with pytest.raises(InputError, match="already exists"):
        segment(tmp_path / "p.zarr", output=lab_out)
    with pytest.raises(InputError, match="does not exist"):
        segment(tmp_path / "missing.zarr")


@pytest.mark.parametrize(
    "names, sel, expect",
    [
        (["background", "membrane"], None, 1),
        (["membrane", "background"], None, 0),
        (["class0", "class1", "boundary"], None, 1),
        (["background", "nucleus", "distance"], None, 1),
        (["background", "membrane", "mitochondrion"], "mitochondrion", 2),
        (["background", "membrane", "mitochondrion"], "1", 1),
        (None, None, None),
    ],
)
def test_choose_foreground_rule(names, sel, expect):
    n = len(names) if names else 3
    idx, text = choose_foreground(sel, names, n)
    assert idx == expect
    if names and expect is not None:
        assert repr(names[expect]) in text


def test_choose_foreground_several_classes_is_their_union_and_says_so():
    idx, text = choose_foreground(None, ["background", "membrane", "mitochondrion", "boundary"], 4)
    assert idx is None and "membrane, mitochondrion" in text and "--foreground-channel" in text
    # the background found by name, wherever it is: the union is 1 - P(background)
    p = np.random.default_rng(0).dirichlet([1, 1, 1], size=(1, 4, 4)).transpose(3, 0, 1, 2).astype(np.float32)
    names = ["membrane", "mitochondrion", "background"]
    lab = segment(p, channel_names=names, foreground_threshold=0.5)
    np.testing.assert_array_equal(lab > 0, (1 - p[2]) > 0.5)


def test_segment_uses_the_named_foreground_and_warns_on_no_objects(tmp_path, caplog):
    import logging

    mask = np.zeros((2, 16, 16), bool)
    mask[:, 4:9, 4:9] = True
    fg = np.where(mask, 0.9, 0.1).astype(np.float32)
    prob = np.stack([1 - fg, fg])
    # "membrane" listed first: the background is found by name, not by position
    lab = segment(prob[::-1].copy(), channel_names=["membrane", "background"])
    assert lab.max() == 1 and ((lab > 0) == mask).all()
    caplog.set_level(logging.WARNING)
    res = segment_to(np.zeros((2, 16, 16), np.float32), tmp_path / "none.zarr")
    assert res.n_objects == 0 and "only channel" in res.foreground
    assert any("0 objects" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_segment_options_object_and_overrides_agree_and_unknown_options_are_one_line():
    from slicewise.errors import InputError
    from slicewise.segment import SegmentOptions

    mask = np.zeros((1, 12, 12), bool)
    mask[0, 2:5, 2:5] = mask[0, 7:10, 7:10] = True
    prob = _probs(mask)
    opts = SegmentOptions(mode="cc", min_size=10)
    np.testing.assert_array_equal(segment(prob, opts), segment(prob, mode="cc", min_size=10))
    assert segment(prob, opts, min_size=0).max() == 2 and segment(prob, opts).max() == 0
    with pytest.raises(InputError, match="segment options: unknown key"):
        segment(prob, min_sise=3)
