// tidings.js: the browser (and Node) client of Tidings' native protocol at /ws.
//
// One ES module, no dependency, no build step. docs/client-js.md is its manual and
// docs/protocol.md the protocol it follows. What it does:
//   - a client state machine (disconnected -> connecting -> connected) and one per
//     subscription (unsubscribed -> subscribing -> subscribed), each transition an event;
//   - promise-returning commands; reconnect with exponential backoff and full jitter, on
//     the close codes that say so; resubscription with recovery from each channel's last
//     offset and epoch, every publication handled exactly once;
//   - a token-refresh callback; binary voice frames (header encode/parse, send, receive);
//   - tabs of one browser share one WebSocket: the tab holding a Web Lock owns the socket
//     (the "switchboard") and the others talk to it over a BroadcastChannel; when that tab
//     closes another takes the lock and every tab recovers from its own positions;
//   - publish/send while offline are queued with an idempotency key and sent after the
//     reconnect, so the server can deliver each exactly once.

const AUTOMATIC = (user) => [`user:${user}`, "broadcast"];
const KEYED = new Set(["publish", "send"]);
const HISTORY_PAGE = 1000;

// ---- small parts ------------------------------------------------------------------------

/** A minimal event emitter: on() returns a function that removes the listener. */
export class Emitter {
  constructor() { this._listeners = new Map(); }
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }
  off(event, fn) { this._listeners.get(event)?.delete(fn); }
  once(event) { return new Promise((resolve) => { const off = this.on(event, (v) => { off(); resolve(v); }); }); }
  emit(event, value) {
    for (const fn of [...(this._listeners.get(event) || [])]) {
      try { fn(value); } catch (err) { console.error(`tidings: a ${event} listener failed`, err); }
    }
  }
}

/** An error a command was answered with: `code` from docs/protocol.md, or "disconnected". */
export class TidingsError extends Error {
  constructor(code, message) { super(`${code}: ${message}`); this.code = code; this.reason = message; }
}

/** Full-jitter exponential backoff: a random delay in [0, min(max, min * 2^attempt)). */
export function backoff(attempt, minDelay = 500, maxDelay = 20000, random = Math.random) {
  const ceiling = Math.min(maxDelay, minDelay * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * What to do after the socket closed with `code` (docs/protocol.md, Close codes):
 * "reconnect" (4000-4499, 1006, 1011, 1001), "refresh" (token expired or refused: get a new
 * one first), or "stop" (4500-4999 and the rest: the same attempt would fail again).
 */
export function closeRule(code) {
  if (code === 4009) return "refresh";
  if (code === 4501) return "refresh-once";
  if ((code >= 4000 && code < 4500) || code === 1006 || code === 1011 || code === 1001) return "reconnect";
  return "stop";
}

function randomId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

// ---- voice frames (docs/protocol.md, Voice frames) ---------------------------------------

export const VoiceKind = Object.freeze({ OPUS: 1, PCM: 2, TEXT: 3 });
const WHISPER = 0x01;
const ascii = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0x7f);

/** A voice frame's bytes. `payload` is a Uint8Array (audio) or a string (TEXT). */
export function encodeVoiceFrame({ kind = VoiceKind.OPUS, seq = 0, timestamp = 0, channel, sender = "", target = null, payload }) {
  const body = typeof payload === "string" ? new TextEncoder().encode(payload) : new Uint8Array(payload);
  const ch = ascii(channel), from = ascii(sender), to = target == null ? null : ascii(target);
  const size = 12 + ch.length + 1 + from.length + (to ? 1 + to.length : 0) + body.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint8(0, 1); view.setUint8(1, kind); view.setUint8(2, to ? WHISPER : 0);
  view.setUint8(3, ch.length); view.setUint32(4, seq >>> 0); view.setUint32(8, timestamp >>> 0);
  let at = 12;
  out.set(ch, at); at += ch.length;
  out[at++] = from.length; out.set(from, at); at += from.length;
  if (to) { out[at++] = to.length; out.set(to, at); at += to.length; }
  out.set(body, at);
  return out;
}

/** Parse a voice frame (ArrayBuffer or Uint8Array); throws on malformed bytes. */
export function parseVoiceFrame(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < 12 || bytes[0] !== 1) throw new Error("not a voice frame");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kind = bytes[1], whisper = (bytes[2] & WHISPER) !== 0, chLen = bytes[3];
  const text = (from, to) => String.fromCharCode(...bytes.subarray(from, to));
  let at = 12;
  const channel = text(at, at + chLen); at += chLen;
  const senderLen = bytes[at++]; const sender = text(at, at + senderLen); at += senderLen;
  let target = null;
  if (whisper) { const n = bytes[at++]; target = text(at, at + n); at += n; }
  if (at > bytes.length) throw new Error("truncated voice frame");
  const payload = bytes.subarray(at);
  return {
    kind, seq: view.getUint32(4), timestamp: view.getUint32(8), channel, sender, target,
    payload, text: kind === VoiceKind.TEXT ? new TextDecoder().decode(payload) : null,
  };
}

