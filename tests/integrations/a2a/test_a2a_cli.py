"""``mailslot a2a serve --http HOST:PORT``: the SDK's CLI runs the front of mailslot-a2a (and
does not import a2a-sdk unless that command runs)."""

from __future__ import annotations

import subprocess

import httpx
from a2a_support import V1, free_port, register_offline, rpc, send_params
from testsupport import PYTHON, client_env, unique, wait_for


def test_cli_does_not_import_a2a() -> None:
    code = (
        "import sys, mailslot.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('a2a', 'mailslot_a2a')))"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


async def test_mailslot_a2a_serve_http(shared_server, runner, children) -> None:
    agent = unique("cli-echo")
    await register_offline(runner, agent)
    port = free_port()
    front = children.spawn(
        [PYTHON, "-m", "mailslot", "a2a", "serve", "--http", f"127.0.0.1:{port}"], client_env(shared_server)
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, headers=V1) as http:

        async def card() -> dict | None:
            try:
                r = await http.get(f"/agents/{agent}/.well-known/agent-card.json")
            except httpx.TransportError:
                assert front.poll() is None, children.stderr(front)
                return None
            return r.json() if r.status_code == 200 else None

        found = await wait_for(card, timeout=60, interval=0.2)
        assert found["supportedInterfaces"][0]["url"] == f"{base}/agents/{agent}"
        sent = (await http.post(f"/agents/{agent}", json=rpc("SendMessage", send_params("via cli")))).json()
        assert sent["result"]["task"]["status"]["state"] == "TASK_STATE_SUBMITTED"


def test_mailslot_a2a_needs_a_command() -> None:
    r = subprocess.run([PYTHON, "-m", "mailslot", "a2a"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "serve" in r.stderr
