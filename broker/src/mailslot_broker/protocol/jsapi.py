"""JetStream API error codes (``err_code``) Mailslot reacts to, named once.

The numbers are nats-server's (``server/jetstream_errors_generated.go``); each one Mailslot
relies on is provoked against a real server in ``tests/broker/test_jsapi.py``. Some codes are
reused by the server for more than one cause, so the predicates below look at the
description as well where that matters: 10057 ("message delete failed") says "no message
found" when the message is already gone and something else (e.g. "stream store EOF") when
the delete really failed.
"""

from __future__ import annotations

#: ``consumer not found`` (404).
CONSUMER_NOT_FOUND = 10014
#: ``insufficient resources`` (503): a cluster that cannot place what was asked for.
INSUFFICIENT_RESOURCES = 10023
#: ``no suitable peers for placement`` (400), e.g. more replicas than the cluster has nodes;
#: the description may go on (", insufficient storage").
CLUSTER_NO_PEERS = 10005
#: ``maximum number of streams reached`` (400): the account's ``max_streams`` quota.
MAX_STREAMS_REACHED = 10027
#: ``no message found`` (404): a get of a sequence or subject that holds no message.
NO_MESSAGE_FOUND = 10037
#: ``jetstream not enabled for account`` (503).
JETSTREAM_NOT_ENABLED_FOR_ACCOUNT = 10039
#: ``insufficient storage resources available`` (500): more ``max_bytes`` than the server has.
STORAGE_RESOURCES_EXCEEDED = 10047
#: ``message delete failed`` (500). The description says why: "no message found" for one
#: already deleted (or purged), "stream store EOF" for a sequence past the end, or a real
#: storage failure. Only the first means "already gone"; see :func:`is_already_gone`.
STREAM_MSG_DELETE_FAILED = 10057
#: ``stream name already in use with a different configuration`` (400).
STREAM_NAME_IN_USE = 10058
#: ``stream not found`` (404).
STREAM_NOT_FOUND = 10059
#: ``wrong last sequence`` (400): an expected-last-(subject-)sequence check failed, i.e.
#: somebody wrote since (a lost compare-and-set).
WRONG_LAST_SEQUENCE = 10071
#: ``replicas > 1 not supported in non-clustered mode`` (500).
REPLICAS_NOT_SUPPORTED = 10074
#: ``jetstream not enabled`` (503).
JETSTREAM_NOT_ENABLED = 10076

_NO_MESSAGE = "no message found"


def _desc(exc: object) -> str:
    return (getattr(exc, "description", None) or "").lower()


def err_code(exc: object) -> int | None:
    """The JetStream ``err_code`` of an API error, None for anything else."""
    code = getattr(exc, "err_code", None)
    return code if isinstance(code, int) else None


def is_no_message(exc: object) -> bool:
    """A get found no message at that sequence / subject."""
    return err_code(exc) == NO_MESSAGE_FOUND


def is_already_gone(exc: object) -> bool:
    """A delete (or get) of a message that is not there any more: somebody else took it.

    A delete failure for any other reason (10057 with another description) is *not* gone.
    """
    code = err_code(exc)
    if code == NO_MESSAGE_FOUND:
        return True
    return code == STREAM_MSG_DELETE_FAILED and _NO_MESSAGE in _desc(exc)


def is_wrong_last_sequence(exc: object) -> bool:
    """A conditional write lost: the subject (or stream) was written since."""
    return err_code(exc) == WRONG_LAST_SEQUENCE


def is_replicas_refused(exc: object) -> bool:
    """The server cannot place that many replicas (a single server: 10074; a cluster with too
    few nodes or too little room: 10005 or 10023)."""
    return err_code(exc) in (REPLICAS_NOT_SUPPORTED, INSUFFICIENT_RESOURCES, CLUSTER_NO_PEERS)


def is_jetstream_disabled(exc: object) -> bool:
    """JetStream is off for this server or account. A bare 503 status without an ``err_code``
    is judged by its description."""
    if err_code(exc) in (JETSTREAM_NOT_ENABLED, JETSTREAM_NOT_ENABLED_FOR_ACCOUNT):
        return True
    return getattr(exc, "code", None) == 503 and "jetstream not enabled" in _desc(exc)


def is_permission_denied(exc: object) -> bool:
    """An API answer that refuses these credentials. JetStream has no err_code for it (the
    server refuses the subject itself), so only the description can tell."""
    desc = _desc(exc)
    return "permission" in desc or "authorization" in desc
