// Wires the page: adapter card, search-space controls, the run with its live table and chart, posting the run
// document, downloads, the quality report and the list of stored runs. Server and adapter text goes in with
// textContent only.

import { loadSpace, getSpace } from "./space.js";
import { openGpu, isCpuAdapter, webgpuMissingReason } from "./gpu.js";
import { Tuner, phaseText, plan } from "./tuner.js";
import { drawChart, drawRegretChart, groupKey, paramText, fmtMs, WHERE_KERNEL_SERIES, WHERE_REGRET_SERIES }
  from "./chart.js";
import { initCompare } from "./compare.js";
import { clockGuardWanted, parseCanary, Timer, MIN_QUANTA } from "./timing.js";
import { KeptRun, adapterKey, forget, keptRuns } from "./resume.js";

const $ = (id) => document.getElementById(id);
const state = { gpu: null, space: null, tuner: null, presetDirty: false, resumable: null };
window.__tuner = { runId: null, results: [], done: false, error: null, total: 0,
                  // test hook: destroys the device as a driver reset would, to exercise loss recovery
                  loseDevice: () => state.gpu && state.gpu.device.destroy() };

function setState(s, text) {
  document.body.dataset.state = s;
  if (text !== undefined) $("status").textContent = text;
  $("status").dataset.state = s;
}

