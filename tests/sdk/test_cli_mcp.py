"""``mailslot mcp``: the MCP server from the SDK's command line, with the options of the
``mailslot-mcp`` console script, and a clear message when that package is missing."""

from __future__ import annotations

import subprocess

from testsupport import PYTHON, mailslot_cli


def test_mcp_help_lists_the_servers_options() -> None:
    out = mailslot_cli("mcp", "--help").stdout
    assert out.startswith("usage: mailslot mcp")
    for option in ("--http HOST:PORT", "--tokens FILE", "--max-wait", "--ack-wait", "--lease-ttl", "--idle"):
        assert option in out
    assert "mcp" in mailslot_cli("--help").stdout


def test_mcp_without_the_package_names_it() -> None:
    # What an SDK-only install sees: the module cannot be imported.
    blocked = "import sys; sys.modules['mailslot_mcp'] = None; from mailslot.cli import main; main()"
    r = subprocess.run(
        [PYTHON, "-c", blocked, "mcp", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 1
    assert "mailslot-mcp" in r.stderr and "pip install mailslot-mcp" in r.stderr
    assert "Traceback" not in r.stderr
