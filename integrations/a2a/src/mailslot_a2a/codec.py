"""What travels in mail: A2A requests to an agent, task events to a requester.

Both are JSON (protobuf's JSON mapping of the A2A messages) inside a small envelope, so that
``mailslot tail`` and other languages' clients can read them:

* a request: ``{"a2a": "SendMessage", "request": <SendMessageRequest>}``;
* an event: ``{"a2a": "event", "event": <StreamResponse>}``.
"""

from __future__ import annotations

from typing import Any

from a2a.server.events.event_queue import Event
from a2a.types.a2a_pb2 import SendMessageRequest, StreamResponse
from a2a.utils.errors import InvalidParamsError
from google.protobuf import json_format

SEND = "SendMessage"
EVENT = "event"


def request_payload(request: SendMessageRequest) -> dict[str, Any]:
    return {"a2a": SEND, "request": json_format.MessageToDict(request)}


def request_of(payload: Any) -> SendMessageRequest:
    """The request in a mail's payload; InvalidParamsError if it is not one."""
    if (
        not isinstance(payload, dict)
        or payload.get("a2a") != SEND
        or not isinstance(payload.get("request"), dict)
    ):
        raise InvalidParamsError(message="not an A2A SendMessage mail")
    try:
        return json_format.ParseDict(payload["request"], SendMessageRequest(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise InvalidParamsError(message=f"bad SendMessage request: {exc}") from None


def stream_payload(response: StreamResponse) -> dict[str, Any]:
    return {"a2a": EVENT, "event": json_format.MessageToDict(response)}


def stream_of(payload: Any) -> StreamResponse | None:
    """The event in a mail's payload, None if the mail is not one."""
    if (
        not isinstance(payload, dict)
        or payload.get("a2a") != EVENT
        or not isinstance(payload.get("event"), dict)
    ):
        return None
    try:
        return json_format.ParseDict(payload["event"], StreamResponse(), ignore_unknown_fields=True)
    except json_format.ParseError:
        return None


def event_of(response: StreamResponse) -> Event:
    which = response.WhichOneof("payload")
    if which == "task":
        return response.task
    if which == "message":
        return response.message
    if which == "status_update":
        return response.status_update
    if which == "artifact_update":
        return response.artifact_update
    raise ValueError(f"StreamResponse with no payload ({which!r})")


__all__ = ["EVENT", "SEND", "event_of", "request_of", "request_payload", "stream_of", "stream_payload"]
