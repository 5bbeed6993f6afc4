"""Progress and status: one place decides how long work is shown. Everything goes to stderr.

Results (tables, paths, scores) are the only thing a command writes to stdout; progress bars,
status lines ("training uniform (100 steps)", "predicting block 3/12") and log messages go to
stderr, so ``slicewise evaluate ... > scores.txt`` captures the results alone.

* On a terminal: tqdm bars (transient) and rich-styled status lines.
* Not a terminal (a batch job's log, a pipe): no bars; instead one plain line per 10 % of the work
  or per 30 s, whichever comes first (``desc: 30/120 (25%), 12 s``), so the log shows the job is
  alive, and status lines with a UTC time stamp.
* ``SLICEWISE_NO_PROGRESS=1`` hides bars and the periodic lines; status lines stay.

The CLI installs the handler (:func:`setup_logging`) on the ``slicewise`` logger only; library users
who configure logging themselves see the same messages as ordinary ``logging`` records.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
log = logging.getLogger(__name__)
STATUS_LOGGER = "slicewise.status"
EVERY_FRACTION = 0.1  # periodic line every 10 % of the work ...
EVERY_SECONDS = 30.0  # ... or every 30 s, whichever comes first


def stderr_is_terminal() -> bool:
    """Whether bars can be drawn: stderr is a TTY."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _quiet() -> bool:
    return bool(os.environ.get("SLICEWISE_NO_PROGRESS"))


class _Periodic:
    """Counts finished items and logs one line every ``EVERY_FRACTION`` of ``total`` or ``EVERY_SECONDS``."""

    def __init__(self, desc: str, total: int | None, unit: str = "", announce: bool = True) -> None:
        self.desc, self.total, self.unit = desc or "working", total, unit
        self.start = self.last_time = time.monotonic()
        self.last_n = 0
        if (
            announce and total is not None and total >= 2
        ):  # the phase's status line: work has started (inputs are checked)
            log.info("%s: %d%s to do", self.desc, total, unit or " items")

    def step(self, n: int) -> None:
        if self.total is not None and self.total < 2:  # one item: its own status line says enough
            return
        now = time.monotonic()
        due_time = now - self.last_time >= EVERY_SECONDS
        step = max(1, (self.total or 0) * EVERY_FRACTION)
        due_frac = bool(self.total) and (n - self.last_n) >= step
        if due_time or due_frac or (self.total is not None and n == self.total and n != self.last_n):
            self.last_time, self.last_n = now, n
            log.info("%s", self.line(n, now))

    def line(self, n: int, now: float) -> str:
        where = f"{n}/{self.total} ({100 * n / self.total:.0f}%)" if self.total else f"{n}"
        return f"{self.desc}: {where}{self.unit}, {now - self.start:.0f} s"


def progress(
    iterable: Iterable[T], desc: str = "", total: int | None = None, disable: bool | None = None
) -> Iterator[T]:
    """Iterate ``iterable`` with progress on stderr: a tqdm bar on a terminal, else periodic log lines.

    ``disable=True`` shows nothing; ``None`` (default) decides from the terminal and
    ``SLICEWISE_NO_PROGRESS``.
    """
    if disable or _quiet():
        yield from iterable
        return
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if stderr_is_terminal():
        yield from tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)
        return
    ticker = _Periodic(desc, total)
    for n, item in enumerate(iterable, 1):
        yield item
        ticker.step(n)


@contextlib.contextmanager
def progress_counter(
    desc: str, total: int, unit: str = "", disable: bool | None = None
) -> Iterator[Callable[[int], None]]:
    """Progress of work that is counted, not iterated (tiles computed inside blocks): yields ``tick(n)``, to be
    called with each number of finished items. Shown like :func:`progress`: a tqdm bar on a terminal, else one
    line per 10 % of ``total`` or per 30 s; nothing with ``disable=True`` or ``SLICEWISE_NO_PROGRESS``."""
    if disable or _quiet():
        yield lambda n: None
        return
    if stderr_is_terminal():
        bar = tqdm(desc=desc, total=total, unit=unit.strip() or "it", leave=False, dynamic_ncols=True, file=sys.stderr)
        try:
            yield bar.update
        finally:
            bar.close()
        return
    ticker = _Periodic(desc, total, unit)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += int(n)
        ticker.step(done)

    yield tick


