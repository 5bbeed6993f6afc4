"""CPU smoke of the side-by-side GPU benchmark (benchmarks/bench.py --smoke): every row is
measured, positive and finite, consistent with its parts, and printed in the table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip(
    "segmentation_models_pytorch", reason="the benchmark's peer needs segmentation-models-pytorch (test extra)"
)
pytest.importorskip("monai", reason="the benchmark's peer needs monai (test extra)")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench(load_script) -> ModuleType:
    return load_script(BENCH, "slicewise_bench")


@pytest.fixture(scope="module")
def smoke(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, int]:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    mp = pytest.MonkeyPatch()
    mp.setenv("SLICEWISE_NO_PROGRESS", "1")
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    try:
        with redirect_stdout(buf):
            code = bench.main(["--device", "cpu", "--smoke", "--out", str(out)])
    finally:
        mp.undo()
    return json.loads(out.read_text()), buf.getvalue(), code


def test_smoke_has_every_row_positive_and_finite(bench: ModuleType, smoke: tuple[dict, str, int]) -> None:
    payload, _, code = smoke
    assert code == 0
    rows = payload["rows"]
    assert list(rows) == list(bench.ROWS)
    for name, r in rows.items():
        for key in ("slicewise", "peer", "ratio"):
            assert math.isfinite(r[key]) and r[key] > 0, (name, key, r[key])
        assert r["ratio"] == pytest.approx(r["slicewise"] / r["peer"])


def test_smoke_table_names_every_row(bench: ModuleType, smoke: tuple[dict, str, int]) -> None:
    _, printed, _ = smoke
    lines = printed.splitlines()
    for name in bench.ROWS:
        assert any(line.split()[:1] == [name] for line in lines), name


def test_smoke_records_device_settings_and_versions(smoke: tuple[dict, str, int]) -> None:
    payload, _, _ = smoke
    meta, settings = payload["meta"], payload["settings"]
    assert meta["device_name"] == "cpu"
    assert {"torch", "timm"} <= set(meta["versions"])
    assert meta["matmul_peak_tflops"] > 0
    assert settings["smoke"] is True and settings["bf16"] is False


def test_mfu_is_achieved_flops_over_peak(smoke: tuple[dict, str, int]) -> None:
    rows = smoke[0]["rows"]
    peak = smoke[0]["meta"]["matmul_peak_tflops"]
    for mfu, source, factor in (("mfu_train", "train_model", 3.0), ("mfu_sam", "sam", 1.0)):
        for side in ("slicewise", "peer"):
            src = rows[source]
            tflops = src[side] * factor * src[f"{side}_gflop_per_image"] / 1e3
            assert rows[mfu][side] == pytest.approx(tflops / peak)


def test_only_selects_groups_and_unknown_group_is_refused(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLICEWISE_NO_PROGRESS", "1")
    assert bench.main(["--device", "cpu", "--smoke", "--only", "nonsense"]) == 2
    assert "unknown group" in capsys.readouterr().err
    out = tmp_path / "sam.json"
    assert bench.main(["--device", "cpu", "--smoke", "--only", "sam", "--out", str(out)]) == 0
    assert list(json.loads(out.read_text())["rows"]) == ["sam"]


def test_fraction_outside_the_forward_sees_host_work(bench: ModuleType) -> None:
    """The profiler measure of the ``predict_overhead`` row: work outside the network's forward counts, inside does
    not."""
    import time

    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3))
    x = torch.rand(2, 3, 96, 96)

    def forward_only() -> None:
        with torch.no_grad():
            for _ in range(3):
                net(x)

    def mostly_host() -> None:
        time.sleep(0.2)
        forward_only()

    cpu = torch.device("cpu")
    lean = bench.profiled_fraction_outside(net, forward_only, cpu)
    heavy = bench.profiled_fraction_outside(net, mostly_host, cpu)
    assert 0.0 <= lean["profiler"] < 0.3 and 0.0 <= lean["timer"] < 0.3
    assert heavy["profiler"] > 0.5 and heavy["timer"] > 0.5 and heavy["outside_s"] >= 0.2


def test_repeat_keeps_every_run_and_reports_medians(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLICEWISE_NO_PROGRESS", "1")
    out = tmp_path / "input.json"
    assert bench.main(["--device", "cpu", "--smoke", "--only", "input", "--repeat", "2", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert len(payload["runs"]) == 2 and all(len(r["loadavg_start"]) == 3 for r in payload["runs"])
    assert payload["meta"]["machine"]["cpu_model"] and "loadavg" in payload["meta"]["machine"]
    for name in ("train_input", "train_input_full"):
        row = payload["rows"][name]
        ratios = [r["rows"][name]["ratio"] for r in payload["runs"]]
        assert row["ratio_runs"] == ratios and row["ratio"] == pytest.approx(
            sorted(ratios)[0] / 2 + sorted(ratios)[1] / 2
        )
