// A strip chart of median times (inline SVG, no libraries): one column per shape, one dot per configuration on a
// log-scaled time axis, the best configuration of each shape highlighted and labelled.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  return e;
}

export function groupKey(m) {
  return m.kernel === "topk" ? `TopK ${m.rows}×${m.cols} k=${m.k}` : `where ${m.shape.join("×")} ${m.case} ${m.dtype}`;
}

/** A shape group's label in two short lines, to sit under its column. */
export function groupLines(m) {
  return m.kernel === "topk" ? [`TopK ${m.rows}×${m.cols}`, `k=${m.k}`]
    : [`where ${m.shape.join("×")}`, `${m.case} ${m.dtype === "float32" ? "f32" : "i32"}`];
}

export function paramText(p) {
  return Object.entries(p).map(([k, v]) => `${k}=${v === true ? "T" : v === false ? "F" : v}`).join(" ");
}

/** Draws measurements into `container` (replacing what was there), `width` px wide at most (reading the container's
 *  clientWidth lays the page out first: during a run, pass a width read once). */
export function drawChart(container, measurements, width = container.clientWidth) {
  container.replaceChildren();
  const ok = measurements.filter((m) => m.ok && m.median_ms > 0);
  if (!ok.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "No timed configurations yet.";
    container.append(p);
    return;
  }
  const groups = new Map();
  for (const m of ok) {
    const g = groupKey(m);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(m);
  }
  const names = [...groups.keys()];
  const left = 64, top = 28, plotH = 260, bottom = 50;
  const avail = (width || 900) - left - 16;   // fit the card; scroll sideways past 84 px a column
  const colW = Math.max(84, Math.min(150, avail / names.length));
  const svgW = left + colW * names.length + 16, height = top + plotH + bottom;
  let lo = Math.min(...ok.map((m) => m.median_ms)), hi = Math.max(...ok.map((m) => m.median_ms));
  let l0 = Math.floor(Math.log10(lo)), l1 = Math.ceil(Math.log10(hi));
  if (l1 === l0) l1 += 1;
  const y = (v) => top + plotH - ((Math.log10(v) - l0) / (l1 - l0)) * plotH;
  const svg = el("svg", { viewBox: `0 0 ${svgW} ${height}`, width: svgW, height, role: "img",
                          "aria-label": "median time per configuration, log scale" });
  for (let e = l0; e <= l1; e++) {
    const yy = y(10 ** e);
    svg.append(el("line", { x1: left, x2: svgW - 8, y1: yy, y2: yy, class: "grid-major" }));
    svg.append(el("text", { x: left - 6, y: yy + 4, class: "axis", "text-anchor": "end" }, fmtMs(10 ** e)));
    if (e < l1) for (const f of [2, 5]) {
      const ym = y(f * 10 ** e);
      svg.append(el("line", { x1: left, x2: svgW - 8, y1: ym, y2: ym, class: "grid-minor" }));
    }
  }
  svg.append(el("text", { x: 12, y: top + plotH / 2, class: "axis", transform: `rotate(-90 12 ${top + plotH / 2})`,
                          "text-anchor": "middle" }, "median ms"));
  names.forEach((name, gi) => {
    const ms = groups.get(name);
    const cx = left + colW * gi + colW / 2;
    if (gi % 2 === 0) svg.append(el("rect", { x: left + colW * gi, y: top, width: colW, height: plotH, class: "band" }));
    const best = ms.reduce((a, b) => (b.median_ms < a.median_ms ? b : a));
    ms.forEach((m, i) => {
      const jitter = ((i * 37) % 21 - 10) / 10 * (colW * 0.3);
      const isBest = m === best;
      const dot = el("circle", { cx: cx + (isBest ? 0 : jitter), cy: y(m.median_ms), r: isBest ? 5.5 : 3,
                                 class: isBest ? "dot best" : `dot ${dotClass(m)}` });
      dot.append(el("title", {}, `${name}\n${paramText(m.params)}\nmedian ${fmtMs(m.median_ms)} ms`));
      if (!isBest) svg.append(dot);
    });
    const bdot = el("circle", { cx, cy: y(best.median_ms), r: 5.5, class: "dot best" });
    bdot.append(el("title", {}, `best for ${name}\n${paramText(best.params)}\nmedian ${fmtMs(best.median_ms)} ms`));
    svg.append(bdot);
    svg.append(el("text", { x: cx + 8, y: y(best.median_ms) + 4, class: "best-label" }, fmtMs(best.median_ms)));
    groupLines(ms[0]).forEach((line, li) => {
      svg.append(el("text", { x: cx, y: top + plotH + 16 + li * 13, class: li ? "axis" : "axis group-label",
                              "text-anchor": "middle" }, line));
    });
  });
  svg.append(el("rect", { x: left, y: top, width: svgW - left - 8, height: plotH, class: "frame" }));
  let lx = left;
  const legend = [["topk1", "TopK 1CE / where direct"], ["topk2", "TopK 2CE / where segmented"],
                  ...(measurements.some((m) => m.kernel === "topk" && m.params.radix) ? [["radix", "TopK radix"]] : []),
                  ["best", "best of shape"]];
  for (const [cls, text] of legend) {
    svg.append(el("circle", { cx: lx + 5, cy: 12, r: cls === "best" ? 5 : 4, class: `dot ${cls}` }));
    svg.append(el("text", { x: lx + 14, y: 16, class: "legend" }, text));
    lx += 30 + text.length * 6;
  }
  container.append(svg);
}

