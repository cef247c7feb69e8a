"""Helpers of the reach tests (MQTT devices, WebSocket, the browser page)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import mailslot
from mailslot_broker import NatsServer

#: Device users of the test tenant: user name = device address, password = "pw-" + name.
DEVICES = ("sensor.kitchen", "sensor.garage", "valve-1", "valve-2", "meter-1", "meter-2")


def device_password(device: str) -> str:
    return f"pw-{device}"


async def client(server: NatsServer, url: str, name: str = "tester") -> mailslot.Mailslot:
    c = server.credentials
    return await mailslot.connect(url, user=c.user, password=c.password, name=name)


def server_log(server: NatsServer) -> str:
    return Path(server.log_path).read_text(errors="replace")


class Device:
    """A blocking paho-mqtt 3.1.1 client (call it through ``asyncio.to_thread``): what a real
    device with nothing but an MQTT library does."""

    def __init__(
        self,
        port: int,
        user: str | None,
        password: str | None = None,
        *,
        client_id: str | None = None,
        clean: bool = True,
        timeout: float = 5.0,
    ) -> None:
        import paho.mqtt.client as mqtt

        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or (user or "anon").replace(".", "-"),  # MQTT ids: no dots
            clean_session=clean,
            protocol=mqtt.MQTTv311,
        )
        self.c.reconnect_delay_set(min_delay=60, max_delay=60)  # a refused publish must not loop
        if user:
            self.c.username_pw_set(user, password)
        self.result: str | None = None
        self.session_present = False
        self.disconnected: str | None = None
        self.msgs: list[tuple[str, int, bytes]] = []
        self._lock = threading.Lock()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda c, u, f, reason, p: setattr(self, "disconnected", str(reason))
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        deadline = time.monotonic() + timeout
        while self.result is None and time.monotonic() < deadline:
            time.sleep(0.01)

    def _on_connect(self, c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        self.session_present = bool(getattr(flags, "session_present", False))
        self.result = str(reason)

    def _on_message(self, c: Any, u: Any, m: Any) -> None:
        with self._lock:
            self.msgs.append((m.topic, m.qos, m.payload))

    def received(self) -> list[tuple[str, int, bytes]]:
        with self._lock:
            return list(self.msgs)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, qos=qos)
        assert done.wait(5), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, qos: int = 1, timeout: float = 5.0) -> bool:
        """True once the server acked a QoS 1 publish (stored)."""
        info = self.c.publish(topic, payload, qos=qos)
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(timeout)
        return info.is_published()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
        # paho keeps its loop's wake-up socket pair (and a dropped connection's socket) until
        # garbage collection, which then warns; close them now.
        self.c._reset_sockets()


async def device(port: int, name: str | None, password: str | None = None, **kw: Any) -> Device:
    return await asyncio.to_thread(
        Device, port, name, device_password(name) if name and password is None else password, **kw
    )
