"""``slicewise predict`` / ``slicewise segment`` through the real entry point (main)."""

import re

import numpy as np
import pytest


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from slicewise.data.io import write_volume
    from slicewise.models import build_model, save_model

    d = tmp_path_factory.mktemp("cli")
    model = build_model(
        encoder="tf_efficientnet_lite0",
        weights="random",
        in_slices=3,
        decoder_channels=(16, 8, 8, 8, 8),
        extra_heads=("boundary",),
    )
    save_model(model, d / "m.pt")
    save_model(
        build_model(encoder="tf_efficientnet_lite0", weights="random", in_slices=5, decoder_channels=(16, 8, 8, 8, 8)),
        d / "m5.pt",
    )
    vol = np.random.default_rng(4).integers(0, 256, (4, 64, 80), dtype=np.uint8)
    write_volume(d / "gray.tif", vol)
    write_volume(d / "rgb.tif", np.random.default_rng(5).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8))
    return d, vol


def test_predict_and_segment_commands(files, tmp_path, cli):
    from slicewise.data.io.predictions import read_prediction
    from slicewise.infer.predict import predict
    from slicewise.models import load_model
    from slicewise.segment import segment

    d, vol = files
    ref = predict(load_model(d / "m.pt"), vol, tile=64, batch_size=3, progress=False, device="cpu")
    out = tmp_path / "p.zarr"
    code, stdout, err = cli(
        [
            "predict",
            d / "m.pt",
            d / "gray.tif",
            out,
            "--tile",
            "64",
            "--batch-size",
            "3",
            "--labels",
            "--probabilities",
            "--block",
            "3,40,64",
            "--device",
            "cpu",
        ]
    )
    assert code == 0, err
    assert stdout.strip() == str(out)
    pred = read_prediction(out)
    np.testing.assert_allclose(pred.probabilities[...], ref, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(pred.labels[...]), np.argmax(ref[:2], 0))
    assert pred.channels == ["class0", "class1", "boundary"]

    q = tmp_path / "q.h5"
    code, stdout, err = cli(
        [
            "predict",
            d / "m.pt",
            d / "gray.tif",
            q,
            "--tile",
            "64",
            "--z",
            "1:3",
            "--roi",
            ",8:40",
            "--dtype",
            "uint8",
            "--device",
            "cpu",
        ]
    )
    assert code == 0, err
    with read_prediction(q) as part:
        assert part.offset == (1, 8, 0)
        assert np.abs(part.probabilities[...] - ref[:, 1:3, 8:40]).max() <= 1 / 510 + 1e-6

    h5 = tmp_path / "p.h5"
    assert cli(["predict", d / "m.pt", d / "gray.tif", h5, "--tile", "64", "--device", "cpu"])[0] == 0
    lab = tmp_path / "lab.tif"
    code, stdout, err = cli(
        ["segment", h5, lab, "--mode", "watershed", "--boundary-channel", "boundary", "--per-slice", "--min-size", "3"]
    )
    assert code == 0, err
    import tifffile

    expected = segment(h5, mode="watershed", boundary_channel="boundary", per_slice=True, min_size=3)
    np.testing.assert_array_equal(tifffile.imread(lab), expected)
    assert stdout.strip().startswith(f"{lab}: {int(expected.max())} objects, shape 4x64x80")


