"""A CrewAI Flow that pauses until a reply lands in its mailbox, resumed by another process.

1. This process starts ``ReleaseFlow``. Its ``@human_feedback`` step uses ``MailboxFeedback``:
   the draft is mailed to "reviewer" and the flow *pauses*: ``kickoff()`` returns, and its
   state is kept on the broker (``MailslotFlowPersistence``, the SDK's state store: no file).
2. The reviewer (here, the same script playing another agent) answers whenever it likes;
   the answer waits in the flow's reply mailbox.
3. A second process (``crewai_flow_feedback.py resume``), which shares nothing with the first
   but the broker, takes the answer, restores the flow from the state store and resumes it: the
   listener after the feedback step runs there. (``SQLiteFlowPersistence(path)`` passed as
   ``ReleaseFlow(persistence=...)`` and to ``resume_from_mailbox`` works too, on one disk.)

Uses ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``) when set, else starts its own nats-server
in a temp dir and stops it at the end (``_broker.py`` beside this file). No LLM is involved:
the flow's steps are plain code.
"""

from __future__ import annotations

import os

# Before crewai is imported: no telemetry, no tracing, no version check (fully offline).
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("CREWAI_DISABLE_VERSION_CHECK", "true")

import subprocess
import sys
from typing import Any

from _broker import broker
from crewai.flow import human_feedback
from crewai.flow.flow import Flow, listen, start
from mailslot import sync
from mailslot_crewai import MailboxFeedback, resume_from_mailbox

REPLIES = "release-flow-replies"


class ReleaseFlow(Flow):
    @start()
    @human_feedback(
        message="Approve these release notes?",
        # No client given: it connects on first use (MAILSLOT_URL / MAILSLOT_CREDENTIALS).
        provider=MailboxFeedback(to="reviewer", reply_to=REPLIES, priority="urgent"),
    )
    def draft(self) -> str:
        self.state["draft"] = "Mailslot 1.0: durable mail for agents"
        return self.state["draft"]

    @listen(draft)
    def publish(self, result: Any) -> str:
        return f"published {self.state['draft']!r} after review: {result.feedback}"


def start_and_review() -> None:
    flow = ReleaseFlow()
    paused = flow.kickoff()
    print(f"[pid {os.getpid()}] flow {paused.context.flow_id} paused: {type(paused).__name__}")

    with sync.connect(name="reviewer") as client, client.open("reviewer", ttl=60) as box:
        stored = [key[1] for key in client.state("crewai").keys(("pending",))]
        print(f"paused flows in the state store ({type(flow.persistence).__name__}): {stored}")
        question = box.receive(timeout=30)
        body = question.json()
        print(f"reviewer got [{question.priority.label}]: {body['message']} {body['output']!r}")
        question.reply({"feedback": "approved, ship it"})
        question.ack()

    child = subprocess.run([sys.executable, __file__, "resume"], capture_output=True, text=True, timeout=180)
    sys.stdout.write(child.stdout)
    if child.returncode != 0:
        sys.stderr.write(child.stderr)
        raise SystemExit(child.returncode)


def resume() -> None:
    with sync.connect(name="release-flow") as client, client.open(REPLIES, ttl=60) as box:
        done = resume_from_mailbox(ReleaseFlow, box, timeout=30)  # state from the broker
    print(f"[pid {os.getpid()}] flow {done.flow_id} resumed with {done.feedback!r}")
    print("result:", done.result)


def main() -> None:
    if sys.argv[1:2] == ["resume"]:
        resume()
        return
    with broker():  # the resuming child process inherits MAILSLOT_URL / MAILSLOT_CREDENTIALS
        start_and_review()


if __name__ == "__main__":
    main()
