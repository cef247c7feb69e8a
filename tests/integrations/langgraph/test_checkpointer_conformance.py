"""LangGraph's own checkpointer conformance suite (langgraph-checkpoint-conformance) against
MailslotCheckpointer on a real nats-server: every capability, base and extended, detected
and passing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import mailslot
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from mailslot_langgraph import MailslotCheckpointer
from testsupport import unique


async def test_conformance_suite_passes_fully(shared_ms: mailslot.Mailslot) -> None:
    @checkpointer_test(name="MailslotCheckpointer")
    async def factory() -> AsyncIterator[MailslotCheckpointer]:
        # A namespace per capability suite: each starts from an empty store, as the suite expects.
        yield MailslotCheckpointer(shared_ms, namespace=unique("conf").replace(".", "-")[:64])

    report = await validate(factory)
    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert not failures, failures
    assert {c.value for c in ALL_CAPABILITIES} == set(report.results)
    not_detected = [name for name, r in report.results.items() if not r.detected]
    assert not not_detected, f"capabilities not implemented: {not_detected}"
    assert report.passed_all() and report.conformance_level() == "FULL"
    assert sum(r.tests_passed for r in report.results.values()) > 50
