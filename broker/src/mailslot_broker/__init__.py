"""Mailslot broker: the wire protocol, the nats-server launcher, provisioning, reclaim and the
sidecar (:mod:`mailslot_broker.sidecar`, imported on demand: it needs prometheus-client)."""

from . import protocol
from .config import DEFAULT_TENANT, Credentials, ServerConfig, TenantLimits, TenantSpec
from .errors import (
    BrokerError,
    InvalidAddress,
    InvalidPriority,
    InvalidTopic,
    InvalidTTL,
    LauncherError,
    ProtocolViolation,
    ProvisioningConflict,
    ProvisioningError,
    ServerBinaryNotFound,
    ServerDied,
    ServerStartError,
)
from .home import BrokerState, mailslot_home, read_state, running_state
from .launcher import NatsServer, find_server_binary
from .local import ensure_local_broker, stop_local_broker
from .protocol import Priority, RetryPolicy, StreamSettings
from .provision import ProvisionReport, provision
from .reclaim import ReclaimReport, reclaim_expired, reclaim_mailbox

__all__ = [
    "DEFAULT_TENANT",
    "BrokerError",
    "BrokerState",
    "Credentials",
    "InvalidAddress",
    "InvalidPriority",
    "InvalidTTL",
    "InvalidTopic",
    "LauncherError",
    "NatsServer",
    "Priority",
    "ProtocolViolation",
    "ProvisionReport",
    "ProvisioningConflict",
    "ProvisioningError",
    "ReclaimReport",
    "RetryPolicy",
    "ServerBinaryNotFound",
    "ServerConfig",
    "ServerDied",
    "ServerStartError",
    "StreamSettings",
    "TenantLimits",
    "TenantSpec",
    "ensure_local_broker",
    "find_server_binary",
    "mailslot_home",
    "protocol",
    "provision",
    "read_state",
    "reclaim_expired",
    "reclaim_mailbox",
    "running_state",
    "stop_local_broker",
]
