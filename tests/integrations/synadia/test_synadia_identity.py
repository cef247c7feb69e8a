"""Signed ``Agent-Sender`` on prompts into Mailslot: verified senders are carried into the
mail's sender headers, forged ones are refused (401) and never become mail."""

from __future__ import annotations

import os

import mailslot
import nkeys
from conftest import BridgeFactory, ClientFactory, NatsFactory
from mailslot_synadia import naming as n
from synadia_ai.agents import (
    AGENT_SENDER_HEADER,
    AgentId,
    build_claim_header,
    serialize_sender_header,
    sign_sender_header,
    signer_from_seed,
)
from synadia_support import error_of, raw_prompt

SUBJECT = "agents.prompt.mailslot.team.coder"


def _keys(prefix: int) -> tuple[str, str]:
    """A fresh (seed, public key) pair of the kind ``prefix`` names."""
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return seed.decode(), nkeys.from_seed(bytearray(seed)).public_key.decode()


USER_SEED, USER = _keys(nkeys.PREFIX_BYTE_USER)
_, ACCOUNT = _keys(nkeys.PREFIX_BYTE_ACCOUNT)
OTHER_SEED, OTHER = _keys(nkeys.PREFIX_BYTE_USER)


async def _signed(payload: bytes, *, seed: str, user: str) -> dict[str, str]:
    header = await sign_sender_header(
        signer=signer_from_seed(seed), id=AgentId.new(ACCOUNT, user), sub=SUBJECT, payload=payload
    )
    return {AGENT_SENDER_HEADER: serialize_sender_header(header)}


async def _prompt_with(
    nc: object, payload: bytes, headers: dict[str, str]
) -> list[tuple[dict[str, str], bytes]]:
    return await raw_prompt(nc, SUBJECT, payload, headers=headers)  # type: ignore[arg-type]


async def _offline_coder(client: ClientFactory) -> mailslot.Mailslot:
    coder = await client("coder")
    await (await coder.open("coder", ttl=2)).close()
    return coder


async def test_signed_sender_is_verified_and_carried_into_the_mail(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge(wait_online=1.0)
    coder = await _offline_coder(client)
    nc = await nats_conn()
    payload = b"signed hello"
    frames = await _prompt_with(nc, payload, await _signed(payload, seed=USER_SEED, user=USER))
    assert error_of(frames) is not None  # 504: the agent is away; the mail waits
    async with await coder.open("coder") as mb:
        msg = await mb.receive(timeout=10)
        assert msg.json()["prompt"] == "signed hello"
        assert msg.headers[n.H_TRUST] == "verified"
        assert msg.headers[n.H_USER] == USER
        assert msg.headers[n.H_ACCOUNT] == ACCOUNT
        await msg.ack()


async def test_forged_sender_is_refused_and_never_mailed(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge(wait_online=1.0)
    coder = await _offline_coder(client)
    nc = await nats_conn()
    # Signed with one key while claiming another user.
    payload = b"forged hello"
    err = error_of(await _prompt_with(nc, payload, await _signed(payload, seed=OTHER_SEED, user=USER)))
    assert err is not None and err[0] == 401, err
    # Signed over other bytes than those sent.
    err = error_of(await _prompt_with(nc, b"tampered", await _signed(payload, seed=USER_SEED, user=USER)))
    assert err is not None and err[0] == 401, err
    assert (await coder.inspect("coder").stats()).total == 0


async def test_unsigned_claim_is_marked_claimed(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge(wait_online=1.0)
    coder = await _offline_coder(client)
    claim = build_claim_header(id=AgentId.new(ACCOUNT, USER))
    await _prompt_with(await nats_conn(), b"hi", {AGENT_SENDER_HEADER: serialize_sender_header(claim)})
    async with await coder.open("coder") as mb:
        msg = await mb.receive(timeout=10)
        assert msg.headers[n.H_TRUST] == "claimed"
        assert msg.headers[n.H_CLAIM] == f"{ACCOUNT}.{USER}"
        assert n.H_USER not in msg.headers
        await msg.ack()


async def test_signed_only_bridge_refuses_unsigned(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge(min_sender_trust="signed")
    coder = await _offline_coder(client)
    err = error_of(await raw_prompt(await nats_conn(), SUBJECT, b"anyone?"))
    assert err is not None and err[0] == 401, err
    assert (await coder.inspect("coder").stats()).total == 0
