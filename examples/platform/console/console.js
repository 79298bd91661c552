// Doze console: a small page over the northbound API. No framework; it logs
// in with appId and secret (or takes them from the URL fragment
// #appId=…&secret=…), then polls the API every two seconds.
"use strict";
let auth = null;
const $ = (s) => document.querySelector(s);

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

async function login(appId, secret) {
  const r = await fetch("/iocm/app/sec/v1.1.0/login", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ appId, secret }),
  });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error_desc || r.statusText);
  auth = { appId, token: body.accessToken };
  $("#who").textContent = "app " + appId;
  $("#login").hidden = true;
  $("#main").hidden = false;
}

async function api(path) {
  const r = await fetch(path, { headers: { app_key: auth.appId, Authorization: "Bearer " + auth.token } });
  if (r.status === 401) { auth = null; $("#login").hidden = false; $("#main").hidden = true; throw new Error("session expired, log in again"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error_desc || r.statusText);
  return body;
}

function rows(sel, items, cells) {
  $(sel + " tbody").innerHTML = items.map((it) => "<tr>" + cells(it).map((c) => "<td>" + c + "</td>").join("") + "</tr>").join("");
}

const st = (s) => `<span class="st ${esc(s)}">${esc(s)}</span>`;

async function refresh() {
  const devs = await api("/iocm/app/dm/v1.4.0/devices?pageNo=0&pageSize=100");
  rows("#devices", devs.devices, (d) => {
    const last = (d.services || []).map((s) => s.eventTime).sort().pop();
    return [esc(d.deviceId), esc(d.deviceInfo.nodeId), esc(d.deviceInfo.name), esc(d.deviceInfo.model), st(d.deviceInfo.status), esc(last)];
  });
  const sel = $("#hdev");
  const keep = sel.value;
  sel.innerHTML = devs.devices.map((d) => `<option value="${esc(d.deviceId)}">${esc(d.deviceInfo.name || d.deviceInfo.nodeId)}</option>`).join("");
  if (keep) sel.value = keep;
  else {
    const withData = devs.devices.find((d) => (d.services || []).length > 0);
    if (withData) sel.value = withData.deviceId;
  }

  const cmds = await api("/iocm/app/cmd/v1.4.0/deviceCommands?pageNo=0&pageSize=50");
  rows("#commands", cmds.data, (c) => [esc(c.commandId), esc(c.deviceId), esc(c.command.method), st(c.status), esc(c.creationTime)]);

  const subs = await api("/iocm/app/sub/v1.2.0/subscriptions?pageNo=0&pageSize=100");
  rows("#subs", subs.subscriptions, (s) => [esc(s.notifyType), esc(s.callbackUrl)]);
  const eps = await api("/doze/v1/endpoints");
  rows("#endpoints", eps, (e) => [esc(e.callbackUrl), st(e.state), esc(e.failures), esc(e.queued), esc(e.lastError)]);

  const ops = await api("/iodm/northbound/v1.5.0/operations?pageNo=0&pageSize=50");
  rows("#tasks", ops.data || [], (t) => {
    const pct = t.totalCount ? Math.round((100 * (t.successCount + t.failCount)) / t.totalCount) : 0;
    return [esc(t.operationId), esc(t.operationType), st(t.status), `<div class="bar"><div style="width:${pct}%"></div></div>${pct}%`];
  });
  await chart();
}

async function chart() {
  const dev = $("#hdev").value;
  if (!dev) return;
  const h = await api("/iocm/app/data/v1.2.0/deviceDataHistory?deviceId=" + encodeURIComponent(dev) + "&pageNo=0&pageSize=200");
  const points = {};
  for (const rec of h.deviceDataHistoryDTOs.slice().reverse()) {
    for (const [k, v] of Object.entries(rec.data || {})) {
      if (typeof v !== "number") continue;
      const key = rec.serviceId + "." + k;
      (points[key] = points[key] || []).push([rec.timestamp, v]);
    }
  }
  const psel = $("#hprop");
  const keep = psel.value;
  psel.innerHTML = Object.keys(points).map((k) => `<option>${esc(k)}</option>`).join("");
  if (keep && points[keep]) psel.value = keep;
  const pts = points[psel.value] || [];
  const svg = $("#chart");
  if (pts.length === 0) { svg.innerHTML = ""; $("#chartinfo").textContent = "no numeric history yet"; return; }
  const ys = pts.map((p) => p[1]);
  const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
  const xy = pts.map((p, i) => [pts.length === 1 ? 200 : (i * 400) / (pts.length - 1), 150 - ((p[1] - lo) * 140) / span]);
  svg.innerHTML = `<polyline fill="none" stroke="#2f6fdb" stroke-width="2" points="${xy.map((p) => p.join(",")).join(" ")}"/>` +
    xy.map((p) => `<circle cx="${p[0]}" cy="${p[1]}" r="2.5" fill="#2f6fdb"/>`).join("");
  $("#chartinfo").textContent = `${pts.length} points, ${lo} … ${hi}, last ${pts[pts.length - 1][0]}`;
}

async function tick() {
  try {
    if (auth) { await refresh(); $("#error").textContent = ""; }
  } catch (e) {
    $("#error").textContent = e.message;
  }
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try { await login(f.get("appId"), f.get("secret")); await tick(); } catch (e) { $("#error").textContent = e.message; }
});
$("#hdev").addEventListener("change", () => tick());
$("#hprop").addEventListener("change", () => chart().catch(() => {}));

(async () => {
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.get("appId") && frag.get("secret")) {
    try { await login(frag.get("appId"), frag.get("secret")); await tick(); } catch (e) { $("#error").textContent = e.message; $("#login").hidden = false; }
  } else {
    $("#login").hidden = false;
  }
  setInterval(tick, 2000);
})();