// ---- the switchboard: the one tab that owns the socket -----------------------------------

/**
 * Owns the WebSocket and serves the tabs' clients ("participants"): it connects, pings,
 * reconnects, subscribes the union of their channels and fans every frame out to them.
 * A participant attaching a channel the socket already has gets what it missed from
 * history, so each tab recovers from its own position.
 */
/** Counts of a user's inbox, as `inbox` replies, read-state replies and pushes carry them. */
function isInboxCounts(result) {
  return !!result && result.version !== undefined && !!result.sources && result.unread !== undefined;
}

class Switchboard extends Emitter {
  constructor(url, options) {
    super();
    this.url = url;
    this.options = options;
    this.state = "disconnected";
    this.info = null;
    this.ws = null;
    this.ids = 0;
    this.pending = new Map(); // command id -> {resolve, reject}
    this.channels = new Map(); // channel -> {ready: Promise|null, offset, epoch, tabs:Set}
    this.attempt = 0;
    this.timer = null;
    this.token = options.token || null;
    this.refusedOnce = false; // a refused token was replaced once already
    this.stopped = true;
    this.lastHeard = 0;
    this.watchdog = null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this._open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "client closed");
    this._set("disconnected", { code: 1000, reason: "client closed", reconnect: false });
  }

  _set(state, detail = {}) {
    const from = this.state;
    this.state = state;
    this.emit("state", { from, to: state, ...detail, info: this.info });
  }

  async _open() {
    if (this.stopped) return;
    this._set("connecting", { attempt: this.attempt });
    const { getToken, user } = this.options;
    if (!this.token && getToken) {
      try { this.token = await getToken(); } catch (err) {
        this._fail({ code: 4501, reason: `getToken failed: ${err.message || err}` }); return;
      }
    }
    const WS = this.options.WebSocket || globalThis.WebSocket;
    const ws = this.ws = new WS(this.url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this._connect(user);
    ws.onmessage = (event) => this._frame(event.data);
    ws.onclose = (event) => { if (this.ws === ws) this._closed(event.code, event.reason); };
    ws.onerror = () => {};
  }

  _send(obj) { this.ws.send(JSON.stringify(obj)); }

  _connect(user) {
    const params = this.token ? { token: this.token } : { user };
    const recover = {};
    for (const [name, ch] of this.channels) {
      if (ch.automatic && ch.epoch) recover[name] = { offset: ch.offset, epoch: ch.epoch };
    }
    if (Object.keys(recover).length) params.recover = recover;
    this.lastHeard = Date.now();
    // a refusal (error 105) is followed by close 4501, which _fail acts on
    this.request("connect", params, true).then((result) => this._connected(result), () => {});
  }

  _connected(result) {
    this.info = { client: result.client, user: result.user, node: result.node };
    this.attempt = 0;
    this.refusedOnce = false;
    for (const name of [...this.channels.keys()]) if (!this.channels.get(name).automatic) this.channels.delete(name);
    const recovered = [];
    for (const [name, sub] of Object.entries(result.subs)) {
      const ch = this.channels.get(name) || { tabs: new Set(), automatic: true };
      Object.assign(ch, { ready: null, offset: sub.offset, epoch: sub.epoch, automatic: true });
      this.channels.set(name, ch);
      for (const pub of sub.publications || []) recovered.push(pub);
    }
    for (const pub of recovered) this.emit("frame", { pub });
    const interval = ((result.ping || 25) + (result.pong || 10)) * 1000 + 2000;
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastHeard > interval && this.ws) this.ws.close(4000, "server silent");
    }, Math.min(interval / 4, 5000));
    this._set("connected");
  }

  _frame(data) {
    this.lastHeard = Date.now();
    if (typeof data !== "string") { this.emit("voice", data); return; }
    if (data === "pong") return;
    const msg = JSON.parse(data);
    if (msg.id != null && this.pending.has(msg.id)) {
      const { resolve, reject } = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) { reject(new TidingsError(msg.error.code, msg.error.message)); return; }
      const result = msg[Object.keys(msg).find((key) => key !== "id")];
      resolve(result);
      // inbox counts in a reply are news for every tab on this socket, not only the asker
      if (isInboxCounts(result)) this.emit("frame", { inbox: result });
      return;
    }
    if (msg.ping) { this._send({ pong: {} }); return; }
    if (msg.pub) {
      const ch = this.channels.get(msg.pub.channel);
      if (ch && msg.pub.offset > ch.offset) { ch.offset = msg.pub.offset; ch.epoch = msg.pub.epoch; }
    }
    this.emit("frame", msg);
  }

  _closed(code, reason) {
    clearInterval(this.watchdog);
    this.ws = null;
    for (const { reject } of this.pending.values()) reject(new TidingsError("disconnected", reason || `closed ${code}`));
    this.pending.clear();
    for (const ch of this.channels.values()) ch.ready = null;
    if (this.stopped) return;
    this._fail({ code, reason });
  }

  _fail({ code, reason }) {
    const rule = closeRule(code);
    let reconnect = rule === "reconnect";
    if (rule === "refresh" || rule === "refresh-once") {
      // a new token may help; a refused one is replaced once, then the client gives up
      reconnect = !!this.options.getToken && !(rule === "refresh-once" && this.refusedOnce);
      if (reconnect) this.token = null;
      if (rule === "refresh-once") this.refusedOnce = true;
    }
    this.info = null;
    this._set("disconnected", { code, reason, reconnect });
    if (!reconnect) { this.stopped = true; return; }
    const delay = backoff(this.attempt++, this.options.minDelay, this.options.maxDelay, this.options.random);
    this.emit("retry", { delay, attempt: this.attempt });
    this.timer = setTimeout(() => this._open(), delay);
    this.state = "connecting";
  }

  /** One command on the socket; `early` lets connect go before the state is connected. */
  request(method, params, early = false) {
    if (!this.ws || this.ws.readyState !== 1 || (!early && this.state !== "connected")) {
      return Promise.reject(new TidingsError("disconnected", "not connected"));
    }
    const id = ++this.ids;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this._send({ id, [method]: params });
    });
  }

  voice(bytes) {
    if (this.ws && this.ws.readyState === 1 && this.state === "connected") { this.ws.send(bytes); return true; }
    return false;
  }

  /** A participant `tab` wants `channel` from `position` (or from now): a subscribe-shaped reply. */
  async attach(tab, channel, position) {
    let ch = this.channels.get(channel);
    if (!ch) { ch = { tabs: new Set(), ready: null, offset: 0, epoch: "" }; this.channels.set(channel, ch); }
    ch.tabs.add(tab);
    if (ch.automatic || ch.ready) {
      await ch.ready;
      return this._catchUp(channel, ch, position);
    }
    const params = { channel, ...(position ? { offset: position.offset, epoch: position.epoch } : {}) };
    ch.ready = this.request("subscribe", params).catch((err) => {
      if (err.code !== 110) throw err;
      return this.request("subscribe", { channel }).then((r) => ({ ...r, reset: true }));
    });
    try {
      const reply = await ch.ready;
      if (reply.epoch !== undefined) { ch.offset = Math.max(ch.offset, reply.offset); ch.epoch = reply.epoch; }
      return reply;
    } catch (err) {
      ch.tabs.delete(tab);
      if (!ch.tabs.size) this.channels.delete(channel);
      throw err;
    }
  }

  /** Another tab joins a channel the socket has: what it missed, read from history. */
  async _catchUp(channel, ch, position) {
    if (!ch.epoch) return { channel };  // ephemeral
    if (!position) return { channel, offset: ch.offset, epoch: ch.epoch };
    if (position.epoch !== ch.epoch) return { channel, offset: ch.offset, epoch: ch.epoch, reset: true };
    const publications = [];
    let since = position.offset, top = ch.offset;
    for (;;) {
      const page = await this.request("history", { channel, since, limit: HISTORY_PAGE });
      top = Math.max(top, page.offset);
      if (page.epoch !== position.epoch) return { channel, offset: page.offset, epoch: page.epoch, reset: true };
      const first = page.publications[0];
      if (first && first.offset !== since + 1) return { channel, offset: page.offset, epoch: page.epoch, reset: true };
      publications.push(...page.publications);
      if (page.publications.length < HISTORY_PAGE) break;
      since = page.publications[page.publications.length - 1].offset;
    }
    if (!publications.length && top > position.offset) return { channel, offset: top, epoch: ch.epoch, reset: true };
    return { channel, offset: Math.max(top, position.offset), epoch: ch.epoch, recovered: true, publications };
  }

  async detach(tab, channel) {
    const ch = this.channels.get(channel);
    if (!ch) return;
    ch.tabs.delete(tab);
    if (ch.tabs.size || ch.automatic) return;
    this.channels.delete(channel);
    if (this.state === "connected") await this.request("unsubscribe", { channel }).catch(() => {});
  }

  dropTab(tab) {
    for (const name of [...this.channels.keys()]) this.detach(tab, name);
  }
}

