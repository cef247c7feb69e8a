"""A2A over Mailslot: send a task to an A2A agent that is offline, collect the result later.

* :class:`A2ARunner` serves an unchanged a2a-sdk ``AgentExecutor`` from the agent's mailbox,
  through a2a's own ``DefaultRequestHandler``, with the task store on Mailslot.
* :func:`client_factory` / :class:`MailslotTransport`: an a2a-sdk ``Client`` over the
  ``MAILSLOT`` binding (``send_message`` answers SUBMITTED at once, even with the agent away).
* :mod:`mailslot_a2a.front`: the A2A HTTP front (``mailslot a2a serve --http HOST:PORT``).
* :func:`to_a2a` / :func:`from_a2a`: Mailslot's registry card <-> A2A's ``AgentCard``.
"""

from .cards import BINDING, address_of, from_a2a, mailslot_interface, mailslot_url, to_a2a
from .desk import TaskDesk, reply_address
from .events import MailslotEventStream
from .runner import A2ARunner
from .store import MailslotTaskStore, Route, VersionedMailslotTaskStore
from .transport import MailslotTransport, client_factory, register

__all__ = [
    "BINDING",
    "A2ARunner",
    "MailslotEventStream",
    "MailslotTaskStore",
    "MailslotTransport",
    "Route",
    "TaskDesk",
    "VersionedMailslotTaskStore",
    "address_of",
    "client_factory",
    "from_a2a",
    "mailslot_interface",
    "mailslot_url",
    "register",
    "reply_address",
    "to_a2a",
]
