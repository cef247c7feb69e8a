"""Mailslot for autogen."""

__all__: list[str] = []
