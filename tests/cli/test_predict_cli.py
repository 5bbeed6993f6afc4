"""``slicewise predict`` / ``slicewise segment`` through the real entry point (main)."""

import numpy as np
import pytest
import zarr

from slicewise.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from slicewise.data.io import write_volume
    from slicewise.models import build_model, save_model

    d = tmp_path_factory.mktemp("cli")
    model = build_model(encoder="tf_efficientnet_lite0", weights="random", in_slices=3,
                        decoder_channels=(16, 8, 8, 8, 8), extra_heads=("boundary",))
    save_model(model, d / "m.pt")
    save_model(build_model(encoder="tf_efficientnet_lite0", weights="random", in_slices=5,
                           decoder_channels=(16, 8, 8, 8, 8)), d / "m5.pt")
    vol = np.random.default_rng(4).integers(0, 256, (4, 64, 80), dtype=np.uint8)
    write_volume(d / "gray.tif", vol)
    write_volume(d / "rgb.tif", np.random.default_rng(5).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8))
    return d, vol


def _run(argv, capsys):
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_predict_and_segment_commands(files, tmp_path, capsys):
    from slicewise.infer.instances import segment
    from slicewise.infer.predict import predict
    from slicewise.models import load_model

    d, vol = files
    out = tmp_path / "p.zarr"
    code, stdout, err = _run(["predict", d / "m.pt", d / "gray.tif", out, "--tile", "64", "--batch-size", "3",
                              "--labels", "--probabilities", "--chunk-z", "3", "--device", "cpu"], capsys)
    assert code == 0, err
    assert stdout.strip() == str(out)
    ref = predict(load_model(d / "m.pt"), vol, tile=64, batch_size=3, progress=False, device="cpu")
    g = zarr.open_group(str(out), mode="r")
    np.testing.assert_allclose(g["probabilities"][...], ref, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(g["labels"][...], np.argmax(ref[:2], 0))

    lab = tmp_path / "lab.tif"
    code, stdout, err = _run(["segment", out, lab, "--mode", "watershed", "--boundary-channel", "boundary",
                              "--per-slice", "--min-size", "3"], capsys)
    assert code == 0, err
    import tifffile

    expected = segment(out, mode="watershed", boundary_channel="boundary", per_slice=True, min_size=3)
    np.testing.assert_array_equal(tifffile.imread(lab), expected)
    assert stdout.strip() == f"{lab}: {int(expected.max())} objects"


@pytest.mark.parametrize("case", ["missing_model", "rgb_for_gray", "slice_count", "exists", "missing_input", "bad_channel"])
def test_bad_input_is_one_line_error_and_nothing_written(files, tmp_path, capsys, case):
    d, _ = files
    out = tmp_path / "out.zarr"
    argv = ["predict", d / "m.pt", d / "gray.tif", out, "--tile", "64", "--device", "cpu"]
    match = {"missing_model": "does not exist", "rgb_for_gray": "input channels", "slice_count": "span",
             "exists": "already exists", "missing_input": "does not exist", "bad_channel": "not among"}[case]
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
        assert _run(["predict", d / "m.pt", d / "gray.tif", prob, "--tile", "64", "--device", "cpu"], capsys)[0] == 0
        argv = ["segment", prob, out, "--mode", "watershed", "--boundary-channel", "edge"]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = _run(argv, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "exists":
        assert (out / "keep").exists()