// ---- links: how a tab's client reaches the switchboard -----------------------------------

/** The switchboard is in this tab. */
class LocalLink extends Emitter {
  constructor(board, tab) {
    super();
    this.board = board;
    this.tab = tab;
    board.on("state", (s) => this.emit("state", s));
    board.on("frame", (m) => this.emit("frame", m));
    board.on("voice", (d) => this.emit("voice", d));
    board.on("retry", (r) => this.emit("retry", r));
  }
  get state() { return this.board.state; }
  get info() { return this.board.info; }
  start() { this.board.start(); }
  stop() { this.board.stop(); }
  call(method, params) { return this.board.request(method, params); }
  attach(channel, position) { return this.board.attach(this.tab, channel, position); }
  detach(channel) { return this.board.detach(this.tab, channel); }
  voice(bytes) { return this.board.voice(bytes); }
}

/**
 * Tab sharing: every tab asks for the same Web Lock; the holder runs the switchboard and
 * answers the others over a BroadcastChannel. When it closes, the lock passes to another tab,
 * which opens its own socket and announces itself; every tab then re-attaches its channels
 * from its own positions and re-sends what was unanswered, so nothing is lost.
 */
class SharedLink extends Emitter {
  constructor(url, options, tab, name) {
    super();
    this.url = url;
    this.options = options;
    this.tab = tab;
    this.name = name;
    this.board = null;        // set while this tab is the leader
    this.bus = new BroadcastChannel(name);
    this.state = "disconnected";
    this.info = null;
    this.calls = new Map();   // rid -> {resolve, reject, msg}
    this.rids = 0;
    this.bus.onmessage = (event) => this._onBus(event.data);
    this.leaderSince = 0;
  }

