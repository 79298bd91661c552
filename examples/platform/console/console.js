// Doze console: the core. Plain JavaScript, no build step; the other files
// of this folder add views to Doze.views.
//
// Login posts appId and secret in the body of the login call and keeps only
// the access token, in sessionStorage (this tab, until it closes or the
// token expires); no secret or token ever goes into a URL. The address bar
// holds only the route (#/devices, #/device/<id>, …).
//
// Polling: only the view on screen polls, every few seconds while the tab
// is visible and rarely while it is hidden; an action polls at once.
"use strict";

const Doze = (() => {
  const $ = (s, root = document) => root.querySelector(s);
  const $$ = (s, root = document) => Array.from(root.querySelectorAll(s));
  const authKey = "doze.auth";
  const pollVisible = 3000;
  const pollHidden = 60000;

  let auth = null; // {appId, token, expiresAt}
  let current = null; // {name, view, params}
  let timer = null;
  let polling = false;
  const views = {};

  function esc(v) {
    return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  // html builds markup from a template literal, escaping every value
  // unless it was itself made by html (raw).
  class Raw { constructor(s) { this.s = s; } toString() { return this.s; } }
  function html(strings, ...values) {
    let out = strings[0];
    values.forEach((v, i) => {
      if (Array.isArray(v)) out += v.map((x) => (x instanceof Raw ? x.s : esc(x))).join("");
      else out += v instanceof Raw ? v.s : esc(v);
      out += strings[i + 1];
    });
    return new Raw(out);
  }
  const raw = (s) => new Raw(s);

  // ApiError is a refused call: the HTTP status, the API's error_code and
  // error_desc, and the problems of a refused upload.
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error_desc) || "HTTP " + status);
      this.status = status;
      this.code = (body && body.error_code) || "";
      this.problems = (body && body.problems) || [];
    }
  }

  // api calls the northbound API. body is sent as JSON unless it is
  // FormData, URLSearchParams or a string. It resolves to the decoded
  // answer, with the HTTP status in result.status when asked (opts.full).
  async function api(method, path, body, opts = {}) {
    if (!auth) throw new Error("not logged in");
    const headers = { app_key: auth.appId, Authorization: "Bearer " + auth.token };
    let payload = body;
    if (body !== undefined && body !== null && !(body instanceof FormData) && !(body instanceof URLSearchParams) && typeof body !== "string") {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    } else if (typeof body === "string") {
      headers["Content-Type"] = opts.contentType || "text/plain";
    }
    const r = await fetch(path, { method, headers, body: payload ?? undefined });
    let answer = null;
    const text = await r.text();
    if (text) {
      try { answer = JSON.parse(text); } catch { answer = { error_desc: text }; }
    }
    if (r.status === 401) {
      logout("Your session ended (the token expired or the platform restarted): log in again.");
      throw new ApiError(401, answer);
    }
    if (!r.ok) throw new ApiError(r.status, answer);
    return opts.full ? { status: r.status, body: answer } : answer;
  }

  // showError shows what went wrong on the error line; a poll's success
  // clears only a poll's error, never an action's.
  let errorFrom = "";
  function showError(e, from = "action") {
    const box = $("#error");
    if (!e) {
      if (from !== "poll" || errorFrom === "poll") { box.textContent = ""; errorFrom = ""; }
      return;
    }
    errorFrom = from;
    box.textContent = e.code ? `${e.message} (${e.code})` : e.message || String(e);
  }

  function saveAuth(a) {
    auth = a;
    if (a) sessionStorage.setItem(authKey, JSON.stringify(a));
    else sessionStorage.removeItem(authKey);
  }

  async function login(appId, secret) {
    const r = await fetch("/iocm/app/sec/v1.1.0/login", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ appId, secret }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new ApiError(r.status, body);
    saveAuth({ appId, token: body.accessToken, expiresAt: Date.now() + 1000 * (body.expiresIn || 3600) });
  }

  // logout forgets the token. The API has no call that revokes a token, so
  // it stays valid on the platform until it expires; the console no longer
  // holds it anywhere.
  function logout(message) {
    saveAuth(null);
    stopPolling();
    current = null;
    $("#view").innerHTML = "";
    showSignedOut();
    if (message) $("#error").textContent = message;
  }

  function showSignedOut() {
    $("#login").hidden = false;
    $("#nav").hidden = true;
    $("#logout").hidden = true;
    $("#who").textContent = "";
    $("#login [name=secret]").value = "";
  }

  function showSignedIn() {
    $("#login").hidden = true;
    $("#nav").hidden = false;
    $("#logout").hidden = false;
    $("#who").textContent = "app " + auth.appId;
  }

  // route reads the hash: #/name/param…
  function route() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    const name = views[parts[0]] ? parts[0] : "devices";
    return { name, params: parts.slice(1) };
  }

  function go(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  }

  async function render() {
    if (!auth) return;
    const { name, params } = route();
    stopPolling();
    showError(null);
    const root = $("#view");
    root.innerHTML = "";
    root.className = "view-" + name;
    $$("#nav a").forEach((a) => a.classList.toggle("on", a.dataset.view === name || (name === "device" && a.dataset.view === "devices")));
    current = { name, view: views[name], params, root };
    try {
      await current.view.render(root, params);
    } catch (e) {
      showError(e);
    }
    schedule(0);
  }

  function stopPolling() {
    clearTimeout(timer);
    timer = null;
  }

  // schedule runs the current view's poll after delay ms, then again
  // every pollVisible ms while the tab is visible, pollHidden while not.
  function schedule(delay) {
    stopPolling();
    if (!current || !current.view.poll) return;
    const mine = current;
    timer = setTimeout(async () => {
      if (current !== mine || !auth) return;
      if (polling) { schedule(500); return; }
      polling = true;
      try {
        await mine.view.poll(mine.root, mine.params);
        if (current === mine) showError(null, "poll");
      } catch (e) {
        if (current === mine && auth) showError(e, "poll");
      } finally {
        polling = false;
      }
      if (current === mine) schedule(document.hidden ? pollHidden : pollVisible);
    }, delay);
  }

  // refresh polls the current view now (after an action).
  function refresh() { schedule(0); }

  // busy runs an action of a button or form: it disables the control
  // while the call is out and shows the error of a refused one.
  async function busy(el, fn) {
    if (el) el.disabled = true;
    try {
      showError(null);
      return await fn();
    } catch (e) {
      showError(e);
      return undefined;
    } finally {
      if (el) el.disabled = false;
    }
  }

  // Formats of the API: times are yyyyMMddTHHmmssZ in UTC.
  function parseTime(s) {
    const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(s || "");
    return m ? new Date(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : null;
  }
  function apiTime(d) {
    return d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  }
  function showTime(s) {
    const d = parseTime(s);
    if (!d) return s || "";
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  const state = (s) => html`<span class="st ${s}">${s}</span>`;

  // table renders rows into a <table>'s body, or a line saying there are none.
  // Each cell carries its column's name (data-label), which a narrow
  // screen shows beside the value when rows are stacked as cards.
  function table(el, items, cells, empty = "none") {
    const heads = $$("thead th", el).map((th) => esc(th.textContent));
    $("tbody", el).innerHTML = items.length
      ? items.map((it) => "<tr>" + cells(it).map((c, i) => `<td data-label="${heads[i] || ""}">${c instanceof Raw ? c.s : esc(c)}</td>`).join("") + "</tr>").join("")
      : `<tr><td colspan="${heads.length || 1}" class="none">${esc(empty)}</td></tr>`;
  }

  // coerce turns a form's text into the JSON value a profile data type takes.
  function coerce(text, dataType) {
    const t = String(dataType || "").toLowerCase();
    if (t === "int" || t === "long" || t === "decimal") {
      const n = Number(text);
      if (text.trim() === "" || Number.isNaN(n)) throw new Error(`"${text}" is not a number (the ${dataType} needs one)`);
      return n;
    }
    if (t === "boolean") {
      if (text !== "true" && text !== "false") throw new Error(`"${text}" is not true or false (the boolean needs one)`);
      return text === "true";
    }
    if (t === "jsonobject") return JSON.parse(text);
    return text;
  }

  // products caches the catalog, for the models of devices.
  let productCache = null;
  async function products(reload) {
    if (!productCache || reload) productCache = (await api("GET", "/doze/v1/products")).products || [];
    return productCache;
  }

  function start() {
    $("#login").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(ev.target);
      const btn = $("button", ev.target);
      await busy(btn, async () => {
        await login(String(f.get("appId")), String(f.get("secret")));
        ev.target.reset();
        showSignedIn();
        await render();
      });
    });
    $("#logout").addEventListener("click", () => logout());
    window.addEventListener("hashchange", render);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });

    // An old bookmark may carry a secret in the fragment: drop it from the
    // address bar and history without using it.
    if (/(^|[#&/])(secret|appId)=/.test(location.hash)) {
      history.replaceState(null, "", location.pathname + location.search);
      $("#error").textContent = "This address carried a secret; it was removed and not used. Log in below.";
    }
    const saved = JSON.parse(sessionStorage.getItem(authKey) || "null");
    if (saved && saved.expiresAt > Date.now()) {
      auth = saved;
      showSignedIn();
      render();
    } else {
      saveAuth(null);
      showSignedOut();
    }
  }

  return { $, $$, esc, html, raw, api, ApiError, showError, busy, go, refresh, views, start, table, state,
    parseTime, apiTime, showTime, coerce, products, get route() { return route(); } };
})();