/** A dot's class by pipeline: TopK 1CE, 2CE or radix; where_nd's path. */
function dotClass(m) {
  if (m.kernel !== "topk") return m.params.path;
  return m.params.radix ? "radix" : m.params.use_2ce ? "topk2" : "topk1";
}

export function fmtMs(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  if (v >= 0.01) return v.toFixed(3);
  return v.toExponential(1);
}

export const TOPK_REGRET_SERIES = [["heldout_regret", "tuned (held out)", "#4a6fdc"],
                                   ["default_regret", "fixed default", "#9aa5b8"],
                                   ["stcore_regret", "st-core fallback", "#e0672c"]];
export const WHERE_REGRET_SERIES = TOPK_REGRET_SERIES.slice(0, 2);
/** where_nd runs with kernel times: the kernel time alone over the fastest kernel of the same path. */
export const WHERE_KERNEL_SERIES = [["heldout_kernel_regret", "tuned kernel (held out)", "#2f9e6e"],
                                    ["default_kernel_regret", "fixed default kernel", "#c9b458"]];

/** The quality report as grouped bars: per row (a measured TopK shape or where_nd case), the regret (chosen time /
 *  fastest time, 1 = perfect) of each series, e.g. the tuned pick fitted without that shape, the fixed default and
 *  st-core's fallback rule; log scale. `label(row)` names a group; with many groups only some are labelled, and
 *  every bar carries its value as a tooltip. */
export function drawRegretChart(container, rows, series = TOPK_REGRET_SERIES, label = (r) => r.shape) {
  container.replaceChildren();
  const vals = rows.flatMap((s) => series.map(([k]) => s[k]).filter((v) => v > 0));
  if (!vals.length) return;
  const W = 900, H = 220, left = 44, right = 10, top = 26, bottom = 44;
  const hi = Math.max(2, ...vals);
  const y = (v) => top + (H - top - bottom) * (1 - Math.log(v) / Math.log(hi));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
                          "aria-label": `regret per row: ${series.map(([, n]) => n).join(", ")}` });
  for (const t of [1, 1.25, 2, 4, 8, 16, 32, 64].filter((t) => t <= hi)) {
    svg.append(el("line", { x1: left, x2: W - right, y1: y(t), y2: y(t), stroke: t === 1 ? "#8a94a6" : "#e3e8ef" }));
    svg.append(el("text", { x: left - 4, y: y(t) + 3, "font-size": 10, "text-anchor": "end", fill: "#5b6577" }, `${t}x`));
  }
  const gw = (W - left - right) / rows.length, bw = Math.max(1, Math.min(18, gw / (series.length + 1)));
  const widest = Math.max(...rows.map((r) => String(label(r)).length)) * 6 + 8;   // px at font-size 10
  const every = Math.max(1, Math.ceil(widest / gw));     // label every n-th group, so labels never overlap
  rows.forEach((s, i) => {
    const x0 = left + i * gw + gw / 2 - (bw * series.length) / 2;
    series.forEach(([k, name, color], j) => {
      const v = s[k];
      if (!(v > 0)) return;
      const bar = el("rect", { x: x0 + j * bw, y: y(v), width: Math.max(0.5, bw - (bw > 3 ? 2 : 0)),
                               height: Math.max(1, y(1) - y(v)), fill: color });
      bar.append(el("title", {}, `${label(s)}: ${name} ${v.toFixed(3)}`));
      svg.append(bar);
    });
    if (i % every === 0) {
      svg.append(el("text", { x: left + i * gw + gw / 2, y: H - bottom + 14, "font-size": 10,
                              "text-anchor": every > 1 ? "start" : "middle", fill: "#3b4556" }, label(s)));
    }
  });
  series.forEach(([, name, color], j) => {
    svg.append(el("rect", { x: left + j * 140, y: 6, width: 10, height: 10, fill: color }));
    svg.append(el("text", { x: left + j * 140 + 14, y: 15, "font-size": 10, fill: "#3b4556" }, name));
  });
  container.append(svg);
}
