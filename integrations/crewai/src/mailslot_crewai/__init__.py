"""Mailslot for crewai."""

__all__: list[str] = []
