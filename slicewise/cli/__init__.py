"""The ``slicewise`` command: a thin layer over the Python API.

Each sub-module defines its commands on the shared Typer apps below; :func:`main` turns every
:class:`~slicewise.errors.SlicewiseError` into ``error: <one line>`` and exit status 2, and exits
0 only when the command succeeded (a command's ``typer.Exit(code)`` is passed on as the status).
Results go to stdout; status lines, progress and warnings to stderr (:mod:`slicewise.utils.progress`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.exceptions import TyperException

__all__ = ["app", "audit_app", "data_app", "main", "model_app", "register_commands"]

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Transfer learning for 2.5D / 2-D biomedical segmentation (serial-section EM first).")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: list, fetch, inspect.")
model_app = typer.Typer(no_args_is_help=True, help="Models: parameters, FLOPs, saved files.")
audit_app = typer.Typer(no_args_is_help=True, help="Audit pretraining biases: first-layer weights, attribution, domain shift.")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(audit_app, name="audit")

_COMMAND_MODULES = ("data", "model", "audit", "train", "predict", "segment", "evaluate", "demo", "study", "export")
# commands that compute with torch / numpy threads get ``--threads N`` (slicewise.utils.device.configure_threads)
_THREADED = ("train", "predict", "segment", "evaluate", "demo", "study", "audit", "export")
_THREADS_HELP = ("CPU threads for torch (default: OMP_NUM_THREADS if set, else cores ÷ processes, so threads × "
                 "data-loader workers never exceed the cores).")


def _with_threads(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` with an extra ``--threads N`` option, applied by :func:`configure_threads` before it runs."""
    import functools
    import inspect
    import typing

    sig = inspect.signature(callback)
    if "threads" in sig.parameters:
        return callback
    hints = typing.get_type_hints(callback, include_extras=True)  # the modules use postponed (string) annotations
    sig = sig.replace(parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()])

    @functools.wraps(callback)
    def run(*args: Any, threads: int | None = None, **kwargs: Any) -> Any:
        from slicewise.utils.device import configure_threads

        configure_threads(threads)
        return callback(*args, **kwargs)

    hint = Annotated[int | None, typer.Option("--threads", min=1, help=_THREADS_HELP)]
    option = inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
    run.__annotations__ = {**hints, "threads": hint}
    run.__signature__ = sig.replace(parameters=[*sig.parameters.values(), option])  # type: ignore[attr-defined]
    return run


def register_commands() -> None:
    """Import the command modules (they register on the apps above) and add ``--threads`` where it applies."""
    for name in _COMMAND_MODULES:
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
    from slicewise.errors import SlicewiseError
    from slicewise.utils.progress import setup_logging

    register_commands()
    setup_logging()
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["study", "init"]:  # a sub-command of a command that takes a positional STUDY
        args = ["study init", *args[2:]]
    try:
        rc = app(args=args, prog_name="slicewise", standalone_mode=False)
    except SlicewiseError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
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
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"error: {err.strerror or err}{where}: check the path, free space and permissions", file=sys.stderr)
        sys.exit(2)
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