function node(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function link(href, text) {
  const a = node("a", text);
  a.href = href;
  return a;
}

// -- adapter --------------------------------------------------------------------------------------------------
function showAdapter(gpu) {
  const body = $("adapter-body");
  body.replaceChildren();
  body.classList.remove("muted");
  const dl = node("dl", null, "kv");
  const add = (k, v, cls) => { dl.append(node("dt", k)); dl.append(node("dd", v || "–", cls)); };
  add("Vendor", gpu.info.vendor);
  add("Architecture", gpu.info.architecture);
  add("Device", gpu.info.device);
  add("Description", gpu.info.description);
  add("Kind", isCpuAdapter(gpu.info, gpu.adapter) ? "CPU / software adapter (quick preset suggested)" : "hardware adapter");
  const feats = node("dd");
  for (const f of ["timestamp-query", "subgroups"]) {
    const has = gpu.features.includes(f);
    feats.append(node("span", `${has ? "✓" : "✗"} ${f}`, `badge ${has ? "yes" : "no"}`));
  }
  if (gpu.subgroupSizes.length) feats.append(node("span", `subgroup size ${gpu.subgroupSizes[0]}–${gpu.subgroupSizes[1]}`, "badge"));
  dl.append(node("dt", "Features"), feats);
  const lim = node("dd", null, "limits");
  for (const [k, v] of Object.entries(gpu.limits)) lim.append(node("span", `${k} ${v.toLocaleString("en-US")}`, "mono limit"));
  dl.append(node("dt", "Limits"), lim);
  const opts = timerOptionsFromUrl();
  const kind = gpu.timestamps && !opts.wall ? "timestamp" : "wall";
  add("Timer", (kind === "timestamp" ? "GPU timestamps (timestamp-query)" : gpu.timestamps ? "wall clock (?timer=wall)"
    : "wall clock (no timestamp-query)") + (clockGuardWanted(gpu, kind, opts.clockGuard) ? ", clock guard on" : ""));
  if (kind === "timestamp") {
    dl.append(node("dt", "Timestamps"));
    dl.append(node("dd", "checking whether they are rounded…"));
    dl.lastChild.id = "timestamps-note";
  }
  body.append(dl);
}

const msText = (ns) => ns >= 1e6 ? `${(ns / 1e6).toLocaleString("en-US", { maximumFractionDigits: 2 })} ms` : usText(ns);
const usText = (ns) => `${(ns / 1000).toLocaleString("en-US", { maximumFractionDigits: 1 })} µs`;

/** Whether this device's timestamps look rounded (Chrome rounds them to 100 µs unless its WebGPU developer
 *  features are on; ?quantize=NS simulates it), and what the tuner does about it, on the adapter card. */
async function showTimestamps(gpu) {
  const note = $("timestamps-note");
  if (!note) return;
  const timer = new Timer(gpu, timerOptionsFromUrl());
  let probe = null;
  try {
    probe = await timer.probeQuantum();
  } catch (e) {
    note.textContent = `could not be checked: ${e.message}`;
  } finally {
    timer.destroy();
  }
  window.__tuner.timestamps = probe;     // test and bench/browser_gpu.py hook
  if (!probe) return;
  note.dataset.quantumNs = String(probe.quantum_ns);
  const simulated = timerOptionsFromUrl().simulateQuantumNs;
  if (probe.quantum_ns) {
    note.replaceChildren(node("span", `rounded to ${usText(probe.quantum_ns)}`, "badge no"), node("span",
      (simulated ? ` (simulated: ?quantize=${simulated}).` : "") +
      ` A kernel shorter than that reads as 0 or one quantum, so the tuner times N copies of a configuration between ` +
      `one pair of timestamps, N raised until a sample spans at least ${MIN_QUANTA} quanta ` +
      `(${msText(MIN_QUANTA * probe.quantum_ns)}), and divides by N.`));
  } else {
    note.replaceChildren(node("span", "not rounded", "badge yes"), node("span",
      ` (intervals of ${probe.deltas_ns.map((d) => usText(d)).join(", ")}): each sample is at least 0.5 ms of GPU time.`));
  }
}

/** After a run: how many of its timestamp measurements saw rounded timestamps, and with how many chains. */
function showRunTimestamps(ms) {
  const note = $("timestamps-note");
  if (!note) return;
  // where_nd: its kernel_ms is the part timed on timestamps (its median_ms is a call's wall-clock time)
  const rounded = ms.filter((m) => m.quantum_ns > 0 && (m.timer === "timestamp" || Number.isFinite(m.kernel_ms)));
  note.querySelector(".run-note")?.remove();
  if (!rounded.length) return;
  const chains = rounded.map((m) => m.chains || 1).sort((a, b) => a - b);
  note.append(node("span", ` This run: ${rounded.length} of ${ms.length} configurations timed on rounded ` +
    `timestamps, ${chains[0]}–${chains[chains.length - 1]} copies per sample (median ${chains[chains.length >> 1]}).`,
  "run-note"));
}

function showMissing(reason) {
  $("adapter-body").textContent = "No WebGPU adapter: the tuner cannot run in this browser.";
  $("webgpu-missing").hidden = false;
  $("webgpu-missing-reason").textContent = reason;
  $("adapter-card").dataset.ready = "missing";
  $("run").disabled = true;
  refreshCount();
  $("run").disabled = true;
  setState("error", "WebGPU unavailable: Run is disabled");
}

// -- space controls -------------------------------------------------------------------------------------------
const listText = (xs) => xs.map(String).join(", ");

function fillFromPreset(name) {
  const p = getSpace().presets[name];
  if (!p) return;
  $("topk-shapes").value = p.topk.shapes.map(([r, c, k]) => `${r}x${c}:${k}`).join(", ");
  const radix = p.topk.params.radix || [false];
  $("p-1ce").checked = p.topk.params.use_2ce.includes(false) && radix.includes(false);
  $("p-2ce").checked = p.topk.params.use_2ce.includes(true);
  $("p-radix").checked = radix.includes(true);
  for (const n of ["wg", "kl", "ch", "sg", "ls", "rb", "rch"]) {
    $(`topk-${n}`).value = listText(p.topk.params[n] || [getSpace().topk.default[n]]);
  }
  $("where-on").checked = !!p.where_nd;
  if (p.where_nd) {
    $("where-shapes").value = p.where_nd.shapes.map((s) => s.join("x")).join("; ");
    for (const cb of $("where-cases").querySelectorAll("input")) cb.checked = p.where_nd.cases.includes(cb.value);
    for (const cb of $("where-dtypes").querySelectorAll("input")) cb.checked = (p.where_nd.dtypes || ["float32"]).includes(cb.value);
    for (const n of ["path", "wg", "vpt"]) $(`where-${n}`).value = listText(p.where_nd.params[n]);
  }
  $("repeats").value = p.repeats;
  $("warmups").value = p.warmups;
  $("seed").value = p.seed;
  state.presetDirty = false;
}

function parseList(text, kernel, name) {
  const allowed = getSpace()[kernel].params[name].values;
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  if (!parts.length) throw new Error(`${kernel} ${name}: give at least one value (allowed: ${allowed.join(", ")})`);
  return [...new Set(parts.map((t) => {
    const v = typeof allowed[0] === "boolean" ? (t === "true" ? true : t === "false" ? false : t)
      : typeof allowed[0] === "number" ? Number(t) : t;
    if (!allowed.includes(v)) throw new Error(`${kernel} ${name}: ${JSON.stringify(t)} is not allowed; allowed: ${allowed.join(", ")}`);
    return v;
  }))];
}

function parseTopkShapes(text) {
  const b = getSpace().topk.bounds;
  return text.split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^(\d+)\s*[x×]\s*(\d+)\s*:\s*(\d+)$/.exec(s);
    if (!m) throw new Error(`TopK shape ${JSON.stringify(s)}: write rows x cols : k, e.g. 4x1024:8`);
    const [r, c, k] = m.slice(1).map(Number);
    if (r < b.rows[0] || r > b.rows[1]) throw new Error(`TopK shape ${s}: rows must be in ${b.rows.join("..")}`);
    if (c < b.cols[0] || c > b.cols[1]) throw new Error(`TopK shape ${s}: cols must be in ${b.cols.join("..")}`);
    if (k < b.k[0] || k > Math.min(c, b.k[1])) throw new Error(`TopK shape ${s}: k must be in 1..min(cols, ${b.k[1]})`);
    return [r, c, k];
  });
}

function parseWhereShapes(text) {
  const [lo, hi] = getSpace().where_nd.bounds.ndim;
  return text.split(/[;,]/).map((s) => s.trim()).filter(Boolean).map((s) => {
    const dims = s.split(/[x×]/).map((t) => Number(t.trim()));
    if (dims.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`where_nd shape ${JSON.stringify(s)}: write dims like 4x64x256`);
    if (dims.length < lo || dims.length > hi) throw new Error(`where_nd shape ${s}: ${lo}..${hi} dimensions`);
    return dims;
  });
}

