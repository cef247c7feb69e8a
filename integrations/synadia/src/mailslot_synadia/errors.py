"""The member's exceptions: one tree, rooted at :class:`SynadiaBridgeError`."""

from __future__ import annotations

from typing import Any


class SynadiaBridgeError(Exception):
    """Base of everything this member raises."""


class Refused(SynadiaBridgeError):
    """A prompt the bridge answers with a protocol error frame (``Nats-Service-Error-Code``):
    the code, a one-line description, and a JSON body ``{error, message, ...}``."""

    def __init__(self, code: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code} {error}: {message}")
        self.code = code
        self.error = error
        self.message = message
        self.extra = extra

    @property
    def description(self) -> str:
        """What goes in ``Nats-Service-Error`` (one line, at most 200 characters), the same
        on both prompt paths; only the front's frame also has the JSON body."""
        return f"{self.error}: {self.message}".replace("\n", " ")[:200]

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.extra}


__all__ = ["Refused", "SynadiaBridgeError"]
