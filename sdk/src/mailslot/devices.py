"""The device bridge: MQTT devices as ordinary Mailslot addresses.

A device speaks MQTT 3.1.1 to nats-server's MQTT listener and nothing else: it cannot hold a
lease, create consumers or set headers. The bridge does that on its behalf, in one client:

- **downlink**: for each device it opens the device's mailbox (an ordinary address whose card
  metadata says ``transport: mqtt``). While the device is connected (one of its MQTT session
  consumers is push-bound) it receives the device's mail highest priority first and
  republishes each message into the server's MQTT session stream, then acks it. While the
  device is away its mail waits in its mailbox like any agent's (retention, dead letters), so
  a device that reconnects gets what waited in priority order; a message forwarded just as
  the device dropped waits in its persistent session instead.
- **uplink**: one durable consumer on ``mbox.dev.>`` (stored by the mail stream, so device
  mail waits there while the bridge is down) turns each device publish into ordinary mail
  from the device, or into a dead letter with the reason, then acks it.

The topic layout is :mod:`mailslot_broker.protocol.devices` (``docs/protocol.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailslot_broker import deadletters as dl
from mailslot_broker import protocol as p
from mailslot_broker.protocol import devices as dp
from nats.aio.msg import Msg
from nats.js import api
from nats.js import errors as jserr

from ._boundary import address as check_address
from ._mailbox_undo import kv_entry
from .errors import InvalidInput, MailslotError, PayloadTooLarge, Timeout

if TYPE_CHECKING:
    from .client import Mailslot
    from .mailbox import Mailbox

log = logging.getLogger(__name__)

#: How long one uplink pull waits before checking for shutdown.
_PULL_WAIT = 1.0
#: How often the bridge looks which devices are connected (one request for all of them):
#: the delay before a reconnected device gets what waited.
_PRESENCE_EVERY = 0.2


@dataclass
class BridgeStats:
    """What the bridge did since it started (for tests, metrics and the bench)."""

    uplinked: int = 0
    downlinked: int = 0
    #: ``(reason, subject)`` of every device publish that became a dead letter.
    rejected: list[tuple[str, str]] = field(default_factory=list)
    #: Forwarding attempts that failed and are retried (an outage, a refused publish).
    errors: int = 0


class DeviceBridge:
    """Carries mail between MQTT devices and mailboxes; use ``async with`` or start/close."""

    def __init__(
        self, ms: Mailslot, devices: Iterable[str] = (), *, card: Mapping[str, Any] | None = None
    ) -> None:
        self._ms = ms
        self._js = ms._link.js
        card = dict(card or {})
        card["metadata"] = {**card.get("metadata", {}), "transport": dp.TRANSPORT_MQTT}
        self._card = card
        self._initial = [check_address(d) for d in devices]
        self._mailboxes: dict[str, Mailbox] = {}
        self._online: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._downlinks: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self.stats = BridgeStats()

    @property
    def devices(self) -> list[str]:
        return sorted(self._mailboxes)

    async def __aenter__(self) -> DeviceBridge:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> DeviceBridge:
        """Open the devices' mailboxes, then forward: device mail that waited while no bridge
        ran is judged against the full list of devices, never against half of it."""
        self._spawn(self._presence())
        try:
            for device in self._initial:
                await self.add_device(device)
            sub = await self._js.pull_subscribe(
                dp.uplink_subject_all(),
                durable=dp.UPLINK_CONSUMER,
                stream=p.MAIL_STREAM,
                config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, max_deliver=-1, ack_wait=30),
            )
        except BaseException:
            await self.close()
            raise
        self._spawn(self._uplink(sub))
        return self

    async def add_device(self, address: str) -> None:
        """Serve ``address`` as a device: open its mailbox and forward its mail to MQTT."""
        address = check_address(address)
        if address in self._mailboxes:
            return
        mb = await self._ms.open(address, card=self._card)
        self._mailboxes[address] = mb
        self._online.setdefault(address, asyncio.Event())
        self._downlinks[address] = self._spawn(self._downlink(address, mb))

    async def remove_device(self, address: str) -> None:
        """Stop serving ``address`` (its login was revoked, say): its forwarding stops and its
        mailbox closes, so its mail waits like any absent agent's; its publishes from now on
        are dead-lettered as from an unknown sender."""
        task = self._downlinks.pop(address, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        mb = self._mailboxes.pop(address, None)
        self._online.pop(address, None)
        if mb is not None:
            await mb.close()

    async def close(self) -> None:
        """Stop forwarding; the device mailboxes close (their mail waits for the next bridge)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for mb in self._mailboxes.values():
            await mb.close()
        self._mailboxes.clear()
        self._downlinks.clear()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- downlink ------------------------------------------------------------------------------

    def online(self, device: str) -> bool:
        """Whether ``device`` is connected with a session that follows its downlink."""
        ev = self._online.get(device)
        return ev is not None and ev.is_set()

    async def wait_online(self, device: str, *, timeout: float | None = None) -> None:
        """Until ``device`` (served by this bridge) is connected; :class:`Timeout` after
        ``timeout`` seconds."""
        ev = self._online.get(device)
        if ev is None:
            raise InvalidInput(f"{device!r} is not a device of this bridge")
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"device {device} did not connect within {timeout:g} s") from None

    async def _presence(self) -> None:
        while not self._closed:
            try:
                online = await self._connected_devices()
            except Exception as exc:  # keep the last view; the next round tries again
                log.debug("device presence unknown: %r", exc)
            else:
                for device, ev in self._online.items():
                    if device in online:
                        ev.set()
                    else:
                        ev.clear()
            await asyncio.sleep(_PRESENCE_EVERY)

    async def _connected_devices(self) -> set[str]:
        nc, offset = self._ms._link.nc, 0
        out: set[str] = set()
        while True:
            reply = await nc.request(
                dp.session_consumers_api(), json.dumps({"offset": offset}).encode(), timeout=5
            )
            page = json.loads(reply.data)
            if "error" in page:  # no MQTT session yet: the stream does not exist
                return out
            consumers = page.get("consumers") or []
            for c in consumers:
                device = dp.device_of_session_filter(c.get("config", {}).get("filter_subject", ""))
                if device and c.get("push_bound"):
                    out.add(device)
            offset += len(consumers)
            if not consumers or offset >= int(page.get("total", 0)):
                return out

    async def _downlink(self, device: str, mb: Mailbox) -> None:
        online = self._online[device]
        while not self._closed:
            await online.wait()
            try:
                await self._downlink_one(device, mb, online)
            except Exception:  # an outage, a refused publish: the mail stays unacked, is redelivered
                log.exception("mail for device %s not forwarded; it is retried", device)
                self.stats.errors += 1
                await asyncio.sleep(_PULL_WAIT)

    async def _downlink_one(self, device: str, mb: Mailbox, online: asyncio.Event) -> None:
        try:
            msg = await mb.receive(timeout=_PULL_WAIT)
        except Timeout:
            return
        if not online.is_set():  # it went away while we waited: back in its mailbox
            await msg.nak()
            return
        subject = dp.downlink_subject(device, msg.priority, msg.sender, msg.id)
        await self._js.publish(
            dp.mqtt_session_subject(subject), msg.data, headers={dp.MQTT_PUB_HEADER: "1"}, timeout=5.0
        )
        await msg.ack()
        self.stats.downlinked += 1

    # -- uplink --------------------------------------------------------------------------------

    async def _uplink(self, sub: Any) -> None:
        try:
            while not self._closed:
                try:
                    batch = await sub.fetch(64, timeout=_PULL_WAIT)
                except (asyncio.TimeoutError, jserr.FetchTimeoutError):
                    continue
                except Exception:  # reconnecting: nats-py resubscribes, try again
                    log.debug("device uplink pull failed", exc_info=True)
                    await asyncio.sleep(_PULL_WAIT)
                    continue
                for raw in batch:
                    try:
                        await self._forward(raw)
                    except Exception:  # unacked: redelivered after the ack wait
                        log.exception("device mail %s not forwarded; it is retried", raw.subject)
                        self.stats.errors += 1
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _forward(self, raw: Msg) -> None:
        seq = int(raw.metadata.sequence.stream)
        try:
            sender, priority, to = dp.parse_uplink(raw.subject)
            if sender not in self._mailboxes:
                raise dp.DeviceTopicError(
                    dp.REASON_UNKNOWN_SENDER, f"{sender!r} is not a device of this bridge"
                )
            if to not in self._mailboxes and not await self._has_mailbox(to):
                raise dp.DeviceTopicError(dp.REASON_NO_MAILBOX, f"nobody opened {to!r}")
            await self._ms.send(
                to, raw.data, priority=priority, sender=sender, idempotency_key=dp.uplink_msg_id(seq)
            )
            self.stats.uplinked += 1
        except dp.DeviceTopicError as exc:
            await self._reject(raw, seq, exc.reason, str(exc))
        except PayloadTooLarge as exc:
            await self._reject(raw, seq, dp.REASON_OVERSIZE, str(exc), keep_body=False)
        except MailslotError:
            log.exception("device mail at seq %d not forwarded; it is retried", seq)
            self.stats.errors += 1
            await raw.nak(delay=1.0)
            return
        await raw.ack_sync()

    async def _has_mailbox(self, address: str) -> bool:
        entry = await kv_entry(self._js, p.MAILBOXES_BUCKET, address)
        return entry is not None and entry.live

    async def _reject(self, raw: Msg, seq: int, reason: str, detail: str, *, keep_body: bool = True) -> None:
        """Dead-letter a device publish: under its recipient when the topic names a valid one,
        else under :data:`~mailslot_broker.protocol.devices.REJECT_ADDRESS`."""
        tokens = raw.subject.split(".")
        address, priority = dp.REJECT_ADDRESS, p.Priority.NORMAL
        with contextlib.suppress(ValueError, IndexError):
            address = p.validate_address(dp.from_mqtt_level(tokens[4]))
        with contextlib.suppress(ValueError, IndexError):
            priority = p.parse_priority(tokens[3])
        headers = dl.dead_letter_headers({}, mail_seq=seq, reason=reason, deliveries=1)
        headers[p.Header.TO] = address
        headers[dp.DEAD_DETAIL_HEADER] = detail[:500]
        headers[dp.DEAD_SUBJECT_HEADER] = raw.subject[:500]
        if not keep_body:
            headers[p.Header.DEAD_BODY_LOST] = "true"
        await dl.publish_dead_letter(
            self._js,
            headers,
            raw.data if keep_body else b"",
            mail_seq=seq,
            address=address,
            priority=priority,
            reason=reason,
            deliveries=1,
            body_lost=not keep_body,
        )
        self.stats.rejected.append((reason, raw.subject))
        log.warning("device mail dead-lettered (%s): %s", reason, detail)


__all__ = ["BridgeStats", "DeviceBridge"]
