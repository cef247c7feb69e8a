"""The table and the JSON: one row per comparison, Mailslot beside raw nats-py, and the ratio."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

#: (section, key, target): the single-message paths' targets (the scale work's: they may not
#: lose to raw nats-py by more than this), and which way is good.
TARGETS = {
    ("send", "send_vs_publish_ratio"): (">=", 0.95),
    ("send", "send_many_vs_publish_async_ratio"): (">=", 0.95),
    ("receive", "receive_vs_fetch_ack_ratio"): (">=", 0.9),
    ("latency", "p50_vs_raw_pull_ratio"): ("<=", 1.3),
}


def _fmt(x: Any, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        x = f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.3g}" if abs(x) < 1 else f"{x:,.2f}"
    return f"{x}{unit}"


def rows(r: dict[str, Any]) -> list[tuple[str, str, Any, Any, Any, str]]:
    """(what, unit, mailslot, raw, ratio, target) for every comparison that ran."""
    out: list[tuple[str, str, Any, Any, Any, str]] = []

    def target(section: str, key: str, value: Any) -> str:
        t = TARGETS.get((section, key))
        if t is None or value is None:
            return ""
        op, v = t
        ok = value >= v if op == ">=" else value <= v
        return f"{op} {v} {'ok' if ok else 'MISS'}"

    def compare(
        section: str,
        s: dict[str, Any],
        what: str,
        unit: str,
        mine: str,
        raw: str,
        ratio: str | None,
        note: str = "",
    ) -> None:
        """One Mailslot-beside-raw row from the fields ``mine``, ``raw`` and ``ratio`` of ``s``;
        the target column is the ratio's target (if it has one), else ``note``."""
        value = None if ratio is None else s[ratio]
        tgt = target(section, ratio, value) if ratio is not None else ""
        out.append((what, unit, s[mine], s[raw], value, tgt or note))

    if s := r.get("send"):
        compare(
            "send",
            s,
            "send, one at a time (vs js.publish)",
            "msg/s",
            "mailslot_send_msgs_per_s",
            "raw_publish_msgs_per_s",
            "send_vs_publish_ratio",
        )
        compare(
            "send",
            s,
            "send_many (vs publish_async)",
            "msg/s",
            "mailslot_send_many_msgs_per_s",
            "raw_publish_async_msgs_per_s",
            "send_many_vs_publish_async_ratio",
        )
    if s := r.get("receive"):
        compare(
            "receive",
            s,
            "receive_batch(100)+ack_many (vs fetch(100)+ack)",
            "msg/s",
            "mailslot_receive_batch_ack_msgs_per_s",
            "raw_fetch_ack_msgs_per_s",
            "receive_vs_fetch_ack_ratio",
        )
        compare(
            "receive",
            s,
            "receive_batch(100)+ack_many (vs fetch(100)+ack_sync)",
            "msg/s",
            "mailslot_receive_batch_ack_msgs_per_s",
            "raw_fetch_ack_sync_msgs_per_s",
            "receive_vs_fetch_ack_sync_ratio",
        )
        compare(
            "receive",
            s,
            "receive_batch(100)+ack() each (vs fetch(100)+ack_sync)",
            "msg/s",
            "mailslot_receive_batch_ack_each_msgs_per_s",
            "raw_fetch_ack_sync_msgs_per_s",
            "receive_ack_each_vs_fetch_ack_sync_ratio",
        )
    if s := r.get("latency"):
        compare(
            "latency",
            s,
            "latency p50 (vs pull fetch loop)",
            "ms",
            "mailslot_p50_ms",
            "raw_pull_p50_ms",
            "p50_vs_raw_pull_ratio",
        )
        compare(
            "latency",
            s,
            "latency p99 (vs pull fetch loop)",
            "ms",
            "mailslot_p99_ms",
            "raw_pull_p99_ms",
            "p99_vs_raw_pull_ratio",
        )
        compare(
            "latency",
            s,
            "latency p50 (vs push subscription)",
            "ms",
            "mailslot_p50_ms",
            "raw_push_p50_ms",
            "p50_vs_raw_push_ratio",
        )
        out.append(
            (
                "latency: samples > 500 ms (lost bell, max)",
                "",
                f"{s['mailslot_stalls_over_500ms']} ({s['mailslot_max_ms']:,.0f} ms)",
                f"{s['raw_pull_stalls_over_500ms']} ({s['raw_pull_max_ms']:,.0f} ms)",
                None,
                "0",
            )
        )
    if s := r.get("priority"):
        for n in s["backlogs"]:
            d = s[f"n{n}"]
            compare(
                "priority",
                d,
                f"urgent behind {n:,} normal: position",
                "",
                "mailslot_position",
                "raw_fifo_position",
                "position_ratio",
                note="mailslot = 1",
            )
            compare(
                "priority",
                d,
                f"urgent behind {n:,} normal: time to it",
                "ms",
                "mailslot_time_ms",
                "raw_fifo_time_ms",
                "time_to_urgent_ratio",
            )
    if s := r.get("lifecycle"):
        compare(
            "lifecycle",
            s,
            "agent open+destroy (vs 1 consumer create+delete+purge)",
            "ms",
            "mailslot_open_destroy_ms",
            "raw_consumer_create_delete_ms",
            "agent_cost_vs_raw_consumer_ratio",
        )
        lp = s["lapse"]
        left = lp["left_after_reclaim"]
        out.append(
            (
                f"{lp['agents']} lapsed agents: left after reclaim (cons/kv/msgs)",
                "",
                f"{left['consumers']}/{left['kv_entries']}/{left['messages']}",
                None,
                None,
                "0/0/0 " + ("ok" if not any(left.values()) else "MISS"),
            )
        )
        out.append(
            (
                f"{lp['agents']} lapsed agents: reclaim sweep",
                "ms/agent",
                lp["reclaim_ms_per_agent"],
                None,
                None,
                "",
            )
        )
    if s := r.get("idle"):
        compare(
            "idle",
            s,
            "idle: server RSS per mailbox (vs per consumer)",
            "KB",
            "mailslot_rss_kb_per_mailbox",
            "raw_rss_kb_per_consumer",
            "idle_rss_ratio",
        )
        compare(
            "idle",
            s,
            "idle: JS API requests per mailbox (incl. lease renewal)",
            "req/min",
            "mailslot_api_requests_per_mailbox_per_min",
            "raw_api_requests_per_consumer_per_min",
            None,
        )
        compare(
            "idle",
            s,
            "idle: pull requests per mailbox (raw: 5 s long-poll)",
            "req/s",
            "mailslot_pull_requests_per_mailbox_per_s",
            "raw_pull_requests_per_consumer_per_s",
            "idle_pull_requests_ratio",
        )
    if s := r.get("mcp"):  # "raw" here is the SDK itself: what the MCP hop adds
        compare(
            "mcp",
            s,
            "send via MCP (vs SDK send)",
            "ms p50",
            "mcp_send_p50_ms",
            "sdk_send_p50_ms",
            "send_mcp_vs_sdk_ratio",
        )
        compare(
            "mcp",
            s,
            "wait-for-mail wake latency via MCP (vs SDK receive)",
            "ms p50",
            "mcp_wake_p50_ms",
            "sdk_wake_p50_ms",
            "wake_mcp_vs_sdk_ratio",
        )
        if "mcp2_send_p50_ms" in s:  # the server on mcp 2.x, handshake era (the 1.30 client)
            compare(
                "mcp",
                s,
                "send via MCP, server on mcp 2.x (vs SDK send)",
                "ms p50",
                "mcp2_send_p50_ms",
                "sdk_send_p50_ms",
                "send_mcp2_vs_sdk_ratio",
            )
            compare(
                "mcp",
                s,
                "wait-for-mail wake latency via MCP, server on mcp 2.x (vs SDK receive)",
                "ms p50",
                "mcp2_wake_p50_ms",
                "sdk_wake_p50_ms",
                "wake_mcp2_vs_sdk_ratio",
            )
    if s := r.get("audit"):  # "raw" here is the audit off: what recording costs
        for path, label in (("send", "send, one at a time"), ("receive", "receive_batch(100)+ack_many")):
            for mode, what in (("on", "audit on"), ("bodies", "audit on, bodies kept")):
                compare(
                    "audit",
                    s,
                    f"{label}: {what} (vs audit off)",
                    "msg/s",
                    f"{path}_audit_{mode}_msgs_per_s",
                    f"{path}_audit_off_msgs_per_s",
                    f"{path}_{mode}_vs_off_ratio",
                )
                compare(
                    "audit",
                    s,
                    f"{label}: server CPU per msg, {what} (vs audit off)",
                    "µs",
                    f"{path}_server_cpu_us_{mode}",
                    f"{path}_server_cpu_us_off",
                    f"{path}_cpu_{mode}_vs_off_ratio",
                )
    if s := r.get("tracing"):  # "raw" here is tracing off: what spans and traceparent cost
        for path, label in (("send", "send, one at a time"), ("receive", "receive_batch(100)+ack each")):
            for mode, what in (("api", "OpenTelemetry API, no provider"), ("sdk", "SDK provider")):
                compare(
                    "tracing",
                    s,
                    f"{label}: tracing with {what} (vs off)",
                    "msg/s",
                    f"{path}_tracing_{mode}_msgs_per_s",
                    f"{path}_tracing_off_msgs_per_s",
                    f"{path}_{mode}_vs_off_ratio",
                )
                compare(
                    "tracing",
                    s,
                    f"{label}: client CPU per msg, {what} (vs off)",
                    "µs",
                    f"{path}_client_cpu_us_{mode}",
                    f"{path}_client_cpu_us_off",
                    f"{path}_cpu_{mode}_vs_off_ratio",
                )
                compare(
                    "tracing",
                    s,
                    f"{label}: the tracing hooks alone, CPU per msg, {what} (vs off)",
                    "µs",
                    f"{path}_hooks_cpu_us_{mode}",
                    f"{path}_hooks_cpu_us_off",
                    None,
                )
    if s := r.get("signing"):  # "raw" here is unsigned mail: what signing and checking cost
        for path, label in (
            ("send", "agent send, one at a time"),
            ("receive", "receive_batch(100)+ack, sender checked"),
        ):
            compare(
                "signing",
                s,
                f"{label}: signed (vs unsigned)",
                "msg/s",
                f"{path}_signed_msgs_per_s",
                f"{path}_unsigned_msgs_per_s",
                f"{path}_signed_vs_unsigned_ratio",
            )
            compare(
                "signing",
                s,
                f"{label}: client CPU per msg, signed (vs unsigned)",
                "µs",
                f"{path}_client_cpu_us_signed",
                f"{path}_client_cpu_us_unsigned",
                f"{path}_cpu_signed_vs_unsigned_ratio",
            )
        if "send_to_receive_p50_ms_outbox" in s:  # "raw": the same signed mail, straight in
            for key, label, unit in (
                ("send_to_receive_p50_ms", "agent mail send->receive p50, via outbox (vs direct)", "ms"),
                ("send_one_msgs_per_s", "agent send, one at a time, via outbox (vs direct)", "msg/s"),
            ):
                compare("signing", s, label, unit, f"{key}_outbox", f"{key}_direct", None)
    return out


def print_table(r: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    meta = r.get("meta", {})
    t = Table(
        title=f"Mailslot vs raw nats-py ({meta.get('mode')}, nats-server {meta.get('server_version')}, "
        f"medians of {meta.get('repeat')})",
        caption="ratio = mailslot / raw: throughput higher is better; ms/KB/req lower is better",
    )
    for col, just in (
        ("comparison", "left"),
        ("unit", "left"),
        ("mailslot", "right"),
        ("raw", "right"),
        ("ratio", "right"),
        ("target", "left"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for what, unit, a, b, rt, tgt in rows(r):
        t.add_row(what, unit, _fmt(a), _fmt(b), _fmt(rt), tgt)
    console.print(t)


def _clean(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def write_json(r: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(r), indent=2, sort_keys=False) + "\n")


def ratios(r: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every ``*_ratio`` field, flattened to ``section.key``."""
    out: dict[str, Any] = {}
    for k, v in r.items():
        if isinstance(v, dict):
            out.update(ratios(v, f"{prefix}{k}."))
        elif k.endswith("_ratio"):
            out[prefix + k] = v
    return out
