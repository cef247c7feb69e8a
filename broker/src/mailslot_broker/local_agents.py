"""Agent credentials on the local broker: issue, revoke, list, each one call.

Apart from :mod:`.tenants` because issuing needs a running local broker (:mod:`.local`), and
:mod:`.local` builds on :mod:`.tenants`: this module sits above both, so the arrows point one
way. The credential itself (user, permissions, nkey) is :mod:`.agents`.
"""

from __future__ import annotations

from pathlib import Path

from . import agents as _agents
from .agents import AgentRecord
from .config import DEFAULT_TENANT
from .home import home_locked, mailslot_home, running_state
from .local import ensure_local_broker
from .tenants import (
    TenantError,
    TenantRecord,
    _apply,
    _tenant,
    agent_credentials_path,
    list_tenants,
    load_or_init,
)


def _publish_in_thread(home: Path, tenant: TenantRecord, record: AgentRecord | None, address: str) -> None:
    """Publish (or withdraw) an agent's public key with the tenant's credential (the callers
    have made sure the local broker runs)."""
    state = running_state(home)
    if state is None:
        return
    _agents.run_on_tenant(state.url, tenant.credentials, record, address)


def issue_agent(
    address: str,
    *,
    tenant: str = DEFAULT_TENANT,
    can_send: list[str] | None = None,
    topics: list[str] | None = None,
    home: Path | None = None,
) -> tuple[AgentRecord, Path]:
    """Issue an agent credential on the local broker (started if it does not run): the user
    is added by a reload, the public key published; returns the record and the path of the
    0600 credentials file to hand to the agent. Issuing again for the same address replaces
    the credential (the old one is refused from the reload on)."""
    home = home or mailslot_home()
    try:
        record = _agents.issue_record(tenant, address, can_send=can_send, topics=topics)
    except ValueError as exc:
        raise TenantError(str(exc)) from None
    ensure_local_broker(home=home)
    with home_locked(home):
        tf = load_or_init(home)
        rec = _tenant(tf, tenant)
        path = record.credentials.write(agent_credentials_path(home, tenant, record.address))
        # The broker keeps no signing seed: only the agent's file has it.
        kept = record.model_copy(update={"credentials": record.credentials.model_copy(update={"seed": None})})
        rec.agents = [a for a in rec.agents if a.address != record.address] + [kept]
        tf.save(home)
        _apply(home, tf)
        _publish_in_thread(home, rec, record, record.address)
    return record, path


def revoke_agent(address: str, *, tenant: str = DEFAULT_TENANT, home: Path | None = None) -> AgentRecord:
    """Revoke an agent credential: the reload disconnects its connections and refuses it
    from then on (other users keep theirs); its public key is withdrawn (the local broker is
    started for that if it does not run)."""
    home = home or mailslot_home()
    ensure_local_broker(home=home)  # the key is withdrawn through it
    with home_locked(home):
        tf = load_or_init(home)
        rec = _tenant(tf, tenant)
        found = next((a for a in rec.agents if a.address == address), None)
        if found is None:
            raise TenantError(f"no agent credential for {address!r} in tenant {tenant!r}")
        rec.agents = [a for a in rec.agents if a.address != address]
        tf.save(home)
        _apply(home, tf)
        _publish_in_thread(home, rec, None, address)
        agent_credentials_path(home, tenant, address).unlink(missing_ok=True)
    return found


def list_agents(*, tenant: str | None = None, home: Path | None = None) -> list[AgentRecord]:
    """Issued agent credentials (of one tenant, or all)."""
    return [a for r in list_tenants(home=home) if tenant in (None, r.name) for a in r.agents]


__all__ = ["issue_agent", "list_agents", "revoke_agent"]
