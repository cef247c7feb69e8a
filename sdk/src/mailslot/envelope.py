"""What mail and broadcasts have in common: metadata in headers, the user's bytes as payload."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

from mailslot_broker.protocol import RESERVED_HEADER_PREFIXES, ContentType, Header
from mailslot_broker.protocol.views import BODY_OMITTED
from nats.aio.msg import Msg

from . import payload as pl
from .errors import DecodeError

T = TypeVar("T")

_TEXT_DEPRECATED = "msg.text is a method now, like json() and model(): call msg.text()"


def _warn_text() -> None:
    warnings.warn(_TEXT_DEPRECATED, DeprecationWarning, stacklevel=3)


class LegacyText(str):
    """What ``msg.text`` gives: the text, callable. ``msg.text()`` (the style of ``json()``
    and ``model()``: payload decoders are methods, they may raise :class:`DecodeError`)
    returns a plain ``str``; using ``msg.text`` itself as a string, the property it once was,
    still works but warns (``DeprecationWarning``)."""

    __slots__ = ()

    def __call__(self) -> str:
        return str.__str__(self)

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("__"):
            _warn_text()
        return str.__getattribute__(self, name)


def _legacy(name: str) -> Any:
    plain = getattr(str, name)

    def warned(self: str, *args: Any) -> Any:
        _warn_text()
        return plain(self, *args)

    warned.__name__ = name
    return warned


for _name in (
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__str__",
    "__repr__", "__format__", "__add__", "__radd__", "__mul__", "__rmul__", "__mod__",
    "__len__", "__iter__", "__getitem__", "__contains__",
):  # fmt: skip
    if hasattr(str, _name):
        setattr(LegacyText, _name, _legacy(_name))


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

    def _body(self) -> bytes:
        """The payload bytes; a typed error, not an empty payload, for a message an agent's
        peek got without its body (it did not fit the sidecar's answer: receive it instead)."""
        omitted = (self._msg.headers or {}).get(BODY_OMITTED)
        if omitted is not None:
            raise DecodeError(
                f"the body of this message ({omitted} bytes) was left out of the peek: it does not "
                "fit one answer of the sidecar; receive the message to read it"
            )
        return self._msg.data

    @property
    def data(self) -> bytes:
        return self._body()

    @property
    def text(self) -> LegacyText:
        """The payload as UTF-8 text: call it, ``msg.text()`` (``DecodeError`` if it is not).
        It used to be a property: ``msg.text`` uncalled still reads as the text, with a
        ``DeprecationWarning``."""
        return LegacyText(pl.decode_text(self._body()))

    def json(self) -> Any:
        """The payload parsed as JSON (``DecodeError`` if it is not)."""
        return pl.decode_json(self._body())

    def model(self, model: type[T]) -> T:
        """Validate the payload as ``model`` (any type pydantic can validate)."""
        return pl.decode_model(self._body(), model)
