"""Natural order of study levels and labels, used by every table and figure of a study report.

- layers (``enc_s<stride>`` / ``dec_s<stride>``): forward order, encoder by stride ascending
  (enc_s2 < enc_s4 < … < enc_s32), then decoder by stride descending (dec_s16 < … < dec_s1);
  other layer names keep their number order (``enc0 < enc1 < dec0``);
- skip masks (strings of at least 3 characters 0/1, e.g. ``skips``): by level, full first: 1111, 0111, 0011, 0001, 0000
  (the binary value, descending);
- pipeline labels in pipeline order: ``none`` first, stages ``weights < before < after``, tests
  ``in_domain < out_of_domain < shifted`` (:data:`KNOWN`);
- ``name=number`` labels (shifts): by name, then numerically (``gamma=0.5 < gamma=2``);
- numbers (training fractions, seeds, slices): numerically;
- anything else: the order given (e.g. the grid's order in the study file), else alphabetically.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

_LAYER = re.compile(r"^(enc|dec)_?s?(\d+)$")
_NAMED = re.compile(r"^([A-Za-z_]+)=(-?\d+(?:\.\d*)?(?:e-?\d+)?)$")
KNOWN = ("none", "weights", "before", "after", "in_domain", "out_of_domain", "shifted")
"""Label values with a pipeline order (before any other value of their column)."""


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _mask(v: Any) -> bool:
    return isinstance(v, str) and len(v) >= 3 and set(v) <= {"0", "1"}


def natural_key(value: Any, given: Sequence[Any] = ()) -> tuple[Any, ...]:
    """Sort key of one value (see the module docstring); ``given``: a preferred order (grid levels)."""
    text = str(value)
    m = _LAYER.match(text)
    if m:
        part, num = m.group(1), int(m.group(2))
        strided = "_s" in text
        if part == "enc":
            return (0, 0, num, text)
        return (0, 1, -num if strided else num, text)
    if _mask(text):
        return (1, -int(text, 2), text)
    keys = [str(g) for g in given]
    if text in keys:
        return (2, keys.index(text), text)
    if text in KNOWN:
        return (2, len(keys) + KNOWN.index(text), text)
    named = _NAMED.match(text)
    if named:
        return (2.5, named.group(1), float(named.group(2)), text)
    x = _number(text)
    if x is not None:
        return (3, x, text)
    return (4, 0, text)


def natural_sorted(values: Iterable[Any], given: Sequence[Any] = ()) -> list[Any]:
    """Distinct ``values`` in natural order (first occurrence kept)."""
    return sorted(dict.fromkeys(values), key=lambda v: natural_key(v, given))