/** The pipelines checked as values of use_2ce and radix (a radix configuration has use_2ce = false). */
function pipelineValues() {
  const [one, two, radix] = ["p-1ce", "p-2ce", "p-radix"].map((id) => $(id).checked);
  if (!one && !two && !radix) throw new Error("choose at least one pipeline (1CE, 2CE or radix)");
  if (two && radix && !one) {
    throw new Error("2CE and radix without 1CE are not a space of parameter values (radix configurations have " +
                    "use_2ce = false, so 1CE comes with them): check 1CE too, or run them one after the other");
  }
  return { use_2ce: [...(one || radix ? [false] : []), ...(two ? [true] : [])],
           radix: [...(one || two ? [false] : []), ...(radix ? [true] : [])] };
}

/** The space the controls describe, as it goes into the run document. */
function specFromControls() {
  const pipes = pipelineValues();
  const list = (n) => parseList($(`topk-${n}`).value, "topk", n);
  const spec = {
    topk: { shapes: parseTopkShapes($("topk-shapes").value),
            params: { use_2ce: pipes.use_2ce, wg: list("wg"), kl: list("kl"), ch: list("ch"), sg: list("sg"),
                      ls: list("ls"), radix: pipes.radix, rb: list("rb"), rch: list("rch") } },
  };
  if ($("where-on").checked) {
    const checked = (id) => [...$(id).querySelectorAll("input:checked")].map((c) => c.value);
    spec.where_nd = { shapes: parseWhereShapes($("where-shapes").value), cases: checked("where-cases"),
                      dtypes: checked("where-dtypes"),
                      params: { path: parseList($("where-path").value, "where_nd", "path"),
                                wg: parseList($("where-wg").value, "where_nd", "wg"),
                                vpt: parseList($("where-vpt").value, "where_nd", "vpt") } };
    if (!spec.where_nd.cases.length) throw new Error("where_nd: choose at least one case");
    if (!spec.where_nd.dtypes.length) throw new Error("where_nd: choose at least one dtype");
  }
  const int = (id, lo, hi, what) => {
    const v = Number($(id).value);
    if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`${what} must be an integer in ${lo}..${hi}`);
    return v;
  };
  spec.repeats = int("repeats", 1, 1000, "repeats");
  spec.warmups = int("warmups", 0, 100, "warm-ups");
  spec.seed = int("seed", 0, 4294967295, "seed");
  return spec;
}

function refreshCount() {
  const err = $("space-error");
  try {
    const spec = specFromControls();
    err.hidden = true;
    if (!state.gpu) {
      $("config-count").textContent = "–";
      $("config-detail").textContent = "configurations (needs an adapter to check its limits)";
      return null;
    }
    const jobs = plan(spec, state.gpu.limits, state.gpu.features);
    const nt = jobs.filter((j) => j.kernel === "topk").length;
    $("config-count").textContent = `${jobs.length} configurations`;
    $("config-detail").textContent = `legal on this adapter: ${nt} TopK (incl. st-core baselines), ${jobs.length - nt} where_nd`;
    $("run").disabled = jobs.length === 0 || !!state.tuner;
    return spec;
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
    $("config-count").textContent = "invalid space";
    $("config-detail").textContent = "";
    $("run").disabled = true;
    return null;
  }
}

// -- results --------------------------------------------------------------------------------------------------
/** A results table row for measurement m, configuration n. */
function resultRow(m, n, baseline) {
  const tr = node("tr", null, m.ok ? "" : "failed");
  tr.append(node("td", n, "num"));
  tr.append(node("td", groupKey(m)));
  const pt = node("td", paramText(m.params), "mono");
  if (baseline) pt.append(node("span", "st-core", "tag"));
  tr.append(pt);
  tr.append(node("td", fmtMs(m.median_ms), "num mono"));
  tr.append(node("td", fmtMs(m.min_ms), "num mono"));
  tr.append(node("td", m.spread === null ? "–" : `${(m.spread * 100).toFixed(0)}%`, "num mono"));
  const timer = node("td", m.chains > 1 ? `${m.timer} ×${m.chains}` : m.timer);
  if (m.clock !== undefined) timer.title = `clock canary ${m.clock.toFixed(3)} × its best time`;
  tr.append(timer);
  tr.append(node("td", m.ok ? "ok" : m.error, m.ok ? "ok" : "err"));
  return tr;
}

