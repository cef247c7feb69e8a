"""A2A over Mailslot."""

__all__: list[str] = []
