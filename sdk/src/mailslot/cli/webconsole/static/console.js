// The Mailslot console page: one EventSource for every change, fetch for actions.
// No framework, no build step: the server pushes whole lists (mailboxes, agents, dead
// letters) and single tail entries; this file only renders them.
"use strict";

const PRIORITIES = ["critical", "urgent", "normal", "low"];
const $ = (sel) => document.querySelector(sel);

// The printed URL carries ?token=; the server turned it into a cookie, so drop it from the bar.
if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? "-"));
  return node;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function left(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (seconds >= size) return (seconds / size).toFixed(1) + unit;
  }
  return Math.round(seconds) + "s";
}

function payloadText(row) {
  if ("payload" in row) return typeof row.payload === "string" ? row.payload : JSON.stringify(row.payload);
  if ("payload_b64" in row) return "<binary>";
  return "<body lost>";
}

function traceLink(trace) {
  if (!trace) return "";
  return el("a", { href: "#", class: "trace", "data-trace": trace, onclick: (e) => { e.preventDefault(); showRelated("trace", trace); } }, trace.slice(0, 8));
}

function threadLink(tid) {
  if (!tid) return "-";
  return el("a", { href: "#", class: "thread", "data-thread": tid, onclick: (e) => { e.preventDefault(); showThread(tid); } }, tid);
}

function renderMailboxes(rows) {
  fill($("#mailboxes tbody"), rows.map((r) => el("tr", { "data-address": r.address },
    el("td", {}, r.address),
    ...PRIORITIES.map((p) => el("td", { class: "n", "data-priority": p }, String(r.depth[p] ?? 0))),
    el("td", { class: r.presence }, r.presence),
    el("td", {}, (r.last_seen || "-").slice(0, 19)),
    el("td", {}, left(r.retention_left_s)))));
}

function renderAgents(cards) {
  fill($("#agents tbody"), cards.map((c) => el("tr", { "data-address": c.address },
    el("td", {}, c.address),
    el("td", { class: c.status || "online" }, c.status || "online"),
    el("td", {}, c.name || "-"),
    el("td", {}, (c.capabilities || []).join(", ") || "-"))));
}

function renderDead(rows) {
  fill($("#dead tbody"), rows.map((d) => el("tr", { "data-seq": String(d.seq) },
    el("td", { class: "n" }, String(d.seq)),
    el("td", {}, d.address),
    el("td", {}, d.priority),
    el("td", {}, d.reason || "-"),
    el("td", {}, threadLink(d.thread_id), " ", traceLink(d.trace_id)),
    el("td", { class: "payload" }, payloadText(d)),
    el("td", {}, el("button", { type: "button", class: "requeue", onclick: () => requeue(d.seq) }, "requeue")))));
}

function tailLine(e) {
  if (e.type === "broadcast") {
    return el("li", { class: "t-broadcast" }, e.at.slice(11, 23), " ",
      el("span", { class: "kind k-broadcast" }, "broadcast"), " ", e.topic, " from ", e.from || "-", ": ",
      el("span", { class: "preview" }, e.preview));
  }
  if (e.type === "agent") {
    return el("li", { class: "t-agent" }, e.at.slice(11, 23), " ",
      el("span", { class: "kind" }, "agent " + e.kind), " ", e.address);
  }
  const parts = [e.at.slice(11, 23), " ", el("span", { class: "kind k-" + e.kind }, e.kind), " ",
    e.address, " [", e.priority || "-", "] "];
  if (e.from) parts.push("from ", e.from, " ");
  if (e.thread_id) parts.push("thread ", threadLink(e.thread_id), " ");
  if (e.trace_id) parts.push("trace ", traceLink(e.trace_id), " ");
  if (e.reason) parts.push("(", e.reason, ") ");
  if (e.preview) parts.push(el("span", { class: "preview" }, e.preview));
  return el("li", { class: "t-mail", "data-id": e.id || "" }, ...parts);
}

function addTail(e) {
  const list = $("#tail");
  list.prepend(tailLine(e));
  while (list.children.length > 300) list.lastChild.remove();
}

async function post(url) {
  const r = await fetch(url, { method: "POST", headers: { "X-Mailslot-Console": "1" } });
  const body = await r.json();
  if (!r.ok) alert(body.error || r.statusText);
  return body;
}

function requeue(seq) { return post(`api/dead-letters/${seq}/requeue`); }

$("#purge-all").addEventListener("click", () => {
  if (confirm("Delete every dead letter?")) post("api/dead-letters/purge");
});

function showThread(tid) { return showRelated("thread", tid); }

async function showRelated(kind, tid) {
  const r = await fetch(`api/${kind}/${encodeURIComponent(tid)}`);
  const t = await r.json();
  $("#thread-kind").textContent = kind === "trace" ? "Trace" : "Thread";
  $("#thread-id").textContent = tid;
  const block = (title, items, line) => el("div", {}, el("h3", {}, `${title} (${items.length})`),
    el("ul", {}, ...items.map((x) => el("li", {}, line(x)))));
  $("#thread").replaceChildren(
    block("waiting", t.waiting, (m) => `${m.to} [${m.priority}] from ${m.from || "-"}: ${payloadText(m)}`),
    block("dead", t.dead, (d) => `${d.address} [${d.priority}] ${d.reason}: ${payloadText(d)}`),
    block("seen", t.seen, (e) => `${e.at.slice(11, 23)} ${e.kind} ${e.address} ${e.preview || ""}`));
  $("#thread-panel").hidden = false;
}
$("#thread-close").addEventListener("click", () => { $("#thread-panel").hidden = true; });

function connect() {
  const source = new EventSource("api/events");
  const status = $("#status");
  source.addEventListener("open", () => { status.textContent = "live"; status.className = "status"; });
  source.addEventListener("error", () => { status.textContent = "reconnecting…"; status.className = "status down"; });
  source.addEventListener("state", (ev) => {
    const s = JSON.parse(ev.data);
    renderMailboxes(s.mailboxes); renderAgents(s.agents); renderDead(s.dead_letters);
    $("#tail").replaceChildren();
    s.tail.forEach(addTail);
  });
  source.addEventListener("mailboxes", (ev) => renderMailboxes(JSON.parse(ev.data)));
  source.addEventListener("agents", (ev) => renderAgents(JSON.parse(ev.data)));
  source.addEventListener("dead_letters", (ev) => renderDead(JSON.parse(ev.data)));
  source.addEventListener("tail", (ev) => addTail(JSON.parse(ev.data)));
  source.addEventListener("problem", (ev) => { status.textContent = JSON.parse(ev.data).error; status.className = "status down"; });
}
connect();