function fmtDuration(s) {
  if (!isFinite(s)) return "–";
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

// Page URL options: ?preset=NAME picks a preset, ?kernels=topk leaves where_nd out, ?label=TEXT labels the run,
// ?autorun=1 starts it at once. Debugging aids: ?timer=wall ignores timestamp-query; ?quantize=NS simulates a browser's
// quantized timestamps; ?clockguard=1 (or 0) forces the clock guard on (off) whatever the adapter, e.g. to exercise it
// on SwiftShader; ?canary=iters:1024,load_iters:8192,... overrides space.json "canary" numbers (a CPU adapter's
// canary is slow: one of space.json's takes ~0.1 s on SwiftShader, one load dispatch ~3 s); ?warm=0 builds each
// configuration's pipelines when it runs, not while the one before is measured.
function timerOptionsFromUrl() {
  const q = new URLSearchParams(location.search);
  const cg = q.get("clockguard");
  return { wall: q.get("timer") === "wall", simulateQuantumNs: Number(q.get("quantize")) || 0,
           clockGuard: cg === null ? null : !["0", "false", "off"].includes(cg.toLowerCase()),
           canary: parseCanary(q.get("canary")) };
}

/** Run the space of the controls, or go on with a run kept in this browser (`resume`: keptRuns()'s {header,
 *  measurements}) from its next configuration, with its space, seed, preset and label. */
async function runTuner(resume = null) {
  const spec = resume ? resume.header.spec : refreshCount();
  if (!spec || !state.gpu) return;
  const preset = resume ? resume.header.preset : state.presetDirty ? "custom" : $("preset").value;
  const label = resume ? resume.header.label : $("label").value.trim();
  const runId = resume ? resume.header.runId : crypto.randomUUID().replace(/-/g, "");
  const kept = resume ? resume.measurements : [];
  const before = resume ? resume.header.elapsedS || 0 : 0;       // seconds the run took before it was interrupted
  const started = resume ? new Date(resume.header.startedAt) : new Date(), t0 = performance.now();
  const elapsed = () => before + (performance.now() - t0) / 1000;
  // rows and the chart join the page at most every 700 ms, and the chart at most 5 % of the time (a redraw of 2,000
  // dots grows with the run), at a width read once: reading it lays the page out, the results table too (the H200
  // full run spent 47 s between where_nd's 1,344 configurations, 35 ms each, when each row joined at once and each
  // redraw read the width)
  let lastDraw = 0, drawEvery = 700, keeper = null, rows = [];
  const chartWidth = $("chart").clientWidth;
  const flushRows = () => { $("results").tBodies[0].append(...rows); rows = []; };
  const timerOptions = timerOptionsFromUrl();
  let tuner;
  try {
    tuner = new Tuner(state.gpu, spec, {
      timerOptions, done: kept, warm: new URLSearchParams(location.search).get("warm") !== "0",
      onMeasure: (m, done, total, job) => {
        keeper.keep(done - 1, m, elapsed());
        window.__tuner.results.push(m);
        rows.push(resultRow(m, done, job.baseline));
        const el = elapsed();
      $("progress").max = total;
      $("progress").value = done;
      $("progress-text").textContent = `${done}/${total}`;
      $("elapsed").textContent = `elapsed ${fmtDuration(el)} · left ≈ ${fmtDuration((el / done) * (total - done))}`;
        if (performance.now() - lastDraw > drawEvery || done === total) {
          const t = performance.now();
          flushRows();
          drawChart($("chart"), tuner.measurements, chartWidth);
          lastDraw = performance.now();
          drawEvery = Math.max(700, 20 * (lastDraw - t));
        }
      },
    });
  } catch (e) {      // a kept run whose configurations this adapter does not plan (its limits changed): say why
    setState("error", `Run ${runId} cannot be resumed: ${e.message}`);
    return;
  }
  keeper = new KeptRun({ runId, spec, preset, label, startedAt: started.toISOString(), adapter: adapterKey(state.gpu.info),
                         total: tuner.jobs.length, done: kept.length, elapsedS: before });
  Object.assign(window.__tuner, { runId, results: [...kept], done: false, error: null, clockGuard: null });
  $("results").tBodies[0].replaceChildren();
  $("results").tBodies[0].append(...kept.map((m, i) => resultRow(m, i + 1, tuner.jobs[i].baseline)));
  for (const id of ["summary", "phases", "downloads", "report", "resume-notice"]) $(id).hidden = true;
  $("run").disabled = true;
  $("cancel").disabled = false;
  $("space-form").inert = true;
  state.tuner = tuner;
  window.__tuner.total = tuner.jobs.length;
  $("progress").max = Math.max(1, tuner.jobs.length);
  $("progress").value = kept.length;
  $("progress-text").textContent = `${kept.length}/${tuner.jobs.length}`;
  setState("running", resume ? `Resuming run ${runId} at configuration ${kept.length + 1} of ${tuner.jobs.length}…`
    : `Running ${tuner.jobs.length} configurations…`);
  let crash = null;
  try {
    await tuner.run();
  } catch (e) {
    crash = e;
  }
  const duration = elapsed();
  flushRows();
  window.__tuner.clockGuard = tuner.timer ? tuner.timer.guardInfo() : null;   // test hook
  window.__tuner.phases = tuner.phases;
  showRunTimestamps(tuner.measurements);
  drawChart($("chart"), tuner.measurements);
  const status = tuner.cancelled ? "cancelled" : (tuner.deviceDead || crash) ? "failed" : "complete";
  const doc = runDocument(runId, spec, preset, label, tuner, started, duration, status);
  state.tuner = null;
  $("cancel").disabled = true;
  $("space-form").inert = false;
  const nOk = doc.measurements.filter((m) => m.ok).length;
  const summary = $("summary");
  summary.hidden = false;
  summary.textContent = `${status === "complete" ? "Finished" : status === "cancelled" ? "Cancelled after" : "Failed after"} `
    + `${doc.measurements.length} configurations in ${duration.toFixed(1)} s (${nOk} ok`
    + `${doc.measurements.length - nOk ? `, ${doc.measurements.length - nOk} failed` : ""}).`
    + (crash ? ` Error: ${crash.message}` : "") + (tuner.deviceDead ? ` ${tuner.deviceDead}` : "")
    + (resume ? ` Resumed after ${kept.length} configurations kept in this browser.` : "");
  const phases = $("phases");
  phases.textContent = phaseText(tuner.phases);
  phases.hidden = !phases.textContent;
  window.__tuner.durationS = duration;
  try {
    const reply = await postRun(doc);
    $("download").href = reply.heuristics_url || `/api/runs/${runId}/heuristics.rs`;
    $("download-stcore").href = `/api/runs/${runId}/heuristics.rs?flavour=st-core`;
    $("download-wasm").href = `/api/runs/${runId}/heuristics.rs?flavour=wasm-table`;
    $("run-json").href = `/api/runs/${runId}`;
    $("downloads").hidden = false;
    keeper.forget();                          // stored: nothing left to resume
    await showReport(runId);
    setState("done", `${summary.textContent} Stored as run ${runId}.`);
  } catch (e) {                               // still kept: "Resume run" posts it once the server takes it
    window.__tuner.error = e.message;
    setState("error", `${summary.textContent} Could not store the run: ${e.message}`);
  }
  window.__tuner.done = true;
  refreshCount();
  offerResume();
  loadRuns();
}

/** The newest unfinished run this browser kept for this adapter (a reload, a crashed tab, a post that failed),
 *  offered to be resumed or discarded. */
function offerResume() {
  const mine = state.gpu ? keptRuns().filter((r) => r.header.adapter === adapterKey(state.gpu.info)) : [];
  const r = state.resumable = mine.length && !state.tuner ? mine[0] : null;
  $("resume-notice").hidden = !r;
  if (!r) return;
  const h = r.header;
  $("resume-text").textContent = `A run was interrupted before it was stored: ${h.label ? `"${h.label}", ` : ""}` +
    `${r.measurements.length} of ${h.total} configurations measured, started ${h.startedAt.replace("T", " ").slice(0, 19)} ` +
    `UTC (preset ${h.preset}, seed ${h.spec.seed}). Resuming measures the rest with the same space and seed, then ` +
    `stores one run.`;
  $("resume").textContent = `Resume run ${h.runId.slice(0, 8)}…`;
  $("resume").title = h.runId;
  $("resume-notice").dataset.runId = h.runId;
}

function runDocument(runId, spec, preset, label, tuner, started, duration, status) {
  const gpu = state.gpu, ms = tuner.measurements;
  const timers = [...new Set(ms.filter((m) => m.ok).map((m) => m.timer))].sort();
  return {
    run_id: runId, label, source: "browser",
    adapter: { vendor: gpu.info.vendor, architecture: gpu.info.architecture, device: gpu.info.device,
               description: gpu.info.description, backend: "webgpu" },
    features: gpu.allFeatures, subgroup_sizes: gpu.subgroupSizes, limits: gpu.limits,
    user_agent: navigator.userAgent, preset, space: spec,
    timer: timers.length === 1 && timers[0] === "timestamp" ? "timestamp" : (timers[0] || "wall"),
    started_at: started.toISOString(), finished_at: new Date().toISOString(),
    duration_s: Math.round(duration * 1000) / 1000, status, measurements: ms,
  };
}

async function postRun(doc) {
  const r = await fetch("/api/runs", { method: "POST", headers: { "Content-Type": "application/json" },
                                       body: JSON.stringify(doc) });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : r.statusText;
    throw new Error(`POST /api/runs answered ${r.status}: ${detail}`);
  }
  return body || {};
}

