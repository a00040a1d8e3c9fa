// The Tidings web app: sign in, rooms with presence, direct conversations, voice rooms.
// It talks to the node only through tidings.js. Everything users type reaches the page as
// text nodes (h() never parses markup), so no message, name or room can inject anything.
// A tab is one entry of TABS: an id, a label and a render function.
import { Client } from "./tidings.js";
import { language, translator } from "./strings.js";
import { VoiceRoom } from "./voice.js";

const lang = language();
const t = translator(lang);
document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
document.title = t("title");

const store = {
  get(key, fallback) { try { return JSON.parse(localStorage.getItem(`tidings.${key}`)) ?? fallback; } catch { return fallback; } },
  set(key, value) { localStorage.setItem(`tidings.${key}`, JSON.stringify(value)); },
  drop(key) { localStorage.removeItem(`tidings.${key}`); },
};

/** An element; string children become text nodes, never markup. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else if (value !== false && value != null) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) if (child != null) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

const root = document.getElementById("app");
let client = null;
let view = store.get("view", "rooms");

// ---- sign in ------------------------------------------------------------------------------

function signInView() {
  const user = h("input", { id: "signin-user", name: "user", autocomplete: "username", "aria-label": t("userId"), placeholder: t("userId") });
  const token = h("input", { id: "signin-token", name: "token", "aria-label": t("token"), placeholder: t("token") });
  const form = h("form", { class: "signin", onsubmit: (e) => {
    e.preventDefault();
    const who = { user: user.value.trim() || null, token: token.value.trim() || null };
    if (!who.user && !who.token) return;
    store.set("signin", who);
    start(who);
  } }, h("h1", {}, t("signInTitle")), h("p", { class: "hint" }, t("signInHint")), user, token,
  h("button", { type: "submit", id: "signin-button" }, t("signIn")));
  root.replaceChildren(form);
  user.focus();
}

// ---- the shell: header, tabs, connection indicator --------------------------------------

const TABS = [
  { id: "rooms", label: "tabRooms", render: roomsView },
  { id: "direct", label: "tabDirect", render: directView },
  { id: "voice", label: "tabVoice", render: voiceView },
  { id: "inbox", label: "tabInbox", render: inboxView },
];

let statusEl, mainEl;

function start(who) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  client = new Client(url, { user: who.user || undefined, token: who.token || undefined, share: "page" });
  statusEl = h("span", { id: "status", role: "status", "aria-live": "polite", "data-state": "connecting" }, t("connecting"));
  const nav = h("nav", { role: "tablist" }, TABS.map((tab) => h("button", {
    role: "tab", id: `tab-${tab.id}`, "aria-selected": String(tab.id === view),
    onclick: () => show(tab.id),
    onkeydown: (e) => {
      const i = TABS.indexOf(tab), step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (step) { const next = TABS[(i + step + TABS.length) % TABS.length]; show(next.id); document.getElementById(`tab-${next.id}`).focus(); }
    },
  }, t(tab.label))));
  const me = h("span", { id: "me" });
  mainEl = h("main", { id: "main" });
  root.replaceChildren(h("header", {}, h("strong", { class: "brand" }, t("title")), me, statusEl,
    h("button", { id: "signout", onclick: signOut }, t("signOut"))), nav, mainEl);
  client.on("connecting", () => setStatus("reconnecting", t(everConnected ? "reconnecting" : "connecting")));
  client.on("connected", (info) => { everConnected = true; me.textContent = info.user; setStatus("connected", t("connected")); });
  client.on("recovered", ({ count }) => setStatus("connected", t("recovered", { n: count })));
  client.on("disconnected", (d) => { if (!d.reconnect) setStatus("disconnected", t("disconnected", { reason: d.reason || d.code })); });
  client.on("error", (err) => toast(t("error", { code: err.code, message: err.reason })));
  // the overall unread badge on the message center's tab, kept by every tab of the page
  const inboxTab = document.getElementById("tab-inbox");
  client.on("inbox", (counts) => {
    inboxTab.querySelector(".badge")?.remove();
    if (counts.unread) inboxTab.append(h("span", { class: "badge unread", id: "inbox-total" }, String(counts.unread)));
  });
  client.on("connected", () => client.inbox({ limit: 1 }).catch(() => {}));
  client.connect();
  show(view);
}
let everConnected = false;

function setStatus(state, text) { statusEl.dataset.state = state; statusEl.textContent = text; }

function toast(text) {
  const el = h("div", { class: "toast", role: "alert" }, text);
  document.body.append(el);
  setTimeout(() => el.remove(), 4000);
}

let cleanup = () => {};
function show(id) {
  view = id;
  store.set("view", id);
  for (const tab of TABS) document.getElementById(`tab-${tab.id}`)?.setAttribute("aria-selected", String(tab.id === id));
  cleanup();
  cleanup = () => {};
  const tab = TABS.find((x) => x.id === id) || TABS[0];
  mainEl.replaceChildren();
  mainEl.dataset.view = tab.id;
  cleanup = tab.render(mainEl) || (() => {});
}

function signOut() {
  client?.disconnect();
  store.drop("signin");
  location.reload();
}

// ---- a message list with history paging ----------------------------------------------

/** Messages of one channel (filtered by `keep`), history on open, paging back, live ones. */
function messageList(channel, { keep = () => true, label = (pub) => pub.sender || "server" } = {}) {
  const list = h("ol", { class: "messages", "aria-live": "polite" });
  const seen = new Set();
  let oldest = null;
  const older = h("button", { class: "older", onclick: () => page() }, t("loadOlder"));
  const row = (pub) => h("li", { "data-offset": pub.offset, class: pub.sender === client.user ? "mine" : "" },
    h("span", { class: "who" }, label(pub)), h("span", { class: "text" }, textOf(pub.data)),
    h("time", { datetime: new Date(pub.time).toISOString() }, new Date(pub.time).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en")));
  function add(pub, atTop = false) {
    if (seen.has(pub.offset) || !keep(pub)) return;
    seen.add(pub.offset);
    if (atTop) list.prepend(row(pub)); else { list.append(row(pub)); list.lastChild.scrollIntoView?.({ block: "nearest" }); }
  }
  async function page() {
    older.disabled = true;
    let added = 0, reply;
    do {  // a page may be all other conversations' messages: keep going until some show
      reply = await client.history(channel, { limit: 50, reverse: true, since: oldest ?? undefined });
      for (const pub of reply.publications) { oldest = pub.offset; const before = seen.size; add(pub, true); added += seen.size - before; }
    } while (!added && reply.publications.length === 50);
    older.disabled = false;
    if (reply.publications.length < 50) older.replaceWith(h("p", { class: "older end" }, t("noOlder")));
  }
  return { el: h("div", { class: "list" }, older, list), add, page, reset: () => { list.replaceChildren(); seen.clear(); oldest = null; return page(); } };
}

function textOf(data) {
  if (data && typeof data === "object" && typeof data.text === "string") return data.text;
  return JSON.stringify(data);
}

/** A message-center entry: its title (or text), body and a link, if the backend sent them. */
function notification(data) {
  const fields = data && typeof data === "object" ? data : {};
  const title = typeof fields.title === "string" ? fields.title : textOf(data);
  const body = typeof fields.body === "string" ? h("span", { class: "body" }, fields.body) : null;
  // only links of this site or the web: never javascript: or data: URLs
  const safe = typeof fields.link === "string" && /^(\/(?!\/)|https?:\/\/)/.test(fields.link);
  const link = safe ? h("a", { href: fields.link, rel: "noopener noreferrer" }, t("open")) : null;
  return h("span", { class: "text" }, h("span", { class: "title" }, title), body, link);
}

function composer(placeholder, onSend, id) {
  const input = h("input", { class: "compose", id, placeholder, "aria-label": placeholder, autocomplete: "off", maxlength: 2000 });
  const send = () => { const text = input.value.trim(); if (text) { onSend(text); input.value = ""; } };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.isComposing) { e.preventDefault(); send(); } });
  return h("div", { class: "composer" }, input, h("button", { onclick: send }, t("send")));
}

