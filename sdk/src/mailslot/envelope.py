"""What mail and broadcasts have in common: metadata in headers, the user's bytes as payload."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from mailslot_broker.protocol import RESERVED_HEADER_PREFIXES, ContentType, Header
from nats.aio.msg import Msg

from . import payload as pl

T = TypeVar("T")


class Envelope:
    """Header and payload accessors shared by :class:`Message` and :class:`Broadcast`.

    Foreign clients may omit Mailslot headers: metadata then reads as ``None``, and the
    payload accessors raise :class:`DecodeError` when the bytes are not what was asked for.
    """

    __slots__ = ()
    _msg: Msg
    headers: Mapping[str, str]

    @property
    def sender(self) -> str | None:
        return self.headers.get(Header.FROM)

    @property
    def content_type(self) -> str:
        return self.headers.get(Header.CONTENT_TYPE, ContentType.BYTES)

    @property
    def user_headers(self) -> dict[str, str]:
        """Headers set by the sender through ``headers=`` (protocol headers removed)."""
        return {
            k: v
            for k, v in self.headers.items()
            if not k.startswith(RESERVED_HEADER_PREFIXES) and k != Header.TRACEPARENT
        }

    @property
    def data(self) -> bytes:
        return self._msg.data

    @property
    def text(self) -> str:
        return pl.decode_text(self._msg.data)

    def json(self) -> Any:
        return pl.decode_json(self._msg.data)

    def model(self, model: type[T]) -> T:
        """Validate the payload as ``model`` (any type pydantic can validate)."""
        return pl.decode_model(self._msg.data, model)
