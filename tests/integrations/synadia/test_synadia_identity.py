"""Signed ``Agent-Sender`` on prompts into Mailslot: verified senders are carried into the
mail's sender headers, forged ones are refused (401) and never become mail."""

from __future__ import annotations

import asyncio
import os

import mailslot
import nkeys
import pytest
from conftest import BridgeFactory, ClientFactory, NatsFactory
from mailslot_synadia import Bridge
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
from testsupport import wait_for

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


async def _offline_coder(client: ClientFactory, bridge: Bridge) -> mailslot.Mailslot:
    """``coder``'s mailbox, its agent gone (lease lapsed): the bridge's front answers."""
    coder = await client("coder")
    mb = await coder.open("coder", ttl=2)
    assert bridge.exposer is not None
    exposer = bridge.exposer
    await wait_for(lambda: exposer.presence("coder") == "online", timeout=20)
    await mb.close()
    await wait_for(lambda: exposer.presence("coder") == "offline", timeout=20)
    return coder


async def test_signed_sender_is_verified_and_carried_into_the_mail(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    bridge = await make_bridge(wait_online=1.0)
    coder = await _offline_coder(client, bridge)
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
    bridge = await make_bridge(wait_online=1.0)
    coder = await _offline_coder(client, bridge)
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
    bridge = await make_bridge(wait_online=1.0)
    coder = await _offline_coder(client, bridge)
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
    bridge = await make_bridge(min_sender_trust="signed")
    coder = await _offline_coder(client, bridge)
    err = error_of(await raw_prompt(await nats_conn(), SUBJECT, b"anyone?"))
    assert err is not None and err[0] == 401, err
    assert (await coder.inspect("coder").stats()).total == 0


async def _register_with_identity(nc: object) -> object:
    """A protocol agent demo/alice/w1 registered under USER's agent ID with a valid ``id_sig``,
    as a host with that NKEY's credentials registers (raw NATS micro: no NKEY login needed)."""
    from nats.micro import ServiceConfig, add_service
    from nats.micro.service import EndpointConfig
    from synadia_ai.agents import sign_agent_id

    prompt = "agents.prompt.demo.alice.w1"
    id_sig = await sign_agent_id(
        signer=signer_from_seed(USER_SEED),
        id=AgentId.new(ACCOUNT, USER),
        agent="demo",
        owner="alice",
        prompt_subject=prompt,
    )
    meta = {"agent": "demo", "owner": "alice", "session": "w1", "protocol_version": "0.3"}
    meta |= {"user_nkey": USER, "account": ACCOUNT, "id_sig": id_sig}
    svc = await add_service(
        nc, ServiceConfig(name="agents", version="0.0.1", description="w1", metadata=meta)
    )  # type: ignore[arg-type]

    async def refuse(request: object) -> None:
        await request.respond_error("503", "not here")  # type: ignore[attr-defined]

    await svc.add_endpoint(
        EndpointConfig(
            name="prompt",
            subject=prompt,
            handler=refuse,
            queue_group="agents",
            metadata={"max_payload": "1MB", "attachments_ok": "false", "min_sender_trust": "any"},
        )
    )
    return svc


@pytest.mark.parametrize("online", [False, True], ids=["front", "agent-service"])
async def test_verified_sender_that_is_a_registered_agent_is_reachable_by_mail(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory, online: bool
) -> None:
    bridge = await make_bridge(wait_online=1.0 if not online else 10.0, reach=False)
    if online:  # the prompt goes to the agent's own AgentService (its lease lives)
        coder = await client("coder")
        mb = await coder.open("coder")
        assert bridge.exposer is not None
        exposer = bridge.exposer
        await wait_for(lambda: "coder" in exposer.served, timeout=20)
    else:  # the front
        coder = await _offline_coder(client, bridge)
    svc = await _register_with_identity(await nats_conn())
    payload = b"from w1"
    prompting = asyncio.create_task(
        _prompt_with(await nats_conn(), payload, await _signed(payload, seed=USER_SEED, user=USER))
    )
    if not online:
        await prompting  # 504 after the bound; the mail waits
        mb = await coder.open("coder")
    msg = await mb.receive(timeout=10)
    assert msg.headers[n.H_TRUST] == "verified"
    assert msg.headers[n.H_AGENT] == "sap.demo.alice.w1"  # mail there reaches the sender
    await msg.reply("ok")
    await msg.ack()
    await prompting
    await mb.close()
    await svc.stop()  # type: ignore[attr-defined]
