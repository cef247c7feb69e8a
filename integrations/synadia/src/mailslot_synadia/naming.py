"""How the two namespaces meet: protocol subjects for mailboxes, mailbox addresses for protocol
agents, and the Mailslot headers a bridged prompt carries. One place, so docs/synadia.md and
both directions agree."""

from __future__ import annotations

from typing import Any

from mailslot import Priority
from synadia_ai.agents import AgentSubject, Envelope

#: The protocol version this member speaks (the Synadia SDKs pin the wire format).
PROTOCOL_VERSION = "0.3"
#: The ``agent`` token mailboxes get unless their card names another.
DEFAULT_AGENT = "mailslot"
#: The ``owner`` token when neither the card nor the bridge names one.
DEFAULT_OWNER = "local"
#: Mail to ``sap.<agent>.<owner>.<name>`` goes to the protocol agent with those subject tokens.
REACH_PREFIX = "sap"
#: The card key (``card.metadata["synadia"]``) an agent uses to pick its protocol tokens
#: (``agent``, ``owner``, ``name``) or to stay unexposed (``expose: false``).
CARD_KEY = "synadia"
#: How long a bridge instance's inbox (``<bridge mailbox>.<instance>``) is kept after that
#: instance stopped: late chunks for its callers' streams, which are gone, then go to dead letters.
INBOX_KEEP = 3600.0
#: The envelope field that sets the Mailslot priority of a prompt's mail.
PRIORITY_FIELD = "priority"

#: Headers on the mail a prompt becomes.
H_BRIDGE = "Synadia-Bridge"  # the bridge instance's inbox that carries chunks and queries back
H_SUBJECT = "Synadia-Subject"  # the prompt subject the caller used
H_TRUST = "Synadia-Sender-Trust"  # verified | claimed | anonymous
H_USER = "Synadia-Sender-User"  # the signing user NKEY (verified only)
H_ACCOUNT = "Synadia-Sender-Account"  # its account, as signed (verified only)
H_CLAIM = "Synadia-Sender-Claim"  # an unsigned claim, display-grade only
H_NAME = "Synadia-Sender-Name"  # the display name in the header (metadata only, never proof)
H_AGENT = "Synadia-Sender-Agent"  # the ``sap.*`` address of the agent a verified sender is
#: On a Mailslot agent's final reply: how many chunks it streamed before it (``PromptMail``).
H_CHUNKS = "Synadia-Chunks"


def subject_for(address: str, card_meta: Any, *, agent: str, owner: str) -> AgentSubject:
    """The protocol tokens of the mailbox ``address``: the card's ``synadia`` metadata wins,
    then the bridge's defaults; the name is the address (the SDK escapes what NATS tokens
    cannot carry, e.g. dots, as base64url)."""
    meta = card_meta if isinstance(card_meta, dict) else {}
    return AgentSubject.new(
        agent=str(meta.get("agent") or agent),
        owner=str(meta.get("owner") or owner),
        session_name=str(meta.get("name") or address),
    )


def exposed(card_meta: Any) -> bool:
    """False for a card that opted out (``expose: false``), as the bridge's own mailboxes do."""
    return not (isinstance(card_meta, dict) and card_meta.get("expose") is False)


def reach_address(subject: AgentSubject) -> str:
    """The Mailslot address that stands for the protocol agent on ``subject``."""
    return f"{REACH_PREFIX}.{subject.agent}.{subject.owner}.{subject.session_name}"


def parse_reach_address(address: str) -> AgentSubject | None:
    """The protocol agent an address stands for, or None if it is not a ``sap.*`` address."""
    parts = address.split(".")
    if len(parts) != 4 or parts[0] != REACH_PREFIX or not all(parts[1:]):
        return None
    return AgentSubject(agent=parts[1], owner=parts[2], session_name=parts[3])


def priority_of(envelope: Envelope) -> Priority:
    """The Mailslot priority a prompt asks for (``priority`` envelope field, default normal);
    ValueError for one Mailslot does not know."""
    raw = envelope.extras.get(PRIORITY_FIELD, "normal")
    if isinstance(raw, str):
        for prio in Priority:
            if prio.label == raw.lower():
                return prio
    raise ValueError(f"unknown priority {raw!r}: one of {[p.label for p in Priority]}")


def prompt_payload(envelope: Envelope) -> dict[str, Any]:
    """The mail body of a prompt: the text, attachments as sent, and the other envelope fields."""
    body: dict[str, Any] = {"prompt": envelope.prompt}
    if envelope.attachments:
        body["attachments"] = [a.model_dump(mode="json") for a in envelope.attachments]
    extras = {k: v for k, v in envelope.extras.items() if k != PRIORITY_FIELD}
    if extras:
        body["extras"] = extras
    return body


def reply_text(payload: Any, fallback: str) -> str:
    """The answer text of a Mailslot reply: a JSON string, ``{"text"|"answer"|"response": ...}``,
    or else the raw text."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        for key in ("text", "answer", "response"):
            if isinstance(payload.get(key), str):
                return str(payload[key])
    return fallback
