"""The pretraining study on any stack: ``study init pretraining``, the pretraining cache shared
by the fine-tuning cells (one run per self-supervised arm and seed, not per fraction), the gain curve
and its sentence in the report, and the smoke study end to end with real pretraining."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from slicewise.errors import ConfigError, InputError
from slicewise.selfsup.run import WEIGHTS_NAME
from slicewise.studies.cells import pretraining as pt
from slicewise.studies.execute import run_study
from slicewise.studies.gain import numeric_stratum, significance_sentence
from slicewise.studies.grid import CellContext, grid_cells
from slicewise.studies.init import SSL_ARMS, init_study
from slicewise.studies.schema import load_study
from slicewise.studies.stats import Comparison, study_statistics
from slicewise.utils.atomic import lock_path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tifffile

    from slicewise.data.synthetic import make_phantom

    d = tmp_path_factory.mktemp("own")
    ph = make_phantom(shape=(20, 64, 64), seed=3)
    tifffile.imwrite(d / "raw.tif", ph.raw)
    tifffile.imwrite(d / "labels.tif", np.where(ph.semantic == 1, 0, 255).astype(np.uint8))  # ISBI: 0 membrane
    tifffile.imwrite(d / "more.tif", make_phantom(shape=(4, 64, 64), seed=4).raw)
    return d


def _init(stack: Path, **recipe) -> str:
    return init_study("pretraining", str(stack / "raw.tif"), str(stack / "labels.tif"), "0:14", "16:20", **recipe)


def test_init_writes_four_arms_crossed_with_fractions_and_seeds(stack: Path) -> None:
    text = _init(stack, unlabelled=[str(stack / "more.tif")], fractions="0.25,0.1,1", seeds=2)
    raw = yaml.safe_load(text)
    assert raw["cell"] == "pretraining" and "&id" not in text
    assert raw["grid"] == {
        "weights": ["random", "imagenet", "ssl-scratch", "ssl-imagenet"],
        "fraction": [0.1, 0.25, 1.0],
        "seed": [0, 1],
    }
    arms = raw["extras"]["pretrain"]["arms"]
    assert {k: v["start"] for k, v in arms.items()} == {"ssl-scratch": "random", "ssl-imagenet": "imagenet"}
    assert raw["extras"]["pretrain"]["unlabelled"] == [str((stack / "more.tif").resolve())]
    assert str((stack / "more.tif").resolve()) in raw["requires"]
    assert raw["data"]["train_z"] == [0, 14] and raw["data"]["test_z"] == [16, 20]
    gain = [c for c in raw["comparisons"] if c["baseline"] == "imagenet"]
    assert {c["metric"] for c in gain} == {"dice", "are"}
    assert all(c["levels"] == ["ssl-scratch", "ssl-imagenet"] and c["per"] == ["fraction"] for c in gain)
    path = stack / "p.yaml"
    path.write_text(text)
    smoke = load_study(path, smoke=True)
    assert len(grid_cells(smoke)) == 4  # one cell per arm: seconds on a CPU
    assert smoke.extras["pretrain"]["config"]["trainer"]["max_steps"] <= 5
    assert len(grid_cells(load_study(path))) == 4 * 3 * 2


def test_pretrained_files_become_arms_and_fix_the_encoder(stack: Path, tmp_path: Path) -> None:
    from slicewise.models import build_model
    from slicewise.models.encoder_file import save_encoder

    enc = build_model(encoder="resnet18", weights="random", in_slices=3, channel_init="mirror", classes=2).encoder
    files = [
        save_encoder(
            enc,
            tmp_path / f"{i}.safetensors",
            {"encoder": "resnet18", "in_slices": 3, "colors": 1, "channel_init": "mirror", "method": "mocov2"},
        )
        for i in (1, 2)
    ]
    raw = yaml.safe_load(_init(stack, pretrained=[str(f) for f in files], seeds=3))
    assert raw["grid"]["weights"][-2:] == ["pretrained", "pretrained-2"]
    assert raw["presets"]["weights"]["pretrained-2"] == {"model": {"weights": str(files[1].resolve())}}
    m = raw["base"]["model"]
    assert (m["encoder"], m["in_slices"], m["channel_init"]) == (
        "resnet18",
        3,
        "mirror",
    )  # the ssl arms pretrain the same
    assert "pretrained-2" in raw["comparisons"][0]["levels"]
    (tmp_path / "not.safetensors").write_bytes(b"junk")
    with pytest.raises(InputError, match="not an encoder file written by `slicewise pretrain`"):
        _init(stack, pretrained=[str(tmp_path / "not.safetensors")])


@pytest.mark.parametrize(
    "recipe, template, error, match",
    [
        ({"fractions": "0,0.5"}, "pretraining", InputError, r"in \(0, 1\]"),
        ({"fractions": "a"}, "pretraining", InputError, "separated by commas"),
        ({"seeds": 0}, "pretraining", InputError, "at least 1 seed"),
        ({"method": "simclr"}, "pretraining", ConfigError, "mocov2"),
        ({"unlabelled": ["LABELS"]}, "pretraining", InputError, "looks like a label volume"),
        ({"unlabelled": ["nothere.tif"]}, "pretraining", InputError, "does not exist"),
        ({"unlabelled": ["RAW"]}, "pretraining", InputError, "leak the test slices"),
        ({"fractions": "0.5"}, "bias", InputError, "only apply to `study init pretraining`"),
    ],
)
def test_init_refuses_bad_recipes_in_one_line(stack: Path, recipe, template, error, match) -> None:
    names = {"LABELS": str(stack / "labels.tif"), "RAW": str(stack / "raw.tif")}
    recipe = {k: [names.get(u, u) for u in v] if k == "unlabelled" else v for k, v in recipe.items()}
    with pytest.raises(error, match=match) as info:
        init_study(template, str(stack / "raw.tif"), str(stack / "labels.tif"), "0:14", "16:20", **recipe)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- the cache


def cache_cell(ctx: CellContext) -> dict:
    """A cell that only resolves its weights (pretraining or not) and reports a Dice with a known gain:
    domain pretraining helps by 0.2 at fractions below 0.2, not at all above."""
    config = {
        "model": {
            "encoder": "resnet18",
            "in_slices": 3,
            "channel_init": "uniform",
            "weights": ctx.cell.params["weights"],
        }
    }
    info = pt.use_pretrained(ctx, config, ["/data/raw.tif"])
    p = ctx.cell.params
    rng = np.random.default_rng([int(p["seed"]), ctx.cell.index])
    gain = 0.2 if (p["weights"] != "imagenet" and float(p["fraction"]) < 0.2) else 0.0
    value = 0.5 + gain + 0.01 * int(p["seed"]) + rng.normal(0, 0.003)
    return {"metrics": [{"metric": "dice", "value": value}], "info": {**info, "weights": config["model"]["weights"]}}


@pytest.fixture()
def fake_pretrain(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    calls: list[tuple] = []

    def run(data, out, config, resume):
        calls.append((tuple(data), str(out), json.dumps(config, sort_keys=True)))
        out.mkdir(parents=True, exist_ok=True)
        (out / WEIGHTS_NAME).write_text("weights")
        return out / WEIGHTS_NAME

    monkeypatch.setattr(pt, "run_pretraining", run)
    return calls


def test_piping_nothing_is_one_line(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("not: a study\n"))
    code, _, err = cli(["study", "-", "--smoke"])
    assert code == 2 and "standard input holds no study file" in err and "Traceback" not in err


def _cache_study(tmp_path: Path) -> Path:
    spec = {
        "name": "cache",
        "cell": "pretraining",
        "data_root": str(tmp_path),
        "grid": {
            "weights": ["imagenet", "ssl-scratch", "ssl-imagenet"],
            "fraction": [0.05, 0.1, 0.5, 1.0],
            "seed": [0, 1, 2],
        },
        "extras": {"pretrain": {"arms": SSL_ARMS, "config": {"trainer": {"max_steps": 7}}}},
        "comparisons": [
            {"name": "Dice gain", "axis": "weights", "baseline": "imagenet", "metric": "dice", "per": ["fraction"]}
        ],
    }
    p = tmp_path / "cache.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


def test_pretraining_runs_once_per_arm_and_seed_and_is_shared_by_all_fractions(tmp_path: Path, fake_pretrain) -> None:
    out = tmp_path / "out"
    s = run_study(_cache_study(tmp_path), out, cell_fn=cache_cell, echo=lambda _: None)
    assert len(s.done) == 3 * 4 * 3 and not s.failed
    assert len(fake_pretrain) == 2 * 3  # 2 self-supervised arms x 3 seeds, not x 4 fractions
    folders = sorted(p.name for p in (out / "pretrain").iterdir() if p.is_dir())
    assert len(folders) == 6 and all((out / "pretrain" / f / WEIGHTS_NAME).is_file() for f in folders)
    configs = [json.loads(c[2]) for c in fake_pretrain]
    assert {(c["model"]["weights"], c["seed"]) for c in configs} == {
        (w, s) for w in ("random", "imagenet") for s in (0, 1, 2)
    }
    assert all(c["model"]["encoder"] == "resnet18" and c["trainer"]["max_steps"] == 7 for c in configs)
    results = {json.loads(p.read_text())["cell"]: json.loads(p.read_text()) for p in out.glob("cells/*/result.json")}
    by_arm_seed: dict[tuple, set] = {}
    for r in results.values():
        arm, seed = r["params"]["weights"], r["params"]["seed"]
        if arm == "imagenet":
            assert "pretrained" not in r["info"] and r["info"]["weights"] == "imagenet"
            continue
        by_arm_seed.setdefault((arm, seed), set()).add(r["info"]["pretrained"])
        assert r["info"]["weights"] == r["info"]["pretrained"]
    assert len(by_arm_seed) == 6 and all(len(v) == 1 for v in by_arm_seed.values())  # every fraction: the same file
    assert sum(r["info"].get("pretrain_computed", False) for r in results.values()) == 6
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "pretrain").glob(f"*/{WEIGHTS_NAME}")}
    run_study(
        _cache_study(tmp_path),
        out,
        cell_fn=cache_cell,
        overwrite=True,
        echo=lambda _: None,
        overrides=["grid.fraction=[0.05, 0.25]"],
    )  # new fine-tuning cells reuse the cache
    assert len(fake_pretrain) == 6
    assert {p: p.stat().st_mtime_ns for p in (out / "pretrain").glob(f"*/{WEIGHTS_NAME}")} == mtimes

    html = (out / "report.html").read_text()
    assert "figures/gain-" in html
    stats = pd.read_csv(out / "stats.csv")
    assert set(stats["fraction"]) == {0.05, 0.25}


def test_a_run_computed_by_another_process_is_waited_for_not_recomputed(
    tmp_path: Path, fake_pretrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pt, "WAIT_POLL_S", 0.05)
    study = load_study(_cache_study(tmp_path))
    cell = grid_cells(study)[12]  # ssl-scratch, fraction 0.05, seed 0
    assert cell.params["weights"] == "ssl-scratch"
    ctx = CellContext(study, cell, tmp_path / "out" / "cells" / cell.id, tmp_path)
    spec = pt.pretrain_spec(ctx, SSL_ARMS["ssl-scratch"], {"encoder": "resnet18", "in_slices": 3}, ["/data/raw.tif"])
    folder = tmp_path / "out" / pt.PRETRAIN_DIR
    folder.mkdir(parents=True)
    target = folder / f"ssl-scratch-seed0-{pt.json_hash(spec, 10)}"
    lock = lock_path(target)
    lock.write_text(f"{os.getppid()} {os.uname().nodename}")  # a live process on this host holds the claim
    got: dict = {}
    t = threading.Thread(target=lambda: got.update(res=pt.pretrained_encoder(ctx, "ssl-scratch", spec)))
    t.start()
    time.sleep(0.3)
    assert t.is_alive() and not fake_pretrain  # waiting, not computing
    target.mkdir()
    (target / WEIGHTS_NAME).write_text("theirs")
    lock.unlink()
    t.join(5)
    assert got["res"] == (target / WEIGHTS_NAME, False) and not fake_pretrain


# ----------------------------------------------------------------------------- the sentence


def _gain_stats(gains: dict[float, float], seeds: int = 5, noise: float = 0.01) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {
            "weights": w,
            "fraction": f,
            "seed": s,
            "metric": "dice",
            "value": 0.5 + (g if w == "ssl" else 0.0) + 0.02 * s + noise * rng.normal(),
        }
        for f, g in gains.items()
        for w in ("imagenet", "ssl")
        for s in range(seeds)
    ]
    comp = Comparison(axis="weights", baseline="imagenet", metric="dice", per=["fraction"])
    return study_statistics(pd.DataFrame(rows), [comp], ["weights", "fraction", "seed"])


def test_sentence_says_where_the_gain_stops_being_significant() -> None:
    stats = _gain_stats({0.05: 0.2, 0.1: 0.15, 0.25: 0.0, 1.0: 0.0})
    assert numeric_stratum(stats) == "fraction"
    text = significance_sentence(stats, "fraction")
    assert text.startswith("ssl − imagenet: significant")
    assert "0.05 (gain), 0.1 (gain)" in text and "not significant from 0.25 on" in text


def test_sentence_when_nothing_or_everything_is_significant() -> None:
    none = significance_sentence(_gain_stats({0.1: 0.0, 1.0: 0.0}), "fraction")
    assert "not significant at any tested training fraction" in none
    every = significance_sentence(_gain_stats({0.1: -0.2, 1.0: -0.2}), "fraction")
    assert "0.1 (loss), 1 (loss)" in every and "not significant from" not in every
    few = significance_sentence(_gain_stats({0.1: 0.2, 1.0: 0.2}, seeds=2), "fraction")
    assert "too few pairs" in few


# ----------------------------------------------------------------------------- end to end


def test_smoke_study_on_own_stack_pretrains_and_fine_tunes(
    stack: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`slicewise study init pretraining ... | slicewise study - --smoke`: every arm, real pretraining."""
    import io

    pytest.importorskip("lightly", reason="self-supervised pretraining needs lightly")
    pytest.importorskip("slicewise.selfsup", reason="slicewise.pretrain is not available")
    code, out, err = cli(
        [
            "study",
            "init",
            "pretraining",
            "--raw",
            str(stack / "raw.tif"),
            "--labels",
            str(stack / "labels.tif"),
            "--unlabelled",
            str(stack / "more.tif"),
            "--train-z",
            "0:14",
            "--test-z",
            "16:20",
            "--seeds",
            "2",
        ]
    )
    assert code == 0, err
    run = tmp_path / "run"
    monkeypatch.setattr("sys.stdin", io.StringIO(out))
    code, _, err = cli(["study", "-", "--smoke", "--out", str(run), "--cells", "2,3"])  # the self-supervised arms
    assert code == 0, err
    assert (run / "study.yaml").read_text() == out  # the piped study is kept with its results
    res = pd.read_csv(run / "results.csv")
    assert set(res["weights"]) == {"ssl-scratch", "ssl-imagenet"}
    assert res[res.metric == "dice"]["value"].between(0, 1).all()
    weights = sorted((run / "pretrain").glob(f"*/{WEIGHTS_NAME}"))
    assert len(weights) == 2
    from slicewise.models.encoder_file import read_provenance

    starts = {read_provenance(w)["start_weights"] for w in weights}
    assert starts == {"random", "imagenet"}
    assert (run / "report.html").is_file()
