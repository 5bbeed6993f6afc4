"""bioimage.io export (``slicewise/export/bmz.py``): the package validates, bioimage.io's runner
reproduces slicewise's prediction, and its description says what slicewise does."""

from __future__ import annotations

import itertools
import zipfile

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from slicewise.errors import InputError
from slicewise.export.bmz import HALO, channel_names_in, seed_citations, tiling_sizes

pytest.importorskip(
    "bioimageio.spec", reason="the bioimageio extra is not installed: pip install 'slicewise[bioimageio]'"
)


def _rdf(pkg) -> dict:
    with zipfile.ZipFile(pkg) as zf:
        name = "bioimageio.yaml" if "bioimageio.yaml" in zf.namelist() else "rdf.yaml"
        return yaml.safe_load(zf.read(name))


def _npy(pkg, name: str) -> np.ndarray:
    import io

    with zipfile.ZipFile(pkg) as zf:
        return np.load(io.BytesIO(zf.read(name)))


def test_spec_validates_the_package(exported) -> None:
    from bioimageio.spec import ValidationContext, load_model_description

    _, _, pkg = exported
    with ValidationContext(perform_io_checks=True):
        descr = load_model_description(pkg)
    assert descr.format_version.startswith("0.5")
    assert descr.validation_summary.status in ("passed", "valid-format")


def test_bioimageio_core_test_passes_and_the_test_tensor_is_discriminative(exported) -> None:
    from bioimageio.core import test_description

    model, _, pkg = exported
    summary = test_description(str(pkg))
    assert summary.status == "passed", summary.format()
    weights_tested = {d.loc[1] for d in summary.details if len(d.loc) > 1 and d.loc[0] == "weights"}
    assert {"pytorch_state_dict", "torchscript"} <= weights_tested
    out = _npy(pkg, "test_output.npy")
    # the reproduction check means something: a wrong preprocessing (e.g. no /255) changes the output by far more
    # than the tolerance
    import torch

    x = torch.from_numpy(_npy(pkg, "test_input.npy").astype(np.float32))
    with torch.no_grad():
        wrong = torch.softmax(model(x)[:, :2], 1).numpy()
    assert np.abs(wrong - out[:, :2]).max() > 0.05


