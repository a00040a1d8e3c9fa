// Real Tidings nodes for the JavaScript tests: `tidings serve` processes on free ports.
import { spawn } from "node:child_process";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import crypto from "node:crypto";
import WebSocket from "ws";

export { WebSocket };

export function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function listening(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("connect", () => { sock.destroy(); resolve(true); });
    sock.once("error", () => resolve(false));
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait until `check()` is truthy, polling; fails after `timeout` ms. */
export async function until(check, timeout = 10000, what = "condition") {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A `tidings serve` process; start()/stop()/kill() keep the same port and store. */
export class TidingsNode {
  constructor(env = {}) {
    this.env = env;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "tidings-js-"));
    this.proc = null;
  }
  get url() { return `ws://127.0.0.1:${this.port}/ws`; }
  get http() { return `http://127.0.0.1:${this.port}`; }
  async start() {
    this.port ??= await freePort();
    const python = process.env.TIDINGS_PYTHON || "python3";
    this.proc = spawn(python, ["-m", "tidings", "serve"], {
      env: {
        ...process.env, TIDINGS_PORT: String(this.port), TIDINGS_NODE_NAME: `js-${this.port}`,
        TIDINGS_STORE: `sqlite:///${this.dir}/tidings.db`, TIDINGS_SHUTDOWN_GRACE: "0.5", ...this.env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.log = "";
    this.proc.stderr.on("data", (d) => { this.log += d; });
    await until(() => listening(this.port), 20000, `tidings on ${this.port}`);
    return this;
  }
  async stop(signal = "SIGTERM") {
    if (!this.proc) return;
    const proc = this.proc;
    this.proc = null;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill(signal);
    await exited;
  }
  kill() { return this.stop("SIGKILL"); }
  async api(pathname, body) {
    const res = await fetch(this.http + pathname, { method: "POST", body: JSON.stringify(body) });
    return res.json();
  }
}

/** An HS256 JWT signed with `secret`. */
export function jwt(secret, claims) {
  const enc = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const head = enc({ alg: "HS256", typ: "JWT" }), body = enc(claims);
  const sig = crypto.createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** A TCP proxy in front of a node: down() cuts every connection and refuses new ones. */
export class Proxy {
  constructor(target) { this.target = target; this.sockets = new Set(); this.server = null; }
  get url() { return `ws://127.0.0.1:${this.port}/ws`; }
  async up() {
    this.port ??= await freePort();
    this.server = net.createServer((sock) => {
      const upstream = net.connect(this.target.port, "127.0.0.1");
      for (const s of [sock, upstream]) { this.sockets.add(s); s.on("close", () => this.sockets.delete(s)); s.on("error", () => {}); }
      sock.pipe(upstream); upstream.pipe(sock);
      sock.on("close", () => upstream.destroy()); upstream.on("close", () => sock.destroy());
    });
    await new Promise((r) => this.server.listen(this.port, "127.0.0.1", r));
    return this;
  }
  async down() {
    const closed = new Promise((r) => this.server.close(r));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
