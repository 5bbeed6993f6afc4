"""Export a slicewise model as a bioimage.io model package (format 0.5, ``bioimageio.spec``).

Package contents (all files at the zip's root):

- ``bioimageio.yaml``: the description (``bioimageio.spec`` ``ModelDescr`` v0.5);
- ``weights.pt``: ``pytorch_state_dict`` of :class:`~slicewise.export.architecture.SlicewiseNetwork`
  (keys ``net.`` + the model's), with ``slicewise_architecture.py`` (a copy of that module) as the
  architecture source and ``model_config`` (the ModelConfig, ``weights="random"``) as its kwargs;
- ``weights.torchscript.pt``: a traced TorchScript copy, when tracing reproduces the output
  (``torchscript=False`` skips it);
- ``test_input.npy`` (``(1, k·colors, H, W)`` uint8, a 2.5D stack of the EM phantom or of
  ``test_volume``) and ``test_output.npy`` (``(1, C, H, W)`` float32, computed by
  :func:`slicewise.infer.predict.predict` on that stack's centre slice);
- ``cover.png`` (centre input slice, prediction, attribution slice shares of the test tensor),
  ``README.md`` (slice order, dz, first-layer strategy, training data).

Decisions: the package's input is the raw uint8 stack (axes ``batch, channel, y, x``; channel
``c`` = slice ``z + (c − r)·dz``, colour channels of a slice adjacent); its preprocessing is
``scale_linear`` with gain 1/255 (slicewise's ``to_unit_float``) and the mean/std
normalisation stays inside the network, as in slicewise. The output is probabilities (the
activations are part of the exported network), channel names = ``config.channel_names``.
Tiling: the output axes y/x declare a halo of :data:`HALO` px (32: the context slicewise's own tiling
guarantees at its defaults, tile 256 × overlap 0.25 / 2) and the inputs' valid sizes are ``min`` = the
smallest multiple of the size divisor above 2·halo, ``step`` = the divisor (:func:`tiling_sizes`), so
bioimageio.core, ilastik and deepImageJ tile with overlapping blocks and crop the halo instead of stitching
raw tile edges; they pad the image border by the halo (symmetric), which slicewise does not
(``tests/export/test_tiling.py`` measures both). bioimage.io's own test runs the test input without that
padding, so ``test_output.npy`` is slicewise's prediction of the unpadded test input.
Nothing in the description is an ``http`` URL (citations carry DOIs only), so validating or
testing the package never touches the network.
"""

from __future__ import annotations

import getpass
import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import yaml
from pydantic import Field

from slicewise.data.stacking import Border
from slicewise.errors import InputError
from slicewise.utils.validation import MetadataModel, parse_metadata

log = logging.getLogger(__name__)

INPUT_ID, OUTPUT_ID = "raw", "probabilities"
HALO = 32
"""Output halo (pixels, y and x) declared to tiling consumers: cropped from each side of every tile's output, so a
kept pixel saw at least this much context, as in slicewise's Gaussian-blended tiling at its defaults (tile 256,
overlap 0.25: the tile that weighs most for a pixel has it at least 256·0.25/2 = 32 px inside its edges)."""


