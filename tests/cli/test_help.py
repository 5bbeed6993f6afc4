"""Every command and command group answers --help (exit 0, a usage line naming it)."""

from typing import Any

import pytest
import typer

from slicewise.cli import app, main, register_commands

register_commands()
_ROOT = typer.main.get_command(app)


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if getattr(cmd, "commands", None):  # a command group (typer vendors its own click)
            out.extend(_commands(cmd, (*prefix, name)))
    return out


COMMANDS = _commands(_ROOT)


def test_every_documented_command_exists():
    names = {" ".join(c) for c in COMMANDS}
    for expected in (
        "demo",
        "train",
        "predict",
        "segment",
        "evaluate",
        "study",
        "data list",
        "data fetch",
        "data info",
        "model info",
        "audit weights",
        "audit attribution",
        "audit shift",
    ):
        assert expected in names


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help(command, capsys):
    try:
        main([*command, "--help"])
    except SystemExit as ex:
        assert ex.code == 0
    out = capsys.readouterr().out
    assert "Usage:" in out and command[-1] in out


@pytest.mark.parametrize(
    "argv",
    [["predict", "m.pt", "in.tif", "-o", "out.zarr"], ["predict", "m.pt"], ["no-such-command"]],
    ids=["unknown option", "missing argument", "unknown command"],
)
def test_usage_mistakes_give_one_line_with_the_usage_not_a_traceback(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "usage: slicewise" in err and "--help" in err
