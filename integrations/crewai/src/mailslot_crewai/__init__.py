"""Mailslot for CrewAI: mailbox tools, crew progress events, durable Flow feedback, crew worker.

* :func:`mailbox_tools` (``SendMessageTool``, ``AskAgentTool``, ``BroadcastTool``,
  ``CheckInboxTool``): ``BaseTool``s running through the sync twin (``mailslot.sync``).
* :class:`CrewProgress`: an event listener that broadcasts crew progress and mails outcomes
  to a supervisor, without blocking the crew.
* :class:`MailboxFeedback` + :class:`FlowResumer`: a Flow pauses until a mailbox reply comes,
  and is resumed from any process that reaches the broker: its state is kept by
  :class:`MailslotFlowPersistence` in the SDK's state store (``SQLiteFlowPersistence`` when
  given one). A reply mailbox serves the flows of one store (:class:`ReplyToInUse`).
* :class:`CrewWorker`: one ``akickoff`` per inbound task, the output as the reply, retries
  with backoff.

Set ``CREWAI_DISABLE_TELEMETRY=true``, ``CREWAI_TRACING_ENABLED=false`` and
``CREWAI_DISABLE_VERSION_CHECK=true`` before importing crewai to keep it offline.
"""

from .feedback import FlowResumer, MailboxFeedback, Resumed, UnknownFlow, feedback_text, resume_from_mailbox
from .persistence import DEFAULT_FLOW_STORE, MailslotFlowPersistence
from .progress import ALL_KINDS, SUPERVISOR_KINDS, CrewProgress
from .replyto import ReplyToInUse, store_id, unbind_reply_to
from .tools import (
    AskAgentTool,
    BroadcastTool,
    CheckInboxTool,
    Payload,
    SendMessageTool,
    mailbox_tools,
    message_text,
)
from .worker import STATUS_HEADER, CrewWorker, Outcome, default_inputs, serve_crew

__all__ = [
    "ALL_KINDS",
    "DEFAULT_FLOW_STORE",
    "STATUS_HEADER",
    "SUPERVISOR_KINDS",
    "AskAgentTool",
    "BroadcastTool",
    "CheckInboxTool",
    "CrewProgress",
    "CrewWorker",
    "FlowResumer",
    "MailboxFeedback",
    "MailslotFlowPersistence",
    "Outcome",
    "Payload",
    "ReplyToInUse",
    "Resumed",
    "SendMessageTool",
    "UnknownFlow",
    "default_inputs",
    "feedback_text",
    "mailbox_tools",
    "message_text",
    "resume_from_mailbox",
    "serve_crew",
    "store_id",
    "unbind_reply_to",
]
