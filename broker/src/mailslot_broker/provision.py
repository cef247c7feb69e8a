"""Idempotent creation and upgrade of the streams and buckets the protocol needs.

Run by every client on connect, so it must be cheap when everything is in place (one info
request per stream), safe when several processes race (the loser re-reads instead of
failing) and loud when an existing stream was configured in a way Mailslot cannot use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.api import KeyValueConfig, StreamConfig

from . import natscompat
from . import protocol as p
from .errors import ProvisioningConflict, ProvisioningError
from .replicas import create_replicated

#: Fields that cannot change on an existing stream: a difference is a conflict.
_FIXED = ("retention", "storage")
#: Fields Mailslot owns and may upgrade in place.
_UPGRADABLE = (
    "subjects",
    "max_age",
    "duplicate_window",
    "allow_msg_ttl",
    "allow_msg_schedules",
    "allow_direct",
    "republish",
    "max_consumers",
    "description",
    "max_msg_size",
)
#: What :func:`provision` creates at connect: the streams, then the buckets (each bucket is a
#: stream too). The claims and state buckets are made on first use, one stream each more.
STREAM_CONFIGS = (p.mail_stream_config, p.topics_stream_config, p.dlq_stream_config)
BUCKET_CONFIGS = (p.agents_bucket_config, p.mailboxes_bucket_config, p.sidecar_bucket_config)
#: Streams an account needs before any client can connect (a tenant's max_streams floor).
PROVISIONED_STREAMS = len(STREAM_CONFIGS) + len(BUCKET_CONFIGS)


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: Stream/bucket -> replica count found or created.
    replicas: dict[str, int] = field(default_factory=dict)
    #: Things an operator should know (e.g. fewer replicas than were asked for).
    warnings: list[str] = field(default_factory=list)
    #: The deployment refused its full count (after waiting for it once): the creates after
    #: that fall back at once instead of waiting again.
    full_count_refused: bool = field(default=False, repr=False)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def _norm(name: str, value: object) -> object:
    if name == "subjects":
        return sorted(value or [])  # type: ignore[call-overload]
    if name == "republish" and value is not None:
        # headers_only is the deployment's: an audit that keeps bodies turns it off on the
        # mail stream's bell, and a client connecting must not turn it back on.
        r = value
        return (r.src, r.dest)  # type: ignore[attr-defined]
    if name in ("max_age", "duplicate_window"):
        return round(float(value or 0), 3)  # type: ignore[arg-type]
    if name in ("allow_msg_ttl", "allow_msg_schedules", "allow_direct"):
        return bool(value)
    if name == "description":
        return value or None
    if name in ("max_consumers", "max_msg_size"):
        return value if value is not None else -1
    if name == "num_replicas":
        return value or 1
    return value


def _diff(want: StreamConfig, have: StreamConfig) -> tuple[list[str], list[str]]:
    conflicts = [f for f in _FIXED if _norm(f, getattr(want, f)) != _norm(f, getattr(have, f))]
    changes = [
        f
        for f in _UPGRADABLE
        if _norm(f, getattr(want, f)) != _norm(f, getattr(have, f))
        # A stream Mailslot sets no message size for keeps the deployment's.
        and not (f == "max_msg_size" and want.max_msg_size is None)
    ]
    return conflicts, changes


async def _create(
    js: JetStreamContext,
    name: str,
    create: Callable[[int], Awaitable[object]],
    requested: int | None,
    report: ProvisionReport,
) -> int:
    n, warning = await create_replicated(
        js, name, create, requested, wait_for_full_count=not report.full_count_refused
    )
    if warning is not None:
        report.warnings.append(warning)
        report.full_count_refused = True
    return n


def _check_replicas(name: str, have: int, requested: int | None, report: ProvisionReport) -> bool:
    """True when an operator asked for more replicas than the stream has (only then may they
    change). A client asking for fewer changes nothing."""
    report.replicas[name] = have
    if requested is None or requested <= have:
        return False
    report.warnings.append(
        f"{name} has {have} replica(s), {requested} were asked for; raising replicas is an "
        "operator action: provision(js, StreamSettings(replicas=N), raise_replicas=True)"
    )
    return True


def _refused(what: str, exc: jserr.APIError) -> str:
    """Why the server would not create ``what``, naming the quota when that is the cause."""
    if p.jsapi.err_code(exc) == p.jsapi.MAX_STREAMS_REACHED:
        return (
            f"{what} could not be created: the account's stream quota (max_streams) is used up. "
            f"Mailslot needs {PROVISIONED_STREAMS} streams at connect, one more each for the claims "
            "and state buckets (made on first use), two for agent credentials and the state bucket "
            f"(made when the first agent credential is issued); raise the tenant's max_streams. ({exc})"
        )
    return f"{what} could not be created: {exc}"


async def ensure_stream(
    js: JetStreamContext,
    want: StreamConfig,
    report: ProvisionReport,
    *,
    requested_replicas: int | None = None,
    raise_replicas: bool = False,
) -> None:
    assert want.name is not None
    for _attempt in range(3):
        try:
            info = await js.stream_info(want.name)
        except jserr.NotFoundError:
            try:
                n = await _create(
                    js,
                    want.name,
                    lambda n: js.add_stream(dataclasses.replace(want, num_replicas=n)),
                    requested_replicas,
                    report,
                )
                report.created.append(want.name)
                report.replicas[want.name] = n
                return
            except jserr.BadRequestError as exc:
                if await _exists(js, want.name):
                    continue  # another process created it first: compare with theirs
                raise ProvisioningError(_refused(f"stream {want.name}", exc)) from exc
        have = info.config
        conflicts, changes = _diff(want, have)
        if conflicts:
            detail = ", ".join(
                f"{f}: have {getattr(have, f)!s}, need {getattr(want, f)!s}" for f in conflicts
            )
            raise ProvisioningConflict(
                f"stream {want.name} exists with an incompatible configuration ({detail}); "
                "Mailslot will not change it. Delete or rename it, or point Mailslot at "
                "another account."
            )
        more = _check_replicas(want.name, have.num_replicas or 1, requested_replicas, report)
        update = {f: getattr(want, f) for f in changes}
        if more and raise_replicas:
            update["num_replicas"] = requested_replicas
            report.warnings.pop()
            report.replicas[want.name] = int(requested_replicas or 1)
        if not update:
            report.unchanged.append(want.name)
            return
        merged = dataclasses.replace(have, **update)
        try:
            await js.update_stream(merged)
        except jserr.BadRequestError as exc:
            raise ProvisioningConflict(
                f"stream {want.name} could not be upgraded ({', '.join(update)}): {exc}"
            ) from exc
        report.updated.append(want.name)
        return
    raise ProvisioningError(f"stream {want.name} kept changing while being provisioned")


async def ensure_bucket(
    js: JetStreamContext,
    want: KeyValueConfig,
    report: ProvisionReport,
    *,
    requested_replicas: int | None = None,
) -> None:
    name = f"KV_{want.bucket}"
    for _attempt in range(3):
        try:
            info = await js.stream_info(name)
        except jserr.NotFoundError:
            try:
                n = await _create(
                    js,
                    name,
                    lambda n: js.create_key_value(dataclasses.replace(want, replicas=n)),
                    requested_replicas,
                    report,
                )
                report.created.append(name)
                report.replicas[name] = n
                return
            except jserr.BadRequestError as exc:
                if await _exists(js, name):
                    continue  # a concurrent provisioner created it first: check theirs
                raise ProvisioningError(_refused(f"bucket {want.bucket}", exc)) from exc
        have = info.config
        if have.max_msgs_per_subject != want.history:
            raise ProvisioningConflict(
                f"bucket {want.bucket} keeps history {have.max_msgs_per_subject}, need {want.history}"
            )
        _check_replicas(name, have.num_replicas or 1, requested_replicas, report)
        report.unchanged.append(name)
        return
    raise ProvisioningError(f"bucket {want.bucket} kept changing while being provisioned")


async def provision(
    js: JetStreamContext, settings: p.StreamSettings | None = None, *, raise_replicas: bool = False
) -> ProvisionReport:
    """Create or upgrade everything Mailslot needs in the connected account.

    Replicas are the deployment's (see :class:`~mailslot_broker.protocol.StreamSettings`):
    never lowered; raised only with ``raise_replicas=True`` (an operator's decision, since it
    moves every stored message).
    """
    s = settings or p.StreamSettings()
    report = ProvisionReport()
    for make in STREAM_CONFIGS:
        await ensure_stream(js, make(s), report, requested_replicas=s.replicas, raise_replicas=raise_replicas)
    # The claims bucket is not here: it is created on first use (provision_claims), so an
    # account that never claims spends no stream on it (tenants often have max_streams).
    for make_kv in BUCKET_CONFIGS:
        await ensure_bucket(js, make_kv(s), report, requested_replicas=s.replicas)
    agent_state = await provision_agent_state(js, s)
    report.created += agent_state.created
    report.updated += agent_state.updated
    return report


async def provision_claims(js: JetStreamContext, settings: p.StreamSettings | None = None) -> ProvisionReport:
    """Create the claims bucket if it is missing (the first ``claim`` of an account does)."""
    s = settings or p.StreamSettings()
    report = ProvisionReport()
    await ensure_bucket(js, p.claims_bucket_config(s), report, requested_replicas=s.replicas)
    return report


async def provision_agent_writes(
    js: JetStreamContext, settings: p.StreamSettings | None = None
) -> ProvisionReport:
    """The streams of agent credentials (``protocol.agent_writes``): the one they write their
    lease, record and state into, which the agents, mailboxes and state buckets source, and
    their outbox. Made when a tenant issues an agent credential, not at connect: a tenant
    without agents spends no stream on them. The state bucket, otherwise made on first use,
    is made here too (an agent credential cannot create it), or given the source if it
    exists without one (a tenant whose agents were issued before agents had state)."""
    s = settings or p.StreamSettings()
    report = ProvisionReport()
    aw = p.agent_writes
    # The outbox's max_msg_size follows this server's max_payload (an existing outbox is
    # updated to it: one made before it had the mover's room, or on a changed server).
    max_payload = int(natscompat.js_connection(js).max_payload)
    for want in (aw.agent_writes_stream_config(s), aw.outbox_stream_config(s, max_payload=max_payload)):
        await ensure_stream(js, want, report, requested_replicas=s.replicas)
    for bucket in aw.SOURCED_BUCKETS:
        await _ensure_sourced(js, bucket, s, report)
    return report


_SOURCED_CONFIGS = {
    p.AGENTS_BUCKET: p.agents_bucket_config,
    p.MAILBOXES_BUCKET: p.mailboxes_bucket_config,
    p.STATE_BUCKET: p.state_bucket_config,
}


async def _ensure_sourced(
    js: JetStreamContext, bucket: str, s: p.StreamSettings, report: ProvisionReport
) -> None:
    """``bucket`` exists and sources its part of the agent writes stream (idempotent)."""
    aw = p.agent_writes
    name = p.kv_stream(bucket)
    try:
        have = (await js.stream_info(name)).config
    except jserr.NotFoundError:  # issued before any client connected, or never used
        await ensure_bucket(js, _SOURCED_CONFIGS[bucket](s), report, requested_replicas=s.replicas)
        have = (await js.stream_info(name)).config
    want = aw.bucket_sources(bucket)
    if _sources_key(have.sources) == _sources_key(want):
        report.unchanged.append(name)
        return
    others = [src for src in have.sources or [] if src.name != aw.AGENT_WRITES_STREAM]
    await js.update_stream(dataclasses.replace(have, sources=[*others, *want]))
    report.updated.append(name)


async def provision_agent_state(
    js: JetStreamContext, settings: p.StreamSettings | None = None
) -> ProvisionReport:
    """At connect, for a tenant that has agents (its agent writes stream exists): the state
    bucket sources the agents' state writes. Tenants whose agents were issued before agent
    state existed get it on their next tenant connect, without reissuing; a tenant without
    agents pays one ``STREAM.NAMES`` (by subject: an empty answer, not a refusal)."""
    s = settings or p.StreamSettings()
    report = ProvisionReport()
    aw = p.agent_writes
    try:
        found = await js.find_stream_name_by_subject(aw.agent_write_subject(p.STATE_BUCKET, ">"))
    except jserr.NotFoundError:
        return report
    if found == aw.AGENT_WRITES_STREAM:
        await _ensure_sourced(js, p.STATE_BUCKET, s, report)
    return report


def _sources_key(sources: Iterable[Any] | None) -> list[tuple[str, list[tuple[str, str]]]]:
    return sorted(
        (src.name, [(t.src, t.dest) for t in src.subject_transforms or []]) for src in sources or []
    )


async def _exists(js: JetStreamContext, stream: str) -> bool:
    try:
        await js.stream_info(stream)
    except jserr.NotFoundError:
        return False
    return True
