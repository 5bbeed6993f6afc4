"""napari sample data: the seeded synthetic EM phantom (:func:`slicewise.data.synthetic.make_phantom`)."""

from __future__ import annotations

from typing import Any

from slicewise.data.synthetic import make_phantom

SHAPE = (16, 192, 192)


def phantom_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """Raw phantom (uint8 image) and its semantic classes (labels: 1 membrane, 2 mitochondrion), Z×Y×X,
    scaled by the phantom's voxel size (z, y, x; in-plane pixel units)."""
    ph = make_phantom(shape=SHAPE, seed=0)
    scale = tuple(float(s) for s in ph.voxel_size)
    return [
        (ph.raw, {"name": "phantom", "scale": scale, "contrast_limits": (0, 255)}, "image"),
        (ph.semantic, {"name": "phantom classes", "scale": scale, "opacity": 0.4}, "labels"),
    ]
