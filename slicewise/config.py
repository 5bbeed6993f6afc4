"""Validated configuration (pydantic): model, data, training.

Every config class forbids unknown keys. :func:`validate` turns pydantic's report into one
line naming the key and what is allowed. YAML files and ``key=value`` CLI overrides go
through :func:`load_config`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from slicewise.data.augment_config import AugmentConfig
from slicewise.data.io.formats import channel_name
from slicewise.data.io.outputs import atomic_path
from slicewise.data.labelmap import parse_label_map
from slicewise.data.stacking import Border
from slicewise.errors import ConfigError, InputError
from slicewise.utils.inputs import check_input_path
from slicewise.utils.validation import validation_line


@dataclass(frozen=True)
class FirstLayerStrategy:
    """One first-layer channel strategy (how a 3-channel pretrained first layer takes k slices), without torch.

    ``doc``: what it does, one line (an exported bioimage.io README quotes it);
    ``per_channel_norm``: the encoder's per-channel mean/std (else one value per color);
    ``mirrored``: trained symmetric over slice reversal; ``equal_slices``: starts with the same kernel for every
    slice (the slice-symmetric strategies of the uniform-initialization study); ``reinit``: the first layer is
    re-initialized as the architecture initializes it; ``needs_three``: only for k·colors = 3, whose input channels
    are then the pretrained R, G, B. The weight rules that go with each name are
    :data:`slicewise.models.channels.STRATEGIES` (torch).
    """

    name: str
    doc: str
    per_channel_norm: bool = False
    mirrored: bool = False
    equal_slices: bool = False
    reinit: bool = False
    needs_three: bool = False


#: THE first-layer strategy table: every list of strategy names or descriptions derives from it.
FIRST_LAYER_STRATEGIES: dict[str, FirstLayerStrategy] = {
    s.name: s
    for s in (
        FirstLayerStrategy(
            "rgb",
            "pseudo-RGB: the pretrained RGB kernels unchanged (k·colors = 3), per-channel mean/std as pretrained",
            per_channel_norm=True,
            needs_three=True,
        ),
        FirstLayerStrategy("repeat", "timm adapt_input_conv: W'[:, c] = W[:, c mod 3]·3/k"),
        FirstLayerStrategy(
            "uniform",
            "uniform channel initialization: W'[:, c] = (1/k)·Σ_j W[:, j], so k identical slices give the pretrained "
            "gray response",
            equal_slices=True,
        ),
        FirstLayerStrategy(
            "mirror",
            "mirror-symmetric: uniform, trained as W'[:, c] = (V[:, c] + V[:, k−1−c])/2, so reversing the slice "
            "order never changes the output",
            mirrored=True,
            equal_slices=True,
        ),
        FirstLayerStrategy(
            "random", "first layer re-initialized as the architecture initializes it, the rest pretrained", reinit=True
        ),
    )
}
STRATEGY_NAMES: tuple[str, ...] = tuple(FIRST_LAYER_STRATEGIES)
#: the strategy names for help texts, "rgb, repeat, uniform, mirror or random"
STRATEGY_CHOICES: str = ", ".join(STRATEGY_NAMES[:-1]) + " or " + STRATEGY_NAMES[-1]
ChannelInit = Literal[STRATEGY_NAMES]  # type: ignore[valid-type]
Head = Literal["boundary", "distance"]


def _at_least(n: int) -> AfterValidator:
    def check(v: int) -> int:
        if v < n:
            raise ValueError(f"must be >= {n}")
        return v

    return AfterValidator(check)


PosInt = Annotated[int, _at_least(1)]
NonNegInt = Annotated[int, _at_least(0)]


def _nonneg_float(v: float) -> float:
    if not v >= 0:  # also refuses NaN
        raise ValueError("must be >= 0")
    return v


def _seed(v: int) -> int:
    if not 0 <= v < 2**32:
        raise ValueError("must be an integer in [0, 2^32)")
    return v


NonNegFloat = Annotated[float, AfterValidator(_nonneg_float)]
Seed = Annotated[int, AfterValidator(_seed)]


def _square(v: Any) -> Any:
    return (v, v) if isinstance(v, int) else v


def _positive_patch(v: tuple[int, int]) -> tuple[int, int]:
    if min(v) < 1:
        raise ValueError("must be positive (height, width) in pixels")
    return v


def _slice_range(v: tuple[int, int] | None) -> tuple[int, int] | None:
    if v is not None and not 0 <= v[0] < v[1]:
        raise ValueError("must be [start, stop) slice indices with 0 <= start < stop")
    return v


# (height, width) in pixels; one int means a square
PatchSize = Annotated[tuple[int, int], BeforeValidator(_square), AfterValidator(_positive_patch)]
# [start, stop) slice indices, or None
SliceRange = Annotated[tuple[int, int] | None, AfterValidator(_slice_range)]


def _odd_slices(v: int) -> int:
    if v < 1 or v % 2 == 0:
        raise ValueError("must be a positive odd number (1, 3, 5, ...)")
    return v


def _colors(v: int) -> int:
    if v not in (1, 3):
        raise ValueError("must be 1 (grayscale) or 3 (RGB)")
    return v


def _positive(v: float) -> float:
    if not v > 0:
        raise ValueError("must be > 0")
    return v


def _betas(v: tuple[float, float]) -> tuple[float, float]:
    if not all(0.0 <= b < 1.0 for b in v):
        raise ValueError("must both be in [0, 1)")
    return v


def _grad_clip(v: float | None) -> float | None:
    if v is not None and not v > 0:
        raise ValueError("must be > 0, or null for no clipping")
    return v


# k, the number of stacked slices: odd, so that there is a centre slice
OddSlices = Annotated[int, AfterValidator(_odd_slices)]
# color channels per slice: 1 (grayscale) or 3 (RGB)
Colors = Annotated[int, AfterValidator(_colors)]
# a learning rate (also refuses NaN)
LearningRate = Annotated[float, AfterValidator(_positive)]
# Adam's (beta1, beta2), each in [0, 1)
Betas = Annotated[tuple[float, float], AfterValidator(_betas)]
# gradient-norm clipping: > 0, or None for none
GradClip = Annotated[float | None, AfterValidator(_grad_clip)]


def label_map_field(v: Any, flag: str) -> Any:
    """A label-map config value through the one parser (:func:`slicewise.data.labelmap.parse_label_map`): a raw
    value given twice (``{0: 1, "0": 0}``) is refused, never "last wins"."""
    if v is None or not isinstance(v, (dict, str)):
        return v  # None, or a wrong type pydantic names
    try:
        return parse_label_map(v, flag)
    except InputError as err:
        raise ValueError(str(err)) from None


class StrictModel(BaseModel):
    """Base for all configs: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class ModelConfig(StrictModel):
    """Everything needed to rebuild a segmentation network (saved inside every checkpoint).

    ``skips``: one character per decoder level, top-down (L1 = uppermost, highest resolution,
    first), "1" keeps the skip connection, "0" prunes it; "0111" is the L1-pruned U-Net.
    ``colors``: color channels per slice (1 for grayscale EM, 3 for RGB histopathology); the
    network takes ``in_slices · colors`` input channels, slice-major.
    ``weights``: "imagenet", "random", a registry name (see ``slicewise.models.weights``) or a
    path to a local .pth/.safetensors checkpoint.
    ``class_names``: one name per class (e.g. ``["background", "membrane"]``); outputs, reports and
    OME-Zarr channel labels use them. Default ``class0 … class<N-1>``.
    """

    encoder: str = "tf_efficientnet_lite0"
    weights: str = "imagenet"
    in_slices: OddSlices = 3
    colors: Colors = 1
    channel_init: ChannelInit = "uniform"
    skips: str = "1111"
    classes: PosInt = 2
    class_names: tuple[str, ...] | None = None
    decoder_channels: tuple[PosInt, ...] = (256, 128, 64, 32, 16)
    decoder_norm: Literal["batch", "group", "instance", "none"] = "batch"
    extra_heads: tuple[Head, ...] = ()
    img_size: PosInt | None = None

    @model_validator(mode="after")
    def _names_match_classes(self) -> ModelConfig:
        if self.class_names is not None:
            if len(self.class_names) != self.classes:
                raise ValueError(
                    f"class_names has {len(self.class_names)} names but classes is {self.classes}: "
                    "give one name per class"
                )
            if len(set(self.class_names)) != len(self.class_names) or not all(str(n).strip() for n in self.class_names):
                raise ValueError("class_names must be distinct, non-empty names")
        return self

    @property
    def channel_names(self) -> list[str]:
        """Names of the output channels: the class names (or ``class<i>``), then the extra heads."""
        names = list(self.class_names) if self.class_names else [channel_name(i) for i in range(self.classes)]
        return names + [str(h) for h in self.extra_heads]

    @field_validator("skips")
    @classmethod
    def _skips(cls, v: str) -> str:
        if not v or set(v) - {"0", "1"}:
            raise ValueError("must be a string of 0/1 per decoder level, top-down, e.g. '1111' or '0111'")
        return v


