"""The membrane → neuron step: instance labels from membrane maps, for instance scores of semantic label maps.

Membrane maps such as ISBI 2012 (0 = membrane, 255 = cell interior) are semantic maps: neuron scores label the
connected interior regions of a map (:func:`membranes_to_neurons`). ``evaluate(components=...)`` does this for the
ground truth, the prediction or both (:data:`COMPONENTS`), in one order: the side's label map first, then the
components (:func:`neuron_labels`), on the whole map in memory. Ground-truth 0 (the membrane) is then ignored by ARE
and VOI as in the SNEMI3D / ISBI foreground-restricted scores; a predicted membrane is filled with ``fill=True``,
since predicted 0 is an ordinary segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from slicewise.data.components import label
from slicewise.data.labelmap import apply_label_map
from slicewise.errors import InputError

#: which label maps ``evaluate(components=...)`` turns into connected components first.
COMPONENTS: tuple[str, ...] = ("none", "gt", "pred", "both")


def membranes_to_neurons(
    labels: Any, interior: int | None = None, per_slice: bool = True, fill: bool = False
) -> np.ndarray:
    """Neuron instance ids from a membrane map: connected components of the cell interior.

    ``interior``: the label value of cell interior (ISBI 2012: 255); None takes every non-zero
    voxel. Components use face connectivity (4-neighbours in 2-D, 6 in 3-D) so thin membranes
    with diagonal gaps still separate cells. ``per_slice`` labels each z-slice in 2-D (ids stay
    unique across slices), as the anisotropic ISBI data are scored; otherwise in 3-D.
    Membrane voxels get 0, unless ``fill`` gives each the id of the nearest cell
    (``skimage.segmentation.expand_labels``). Fill predictions before volume ARE/VOI: predicted 0
    is an ordinary segment, so an unfilled predicted membrane acts as one huge segment merging
    everything it touches (ground-truth membrane is ignored and needs no filling).
    Returns int64 Z×Y×X (or Y×X).
    """
    from skimage.segmentation import expand_labels

    lab = np.asarray(labels)
    mask = lab != 0 if interior is None else lab == interior
    if mask.ndim == 2:
        out = label(mask[None])[0].astype(np.int64)
        return expand_labels(out, distance=np.inf) if fill else out
    out = label(mask, per_slice=per_slice).astype(np.int64)
    if fill:
        for z in range(out.shape[0]) if per_slice else [slice(None)]:
            out[z] = expand_labels(out[z], distance=np.inf)
    return out


def neuron_labels(
    labels: Any, label_map: Mapping[int, int] | None, what: str, flag: str, fill: bool = False
) -> np.ndarray:
    """Per-slice neurons of a whole label map (read into memory): ``label_map`` applied first (raw value →
    class, ``what`` / ``flag`` name it in errors), then the non-zero regions labeled by
    :func:`membranes_to_neurons` (``fill``: predicted membrane voxels join the nearest cell)."""
    return membranes_to_neurons(apply_label_map(np.asarray(labels), label_map, what, flag), fill=fill)


def check_components(components: str, fill: bool, kind: str) -> None:
    """Refuse in one line a ``components`` / ``fill`` setting that means nothing for ``kind``."""
    if components not in COMPONENTS:
        raise InputError(f"--components {components!r}: choose gt, pred, both or none")
    if fill and components not in ("pred", "both"):
        raise InputError(
            "--fill applies to predicted membrane maps labelled with --components: add --components pred (or both)"
        )
    if components != "none" and kind == "semantic":
        raise InputError(
            f"--components {components} turns regions into objects for --kind instance; a semantic score "
            f"would count every region as a class: drop it, or add --kind instance"
        )
