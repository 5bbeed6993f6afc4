"""Output claims (one writer per output), writability checks before work, atomic renames."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from slicewise.errors import InputError
from slicewise.utils.atomic import atomic_path, check_output_path, claim_output, lock_path


def test_second_writer_is_refused_while_first_holds_the_claim(tmp_path):
    out = tmp_path / "pred.tif"
    code = (
        "import sys, time; from slicewise.utils.atomic import claim_output\n"
        f"with claim_output({str(out)!r}):\n    print('held', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match="being written by another slicewise process"):
            with atomic_path(out):
                pass
        assert not out.exists()
    finally:
        proc.kill()
        proc.wait()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "pred.zarr"
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    import socket

    lock_path(out).write_text(f"{dead_pid} {socket.gethostname()}")
    with claim_output(out):
        assert lock_path(out).read_text().split()[0] == str(os.getpid())
    assert not lock_path(out).exists()


def test_claims_are_reentrant_in_one_process(tmp_path):
    out = tmp_path / "x.h5"
    with claim_output(out):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"1")
        assert lock_path(out).exists()
    assert out.read_bytes() == b"1" and not lock_path(out).exists()


def test_output_under_a_regular_file_is_refused_before_work(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_path(f / "sub" / "out.tif")


def test_read_only_folder_is_refused_before_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(InputError, match="not writable"):
            check_output_path(ro / "out.tif")
    finally:
        ro.chmod(0o755)


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "a.json"
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="needs SIGKILL")
def test_leftovers_of_a_killed_writer_are_removed_by_the_next_claim(tmp_path):
    """A writer killed with SIGKILL leaves its temporary sibling; the next writer of the same output removes it
    (and only it: a resumable job's state and other outputs' files stay)."""
    import signal

    out = tmp_path / "seg.zarr"
    code = (
        "import sys, time\n"
        "from slicewise.utils.atomic import atomic_path\n"
        f"with atomic_path({str(out)!r}) as tmp:\n"
        "    tmp.mkdir(); (tmp / 'chunk').write_text('x')\n"
        "    print('written', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    keep = [tmp_path / ".seg.partial.zarr", tmp_path / ".seg.zarr.state", tmp_path / ".other.tmp-0123abcd.zarr"]
    for p in keep:
        p.mkdir()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert any(".seg.tmp-" in n for n in left) and lock_path(out).exists()
    with atomic_path(out) as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["seg.zarr", *(p.name for p in keep)])
