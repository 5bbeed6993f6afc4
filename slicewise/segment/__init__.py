"""Instance segmentation from probabilities: connected components or seeded watershed, block-wise and resumable.

Modules, from input to output: ``inputs`` (the checked, lazy probability input and its channels),
``settings`` (:class:`SegmentOptions`), ``watershed`` (seeds and flooding of one block), ``blockwise`` (the
passes over the blocks), ``resume`` (what an interrupted run keeps), ``api`` (:func:`segment`,
:func:`segment_to`).
"""

from slicewise.segment.api import Segmented, segment, segment_to
from slicewise.segment.inputs import ProbabilitySource, as_probability_source, choose_foreground, open_probabilities
from slicewise.segment.settings import DEFAULT_BLOCK, DEFAULT_HALO, SegmentOptions

__all__ = [
    "DEFAULT_BLOCK",
    "DEFAULT_HALO",
    "ProbabilitySource",
    "SegmentOptions",
    "Segmented",
    "as_probability_source",
    "choose_foreground",
    "open_probabilities",
    "segment",
    "segment_to",
]