  get leader() { return this.board !== null; }

  start() {
    this._post({ t: "hello", tab: this.tab });
    navigator.locks.request(this.name, () => new Promise((release) => {
      this._release = release;
      this._lead();
    }));
    globalThis.addEventListener?.("pagehide", () => this.stop());
  }

  stop() {
    if (this.board) { this.board.stop(); this._post({ t: "state", state: "disconnected", info: null, detail: { code: 1001, reconnect: true } }); }
    else this._post({ t: "bye", tab: this.tab });
    this._release?.();
  }

  _post(msg) { this.bus.postMessage(msg); }

  _lead() {
    const board = this.board = new Switchboard(this.url, this.options);
    board.on("state", (s) => {
      this.state = s.to; this.info = s.info;
      this.emit("state", s);
      this._post({ t: "state", state: s.to, info: s.info, detail: s });
    });
    board.on("frame", (m) => { this.emit("frame", m); this._post({ t: "frame", msg: m }); });
    board.on("voice", (d) => { this.emit("voice", d); this._post({ t: "voice", data: d }); });
    board.on("retry", (r) => this.emit("retry", r));
    for (const call of this.calls.values()) call.reject(new TidingsError("disconnected", "leader changed"));
    this.calls.clear();
    this.emit("leader", true);
    this._post({ t: "leader", tab: this.tab });
    board.start();
  }

