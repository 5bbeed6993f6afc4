"""HTML/JSON report: self-contained, every number in the page, atomic; rendered by Chromium when present."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from slicewise.diagnostics import compare_models, shift_report, write_report
from slicewise.diagnostics.report import fmt, format_attribution, format_shift, jsonable
from slicewise.errors import InputError

CHROMIUM = Path("/usr/bin/chromium")


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("src", "href") and value:
                self.refs.append(value)


@pytest.fixture(scope="module")
def weights_audit() -> dict:
    from slicewise.diagnostics.weights_audit import audit_weights

    return audit_weights("tf_efficientnet_lite0", "imagenet", 3, "rgb")


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_factory, weights_audit):
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[0:6, 0:40, 0:40]
    vol = np.clip(127 + 60 * np.sin(x / 4.0 + z) * np.cos(y / 5.0) + rng.normal(0, 10, z.shape), 0, 255).astype(
        np.uint8
    )
    models: dict[str, nn.Module] = {"pretrained": tiny_factory(0), "fine-tuned": tiny_factory(1)}
    att = compare_models(models, vol, n_tiles=6, tile=16, n_resamples=200, n_maps=2)
    sh = shift_report(models, vol, ["brightness=0.1", "contrast=0.5"], n_tiles=4, tile=16, bins=16)
    out = tmp_path_factory.mktemp("rep") / "report"
    write_report(
        out,
        attribution=att,
        shift=sh,
        weights=weights_audit,
        title="test audit",
        model_notes={"fine-tuned": "decoder randomly initialized (test note)"},
    )
    return att, sh, out


def test_page_references_only_files_it_wrote(results) -> None:
    _, _, out = results
    html = (out / "index.html").read_text()
    parser = Links()
    parser.feed(html)
    imgs = [r for r in parser.refs if r.endswith(".png")]
    assert len(imgs) >= 4  # weights, shares, the saliency grid of both models, Hellinger curves
    for ref in parser.refs:
        assert "/" not in ref and ":" not in ref, ref  # relative, inside DIR, nothing fetched
        assert (out / ref).is_file(), ref
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == sorted(imgs)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_json_numbers_are_in_the_page_and_printed(results) -> None:
    att, sh, out = results
    data = json.loads((out / "report.json").read_text())
    html = (out / "index.html").read_text()
    text = format_attribution(att) + "\n" + format_shift(sh)
    assert data["attribution"] == jsonable(att)
    assert data["shift"] == jsonable(sh)
    numbers = []
    for rep in data["attribution"]["models"].values():
        for s in rep["shares"]:
            numbers += [s["value"], *s["ci"]]
        for key in ("mirror_asymmetry", "centre_share", "pair_difference"):
            numbers += [rep[key]["value"], *rep[key]["ci"]]
    assert "maps" not in rep and "tile_shares" in rep
    for m in data["shift"]["models"].values():
        numbers += [v for scores in m["scores"].values() for v in scores.values()]
    for v in numbers:
        assert f">{fmt(v)}<" in html or f"{fmt(v)}]" in html or f"[{fmt(v)}," in html, v
        assert fmt(v) in text
        assert float(fmt(v)) == pytest.approx(v, rel=5e-4, abs=1e-12)  # 4 significant digits on the page


def test_figures_exported_as_svg_and_tables_as_csv(results) -> None:
    import csv
    import xml.etree.ElementTree as ET

    att, sh, out = results
    pngs = sorted(p for p in out.iterdir() if p.suffix == ".png")
    assert pngs
    for png in pngs:
        root = ET.parse(png.with_suffix(".svg")).getroot()  # a parseable SVG next to each PNG
        assert root.tag.endswith("svg")
    html = (out / "index.html").read_text()
    expect = {
        "weights_shares.csv",
        "attribution_shares.csv",
        "attribution_summary.csv",
        "attribution_map_scales.csv",
        "hellinger.csv",
    }
    assert expect <= {p.name for p in out.glob("*.csv")}
    for name in expect:
        assert f'href="{name}"' in html
    rows = list(csv.DictReader((out / "hellinger.csv").open()))
    n_layers = sum(len(m["layers"]) for m in sh["models"].values())
    assert len(rows) == n_layers * len(sh["shifts"])
    for r in rows:
        assert -1.0 <= float(r["ci_low"]) <= float(r["hellinger"]) <= float(r["ci_high"]) <= 1.0  # bias-corrected
        assert float(r["hellinger"]) == pytest.approx(float(r["hellinger_raw"]) - float(r["hellinger_null"]), abs=1e-5)
    shares = list(csv.DictReader((out / "attribution_shares.csv").open()))
    assert {r["model"] for r in shares} == {"pretrained", "fine-tuned"}


def test_shift_report_shows_intervals_it_claims_and_notes(results) -> None:
    _, sh, out = results
    html = (out / "index.html").read_text()
    assert "bootstrap intervals over tiles" in html
    for m in sh["models"].values():
        for lab in m["scores"]:
            for layer in m["layers"]:
                lo, hi = m["ci"][lab][layer]
                assert f"[{fmt(lo)}, {fmt(hi)}]" in html
    assert "decoder randomly initialized (test note)" in html
    lo, hi = __import__("slicewise.diagnostics.report", fromlist=["x"]).hellinger_ylim(sh)
    vals = [v for m in sh["models"].values() for sc in m["scores"].values() for v in sc.values()]
    assert -1.0 <= lo <= min(vals) and max(vals) <= hi <= 1.0
    assert hi - lo < 1.0 or (min(vals) < 0.05 and max(vals) > 0.95)  # fitted to the data, not always 0..1


def test_attribution_maps_share_one_scale_per_row(results) -> None:
    from slicewise.diagnostics.report import maps_figure

    att, _, _ = results
    fig, scales = maps_figure(att["models"], "t")
    axes = fig.axes
    grid = [ax for ax in axes if ax.images]
    n_rows = len(scales)
    per_row = len(grid) // n_rows
    for t in range(n_rows):
        row = grid[t * per_row : (t + 1) * per_row]
        clims = {ax.images[0].get_clim() for ax in row[1:]}  # every |A| panel of both models
        assert clims == {scales[t]}
        a = [np.asarray(m["maps"]["attributions"])[t] for m in att["models"].values()]
        k = att["models"]["pretrained"]["k"]
        assert scales[t][1] == pytest.approx(max(float(x.reshape(k, -1, *x.shape[1:]).sum(1).max()) for x in a))
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_report_header_and_json_record_the_environment(results) -> None:
    from slicewise.utils.environment import environment_text

    _, _, out = results
    env = json.loads((out / "report.json").read_text())["environment"]
    assert env["versions"]["torch"] and env["threads"]["torch"] >= 1 and env["device"]["type"] == "cpu"
    assert f"Computed with {environment_text(env)}" in (out / "index.html").read_text()


def test_attribution_maps_also_shown_per_model_on_their_own_scale(results) -> None:
    import matplotlib.pyplot as plt

    from slicewise.diagnostics.report import maps_figure

    att, _, out = results
    html = (out / "index.html").read_text()
    assert 'src="attribution_maps_per_model.png"' in html and "each model on its own color scale" in html
    fig, scales = maps_figure(att["models"], "t", per_model=True)
    k = att["models"]["pretrained"]["k"]
    grid = [ax for ax in fig.axes if ax.images]
    per_row = len(grid) // len(scales)
    for t, row_scales in enumerate(scales):
        row = grid[t * per_row : (t + 1) * per_row]
        for j, (name, m) in enumerate(att["models"].items()):
            a = np.asarray(m["maps"]["attributions"])[t]
            assert row_scales[name][1] == pytest.approx(float(a.reshape(k, -1, *a.shape[1:]).sum(1).max()))
            assert {ax.images[0].get_clim() for ax in row[1 + j * k : 1 + (j + 1) * k]} == {row_scales[name]}
    plt.close(fig)


def test_shift_report_defines_each_shift(results) -> None:
    _, sh, out = results
    html = (out / "index.html").read_text()
    assert "contrast=0.5: intensities scaled by 0.5 about the mean of each slice of the tile" in html
    assert "brightness=0.1: +0.1 added to every intensity" in html
    assert "contrast=0.5: intensities scaled by 0.5" in format_shift(sh)


# runs after the tests above: it replaces the shared report
def test_write_is_atomic_and_refuses_to_overwrite(results, weights_audit, tmp_path: Path) -> None:
    att, _, out = results
    with pytest.raises(InputError, match="already exists"):
        write_report(out, attribution=att)
    target = tmp_path / "broken"
    with pytest.raises(KeyError):
        write_report(target, attribution={"kind": "attribution_comparison", "models": {"m": {}}})
    assert not target.exists() and not list(tmp_path.iterdir())
    write_report(out, weights=weights_audit, overwrite=True)
    assert json.loads((out / "report.json").read_text())["attribution"] is None


def test_page_renders_in_chromium(results, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed: structural checks only")
    _, _, out = results
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            (out / "index.html").resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file()
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert img.shape == (2400, 1200)
    assert img.std() > 10  # text and figures drawn, not a blank page
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_class_label_uses_the_model_class_names() -> None:
    from slicewise.diagnostics.report import class_label

    assert class_label({"target_class": 1, "model": {"class_names": ["background", "membrane"]}}) == "1 (membrane)"
    assert class_label({"target_class": 1, "model": {"class": "Tiny"}}) == "1"


def test_weights_figure_says_r_g_b_only_for_the_rgb_strategy(weights_audit, tmp_path: Path) -> None:
    from slicewise.diagnostics.report import plot_weights

    uniform = {
        **weights_audit,
        "channel_init": "uniform",
        "channels": [{**c, "name": f"z{c['offset']:+d}"} for c in weights_audit["channels"]],
    }
    five = {"channel_init": "rgb", "shares": [0.2] * 5}
    texts = {}
    for name, audits in {
        "uniform": [uniform],
        "rgb": [weights_audit],
        "mixed": [weights_audit, uniform],
        "k5": [five],
    }.items():
        plot_weights(audits, [f"net{i}" for i in range(len(audits))], tmp_path / f"{name}.png")
        texts[name] = (tmp_path / f"{name}.svg").read_text()
    for name in ("uniform", "k5"):
        assert "pseudo-RGB" not in texts[name] and "(R)" not in texts[name] and "R, G, B" not in texts[name]
        assert "slice z-offset" in texts[name]
    assert "+0 (G)" in texts["rgb"] and "pseudo-RGB" in texts["rgb"]
    assert "(G)" not in texts["mixed"] and texts["mixed"].count("R, G, B") == 1  # only the rgb network's legend entry