// ---- rooms --------------------------------------------------------------------------------

function roomsView(main) {
  const rooms = store.get("rooms", []);
  let current = store.get("room", rooms[0] || null);
  const name = h("input", { id: "room-name", placeholder: t("roomName"), "aria-label": t("roomName") });
  const joinForm = h("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    const room = name.value.trim().replace(/\s+/g, "-");
    if (!room) return;
    if (!rooms.includes(room)) { rooms.push(room); store.set("rooms", rooms); }
    name.value = "";
    open(room);
  } }, name, h("button", { type: "submit", id: "room-join" }, t("join")));
  const roomList = h("ul", { class: "roomlist" });
  const pane = h("section", { class: "pane" });
  main.append(h("aside", {}, joinForm, roomList), pane);
  let offs = [];

  function drawList() {
    roomList.replaceChildren(...rooms.map((room) => h("li", { class: room === current ? "current" : "" },
      h("button", { class: "room", onclick: () => open(room), "aria-current": room === current ? "true" : false }, `# ${room}`),
      h("button", { class: "leave", "aria-label": `${t("leave")} ${room}`, onclick: () => leave(room) }, "×"))));
  }

  async function leave(room) {
    rooms.splice(rooms.indexOf(room), 1);
    store.set("rooms", rooms);
    await client.subscription(`room:${room}`).unsubscribe().catch(() => {});
    if (current === room) { current = rooms[0] || null; store.set("room", current); }
    current ? open(current) : (drawList(), pane.replaceChildren(h("p", { class: "empty" }, t("noRoom"))));
  }

  async function open(room) {
    offs.forEach((off) => off());
    current = room;
    store.set("room", room);
    drawList();
    const channel = `room:${room}`;
    const sub = client.subscription(channel);
    const messages = messageList(channel);
    const members = h("ul", { class: "members", id: "members" });
    const present = new Map(); // client id -> user
    const drawMembers = () => members.replaceChildren(...[...new Set(present.values())].sort().map((u) => h("li", { class: "online" }, u)));
    offs = [
      sub.on("publication", (pub) => messages.add(pub)),
      sub.on("join", (info) => { present.set(info.client, info.user); drawMembers(); }),
      sub.on("leave", (info) => { present.delete(info.client); drawMembers(); }),
      sub.on("reset", () => messages.reset()),
      sub.on("subscribed", () => client.presence(channel).then((p) => {
        present.clear();
        for (const c of Object.values(p.clients)) present.set(c.client, c.user);
        drawMembers();
      }).catch(() => {})),
    ];
    pane.replaceChildren(h("h2", {}, `# ${room}`), h("div", { class: "room-body" }, messages.el,
      h("div", { class: "side" }, h("h3", {}, t("members")), members)),
    composer(t("messagePlaceholder"), (text) => sub.publish({ text }).catch((e) => toast(t("error", { code: e.code, message: e.reason }))), "room-input"));
    const ready = sub.subscribe();
    if (client.state === "connected") await ready; else await client.once("connected");
    await messages.page();
    if (sub.state === "subscribed") sub.emit("subscribed", {});
    document.getElementById("room-input")?.focus();
  }

  drawList();
  if (current) open(current); else pane.append(h("p", { class: "empty" }, t("noRoom")));
  return () => offs.forEach((off) => off());
}

