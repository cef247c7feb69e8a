"""What every command prints: help without markup leaks, ``--version``, errors as one line
that a 100-column terminal wraps but rich does not, ``dlq show`` without Python reprs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import mailslot
import pytest
import typer
from mailslot.cli import app
from testsupport import unique
from typer.testing import CliRunner

from .conftest import Cli

#: Commands whose arguments all go to another package's parser (their help is theirs).
MEMBERS = {"a2a", "mcp"}


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        if name in MEMBERS:
            continue
        out.append((*prefix, name))
        if hasattr(cmd, "commands"):  # a group: its subcommands too
            out += _commands(cmd, (*prefix, name))
    return out


def test_help_has_no_markup_leaks_and_lists_exit_codes() -> None:
    runner = CliRunner()
    root = runner.invoke(app, ["--help"], env={"COLUMNS": "100"})
    assert root.exit_code == 0
    assert "Exit codes: 0 done, 1 error, 2 bad usage, 3 no broker, 4 timed out." in root.output
    commands = _commands(typer.main.get_command(app))
    assert {("publish",), ("ask",), ("mailboxes",), ("show",), ("purge",), ("logs",)} <= set(commands)
    for path in commands:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
        assert res.exit_code == 0, (path, res.output)
        assert "`" not in res.output, (path, res.output)
        assert "[bold]" not in res.output and "[red]" not in res.output, path


def test_version() -> None:
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output == f"mailslot {mailslot.__version__}\n"


async def test_errors_are_one_line_at_100_columns(
    ms: mailslot.Mailslot, cli_env: dict[str, str], cli: Cli
) -> None:
    cli_env["COLUMNS"] = "100"
    box = "a-rather-long-mailbox-address-" + "x" * 40
    res = await cli("show", box, "some-message-id-that-is-not-there", code=1)
    line = res.stderr
    assert line.startswith("error: no message some-message-id-that-is-not-there waiting in " + box)
    assert len(line) > 100 and line.count("\n") == 1  # one line, longer than the terminal
    usage = await cli("inbox", box, "--ack", code=2)
    assert usage.stderr == "error: --ack needs --receive\n"


@pytest.fixture
async def dead_letter(ms: mailslot.Mailslot) -> int:
    box = unique("dl")
    await ms.send(box, {"job": 3}, headers={"x-why": "test"})
    mb = await ms.open(box, ttl=30)
    m = await mb.receive(timeout=10)
    await m.term(reason="bad input")
    await mb.close()
    items = await ms.dead_letters.list(box)
    assert len(items) == 1
    return items[0].seq


async def test_dlq_show_prints_json_values_not_reprs(dead_letter: int, cli: Cli) -> None:
    human, as_json = await asyncio.gather(
        cli("dlq", "show", str(dead_letter)), cli("dlq", "show", str(dead_letter), "--json")
    )
    d = json.loads(as_json.stdout)
    assert d["payload"] == {"job": 3} and d["reason"] == "bad input"
    assert d["content_type"].startswith("application/json") and d["headers"]["x-why"] == "test"
    assert "{'" not in human.stdout and "'job'" not in human.stdout
    assert 'payload: {"job": 3}' in human.stdout and "  x-why: test" in human.stdout
