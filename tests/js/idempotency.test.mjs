// The offline queue's other half: a publish sent again with the same idempotency key (its
// reply was lost with the connection) must be stored once. Needs the node's dedup.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../../tidings/web/tidings.js";
import { TidingsNode, WebSocket } from "./node.mjs";

const node = await new TidingsNode().start();
after(() => node.stop());

test("a publish repeated with its idempotency key is stored once", async () => {
  const alice = new Client(node.url, { WebSocket, user: "alice" });
  alice.connect();
  try {
    await alice.once("connected");
    await alice.subscription("room:once").subscribe();
    const first = await alice.publish("room:once", { text: "once" }, { idempotencyKey: "k-1" });
    const again = await alice.publish("room:once", { text: "once" }, { idempotencyKey: "k-1" });
    assert.equal(again.offset, first.offset);
    const page = await alice.history("room:once");
    assert.equal(page.publications.length, 1);
  } finally { alice.disconnect(); }
});
