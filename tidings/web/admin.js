// The admin console: polls /admin/api/overview every few seconds and draws it; the tools
// call the other /admin/api endpoints. The token stays in this tab's session storage and is
// sent as a bearer header. Every value is put on the page as text, never as HTML.

const KEY = "tidings-admin-token";
const $ = (id) => document.getElementById(id);
let timer = null;
let failures = 0;

function token() { return sessionStorage.getItem(KEY); }

async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token()}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json().catch(() => ({ error: { code: 0, message: response.statusText } }));
  if (!response.ok) {
    const error = new Error(answer.error?.message || response.statusText);
    error.status = response.status;
    error.code = answer.error?.code;
    throw error;
  }
  return answer;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function rows(tbody, items, columns, empty) {
  const table = $(tbody).tBodies[0];
  table.replaceChildren();
  if (!items.length) {
    table.append(el("tr", {}, el("td", { class: "empty", colSpan: columns }, empty)));
    return;
  }
  for (const cells of items) {
    table.append(el("tr", {}, ...cells.map(([value, cls]) => el("td", cls ? { class: cls } : {}, value))));
  }
}

const number = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
const clock = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z";
const timeOfDay = (ms) => new Date(ms).toISOString().slice(11, 19);
function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? `${number.format(value * 1000)} ms` : `${number.format(value)} s`;
}

