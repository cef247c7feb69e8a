"""``mailslot tenant add|list|remove``: tenants (NATS accounts) of the local broker.

Each change rewrites ``$MAILSLOT_HOME/tenants.json``, regenerates the broker's config and
reloads it with SIGHUP: the broker keeps its pid and the other tenants stay connected.
"""

from __future__ import annotations

import re
from typing import Any

import typer
from mailslot_broker.config import TenantLimits
from mailslot_broker.errors import LauncherError
from mailslot_broker.provision import PROVISIONED_STREAMS
from mailslot_broker.tenants import add_tenant, credentials_path, list_tenants, remove_tenant
from rich.table import Table

from .app import JSON_OPTION, app, console, fail, print_json

tenant_app = typer.Typer(help="Tenants of the local broker (one NATS account each).", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")

_SIZE = re.compile(r"^\s*(-?\d+)\s*([KMGT]?)B?\s*$", re.I)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _size(value: str | None) -> int:
    """``-1`` (unlimited), bytes, or a size such as ``512M`` / ``2G``."""
    if value is None:
        return -1
    m = _SIZE.match(value)
    if not m:
        raise typer.BadParameter(f"not a size: {value!r} (e.g. 512M, 2G, or -1)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


@tenant_app.command("add")
def add(
    name: str = typer.Argument(..., help="tenant (account) name"),
    max_file: str | None = typer.Option(None, "--max-file", help="file storage quota, e.g. 2G"),
    max_memory: str | None = typer.Option(None, "--max-memory", help="memory storage quota"),
    max_streams: int = typer.Option(
        -1,
        "--max-streams",
        help=f"streams: at least {PROVISIONED_STREAMS} (what connect provisions), plus one each for "
        "the claims and state buckets, made on first use",
    ),
    max_consumers: int = typer.Option(-1, "--max-consumers", help="consumers per stream"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Add a tenant and write its credentials file (0600); the broker reloads, no restart."""
    limits = TenantLimits(
        max_memory=_size(max_memory),
        max_file=_size(max_file),
        max_streams=max_streams,
        max_consumers=max_consumers,
    )
    try:
        spec, path = add_tenant(name, limits=limits)
    except LauncherError as exc:
        fail(str(exc))
    if json_out:
        print_json({"tenant": spec.name, "user": spec.credentials.user, "credentials": str(path)})
    else:
        console.print(f"tenant [bold]{spec.name}[/bold] added; credentials in {path}")


@tenant_app.command("list")
def list_(json_out: bool = JSON_OPTION) -> None:
    """Tenants with their user, quotas and credentials file."""
    from mailslot_broker.local import mailslot_home

    home = mailslot_home()
    rows: list[dict[str, Any]] = [
        {
            "tenant": r.name,
            "user": r.credentials.user,
            "limits": r.limits,
            "credentials": str(credentials_path(home, r.name)),
        }
        for r in list_tenants(home=home)
    ]
    if json_out:
        print_json(rows)
        return
    table = Table("tenant", "user", "max_file", "max_memory", "max_streams", "max_consumers")
    for r in rows:
        lim = r["limits"]
        table.add_row(
            r["tenant"],
            r["user"],
            *(str(lim.get(k, -1)) for k in ("max_file", "max_memory", "max_streams", "max_consumers")),
        )
    console.print(table)


@tenant_app.command("remove")
def remove(name: str = typer.Argument(..., help="tenant (account) name")) -> None:
    """Remove a tenant: its clients are disconnected; its stored data stays on disk."""
    try:
        remove_tenant(name)
    except LauncherError as exc:
        fail(str(exc))
    console.print(f"tenant [bold]{name}[/bold] removed")
