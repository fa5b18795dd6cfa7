// Browser vs native: POST /api/runs/{id}/compare replays a stored run's configurations on a native backend of the
// server with the same inputs; this module fills the backend/run pickers and draws the side-by-side table and chart.

import { paramText, fmtMs } from "./chart.js";

const NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function el(name, attrs = {}, text = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  return e;
}

function td(text, cls = "") {
  const c = document.createElement("td");
  c.textContent = text;
  if (cls) c.className = cls;
  return c;
}

function label(r) {
  return r.kernel === "topk" ? `TopK ${r.rows}×${r.cols} k=${r.k}` : `where ${r.shape.join("×")} ${r.case} ${r.dtype}`;
}

export async function initCompare(runs) {
  const sel = $("compare-run");
  const keep = sel.value;
  sel.replaceChildren();
  for (const run of runs) {
    const o = document.createElement("option");
    o.value = run.run_id;
    o.textContent = `${(run.created_at || "").replace("T", " ").slice(0, 19)} ${run.label || ""} (${run.source}, ${run.n_ok} ok)`;
    sel.append(o);
  }
  if (keep && runs.some((r) => r.run_id === keep)) sel.value = keep;
  const bsel = $("compare-backend");
  if (!bsel.options.length) {
    try {
      const r = await fetch("/api/backends");
      const body = await r.json();
      for (const b of body.backends) {
        const o = document.createElement("option");
        o.value = b.name;
        const dev = b.info ? (b.info.description || b.info.device || "") : "";
        o.textContent = b.available ? `${b.name}${dev ? ` — ${dev}` : ""}` : `${b.name} (unavailable: ${b.reason})`;
        o.disabled = !b.available;
        bsel.append(o);
      }
      const first = body.backends.find((b) => b.available && b.name === "wgpu") || body.backends.find((b) => b.available);
      if (first) bsel.value = first.name;
    } catch (_) { /* the compare card stays empty */ }
  }
  if (!$("compare-form").dataset.wired) {
    $("compare-form").dataset.wired = "1";
    $("compare-form").addEventListener("submit", (ev) => { ev.preventDefault(); runCompare(sel.value, bsel.value); });
  }
  $("compare").disabled = runs.length === 0;
}

export async function runCompare(runId, backend) {
  const status = $("compare-status");
  status.textContent = `Replaying on ${backend}…`;
  $("compare").disabled = true;
  try {
    const r = await fetch(`/api/runs/${encodeURIComponent(runId)}/compare?backend=${encodeURIComponent(backend)}`, { method: "POST" });
    const body = await r.json();
    if (!r.ok) throw new Error(body.detail || String(r.status));
    show(body);
    const dev = body.device ? [body.device.vendor, body.device.description || body.device.device].filter(Boolean).join(" ") : "";
    status.textContent = `${body.identical} of ${body.n} identical on ${body.backend}${dev ? ` (${dev})` : ""}` +
      (body.geomean_ratio ? ` · browser/native time ${body.geomean_ratio.toPrecision(3)}× (geomean)` : "");
    document.body.dataset.compare = "done";
  } catch (e) {
    status.textContent = `Compare failed: ${e.message}`;
    document.body.dataset.compare = "error";
  } finally {
    $("compare").disabled = false;
  }
}

function show(body) {
  const tb = $("compare-table").tBodies[0];
  tb.replaceChildren();
  for (const r of body.rows) {
    const tr = document.createElement("tr");
    tr.append(td(label(r)), td(paramText(r.params), "mono"),
      td(r.identical ? "yes" : `no${r.error ? `: ${r.error}` : ""}`, r.identical ? "st-complete" : "st-failed"),
      td(fmtMs(r.browser_ms), "num mono"), td(fmtMs(r.native_ms), "num mono"),
      td(r.ratio ? r.ratio.toPrecision(3) : "–", "num mono"), td(`${r.browser_timer || "–"} / ${r.native_timer || "–"}`));
    tb.append(tr);
  }
  drawPairs($("compare-chart"), body.rows);
}

/** One row per configuration: browser and native median time as two dots on a shared log axis. */
function drawPairs(container, rows) {
  container.replaceChildren();
  const pts = rows.filter((r) => r.browser_ms > 0 || r.native_ms > 0);
  if (!pts.length) return;
  const W = 900, rowH = 9, top = 24, left = 10, right = 10, H = top + pts.length * rowH + 24;
  const all = pts.flatMap((r) => [r.browser_ms, r.native_ms]).filter((v) => v > 0);
  const lo = Math.floor(Math.log10(Math.min(...all))), hi = Math.ceil(Math.log10(Math.max(...all)) + 1e-9);
  const x = (v) => left + (W - left - right) * (Math.log10(v) - lo) / Math.max(1, hi - lo);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "browser vs native time per configuration" });
  for (let d = lo; d <= hi; d++) {
    svg.append(el("line", { x1: x(10 ** d), x2: x(10 ** d), y1: top - 4, y2: H - 20, stroke: "#dde3ec" }));
    svg.append(el("text", { x: x(10 ** d), y: H - 6, "font-size": 10, "text-anchor": "middle", fill: "#5b6577" }, `${fmtMs(10 ** d)} ms`));
  }
  svg.append(el("circle", { cx: left + 6, cy: 10, r: 4, fill: "#4a6fdc" }), el("text", { x: left + 14, y: 13, "font-size": 10 }, "browser"));
  svg.append(el("circle", { cx: left + 76, cy: 10, r: 4, fill: "#e0672c" }), el("text", { x: left + 84, y: 13, "font-size": 10 }, "native"));
  pts.forEach((r, i) => {
    const y = top + i * rowH + rowH / 2;
    if (r.browser_ms > 0 && r.native_ms > 0) {
      svg.append(el("line", { x1: x(r.browser_ms), x2: x(r.native_ms), y1: y, y2: y, stroke: "#c3cad6" }));
    }
    if (r.browser_ms > 0) svg.append(el("circle", { cx: x(r.browser_ms), cy: y, r: 3, fill: "#4a6fdc" }));
    if (r.native_ms > 0) svg.append(el("circle", { cx: x(r.native_ms), cy: y, r: 3, fill: r.identical ? "#e0672c" : "#a3322a" }));
  });
  container.append(svg);
}