// -- quality report -------------------------------------------------------------------------------------------
// The quality report of GET /api/runs/{id}/report (server/report.py): columns shown, in order.
const REPORT_COLS = [
  ["shape", "Shape"], ["configs", "Configs"], ["best_ms", "Best ms"], ["best", "Fastest configuration"],
  ["pick_regret", "Pick regret"], ["heldout_pick", "Held-out pick"], ["heldout_regret", "Held-out regret"],
  ["default_regret", "Default regret"], ["stcore_regret", "st-core regret"],
];

const REPORT_WHERE_COLS = [
  ["case", "Case"], ["shape", "Shape"], ["dtype", "dtype"], ["configs", "Configs"], ["best_ms", "Best ms"],
  ["best", "Fastest configuration"], ["pick_regret", "Pick regret"], ["heldout_pick", "Held-out pick"],
  ["heldout_regret", "Held-out regret"], ["default_regret", "Default regret"],
  ["heldout_kernel_regret", "Held-out kernel regret"], ["default_kernel_regret", "Default kernel regret"],
];

function fmtRegret(v, unit = "shapes") {
  return v && v.n ? `geomean ${v.geomean.toFixed(3)}, worst ${v.worst.toFixed(3)} (${v.n} ${unit})` : "not measured";
}

/** Rows as table rows; those whose regret in column `mark` (the held-out one) is over `target` (the report's) are
 *  marked. */
