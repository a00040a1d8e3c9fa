// A real centrifuge-js client (JSON or Protobuf build) over `ws`, driven by the Python tests:
// commands come as JSON lines on stdin, events go out as JSON lines on stdout.
//
//   node centrifuge_driver.mjs '{"url": "ws://.../connection/websocket", "protobuf": false,
//                                "token": "...", "getToken": true}'
//
// Commands: {"op": "subscribe", "channel", "options"} {"op": "unsubscribe", "channel"}
//           {"op": "publish"|"history"|"presence"|"presenceStats"|"rpc", "ref", "channel", ...}
//           {"op": "token", "token"} (answers a getToken event) {"op": "disconnect"}
//           {"op": "connect"} {"op": "exit"}
// Events:   {"event": "connected"|"connecting"|"disconnected", ...} {"event": "subscribed",
//           "channel", "recovered", "wasRecovering", ...} {"event": "publication", "channel",
//           "data", "offset", "user", "server"} {"event": "join"|"leave", "channel", "user"}
//           {"event": "reply", "ref", "result"} {"event": "failed", "ref", "error"}
//           {"event": "getToken"} {"event": "error", ...}
import { Centrifuge as JsonCentrifuge } from 'centrifuge';
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';
import readline from 'node:readline';

const config = JSON.parse(process.argv[2]);
const emit = (event) => process.stdout.write(JSON.stringify(event, (k, v) =>
  typeof v === 'bigint' ? Number(v) : v) + '\n');
const Centrifuge = config.protobuf ? ProtobufCentrifuge : JsonCentrifuge;
const decode = (data) => {
  if (!config.protobuf) return data;
  return JSON.parse(new TextDecoder().decode(data));  // Tidings keeps JSON in the bytes
};
const encode = (value) => config.protobuf ? new TextEncoder().encode(JSON.stringify(value)) : value;

let tokenWaiter = null;
const options = {
  websocket: WebSocket,
  minReconnectDelay: 50,
  maxReconnectDelay: 300,
  maxServerPingDelay: config.maxServerPingDelay ?? 10000,
};
if (config.token) options.token = config.token;
if (config.getToken) {
  options.getToken = () => new Promise((resolve) => {
    tokenWaiter = resolve;
    emit({ event: 'getToken' });
  });
}
const client = new Centrifuge(config.url, options);

client.on('connecting', (ctx) => emit({ event: 'connecting', code: ctx.code, reason: ctx.reason }));
client.on('connected', (ctx) => emit({ event: 'connected', client: ctx.client,
  transport: ctx.transport }));
client.on('disconnected', (ctx) => emit({ event: 'disconnected', code: ctx.code,
  reason: ctx.reason }));
client.on('error', (ctx) => emit({ event: 'error', type: ctx.type, error: ctx.error }));
client.on('subscribed', (ctx) => emit({ event: 'subscribed', server: true, channel: ctx.channel,
  recovered: ctx.recovered, wasRecovering: ctx.wasRecovering,
  recoverable: ctx.recoverable, positioned: ctx.positioned,
  offset: ctx.streamPosition?.offset, epoch: ctx.streamPosition?.epoch }));
client.on('publication', (ctx) => emit({ event: 'publication', server: true,
  channel: ctx.channel, data: decode(ctx.data), offset: ctx.offset, user: ctx.info?.user,
  tags: ctx.tags }));
client.on('message', (ctx) => emit({ event: 'message', data: decode(ctx.data) }));

function watch(sub) {
  sub.on('subscribed', (ctx) => emit({ event: 'subscribed', server: false, channel: ctx.channel,
    recovered: ctx.recovered, wasRecovering: ctx.wasRecovering,
    recoverable: ctx.recoverable, positioned: ctx.positioned,
    offset: ctx.streamPosition?.offset, epoch: ctx.streamPosition?.epoch }));
  sub.on('subscribing', (ctx) => emit({ event: 'subscribing', channel: sub.channel,
    code: ctx.code, reason: ctx.reason }));
  sub.on('unsubscribed', (ctx) => emit({ event: 'unsubscribed', channel: sub.channel,
    code: ctx.code, reason: ctx.reason }));
  sub.on('error', (ctx) => emit({ event: 'subError', channel: sub.channel, error: ctx.error }));
  sub.on('publication', (ctx) => emit({ event: 'publication', server: false,
    channel: ctx.channel, data: decode(ctx.data), offset: ctx.offset, user: ctx.info?.user,
    tags: ctx.tags }));
  sub.on('join', (ctx) => emit({ event: 'join', channel: ctx.channel, user: ctx.info.user,
    client: ctx.info.client }));
  sub.on('leave', (ctx) => emit({ event: 'leave', channel: ctx.channel, user: ctx.info.user,
    client: ctx.info.client }));
}

async function answer(ref, call) {
  try {
    emit({ event: 'reply', ref, result: await call() });
  } catch (error) {
    emit({ event: 'failed', ref, error: { code: error.code, message: error.message } });
  }
}

const ops = {
  subscribe(cmd) {
    const sub = client.getSubscription(cmd.channel) ??
      client.newSubscription(cmd.channel, cmd.options || {});
    watch(sub);
    sub.subscribe();
  },
  unsubscribe(cmd) { client.getSubscription(cmd.channel).unsubscribe(); },
  publish(cmd) {
    return answer(cmd.ref, () => client.publish(cmd.channel, encode(cmd.data)));
  },
  history(cmd) {
    return answer(cmd.ref, async () => {
      const result = await client.history(cmd.channel, cmd.options || {});
      return { offset: result.offset, epoch: result.epoch,
        publications: result.publications.map((p) => ({ data: decode(p.data), offset: p.offset,
          user: p.info?.user })) };
    });
  },
  presence(cmd) {
    return answer(cmd.ref, async () => {
      const result = await client.presence(cmd.channel);
      return Object.fromEntries(Object.entries(result.clients).map(([id, info]) =>
        [id, { user: info.user, client: info.client }]));
    });
  },
  presenceStats(cmd) {
    return answer(cmd.ref, () => client.presenceStats(cmd.channel));
  },
  rpc(cmd) {
    return answer(cmd.ref, async () => decode((await client.rpc(cmd.method,
      encode(cmd.data))).data));
  },
  token(cmd) { const resolve = tokenWaiter; tokenWaiter = null; resolve(cmd.token); },
  connect() { client.connect(); },
  disconnect() { client.disconnect(); },
  exit() { client.disconnect(); process.exit(0); },
};

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line);
  Promise.resolve(ops[cmd.op](cmd)).catch((error) =>
    emit({ event: 'failed', ref: cmd.ref, error: { message: String(error) } }));
});
client.connect();