// ---- direct conversations -----------------------------------------------------------------
// A direct message goes to the peer's personal channel; a copy goes to our own, so our side
// of the conversation survives a refresh and shows in our other tabs.

function directView(main) {
  const peers = store.get("peers", []);
  let current = store.get("peer", peers[0] || null);
  const peerInput = h("input", { id: "peer-name", placeholder: t("peer"), "aria-label": t("peer") });
  const form = h("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    const peer = peerInput.value.trim();
    if (peer) { peerInput.value = ""; open(peer); }
  } }, peerInput, h("button", { type: "submit", id: "peer-open" }, t("open")));
  const list = h("ul", { class: "roomlist" });
  const pane = h("section", { class: "pane" });
  main.append(h("aside", {}, form, h("h3", {}, t("conversations")), list), pane);
  let off = () => {};
  const peerOf = (pub) => (pub.sender === client.user ? pub.data?.to : pub.sender);
  const remember = (peer) => { if (peer && !peers.includes(peer)) { peers.push(peer); store.set("peers", peers); drawList(); } };
  const drawList = () => list.replaceChildren(...peers.map((p) => h("li", { class: p === current ? "current" : "" },
    h("button", { class: "room", onclick: () => open(p) }, `@ ${p}`))));
  const personal = () => client.personal;
  const watchAll = (pub) => remember(peerOf(pub));

  async function open(peer) {
    off();
    current = peer;
    store.set("peer", peer);
    remember(peer);
    drawList();
    if (client.state !== "connected") await client.once("connected");
    const channel = `user:${client.user}`;
    const messages = messageList(channel, { keep: (pub) => peerOf(pub) === peer });
    const offPub = personal().on("publication", (pub) => { watchAll(pub); messages.add(pub); });
    const offReset = personal().on("reset", () => messages.reset());
    off = () => { offPub(); offReset(); };
    pane.replaceChildren(h("h2", {}, `@ ${peer}`), messages.el, composer(t("messagePlaceholder"), async (text) => {
      try {
        await client.send(peer, { text, to: peer });
        await client.publish(channel, { text, to: peer });
      } catch (e) { toast(t("error", { code: e.code, message: e.reason })); }
    }, "dm-input"));
    await messages.page();
    document.getElementById("dm-input")?.focus();
  }

  drawList();
  if (current) open(current); else pane.append(h("p", { class: "empty" }, t("noConversation")));
  return () => off();
}

