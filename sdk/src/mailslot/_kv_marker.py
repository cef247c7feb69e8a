"""A KV delete/purge marker written only while the key is at the revision its headers name:
how claims release and the state store delete, without a read-then-write race."""

from __future__ import annotations

from collections.abc import Mapping

from mailslot_broker import protocol as p
from nats.js import errors as jserr

from ._boundary import boundary
from .link import Link


async def write_marker(link: Link, subject: str, headers: Mapping[str, str], *, ttl: float) -> bool:
    """Publish the marker (it lives ``ttl`` s); False if the key had moved on (the server
    refused the expected last sequence), any other error raised typed."""
    with boundary():
        try:
            await link.js.publish(subject, b"", headers=dict(headers), msg_ttl=ttl)
        except jserr.APIError as exc:
            if p.jsapi.is_wrong_last_sequence(exc):
                return False
            raise
    return True
