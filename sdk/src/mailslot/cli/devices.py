"""``mailslot devices ADDRESS...``: run the MQTT device bridge in the foreground."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from ..devices import DeviceBridge
from .app import CREDS_OPTION, URL_OPTION, app, client, console, run


@app.command()
def devices(
    addresses: list[str] = typer.Argument(..., help="device addresses (their MQTT user names)"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
) -> None:
    """Carry mail between these MQTT devices and mailboxes until Ctrl-C or SIGTERM: device
    publishes become mail, mail to a device reaches its MQTT session (docs/deploy.md §7)."""
    run(_serve(addresses, url, credentials))


async def _serve(addresses: list[str], url: str | None, credentials: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ms = await client(url, credentials, name="mailslot-devices")
    try:
        async with DeviceBridge(ms, addresses) as bridge:
            console.print(
                f"bridging {len(bridge.devices)} MQTT device(s): {', '.join(bridge.devices)}; Ctrl-C stops",
                highlight=False,
            )
            await stop.wait()
    finally:
        await ms.close()