// ---- voice rooms --------------------------------------------------------------------------

let voice = null; // the voice room this tab is in, kept across tab switches

function voiceView(main) {
  const name = h("input", { id: "voice-name", placeholder: t("voiceRoom"), "aria-label": t("voiceRoom"), value: store.get("voiceRoom", "") });
  const pane = h("section", { class: "pane voice" });
  const form = h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    const room = name.value.trim().replace(/\s+/g, "-");
    if (!room) return;
    store.set("voiceRoom", room);
    if (voice) await voice.room.stop();
    await join(room);
  } }, name, h("button", { type: "submit", id: "voice-join" }, t("joinVoice")));
  main.append(h("aside", {}, form), pane);

  async function join(room) {
    const members = h("ul", { class: "members", id: "voice-members" });
    const whispers = h("ol", { class: "whispers", id: "whispers" });
    const stats = h("p", { class: "stats", id: "voice-stats" });
    const present = new Map(), speaking = new Set();
    const target = h("select", { id: "whisper-to", "aria-label": t("whisperTo") });
    const draw = () => {
      const users = [...new Set(present.values())].sort();
      members.replaceChildren(...users.map((u) => h("li", { "data-user": u, "data-speaking": String(speaking.has(u)) },
        u === client.user ? `${u} (${t("you")})` : u, speaking.has(u) ? h("span", { class: "badge" }, t("speaking")) : null)));
      const chosen = target.value;
      target.replaceChildren(...users.filter((u) => u !== client.user).map((u) => h("option", { value: u }, u)));
      if (users.includes(chosen)) target.value = chosen;
    };
    const vr = new VoiceRoom(client, `voice:${room}`, {
      onWhisper: (frame) => {
        const mine = frame.sender === client.user;
        whispers.append(h("li", {}, h("span", { class: "who" }, mine ? t("whisperToYou", { user: frame.target }) : t("whisperFrom", { user: frame.sender })),
          h("span", { class: "text" }, frame.text)));
      },
      onStats: (s) => {
        const heard = Object.values(s.received).reduce((a, b) => a + b, 0);
        stats.textContent = `${t("codec", { codec: s.codec })} · ${t("heard", { n: heard })}`;
        window.tidingsVoiceStats = s;
      },
    });
    const sub = client.subscription(`voice:${room}`);
    sub.on("join", (i) => { present.set(i.client, i.user); draw(); });
    sub.on("leave", (i) => { present.delete(i.client); speaking.delete(i.user); draw(); });
    sub.on("speaking", (i) => { speaking.add(i.user); draw(); });
    sub.on("silent", (i) => { speaking.delete(i.user); draw(); });
    voice = { room: vr, name: room };
    const mute = h("button", { id: "mute", "aria-pressed": "false", onclick: () => {
      vr.muted = !vr.muted;
      mute.setAttribute("aria-pressed", String(vr.muted));
      mute.textContent = vr.muted ? t("unmute") : t("mute");
    } }, t("mute"));
    const hold = (on) => { vr.whisperTo = on && target.value ? target.value : null; ptt.classList.toggle("active", !!vr.whisperTo); };
    const ptt = h("button", { id: "ptt", onpointerdown: () => hold(true), onpointerup: () => hold(false), onpointerleave: () => hold(false),
      onkeydown: (e) => { if (e.key === " " && !e.repeat) { e.preventDefault(); hold(true); } },
      onkeyup: (e) => { if (e.key === " ") hold(false); } }, t("holdToWhisper"));
    const line = composer(t("whisperText"), (text) => {
      if (!target.value) return;
      vr.whisperText(target.value, text);
      whispers.append(h("li", { class: "mine" }, h("span", { class: "who" }, t("whisperToYou", { user: target.value })), h("span", { class: "text" }, text)));
    }, "whisper-input");
    pane.replaceChildren(h("h2", {}, `${t("voiceRoom")}: ${room}`), h("div", { class: "controls" }, mute), members, stats,
      h("h3", {}, t("whispers")), h("div", { class: "whisper" }, h("label", { for: "whisper-to" }, t("whisperTo")), target, ptt), line, whispers);
    await vr.start();
    const p = await client.presence(`voice:${room}`).catch(() => ({ clients: {} }));
    for (const c of Object.values(p.clients)) present.set(c.client, c.user);
    draw();
  }

  // leaving the tab leaves the voice room (the microphone is not kept open out of sight)
  return () => { voice?.room.stop(); voice = null; };
}

