"""``mailslot mcp``: the MCP server of package ``mailslot-mcp``, from the SDK's command line.

The SDK does not depend on that package (nor on ``mcp``): it is looked up when the command
runs, and its own parser reads the arguments, so the options are exactly those of the
``mailslot-mcp`` console script (``--http HOST:PORT``, ``--tokens``, ``--max-wait`` ...).
"""

from __future__ import annotations

from ._member import member_command

#: The distribution that provides the server, and its module.
PACKAGE = "mailslot-mcp"
MODULE = "mailslot_mcp.__main__"

member_command(
    "mcp",
    doc="Run the MCP server for coding agents (stdio; --http HOST:PORT). Needs mailslot-mcp.",
    package=PACKAGE,
    module=MODULE,
    roots=("mailslot_mcp", "mcp"),
)
