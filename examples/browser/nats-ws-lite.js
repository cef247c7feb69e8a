// A minimal NATS client for the browser over WebSocket: CONNECT, PING/PONG, SUB, PUB,
// MSG/HMSG and a request helper. Enough to watch a Mailslot inbox without a build step or
// a CDN; for anything more, use nats.ws. The wire protocol: https://docs.nats.io/reference/reference-protocols/nats-protocol
"use strict";

const CRLF = "\r\n";
const enc = new TextEncoder();
const dec = new TextDecoder();

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function indexOfCRLF(buf, from) {
  for (let i = from; i + 1 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10) return i;
  }
  return -1;
}

// "NATS/1.0 404 Message Not Found\r\nKey: Value\r\n..." -> {status, description, headers}
function parseHeaders(bytes) {
  const lines = dec.decode(bytes).split(CRLF);
  const first = lines.shift() || "";
  const [, status = "", ...rest] = first.split(" ");
  const headers = {};
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return { status, description: rest.join(" "), headers };
}

class NatsWsLite {
  constructor(url, { user, pass, name = "nats-ws-lite" } = {}) {
    this.url = url;
    this.opts = { verbose: false, pedantic: false, headers: true, no_responders: true,
                  protocol: 1, lang: "js", version: "0.1", name, user, pass };
    this.buf = new Uint8Array(0);
    this.subs = new Map();
    this.nextSid = 1;
    this.inbox = "_INBOX." + Math.random().toString(36).slice(2) + Date.now().toString(36);
    this.pending = new Map();
    this.nextReq = 1;
    this.onclose = () => {};
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      this._pong = null;
      ws.onmessage = (ev) => this._feed(new Uint8Array(ev.data), resolve, reject);
      ws.onerror = () => reject(new Error("websocket error"));
      ws.onclose = () => this.onclose();
    });
  }

  _send(text, payload) {
    let bytes = enc.encode(text);
    if (payload !== undefined) bytes = concat(concat(bytes, payload), enc.encode(CRLF));
    this.ws.send(bytes);
  }

  _feed(chunk, resolve, reject) {
    this.buf = concat(this.buf, chunk);
    for (;;) {
      const eol = indexOfCRLF(this.buf, 0);
      if (eol < 0) return;
      const line = dec.decode(this.buf.subarray(0, eol));
      const [op, ...args] = line.split(" ");
      if (op === "MSG" || op === "HMSG") {
        const total = parseInt(args[args.length - 1], 10);
        const hdrLen = op === "HMSG" ? parseInt(args[args.length - 2], 10) : 0;
        const start = eol + 2;
        if (this.buf.length < start + total + 2) return; // wait for the rest
        const body = this.buf.slice(start, start + total);
        this.buf = this.buf.slice(start + total + 2);
        const [subject, sid] = args;
        const reply = args.length === (op === "HMSG" ? 5 : 4) ? args[2] : null;
        const hdr = hdrLen ? parseHeaders(body.subarray(0, hdrLen)) : { status: "", headers: {} };
        this._deliver(Number(sid), { subject, reply, ...hdr, data: body.slice(hdrLen) });
        continue;
      }
      this.buf = this.buf.slice(eol + 2);
      if (op === "INFO") {
        // CONNECT once, after the first INFO; a server sends INFO again later (e.g. new
        // cluster URLs), which is news, not a cue to log in again.
        if (!this._connected) {
          this._connected = true;
          this._send("CONNECT " + JSON.stringify(this.opts) + CRLF + "SUB " + this.inbox + ".* 0" + CRLF + "PING" + CRLF);
          this.subs.set(0, (m) => this._reply(m));
        }
      } else if (op === "PING") {
        this._send("PONG" + CRLF);
      } else if (op === "PONG") {
        if (resolve) { resolve(this); resolve = null; }
      } else if (op === "-ERR") {
        if (reject) reject(new Error(line));
        console.error(line);
      }
    }
  }

  _deliver(sid, msg) {
    const cb = this.subs.get(sid);
    if (cb) cb(msg);
  }

  _reply(msg) {
    const token = msg.subject.slice(this.inbox.length + 1);
    const waiter = this.pending.get(token);
    if (waiter) { this.pending.delete(token); waiter(msg); }
  }

  subscribe(subject, cb) {
    const sid = this.nextSid++;
    this.subs.set(sid, cb);
    this._send(`SUB ${subject} ${sid}` + CRLF);
    return sid;
  }

  publish(subject, data = "", reply = "") {
    const payload = typeof data === "string" ? enc.encode(data) : data;
    this._send(`PUB ${subject} ${reply ? reply + " " : ""}${payload.length}` + CRLF, payload);
  }

  request(subject, data = "", timeoutMs = 3000) {
    const token = String(this.nextReq++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(token); reject(new Error("timeout")); }, timeoutMs);
      this.pending.set(token, (m) => { clearTimeout(timer); resolve(m); });
      this.publish(subject, data, `${this.inbox}.${token}`);
    });
  }

  close() {
    if (this.ws) this.ws.close();
  }
}

window.NatsWsLite = NatsWsLite;
window.natsDecode = (bytes) => dec.decode(bytes);
