"""Agent credentials: a user per agent inside a tenant's account, limited to its own mailbox.

An agent credential is an ordinary NATS user (user + password) whose permissions the server
enforces (:func:`.config.agent_permissions`, derived from :mod:`.protocol.principals`), plus
an ed25519 nkey seed the agent signs its mail with. The server config holds the user; the
tenant's key bucket (``MAILSLOT_KEYS``) holds the public key, so any receiver in the tenant
can check a signed sender. Revoking removes the user (a config reload disconnects it) and the
public key (mail it signed before no longer verifies).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import secrets
import time

import nkeys
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from pydantic import BaseModel, Field

from . import protocol as p
from .config import AgentUser, Credentials
from .protocol import principals
from .provision import provision_agent_writes


class AgentRecord(BaseModel):
    """An issued agent credential as the tenants file keeps it."""

    address: str
    credentials: Credentials
    public_key: str
    can_send: list[str] = Field(default_factory=lambda: [principals.ANY])
    topics: list[str] = Field(default_factory=lambda: [principals.ANY])
    issued_at: float = Field(default_factory=time.time)

    def user(self) -> AgentUser:
        return AgentUser(credentials=self.credentials, can_send=list(self.can_send), topics=list(self.topics))

    def summary(self) -> dict[str, object]:
        """What ``mailslot agent list`` shows: no password, no seed."""
        return {
            "address": self.address,
            "tenant": self.credentials.tenant,
            "user": self.credentials.user,
            "public_key": self.public_key,
            "can_send": self.can_send,
            "topics": self.topics,
            "issued_at": self.issued_at,
        }


def agent_user_name(tenant: str, address: str) -> str:
    """A NATS user name per (tenant, address): unique in the server, no dots needed."""
    digest = hashlib.sha256(address.encode()).hexdigest()[:16]
    return f"{tenant.lower()}_agent_{digest}"


def new_seed() -> tuple[str, str]:
    """A fresh user nkey: (seed, public key)."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    kp = nkeys.from_seed(seed)
    return seed.decode(), kp.public_key.decode()


def check_patterns(patterns: list[str] | None, what: str) -> list[str]:
    """Address or topic patterns: literal tokens, ``*`` for one, ``>`` last (``>`` = any)."""
    if not patterns:
        return [principals.ANY]
    out = []
    for pat in patterns:
        probe = pat.replace("*", "x").replace(">", "x")
        p.validate_address(probe) if what == "address" else p.validate_topic(probe)
        tokens = pat.split(".")
        if (
            ">" in tokens[:-1]
            or any(t != "*" and "*" in t for t in tokens)
            or any(t != ">" and ">" in t for t in tokens)
        ):
            raise ValueError(f"invalid {what} pattern {pat!r}: '*' is one whole token, '>' the last")
        out.append(pat)
    return out


def issue_record(
    tenant: str, address: str, *, can_send: list[str] | None = None, topics: list[str] | None = None
) -> AgentRecord:
    """A new agent credential for ``address`` in ``tenant`` (not yet known to any server)."""
    address = p.validate_address(address)
    if p.is_reply_address(address):
        raise ValueError(f"{address!r} is a reply sub-address: issue the credential for its owner")
    seed, public = new_seed()
    creds = Credentials(
        tenant=tenant,
        user=agent_user_name(tenant, address),
        password=secrets.token_urlsafe(24),
        address=address,
        seed=seed,
    )
    return AgentRecord(
        address=address,
        credentials=creds,
        public_key=public,
        can_send=check_patterns(can_send, "address"),
        topics=check_patterns(topics, "topic"),
    )


def keys_bucket_config() -> KeyValueConfig:
    return KeyValueConfig(
        bucket=principals.KEYS_BUCKET,
        description="Mailslot agents' public signing keys: key = address",
        history=1,
        storage=StorageType.FILE,
        direct=True,
    )


async def publish_key(js: JetStreamContext, record: AgentRecord) -> None:
    """Put the agent's public key in the tenant's key bucket (created on first use), with a
    tenant credential."""
    kv = await js.create_key_value(keys_bucket_config())
    value = {"public_key": record.public_key, "issued_at": record.issued_at}
    await kv.put(record.address, json.dumps(value).encode())


async def withdraw_key(js: JetStreamContext, address: str) -> None:
    """Remove a revoked agent's public key: what it signed reads unverified from now on."""
    try:
        kv = await js.key_value(principals.KEYS_BUCKET)
    except Exception:  # no bucket: nothing was published
        return
    await kv.purge(address)


async def apply_on_tenant(url: str, tenant: Credentials, record: AgentRecord | None, address: str) -> None:
    """Publish ``record``'s key (or withdraw ``address``'s when None) as the tenant."""
    import nats

    nc = await nats.connect(url, user=tenant.user, password=tenant.password, connect_timeout=10)
    try:
        js = nc.jetstream()
        if record is not None:
            # Where the agent writes its lease and record (the buckets would take rollups).
            await provision_agent_writes(js)
            await publish_key(js, record)
        else:
            await withdraw_key(js, address)
    finally:
        await nc.close()


def run_on_tenant(url: str, tenant: Credentials, record: AgentRecord | None, address: str) -> None:
    """:func:`apply_on_tenant` from synchronous code, also when the caller's thread runs an
    event loop (a thread of its own runs it)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, apply_on_tenant(url, tenant, record, address)).result()


__all__ = [
    "AgentRecord",
    "agent_user_name",
    "apply_on_tenant",
    "check_patterns",
    "issue_record",
    "keys_bucket_config",
    "new_seed",
    "publish_key",
    "run_on_tenant",
    "withdraw_key",
]
