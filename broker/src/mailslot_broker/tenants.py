"""Tenants of the local broker: persisted in ``$MAILSLOT_HOME/tenants.json``, applied by reload.

A tenant is a NATS account (its own subjects, streams and JetStream quotas; nothing crosses
accounts). The local broker's config is generated, so everything needed to generate it again
(the system password, every tenant with its credentials, limits and permissions) is kept in
one 0600 file next to ``broker.json``. Adding or removing a tenant rewrites that file, writes
the tenant's credentials file, regenerates the server config and sends SIGHUP: the server
keeps running (same pid, same connections for the other tenants).
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from pathlib import Path

from pydantic import BaseModel, Field

from .agents import AgentRecord
from .config import (
    DEFAULT_TENANT,
    SYSTEM_ACCOUNT,
    Credentials,
    Permissions,
    TenantLimits,
    TenantSpec,
)
from .errors import LauncherError
from .home import default_credentials_path, home_locked, mailslot_home, running_state
from .launcher import NatsServer
from .provision import PROVISIONED_STREAMS

TENANTS_FILE = "tenants.json"
TENANTS_DIR = "tenants"
LOCAL_SERVER_NAME = "mailslot-local"

#: Account names become config keys and subject-free identifiers: keep them plain.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_RESERVED = {SYSTEM_ACCOUNT, "$G", "GLOBAL"}


class TenantError(LauncherError):
    """A tenant name that is invalid, taken, unknown or reserved."""


def validate_tenant_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.upper() in _RESERVED:
        raise TenantError(
            f"invalid tenant name {name!r}: letters, digits, '_' and '-', starting with a "
            f"letter, at most 64 characters, not one of {sorted(_RESERVED)}"
        )
    return name


class TenantRecord(BaseModel):
    name: str
    credentials: Credentials
    limits: dict[str, int] = Field(default_factory=dict)
    permissions: dict[str, list[str]] = Field(default_factory=dict)
    #: Agent credentials issued in this tenant (:mod:`.agents`).
    agents: list[AgentRecord] = Field(default_factory=list)
    #: MQTT device logins (user name = device address) issued in this tenant (:mod:`.local_devices`).
    devices: list[Credentials] = Field(default_factory=list)

    @classmethod
    def from_spec(cls, spec: TenantSpec) -> TenantRecord:
        return cls(
            name=spec.name,
            credentials=spec.credentials,
            limits=dataclasses.asdict(spec.limits),
            permissions=dataclasses.asdict(spec.permissions),
        )

    def spec(self) -> TenantSpec:
        return TenantSpec(
            name=self.name,
            credentials=self.credentials,
            limits=TenantLimits(**self.limits),
            permissions=Permissions(**self.permissions) if self.permissions else Permissions(),
            agent_users=[a.user() for a in self.agents],
            device_users=list(self.devices),
        )


class TenantsFile(BaseModel):
    """Everything (besides ports and paths) needed to regenerate the local broker's config."""

    system_password: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    tenants: list[TenantRecord] = Field(default_factory=list)

    @classmethod
    def path(cls, home: Path) -> Path:
        return home / TENANTS_FILE

    @classmethod
    def load(cls, home: Path) -> TenantsFile | None:
        try:
            return cls.model_validate_json(cls.path(home).read_text())
        except FileNotFoundError:
            return None

    def save(self, home: Path) -> None:
        tmp = home / (TENANTS_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.model_dump_json(indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path(home))

    def specs(self) -> list[TenantSpec]:
        return [r.spec() for r in self.tenants]

    def get(self, name: str) -> TenantRecord | None:
        return next((r for r in self.tenants if r.name == name), None)


def credentials_path(home: Path, name: str) -> Path:
    if name == DEFAULT_TENANT:
        return default_credentials_path(home)
    return home / TENANTS_DIR / f"{name}.json"


def load_or_init(home: Path) -> TenantsFile:
    """The tenants file, created on first use with the default tenant (reusing an existing
    ``credentials.json`` so files handed out before stay valid)."""
    tf = TenantsFile.load(home)
    if tf is not None and tf.get(DEFAULT_TENANT) is not None:
        return tf
    tf = tf or TenantsFile()
    default = TenantSpec.generate(DEFAULT_TENANT)
    creds = default_credentials_path(home)
    if creds.exists():
        default.credentials = Credentials.read(creds)
    tf.tenants.insert(0, TenantRecord.from_spec(default))
    tf.save(home)
    return tf


def local_server(
    workdir: Path,
    *,
    port: int,
    tenants: TenantsFile,
    mqtt_port: int | None = None,
    websocket_port: int | None = None,
) -> NatsServer:
    """The local broker's :class:`NatsServer` as configured by ``tenants``."""
    return NatsServer(
        workdir,
        port=port,
        server_name=LOCAL_SERVER_NAME,
        tenants=tenants.specs(),
        system_password=tenants.system_password,
        mqtt_port=mqtt_port,
        websocket_port=websocket_port,
    )


def _apply(home: Path, tf: TenantsFile) -> int | None:
    """Regenerate the running local broker's config and reload it; its pid, or None."""
    state = running_state(home)
    if state is None:
        return None
    port = int(state.url.rsplit(":", 1)[1])
    srv = local_server(
        Path(state.workdir),
        port=port,
        tenants=tf,
        mqtt_port=state.mqtt_port,  # a reload keeps the listeners
        websocket_port=state.websocket_port,
    )
    if str(srv.config_path) != state.config_path:
        raise TenantError(f"local broker config at {state.config_path} is not where expected")
    srv.pid, srv.port = state.pid, port
    srv.reload()
    return state.pid


def _check_limits(limits: TenantLimits | None) -> None:
    """Refuse quotas no Mailslot client could work within, before anything is written."""
    n = -1 if limits is None else limits.max_streams
    if 0 <= n < PROVISIONED_STREAMS:
        raise TenantError(
            f"max_streams {n} cannot work: Mailslot provisions {PROVISIONED_STREAMS} streams at "
            "connect (the claims and state buckets take one more each, on first use)"
        )


def add_tenant(
    name: str,
    *,
    limits: TenantLimits | None = None,
    permissions: Permissions | None = None,
    home: Path | None = None,
) -> tuple[TenantSpec, Path]:
    """Add a tenant to the local broker (reloading it if it runs); returns the spec and the
    path of its 0600 credentials file."""
    validate_tenant_name(name)
    _check_limits(limits)
    home = home or mailslot_home()
    with home_locked(home):
        tf = load_or_init(home)
        if tf.get(name) is not None:
            raise TenantError(f"tenant {name!r} exists")
        spec = TenantSpec.generate(name, limits=limits, permissions=permissions)
        path = spec.credentials.write(credentials_path(home, name))
        tf.tenants.append(TenantRecord.from_spec(spec))
        tf.save(home)
        try:
            _apply(home, tf)
        except Exception:
            tf.tenants.pop()
            tf.save(home)
            path.unlink(missing_ok=True)
            raise
    return spec, path


def remove_tenant(name: str, *, home: Path | None = None) -> None:
    """Remove a tenant: its users are disconnected by the reload. Its stored streams stay on
    disk and reappear if a tenant of the same name is added again (with new credentials)."""
    home = home or mailslot_home()
    if name == DEFAULT_TENANT:
        raise TenantError(f"the default tenant {DEFAULT_TENANT} cannot be removed")
    with home_locked(home):
        tf = load_or_init(home)
        if tf.get(name) is None:
            raise TenantError(f"no tenant {name!r}")
        tf.tenants = [r for r in tf.tenants if r.name != name]
        tf.save(home)
        _apply(home, tf)
        credentials_path(home, name).unlink(missing_ok=True)


def list_tenants(*, home: Path | None = None) -> list[TenantRecord]:
    home = home or mailslot_home()
    tf = TenantsFile.load(home)
    return list(tf.tenants) if tf else []


# --- agent credentials -------------------------------------------------------------------------


def agent_credentials_path(home: Path, tenant: str, address: str) -> Path:
    """Next to the tenant's credentials file: ``credentials.agents/<address>.json`` for the
    default tenant, ``tenants/<name>.agents/<address>.json`` for the others."""
    base = credentials_path(home, tenant)
    return base.with_name(base.stem + ".agents") / f"{address}.json"


def _tenant(tf: TenantsFile, name: str) -> TenantRecord:
    rec = tf.get(name)
    if rec is None:
        raise TenantError(f"no tenant {name!r}")
    return rec
