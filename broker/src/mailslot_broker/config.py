"""Generation of nats-server configuration files: accounts, users and JetStream limits.

Even the local default tenant gets an account with a user and a password: a broker that
starts open would teach users a habit that breaks the day they add a second tenant.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .protocol import devices as _devices
from .protocol import principals as _principals

SYSTEM_ACCOUNT = "SYS"
DEFAULT_TENANT = "MAILSLOT"


class Credentials(BaseModel):
    """What a client needs to log in to one account. Stored as JSON with 0600 permissions."""

    tenant: str
    user: str
    password: str
    #: Set for an agent credential (:mod:`.agents`): the one mailbox it may use, and the
    #: nkey seed it signs its mail with (its public key is in the tenant's key bucket).
    address: str | None = None
    seed: str | None = None

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:  # a tenant's file stays as it was: no agent fields
            fh.write(self.model_dump_json(indent=2, exclude_none=True))
        os.chmod(path, 0o600)
        return path

    @classmethod
    def read(cls, path: Path | str) -> Credentials:
        return cls.model_validate_json(Path(path).read_text())


@dataclass(frozen=True)
class NatsLogin:
    """How to log in with ``nats.connect``: its keyword options, and the tenant a Mailslot
    credentials file names (None for a NATS ``.creds`` file or plain user/password)."""

    options: dict[str, Any]
    tenant: str | None = None
    #: An agent credential's address and signing seed (None for a tenant credential).
    agent: str | None = None
    seed: str | None = None


def nats_login(
    credentials: str | Path | None,
    *,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> NatsLogin:
    """The login for a credentials file (Mailslot JSON, or a NATS ``.creds`` file) or a
    user/password/token; a JSON file's user and password win. Raises OSError or ValueError
    when a JSON file cannot be read."""
    opts: dict[str, Any] = {}
    tenant = agent = seed = None
    if credentials is not None:
        path = Path(credentials)
        if path.suffix == ".creds":
            opts["user_credentials"] = str(path)
        else:
            creds = Credentials.read(path)
            user, password, tenant = creds.user, creds.password, creds.tenant
            agent, seed = creds.address, creds.seed
    if user is not None:
        opts["user"], opts["password"] = user, password
    if token is not None:
        opts["token"] = token
    if agent is not None:  # the only inboxes an agent credential may subscribe to
        opts["inbox_prefix"] = _principals.inbox_prefix(agent)
    return NatsLogin(opts, tenant, agent, seed)


@dataclass
class TenantLimits:
    """Per-account JetStream quotas; ``-1`` means unlimited."""

    max_memory: int = -1
    max_file: int = -1
    max_streams: int = -1
    max_consumers: int = -1


@dataclass
class Permissions:
    """Subject permissions of a tenant's user, inside its own account.

    The account already walls a tenant off from every other tenant; these lists only narrow
    what the user may do inside it. The default denies the system subjects (``$SYS.>``: server
    and account introspection that NATS imports into every account) and nothing else, since
    a Mailslot client needs mail, bell, topic and JetStream API subjects plus its inboxes.
    """

    publish_allow: list[str] = field(default_factory=list)
    publish_deny: list[str] = field(default_factory=lambda: ["$SYS.>"])
    subscribe_allow: list[str] = field(default_factory=list)
    subscribe_deny: list[str] = field(default_factory=lambda: ["$SYS.>"])

    def render(self) -> str:
        def side(allow: list[str], deny: list[str]) -> str:
            parts = []
            if allow:
                parts.append(f"allow: [{', '.join(_q(s) for s in allow)}]")
            if deny:
                parts.append(f"deny: [{', '.join(_q(s) for s in deny)}]")
            return "{ " + ", ".join(parts) + " }"

        out = []
        if self.publish_allow or self.publish_deny:
            out.append(f"publish: {side(self.publish_allow, self.publish_deny)}")
        if self.subscribe_allow or self.subscribe_deny:
            out.append(f"subscribe: {side(self.subscribe_allow, self.subscribe_deny)}")
        return "{ " + ", ".join(out) + " }" if out else ""


@dataclass
class TenantSpec:
    name: str
    credentials: Credentials
    limits: TenantLimits = field(default_factory=TenantLimits)
    permissions: Permissions = field(default_factory=Permissions)
    #: MQTT devices' users in this account, each allowed only the device topics
    #: (:func:`device_permissions`).
    device_users: list[Credentials] = field(default_factory=list)
    #: Agents' users in this account, each allowed one mailbox (:func:`agent_permissions`).
    agent_users: list[AgentUser] = field(default_factory=list)
    #: NKEY users in this account (:class:`NkeyUser`): services that prove who they are with
    #: an nkey, e.g. a Synadia Agent Protocol bridge signing ``Agent-Sender``.
    nkey_users: list[NkeyUser] = field(default_factory=list)

    @classmethod
    def generate(
        cls,
        name: str,
        *,
        limits: TenantLimits | None = None,
        permissions: Permissions | None = None,
    ) -> TenantSpec:
        user = f"{name.lower()}_admin"
        creds = Credentials(tenant=name, user=user, password=secrets.token_urlsafe(24))
        return cls(
            name=name,
            credentials=creds,
            limits=limits or TenantLimits(),
            permissions=permissions or Permissions(),
        )


def _q(value: str) -> str:
    return json.dumps(value)


def device_permissions(device: str | None = None) -> Permissions:
    """A device user's permissions: publish its uplink and broadcast, subscribe its downlink
    and broadcast (see :mod:`.protocol.devices`)."""
    return Permissions(
        publish_allow=_devices.device_publish_allow(device),
        subscribe_allow=_devices.device_subscribe_allow(device),
    )


@dataclass
class AgentUser:
    """An agent credential as the server sees it: the login and the agent's policy."""

    credentials: Credentials
    can_send: list[str] = field(default_factory=lambda: [_principals.ANY])
    topics: list[str] = field(default_factory=lambda: [_principals.ANY])


