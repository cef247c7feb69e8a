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


#: What a caller whose prompt is in flight gets when the bridge stops, or when the Mailslot
#: agent's service stops under it (its lease lapsed); the mail keeps waiting either way.
STOPPING = Refused(503, "bridge_stopping", "the bridge stopped; the prompt waits in its mailbox")
AGENT_LEFT = Refused(503, "agent_left", "the agent went offline; the prompt waits in its mailbox")

__all__ = ["AGENT_LEFT", "STOPPING", "Refused", "SynadiaBridgeError"]
