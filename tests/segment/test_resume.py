"""Resumable segmentation: an interrupted ``segment_to`` continues from its finished passes and blocks."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from slicewise.data.io import open_volume
from slicewise.errors import InputError
from slicewise.segment import blockwise, segment, segment_to
from slicewise.segment.inputs import RegionReader
from slicewise.segment.resume import state_folder

NAMES = ["background", "foreground", "boundary"]
BLOCK, HALO = (2, 10, 10), (1, 2, 2)  # 3 × 3 × 3 = 27 blocks of a (6, 30, 30) volume


def _blobs(seed: int = 1) -> np.ndarray:
    """Touching balls as (background, foreground, boundary) probabilities (6, 30, 30)."""
    rng = np.random.default_rng(seed)
    idx = np.indices((6, 30, 30))
    owner, best = np.zeros((6, 30, 30), np.int32), np.full((6, 30, 30), np.inf)
    for i in range(12):
        c, r = [rng.integers(0, s) for s in (6, 30, 30)], rng.uniform(1.5, 6)
        d = np.sqrt(sum((g - ci) ** 2 for g, ci in zip(idx, c))) / r
        closer = (d <= 1) & (d < best)
        owner[closer], best[closer] = i + 1, d[closer]
    edge = np.zeros(owner.shape, bool)
    for ax in range(3):
        pad = [(0, 0)] * 3
        pad[ax] = (0, 1)
        edge |= np.pad(np.diff(owner, axis=ax) != 0, pad) & (owner > 0)
    fg = np.where(owner > 0, 0.9, 0.1).astype(np.float32)
    return np.stack([1 - fg, fg, np.where(edge, 0.9, 0.1).astype(np.float32)])


class Interrupt(Exception):
    """Stands for a kill: not an InputError, so the run's state is kept."""


#: what each counted step calls: the reader's masks, the block driver's seed masks and floods
STEPS = {"mask": (RegionReader, "mask"), "seeds": (blockwise, "seed_mask"), "flood": (blockwise, "flood")}


