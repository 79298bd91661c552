// Doze console: the device list (search, filters, paging) and device
// registration, one device or a CSV of many.
"use strict";

(() => {
  const { $, html, api, busy, table, state, showTime, products } = Doze;
  const list = { pageNo: 0, pageSize: 25, q: "", status: "" };

  // The device list call filters by status but has no text search: a search
  // reads the list in pages of 1000, at most searchPages of them, and
  // matches nodeId, name, deviceId and model here.
  const searchPages = 10;

  async function fetchPage() {
    const base = "/iocm/app/dm/v1.4.0/devices?" + (list.status ? "status=" + encodeURIComponent(list.status) + "&" : "");
    const q = list.q.trim().toLowerCase();
    if (!q) {
      const r = await api("GET", base + `pageNo=${list.pageNo}&pageSize=${list.pageSize}`);
      return { devices: r.devices, total: r.totalCount, note: "" };
    }
    const found = [];
    let seen = 0, total = 0;
    for (let p = 0; p < searchPages; p++) {
      const r = await api("GET", base + `pageNo=${p}&pageSize=1000`);
      total = r.totalCount;
      seen += r.devices.length;
      for (const d of r.devices) {
        const i = d.deviceInfo;
        if ([d.deviceId, i.nodeId, i.name, i.model, i.deviceType].some((s) => String(s || "").toLowerCase().includes(q))) found.push(d);
      }
      if (seen >= total || r.devices.length === 0) break;
    }
    const start = list.pageNo * list.pageSize;
    const note = seen < total ? `searched the first ${seen} of ${total} devices` : "";
    return { devices: found.slice(start, start + list.pageSize), total: found.length, note };
  }

  Doze.views.devices = {
    async render(root) {
      root.innerHTML = html`
<section id="devlist">
  <h2>Devices</h2>
  <form class="row" id="devsearch">
    <input type="search" name="q" placeholder="search nodeId, name, id, model" value="${list.q}">
    <select name="status">
      ${["", "ONLINE", "OFFLINE", "INACTIVE", "ABNORMAL"].map((s) => html`<option value="${s}" ${s === list.status ? Doze.raw("selected") : ""}>${s || "any status"}</option>`)}
    </select>
    <select name="pageSize">${[25, 50, 100].map((n) => html`<option ${n === list.pageSize ? Doze.raw("selected") : ""}>${n}</option>`)}</select>
    <button>Search</button>
  </form>
  <div class="scroll"><table id="devices"><thead><tr><th>name</th><th>nodeId</th><th>model</th><th>status</th><th>last data</th></tr></thead><tbody></tbody></table></div>
  <div class="pager"><button id="prev" type="button">‹ prev</button><span id="pageinfo"></span><button id="next" type="button">next ›</button></div>
</section>
<section id="register">
  <h2>Register devices</h2>
  <form class="grid" id="regone">
    <label>nodeId (IMEI) <input name="nodeId" required maxlength="256"></label>
    <label>name <input name="name"></label>
    <label>product <select name="product" required></select></label>
    <label>PSK (hex, optional) <input name="psk" pattern="([0-9a-fA-F]{2}){8,64}" title="16 to 128 hex digits"></label>
    <label>bind timeout s <input name="timeout" type="number" min="0" value="180"></label>
    <label>&nbsp;<button class="primary">Register</button></label>
  </form>
  <div id="regresult" class="result"></div>
  <h3>Many, from CSV</h3>
  <p class="hint">One device a line: <code>nodeId,name,psk</code> (name and psk may be empty; a first line starting
    with <code>nodeId</code> is a header). The product chosen above applies to all. Up to 1,000 lines go to the
    platform in one batch call; each line gets its own result.</p>
  <form id="regcsv">
    <textarea name="csv" placeholder="868333030000001,kitchen,&#10;868333030000002,garage,00112233445566778899aabbccddeeff"></textarea>
    <div class="row"><input type="file" name="file" accept=".csv,text/csv,text/plain"><button class="primary">Register all</button></div>
  </form>
  <div class="scroll"><table id="csvresult" hidden><thead><tr><th>line</th><th>nodeId</th><th>result</th><th>deviceId / error</th><th>psk</th></tr></thead><tbody></tbody></table></div>
</section>`;
      $("#devsearch").addEventListener("submit", (ev) => {
        ev.preventDefault();
        const f = new FormData(ev.target);
        Object.assign(list, { q: String(f.get("q")), status: String(f.get("status")), pageSize: +f.get("pageSize"), pageNo: 0 });
        Doze.refresh();
      });
      $("#prev").addEventListener("click", () => { if (list.pageNo > 0) { list.pageNo--; Doze.refresh(); } });
      $("#next").addEventListener("click", () => { list.pageNo++; Doze.refresh(); });
      const prods = await products(true);
      $("#regone [name=product]").innerHTML = prods.map((p) => html`<option value="${p.manufacturerId}/${p.model}">${p.manufacturerId} ${p.model} (${p.deviceType}, ${p.protocolType})</option>`).join("");
      $("#regone").addEventListener("submit", (ev) => { ev.preventDefault(); registerOne(ev.target); });
      $("#regcsv").addEventListener("submit", (ev) => { ev.preventDefault(); registerCSV(ev.target); });
    },

    async poll() {
      const { devices, total, note } = await fetchPage();
      const pages = Math.max(1, Math.ceil(total / list.pageSize));
      if (list.pageNo >= pages && list.pageNo > 0) { list.pageNo = pages - 1; return this.poll(); }
      table($("#devices"), devices, (d) => {
        const i = d.deviceInfo;
        const last = (d.services || []).map((s) => s.eventTime).sort().pop();
        return [html`<a href="#/device/${encodeURIComponent(d.deviceId)}">${i.name || i.nodeId || d.deviceId}</a>`,
          i.nodeId, i.model, state(i.status), showTime(last)];
      }, list.q ? "no device matches" : "no devices yet");
      $("#pageinfo").textContent = `page ${list.pageNo + 1} of ${pages} · ${total} device${total === 1 ? "" : "s"}${note ? " · " + note : ""}`;
      $("#prev").disabled = list.pageNo === 0;
      $("#next").disabled = list.pageNo + 1 >= pages;
    },
  };

  function productOf(form) {
    const [manufacturerId, model] = String(new FormData(form).get("product") || "").split("/");
    return Doze.products().then((ps) => ps.find((p) => p.manufacturerId === manufacturerId && p.model === model));
  }

  function registrationBody(prod, nodeId, name, psk, timeout) {
    const body = { nodeId, deviceInfo: { manufacturerId: prod.manufacturerId, deviceType: prod.deviceType, model: prod.model,
      protocolType: prod.protocolType, name: name || undefined } };
    if (psk) body.psk = psk;
    if (timeout !== "" && timeout !== undefined) body.timeout = Number(timeout);
    return body;
  }

  function registration(prod, nodeId, name, psk, timeout) {
    return api("POST", "/iocm/app/reg/v1.1.0/deviceCredentials", registrationBody(prod, nodeId, name, psk, timeout));
  }

  async function registerOne(form) {
    const f = new FormData(form);
    await busy($("button", form), async () => {
      const prod = await productOf($("#regone"));
      if (!prod) throw new Error("choose a product");
      const r = await registration(prod, String(f.get("nodeId")).trim(), String(f.get("name")).trim(), String(f.get("psk")).trim(), f.get("timeout"));
      $("#regresult").innerHTML = html`registered <a href="#/device/${encodeURIComponent(r.deviceId)}">${r.deviceId}</a>, PSK <b>${r.psk}</b>
        (shown once: the API does not give it again), to connect within ${r.timeout ? r.timeout + " s" : "any time"}`;
      form.reset();
      Doze.refresh();
    });
  }

  // parseCSV reads nodeId,name,psk lines; quotes are not needed for these
  // fields and not accepted.
  function parseCSV(text) {
    const rows = [];
    text.split(/\r?\n/).forEach((line, i) => {
      const t = line.trim();
      if (!t || t.startsWith("#")) return;
      const cols = t.split(",").map((s) => s.trim());
      if (i === 0 && cols[0].toLowerCase() === "nodeid") return;
      rows.push({ line: i + 1, nodeId: cols[0], name: cols[1] || "", psk: cols[2] || "", extra: cols.length > 3 });
    });
    return rows;
  }

  const csvLimit = 1000;

  async function registerCSV(form) {
    const btn = $("button", form);
    await busy(btn, async () => {
      const file = form.file.files[0];
      const text = file ? await file.text() : form.csv.value;
      const rows = parseCSV(text);
      if (rows.length === 0) throw new Error("the CSV has no device lines (nodeId,name,psk)");
      if (rows.length > csvLimit) throw new Error(`the CSV has ${rows.length} devices; at most ${csvLimit} at a time`);
      const prod = await productOf($("#regone"));
      if (!prod) throw new Error("choose a product above");
      const out = $("#csvresult");
      out.hidden = false;
      const results = rows.map((r) => ({ ...r, ok: null, detail: "waiting", key: "" }));
      const draw = () => table(out, results, (r) => [r.line, r.nodeId,
        html`<span class="st ${r.ok === null ? "wait" : r.ok ? "ok" : "bad"}">${r.ok === null ? "…" : r.ok ? "registered" : "refused"}</span>`,
        r.ok ? html`<a href="#/device/${encodeURIComponent(r.detail)}">${r.detail}</a>` : r.detail, html`<span class="mono">${r.key}</span>`]);
      draw();
      // One batch call for every well-formed line (APP-4): the answer has
      // one result per device, in the order sent.
      const send = results.filter((r) => {
        if (r.extra) { r.ok = false; r.detail = `line ${r.line} has more than 3 columns (nodeId,name,psk)`; }
        return !r.extra;
      });
      if (send.length > 0) {
        try {
          const a = await api("POST", "/iocm/app/reg/v1.1.0/deviceCredentials/batch",
            send.map((r) => registrationBody(prod, r.nodeId, r.name, r.psk, undefined)));
          send.forEach((r, i) => {
            const res = (a.results || [])[i];
            if (!res) { r.ok = false; r.detail = "the platform gave no result for this line"; return; }
            if (res.error_code) { r.ok = false; r.detail = `${res.error_code}: ${res.error_desc || ""}`; return; }
            r.ok = true; r.detail = res.deviceId; r.key = res.psk || "";
          });
        } catch (e) {
          // The whole call was refused (bad input, rate limit, quota…):
          // every line sent has that answer.
          for (const r of send) { r.ok = false; r.detail = e.code ? `${e.code}: ${e.message}` : e.message; }
        }
      }
      draw();
      const bad = results.filter((r) => !r.ok).length;
      Doze.showError(bad ? new Error(`${bad} of ${results.length} lines were refused; see the table`) : null);
      Doze.refresh();
    });
  }
})();