// ---- the message center ------------------------------------------------------------------
// Sources with unread badges, each source's messages, mark read; counts follow other tabs
// and devices through the node's `inbox` pushes.

function inboxView(main) {
  const sources = h("ul", { class: "roomlist", id: "inbox-sources" });
  const pane = h("section", { class: "pane" });
  main.append(h("aside", {}, h("h3", {}, t("sources")), sources), pane);
  let current = store.get("source", null), counts = null;
  const drawSources = () => sources.replaceChildren(...Object.entries(counts?.sources || {}).map(([name, c]) =>
    h("li", { class: name === current ? "current" : "", "data-source": name },
      h("button", { class: "room", onclick: () => open(name) }, name,
        c.unread ? h("span", { class: "badge unread", "data-unread": c.unread }, String(c.unread)) : null))));
  async function open(source) {
    current = source;
    store.set("source", source);
    drawSources();
    const page = await client.inbox({ source, limit: 50 });
    const list = h("ol", { class: "messages", id: "inbox-messages" }, page.messages.map((m) =>
      h("li", { "data-offset": m.offset, class: m.read ? "read" : "unread" },
        notification(m.data),
        h("time", { class: "when" }, new Date(m.time).toLocaleString()),
        m.read ? h("span", {}, "") : h("button", { class: "mark-read", onclick: () => client.read({ offset: m.offset }).then(() => open(source)) }, t("markRead")))));
    const empty = page.messages.length ? null : h("p", { class: "empty" }, t("noMessages"));
    pane.replaceChildren(h("h2", {}, source), h("button", { id: "read-all", onclick: () => client.read({ source }).then(() => open(source)) }, t("markAllRead")), empty || list);
  }
  const offCounts = client.on("inbox", (c) => {
    counts = c;
    drawSources();
    const first = current && c.sources[current] ? current : Object.keys(c.sources)[0];
    if (first) open(first);
  });
  const offPub = client.personal?.on("publication", (pub) => { if (pub.source) client.inbox({ limit: 1 }).catch(() => {}); });
  const load = () => client.inbox({ limit: 1 }).then((c) => { counts = c; drawSources(); if (current || Object.keys(c.sources)[0]) open(current || Object.keys(c.sources)[0]); })
    .catch((e) => pane.replaceChildren(h("p", { class: "empty" }, t("error", { code: e.code, message: e.reason }))));
  if (client.state === "connected") load(); else client.once("connected").then(load);
  return () => { offCounts(); offPub?.(); };
}

// ---- boot ---------------------------------------------------------------------------------

const saved = store.get("signin", null);
if (saved) start(saved); else signInView();