function fillTable(table, cols, rows, target = Infinity, mark = "heldout_regret") {
  const head = table.tHead, body = table.tBodies[0];
  head.replaceChildren(); body.replaceChildren();
  const htr = node("tr");
  cols.forEach(([, t]) => htr.append(node("th", t)));
  head.append(htr);
  for (const row of rows) {
    const tr = node("tr", "", row[mark] > target ? "over" : "");
    if (tr.className) tr.title = `${mark === "heldout_regret" ? "held-out regret" : "regret"} over ${target}`;
    cols.forEach(([k]) => tr.append(node("td", k.endsWith("regret") && typeof row[k] === "number"
      ? row[k].toFixed(3) : cellText(row[k]), typeof row[k] === "number" ? "num mono" : "mono")));
    body.append(tr);
  }
}

/** " Worst held out: 64x65536 k=8 (1.396); 1 of 44 over 1.25 (marked)." from a report's heldout_worst (a
 *  judgement's worst: `label` "Worst"). */
function worstText(worst, label = "Worst held out") {
  if (!worst) return "";
  return ` ${label}: ${worst.name} (${worst.regret.toFixed(3)}); ${worst.over} of ${worst.n} over ` +
    `${worst.target}${worst.over ? " (marked)" : ""}.`;
}

/** A configuration as the report shows it: "2CE wg512 kl4 ch4096 sg", "radix wg256 rb8 rch2048",
 *  "direct wg128 vpt4". */
function configText(p) {
  if (p.radix) return `radix wg${p.wg} rb${p.rb} rch${p.rch}`;
  if ("use_2ce" in p) {
    return `${p.use_2ce ? "2CE" : "1CE"} wg${p.wg} kl${p.kl}${p.use_2ce ? ` ch${p.ch}` : ""}${p.sg ? " sg" : ""}` +
      `${p.ls === false ? " no-ls" : ""}`;
  }
  if ("path" in p) return `${p.path} wg${p.wg} vpt${p.vpt}`;
  return paramText(p);
}

function cellText(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  if (Array.isArray(v)) return v.join("×");
  if (typeof v === "object") return configText(v);
  return String(v);
}

/** The report area emptied and shown, titled `title`, saying `status` while its content loads; the TopK part
 *  hidden until filled when `hideTopk`. */
function openReport(title, status, hideTopk) {
  $("report-run").textContent = title;
  $("report-summary").textContent = status;
  for (const id of ["report-chart", "report-where-chart"]) $(id).replaceChildren();
  for (const id of ["report-table", "report-where-table"]) { $(id).tHead.replaceChildren(); $(id).tBodies[0].replaceChildren(); }
  $("report-where").hidden = true;
  $("report-topk").hidden = hideTopk;
  $("report").hidden = false;
}

/** A link to `href` that, clicked, shows `show()` in the report area and scrolls there instead. */
function reportLink(href, text, show) {
  const a = link(href, text);
  a.addEventListener("click", (ev) => {
    ev.preventDefault();
    show().then(() => $("report").scrollIntoView({ block: "start" }));
  });
  return a;
}

/** The quality report of a stored run (`runId`), or of one device class's merged runs (`deviceClass`), on the page. */
async function showReport(runId, name = "", deviceClass = null) {
  openReport(name ? `· ${name}` : "", "Fitting the rule once per held-out shape…", false);
  let r;
  const url = deviceClass === null ? `/api/runs/${encodeURIComponent(runId)}/report`
    : `/api/report?run=all&device_class=${encodeURIComponent(deviceClass)}`;
  try { r = await fetch(url); } catch (_) { $("report-summary").textContent = "The report could not be fetched."; return; }
  if (!r.ok) { $("report-summary").textContent = `The report is not available (HTTP ${r.status}).`; return; }
  const body = await r.json().catch(() => null);
  const rep = deviceClass === null ? body : body && body.classes && body.classes[0];
  if (!rep || !Array.isArray(rep.shapes)) return;
  fillTable($("report-table"), REPORT_COLS, rep.shapes, rep.heldout_worst ? rep.heldout_worst.target : Infinity);
  const w = rep.where_nd;
  $("report-where").hidden = !w;
  if (w) {
    fillTable($("report-where-table"), REPORT_WHERE_COLS, w.cases, w.heldout_worst ? w.heldout_worst.target : Infinity);
    const kernel = w.cases.some((c) => typeof c.heldout_kernel_regret === "number");
    drawRegretChart($("report-where-chart"), w.cases, kernel ? [...WHERE_REGRET_SERIES, ...WHERE_KERNEL_SERIES]
      : WHERE_REGRET_SERIES, (c) => `${c.case} ${c.shape.join("×")}`);
    const wg = w.regret || {};
    $("report-where-summary").textContent = `Tuned picks: ${fmtRegret(wg.tuned_measured, "cases")}; held out (rule ` +
      `fitted without that output shape): ${fmtRegret(wg.tuned_heldout, "cases")}; fixed default: ${fmtRegret(wg.fixed_default, "cases")}.` +
      worstText(w.heldout_worst) +
      (wg.tuned_heldout_kernel ? ` A call's time is mostly its uploads; on the kernel time alone (over the fastest ` +
        `kernel of the same path), held out: ${fmtRegret(wg.tuned_heldout_kernel, "cases")}; fixed default: ` +
        `${fmtRegret(wg.fixed_default_kernel, "cases")}.` : "");
  }
  drawRegretChart($("report-chart"), rep.shapes);
  $("report-topk").hidden = !rep.shapes.length;
  if (!rep.shapes.length) {
    $("report-summary").textContent = "Regret = chosen time / fastest time (1.0 is perfect). This run has no TopK measurements.";
    return;
  }
  const g = rep.regret || {};
  const speed = rep.speedup_vs_stcore ? `${rep.speedup_vs_stcore.toFixed(2)}x faster than st-core's fallback rule` : "st-core's fallback not measured";
  $("report-summary").textContent = `Regret = chosen time / fastest time (1.0 is perfect). Tuned picks: ${fmtRegret(g.tuned_measured)}; ` +
    `held out (rule fitted without that shape): ${fmtRegret(g.tuned_heldout)}; fixed default: ${fmtRegret(g.fixed_default)}; ` +
    `st-core fallback: ${fmtRegret(g.stcore_fallback)}. Tuned picks are ${speed} (geomean).` +
    worstText(rep.heldout_worst);
  $("report").hidden = false;
}

