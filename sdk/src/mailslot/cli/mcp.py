"""``mailslot mcp``: the MCP server of package ``mailslot-mcp``, from the SDK's command line.

The SDK does not depend on that package (nor on ``mcp``): it is looked up when the command
runs, and its own parser reads the arguments, so the options are exactly those of the
``mailslot-mcp`` console script (``--http HOST:PORT``, ``--tokens``, ``--max-wait`` ...).
"""

from __future__ import annotations

import importlib

import typer

from .app import app, err_console

#: The distribution that provides the server, and its module.
PACKAGE = "mailslot-mcp"
MODULE = "mailslot_mcp.__main__"


@app.command(
    "mcp",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def mcp(ctx: typer.Context) -> None:
    """Run the MCP server for coding agents (stdio; --http HOST:PORT). Needs mailslot-mcp."""
    try:
        server = importlib.import_module(MODULE)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("mailslot_mcp", "mcp"):
            raise
        err_console.print(
            f"[red]error:[/red] `mailslot mcp` needs the package {PACKAGE} "
            f"(missing module {exc.name!r}): pip install {PACKAGE}"
        )
        raise typer.Exit(1) from None
    server.main(list(ctx.args), prog="mailslot mcp")
