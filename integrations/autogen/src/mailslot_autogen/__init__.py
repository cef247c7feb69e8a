"""Mailslot for AutoGen: durable mailbox traffic as native AutoGen parts.

- :func:`mailbox_tools`: ``FunctionTool``s (send, ask, broadcast, check inbox) bound to a mailbox;
- :class:`MailslotRemoteAgent`: a ``BaseChatAgent`` whose turns are asks to a remote agent;
- :class:`AgentWorker` / :func:`serve_agent`: serve an AgentChat agent or team from a mailbox;
- :class:`MailslotAgentRuntime`: an autogen-core ``AgentRuntime`` on Mailslot mail, its agents'
  state in the SDK's state store (:class:`AgentStates`).
"""

from .addressing import runtime_address, topic_name, type_address
from .codec import AgentResult, AgentTask
from .proxy import MailslotRemoteAgent, RemoteAgentError
from .runtime import SERVICE_KEEP, MailslotAgentRuntime, RemoteHandlerError
from .state import DEFAULT_STATE_STORE, AgentStates
from .tools import TOOL_NAMES, Payload, mailbox_tools
from .worker import AgentWorker, serve_agent

__all__ = [
    "DEFAULT_STATE_STORE",
    "SERVICE_KEEP",
    "TOOL_NAMES",
    "AgentResult",
    "AgentStates",
    "AgentTask",
    "AgentWorker",
    "MailslotAgentRuntime",
    "MailslotRemoteAgent",
    "Payload",
    "RemoteAgentError",
    "RemoteHandlerError",
    "mailbox_tools",
    "runtime_address",
    "serve_agent",
    "topic_name",
    "type_address",
]