  _onBus(msg) {
    if (this.board) return this._serve(msg);
    if (msg.t === "leader") {
      // a new switchboard: whatever the old one left unanswered goes again
      for (const call of this.calls.values()) this._post(call.msg);
      this.emit("state", { from: this.state, to: "connecting" });
      this.state = "connecting";
    } else if (msg.t === "state") {
      const from = this.state;
      this.state = msg.state; this.info = msg.info;
      this.emit("state", { ...msg.detail, from, to: msg.state, info: msg.info });
    } else if (msg.t === "reply" && msg.tab === this.tab) {
      const call = this.calls.get(msg.rid);
      if (!call) return;
      this.calls.delete(msg.rid);
      if (msg.error) call.reject(new TidingsError(msg.error.code, msg.error.message));
      else call.resolve(msg.result);
    } else if (msg.t === "frame") this.emit("frame", msg.msg);
    else if (msg.t === "voice") this.emit("voice", msg.data);
  }

  async _serve(msg) {
    const board = this.board;
    if (msg.t === "hello") { this._post({ t: "state", state: board.state, info: board.info, detail: {} }); return; }
    if (msg.t === "bye") { board.dropTab(msg.tab); return; }
    if (msg.t === "voice-out") { board.voice(msg.data); return; }
    if (msg.t === "detach") { board.detach(msg.tab, msg.channel); return; }
    if (msg.t !== "call" && msg.t !== "attach") return;
    try {
      const result = msg.t === "attach" ? await board.attach(msg.tab, msg.channel, msg.position)
        : await board.request(msg.method, msg.params);
      this._post({ t: "reply", tab: msg.tab, rid: msg.rid, result });
    } catch (err) {
      this._post({ t: "reply", tab: msg.tab, rid: msg.rid, error: { code: err.code, message: err.reason || err.message } });
    }
  }

  _remote(msg) {
    const rid = ++this.rids;
    const full = { ...msg, tab: this.tab, rid };
    return new Promise((resolve, reject) => {
      this.calls.set(rid, { resolve, reject, msg: full });
      this._post(full);
    });
  }

  call(method, params) {
    if (this.board) return this.board.request(method, params);
    if (this.state !== "connected") return Promise.reject(new TidingsError("disconnected", "not connected"));
    return this._remote({ t: "call", method, params });
  }
  attach(channel, position) {
    if (this.board) return this.board.attach(this.tab, channel, position);
    return this._remote({ t: "attach", channel, position });
  }
  detach(channel) {
    if (this.board) return this.board.detach(this.tab, channel);
    this._post({ t: "detach", tab: this.tab, channel });
    return Promise.resolve();
  }
  voice(bytes) {
    if (this.board) return this.board.voice(bytes);
    if (this.state !== "connected") return false;
    this._post({ t: "voice-out", data: bytes });
    return true;
  }
}

// ---- subscriptions -----------------------------------------------------------------------

/**
 * One channel as this tab sees it: its state machine, its position (offset, epoch), and the
 * events `publication`, `join`, `leave`, `speaking`, `silent`, `voice`, `reset` (history
 * could not be recovered: reload it), `state`, `subscribing`, `subscribed`, `unsubscribed`.
 */
