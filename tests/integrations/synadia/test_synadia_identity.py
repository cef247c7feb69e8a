"""Signed ``Agent-Sender`` on prompts into Mailslot: verified senders are carried into the
mail's sender headers (and, for a registered protocol agent, into the mail's sender, vouched
for by the bridge's key), forged ones are refused (401) and never become mail."""

from __future__ import annotations

import asyncio
import os

import mailslot
import nkeys
import pytest
from conftest import BridgeFactory, ClientFactory, NatsFactory
from mailslot import signing
from mailslot_broker.agents import new_seed
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
BRIDGE = "synadia.bridge.mailslot.team"  # the bridge mailbox of owner "team"


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
        # An NKEY that is no registered agent has no address: the bridge mailbox sends.
        assert n.H_AGENT not in msg.headers and msg.sender == BRIDGE
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
    config = ServiceConfig(name="agents", version="0.0.1", description="w1", metadata=meta)
    svc = await add_service(nc, config)  # type: ignore[arg-type]

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


async def _vouching_bridge(make_bridge: BridgeFactory, client: ClientFactory, **options: object) -> Bridge:
    """A bridge with a key of its own, which the operator (a tenant client) let speak for
    ``sap.>`` senders."""
    seed, public = new_seed()
    await signing.grant_vouching(await client("ops"), BRIDGE, public_key=public, speaks_for=["sap.>"])
    return await make_bridge(signing_seed=seed, **options)


@pytest.mark.parametrize("online", [False, True], ids=["front", "agent-service"])
async def test_verified_sender_that_is_a_registered_agent_is_reachable_by_mail(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory, online: bool
) -> None:
    """The registered agent is the mail's sender, verified, the bridge its voucher."""
    bridge = await _vouching_bridge(make_bridge, client, wait_online=1.0 if not online else 10.0, reach=False)
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
    assert (msg.sender, msg.sender_verified, msg.verified_by) == ("sap.demo.alice.w1", True, BRIDGE)
    await msg.reply("ok")
    await msg.ack()
    await prompting
    await mb.close()
    await svc.stop()  # type: ignore[attr-defined]


async def test_without_a_bridge_key_the_mapped_sender_reads_unverified(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    """The bridge checked the caller, but nothing lets a receiver check the bridge."""
    bridge = await make_bridge(wait_online=1.0, reach=False)
    coder = await _offline_coder(client, bridge)
    svc = await _register_with_identity(await nats_conn())
    payload = b"from w1, unvouched"
    await _prompt_with(await nats_conn(), payload, await _signed(payload, seed=USER_SEED, user=USER))
    async with await coder.open("coder") as mb:
        msg = await mb.receive(timeout=10)
        assert msg.sender == "sap.demo.alice.w1"
        assert (msg.sender_verified, msg.unverified_reason, msg.verified_by) == (False, "unsigned", None)
        await msg.ack()
    await svc.stop()  # type: ignore[attr-defined]


async def test_forged_synadia_headers_from_a_non_bridge_read_unverified(
    make_bridge: BridgeFactory, client: ClientFactory
) -> None:
    """Anyone may write ``Synadia-Sender-*`` headers and name a ``sap.*`` sender; only the
    bridge's delegated key makes such mail verified."""
    await _vouching_bridge(make_bridge, client, reach=False)
    forger = await client("forger")
    headers = {n.H_TRUST: "verified", n.H_USER: USER, n.H_AGENT: "sap.demo.alice.w1"}
    await forger.send("target", "trust me", sender="sap.demo.alice.w1", headers=headers)
    rogue = await client("rogue")  # a key of its own, granted nothing
    signing.vouch(rogue, "rogue", new_seed()[0])
    await rogue.send("target", "vouched by rogue", sender="sap.demo.alice.w1", headers=headers)
    async with await (await client("target")).open("target") as mb:
        got = {}
        for _ in range(2):
            msg = await mb.receive(timeout=10)
            got[msg.text()] = (msg.sender, msg.sender_verified, msg.unverified_reason)
            await msg.ack()
    assert got == {
        "trust me": ("sap.demo.alice.w1", False, "unsigned"),
        "vouched by rogue": ("sap.demo.alice.w1", False, "no public key for the voucher"),
    }