LIGHTNING_NOTICE_LOGGERS = (
    "lightning_utilities.core.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "pytorch_lightning.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
    "pytorch_lightning.accelerators.cuda",
    "lightning.pytorch.accelerators.cuda",
)
"""The loggers through which Lightning prints its start-up notices ("GPU available: …", "TPU available: …",
"LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES", "💡 Tip: … litlogger", "`Trainer.fit` stopped: …") as INFO records."""


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's INFO notices (its banner and advertisement tips) while slicewise builds and fits its
    own Trainer: a filter on :data:`LIGHTNING_NOTICE_LOGGERS` for the duration of the block, removed afterwards
    (warnings still pass; the loggers' levels and handlers are left alone). Like
    ``models.encoders._capture_timm_load``, a scoped change: no logger of another library is changed for good."""
    drop = _DropNotices()
    loggers = [logging.getLogger(name) for name in LIGHTNING_NOTICE_LOGGERS]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


def status(message: str, *args: Any) -> None:
    """One status line per phase on stderr (``training uniform (100 steps)``); %-style ``args``."""
    logging.getLogger(STATUS_LOGGER).info(message, *args)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at emit time (so pytest's capture and redirections see it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            if stderr_is_terminal() and not os.environ.get("NO_COLOR"):
                from rich.console import Console
                from rich.markup import escape

                style = {logging.WARNING: "yellow", logging.ERROR: "red"}.get(record.levelno, "cyan")
                Console(file=sys.stderr, highlight=False, soft_wrap=True).print(f"[{style}]{escape(msg)}[/{style}]")
            else:
                sys.stderr.write(msg + "\n")
                sys.stderr.flush()
        except Exception:  # noqa: BLE001 - a broken stderr must not end the computation
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            msg = f"{record.levelname.lower()}: {msg}"
        if not stderr_is_terminal():
            stamp = time.strftime("%H:%M:%S", time.gmtime(record.created))
            msg = f"[{stamp}] {msg}"
        return msg


def setup_logging(level: int = logging.INFO) -> None:
    """Send the ``slicewise`` loggers (status lines, periodic progress, warnings) to stderr (CLI only).

    Idempotent; touches no other library's logger.
    """
    root = logging.getLogger("slicewise")
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        root.addHandler(handler)
    root.setLevel(level)


def lightning_progress(total_steps: int, what: str = "training") -> Any | None:
    """A Lightning callback for training progress on stderr: a tqdm bar on a terminal (Lightning's own
    bar writes to stdout), else one log line per 10 % of ``total_steps`` or 30 s; ``None`` when
    ``SLICEWISE_NO_PROGRESS`` is set."""
    if _quiet():
        return None
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import TQDMProgressBar
    from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm

    if stderr_is_terminal():

        class StderrBar(TQDMProgressBar):
            """Lightning's bar, built while stdout points at stderr (Lightning hard-codes ``sys.stdout``)."""

            def init_sanity_tqdm(self) -> Tqdm:
                with contextlib.redirect_stdout(sys.stderr):
                    return super().init_sanity_tqdm()

            def init_train_tqdm(self) -> Tqdm:
                with contextlib.redirect_stdout(sys.stderr):
                    return super().init_train_tqdm()

            def init_validation_tqdm(self) -> Tqdm:
                with contextlib.redirect_stdout(sys.stderr):
                    return super().init_validation_tqdm()

            def init_predict_tqdm(self) -> Tqdm:
                with contextlib.redirect_stdout(sys.stderr):
                    return super().init_predict_tqdm()

            def init_test_tqdm(self) -> Tqdm:
                with contextlib.redirect_stdout(sys.stderr):
                    return super().init_test_tqdm()

        return StderrBar()

    class LogSteps(pl.Callback):
        """One line per 10 % of the optimizer steps or per 30 s, with the last logged loss."""

        def __init__(self) -> None:
            self.ticker: _Periodic | None = None

        def on_train_start(self, trainer: Any, *args: Any) -> None:
            self.ticker = _Periodic(what, total_steps, " steps", announce=False)  # train() printed the status line

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.is_global_zero and self.ticker is not None:
                self.ticker.step(int(trainer.global_step))

    return LogSteps()