export class Subscription extends Emitter {
  constructor(client, channel, { automatic = false } = {}) {
    super();
    this.client = client;
    this.channel = channel;
    this.automatic = automatic;
    this.state = "unsubscribed";
    this.position = null; // {offset, epoch} of the last publication processed
    this._early = [];
    this._wanted = false;
  }

  _set(state, detail) {
    const from = this.state;
    if (from === state) return;
    this.state = state;
    this.emit("state", { from, to: state, ...detail });
    this.emit(state, detail || {});
  }

  /** Start (or keep) receiving; resolves once subscribed. */
  subscribe() {
    this._wanted = true;
    if (this.state === "subscribed") return Promise.resolve();
    const done = new Promise((resolve, reject) => {
      const offs = [this.on("subscribed", () => { offs.forEach((f) => f()); resolve(); }),
        this.on("error", (e) => { offs.forEach((f) => f()); reject(e); })];
    });
    if (this.state === "unsubscribed") {
      this._set("subscribing");
      if (this.client.state === "connected") this.client._attach(this);
    }
    return done;
  }

  async unsubscribe() {
    this._wanted = false;
    this._set("unsubscribed");
    this.client._forget(this);
    await this.client.link.detach(this.channel);
  }

  publish(data, options) { return this.client.publish(this.channel, data, options); }
  history(options = {}) { return this.client.history(this.channel, options); }
  presence() { return this.client.presence(this.channel); }

  /** The reply of an attach, with frames that arrived meanwhile: every publication once. */
  _attached(reply) {
    if (reply.reset) { this.position = null; this.emit("reset", { offset: reply.offset, epoch: reply.epoch }); }
    const missed = new Set(reply.publications || []);
    const early = this._early;
    this._early = [];
    // the reply's publications and live ones that came meanwhile, in offset order, each once
    const pubs = [...missed, ...early.filter((m) => m.pub).map((m) => m.pub)]
      .sort((a, b) => a.offset - b.offset);
    let recovered = 0;
    for (const pub of pubs) if (this._publication(pub) && missed.has(pub)) recovered++;
    if (reply.epoch && (!this.position || this.position.epoch !== reply.epoch || this.position.offset < reply.offset)) {
      this.position = { offset: reply.offset, epoch: reply.epoch };
    }
    this._set("subscribed", { recovered, reset: !!reply.reset });
    for (const msg of early) if (!msg.pub) this._push(msg);
    return recovered;
  }

  /** Hand a publication to listeners unless it was handled already; true if handed. */
  _publication(pub) {
    if (pub.epoch && this.position && this.position.epoch === pub.epoch && pub.offset <= this.position.offset) return false;
    if (pub.epoch) this.position = { offset: pub.offset, epoch: pub.epoch };
    this.emit("publication", pub);
    return true;
  }

  _push(msg) {
    if (this.state === "subscribing") { this._early.push(msg); return; }
    if (this.state !== "subscribed") return;
    if (msg.pub) this._publication(msg.pub);
    else for (const kind of ["join", "leave", "speaking", "silent"]) if (msg[kind]) this.emit(kind, msg[kind].info);
  }
}

// ---- the client --------------------------------------------------------------------------

/**
 * A connection to a Tidings node, as one tab uses it.
 *
 *   const client = new Client("ws://127.0.0.1:8000/ws", { user: "alice" });
 *   const room = client.subscription("room:lobby");
 *   room.on("publication", (pub) => show(pub));
 *   client.connect(); await room.subscribe(); await room.publish({ text: "hi" });
 *
 * Options: `user` (insecure loopback mode) or `token` and/or `getToken` (async, called for
 * the first token and whenever the node says it expired or was refused); `WebSocket` (a
 * constructor, for Node); `minDelay`/`maxDelay` (backoff, ms); `share` (a name: tabs of this
 * browser with the same name and user share one socket).
 * Events: `state` {from, to}, `connecting`, `connected` {client, user, node}, `disconnected`
 * {code, reason, reconnect}, `recovered` {count}, `error`, `leader` (this tab owns the socket),
 * `queued` {size}.
 */
