// tidings.js under Node's own test runner, against real `tidings serve` processes.
// Run by tests/web/test_tidings_js.py (or: node --test tests/js/tidings.test.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  Client, backoff, closeRule, encodeVoiceFrame, parseVoiceFrame, VoiceKind,
} from "../../tidings/web/tidings.js";
import { TidingsNode, Proxy, WebSocket, until, sleep, jwt } from "./node.mjs";

const clients = [];
function client(node, options = {}) {
  const c = new Client(node.url, { WebSocket, minDelay: 50, maxDelay: 400, ...options });
  clients.push(c);
  return c;
}
async function connected(c) {
  if (c.state !== "connected") await c.once("connected");
  return c;
}
const texts = (pubs) => pubs.map((p) => p.data.text);

let node;
before(async () => { node = await new TidingsNode().start(); });
after(async () => { for (const c of clients) c.disconnect(); await node.stop(); });

test("backoff stays within full-jitter bounds and is capped", () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = Math.min(5000, 100 * 2 ** attempt);
    for (let i = 0; i < 200; i++) {
      const delay = backoff(attempt, 100, 5000);
      assert.ok(delay >= 0 && delay < ceiling, `attempt ${attempt}: ${delay} not in [0, ${ceiling})`);
    }
    assert.equal(backoff(attempt, 100, 5000, () => 0), 0);
    assert.equal(backoff(attempt, 100, 5000, () => 0.999999), Math.floor(0.999999 * ceiling));
  }
});

test("close codes: reconnect on 4000-4499, 1006, 1011; refresh on 4009/4501; else stop", () => {
  for (const code of [4004, 4005, 4006, 4007, 4008, 4020, 4499, 1006, 1011, 1001]) assert.equal(closeRule(code), "reconnect", code);
  assert.equal(closeRule(4009), "refresh");
  assert.equal(closeRule(4501), "refresh-once");
  for (const code of [1000, 1003, 1009, 4500, 4502, 4503, 4510, 4999]) assert.equal(closeRule(code), "stop", code);
});

test("voice frames round-trip through encode and parse", () => {
  const bytes = encodeVoiceFrame({ kind: VoiceKind.TEXT, seq: 7, timestamp: 99, channel: "voice:x", target: "bob", payload: "悄悄话" });
  const frame = parseVoiceFrame(bytes.buffer);
  assert.deepEqual([frame.kind, frame.seq, frame.timestamp, frame.channel, frame.sender, frame.target, frame.text],
    [VoiceKind.TEXT, 7, 99, "voice:x", "", "bob", "悄悄话"]);
});

test("two clients chat in a room: state machines, events and promise-returning commands", async () => {
  const alice = client(node, { user: "alice" }), bob = client(node, { user: "bob" });
  const states = [];
  alice.on("state", (s) => states.push(`${s.from}>${s.to}`));
  alice.connect(); bob.connect();
  await connected(alice); await connected(bob);
  assert.deepEqual(states, ["disconnected>connecting", "connecting>connected"]);
  const subStates = [];
  const roomA = alice.subscription("room:js-chat"), roomB = bob.subscription("room:js-chat");
  roomB.on("state", (s) => subStates.push(`${s.from}>${s.to}`));
  const joins = [];
  roomA.on("join", (info) => joins.push(info.user));
  await roomA.subscribe(); await roomB.subscribe();
  assert.deepEqual(subStates, ["unsubscribed>subscribing", "subscribing>subscribed"]);
  const got = [];
  roomB.on("publication", (p) => got.push(p));
  const reply = await roomA.publish({ text: "hello" });
  assert.equal(reply.offset, 1);
  await until(() => got.length === 1, 5000, "bob's publication");
  assert.equal(got[0].sender, "alice");
  await until(() => joins.includes("bob"), 5000, "bob's join");
  const presence = await roomA.presence();
  assert.deepEqual(Object.values(presence.clients).map((c) => c.user).sort(), ["alice", "bob"]);
  await assert.rejects(alice.call("frobnicate", {}), (e) => e.code === 102);
  await roomB.unsubscribe();
  assert.equal(roomB.state, "unsubscribed");
});

