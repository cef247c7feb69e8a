"""Offline AutoGen doubles shared by the AutoGen integration tests."""

from __future__ import annotations

import json

from autogen_core import FunctionCall
from autogen_core.models import CreateResult, ModelFamily, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

TOOLS_MODEL = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family=ModelFamily.UNKNOWN,
    structured_output=False,
)


def tool_call(name: str, call_id: str = "call_1", **arguments: object) -> CreateResult:
    return CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id=call_id, name=name, arguments=json.dumps(arguments))],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )


def replay(*responses: str | CreateResult, tools: bool = False) -> ReplayChatCompletionClient:
    return ReplayChatCompletionClient(list(responses), model_info=TOOLS_MODEL if tools else None)
