// Doze console: one device's page. Its status, power mode and versions, the
// shadow (reported and desired, desired editable), its commands (send one
// and watch its states), the history chart, the device log, and the LwM2M
// registration with the object tree.
"use strict";

(() => {
  const { $, html, raw, api, busy, table, state, showTime, parseTime, apiTime, coerce } = Doze;
  const finals = ["SUCCESSFUL", "FAILED", "TIMEOUT", "EXPIRED", "CANCELED"];
  const ranges = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3 };

  let dev = "";
  let model = null; // the product: {services:[{serviceId, properties, commands}]}
  let watched = null; // {commandId, seen:[[status, time]…]}
  let polls = 0;
  const hist = { key: "", range: "24h", from: null, to: null };

  const enc = encodeURIComponent;
  const numeric = (p) => ["int", "long", "decimal"].includes(String(p.dataType).toLowerCase());

  function layout() {
    return html`
<div class="cols">
<section id="summary"><h2 id="devname">Device</h2><dl class="facts" id="facts"></dl>
  <form class="row" id="modeform"><label>power mode <select name="mode">
    ${["PSM", "DRX", "EDRX"].map((m) => html`<option>${m}</option>`)}</select></label><button>Save</button></form>
</section>
<section id="shadow"><h2>Shadow</h2>
  <div class="scroll"><table id="shadowtable"><thead><tr><th>service</th><th>property</th><th>reported</th><th>desired</th></tr></thead><tbody></tbody></table></div>
  <h3>Set desired values</h3>
  <p class="hint">Sent to the device as the first command whose paras name them, when it next wakes.</p>
  <form class="grid" id="desired"></form>
</section>
<section id="commands"><h2>Commands</h2>
  <form class="grid" id="sendcmd">
    <label>service <select name="serviceId"></select></label>
    <label>method <select name="method"></select></label>
    <div id="paras" class="grid" style="display:contents"></div>
    <label>expires after s <input name="expireTime" type="number" min="0" max="2592000" placeholder="172800"></label>
    <label>&nbsp;<button class="primary">Send command</button></label>
  </form>
  <div id="cmdwatch" class="result"></div>
  <div class="scroll"><table id="cmds"><thead><tr><th>method</th><th>paras</th><th>status</th><th>created</th><th>result</th><th></th></tr></thead><tbody></tbody></table></div>
</section>
<section id="history"><h2>History</h2>
  <form class="row" id="histform">
    <select name="key" aria-label="property"></select>
    <select name="range" aria-label="time range">
      ${Object.keys(ranges).map((r) => html`<option value="${r}" ${r === hist.range ? raw("selected") : ""}>last ${r}</option>`)}
      <option value="custom">from … to …</option></select>
    <span id="custom" hidden><input type="datetime-local" name="from" aria-label="from"> <input type="datetime-local" name="to" aria-label="to"> <button>Show</button></span>
  </form>
  <div id="chart"></div>
  <div class="hint" id="chartinfo"></div>
</section>
<section id="log"><h2>Device log</h2>
  <div class="scroll"><table id="logtable" class="nowrap2"><thead><tr><th>time</th><th>kind</th><th>message</th></tr></thead><tbody></tbody></table></div>
</section>
${Doze.lwm2m.card()}
</div>`;
  }

  // shortTime leaves out today's date.
  function shortTime(s) {
    const t = showTime(s);
    const d = parseTime(s);
    return d && d.toDateString() === new Date().toDateString() ? t.slice(11) : t;
  }

  function services() { return (model && model.services) || []; }

  function fillCommandForm() {
    const f = $("#sendcmd");
    const withCmds = services().filter((s) => (s.commands || []).length);
    f.serviceId.innerHTML = withCmds.map((s) => html`<option>${s.serviceId}</option>`).join("");
    const methods = () => {
      const s = withCmds.find((x) => x.serviceId === f.serviceId.value);
      f.method.innerHTML = (s ? s.commands : []).map((c) => html`<option>${c.commandName}</option>`).join("");
      paras();
    };
    const paras = () => {
      const s = withCmds.find((x) => x.serviceId === f.serviceId.value);
      const c = s && s.commands.find((x) => x.commandName === f.method.value);
      $("#paras").innerHTML = (c ? c.paras : []).map((p) => paraInput(p, "para.")).join("");
    };
    f.serviceId.onchange = methods;
    f.method.onchange = paras;
    methods();
    if (withCmds.length === 0) f.innerHTML = `<p class="none">the product declares no commands</p>`;
  }

  function paraInput(p, prefix, value) {
    const hint = [p.dataType, p.unit, p.min !== undefined && p.max !== undefined ? `${p.min}…${p.max}` : "", p.enumList ? p.enumList.join("|") : ""].filter(Boolean).join(", ");
    return String(html`<label>${p.name}${p.required ? " *" : ""} <small>${hint}</small>
      <input name="${prefix}${p.name}" data-type="${p.dataType}" value="${value ?? ""}" ${p.required && prefix === "para." ? raw("required") : ""}></label>`);
  }

  function formValues(form, prefix) {
    const out = {};
    for (const el of form.querySelectorAll(`input[name^="${prefix}"]`)) {
      if (el.value.trim() === "") continue;
      out[el.name.slice(prefix.length)] = coerce(el.value.trim(), el.dataset.type);
    }
    return out;
  }

  async function sendCommand(form) {
    await busy($("button.primary", form), async () => {
      const body = { deviceId: dev, command: { serviceId: form.serviceId.value, method: form.method.value, paras: formValues(form, "para.") } };
      if (form.expireTime.value !== "") body.expireTime = Number(form.expireTime.value);
      let c;
      try {
        c = await api("POST", "/iocm/app/cmd/v1.4.0/deviceCommands", body);
      } catch (e) {
        // 409 device_unreachable: the command is stored FAILED; show it.
        if (e.code !== "device_unreachable") throw e;
        Doze.showError(e);
        Doze.refresh();
        return;
      }
      watched = { commandId: c.commandId, seen: [[c.status, new Date()]] };
      drawWatch();
      Doze.refresh();
    });
  }

  function drawWatch() {
    if (!watched) return;
    $("#cmdwatch").innerHTML = html`command <b>${watched.commandId}</b>: ${watched.seen.map((s, i) =>
      html`${i ? " → " : ""}<span class="st ${s[0]}">${s[0]}</span> <small>${s[1].toLocaleTimeString()}</small>`)}`;
  }

  function desiredForm(shadow) {
    const f = $("#desired");
    if (f.dataset.drawn) return;
    f.dataset.drawn = "1";
    const byService = new Map((shadow.shadowInfo || []).map((s) => [s.serviceId, s]));
    f.innerHTML = services().map((s) => {
      const fields = new Map();
      for (const p of s.properties || []) if (/W/.test(p.method || "")) fields.set(p.name, p);
      for (const c of s.commands || []) for (const p of c.paras || []) if (!fields.has(p.name)) fields.set(p.name, p);
      if (fields.size === 0) return "";
      const cur = (byService.get(s.serviceId) || {}).desired;
      return `<fieldset data-service="${Doze.esc(s.serviceId)}"><legend>${Doze.esc(s.serviceId)}</legend>` +
        [...fields.values()].map((p) => paraInput(p, "d.", cur && cur.data ? cur.data[p.name] : "")).join("") +
        `<button class="small">Set desired ${Doze.esc(s.serviceId)}</button></fieldset>`;
    }).join("") || `<p class="none">no writable properties or command paras</p>`;
    f.addEventListener("submit", (ev) => ev.preventDefault());
    f.addEventListener("click", async (ev) => {
      const btn = ev.target.closest("fieldset button");
      if (!btn) return;
      ev.preventDefault();
      const fs = btn.closest("fieldset");
      await busy(btn, async () => {
        const desired = formValues(fs, "d.");
        if (Object.keys(desired).length === 0) throw new Error("enter at least one desired value");
        await api("PUT", `/iocm/app/shadow/v1.5.0/devices/${enc(dev)}`, { serviceDesireds: [{ serviceId: fs.dataset.service, desired }] });
        Doze.refresh();
      });
    });
  }

  function historyKeys() {
    const keys = [];
    for (const s of services()) for (const p of s.properties || []) if (numeric(p)) keys.push({ key: `${s.serviceId}.${p.name}`, service: s.serviceId, prop: p.name, unit: p.unit || "" });
    return keys;
  }

  function timeRange() {
    if (hist.range === "custom" && hist.from && hist.to) return [hist.from, hist.to];
    const to = new Date();
    return [new Date(to.getTime() - ranges[hist.range === "custom" ? "24h" : hist.range]), to];
  }

  async function drawHistory() {
    const k = historyKeys().find((x) => x.key === hist.key);
    if (!k) { $("#chart").innerHTML = `<p class="none">the product has no numeric properties to chart</p>`; return; }
    const [from, to] = timeRange();
    // A preset range is open at the end: the API's times have whole
    // seconds, and a value of this second is newer than "now" cut to one.
    const end = hist.range === "custom" ? `&endTime=${apiTime(to)}` : "";
    const h = await api("GET", `/iocm/app/data/v1.2.0/deviceDataHistory?deviceId=${enc(dev)}&serviceId=${enc(k.service)}&property=${enc(k.prop)}` +
      `&startTime=${apiTime(from)}${end}&pageNo=0&pageSize=1000`);
    const pts = [];
    for (const rec of h.deviceDataHistoryDTOs || []) {
      const v = rec.data && rec.data[k.prop];
      const t = parseTime(rec.timestamp);
      if (typeof v === "number" && t) pts.push([t, v]);
    }
    pts.sort((a, b) => a[0] - b[0]);
    const last = pts.length ? pts[pts.length - 1][0] : to;
    Doze.chart.draw($("#chart"), pts, { unit: k.unit, from, to: last > to ? last : to, label: k.key });
    const more = h.totalCount > pts.length ? ` (the newest ${pts.length} of ${h.totalCount})` : "";
    $("#chartinfo").textContent = pts.length ? `${k.key}: ${pts.length} values${more}, last ${pts[pts.length - 1][1]} ${k.unit}` : "";
  }

  Doze.views.device = {
    async render(root, params) {
      dev = params[0] || "";
      watched = null;
      polls = 0;
      const d = await api("GET", `/iocm/app/dm/v1.4.0/devices/${enc(dev)}`);
      model = await api("GET", `/doze/v1/products/${enc(d.deviceInfo.manufacturerId)}/${enc(d.deviceInfo.model)}`).catch(() => null);
      root.innerHTML = String(layout());
      Doze.lwm2m.reset();
      Doze.lwm2m.bind(root, dev);
      fillCommandForm();
      const keys = historyKeys();
      if (!keys.some((k) => k.key === hist.key)) hist.key = keys.length ? keys[0].key : "";
      const hf = $("#histform");
      hf.key.innerHTML = keys.map((k) => html`<option ${k.key === hist.key ? raw("selected") : ""}>${k.key}</option>`).join("");
      hf.addEventListener("change", (ev) => {
        if (ev.target.name === "from" || ev.target.name === "to") return;
        hist.key = hf.key.value;
        hist.range = hf.range.value;
        $("#custom").hidden = hist.range !== "custom";
        if (hist.range !== "custom") drawHistory().catch(Doze.showError);
      });
      hf.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const from = new Date(hf.from.value), to = new Date(hf.to.value);
        if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()) || from >= to) { Doze.showError(new Error("choose a start before the end")); return; }
        hist.from = from; hist.to = to;
        drawHistory().catch(Doze.showError);
      });
      $("#sendcmd").addEventListener("submit", (ev) => { ev.preventDefault(); sendCommand(ev.target); });
      $("#modeform").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        await busy($("button", ev.target), async () => {
          await api("PUT", `/iocm/app/dm/v1.4.0/devices/${enc(dev)}`, { mode: ev.target.mode.value });
          Doze.refresh();
        });
      });
      $("#cmds").addEventListener("click", async (ev) => {
        const btn = ev.target.closest("button[data-cancel]");
        if (!btn) return;
        await busy(btn, () => api("PUT", `/iocm/app/cmd/v1.4.0/deviceCommands/${enc(btn.dataset.cancel)}`, { status: "CANCELED" }));
        Doze.refresh();
      });
    },

    async poll() {
      const [d, shadow, cmds, log] = await Promise.all([
        api("GET", `/iocm/app/dm/v1.4.0/devices/${enc(dev)}`),
        api("GET", `/iocm/app/shadow/v1.5.0/devices/${enc(dev)}`),
        api("GET", `/iocm/app/cmd/v1.4.0/deviceCommands?deviceId=${enc(dev)}&pageNo=0&pageSize=20`),
        api("GET", `/doze/v1/devices/${enc(dev)}/log?limit=30`),
      ]);
      const i = d.deviceInfo;
      $("#devname").textContent = i.name || i.nodeId;
      $("#facts").innerHTML = html`<dt>status</dt><dd>${state(i.status)}</dd>
<dt>power mode</dt><dd id="mode">${i.mode || "PSM"}${i.psmActiveTimer ? ` (active ${i.psmActiveTimer} s)` : ""}${i.edrxCycle ? ` (eDRX ${i.edrxCycle} s)` : ""}</dd>
<dt>product</dt><dd>${i.manufacturerName || i.manufacturerId} ${i.model} · ${i.deviceType} · ${i.protocolType}</dd>
<dt>software</dt><dd>${i.swVersion || "—"}</dd><dt>firmware</dt><dd>${i.fwVersion || "—"}</dd>
<dt>nodeId</dt><dd>${i.nodeId}</dd><dt>deviceId</dt><dd class="mono">${d.deviceId}</dd>
<dt>created</dt><dd>${showTime(d.createTime)}</dd><dt>changed</dt><dd>${showTime(d.lastModifiedTime)}</dd>`;
      const mf = $("#modeform");
      if (document.activeElement !== mf.mode) mf.mode.value = i.mode || "PSM";

      const rows = [];
      for (const s of shadow.shadowInfo || []) {
        const rep = (s.reported && s.reported.data) || {}, des = (s.desired && s.desired.data) || {};
        for (const k of new Set([...Object.keys(rep), ...Object.keys(des)])) rows.push([s.serviceId, k, rep[k] ?? "", des[k] ?? ""]);
      }
      table($("#shadowtable"), rows, (r) => r, "nothing reported or desired yet");
      desiredForm(shadow);

      const list = cmds.data || [];
      table($("#cmds"), list, (c) => [c.command.method, html`<span class="mono">${JSON.stringify(c.command.paras)}</span>`, state(c.status),
        showTime(c.creationTime), html`<span class="result">${c.result ? JSON.stringify(c.result) : ""}</span>`,
        c.status === "PENDING" ? html`<button class="small" data-cancel="${c.commandId}">Cancel</button>` : ""], "no commands");
      $("#cmds").querySelectorAll("tbody tr").forEach((tr, n) => tr.classList.toggle("sel", !!watched && list[n] && list[n].commandId === watched.commandId));
      if (watched) {
        const c = list.find((x) => x.commandId === watched.commandId);
        if (c && watched.seen[watched.seen.length - 1][0] !== c.status) { watched.seen.push([c.status, new Date()]); drawWatch(); }
        if (c && finals.includes(c.status) && c.result && !watched.done) {
          watched.done = true;
          $("#cmdwatch").insertAdjacentHTML("beforeend", String(html` · result ${JSON.stringify(c.result)}`));
        }
      }

      table($("#logtable"), log.entries || [], (e) => [shortTime(e.time), e.kind, e.message], "no entries");
      if (polls++ % 3 === 0) await drawHistory();
      await Doze.lwm2m.poll();
    },
  };
})();
