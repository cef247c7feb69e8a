"""Mailslot for langgraph."""

__all__: list[str] = []
