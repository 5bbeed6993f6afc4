"""Missing zarr chunks: counted against the store listing and warned about in one line, unless the
store declares sparse data; slicewise's own stores write every chunk, so a lost chunk file is detectable.
Listing a group: zarr's warning about slicewise's ownership marker is silenced, about any other file kept."""

from __future__ import annotations

import logging
import shutil
import threading
import warnings

import numpy as np
import pytest
import zarr

from slicewise.data.io import integrity, open_volume, write_volume
from slicewise.data.io.ngff import write_image_metadata
from slicewise.utils.ownership import MARKER


@pytest.fixture(autouse=True)
def _fresh_warnings():
    integrity._warned.clear()
    yield
    integrity._warned.clear()


def _store(path, fmt: int):
    a = zarr.create_array(store=str(path), shape=(4, 64, 64), chunks=(1, 32, 32), dtype="u1", zarr_format=fmt)
    a[:] = 7
    return a


def _chunk(path, fmt: int, z: int, y: int, x: int):
    return path / (f"{z}.{y}.{x}" if fmt == 2 else f"c/{z}/{y}/{x}")


@pytest.mark.parametrize("fmt", [2, 3])
def test_missing_chunks_are_counted_and_warned_once(tmp_path, fmt, caplog):
    p = tmp_path / "v.zarr"
    _store(p, fmt)
    for z in (1, 2):
        _chunk(p, fmt, z, 0, 0).unlink()
    with caplog.at_level(logging.WARNING):
        vol = open_volume(p)
        open_volume(p)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "2 of 16 chunks are missing" in lines[0] and '"sparse": true' in lines[0]
    assert vol[1, :32, :32].max() == 0  # what zarr reads: the fill value


@pytest.mark.parametrize("where", ["array", "group"])
def test_a_store_declaring_sparse_data_is_not_warned_about(tmp_path, where, caplog):
    p = tmp_path / "g.zarr"
    g = zarr.open_group(str(p), mode="w", zarr_format=2)
    a = g.create_array("raw", shape=(4, 64, 64), chunks=(1, 32, 32), dtype="u1")
    a[:] = 3
    (p / "raw" / "1.0.0").unlink()
    (a if where == "array" else g).attrs["sparse"] = True
    with caplog.at_level(logging.WARNING):
        open_volume(p, key="raw")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_ngff_levels_and_predictions_are_checked_too(tmp_path, caplog):
    from slicewise.data.io.predictions import read_prediction

    g = zarr.open_group(str(tmp_path / "img.zarr"), mode="w", zarr_format=2)
    g.create_array("0", data=np.full((2, 4, 64, 64), 0.5, np.float32), chunks=(1, 1, 64, 64))
    write_image_metadata(g, axes="czyx", voxel_size=None, n_levels=1)
    (tmp_path / "img.zarr" / "0" / "1.2.0.0").unlink()
    with caplog.at_level(logging.WARNING):
        open_volume(tmp_path / "img.zarr")
        integrity._warned.clear()
        read_prediction(tmp_path / "img.zarr")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2 and all("1 of 8 chunks are missing" in ln for ln in lines)


def test_slicewise_writes_every_chunk_even_all_zero_ones(tmp_path, caplog):
    write_volume(tmp_path / "z.zarr", np.zeros((4, 64, 64), np.uint8), chunks=(1, 32, 32))
    assert zarr.open_array(str(tmp_path / "z.zarr"), mode="r").nchunks_initialized == 16
    shutil.rmtree(tmp_path / "z.zarr" / "0.0.0", ignore_errors=True)
    (tmp_path / "z.zarr" / "0.0.0").unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING):
        open_volume(tmp_path / "z.zarr")
    assert any("1 of 16 chunks are missing" in r.getMessage() for r in caplog.records)


def test_listing_a_group_silences_the_marker_warning_only(tmp_path):
    root = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=2)
    root.create_array("raw", shape=(2, 4, 4), dtype="u1")
    (tmp_path / "g.zarr" / MARKER).write_text("{}")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with integrity.zarr_listing():
            assert [name for name, _ in root.members()] == ["raw"]
    assert [str(w.message) for w in seen] == []
    (tmp_path / "g.zarr" / "notes.txt").write_text("mine")  # a file of someone else: zarr's warning stays
    with pytest.warns(UserWarning, match="notes.txt is not recognized"), integrity.zarr_listing():
        root.members()


def test_tifffile_warnings_are_collected_per_thread_and_the_logger_restored():
    logger = logging.getLogger("tifffile")
    propagate = logger.propagate
    inside, release, results = threading.Barrier(2), threading.Event(), {}

    def worker(name: str) -> None:
        with integrity.tifffile_warnings() as seen:
            inside.wait()
            logger.warning("from %s", name)
            if name == "a":
                release.wait()
        results[name] = list(seen)

    a = threading.Thread(target=worker, args=("a",))
    b = threading.Thread(target=worker, args=("b",))
    a.start()
    b.start()
    b.join()  # b left while a is still inside: a's warnings must still be collected, not printed
    logger.warning("from a again")  # the main thread is outside every collection: dropped while a is inside
    release.set()
    a.join()
    assert results == {"a": ["from a"], "b": ["from b"]}
    assert logger.propagate == propagate and not any(type(h).__name__ == "_TiffCollector" for h in logger.handlers)
