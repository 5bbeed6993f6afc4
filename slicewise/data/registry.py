"""Public datasets: what they are (``registry.yaml``), download (pooch) and conversion to one layout.

:func:`fetch` downloads an entry's files into ``<cache>/downloads/<name>/`` (pooch), extracts archives,
and writes::

    <dest>/<name>/<split>/raw.tif       one Z×Y×X(×C) TIFF per split and role
    <dest>/<name>/<split>/labels.tif
    <dest>/<name>/<split>/raw/<id>.tif  for 2-D image sets of varying size (GlaS, MoNuSeg)
    <dest>/<name>/metadata.json         name, URLs, sha256, voxel size, licence, citation, labels

The output folder is written through :func:`atomic_path`: a failed download, checksum or
conversion leaves nothing in ``dest``. The cache is ``$SLICEWISE_CACHE`` or ``~/.cache/slicewise``;
``dest`` defaults to ``<cache>/datasets``. With ``source=`` (CLI ``--from``) already-downloaded
files, archives or extracted folders are converted instead. When ``SLICEWISE_OFFLINE`` is set,
only ``file://`` and loopback URLs are fetched; anything else is an :class:`OfflineError`.

Verification (:mod:`slicewise.utils.trust`): a download is checked against the registry's sha256
(or md5), else against the sha256 recorded in ``<cache>/sha256.json`` when it was first fetched;
a file with neither is downloaded unverified, which one ``warning:`` line on stderr says, and its
sha256 is recorded for the next time. A plain-``http`` URL is tried over ``https`` first and falls
back to ``http`` (with a warning) only when the host does not serve https. Archives are extracted
only under the size guard of :func:`slicewise.utils.trust.check_archive` (zip bombs).
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import os
import re
import shutil
import sys
import tarfile
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlparse

import numpy as np
import yaml
from pydantic import Field, PositiveFloat, StringConstraints, field_validator, model_validator

import slicewise
from slicewise.data.io import (
    IMAGE_SUFFIXES,
    TIFF_SUFFIXES,
    Volume,
    open_image_files,
    open_volume,
    write_volume,
)
from slicewise.data.io.lazy import Key, LazyView
from slicewise.data.io.outputs import atomic_path, check_output_path
from slicewise.errors import InputError, OfflineError, SlicewiseError
from slicewise.utils import progress, write_json
from slicewise.utils.atomic import check_creatable_folder, claim_output
from slicewise.utils.cache import cache_root, offline
from slicewise.utils.inputs import check_input_path
from slicewise.utils.ownership import is_owned
from slicewise.utils.trust import (
    check_archive,
    hashes_path,
    record_sha256,
    recorded_sha256,
    warn,
)
from slicewise.utils.validation import MetadataModel, parse_metadata

_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


_PLAIN_NAME = r"^[^/\\:.][^/\\:]*$"  # one file name: no folder part, not '.' / '..' / hidden, nothing absolute


class RegistryDownload(MetadataModel):
    """One download of a registry entry: ``fname`` is a plain file name inside the download cache."""

    url: str | None = None
    fname: Annotated[str, StringConstraints(pattern=_PLAIN_NAME)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    md5: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")] | None = None


class RegistryOutput(MetadataModel):
    """How one role (``<split>/<raw|labels>``) is made from the downloads (see the comment of registry.yaml)."""

    file: Annotated[str, StringConstraints(pattern=_PLAIN_NAME)]
    member: str | None = None
    key: str | None = None
    exclude: str | None = None
    z: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] | None = None
    images: bool = False

    @field_validator("member", "exclude")
    @classmethod
    def _inside(cls, v: str | None) -> str | None:
        if v is not None and (v.startswith("/") or ".." in v.split("/")):
            raise ValueError("must be a glob inside the archive (no '..', not absolute)")
        return v


class RegistryEntry(MetadataModel):
    """A dataset of ``registry.yaml``: validated when the registry is loaded (one line naming the field)."""

    title: str
    page: str | None = None
    manual: bool | None = None
    voxel_size: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None
    downloads: list[RegistryDownload] = []
    outputs: dict[Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+/(raw|labels)$")], RegistryOutput]

    @model_validator(mode="after")
    def _files_are_downloaded(self) -> RegistryEntry:
        names = {d.fname for d in self.downloads}
        missing = sorted({o.file for o in self.outputs.values()} - names)
        if missing and not self.manual:
            raise ValueError(f"outputs name {missing[0]!r}, which no download provides")
        return self


def parse_registry(data: Any, source: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Registry entries by name, each validated by :class:`RegistryEntry` (the raw mappings are returned)."""
    fix = "fix the entry (see the comment at the top of registry.yaml)"
    if not isinstance(data, dict):
        raise InputError(f"{source}: the registry must map dataset names to entries: {fix}")
    for name, entry in data.items():
        parse_metadata(RegistryEntry, entry, source, fix, prefix=str(name))
    return data


