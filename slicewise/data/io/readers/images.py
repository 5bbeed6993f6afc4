"""2-D image files (``.png`` / ``.jpg`` / ``.jpeg`` / ``.bmp``, and single-page TIFFs inside a folder):
one image = a volume of depth 1 (gray ``(1, H, W)``, RGB ``(1, H, W, 3)``; RGBA/LA drop alpha; palette
images keep their indices). A folder of 2-D images, or a glob such as ``"slices/*.png"``, is one slice
per file in natural sort order (``img2.png`` before ``img10.png``); each slice is read when it is indexed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slicewise.data.io.formats import TIFF_SUFFIXES
from slicewise.data.io.integrity import damaged, tifffile_warnings
from slicewise.data.io.lazy import Key, LazyView
from slicewise.data.io.volume import Volume
from slicewise.errors import InputError


def _read_image(path: Path) -> np.ndarray:
    """One 2-D image file as (H, W) or (H, W, C); RGBA/LA drop alpha, palette keeps indices."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile_warnings():
                a = tifffile.imread(path)
        except Exception as err:
            raise damaged(path, err) from None
        return a[..., :3] if a.ndim == 3 and a.shape[-1] == 4 else a
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode == "RGBA" or im.mode == "CMYK":
                im = im.convert("RGB")
            elif im.mode == "LA":
                im = im.convert("L")
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises SyntaxError for some broken headers
        raise damaged(path, err) from None


class _ImageStack(LazyView):
    """Slices from a list of 2-D image files; each file is read when its slice is indexed."""

    what = "image stack"

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        first = _read_image(files[0])
        if first.ndim not in (2, 3):
            raise InputError(f"{files[0]} is not a 2-D image (shape {first.shape})")
        self._slice_shape = first.shape
        self.shape = (len(files), *first.shape)
        self.dtype = first.dtype

    def _read(self, key: Key) -> np.ndarray:
        zkey, rest = key[0], key[1:]
        one = isinstance(zkey, int)
        parts = []
        for z in [zkey] if one else range(zkey.start, zkey.stop, zkey.step):
            a = _read_image(self.files[z])
            if a.shape != self._slice_shape:
                raise InputError(
                    f"{self.files[z]} has shape {a.shape} but {self.files[0]} has "
                    f"{self._slice_shape}: all slices of a stack must have the same size"
                )
            parts.append(a[rest])
        return parts[0] if one else np.stack(parts)


def open_image_files(files: list[Path], source: str) -> Volume:
    """A stack of 2-D image files (natural sort order of their names), one slice per file, read lazily."""
    from natsort import natsorted

    files = natsorted(files, key=lambda f: f.name)
    return Volume(_ImageStack(files), source=source)


def open_image(p: Path, key: str | None = None) -> Volume:
    """One 2-D image file as a volume of depth 1; ``key`` is unused (no datasets)."""
    return open_image_files([p], str(p))