@pytest.mark.parametrize(
    "case",
    [
        "missing_model",
        "rgb_for_gray",
        "slice_count",
        "exists",
        "missing_input",
        "bad_channel",
        "bad_block",
        "bad_dtype",
        "bad_roi",
        "float_range",
        "nan",
        "claimed",
        "under_file",
        "bad_dask",
    ],
)
def test_bad_input_is_one_line_error_and_nothing_written(files, tmp_path, case, cli):
    d, _ = files
    out = tmp_path / "out.zarr"
    argv = ["predict", d / "m.pt", d / "gray.tif", out, "--tile", "64", "--device", "cpu"]
    match = {
        "missing_model": "does not exist",
        "rgb_for_gray": "input channels",
        "slice_count": "span",
        "exists": "already exists",
        "missing_input": "does not exist",
        "bad_channel": "not among",
        "bad_block": "block shape",
        "bad_dtype": "dtype",
        "bad_roi": "empty",
        "float_range": "--normalize percentile",
        "nan": "NaN",
        "claimed": "being written by another",
        "under_file": "not a folder",
        "bad_dask": "--dask",
    }[case]
    if case == "missing_model":
        argv[1] = d / "nope.pt"
    elif case == "rgb_for_gray":
        argv[2] = d / "rgb.tif"
    elif case == "slice_count":
        argv[1] = d / "m5.pt"  # 5 slices cannot fit a 4-slice volume
    elif case == "exists":
        out.mkdir()
        (out / "keep").write_text("x")
    elif case == "missing_input":
        argv[2] = d / "nope.tif"
    elif case == "bad_channel":
        prob = tmp_path / "p.h5"
        assert cli(["predict", d / "m.pt", d / "gray.tif", prob, "--tile", "64", "--device", "cpu"])[0] == 0
        argv = ["segment", prob, out, "--mode", "watershed", "--boundary-channel", "edge"]
    elif case == "bad_block":
        argv += ["--block", "0,8,8"]
    elif case == "bad_dtype":
        argv += ["--dtype", "int8"]
    elif case == "bad_roi":
        argv += ["--z", "3:1"]
    elif case in ("float_range", "nan"):
        from slicewise.data.io import write_volume

        bad = np.random.default_rng(0).random((4, 64, 80)).astype(np.float32) * (843 if case == "float_range" else 1)
        if case == "nan":
            bad[3, 60, 70] = np.nan
        argv[2] = write_volume(tmp_path / "bad.h5", bad, key="raw")
        argv += ["--key", "raw", "--block", "2,64,80"]
    elif case == "claimed":
        import os
        import socket

        from slicewise.utils.atomic import lock_path

        lock_path(out).write_text(f"{os.getppid()} {socket.gethostname()}")  # a live process holds the output
    elif case == "under_file":
        (tmp_path / "f").write_text("x")
        argv[3] = tmp_path / "f" / "o.zarr"
    elif case == "bad_dask":
        argv += ["--dask", "nowhere"]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = cli(argv)
    assert code == 2
    err = "".join(
        ln for ln in err.splitlines(keepends=True) if not re.match(r"\[\d\d:\d\d:\d\d\] ", ln)
    )  # status lines
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "exists":
        assert (out / "keep").exists()


def test_predict_static_shape_flags(files, tmp_path, cli):
    """--cuda-graphs (a logged no-op on a CPU, batches padded to one shape) and --compile with a backend name
    give the eager probabilities; an unknown backend is a one-line error naming the choices."""
    from slicewise.data.io.predictions import read_prediction
    from slicewise.infer.predict import predict
    from slicewise.models import load_model

    d, vol = files
    ref = predict(load_model(d / "m.pt"), vol, tile=64, batch_size=3, progress=False, device="cpu")
    out = tmp_path / "s.h5"
    code, _, err = cli(
        [
            "predict",
            d / "m.pt",
            d / "gray.tif",
            out,
            "--tile",
            "64",
            "--batch-size",
            "3",
            "--device",
            "cpu",
            "--cuda-graphs",
            "--compile",
            "aot_eager",
        ]
    )
    assert code == 0, err
    with read_prediction(out) as pred:
        np.testing.assert_allclose(pred.probabilities[...], ref, rtol=0, atol=1e-5)
    code, stdout, err = cli(["predict", d / "m.pt", d / "gray.tif", tmp_path / "t.h5", "--compile", "nope"])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "torch.compile backend" in lines[0] and "aot_eager" in lines[0]
    assert not (tmp_path / "t.h5").exists()
