"""The console in a real browser: live mail within a second, requeue from the page, and a
page that refuses requests without its token."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import Console

# Set to a path to save a screenshot of the page with live mail (docs/console.png was made so).
SCREENSHOT = os.environ.get("MAILSLOT_CONSOLE_SCREENSHOT")


def _wait(driver: Any, seconds: float, **kw: Any) -> WebDriverWait:
    """A wait that looks again when the page re-rendered what it was reading (pushes replace
    table rows, so an element found a moment ago may be gone)."""
    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,), **kw)


def _live(driver: Any, console: Console, address: str) -> None:
    """Load the page and wait until it is live and lists ``address``."""
    driver.get(console.url)
    _wait(driver, 15).until(lambda d: d.find_element(By.ID, "status").text == "live")
    _wait(driver, 15).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#mailboxes tr[data-address="{address}"]')
    )


def _depth(driver: Any, address: str, priority: str) -> str:
    cell = f'#mailboxes tr[data-address="{address}"] td[data-priority="{priority}"]'
    return str(driver.execute_script(f"return document.querySelector('{cell}')?.textContent ?? ''"))


def test_the_page_shows_mail_within_a_second_of_its_send(console: Console, browser: Any, sms: Any) -> None:
    with sms.open("coder", card={"capabilities": ["python"]}):
        _live(browser, console, "coder")
        sms.publish("build.done", {"ok": True, "build": 41})
        marker = f"fix-issue-{uuid.uuid4().hex[:8]}"
        sent = time.monotonic()
        sms.send("coder", {"task": marker}, priority="urgent", thread_id="issue-7")
        _wait(browser, 1.0, poll_frequency=0.02).until(lambda d: marker in d.find_element(By.ID, "tail").text)
        shown = time.monotonic() - sent
        assert shown < 1.0, shown
        _wait(browser, 5).until(lambda d: _depth(d, "coder", "urgent") == "1")
        assert "build.done" in browser.find_element(By.ID, "tail").text  # the broadcast too
        agents = browser.find_element(By.ID, "agents").text
        assert "coder" in agents and "online" in agents

        # the thread view: the waiting message under its thread
        _wait(browser, 5).until(
            lambda d: d.find_element(By.CSS_SELECTOR, '#tail a[data-thread="issue-7"]').click() or True
        )
        _wait(browser, 5).until(lambda d: marker in d.find_element(By.ID, "thread").text)
        assert browser.find_element(By.ID, "thread-id").text == "issue-7"
        if SCREENSHOT:  # more of everything, for the picture in docs/
            sms.send("reviewer", {"review": "PR 12"}, priority="normal", thread_id="issue-7")
            sms.send("coder", "low-priority chore", priority="low")
            with sms.open("flaky") as flaky:
                sms.send("flaky", {"job": "parse", "input": "%%%"}, thread_id="issue-7")
                flaky.receive(timeout=5).term(reason="unparseable input")
            _wait(browser, 5).until(lambda d: "unparseable" in d.find_element(By.ID, "dead").text)
            _wait(browser, 5).until(lambda d: _depth(d, "coder", "low") == "1")
            _wait(browser, 5).until(
                lambda d: d.find_element(By.CSS_SELECTOR, '#tail a[data-thread="issue-7"]').click() or True
            )
            _wait(browser, 5).until(lambda d: "PR 12" in d.find_element(By.ID, "thread").text)
            time.sleep(0.5)
            Path(SCREENSHOT).write_bytes(browser.get_screenshot_as_png())


def test_requeue_from_the_page_puts_the_mail_back(console: Console, browser: Any, sms: Any) -> None:
    with sms.open("worker") as inbox:
        sms.send("worker", {"job": "resize"})
        msg = inbox.receive(timeout=5)
        msg.term(reason="bad input")
        dead = sms.dead_letters.list("worker")
        assert len(dead) == 1 and not dead[0].body_lost
        _live(browser, console, "worker")
        row = f'#dead tr[data-seq="{dead[0].seq}"]'
        _wait(browser, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, row))
        assert sms.inspect("worker").stats().total == 0
        _wait(browser, 5).until(
            lambda d: d.find_element(By.CSS_SELECTOR, f"{row} button.requeue").click() or True
        )
        _wait(browser, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))
        assert sms.dead_letters.list("worker") == []
        back = inbox.receive(timeout=5)
        assert back.id == msg.id and back.json() == {"job": "resize"}
        back.ack()


def test_requests_without_the_token_get_401(console: Console) -> None:
    with httpx.Client(base_url=console.base, timeout=10) as http:
        for path in ("/", "/console.js", "/api/state", "/api/events", "/api/thread/t1"):
            assert http.get(path).status_code == 401, path
            assert http.get(path, params={"token": console.token + "x"}).status_code == 401, path
        assert http.post("/api/dead-letters/purge").status_code == 401
        bearer = {"Authorization": f"Bearer {console.token}"}
        state = http.get("/api/state", headers=bearer)
        assert state.status_code == 200 and set(state.json()) >= {"mailboxes", "agents", "dead_letters"}
        assert http.get("/", params={"token": console.token}).status_code == 200
        # a change needs the console's own header as well (another site's page cannot add it)
        assert http.post("/api/dead-letters/purge", headers=bearer).status_code == 403


def test_tenant_login_lets_in_the_tenants_credential_only(tenant_console: Console, server: Any) -> None:
    c = server.credentials
    with httpx.Client(base_url=tenant_console.base, timeout=10) as http:
        refused = http.get("/api/state")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert http.get("/api/state", auth=(c.user, c.password + "x")).status_code == 401
        assert http.get("/api/state", auth=(c.user, c.password)).status_code == 200
        assert http.get("/api/state", params={"token": tenant_console.token}).status_code == 200