@functools.lru_cache(maxsize=1)
def load_registry() -> dict[str, dict[str, Any]]:
    """All registry entries by name (parsed once from the packaged ``registry.yaml``, validated)."""
    path = Path(__file__).with_name("registry.yaml")
    with open(path, encoding="utf-8") as f:
        return parse_registry(yaml.safe_load(f), path)


def normalize_name(name: str) -> str:
    """``"Lucchi++"`` → ``lucchi_pp``, ``"MitoEM-R"`` → ``mitoem_r``, ``"ISBI2012"`` → ``isbi2012``."""
    return name.strip().lower().replace("++", "_pp").replace("-", "_").replace(" ", "_")


def get_entry(name: str) -> dict[str, Any]:
    """The registry entry ``name`` (case and ``-``/``_`` insensitive); one-line error listing names."""
    reg = load_registry()
    key = normalize_name(name)
    if key not in reg:
        raise InputError(f"unknown dataset {name!r}: known datasets are {', '.join(reg)} (see `slicewise data list`)")
    return {"name": key, **reg[key]}


def list_datasets() -> list[dict[str, Any]]:
    """One dict per entry (name, title, modality, task, size, licence, page, manual)."""
    return [get_entry(n) for n in load_registry()]


def fetch(
    name: str,
    dest: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Download (or take from ``source``) and convert dataset ``name``; return ``<dest>/<name>``.

    An already converted dataset (its ``metadata.json`` exists) is returned as is unless
    ``overwrite``. Raises :class:`OfflineError` when the download cannot connect and
    :class:`InputError` for a checksum mismatch, a manual-only dataset without ``source``,
    or files that do not match the registry's layout.
    """
    entry = get_entry(name)
    root = cache_root(cache_dir)
    out = Path(dest).expanduser() if dest is not None else root / "datasets"
    out = out / entry["name"]
    if (out / "metadata.json").is_file() and not overwrite:
        return out
    if out.exists():
        check_output_path(
            out, overwrite=overwrite, inputs=(source,), kind="dataset"
        )  # fail before downloading anything
    check_creatable_folder(out, what=f"dataset folder {out}")
    downloads = root / "downloads" / entry["name"]
    check_creatable_folder(downloads, what=f"download cache {downloads}")
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    try:
        with claim_output(out):  # a second fetch of the same dataset is refused before it downloads
            return _fetch(entry, out, downloads, source, overwrite)
    finally:
        for p in made:  # folders the claim created for a fetch that failed: leave nothing behind
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()


def _fetch(
    entry: dict[str, Any], out: Path, downloads: Path, source: str | os.PathLike | None, overwrite: bool
) -> Path:
    cache_dir = downloads.parent.parent
    if source is not None:
        files, hashes = _local_files(entry, check_input_path(Path(source).expanduser(), "--from"), downloads, cache_dir)
    else:
        if entry.get("manual"):
            where = entry.get("page") or "the authors"
            raise InputError(
                f"{entry['name']} cannot be downloaded automatically: get it from {where}, then run "
                f"`slicewise data fetch {entry['name']} --from FILE_OR_DIR`"
            )
        files, hashes = {}, {}
        for d in entry["downloads"]:
            path, digest = _download(entry, d, downloads, cache_dir)
            files[d["fname"]], hashes[d["fname"]] = _unpack(path, downloads), digest
    check_consistency(entry, files)  # before anything is written: a refused dataset leaves nothing
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        written = {role: _convert_output(entry, role, spec, files, tmp) for role, spec in entry["outputs"].items()}
        write_json(tmp / "metadata.json", _metadata(entry, written, hashes, source), overwrite=True)
    _warn_unpublished(hashes)
    if source is not None:
        _warn_size(entry, written)
    return out


# ---------------------------------------------------------------------------------- download


def _offline_hint(name: str) -> str:
    return (
        f"download the files yourself and run `slicewise data fetch {name} --from FILE_OR_DIR`, "
        f"or pass local files directly to train/predict"
    )


def _is_local_url(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return True
    host = parsed.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _file_downloader(url: str, output_file: Any, pooch: Any) -> None:
    """pooch downloader for ``file://`` URLs (a plain copy)."""
    src = Path(unquote(urlparse(url).path))
    if not src.is_file():
        raise InputError(f"{url} points to no file ({src} does not exist): check the URL or use --from")
    with open(src, "rb") as fin:
        if hasattr(output_file, "write"):
            shutil.copyfileobj(fin, output_file)
        else:
            with open(output_file, "wb") as fout:
                shutil.copyfileobj(fin, fout)


def _known_hash(d: dict[str, Any]) -> str | None:
    if d.get("sha256"):
        return f"sha256:{d['sha256']}"
    if d.get("md5"):
        return f"md5:{d['md5']}"
    return None


def _https(url: str) -> str | None:
    """The https form of a plain-http URL to a non-loopback host, else None."""
    return "https://" + url[len("http://") :] if url.startswith("http://") and not _is_local_url(url) else None


def _retrieve(get: Callable[[str], Path], url: str) -> tuple[Path, str, bool]:
    """``(path, the URL it came from, over plain http)``: a plain-http URL to a remote host is tried as https
    first, and fetched over http only when that fails."""
    import requests

    secure = _https(url)
    if secure is None:
        return get(url), url, False
    try:
        return get(secure), secure, False
    except requests.exceptions.RequestException:
        return get(url), url, True


def _request_error(err: Exception, url: str, entry: dict[str, Any]) -> SlicewiseError:
    """The one line for a failed request: an HTTP status → :class:`InputError` (the file moved), anything else
    (no connection, server down) → :class:`OfflineError`."""
    import requests

    name = entry["name"]
    if isinstance(err, requests.exceptions.HTTPError):
        return InputError(
            f"download of {url} failed ({err.response.status_code if err.response is not None else err}): "
            f"the file may have moved (see {entry.get('page') or 'the dataset page'}); {_offline_hint(name)}"
        )
    return OfflineError(
        f"download of {url} failed ({type(err).__name__}: no connection or the server is down); {_offline_hint(name)}"
    )


def _download(
    entry: dict[str, Any], d: dict[str, Any], folder: Path, cache_dir: str | os.PathLike | None = None
) -> tuple[Path, dict[str, Any]]:
    """Fetch one registry download into ``folder`` with pooch; returns (path, hash record).

    Checked against the registry's hash, else the sha256 recorded at the first download; with
    neither, a ``warning:`` line says the file is unverified and its sha256 is recorded.
    """
    import pooch
    import requests

    name = entry["name"]
    url = d.get("url")
    if not url:
        raise InputError(f"{name} has no download URL: {_offline_hint(name)}")
    if offline() and not _is_local_url(url):
        raise OfflineError(f"{name}: not downloading {url} because SLICEWISE_OFFLINE is set; {_offline_hint(name)}")
    key = f"dataset/{name}/{d['fname']}"
    known = _known_hash(d)
    recorded = None if known else recorded_sha256(key, cache_dir)
    check = known or (f"sha256:{recorded}" if recorded else None)
    show = sys.stderr.isatty() and not os.environ.get("SLICEWISE_NO_PROGRESS")

    def get(u: str) -> Path:
        downloader = _file_downloader if u.startswith("file://") else None
        return Path(
            pooch.retrieve(u, known_hash=check, fname=d["fname"], path=folder, downloader=downloader, progressbar=show)
        )

    try:
        path, url, plain_http = _retrieve(get, url)
    except requests.exceptions.RequestException as err:
        raise _request_error(err, url, entry) from None
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        against = (
            f"registry's {known}" if known else f"sha256 recorded at its first download ({hashes_path(cache_dir)})"
        )
        raise InputError(
            f"checksum mismatch for {url}: the received file does not have the {against}; it was "
            f"discarded (corrupt download or changed upstream), retry or use --from"
        ) from None
    digest = pooch.file_hash(str(path))
    how = " over plain http (the host serves no https)" if plain_http else ""
    if check is None:
        record_sha256(key, digest, cache_dir)
        warn(
            f"{d['fname']} of {name} was downloaded{how} UNVERIFIED: its publisher gives no checksum; sha256 {digest} "
            f"is recorded in {hashes_path(cache_dir)} and later downloads are checked against it"
        )
    elif plain_http:
        warn(f"{d['fname']} of {name} was downloaded over plain http (the host serves no https); its checksum matched")
    return path, {
        "url": url,
        "sha256": digest,
        "verified": check is not None,
        **({"verified_against": "first download"} if recorded and not known else {}),
    }


def _archive_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in _ARCHIVES if name.endswith(s)), None)


