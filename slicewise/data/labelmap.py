"""Label maps on the command line: ``--label-map 0:1,255:0`` → ``{0: 1, 255: 0}``, applied block by block.

The syntax is that of training's ``data.label_map`` (raw label value → class): a YAML/JSON mapping
(``{0: 1, 255: 0}``) or comma-separated ``RAW:CLASS`` (or ``RAW=CLASS``) pairs. Every value present in
the labels must be a key (as in training); a value without one is refused in one line naming it. A raw
value given twice (``0:1,0:0``, also in the mapping form) is refused (never "last wins"); callers refuse
negative classes where they mean nothing. This is the one parser of label maps (the CLI, ``study init``, the API).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import yaml

from slicewise.data.io.lazy import Key, LazyView
from slicewise.errors import InputError


def parse_label_map(text: str | Mapping[Any, Any] | None, flag: str = "--label-map") -> dict[int, int] | None:
    """``"0:1,255:0"``, ``"0=1 255=0"`` or ``"{0: 1, 255: 0}"`` (or a mapping) → ``{0: 1, 255: 0}``;
    None/empty → None."""
    if text is None:
        return None
    if isinstance(text, Mapping):
        items = list(text.items())
    else:
        s = text.strip()
        if not s:
            return None
        if s.startswith("{"):
            try:
                node = yaml.compose(s, Loader=yaml.SafeLoader)
            except yaml.YAMLError:
                node = None
            if not isinstance(node, yaml.MappingNode) or not all(
                isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode) for k, v in node.value
            ):
                raise InputError(f"{flag} {text!r}: write RAW:CLASS pairs, e.g. 0:1,255:0 (or {{0: 1, 255: 0}})")
            items = [(k.value, v.value) for k, v in node.value]  # every pair, duplicates included
        else:
            items = []
            for part in s.replace(";", ",").replace(" ", ",").split(","):
                if not part:
                    continue
                sep = ":" if ":" in part else "="
                raw, _, cls = part.partition(sep)
                items.append((raw, cls))
    out: dict[int, int] = {}
    for raw, cls in items:
        try:
            r, c = int(str(raw).strip()), int(str(cls).strip())
        except ValueError:
            raise InputError(f"{flag} {text!r}: {raw}:{cls} is not an integer pair RAW:CLASS, e.g. 0:1,255:0") from None
        if r in out:
            raise InputError(
                f"{flag} {text!r}: value {r} is mapped twice ({r}:{out[r]} and {r}:{c}): give each raw value once"
            )
        out[r] = c
    if not out:
        raise InputError(f"{flag} {text!r}: no RAW:CLASS pair found, e.g. 0:1,255:0")
    return out


def apply_label_map(
    labels: np.ndarray, label_map: Mapping[int, int] | None, what: str = "labels", flag: str = "--label-map"
) -> np.ndarray:
    """``labels`` with every value replaced by its class (int64); a value the map lacks → :class:`InputError`."""
    lab = np.asarray(labels)
    if not label_map:
        return lab
    keys = np.array(sorted(label_map), dtype=np.int64)
    values = np.array([label_map[k] for k in keys.tolist()], dtype=np.int64)
    present = np.unique(lab)
    missing = np.setdiff1d(present, keys)
    if missing.size:
        raise InputError(
            f"{what} hold values {missing[:10].tolist()} that {flag} {dict(label_map)} does not map: "
            f"add them, e.g. {int(missing[0])}:0"
        )
    return values[np.searchsorted(keys, lab)]


class MappedLabels(LazyView):
    """A lazy label array (anything indexable with ``shape`` / ``dtype``) read through a label map; ``what``
    names the labels in messages."""

    def __init__(
        self, array: Any, label_map: Mapping[int, int], what: str = "labels", flag: str = "--label-map"
    ) -> None:
        self.array, self.label_map, self.what, self.flag = array, dict(label_map), what, flag
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(np.int64)

    def _read(self, key: Key) -> np.ndarray:
        return apply_label_map(np.asarray(self.array[key]), self.label_map, self.what, self.flag)
