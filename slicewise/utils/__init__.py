"""Small shared helpers: atomic writes, progress bars, devices, text tables. Nothing here knows a file format
(that is :mod:`slicewise.data.io`), and nothing here imports from ``slicewise.data``.

Matplotlib figures (:mod:`slicewise.utils.figures`) and the download cache
(:mod:`slicewise.utils.cache`) are imported from their modules.
"""

from slicewise.utils.atomic import atomic_file, check_writable_folder, claim_output, write_json
from slicewise.utils.device import resolve_device
from slicewise.utils.progress import progress
from slicewise.utils.table import num, text_table, write_csv

__all__ = [
    "atomic_file",
    "check_writable_folder",
    "claim_output",
    "progress",
    "num",
    "resolve_device",
    "text_table",
    "write_csv",
    "write_json",
]
