"""The README's "API at a glance" names every public call, attribute and error.

Built from the package itself: a method, property or error added to the public API and left
out of the README fails here, so the table cannot fall behind.
"""

from __future__ import annotations

import dataclasses
import inspect
import re

import mailslot
import mailslot.errors
import pytest
from testsupport import ROOT

CLASSES = [
    mailslot.Mailslot,
    mailslot.Mailbox,
    mailslot.Message,
    mailslot.Receipt,
    mailslot.MailboxView,
    mailslot.TopicSubscription,
    mailslot.Broadcast,
    mailslot.AgentWatch,
    mailslot.MailWatch,
    mailslot.DeadLetters,
    mailslot.StateStore,
    mailslot.Claims,
]


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## API at a glance")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _public(cls: type) -> set[str]:
    names = {
        n
        for n, v in inspect.getmembers(cls)
        if not n.startswith("_") and (callable(v) or isinstance(v, property))
    }
    if dataclasses.is_dataclass(cls):
        names |= {f.name for f in dataclasses.fields(cls)}
    return names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_public_member_is_in_the_readme(cls: type) -> None:
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", _section()))
    assert cls.__name__ in words
    missing = sorted(_public(cls) - words)
    assert missing == [], f"README 'API at a glance' does not name {cls.__name__}.{missing}"


def test_every_error_is_in_the_readme() -> None:
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", _section()))
    errors = {n for n in mailslot.errors.__all__ if getattr(mailslot.errors, n).__name__ == n}  # not aliases
    assert sorted(errors - words) == []


def test_every_connect_option_is_in_the_readme() -> None:
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", _section()))
    assert sorted(set(inspect.signature(mailslot.connect).parameters) - words) == []
