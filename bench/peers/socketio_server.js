// Socket.IO 4 on Node: the same jobs Tidings does in the benchmark, the way its docs show.
// A socket joins `user:<id>` on connect (direct messages), `join` adds it to a room,
// `publish` emits to a room, `send` emits to a user. PORT and optional REDIS_URL from env.
const { createServer } = require("http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 9001);
const httpServer = createServer();
const io = new Server(httpServer, { transports: ["websocket"], perMessageDeflate: false,
                                    maxHttpBufferSize: 1e6 });

async function main() {
  if (process.env.REDIS_URL) {
    const { createAdapter } = require("@socket.io/redis-adapter");
    const { createClient } = require("redis");
    const pub = createClient({ url: process.env.REDIS_URL });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub, { key: process.env.REDIS_KEY || "bench" }));
  }
  io.on("connection", (socket) => {
    const user = String((socket.handshake.auth || {}).user || socket.id);
    socket.join(`user:${user}`);
    socket.on("join", (room, ack) => { socket.join(room); if (ack) ack("ok"); });
    socket.on("publish", (msg, ack) => { io.to(msg.room).emit("pub", msg.data); if (ack) ack("ok"); });
    socket.on("send", (msg, ack) => { io.to(`user:${msg.to}`).emit("pub", msg.data); if (ack) ack("ok"); });
  });
  // the listen backlog Tidings has: thousands of clients connect at once
  httpServer.listen(port, "127.0.0.1", 4096, () => console.log(`ready ${port}`));
}
main();
