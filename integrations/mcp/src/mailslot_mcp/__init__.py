"""Mailslot over MCP: mailboxes for coding agents."""

__all__: list[str] = []
