"""Mailslot: durable, asynchronous mail for AI agents, on NATS JetStream.

>>> async with mailslot.connect() as ms:
...     inbox = await ms.open("planner")
...     await ms.send("coder", {"task": 7}, priority="urgent")
"""

from mailslot_broker.protocol import Priority

from .audit import Audit, AuditRecord, AuditStatus
from .broadcast import Broadcast, Published, TopicSubscription
from .claims import Claim, Claims
from .client import Mailslot
from .connection import connect
from .deadletters import DeadLetter, DeadLetters
from .devices import BridgeStats, DeviceBridge
from .errors import (
    AlreadyAcknowledged,
    AuditDisabled,
    AuthenticationFailed,
    BlockingCall,
    BrokerFailure,
    BrokerUnreachable,
    ClaimConflict,
    ClaimNotHeld,
    ConnectionFailed,
    DecodeError,
    Disconnected,
    InvalidAddress,
    InvalidAddressError,
    InvalidHeader,
    InvalidInput,
    InvalidPayload,
    InvalidStateKey,
    InvalidTopic,
    InvalidTopicError,
    InvalidTTL,
    InvalidTTLError,
    JetStreamUnavailable,
    MailboxClosed,
    MailboxDestroyed,
    MailslotError,
    MessageError,
    MessageNotFound,
    NotConnected,
    PayloadTooLarge,
    PermissionDenied,
    ProvisioningFailed,
    ServerTooOld,
    StateConflict,
    StateTooLarge,
    Timeout,
    Unavailable,
    UnknownPriority,
    UnknownPriorityError,
)
from .mailbox import AgentCard, Mailbox
from .mailwatch import MailChange, MailWatch
from .message import Bounce, Message, Receipt
from .registry import AgentEvent, AgentWatch
from .requests import Reply
from .state import StateChange, StateEntry, StateStore, StateWatch
from .view import MailboxStats, MailboxView

__version__ = "0.1.0"

__all__ = [
    "AgentCard",
    "AgentEvent",
    "AgentWatch",
    "AlreadyAcknowledged",
    "Audit",
    "AuditDisabled",
    "AuditRecord",
    "AuditStatus",
    "AuthenticationFailed",
    "BlockingCall",
    "Bounce",
    "BridgeStats",
    "Broadcast",
    "BrokerFailure",
    "BrokerUnreachable",
    "Claim",
    "ClaimConflict",
    "ClaimNotHeld",
    "Claims",
    "ConnectionFailed",
    "DeadLetter",
    "DeadLetters",
    "DecodeError",
    "DeviceBridge",
    "Disconnected",
    "InvalidAddress",
    "InvalidAddressError",
    "InvalidHeader",
    "InvalidInput",
    "InvalidPayload",
    "InvalidStateKey",
    "InvalidTTL",
    "InvalidTTLError",
    "InvalidTopic",
    "InvalidTopicError",
    "JetStreamUnavailable",
    "MailChange",
    "MailWatch",
    "Mailbox",
    "MailboxClosed",
    "MailboxDestroyed",
    "MailboxStats",
    "MailboxView",
    "Mailslot",
    "MailslotError",
    "Message",
    "MessageError",
    "MessageNotFound",
    "NotConnected",
    "PayloadTooLarge",
    "PermissionDenied",
    "Priority",
    "ProvisioningFailed",
    "Published",
    "Receipt",
    "Reply",
    "ServerTooOld",
    "StateChange",
    "StateConflict",
    "StateEntry",
    "StateStore",
    "StateTooLarge",
    "StateWatch",
    "Timeout",
    "TopicSubscription",
    "Unavailable",
    "UnknownPriority",
    "UnknownPriorityError",
    "__version__",
    "connect",
]
