"""An offline, scripted ``crewai.BaseLLM`` for tests, examples and notebooks.

CrewAI has no fake LLM of its own; its documented extension point is a ``BaseLLM``
subclass. This one answers from a script, in either of CrewAI's two agent modes:

* ReAct text mode (``native=False``): answers are strings such as
  ``'Thought: ...\\nAction: send_message\\nAction Input: {...}'`` and
  ``'Thought: I now know the final answer\\nFinal Answer: ...'``.
* native function calling (``native=True``): a tool call is a list of OpenAI-style
  ``{"id", "type": "function", "function": {"name", "arguments"}}`` dicts (see
  :func:`tool_call`); a plain string is the final answer.

A script item may also be a callable ``(messages) -> answer`` (to answer from what the
agent saw) or an exception instance, which is raised (to script a failing LLM).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from crewai import BaseLLM
from pydantic import Field, PrivateAttr


def tool_call(name: str, arguments: dict[str, Any], *, call_id: str | None = None) -> list[dict[str, Any]]:
    """One native tool call, as a function-calling LLM returns it."""
    return [
        {
            "id": call_id or f"call_{name}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }
    ]


def react_action(tool: str, arguments: dict[str, Any], *, thought: str = "I should use a tool.") -> str:
    """One ReAct text-mode tool call."""
    return f"Thought: {thought}\nAction: {tool}\nAction Input: {json.dumps(arguments)}"


def react_final(answer: str) -> str:
    """A ReAct text-mode final answer."""
    return f"Thought: I now know the final answer\nFinal Answer: {answer}"


class ScriptedLLM(BaseLLM):
    """Answers from ``responses`` in order; records what each call saw in ``calls``."""

    responses: list[Any] = Field(default_factory=list)
    calls: list[dict[str, Any]] = Field(default_factory=list)
    native: bool = False
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def script(cls, responses: Sequence[Any], *, native: bool = False) -> ScriptedLLM:
        return cls(model="scripted", responses=list(responses), native=native)

    def call(
        self,
        messages: Any,
        tools: list[dict[str, Any]] | None = None,
        callbacks: Any = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> Any:
        with self._lock:
            names = [t.get("function", t).get("name") for t in tools or [] if isinstance(t, dict)]
            self.calls.append({"messages": messages, "tools": names})
            if not self.responses:
                raise RuntimeError("ScriptedLLM ran out of scripted responses")
            answer = self.responses.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            answer = answer(messages)
        return answer

    def supports_function_calling(self) -> bool:
        return self.native

    def supports_stop_words(self) -> bool:
        return False

    def get_context_window_size(self) -> int:
        return 8192


__all__ = ["ScriptedLLM", "react_action", "react_final", "tool_call"]
