"""User-facing errors.

Every problem a user can fix (bad path, bad value, wrong shape) is raised as a
:class:`SlicewiseError` whose message is one line naming the problem and the fix.
The CLI prints it as ``error: <message>`` and exits with status 2, never a traceback.
"""

from __future__ import annotations


class SlicewiseError(Exception):
    """A one-line, user-fixable error: ``str(err)`` names the problem and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class InputError(SlicewiseError):
    """Bad input data: missing file, unsupported format, wrong shape, dtype or values."""


class ConfigError(SlicewiseError):
    """Bad configuration value or unknown key."""


class WeightsError(SlicewiseError):
    """Pretrained weights cannot be had (offline, unknown tag, shape mismatch)."""


class OfflineError(SlicewiseError):
    """A download was needed but the network is unreachable."""


class WriteError(SlicewiseError):
    """An output could not be written (full disk, quota, file-size limit, read-only or failing disk): one line
    naming the output and, where known, the space it needs. Not an :class:`InputError`: the input was fine, so
    the previous output and any resumable state are kept."""
