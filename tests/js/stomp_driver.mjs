// A real @stomp/stompjs client, over a WebSocket (ws) or through sockjs-client, driven by the
// Python tests: commands come as JSON lines on stdin, events go out as JSON lines on stdout.
//
//   node stomp_driver.mjs '{"url": "...", "sockjs": ["xhr-streaming"], "connectHeaders": {...},
//                           "heartbeatIncoming": 0, "heartbeatOutgoing": 0}'
//
// Commands: {"op": "subscribe", "destination", "headers", "ack": "auto"|"manual"}
//           {"op": "unsubscribe", "id"} {"op": "publish", "destination", "body", "headers"}
//           {"op": "ack"|"nack", "messageId"} {"op": "begin", "tx"} {"op": "commit"|"abort", "tx"}
//           {"op": "receipt", "id"} (watch for it) {"op": "deactivate"} {"op": "exit"}
// Events:   {"event": "connected", "headers"} {"event": "message", "subscription", "headers",
//           "body"} {"event": "receipt", "id"} {"event": "error", "headers", "body"}
//           {"event": "closed", "code"} {"event": "subscribed", "id"} {"event": "deactivated"}
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import SockJS from 'sockjs-client';
import readline from 'node:readline';

const config = JSON.parse(process.argv[2]);
const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n');
const messages = new Map(); // message-id -> IMessage, for ack/nack
const subscriptions = new Map();
const transactions = new Map();

const client = new Client({
  webSocketFactory: () => config.sockjs
    ? new SockJS(config.url, null, { transports: config.sockjs })
    : new WebSocket(config.url, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
  connectHeaders: config.connectHeaders || {},
  heartbeatIncoming: config.heartbeatIncoming ?? 0,
  heartbeatOutgoing: config.heartbeatOutgoing ?? 0,
  reconnectDelay: 0,
  onConnect: (frame) => emit({ event: 'connected', headers: frame.headers }),
  onStompError: (frame) => emit({ event: 'error', headers: frame.headers, body: frame.body }),
  onWebSocketClose: (evt) => emit({ event: 'closed', code: evt.code }),
});

function onMessage(message) {
  messages.set(message.headers['message-id'], message);
  emit({ event: 'message', subscription: message.headers.subscription,
         headers: message.headers, body: message.body });
}

const ops = {
  subscribe(cmd) {
    const headers = { ...(cmd.headers || {}) };
    if (cmd.ack) headers.ack = cmd.ack;
    const sub = client.subscribe(cmd.destination, onMessage, headers);
    subscriptions.set(sub.id, sub);
    emit({ event: 'subscribed', id: sub.id });
  },
  unsubscribe(cmd) {
    subscriptions.get(cmd.id).unsubscribe(cmd.headers || {});
  },
  publish(cmd) {
    client.publish({ destination: cmd.destination, body: cmd.body, headers: cmd.headers || {} });
  },
  ack(cmd) { messages.get(cmd.messageId).ack(cmd.headers || {}); },
  nack(cmd) { messages.get(cmd.messageId).nack(cmd.headers || {}); },
  begin(cmd) { transactions.set(cmd.tx, client.begin(cmd.tx)); },
  commit(cmd) { transactions.get(cmd.tx).commit(); },
  abort(cmd) { transactions.get(cmd.tx).abort(); },
  receipt(cmd) { client.watchForReceipt(cmd.id, () => emit({ event: 'receipt', id: cmd.id })); },
  async deactivate() { await client.deactivate(); emit({ event: 'deactivated' }); },
  exit() { process.exit(0); },
};

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const cmd = JSON.parse(line);
  try {
    await ops[cmd.op](cmd);
  } catch (err) {
    emit({ event: 'failed', op: cmd.op, error: String(err) });
  }
});
process.stdin.on('end', () => process.exit(0));
client.activate();
