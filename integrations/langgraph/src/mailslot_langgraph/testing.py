"""Offline stand-ins for an LLM, for examples, notebooks and tests (never a network model).

``GenericFakeChatModel`` replays scripted messages but has no ``bind_tools``, which both
``create_agent`` and ``ToolNode``-based agents call; :class:`ScriptedChatModel` adds it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

_ids = itertools.count(1)


class ScriptedChatModel(GenericFakeChatModel):
    """Answers with the scripted messages in order, whatever it is asked; tools are ignored."""

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> ScriptedChatModel:
        return self


def scripted(*messages: AIMessage | str) -> ScriptedChatModel:
    """A fresh model replaying ``messages`` (str = a plain answer). The script is used up by
    one run, so make one per run."""
    script: Iterable[AIMessage] = [m if isinstance(m, AIMessage) else AIMessage(content=m) for m in messages]
    return ScriptedChatModel(messages=iter(list(script)))


def tool_call(name: str, **args: Any) -> AIMessage:
    """An assistant turn that calls tool ``name`` with ``args``."""
    call_id = f"call_{next(_ids)}"
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )
