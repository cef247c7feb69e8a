"""The JSON payloads that carry AgentChat work through a mailbox.

A proxy (:class:`~mailslot_autogen.MailslotRemoteAgent`) and a worker
(:class:`~mailslot_autogen.AgentWorker`) may live in different processes, written by different
people, so what travels between them is plain JSON (pydantic models here), not pickles: any
client that can send ``{"task": "..."}`` can drive a served agent, and AgentChat messages keep
their type through ``BaseChatMessage.dump()`` / ``MessageFactory``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import mailslot
from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import BaseChatMessage, MessageFactory, TextMessage
from pydantic import BaseModel, Field

_factory = MessageFactory()


class AgentTask(BaseModel):
    """A unit of work for a served agent: a plain ``task`` text and/or AgentChat messages."""

    kind: Literal["autogen.task"] = "autogen.task"
    task: str | None = None
    messages: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def from_messages(cls, messages: Sequence[BaseChatMessage]) -> AgentTask:
        return cls(messages=[dict(m.dump()) for m in messages])

    def chat_messages(self) -> list[BaseChatMessage]:
        """The messages as AgentChat objects; unknown types degrade to a :class:`TextMessage`."""
        out: list[BaseChatMessage] = []
        for raw in self.messages:
            try:
                m = _factory.create(raw)
            except Exception:
                m = TextMessage(content=str(raw.get("content", raw)), source=str(raw.get("source", "remote")))
            if isinstance(m, BaseChatMessage):
                out.append(m)
        if self.task:
            out.append(TextMessage(content=self.task, source="user"))
        return out


class AgentResult(BaseModel):
    """What a served agent answers: the final text plus the chat messages it produced."""

    kind: Literal["autogen.result", "autogen.error"] = "autogen.result"
    content: str = ""
    source: str = ""
    stop_reason: str | None = None
    messages: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None

    @classmethod
    def from_task_result(cls, result: TaskResult, *, source: str, skip: int = 0) -> AgentResult:
        produced = [m for m in result.messages[skip:] if isinstance(m, BaseChatMessage)]
        last = produced[-1] if produced else None
        return cls(
            content=last.to_text() if last is not None else "",
            source=last.source if last is not None else source,
            stop_reason=result.stop_reason,
            messages=[dict(m.dump()) for m in produced],
        )


def parse_task(msg: mailslot.Message) -> AgentTask:
    """Read an inbound task: an :class:`AgentTask` JSON, ``{"task": ...}``, or plain text."""
    if msg.content_type.startswith("text/"):
        return AgentTask(task=msg.text())
    try:
        body = msg.json()
    except mailslot.DecodeError:
        return AgentTask(task=msg.text())
    if isinstance(body, str):
        return AgentTask(task=body)
    if isinstance(body, dict):
        return AgentTask.model_validate({k: v for k, v in body.items() if k != "kind"})
    return AgentTask(task=str(body))


def parse_result(msg: mailslot.Message) -> AgentResult:
    """Read a reply; a plain-text reply (a non-AutoGen agent answering) becomes its content."""
    if msg.content_type.startswith("text/"):
        return AgentResult(content=msg.text(), source=msg.sender or "")
    try:
        body = msg.json()
    except mailslot.DecodeError:
        return AgentResult(content=msg.text(), source=msg.sender or "")
    if isinstance(body, dict) and str(body.get("kind", "")).startswith("autogen."):
        return AgentResult.model_validate(body)
    if isinstance(body, dict) and "content" in body:
        return AgentResult(content=str(body["content"]), source=msg.sender or "")
    return AgentResult(content=body if isinstance(body, str) else msg.text(), source=msg.sender or "")


__all__ = ["AgentResult", "AgentTask", "parse_result", "parse_task"]