class SyntheticDataConfig(StrictModel):
    """The seeded EM phantom (:func:`slicewise.data.make_phantom`): 3 classes (0 cytoplasm,
    1 membrane, 2 mitochondrion); its ``cells`` ids serve as instances for the extra heads."""

    shape: tuple[PosInt, PosInt, PosInt] = (32, 256, 256)
    seed: Seed = 0


class DataConfig(StrictModel):
    """Training data: a raw volume with labels, or the synthetic phantom (the default).

    ``raw`` / ``labels`` / ``instances``: paths read with ``open_volume`` (``*_key`` for HDF5/Zarr
    datasets); labels are semantic class maps Z×Y×X. ``instances`` (optional) are instance ids
    used to derive the boundary/distance targets; without them, connected regions of one class
    (4-connected, per slice) serve as instances. ``label_map`` maps raw label values to classes
    before training, e.g. ISBI 2012 ``{0: 1, 255: 0}`` (0 = membrane → class 1, 255 = cell
    interior → class 0); every value present must then be listed. The stack depth k is
    ``model.in_slices``. ``patch_size`` (height, width) pixels; validation takes the z-range of
    ``split_z`` (``val_range`` or the last ``val_fraction`` of the slices, with a gap of r·dz
    slices) cut into non-overlapping patch-size tiles (at most ``val_patches``, seeded choice).
    ``test_range`` [start, stop): slices held out of training *and* validation (no training or validation
    stack reads them: a gap of r·dz slices on each side), so that a score on them (``slicewise evaluate --z
    start:stop``) is not biased by training or by the choice of ``best.pt``.

    ``on_device``: keep the training volume and labels on the training device and draw, stack and
    augment whole batches there (:class:`slicewise.data.sampling.DevicePatchSampler`; no DataLoader
    workers, ``num_workers`` then serves validation only). ``auto`` (default): on when the volume and
    labels take at most a quarter of the device's memory (CUDA: total memory; CPU: physical RAM) and
    no extra heads are trained (their targets are computed on the host); ``true`` insists (an error
    where it cannot apply); ``false``: the DataLoader worker path.
    """

    raw: str | None = None
    raw_key: str | None = None
    labels: str | None = None
    labels_key: str | None = None
    instances: str | None = None
    instances_key: str | None = None
    synthetic: SyntheticDataConfig = SyntheticDataConfig()
    label_map: dict[int, int] | None = None
    dz: PosInt = 1
    border: Border = "reflect"
    patch_size: PatchSize = (256, 256)
    batch_size: PosInt = 8
    val_fraction: float = 0.2
    val_range: SliceRange = None
    test_range: SliceRange = None
    val_patches: PosInt = 64
    train_fraction: float | None = None
    train_count: int | None = None
    foreground_fraction: float = 0.5
    foreground_classes: tuple[int, ...] | None = None
    num_workers: NonNegInt = 2
    on_device: bool | Literal["auto"] = "auto"

    @field_validator("label_map", mode="before")
    @classmethod
    def _one_label_map_parser(cls, v: Any) -> Any:
        return label_map_field(v, "data.label_map")

    @field_validator("train_fraction")
    @classmethod
    def _train_fraction(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 < v <= 1.0:
            raise ValueError("must be in (0, 1]")
        return v

    @field_validator("train_count")
    @classmethod
    def _train_count(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("on_device", mode="before")
    @classmethod
    def _on_device(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return v
        word = str(v).strip().lower()
        if word not in ("auto", "true", "false"):
            raise ValueError("must be auto, true or false")
        return word if word == "auto" else word == "true"

    @field_validator("val_fraction")
    @classmethod
    def _val_fraction(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError("must be in [0, 1)")
        return v

    @field_validator("foreground_fraction")
    @classmethod
    def _unit(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("must be in [0, 1]")
        return v


class OptimConfig(StrictModel):
    """AdamW; learning rate per optimizer step: linear warm-up from 0 over ``warmup_steps``,
    then cosine decay to ``min_lr_ratio · lr`` at ``trainer.max_steps``. During the first
    ``freeze_encoder_steps`` steps the encoder gets no updates (its gradients are dropped and
    its BatchNorm layers stay in eval mode)."""

    lr: LearningRate = 1e-3
    weight_decay: NonNegFloat = 1e-4
    betas: Betas = (0.9, 0.999)
    warmup_steps: NonNegInt = 100
    min_lr_ratio: NonNegFloat = 0.0
    freeze_encoder_steps: NonNegInt = 0
    grad_clip: GradClip = 1.0


class LossConfig(StrictModel):
    """Loss weights (see ``slicewise.training.losses``): ``ce · CE + dice · (1 − soft Dice)`` on the
    classes, ``boundary · (BCE + boundary_dice · (1 − Dice))`` and ``distance · MSE|Smooth-L1``
    on the extra heads. ``class_weights`` (one per class) weight the CE; pixels labelled
    ``ignore_index`` count in no term; ``dice_classes`` restricts the Dice mean (default all)."""

    ce: NonNegFloat = 1.0
    dice: NonNegFloat = 1.0
    class_weights: tuple[NonNegFloat, ...] | None = None
    ignore_index: int | None = None
    dice_classes: tuple[NonNegInt, ...] | None = None
    boundary: NonNegFloat = 1.0
    boundary_dice: NonNegFloat = 0.0
    distance: NonNegFloat = 1.0
    distance_loss: Literal["mse", "smooth_l1"] = "mse"


class TrainerConfig(StrictModel):
    """Lightning Trainer settings. ``devices`` / ``num_nodes`` / ``strategy`` / ``accelerator``
    go to ``lightning.Trainer`` as they are (DDP under torchrun or SLURM is detected by
    Lightning). ``precision`` "auto" = ``bf16-mixed`` on CUDA, 32 on CPU. Validation (and the
    checkpoints) every ``val_every`` optimizer steps; metrics logged every ``log_every`` steps."""

    max_steps: PosInt = 2000
    val_every: PosInt = 200
    log_every: PosInt = 10
    accelerator: str = "auto"
    devices: int | str | list[int] = "auto"
    num_nodes: PosInt = 1
    strategy: str = "auto"
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"
    compile: bool = False
    channels_last: bool = True
    deterministic: bool = False
    tensorboard: bool = False


class TrainConfig(StrictModel):
    """A whole training run; saved as ``config.yaml`` in the run folder, it reproduces the run.

    ``augment``: :class:`slicewise.data.augment_config.AugmentConfig` (probabilities and
    ranges of flips, 90° rotations, z-reversal, brightness, contrast, gamma, noise, blur); the
    saved config lists them all. ``augment: {flip: 0, rot90: 0, z_reverse: 0, ...}`` turns them off.

    With the default synthetic data and no ``model.classes`` given, ``model.classes`` is 3 (the
    phantom's classes)."""

    seed: Seed = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    trainer: TrainerConfig = TrainerConfig()

    @field_validator("trainer", mode="before")
    @classmethod
    def _precision_str(cls, v: Any) -> Any:
        if isinstance(v, dict) and isinstance(v.get("precision"), int):
            v = {**v, "precision": str(v["precision"])}
        return v

    @model_validator(mode="after")
    def _class_indices(self) -> TrainConfig:
        n = self.model.classes
        for name, values in (
            ("loss.dice_classes", self.loss.dice_classes),
            ("data.foreground_classes", self.data.foreground_classes),
        ):
            bad = [v for v in values or () if not 0 <= v < n]
            if bad:
                raise ValueError(
                    f"{name} {list(values or ())} names class(es) {bad} outside 0..{n - 1} "
                    f"(model.classes={n}): list classes of the model"
                )
        return self

    @model_validator(mode="after")
    def _warmup_fits(self) -> TrainConfig:
        """A warm-up longer than the run never reaches ``optim.lr`` nor starts the cosine decay. Given
        explicitly, it is refused in one line; left at its default (100) in a short run it becomes
        ``max_steps // 10``, with a log line (the rule ``slicewise demo`` uses)."""
        oc, steps = self.optim, self.trainer.max_steps
        if oc.warmup_steps <= steps:
            return self
        if "warmup_steps" in oc.model_fields_set:
            raise ValueError(
                f"optim.warmup_steps={oc.warmup_steps} exceeds trainer.max_steps={steps}: the learning rate "
                f"would never reach optim.lr; set optim.warmup_steps <= trainer.max_steps "
                f"(e.g. optim.warmup_steps={steps // 10})"
            )
        logging.getLogger(__name__).info(
            "optim.warmup_steps: the default %d exceeds trainer.max_steps=%d, using %d",
            oc.warmup_steps,
            steps,
            steps // 10,
        )
        oc.warmup_steps = steps // 10
        oc.model_fields_set.discard("warmup_steps")
        return self

    @model_validator(mode="before")
    @classmethod
    def _phantom_classes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        d = data.get("data") or {}
        if isinstance(d, dict) and d.get("raw") is None:
            model = data.get("model") or {}
            if isinstance(model, dict) and "classes" not in model:
                data = {**data, "model": {**model, "classes": 3}}
        return data


PretrainMethod = Literal["mocov2", "vicreg", "byol", "mim"]


class PretrainDataConfig(StrictModel):
    """Unlabelled volumes for self-supervised pretraining (:func:`slicewise.pretrain`).

    ``raw``: one or more paths read with ``open_volume`` (TIFF, image folders, HDF5, Zarr, OME-Zarr level;
    ``key`` for HDF5/Zarr datasets, the same for every file); empty = the seeded phantom (``synthetic``).
    ``z_range`` [start, stop) limits the centre slices of every volume. ``patch_size`` (height, width) of
    each view in pixels; ``batch_size`` views per branch and step; ``dz`` / ``border`` and k
    (``model.in_slices``) stack slices exactly as training does. ``on_device``: keep the volumes on the
    training device and draw the views there (``auto``: when they take at most a quarter of its memory).

    Probe (optional): ``probe_labels`` (a class map Z×Y×X of the first raw volume, or of the phantom by
    default) with ``probe_z`` (the labelled slices; default every slice) and ``probe_label_map`` (as
    ``data.label_map`` of training; values it does not list are left out). ``probe_patches`` patches per class
    are centered on pixels of that class; a patch's class is the class of its centre pixel; patches are
    ``probe_patch_size`` pixels square and vote with their ``probe_k`` nearest neighbours (see
    :mod:`slicewise.selfsup.probe`).
    """

    raw: tuple[str, ...] = ()
    key: str | None = None
    synthetic: SyntheticDataConfig = SyntheticDataConfig()
    z_range: SliceRange = None
    dz: PosInt = 1
    border: Border = "reflect"
    patch_size: PatchSize = (128, 128)
    batch_size: PosInt = 32
    on_device: bool | Literal["auto"] = "auto"
    probe_labels: str | None = None
    probe_labels_key: str | None = None
    probe_z: tuple[NonNegInt, ...] | None = None
    probe_label_map: dict[int, int] | None = None
    probe_patches: PosInt = 24
    probe_patch_size: PosInt = 32
    probe_k: PosInt = 5

    @field_validator("raw", mode="before")
    @classmethod
    def _raw_list(cls, v: Any) -> Any:
        if v is None:
            return ()
        return (str(v),) if isinstance(v, (str, Path)) else tuple(str(x) for x in v)

    @field_validator("on_device", mode="before")
    @classmethod
    def _on_device(cls, v: Any) -> Any:
        return DataConfig._on_device(v)


class PretrainModelConfig(StrictModel):
    """The encoder to pretrain, built as fine-tuning builds it (``slicewise.models``): timm ``encoder``,
    start point ``weights`` (``random``, ``imagenet`` — continued, domain-adaptive pretraining — or any
    ``model.weights`` value), k = ``in_slices``, ``colors`` per slice and the first-layer ``channel_init``."""

    encoder: str = "tf_efficientnet_lite0"
    weights: str = "imagenet"
    in_slices: OddSlices = 3
    colors: Colors = 1
    channel_init: ChannelInit = "uniform"
    img_size: PosInt | None = None


class PretrainMethodConfig(StrictModel):
    """The self-supervised method (losses, heads and momentum updates from lightly).

    ``name``: ``mocov2`` (CEM500K's recipe: InfoNCE / NT-Xent with ``temperature`` and a memory bank of
    ``memory_bank`` negatives, momentum key encoder with ``momentum``), ``vicreg`` (``vicreg_*``
    weights of invariance, variance, covariance), ``byol`` (momentum cosine-scheduled from
    ``momentum`` to 1) or ``mim``: masked image modelling for ViT and CNN encoders alike. MAE
    proper drops the masked tokens, which SAM's windowed attention and neck cannot take (they need the full
    token grid), so slicewise implements SimMIM (Xie et al. 2022), which keeps the grid: a fraction
    ``mask_ratio`` (0 < r < 1) of the input's patches (side = the encoder's deepest stride) takes a learnable
    mask value, the deepest feature map is decoded by a 1×1 convolution and pixel shuffle back to the image,
    and the L1 error of the reconstructed (normalized) pixels is counted on the masked patches only.
    ``hidden_dim`` (default: the encoder's feature width) and ``output_dim`` size the projection head.
    ``collapse_threshold``: a validation whose mean per-dimension std of the L2-normalized embedding is
    below ``collapse_threshold / sqrt(dim)`` warns (once) that it collapsed."""

    name: PretrainMethod = "mocov2"
    temperature: float = 0.2
    memory_bank: NonNegInt = 4096
    momentum: float = 0.99
    hidden_dim: PosInt | None = None
    output_dim: PosInt = 128
    vicreg_invariance: NonNegFloat = 25.0
    vicreg_variance: NonNegFloat = 25.0
    vicreg_covariance: NonNegFloat = 1.0
    mask_ratio: float = 0.6
    collapse_threshold: NonNegFloat = 0.02

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("must be > 0")
        return v

    @field_validator("momentum")
    @classmethod
    def _momentum(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("must be in [0, 1]")
        return v

    @field_validator("mask_ratio")
    @classmethod
    def _mask_ratio(cls, v: float) -> float:
        if not 0.0 < v < 1.0:  # also refuses NaN
            raise ValueError("must be in (0, 1): the fraction of patches masked")
        return v


class PretrainViewsConfig(StrictModel):
    """How the two views of a pair are made (:mod:`slicewise.selfsup.views`).

    Both views come from one region of ``region_scale`` × ``data.patch_size`` pixels (clipped to the
    volume) around a random centre slice: each takes a random resized crop of ``crop_scale`` (area fraction
    of the region) and aspect ratio ``crop_ratio``, resized to the patch size, then the train-time
    augmentation ``augment`` (:class:`slicewise.data.augment_config.AugmentConfig`: flips, 90° rotations,
    z-reversal, brightness, contrast, gamma, noise, blur). ``z_context`` = d > 0: **z-context
    positives** — the second view is the same crop of the region at a centre slice 1…d slices away."""

    region_scale: float = 1.5
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.3333)
    z_context: NonNegInt = 0
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @field_validator("region_scale")
    @classmethod
    def _region(cls, v: float) -> float:
        if not v >= 1.0:
            raise ValueError("must be >= 1 (the region holds at least one patch)")
        return v

    @field_validator("crop_scale", "crop_ratio")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < v[0] <= v[1]:
            raise ValueError("must be (low, high) with 0 < low <= high")
        return v

    @field_validator("crop_scale")
    @classmethod
    def _fraction(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[1] > 1.0:
            raise ValueError("area fractions must be at most 1")
        return v


class PretrainOptimConfig(StrictModel):
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio · lr`` (as training; no weight decay
    on 1-D parameters)."""

    lr: LearningRate = 1e-3
    weight_decay: NonNegFloat = 1e-4
    betas: Betas = (0.9, 0.999)
    warmup_steps: NonNegInt = 100
    min_lr_ratio: NonNegFloat = 0.0
    grad_clip: GradClip = None


class PretrainTrainerConfig(TrainerConfig):
    """:class:`TrainerConfig` with pretraining's defaults (1000 steps, validation every 100)."""

    max_steps: PosInt = 1000
    val_every: PosInt = 100


class PretrainConfig(StrictModel):
    """A self-supervised pretraining run (``slicewise pretrain``); saved as ``config.yaml`` in its folder."""

    seed: Seed = 0
    data: PretrainDataConfig = PretrainDataConfig()
    model: PretrainModelConfig = PretrainModelConfig()
    method: PretrainMethodConfig = PretrainMethodConfig()
    views: PretrainViewsConfig = PretrainViewsConfig()
    optim: PretrainOptimConfig = PretrainOptimConfig()
    trainer: PretrainTrainerConfig = PretrainTrainerConfig()

    @field_validator("trainer", mode="before")
    @classmethod
    def _precision_str(cls, v: Any) -> Any:
        return TrainConfig._precision_str(v)

    @model_validator(mode="after")
    def _warmup_fits(self) -> PretrainConfig:
        """As :meth:`TrainConfig._warmup_fits`: an explicit warm-up longer than the run is refused; the
        default one becomes ``max_steps // 10``."""
        oc, steps = self.optim, self.trainer.max_steps
        if oc.warmup_steps <= steps:
            return self
        if "warmup_steps" in oc.model_fields_set:
            raise ValueError(
                f"optim.warmup_steps={oc.warmup_steps} exceeds trainer.max_steps={steps}: set "
                f"optim.warmup_steps <= trainer.max_steps (e.g. optim.warmup_steps={steps // 10})"
            )
        oc.warmup_steps = steps // 10
        oc.model_fields_set.discard("warmup_steps")
        return self


C = TypeVar("C", bound=BaseModel)


def validate(model: type[C], data: dict[str, Any], source: str = "config") -> C:
    """Build ``model`` from ``data``; raise a one-line :class:`ConfigError` on the first problem."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(validation_line(model, err, source)) from None


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """``["train.lr=1e-3", "model.skips=0111"]`` → nested dict; values parsed as YAML scalars.

    A malformed item (no ``=``, an empty key part, a value that is not valid YAML, a key set both as
    a value and as a section) is a one-line :class:`ConfigError` naming the override.
    """
    out: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. model.skips=0111)")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):
            raise ConfigError(
                f"override {item!r}: the key {key.strip()!r} has an empty part; "
                "write section.key=value (e.g. optim.lr=3e-4)"
            )
        try:
            parsed = yaml.safe_load(value) if value != "" else None
            duplicate = _duplicate_key(yaml.compose(value, Loader=yaml.SafeLoader)) if value != "" else None
        except yaml.YAMLError as err:
            first = " ".join(str(err).split())[:120]
            raise ConfigError(
                f"override {item!r}: the value is not valid YAML ({first}); quote it or fix the brackets, "
                f"e.g. {key.strip()}=[1, 2]"
            ) from None
        if duplicate:
            raise ConfigError(f"override {item!r}: {duplicate}")
        node = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.setdefault(p.strip(), {})
            if not isinstance(nxt, dict):
                raise ConfigError(
                    f"override {item!r}: {'.'.join(parts[: i + 1])} was set to a value by another override, "
                    f"so it cannot also hold keys"
                )
            node = nxt
        node[parts[-1].strip()] = parsed
    return out


def override_keys(overrides: list[str] | None) -> dict[str, str]:
    """Dotted key → the override item that set it (for blaming a bad value on the command line)."""
    return {item.split("=", 1)[0].strip(): item for item in overrides or [] if "=" in item}


def validate_with_overrides(
    model: type[C], data: dict[str, Any], overrides: list[str] | None, source: str = "config"
) -> C:
    """:func:`validate`, but an error at (or under) a key given as an override names the override,
    not the YAML file: ``override 'optim.lrr=1': unknown key 'optim.lrr' (did you mean 'optim.lr'?)``."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(map(str, first["loc"]))
        for key, item in override_keys(overrides).items():
            if (
                loc
                and (loc == key or loc.startswith(key + ".") or key.startswith(loc + "."))
                or not loc
                and key in str(first["msg"])
            ):  # a cross-key check naming the overridden key
                return validate(model, data, f"override {item!r}")
    return validate(model, data, source)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base``."""
    out = dict(base)
    for k, v in update.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _duplicate_key(node: yaml.Node | None, seen: set[int] | None = None) -> str | None:
    """The first key given twice in one mapping of a composed YAML document (at any depth), as a message;
    None when there is none (PyYAML's loaders keep the last silently). Merge keys (``<<: *anchor``) may be
    overridden on purpose and are skipped; so are non-scalar keys."""
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if (key.tag, key.value) in first:
                    before = first[(key.tag, key.value)]
                    where = f"lines {before} and {line}" if before != line else f"line {line}"
                    return f"the key {key.value!r} appears twice ({where}): keep one; YAML would silently use the last"
                first[(key.tag, key.value)] = line
            found = _duplicate_key(value, seen)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item, seen)
            if found:
                return found
    return None


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (empty file → ``{}``); one-line :class:`ConfigError` otherwise,
    also for a key given twice in one mapping (at any depth), for a folder given as the file and for a special
    file (FIFO, socket, device, symlink loop: :func:`slicewise.utils.inputs.check_input_path`)."""
    try:
        p = check_input_path(path, "config file")
    except InputError as err:
        raise ConfigError(str(err)) from None
    if p.is_dir():
        raise ConfigError(f"config file {p} is a folder, not a file: give the YAML file (e.g. {p / 'config.yaml'})")
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist: check the path")
    text = p.read_text()
    try:
        duplicate = _duplicate_key(yaml.compose(text, Loader=yaml.SafeLoader))
        data = None if duplicate else yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p} is not valid YAML ({str(err).splitlines()[0]}): fix the syntax") from None
    if duplicate:
        raise ConfigError(f"{p}: {duplicate}")
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of keys to values at the top level")
    return data


def load_config(model: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Read a YAML file (optional), apply ``key=value`` overrides, validate into ``model``."""
    data = {} if path is None else read_yaml_mapping(path)
    source = "config" if path is None else Path(path).name
    return validate_with_overrides(model, deep_merge(data, parse_overrides(overrides)), overrides, source)


def resolve_pretrain_config(
    config: PretrainConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    raw: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
) -> PretrainConfig:
    """A :class:`PretrainConfig` from an object, a dict or a YAML path, with ``key=value`` overrides; ``raw``
    (paths), when given, replaces ``data.raw``."""
    items = list(overrides or [])
    if isinstance(config, PretrainConfig):
        config = config.model_dump(mode="json")
    if config is None or isinstance(config, (str, os.PathLike)):
        base = {} if config is None else read_yaml_mapping(config)
        source = "config" if config is None else Path(config).name
    elif isinstance(config, dict):
        base, source = config, "config"
    else:
        raise ConfigError(f"config must be a PretrainConfig, a dict or a YAML path, not {type(config).__name__}")
    data = deep_merge(base, parse_overrides(items))
    if raw is not None:
        paths = [raw] if isinstance(raw, (str, os.PathLike)) else list(raw)
        data = deep_merge(data, {"data": {"raw": [os.fspath(p) for p in paths]}})
    return validate_with_overrides(PretrainConfig, data, items, source)


def save_config(config: BaseModel, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return Path(path)
