"""``mailslot device issue|revoke|list``: MQTT device logins of the local broker.

A device logs in with its address as user name and may then send only as itself and receive
only its own mail (the server enforces it). Not to be confused with ``mailslot devices``, the
bridge that carries the mail between those devices and mailboxes.
"""

from __future__ import annotations

import typer
from mailslot_broker.config import DEFAULT_TENANT
from mailslot_broker.errors import LauncherError
from mailslot_broker.local_devices import issue_device, list_devices, revoke_device
from rich.table import Table

from .app import JSON_OPTION, app, console, fail, print_json

device_app = typer.Typer(
    help="MQTT device logins: each device sends and receives only as itself.", no_args_is_help=True
)
app.add_typer(device_app, name="device")

_TENANT = typer.Option(DEFAULT_TENANT, "--tenant", help="tenant the device belongs to")


@device_app.command("issue")
def issue(
    address: str = typer.Argument(..., help="the device's address (its MQTT user name)"),
    tenant: str = _TENANT,
    json_out: bool = JSON_OPTION,
) -> None:
    """Issue (or replace) the MQTT login of ADDRESS and write it to a 0600 file; a running
    broker reloads (the old password is refused from then on)."""
    try:
        creds, path = issue_device(address, tenant=tenant)
    except LauncherError as exc:
        fail(str(exc))
    if json_out:
        print_json({"address": address, "tenant": tenant, "user": creds.user, "credentials": str(path)})
    else:
        console.print(
            f"device [bold]{address}[/bold] in {tenant}: MQTT user {creds.user}, password in {path}"
        )


@device_app.command("revoke")
def revoke(address: str = typer.Argument(..., help="the device's address"), tenant: str = _TENANT) -> None:
    """Remove ADDRESS's login: its MQTT session is closed and it is refused from now on."""
    try:
        revoke_device(address, tenant=tenant)
    except LauncherError as exc:
        fail(str(exc))
    console.print(f"device [bold]{address}[/bold] revoked")


@device_app.command("list")
def list_(
    tenant: str | None = typer.Option(None, "--tenant", help="only this tenant"), json_out: bool = JSON_OPTION
) -> None:
    """Issued device logins (no passwords)."""
    rows = [{"tenant": t, "address": a} for t, a in list_devices(tenant=tenant)]
    if json_out:
        print_json(rows)
        return
    table = Table("address", "tenant")
    for r in rows:
        table.add_row(r["address"], r["tenant"])
    console.print(table)
