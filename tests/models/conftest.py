"""Model-test setup: the small SAM test ViT enters timm's registry here, not when slicewise is imported."""

from __future__ import annotations

from slicewise.models.tiny_sam import register_tiny_sam

TINY_SAM = register_tiny_sam()
