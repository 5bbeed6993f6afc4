"""``slicewise audit weights | attribution | shift``: printed numbers are the JSON's; one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from slicewise.cli import main
from slicewise.utils.table import num

NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _run(capsys, argv: list[str]) -> str:
    main([str(a) for a in argv])
    return capsys.readouterr().out


def _json_numbers(obj) -> set[float]:
    if isinstance(obj, dict):
        return set().union(*(_json_numbers(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_json_numbers(v) for v in obj)) if obj else set()
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return {float(obj)}
    return set()


def _printed_numbers(text: str) -> list[float]:
    lines = [ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("  ") and "[" in ln]
    return [float(m) for ln in lines for m in NUMBER.findall(ln)]


@pytest.fixture(scope="module")
def data(isbi_crop, tmp_path_factory) -> Path:
    from slicewise.data.io import write_volume

    path = tmp_path_factory.mktemp("data") / "isbi.tif"
    write_volume(path, isbi_crop[0])
    return path


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    from slicewise.models import build_model, save_model

    torch.manual_seed(1)
    model = build_model(
        encoder="tf_efficientnet_lite0", weights="imagenet", channel_init="rgb", decoder_channels=(32, 16, 16, 8, 8)
    )
    with torch.no_grad():
        model.first_layer.weight.mul_(1.5)  # "fine-tuned": differs from the pretrained network
    return save_model(model, tmp_path_factory.mktemp("model") / "tuned.pt")


def test_weights_prints_the_json(capsys, tmp_path: Path) -> None:
    out = _run(
        capsys, ["audit", "weights", "tf_efficientnet_lite0", "--channel-init", "rgb", "--json", tmp_path / "w.json"]
    )
    data = json.loads((tmp_path / "w.json").read_text())
    assert [round(s, 3) for s in data["shares"]] == [0.263, 0.525, 0.212]
    assert round(data["mirror_asymmetry"], 3) == 0.108
    assert f"{data['mirror_asymmetry']:.3f}" in out and "R" in out


def test_attribution_pretrained_vs_fine_tuned(capsys, tmp_path: Path, data: Path, saved_model: Path) -> None:
    out = _run(
        capsys,
        [
            "audit",
            "attribution",
            saved_model,
            data,
            "--tiles",
            4,
            "--tile",
            64,
            "--pretrained",
            "--device",
            "cpu",
            "--json",
            tmp_path / "a.json",
            "--report",
            tmp_path / "rep",
        ],
    )
    res = json.loads((tmp_path / "a.json").read_text())
    assert list(res["models"]) == ["pretrained", "fine-tuned"]
    printed = _printed_numbers(out)
    assert len(printed) == 2 * (3 + 3) * 3  # two models, 3 shares + 3 indices, value and CI bounds
    assert set(printed) <= {float(num(v)) for v in _json_numbers(res)}  # the JSON's numbers at 4 significant digits
    for rep in res["models"].values():
        assert num(rep["mirror_asymmetry"]["value"]) in out
    pre, tuned = (res["models"][n]["shares"] for n in ("pretrained", "fine-tuned"))
    assert [s["value"] for s in pre] != [s["value"] for s in tuned]
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    env = res.pop("environment")
    assert report["attribution"] == res and report["environment"] == env and env["seed"] == 0
    assert env["device"]["type"] == "cpu" and env["threads"]["torch"] >= 1 and env["versions"]["torch"]
    assert (tmp_path / "rep" / "index.html").is_file()
    assert f"wrote {tmp_path / 'a.json'}" in out.splitlines()
    assert f"wrote report {tmp_path / 'rep' / 'index.html'}" in out.splitlines()


def test_attribution_roi_and_encoder_spec(capsys, tmp_path: Path, data: Path, isbi_crop) -> None:
    from slicewise.data.io import write_volume

    roi = np.zeros(isbi_crop[0].shape, np.uint8)
    roi[:, 32:96, 32:96] = 1
    write_volume(tmp_path / "roi.tif", roi)
    out = _run(
        capsys,
        [
            "audit",
            "attribution",
            "tf_efficientnet_lite0:decoder_norm=group",
            data,
            "--channel-init",
            "mirror",
            "--region",
            tmp_path / "roi.tif",
            "--method",
            "ixg",
            "--tiles",
            3,
            "--tile",
            64,
            "--json",
            tmp_path / "a.json",
        ],
    )
    res = json.loads((tmp_path / "a.json").read_text())
    rep = res["models"]["tf_efficientnet_lite0:decoder_norm=group"]
    assert rep["region"] == "roi" and rep["method"] == "ixg" and rep["model"]["decoder_norm"] == "group"
    assert "region=roi" in out


def test_shift_two_models(capsys, tmp_path: Path, data: Path) -> None:
    out = _run(
        capsys,
        [
            "audit",
            "shift",
            "tf_efficientnet_lite0",
            "tf_efficientnet_lite0:skips=0111",
            data,
            "--shift",
            "contrast=0.5",
            "--shift",
            "brightness=0",
            "--tiles",
            2,
            "--tile",
            64,
            "--json",
            tmp_path / "s.json",
        ],
    )
    res = json.loads((tmp_path / "s.json").read_text())
    assert list(res["models"]) == ["tf_efficientnet_lite0", "tf_efficientnet_lite0:skips=0111"]
    assert res["models"]["tf_efficientnet_lite0:skips=0111"]["model"]["skips"] == "0111"
    lines = out.splitlines()
    for name, m in res["models"].items():
        start = lines.index(f"{name}:")
        for i, layer in enumerate(m["layers"]):
            row = lines[start + 2 + i].split()
            assert row[0] == layer
            shown = [float(v) for v in re.findall(r"(\S+) \[", lines[start + 2 + i])]
            assert shown == pytest.approx([m["scores"]["contrast=0.5"][layer], 0.0], rel=5e-4, abs=1e-12)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["audit", "shift", "tf_efficientnet_lite0", "DATA", "--shift", "sharpness=2"], "unknown shift"),
        (["audit", "attribution", "tf_efficientnet_lite0", "DATA", "--method", "gradcam", "--tile", 64], "method"),
        (["audit", "attribution", "tf_efficientnet_lite0", "DATA", "--tile", 50], "multiples of 32"),
        (["audit", "attribution", "tf_efficientnet_lite0:skipz=1", "DATA"], "unknown key"),
        (["audit", "shift", "DATA", "--shift", "contrast=0.5"], "at least one MODEL"),
    ],
)
def test_user_errors_are_one_line(capsys, data: Path, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as ex:
        main([str(data) if a == "DATA" else str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert ex.value.code == 2
    assert err.startswith("error:") and message in err and "\n" not in err


def test_tiles_drawn_in_range_read_context_outside() -> None:
    from slicewise.diagnostics.attribution import read_tiles, sample_tiles

    vol = np.repeat(np.arange(10, dtype=np.uint8)[:, None, None] * 20, 40, 1).repeat(40, 2)
    box = (slice(3, 5), slice(8, 30), slice(None))
    origins = sample_tiles(vol.shape, 50, 16, 3, seed=1, roi=box)
    assert all(3 <= z < 5 and 8 <= y <= 30 - 16 and 0 <= x <= 40 - 16 for z, y, x in origins)
    assert {z for z, _, _ in origins} == {3, 4}
    tiles = read_tiles(vol, origins, 16, 3)
    centre_3 = next(i for i, (z, _, _) in enumerate(origins) if z == 3)
    np.testing.assert_allclose(tiles[centre_3, :, 0, 0], np.array([2, 3, 4]) * 20 / 255, rtol=1e-6)  # slice 2: outside
    assert sample_tiles(vol.shape, 7, 16, 3, seed=4) == sample_tiles(
        vol.shape, 7, 16, 3, seed=4, roi=(slice(None),) * 3
    )


def test_attribution_and_shift_ranges(capsys, tmp_path: Path, data: Path) -> None:
    base = ["audit", "attribution", "tf_efficientnet_lite0", data, "--tiles", 2, "--tile", 64, "--channel-init", "rgb"]
    _run(capsys, [*base, "--z", "2:4", "--json", tmp_path / "z.json"])
    _run(capsys, [*base, "--roi", "2:4", "--json", tmp_path / "r.json"])
    _run(capsys, [*base, "--z", "6:8", "--json", tmp_path / "o.json"])
    shares = [
        json.loads((tmp_path / f"{n}.json").read_text())["models"]["tf_efficientnet_lite0"]["tile_shares"]
        for n in "zro"
    ]
    assert shares[0] == shares[1] != shares[2]
    out = _run(
        capsys,
        [
            "audit",
            "shift",
            "tf_efficientnet_lite0",
            data,
            "--shift",
            "contrast=0.5",
            "--tiles",
            2,
            "--tile",
            64,
            "--roi",
            "0:3,0:64,64:128",
            "--json",
            tmp_path / "s.json",
        ],
    )
    assert "contrast=0.5" in out and json.loads((tmp_path / "s.json").read_text())["n_tiles"] == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--roi", "0:3,0:32"], "larger than the image"),
        (["--z", "20:30"], "empty"),
        (["--z", "1:3", "--roi", "4:6"], "different z ranges"),
    ],
)
def test_range_errors_are_one_line(capsys, data: Path, extra: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as ex:
        main(["audit", "attribution", "tf_efficientnet_lite0", str(data), "--tile", "64", "--tiles", "2", *extra])
    err = capsys.readouterr().err.strip()
    assert ex.value.code == 2 and err.startswith("error:") and message in err and "\n" not in err


def test_run_name_in_titles_and_spec_note(capsys, tmp_path: Path, data: Path, saved_model: Path) -> None:
    import shutil

    run = tmp_path / "runs" / "uniform"
    run.mkdir(parents=True)
    shutil.copy(saved_model, run / "best.pt")
    _run(
        capsys,
        [
            "audit",
            "attribution",
            run / "best.pt",
            data,
            "--tiles",
            2,
            "--tile",
            64,
            "--device",
            "cpu",
            "--json",
            tmp_path / "a.json",
            "--report",
            tmp_path / "rep",
        ],
    )
    html = (tmp_path / "rep" / "index.html").read_text()
    assert list(json.loads((tmp_path / "a.json").read_text())["models"]) == ["uniform"]
    assert "attribution of uniform on" in html and "best" not in html.split("<body>")[1].split("</h1>")[0]
    _run(
        capsys,
        [
            "audit",
            "shift",
            "tf_efficientnet_lite0",
            data,
            "--shift",
            "contrast=0.5",
            "--tiles",
            2,
            "--tile",
            64,
            "--name",
            "lite0 imagenet",
            "--report",
            tmp_path / "srep",
        ],
    )
    html = (tmp_path / "srep" / "index.html").read_text()
    assert "domain shift of lite0 imagenet" in html and "decoder randomly initialized" in html


def test_weights_report_says_where_it_wrote_and_records_the_environment(capsys, tmp_path: Path) -> None:
    from slicewise.utils.environment import environment_text

    out = _run(
        capsys, ["audit", "weights", "tf_efficientnet_lite0", "--channel-init", "uniform", "--report", tmp_path / "w"]
    )
    assert out.splitlines()[-1] == f"wrote report {tmp_path / 'w' / 'index.html'}"
    report = json.loads((tmp_path / "w" / "report.json").read_text())
    env = report["environment"]
    assert torch.__version__.startswith(env["versions"]["torch"]) and env["threads"]["torch"] == torch.get_num_threads()
    assert environment_text(env) in (tmp_path / "w" / "index.html").read_text()
