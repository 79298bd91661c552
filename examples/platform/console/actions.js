// Doze console: products (upload with codec and mapping, every validation
// problem shown), upgrades (packages, tasks: start, stop, retry) and
// subscriptions (subscribe, unsubscribe, endpoint health).
"use strict";

(() => {
  const { $, html, api, busy, table, state, showTime } = Doze;
  const enc = encodeURIComponent;

  // problemList renders the problems of a refused upload: where (file,
  // line:column), the code and the sentence, whichever of them it has.
  function problemList(e) {
    const ps = e.problems || [];
    const head = ps.length ? `${ps.length} problem${ps.length === 1 ? "" : "s"} found` : e.message;
    return html`<p class="bad">${head}${e.code ? ` (${e.code})` : ""}</p>
<ol class="problems">${ps.map((p) => {
      const where = [p.file, p.line ? `${p.line}:${p.column || 0}` : "", p.message && p.text ? p.message : "", p.field].filter(Boolean).join(" ");
      return html`<li><span class="where">${where}</span> <b>${p.code || ""}</b> ${p.text || p.message || JSON.stringify(p)}</li>`;
    })}</ol>`;
  }

  async function upload(form, path, out) {
    await busy($("button", form), async () => {
      out.innerHTML = "";
      try {
        const r = await api("POST", path, new FormData(form));
        form.reset();
        Doze.refresh();
        return r;
      } catch (e) {
        if (!e.status) throw e;
        out.innerHTML = String(problemList(e));
        return null;
      }
    }).then((r) => r && uploaded(out, r));
  }

  function uploaded(out, r) {
    if (r.fileId) out.innerHTML = String(html`<p class="ok">package ${r.fileId} uploaded: ${r.version}, ${r.size} bytes, sha-256 ${r.digest}</p>`);
    else out.innerHTML = String(html`<p class="ok">product ${r.manufacturerId} ${r.model} added${r.hasCodec ? " with its codec" : ""}${r.hasMapping ? " and mapping" : ""}.</p>
${(r.warnings || []).length ? problemList({ message: "warnings", problems: r.warnings }) : ""}`);
  }

  Doze.views.products = {
    render(root) {
      root.innerHTML = String(html`
<section><h2>Products</h2>
  <div class="scroll"><table id="products"><thead><tr><th>manufacturer</th><th>model</th><th>device type</th><th>protocol</th><th>codec</th><th>services</th><th></th></tr></thead><tbody></tbody></table></div>
</section>
<section><h2>Upload a product</h2>
  <p class="hint">The profile (the zip named <code>deviceType_manufacturerId_model.zip</code>, or the JSON model), with its
    codec JSON and, for standard LwM2M clients, a resource mapping. Every problem found is listed.</p>
  <form class="grid" id="productform">
    <label>profile <input type="file" name="profile" required></label>
    <label>codec (optional) <input type="file" name="codec"></label>
    <label>mapping (optional) <input type="file" name="mapping"></label>
    <label>&nbsp;<button class="primary">Upload</button></label>
  </form>
  <div id="productresult"></div>
</section>`);
      $("#productform").addEventListener("submit", (ev) => {
        ev.preventDefault();
        const f = ev.target;
        for (const n of ["codec", "mapping"]) if (f[n].files.length === 0) f[n].disabled = true; // not sent empty
        upload(f, "/doze/v1/products", $("#productresult")).finally(() => { f.codec.disabled = false; f.mapping.disabled = false; });
      });
      $("#products").addEventListener("click", async (ev) => {
        const btn = ev.target.closest("button[data-del]");
        if (!btn) return;
        await busy(btn, () => api("DELETE", "/doze/v1/products/" + btn.dataset.del));
        Doze.refresh();
      });
    },
    async poll() {
      const ps = await Doze.products(true);
      table($("#products"), ps, (p) => [p.manufacturerId, p.model, p.deviceType, p.protocolType,
        [p.hasCodec ? "codec" : "", p.hasMapping ? "mapping" : ""].filter(Boolean).join(", ") || "—",
        (p.services || []).map((s) => s.serviceId).join(", "),
        html`<button class="small" data-del="${enc(p.manufacturerId)}/${enc(p.model)}">Delete</button>`], "no products");
    },
  };

  // The upgrade page: packages, and tasks over them.
  let openTask = "";

  Doze.views.upgrades = {
    render(root) {
      root.innerHTML = String(html`
<section><h2>Packages</h2>
  <div class="scroll"><table id="packages"><thead><tr><th>fileId</th><th>type</th><th>version</th><th>model</th><th>from</th><th>size</th><th>date</th><th></th></tr></thead><tbody></tbody></table></div>
  <h3>Upload a package</h3>
  <form class="grid" id="pkgform">
    <label>file <input type="file" name="file" required></label>
    <label>type <select name="fileType"><option value="softwarePackage">software (PCP)</option><option value="firmwarePackage">firmware (LwM2M object 5)</option></select></label>
    <label>version <input name="version" required></label>
    <label>device type <input name="deviceType" required></label>
    <label>manufacturer name <input name="manufacturerName" required></label>
    <label>model <input name="model" required></label>
    <label>protocol <input name="protocolType" value="CoAP" required></label>
    <label>from versions <input name="sourceVersions" placeholder="1.0.0,1.0.1 (empty: any)"></label>
    <label>description <input name="description"></label>
    <label>&nbsp;<button class="primary">Upload</button></label>
  </form>
  <div id="pkgresult"></div>
</section>
<section><h2>Start an upgrade</h2>
  <form class="grid" id="taskform">
    <label>package <select name="fileId" required></select></label>
    <label>devices (deviceIds) <textarea name="devices" placeholder="one deviceId a line or comma-separated"></textarea></label>
    <label>group ids <input name="groups" placeholder="optional, comma-separated"></label>
    <label>when <select name="executeType"><option value="device_online">when each device wakes</option><option value="now">now</option></select></label>
    <label>automatic retries <input name="retryTimes" type="number" min="0" max="5" value="0"></label>
    <label>&nbsp;<button class="primary">Start</button></label>
  </form>
  <div id="taskresult" class="result"></div>
</section>
<section><h2>Upgrade tasks</h2>
  <div class="scroll"><table id="tasks"><thead><tr><th>operationId</th><th>type</th><th>status</th><th>progress</th><th>ok / failed / all</th><th></th></tr></thead><tbody></tbody></table></div>
  <h3 id="subtitle" hidden>Devices of the task</h3>
  <div class="scroll"><table id="subops" hidden><thead><tr><th>deviceId</th><th>status</th><th>step</th><th>progress</th><th>versions</th><th>error</th></tr></thead><tbody></tbody></table></div>
</section>`);
      $("#pkgform").addEventListener("submit", (ev) => { ev.preventDefault(); upload(ev.target, "/iodm/northbound/v1.5.0/category", $("#pkgresult")); });
      $("#taskform").addEventListener("submit", (ev) => { ev.preventDefault(); startTask(ev.target); });
      root.addEventListener("click", async (ev) => {
        const btn = ev.target.closest("button[data-act]");
        if (!btn) return;
        const { act, id } = btn.dataset;
        if (act === "open") { openTask = openTask === id ? "" : id; Doze.refresh(); return; }
        await busy(btn, () => {
          if (act === "stop") return api("PUT", `/iodm/northbound/v1.5.0/operations/${enc(id)}/stop`);
          if (act === "retry") return api("POST", `/iodm/northbound/v1.5.0/operations/${enc(id)}/retry`);
          if (act === "delpkg") return api("DELETE", `/iodm/northbound/v1.5.0/category/${enc(id)}`);
          return null;
        });
        Doze.refresh();
      });
    },
    async poll() {
      const [pk, ops] = await Promise.all([api("GET", "/iodm/northbound/v1.5.0/category"), api("GET", "/iodm/northbound/v1.5.0/operations?pageNo=0&pageSize=50")]);
      const pkgs = pk.data || [];
      table($("#packages"), pkgs, (p) => [html`<span class="mono">${p.fileId}</span>`, p.fileType, p.version, `${p.manufacturerName} ${p.model}`,
        (p.sourceVersions || []).join(", ") || "any", p.size, showTime(p.date), html`<button class="small" data-act="delpkg" data-id="${p.fileId}">Delete</button>`], "no packages");
      const sel = $("#taskform").fileId;
      const keep = sel.value;
      sel.innerHTML = pkgs.map((p) => html`<option value="${p.fileId}" data-type="${p.fileType}">${p.version} · ${p.model} · ${p.fileType}</option>`).join("");
      if (keep) sel.value = keep;
      const tasks = ops.data || [];
      table($("#tasks"), tasks, (t) => [html`<span class="mono">${t.operationId}</span>`, t.operationType, state(t.status),
        html`<div class="bar"><div style="width:${t.progress || 0}%"></div></div>${t.progress || 0}%`,
        `${t.successCount} / ${t.failCount} / ${t.totalCount}`,
        html`<span class="row"><button class="small" data-act="open" data-id="${t.operationId}">${openTask === t.operationId ? "Hide" : "Devices"}</button>
          ${["wait", "processing"].includes(t.status) ? html`<button class="small" data-act="stop" data-id="${t.operationId}">Stop</button>` : ""}
          ${t.failCount > 0 ? html`<button class="small" data-act="retry" data-id="${t.operationId}">Retry failed</button>` : ""}</span>`], "no upgrade tasks");
      $("#subops").hidden = $("#subtitle").hidden = !openTask;
      if (openTask) {
        const subs = await api("GET", `/iodm/northbound/v1.5.0/operations/${enc(openTask)}/subOperations?pageNo=0&pageSize=100`);
        table($("#subops"), subs.data || [], (s) => [html`<a href="#/device/${enc(s.deviceId)}">${s.deviceId}</a>`, state(s.status), s.step,
          html`<div class="bar"><div style="width:${s.progress || 0}%"></div></div>`, `${s.sourceVersion || "?"} → ${s.targetVersion} (now ${s.currentVersion || "?"})`, s.errorReason], "no devices");
      }
    },
  };

  async function startTask(form) {
    $("#taskresult").innerHTML = "";
    await busy($("button", form), async () => {
      const opt = form.fileId.selectedOptions[0];
      if (!opt) throw new Error("upload a package first");
      const split = (s) => s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
      const body = { fileId: form.fileId.value, targets: { devices: split(form.devices.value), deviceGroups: split(form.groups.value) },
        policy: { executeType: form.executeType.value, retryTimes: Number(form.retryTimes.value || 0) } };
      const kind = opt.dataset.type === "firmwarePackage" ? "firmwareUpgrade" : "softwareUpgrade";
      try {
        const r = await api("POST", `/iodm/northbound/v1.5.0/operations/${kind}`, body);
        $("#taskresult").innerHTML = String(html`task <b>${r.operationId}</b> started${(r.refusedDevices || []).length
          ? html`; left out: ${r.refusedDevices.map((d) => `${d.deviceId} (${d.reason})`).join(", ")}` : ""}`);
        Doze.refresh();
      } catch (e) {
        if (!e.problems || !e.problems.length) throw e;
        $("#taskresult").innerHTML = String(html`<span class="bad">${e.message}</span>: ${e.problems.map((d) => `${d.deviceId} (${d.reason})`).join(", ")}`);
      }
    });
  }

  const notifyTypes = ["deviceDataChanged", "deviceDatasChanged", "deviceInfoChanged", "deviceAdded", "deviceDeleted", "bindDevice",
    "deviceModelAdded", "deviceModelDeleted", "deviceDesiredPropertiesModifyStatusChanged", "swUpgradeStateChangeNotify",
    "swUpgradeResultNotify", "fwUpgradeStateChangeNotify", "fwUpgradeResultNotify", "lwm2mOperationResult",
    "messageConfirm", "commandRsp", "ruleEvent"];

  Doze.views.subscriptions = {
    render(root) {
      root.innerHTML = String(html`
<section><h2>Subscriptions</h2>
  <div class="scroll"><table id="subs"><thead><tr><th>notifyType</th><th>callbackUrl</th><th>id</th><th></th></tr></thead><tbody></tbody></table></div>
  <h3>Subscribe</h3>
  <form class="grid" id="subform">
    <label>notifyType <select name="notifyType">${notifyTypes.map((n) => html`<option>${n}</option>`)}</select></label>
    <label>callback URL <input name="callbackUrl" type="url" required placeholder="http://10.0.0.5:9000/push"></label>
    <label>signing secret (optional) <input name="secret" autocomplete="off"></label>
    <label>&nbsp;<button class="primary">Subscribe</button></label>
  </form>
</section>
<section><h2>Callback endpoints</h2>
  <p class="hint">Every URL the platform has pushed to since it started, with its health.</p>
  <div class="scroll"><table id="endpoints"><thead><tr><th>endpoint</th><th>state</th><th>failures</th><th>queued</th><th>last error</th><th>last success</th></tr></thead><tbody></tbody></table></div>
</section>`);
      $("#subform").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const f = ev.target;
        await busy($("button", f), async () => {
          const body = { notifyType: f.notifyType.value, callbackUrl: f.callbackUrl.value.trim() };
          if (f.secret.value) body.secret = f.secret.value;
          await api("POST", "/iocm/app/sub/v1.2.0/subscriptions", body);
          f.secret.value = "";
          Doze.refresh();
        });
      });
      $("#subs").addEventListener("click", async (ev) => {
        const btn = ev.target.closest("button[data-unsub]");
        if (!btn) return;
        await busy(btn, () => api("DELETE", `/iocm/app/sub/v1.2.0/subscriptions/${enc(btn.dataset.unsub)}`));
        Doze.refresh();
      });
    },
    async poll() {
      const [subs, eps] = await Promise.all([api("GET", "/iocm/app/sub/v1.2.0/subscriptions?pageNo=0&pageSize=1000"), api("GET", "/doze/v1/endpoints")]);
      table($("#subs"), subs.subscriptions || [], (s) => [s.notifyType, s.callbackUrl, html`<span class="mono">${s.subscriptionId}</span>`,
        html`<button class="small" data-unsub="${s.subscriptionId}">Unsubscribe</button>`], "no subscriptions");
      table($("#endpoints"), eps || [], (e) => [e.callbackUrl, state(e.state), e.failures, e.queued, e.lastError, showTime(e.lastSuccess)], "no pushes yet");
    },
  };
})();
