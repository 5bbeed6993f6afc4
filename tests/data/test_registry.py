"""Dataset registry: entries are complete; fetch → verify → convert works against loopback and file:// fixtures."""

from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import json
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import slicewise.data.registry as registry
from slicewise.data import open_volume
from slicewise.data.io import as_volume
from slicewise.errors import InputError, OfflineError

RNG = np.random.default_rng(1)
REQUIRED = (
    "title",
    "modality",
    "task",
    "size",
    "licence",
    "citation",
    "label_convention",
    "format",
    "convert",
    "downloads",
    "outputs",
)


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg
    return msg


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server (thread) serving ``tmp_path/www``; yields (base URL, folder)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _patch(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> dict:
    reg = copy.deepcopy(registry.load_registry())
    reg[name].update(changes)
    monkeypatch.setattr(registry, "load_registry", lambda: reg)
    return reg[name]


def _isbi_files(folder: Path) -> dict[str, np.ndarray]:
    arrays = {
        "train-volume.tif": RNG.integers(0, 256, (4, 16, 16), dtype=np.uint8),
        "train-labels.tif": (RNG.random((4, 16, 16)) > 0.5).astype(np.uint8) * 255,
        "test-volume.tif": RNG.integers(0, 256, (4, 16, 16), dtype=np.uint8),
    }
    for name, a in arrays.items():
        tifffile.imwrite(folder / name, a)
    return arrays


def test_registry_entries_are_complete() -> None:
    reg = registry.load_registry()
    expected = {
        "isbi2012",
        "snemi3d",
        "lucchi",
        "lucchi_pp",
        "mitoem_r",
        "mitoem_h",
        "cremi_a",
        "cremi_b",
        "cremi_c",
        "vnc",
        "monuseg",
        "glas",
        "gf_pa66",
    }
    assert expected <= set(reg)
    for name, e in reg.items():
        missing = [k for k in REQUIRED if k not in e]
        assert not missing, (name, missing)
        fnames = {d["fname"] for d in e["downloads"]}
        for d in e["downloads"]:
            assert d["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", d["sha256"]), name
            assert e.get("manual") or d["url"].startswith(("http://", "https://")), name
        for role, spec in e["outputs"].items():
            assert spec["file"] in fnames, (name, role)
            assert re.fullmatch(r"(train|val|test)/(raw|labels)", role), (name, role)
    assert registry.get_entry("Lucchi++")["name"] == "lucchi_pp"
    assert registry.get_entry("MitoEM-R")["name"] == "mitoem_r"
    with pytest.raises(InputError) as err:
        registry.get_entry("imagenet")
    assert "isbi2012" in _one_line(err)


def test_fetch_over_http_verifies_and_converts(
    tmp_path: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, www = server
    arrays = _isbi_files(www)
    entry = _patch(
        monkeypatch,
        "isbi2012",
        downloads=[{"url": f"{base}/{n}", "fname": n, "sha256": _sha256(www / n)} for n in arrays],
    )
    out = registry.fetch("ISBI2012", dest=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert out == tmp_path / "data" / "isbi2012"
    np.testing.assert_array_equal(open_volume(out / "train" / "raw.tif").numpy(), arrays["train-volume.tif"])
    np.testing.assert_array_equal(open_volume(out / "train" / "labels.tif").numpy(), arrays["train-labels.tif"])
    assert open_volume(out / "test" / "raw.tif").voxel_size == (50.0, 4.0, 4.0)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["name"] == "isbi2012" and meta["citation"] == entry["citation"] and meta["voxel_size"] == [50, 4, 4]
    assert meta["files"]["train-volume.tif"] == {
        "url": f"{base}/train-volume.tif",
        "verified": True,
        "sha256": _sha256(www / "train-volume.tif"),
    }
    assert meta["outputs"]["train/raw"]["shape"] == [4, 16, 16]
    assert not (out.parent / "isbi2012.tmp").exists() and [p.name for p in out.parent.iterdir()] == ["isbi2012"]
    for f in www.iterdir():  # converted already: no second download needed
        f.unlink()
    assert registry.fetch("isbi2012", dest=tmp_path / "data", cache_dir=tmp_path / "cache") == out


def test_checksum_mismatch_is_one_line_and_leaves_nothing(
    tmp_path: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, www = server
    _isbi_files(www)
    _patch(
        monkeypatch,
        "isbi2012",
        downloads=[{"url": f"{base}/train-volume.tif", "fname": "train-volume.tif", "sha256": "0" * 64}],
        outputs={"train/raw": {"file": "train-volume.tif"}},
    )
    with pytest.raises(InputError) as err:
        registry.fetch("isbi2012", dest=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert "checksum" in _one_line(err)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
    cached = list((tmp_path / "cache").rglob("*")) if (tmp_path / "cache").exists() else []
    assert not [p for p in cached if p.is_file()]


def test_fetch_file_url_zip_of_pngs_with_z_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A MitoEM-style archive: one folder of PNG slices split by z range, labels in another archive folder."""
    raw = RNG.integers(0, 256, (12, 8, 8), dtype=np.uint8)
    lab = RNG.integers(0, 5, (3, 8, 8), dtype=np.uint16)
    z = tmp_path / "em.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i, sl in enumerate(raw):
            Image.fromarray(sl).save(tmp_path / "s.png")
            zf.write(tmp_path / "s.png", f"EM/im/im{i}.png")  # unpadded: natural order matters
        for i, sl in enumerate(lab):
            tifffile.imwrite(tmp_path / "s.tif", sl)
            zf.write(tmp_path / "s.tif", f"EM/mito-val-v2/seg{i + 8}.tif")
    _patch(
        monkeypatch,
        "mitoem_r",
        downloads=[{"url": z.as_uri(), "fname": "em.zip", "sha256": _sha256(z)}],
        outputs={
            "train/raw": {"file": "em.zip", "member": "im/im*.png", "z": [0, 8]},
            "val/raw": {"file": "em.zip", "member": "im/im*.png", "z": [8, 11]},
            "val/labels": {"file": "em.zip", "member": "mito-val-v2/seg*.tif"},
        },
    )
    out = registry.fetch("mitoem_r", dest=tmp_path / "data", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(open_volume(out / "train" / "raw.tif").numpy(), raw[:8])
    np.testing.assert_array_equal(open_volume(out / "val" / "raw.tif").numpy(), raw[8:11])
    np.testing.assert_array_equal(open_volume(out / "val" / "labels.tif").numpy(), lab)


def test_http_error_is_one_line(tmp_path: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = server
    _patch(
        monkeypatch,
        "isbi2012",
        downloads=[{"url": f"{base}/gone.tif", "fname": "gone.tif", "sha256": None}],
        outputs={"train/raw": {"file": "gone.tif"}},
    )
    with pytest.raises(InputError) as err:
        registry.fetch("isbi2012", dest=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert "404" in _one_line(err) and "brainiac2" in str(err.value)
    assert not (tmp_path / "data").exists()


def test_offline_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _patch(
        monkeypatch,
        "isbi2012",
        downloads=[{"url": f"http://127.0.0.1:{port}/t.tif", "fname": "t.tif", "sha256": None}],
        outputs={"train/raw": {"file": "t.tif"}},
    )
    with pytest.raises(OfflineError) as err:
        registry.fetch("isbi2012", dest=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert "--from" in _one_line(err)
    assert not (tmp_path / "data").exists()
    monkeypatch.setenv("SLICEWISE_OFFLINE", "1")
    _patch(
        monkeypatch,
        "isbi2012",
        downloads=[{"url": "https://example.invalid/t.tif", "fname": "t.tif", "sha256": None}],
        outputs={"train/raw": {"file": "t.tif"}},
    )
    with pytest.raises(OfflineError) as err:
        registry.fetch("isbi2012", dest=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert "SLICEWISE_OFFLINE" in _one_line(err)


def test_fetch_from_local_folder_and_manual_entries(tmp_path: Path) -> None:
    local = tmp_path / "downloaded"
    local.mkdir()
    arrays = _isbi_files(local)
    out = registry.fetch("isbi2012", dest=tmp_path / "data", source=local, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in local.iterdir()) == sorted(arrays)
    np.testing.assert_array_equal(open_volume(out / "test" / "raw.tif").numpy(), arrays["test-volume.tif"])
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["local_source"] == str(local) and meta["files"]["train-volume.tif"]["verified"] is False
    with pytest.raises(InputError) as err:
        registry.fetch("monuseg", dest=tmp_path / "data2", cache_dir=tmp_path / "cache")
    assert "--from" in _one_line(err)
    with pytest.raises(InputError) as err:
        registry.fetch(
            "isbi2012", dest=tmp_path / "data3", source=local / "train-volume.tif", cache_dir=tmp_path / "cache"
        )
    assert "folder" in _one_line(err)
    assert not (tmp_path / "data3").exists() or not any((tmp_path / "data3").iterdir())


def test_monuseg_style_images_and_xml(tmp_path: Path) -> None:
    """A MoNuSeg-like archive given with --from: RGB TIFF images + XML polygons → per-image TIFFs with ids."""
    img = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    xml = (
        "<Annotations><Annotation><Regions>"
        "<Region><Vertices><Vertex X='2' Y='2'/><Vertex X='8' Y='2'/><Vertex X='8' Y='6'/><Vertex X='2' Y='6'/>"
        "</Vertices></Region>"
        "<Region><Vertices><Vertex X='20' Y='10'/><Vertex X='25' Y='10'/><Vertex X='25' Y='15'/></Vertices></Region>"
        "</Regions></Annotation></Annotations>"
    )
    z = tmp_path / "MoNuSeg_2018_Training_Data.zip"
    with zipfile.ZipFile(z, "w") as zf:
        tifffile.imwrite(tmp_path / "a.tif", img, photometric="rgb")
        zf.write(tmp_path / "a.tif", "MoNuSeg/Tissue Images/TCGA-X.tif")
        zf.writestr("MoNuSeg/Annotations/TCGA-X.xml", xml)
    out = registry.fetch("monuseg", dest=tmp_path / "data", source=z, cache_dir=tmp_path / "cache")
    assert not list(tmp_path.glob("*.extracted"))  # the user's folder is not written to
    np.testing.assert_array_equal(open_volume(out / "train" / "raw" / "TCGA-X.tif")[0], img)
    lab = open_volume(out / "train" / "labels" / "TCGA-X.tif")[0]
    assert lab.shape == (20, 30) and set(np.unique(lab)) == {0, 1, 2}
    assert lab[4, 5] == 1 and lab[11, 24] == 2 and lab[15, 5] == 0


def _warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("warning:")]


def test_unverified_download_warns_records_its_sha256_and_checks_the_next_download(
    tmp_path: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base, www = server
    arrays = _isbi_files(www)
    _patch(monkeypatch, "isbi2012", downloads=[{"url": f"{base}/{n}", "fname": n, "sha256": None} for n in arrays])
    out = registry.fetch("isbi2012", dest=tmp_path / "data", cache_dir=tmp_path / "cache")
    warned = _warnings(capsys.readouterr().err)
    assert len(warned) == 3 and all("UNVERIFIED" in w and "sha256.json" in w for w in warned)
    recorded = json.loads((tmp_path / "cache" / "sha256.json").read_text())
    assert recorded["dataset/isbi2012/train-volume.tif"] == _sha256(www / "train-volume.tif")
    assert json.loads((out / "metadata.json").read_text())["files"]["train-volume.tif"]["verified"] is False
    # a second download (cache cleared) is checked against the recorded digest: same file → verified, silent
    import shutil

    shutil.rmtree(tmp_path / "cache" / "downloads")
    out = registry.fetch("isbi2012", dest=tmp_path / "data2", cache_dir=tmp_path / "cache")
    assert not _warnings(capsys.readouterr().err)
    meta = json.loads((out / "metadata.json").read_text())["files"]["train-volume.tif"]
    assert meta["verified"] is True and meta["verified_against"] == "first download"
    # ... and a changed upstream file is refused in one line
    shutil.rmtree(tmp_path / "cache" / "downloads")
    tifffile.imwrite(www / "train-volume.tif", RNG.integers(0, 256, (4, 16, 16), dtype=np.uint8))
    with pytest.raises(InputError) as err:
        registry.fetch("isbi2012", dest=tmp_path / "data3", cache_dir=tmp_path / "cache")
    assert "recorded at its first download" in _one_line(err) and not (tmp_path / "data3" / "isbi2012").exists()


def test_plain_http_is_tried_over_https_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pooch
    import requests

    src = tmp_path / "t.tif"
    tifffile.imwrite(src, RNG.integers(0, 256, (2, 8, 8), dtype=np.uint8))
    tried: list[str] = []

    def retrieve(url: str, known_hash: str | None, fname: str, path: Path, **kw: object) -> str:
        tried.append(url)
        if url.startswith("https://nohttps.example"):
            raise requests.exceptions.SSLError("no https here")
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / fname).write_bytes(src.read_bytes())
        return str(Path(path) / fname)

    monkeypatch.delenv("SLICEWISE_OFFLINE", raising=False)
    monkeypatch.setattr(pooch, "retrieve", retrieve)
    for host, plain in (("secure.example", False), ("nohttps.example", True)):
        _patch(
            monkeypatch,
            "isbi2012",
            downloads=[{"url": f"http://{host}/t.tif", "fname": "t.tif", "sha256": _sha256(src)}],
            outputs={"train/raw": {"file": "t.tif"}},
        )
        out = registry.fetch("isbi2012", dest=tmp_path / host, cache_dir=tmp_path / f"c-{host}")
        url = json.loads((out / "metadata.json").read_text())["files"]["t.tif"]["url"]
        warned = _warnings(capsys.readouterr().err)
        assert url == (f"http://{host}/t.tif" if plain else f"https://{host}/t.tif")
        assert (len(warned) == 1 and "plain http" in warned[0]) if plain else not warned
    assert tried == ["https://secure.example/t.tif", "https://nohttps.example/t.tif", "http://nohttps.example/t.tif"]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_size_guard_refuses_bombs_before_extracting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    import io
    import tarfile

    from slicewise.utils import trust

    arc = tmp_path / f"bomb.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(arc, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("zeros.bin", b"\0" * 4_000_000)
    else:
        with tarfile.open(arc, "w:gz") as t:
            info = tarfile.TarInfo("zeros.bin")
            info.size = 4_000_000
            t.addfile(info, io.BytesIO(b"\0" * info.size))
    assert arc.stat().st_size < 40_000
    assert trust.check_archive(arc, tmp_path) == 4_000_000  # under the default limits: fine
    monkeypatch.setattr(trust, "RATIO_FLOOR", 1_000_000)  # as if it expanded past the floor
    with pytest.raises(InputError, match="zip bomb") as err:
        registry._unpack(arc, tmp_path / "x", fresh=True)
    _one_line(err)
    monkeypatch.setattr(trust, "RATIO_FLOOR", 10**12)
    monkeypatch.setenv("SLICEWISE_MAX_EXTRACT_BYTES", "1e6")
    with pytest.raises(InputError, match="extraction limit"):
        registry._unpack(arc, tmp_path / "x", fresh=True)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_from_refuses_labels_that_do_not_match_the_raw_volume(tmp_path: Path) -> None:
    local = tmp_path / "fake_isbi"
    local.mkdir()
    _isbi_files(local)
    tifffile.imwrite(local / "train-labels.tif", np.zeros((4, 8, 16), np.uint8))
    with pytest.raises(InputError) as err:
        registry.fetch("isbi2012", dest=tmp_path / "data", source=local, cache_dir=tmp_path / "cache")
    msg = _one_line(err)
    assert (
        "train labels (train-labels.tif) have shape (4, 8, 16) but the raw volume (train-volume.tif) has (4, 16, 16)"
        in msg
    )
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_from_refuses_image_sets_with_missing_labels(tmp_path: Path) -> None:
    z = tmp_path / "MoNuSeg_2018_Training_Data.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name in ("A", "B"):
            tifffile.imwrite(tmp_path / "a.tif", RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8), photometric="rgb")
            zf.write(tmp_path / "a.tif", f"MoNuSeg/Tissue Images/{name}.tif")
        zf.writestr("MoNuSeg/Annotations/A.xml", "<Annotations/>")
    with pytest.raises(InputError) as err:
        registry.fetch("monuseg", dest=tmp_path / "data", source=z, cache_dir=tmp_path / "cache")
    assert "train has 2 images but 1 label files" in _one_line(err)


def test_from_warns_in_one_line_about_checksums_and_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / "dl"
    local.mkdir()
    arrays = _isbi_files(local)
    # no checksum anywhere (the real isbi2012 entry): one "not verified" line, one size line
    registry.fetch("isbi2012", dest=tmp_path / "d1", source=local, cache_dir=tmp_path / "cache")
    warned = _warnings(capsys.readouterr().err)
    assert len(warned) == 2
    assert (
        "train-volume.tif, train-labels.tif, test-volume.tif: not verified, the registry publishes no checksum"
        in warned[0]
    )
    assert "train/raw is 4x16x16, published 30x512x512; test/raw is 4x16x16, published 30x512x512" in warned[1]
    # published checksums: matching files are silent about checksums, a changed file is named
    good = {n: _sha256(local / n) for n in arrays}
    _patch(
        monkeypatch,
        "isbi2012",
        size="4x16x16 train + 4x16x16 test",
        downloads=[{"url": None, "fname": n, "sha256": good[n]} for n in arrays],
    )
    out = registry.fetch("isbi2012", dest=tmp_path / "d2", source=local, cache_dir=tmp_path / "cache")
    assert not _warnings(capsys.readouterr().err)
    assert json.loads((out / "metadata.json").read_text())["files"]["train-volume.tif"]["verified"] is True
    tifffile.imwrite(local / "test-volume.tif", RNG.integers(0, 256, (4, 16, 16), dtype=np.uint8))
    out = registry.fetch("isbi2012", dest=tmp_path / "d3", source=local, cache_dir=tmp_path / "cache")
    warned = _warnings(capsys.readouterr().err)
    assert len(warned) == 1 and "checksum mismatch" in warned[0]
    assert f"{local / 'test-volume.tif'} differs from the published test-volume.tif" in warned[0]
    assert "train-volume.tif differs" not in warned[0]
    assert json.loads((out / "metadata.json").read_text())["files"]["test-volume.tif"]["verified"] is False
    # md5 only (GlaS-style entries) counts as a published checksum too
    md5 = hashlib.md5((local / "test-volume.tif").read_bytes()).hexdigest()
    _patch(
        monkeypatch,
        "isbi2012",
        size="4x16x16 train + 4x16x16 test",
        downloads=[
            {"url": None, "fname": n, "sha256": None, "md5": md5 if n == "test-volume.tif" else "0" * 32}
            for n in arrays
        ],
    )
    registry.fetch("isbi2012", dest=tmp_path / "d4", source=local, cache_dir=tmp_path / "cache")
    warned = _warnings(capsys.readouterr().err)
    assert len(warned) == 1 and "train-volume.tif differs" in warned[0] and "test-volume.tif differs" not in warned[0]


def test_from_is_checked_against_the_sha256_recorded_at_an_earlier_download(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from slicewise.utils.trust import record_sha256

    local = tmp_path / "dl"
    local.mkdir()
    _isbi_files(local)
    record_sha256("dataset/isbi2012/train-volume.tif", "f" * 64, tmp_path / "cache")
    record_sha256("dataset/isbi2012/test-volume.tif", _sha256(local / "test-volume.tif"), tmp_path / "cache")
    out = registry.fetch("isbi2012", dest=tmp_path / "d", source=local, cache_dir=tmp_path / "cache")
    warned = [w for w in _warnings(capsys.readouterr().err) if "size" not in w]
    assert len(warned) == 2
    assert "train-volume.tif differs from the train-volume.tif downloaded earlier" in warned[0]
    assert "train-labels.tif: not verified" in warned[1] and "test-volume.tif" not in warned[1]
    files = json.loads((out / "metadata.json").read_text())["files"]
    assert files["test-volume.tif"]["verified"] is True and files["train-volume.tif"]["verified"] is False


def test_published_shapes_are_read_from_the_registry_size() -> None:
    assert registry.published_shapes(registry.get_entry("isbi2012")) == {
        "train": (30, 512, 512),
        "test": (30, 512, 512),
    }
    assert registry.published_shapes(registry.get_entry("mitoem_r"))["val"] == (100, 4096, 4096)
    assert registry.published_shapes(registry.get_entry("cremi_a")) == {"train": (125, 1250, 1250)}
    assert registry.published_shapes(registry.get_entry("glas")) == {}


# --- registry entries are validated metadata; file names stay inside the download cache ---


def test_the_packaged_registry_is_valid():
    assert set(registry.load_registry()) >= {"isbi2012", "lucchi_pp"}


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda e: e["downloads"][0].__setitem__("fname", "../x.tif"), "isbi2012.downloads.0.fname"),
        (lambda e: e["downloads"][0].__setitem__("fname", "/tmp/x.tif"), "isbi2012.downloads.0.fname"),
        (lambda e: e["downloads"][0].__setitem__("sha256", "abc"), "isbi2012.downloads.0.sha256"),
        (lambda e: e.__setitem__("voxel_size", "4nm"), "isbi2012.voxel_size"),
        (lambda e: e.__setitem__("downloads", {"url": "x"}), "isbi2012.downloads"),
        (lambda e: e["outputs"].__setitem__("../../raw", {"file": "train-volume.tif"}), "isbi2012.outputs"),
        (lambda e: e["outputs"]["train/raw"].__setitem__("file", "other.tif"), "isbi2012"),
        (lambda e: e["outputs"]["train/raw"].__setitem__("member", "../*.tif"), "isbi2012.outputs.train/raw.member"),
    ],
)
def test_a_bad_registry_entry_is_one_line_naming_the_field(mutate, field):
    data = copy.deepcopy(registry.load_registry())
    mutate(data["isbi2012"])
    with pytest.raises(InputError) as err:
        registry.parse_registry(data, "registry.yaml")
    assert str(err.value).startswith(f"registry.yaml: field '{field}") and "\n" not in str(err.value)


def test_a_split_view_indexes_like_the_slices_it_covers() -> None:
    """The train/val/test split view (slices ``[start, stop)`` of a volume) takes open-ended slices, negative
    indices and steps, ``...`` and index lists like the array it stands for."""
    data = np.arange(8 * 3 * 4, dtype=np.uint16).reshape(8, 3, 4)
    view = registry._ZRange(as_volume(data), 2, 6)
    want = data[2:6]
    assert view.shape == want.shape and view.dtype == want.dtype
    for key in [(slice(None), 0, 0), np.s_[:2], np.s_[1:], np.s_[::-1], np.s_[-1], np.s_[..., 1], np.s_[[0, 3]]]:
        np.testing.assert_array_equal(view[key], want[key])
    np.testing.assert_array_equal(np.asarray(view), want)
