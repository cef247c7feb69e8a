"""The Mailslot sidecar: what JetStream cannot do by itself.

A stateless service (run ``python -m mailslot_broker.sidecar --url ... --credentials ...`` or
``mailslot sidecar``) that reclaims the mailboxes of agents whose lease lapsed, turns
max-deliveries / terminated advisories into dead letters, optionally ages starving mail up one
priority level, and serves Prometheus metrics and a health check. Several replicas may run; a
KV lease elects the one that acts (:mod:`.leader`), and every action is idempotent as well.
"""

from .aging import Aging
from .deadletter import DeadLetterResult, dead_letter, dead_letter_headers, sweep_exhausted
from .leader import LeaderElection
from .metrics import Metrics, Snapshot, snapshot
from .reaper import Reaper, ReclaimEvent
from .service import Sidecar, SidecarConfig

__all__ = [
    "Aging",
    "DeadLetterResult",
    "LeaderElection",
    "Metrics",
    "Reaper",
    "ReclaimEvent",
    "Sidecar",
    "SidecarConfig",
    "Snapshot",
    "dead_letter",
    "dead_letter_headers",
    "snapshot",
    "sweep_exhausted",
]
