// Doze console: a time-series chart in hand-written SVG, with a time axis,
// a value axis with the unit, and a tooltip for the point nearest the
// pointer.
"use strict";

Doze.chart = (() => {
  const { esc } = Doze;
  const ns = "http://www.w3.org/2000/svg";
  const m = { l: 52, r: 12, t: 10, b: 26 };
  const minute = 60e3, hour = 60 * minute, day = 24 * hour;
  const steps = [minute, 5 * minute, 15 * minute, 30 * minute, hour, 3 * hour, 6 * hour, 12 * hour, day, 2 * day];

  // niceTicks returns about n round values from at or below lo to at or
  // above hi; a single value gets a tick either side.
  function niceTicks(lo, hi, n) {
    if (hi - lo < 1e-9) { const d = Math.abs(hi) / 10 || 1; lo -= d; hi += d; }
    const raw = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw);
    const out = [];
    const first = Math.floor(lo / step), last = Math.ceil(hi / step);
    for (let k = first; k <= last; k++) out.push(+(k * step).toPrecision(12));
    return out;
  }

  const pad = (n) => String(n).padStart(2, "0");
  function timeLabel(t, step) {
    const d = new Date(t);
    if (step >= day) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  function fullTime(t) {
    const d = new Date(t);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function number(v) {
    return Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : String(+v.toFixed(3));
  }

  // draw renders points [[Date, value]…] (oldest first) into box, over the
  // time range [from, to] (Dates; null takes the data's extent).
  function draw(box, points, opts = {}) {
    const unit = opts.unit || "";
    box.classList.add("chart");
    const w = Math.max(240, box.clientWidth || 400), h = 220;
    if (points.length === 0) {
      box.innerHTML = `<svg viewBox="0 0 ${w} ${h}"><text x="${w / 2}" y="${h / 2}" text-anchor="middle" fill="#7a8394">no values in this range</text></svg>`;
      return;
    }
    const ts = points.map((p) => p[0].getTime());
    const vs = points.map((p) => p[1]);
    let x0 = opts.from ? opts.from.getTime() : Math.min(...ts);
    let x1 = opts.to ? opts.to.getTime() : Math.max(...ts);
    if (x1 - x0 < minute) { x0 -= minute / 2; x1 += minute / 2; }
    const yt = niceTicks(Math.min(...vs), Math.max(...vs), 4);
    const y0 = yt[0], y1 = yt[yt.length - 1];
    const X = (t) => m.l + ((t - x0) * (w - m.l - m.r)) / (x1 - x0);
    const Y = (v) => h - m.b - ((v - y0) * (h - m.t - m.b)) / (y1 - y0);
    const maxTicks = Math.max(2, Math.floor((w - m.l - m.r) / 70));
    const step = steps.find((s) => (x1 - x0) / s <= maxTicks) || day * Math.ceil((x1 - x0) / day / maxTicks);
    const xt = [];
    const off = new Date().getTimezoneOffset() * minute; // round ticks in local time
    for (let t = Math.ceil((x0 - off) / step) * step + off; t <= x1; t += step) xt.push(t);

    let s = `<svg xmlns="${ns}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(opts.label || "history")}">`;
    s += `<g class="grid">${yt.map((v) => `<line x1="${m.l}" x2="${w - m.r}" y1="${Y(v)}" y2="${Y(v)}"/>`).join("")}</g>`;
    s += `<g class="axis y">${yt.map((v) => `<text x="${m.l - 4}" y="${Y(v) + 3}" text-anchor="end">${esc(number(v))}</text>`).join("")}`;
    s += `<text class="unit" x="4" y="${m.t + 2}" dominant-baseline="hanging" transform="rotate(-90 4 ${m.t + 2})" text-anchor="end">${esc(unit)}</text></g>`;
    s += `<g class="axis x"><line x1="${m.l}" x2="${w - m.r}" y1="${h - m.b}" y2="${h - m.b}"/>`;
    s += xt.map((t) => `<line x1="${X(t)}" x2="${X(t)}" y1="${h - m.b}" y2="${h - m.b + 4}"/><text x="${X(t)}" y="${h - m.b + 15}" text-anchor="middle">${timeLabel(t, step)}</text>`).join("");
    s += `</g>`;
    const xy = points.map((p) => [X(p[0].getTime()), Y(p[1])]);
    s += `<polyline fill="none" stroke="#2f6fdb" stroke-width="1.8" points="${xy.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ")}"/>`;
    if (points.length <= 300) {
      s += `<g class="points">${xy.map((p, i) => `<circle cx="${p[0].toFixed(1)}" cy="${p[1].toFixed(1)}" r="2.5" fill="#2f6fdb"><title>${esc(fullTime(ts[i]))}: ${esc(number(vs[i]))} ${esc(unit)}</title></circle>`).join("")}</g>`;
    }
    s += `<circle class="focus" r="4.5" fill="none" stroke="#1d2430" stroke-width="1.5" visibility="hidden"/>`;
    s += `</svg><div class="tip" hidden></div>`;
    box.innerHTML = s;

    const svg = box.querySelector("svg"), tip = box.querySelector(".tip"), focus = box.querySelector(".focus");
    const show = (ev) => {
      const r = svg.getBoundingClientRect();
      const px = ((ev.clientX - r.left) * w) / r.width;
      let best = 0;
      xy.forEach((p, i) => { if (Math.abs(p[0] - px) < Math.abs(xy[best][0] - px)) best = i; });
      focus.setAttribute("cx", xy[best][0]);
      focus.setAttribute("cy", xy[best][1]);
      focus.setAttribute("visibility", "visible");
      tip.hidden = false;
      tip.textContent = `${fullTime(ts[best])} · ${number(vs[best])}${unit ? " " + unit : ""}`;
      const left = (xy[best][0] * r.width) / w;
      tip.style.left = Math.min(Math.max(0, left - tip.offsetWidth / 2), r.width - tip.offsetWidth) + "px";
      tip.style.top = Math.max(0, (xy[best][1] * r.height) / h - 30) + "px";
    };
    svg.addEventListener("mousemove", show);
    svg.addEventListener("touchstart", (ev) => show(ev.touches[0]), { passive: true });
    svg.addEventListener("mouseleave", () => { tip.hidden = true; focus.setAttribute("visibility", "hidden"); });
  }

  return { draw };
})();