def _count(monkeypatch: pytest.MonkeyPatch, method: str, fail_at: int | None = None) -> list[int]:
    """Count calls of step ``method`` (:data:`STEPS`); raise :class:`Interrupt` at call number ``fail_at`` (1-based)."""
    calls = [0]
    owner, name = STEPS[method]
    original = getattr(owner, name)

    def wrapped(self, *args, **kwargs):
        calls[0] += 1
        if fail_at is not None and calls[0] == fail_at:
            raise Interrupt(f"{method} call {calls[0]}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)
    return calls


def _interrupted(monkeypatch: pytest.MonkeyPatch, method: str, fail_at: int, *args, **kwargs) -> None:
    """``segment_to(*args, **kwargs)`` interrupted at call ``fail_at`` of step ``method`` (a kill)."""
    with monkeypatch.context() as m:
        _count(m, method, fail_at=fail_at)
        with pytest.raises(Interrupt):
            segment_to(*args, **kwargs)


def test_an_interrupted_watershed_resumes_from_its_finished_passes_and_blocks(tmp_path, monkeypatch):
    prob = _blobs()
    options = dict(mode="watershed", block=BLOCK, halo=HALO, channel_names=NAMES, min_size=2)
    want = segment(prob, **options)
    out = tmp_path / "lab.zarr"
    _interrupted(monkeypatch, "flood", 10, prob, out, **options)
    state = state_folder(out)
    assert not out.exists() and (state / "seeds.npz").exists() and (state / "markers.npz").exists()
    assert sum(1 for _ in (state / "watershed.blocks").glob("[0-9]*.npz")) == 9  # blocks 1-9 flooded and recorded
    seeds, floods = _count(monkeypatch, "seeds"), _count(monkeypatch, "flood")
    res = segment_to(prob, out, **options)
    assert seeds[0] == 0 and floods[0] == 27 - 9  # finished passes and blocks are not redone
    np.testing.assert_array_equal(np.asarray(open_volume(res.path)[...]), want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.zarr"]  # the state is gone once the job succeeded


def test_an_interrupted_labelling_resumes_by_blocks_and_equals_scipy(tmp_path, monkeypatch):
    prob = _blobs(seed=3)
    out = tmp_path / "cc.h5"
    _interrupted(monkeypatch, "mask", 6, prob, out, block=BLOCK, channel_names=NAMES)
    masks = _count(monkeypatch, "mask")
    res = segment_to(prob, out, block=BLOCK, channel_names=NAMES)
    assert masks[0] == 27 - 5
    want, n = ndi.label(prob[1] > 0.5)
    np.testing.assert_array_equal(np.asarray(open_volume(res.path)[...]), want)
    assert res.n_objects == n


def test_other_settings_or_overwrite_start_afresh(tmp_path, monkeypatch):
    prob = _blobs(seed=4)
    out = tmp_path / "cc.zarr"
    _interrupted(monkeypatch, "mask", 6, prob, out, block=BLOCK, channel_names=NAMES)
    masks = _count(monkeypatch, "mask")
    res = segment_to(prob, out, block=BLOCK, channel_names=NAMES, min_size=20)  # another job: the old state is dropped
    assert masks[0] == 27
    np.testing.assert_array_equal(
        np.asarray(open_volume(res.path)[...]), segment(prob, block=BLOCK, channel_names=NAMES, min_size=20)
    )
    _interrupted(monkeypatch, "mask", 3, prob, tmp_path / "again.zarr", block=BLOCK, channel_names=NAMES)
    masks[0] = 0
    segment_to(prob, tmp_path / "again.zarr", block=BLOCK, channel_names=NAMES, resume=False)
    assert masks[0] == 27 and not state_folder(tmp_path / "again.zarr").exists()


def test_a_changed_input_is_refused_in_one_line(tmp_path, monkeypatch):
    prob = _blobs(seed=5)
    src, out = tmp_path / "p.tif", tmp_path / "cc.zarr"
    tifffile.imwrite(src, np.moveaxis(prob, 0, -1), metadata={"axes": "ZYXC"})  # channel-last, as predict writes TIFF
    _interrupted(monkeypatch, "mask", 4, src, out, block=BLOCK, channel_names=NAMES)
    changed = prob.copy()
    changed[:, 0] = changed[:, 0, ::-1]
    tifffile.imwrite(src, np.moveaxis(changed, 0, -1), metadata={"axes": "ZYXC"})
    with pytest.raises(InputError, match="changed since the interrupted run began") as err:
        segment_to(src, out, block=BLOCK, channel_names=NAMES)
    assert "\n" not in str(err.value) and "--overwrite" in str(err.value)
    assert state_folder(out).exists() and not out.exists()  # nothing lost: the refusal keeps the state
    res = segment_to(src, out, block=BLOCK, channel_names=NAMES, overwrite=True)
    np.testing.assert_array_equal(np.asarray(open_volume(res.path)[...]), ndi.label(changed[1] > 0.5)[0])


def test_a_refused_input_leaves_no_state(tmp_path):
    prob = _blobs(seed=6)
    prob[1, 5] = np.nan  # found in the last slab, after some blocks were labelled
    with pytest.raises(InputError, match="NaN"):
        segment_to(prob, tmp_path / "cc.zarr", block=BLOCK, channel_names=NAMES)
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_block_record_is_recomputed(tmp_path, monkeypatch):
    prob = _blobs(seed=7)
    out = tmp_path / "cc.zarr"
    _interrupted(monkeypatch, "mask", 8, prob, out, block=BLOCK, channel_names=NAMES)
    (state_folder(out) / "components.blocks" / "3.npz").write_bytes(b"torn")
    masks = _count(monkeypatch, "mask")
    res = segment_to(prob, out, block=BLOCK, channel_names=NAMES)
    assert masks[0] == 27 - 7 + 1
    np.testing.assert_array_equal(np.asarray(open_volume(res.path)[...]), ndi.label(prob[1] > 0.5)[0])


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="needs SIGKILL")
def test_segment_killed_with_sigkill_resumes_to_the_same_labels(tmp_path):
    """The command, killed mid-watershed (kill -9), leaves no output and resumes when rerun."""
    import signal
    import subprocess
    import sys
    import time

    rng = np.random.default_rng(8)
    fg = ndi.binary_opening(ndi.gaussian_filter(rng.random((12, 192, 192)), 2) > 0.5)
    edge = fg & ~ndi.binary_erosion(fg)
    prob = np.stack([np.where(fg, 0.1, 0.9), np.where(fg, 0.9, 0.1), np.where(edge, 0.9, 0.1)]).astype(np.float32)
    src, out = tmp_path / "p.tif", tmp_path / "w.zarr"
    tifffile.imwrite(src, np.moveaxis(prob, 0, -1), metadata={"axes": "ZYXC"})
    args = [
        sys.executable,
        "-m",
        "slicewise",
        "segment",
        str(src),
        str(out),
        "--mode",
        "watershed",
        "--boundary-channel",
        "2",
        "--block",
        "2,32,32",
        "--halo",
        "1,4,4",
    ]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    records = state_folder(out) / "watershed.blocks"
    deadline = time.monotonic() + 120
    try:
        while (
            proc.poll() is None
            and time.monotonic() < deadline
            and len(list(records.glob("[0-9]*.npz")) if records.exists() else []) < 5
        ):
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be killed")
    assert not out.exists() and records.exists()
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    want = segment(prob, mode="watershed", boundary_channel=2, block=(2, 32, 32), halo=(1, 4, 4))
    np.testing.assert_array_equal(np.asarray(open_volume(out)[...]), want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tif", "w.zarr"]
