"""The small SAM-architecture ViT for fast tests (no weights exist for it).

``slicewise_samvit_tiny_patch16``: 4 blocks, width 96, global attention at blocks 2 and 4, built by timm's SAM
ViT code. It enters timm's registry only through :func:`register_tiny_sam` (tests' conftest, or on demand when
:func:`slicewise.models.spec.check_encoder_name` is asked for the name), never when slicewise is imported; timm
is imported only then, so the name can be known without torch.
"""

from __future__ import annotations

from typing import Any

#: the small SAM ViT's timm name (tests, smoke studies and smoke benchmarks; no weights exist for it).
TINY_SAM = "slicewise_samvit_tiny_patch16"


def slicewise_samvit_tiny_patch16(pretrained: bool = False, **kwargs: Any) -> Any:
    """Small SAM-architecture ViT for tests: 4 blocks, width 96, 3 heads, window 14."""
    from timm.models.vision_transformer_sam import _create_vision_transformer

    args = dict(
        patch_size=16,
        embed_dim=96,
        depth=4,
        num_heads=3,
        global_attn_indexes=[1, 3],
        window_size=14,
        use_rel_pos=True,
        img_size=224,
        neck_chans=32,
    )
    return _create_vision_transformer(TINY_SAM, pretrained=pretrained, **dict(args, **kwargs))


def register_tiny_sam() -> str:
    """Register :data:`TINY_SAM` in timm's global model registry (idempotent); returns its name.

    Never done at import time: the tests' conftest calls it, and
    :func:`slicewise.models.spec.check_encoder_name` calls it when that name is asked for (the
    smoke presets of the packaged studies and ``benchmarks/bench.py --smoke`` use it).
    """
    import timm
    from timm.models import generate_default_cfgs, register_model
    from timm.models.vision_transformer_sam import _cfg

    if not timm.is_model(TINY_SAM):
        # timm's register_model reads the pretrained config from the module's ``default_cfgs``
        globals()["default_cfgs"] = generate_default_cfgs(
            {
                TINY_SAM: _cfg(
                    mean=(0.485, 0.456, 0.406),
                    std=(0.229, 0.224, 0.225),
                    num_classes=0,
                    input_size=(3, 224, 224),
                    crop_pct=1.0,
                ),
            }
        )
        register_model(slicewise_samvit_tiny_patch16)
    return TINY_SAM
