// the page at / (automl/web/index.html): polls the API and draws the searches
"use strict";
const params = new URLSearchParams(location.search);
// seconds between polls: 0.5 to 3600 (Infinity or a huge number would overflow setInterval into no delay at all)
const asked = Number(params.get("interval"));
const INTERVAL = Number.isFinite(asked) && asked > 0 ? Math.min(3600, Math.max(0.5, asked)) : 2;
let selected = params.get("search");
document.getElementById("interval").textContent = INTERVAL;

function el(tag, attrs, ...children) {
  const node = document.createElementNS(tag === "svg" || attrs?.svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs || {})) if (k !== "svg") node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
const fmt = (v) => v === null || v === undefined ? "–" : Number(v).toPrecision(4);
const ACTIVE = ["queued", "running"];
const token = () => document.querySelector("#start [name=token]").value || sessionStorage.getItem("automl-token") || "";
const secs = (s) => s === null || s === undefined ? "–" : s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;

/* "nice" tick values over [lo, hi]: about n of them, at 1, 2 or 5 times a power of ten */
function ticks(lo, hi, n) {
  const raw = (hi - lo) / Math.max(1, n), mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/* axes with ticks and labels; returns the x and y scales */
function axes(svg, W, H, box, xr, yr, xlabel, integerX) {
  const [L, R, T, B] = box;
  const X = (x) => L + (W - L - R) * (x - xr[0]) / (xr[1] - xr[0]);
  const Y = (y) => T + (H - T - B) * (1 - (y - yr[0]) / (yr[1] - yr[0]));
  svg.append(el("line", {svg: 1, x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}),
             el("line", {svg: 1, x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"}));
  for (const v of ticks(yr[0], yr[1], 4)) {
    svg.append(el("line", {svg: 1, class: "tick", x1: L, x2: W - R, y1: Y(v), y2: Y(v)}),
               el("text", {svg: 1, class: "ytick", x: L - 4, y: Y(v) + 4, "text-anchor": "end"}, fmt(v)));
  }
  for (const v of ticks(xr[0], xr[1], 6).filter(v => !integerX || Number.isInteger(v))) {
    svg.append(el("line", {svg: 1, x1: X(v), x2: X(v), y1: H - B, y2: H - B + 4, stroke: "#999"}),
               el("text", {svg: 1, class: "xtick", x: X(v), y: H - B + 15, "text-anchor": "middle"}, v));
  }
  svg.append(el("text", {svg: 1, x: (L + W - R) / 2, y: H - 2, "text-anchor": "middle"}, xlabel));
  return [X, Y];
}

async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store"});
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

function renderSearches(rows) {
  const body = document.querySelector("#searches tbody");
  body.replaceChildren();
  document.getElementById("empty").hidden = rows.length > 0;
  for (const s of rows) {
    const req = s.request || {};
    const pct = Math.round(100 * (s.progress.fraction || 0));
    const fill = el("span", {});
    fill.style.width = `${pct}%`;  // the CSSOM, not a style attribute: the page's CSP has no 'unsafe-inline'
    const bar = el("span", {class: "bar", title: `${pct}%`}, fill);
    const tr = el("tr", {class: "search" + (s.id === selected ? " selected" : ""), "data-id": s.id, "data-state": s.state},
      el("td", {}, el("code", {}, s.id)),
      el("td", {}, `${req.space ?? "?"} · ${req.dataset ?? "?"} · ${req.pruner ?? "?"}${req.failure ? " +failure" : ""}${req.converge ? " +converge" : ""}`),
      el("td", {class: `state-${s.state}`, title: s.error || ""}, s.state + (s.queue_position ? ` (#${s.queue_position} in line)` : "")),
      el("td", {class: "progress"}, bar, ` ${s.progress.finished}/${s.progress.requested}`),
      el("td", {class: "best"}, s.best ? `${fmt(s.best.value)} (trial ${s.best.number})` : "–"),
      el("td", {}, ACTIVE.includes(s.state) ? cancelButton(s.id) : ""));
    tr.addEventListener("click", () => { selected = s.id; refresh(); });
    body.append(tr);
  }
}

function renderPlot(doc) {
  const svg = document.getElementById("plot");
  svg.replaceChildren();
  const W = 480, H = 260;
  const maximize = doc.direction === "maximize";
  const pts = doc.leaderboard.filter(r => r.value !== null && (r.state === "COMPLETE" || r.state === "PRUNED"))
                             .sort((a, b) => a.number - b.number);
  const done = pts.filter(r => r.state === "COMPLETE");
  if (!done.length) { svg.append(el("text", {svg: 1, x: 56, y: H / 2}, "no finished trial yet")); return; }
  const xs = doc.leaderboard.map(r => r.number), vs = pts.map(r => r.value);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...vs), y1 = Math.max(...vs);
  if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
  const [X, Y] = axes(svg, W, H, [56, 12, 10, 32], [x0, x1], [y0, y1], "trial", true);
  for (const r of pts) {
    svg.append(el("circle", {svg: 1, class: `trial ${r.state}`, cx: X(r.number).toFixed(1), cy: Y(r.value).toFixed(1), r: 3,
                             fill: r.state === "COMPLETE" ? "#1a6" : "#d9a441"}, el("title", {svg: 1}, `trial ${r.number}: ${fmt(r.value)} (${r.state})`)));
  }
  let best = null, path = [];
  for (const r of done) {
    if (best === null || (maximize ? r.value > best : r.value < best)) best = r.value;
    path.push(`${X(r.number).toFixed(1)},${Y(best).toFixed(1)}`);
  }
  path.push(`${X(x1).toFixed(1)},${Y(best).toFixed(1)}`);
  svg.append(el("polyline", {svg: 1, id: "best-line", points: path.join(" "), fill: "none", stroke: "#3b7ddd", "stroke-width": 2}));
}

/* every trial's curve over epochs; a cross where a pruner stopped one, with its reason */
function renderCurves(doc) {
  const svg = document.getElementById("curves");
  svg.replaceChildren();
  const W = 640, H = 260;
  const rows = doc.leaderboard.filter(r => (r.curve || []).some(p => p[1] !== null));
  if (!rows.length) { svg.append(el("text", {svg: 1, x: 56, y: H / 2}, "no epoch reported yet")); return; }
  const values = rows.flatMap(r => r.curve.filter(p => p[1] !== null).map(p => p[1]));
  const last = Math.max(doc.budget || 1, ...rows.flatMap(r => r.curve.map(p => p[0])));
  let y0 = Math.min(...values), y1 = Math.max(...values);
  if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
  const [X, Y] = axes(svg, W, H, [56, 70, 10, 32], [1, Math.max(2, last)], [y0, y1], "epoch", true);
  const order = ["FAIL", "COMPLETE", "PRUNED", "RUNNING"];  // running drawn last, on top
  for (const r of [...rows].sort((a, b) => order.indexOf(a.state) - order.indexOf(b.state))) {
    const pts = r.curve.filter(p => p[1] !== null);
    const line = el("polyline", {svg: 1, class: `curve ${r.state}`, "data-number": r.number,
                                 points: pts.map(p => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ")},
                    el("title", {svg: 1}, `trial ${r.number} (${r.state}): ${fmt(pts[pts.length - 1][1])} at epoch ${pts[pts.length - 1][0]}`));
    svg.append(line);
    const [ex, ev] = pts[pts.length - 1];
    if (r.state === "PRUNED" || r.stopped_at) {
      const cx = X(ex), cy = Y(ev), d = 4;
      svg.append(el("path", {svg: 1, class: "stop", "data-number": r.number, d: `M${cx - d},${cy - d}L${cx + d},${cy + d}M${cx - d},${cy + d}L${cx + d},${cy - d}`},
                    el("title", {svg: 1}, `trial ${r.number} stopped at epoch ${r.stopped_at ?? ex}: ${r.reason || r.state}`)));
    } else if (r.state === "RUNNING") {
      svg.append(el("circle", {svg: 1, class: "current", "data-number": r.number, cx: X(ex), cy: Y(ev), r: 3.5, fill: "#3b7ddd"}),
                 el("text", {svg: 1, class: "current-label", x: X(ex) + 6, y: Y(ev) + 4}, `#${r.number} ${fmt(ev)} (epoch ${ex})`));
    }
  }
}

function renderDetail(doc) {
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-id").textContent = doc.id;
  document.getElementById("detail-metric").textContent = `${doc.metric ?? "value"} (${doc.direction ?? "?"})`;
  const e = doc.epochs || {used: 0, full: 0};
  document.getElementById("saving").textContent = e.full
    ? `${e.used} of ${e.full} epochs spent (${Math.round(100 * e.used / e.full)}% of every trial running its full ${doc.budget} epochs): ${e.full - e.used} saved`
    : "";
  renderCurves(doc);
  renderPlot(doc);
  const body = document.querySelector("#trials tbody");
  body.replaceChildren();
  for (const r of doc.leaderboard) {
    const p = Object.entries(r.params).map(([k, v]) => `${k}=${typeof v === "number" && !Number.isInteger(v) ? Number(v).toPrecision(3) : v}`).join(" ");
    const now = r.state === "RUNNING" && r.curve && r.curve.length ? ` (now ${fmt(r.curve[r.curve.length - 1][1])})` : "";
    body.append(el("tr", {class: "trial-row", "data-number": r.number},
      el("td", {}, r.number), el("td", {class: r.state}, r.state), el("td", {}, fmt(r.value) + now),
      el("td", {}, doc.budget ? `${r.epochs}/${doc.budget}` : r.epochs), el("td", {class: "duration"}, secs(r.duration_s)),
      el("td", {class: "muted"}, p), el("td", {class: "reason"}, r.reason || "")));
  }
}

function cancelButton(id) {
  const b = el("button", {type: "button", class: "cancel", "data-id": id}, "cancel");
  b.addEventListener("click", async (ev) => {
    ev.stopPropagation();
    const r = await fetch(`/v1/searches/${encodeURIComponent(id)}`, {method: "DELETE", headers: {Authorization: `Bearer ${token()}`}});
    document.getElementById("start-message").textContent = r.ok ? `search ${id} cancelled` :
      `cancel refused (HTTP ${r.status}): ${r.status === 401 || r.status === 503 ? "enter the API token above" : (await r.text()).slice(0, 200)}`;
    refresh();
  });
  return b;
}

document.getElementById("start").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target), msg = document.getElementById("start-message");
  if (f.get("token")) sessionStorage.setItem("automl-token", f.get("token"));  // entered once per tab
  const body = {space: f.get("space"), dataset: f.get("dataset"), trials: Number(f.get("trials")),
                epochs: Number(f.get("epochs")), pruner: f.get("pruner")};
  const r = await fetch("/v1/searches", {method: "POST", body: JSON.stringify(body),
                                         headers: {"Content-Type": "application/json", Authorization: `Bearer ${token()}`}});
  const doc = await r.json().catch(() => ({}));
  if (r.ok) { selected = doc.id; msg.textContent = `started search ${doc.id}`; refresh(); }
  else msg.textContent = `not started (HTTP ${r.status}): ${doc.detail ? JSON.stringify(doc.detail).slice(0, 300) : ""}`;
});
document.querySelector("#start [name=token]").value = sessionStorage.getItem("automl-token") || "";

async function refresh() {
  try {
    const rows = (await getJSON("/v1/searches?order=newest&limit=100")).reverse();  // the newest 100, oldest of them first
    if (!selected && rows.length) selected = rows[rows.length - 1].id;
    const detail = selected ? await getJSON(`/v1/searches/${encodeURIComponent(selected)}`) : null;
    // draw both only once both answers are in, so the list and the trials never disagree
    renderSearches(rows);
    if (detail) renderDetail(detail);
    document.getElementById("error").textContent = "";
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    document.getElementById("error").textContent = `could not refresh: ${e.message}`;
  }
}
refresh();
setInterval(refresh, INTERVAL * 1000);
