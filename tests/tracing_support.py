"""Shared by the tracing tests: an SDK TracerProvider for Mailslot alone, recording into
OpenTelemetry's own in-memory exporter, a file exporter for child processes, and lookups."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from mailslot import tracing
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer

#: The provider behind each recording exporter, for tests that start spans of their own.
_PROVIDERS: dict[int, TracerProvider] = {}


def recording() -> Iterator[InMemorySpanExporter]:
    """Body of a fixture: Mailslot traced into an in-memory exporter for one test (the global
    provider stays unset, so "API installed, no provider" is what every other test sees)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    _PROVIDERS[id(exporter)] = provider
    try:
        yield exporter
    finally:
        del _PROVIDERS[id(exporter)]
        tracing.set_tracer_provider(None)
        provider.shutdown()


@pytest.fixture(name="spans")
def spans_fixture() -> Iterator[InMemorySpanExporter]:
    """The ``spans`` fixture: a test module imports ``spans_fixture`` and asks for ``spans``."""
    yield from recording()


def tracer_of(exporter: InMemorySpanExporter) -> Tracer:
    """A tracer whose spans ``exporter`` records (the test's own spans, e.g. a caller's)."""
    return _PROVIDERS[id(exporter)].get_tracer("tests")


class FileExporter(SpanExporter):
    """One JSON line per span, for a child process to hand its spans back to the test."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._path.open("a") as f:
            for s in spans:
                f.write(json.dumps(as_record(s)) + "\n")
        return SpanExportResult.SUCCESS


@contextlib.asynccontextmanager
async def child(args: list[str], env: dict[str, str]) -> AsyncIterator[subprocess.Popen[str]]:
    """A child process whose stdout lines the test reads (``line``); killed if still running
    when the block ends."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 (no wait)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait)
        if proc.stdout is not None:
            proc.stdout.close()


async def line(proc: subprocess.Popen[str]) -> str:
    """The child's next stdout line, read off the event loop."""
    assert proc.stdout is not None
    return (await asyncio.to_thread(proc.stdout.readline)).strip()


def as_record(s: ReadableSpan) -> dict[str, Any]:
    """What the tests compare: name, kind, ids (hex) and attributes."""
    ctx = s.get_span_context()
    assert ctx is not None
    return {
        "name": s.name,
        "kind": s.kind.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{s.parent.span_id:016x}" if s.parent is not None else None,
        "attributes": dict(s.attributes or {}),
        "status": s.status.status_code.name,
    }


def records(exporter: InMemorySpanExporter) -> list[dict[str, Any]]:
    return [as_record(s) for s in exporter.get_finished_spans()]


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def one(spans: list[dict[str, Any]], name: str, kind: SpanKind | None = None) -> dict[str, Any]:
    """The single span called ``name`` (of ``kind`` if given)."""
    found = [s for s in spans if s["name"] == name and (kind is None or s["kind"] == kind.name)]
    assert len(found) == 1, (name, [(s["name"], s["kind"]) for s in spans])
    return found[0]


def child_of(child: dict[str, Any], parent: dict[str, Any]) -> bool:
    return child["trace_id"] == parent["trace_id"] and child["parent_id"] == parent["span_id"]
