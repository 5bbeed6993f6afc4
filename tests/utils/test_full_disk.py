"""A full disk: every writer fails with one line naming the output (and the space needed where known), publishes
nothing, keeps the previous output and any resumable state, and never crashes the process.

Each case writes onto a small tmpfs (the ``small_disk`` fixture; skipped with the reason where mounting is not
permitted). The memory-mapped and library-level writers (TIFF memmap, HDF5) run in a subprocess, so a SIGBUS /
SIGSEGV would show as a negative exit status instead of killing the test session."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from slicewise.errors import WriteError
from slicewise.utils.atomic import write_json

VOL = np.random.default_rng(0).integers(0, 256, (32, 128, 128), dtype=np.uint8)  # 512 KB, incompressible


def _listing(d):
    return sorted(p.name for p in d.iterdir() if p.name != ".filler")


def _run(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )


@pytest.mark.parametrize("name", ["v.tif", "v.h5", "v.zarr", "pngs"])
def test_write_volume_on_a_full_disk_is_one_line_and_keeps_the_previous_output(small_disk, name):
    d = small_disk("1m")
    old = np.zeros((2, 8, 8), np.uint8)
    from slicewise.data.io import open_volume, write_volume

    write_volume(d / name, old)
    small_disk.fill(d, leave=64 * 1024)
    r = _run(
        """
        import sys, numpy as np
        from slicewise.data.io import write_volume
        from slicewise.errors import WriteError
        vol = np.random.default_rng(0).integers(0, 256, (32, 128, 128), dtype=np.uint8)
        try:
            write_volume(sys.argv[1], vol, overwrite=True)
        except WriteError as err:
            print(err)
            sys.exit(2)
        """,
        d / name,
    )
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])  # not -7 (SIGBUS) / -11 (SIGSEGV), not 0
    line = r.stdout.strip()
    assert line.count("\n") == 0 and line.startswith(f"cannot write output {d / name}") and "disk is full" in line
    assert _listing(d) == [name]  # no temporary sibling, no lock left
    np.testing.assert_array_equal(np.asarray(open_volume(d / name)[...]), old)  # the previous output is intact


def test_adding_an_hdf5_dataset_on_a_full_disk_keeps_the_file_readable(small_disk):
    import h5py

    from slicewise.data.io import write_volume

    d = small_disk("1m")
    write_volume(d / "f.h5", np.ones((2, 8, 8), np.uint8), key="old")
    small_disk.fill(d, leave=64 * 1024)
    r = _run(
        """
        import sys, numpy as np
        from slicewise.data.io import write_volume
        from slicewise.errors import WriteError
        try:
            data = np.random.default_rng(0).integers(0, 256, (32, 128, 128), dtype=np.uint8)
            write_volume(sys.argv[1], data, key="new")
        except WriteError as err:
            print(err)
            sys.exit(2)
        """,
        d / "f.h5",
    )
    assert r.returncode == 2 and "disk is full" in r.stdout, r.stderr[-2000:]
    with h5py.File(d / "f.h5", "r") as f:
        assert list(f) == ["old"] and int(f["old"][...].sum()) == 128


@pytest.mark.parametrize("name", ["l.tif", "l.h5", "l.zarr"])
def test_a_blockwise_array_store_refuses_before_computing_when_the_disk_lacks_its_size(small_disk, name):
    from slicewise.data.io.stores import create_array_store

    d = small_disk("1m")
    with pytest.raises(
        WriteError, match=rf"cannot write output {d / name}: it needs about 2.1 MB but .* has 1.0 MB free"
    ):
        create_array_store(d / name, (8, 256, 256), np.int32)
    assert _listing(d) == []


@pytest.mark.parametrize("name", ["l.tif", "l.h5"])
def test_a_memory_mapped_or_hdf5_store_meeting_a_full_disk_is_one_line_never_a_crash(small_disk, name):
    """The free-space check passed, then the disk filled up (another process): the space is reserved at creation
    (``posix_fallocate``), so the map / HDF5 never writes into blocks the disk does not have."""
    d = small_disk("2m")
    r = _run(
        """
        import sys, pathlib, numpy as np
        from slicewise.data.io import stores as s
        from slicewise.errors import WriteError
        check = s.check_free_space
        def then_fill(path, nbytes, **kw):  # passes, then the disk fills up before the store is created
            check(path, nbytes, **kw)
            pathlib.Path(path).parent.joinpath(".filler").write_bytes(b"0" * (1800 * 1024))
        s.check_free_space = then_fill
        try:
            st = s.create_array_store(sys.argv[1], (4, 256, 256), np.int32)
            st[...] = np.ones((4, 256, 256), np.int32)
            st.finalize()
        except WriteError as err:
            print(err)
            sys.exit(2)
        """,
        d / name,
    )
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert re.match(
        rf"cannot write output {re.escape(str(d / name))}: the disk is full \(needs about 1\.\d MB, ", r.stdout
    )
    assert _listing(d) == []


def test_write_json_on_a_full_disk_keeps_the_previous_file(small_disk):
    d = small_disk("1m")
    write_json(d / "r.json", {"old": 1})
    small_disk.fill(d)
    with pytest.raises(WriteError, match=rf"cannot write output {d / 'r.json'}: the disk is full"):
        write_json(d / "r.json", {"new": "x" * 100_000}, overwrite=True)
    assert json.loads((d / "r.json").read_text()) == {"old": 1} and _listing(d) == ["r.json"]


def test_a_model_file_a_figure_and_a_report_on_a_full_disk(small_disk):
    import matplotlib

    matplotlib.use("Agg")
    from slicewise.models import build_model, save_model
    from slicewise.utils.figures import pyplot, save_figure

    d = small_disk("1m")
    small_disk.fill(d, leave=8 * 1024)
    with pytest.raises(WriteError, match=rf"cannot write output {d / 'm.pt'}: the disk is full"):
        save_model(
            build_model(
                encoder="tf_efficientnet_lite0", weights="random", in_slices=3, decoder_channels=(16, 8, 8, 8, 8)
            ),
            d / "m.pt",
        )
    fig = pyplot().figure(figsize=(40, 40))
    fig.gca().imshow(np.random.default_rng(0).random((512, 512)))
    with pytest.raises(WriteError, match=rf"cannot write output {d / 'f.png'}"):
        save_figure(fig, d / "f.png")
    pyplot().close(fig)
    assert _listing(d) == []


def test_a_checkpoint_on_a_full_disk_keeps_the_previous_one(small_disk):
    import torch

    from slicewise.training.run import AtomicCheckpointIO

    d = small_disk("1m")
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.zeros(10)}}, d / "last.ckpt")
    small_disk.fill(d, leave=4096)
    with pytest.raises(WriteError, match=rf"cannot write output {d / 'last.ckpt'}: the disk is full"):
        io.save_checkpoint({"state_dict": {"w": torch.ones(400_000)}}, d / "last.ckpt")
    assert torch.equal(io.load_checkpoint(d / "last.ckpt")["state_dict"]["w"], torch.zeros(10))
    assert _listing(d) == ["last.ckpt"]


def test_training_into_a_full_disk_is_one_line_and_no_traceback(small_disk, tmp_path, tiny_config):
    import yaml

    cfg = tiny_config
    cfg["trainer"]["max_steps"] = 2
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    d = small_disk("1m")
    r = subprocess.run(
        [sys.executable, "-m", "slicewise.cli", "train", tmp_path / "cfg.yaml", "--out", d / "run"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write output {d / 'run'}") and "the disk is full" in last, last
    assert not list((d / "run").rglob(".*.tmp-*")) and not list(d.rglob("*.lock"))


def test_a_study_cell_result_on_a_full_disk_is_not_a_finished_cell(small_disk, tmp_path):
    import yaml

    from slicewise.studies.execute import run_cell
    from slicewise.studies.grid import RESULT, cell_dir, grid_cells
    from slicewise.studies.schema import load_study

    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump(
            {"name": "s", "cell": "x:y", "data_root": str(tmp_path), "grid": {"seed": [0]}, "comparisons": []}
        )
    )
    study = load_study(tmp_path / "s.yaml")
    cell = grid_cells(study)[0]
    d = small_disk("1m")
    cell_dir(d, cell).mkdir(parents=True)
    small_disk.fill(d)

    def big(ctx):
        return {"metrics": [{"metric": "m", "value": 1.0}], "info": {"blob": "x" * 200_000}}

    with pytest.raises(WriteError, match=rf"cannot write output {cell_dir(d, cell) / RESULT}: the disk is full"):
        run_cell(study, cell, d, tmp_path, big)
    assert not (cell_dir(d, cell) / RESULT).exists()
