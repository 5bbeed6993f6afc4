"""THE block grid: a (z, y, x) extent cut into ``block``-shaped boxes in C order.

Prediction (``infer.blocks.plan_blocks``), block-wise labelling (``data.components``) and the block-wise
metrics (``metrics.contingency`` / ``metrics.blockwise``) all cut volumes with :func:`block_grid`, so block
``i`` of one is block ``i`` of the others and equals chunk ``i`` of an array chunked by the block shape.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

#: a box of a volume: (z, y, x) slices with concrete start < stop, in volume coordinates (voxels).
Box = tuple[slice, slice, slice]


def block_grid(shape: Sequence[int], block: Sequence[int], origin: Sequence[int] = (0, 0, 0)) -> list[Box]:
    """Boxes of ``block`` (z, y, x voxels) covering an extent of ``shape`` that starts at ``origin``, in C order.

    The last box along each axis is clipped to the extent; ``origin`` is added to every slice, so a grid over a
    region of interest is anchored at the region's start.
    """
    axes = [range(0, int(n), int(b)) for n, b in zip(shape, block)]
    grid: list[Box] = []
    for starts in itertools.product(*axes):
        box = (slice(int(o) + s, int(o) + min(s + int(b), int(n))) for o, s, b, n in zip(origin, starts, block, shape))
        grid.append(tuple(box))  # type: ignore[arg-type]
    return grid
