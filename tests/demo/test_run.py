"""The quickstart's job, at a tiny scale: phantom → fine-tune (rgb, uniform) → predict → evaluate → audit."""

import json

import numpy as np
import pytest

from slicewise.cli import main
from slicewise.demo import format_demo, run_demo
from slicewise.demo.options import data_name
from slicewise.utils.table import num


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(
        out=out / "run", steps=3, patch=64, batch_size=2, shape=(12, 64, 64), attribution_tiles=6
    ), out / "run"


def test_demo_compares_strategies_and_writes_results(demo_result):
    result, out = demo_result
    rows = {r["strategy"]: r for r in result["rows"]}
    assert set(rows) == {"rgb", "uniform"}
    for r in rows.values():
        assert 0.0 <= r["dice_mean"] <= 1.0 and 0.0 <= r["adapted_rand_error"] <= 1.0
        assert sum(r[f"share_{d:+d}"] for d in (-1, 0, 1)) == pytest.approx(1.0, abs=1e-6)
    # ImageNet rgb first layer weighs the slices unequally; uniform does not (both only 3 steps from pretrained)
    assert rows["rgb"]["mirror_asymmetry"] > 5 * rows["uniform"]["mirror_asymmetry"]
    saved = json.loads((out / "results.json").read_text())
    assert [r["strategy"] for r in saved["rows"]] == ["rgb", "uniform"]
    assert saved["rows"][0]["dice_mean"] == pytest.approx(rows["rgb"]["dice_mean"], rel=1e-5)
    assert (out / "slice_shares.png").stat().st_size > 1000
    assert (out / "results.csv").read_text().splitlines()[0].startswith("strategy,")
    z0, z1 = result["held_out_slices"]
    assert 0 < z0 < z1 == 12
    table = format_demo(result)
    assert "rgb" in table and "uniform" in table and "ARE" in table
    assert f"held-out slices {z0}:{z1}" in table and saved["held_out_slices"] == [z0, z1]  # one range, one notation
    for r in result["rows"]:
        assert num(r["adapted_rand_error"]) in table  # 4 significant digits, never 0.0000 for a small value
    from slicewise.models import load_model

    assert load_model(out / "train-rgb" / "best.pt").config.channel_names[:3] == [
        "background",
        "membrane",
        "mitochondrion",
    ]


def test_demo_refuses_non_empty_output(demo_result, capsys):
    _, out = demo_result
    with pytest.raises(SystemExit) as ei:
        main(["demo", "--out", str(out)])
    assert ei.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--overwrite" in err and "\n" not in err


def test_demo_needs_raw_and_labels_together(tmp_path, capsys):
    raw = tmp_path / "raw.tif"
    import tifffile

    tifffile.imwrite(raw, np.zeros((4, 64, 64), np.uint8))
    with pytest.raises(SystemExit):
        main(["demo", "--raw", str(raw), "--out", str(tmp_path / "o")])
    assert "--labels" in capsys.readouterr().err


def test_demo_records_its_environment_and_titles_its_figure_with_the_data(demo_result):
    result, out = demo_result
    saved = json.loads((out / "results.json").read_text())
    env = saved["environment"]
    assert env["seed"] == 0 and env["versions"]["torch"] and env["versions"]["timm"] and env["threads"]["torch"] >= 1
    assert env["device"]["type"] in ("cpu", "cuda") and env["torch_build"]["blas"]
    assert " torch thread" in format_demo(result) or "cuda:" in format_demo(result)  # the table names its environment
    title = saved["data"]
    assert title.startswith("synthetic EM phantom 12×64×64") and title in (out / "slice_shares.svg").read_text()
    isbi = data_name({"raw": "/data/isbi2012/train-volume.tif"}, (30, 512, 512))
    assert isbi == "train-volume.tif 30×512×512" and isbi != title
