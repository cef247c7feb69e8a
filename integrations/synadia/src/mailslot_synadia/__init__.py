"""The Synadia Agent Protocol (v0.3) over Mailslot: Mailslot agents become protocol agents
that take prompts while offline, and protocol agents become reachable by durable mail.

See docs/synadia.md for the mapping."""

from .bridge import Bridge
from .errors import Refused, SynadiaBridgeError
from .mail import PromptMail
from .naming import PROTOCOL_VERSION, parse_reach_address, reach_address

__all__ = [
    "PROTOCOL_VERSION",
    "Bridge",
    "PromptMail",
    "Refused",
    "SynadiaBridgeError",
    "parse_reach_address",
    "reach_address",
]
