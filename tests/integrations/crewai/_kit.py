"""Shared helpers for the CrewAI tests: scripts for both agent modes and small crews."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from crewai import Agent, Crew, CrewOutput, Process, Task
from mailslot_crewai.testing import ScriptedLLM, react_action, react_final, tool_call

MODES = ["react", "native"]

#: Keeps CrewAI offline: no telemetry, no tracing, no version check against the index.
CREWAI_OFFLINE = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
}

#: CrewAI's own deprecations, raised inside crewai when it reads its own fields; the suite
#: turns warnings into errors, so every CrewAI test module uses ``pytestmark = CREWAI_WARNINGS``.
CREWAI_WARNINGS = [
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:crewai(\..*)?$"),
]


def transcript(messages: Any) -> str:
    """Everything the LLM was shown, as one string (tool results included)."""
    if isinstance(messages, str):
        return messages
    return "\n".join(
        str(m["content"]) if isinstance(m.get("content"), str) else json.dumps(m.get("content"), default=str)
        for m in messages
        if isinstance(m, dict)
    )


def script(
    mode: str,
    calls: Sequence[tuple[str, dict[str, Any]]],
    final: str | Callable[[str], str],
) -> ScriptedLLM:
    """An LLM that makes ``calls`` one per turn, then answers ``final`` (a callable gets
    the transcript so far, to prove a tool's result reached the model)."""
    native = mode == "native"
    items: list[Any] = [
        tool_call(n, a, call_id=f"call_{i}") if native else react_action(n, a)
        for i, (n, a) in enumerate(calls)
    ]

    def finish(messages: Any) -> Any:
        text = final(transcript(messages)) if callable(final) else final
        return text if native else react_final(text)

    items.append(finish)
    return ScriptedLLM.script(items, native=native)


def one_task_crew(
    llm: ScriptedLLM, tools: list[Any], *, description: str = "Do the job", name: str = "job"
) -> Crew:
    agent = Agent(
        role="Coordinator",
        goal="Coordinate with other agents by mail",
        backstory="Talks to other agents only through Mailslot.",
        llm=llm,
        tools=tools,
        allow_delegation=False,
        max_retry_limit=0,
        verbose=False,
    )
    task = Task(name=name, description=description, expected_output="a short report", agent=agent)
    return Crew(agents=[agent], tasks=[task], process=Process.sequential, verbose=False, name="mailcrew")


async def kickoff(crew: Crew, **inputs: Any) -> CrewOutput:
    """``akickoff`` (never ``kickoff``: tests run on an event loop) for a non-streaming crew."""
    out = await crew.akickoff(inputs=inputs or None)
    assert isinstance(out, CrewOutput)
    return out


SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_files(*roots: Path) -> list[str]:
    """Every SQLite database (by its header, or a database/journal name) under ``roots``."""
    found = []
    for root in roots:
        for f in root.rglob("*"):
            if not f.is_file():
                continue
            with f.open("rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
            if (
                head == SQLITE_MAGIC
                or f.suffix in {".db", ".sqlite", ".sqlite3"}
                or f.name.endswith(("-wal", "-journal", "-shm"))
            ):
                found.append(str(f))
    return found
