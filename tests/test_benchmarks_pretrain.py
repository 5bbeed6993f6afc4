"""The ``pretrain`` row of the side-by-side benchmark: slicewise.pretrain vs lightly's MoCo v2 recipe
fed by a torch DataLoader, at CPU smoke sizes; ``--merge`` adds it to an existing results file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("lightly", reason="the pretrain row's peer is lightly's MoCo v2 recipe")
pytest.importorskip("torchvision", reason="the pretrain row's peer makes its views with torchvision")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench(load_script) -> ModuleType:
    return load_script(BENCH, "slicewise_bench_pretrain")


@pytest.fixture(scope="module")
def merged_run(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "cpu.json"
    earlier = {
        "meta": {"device_name": "cpu", "time_utc": "2026-01-01T00:00:00Z"},
        "settings": {"smoke": False},
        "rows": {
            "sam": {"unit": "img/s", "slicewise": 2.0, "peer": 1.0, "ratio": 2.0, "peer_name": "timm"},
            "train_input": {"unit": "img/s", "slicewise": 3.0, "peer": 1.0, "ratio": 3.0, "peer_name": "x"},
        },
    }
    out.write_text(json.dumps(earlier))
    mp = pytest.MonkeyPatch()
    mp.setenv("SLICEWISE_NO_PROGRESS", "1")
    try:
        code = bench.main(["--device", "cpu", "--smoke", "--only", "pretrain", "--merge", "--out", str(out)])
    finally:
        mp.undo()
    return {"code": code, "payload": json.loads(out.read_text()), "earlier": earlier}


def test_pretrain_row_is_measured_on_both_sides(bench: ModuleType, merged_run: dict) -> None:
    assert merged_run["code"] == 0
    row = merged_run["payload"]["rows"]["pretrain"]
    assert row["unit"] == "img/s" and "lightly" in row["peer_name"]
    for key in ("slicewise", "peer", "ratio"):
        assert math.isfinite(row[key]) and row[key] > 0
    assert row["ratio"] == pytest.approx(row["slicewise"] / row["peer"])
    s = bench.Settings.make("cpu", True)
    cfg = row["slicewise_config"]  # the same work on both sides
    assert cfg["model"]["encoder"] == s.ssl_encoder == row["encoder"]
    assert (
        cfg["data"]["patch_size"] == s.ssl_size == row["crop"]
        and cfg["data"]["batch_size"] == s.ssl_batch == row["batch"]
    )
    assert cfg["model"]["in_slices"] == s.k and cfg["method"]["name"] == "mocov2"
    assert "pretrain" in bench.ROWS and "pretrain" in bench.CPU_GROUPS.split(",")


def test_merge_keeps_the_rows_it_did_not_measure(bench: ModuleType, merged_run: dict) -> None:
    payload, earlier = merged_run["payload"], merged_run["earlier"]
    rows = payload["rows"]
    assert rows["sam"] == earlier["rows"]["sam"] and rows["train_input"] == earlier["rows"]["train_input"]
    assert list(rows) == [r for r in bench.ROWS if r in rows]  # the table's order
    assert payload["merged"][-1]["rows"] == ["sam", "train_input"]
    assert payload["merged"][-1]["meta"]["time_utc"] == "2026-01-01T00:00:00Z"
    assert payload["meta"]["time_utc"] != "2026-01-01T00:00:00Z" and "lightly" in payload["meta"]["versions"]


def test_peer_views_are_two_different_augmentations_of_one_region(bench: ModuleType) -> None:
    import torch

    torch.manual_seed(0)
    raw = np.random.default_rng(0).integers(0, 256, size=(5, 80, 80), dtype=np.uint8)
    ds = bench.PeerViews(raw, size=32, k=3, length=4)
    a, b = ds[0]
    assert a.shape == b.shape == (3, 32, 32) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert not torch.equal(a, b)
