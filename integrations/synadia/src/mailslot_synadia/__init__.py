"""The Synadia Agent Protocol over Mailslot."""

__all__: list[str] = []
