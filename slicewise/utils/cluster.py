"""Starting or joining a dask.distributed cluster: the one ``--dask`` address grammar of predict and evaluate.

``"local:N"`` starts a ``LocalCluster`` of N worker processes with one dask thread each (``"local"`` alone: one
worker per core); each worker's BLAS / torch threads are ``max(1, cores // N)``, so N workers never oversubscribe
the machine, and its memory limit is ``"auto"`` (the machine's memory / N). ``"tcp://host:port"`` (or ``tls://…``,
``host:port``, a ``Client`` or a cluster object such as dask-jobqueue's ``SLURMCluster``) joins a running scheduler,
which is left running afterwards. ``distributed`` is imported when a cluster is started, not with this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from slicewise.errors import InputError

#: how long joining a running scheduler may take before it is reported unreachable.
CONNECT_TIMEOUT = "20s"


def cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def parse_address(address: str) -> int | str:
    """``"local:N"`` → N workers (``"local"`` → one per core); a scheduler address → the address itself."""
    text = str(address).strip()
    if text == "local" or text.startswith("local:"):
        n = text.partition(":")[2] or str(cores())
        if not n.isdigit() or int(n) < 1:
            raise InputError(
                f"--dask {text!r}: give local:N with N >= 1 workers (e.g. local:2), or a scheduler "
                f"address such as tcp://host:8786"
            )
        return int(n)
    if "://" in text or (":" in text and text.rsplit(":", 1)[1].isdigit()):
        return text
    raise InputError(f"--dask {text!r} is neither local:N nor a scheduler address: use e.g. local:2 or tcp://host:8786")


def start_local_cluster(n_workers: int, **kwargs: Any) -> Any:
    """The ``local:N`` cluster: N worker processes, one dask thread each, ``cores // N`` BLAS / torch threads each."""
    from distributed import LocalCluster

    threads = str(max(1, cores() // n_workers))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    options: dict[str, Any] = {
        "n_workers": n_workers,
        "threads_per_worker": 1,
        "processes": True,
        "memory_limit": "auto",
        "dashboard_address": None,
        "silence_logs": logging.WARNING,
        "env": env,
    }
    options.update(kwargs)
    return LocalCluster(**options)


@contextlib.contextmanager
def connect(address: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address`` (see :func:`parse_address`; a Client or cluster object is used
    as is). A ``local:N`` cluster lives as long as the context; a joined scheduler is left running."""
    from distributed import Client

    if isinstance(address, Client):
        yield address
        return
    if hasattr(address, "scheduler_address"):
        address = address.scheduler_address
    target = parse_address(address)
    if isinstance(target, int):
        with start_local_cluster(target) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(target, timeout=CONNECT_TIMEOUT)
    except OSError as err:
        raise InputError(
            f"cannot reach the dask scheduler at {target} ({str(err).splitlines()[0][:120]}): "
            f"start it (dask scheduler, SLURMCluster, ...) and pass its address"
        ) from None
    with client:
        yield client