// GET /api/runs/{id}/judge: the TopK rule of the other runs of the class, judged on this run's shapes.
const JUDGE_COLS = [
  ["shape", "Shape"], ["configs", "Configs"], ["best_ms", "Best ms"], ["best", "Fastest configuration"],
  ["pick", "Rule's pick"], ["pick_regret", "Regret"],
];
const JUDGE_SERIES = [["pick_regret", "rule of the other runs", "#4a6fdc"]];
const JUDGE_WHERE_COLS = [
  ["case", "Case"], ["shape", "Shape"], ["dtype", "dtype"], ["configs", "Configs"], ["best_ms", "Best ms"],
  ["best", "Fastest configuration"], ["pick", "Rule's pick"], ["pick_regret", "Regret"],
  ["pick_kernel_regret", "Kernel regret"],
];

/** How the rule of the other stored runs serves a run's TopK shapes, which it was not fitted on, in the report area. */
async function showJudge(runId, name) {
  openReport(`· the other runs' rule, judged on ${name}`, "Fitting the rule on the other runs…", true);
  let r;
  try { r = await fetch(`/api/runs/${encodeURIComponent(runId)}/judge`); } catch (_) {
    $("report-summary").textContent = "The judgement could not be fetched."; return;
  }
  const body = await r.json().catch(() => null);
  if (!r.ok || !body) {   // 422: no TopK data on one side, with the reason
    $("report-summary").textContent = `Nothing to judge: ${body && typeof body.detail === "string" ? body.detail : `HTTP ${r.status}`}.`;
    return;
  }
  const fitted = `fitted on ${body.fit_runs.length} other run${body.fit_runs.length === 1 ? "" : "s"} of this GPU`;
  $("report-topk").hidden = !!body.topk_missing;
  if (body.topk_missing) {       // a where_nd-only judgement: the TopK part says why it is empty
    $("report-summary").textContent = `No TopK part: ${body.topk_missing}. The where_nd rule ${fitted} is below.`;
  } else {
    fillTable($("report-table"), JUDGE_COLS, body.shapes, body.worst ? body.worst.target : Infinity, "pick_regret");
    drawRegretChart($("report-chart"), body.shapes, JUDGE_SERIES);
    $("report-summary").textContent = `Regret = time of the pick / fastest time on this run (1.0 is perfect) of ` +
      `the rule ${fitted}, which never saw these shapes: ${fmtRegret(body.regret)}.` + worstText(body.worst, "Worst") +
      (body.unmeasured ? ` ${body.unmeasured} picks were not measured in this run.` : "");
  }
  const w = body.where_nd;
  $("report-where").hidden = !w;
  if (!w) return;
  fillTable($("report-where-table"), JUDGE_WHERE_COLS, w.cases, w.worst ? w.worst.target : Infinity, "pick_regret");
  drawRegretChart($("report-where-chart"), w.cases, JUDGE_SERIES, (c) => `${c.case} ${c.shape.join("×")}`);
  $("report-where-summary").textContent = `The where_nd rule of the same runs on this run's cases: ` +
    `${fmtRegret(w.regret, "cases")}; on the kernel time alone: ${fmtRegret(w.kernel_regret, "cases")}.` +
    worstText(w.worst, "Worst");
}

// -- stored runs ----------------------------------------------------------------------------------------------
/** The JSON body of a GET, or null when the server cannot be reached or does not answer 2xx. */
async function getJson(url) {
  try {
    const r = await fetch(url);
    return r.ok ? await r.json() : null;
  } catch (_) {
    return null;
  }
}