function spark(svg, values) {
  svg.replaceChildren();
  if (values.length < 2) return;
  const top = Math.max(...values, 1e-9);
  const step = 120 / (values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(31 - (v / top) * 29).toFixed(1)}`);
  const ns = "http://www.w3.org/2000/svg";
  const area = document.createElementNS(ns, "polygon");
  area.setAttribute("points", `0,32 ${points.join(" ")} 120,32`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(area, line);
}

function kpi(name, text, values) {
  const card = $(`kpi-${name}`);
  card.querySelector(".value").textContent = text;
  spark(card.querySelector(".spark"), values);
}

function draw(view) {
  $("node-name").textContent = view.node;
  $("node-version").textContent = `v${view.version}${view.draining ? " · draining" : ""}`;
  const t = view.trends;
  const last = (series) => (series.length ? series[series.length - 1] : 0);
  kpi("connections", number.format(view.local.connections), t.connections);
  kpi("users", number.format(view.local.users), t.users);
  kpi("publications", number.format(last(t.publications)), t.publications);
  kpi("deliveries", number.format(last(t.deliveries)), t.deliveries);
  kpi("loop_lag", seconds(last(t.loop_lag)), t.loop_lag);

  rows("nodes", view.nodes.map((n) => [
    [el("span", {}, n.name, ...(n.name === view.node ? [el("span", { class: "here" }, "this node")] : []))],
    [n.address || "–"], [number.format(n.connections), "num"], [number.format(n.users), "num"],
    [clock(n.started)], [n.version],
  ]), 6, "no node has sent a heartbeat yet");

  rows("protocols", view.local.protocols.map((p) => [[p.protocol], [p.transport], [number.format(p.connections), "num"]]),
    3, "no connections");
  const namespaces = Object.entries(view.local.subscriptions);
  const most = Math.max(1, ...namespaces.map(([, n]) => n));
  $("namespaces").replaceChildren(...namespaces.map(([ns, n]) => {
    const fill = el("div", { class: "fill" });
    fill.style.width = `${(100 * n) / most}%`;
    return el("div", { class: "bar", dataset: { namespace: ns } }, el("span", {}, ns),
      el("div", { class: "track" }, fill), el("span", { class: "count" }, number.format(n)));
  }));

  rows("channels", view.channels.map((c) => [[c.channel], [number.format(c.rate), "num"], [number.format(c.subscribers), "num"]]),
    3, t.time.length ? "no channel has local subscribers" : "measuring (the first rates take two samples)");

  rows("ingest", view.ingest.map((s) => [
    [s.source], [s.kind], [s.queue],
    [el("span", { class: `state ${s.connected ? "ok" : "bad"}` }, s.connected ? "consuming" : "reconnecting")],
    [number.format(s.stored), "num"],
    [el("span", { class: s.dead_letters ? "state warn" : "" }, number.format(s.dead_letters)), "num"],
    [number.format(s.retries), "num"], [seconds(s.lag), "num"],
  ]), 8, "no ingest source is configured on this node");

  const problems = $("problems");
  problems.replaceChildren(...(view.problems.length ? view.problems.map((p) => el("li", {},
    el("time", {}, timeOfDay(p.time)), el("span", { class: `level ${p.level}` }, p.level),
    el("span", { class: "logger" }, p.logger), el("span", {}, p.message))) : [el("li", { class: "none" }, "no warnings or errors logged since the node started")]));
}

async function refresh() {
  try {
    draw(await call("GET", "/admin/api/overview"));
    failures = 0;
    $("live").dataset.state = "live";
    $("live").textContent = `live · ${timeOfDay(Date.now())}`;
  } catch (error) {
    if (error.status === 401) return signOut("That token was refused: " + error.message);
    failures += 1;
    $("live").dataset.state = "stale";
    $("live").textContent = `not answering (${failures})`;
  }
}

function start(interval = 2000) {
  $("signin").hidden = true;
  $("console").hidden = false;
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, interval);
}

function signOut(message = "") {
  clearInterval(timer);
  sessionStorage.removeItem(KEY);
  $("console").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("token").focus();
}

async function lookUpUser(user) {
  const box = $("user-result");
  try {
    const view = await call("GET", `/admin/api/user?user=${encodeURIComponent(user)}`);
    const table = el("table", { id: "user-connections" }, el("thead", {}, el("tr", {},
      ...["Client", "Protocol", "Address", "Connected", "Channels", ""].map((h) => el("th", {}, h)))), el("tbody"));
    for (const c of view.connections) {
      const kick = el("button", { class: "small danger", type: "button", textContent: "Disconnect" });
      kick.addEventListener("click", async () => {
        await call("POST", "/admin/api/disconnect", { user, client: c.client, reconnect: true });
        setTimeout(() => lookUpUser(user), 300);
      });
      table.tBodies[0].append(el("tr", { dataset: { client: c.client } },
        el("td", { class: "mono", title: c.client }, c.client.slice(0, 8)), el("td", { class: "nowrap" }, `${c.protocol}/${c.transport}`),
        el("td", {}, c.address || "–"), el("td", {}, `${c.seconds} s`),
        el("td", {}, c.subscriptions.join(", ")), el("td", {}, kick)));
    }
    if (!view.connections.length) table.tBodies[0].append(el("tr", {}, el("td", { class: "empty", colSpan: 6 }, `${user} has no connection on ${view.node}`)));
    const inbox = view.inbox;
    const sources = Object.entries(inbox.sources || {});
    box.replaceChildren(table, el("p", { id: "user-inbox" },
      `Inbox: ${inbox.unread} unread`, sources.length ? ` — ${sources.map(([name, s]) => `${name} ${s.unread}/${s.total}`).join(", ")}` : ""));
  } catch (error) {
    box.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

async function showPresence(channel) {
  const box = $("presence-result");
  try {
    const view = await call("GET", `/admin/api/presence?channel=${encodeURIComponent(channel)}`);
    const list = el("table", { id: "presence-list" }, el("thead", {}, el("tr", {}, el("th", {}, "User"), el("th", {}, "Node"), el("th", {}, "Client"))), el("tbody"));
    for (const c of view.clients) list.tBodies[0].append(el("tr", {}, el("td", {}, c.user), el("td", {}, c.node), el("td", {}, c.client.slice(0, 8))));
    if (!view.clients.length) list.tBodies[0].append(el("tr", {}, el("td", { class: "empty", colSpan: 3 }, `nobody is in ${view.channel}`)));
    box.replaceChildren(list);
  } catch (error) {
    box.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

function on(form, handler) {
  $(form).addEventListener("submit", (event) => { event.preventDefault(); handler(); });
}

function setup() {
  on("signin-form", async () => {
    sessionStorage.setItem(KEY, $("token").value);
    try {
      await call("GET", "/admin/api/overview");
      $("token").value = "";
      start();
    } catch (error) {
      signOut(error.status === 401 ? "That token was refused." : error.message);
    }
  });
  $("signout").addEventListener("click", () => signOut());
  on("user-form", () => lookUpUser($("user-id").value.trim()));
  on("presence-form", () => showPresence($("presence-channel").value.trim()));
  on("publish-form", async () => {
    const out = $("publish-result");
    let data;
    try { data = JSON.parse($("publish-data").value); } catch (error) { out.className = "result error"; out.textContent = `data must be JSON: ${error.message}`; return; }
    const body = { channel: $("publish-channel").value.trim(), data };
    const source = $("publish-source").value.trim();
    if (source) body.source = source;
    try {
      const result = await call("POST", "/admin/api/publish", body);
      out.className = "result ok";
      out.textContent = result.offset ? `published to ${result.channel} at offset ${result.offset}` : `delivered to ${result.channel} (not stored)`;
    } catch (error) { out.className = "result error"; out.textContent = error.message; }
  });
  on("disconnect-form", async () => {
    const out = $("disconnect-result");
    try {
      const result = await call("POST", "/admin/api/disconnect", { user: $("disconnect-user").value.trim(), reconnect: $("disconnect-reconnect").checked });
      out.className = "result ok";
      out.textContent = `${result.user}: ${result.closed_here} connection(s) closed on this node; the other nodes were told`;
    } catch (error) { out.className = "result error"; out.textContent = error.message; }
  });
  if (token()) start(); else signOut();
}

setup();
