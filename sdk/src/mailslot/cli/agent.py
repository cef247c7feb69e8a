"""``mailslot agent issue|revoke|list``: per-agent credentials of the local broker.

An agent credential lets one agent use its own mailbox (and reply sub-address), send to the
addresses and topics its policy allows, and nothing else; the server enforces it. Issuing and
revoking reload the broker (SIGHUP): a revoked agent is disconnected, everybody else stays.
"""

from __future__ import annotations

import datetime as dt

import typer
from mailslot_broker.config import DEFAULT_TENANT
from mailslot_broker.errors import LauncherError
from mailslot_broker.local_agents import issue_agent, list_agents, revoke_agent
from rich.table import Table

from .app import JSON_OPTION, app, console, fail, print_json

agent_app = typer.Typer(
    help="Per-agent credentials: one mailbox each, enforced by the server.", no_args_is_help=True
)
app.add_typer(agent_app, name="agent")

_TENANT = typer.Option(DEFAULT_TENANT, "--tenant", help="tenant the agent belongs to")


@agent_app.command("issue")
def issue(
    address: str = typer.Argument(..., help="the agent's address (its mailbox)"),
    can_send: list[str] = typer.Option(
        [],
        "--can-send",
        help="address pattern it may send to ('*' one token, '>' the rest); repeat; default any",
    ),
    topics: list[str] = typer.Option([], "--topics", help="topic pattern it may use; repeat; default any"),
    tenant: str = _TENANT,
    json_out: bool = JSON_OPTION,
) -> None:
    """Issue (or replace) the credential of ADDRESS and write its 0600 file; the broker
    reloads, and the public key it signs with is published for receivers."""
    try:
        record, path = issue_agent(address, tenant=tenant, can_send=can_send or None, topics=topics or None)
    except (LauncherError, ValueError) as exc:
        fail(str(exc))
    if json_out:
        print_json({**record.summary(), "credentials": str(path)})
    else:
        console.print(f"agent [bold]{record.address}[/bold] in {tenant}: credentials in {path}")


@agent_app.command("revoke")
def revoke(address: str = typer.Argument(..., help="the agent's address"), tenant: str = _TENANT) -> None:
    """Revoke ADDRESS's credential: its connections are closed, it is refused from now on,
    and mail it signs no longer verifies."""
    try:
        revoke_agent(address, tenant=tenant)
    except LauncherError as exc:
        fail(str(exc))
    console.print(f"agent [bold]{address}[/bold] revoked")


@agent_app.command("list")
def list_(
    tenant: str | None = typer.Option(None, "--tenant", help="only this tenant"), json_out: bool = JSON_OPTION
) -> None:
    """Issued agent credentials: address, tenant, policy, public key (no secrets)."""
    rows = [a.summary() for a in list_agents(tenant=tenant)]
    if json_out:
        print_json(rows)
        return
    table = Table("address", "tenant", "can send", "topics", "public key", "issued")
    for r in rows:
        issued = dt.datetime.fromtimestamp(float(r["issued_at"]), dt.timezone.utc)  # type: ignore[arg-type]
        table.add_row(
            str(r["address"]),
            str(r["tenant"]),
            " ".join(r["can_send"]),  # type: ignore[arg-type]
            " ".join(r["topics"]),  # type: ignore[arg-type]
            str(r["public_key"])[:12] + "…",
            issued.strftime("%Y-%m-%d %H:%M:%SZ"),
        )
    console.print(table)