async function loadRuns() {
  const body = $("runs").tBodies[0];
  const runs = await getJson("/api/runs?limit=50");
  if (!runs) {
    $("runs-empty").hidden = false;
    $("runs-empty").textContent = "Stored runs are not available from this server.";
    return;
  }
  body.replaceChildren();
  $("runs-empty").hidden = runs.length > 0;
  initCompare(runs);
  for (const run of runs) {
    const tr = node("tr");
    tr.append(node("td", (run.created_at || "").replace("T", " ").slice(0, 19), "mono"));
    tr.append(node("td", run.label || ""));
    const a = run.adapter || {};
    tr.append(node("td", [a.vendor, a.architecture, a.description].filter(Boolean).join(" · ")));
    tr.append(node("td", run.source));
    tr.append(node("td", run.preset));
    tr.append(node("td", run.status, `st-${run.status}`));
    tr.append(node("td", `${run.n_ok ?? "?"} / ${run.n_measurements ?? "?"}`, "num mono"));
    tr.append(node("td", run.duration_s === undefined || run.duration_s === null ? "–" : Number(run.duration_s).toFixed(1), "num mono"));
    const dl = node("td", null, "links");
    const id = encodeURIComponent(run.run_id);
    dl.append(link(`/api/runs/${id}/heuristics.rs`, "heuristics.rs"), link(`/api/runs/${id}/heuristics.rs?flavour=st-core`, "st-core"),
              link(`/api/runs/${id}/heuristics.rs?flavour=wasm-table`, "tuner_results.json"),
              link(`/api/runs/${id}`, "json"));
    const name = run.label || run.run_id;
    const jd = reportLink(`/api/runs/${id}/judge`, "judge", () => showJudge(run.run_id, name));
    jd.title = "the TopK rule of the other runs of this device class, judged on this run's shapes";
    dl.append(reportLink(`/api/runs/${id}/report`, "report", () => showReport(run.run_id, name)), jd);
    tr.append(dl);
    body.append(tr);
  }
  loadClasses();
}

/** "NVIDIA · NVIDIA H200 · wgpu:Vulkan · subgroups 32" for an adapter class. */
function classLabel(c) {
  const sg = c.subgroup_max ? `subgroups ${c.subgroup_min === c.subgroup_max ? c.subgroup_max : `${c.subgroup_min}-${c.subgroup_max}`}`
    : "subgroup sizes not reported";
  return [c.vendor || "unknown vendor", c.architecture, c.backend, sg].filter(Boolean).join(" · ");
}

/** The device classes of the stored runs: each with a report of its runs merged, beside the merged download. */
async function loadClasses() {
  const classes = await getJson("/api/classes");
  if (!classes) {
    $("classes").hidden = true;
    return;
  }
  const list = $("classes-list");
  list.replaceChildren();
  $("classes").hidden = !classes.length;
  for (const c of classes) {
    const li = node("li");
    li.dataset.deviceClass = c.device_class;
    const label = classLabel(c.adapter_class);
    li.append(node("span", label), node("span", ` · ${c.runs.length} run${c.runs.length === 1 ? "" : "s"}, ` +
      `${c.n_measurements} measurements · `, "muted"));
    li.append(reportLink(`/api/report?run=all&device_class=${encodeURIComponent(c.device_class)}`, "report",
                         () => showReport(null, `all runs of ${label}, merged`, c.device_class)));   // judged like one run
    list.append(li);
  }
}

// -- start ----------------------------------------------------------------------------------------------------
async function main() {
  setState("idle", "Loading the search space…");
  try {
    state.space = await loadSpace();
  } catch (e) {
    setState("error", `Could not load the search space: ${e.message}`);
    return;
  }
  fillFromPreset("quick");
  const form = $("space-form");
  $("preset").addEventListener("change", () => {
    if ($("preset").value !== "custom") fillFromPreset($("preset").value);
    state.presetDirty = $("preset").value === "custom";
    refreshCount();
  });
  form.addEventListener("input", (ev) => {
    if (ev.target.id === "preset" || ev.target.id === "label") return;
    state.presetDirty = true;
    $("preset").value = "custom";
    refreshCount();
  });
  form.addEventListener("submit", (ev) => ev.preventDefault());
  $("run").addEventListener("click", () => { runTuner(); });
  $("resume").addEventListener("click", () => { if (state.resumable) runTuner(state.resumable); });
  $("discard-resume").addEventListener("click", () => {
    if (state.resumable) forget(state.resumable.header.runId);
    offerResume();
  });
  $("cancel").addEventListener("click", () => {
    if (state.tuner) { state.tuner.cancel(); $("cancel").disabled = true; setState("running", "Cancelling after the current configuration…"); }
  });
  loadRuns();
  drawChart($("chart"), []);
  const missing = webgpuMissingReason();
  if (missing) { showMissing(missing); return; }
  try {
    state.gpu = await openGpu();
  } catch (e) {
    showMissing(e.message);
    return;
  }
  showAdapter(state.gpu);
  const q = new URLSearchParams(location.search);
  const asked = q.get("preset");
  const preset = asked && getSpace().presets[asked] ? asked
    : isCpuAdapter(state.gpu.info, state.gpu.adapter) ? "quick" : "full";
  $("preset").value = preset;
  fillFromPreset(preset);
  // ?kernels=topk: the preset's TopK part alone (as bench/tune_gpu.py tunes by default); the space run is posted
  if (q.get("kernels") && !q.get("kernels").split(",").includes("where_nd")) $("where-on").checked = false;
  if (q.get("label")) $("label").value = q.get("label");
  refreshCount();
  drawChart($("chart"), []);
  await showTimestamps(state.gpu);
  $("adapter-card").dataset.ready = "1";
  setState("idle", `Ready: ${state.gpu.info.description || state.gpu.info.architecture || "WebGPU adapter"}`);
  offerResume();
  // ?autorun=1: start at once (a browser driven from a script: bench/browser_gpu.py)
  if (q.get("autorun") === "1") runTuner();
}

main();
