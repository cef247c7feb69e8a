"""Idempotent creation and upgrade of the streams and buckets the protocol needs.

Run by every client on connect, so it must be cheap when everything is in place (one info
request per stream), safe when several processes race (the loser re-reads instead of
failing) and loud when an existing stream was configured in a way Mailslot cannot use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.api import KeyValueConfig, StreamConfig

from . import protocol as p
from .errors import ProvisioningConflict, ProvisioningError

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
    "num_replicas",
    "description",
)


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def _norm(name: str, value: object) -> object:
    if name == "subjects":
        return sorted(value or [])  # type: ignore[call-overload]
    if name == "republish" and value is not None:
        r = value
        return (r.src, r.dest, bool(r.headers_only))  # type: ignore[attr-defined]
    if name in ("max_age", "duplicate_window"):
        return round(float(value or 0), 3)  # type: ignore[arg-type]
    if name in ("allow_msg_ttl", "allow_msg_schedules", "allow_direct"):
        return bool(value)
    if name == "description":
        return value or None
    if name == "max_consumers":
        return value if value is not None else -1
    if name == "num_replicas":
        return value or 1
    return value


def _diff(want: StreamConfig, have: StreamConfig) -> tuple[list[str], list[str]]:
    conflicts = [f for f in _FIXED if _norm(f, getattr(want, f)) != _norm(f, getattr(have, f))]
    changes = [f for f in _UPGRADABLE if _norm(f, getattr(want, f)) != _norm(f, getattr(have, f))]
    return conflicts, changes


async def ensure_stream(js: JetStreamContext, want: StreamConfig, report: ProvisionReport) -> None:
    assert want.name is not None
    for _attempt in range(3):
        try:
            info = await js.stream_info(want.name)
        except jserr.NotFoundError:
            try:
                await js.add_stream(want)
                report.created.append(want.name)
                return
            except jserr.BadRequestError:
                continue  # another process created it first: compare with theirs
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
        if not changes:
            report.unchanged.append(want.name)
            return
        merged = dataclasses.replace(have, **{f: getattr(want, f) for f in changes})
        try:
            await js.update_stream(merged)
        except jserr.BadRequestError as exc:
            raise ProvisioningConflict(
                f"stream {want.name} could not be upgraded ({', '.join(changes)}): {exc}"
            ) from exc
        report.updated.append(want.name)
        return
    raise ProvisioningError(f"stream {want.name} kept changing while being provisioned")


async def ensure_bucket(js: JetStreamContext, want: KeyValueConfig, report: ProvisionReport) -> None:
    name = f"KV_{want.bucket}"
    for _attempt in range(3):
        try:
            info = await js.stream_info(name)
        except jserr.NotFoundError:
            try:
                await js.create_key_value(want)
                report.created.append(name)
                return
            except jserr.BadRequestError:
                continue
        have = info.config
        if have.max_msgs_per_subject != want.history:
            raise ProvisioningConflict(
                f"bucket {want.bucket} keeps history {have.max_msgs_per_subject}, need {want.history}"
            )
        report.unchanged.append(name)
        return
    raise ProvisioningError(f"bucket {want.bucket} kept changing while being provisioned")


async def provision(js: JetStreamContext, settings: p.StreamSettings | None = None) -> ProvisionReport:
    """Create or upgrade everything Mailslot needs in the connected account."""
    s = settings or p.StreamSettings()
    report = ProvisionReport()
    for cfg in (p.mail_stream_config(s), p.topics_stream_config(s), p.dlq_stream_config(s)):
        await ensure_stream(js, cfg, report)
    for kv in (p.agents_bucket_config(s), p.mailboxes_bucket_config(s), p.sidecar_bucket_config(s)):
        await ensure_bucket(js, kv, report)
    return report