test("a direct message reaches the personal channel", async () => {
  const alice = client(node, { user: "dm-alice" }), bob = client(node, { user: "dm-bob" });
  bob.connect(); alice.connect();
  await connected(bob); await connected(alice);
  const got = [];
  bob.personal.on("publication", (p) => got.push(p));
  await alice.send("dm-bob", { text: "psst" });
  await until(() => got.length === 1, 5000, "the direct message");
  assert.equal(got[0].channel, "user:dm-bob");
});

test("after a server restart the client reconnects with backoff and recovers without duplicates", async () => {
  const own = await new TidingsNode().start();
  const proxy = await new Proxy(own).up();  // holds bob off until the missed messages exist
  try {
    const bob = client(proxy, { user: "bob", minDelay: 200, maxDelay: 800 });
    bob.connect(); await connected(bob);
    const room = bob.subscription("room:restart");
    await room.subscribe();
    const seen = [];
    room.on("publication", (p) => seen.push(p));
    const dms = [];
    bob.personal.on("publication", (p) => dms.push(p));
    await own.api("/api/publish", { channel: "room:restart", data: { text: "before" } });
    await until(() => seen.length === 1, 5000, "the first publication");
    const retries = [];
    bob.on("retry", (r) => retries.push(r.delay));
    const recovered = bob.once("recovered");
    await proxy.down();
    await own.kill();
    await own.start();
    for (const text of ["m1", "m2", "m3"]) await own.api("/api/publish", { channel: "room:restart", data: { text } });
    await own.api("/api/send", { user: "bob", data: { text: "dm" } });
    await until(() => retries.length >= 3, 10000, "three reconnect attempts");
    await proxy.up();
    assert.equal((await recovered).count, 4);
    assert.deepEqual(texts(seen), ["before", "m1", "m2", "m3"]);
    assert.deepEqual(texts(dms), ["dm"]);
    assert.ok(retries.every((d, n) => d >= 0 && d < Math.min(800, 200 * 2 ** n)), `delays ${retries}`);
    await own.api("/api/publish", { channel: "room:restart", data: { text: "live" } });
    await until(() => seen.length === 5, 5000, "the live publication");
    assert.deepEqual(seen.map((p) => p.offset), [1, 2, 3, 4, 5]);
  } finally { await proxy.down(); await own.stop(); }
});

test("4007 (kicked with reconnect) reconnects and recovers; 4502 stays disconnected", async () => {
  const carol = client(node, { user: "carol" });
  carol.connect(); await connected(carol);
  const room = carol.subscription("room:kick");
  await room.subscribe();
  const seen = [];
  room.on("publication", (p) => seen.push(p.data.text));
  const closed = carol.once("disconnected");
  await node.api("/api/disconnect", { user: "carol", reconnect: true });
  assert.equal((await closed).code, 4007);
  await connected(carol);
  await node.api("/api/publish", { channel: "room:kick", data: { text: "back" } });
  await until(() => seen.includes("back"), 5000, "a publication after 4007");
  const stopped = carol.once("disconnected");
  await node.api("/api/disconnect", { user: "carol", reconnect: false });
  const detail = await stopped;
  assert.equal(detail.code, 4502);
  assert.equal(detail.reconnect, false);
  await sleep(600);
  assert.equal(carol.state, "disconnected");
});

test("client errors that would repeat stop the client: 1009, 4503, 4510", async () => {
  for (const [user, provoke, code] of [
    ["big", (c) => c.publish("room:x", { text: "x".repeat(70000) }).catch(() => {}), 1009],
    ["noisy", async (c) => { for (let i = 0; i < 50; i++) c.call("frobnicate", {}).catch(() => {}); }, 4503],
    ["garbled", (c) => c.link.voice(new Uint8Array([1, 2, 3])), 4510],
  ]) {
    const c = client(node, { user });
    c.connect(); await connected(c);
    const closed = c.once("disconnected");
    await provoke(c);
    const detail = await closed;
    assert.equal(detail.code, code, user);
    assert.equal(detail.reconnect, false, user);
    await sleep(300);
    assert.equal(c.state, "disconnected", user);
  }
});

test("4006 (node draining) makes the client come back once the node is up", async () => {
  const own = await new TidingsNode().start();
  try {
    const dave = client(own, { user: "dave" });
    dave.connect(); await connected(dave);
    const closed = dave.once("disconnected");
    const stopping = own.stop();
    assert.equal((await closed).code, 4006);
    await stopping;
    await own.start();
    await until(() => dave.state === "connected", 10000, "dave back");
  } finally { await own.stop(); }
});

