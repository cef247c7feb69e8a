"""Mailslot for LangGraph: nodes that receive and send mail, durable request/reply with
``interrupt()`` and a resumer, and LangChain tools bound to a mailbox.

>>> g = StateGraph(State, context_schema=MailContext)
>>> g.add_node("ask", ask_node)          # calls `await request_reply(mb, "coder", ...)`
>>> app = g.compile(checkpointer=saver)
>>> async with Resumer(app, mb, context=MailContext(mailbox=mb)) as r:
...     await r.ainvoke(inputs, cfg)      # pauses; resumed when the reply lands
"""

from .checkpointer import MailslotCheckpointer
from .durable import (
    await_reply,
    is_mail_wait,
    request_reply,
    request_reply_sync,
    send_request,
    send_request_sync,
)
from .envelope import Mail, decode_payload, to_mail
from .errors import CheckpointTooLarge, MailslotLangGraphError
from .nodes import (
    MailContext,
    current_thread_id,
    mailbox_of,
    receipt_dict,
    receive_node,
    select,
    send_node,
    step_key,
)
from .resumer import Resumed, Resumer, resume_when_replied
from .tools import ALL_TOOLS, MailboxTools, Payload, mailbox_tools

__all__ = [
    "ALL_TOOLS",
    "CheckpointTooLarge",
    "Mail",
    "MailContext",
    "MailboxTools",
    "MailslotCheckpointer",
    "MailslotLangGraphError",
    "Payload",
    "Resumed",
    "Resumer",
    "await_reply",
    "current_thread_id",
    "decode_payload",
    "is_mail_wait",
    "mailbox_of",
    "mailbox_tools",
    "receipt_dict",
    "receive_node",
    "request_reply",
    "request_reply_sync",
    "resume_when_replied",
    "select",
    "send_node",
    "send_request",
    "send_request_sync",
    "step_key",
    "to_mail",
]
