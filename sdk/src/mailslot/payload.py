"""Payload encoding. The bytes on the wire are the user's; the content type says how to read them."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic
import pydantic_core
from mailslot_broker.protocol import ContentType

from .errors import DecodeError, InvalidPayload

T = TypeVar("T")


def encode(payload: Any) -> tuple[bytes, str]:
    """(bytes, content type) for a pydantic model, bytes, str or any JSON-able value."""
    if type(payload) is bytes:  # the common case first: the model check is the costly one
        return payload, ContentType.BYTES
    if isinstance(payload, pydantic.BaseModel):
        return payload.model_dump_json().encode(), ContentType.JSON
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload), ContentType.BYTES
    if isinstance(payload, str):
        return payload.encode(), ContentType.TEXT
    try:
        return pydantic_core.to_json(payload), ContentType.JSON
    except pydantic_core.PydanticSerializationError as exc:
        raise InvalidPayload(
            f"cannot encode a {type(payload).__name__}: pass a pydantic model, a JSON-able "
            "value, str or bytes"
        ) from exc


def decode_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"payload is not JSON: {exc}") from exc


def decode_text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"payload is not UTF-8 text: {exc}") from exc


def decode_model(data: bytes, model: type[T]) -> T:
    try:
        return pydantic.TypeAdapter(model).validate_json(data)
    except pydantic.ValidationError as exc:
        raise DecodeError(f"payload does not validate as {model.__name__}: {exc}") from exc