test("token refresh: an expiring token is replaced through getToken (4009)", async () => {
  const secret = "js-test-secret-0123456789abcdef0123456789";
  const own = await new TidingsNode({ TIDINGS_JWT_SECRET: secret }).start();
  try {
    let calls = 0;
    const getToken = async () => {
      calls++;
      const exp = Math.floor(Date.now() / 1000) + (calls === 1 ? 2 : 600);
      return jwt(secret, { sub: "erin", exp });
    };
    const erin = client(own, { getToken });
    erin.connect(); await connected(erin);
    assert.equal(erin.user, "erin");
    const closed = erin.once("disconnected");
    assert.equal((await closed).code, 4009);
    await until(() => erin.state === "connected", 10000, "erin back with a fresh token");
    assert.equal(calls, 2);
  } finally { await own.stop(); }
});

test("a refused token is replaced once through getToken; refused twice, the client stops", async () => {
  const secret = "js-test-secret-0123456789abcdef0123456789";
  const own = await new TidingsNode({ TIDINGS_JWT_SECRET: secret }).start();
  try {
    const good = () => jwt(secret, { sub: "frank", exp: Math.floor(Date.now() / 1000) + 600 });
    let calls = 0;
    const frank = client(own, { getToken: async () => (++calls === 1 ? "bad.token.here" : good()) });
    frank.connect();
    await until(() => frank.state === "connected", 10000, "frank connected after one refusal");
    assert.equal(calls, 2);
    const gina = client(own, { getToken: async () => "still.bad.token" });
    const stops = [];
    gina.on("disconnected", (d) => stops.push(d));
    gina.connect();
    await until(() => stops.some((d) => d.reconnect === false), 10000, "gina to give up");
    assert.ok(stops.every((d) => d.code === 4501));
    assert.equal(stops.length, 2);
  } finally { await own.stop(); }
});

test("publish while offline is queued and delivered once after the reconnect", async () => {
  const own = await new TidingsNode().start();
  try {
    const hank = client(own, { user: "hank", minDelay: 300, maxDelay: 600 });
    hank.connect(); await connected(hank);
    const room = hank.subscription("room:offline");
    await room.subscribe();
    await own.kill();
    await until(() => hank.state !== "connected", 5000, "hank offline");
    const sizes = [];
    hank.on("queued", (q) => sizes.push(q.size));
    const sent = [hank.publish("room:offline", { text: "q1" }), room.publish({ text: "q2" })];
    assert.deepEqual(sizes, [1, 2]);
    await own.start();
    const replies = await Promise.all(sent);
    assert.deepEqual(replies.map((r) => r.offset), [1, 2]);
    const page = await hank.history("room:offline");
    assert.deepEqual(texts(page.publications), ["q1", "q2"]);
  } finally { await own.stop(); }
});

test("voice: three members each hear the other two; a whisper reaches only its target", async () => {
  const names = ["v-alice", "v-bob", "v-carol"];
  const members = names.map((user) => client(node, { user }));
  members.forEach((m) => m.connect());
  for (const m of members) await connected(m);
  const heard = new Map(names.map((n) => [n, []]));
  const speaking = [];
  for (const [i, m] of members.entries()) {
    const room = m.subscription("voice:js");
    room.on("voice", (f) => heard.get(names[i]).push(f));
    room.on("speaking", (info) => speaking.push(`${names[i]}<${info.user}`));
    await room.subscribe();
  }
  for (const m of members) assert.equal(m.sendVoice("voice:js", new Uint8Array([9, 9, 9])), true);
  await until(() => [...heard.values()].every((f) => f.length === 2), 5000, "every member to hear two");
  for (const [name, frames] of heard) {
    assert.deepEqual(frames.map((f) => f.sender).sort(), names.filter((n) => n !== name));
  }
  await until(() => speaking.length === 9, 5000, "speaking pushes");
  members[0].sendVoice("voice:js", "只给 bob", { kind: VoiceKind.TEXT, to: "v-bob" });
  await until(() => heard.get("v-bob").length === 3, 5000, "the whisper");
  assert.equal(heard.get("v-bob")[2].text, "只给 bob");
  assert.equal(heard.get("v-bob")[2].target, "v-bob");
  await sleep(300);
  assert.equal(heard.get("v-carol").length, 2);
});
