"""Bad inputs and faults, across every CLI command and the public API.

Every case must end with exit status 2 (API: a :class:`SlicewiseError`), exactly one stderr line
starting ``error:`` (besides time-stamped status lines of work done before the failure), no traceback, nothing at
the case's output path, and never the marker file that the malicious pickles in the kit would create if anything
unpickled them.

Extend the corpus by adding one line to :data:`CASES` (CLI) or :data:`API_CASES` (Python API):
``Case(id, argv, setup, out=..., match=..., env=...)``. ``argv`` and ``out`` are
formatted with ``k`` (the shared kit folder, see :func:`kit`) and ``t`` (the case's own folder);
``setup`` names a function in :data:`SETUPS` that prepares ``t``; ``match`` is a regex the error
line must contain.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
import yaml

from slicewise.errors import SlicewiseError

MARKER = "PWNED"


class Evil:
    """A pickle payload that would create the marker file if anything unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class Case(NamedTuple):
    id: str
    argv: list[str]
    setup: str = "none"
    out: str | None = None
    match: str | None = None
    env: dict[str, str] | None = None


CASES: list[Case] = [
    # ------------------------------------------------------------------ data list / fetch / info
    Case("data-list-extra-argument", ["data", "list", "extra"]),
    Case(
        "fetch-unknown-dataset",
        ["data", "fetch", "nosuch", "--dest", "{t}/d"],
        out="{t}/d/nosuch",
        match="unknown dataset",
    ),
    Case(
        "fetch-manual-without-from",
        ["data", "fetch", "monuseg", "--dest", "{t}/d"],
        out="{t}/d/monuseg",
        match="--from",
    ),
    Case(
        "fetch-offline",
        ["data", "fetch", "isbi2012", "--dest", "{t}/d"],
        out="{t}/d/isbi2012",
        match="SLICEWISE_OFFLINE",
    ),
    Case(
        "fetch-from-missing",
        ["data", "fetch", "lucchi_pp", "--from", "{t}/nope.zip", "--dest", "{t}/d"],
        out="{t}/d/lucchi_pp",
    ),
    Case(
        "fetch-dest-under-a-file",
        ["data", "fetch", "lucchi_pp", "--from", "{k}/bomb.zip", "--dest", "{k}/afile/d"],
        out="{k}/afile/d",
        match="is a file",
    ),
    Case(
        "fetch-dest-read-only",
        ["data", "fetch", "lucchi_pp", "--from", "{k}/bomb.zip", "--dest", "{t}/ro/d"],
        "readonly",
        out="{t}/ro/d/lucchi_pp",
        match="not writable",
    ),
    Case(
        "fetch-zip-bomb",
        ["data", "fetch", "lucchi_pp", "--from", "{k}/bomb.zip", "--dest", "{t}/d", "--cache-dir", "{t}/c"],
        out="{t}/d/lucchi_pp",
        match="zip bomb",
        env={"SLICEWISE_MAX_EXTRACT_BYTES": "1000000"},
    ),
    Case(
        "fetch-damaged-zip",
        ["data", "fetch", "lucchi_pp", "--from", "{k}/broken.zip", "--dest", "{t}/d", "--cache-dir", "{t}/c"],
        out="{t}/d/lucchi_pp",
        match="damaged",
    ),
    Case(
        "fetch-dest-claimed",
        ["data", "fetch", "lucchi_pp", "--from", "{k}/bomb.zip", "--dest", "{t}/d", "--cache-dir", "{t}/c"],
        "claimed_fetch",
        out="{t}/d/lucchi_pp",
        match="another slicewise process",
    ),
    Case("info-missing-file", ["data", "info", "{t}/nope.tif"], match="does not exist"),
    Case("info-truncated-tiff", ["data", "info", "{k}/trunc.tif"], match="damaged or incomplete"),
    Case("info-truncated-tiff-strip", ["data", "info", "{k}/trunc_strip.tif"], match="damaged or incomplete"),
    Case("info-truncated-hdf5", ["data", "info", "{k}/trunc.h5"], match="damaged"),
    Case("info-hdf5-corrupt-chunk", ["data", "info", "{k}/badchunk.h5"], match="damaged or incomplete"),
    Case("info-zarr-corrupt-chunk", ["data", "info", "{k}/corrupt.zarr"], match="damaged or incomplete"),
    Case("info-zarr-truncated-chunk", ["data", "info", "{k}/truncchunk.zarr"], match="damaged or incomplete"),
    Case("info-text-file-named-tif", ["data", "info", "{k}/fake.tif"], match="TIFF"),
    Case("info-unsupported-suffix", ["data", "info", "{k}/notes.txt"], match="unsupported"),
    Case("info-hdf5-unknown-key", ["data", "info", "{k}/good.h5", "--key", "nope"], match="no dataset"),
    Case("info-empty-folder", ["data", "info", "{t}"], match="no 2-D images"),
    Case("info-truncated-png-in-a-folder", ["data", "info", "{k}/pngs"], match="damaged or incomplete"),
    # ------------------------------------------------------------------ model info
    Case("model-malicious-model-file", ["model", "info", "{k}/evil.pt"]),
    Case(
        "model-malicious-weights-file",
        ["model", "info", "tf_efficientnet_lite0", "--weights", "{k}/evil.pth"],
        match="never unpickles",
    ),
    Case("model-truncated-model-file", ["model", "info", "{k}/trunc_model.pt"]),
    Case(
        "model-size-zero",
        ["model", "info", "tf_efficientnet_lite0", "--weights", "random", "--size", "0"],
        match="--size",
    ),
    Case(
        "model-size-negative",
        ["model", "info", "tf_efficientnet_lite0", "--weights", "random", "--size=-32x64"],
        match="--size",
    ),
    Case(
        "model-even-slices",
        ["model", "info", "tf_efficientnet_lite0", "--weights", "random", "--in-slices", "2"],
        match="odd",
    ),
    Case(
        "model-zero-classes",
        ["model", "info", "tf_efficientnet_lite0", "--weights", "random", "--classes", "0"],
        match="classes",
    ),
    Case(
        "model-two-colors",
        ["model", "info", "tf_efficientnet_lite0", "--weights", "random", "--colors", "2"],
        match="colors",
    ),
    Case("model-bad-spec", ["model", "info", "tf_efficientnet_lite0:skips"], match="key=value"),
    Case(
        "model-missing-weights-file",
        ["model", "info", "tf_efficientnet_lite0", "--weights", "{t}/none.pth"],
        match="does not exist",
    ),
    # ------------------------------------------------------------------ audit weights / attribution / shift
    Case(
        "audit-weights-malicious-weights",
        ["audit", "weights", "tf_efficientnet_lite0", "--weights", "{k}/evil.pth"],
        match="never unpickles",
    ),
    Case(
        "audit-weights-report-under-file",
        ["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--report", "{k}/afile/rep"],
        out="{k}/afile/rep",
        match="is a file",
    ),
    Case(
        "audit-weights-json-read-only",
        ["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--json", "{t}/ro/a.json"],
        "readonly",
        out="{t}/ro/a.json",
        match="not writable",
    ),
    Case(
        "audit-weights-even-slices",
        ["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--in-slices", "4"],
    ),
    Case(
        "audit-weights-zero-img-size",
        ["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--img-size", "0"],
        match="--img-size",
    ),
    Case("audit-attribution-malicious-model", ["audit", "attribution", "{k}/evil.pt", "{k}/raw.tif"]),
    Case(
        "audit-attribution-zero-tiles",
        ["audit", "attribution", "{k}/model.pt", "{k}/raw.tif", "--tiles", "0"],
        match="--tiles",
    ),
    Case(
        "audit-attribution-zero-tile",
        ["audit", "attribution", "{k}/model.pt", "{k}/raw.tif", "--tile", "0"],
        match="--tile",
    ),
    Case(
        "audit-attribution-negative-seed",
        ["audit", "attribution", "{k}/model.pt", "{k}/raw.tif", "--seed=-1"],
        match="--seed",
    ),
    Case(
        "audit-attribution-zero-steps",
        ["audit", "attribution", "{k}/model.pt", "{k}/raw.tif", "--steps", "0"],
        match="--steps",
    ),
    Case(
        "audit-attribution-truncated-data",
        ["audit", "attribution", "{k}/model.pt", "{k}/trunc.tif", "--tiles", "2", "--tile", "32"],
        match="damaged",
    ),
    Case(
        "audit-attribution-report-under-file",
        ["audit", "attribution", "{k}/model.pt", "{k}/raw.tif", "--report", "{k}/afile/r"],
        out="{k}/afile/r",
    ),
    Case(
        "audit-attribution-json-exists",
        ["audit", "attribution", "{k}/model.pt", "{k}/raw.tif", "--json", "{k}/afile"],
        match="exists",
    ),
    Case(
        "audit-shift-zero-bins",
        ["audit", "shift", "{k}/model.pt", "{k}/raw.tif", "--shift", "contrast=0.5", "--bins", "0"],
        match="--bins",
    ),
    Case(
        "audit-shift-negative-dz",
        ["audit", "shift", "{k}/model.pt", "{k}/raw.tif", "--shift", "contrast=0.5", "--dz=-1"],
        match="--dz",
    ),
    Case(
        "audit-shift-zero-batch",
        ["audit", "shift", "{k}/model.pt", "{k}/raw.tif", "--shift", "contrast=0.5", "--batch-size", "0"],
        match="--batch-size",
    ),
    Case(
        "audit-shift-unknown-shift",
        ["audit", "shift", "{k}/model.pt", "{k}/raw.tif", "--shift", "nosuch=1", "--tiles", "2", "--tile", "32"],
    ),
    Case("audit-shift-no-model", ["audit", "shift", "{k}/raw.tif", "--shift", "contrast=0.5"], match="MODEL"),
    Case(
        "audit-shift-report-read-only",
        ["audit", "shift", "{k}/model.pt", "{k}/raw.tif", "--shift", "contrast=0.5", "--report", "{t}/ro/r"],
        "readonly",
        out="{t}/ro/r",
    ),
    Case(
        "audit-attribution-nan-data",
        ["audit", "attribution", "{k}/model.pt", "{k}/nan.tif", "--tiles", "2", "--tile", "32"],
        match="NaN",
    ),
    Case(
        "audit-shift-inf-data",
        ["audit", "shift", "{k}/model.pt", "{k}/nan.tif", "--shift", "contrast=0.5", "--tiles", "2", "--tile", "32"],
        match="NaN",
    ),
    Case("audit-shift-malicious-model", ["audit", "shift", "{k}/evil.pt", "{k}/raw.tif", "--shift", "contrast=0.5"]),
    # ------------------------------------------------------------------ train
    Case(
        "train-override-malformed-yaml",
        ["train", "optim.lr=[1,", "--out", "{t}/run"],
        out="{t}/run",
        match="override 'optim.lr=\\[1,'",
    ),
    Case(
        "train-override-typo-blamed-on-override",
        ["train", "{k}/tiny.yaml", "optim.lrr=1", "--out", "{t}/run"],
        out="{t}/run",
        match="override 'optim.lrr=1'.*did you mean 'lr'",
    ),
    Case(
        "train-override-empty-key-part", ["train", "optim..lr=1", "--out", "{t}/run"], out="{t}/run", match="empty part"
    ),
    Case(
        "train-override-value-and-section",
        ["train", "optim=1", "optim.lr=2", "--out", "{t}/run"],
        out="{t}/run",
        match="cannot also hold keys",
    ),
    Case(
        "train-override-bad-value",
        ["train", "{k}/tiny.yaml", "optim.lr=-1", "--out", "{t}/run"],
        out="{t}/run",
        match="override 'optim.lr=-1'",
    ),
    Case(
        "train-yaml-syntax-error", ["train", "{k}/bad.yaml", "--out", "{t}/run"], out="{t}/run", match="not valid YAML"
    ),
    Case("train-missing-config", ["train", "{t}/none.yaml", "--out", "{t}/run"], out="{t}/run", match="does not exist"),
    Case("train-two-configs", ["train", "{k}/tiny.yaml", "{k}/bad.yaml"], match="unexpected argument"),
    Case(
        "train-out-under-a-file",
        ["train", "{k}/tiny.yaml", "--out", "{k}/afile/run"],
        out="{k}/afile/run",
        match="is a file",
    ),
    Case("train-out-is-a-file", ["train", "{k}/tiny.yaml", "--out", "{k}/afile"], match="is a file"),
    Case(
        "train-out-read-only",
        ["train", "{k}/tiny.yaml", "--out", "{t}/ro/run"],
        "readonly",
        out="{t}/ro/run",
        match="not writable",
    ),
    Case(
        "train-out-claimed",
        ["train", "{k}/tiny.yaml", "--out", "{t}/run"],
        "claimed_run",
        out="{t}/run",
        match="another slicewise process",
    ),
    Case(
        "train-resume-malicious-last-ckpt",
        ["train", "--out", "{t}/run", "--resume"],
        "run_evil_last",
        match="--restart",
    ),
    Case(
        "train-resume-malicious-best-ckpt",
        ["train", "--out", "{t}/run", "--resume"],
        "run_evil_best",
        match="--restart",
    ),
    Case(
        "train-resume-truncated-last-ckpt",
        ["train", "--out", "{t}/run", "--resume"],
        "run_trunc_last",
        match="damaged or incomplete.*--restart",
    ),
    Case(
        "train-resume-changed-config",
        ["train", "--out", "{t}/run", "--resume", "optim.lr=0.5"],
        "run_copy",
        match="config changed.*optim.lr",
    ),
    Case(
        "train-resume-changed-data",
        ["train", "--out", "{t}/run", "--resume"],
        "run_changed_data",
        match="changed since",
    ),
    Case("train-resume-without-run", ["train", "--out", "{t}/none", "--resume"], match="holds no training run"),
    Case(
        "train-existing-run-without-flag",
        ["train", "{t}/run/config.yaml", "--out", "{t}/run"],
        "run_copy",
        match="--resume.*--restart",
    ),
    Case(
        "train-resume-and-restart", ["train", "--out", "{t}/run", "--resume", "--restart"], "run_copy", match="exclude"
    ),
    Case(
        "train-negative-labels",
        ["train", "{k}/tiny.yaml", "data.labels={k}/neg_labels.tif", "--out", "{t}/run"],
        out="{t}/run",
        match="negative values",
    ),
    Case(
        "train-all-negative-labels",
        ["train", "{k}/tiny.yaml", "data.labels={k}/allneg_labels.tif", "--out", "{t}/run"],
        out="{t}/run",
        match="^(?!.*classes=-).*negative values",
    ),
    Case(
        "train-nan-raw",
        ["train", "{k}/tiny.yaml", "data.raw={k}/nan.tif", "--out", "{t}/run"],
        out="{t}/run",
        match="NaN",
    ),
    Case(
        "train-truncated-raw",
        ["train", "{k}/tiny.yaml", "data.raw={k}/trunc.tif", "--out", "{t}/run"],
        out="{t}/run",
        match="damaged",
    ),
    Case(
        "train-malicious-weights",
        ["train", "{k}/tiny.yaml", "model.weights={k}/evil.pth", "--out", "{t}/run"],
        out="{t}/run",
        match="never unpickles",
    ),
    Case("train-negative-seed", ["train", "{k}/tiny.yaml", "seed=-1", "--out", "{t}/run"], out="{t}/run", match="seed"),
    Case(
        "train-zero-batch",
        ["train", "{k}/tiny.yaml", "data.batch_size=0", "--out", "{t}/run"],
        out="{t}/run",
        match="batch_size",
    ),
    Case(
        "train-negative-patch",
        ["train", "{k}/tiny.yaml", "data.patch_size=-64", "--out", "{t}/run"],
        out="{t}/run",
        match="patch_size",
    ),
    Case(
        "train-reversed-val-range",
        ["train", "{k}/tiny.yaml", "data.val_range=[5,2]", "--out", "{t}/run"],
        out="{t}/run",
        match="val_range",
    ),
    Case(
        "train-nan-learning-rate",
        ["train", "{k}/tiny.yaml", "optim.lr=.nan", "--out", "{t}/run"],
        out="{t}/run",
        match="optim.lr",
    ),
    Case(
        "train-dice-class-outside-the-model",
        ["train", "{k}/tiny.yaml", "loss.dice_classes=[7]", "--out", "{t}/run"],
        out="{t}/run",
        match="override 'loss.dice_classes=\\[7\\]'.*outside",
    ),
    Case(
        "train-foreground-class-outside-the-model",
        ["train", "{k}/tiny.yaml", "data.foreground_classes=[9]", "--out", "{t}/run"],
        out="{t}/run",
        match="outside 0..1",
    ),
    Case(
        "train-accelerator-without-gpu",
        ["train", "{k}/tiny.yaml", "trainer.accelerator=gpu", "--out", "{t}/run"],
        out="{t}/run",
        match="Lightning rejects",
    ),
    Case(
        "train-key-on-a-tiff",
        ["train", "{k}/tiny.yaml", "data.raw_key=nope", "--out", "{t}/run"],
        out="{t}/run",
        match="no dataset keys",
    ),
    Case(
        "train-zero-steps",
        ["train", "{k}/tiny.yaml", "trainer.max_steps=0", "--out", "{t}/run"],
        out="{t}/run",
        match="max_steps",
    ),
    # ------------------------------------------------------------------ predict
    Case("predict-malicious-model", ["predict", "{k}/evil.pt", "{k}/raw.tif", "{t}/p.tif"], out="{t}/p.tif"),
    Case("predict-truncated-model", ["predict", "{k}/trunc_model.pt", "{k}/raw.tif", "{t}/p.tif"], out="{t}/p.tif"),
    Case(
        "predict-output-under-a-file",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{k}/afile/p.tif"],
        out="{k}/afile/p.tif",
        match="is a file",
    ),
    Case(
        "predict-output-read-only",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/ro/p.tif"],
        "readonly",
        out="{t}/ro/p.tif",
        match="not writable",
    ),
    Case(
        "predict-truncated-input",
        ["predict", "{k}/model.pt", "{k}/trunc.tif", "{t}/p.tif", "--tile", "64"],
        out="{t}/p.tif",
        match="damaged",
    ),
    Case("predict-output-exists", ["predict", "{k}/model.pt", "{k}/raw.tif", "{k}/labels.tif"], match="exists"),
    Case(
        "predict-nan-raw",
        ["predict", "{k}/model.pt", "{k}/nan.tif", "{t}/p.tif", "--tile", "64"],
        out="{t}/p.tif",
        match="NaN",
    ),
    Case(
        "predict-float-raw-outside-unit-range",
        ["predict", "{k}/model.pt", "{k}/range.tif", "{t}/p.tif", "--tile", "64"],
        out="{t}/p.tif",
    ),
    Case(
        "predict-output-claimed",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/p.tif", "--tile", "64"],
        "claimed_prediction",
        out="{t}/p.tif",
        match="another slicewise process",
    ),
    Case("predict-zero-tile", ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/p.tif", "--tile", "0"], out="{t}/p.tif"),
    Case(
        "predict-overlap-above-one",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/p.tif", "--overlap", "1.5"],
        out="{t}/p.tif",
    ),
    Case(
        "predict-zero-batch",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/p.tif", "--batch-size", "0"],
        out="{t}/p.tif",
    ),
    Case("predict-zero-dz", ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/p.tif", "--dz", "0"], out="{t}/p.tif"),
    # ------------------------------------------------------------------ segment
    Case("segment-truncated-input", ["segment", "{k}/trunc.tif", "{t}/s.tif"], out="{t}/s.tif", match="damaged"),
    Case("segment-output-under-a-file", ["segment", "{k}/prob.tif", "{k}/afile/s.tif"], out="{k}/afile/s.tif"),
    Case("segment-unknown-mode", ["segment", "{k}/prob.tif", "{t}/s.tif", "--mode", "magic"], out="{t}/s.tif"),
    Case("segment-raw-as-probabilities", ["segment", "{k}/raw.tif", "{t}/s.tif"], out="{t}/s.tif"),
    Case("segment-nan-probabilities", ["segment", "{k}/nan.tif", "{t}/s.tif"], out="{t}/s.tif"),
    Case("segment-negative-min-size", ["segment", "{k}/prob.tif", "{t}/s.tif", "--min-size=-1"], out="{t}/s.tif"),
    # ------------------------------------------------------------------ evaluate
    Case("evaluate-shape-mismatch", ["evaluate", "{k}/labels.tif", "{k}/small_labels.tif"], match="shape"),
    Case("evaluate-truncated-prediction", ["evaluate", "{k}/trunc.tif", "{k}/labels.tif"], match="damaged"),
    Case(
        "evaluate-json-under-a-file",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--json", "{k}/afile/e.json"],
        out="{k}/afile/e.json",
    ),
    Case(
        "evaluate-bad-classes", ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--classes", "a,b"], match="--classes"
    ),
    Case("evaluate-missing-ground-truth", ["evaluate", "{k}/labels.tif", "{t}/none.tif"], match="does not exist"),
    Case("evaluate-negative-labels", ["evaluate", "{k}/neg_labels.tif", "{k}/neg_labels.tif", "--kind", "instance"]),
    # ------------------------------------------------------------------ demo
    Case("demo-zero-steps", ["demo", "--steps", "0", "--out", "{t}/demo"], out="{t}/demo", match="--steps"),
    Case(
        "demo-patch-not-multiple-of-32", ["demo", "--patch", "33", "--out", "{t}/demo"], out="{t}/demo", match="--patch"
    ),
    Case("demo-negative-seed", ["demo", "--seed=-3", "--out", "{t}/demo"], out="{t}/demo", match="--seed"),
    Case(
        "demo-unknown-strategy", ["demo", "--strategy", "bgr", "--out", "{t}/demo"], out="{t}/demo", match="--strategy"
    ),
    Case("demo-out-under-a-file", ["demo", "--out", "{k}/afile/demo"], out="{k}/afile/demo", match="is a file"),
    Case("demo-out-read-only", ["demo", "--out", "{t}/ro/demo"], "readonly", out="{t}/ro/demo", match="not writable"),
    Case(
        "demo-out-claimed",
        ["demo", "--out", "{t}/demo"],
        "claimed_demo",
        out="{t}/demo",
        match="another slicewise process",
    ),
    Case(
        "demo-raw-without-labels",
        ["demo", "--raw", "{k}/raw.tif", "--out", "{t}/demo"],
        out="{t}/demo",
        match="--labels",
    ),
    Case(
        "demo-truncated-raw",
        ["demo", "--raw", "{k}/trunc.tif", "--labels", "{k}/labels.tif", "--out", "{t}/demo"],
        out="{t}/demo",
        match="damaged",
    ),
    Case("demo-non-empty-out", ["demo", "--out", "{k}"], match="not empty"),
    # ------------------------------------------------------------------ study
    Case("study-unknown-study", ["study", "nosuch"], match="packaged"),
    Case(
        "study-init-missing-raw",
        [
            "study",
            "init",
            "bias",
            "--raw",
            "{t}/no.tif",
            "--labels",
            "{t}/no.tif",
            "--train-z",
            "0:4",
            "--test-z",
            "6:8",
        ],
        match="no.tif does not exist",
    ),
    Case(
        "study-init-bad-range",
        ["study", "init", "bias", "--raw", "{t}", "--labels", "{t}", "--train-z", "4", "--test-z", "6:8"],
        match="--train-z '4' is not a range",
    ),
    Case(
        "study-set-malformed",
        ["study", "{t}/s.yaml", "--set", "base.x=[1,", "--out", "{t}/o"],
        "study",
        out="{t}/o",
        match="override",
    ),
    Case(
        "study-set-typo-blamed-on-override",
        ["study", "{t}/s.yaml", "--set", "grdi.seed=[1]", "--out", "{t}/o"],
        "study",
        out="{t}/o",
        match="override 'grdi",
    ),
    Case(
        "study-cells-out-of-range",
        ["study", "{t}/s.yaml", "--cells", "9", "--out", "{t}/o"],
        "study",
        out="{t}/o",
        match="--cells",
    ),
    Case(
        "study-failed-cell-exits-2",
        ["study", "{t}/s.yaml", "--out", "{t}/o", "--set", "extras.fail=true"],
        "study",
        match="1 of 1 selected cell",
    ),
    Case(
        "study-malicious-cell-model",
        ["study", "{t}/s.yaml", "--out", "{t}/o", "--set", "extras.load_best=true"],
        "study_evil_best",
        match="failed",
    ),
    Case(
        "study-out-under-a-file",
        ["study", "{t}/s.yaml", "--out", "{k}/afile/o"],
        "study",
        out="{k}/afile/o",
        match="is a file",
    ),
    Case(
        "study-out-read-only",
        ["study", "{t}/s.yaml", "--out", "{t}/ro/o"],
        "study_readonly",
        out="{t}/ro/o",
        match="not writable",
    ),
    Case(
        "study-cell-claimed",
        ["study", "{t}/s.yaml", "--out", "{t}/o"],
        "study_claimed",
        match="another slicewise process",
    ),
]

SUBPROCESS = {"train-resume-malicious-last-ckpt", "info-truncated-tiff", "study-failed-cell-exits-2", "fetch-zip-bomb"}

CELL_MODULE = '''
def cell(ctx):
    """A study cell for the bad-input corpus: fails on request, or loads the cell's best.pt."""
    if ctx.study.extras.get("fail"):
        raise RuntimeError("simulated cell failure")
    if ctx.study.extras.get("load_best"):
        from slicewise.models import load_model
        load_model(ctx.workdir / "train" / "best.pt")
    return {"metrics": [{"metric": "dice", "value": 1.0}]}
'''


# ---------------------------------------------------------------------------- the kit


def _tiny_config(raw: Path, labels: Path) -> dict[str, Any]:
    return {
        "seed": 0,
        "data": {
            "raw": str(raw),
            "labels": str(labels),
            "patch_size": 32,
            "batch_size": 2,
            "num_workers": 0,
            "val_patches": 2,
            "val_fraction": 0.3,
        },
        "model": {
            "encoder": "tf_efficientnet_lite0",
            "weights": "random",
            "in_slices": 3,
            "classes": 2,
            "decoder_channels": [8, 8, 8, 8, 8],
        },
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "trainer": {"max_steps": 2, "val_every": 2, "log_every": 1},
    }


def _truncate(src: Path, dst: Path, keep: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared inputs: good and damaged volumes, malicious pickles, a model, a config, a trained run."""
    import h5py
    import tifffile

    from slicewise.data.io import write_volume
    from slicewise.models import build_model, save_model
    from slicewise.training import train

    k = tmp_path_factory.mktemp("kit")
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (10, 64, 64), dtype=np.uint8)
    labels = (raw > 128).astype(np.uint8)
    write_volume(k / "raw.tif", raw)
    write_volume(k / "labels.tif", labels)
    write_volume(k / "small_labels.tif", labels[:, :32, :32])
    write_volume(k / "neg_labels.tif", labels.astype(np.int16) - 1)
    write_volume(k / "allneg_labels.tif", np.full(labels.shape, -44, np.int16))
    nan = raw.astype(np.float32) / 255
    nan[3, 5, 5] = np.nan
    write_volume(k / "nan.tif", nan)
    write_volume(k / "range.tif", raw.astype(np.float32) * 3.7 - 100)
    write_volume(k / "prob.tif", np.stack([1 - raw / 255, raw / 255], axis=-1).astype(np.float32))  # Z×Y×X×C
    _truncate(k / "raw.tif", k / "trunc.tif", 0.6)
    tifffile.imwrite(k / "one_page.tif", rng.integers(0, 256, (256, 256), dtype=np.uint8))
    _truncate(k / "one_page.tif", k / "trunc_strip.tif", 0.9)
    write_volume(k / "good.h5", raw, chunks=(1, 64, 64))
    _truncate(k / "good.h5", k / "trunc.h5", 0.5)
    shutil.copy(k / "good.h5", k / "badchunk.h5")
    with h5py.File(k / "good.h5", "r") as f:
        info = f["data"].id.get_chunk_info(5)
    with open(k / "badchunk.h5", "r+b") as fh:
        fh.seek(info.byte_offset + 8)
        fh.write(b"\xff" * min(64, info.size - 8))
    write_volume(k / "good.zarr", raw, chunks=(1, 64, 64))
    for name, damage in (("corrupt.zarr", lambda b: b"garbage" * 9), ("truncchunk.zarr", lambda b: b[: len(b) // 2])):
        shutil.copytree(k / "good.zarr", k / name)
        chunk = k / name / "5.0.0"
        chunk.write_bytes(damage(chunk.read_bytes()))
    (k / "pngs").mkdir()
    from PIL import Image

    for z in range(3):
        Image.fromarray(raw[z]).save(k / "pngs" / f"s{z}.png")
    _truncate(k / "pngs" / "s2.png", k / "pngs" / "s2.png", 0.5)
    (k / "fake.tif").write_text("not a tiff\n")
    (k / "notes.txt").write_text("notes\n")
    (k / "afile").write_text("a regular file\n")
    (k / "bad.yaml").write_text("model: {encoder: [\n")
    with zipfile.ZipFile(k / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("lucchi_pp/zeros.bin", b"\0" * 5_000_000)
    _truncate(k / "bomb.zip", k / "broken.zip", 0.5)
    marker = k / MARKER
    torch.save({"format": "slicewise-model", "version": 1, "payload": Evil(marker)}, k / "evil.pt")
    torch.save({"state_dict": {"conv_stem.weight": Evil(marker)}}, k / "evil.pth")
    cfg = _tiny_config(k / "raw.tif", k / "labels.tif")
    (k / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    model = build_model(**cfg["model"])
    save_model(model, k / "model.pt")
    _truncate(k / "model.pt", k / "trunc_model.pt", 0.5)
    train(cfg, out=k / "run")
    assert not marker.exists()
    return k


# ---------------------------------------------------------------------------- per-case setups


def _readonly(k: Path, t: Path) -> None:
    (t / "ro").mkdir()
    (t / "ro").chmod(stat.S_IRUSR | stat.S_IXUSR)


def _claim(path: Path) -> None:
    """A lock as a live process (the test runner's parent) holds it on ``path``."""
    from slicewise.utils.atomic import lock_path

    lock = lock_path(path.absolute())
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"{os.getppid()} {socket.gethostname()}")


def _run_copy(k: Path, t: Path) -> Path:
    run = t / "run"
    shutil.copytree(k / "run", run)
    return run


def _run_evil(name: str) -> Callable[[Path, Path], None]:
    def setup(k: Path, t: Path) -> None:
        run = _run_copy(k, t)
        torch.save({"state_dict": {}, "payload": Evil(k / MARKER)}, run / "checkpoints" / name)

    return setup


def _run_trunc_last(k: Path, t: Path) -> None:
    run = _run_copy(k, t)
    _truncate(run / "checkpoints" / "last.ckpt", run / "checkpoints" / "last.ckpt", 0.5)


def _run_changed_data(k: Path, t: Path) -> None:
    """A run on its own copy of the data, whose raw volume then changes."""
    run = _run_copy(k, t)
    for name in ("raw.tif", "labels.tif"):
        shutil.copy2(k / name, t / name)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    rec = json.loads((run / "inputs.json").read_text())
    for c in (cfg, rec["config"]):
        c["data"]["raw"], c["data"]["labels"] = str(t / "raw.tif"), str(t / "labels.tif")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "inputs.json").write_text(json.dumps(rec))
    from slicewise.data.io import open_volume, write_volume

    changed = open_volume(t / "raw.tif").numpy()
    changed[0, :8, :8] ^= 0xFF
    (t / "raw.tif").unlink()
    write_volume(t / "raw.tif", changed)


def _study(k: Path, t: Path) -> None:
    (t / "badcorpus_cells.py").write_text(CELL_MODULE)
    spec = {
        "name": "corpus",
        "cell": "badcorpus_cells:cell",
        "data_root": str(t),
        "grid": {"seed": [0]},
        "extras": {"fail": False, "load_best": False},
    }
    (t / "s.yaml").write_text(yaml.safe_dump(spec))


def _study_evil_best(k: Path, t: Path) -> None:
    _study(k, t)
    best = t / "o" / "cells" / "seed-0" / "train" / "best.pt"
    best.parent.mkdir(parents=True)
    torch.save({"format": "slicewise-model", "version": 1, "payload": Evil(k / MARKER)}, best)


def _study_readonly(k: Path, t: Path) -> None:
    _study(k, t)
    _readonly(k, t)


def _study_claimed(k: Path, t: Path) -> None:
    _study(k, t)
    _claim(t / "o" / "cells" / "seed-0")


SETUPS: dict[str, Callable[[Path, Path], Any]] = {
    "none": lambda k, t: None,
    "readonly": _readonly,
    "claimed_run": lambda k, t: _claim(t / "run"),
    "claimed_prediction": lambda k, t: _claim(t / "p.tif"),
    "claimed_demo": lambda k, t: _claim(t / "demo"),
    "claimed_fetch": lambda k, t: _claim(t / "d" / "lucchi_pp"),
    "run_copy": _run_copy,
    "run_evil_last": _run_evil("last.ckpt"),
    "run_evil_best": _run_evil("best.ckpt"),
    "run_trunc_last": _run_trunc_last,
    "run_changed_data": _run_changed_data,
    "study": _study,
    "study_evil_best": _study_evil_best,
    "study_readonly": _study_readonly,
    "study_claimed": _study_claimed,
}


# ---------------------------------------------------------------------------- the checks


def _fmt(text: str, k: Path, t: Path) -> str:
    return text.replace("{k}", str(k)).replace("{t}", str(t))


def _check_error_output(err: str, case: Case | None = None) -> None:
    import re

    # status lines of work that ran before the failure (``[HH:MM:SS] study x cell 1/1 ...``) are progress,
    # not error output; warnings and errors keep counting
    lines = [
        ln for ln in err.splitlines() if ln.strip() and not re.match(r"\[\d\d:\d\d:\d\d\] (?!warning:|error:)", ln)
    ]
    assert len(lines) == 1 and lines[0].startswith("error:"), f"expected one 'error:' line, got:\n{err}"
    assert "Traceback" not in err
    if case is not None and case.match:
        assert re.search(case.match, lines[0]), f"{case.match!r} not in {lines[0]!r}"


def _params(cases: list[Case]) -> list[Any]:
    return [pytest.param(c, id=c.id) for c in cases]


@pytest.fixture
def case_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    t = tmp_path / "case"
    t.mkdir()
    monkeypatch.syspath_prepend(str(t))
    monkeypatch.chdir(t)
    yield t
    for p in (t / "ro",):
        if p.exists():
            p.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("case", _params(CASES))
def test_cli_case(
    case: Case,
    kit: Path,
    case_dir: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import logging

    from slicewise.cli import main

    SETUPS[case.setup](kit, case_dir)
    for name, value in (case.env or {}).items():
        monkeypatch.setenv(name, value)
    argv = [_fmt(a, kit, case_dir) for a in case.argv]
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(SystemExit) as ex:
        main(argv)
    err = capsys.readouterr().err
    # log records of WARNING and above would reach a terminal as extra stderr lines (logging's last resort)
    err += "".join(f"{r.getMessage()}\n" for r in caplog.records if r.levelno >= logging.WARNING)
    assert ex.value.code == 2, err
    _check_error_output(err, case)
    if case.out:
        assert not Path(_fmt(case.out, kit, case_dir)).exists()
    assert not (kit / MARKER).exists()


@pytest.mark.parametrize("case", _params([c for c in CASES if c.id in SUBPROCESS]))
def test_cli_case_in_a_subprocess(case: Case, kit: Path, case_dir: Path) -> None:
    """A few cases end to end: a real process, stderr as the user sees it (logging, warnings included)."""
    SETUPS[case.setup](kit, case_dir)
    env = {
        **os.environ,
        **(case.env or {}),
        "PYTHONPATH": os.pathsep.join([str(case_dir), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [_fmt(a, kit, case_dir) for a in case.argv]
    r = subprocess.run(
        [sys.executable, "-m", "slicewise.cli", *argv], capture_output=True, text=True, env=env, cwd=case_dir
    )
    assert r.returncode == 2, r.stderr
    _check_error_output(r.stderr, case)
    if case.out:
        assert not Path(_fmt(case.out, kit, case_dir)).exists()
    assert not (kit / MARKER).exists()


def test_every_command_is_in_the_corpus() -> None:
    commands = {" ".join(c.argv[:2]) if c.argv[0] in ("data", "model", "audit") else c.argv[0] for c in CASES}
    assert {
        "data list",
        "data fetch",
        "data info",
        "model info",
        "audit weights",
        "audit attribution",
        "audit shift",
        "train",
        "predict",
        "segment",
        "evaluate",
        "demo",
        "study",
    } <= commands
    assert len(CASES) + len(API_CASES) >= 80 and len({c.id for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------------- the public API


def _api_train_override(k: Path, t: Path) -> Any:
    from slicewise.training import train

    return train(k / "tiny.yaml", overrides=["optim.lr=[1,"], out=t / "run")


def _api_train_resume_evil(k: Path, t: Path) -> Any:
    from slicewise.training import train

    _run_evil("last.ckpt")(k, t)
    return train(out=t / "run", resume=True)


def _api_weights_evil(k: Path, t: Path) -> Any:
    from slicewise.models import build_model

    return build_model(encoder="tf_efficientnet_lite0", weights=str(k / "evil.pth"))


def _api_check_classes_all_negative(k: Path, t: Path) -> Any:
    from slicewise.training.datamodule import check_classes

    try:
        check_classes(np.full((2, 4, 4), -44), classes=2)
    except SlicewiseError as err:
        assert "classes=-" not in str(err)
        raise


def _api_archive_guard(k: Path, t: Path) -> Any:
    from slicewise.utils.trust import check_archive

    os.environ["SLICEWISE_MAX_EXTRACT_BYTES"] = "1000"
    try:
        return check_archive(k / "bomb.zip", t)
    finally:
        del os.environ["SLICEWISE_MAX_EXTRACT_BYTES"]


API_CASES: list[tuple[str, Callable[[Path, Path], Any]]] = [
    ("load_model-malicious", lambda k, t: __import__("slicewise").load_model(k / "evil.pt")),
    ("load_model-truncated", lambda k, t: __import__("slicewise").load_model(k / "trunc_model.pt")),
    ("open_volume-truncated-tiff-read", lambda k, t: __import__("slicewise").open_volume(k / "trunc_strip.tif")[:]),
    ("open_volume-corrupt-zarr-read", lambda k, t: __import__("slicewise").open_volume(k / "corrupt.zarr")[:]),
    ("open_volume-hdf5-corrupt-chunk", lambda k, t: __import__("slicewise").open_volume(k / "badchunk.h5")[:]),
    ("parse_overrides-malformed", lambda k, t: __import__("slicewise.config").config.parse_overrides(["optim.lr=[1,"])),
    ("train-override-malformed", _api_train_override),
    ("train-resume-malicious-last", _api_train_resume_evil),
    ("build_model-malicious-weights", _api_weights_evil),
    ("check_classes-all-negative", _api_check_classes_all_negative),
    ("check_archive-zip-bomb", _api_archive_guard),
    ("run_demo-zero-steps", lambda k, t: __import__("slicewise.demo").demo.run_demo(out=t / "d", steps=0)),
    ("fetch-unknown", lambda k, t: __import__("slicewise.data.registry").data.registry.fetch("nosuch", dest=t)),
    (
        "check_output_path-under-file",
        lambda k, t: __import__("slicewise.data.io.outputs").data.io.outputs.check_output_path(k / "afile" / "x.tif"),
    ),
    (
        "predict-nan-raw",
        lambda k, t: __import__("slicewise").predict(
            __import__("slicewise").load_model(k / "model.pt"), k / "nan.tif", tile=64
        ),
    ),
]


@pytest.mark.parametrize("name,call", [pytest.param(*c, id=c[0]) for c in API_CASES])
def test_api_case(name: str, call: Callable[[Path, Path], Any], kit: Path, case_dir: Path) -> None:
    with pytest.raises(SlicewiseError) as err:
        call(kit, case_dir)
    assert "\n" not in str(err.value)
    assert not (kit / MARKER).exists()


# --------------------------------------------------------------------------- metadata corpus: special files, layouts,
# label maps, option combinations, untrusted metadata (NGFF, bioimage.io packages, run folders, study cells,
# model files)


def _special(k: Path, t: Path) -> None:
    """A FIFO under several names (which would hang any open), a socket and a symlink loop."""
    for name in ("fifo.tif", "fifo.pt", "fifo.yaml", "fifo.zip", "fifo.pth", "fifo.h5"):
        os.mkfifo(t / name)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(t / "sock.h5"))
    s.close()
    os.symlink(t / "loop_b.tif", t / "loop.tif")
    os.symlink(t / "loop.tif", t / "loop_b.tif")


def _tiffs(k: Path, t: Path) -> None:
    import tifffile

    p = np.random.default_rng(0).random((3, 4, 64, 64)).astype(np.float32)
    tifffile.imwrite(t / "czyx.tif", p)  # 4-d, no axes: the channel axis would be a guess
    tifffile.imwrite(t / "badaxes.tif", p, metadata={"axes": "CZXY"})


def _ngff(mutate: Callable[[dict[str, Any]], None], v3: bool = False) -> Callable[[Path, Path], None]:
    def setup(k: Path, t: Path) -> None:
        import zarr

        from slicewise.data.io import ngff as ome_zarr

        g = zarr.open_group(str(t / "img.zarr"), mode="w", zarr_format=2)
        g.create_array(
            "0", data=np.random.default_rng(0).random((2, 10, 64, 64)).astype(np.float32), chunks=(1, 5, 64, 64)
        )
        n = ome_zarr.build_pyramid(g, method="mean", min_size=32)
        ome_zarr.write_image_metadata(g, axes="czyx", voxel_size=(30, 4, 4), n_levels=n, channel_names=["bg", "fg"])
        attrs = json.loads((t / "img.zarr" / ".zattrs").read_text())
        mutate(attrs)
        if v3:  # the same image as OME-Zarr v0.5: attributes under "ome" in the group's zarr.json
            (t / "img.zarr" / ".zattrs").unlink()
            (t / "img.zarr" / ".zgroup").unlink()
            (t / "img.zarr" / "zarr.json").write_text(
                json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"ome": attrs}})
            )
        else:
            (t / "img.zarr" / ".zattrs").write_text(json.dumps(attrs))

    return setup


def _ms(attrs: dict[str, Any]) -> dict[str, Any]:
    return attrs["multiscales"][0]


def _bad_level(k: Path, t: Path) -> None:
    import zarr

    _ngff(lambda a: None)(k, t)
    zarr.open_group(str(t / "img.zarr"), mode="a").create_array(
        "1", data=np.zeros((2, 10, 40, 32), np.float32), overwrite=True
    )


def _package(mutate: Callable[[dict[str, Any], dict[str, bytes]], None] | None = None) -> Callable[[Path, Path], None]:
    """A package as `slicewise export bioimageio` lays it out (description, weights with their sha256), then altered."""

    def setup(k: Path, t: Path) -> None:
        import hashlib

        payload = torch.load(k / "model.pt", weights_only=True)
        buf = __import__("io").BytesIO()
        torch.save({"net." + n: v for n, v in payload["state_dict"].items()}, buf)
        files = {"weights.pt": buf.getvalue()}
        rdf = {
            "format_version": "0.5.4",
            "type": "model",
            "name": "corpus",
            "weights": {
                "pytorch_state_dict": {
                    "source": "weights.pt",
                    "sha256": hashlib.sha256(files["weights.pt"]).hexdigest(),
                }
            },
            "config": {"slicewise": {"model_config": payload["config"], "dz": 1, "border": "reflect", "k": 3}},
        }
        if mutate is not None:
            mutate(rdf, files)
        files.setdefault("rdf.yaml", yaml.safe_dump(rdf).encode())
        with zipfile.ZipFile(t / "m.zip", "w", zipfile.ZIP_STORED) as z:
            for name, data in files.items():
                z.writestr(name, data)

    return setup


def _bad_crc(k: Path, t: Path) -> None:
    _package()(k, t)
    data = bytearray((t / "m.zip").read_bytes())
    i = data.find(b"weights.pt") + 300
    data[i] ^= 0xFF
    (t / "m.zip").write_bytes(bytes(data))


def _model_config_list(k: Path, t: Path) -> None:
    torch.save({"format": "slicewise-model", "version": 1, "config": [1, 2], "state_dict": {}}, t / "m.pt")


def _run_inputs_list(k: Path, t: Path) -> None:
    run = _run_copy(k, t)
    (run / "inputs.json").write_text(json.dumps({"config": [1], "data": {}}))


def _run_forged_epoch(k: Path, t: Path) -> None:
    run = _run_copy(k, t)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["epoch"] = "seven"
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")


def _study_forged_result(k: Path, t: Path) -> None:
    _study(k, t)
    cell = t / "o" / "cells" / "seed-0"
    cell.mkdir(parents=True)
    (cell / "result.json").write_text(
        json.dumps({"fingerprint": "x", "metrics": [{"metric": "dice", "value": "high"}]})
    )


def _export_bad_run_config(k: Path, t: Path) -> None:
    shutil.copy(k / "model.pt", t / "best.pt")
    (t / "config.yaml").write_text("data:\n  dz: two\n")


def _forged_attrs(k: Path, t: Path) -> None:
    import h5py

    with h5py.File(t / "off.h5", "w") as f:
        f.create_dataset("data", data=np.ones((10, 64, 64), np.uint8)).attrs["offset"] = "abc"
    with h5py.File(t / "pm.h5", "w") as f:
        f.create_dataset("probabilities", data=np.full((2, 3, 16, 16), 0.5, np.float32))
        f.attrs["slicewise"] = json.dumps({"voxel_size": "4nm", "offset": [0, 0, 0]})
    with h5py.File(t / "pq.h5", "w") as f:
        f.create_dataset("probabilities", data=np.full((2, 3, 16, 16), 128, np.uint8))
        f.attrs["slicewise"] = json.dumps({"quantisation": {"scale": -1}})


def _h5_links(k: Path, t: Path) -> None:
    """HDF5 datasets that read another file: an external link and a virtual dataset (the source may vanish)."""
    import h5py

    with h5py.File(t / "src.h5", "w") as f:
        f["data"] = np.ones((10, 64, 64), np.uint8)
    with h5py.File(t / "ext.h5", "w") as f:
        f["data"] = h5py.ExternalLink(str(t / "src.h5"), "/data")
        f["probabilities"] = h5py.ExternalLink(str(t / "src.h5"), "/data")
    layout = h5py.VirtualLayout(shape=(10, 64, 64), dtype=np.uint8)
    layout[:] = h5py.VirtualSource(str(t / "src.h5"), "data", shape=(10, 64, 64))
    with h5py.File(t / "vds.h5", "w") as f:
        f.create_virtual_dataset("data", layout)
    with h5py.File(t / "czyx.h5", "w") as f:  # channel-first, no axes declared
        f["raw"] = np.zeros((3, 10, 64, 64), np.uint8)


SETUPS.update(
    {
        "h5_links": _h5_links,
        "forged_attrs": _forged_attrs,
        "special": _special,
        "tiffs": _tiffs,
        "ngff_datasets_string": _ngff(lambda a: _ms(a).__setitem__("datasets", "0")),
        "ngff_axis_without_name": _ngff(lambda a: _ms(a)["axes"][0].pop("name")),
        "ngff_axes_ints": _ngff(lambda a: _ms(a).__setitem__("axes", [0, 1, 2, 3])),
        "ngff_scale_string": _ngff(
            lambda a: _ms(a)["datasets"][0]["coordinateTransformations"][0].__setitem__("scale", "1 1 1 1")
        ),
        "ngff_scale_length": _ngff(
            lambda a: _ms(a)["datasets"][0]["coordinateTransformations"][0].__setitem__("scale", [1, 1])
        ),
        "ngff_path_escapes": _ngff(lambda a: _ms(a)["datasets"][0].__setitem__("path", "../../raw")),
        "ngff_path_absolute": _ngff(lambda a: _ms(a)["datasets"][0].__setitem__("path", "/etc")),
        "ngff_v05_datasets_string": _ngff(lambda a: _ms(a).__setitem__("datasets", "0"), v3=True),
        "ngff_multiscales_empty": _ngff(lambda a: a.__setitem__("multiscales", [])),
        "ngff_bad_level": _bad_level,
        "package_dz_string": _package(lambda r, f: r["config"]["slicewise"].__setitem__("dz", "2")),
        "package_weights_list": _package(lambda r, f: r.__setitem__("weights", [{"source": "weights.pt"}])),
        "package_python_tag": _package(
            lambda r, f: f.__setitem__(
                "rdf.yaml", (yaml.safe_dump(r) + "evil: !!python/object/apply:os.system ['touch PWNED']\n").encode()
            )
        ),
        "package_altered_weights": _package(
            lambda r, f: f.__setitem__("weights.pt", f["weights.pt"][:-8] + b"ALTERED!")
        ),
        "package_source_escapes": _package(
            lambda r, f: r["weights"]["pytorch_state_dict"].__setitem__("source", "../model.pt")
        ),
        "package_bad_border": _package(lambda r, f: r["config"]["slicewise"].__setitem__("border", "wrap")),
        "package_bad_crc": _bad_crc,
        "model_config_list": _model_config_list,
        "run_inputs_list": _run_inputs_list,
        "run_forged_epoch": _run_forged_epoch,
        "study_forged_result": _study_forged_result,
        "export_bad_run_config": _export_bad_run_config,
    }
)

H2_CASES: list[Case] = [
    # --------------------------------------------------------------- special files: refused before anything opens them
    Case("info-fifo", ["data", "info", "{t}/fifo.tif"], "special", match="FIFO"),
    Case("info-socket", ["data", "info", "{t}/sock.h5"], "special", match="socket"),
    Case("info-device", ["data", "info", "/dev/zero"], match="character device"),
    Case("info-symlink-loop", ["data", "info", "{t}/loop.tif"], "special", match="symbolic link loop"),
    Case(
        "predict-fifo-input",
        ["predict", "{k}/model.pt", "{t}/fifo.tif", "{t}/p.tif"],
        "special",
        out="{t}/p.tif",
        match="FIFO",
    ),
    Case(
        "predict-fifo-model",
        ["predict", "{t}/fifo.pt", "{k}/raw.tif", "{t}/p.tif"],
        "special",
        out="{t}/p.tif",
        match="FIFO",
    ),
    Case(
        "predict-symlink-loop-input",
        ["predict", "{k}/model.pt", "{t}/loop.tif", "{t}/p.tif"],
        "special",
        out="{t}/p.tif",
        match="loop",
    ),
    Case("train-fifo-config", ["train", "{t}/fifo.yaml", "--out", "{t}/run"], "special", out="{t}/run", match="FIFO"),
    Case(
        "train-fifo-weights",
        ["train", "{k}/tiny.yaml", "model.weights={t}/fifo.pth", "--out", "{t}/run"],
        "special",
        match="FIFO",
    ),
    Case("segment-fifo", ["segment", "{t}/fifo.tif", "{t}/s.tif"], "special", out="{t}/s.tif", match="FIFO"),
    Case("evaluate-fifo-prediction", ["evaluate", "{t}/fifo.tif", "{k}/labels.tif"], "special", match="FIFO"),
    Case("evaluate-fifo-ground-truth", ["evaluate", "{k}/labels.tif", "{t}/fifo.h5"], "special", match="FIFO"),
    Case(
        "evaluate-fifo-prob",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--kind", "instance", "--prob", "{t}/fifo.tif"],
        "special",
        match="FIFO",
    ),
    Case("model-info-fifo", ["model", "info", "{t}/fifo.pt"], "special", match="FIFO"),
    Case(
        "audit-attribution-fifo-data", ["audit", "attribution", "{k}/model.pt", "{t}/fifo.tif"], "special", match="FIFO"
    ),
    Case(
        "audit-shift-fifo-model",
        ["audit", "shift", "{t}/fifo.pt", "{k}/raw.tif", "--shift", "contrast=0.5"],
        "special",
        match="FIFO",
    ),
    Case(
        "demo-fifo-raw",
        ["demo", "--raw", "{t}/fifo.tif", "--labels", "{k}/labels.tif", "--out", "{t}/demo"],
        "special",
        out="{t}/demo",
        match="FIFO",
    ),
    Case(
        "audit-weights-fifo-weights",
        ["audit", "weights", "tf_efficientnet_lite0", "--weights", "{t}/fifo.pth"],
        "special",
        match="FIFO",
    ),
    Case(
        "pretrain-fifo-volume",
        ["pretrain", "{t}/fifo.tif", "--out", "{t}/pt", "--steps", "1"],
        "special",
        out="{t}/pt",
        match="FIFO",
    ),
    Case(
        "pretrain-ngff-path-leaves-store",
        ["pretrain", "{t}/img.zarr", "--out", "{t}/pt", "--steps", "1"],
        "ngff_path_escapes",
        out="{t}/pt",
        match="datasets.0.path",
    ),
    Case("study-fifo-file", ["study", "{t}/fifo.yaml", "--out", "{t}/o"], "special", out="{t}/o", match="FIFO"),
    Case(
        "study-init-fifo-raw",
        [
            "study",
            "init",
            "bias",
            "--raw",
            "{t}/fifo.tif",
            "--labels",
            "{k}/labels.tif",
            "--train-z",
            "0:4",
            "--test-z",
            "6:8",
        ],
        "special",
        match="FIFO",
    ),
    Case(
        "fetch-from-fifo",
        ["data", "fetch", "lucchi_pp", "--from", "{t}/fifo.zip", "--dest", "{t}/d"],
        "special",
        out="{t}/d/lucchi_pp",
        match="FIFO",
    ),
    Case(
        "export-fifo-model",
        ["export", "bioimageio", "{t}/fifo.pt", "{t}/m.zip"],
        "special",
        out="{t}/m.zip",
        match="FIFO",
    ),
    # ------------------------------------------------------------------ layouts: never guessed
    Case(
        "segment-4d-tiff-without-axes",
        ["segment", "{t}/czyx.tif", "{t}/s.tif"],
        "tiffs",
        out="{t}/s.tif",
        match="would be a guess",
    ),
    Case(
        "segment-tiff-axes-not-czyx",
        ["segment", "{t}/badaxes.tif", "{t}/s.tif"],
        "tiffs",
        out="{t}/s.tif",
        match="do not describe",
    ),
    Case(
        "evaluate-prob-4d-tiff-without-axes",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--kind", "instance", "--prob", "{t}/czyx.tif"],
        "tiffs",
        match="would be a guess",
    ),
    # ------------------------------------------------------------------ label maps: a raw value mapped twice
    Case(
        "evaluate-label-map-duplicate",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--label-map", "0:1,0:0,1:0"],
        match="mapped twice",
    ),
    Case(
        "evaluate-label-map-duplicate-mapping",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--label-map", "{0: 1, 0: 0, 1: 0}"],
        match="mapped twice",
    ),
    Case(
        "evaluate-pred-label-map-duplicate",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--pred-label-map", "1:1,1:1,0:0"],
        match="mapped twice",
    ),
    Case(
        "evaluate-label-map-negative-class",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--label-map", "0:-1,1:0"],
        match="negative",
    ),
    Case(
        "study-init-label-map-duplicate",
        [
            "study",
            "init",
            "bias",
            "--raw",
            "{k}/raw.tif",
            "--labels",
            "{k}/labels.tif",
            "--train-z",
            "0:4",
            "--test-z",
            "6:8",
            "--label-map",
            "0:1,0:0,1:0",
        ],
        match="mapped twice",
    ),
    Case(
        "train-label-map-duplicate-override",
        ["train", "{k}/tiny.yaml", "data.label_map={0: 1, 0: 0, 1: 0}", "--out", "{t}/run"],
        out="{t}/run",
        match="appears twice",
    ),
    # ------------------------------------------------------------------ option combinations that mean nothing
    Case(
        "evaluate-semantic-components-both",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--components", "both"],
        match="--components",
    ),
    Case(
        "evaluate-semantic-keep-gt-zero",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--keep-gt-zero"],
        match="--keep-gt-zero",
    ),
    Case(
        "evaluate-instance-class-names",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--kind", "instance", "--class-names", "a,b"],
        match="--class-names",
    ),
    Case(
        "segment-cc-boundary-threshold",
        ["segment", "{k}/prob.tif", "{t}/s.tif", "--boundary-threshold", "0.3"],
        out="{t}/s.tif",
        match="--boundary-threshold",
    ),
    Case(
        "segment-cc-halo", ["segment", "{k}/prob.tif", "{t}/s.tif", "--halo", "2,8,8"], out="{t}/s.tif", match="--halo"
    ),
    Case(
        "segment-cc-use-distance",
        ["segment", "{k}/prob.tif", "{t}/s.tif", "--use", "distance"],
        out="{t}/s.tif",
        match="--use",
    ),
    Case(
        "segment-distance-boundary-channel",
        ["segment", "{k}/prob.tif", "{t}/s.tif", "--mode", "watershed", "--use", "distance", "--boundary-channel", "1"],
        out="{t}/s.tif",
        match="--boundary-channel",
    ),
    Case(
        "segment-boundary-min-distance",
        ["segment", "{k}/prob.tif", "{t}/s.tif", "--mode", "watershed", "--min-distance", "5"],
        out="{t}/s.tif",
        match="--min-distance",
    ),
    Case(
        "predict-labels-only-with-dtype",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/p.zarr", "--labels", "--dtype", "uint8"],
        out="{t}/p.zarr",
        match="--dtype",
    ),
    Case("study-list-with-gpus", ["study", "{t}/s.yaml", "--list", "--gpus", "0"], "study", match="--list"),
    Case(
        "study-report-only-with-gpus",
        ["study", "{t}/s.yaml", "--out", "{t}/o", "--report-only", "--gpus", "0"],
        "study",
        match="--gpus",
    ),
    # ------------------------------------------------------------ OME-NGFF metadata: validated, confined to the store
    Case(
        "info-ngff-datasets-string",
        ["data", "info", "{t}/img.zarr"],
        "ngff_datasets_string",
        match=r"\.zattrs: field 'multiscales\.0\.datasets'",
    ),
    Case(
        "info-ngff-axis-without-name",
        ["data", "info", "{t}/img.zarr"],
        "ngff_axis_without_name",
        match="axes.0.name' is missing",
    ),
    Case(
        "info-ngff-axes-as-integers", ["data", "info", "{t}/img.zarr"], "ngff_axes_ints", match="'multiscales.0.axes.0'"
    ),
    Case(
        "info-ngff-scale-string",
        ["data", "info", "{t}/img.zarr"],
        "ngff_scale_string",
        match="coordinateTransformations.0.scale",
    ),
    Case(
        "info-ngff-scale-wrong-length",
        ["data", "info", "{t}/img.zarr"],
        "ngff_scale_length",
        match="2 values for 4 axes",
    ),
    Case("info-ngff-path-leaves-store", ["data", "info", "{t}/img.zarr"], "ngff_path_escapes", match="datasets.0.path"),
    Case("info-ngff-path-absolute", ["data", "info", "{t}/img.zarr"], "ngff_path_absolute", match="datasets.0.path"),
    Case(
        "info-ngff-v05-datasets-string",
        ["data", "info", "{t}/img.zarr"],
        "ngff_v05_datasets_string",
        match=r"zarr\.json: field 'multiscales",
    ),
    Case("info-ngff-no-levels", ["data", "info", "{t}/img.zarr"], "ngff_multiscales_empty", match="'multiscales'"),
    Case("info-ngff-inconsistent-levels", ["data", "info", "{t}/img.zarr"], "ngff_bad_level", match="inconsistent"),
    Case(
        "predict-ngff-path-leaves-store",
        ["predict", "{k}/model.pt", "{t}/img.zarr", "{t}/p.zarr"],
        "ngff_path_escapes",
        out="{t}/p.zarr",
        match="datasets.0.path",
    ),
    Case(
        "segment-ngff-datasets-string",
        ["segment", "{t}/img.zarr", "{t}/s.tif"],
        "ngff_datasets_string",
        out="{t}/s.tif",
        match="multiscales.0.datasets",
    ),
    Case(
        "segment-ngff-inconsistent-levels",
        ["segment", "{t}/img.zarr", "{t}/s.tif"],
        "ngff_bad_level",
        out="{t}/s.tif",
        match="inconsistent",
    ),
    # ------------------------------------------------ bioimage.io packages: validated, sha256 checked before loading
    Case(
        "model-info-package-dz-string", ["model", "info", "{t}/m.zip"], "package_dz_string", match="config.slicewise.dz"
    ),
    Case(
        "model-info-package-weights-list",
        ["model", "info", "{t}/m.zip"],
        "package_weights_list",
        match="field 'weights'",
    ),
    Case("model-info-package-python-tag", ["model", "info", "{t}/m.zip"], "package_python_tag", match="not plain YAML"),
    Case(
        "model-info-package-altered-weights", ["model", "info", "{t}/m.zip"], "package_altered_weights", match="sha256"
    ),
    Case(
        "model-info-package-path-leaves-package",
        ["model", "info", "{t}/m.zip"],
        "package_source_escapes",
        match="not a file inside",
    ),
    Case("model-info-package-bad-border", ["model", "info", "{t}/m.zip"], "package_bad_border", match="border"),
    Case("model-info-package-bad-crc", ["model", "info", "{t}/m.zip"], "package_bad_crc", match="damaged"),
    Case(
        "predict-package-altered-weights",
        ["predict", "{t}/m.zip", "{k}/raw.tif", "{t}/p.tif"],
        "package_altered_weights",
        out="{t}/p.tif",
        match="sha256",
    ),
    Case("info-hdf5-external-link", ["data", "info", "{t}/ext.h5:data"], "h5_links", match="external link"),
    Case("info-hdf5-virtual-dataset", ["data", "info", "{t}/vds.h5"], "h5_links", match="virtual dataset"),
    Case("info-hdf5-channel-first-4d", ["data", "info", "{t}/czyx.h5"], "h5_links", match="would be a guess"),
    Case(
        "predict-hdf5-channel-first-4d",
        ["predict", "{k}/model.pt", "{t}/czyx.h5", "{t}/p.tif"],
        "h5_links",
        out="{t}/p.tif",
        match="would be a guess",
    ),
    Case(
        "segment-hdf5-external-link",
        ["segment", "{t}/ext.h5", "{t}/s.tif"],
        "h5_links",
        out="{t}/s.tif",
        match="external link",
    ),
    # ------------------------------------------------------------------ attributes of volumes and predictions
    Case(
        "evaluate-offset-attribute-not-numbers",
        ["evaluate", "{t}/off.h5", "{k}/labels.tif"],
        "forged_attrs",
        match="offset attribute",
    ),
    Case(
        "segment-prediction-voxel-size-string",
        ["segment", "{t}/pm.h5", "{t}/s.tif"],
        "forged_attrs",
        out="{t}/s.tif",
        match="field 'slicewise.voxel_size'",
    ),
    Case(
        "segment-prediction-negative-quantisation",
        ["segment", "{t}/pq.h5", "{t}/s.tif"],
        "forged_attrs",
        out="{t}/s.tif",
        match="slicewise.quantisation.scale",
    ),
    # ------------------------------------------------------------------ run folders, model files, study cells
    Case("model-info-config-not-a-mapping", ["model", "info", "{t}/m.pt"], "model_config_list", match="field 'config'"),
    Case(
        "train-resume-inputs-json-wrong-type",
        ["train", "--out", "{t}/run", "--resume"],
        "run_inputs_list",
        match="inputs.json: field 'config'",
    ),
    Case(
        "train-resume-forged-epoch",
        ["train", "--out", "{t}/run", "--resume"],
        "run_forged_epoch",
        match="field 'epoch'.*--restart",
    ),
    Case(
        "study-forged-cell-result",
        ["study", "{t}/s.yaml", "--out", "{t}/o"],
        "study_forged_result",
        match="result.json: field 'metrics",
    ),
    Case(
        "export-run-config-bad-dz",
        ["export", "bioimageio", "{t}/best.pt", "{t}/m.zip"],
        "export_bad_run_config",
        out="{t}/m.zip",
        match="config.yaml: field 'data.dz'",
    ),
]


@pytest.mark.parametrize("case", _params(H2_CASES))
def test_cli_case_metadata(
    case: Case,
    kit: Path,
    case_dir: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same contract as :func:`test_cli_case` for the metadata corpus (special files, layouts, metadata)."""
    test_cli_case(case, kit, case_dir, capsys, caplog, monkeypatch)


def test_metadata_corpus_is_distinct() -> None:
    assert len(H2_CASES) >= 35 and not {c.id for c in H2_CASES} & {c.id for c in CASES}
    assert len({c.id for c in H2_CASES}) == len(H2_CASES)


def _api_segment_combo(k: Path, t: Path) -> Any:
    from slicewise.segment import segment

    return segment(np.full((2, 8, 8), 0.6, np.float32), mode="cc", boundary_threshold=0.2)


H2_API_CASES: list[tuple[str, Callable[[Path, Path], Any]]] = [
    ("open_volume-fifo", lambda k, t: (_special(k, t), __import__("slicewise").open_volume(t / "fifo.tif"))),
    ("read_prediction-fifo", lambda k, t: (_special(k, t), __import__("slicewise").read_prediction(t / "fifo.h5"))),
    ("load_model-fifo", lambda k, t: (_special(k, t), __import__("slicewise").load_model(t / "fifo.pt"))),
    (
        "read_prediction-4d-tiff-without-axes",
        lambda k, t: (_tiffs(k, t), __import__("slicewise").read_prediction(t / "czyx.tif")),
    ),
    (
        "parse_label_map-duplicate",
        lambda k, t: __import__("slicewise.data.labelmap").data.labelmap.parse_label_map("0:1,0:0"),
    ),
    ("segment-cc-with-boundary-threshold", _api_segment_combo),
    (
        "ome_zarr-levels-path-leaves-store",
        lambda k, t: (
            _ngff(lambda a: _ms(a)["datasets"][0].__setitem__("path", "../x"))(k, t),
            __import__("slicewise.data.io.ngff").data.io.ngff.levels(t / "img.zarr"),
        ),
    ),
    (
        "load_model-package-altered-weights",
        lambda k, t: (
            _package(lambda r, f: f.__setitem__("weights.pt", f["weights.pt"][:-8] + b"ALTERED!"))(k, t),
            __import__("slicewise").load_model(t / "m.zip"),
        ),
    ),
    (
        "parse_registry-fname-leaves-cache",
        lambda k, t: __import__("slicewise.data.registry").data.registry.parse_registry(
            {"x": {"title": "x", "downloads": [{"fname": "../x.tif"}], "outputs": {"train/raw": {"file": "../x.tif"}}}},
            "registry.yaml",
        ),
    ),
]


@pytest.mark.parametrize("name,call", [pytest.param(*c, id=c[0]) for c in H2_API_CASES])
def test_api_case_metadata(name: str, call: Callable[[Path, Path], Any], kit: Path, case_dir: Path) -> None:
    test_api_case(name, call, kit, case_dir)


# ---------------------------------------------------------------------------- ownership corpus: files of the user's in
# output folders (never removed, whatever the flags), full disks (one line per writer, nothing published, no crash)

USER_FILES = {"notes.txt": "my notes", "checkpoints/important.log": "keep me", "logs/x": "mine"}


def _user_files(d: Path) -> None:
    for rel, text in USER_FILES.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)


def _userdir(k: Path, t: Path) -> None:
    _user_files(t / "mine")


def _userconfig(k: Path, t: Path) -> None:
    (t / "mine").mkdir()
    shutil.copy(k / "tiny.yaml", t / "mine" / "config.yaml")


def _run_user_file(k: Path, t: Path) -> None:
    _run_copy(k, t)
    _user_files(t / "run")


def _run_linked_checkpoints(k: Path, t: Path) -> None:
    _run_copy(k, t)
    shutil.move(t / "run" / "checkpoints", t / "elsewhere")
    os.symlink(t / "elsewhere", t / "run" / "checkpoints")


def _run_marker(text: str) -> Callable[[Path, Path], None]:
    def setup(k: Path, t: Path) -> None:
        _run_copy(k, t)
        (t / "outside.txt").write_text("not slicewise's")
        (t / "run" / ".slicewise-run.json").write_text(text)

    return setup


def _out_link(k: Path, t: Path) -> None:
    (t / "real").mkdir()
    os.symlink(t / "real", t / "link")


def _user_zarr(k: Path, t: Path) -> None:
    (t / "p.zarr").mkdir()
    (t / "p.zarr" / ".zgroup").write_text('{"zarr_format": 2}')
    (t / "p.zarr" / "notes.txt").write_text("mine")


def _user_report(k: Path, t: Path) -> None:
    (t / "rep").mkdir()
    for name in ("index.html", "report.json", "notes.txt"):
        (t / "rep" / name).write_text("{}")


def _demo_users_folder(k: Path, t: Path) -> None:
    (t / "demo").mkdir()
    (t / "demo" / "notes.txt").write_text("mine")


def _disk(leave: int = 0, prepare: Callable[[Path, Path], Any] | None = None) -> Callable[[Path, Path], None]:
    """A 1 MB tmpfs at ``t/disk``, filled up but for ``leave`` bytes (skipped where mounting is not permitted)."""

    def setup(k: Path, t: Path) -> None:
        d = t / "disk"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for a full-disk case here ({(r.stderr or 'mount failed').strip()})")
        if prepare is not None:
            prepare(k, t)
        free = shutil.disk_usage(d).free - leave
        with open(d / ".filler", "wb") as fh:
            while free > 0:
                try:
                    fh.write(b"\0" * min(free, 1 << 20))
                    fh.flush()
                except OSError:
                    break
                free -= 1 << 20

    return setup


def _previous_prediction(k: Path, t: Path) -> None:
    from slicewise.data.io import write_volume

    write_volume(t / "disk" / "p.tif", np.zeros((2, 8, 8), np.float32))


SETUPS.update(
    {
        "userdir": _userdir,
        "userconfig": _userconfig,
        "run_user_file": _run_user_file,
        "run_linked_checkpoints": _run_linked_checkpoints,
        "run_marker_outside": _run_marker(
            json.dumps({"slicewise": "output-folder", "version": 1, "kind": "train", "entries": ["../outside.txt"]})
        ),
        "run_marker_damaged": _run_marker("{not json"),
        "out_link": _out_link,
        "user_zarr": _user_zarr,
        "user_report": _user_report,
        "demo_users_folder": _demo_users_folder,
        "disk_full": _disk(),
        "disk_4k": _disk(4096),
        "disk_previous": _disk(0, _previous_prediction),
        "study_disk_full": _disk(0, _study),
    }
)

_FULL = r"disk is full|needs about|free"
H1_CASES: list[Case] = [
    Case(
        "train-out-users-folder",
        ["train", "{k}/tiny.yaml", "--out", "{t}/mine"],
        "userdir",
        match="slicewise did not write",
    ),
    Case(
        "train-out-users-folder-resume",
        ["train", "{k}/tiny.yaml", "--out", "{t}/mine", "--resume"],
        "userdir",
        match="did not write",
    ),
    Case(
        "train-out-users-folder-restart",
        ["train", "{k}/tiny.yaml", "--out", "{t}/mine", "--restart"],
        "userdir",
        match="whatever the flags",
    ),
    Case(
        "train-out-users-folder-no-config-resume",
        ["train", "--out", "{t}/mine", "--resume"],
        "userdir",
        match="did not write",
    ),
    Case(
        "train-users-config-inside-out",
        ["train", "{t}/mine/config.yaml", "--out", "{t}/mine"],
        "userconfig",
        match=r"did not write \(config.yaml\)",
    ),
    Case(
        "train-users-config-inside-out-restart",
        ["train", "{t}/mine/config.yaml", "--out", "{t}/mine", "--restart"],
        "userconfig",
        match=r"did not write \(config.yaml\)",
    ),
    Case(
        "train-users-config-inside-out-resume",
        ["train", "{t}/mine/config.yaml", "--out", "{t}/mine", "--resume"],
        "userconfig",
        match="did not write",
    ),
    Case(
        "train-run-with-users-files-restart",
        ["train", "--out", "{t}/run", "--restart"],
        "run_user_file",
        match="did not write",
    ),
    Case(
        "train-run-with-users-files-resume",
        ["train", "--out", "{t}/run", "--resume"],
        "run_user_file",
        match="did not write",
    ),
    Case(
        "train-run-with-users-files-fresh",
        ["train", "{k}/tiny.yaml", "--out", "{t}/run"],
        "run_user_file",
        match="did not write",
    ),
    Case(
        "train-run-linked-checkpoints-restart",
        ["train", "--out", "{t}/run", "--restart"],
        "run_linked_checkpoints",
        match="checkpoints",
    ),
    Case(
        "train-run-marker-lists-outside",
        ["train", "--out", "{t}/run", "--restart"],
        "run_marker_outside",
        match="outside its folder",
    ),
    Case("train-run-marker-damaged", ["train", "--out", "{t}/run", "--restart"], "run_marker_damaged", match="damaged"),
    Case("train-out-symlink", ["train", "{k}/tiny.yaml", "--out", "{t}/link"], "out_link", match="symbolic link"),
    Case(
        "predict-overwrite-users-zarr",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/p.zarr", "--overwrite"],
        "user_zarr",
        match="did not write",
    ),
    Case(
        "audit-report-overwrite-users-folder",
        ["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--report", "{t}/rep", "--overwrite"],
        "user_report",
        match="did not write",
    ),
    Case(
        "demo-overwrite-users-folder",
        ["demo", "--out", "{t}/demo", "--overwrite", "--steps", "1"],
        "demo_users_folder",
        match="did not write",
    ),
    Case(
        "predict-tif-full-disk",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/disk/p.tif"],
        "disk_full",
        out="{t}/disk/p.tif",
        match=_FULL,
    ),
    Case(
        "predict-h5-full-disk",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/disk/p.h5"],
        "disk_full",
        out="{t}/disk/p.h5",
        match=_FULL,
    ),
    Case(
        "predict-zarr-full-disk",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/disk/p.zarr"],
        "disk_full",
        out="{t}/disk/p.zarr",
        match=_FULL,
    ),
    Case(
        "predict-labels-tif-full-disk",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/disk/l.tif", "--labels"],
        "disk_full",
        out="{t}/disk/l.tif",
        match=_FULL,
    ),
    Case(
        "predict-overwrite-full-disk",
        ["predict", "{k}/model.pt", "{k}/raw.tif", "{t}/disk/p.tif", "--overwrite"],
        "disk_previous",
        match=_FULL,
    ),
    Case(
        "segment-tif-full-disk",
        ["segment", "{k}/prob.tif", "{t}/disk/s.tif"],
        "disk_full",
        out="{t}/disk/s.tif",
        match=_FULL,
    ),
    Case(
        "segment-h5-full-disk",
        ["segment", "{k}/prob.tif", "{t}/disk/s.h5"],
        "disk_full",
        out="{t}/disk/s.h5",
        match=_FULL,
    ),
    Case(
        "segment-zarr-full-disk",
        ["segment", "{k}/prob.tif", "{t}/disk/s.zarr"],
        "disk_full",
        out="{t}/disk/s.zarr",
        match=_FULL,
    ),
    Case(
        "train-full-disk",
        ["train", "{k}/tiny.yaml", "--out", "{t}/disk/run"],
        "disk_full",
        out="{t}/disk/run",
        match=_FULL,
    ),
    Case("train-4k-left", ["train", "{k}/tiny.yaml", "--out", "{t}/disk/run"], "disk_4k", match=_FULL),
    Case(
        "evaluate-json-full-disk",
        ["evaluate", "{k}/labels.tif", "{k}/labels.tif", "--json", "{t}/disk/e.json"],
        "disk_full",
        out="{t}/disk/e.json",
        match=_FULL,
    ),
    Case(
        "audit-report-full-disk",
        ["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--report", "{t}/disk/rep"],
        "disk_4k",
        out="{t}/disk/rep",
        match=_FULL,
    ),
    Case(
        "audit-json-full-disk",
        ["audit", "weights", "tf_efficientnet_lite0", "--weights", "random", "--json", "{t}/disk/a.json"],
        "disk_full",
        out="{t}/disk/a.json",
        match=_FULL,
    ),
    Case(
        "export-full-disk",
        ["export", "bioimageio", "{k}/run/best.pt", "{t}/disk/m.zip"],
        "disk_4k",
        out="{t}/disk/m.zip",
        match=_FULL,
    ),
    Case("study-full-disk", ["study", "{t}/s.yaml", "--out", "{t}/disk/o"], "study_disk_full", match=_FULL),
]


def _api_train_users_folder(k: Path, t: Path) -> Any:
    from slicewise.training import train

    _userdir(k, t)
    return train(k / "tiny.yaml", out=t / "mine", restart=True)


def _api_write_volume_users_zarr(k: Path, t: Path) -> Any:
    from slicewise.data.io import write_volume

    _user_zarr(k, t)
    return write_volume(t / "p.zarr", np.zeros((2, 8, 8), np.uint8), overwrite=True)


def _api_write_volume_png_full_disk(k: Path, t: Path) -> Any:
    from slicewise.data.io import write_volume

    _disk()(k, t)
    return write_volume(t / "disk" / "pngs", np.random.default_rng(0).integers(0, 256, (8, 128, 128), dtype=np.uint8))


def _api_write_json_full_disk(k: Path, t: Path) -> Any:
    from slicewise.utils import write_json

    _disk()(k, t)
    return write_json(t / "disk" / "r.json", {"x": "y" * 100_000})


def _api_array_store_too_big(k: Path, t: Path) -> Any:
    from slicewise.data.io.stores import create_array_store

    _disk(512 * 1024)(k, t)
    return create_array_store(t / "disk" / "l.tif", (8, 256, 256), np.int32)


H1_API_CASES: list[tuple[str, Callable[[Path, Path], Any]]] = [
    ("train-users-folder-restart", _api_train_users_folder),
    (
        "remove_owned-without-marker",
        lambda k, t: (_userdir(k, t), __import__("slicewise.utils.ownership").utils.ownership.remove_owned(t / "mine")),
    ),
    ("write_volume-over-users-zarr", _api_write_volume_users_zarr),
    ("write_volume-png-full-disk", _api_write_volume_png_full_disk),
    ("write_json-full-disk", _api_write_json_full_disk),
    ("create_array_store-tif-too-big", _api_array_store_too_big),
]


def _unmount(t: Path) -> None:
    if (t / "disk").is_dir():
        subprocess.run(["umount", "-l", str(t / "disk")], capture_output=True)


@pytest.mark.parametrize("case", _params(H1_CASES))
def test_cli_case_ownership_and_full_disk(
    case: Case,
    kit: Path,
    case_dir: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The contract of :func:`test_cli_case`; and the user's files are all still there, unchanged."""
    try:
        test_cli_case(case, kit, case_dir, capsys, caplog, monkeypatch)
        for folder in ("mine", "run"):
            if case.setup in ("userdir", "run_user_file") and (case_dir / folder).exists():
                assert all((case_dir / folder / rel).read_text() == text for rel, text in USER_FILES.items())
        if case.setup.startswith("run_marker"):
            assert (case_dir / "outside.txt").read_text() == "not slicewise's" and (
                case_dir / "run" / "best.pt"
            ).is_file()
        if case.setup == "run_linked_checkpoints":
            assert (case_dir / "elsewhere" / "last.ckpt").is_file()
        if case.setup in ("userconfig",):
            assert (case_dir / "mine" / "config.yaml").read_text() == (kit / "tiny.yaml").read_text()
        if case.setup == "disk_previous":
            assert (case_dir / "disk" / "p.tif").is_file()
    finally:
        _unmount(case_dir)


def test_ownership_and_disk_corpus_is_distinct() -> None:
    ids = {c.id for c in H1_CASES}
    assert len(H1_CASES) + len(H1_API_CASES) >= 30 and len(ids) == len(H1_CASES)
    assert not ids & {c.id for c in CASES} and not ids & {c.id for c in H2_CASES}


@pytest.mark.parametrize("name,call", [pytest.param(*c, id=c[0]) for c in H1_API_CASES])
def test_api_case_ownership_and_full_disk(
    name: str, call: Callable[[Path, Path], Any], kit: Path, case_dir: Path
) -> None:
    try:
        test_api_case(name, call, kit, case_dir)
    finally:
        _unmount(case_dir)
