"""Each named JetStream error code, provoked on a real nats-server, and the predicates on it."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from mailslot_broker.cluster import NatsCluster
from mailslot_broker.protocol import jsapi
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.api import StreamConfig


@pytest.fixture
async def js(nc: Client) -> JetStreamContext:
    js = nc.jetstream()
    await js.add_stream(name="S", subjects=["s.>"], allow_direct=True)
    return js


async def test_get_of_a_missing_sequence_is_no_message_found(js: JetStreamContext) -> None:
    with pytest.raises(jserr.NotFoundError) as info:
        await js.get_msg("S", seq=99)
    assert info.value.err_code == jsapi.NO_MESSAGE_FOUND
    assert jsapi.is_no_message(info.value) and jsapi.is_already_gone(info.value)
    with pytest.raises(jserr.NotFoundError) as info:
        await js.get_msg("S", subject="s.none")
    assert info.value.err_code == jsapi.NO_MESSAGE_FOUND


async def test_delete_of_a_deleted_or_purged_message_is_already_gone(js: JetStreamContext) -> None:
    for _ in range(3):
        await js.publish("s.a", b"x")
    assert await js.delete_msg("S", 1)
    with pytest.raises(jserr.APIError) as info:
        await js.delete_msg("S", 1)
    assert info.value.err_code == jsapi.STREAM_MSG_DELETE_FAILED
    assert "no message found" in (info.value.description or "")
    assert jsapi.is_already_gone(info.value) and not jsapi.is_no_message(info.value)
    await js.purge_stream("S")
    with pytest.raises(jserr.APIError) as info:
        await js.delete_msg("S", 2)
    assert info.value.err_code == jsapi.STREAM_MSG_DELETE_FAILED
    assert jsapi.is_already_gone(info.value)


async def test_delete_failed_for_another_reason_is_not_already_gone(js: JetStreamContext) -> None:
    """10057 is reused: past the end of the stream its description is "stream store EOF"."""
    await js.publish("s.a", b"x")
    with pytest.raises(jserr.APIError) as info:
        await js.delete_msg("S", 99)
    assert info.value.err_code == jsapi.STREAM_MSG_DELETE_FAILED
    assert "no message found" not in (info.value.description or "")
    assert not jsapi.is_already_gone(info.value)


async def test_stream_name_in_use_and_stream_not_found(js: JetStreamContext) -> None:
    with pytest.raises(jserr.BadRequestError) as info:
        await js.add_stream(name="S", subjects=["other.>"])
    assert info.value.err_code == jsapi.STREAM_NAME_IN_USE
    assert not jsapi.is_already_gone(info.value)
    with pytest.raises(jserr.NotFoundError) as info:
        await js.stream_info("NOPE")
    assert info.value.err_code == jsapi.STREAM_NOT_FOUND
    with pytest.raises(jserr.NotFoundError) as info:
        await js.consumer_info("NOPE", "c")
    assert info.value.err_code == jsapi.STREAM_NOT_FOUND


async def test_consumer_not_found(js: JetStreamContext) -> None:
    with pytest.raises(jserr.NotFoundError) as info:
        await js.consumer_info("S", "nobody")
    assert info.value.err_code == jsapi.CONSUMER_NOT_FOUND
    assert not jsapi.is_no_message(info.value)


async def test_wrong_last_sequence(js: JetStreamContext) -> None:
    await js.publish("s.k", b"1")
    with pytest.raises(jserr.BadRequestError) as info:
        await js.publish("s.k", b"2", headers={"Nats-Expected-Last-Subject-Sequence": "7"})
    assert info.value.err_code == jsapi.WRONG_LAST_SEQUENCE
    assert jsapi.is_wrong_last_sequence(info.value)


async def test_replicas_on_a_single_server_are_refused(js: JetStreamContext) -> None:
    with pytest.raises(jserr.APIError) as info:
        await js.add_stream(name="R", subjects=["r.>"], num_replicas=3)
    assert info.value.err_code == jsapi.REPLICAS_NOT_SUPPORTED
    assert jsapi.is_replicas_refused(info.value)
    with pytest.raises(jserr.APIError) as info:
        await js.update_stream(StreamConfig(name="S", subjects=["s.>"], allow_direct=True, num_replicas=3))
    assert info.value.err_code == jsapi.REPLICAS_NOT_SUPPORTED
    assert jsapi.is_replicas_refused(info.value)


async def test_more_storage_than_the_server_has(js: JetStreamContext) -> None:
    with pytest.raises(jserr.APIError) as info:
        await js.add_stream(name="BIG", subjects=["big.>"], max_bytes=10**15)
    assert info.value.err_code == jsapi.STORAGE_RESOURCES_EXCEEDED
    assert not jsapi.is_replicas_refused(info.value)


async def test_more_replicas_than_cluster_nodes_has_no_suitable_peers(tmp_path: Path) -> None:
    with NatsCluster(tmp_path / "cluster", size=3) as cluster:
        c = cluster.credentials
        conn = await nats.connect(cluster.urls, user=c.user, password=c.password)
        try:
            js = conn.jetstream()
            with pytest.raises(jserr.APIError) as info:
                await js.add_stream(name="R5", subjects=["r5.>"], num_replicas=5)
            assert info.value.err_code == jsapi.CLUSTER_NO_PEERS
            assert jsapi.is_replicas_refused(info.value)
        finally:
            await conn.close()


def test_predicates_ignore_errors_without_an_err_code() -> None:
    for exc in (ValueError("no message found"), jserr.NotFoundError()):
        assert jsapi.err_code(exc) is None
        assert not jsapi.is_no_message(exc)
        assert not jsapi.is_already_gone(exc)
        assert not jsapi.is_wrong_last_sequence(exc)
        assert not jsapi.is_replicas_refused(exc)
        assert not jsapi.is_jetstream_disabled(exc)
