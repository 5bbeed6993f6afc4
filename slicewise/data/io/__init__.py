"""Volume I/O: open any supported file as a lazy Z×Y×X(×C) :class:`Volume`, write volumes, validate inputs.

Layout: :mod:`~slicewise.data.io.volume` (:class:`Volume`, :func:`as_volume`),
:mod:`~slicewise.data.io.readers` (:func:`open_volume` and its table of one reader per format),
:mod:`~slicewise.data.io.writers` (:func:`write_volume`, :func:`create_zarr`),
:mod:`~slicewise.data.io.checks` (:func:`check_raw`, the one intensity check, with :func:`intensity_dtype`,
:func:`check_intensity_range` and :func:`check_block`; :func:`check_labels`, :func:`summarize_volume`),
:mod:`~slicewise.data.io.formats` (THE format table: suffixes, marker files, the fallback channel name),
:mod:`~slicewise.data.io.outputs` (output paths checked before work, :func:`atomic_path`),
:mod:`~slicewise.data.io.stores` (block-writable arrays and resumable prediction writers),
:mod:`~slicewise.data.io.predictions` (:func:`read_prediction`, probability views and the one probability value
check, quantization) and :mod:`~slicewise.data.io.labels` (a label file with the offset it records).
The main public names are importable from ``slicewise.data.io``.

Formats (chosen by suffix):

- ``.tif`` / ``.tiff``: multi-page TIFF, read page by page (tifffile's zarr store of the first
  series, so compressed and tiled files are lazy too). ImageJ hyperstacks with a channel axis
  other than the last (``CYX``, ``ZCYX``) are not supported: save them as Z×Y×X(×C).
- ``.png`` / ``.jpg`` / ``.jpeg`` / ``.bmp``: one 2-D image = a volume of depth 1
  (gray ``(1, H, W)``, RGB ``(1, H, W, 3)``; RGBA/LA drop alpha; palette images keep their indices).
- a folder of 2-D images, or a glob such as ``"slices/*.png"``: one slice per file in natural
  sort order (``img2.png`` before ``img10.png``); each slice is read when it is indexed.
- ``.h5`` / ``.hdf5`` / ``.hdf``: HDF5, dataset ``key`` (also ``"file.h5:key"`` or ``"file.h5/key"``);
  without a key the file must hold exactly one dataset.
- ``.zarr`` (or a folder holding ``.zarray`` / ``.zgroup`` / ``zarr.json``): Zarr v2 or v3; a group
  needs ``key`` unless it holds exactly one array. An OME-Zarr (NGFF) image opens its level 0,
  ``"img.zarr:2"`` its level with dataset path ``2`` (:mod:`slicewise.data.io.ngff`).
- ``.n5``: only through zarr-python 2 (``zarr.N5Store``); zarr 3 dropped N5, so with zarr 3 an
  N5 path is a one-line error suggesting a conversion to Zarr or HDF5.

Voxel sizes are ``(z, y, x)`` in nanometres: TIFF resolution / ImageJ units are converted to nm;
HDF5/Zarr attributes ``resolution`` or ``voxel_size`` are taken as nm (CREMI convention),
``element_size_um`` (ilastik) is converted. Unknown → ``None``.

Writing (:func:`write_volume`): TIFF (zlib, one page per slice, voxel size in the JSON
description), HDF5 (gzip, chunked, default key ``"data"``), Zarr **format 2** (readable by
zarr-python 2 and 3, napari, neuroglancer and PyTorch Connectomics; attribute ``resolution``),
and a folder of PNG slices (``slice_0000.png`` …) for a path without suffix (uint8/uint16 only).
Every write goes through :func:`slicewise.data.io.outputs.atomic_path`, except adding a dataset to an
*existing* HDF5 file: that file is modified in place, the dataset is written under a temporary
name and renamed to ``key`` only when complete (other datasets are untouched).
"""

from __future__ import annotations

from slicewise.data.io.checks import (
    check_block,
    check_intensity_range,
    check_labels,
    check_raw,
    intensity_dtype,
    summarize_volume,
)
from slicewise.data.io.coerce import as_volume
from slicewise.data.io.formats import HDF5_SUFFIXES, IMAGE_SUFFIXES, N5_SUFFIXES, TIFF_SUFFIXES, ZARR_SUFFIXES
from slicewise.data.io.integrity import damaged, tifffile_warnings
from slicewise.data.io.outputs import atomic_path, check_output_path
from slicewise.data.io.predictions import Prediction, probability_view, read_prediction
from slicewise.data.io.readers import (
    READERS,
    SUPPORTED,
    Reader,
    open_image_files,
    open_volume,
    split_container_key,
)
from slicewise.data.io.stores import PredictionWriter, create_array_store, open_prediction_writer
from slicewise.data.io.volume import Volume
from slicewise.data.io.writers import WRITE_SUPPORTED, create_zarr, write_volume

__all__ = [
    "HDF5_SUFFIXES",
    "IMAGE_SUFFIXES",
    "N5_SUFFIXES",
    "READERS",
    "SUPPORTED",
    "TIFF_SUFFIXES",
    "WRITE_SUPPORTED",
    "ZARR_SUFFIXES",
    "Prediction",
    "PredictionWriter",
    "Reader",
    "Volume",
    "as_volume",
    "atomic_path",
    "check_block",
    "check_intensity_range",
    "check_labels",
    "check_output_path",
    "check_raw",
    "create_array_store",
    "create_zarr",
    "damaged",
    "intensity_dtype",
    "open_image_files",
    "open_prediction_writer",
    "open_volume",
    "probability_view",
    "read_prediction",
    "split_container_key",
    "summarize_volume",
    "tifffile_warnings",
    "write_volume",
]
