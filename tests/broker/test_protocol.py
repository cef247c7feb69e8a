import io
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mailslot_broker import protocol as p
from mailslot_broker.errors import InvalidAddress, InvalidPriority, InvalidTopic, InvalidTTL


@pytest.mark.parametrize("address", ["a", "coder", "team.coder-1", "a_b.c-d.e", "x" * 128])
def test_valid_addresses(address):
    assert p.validate_address(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "",
        " ",
        "a b",
        "a.*",
        "a.>",
        "*",
        ">",
        "a..b",
        ".a",
        "a.",
        "a\tb",
        "a\nb",
        "a\n",  # a regex anchored with $ lets a trailing newline through
        "a.b\n",
        "ä",
        "x" * 129,
        "a.b.c.d.e.f.g.h.i",
        "a/b",
        None,
        7,
    ],
)
def test_invalid_addresses(address):
    with pytest.raises(InvalidAddress):
        p.validate_address(address)


@given(st.text(min_size=0, max_size=150))
def test_accepted_addresses_make_literal_subjects(address):
    try:
        p.validate_address(address)
    except InvalidAddress:
        return
    for prio in p.PRIORITIES:
        subject = p.mail_subject(prio, address)
        tokens = subject.split(".")
        assert all(tokens), subject
        assert "*" not in subject and ">" not in subject
        assert not re.search(r"\s", subject)
        assert p.parse_mail_subject(subject) == (prio, address)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("critical", p.Priority.CRITICAL),
        ("URGENT", p.Priority.URGENT),
        (2, p.Priority.NORMAL),
        ("3", p.Priority.LOW),
        (p.Priority.LOW, p.Priority.LOW),
    ],
)
def test_priorities(value, expected):
    assert p.parse_priority(value) is expected


@pytest.mark.parametrize("value", ["high", 4, -1, True, None, 1.5])
def test_unknown_priorities(value):
    with pytest.raises(InvalidPriority):
        p.parse_priority(value)


@pytest.mark.parametrize("value", [0, 0.5, -1, float("nan"), "10", True])
def test_bad_ttls(value):
    with pytest.raises(InvalidTTL):
        p.validate_ttl(value)


def test_ttl_rounds_up():
    assert p.nats_ttl_value(1.2) == "2s"
    assert p.nats_ttl_value(5) == "5s"


def test_topics_and_patterns():
    assert p.validate_topic("build.done") == "build.done"
    assert p.validate_topic_pattern("build.*.>") == "build.*.>"
    for bad in ["build.*", "a..b", "", "a b", "build.done\n"]:
        with pytest.raises(InvalidTopic):
            p.validate_topic(bad)
    for bad in ["a.>.b", "a..b", "a b", "a.*\n"]:
        with pytest.raises(InvalidTopic):
            p.validate_topic_pattern(bad)


def test_consumer_names_are_distinct_and_dot_free():
    names = {p.consumer_name(a, prio) for a in ("a", "a.b", "a-b") for prio in p.PRIORITIES}
    assert len(names) == 12
    assert not any("." in n for n in names)


def test_a_priority_prints_its_name_and_compares_as_its_digit() -> None:
    assert str(p.Priority.CRITICAL) == "critical"
    assert f"{p.Priority.URGENT}" == "urgent"
    assert print_to_str(p.Priority.LOW) == "low"
    assert f"{p.Priority.LOW:d}" == "3"
    assert p.Priority.URGENT < p.Priority.NORMAL and p.Priority.NORMAL == 2
    assert p.mail_subject(p.Priority.URGENT, "a.b") == f"{p.MAIL_PREFIX}.1.a.b"
    assert json.dumps({"priority": p.Priority.LOW}) == '{"priority": 3}'


def print_to_str(value: object) -> str:
    """What ``print(value)`` writes."""
    out = io.StringIO()
    print(value, file=out, end="")
    return out.getvalue()


def test_a_trailing_newline_is_never_a_valid_token() -> None:
    """``re.match`` with ``$`` accepts "name\\n" (``$`` matches before a final newline); the
    validators use ``fullmatch``. Found by the address property test above."""
    from mailslot_broker.tenants import TenantError, validate_tenant_name

    assert validate_tenant_name("acme") == "acme"
    with pytest.raises(TenantError):
        validate_tenant_name("acme\n")
    subject = p.devices.downlink_subject("dev1", p.Priority.NORMAL, None, "id-1\n")
    assert "\n" not in subject and not subject.endswith(".id-1")  # hashed, not passed through
    assert p.devices.downlink_subject("dev1", p.Priority.NORMAL, None, "id-1").endswith(".id-1")