def _nkey_default_permissions() -> Permissions:
    """What an NKEY user gets by default: the tenant user's reach, but of the system subjects
    only ``$SYS.REQ.USER.INFO`` (who am I), which NKEY-aware clients (the Synadia Agent
    Protocol SDKs) ask to learn their own identity."""
    return Permissions(
        publish_deny=["$SYS.REQ.SERVER.>", "$SYS.REQ.ACCOUNT.>", "$SYS.ACCOUNT.>", "$SYS.SERVER.>"]
    )


@dataclass
class NkeyUser:
    """A user that logs in with an nkey (its public key here; the seed stays with it)."""

    public_key: str
    permissions: Permissions = field(default_factory=_nkey_default_permissions)

    def render(self) -> str:
        rendered = self.permissions.render()
        rendered = f", permissions: {rendered}" if rendered else ""
        return f"{{ nkey: {_q(self.public_key)}{rendered} }}"


def agent_permissions(agent: AgentUser) -> Permissions:
    """An agent user's permissions: its own mailbox, sends and topics its policy allows
    (see :mod:`.protocol.principals`)."""
    address = agent.credentials.address
    if address is None:
        raise ValueError("an agent credential names its address")
    return Permissions(
        publish_allow=_principals.agent_publish_allow(address, can_send=agent.can_send, topics=agent.topics),
        publish_deny=_principals.agent_publish_deny(),
        subscribe_allow=_principals.agent_subscribe_allow(address, topics=agent.topics),
    )


def _user(creds: Credentials, perms: Permissions) -> str:
    rendered = perms.render()
    rendered = f", permissions: {rendered}" if rendered else ""
    return f"{{ user: {_q(creds.user)}, password: {_q(creds.password)}{rendered} }}"


@dataclass
class ServerConfig:
    """Everything needed to render one nats-server config file."""

    store_dir: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0 = let the server pick (rendered as -1)
    server_name: str = "mailslot"
    tenants: list[TenantSpec] = field(default_factory=list)
    system_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    jetstream: bool = True
    max_payload: int | None = None
    max_file_store: str = "10G"
    max_memory_store: str = "1G"
    extra: str = ""
    #: TLS for client connections: with a cert and key the server refuses plaintext clients.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    #: Cluster block (``cluster { ... }``), rendered verbatim; see :mod:`.cluster`.
    cluster: str = ""
    #: MQTT and WebSocket listeners on ``host`` (None = off, 0 = a port the server picks);
    #: they log in against the same accounts and users. WebSocket uses the client TLS
    #: certificate when one is set, else plain ``ws://``.
    mqtt_port: int | None = None
    websocket_port: int | None = None

    def _listeners(self) -> list[str]:
        out = []
        if self.mqtt_port is not None:
            out.append(f"mqtt {{ host: {_q(self.host)}, port: {self.mqtt_port or -1} }}")
        if self.websocket_port is not None:
            if self.tls_cert and self.tls_key:
                tls = f"tls {{ cert_file: {_q(str(self.tls_cert))}, key_file: {_q(str(self.tls_key))} }}"
            else:
                tls = "no_tls: true"
            out.append(f"websocket {{ host: {_q(self.host)}, port: {self.websocket_port or -1}, {tls} }}")
        return out

    def render(self) -> str:
        port = self.port if self.port else -1
        lines = [
            f"server_name: {_q(self.server_name)}",
            f"host: {_q(self.host)}",
            f"port: {port}",
        ]
        if self.max_payload:
            lines.append(f"max_payload: {self.max_payload}")
        if self.tls_cert and self.tls_key:
            tls = f"tls {{ cert_file: {_q(str(self.tls_cert))}, key_file: {_q(str(self.tls_key))}"
            if self.tls_ca:
                tls += f", ca_file: {_q(str(self.tls_ca))}"
            lines.append(tls + ", timeout: 5 }")
        if self.cluster:
            lines.append(self.cluster)
        if self.jetstream:
            lines.append(
                "jetstream {"
                f" store_dir: {_q(str(self.store_dir))},"
                f" max_file_store: {self.max_file_store},"
                f" max_memory_store: {self.max_memory_store} }}"
            )
        lines.append("accounts {")
        lines.append(
            f"  {SYSTEM_ACCOUNT}: {{ users: [ {{ user: sys, password: {_q(self.system_password)} }} ] }}"
        )
        for t in self.tenants:
            js = "disabled"
            if self.jetstream:
                lim = t.limits
                js = (
                    "{ "
                    f"max_memory: {lim.max_memory}, max_file: {lim.max_file}, "
                    f"max_streams: {lim.max_streams}, max_consumers: {lim.max_consumers} }}"
                )
            users = [_user(t.credentials, t.permissions)]
            users += [_user(d, device_permissions(d.user)) for d in t.device_users]
            users += [_user(a.credentials, agent_permissions(a)) for a in t.agent_users]
            users += [u.render() for u in t.nkey_users]
            lines.append(f"  {t.name}: {{ jetstream: {js}, users: [ {', '.join(users)} ] }}")
        lines.append("}")
        lines.append(f"system_account: {SYSTEM_ACCOUNT}")
        lines += self._listeners()
        if self.extra:
            lines.append(self.extra)
        return "\n".join(lines) + "\n"