export class Client extends Emitter {
  constructor(url, options = {}) {
    super();
    this.options = { minDelay: 500, maxDelay: 20000, ...options };
    this.url = url;
    this.tab = randomId();
    this.state = "disconnected";
    this.info = null;
    this.subs = new Map();
    this.queue = [];          // offline publish/send: {method, params, resolve, reject}
    this._resubscribing = false; // channels are being attached again after a (re)connect
    this._everConnected = false;
    this._voiceSeq = 0;
    const shared = options.share && globalThis.navigator?.locks && globalThis.BroadcastChannel;
    if (shared) {
      const who = options.user || "token";
      this.link = new SharedLink(url, this.options, this.tab, `tidings:${options.share}:${url}:${who}`);
      this.link.on("leader", (v) => this.emit("leader", v));
    } else {
      this.link = new LocalLink(new Switchboard(url, this.options), this.tab);
      queueMicrotask(() => this.emit("leader", true));
    }
    this.link.on("state", (s) => this._linkState(s));
    this.link.on("frame", (msg) => this._frame(msg));
    this.link.on("voice", (data) => this._voice(data));
    this.link.on("retry", (r) => this.emit("retry", r));
  }

  get user() { return this.info?.user || this.options.user || null; }

  connect() { this._stopped = false; this.link.start(); }

  disconnect() { this.link.stop(); }

  /** The subscription of `channel` in this tab (made once, kept until unsubscribed). */
  subscription(channel) {
    let sub = this.subs.get(channel);
    if (!sub) { sub = new Subscription(this, channel); this.subs.set(channel, sub); }
    return sub;
  }

  /** This user's personal channel `user:<me>` (direct messages); subscribed on connect. */
  get personal() { return this.user ? this._automatic(`user:${this.user}`) : null; }

  _automatic(channel) {
    let sub = this.subs.get(channel);
    if (!sub) {
      sub = new Subscription(this, channel, { automatic: true });
      sub._wanted = true;
      sub._set("subscribing");
      this.subs.set(channel, sub);
    }
    return sub;
  }

  _forget(sub) { if (!sub.automatic) this.subs.delete(sub.channel); }

  _setState(to, detail = {}) {
    const from = this.state;
    if (from === to && to !== "connecting") return;
    this.state = to;
    this.emit("state", { from, to, ...detail });
    this.emit(to, detail);
  }

  _linkState(s) {
    if (s.to === "connected") {
      this.info = s.info;
      for (const name of AUTOMATIC(s.info.user)) this._automatic(name);
      for (const sub of this.subs.values()) if (sub._wanted && sub.state === "subscribed") sub._set("subscribing");
      this._setState("connected", { ...s.info });
      this._resubscribe();
    } else {
      for (const sub of this.subs.values()) if (sub.state === "subscribed") sub._set("subscribing");
      this._setState(s.to, { code: s.code, reason: s.reason, reconnect: s.reconnect, attempt: s.attempt });
      this._stopped = s.to === "disconnected" && s.reconnect === false;
      if (this._stopped) {
        // no reconnect will come: what was queued cannot be delivered
        for (const item of this.queue.splice(0)) item.reject(new TidingsError("disconnected", s.reason || `closed ${s.code}`));
      }
    }
  }

  async _resubscribe() {
    const wanted = [...this.subs.values()].filter((sub) => sub._wanted);
    const reconnect = this._everConnected;
    this._everConnected = true;
    this._resubscribing = true;
    const counts = await Promise.all(wanted.map((sub) => this._attach(sub)));
    this._resubscribing = false;
    if (reconnect) this.emit("recovered", { count: counts.reduce((a, b) => a + b, 0) });
    await this._flushQueue();
  }

  async _attach(sub) {
    try {
      const reply = await this.link.attach(sub.channel, sub.position);
      if (sub.state !== "subscribing") return 0;
      return sub._attached(reply);
    } catch (err) {
      if (err.code === "disconnected") return 0; // tried again on the next connect
      sub._wanted = false;
      sub._set("unsubscribed", { error: err });
      sub.emit("error", err);
      this.subs.delete(sub.channel);
      return 0;
    }
  }

