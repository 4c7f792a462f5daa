// bootherd status page: renders the operator view that the server streams
// (server-sent events, one `overview` event per change) and sends reimage
// requests with the operator token. Everything a machine reported is put
// into the page as text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "bootherd-operator-token";
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function ago(t, now) {
  if (t === null || t === undefined) return "never";
  const s = Math.max(0, now - t);
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}

function card(title, value, detail, kind) {
  return el("div", { class: "card " + (kind || "") }, el("small", {}, title), el("b", {}, value), detail ? el("small", {}, detail) : null);
}

function renderCluster(c) {
  const cp = c.control_planes;
  const quorum = c.has_quorum
    ? "quorum held (needs " + c.quorum + "), tolerates " + c.tolerates + " more failure(s)"
    : "no quorum yet (needs " + c.quorum + ")";
  const cards = [
    card("cluster " + c.name, c.vip, "API VIP"),
    card("control planes joined", cp.joined + "/" + cp.configured, quorum, c.has_quorum ? "ok" : "bad"),
    card("workers joined", c.workers.joined + "/" + c.workers.configured),
    c.load_balancers
      ? card("load balancers up", c.load_balancers.joined + "/" + c.load_balancers.configured, null, c.load_balancers.joined > 0 ? "ok" : "bad")
      : card("load balancers", "stacked", "on the control planes"),
  ];
  $("cluster").replaceChildren(...cards);
}

function progressCell(m) {
  const td = el("td", { class: "progress", "data-label": "Progress" });
  if (m.failure) {
    td.append(el("div", { class: "failure" }, "FAILED: " + m.failure.step));
    if (m.failure.log_tail) td.append(el("pre", { class: "log" }, m.failure.log_tail));
  } else if (m.progress) {
    td.append(el("progress", { max: "100", value: String(m.progress.percent) }), " " + m.progress.percent + "% " + m.progress.phase);
  } else {
    td.append("-");
  }
  return td;
}

function renderMachines(o) {
  const rows = o.machines.map((m) => {
    const name = m.hostname || m.mac;
    const last = m.last_event
      ? [m.last_event.kind + ": " + m.last_event.message.split("\n")[0], el("div", { class: "when" }, ago(m.last_event.time, o.now))]
      : ["-"];
    const action = el("td", { "data-label": "" });
    if (m.hostname) {
      const b = el("button", { type: "button", class: "reimage", "data-host": m.hostname }, "Reimage");
      b.addEventListener("click", () => reimage(m.hostname));
      action.append(b);
    }
    return el("tr", { "data-mac": m.mac, "data-hostname": name, "data-state": m.state },
      el("td", { class: "hostname", "data-label": "Hostname" }, name),
      el("td", { class: "mac", "data-label": "MAC" }, m.mac),
      el("td", { "data-label": "Role" }, m.role || "-"),
      el("td", { "data-label": "Platform" }, m.platform || "-"),
      el("td", { class: "ip", "data-label": "IP" }, m.ip || "-"),
      el("td", { class: "state " + m.state, "data-label": "State" }, m.state),
      progressCell(m),
      el("td", { class: "last", "data-label": "Last event" }, ...last),
      action);
  });
  $("machines").tBodies[0].replaceChildren(...rows);
}

function notice(text) {
  const n = $("notice");
  n.textContent = text;
  n.hidden = !text;
}

async function reimage(host) {
  if (!window.confirm("Reinstall " + host + " at its next boot? Its disk will be wiped.")) return;
  const token = localStorage.getItem(TOKEN_KEY);
  const headers = token ? { Authorization: "Bearer " + token } : {};
  let resp;
  try {
    resp = await fetch("/api/v1/machines/" + encodeURIComponent(host) + "/reimage", { method: "POST", headers });
  } catch (e) {
    notice("Cannot reach bootherd: " + e);
    return;
  }
  if (resp.status === 401) {
    localStorage.removeItem(TOKEN_KEY);
    $("token-form").hidden = false;
    notice((token ? "The saved operator token was refused. " : "Reimage needs the operator token. ") +
      "Paste the contents of <data_dir>/operator-token (on the bootherd host, e.g. sudo cat /var/lib/bootherd/operator-token) below, then press Reimage again.");
    return;
  }
  if (!resp.ok) {
    notice("Reimage of " + host + " refused: " + (await resp.text()).trim());
    return;
  }
  notice(host + " will be reinstalled at its next boot.");
}

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (!t) return;
  localStorage.setItem(TOKEN_KEY, t);
  $("token").value = "";
  $("token-form").hidden = true;
  notice("Operator token saved in this browser. Press Reimage again.");
});

// The last view received, and when: "3m ago" keeps counting between updates.
let latest = null;
let receivedAt = 0;

function connect() {
  const live = $("live");
  const source = new EventSource("/api/v1/status/stream");
  source.addEventListener("overview", (ev) => {
    latest = JSON.parse(ev.data);
    receivedAt = Date.now();
    renderCluster(latest.cluster);
    renderMachines(latest);
    live.textContent = "live";
    live.classList.remove("off");
  });
  // EventSource reconnects by itself; say so while it does.
  source.onerror = () => {
    live.textContent = "reconnecting…";
    live.classList.add("off");
  };
}

connect();
setInterval(() => {
  if (latest) {
    const elapsed = Math.floor((Date.now() - receivedAt) / 1000);
    renderMachines(Object.assign({}, latest, { now: latest.now + elapsed }));
  }
}, 10000);
