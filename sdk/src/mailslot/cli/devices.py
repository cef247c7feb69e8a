"""``mailslot devices``: the MQTT device bridge as a process (SIGTERM or Ctrl-C stops it)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import typer
from mailslot_broker import mailslot_home
from mailslot_broker.config import DEFAULT_TENANT
from mailslot_broker.local_devices import list_devices

from ..devices import DeviceBridge
from . import _sidekicks
from .app import CREDS_OPTION, URL_OPTION, USAGE, app, client, console, fail, run

#: How often ``--issued`` looks again which device logins exist (issued or revoked meanwhile).
ISSUED_EVERY = 2.0


@app.command()
def devices(
    addresses: list[str] = typer.Argument(None, help="device addresses (their MQTT user names)"),
    issued: bool = typer.Option(
        False,
        "--issued",
        help="also every device login issued on the local broker (`mailslot device issue`), "
        "followed as logins are issued and revoked",
    ),
    tenant: str = typer.Option(DEFAULT_TENANT, "--tenant", help="with --issued: the tenant's logins"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
) -> None:
    """Carry mail between these MQTT devices and mailboxes until Ctrl-C or SIGTERM: device
    publishes become mail, mail to a device reaches its MQTT session (docs/deploy.md §7)."""
    if not addresses and not issued:
        fail("name the devices, or --issued for the local broker's device logins", USAGE)
    if not issued and url is None and _sidekicks.running(_sidekicks.DEVICES, mailslot_home(create=False)):
        # Bridges share the one uplink consumer: each would dead-letter the other's devices.
        fail(
            "the local broker's device bridge runs (mailslot up --mqtt), and a tenant has one bridge: "
            "give these devices logins with `mailslot device issue ADDRESS` and it bridges them"
        )
    run(_serve(list(addresses or []), issued, tenant, url, credentials))


def _issued(tenant: str) -> set[str]:
    return {address for t, address in list_devices(tenant=tenant, home=mailslot_home(create=False))}


async def _serve(
    addresses: list[str], issued: bool, tenant: str, url: str | None, credentials: Path | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ms = await client(url, credentials, name="mailslot-devices")
    try:
        given = set(addresses)
        async with DeviceBridge(ms, sorted(given | (_issued(tenant) if issued else set()))) as bridge:
            console.print(
                f"bridging {len(bridge.devices)} MQTT device(s): {', '.join(bridge.devices)}; Ctrl-C stops",
                highlight=False,
            )
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), ISSUED_EVERY)
                if issued and not stop.is_set():
                    await _follow(bridge, given | _issued(tenant))
    finally:
        await ms.close()


async def _follow(bridge: DeviceBridge, wanted: set[str]) -> None:
    """Serve exactly ``wanted``: logins issued since are added, revoked ones removed."""
    have = set(bridge.devices)
    for address in sorted(wanted - have):
        await bridge.add_device(address)
        console.print(f"bridging {address}", highlight=False)
    for address in sorted(have - wanted):
        await bridge.remove_device(address)
        console.print(f"no longer bridging {address}", highlight=False)
