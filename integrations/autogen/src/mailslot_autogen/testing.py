"""Offline stand-ins for a model client, for examples, notebooks and tests (never a network model).

AutoGen's ``ReplayChatCompletionClient`` replays scripted answers, but an ``AssistantAgent``
given tools refuses a client whose ``model_info`` does not say ``function_calling``, and a
tool call is a ``CreateResult`` of ``FunctionCall`` items: both are spelled out here once.
"""

from __future__ import annotations

import itertools
import json

from autogen_core import FunctionCall
from autogen_core.models import CreateResult, ModelFamily, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

#: ``model_info`` of a scripted model that may call tools.
TOOLS_MODEL = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family=ModelFamily.UNKNOWN,
    structured_output=False,
)

_ids = itertools.count(1)


def tool_call(name: str, **arguments: object) -> CreateResult:
    """A model turn that calls tool ``name`` with ``arguments``."""
    call = FunctionCall(id=f"call_{next(_ids)}", name=name, arguments=json.dumps(arguments))
    return CreateResult(
        finish_reason="function_calls",
        content=[call],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )


def replay(*responses: str | CreateResult, tools: bool = False) -> ReplayChatCompletionClient:
    """A model client answering ``responses`` in order (str = a plain answer); ``tools=True``
    for an agent that has tools. The script is used up by one run, so make one per run."""
    return ReplayChatCompletionClient(list(responses), model_info=TOOLS_MODEL if tools else None)


__all__ = ["TOOLS_MODEL", "replay", "tool_call"]
