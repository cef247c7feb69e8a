"""How AutoGen ids map onto Mailslot addresses, topics and headers.

An ``AgentId`` type may hold characters a mailbox address may not (``.`` is a token separator
there; keys are free text), so names are escaped injectively: letters, digits and ``-`` stay,
anything else becomes ``_<hex>_``. Very long names are hashed. Every AutoGen routing field
travels in ``Autogen-*`` user headers (percent-encoded), never in the payload, so the payload is
exactly what AutoGen's serializer produced.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote, unquote

_SAFE = re.compile(r"[A-Za-z0-9-]")
_MAX_TOKEN = 48


def escape_token(name: str) -> str:
    """One address token for ``name``; distinct names give distinct tokens."""
    out = "".join(c if _SAFE.fullmatch(c) else f"_{ord(c):x}_" for c in name) or "_"
    if len(out) > _MAX_TOKEN:
        out = "h-" + hashlib.sha256(name.encode()).hexdigest()[:40]
    return out


def type_address(namespace: str, agent_type: str) -> str:
    """The mailbox that holds direct messages for every key of ``agent_type``."""
    return f"{namespace}.a.{escape_token(agent_type)}"


def runtime_address(namespace: str, runtime_id: str) -> str:
    """A runtime's own mailbox, where answers to its ``send_message`` calls wait."""
    return f"{namespace}.r.{escape_token(runtime_id)}"


def topic_name(namespace: str, topic_type: str) -> str:
    """The broadcast topic for an AutoGen topic type."""
    return f"{namespace}.t.{escape_token(topic_type)}"


def topic_pattern(namespace: str) -> str:
    return f"{namespace}.t.>"


def queue_group(namespace: str, agent_type: str) -> str:
    """Replicas hosting the same agent type share one queue group: one of them handles it."""
    return f"{namespace}.q.{escape_token(agent_type)}"


class H:
    """Header names (user headers: the ``Mailslot-``/``Nats-`` prefixes are the SDK's)."""

    KIND = "Autogen-Kind"  # rpc | event | result | error
    TYPE_NAME = "Autogen-Type-Name"
    CONTENT_TYPE = "Autogen-Content-Type"
    RECIPIENT_TYPE = "Autogen-Recipient-Type"
    RECIPIENT_KEY = "Autogen-Recipient-Key"
    SENDER = "Autogen-Sender"
    MESSAGE_ID = "Autogen-Message-Id"
    TOPIC_TYPE = "Autogen-Topic-Type"
    TOPIC_SOURCE = "Autogen-Topic-Source"
    COVERED = "Autogen-Covered"  # agent types a publish already reached through their mailboxes
    ERROR = "Autogen-Error"


def enc(value: str) -> str:
    return quote(value, safe="")


def dec(value: str) -> str:
    return unquote(value)


__all__ = [
    "H",
    "dec",
    "enc",
    "escape_token",
    "queue_group",
    "runtime_address",
    "topic_name",
    "topic_pattern",
    "type_address",
]
