"""Torch device resolution and CPU thread settings shared by every command."""

from __future__ import annotations

import logging
import os
from typing import Any

from slicewise.errors import InputError

log = logging.getLogger(__name__)


def resolve_device(device: Any = None) -> Any:
    """``None``/``"auto"`` → CUDA when available, else CPU; anything else checked as a ``torch.device``.

    Raises a one-line :class:`InputError` for a name torch does not know or for CUDA on a
    machine without it.
    """
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device {device!r} is not a torch device: use auto, cpu, cuda or cuda:N") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available here: use --device cpu")
    return d


_explicit_threads: int | None = None


def available_cores() -> int:
    """CPU cores this process may run on (affinity / cgroup-restricted where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_threads(threads: int | None = None, processes: int = 1) -> int:
    """Set torch's intra-op threads so that threads × ``processes`` never exceeds the cores.

    ``threads`` (``--threads N``) wins and is remembered for the rest of the process; otherwise a
    number given earlier with ``--threads``, else ``OMP_NUM_THREADS`` when set (the usual HPC
    convention), else ``max(1, cores // processes)``. ``processes`` counts the processes that
    compute at once on this machine (the main process plus data-loader workers). Oversubscribing
    (on 2 cores, 2 threads in each of 3 processes) made a training step 5× slower. An explicit
    ``threads`` is also exported as ``OMP_NUM_THREADS`` for child processes. Returns the number set.
    """
    import torch

    global _explicit_threads
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads {threads}: give a positive number of CPU threads")
        _explicit_threads = int(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # child processes (study --gpus cells, dask workers) inherit it
    cores = available_cores()
    if _explicit_threads is not None:
        n, why = _explicit_threads, "--threads"
    elif os.environ.get("OMP_NUM_THREADS", "").strip().isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        n, why = int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    else:
        n, why = max(1, cores // max(1, processes)), f"{cores} cores / {max(1, processes)} process(es)"
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
        log.debug("torch threads: %d (%s)", n, why)
    return n


def cap_workers(num_workers: int, what: str = "data.num_workers") -> int:
    """Data-loader worker processes capped at cores − 1 (one core stays with the main process);
    logs a warning when the cap applies."""
    cores = available_cores()
    cap = max(0, cores - 1)
    if num_workers > cap:
        log.warning("%s=%d exceeds the %d CPU cores here: using %d worker process(es)", what, num_workers, cores, cap)
        return cap
    return num_workers