def test_bioimageio_core_prediction_equals_slicewise_on_a_new_stack(exported) -> None:
    """bioimage.io's runner on another stack (other size) reproduces slicewise.predict of that slice padded by the
    declared halo (symmetric padding, as the runner pads it) and cropped back."""
    from bioimageio.core import create_prediction_pipeline, load_description
    from bioimageio.core.digest_spec import create_sample_for_model

    from slicewise.data.stacking import stack_slices
    from slicewise.data.synthetic import make_phantom
    from slicewise.infer.predict import predict

    model, _, pkg = exported
    vol = make_phantom(shape=(9, 96, 128), seed=5).raw
    stack = stack_slices(vol, 4, 3, 2, "reflect")[None]
    h = HALO
    padded = np.pad(vol, ((0, 0), (h, h), (h, h)), mode="symmetric")
    expected = predict(
        model, padded, roi="4:5", tile=(96 + 2 * h, 128 + 2 * h), overlap=0.0, dz=2, device="cpu", progress=False
    )[:, 0, h:-h, h:-h]
    descr = load_description(str(pkg))
    sample = create_sample_for_model(descr, inputs={"raw": stack})
    with create_prediction_pipeline(descr, weight_format="pytorch_state_dict") as pp:
        got = pp.predict_sample_without_blocking(sample).members["probabilities"].data.to_numpy()[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_description_matches_slicewise(exported) -> None:
    model, _, pkg = exported
    rdf = _rdf(pkg)
    inp, out = rdf["inputs"][0], rdf["outputs"][0]
    assert [a.get("id", a["type"]) for a in inp["axes"]] == ["batch", "channel", "y", "x"]
    assert inp["axes"][1]["channel_names"] == ["z-2", "z+0", "z+2"]  # k=3, dz=2 from the run's config.yaml
    d = model.size_divisor
    assert (
        inp["axes"][2]["size"] == inp["axes"][3]["size"] == {"min": 2 * HALO + d, "step": d} == {"min": 96, "step": 32}
    )
    assert [a.get("halo", 0) for a in out["axes"]] == [
        0,
        0,
        HALO,
        HALO,
    ] and "pad" not in inp  # bioimage.io's default: symmetric
    assert inp["data"]["type"] == "uint8"
    scale = [p for p in inp["preprocessing"] if p["id"] == "scale_linear"]
    assert scale and scale[0]["kwargs"]["gain"] == pytest.approx(1 / 255)
    assert inp["preprocessing"][-1] == {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}
    assert out["axes"][1]["channel_names"] == ["cytoplasm", "membrane", "boundary"]
    dois = {c["doi"] for c in rdf["cite"]}
    assert dois == {
        "10.48550/arXiv.2505.14105",
        "10.48550/arXiv.2402.08276",
    }  # uniform init, L1 pruned; no domain weights, no SAM
    assert "http" not in yaml.safe_dump(
        {k: v for k, v in rdf.items() if k != "config"}
    )  # nothing to download when validating
    sw = rdf["config"]["slicewise"]
    assert sw["dz"] == 2 and sw["model_config"]["skips"] == "0111" and sw["k"] == 3
    assert rdf["authors"] == [{"name": "Ada Lovelace"}] and rdf["license"] == "MIT"
    with zipfile.ZipFile(pkg) as zf:
        readme = zf.read("README.md").decode()
        import io

        from PIL import Image

        cover = Image.open(io.BytesIO(zf.read("cover.png")))
    assert "channel 0 = slice z-2" in readme and "dz = 2" in readme and "uniform" in readme
    assert "synthetic EM phantom" in readme  # training data from the run's config.yaml
    assert cover.size[0] == 2 * cover.size[1]
    shares = sw["attribution"]["shares"]
    assert len(shares) == 3 and sum(shares) == pytest.approx(1.0)


def test_test_output_is_slicewise_prediction(exported) -> None:
    """test_output.npy equals slicewise.predict on the test stack (as a 3-slice volume, centre slice); bioimage.io's
    test runs the network on the test input without halo padding."""
    from slicewise.infer.predict import predict

    model, _, pkg = exported
    stack = _npy(pkg, "test_input.npy")[
        0
    ]  # (k, H, W): slices z-2, z, z+2 → as a volume with dz=1 the centre's stack is the same
    assert stack.shape[-2:] == (96, 96)  # the default test size (64) raised to the minimum input size
    probs = predict(model, stack, tile=stack.shape[-1], overlap=0.0, dz=1, device="cpu", progress=False)
    np.testing.assert_allclose(_npy(pkg, "test_output.npy")[0], probs[:, 1], atol=1e-5)


def test_refuses_bad_outputs(exported, tmp_path) -> None:
    from slicewise.export import bioimageio

    model, _, pkg = exported
    with pytest.raises(InputError, match=r"\.zip"):
        bioimageio(model, tmp_path / "model.tar")
    with pytest.raises(InputError, match="exists"):
        bioimageio(model, pkg)
    with pytest.raises(InputError, match="name"):
        bioimageio(model, tmp_path / "x.zip", name="bad/name!", torchscript=False)
    assert not (tmp_path / "x.zip").exists()


@given(k=st.sampled_from([1, 3, 5, 7]), colors=st.sampled_from([1, 3]), dz=st.integers(1, 4))
def test_input_channel_names_are_mirror_symmetric(k: int, colors: int, dz: int) -> None:
    names = channel_names_in(k, colors, dz)
    assert len(names) == len(set(names)) == k * colors
    offsets = [int(n[1:].split("_")[0]) for n in names[::colors]]
    assert offsets == [-o for o in offsets[::-1]] and offsets[len(offsets) // 2] == 0
    assert all(b - a == dz for a, b in itertools.pairwise(offsets))


def test_seed_citations_follow_the_config() -> None:
    from slicewise.config import ModelConfig

    def dois(**kw):
        return {d for _, d in seed_citations(ModelConfig(**kw))}

    assert dois(channel_init="rgb", skips="1111", weights="imagenet") == set()
    assert dois(channel_init="mirror") == {"10.48550/arXiv.2505.14105"}
    assert dois(channel_init="rgb", skips="0111", encoder="resnet50", weights="lunit_bt_rn50") == {
        "10.48550/arXiv.2402.08276",
        "10.48550/arXiv.2307.03275",
    }
    assert "10.48550/arXiv.2304.02643" in dois(channel_init="rgb", encoder="slicewise_samvit_b")


def test_tiling_sizes_keep_padded_inputs_valid() -> None:
    assert tiling_sizes(32) == (32, 96) and tiling_sizes(16) == (32, 80) and tiling_sizes(32, 0) == (0, 32)
    assert tiling_sizes(64, 40) == (64, 192)  # 2·halo rounded up to a multiple of the divisor
    with pytest.raises(InputError, match="halo"):
        tiling_sizes(32, -1)
