"""The console's trace view: the mail of one trace id (the traceparent a traced sender wrote),
waiting in any mailbox and seen in the live tail, as JSON and in the page."""

from __future__ import annotations

import time
from typing import Any

import httpx
from mailslot import sync
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from tracing_support import one, records, spans_fixture, tracer_of  # noqa: F401 (the spans fixture)

from .conftest import Console


def _one_task_across_two_agents(sms: sync.SyncMailslot, spans: InMemorySpanExporter) -> str:
    """A task mailed to coder and reviewer in one trace, and unrelated mail; its trace id."""
    with tracer_of(spans).start_as_current_span("task"):
        sms.send("coder", {"task": "fix issue 7"}, thread_id="issue-7")
        sms.send("reviewer", {"review": "PR 12"})
    sms.send("coder", "unrelated")
    return str(one(records(spans), "task")["trace_id"])


def _trace(http: httpx.Client, console: Console, trace_id: str) -> dict[str, Any]:
    r = http.get(f"/api/trace/{trace_id}", headers={"Authorization": f"Bearer {console.token}"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_the_trace_api_lists_the_mail_of_one_trace(
    console: Console, sms: sync.SyncMailslot, spans: InMemorySpanExporter
) -> None:
    with (
        sms.open("coder"),
        sms.open("reviewer"),
        httpx.Client(base_url=console.base, timeout=10) as http,
    ):
        auth = {"Authorization": f"Bearer {console.token}"}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the console follows both mailboxes
            listed = {row["address"] for row in http.get("/api/state", headers=auth).json()["mailboxes"]}
            if {"coder", "reviewer"} <= listed:
                break
            time.sleep(0.2)
        trace_id = _one_task_across_two_agents(sms, spans)
        deadline = time.monotonic() + 15
        while True:  # the tail and the mailbox totals catch up a moment after the sends
            got = _trace(http, console, trace_id)
            if (len(got["seen"]), len(got["waiting"])) == (2, 2) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sorted(m["to"] for m in got["waiting"]) == ["coder", "reviewer"]
        assert all(m["trace_id"] == trace_id for m in got["waiting"])
        assert sorted(e["address"] for e in got["seen"]) == ["coder", "reviewer"]
        assert _trace(http, console, "0" * 32)["waiting"] == []
        assert http.get(f"/api/trace/{trace_id}").status_code == 401  # no token


def test_a_trace_link_in_the_tail_opens_the_trace(
    console: Console, browser: Any, sms: sync.SyncMailslot, spans: InMemorySpanExporter
) -> None:
    with sms.open("coder"), sms.open("reviewer"):
        browser.get(console.url)
        WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "status").text == "live")
        trace_id = _one_task_across_two_agents(sms, spans)
        link = f'#tail a[data-trace="{trace_id}"]'
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, link))
        browser.find_elements(By.CSS_SELECTOR, link)[0].click()
        WebDriverWait(browser, 10).until(lambda d: "PR 12" in d.find_element(By.ID, "thread").text)
        assert browser.find_element(By.ID, "thread-kind").text == "Trace"
        assert browser.find_element(By.ID, "thread-id").text == trace_id
        assert "unrelated" not in browser.find_element(By.ID, "thread").text
