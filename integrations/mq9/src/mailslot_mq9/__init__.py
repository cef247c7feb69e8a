"""RobustMQ's mq9 Agent Mailbox protocol (``$mq9.AI.*``), served over Mailslot: every mq9 SDK
becomes a Mailslot client. Run ``mailslot-mq9 --url ...`` (as many replicas as wanted)."""

from .gateway import DEFAULT_CONCURRENCY, Gateway
from .wire import QUEUE_GROUP, Mq9Error

__all__ = ["DEFAULT_CONCURRENCY", "QUEUE_GROUP", "Gateway", "Mq9Error"]
