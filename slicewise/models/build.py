"""Build, save, load and describe segmentation models.

``build_model(**ModelConfig fields)`` or ``build_model(config=ModelConfig(...))`` →
:class:`SegmentationModel`: input normalization (buffers set by the channel strategy) →
encoder (timm CNN or ViT + ladder) with its first layer adapted to k slices → U-Net decoder
→ heads. ``save_model`` writes one file (config + state dict); ``load_model`` rebuilds from
the config with random init (no downloads) and loads the weights, from that file or from a bioimage.io package
(read by :mod:`slicewise.models.package`; its dz and border become the model's prediction defaults,
:func:`prediction_defaults`, so every front end predicts a package alike). ``open_model`` turns a MODEL argument
(file or encoder spec, :mod:`slicewise.models.spec`) into a network.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slicewise.config import ModelConfig, validate
from slicewise.data.io.outputs import atomic_path
from slicewise.errors import ConfigError, InputError
from slicewise.models.channels import apply_strategy, check_strategy, normalization
from slicewise.models.decoder import UNetDecoder
from slicewise.models.encoder_file import check_fits, set_first_layer
from slicewise.models.encoders import CNNEncoder, encoder_kind
from slicewise.models.package import is_package, read_package
from slicewise.models.sam import ViTEncoder
from slicewise.models.spec import check_model_arg, is_model_path, spec_fields
from slicewise.models.weights import resolve_weights
from slicewise.utils.inputs import check_model_file
from slicewise.utils.validation import MetadataModel, parse_metadata

FORMAT, VERSION = "slicewise-model", 1


def colors_of(config: ModelConfig) -> int:
    """Color channels per slice (``config.colors``: 1 grayscale, 3 RGB)."""
    return int(config.colors)


class SegmentationModel(nn.Module):
    """Encoder–decoder network for (B, in_channels, H, W) inputs in [0, 1] → logits.

    Attributes: ``config`` (ModelConfig), ``in_slices`` (k), ``in_channels`` (k × colors),
    ``out_channels``, ``heads`` (name → channel slice of the output), ``size_divisor`` (H and
    W must be multiples), ``encoder``, ``decoder``, and buffers ``mean``/``std``
    (1, in_channels, 1, 1) applied as (x − mean) / std inside :meth:`forward`. ``defaults``: prediction
    settings the model brings (a bioimage.io package's ``dz`` and ``border``, see :func:`prediction_defaults`).
    """

    def __init__(self, config: ModelConfig, encoder: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        self.in_slices = config.in_slices
        self.in_channels = config.in_slices * colors_of(config)
        self.encoder = encoder
        self.decoder = UNetDecoder(
            encoder.channels,
            encoder.reductions,
            skips=config.skips,
            decoder_channels=tuple(config.decoder_channels),
            norm=config.decoder_norm,
            classes=config.classes,
            extra_heads=tuple(config.extra_heads),
        )
        self.out_channels = self.decoder.out_channels
        self.heads: dict[str, slice] = dict(self.decoder.heads)
        self.size_divisor = int(self.decoder.size_divisor)
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).clone())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).clone())
        self.defaults: dict[str, Any] = {}

    @property
    def first_layer(self) -> nn.Module:
        """The encoder's (adapted) first layer."""
        return self.encoder.get_submodule(self.encoder.first_conv)

    def check_input_size(self, h: int, w: int) -> None:
        """Raise a one-line InputError unless H and W are positive multiples of ``size_divisor``."""
        d = self.size_divisor
        if h < d or w < d or h % d or w % d:
            up = [max(d, -(-n // d) * d) for n in (h, w)]
            raise InputError(
                f"input size {h}x{w} does not fit {self.config.encoder}: height and width must be multiples of {d} "
                "(e.g. "
                f"{up[0]}x{up[1]}); pad or crop the tile"
            )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] input → the encoder's normalization (per the channel strategy)."""
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder feature maps (ascending stride, see ``encoder.reductions``) of [0, 1] input."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputError(
                f"model expects (B, {self.in_channels}, H, W) input, got {tuple(x.shape)}: stack k={self.in_slices} "
                "slices as channels"
            )
        self.check_input_size(int(x.shape[-2]), int(x.shape[-1]))
        return self.encoder(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) float in [0, 1] → (B, out_channels, H, W) logits."""
        return self.decoder(self.features(x))


def _config_from(config: ModelConfig | dict[str, Any] | None, fields: dict[str, Any]) -> ModelConfig:
    if config is None:
        return validate(ModelConfig, fields, "model")
    if isinstance(config, dict):
        return validate(ModelConfig, {**config, **fields}, "model")
    if fields:
        return validate(ModelConfig, {**config.model_dump(), **fields}, "model")
    return config


def build_model(config: ModelConfig | dict[str, Any] | None = None, **fields: Any) -> SegmentationModel:
    """Build a :class:`SegmentationModel` from a ModelConfig and/or its fields as keywords.

    Bad values raise one-line ConfigError / WeightsError. ``weights`` decides the encoder's
    initial weights (see :mod:`slicewise.models.weights`); the decoder is randomly initialized.
    """
    cfg = _config_from(config, fields)
    encoder, m, s = build_adapted_encoder(cfg)
    return SegmentationModel(cfg, encoder, m, s)


def build_encoder(
    name: str, overlay: dict[str, Any] | None = None, img_size: int | None = None, in_chans: int = 3, **kwargs: Any
) -> nn.Module:
    """CNN (:class:`~slicewise.models.encoders.CNNEncoder`) or ViT (:class:`~slicewise.models.sam.ViTEncoder`)
    encoder for timm model ``name``, the kind chosen from its metadata.

    ``in_chans`` other than 3 is only for randomly initialized twins (the ``random`` strategy
    takes its first layer from one); pretrained encoders are built with 3 channels.
    """
    if encoder_kind(name) == "vit":
        return ViTEncoder(name, overlay, img_size=img_size, in_chans=in_chans, **kwargs)
    return CNNEncoder(name, overlay, in_chans=in_chans, **kwargs)


def build_adapted_encoder(config: ModelConfig) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Encoder with its weights and adapted first layer, plus the per-channel (mean, std).

    The part of :func:`build_model` before the decoder (also used by the weight audit).
    """
    k, colors = config.in_slices, colors_of(config)
    strategy = check_strategy(config.channel_init, k, colors)
    overlay, info = resolve_weights(config.encoder, config.weights)
    if "first_layer" in info:  # an encoder file of `slicewise pretrain`: its k, colors and strategy must be the model's
        check_fits(info["provenance"], info["path"], config.encoder, k, colors, config.channel_init)
    encoder = build_encoder(config.encoder, overlay, img_size=config.img_size)
    fresh = None
    if strategy.reinit:
        twin = build_encoder(config.encoder, None, img_size=config.img_size, in_chans=k * colors)
        fresh = twin.get_submodule(encoder.first_conv)
    apply_strategy(encoder, encoder.first_conv, config.channel_init, k, colors, fresh=fresh)
    if "first_layer" in info:
        set_first_layer(encoder.get_submodule(encoder.first_conv), info["first_layer"])
    mean = info.get("mean") or encoder.mean
    std = info.get("std") or encoder.std
    m, s = normalization(config.channel_init, tuple(mean), tuple(std), k, colors)
    return encoder, m, s


def save_model(model: SegmentationModel, path: str | Path, overwrite: bool = True) -> Path:
    """Write ``{"format", "version", "config", "state_dict"}`` to one file (atomically)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.model_dump(mode="json"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)


class ModelFile(MetadataModel):
    """The payload of a model file beyond ``format`` / ``version`` (untrusted when read back): the config (validated
    by :class:`~slicewise.config.ModelConfig` next) and the state dict."""

    config: dict[str, Any]
    state_dict: dict[str, Any]


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> SegmentationModel:
    """Rebuild a saved model or a bioimage.io package (:func:`load_package`) from its config (random init, no
    downloads) and load its weights."""
    if is_package(path):
        return load_package(path, map_location)
    p = check_model_file(path)
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:
        raise InputError(
            f"{p} is not a readable slicewise model ({type(err).__name__}): give a file written by save_model / "
            "slicewise train"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(
            f"{p} is not a slicewise model file (no 'format: {FORMAT}'): give a file written by save_model / "
            "slicewise train"
        )
    if payload.get("version") != VERSION:
        raise InputError(
            f"{p} has model file version {payload.get('version')!r}; this slicewise reads version {VERSION}: upgrade "
            "slicewise"
        )
    parse_metadata(ModelFile, payload, p, "give a file written by save_model / slicewise train")
    try:
        cfg = validate(ModelConfig, {**payload["config"], "weights": "random"}, p.name)
    except ConfigError as err:
        raise InputError(
            f"{p} holds an invalid model config ({err}): it was written by another slicewise version"
        ) from None
    model = build_model(cfg)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as err:
        raise InputError(
            f"{p} weights do not fit its config ({str(err).splitlines()[0][:200]}): the file is corrupt"
        ) from None
    model.config = validate(ModelConfig, payload["config"], p.name)
    return model.to(map_location)


def load_package(path: str | Path, map_location: str | torch.device = "cpu") -> SegmentationModel:
    """Rebuild the model of a slicewise-exported bioimage.io package (read and checked by
    :func:`slicewise.models.package.read_package`) with the package's defaults applied.

    The model's ``config`` is the exported ModelConfig (its class names name the output channels);
    ``model.package`` holds the package's name, format version and 2.5D settings (``dz``, ``border``), and
    ``model.defaults`` the prediction settings they imply (:func:`prediction_defaults`).
    """
    p = Path(path)
    contents = read_package(p)
    model = build_model(contents.build_config)
    try:
        model.load_state_dict(contents.state_dict)
    except RuntimeError as err:
        raise InputError(
            f"{p}: weights do not fit the model config ({str(err).splitlines()[0][:200]}): the package is corrupt"
        ) from None
    model.config = contents.config
    model.package = contents.defaults.as_dict()
    model.defaults = {"dz": contents.defaults.dz, "border": contents.defaults.border}
    return model.to(map_location)


def prediction_defaults(model: Any) -> dict[str, Any]:
    """The prediction settings a model brings (``{"dz": 2, "border": "reflect"}`` for a bioimage.io package,
    ``{}`` for others): used wherever the caller did not set them, so every front end predicts alike."""
    return dict(getattr(model, "defaults", None) or {})


def open_model(spec: str, **defaults: Any) -> SegmentationModel:
    """A MODEL argument as a network: a saved model file or bioimage.io package through :func:`load_model` (a
    missing file or a folder is a one-line error saying so, see :func:`slicewise.models.spec.is_model_path`), else
    the network built from an encoder spec: :func:`build_model` with ``defaults`` (ModelConfig fields) overridden
    by the spec's fields (:func:`slicewise.models.spec.spec_fields`)."""
    check_model_arg(spec)
    if is_model_path(spec):
        return load_model(spec)
    encoder, extra = spec_fields(spec)
    return build_model(encoder=encoder, **{**defaults, **extra})


def model_info(model: SegmentationModel, input_size: tuple[int, int] = (256, 256)) -> dict[str, Any]:
    """Parameter counts and forward FLOPs per image (``FlopCounterMode``) at ``input_size`` (H, W).

    FLOPs are counted on a copy of the model on PyTorch's ``meta`` device (shapes only, no
    arithmetic), so even SAM ViT-B at 1024² is counted in seconds; a multiply-add counts 2.
    """
    from torch.utils.flop_counter import FlopCounterMode

    h, w = input_size
    model.check_input_size(h, w)
    params = sum(p.numel() for p in model.parameters())
    enc = sum(p.numel() for p in model.encoder.parameters())
    shadow = copy.deepcopy(model).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        shadow(torch.zeros(1, model.in_channels, h, w, device="meta"))
    return {
        "encoder": model.config.encoder,
        "in_slices": model.in_slices,
        "in_channels": model.in_channels,
        "out_channels": model.out_channels,
        "heads": {k: [v.start, v.stop] for k, v in model.heads.items()},
        "skips": model.config.skips,
        "live_skip_strides": list(model.decoder.skip_strides),
        "size_divisor": model.size_divisor,
        "input_size": [h, w],
        "params": params,
        "encoder_params": enc,
        "decoder_params": params - enc,
        "gflops": counter.get_total_flops() / 1e9,
    }
