"""Sync twin of the device bridge. Part of :mod:`mailslot.sync` (import it from there): the
bridge forwards on the background loop while the calling thread does what it likes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._portal import PORTAL
from .devices import BridgeStats, DeviceBridge

if TYPE_CHECKING:
    from .sync import SyncMailslot


class SyncDeviceBridge:
    """Blocking twin of :class:`~mailslot.DeviceBridge`; use ``with`` or start/close."""

    def __init__(
        self, ms: SyncMailslot, devices: Iterable[str] = (), *, card: Mapping[str, Any] | None = None
    ) -> None:
        self._aio = DeviceBridge(ms.aio, devices, card=card)

    @property
    def aio(self) -> DeviceBridge:
        return self._aio

    @property
    def devices(self) -> list[str]:
        return self._aio.devices

    @property
    def stats(self) -> BridgeStats:
        return self._aio.stats

    def online(self, device: str) -> bool:
        return self._aio.online(device)

    def start(self) -> SyncDeviceBridge:
        PORTAL.call(self._aio.start())
        return self

    def add_device(self, address: str) -> None:
        PORTAL.call(self._aio.add_device(address))

    def remove_device(self, address: str) -> None:
        PORTAL.call(self._aio.remove_device(address))

    def wait_online(self, device: str, *, timeout: float | None = None) -> None:
        PORTAL.call(self._aio.wait_online(device, timeout=timeout))

    def close(self) -> None:
        PORTAL.call(self._aio.close())

    def __enter__(self) -> SyncDeviceBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["SyncDeviceBridge"]
