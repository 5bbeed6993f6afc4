"""The ``slicewise`` command: a thin layer over the Python API.

Each sub-module defines its commands on the shared Typer apps below; :func:`main` turns every
:class:`~slicewise.errors.SlicewiseError` into ``error: <one line>`` and exit status 2, and exits
0 only when the command succeeded (a command's ``typer.Exit(code)`` is passed on as the status).
Results go to stdout; status lines, progress and warnings to stderr (:mod:`slicewise.utils.progress`).

**Registering a command.** A command (or command group) ``NAME`` lives in ``slicewise/cli/NAME.py``,
which registers it on :data:`app` (``@app.command("NAME")``, or a Typer added with
``app.add_typer(..., name="NAME")``); ``NAME`` is appended to :data:`_COMMAND_MODULES`, and also to
:data:`_THREADED` when it computes with torch (it then gets ``--threads N``). The module name must be
the command name: :func:`main` imports only the module of the command typed (``slicewise predict ...``
imports ``slicewise.cli.predict`` and nothing else), and every module for ``--help``, ``--version``
and unknown commands.

**Fast mistakes.** A command module imports only typer and light modules at its top; inside the
command function it first checks its arguments and paths with light modules (no torch, timm or
Lightning: :mod:`slicewise.utils.inputs`, :func:`slicewise.data.open_volume`, :mod:`slicewise.config`,
:func:`slicewise.data.io.outputs.check_output_path`) and only then imports the heavy library modules
(function-local imports: the one allowed use is this lazy loading). ``--threads`` does not import torch
either: it is applied the moment torch is first imported. So a typo in a path or a key is one
``error:`` line within about a second (``tests/cli/test_fast_errors.py``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import typing
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Annotated, Any

import typer
from typer.exceptions import TyperException

from slicewise import __version__
from slicewise.errors import SlicewiseError
from slicewise.utils import signals
from slicewise.utils.atomic import is_write_error, write_error
from slicewise.utils.device import configure_threads
from slicewise.utils.progress import setup_logging

__all__ = ["app", "audit_app", "data_app", "main", "model_app", "register_commands"]

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Transfer learning for 2.5D / 2-D biomedical segmentation (serial-section EM first).",
)
data_app = typer.Typer(no_args_is_help=True, help="Datasets: list, fetch, inspect.")
model_app = typer.Typer(no_args_is_help=True, help="Models: parameters, FLOPs, saved files.")
audit_app = typer.Typer(
    no_args_is_help=True, help="Audit pretraining biases: first-layer weights, attribution, domain shift."
)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(audit_app, name="audit")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"slicewise {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print `slicewise X.Y.Z` and exit."),
    ] = False,
) -> None:
    """Transfer learning for 2.5D / 2-D biomedical segmentation (serial-section EM first)."""


_COMMAND_MODULES = (
    "data",
    "model",
    "audit",
    "train",
    "predict",
    "segment",
    "evaluate",
    "demo",
    "study",
    "export",
    "pretrain",
)
# commands that compute with torch / numpy threads get ``--threads N`` (slicewise.utils.device.configure_threads)
_THREADED = ("train", "predict", "segment", "evaluate", "demo", "study", "audit", "export", "pretrain")
_THREADS_HELP = (
    "CPU threads for torch (default: OMP_NUM_THREADS if set, else cores ÷ processes, so threads × "
    "data-loader workers never exceed the cores)."
)


def _with_threads(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` with an extra ``--threads N`` option, applied by :func:`configure_threads` before it runs."""
    sig = inspect.signature(callback)
    if "threads" in sig.parameters:
        return callback
    hints = typing.get_type_hints(callback, include_extras=True)  # the modules use postponed (string) annotations
    sig = sig.replace(
        parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()]
    )

    @functools.wraps(callback)
    def run(*args: Any, threads: int | None = None, **kwargs: Any) -> Any:
        _configure_threads_with_torch(threads)
        return callback(*args, **kwargs)

    hint = Annotated[int | None, typer.Option("--threads", min=1, help=_THREADS_HELP)]
    option = inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
    run.__annotations__ = {**hints, "threads": hint}
    run.__signature__ = sig.replace(parameters=[*sig.parameters.values(), option])  # type: ignore[attr-defined]
    return run