  _frame(msg) {
    if (msg.disconnect) { this.emit("disconnect", msg.disconnect); return; }
    if (msg.inbox) { this._inboxCounts(msg.inbox); return; }
    if (msg.error) { this.emit("error", new TidingsError(msg.error.code, msg.error.message)); return; }
    const body = msg.pub || msg.join || msg.leave || msg.speaking || msg.silent;
    if (!body) return;
    this.subs.get(body.channel)?._push(msg);
  }

  _voice(data) {
    let frame;
    try { frame = parseVoiceFrame(data); } catch { return; }
    this.subs.get(frame.channel)?.emit("voice", frame);
  }

  // ---- commands --------------------------------------------------------------------------

  /** Any command; rejects with TidingsError. */
  call(method, params) { return this.link.call(method, params); }

  /** Publish to a channel; offline, it is queued and sent after the reconnect. */
  publish(channel, data, options = {}) {
    return this._keyed("publish", { channel, data }, options);
  }

  /** A direct message to `user` (stored in their personal channel). */
  send(user, data, options = {}) {
    return this._keyed("send", { user, data }, options);
  }

  _keyed(method, params, { idempotencyKey } = {}) {
    const full = { ...params, idempotency_key: idempotencyKey || randomId() };
    return new Promise((resolve, reject) => {
      const item = { method, params: full, resolve, reject };
      if (this.state === "connected" && !this.queue.length && !this._resubscribing) this._deliver(item);
      else { this.queue.push(item); this.emit("queued", { size: this.queue.length }); }
    });
  }

  _deliver(item) {
    this.link.call(item.method, item.params).then(item.resolve, (err) => {
      // cut off in flight: sent again after the reconnect, unless none will come
      if (err.code === "disconnected" && !this._stopped) { this.queue.push(item); this.emit("queued", { size: this.queue.length }); }
      else item.reject(err);
    });
  }

  async _flushQueue() {
    const items = this.queue.splice(0);
    for (const item of items) {
      if (this.state !== "connected") { this.queue.push(item); continue; }
      await new Promise((done) => {
        this.link.call(item.method, item.params).then((r) => { item.resolve(r); done(); }, (err) => {
          if (err.code === "disconnected" && !this._stopped) this.queue.push(item); else item.reject(err);
          done();
        });
      });
    }
    this.emit("queued", { size: this.queue.length });
  }

  history(channel, { limit = 50, since, reverse = false } = {}) {
    const params = { channel, limit, reverse };
    if (since !== undefined && since !== null) params.since = since;
    return this.call("history", params);
  }

  presence(channel) { return this.call("presence", { channel }); }

  // ---- the message center (docs/message-center.md) -------------------------------------
  // Each reply carries the inbox counts; they and `inbox` pushes from the user's other
  // connections emit `inbox` with the counts of the highest version seen.

  inbox(params = {}) { return this._counted(this.call("inbox", params)); }
  read(params) { return this._counted(this.call("read", params)); }
  unread(offset) { return this._counted(this.call("unread", { offset })); }
  seen(source) { return this._counted(this.call("seen", source ? { source } : {})); }
  archive(offset) { return this._counted(this.call("archive", { offset })); }

  async _counted(reply) {
    const result = await reply;
    if (isInboxCounts(result)) this._inboxCounts(result);
    return result;
  }

  _inboxCounts(counts) {
    if (this._inboxVersion !== undefined && counts.version < this._inboxVersion) return;
    this._inboxVersion = counts.version;
    this.emit("inbox", counts);
  }

  /**
   * One voice frame on `channel` (a Uint8Array Opus packet, PCM, or a string for TEXT);
   * `to` whispers it to one member. Returns false when it could not be sent (offline).
   */
  sendVoice(channel, payload, { kind = VoiceKind.OPUS, to = null, timestamp } = {}) {
    const seq = this._voiceSeq = (this._voiceSeq + 1) >>> 0;
    const ts = timestamp ?? Math.floor((globalThis.performance?.now?.() ?? Date.now())) >>> 0;
    return this.link.voice(encodeVoiceFrame({ kind, seq, timestamp: ts, channel, target: to, payload }));
  }
}
