// Doze console: a device's LwM2M registration and its object tree, as in
// Leshan's client page: every resource can be read, written, executed and
// observed. On an awake device the answer comes at once; on a sleeping one
// the platform queues the operation (202) and the tree shows it PENDING
// until the device wakes and the operation ends.
"use strict";

Doze.lwm2m = (() => {
  const { $, html, raw, api, busy, table, state, showTime, esc } = Doze;

  // models names the resources of the objects a console user meets most:
  // [id, name, operations, type, multiple, unit]. Resources of other
  // objects appear once a read or a discover names them.
  const models = {
    1: ["LwM2M Server", [[0, "Short Server ID", "R", "INTEGER"], [1, "Lifetime", "RW", "INTEGER", 0, "s"],
      [2, "Default Minimum Period", "RW", "INTEGER", 0, "s"], [3, "Default Maximum Period", "RW", "INTEGER", 0, "s"],
      [4, "Disable", "E"], [5, "Disable Timeout", "RW", "INTEGER", 0, "s"], [6, "Notification Storing", "RW", "BOOLEAN"],
      [7, "Binding", "RW", "STRING"], [8, "Registration Update Trigger", "E"]]],
    3: ["Device", [[0, "Manufacturer", "R", "STRING"], [1, "Model Number", "R", "STRING"], [2, "Serial Number", "R", "STRING"],
      [3, "Firmware Version", "R", "STRING"], [4, "Reboot", "E"], [5, "Factory Reset", "E"],
      [6, "Available Power Sources", "R", "INTEGER", 1], [7, "Power Source Voltage", "R", "INTEGER", 1, "mV"],
      [8, "Power Source Current", "R", "INTEGER", 1, "mA"], [9, "Battery Level", "R", "INTEGER", 0, "%"],
      [10, "Memory Free", "R", "INTEGER", 0, "KiB"], [11, "Error Code", "R", "INTEGER", 1], [12, "Reset Error Code", "E"],
      [13, "Current Time", "RW", "TIME"], [14, "UTC Offset", "RW", "STRING"], [15, "Timezone", "RW", "STRING"],
      [16, "Supported Binding and Modes", "R", "STRING"], [17, "Device Type", "R", "STRING"], [18, "Hardware Version", "R", "STRING"],
      [19, "Software Version", "R", "STRING"], [20, "Battery Status", "R", "INTEGER"], [21, "Memory Total", "R", "INTEGER", 0, "KiB"]]],
    4: ["Connectivity Monitoring", [[0, "Network Bearer", "R", "INTEGER"], [1, "Available Network Bearer", "R", "INTEGER", 1],
      [2, "Radio Signal Strength", "R", "INTEGER", 0, "dBm"], [3, "Link Quality", "R", "INTEGER"], [4, "IP Addresses", "R", "STRING", 1],
      [5, "Router IP Addresses", "R", "STRING", 1], [6, "Link Utilization", "R", "INTEGER", 0, "%"], [7, "APN", "R", "STRING", 1],
      [8, "Cell ID", "R", "INTEGER"], [9, "SMNC", "R", "INTEGER"], [10, "SMCC", "R", "INTEGER"]]],
    5: ["Firmware Update", [[0, "Package", "W", "OPAQUE"], [1, "Package URI", "RW", "STRING"], [2, "Update", "E"],
      [3, "State", "R", "INTEGER"], [5, "Update Result", "R", "INTEGER"], [6, "PkgName", "R", "STRING"], [7, "PkgVersion", "R", "STRING"],
      [8, "Firmware Update Protocol Support", "R", "INTEGER", 1], [9, "Firmware Update Delivery Method", "R", "INTEGER"]]],
    19: ["BinaryAppDataContainer", [[0, "Data", "RW", "OPAQUE", 1], [1, "Data Priority", "RW", "INTEGER"],
      [2, "Data Creation Time", "RW", "TIME"], [3, "Data Description", "RW", "STRING"], [4, "Data Format", "RW", "STRING"], [5, "App ID", "RW", "INTEGER"]]],
    3303: ["Temperature", [[5700, "Sensor Value", "R", "FLOAT"], [5701, "Sensor Units", "R", "STRING"],
      [5601, "Min Measured Value", "R", "FLOAT"], [5602, "Max Measured Value", "R", "FLOAT"], [5603, "Min Range Value", "R", "FLOAT"],
      [5604, "Max Range Value", "R", "FLOAT"], [5605, "Reset Min and Max Measured Values", "E"], [5750, "Application Type", "RW", "STRING"]]],
  };

  // parseLinks reads the object links of a registration (CoRE link format,
  // RFC 6690): {object id: [instance ids]}.
  function parseLinks(links) {
    const objs = new Map();
    for (const m of String(links || "").matchAll(/<([^>]*)>([^,]*)/g)) {
      const ids = m[1].split("/").filter(Boolean).map(Number);
      if (ids.length === 0 || ids.some((n) => !Number.isInteger(n)) || /rt=/.test(m[2])) continue;
      if (!objs.has(ids[0])) objs.set(ids[0], []);
      if (ids.length >= 2 && !objs.get(ids[0]).includes(ids[1])) objs.get(ids[0]).push(ids[1]);
    }
    return objs;
  }

  // The device shown, the tree's queued operations and the values shown.
  let dev = null;
  const queued = new Map(); // operationId → path
  const last = new Map(); // path → the last value shown

  function card() {
    return html`
<section id="lwm2m">
  <h2>LwM2M</h2>
  <dl class="facts" id="lwreg"><dt>registration</dt><dd class="none">loading…</dd></dl>
  <h3>Objects</h3>
  <p class="hint">Read, write, execute or observe any resource. A sleeping device's operations wait in its queue and run at its next wake-up.</p>
  <div class="tree" id="tree"></div>
  <h3>Operations</h3>
  <div class="scroll"><table id="lwops"><thead><tr><th>op</th><th>path</th><th>status</th><th>created</th><th>result</th><th></th></tr></thead><tbody></tbody></table></div>
</section>`;
  }

  function opsOf(o, r) {
    const m = models[o] && models[o][1].find((x) => x[0] === r);
    return m ? { name: m[1], ops: m[2], type: m[3], multi: !!m[4], unit: m[5] || "" } : null;
  }

  function resourceRow(o, i, r, model) {
    const path = `/${o}/${i}/${r}`;
    const ops = model ? model.ops : "RWE";
    const title = model ? html`${model.name} <small>${r} · ${model.type || "—"}${model.multi ? " · multiple" : ""}${model.unit ? " · " + model.unit : ""}</small>`
      : html`Resource ${r} <small>not in the console's models</small>`;
    return html`<div class="res" data-path="${path}" data-type="${model ? model.type || "" : ""}">
  <div class="name">${title}</div>
  <div class="val" data-val="${path}"></div>
  <div class="ops">
    ${ops.includes("R") ? html`<button class="small" data-op="read">Read</button><button class="small" data-op="observe">Observe</button><button class="small" data-op="cancel-observe">Stop</button>` : ""}
    ${ops.includes("W") ? html`<input class="small" data-arg="write" placeholder="value" aria-label="value for ${path}"><button class="small" data-op="write">Write</button>` : ""}
    ${ops.includes("E") ? html`<input class="small" data-arg="execute" placeholder="arguments" aria-label="arguments for ${path}"><button class="small" data-op="execute">Exec</button>` : ""}
  </div>
</div>`;
  }

  function instanceBlock(o, i) {
    const model = models[o];
    const rows = model ? model[1].map((m) => resourceRow(o, i, m[0], opsOf(o, m[0]))) : [];
    return html`<details class="inst" data-inst="/${o}/${i}" open>
  <summary>Instance /${o}/${i} <button class="small" data-op="read" data-path="/${o}/${i}">Read</button>
    <button class="small" data-op="observe" data-path="/${o}/${i}">Observe</button>
    <button class="small" data-op="discover" data-path="/${o}/${i}">Discover</button>
    <span class="val" data-val="/${o}/${i}"></span></summary>
  ${rows}
</details>`;
  }

  function drawTree(links) {
    const objs = parseLinks(links);
    const tree = $("#tree");
    if (objs.size === 0) { tree.innerHTML = `<p class="none">the registration lists no objects</p>`; return; }
    tree.innerHTML = [...objs.keys()].sort((a, b) => a - b).map((o) => html`<details class="obj" data-obj="${o}" ${o === 1 ? "" : raw("open")}>
  <summary>${models[o] ? models[o][0] : "Object"} <span class="mono">/${o}</span>
    <button class="small" data-op="read" data-path="/${o}">Read</button>
    <button class="small" data-op="discover" data-path="/${o}">Discover</button></summary>
  ${objs.get(o).map((i) => instanceBlock(o, i))}
</details>`).join("");
  }

  // valueOf renders a Leshan node: a value, values, or an instance's resources.
  function valueOf(node) {
    if (!node) return "";
    if (node.kind === "singleResource" || "value" in node) return String(node.value);
    if (node.values) return Object.entries(node.values).map(([k, v]) => `${k}=${v}`).join(", ");
    return "";
  }

  function setVal(path, text, cls) {
    const el = $(`[data-val="${CSS.escape(path)}"]`);
    if (!el) return;
    el.innerHTML = cls ? html`<span class="st ${cls}">${text}</span>` : esc(text);
  }

  // ensureRow adds a row for a resource the console's models do not name.
  function ensureRow(path) {
    if ($(`.res[data-path="${CSS.escape(path)}"]`)) return;
    const [o, i, r] = path.split("/").filter(Boolean).map(Number);
    const inst = $(`[data-inst="/${o}/${i}"]`);
    if (inst) inst.insertAdjacentHTML("beforeend", String(resourceRow(o, i, r, opsOf(o, r))));
  }

  // show puts a device's answer in the tree: the values of a read, the
  // status of anything else.
  function show(path, op, res) {
    if (!res) return;
    if (!res.success) { setVal(path, `${res.status} ${res.code}${res.errorMessage ? ": " + res.errorMessage : ""}`, "bad"); return; }
    const c = res.content;
    if (c && c.kind === "instance") {
      for (const r of c.resources || []) { ensureRow(`${path}/${r.id}`); last.set(`${path}/${r.id}`, valueOf(r)); setVal(`${path}/${r.id}`, valueOf(r)); }
      setVal(path, res.status + (op === "observe" ? " · observing" : ""), "ok");
    } else if (c && c.kind === "obj") {
      for (const inst of c.instances || []) for (const r of inst.resources || []) { ensureRow(`${path}/${inst.id}/${r.id}`); setVal(`${path}/${inst.id}/${r.id}`, valueOf(r)); }
      setVal(path, res.status, "ok");
    } else if (c) {
      last.set(path, valueOf(c));
      setVal(path, valueOf(c) + (op === "observe" ? " · observing" : ""));
    } else if (op === "cancel-observe") {
      setVal(path, `${last.get(path) ?? ""} · observation stopped (${res.status})`);
    } else if (op === "discover") {
      for (const l of res.objectLinks || []) {
        const p = /<([^>]*)>/.exec(l);
        if (p && p[1].split("/").filter(Boolean).length === 3) ensureRow(p[1]);
      }
      setVal(path, `${(res.objectLinks || []).join(" ")}`);
    } else {
      setVal(path, res.status, "ok");
    }
  }

  function writeValue(text, type) {
    switch (type) {
      case "INTEGER": case "UNSIGNED_INTEGER": case "FLOAT": {
        const n = Number(text);
        if (text.trim() === "" || Number.isNaN(n)) throw new Error(`"${text}" is not a number (the resource is ${type})`);
        return n;
      }
      case "BOOLEAN":
        if (text !== "true" && text !== "false") throw new Error(`"${text}" is not true or false (the resource is BOOLEAN)`);
        return text === "true";
      case "TIME": return /^\d+$/.test(text) ? Number(text) : text;
      case "": try { return JSON.parse(text); } catch { return text; }
      default: return text;
    }
  }

  async function operate(btn) {
    const op = btn.dataset.op;
    const row = btn.closest(".res");
    const path = btn.dataset.path || row.dataset.path;
    const base = `/doze/v1/devices/${encodeURIComponent(dev)}/lwm2m${path}`;
    btn.disabled = true;
    setVal(path, "…", "wait");
    try {
      let r;
      switch (op) {
        case "read": r = await api("GET", base, null, { full: true }); break;
        case "discover": r = await api("GET", base + "/discover", null, { full: true }); break;
        case "observe": r = await api("POST", base + "/observe", null, { full: true }); break;
        case "cancel-observe": r = await api("DELETE", base + "/observe", null, { full: true }); break;
        case "write": {
          const text = $("[data-arg=write]", row).value;
          const id = Number(path.split("/").pop());
          r = await api("PUT", base, { id, value: writeValue(text, row.dataset.type) }, { full: true });
          break;
        }
        case "execute": r = await api("POST", base, $("[data-arg=execute]", row).value, { full: true }); break;
      }
      if (r.status === 202) {
        queued.set(r.body.operationId, path);
        setVal(path, `queued (${r.body.status}): runs when the device wakes`, "queued");
        Doze.refresh();
        return;
      }
      show(path, op, r.body);
    } catch (e) {
      setVal(path, e.code ? `${e.message} (${e.code})` : e.message, "bad");
    } finally {
      btn.disabled = false;
    }
  }

  function bind(root, deviceId) {
    dev = deviceId;
    queued.clear();
    last.clear();
    $("#tree", root).addEventListener("click", (ev) => {
      const btn = ev.target.closest("button[data-op]");
      if (!btn) return;
      ev.preventDefault(); // a button in a summary does not fold it
      operate(btn);
    });
    $("#lwops", root).addEventListener("click", async (ev) => {
      const btn = ev.target.closest("button[data-cancel]");
      if (!btn) return;
      await busy(btn, () => api("DELETE", `/doze/v1/devices/${encodeURIComponent(dev)}/lwm2m-operations/${encodeURIComponent(btn.dataset.cancel)}`));
      Doze.refresh();
    });
  }

  let shownLinks = null;

  async function poll() {
    let reg = null;
    try {
      reg = await api("GET", `/doze/v1/devices/${encodeURIComponent(dev)}/lwm2m-registration`);
    } catch (e) {
      if (e.status !== 404) throw e;
    }
    if (!reg) {
      $("#lwreg").innerHTML = html`<dt>registration</dt><dd class="none">not registered: the device has not registered over LwM2M, or its registration ended</dd>`;
      if (shownLinks !== "") { $("#tree").innerHTML = ""; shownLinks = ""; }
    } else {
      const awake = reg.queueMode ? (reg.awake ? "awake until " + showTime(reg.awakeUntil) : "asleep (since " + showTime(reg.awakeUntil) + ")") : "always reachable";
      $("#lwreg").innerHTML = html`<dt>endpoint</dt><dd>${reg.endpoint}</dd>
<dt>LwM2M</dt><dd>${reg.lwm2mVersion}</dd>
<dt>lifetime</dt><dd>${reg.lifetime} s</dd>
<dt>binding</dt><dd>${reg.binding}</dd>
<dt>queue mode</dt><dd>${reg.queueMode ? "yes" : "no"}</dd>
<dt>reachable</dt><dd><span class="st ${reg.awake ? "ONLINE" : "INACTIVE"}">${awake}</span></dd>
<dt>address</dt><dd>${reg.address || ""}${reg.secure ? " (DTLS)" : ""}</dd>
<dt>registered</dt><dd>${showTime(reg.registrationDate)}, last update ${showTime(reg.lastUpdate)}</dd>
<dt>objects</dt><dd class="mono">${reg.objectLinks}</dd>`;
      if (reg.objectLinks !== shownLinks) { drawTree(reg.objectLinks); shownLinks = reg.objectLinks; }
    }
    const ops = (await api("GET", `/doze/v1/devices/${encodeURIComponent(dev)}/lwm2m-operations?limit=20`)).operations || [];
    table($("#lwops"), ops, (o) => [o.op, html`<span class="mono">${o.path}</span>`, state(o.status), showTime(o.creationTime),
      html`<span class="result">${o.result ? resultText(o.result) : o.reason || ""}</span>`,
      o.status === "PENDING" ? html`<button class="small" data-cancel="${o.operationId}">Cancel</button>` : ""], "no queued operations");
    for (const o of ops) {
      const path = queued.get(o.operationId);
      if (!path || !["SUCCESSFUL", "FAILED", "TIMEOUT", "EXPIRED", "CANCELED"].includes(o.status)) continue;
      queued.delete(o.operationId);
      if (o.status === "SUCCESSFUL" && o.result) show(path, o.op, JSON.parse(JSON.stringify(o.result)));
      else setVal(path, `${o.status}${o.reason ? ": " + o.reason : ""}`, o.status);
    }
  }

  function resultText(r) {
    if (r.content) return `${r.status} ${valueOf(r.content) || JSON.stringify(r.content)}`;
    return [r.status, r.code, r.reason, r.errorMessage].filter(Boolean).join(" ");
  }

  return { card, bind, poll, reset() { shownLinks = null; }, parseLinks };
})();