def _unpack(path: Path, folder: Path, fresh: bool = False) -> Path:
    """Extract an archive into ``folder/<stem>.extracted`` (atomically; reused unless ``fresh``);
    other files are returned as is."""
    suffix = _archive_suffix(path)
    if suffix is None or path.is_dir():
        return path
    target = folder / (path.name[: -len(suffix)] + ".extracted")
    if target.is_dir() and not fresh:
        return target
    if target.exists() and not is_owned(target):  # extracted before ownership markers: not replaced, left as it is
        target = target.with_name(f"{target.name}-{uuid.uuid4().hex[:8]}")
    check_archive(path, folder)
    try:
        with atomic_path(target, overwrite=True) as tmp:
            if suffix == ".zip":
                with zipfile.ZipFile(path) as z:
                    z.extractall(tmp)
            else:
                with tarfile.open(path) as t:
                    t.extractall(tmp, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise InputError(f"cannot extract {path} ({err}): the archive is damaged, download it again") from None
    return target


def _local_files(
    entry: dict[str, Any], source: Path, folder: Path, cache_dir: str | os.PathLike | None = None
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Map each registry download name to ``source`` (a file, an archive or an extracted folder);
    archives are extracted afresh into ``folder`` (the user's folder is never written to).

    Each file is checked against the registry's sha256 (else md5), else against the sha256 recorded
    at an earlier download (``<cache>/sha256.json``); :func:`_warn_unpublished` reports the outcome."""
    if not source.exists():
        raise InputError(f"--from {source} does not exist: give the downloaded file or the folder holding it")
    fnames = list(dict.fromkeys(d["fname"] for d in entry["downloads"]))
    if source.is_file():
        if len(fnames) > 1:
            what = "is one of" if source.name in fnames else "is none of"
            raise InputError(
                f"--from {source} {what} the {len(fnames)} files {entry['name']} needs "
                f"({', '.join(fnames)}): pass the folder holding them all"
            )
        originals = {fnames[0]: source}
    else:
        originals = {f: source / f if (source / f).exists() else source for f in fnames}
    files = {f: _unpack(p, folder, fresh=True) for f, p in originals.items()}
    hashes = {
        f: {"url": None, "sha256": _sha256(p) if p.is_file() else None, "verified": False, "local": str(p)}
        for f, p in originals.items()
    }
    published = {d["fname"]: d for d in entry["downloads"]}
    for f, rec in hashes.items():
        if not rec["sha256"]:  # an extracted folder: nothing to hash
            continue
        d = published.get(f, {})
        if d.get("sha256"):
            rec["verified"] = rec["sha256"] == d["sha256"]
            rec["published_sha256"] = d["sha256"]
        elif d.get("md5"):
            import pooch

            rec["verified"] = pooch.file_hash(str(originals[f]), alg="md5") == d["md5"]
            rec["published_md5"] = d["md5"]
        else:
            recorded = recorded_sha256(f"dataset/{entry['name']}/{f}", cache_dir)
            if recorded:
                rec["verified"] = rec["sha256"] == recorded
                rec["recorded_sha256"] = recorded
    return files, hashes


def _warn_unpublished(hashes: dict[str, Any]) -> None:
    """After a successful ``--from`` conversion: one warning line naming the files that differ from the
    published (or first-downloaded) ones, one naming those nothing could verify; silent when all match."""
    differ, unknown = [], []
    for f, rec in hashes.items():
        if "local" not in rec or rec["verified"]:
            continue
        if rec.get("published_sha256") or rec.get("published_md5"):
            differ.append(f"{rec['local']} differs from the published {f}")
        elif rec.get("recorded_sha256"):
            differ.append(
                f"{rec['local']} differs from the {f} downloaded earlier (its sha256 is recorded in the cache's "
                f"sha256.json)"
            )
        else:
            unknown.append(f)
    if differ:
        warn(
            f"--from checksum mismatch: {'; '.join(differ)}: converted anyway; results may differ from the published "
            f"data set (check the files, or download them again)"
        )
    if unknown:
        warn(
            f"--from {', '.join(unknown)}: not verified, the registry publishes no checksum for "
            f"{'them' if len(unknown) > 1 else 'it'}; converted as given"
        )


def _sha256(path: Path) -> str:
    import pooch

    return pooch.file_hash(str(path))


# ---------------------------------------------------------------------------------- convert


class _ZRange(LazyView):
    """Lazy view of slices ``[start, stop)`` of a Volume (for train/val/test splits)."""

    def __init__(self, vol: Volume, start: int, stop: int) -> None:
        self._vol, self._start = vol, start
        self.shape = (max(0, min(stop, vol.shape[0]) - start), *vol.shape[1:])
        self.dtype = vol.dtype

    def _read(self, key: Key) -> np.ndarray:
        z = key[0]
        z = slice(z.start + self._start, z.stop + self._start, z.step) if isinstance(z, slice) else z + self._start
        return self._vol[(z, *key[1:])]


def _members(entry: dict[str, Any], spec: dict[str, Any], root: Path) -> list[Path]:
    from natsort import natsorted

    if not root.is_dir():
        raise InputError(f"{entry['name']}: expected {spec['file']} to be an archive or a folder, got the file {root}")
    matches = [
        p
        for p in root.glob("**/" + spec["member"])
        if not p.name.startswith(".") and (p.is_file() or p.suffix.lower() in (".zarr", ".n5"))
    ]
    if spec.get("exclude"):
        matches = [p for p in matches if not fnmatch.fnmatch(p.name, spec["exclude"])]
    if not matches:
        raise InputError(
            f"{entry['name']}: no files matching {spec['member']!r} under {root}: "
            f"is this the right download (format: {entry.get('format')})?"
        )
    return natsorted(matches, key=lambda p: str(p))


def _open_output(entry: dict[str, Any], spec: dict[str, Any], files: dict[str, Path]) -> Volume:
    root = files[spec["file"]]
    if spec.get("member"):
        matches = _members(entry, spec, root)
        if len(matches) == 1 and matches[0].suffix.lower() not in IMAGE_SUFFIXES:
            vol = open_volume(matches[0], key=spec.get("key"))
        else:
            vol = open_image_files(matches, f"{root}/{spec['member']}")
    else:
        vol = open_volume(root, key=spec.get("key"))
    if spec.get("z"):
        start, stop = spec["z"]
        vol = Volume(
            _ZRange(vol, int(start), int(stop)), voxel_size=vol.voxel_size, source=f"{vol.source}[{start}:{stop}]"
        )
    return vol


def check_consistency(entry: dict[str, Any], files: dict[str, Path]) -> None:
    """Before conversion: in every split with raw and labels, the labels have the raw volume's Z×Y×X
    shape (image sets: as many label images as images); one-line :class:`InputError` otherwise."""
    splits = {role.split("/")[0] for role in entry["outputs"]}
    for split in sorted(splits):
        raw_spec, lab_spec = entry["outputs"].get(f"{split}/raw"), entry["outputs"].get(f"{split}/labels")
        if raw_spec is None or lab_spec is None:
            continue
        if raw_spec.get("images") or lab_spec.get("images"):
            n_raw = len(_members(entry, raw_spec, files[raw_spec["file"]]))
            n_lab = len(_members(entry, lab_spec, files[lab_spec["file"]]))
            if n_raw != n_lab:
                raise InputError(
                    f"{entry['name']}: {split} has {n_raw} images but {n_lab} label files: every image needs "
                    f"its labels; is this the complete download?"
                )
            continue
        with _open_output(entry, raw_spec, files) as raw, _open_output(entry, lab_spec, files) as lab:
            raw_shape, lab_shape = tuple(raw.shape), tuple(lab.shape)
        if lab_shape != raw_shape[:3]:
            raise InputError(
                f"{entry['name']}: the {split} labels ({lab_spec['file']}) have shape {lab_shape} but the raw "
                f"volume ({raw_spec['file']}) has {raw_shape}: they must match voxel for voxel; check that "
                f"these are the right files"
            )


def published_shapes(entry: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Z×Y×X per split as the registry's ``size`` states it, where it can be read: ``30x512x512 train +
    30x512x512 test``, ``125x1250x1250`` (one split), ``1000x4096x4096 (train 400, val 100, test 500 slices)``."""
    size = str(entry.get("size") or "")
    splits = {role.split("/")[0] for role in entry["outputs"]}
    named = {s: tuple(map(int, m)) for *m, s in re.findall(r"(\d+)x(\d+)x(\d+)\s+(\w+)", size) if s in splits}
    if named:
        return named
    shapes = re.findall(r"(\d+)x(\d+)x(\d+)", size)
    if len(shapes) != 1:
        return {}
    _, y, x = map(int, shapes[0])
    slices = {s: int(n) for s, n in re.findall(r"(\w+)\s+(\d+)", size) if s in splits}
    if slices:
        return {s: (n, y, x) for s, n in slices.items()}
    return {next(iter(splits)): tuple(map(int, shapes[0]))} if len(splits) == 1 else {}


def _warn_size(entry: dict[str, Any], written: dict[str, Any]) -> None:
    """After a ``--from`` conversion: one warning line when a raw volume's Z×Y×X is not the published size."""
    expected = published_shapes(entry)
    size = "x".join  # a shape as 30x512x512
    off = [
        f"{role} is {size(map(str, rec['shape'][:3]))}, published {size(map(str, expected[role.split('/')[0]]))}"
        for role, rec in written.items()
        if role.endswith("/raw")
        and "shape" in rec
        and role.split("/")[0] in expected
        and tuple(rec["shape"][:3]) != expected[role.split("/")[0]]
    ]
    if off:
        warn(
            f"--from data of {entry['name']} differ in size from the published data set ({'; '.join(off)}): converted "
            f"anyway; check that these are the right (complete) files"
        )


def _convert_output(
    entry: dict[str, Any], role: str, spec: dict[str, Any], files: dict[str, Path], tmp: Path
) -> dict[str, Any]:
    """Write one output role (``split/raw`` or ``split/labels``) into ``tmp``; returns its record."""
    voxel = entry.get("voxel_size")
    if spec.get("images"):
        folder = tmp / role
        folder.mkdir(parents=True)
        items = _members(entry, spec, files[spec["file"]])
        for item in progress(items, desc=f"{entry['name']} {role}", total=len(items)):
            if item.suffix.lower() == ".xml":
                image = _find_image(item, files)
                array = rasterize_polygons_xml(item, open_volume(image).shape[1:3])
            else:
                array = open_volume(item)
            write_volume(folder / f"{item.stem}.tif", array, voxel_size=voxel)
        return {"path": role + "/", "count": len(items)}
    vol = _open_output(entry, spec, files)
    if vol.size == 0:
        raise InputError(f"{entry['name']} {role}: the selected data are empty (shape {vol.shape})")
    path = tmp / f"{role}.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_volume(path, vol, voxel_size=voxel or vol.voxel_size)
    return {"path": f"{role}.tif", "shape": list(vol.shape), "dtype": str(vol.dtype)}


def _find_image(xml: Path, files: dict[str, Path]) -> Path:
    for root in {p for p in files.values() if p.is_dir()}:
        for p in root.glob(f"**/{xml.stem}.*"):
            if p.suffix.lower() in TIFF_SUFFIXES + IMAGE_SUFFIXES:
                return p
    raise InputError(f"no image named {xml.stem}.* next to the annotation {xml}: the image sets the label size")


def rasterize_polygons_xml(xml: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """MoNuSeg-style XML (``Region/Vertices/Vertex X= Y=``) → (H, W) uint32 instance ids 1..N, 0 = background.

    Later regions win where polygons overlap.
    """
    from skimage.draw import polygon

    try:
        tree = ET.parse(xml)
    except ET.ParseError as err:
        raise InputError(f"cannot parse annotation {xml} ({err})") from None
    out = np.zeros(shape, np.uint32)
    n = 0
    for region in tree.iter("Region"):
        pts = [(float(v.get("Y", "nan")), float(v.get("X", "nan"))) for v in region.iter("Vertex")]
        if len(pts) < 3:
            continue
        rows, cols = np.array(pts).T
        rr, cc = polygon(rows, cols, shape=shape)
        n += 1
        out[rr, cc] = n
    return out


def _metadata(
    entry: dict[str, Any], written: dict[str, Any], hashes: dict[str, Any], source: str | os.PathLike | None
) -> dict[str, Any]:
    return {
        "name": entry["name"],
        "title": entry.get("title"),
        "modality": entry.get("modality"),
        "task": entry.get("task"),
        "source_urls": [d.get("url") for d in entry["downloads"]],
        "page": entry.get("page"),
        "files": hashes,
        "local_source": str(source) if source is not None else None,
        "voxel_size": entry.get("voxel_size"),
        "voxel_unit": "nm",
        "axes": "ZYX(C)",
        "licence": entry.get("licence"),
        "citation": entry.get("citation"),
        "label_convention": entry.get("label_convention"),
        "outputs": written,
        "converted_by": f"slicewise {slicewise.__version__}",
    }
