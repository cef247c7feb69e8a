"""``mailslot-mcp`` over stdio with an OpenTelemetry SDK provider exporting to a file:
``python tracing_mcp_proc.py SPANS`` (the rest as the console script: MAILSLOT_AGENT etc.)."""

from __future__ import annotations

import sys
from pathlib import Path

from mailslot import tracing
from mailslot_mcp.__main__ import main
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from tracing_support import FileExporter

if __name__ == "__main__":
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(Path(sys.argv[1]))))
    tracing.set_tracer_provider(provider)
    try:
        main([])
    finally:
        provider.shutdown()
