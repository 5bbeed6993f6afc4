"""The ``slicewise`` command: a thin layer over the Python API.

Each sub-module defines its commands on the shared Typer apps below; :func:`main` turns every
:class:`~slicewise.errors.SlicewiseError` into ``error: <one line>`` and exit status 2, and exits
0 only when the command succeeded (a command's ``typer.Exit(code)`` is passed on as the status).
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.exceptions import TyperException

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Transfer learning for 2.5D / 2-D biomedical segmentation (serial-section EM first).")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: list, fetch, inspect.")
model_app = typer.Typer(no_args_is_help=True, help="Models: parameters, FLOPs, saved files.")
audit_app = typer.Typer(no_args_is_help=True, help="Audit pretraining biases: first-layer weights, attribution, domain shift.")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(audit_app, name="audit")

_COMMAND_MODULES = ("data", "model", "audit", "train", "predict", "segment", "evaluate", "demo", "study", "export")


def _register() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(f"slicewise.cli.{name}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    from slicewise.errors import SlicewiseError

    _register()
    try:
        rc = app(args=argv, prog_name="slicewise", standalone_mode=False)
    except SlicewiseError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted; outputs already completed are kept, rerun to resume", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
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
