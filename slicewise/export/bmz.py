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
  ``README.md`` (slice order, dz, first-layer strategy, training data; rendered from the Jinja2 template
  ``templates/README.md.j2``).

Decisions: the package's input is the raw uint8 stack (axes ``batch, channel, y, x``; channel
``c`` = slice ``z + (c − r)·dz``, color channels of a slice adjacent); its preprocessing is
``scale_linear`` with gain 1/255 (slicewise's ``to_unit_float``) and the mean/std
normalization stays inside the network, as in slicewise. The output is probabilities (the
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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from slicewise import __version__
from slicewise.config import FIRST_LAYER_STRATEGIES
from slicewise.data.io.outputs import atomic_path
from slicewise.data.stacking import stack_slices, to_unit_float
from slicewise.data.synthetic import make_phantom
from slicewise.diagnostics.asymmetry import mirror_asymmetry
from slicewise.diagnostics.attribution import attribute, tile_slice_shares
from slicewise.errors import InputError
from slicewise.export.architecture import SlicewiseNetwork
from slicewise.export.options import check_license, check_target, check_test_size, need_spec, run_settings
from slicewise.infer.predict import predict
from slicewise.models.build import load_model
from slicewise.models.encoder_file import pretrain_citation
from slicewise.utils.figures import pyplot

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
            "microscopy image segmentation (uniform channel initialization). arXiv 2505.14105 (2025)."
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


def seed_citations(config: Any) -> list[tuple[str, str]]:
    """(text, DOI) of the source studies that apply to a ModelConfig: uniform/mirror first layer →
    Molnár et al.; a pruned skip → Wilm et al.; domain-specific registry weights → Kataria et al.;
    a SAM encoder → Kirillov et al.; an encoder file of ``slicewise pretrain`` → its method and steps with
    Conrad & Narayan (CEM500K) (Cheng et al. 2024 has no DOI we can verify offline: it is
    named in the README instead)."""
    out = []
    if FIRST_LAYER_STRATEGIES[config.channel_init].equal_slices:
        out.append(SEED_STUDIES["uniform"])
    if "0" in config.skips:
        out.append(SEED_STUDIES["skips"])
    if str(config.weights).startswith(REGISTRY_DOMAIN_WEIGHTS):
        out.append(SEED_STUDIES["domain"])
    if "sam" in config.encoder.lower():
        out.append(SEED_STUDIES["sam"])
    pretrained = pretrain_citation(config.weights)  # an encoder file of `slicewise pretrain`
    if pretrained is not None:
        out.append(pretrained)
    return out


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


def _torchscript(wrapper: Any, x: Any, expected: Any, path: Path) -> bool:
    """Trace ``wrapper`` on ``x`` and save it when the traced output matches ``expected``; False otherwise."""
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


def _template_env() -> Any:
    """The Jinja2 environment of the package's text files (``templates/`` of this package, plain text)."""
    from jinja2 import Environment, PackageLoader

    return Environment(loader=PackageLoader("slicewise.export", "templates"), keep_trailing_newline=True)


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
    """The package's README.md (template ``templates/README.md.j2``): what the input channels are, the
    preprocessing, the first-layer strategy, the test tensor's attribution audit, the training data, references."""
    cfg = model.config
    k, r = model.in_slices, (model.in_slices - 1) // 2
    return (
        _template_env()
        .get_template("README.md.j2")
        .render(
            name=name,
            version=__version__,
            input_id=INPUT_ID,
            output_id=OUTPUT_ID,
            cfg=cfg,
            k=k,
            order=", ".join(f"channel {c} = slice z{(c - r) * dz:+d}" for c in range(k)),
            dz=dz,
            border=border,
            size_divisor=model.size_divisor,
            min_size=min_size,
            halo=halo,
            decoder_channels=list(cfg.decoder_channels),
            strategy=FIRST_LAYER_STRATEGIES[cfg.channel_init].doc,
            shares=", ".join(f"{c - r:+d}: {s:.3f}" for c, s in enumerate(audit["shares"])),
            audit=audit,
            training_data=training_data,
            cites=list(cites),
            sam="sam" in cfg.encoder.lower(),
            cheng=CHENG_2024,
        )
    )


@dataclass
class _Export:
    """The resolved settings of one export: the model (CPU, eval), package name, 2.5D settings, training-data
    line, citations, and the tiling sizes (halo, minimum input side, size divisor)."""

    model: Any
    name: str
    dz: int
    border: str
    training_data: str | None
    cites: list[tuple[str, str]]
    halo: int
    min_size: int

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def k(self) -> int:
        return int(self.model.in_slices)

    @property
    def divisor(self) -> int:
        return int(self.model.size_divisor)


def _resolve(
    model: Any,
    name: str | None,
    dz: int | None,
    border: str | None,
    training_data: str | None,
    cite: Sequence[tuple[str, str]],
    halo: int | None,
) -> _Export:
    """Load the model (a file: also its run folder's settings) and resolve name, dz, border, training data,
    citations and tiling sizes; explicit arguments win over the run's settings, which win over a package's."""
    model_path = None
    if isinstance(model, (str, Path)):
        model_path = Path(model)
        model = load_model(model_path)
    model = model.cpu().eval()
    run = run_settings(model_path)
    pkg_info = getattr(model, "package", None) or {}
    dz = int(dz if dz is not None else run.get("dz", pkg_info.get("dz", 1)))
    border = border or run.get("border", pkg_info.get("border", "reflect"))
    cfg = model.config
    default_name = f"slicewise {cfg.encoder} {cfg.channel_init} k{model.in_slices}"
    halo_px, min_size = tiling_sizes(model.size_divisor, HALO if halo is None else halo)
    return _Export(
        model=model,
        name=name or re.sub(r"[^A-Za-z0-9_+\- ()]", "-", default_name),
        dz=dz,
        border="reflect" if border == "skip" else border,
        training_data=training_data or run.get("training_data"),
        cites=[*seed_citations(cfg), *cite],
        halo=halo_px,
        min_size=min_size,
    )


def _test_tensors(ex: _Export, test_size: int | None, test_volume: Any) -> tuple[np.ndarray, np.ndarray]:
    """(test input ``(k·colors, H, W)`` uint8, slicewise's prediction of it ``(C, H, W)`` float32).

    bioimage.io's test runs the network on the test input as it is (no halo padding, no cropping), so the
    expected output is slicewise's prediction of the centre slice with one tile covering it."""
    vol, stack, z = test_stack(ex.model, ex.dz, ex.border, max(test_size or 64, ex.min_size), test_volume)
    side_h, side_w = stack.shape[-2:]
    if min(side_h, side_w) < ex.min_size:
        raise InputError(
            f"test volume {side_h}x{side_w} is smaller than the package's minimum input {ex.min_size} px "
            f"(2 × halo {ex.halo} + the size divisor {ex.divisor}): give a larger one"
        )
    probs = predict(
        ex.model,
        vol,
        roi=(slice(z, z + 1),),
        tile=(side_h, side_w),
        overlap=0.0,
        dz=ex.dz,
        border=ex.border,
        device="cpu",
        k=ex.k,
        progress=False,
    )[:, 0]
    return stack, probs


def _network(ex: _Export, stack: np.ndarray, probs: np.ndarray) -> tuple[SlicewiseNetwork, Any, Any]:
    """(the exported network with the model's weights, its test input as a float tensor, its output), checked
    to reproduce slicewise's prediction of the test input."""
    wrapper = SlicewiseNetwork(model_config={**ex.config.model_dump(mode="json"), "weights": "random"})
    wrapper.net.load_state_dict(ex.model.state_dict())
    wrapper.eval()
    x = torch.from_numpy(stack[None].astype(np.float32) / 255.0)
    with torch.no_grad():
        direct = wrapper(x)
    if not np.allclose(direct.numpy()[0], probs, atol=1e-4):
        raise InputError(
            "the exported network does not reproduce slicewise's prediction on the test tensor: report this as a bug"
        )
    return wrapper, x, direct


def _input_descr(v: Any, root: Path, ex: _Export) -> Any:
    """The input tensor: the raw uint8 2.5D stack, scaled to [0, 1] by the consumer."""
    size = v.ParameterizedSize(min=ex.min_size, step=ex.divisor)
    return v.InputTensorDescr(
        id=v.TensorId(INPUT_ID),
        description=f"2.5D stack of k={ex.k} slices (dz={ex.dz}) as channels, uint8",
        axes=[
            v.BatchAxis(),
            v.ChannelAxis(channel_names=channel_names_in(ex.k, int(ex.config.colors), ex.dz)),
            v.SpaceInputAxis(id=v.AxisId("y"), size=size),
            v.SpaceInputAxis(id=v.AxisId("x"), size=size),
        ],
        test_tensor=v.FileDescr(source=root / "test_input.npy"),
        data=v.IntervalOrRatioDataDescr(type="uint8", range=(0, 255)),
        preprocessing=[
            v.EnsureDtypeDescr(kwargs=v.EnsureDtypeKwargs(dtype="float32")),
            v.ScaleLinearDescr(kwargs=v.ScaleLinearKwargs(gain=1.0 / 255.0, offset=0.0)),
            v.EnsureDtypeDescr(kwargs=v.EnsureDtypeKwargs(dtype="float32")),
        ],
    )


def _output_descr(v: Any, root: Path, ex: _Export) -> Any:
    """The output tensor: probabilities per class name, with the tiling halo on y and x (none when 0)."""

    def space(a: str) -> Any:
        size = v.SizeReference(tensor_id=v.TensorId(INPUT_ID), axis_id=v.AxisId(a))
        if ex.halo:
            return v.SpaceOutputAxisWithHalo(id=v.AxisId(a), halo=ex.halo, size=size)
        return v.SpaceOutputAxis(id=v.AxisId(a), size=size)

    return v.OutputTensorDescr(
        id=v.TensorId(OUTPUT_ID),
        description="class probabilities (softmax), then extra heads (boundary: sigmoid, distance: raw)",
        axes=[v.BatchAxis(), v.ChannelAxis(channel_names=list(ex.config.channel_names)), space("y"), space("x")],
        test_tensor=v.FileDescr(source=root / "test_output.npy"),
        data=v.IntervalOrRatioDataDescr(type="float32"),
    )


def _weights_descr(v: Any, root: Path, arch_cfg: dict[str, Any], torchscript: bool) -> Any:
    """The state-dict weights with their architecture source, and the TorchScript copy when there is one."""
    pt_version = v.Version(torch.__version__.split("+")[0])
    extra = {}
    if torchscript:
        extra["torchscript"] = v.TorchscriptWeightsDescr(
            source=root / TORCHSCRIPT_FILE, pytorch_version=pt_version, parent="pytorch_state_dict"
        )
    return v.WeightsDescr(
        pytorch_state_dict=v.PytorchStateDictWeightsDescr(
            source=root / WEIGHTS_FILE,
            architecture=v.ArchitectureFromFileDescr(
                source=root / ARCH_FILE, callable=v.Identifier(ARCH_CALLABLE), kwargs={"model_config": arch_cfg}
            ),
            pytorch_version=pt_version,
        ),
        **extra,
    )


def _model_descr(v: Any, root: Path, ex: _Export, parts: dict[str, Any], **meta: Any) -> Any:
    """The ``ModelDescr`` (validated with its files under ``root``); ``parts``: inputs, outputs, weights and the
    cover's attribution audit; ``meta``: description, authors, license, tags. An invalid field is one line."""
    from bioimageio.spec._internal.validation_context import ValidationContext

    cfg = ex.config
    auto_tags = ["slicewise", "2.5d", "electron-microscopy", "segmentation", "unet", "pytorch"]
    auto_tags += [cfg.encoder.lower(), f"channel-init-{cfg.channel_init}"]
    description = meta["description"] or (
        f"2.5D {cfg.encoder} U-Net (k={ex.k} slices as channels, dz={ex.dz}, first layer "
        f"{cfg.channel_init}, skips {cfg.skips}) for {', '.join(cfg.channel_names)}."
    )
    block = {"model_config": cfg.model_dump(mode="json"), "dz": ex.dz, "border": ex.border, "k": ex.k}
    block.update(slicewise_version=__version__, attribution=parts["audit"])
    with ValidationContext(root=root, perform_io_checks=True):
        try:
            return v.ModelDescr(
                name=ex.name,
                description=description,
                authors=[v.Author(name=a) for a in meta["authors"] or [getpass.getuser() or "slicewise user"]],
                packaged_by=[v.Author(name=f"slicewise {__version__}")],
                cite=[v.CiteEntry(text=t, doi=v.Doi(doi)) for t, doi in ex.cites],
                license=v.LicenseId(meta["license"]),
                tags=list(dict.fromkeys([*auto_tags, *meta["tags"]])),
                documentation=v.FileDescr(source=root / "README.md"),
                covers=[v.FileDescr(source=root / "cover.png")],
                inputs=[parts["input"]],
                outputs=[parts["output"]],
                weights=parts["weights"],
                config=v.Config(slicewise=block),
            )
        except ValidationError as err:
            first = err.errors()[0]
            msg = " ".join(str(first["msg"]).split())
            msg = msg if len(msg) <= 200 else msg[:197] + "..."  # a Literal's message lists every allowed value
            raise InputError(
                f"bioimage.io description is invalid at {'.'.join(map(str, first['loc']))}: {msg}: fix that option"
            ) from None


def _write_files(root: Path, ex: _Export, stack: np.ndarray, probs: np.ndarray, torchscript: bool) -> dict[str, Any]:
    """Write the package's files into ``root`` (weights, architecture, test tensors, TorchScript copy, cover,
    README); returns the network's architecture kwargs, whether TorchScript was written, and the cover's audit."""
    wrapper, x, direct = _network(ex, stack, probs)
    torch.save(wrapper.state_dict(), root / WEIGHTS_FILE)
    shutil.copy(Path(__file__).with_name("architecture.py"), root / ARCH_FILE)
    np.save(root / "test_input.npy", stack[None].astype(np.uint8))
    np.save(root / "test_output.npy", probs[None].astype(np.float32))
    has_ts = torchscript and _torchscript(wrapper, x, direct, root / TORCHSCRIPT_FILE)
    audit = cover_image(ex.model, stack, probs, root / "cover.png")
    readme = readme_text(
        ex.model, ex.name, ex.dz, ex.border, ex.training_data, audit, ex.cites, halo=ex.halo, min_size=ex.min_size
    )
    (root / "README.md").write_text(readme)
    arch_cfg = {**ex.config.model_dump(mode="json"), "weights": "random"}
    return {"arch_cfg": arch_cfg, "torchscript": has_ts, "audit": audit}


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
    out = check_target(model, output, overwrite)  # cheap checks first: before the model is loaded
    check_test_size(test_size)
    license = check_license(license)  # imports bioimageio.spec (a few seconds)
    v = need_spec()
    from bioimageio.spec import save_bioimageio_package

    ex = _resolve(model, name, dz, border, training_data, cite, halo)
    stack, probs = _test_tensors(ex, test_size, test_volume)
    with tempfile.TemporaryDirectory(prefix=".slicewise-bmz-") as tmpdir:
        root = Path(tmpdir)
        files = _write_files(root, ex, stack, probs, torchscript)
        parts = {
            "input": _input_descr(v, root, ex),
            "output": _output_descr(v, root, ex),
            "weights": _weights_descr(v, root, files["arch_cfg"], files["torchscript"]),
            "audit": files["audit"],
        }
        descr = _model_descr(v, root, ex, parts, description=description, authors=authors, license=license, tags=tags)
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