def tiling_sizes(divisor: int, halo: int = HALO) -> tuple[int, int]:
    """(halo, minimum input side) for a model with this size divisor: the halo rounded up so that 2·halo is a
    multiple of the divisor (an input padded by the halo stays a valid size), and the smallest multiple of the
    divisor that leaves a centre after cropping 2·halo."""
    d = max(1, int(divisor))
    if int(halo) < 0:
        raise InputError(f"halo {halo} must be >= 0 pixels")
    h = -(-2 * int(halo) // d) * d // 2 if d % 2 == 0 else -(-int(halo) // d) * d
    return h, (2 * h // d + 1) * d


ARCH_FILE, ARCH_CALLABLE = "slicewise_architecture.py", "SlicewiseNetwork"
WEIGHTS_FILE, TORCHSCRIPT_FILE = "weights.pt", "weights.torchscript.pt"
REGISTRY_DOMAIN_WEIGHTS = ("lunit_", "cem500k_")

SEED_STUDIES = {
    "uniform": (
        (
            "Molnár, Szabó, Horváth. Mitigating pretraining-induced attention asymmetry in 2D+ electron "
            "microscopy image segmentation (uniform channel initialisation). arXiv 2505.14105 (2025)."
        ),
        "10.48550/arXiv.2505.14105",
    ),
    "skips": (
        (
            "Wilm, Ammeling, Öttl, Fick, Aubreville, Breininger. Rethinking U-Net skip connections for "
            "biomedical image segmentation (domain shift, skip pruning). arXiv 2402.08276 (2024)."
        ),
        "10.48550/arXiv.2402.08276",
    ),
    "domain": (
        (
            "Kataria, Knudsen, Elhabian. To pretrain or not to pretrain? A case study of domain-specific "
            "pretraining for semantic segmentation in histopathology. MILLanD 2023, arXiv 2307.03275."
        ),
        "10.48550/arXiv.2307.03275",
    ),
    "sam": ("Kirillov et al. Segment Anything. ICCV 2023, arXiv 2304.02643.", "10.48550/arXiv.2304.02643"),
}
CHENG_2024 = (
    "Cheng, Zhao, Zhang, Wang. EM-SAM: Segment-Anything encoder with a U-shaped decoder for EM "
    "instance segmentation. Optics and Precision Engineering 32(18):2836 (2024)."
)


def _need_spec() -> Any:
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise InputError("bioimage.io export needs the bioimageio extra: pip install 'slicewise[bioimageio]'") from None
    from bioimageio.spec.model import v0_5

    return v0_5


def check_license(license: str) -> str:
    """The SPDX licence id bioimage.io accepts for ``license`` (SPDX ids are case-insensitive: ``mit`` →
    ``MIT``); else a one-line :class:`InputError` with the closest ids and where the list is (never the
    whole list)."""
    import difflib
    import typing

    from pydantic import ValidationError

    v = _need_spec()
    try:
        v.LicenseId(license)
        return license
    except ValidationError:
        pass
    from bioimageio.spec._internal.license_id import LicenseIdLiteral

    ids = [str(i) for i in typing.get_args(LicenseIdLiteral)]
    by_lower = {i.lower(): i for i in ids}
    key = str(license).strip().lower()
    if key in by_lower:
        return by_lower[key]
    longer = [i for i in ids if key and i.lower().startswith(key + "-")]  # GPL-2.0 → GPL-2.0-only, ...
    close = longer[:3] or [by_lower[c] for c in difflib.get_close_matches(key, list(by_lower), n=3, cutoff=0.75)]
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise InputError(
        f"--license {license!r} is not an SPDX licence id that bioimage.io accepts: {hint}use e.g. MIT, "
        f"Apache-2.0, BSD-3-Clause, CC-BY-4.0 or GPL-3.0-only (all ids: https://spdx.org/licenses/)"
    )


def check_test_size(test_size: int | None) -> int | None:
    """``test_size`` (the test tensor's side in pixels; ``None`` = default) if it is a positive integer,
    else a one-line :class:`InputError` (it was silently replaced by the size divisor before)."""
    if test_size is not None and (isinstance(test_size, bool) or int(test_size) != test_size or test_size < 1):
        raise InputError(
            f"--test-size {test_size}: give the test tensor's side in pixels, a positive integer "
            f"(e.g. 64; rounded up to the model's size divisor)"
        )
    return test_size


def seed_citations(config: Any) -> list[tuple[str, str]]:
    """(text, DOI) of the source studies that apply to a ModelConfig: uniform/mirror first layer →
    Molnár et al.; a pruned skip → Wilm et al.; domain-specific registry weights → Kataria et al.;
    a SAM encoder → Kirillov et al.; an encoder file of ``slicewise pretrain`` → its method and steps with
    Conrad & Narayan (CEM500K) (Cheng et al. 2024 has no DOI we can verify offline: it is
    named in the README instead)."""
    out = []
    if config.channel_init in ("uniform", "mirror"):
        out.append(SEED_STUDIES["uniform"])
    if "0" in config.skips:
        out.append(SEED_STUDIES["skips"])
    if str(config.weights).startswith(REGISTRY_DOMAIN_WEIGHTS):
        out.append(SEED_STUDIES["domain"])
    if "sam" in config.encoder.lower():
        out.append(SEED_STUDIES["sam"])
    from slicewise.models.encoder_file import pretrain_citation  # torch: loaded only when exporting

    pretrained = pretrain_citation(config.weights)  # an encoder file of `slicewise pretrain`
    if pretrained is not None:
        out.append(pretrained)
    return out


class _RunData(MetadataModel):
    """The ``data`` fields of a run folder's ``config.yaml`` that an export reads (untrusted: validated)."""

    dz: Annotated[int, Field(strict=True, ge=1)] = 1
    border: Border = "reflect"
    raw: str | None = None
    labels: str | None = None
    synthetic: dict[str, Any] | None = None


class _RunConfig(MetadataModel):
    data: _RunData = _RunData()


def run_settings(model_path: Path | None) -> dict[str, Any]:
    """``dz``, ``border`` and a training-data line from the run folder's ``config.yaml`` next to a model file
    (validated: a bad field is one line naming the file and the field)."""
    if model_path is None or not (model_path.parent / "config.yaml").is_file():
        return {}
    path = model_path.parent / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    fix = "fix the run's config.yaml (or pass --dz / --training-data to export explicitly)"
    data = parse_metadata(_RunConfig, raw, path, fix).data.model_dump()
    if data.get("raw"):
        text = f"raw {Path(str(data['raw'])).name}" + (
            f", labels {Path(str(data['labels'])).name}" if data.get("labels") else ""
        )
    else:
        syn = data.get("synthetic") or {}
        text = f"The slicewise synthetic EM phantom (shape {syn.get('shape')}, seed {syn.get('seed')})"
    return {"dz": int(data.get("dz", 1)), "border": str(data.get("border", "reflect")), "training_data": text}


def channel_names_in(k: int, colors: int, dz: int) -> list[str]:
    """Input channel names: ``z-1, z+0, z+1`` (offsets in slices, × dz), with ``_r/_g/_b`` for RGB slices."""
    r = (k - 1) // 2
    names = []
    for c in range(k):
        off = f"z{(c - r) * dz:+d}"
        names += [off] if colors == 1 else [f"{off}_{ch}" for ch in "rgb"[:colors]]
    return names


def test_stack(
    model: Any, dz: int, border: str, size: int | None, volume: Any = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(volume Z×Y×X(×C) uint8, the centre's stack ``(k·colors, H, W)`` uint8, centre z) for the test tensors."""
    from slicewise.data.stacking import stack_slices
    from slicewise.data.synthetic import make_phantom

    k, colors, d = model.in_slices, int(model.config.colors), model.size_divisor
    side = max(d, -(-(size or 64) // d) * d)
    depth = (k - 1) * dz + 1
    if volume is None:
        vol = make_phantom(shape=(max(depth, 2), side, side), seed=0).raw
        if colors == 3:
            vol = np.repeat(vol[..., None], 3, axis=-1)
    else:
        vol = np.asarray(volume)
        if vol.dtype != np.uint8:
            raise InputError(
                f"test volume must be uint8 (the package's input type), got {vol.dtype}: convert it or omit it"
            )
        if vol.ndim == 2:
            vol = vol[None]
        vol = vol[:, : vol.shape[1] // d * d, : vol.shape[2] // d * d]
        if vol.shape[1] < d or vol.shape[2] < d:
            raise InputError(f"test volume is smaller than the model's size divisor {d}: give a larger one")
    z = min(vol.shape[0] - 1, (k - 1) // 2 * dz)
    stack = np.asarray(stack_slices(vol, z, k, dz, border))
    return vol, stack, z


def cover_image(model: Any, stack: np.ndarray, probs: np.ndarray, path: Path) -> dict[str, Any]:
    """Cover PNG (2:1): centre input slice | predicted classes | attribution slice shares (saliency of
    the class-1 logit summed over the test tile, :func:`slicewise.diagnostics.attribution.attribute`).
    Returns the shares and MA."""
    import torch

    from slicewise.data.stacking import to_unit_float
    from slicewise.diagnostics.asymmetry import mirror_asymmetry
    from slicewise.diagnostics.attribution import attribute, tile_slice_shares
    from slicewise.utils.figures import pyplot

    k, colors = model.in_slices, int(model.config.colors)
    x = torch.from_numpy(to_unit_float(stack)[None])
    a = attribute(model.eval(), x, method="saliency")
    shares = tile_slice_shares(a, k)[0].numpy()
    ma = float(mirror_asymmetry(shares))
    r = (k - 1) // 2
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 6))
    centre = stack[r * colors : (r + 1) * colors]
    axes[0].imshow(centre[0] if colors == 1 else np.moveaxis(centre, 0, -1), cmap="gray")
    axes[0].set_title("input (centre slice)")
    n = model.heads.get("seg", slice(0, model.out_channels))
    seg = probs[n]
    axes[1].imshow(seg.argmax(0) if seg.shape[0] > 1 else seg[0], cmap="viridis", interpolation="nearest")
    axes[1].set_title("prediction")
    for ax in axes[:2]:
        ax.axis("off")
    offs = [c - r for c in range(k)]
    axes[2].bar(range(k), shares, color="tab:blue")
    axes[2].axhline(1.0 / k, color="k", ls="--", lw=0.8)
    axes[2].set_xticks(range(k), [f"{o:+d}" for o in offs])
    axes[2].set_xlabel("slice z-offset")
    axes[2].set_ylabel("attribution share")
    axes[2].set_title(f"slice shares (MA {ma:.3f})")
    axes[2].set_box_aspect(1)
    fig.tight_layout()
    fig.savefig(path, dpi=50, format="png")  # no tight bbox: it would break the 2:1 ratio bioimage.io wants
    plt.close(fig)
    return {"shares": [float(s) for s in shares], "mirror_asymmetry": ma}


def readme_text(
    model: Any,
    name: str,
    dz: int,
    border: str,
    training_data: str | None,
    audit: dict[str, Any],
    cites: Sequence[tuple[str, str]],
    halo: int = 0,
    min_size: int | None = None,
) -> str:
    """The package's README.md: what the input channels are, the preprocessing, the first-layer strategy."""
    from slicewise import __version__

    cfg = model.config
    k, r = model.in_slices, (model.in_slices - 1) // 2
    order = ", ".join(f"channel {c} = slice z{(c - r) * dz:+d}" for c in range(k))
    strategy = {
        "rgb": "pseudo-RGB: the pretrained RGB kernels unchanged (k = 3), per-channel ImageNet mean/std",
        "repeat": "timm adapt_input_conv: W'[:, c] = W[:, c mod 3]·3/k",
        "uniform": "uniform channel initialisation: W'[:, c] = (1/k)·Σ_j W[:, j], so k identical slices give the pretrained gray response",
        "mirror": "mirror-symmetric: W'[:, c] = (V[:, c] + V[:, k−1−c])/2, reversing the slice order never changes the output",
        "random": "first layer re-initialised, the rest pretrained",
    }[cfg.channel_init]
    lines = [
        f"# {name}",
        "",
        f"A 2.5D segmentation network exported by slicewise {__version__} (`slicewise export bioimageio`).",
        "",
        "## Input",
        "",
        (
            f"`{INPUT_ID}`: axes `batch, channel, y, x`, uint8. The channel axis holds the k = {k} slices of a 2.5D "
            f"stack around the centre slice z ({cfg.colors} colour channel(s) per slice, slice-major): {order}. "
            f"dz = {dz} (z-step between the context slices); at the volume ends slicewise uses `{border}` borders "
            "(mirror without repeating the edge slice for `reflect`). Height and width must be multiples of "
            f"{model.size_divisor}" + (f", at least {min_size}." if min_size else ".")
        ),
        "",
        *(
            [
                (
                    f"Tiling: the output declares a halo of {halo} px on y and x. A consumer that tiles a large image "
                    f"(bioimageio.core, ilastik, deepImageJ) crops {halo} px from each side of every tile's output, so each "
                    f"pixel it keeps saw at least {halo} px of context on every side, as in slicewise's own tiling at its "
                    "defaults (tile 256, overlap 0.25, Gaussian blending: the tile that weighs most for a pixel has it at "
                    f"least 32 px inside its edges). At the image border the consumer pads the input by {halo} px "
                    "(bioimage.io's default symmetric padding), which slicewise does not do: predictions within the halo "
                    "of the image border differ from slicewise's more than elsewhere."
                ),
                "",
            ]
            if halo
            else []
        ),
        (
            "Preprocessing: uint8 / 255 → [0, 1] (`scale_linear`, gain 1/255). The mean/std normalisation of the "
            "encoder happens inside the network; do not normalise the input."
        ),
        "",
        "## Network",
        "",
        (
            f"Encoder `{cfg.encoder}` (initial weights `{cfg.weights}`), U-Net decoder {list(cfg.decoder_channels)}, "
            f"skip mask `{cfg.skips}` (top-down, L1 = stride 2 first; 0 = pruned)."
        ),
        "",
        f"First-layer strategy `{cfg.channel_init}`: {strategy}.",
        "",
        "## Output",
        "",
        (
            f"`{OUTPUT_ID}`: axes `batch, channel, y, x`, float32, channels {', '.join(cfg.channel_names)}: softmax "
            "over the segmentation classes, sigmoid for a boundary head, raw value for a distance head. slicewise "
            "predicts whole volumes by sliding this over every centre slice with Gaussian-blended overlapping tiles "
            "(`slicewise predict PACKAGE.zip volume.tif out.zarr`)."
        ),
        "",
        "## Attribution audit (test tensor)",
        "",
        "Saliency slice shares of the class-1 logit over the test tile (z-offset: share): "
        + ", ".join(f"{c - r:+d}: {s:.3f}" for c, s in enumerate(audit["shares"]))
        + f"; mirror asymmetry MA = {audit['mirror_asymmetry']:.3f} (0 = symmetric).",
        "",
        "## Training data",
        "",
        training_data or "Not recorded (export from a run folder's best.pt, or pass training_data).",
        "",
        "## References",
        "",
    ]
    lines += [f"- {text} doi:{doi}" for text, doi in cites]
    if "sam" in cfg.encoder.lower():
        lines.append(f"- {CHENG_2024}")
    return "\n".join(lines) + "\n"


def _torchscript(wrapper: Any, x: Any, expected: Any, path: Path) -> bool:
    """Trace ``wrapper`` on ``x`` and save it when the traced output matches ``expected``; False otherwise."""
    import warnings

    import torch

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapper, x, check_trace=False)
            ok = torch.allclose(traced(x), expected, atol=1e-5, rtol=1e-4)
        if ok:
            traced.save(str(path))
        return bool(ok)
    except Exception as err:  # noqa: BLE001  (tracing is best effort: data-dependent control flow etc.)
        log.info("TorchScript tracing failed (%s): exporting state-dict weights only", type(err).__name__)
        return False


def export_bioimageio(
    model: Any,
    output: str | Path,
    *,
    name: str | None = None,
    description: str | None = None,
    authors: Sequence[str] | None = None,
    license: str = "MIT",
    dz: int | None = None,
    border: str | None = None,
    training_data: str | None = None,
    cite: Sequence[tuple[str, str]] = (),
    tags: Sequence[str] = (),
    test_volume: Any = None,
    test_size: int | None = None,
    torchscript: bool = True,
    overwrite: bool = False,
    halo: int | None = None,
) -> Path:
    """Write a bioimage.io model package (zip, format 0.5) of a slicewise model; returns its path.

    ``model``: a SegmentationModel or a model file (``dz``, ``border`` and the training data are
    then read from the run folder's ``config.yaml`` when present; explicit arguments win).
    ``authors``: names (default: the current user). ``cite``: extra (text, DOI) pairs, e.g. the
    training data's paper; the seed studies that apply are added (:func:`seed_citations`).
    ``test_volume``: uint8 Z×Y×X(×C) to cut the test tensor from (default: the EM phantom);
    ``test_size``: its side in pixels (default 64, rounded up to the size divisor and to the minimum input size).
    ``halo``: output halo in pixels declared for tiling consumers (default :data:`HALO`; 0 declares none).
    """
    from slicewise.utils.atomic import atomic_path, check_output_path
    from slicewise.utils.inputs import check_model_file

    # cheap checks first: before torch is imported, the model loaded or any tensor computed
    if isinstance(model, (str, Path)):
        check_model_file(model)
    out = Path(output)
    if out.suffix.lower() != ".zip":
        raise InputError(f"bioimage.io package {out} must end in .zip: e.g. {out.with_suffix('.zip').name}")
    check_output_path(out, overwrite=overwrite, inputs=(model,), kind="file")
    check_test_size(test_size)
    license = check_license(license)  # imports bioimageio.spec (a few seconds)
    import torch

    v = _need_spec()
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec._internal.validation_context import ValidationContext
    from pydantic import ValidationError

    from slicewise import __version__
    from slicewise.export.architecture import SlicewiseNetwork
    from slicewise.infer.predict import predict
    from slicewise.models import load_model

    model_path = None
    if isinstance(model, (str, Path)):
        model_path = Path(model)
        model = load_model(model_path)
    model = model.cpu().eval()
    run = run_settings(model_path)
    pkg_info = getattr(model, "package", None) or {}
    dz = int(dz if dz is not None else run.get("dz", pkg_info.get("dz", 1)))
    border = border or run.get("border", pkg_info.get("border", "reflect"))
    if border == "skip":
        border = "reflect"
    training_data = training_data or run.get("training_data")
    cfg = model.config
    name = name or re.sub(r"[^A-Za-z0-9_+\- ()]", "-", f"slicewise {cfg.encoder} {cfg.channel_init} k{model.in_slices}")
    k, colors = model.in_slices, int(cfg.colors)
    cites = [*seed_citations(cfg), *cite]

    d = model.size_divisor
    h, min_size = tiling_sizes(d, HALO if halo is None else halo)
    vol, stack, z = test_stack(model, dz, border, max(test_size or 64, min_size), test_volume)
    side_h, side_w = stack.shape[-2:]
    if min(side_h, side_w) < min_size:
        raise InputError(
            f"test volume {side_h}x{side_w} is smaller than the package's minimum input {min_size} px "
            f"(2 × halo {h} + the size divisor {d}): give a larger one"
        )
    # bioimage.io's test runs the network on the test input as it is (no halo padding, no cropping)
    probs = predict(
        model,
        vol,
        roi=(slice(z, z + 1),),
        tile=(side_h, side_w),
        overlap=0.0,
        dz=dz,
        border=border,
        device="cpu",
        k=k,
        progress=False,
    )[:, 0]
    arch_cfg = {**cfg.model_dump(mode="json"), "weights": "random"}
    wrapper = SlicewiseNetwork(model_config=arch_cfg)
    wrapper.net.load_state_dict(model.state_dict())
    wrapper.eval()
    x = torch.from_numpy(stack[None].astype(np.float32) / 255.0)
    with torch.no_grad():
        direct = wrapper(x)
    if not np.allclose(direct.numpy()[0], probs, atol=1e-4):
        raise InputError(
            "the exported network does not reproduce slicewise's prediction on the test tensor: report this as a bug"
        )

    with tempfile.TemporaryDirectory(prefix=".slicewise-bmz-") as tmpdir:
        root = Path(tmpdir)
        torch.save(wrapper.state_dict(), root / WEIGHTS_FILE)
        shutil.copy(Path(__file__).with_name("architecture.py"), root / ARCH_FILE)
        np.save(root / "test_input.npy", stack[None].astype(np.uint8))
        np.save(root / "test_output.npy", probs[None].astype(np.float32))
        has_ts = torchscript and _torchscript(wrapper, x, direct, root / TORCHSCRIPT_FILE)
        audit = cover_image(model, stack, probs, root / "cover.png")
        (root / "README.md").write_text(
            readme_text(model, name, dz, border, training_data, audit, cites, halo=h, min_size=min_size)
        )

        ch_in = v.ChannelAxis(channel_names=channel_names_in(k, colors, dz))
        inp = v.InputTensorDescr(
            id=v.TensorId(INPUT_ID),
            description=f"2.5D stack of k={k} slices (dz={dz}) as channels, uint8",
            axes=[
                v.BatchAxis(),
                ch_in,
                v.SpaceInputAxis(id=v.AxisId("y"), size=v.ParameterizedSize(min=min_size, step=d)),
                v.SpaceInputAxis(id=v.AxisId("x"), size=v.ParameterizedSize(min=min_size, step=d)),
            ],
            test_tensor=v.FileDescr(source=root / "test_input.npy"),
            data=v.IntervalOrRatioDataDescr(type="uint8", range=(0, 255)),
            preprocessing=[
                v.EnsureDtypeDescr(kwargs=v.EnsureDtypeKwargs(dtype="float32")),
                v.ScaleLinearDescr(kwargs=v.ScaleLinearKwargs(gain=1.0 / 255.0, offset=0.0)),
                v.EnsureDtypeDescr(kwargs=v.EnsureDtypeKwargs(dtype="float32")),
            ],
        )
        out_descr = v.OutputTensorDescr(
            id=v.TensorId(OUTPUT_ID),
            description="class probabilities (softmax), then extra heads (boundary: sigmoid, distance: raw)",
            axes=[
                v.BatchAxis(),
                v.ChannelAxis(channel_names=list(cfg.channel_names)),
                *(
                    v.SpaceOutputAxisWithHalo(
                        id=v.AxisId(a),
                        halo=h,
                        size=v.SizeReference(tensor_id=v.TensorId(INPUT_ID), axis_id=v.AxisId(a)),
                    )
                    if h
                    else v.SpaceOutputAxis(
                        id=v.AxisId(a), size=v.SizeReference(tensor_id=v.TensorId(INPUT_ID), axis_id=v.AxisId(a))
                    )
                    for a in ("y", "x")
                ),
            ],
            test_tensor=v.FileDescr(source=root / "test_output.npy"),
            data=v.IntervalOrRatioDataDescr(type="float32"),
        )
        pt_version = v.Version(torch.__version__.split("+")[0])
        weights = v.WeightsDescr(
            pytorch_state_dict=v.PytorchStateDictWeightsDescr(
                source=root / WEIGHTS_FILE,
                architecture=v.ArchitectureFromFileDescr(
                    source=root / ARCH_FILE, callable=v.Identifier(ARCH_CALLABLE), kwargs={"model_config": arch_cfg}
                ),
                pytorch_version=pt_version,
            ),
            **(
                {
                    "torchscript": v.TorchscriptWeightsDescr(
                        source=root / TORCHSCRIPT_FILE, pytorch_version=pt_version, parent="pytorch_state_dict"
                    )
                }
                if has_ts
                else {}
            ),
        )
        auto_tags = [
            "slicewise",
            "2.5d",
            "electron-microscopy",
            "segmentation",
            "unet",
            "pytorch",
            cfg.encoder.lower(),
            f"channel-init-{cfg.channel_init}",
        ]
        user = authors or [getpass.getuser() or "slicewise user"]
        with ValidationContext(root=root, perform_io_checks=True):
            try:
                descr = v.ModelDescr(
                    name=name,
                    description=description
                    or (
                        f"2.5D {cfg.encoder} U-Net (k={k} slices as channels, dz={dz}, first layer "
                        f"{cfg.channel_init}, skips {cfg.skips}) for {', '.join(cfg.channel_names)}."
                    ),
                    authors=[v.Author(name=a) for a in user],
                    packaged_by=[v.Author(name=f"slicewise {__version__}")],
                    cite=[v.CiteEntry(text=t, doi=v.Doi(doi)) for t, doi in cites],
                    license=v.LicenseId(license),
                    tags=list(dict.fromkeys([*auto_tags, *tags])),
                    documentation=v.FileDescr(source=root / "README.md"),
                    covers=[v.FileDescr(source=root / "cover.png")],
                    inputs=[inp],
                    outputs=[out_descr],
                    weights=weights,
                    config=v.Config(
                        slicewise={
                            "model_config": cfg.model_dump(mode="json"),
                            "dz": dz,
                            "border": border,
                            "k": k,
                            "slicewise_version": __version__,
                            "attribution": audit,
                        }
                    ),
                )
            except ValidationError as err:
                first = err.errors()[0]
                msg = " ".join(str(first["msg"]).split())
                msg = msg if len(msg) <= 200 else msg[:197] + "..."  # a Literal's message lists every allowed value
                raise InputError(
                    f"bioimage.io description is invalid at {'.'.join(map(str, first['loc']))}: {msg}: fix that option"
                ) from None
        with atomic_path(out, overwrite=overwrite) as tmp:
            save_bioimageio_package(descr, output_path=tmp)
    log.info("wrote bioimage.io package %s", out)
    return out


def test_package(path: str | Path) -> str:
    """Run bioimage.io's own test (``bioimageio.core.test_description``) on a package; returns its status
    (``"passed"``, ``"valid-format"`` or ``"failed"``). The package holds no URLs, so this stays offline."""
    try:
        from bioimageio.core import test_description
    except ImportError:
        raise InputError("testing a package needs bioimageio.core: pip install 'slicewise[bioimageio]'") from None
    summary = test_description(str(path))
    return str(summary.status)