class _AfterTorchImport(importlib.abc.MetaPathFinder):
    """``sys.meta_path`` hook: calls ``then()`` right after ``import torch`` has run (once), so that a
    command applies ``--threads`` without importing torch before its arguments are checked."""

    def __init__(self, then: Callable[[], Any]) -> None:
        self.then = then

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute, then = spec.loader.exec_module, self.then

        def exec_module(module: ModuleType) -> None:
            execute(module)
            then()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _configure_threads_with_torch(threads: int | None) -> None:
    """:func:`slicewise.utils.device.configure_threads` now if torch is loaded, else the moment it is imported
    (an explicit ``--threads`` is exported as ``OMP_NUM_THREADS`` at once, for child processes)."""
    if "torch" in sys.modules:
        configure_threads(threads)
        return
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterTorchImport)]
    sys.meta_path.insert(0, _AfterTorchImport(lambda: configure_threads(threads)))


def _invoked(args: Sequence[str]) -> str | None:
    """The command module that ``args`` invoke (the first word that is not an option), or None."""
    first = next((a for a in args if not a.startswith("-")), None)
    name = None if first is None else first.split()[0]
    return name if name in _COMMAND_MODULES and not {"--help", "--version"} & set(args[:1]) else None


def register_commands(names: Sequence[str] | None = None) -> None:
    """Import the command modules ``names`` (default: all; they register on the apps above) and add
    ``--threads`` where it applies."""
    for name in _COMMAND_MODULES if names is None else names:
        importlib.import_module(f"slicewise.cli.{name}")
    for info in app.registered_commands:
        if (info.name or getattr(info.callback, "__name__", "")).removesuffix("_cmd") in _THREADED and info.callback:
            info.callback = _with_threads(info.callback)
    for group in app.registered_groups:
        if group.name in _THREADED and group.typer_instance is not None:
            for info in group.typer_instance.registered_commands:
                if info.callback:
                    info.callback = _with_threads(info.callback)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    previous = signals.install()  # SIGTERM / SIGINT: resumable state kept, one line, exit 143 / 130 (utils.signals)
    args = list(sys.argv[1:] if argv is None else argv)
    command = _invoked(args)
    register_commands(None if command is None else [command])
    setup_logging()
    if args[:2] == ["study", "init"]:  # a sub-command of a command that takes a positional STUDY
        args = ["study init", *args[2:]]
    try:
        rc = app(args=args, prog_name="slicewise", standalone_mode=False)
    except SlicewiseError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except signals.Interrupted as err:
        print(f"error: {signals.interrupted_message(err)}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted; outputs already completed are kept, rerun to resume", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(1)
    except TyperException as err:  # usage errors (typer vendors click): one line with the usage, no traceback
        print(f"error: {_usage_line(err)}", file=sys.stderr)
        sys.exit(err.exit_code)
    except OSError as err:  # a disk or permission failure the library did not foresee: still one line
        if is_write_error(err) and getattr(err, "filename", None):
            print(f"error: {write_error(err.filename, err)}", file=sys.stderr)
            sys.exit(2)
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"error: {err.strerror or err}{where}: check the path, free space and permissions", file=sys.stderr)
        sys.exit(2)
    finally:
        signals.restore(previous)
    if isinstance(rc, int) and rc != 0:  # typer.Exit(code) inside a command returns here in standalone_mode=False
        sys.exit(rc)


def _usage_line(err: Exception) -> str:
    """A click usage error as one line: the message, the command's usage and where help is."""
    message = " ".join(str(err.format_message() if hasattr(err, "format_message") else err).split())
    ctx = getattr(err, "ctx", None)
    if ctx is None:
        return message
    usage = " ".join(ctx.get_usage().split()).removeprefix("Usage:").strip()
    return f"{message} (usage: {usage}; see `{ctx.command_path} --help`)"
