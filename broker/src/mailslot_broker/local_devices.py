"""MQTT device logins on the local broker: issue, revoke, list, each one call.

A device logs in over MQTT with a user name that *is* its address; the server lets that user
publish only its own uplink (``mbox/dev/<address>/...``) and subscribe only its own downlink
(:func:`.config.device_permissions`), so the sender level a device writes is checked by the
server, not just claimed. The tenant's own credential still works over MQTT (for tests and
one-device setups) but may then claim any sender. Issuing and revoking rewrite the broker's
config and reload a running broker: a revoked device is disconnected, everybody else stays.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from . import protocol as p
from .config import DEFAULT_TENANT, Credentials
from .home import home_locked, mailslot_home
from .tenants import TenantError, TenantsFile, _apply, _tenant, credentials_path, load_or_init


def device_credentials_path(home: Path, tenant: str, address: str) -> Path:
    """Next to the tenant's credentials file: ``credentials.devices/<address>.json``."""
    base = credentials_path(home, tenant)
    return base.with_name(base.stem + ".devices") / f"{address}.json"


def _user_names(tf: TenantsFile) -> set[str]:
    """Every user name the server config holds: user names are unique across accounts."""
    names = set()
    for t in tf.tenants:
        names.add(t.credentials.user)
        names.update(a.credentials.user for a in t.agents)
        names.update(d.user for d in t.devices)
    return names


def issue_device(
    address: str, *, tenant: str = DEFAULT_TENANT, home: Path | None = None
) -> tuple[Credentials, Path]:
    """Issue (or replace) the MQTT login of device ``address`` (its user name) on the local
    broker; returns the credentials and the 0600 file they are in. A running broker reloads;
    one that is down has the login at its next start (``mailslot up --mqtt``)."""
    try:
        p.validate_address(address)
    except Exception as exc:
        raise TenantError(f"invalid device address {address!r}: {exc}") from None
    home = home or mailslot_home()
    with home_locked(home):
        tf = load_or_init(home)
        rec = _tenant(tf, tenant)
        ours = {d.user for d in rec.devices}
        if address not in ours and address in _user_names(tf):
            raise TenantError(
                f"user name {address!r} is taken on this broker (a device logs in as its address)"
            )
        creds = Credentials(tenant=tenant, user=address, password=secrets.token_urlsafe(24))
        rec.devices = [d for d in rec.devices if d.user != address] + [creds]
        tf.save(home)
        path = creds.write(device_credentials_path(home, tenant, address))
        _apply(home, tf)
    return creds, path


def revoke_device(address: str, *, tenant: str = DEFAULT_TENANT, home: Path | None = None) -> None:
    """Remove device ``address``'s login: the reload closes its MQTT session and refuses it."""
    home = home or mailslot_home()
    with home_locked(home):
        tf = load_or_init(home)
        rec = _tenant(tf, tenant)
        if not any(d.user == address for d in rec.devices):
            raise TenantError(f"no device login for {address!r} in tenant {tenant!r}")
        rec.devices = [d for d in rec.devices if d.user != address]
        tf.save(home)
        _apply(home, tf)
        device_credentials_path(home, tenant, address).unlink(missing_ok=True)


def list_devices(*, tenant: str | None = None, home: Path | None = None) -> list[tuple[str, str]]:
    """(tenant, device address) of every issued device login."""
    tf = TenantsFile.load(home or mailslot_home())
    if tf is None:
        return []
    return [(t.name, d.user) for t in tf.tenants if tenant in (None, t.name) for d in t.devices]


__all__ = ["device_credentials_path", "issue_device", "list_devices", "revoke_device"]
