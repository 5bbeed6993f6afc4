"""Small shared helpers (atomic writes, progress bars, devices)."""

from slicewise.utils.atomic import atomic_path, check_output_path
from slicewise.utils.progress import progress

__all__ = ["atomic_path", "check_output_path", "progress"]
