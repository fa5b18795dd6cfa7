// The browser tuner's loop (native/tuner.py is its native twin): plan every legal configuration of a space,
// then for each one generate the seeded input, run once, check against the reference, and time it. A failure
// (wrong result, pipeline error, device lost, timeout) is recorded on that measurement and the run goes on.

import { configurations, stcoreFallback, sameParams, getSpace } from "./space.js";
import { topkInput, whereInputs } from "./cases.js";
import { topkReference, whereReference, bits32 } from "./reference.js";
import { Timer, summarize } from "./timing.js";
import { DeviceLostError, KernelError } from "./gpu.js";

export const CONFIG_TIMEOUT_MS = 60000;

/** Jobs of a space: {kernel: "topk", shape: [rows, cols, k], params} and {kernel: "where_nd", kase, shape, dtype, params}. */
export function plan(spec, limits, features) {
  const jobs = [];
  const sg = features.includes("subgroups");
  for (const [rows, cols, k] of (spec.topk && spec.topk.shapes) || []) {
    const shape = { rows, cols, k };
    const cfgs = configurations("topk", shape, spec.topk.params, limits, features);
    const base = stcoreFallback(rows, cols, k, sg);
    const single = Object.fromEntries(Object.entries(base).map(([n, v]) => [n, [v]]));
    if (!cfgs.some((c) => sameParams(c, base)) && configurations("topk", shape, single, limits, features).length) {
      cfgs.push({ ...base, baseline: true });
    }
    for (const p of cfgs) {
      const baseline = !!p.baseline;
      delete p.baseline;
      jobs.push({ kernel: "topk", shape: [rows, cols, k], params: p, baseline: baseline || sameParams(p, base) });
    }
  }
  const w = spec.where_nd;
  if (w) {
    for (const shp of w.shapes || []) {
      const shape = { ndim: shp.length, numel: shp.reduce((a, b) => a * b, 1) };
      for (const kase of w.cases || []) {
        for (const dtype of w.dtypes || ["float32"]) {
          for (const p of alternate(configurations("where_nd", shape, w.params, limits, features), "path")) {
            jobs.push({ kernel: "where_nd", kase, shape: shp, dtype, params: p });
          }
        }
      }
    }
  }
  return jobs;
}

/** `cfgs` in turns of `name`'s values (direct, segmented, direct, ...), each value's in their order: a drift of the
 *  host's call time then falls on both where_nd paths alike (native/tuner.py's alternate). */
export function alternate(cfgs, name) {
  const groups = new Map();
  for (const c of cfgs) {
    if (!groups.has(c[name])) groups.set(c[name], []);
    groups.get(c[name]).push(c);
  }
  const runs = [...groups.values()], out = [];
  for (let i = 0; i < Math.max(0, ...runs.map((r) => r.length)); i++) {
    for (const r of runs) if (i < r.length) out.push(r[i]);
  }
  return out;
}

async function sha256Hex(...arrays) {
  if (!(globalThis.crypto && crypto.subtle)) return null;
  const total = arrays.reduce((a, x) => a + x.byteLength, 0);
  const buf = new Uint8Array(total);
  let o = 0;
  for (const a of arrays) { buf.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), o); o += a.byteLength; }
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  return [...h].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timeout: ${what} took over ${ms / 1000} s`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

/** A turn of the event loop for the page (scheduler.yield where the browser has it: setTimeout(0) is clamped to 4 ms
 *  once nested, 14 s over the full preset's 3,435 configurations on an H200). */
function yieldToPage() {
  return globalThis.scheduler && scheduler.yield ? scheduler.yield() : new Promise((r) => setTimeout(r, 0));
}

export function measurementBase(job) {
  if (job.kernel === "topk") {
    const [rows, cols, k] = job.shape;
    return { kernel: "topk", rows, cols, k, params: { ...job.params } };
  }
  return { kernel: "where_nd", case: job.kase, shape: [...job.shape], dtype: job.dtype, params: { ...job.params } };
}

export function jobLabel(job) {
  return job.kernel === "topk" ? `topk ${job.shape[0]}x${job.shape[1]} k=${job.shape[2]}`
    : `where ${job.shape.join("x")} ${job.kase} ${job.dtype}`;
}

/** A configuration as a string (kernel, shape or case, parameters): equal for a job's measurementBase and the
 *  measurement posted for it. */
export function configKey(m) {
  const p = Object.keys(m.params).sort().map((n) => [n, m.params[n]]);
  return JSON.stringify(m.kernel === "topk" ? [m.kernel, m.rows, m.cols, m.k, p] : [m.kernel, m.case, m.shape, m.dtype, p]);
}

const PHASES = [["timing", "timer"], ["call", "timed calls"], ["check", "first call and check"], ["inputs", "inputs"]];
// a part of "check" (the first call waits for its pipelines): shown beside it, not added to the total
const PART = [["pipelines", "waiting for pipelines"]];

/** Tuner.phases as a sentence: seconds per kernel and the share of each phase ("rest": the configuration's other
 *  work and the page's turn between configurations). */
export function phaseText(phases) {
  const parts = [];
  for (const [kernel, ph] of Object.entries(phases || {})) {
    const total = (ph.configuration || 0) + (ph.between || 0);
    if (!(total > 0)) continue;
    const named = PHASES.filter(([k]) => ph[k] > 0).map(([k, label]) => [label, ph[k]]);
    const rest = total - named.reduce((a, [, v]) => a + v, 0);
    const pct = (v) => `${Math.round((100 * v) / total)} %`;
    const part = PART.filter(([k]) => ph[k] > 0).map(([k, label]) => ` incl. ${pct(ph[k])} ${label}`).join("");
    parts.push(`${kernel === "topk" ? "TopK" : kernel} ${(total / 1e3).toFixed(1)} s (`
      + [...named, ["rest", rest]].map(([label, v]) => `${label} ${pct(v)}${label === "first call and check" ? part : ""}`).join(", ") + ")");
  }
  return parts.length ? `Time: ${parts.join("; ")}.` : "";
}

export class Tuner {
  /** gpu: an open Gpu; spec: the space to run; onMeasure(m, done, total, job) after each configuration; done: the
   *  measurements of a resumed run's first configurations (static/resume.js), which run() does not measure again. */
  constructor(gpu, spec, { onMeasure = () => {}, timeoutMs = CONFIG_TIMEOUT_MS, timerOptions = {}, done = [],
                           warm = true } = {}) {
    this.warm = warm;
    this.timerOptions = timerOptions;
    this.gpu = gpu;
    this.spec = spec;
    this.onMeasure = onMeasure;
    this.timeoutMs = timeoutMs;
    this.cancelled = false;
    this.deviceDead = null;
    this.inputs = new Map();
    this.jobs = plan(spec, gpu.limits, gpu.features);
    const bad = done.findIndex((m, i) => !this.jobs[i] || configKey(m) !== configKey(measurementBase(this.jobs[i])));
    if (bad >= 0) throw new Error(`configuration ${bad + 1} of the kept run is not the one this adapter plans for its space`);
    this.measurements = [...done];
    // where a run's time goes: ms per kernel and phase (inputs: generating them and the reference; check: the first
    // call, its readback and the comparison; call: where_nd's timed calls with uploads; timing: the timer (chain
    // search, warm-up, samples, clock guard); rest: the configuration's other work and the page's turn between
    // configurations). The page and bench/browser_gpu.py show it.
    this.phases = {};
  }

  /** Adds `ms` to `phase` of `kernel`. */
  add(kernel, phase, ms) {
    const k = this.phases[kernel] || (this.phases[kernel] = {});
    k[phase] = (k[phase] || 0) + ms;
  }

  /** Adds the ms since t0 to `phase` of `kernel`; returns now. */
  account(kernel, phase, t0) {
    const now = performance.now();
    this.add(kernel, phase, now - t0);
    return now;
  }

  cancel() { this.cancelled = true; }

  async run() {
    const total = this.jobs.length;
    this.timer = new Timer(this.gpu, this.timerOptions);
    for (let i = this.measurements.length; i < total; i++) {
      if (this.cancelled) break;
      const job = this.jobs[i];
      let m;
      if (this.deviceDead) {
        m = { ...measurementBase(job), ok: false, error: `not run: ${this.deviceDead}`, timer: this.timer.kind,
              median_ms: null, min_ms: null, spread: null, samples_ms: [] };
      } else {
        this.warmNext(i + 1);
        const t0 = performance.now(), w0 = this.gpu.pipelineWaitMs;
        m = await this.measure(job);
        this.account(job.kernel, "configuration", t0);
        this.add(job.kernel, "pipelines", this.gpu.pipelineWaitMs - w0);
      }
      const t1 = performance.now();
      this.measurements.push(m);
      this.onMeasure(m, i + 1, total, job);
      await yieldToPage();                           // let the page paint between configurations
      this.account(job.kernel, "between", t1);
    }
    this.timer.destroy();
    this.inputs.clear();
    this.gpu.releaseResident();
    return this.measurements;
  }

  async measure(job) {
    const base = measurementBase(job);
    const dev = this.gpu.device;
    dev.pushErrorScope("out-of-memory");
    dev.pushErrorScope("validation");
    let result;
    try {
      const work = job.kernel === "topk" ? this.topkJob(job) : this.whereJob(job);
      result = await withTimeout(work, this.timeoutMs, jobLabel(job));
      this.gpu.checkLost();
    } catch (e) {
      // an aborted mapAsync is often the first sign of a loss: give device.lost a moment to say so
      await Promise.race([dev.lost, new Promise((r) => setTimeout(r, 200))]);
      result = { ok: false, error: describe(e, this.gpu) };
    }
    const validation = await popQuietly(dev), oom = await popQuietly(dev);
    const scoped = validation || oom;
    if (result.ok && scoped) result = { ok: false, error: `GPU error: ${scoped.message}` };
    if (this.gpu.lost && !result.ok) await this.recover();
    const timing = result.timing || { median_ms: null, min_ms: null, spread: null, samples_ms: [] };
    const m = { ...base, ok: !!result.ok, error: result.ok ? null : result.error,
                timer: result.timing ? result.timing.timer : this.timer.kind,
                median_ms: timing.median_ms, min_ms: timing.min_ms, spread: timing.spread, samples_ms: timing.samples_ms };
    if (result.timing && result.timing.chains) m.chains = result.timing.chains;
    // the timestamp quantum the timer saw (0: not rounded); where_nd's is that of its kernel_ms
    if (result.timing && Number.isFinite(result.timing.quantum_ns)) m.quantum_ns = result.timing.quantum_ns;
    // the clock canary's time over its best (timing.js): posted where the clock guard is on, as native does
    if (result.timing && Number.isFinite(result.timing.clock)) m.clock = result.timing.clock;
    if (result.kernel_ms !== undefined) m.kernel_ms = result.kernel_ms;
    if (result.ok && result.checksum) m.checksum = result.checksum;
    return m;
  }

  /** Starts building the pipelines of configuration i (the next one) while this one is measured: a driver's
   *  compile then overlaps the GPU's work instead of preceding the next configuration's first call. */
  warmNext(i) {
    const job = this.jobs[i];
    if (!job || !this.warm || this.gpu.lost) return;
    try {
      if (job.kernel === "topk") this.gpu.warmTopk(...job.shape, job.params);
      else this.gpu.warmWhere(job.params);
    } catch (_) { /* pipeline() builds it and says what is wrong */ }
  }

  /** After a device loss: one new device for the rest of the run; if that fails or was spent, stop measuring. */
  async recover() {
    const why = this.gpu.lost;
    if (this.gpu.reopened >= 1) { this.deviceDead = why; return; }
    try {
      await this.gpu.reopen();
      this.timer = new Timer(this.gpu, this.timerOptions);
    } catch (e) {
      this.deviceDead = `${why}; no new device: ${e.message}`;
    }
  }

  async topkInputs(rows, cols, k) {
    const key = `topk:${rows}x${cols}:${k}`;
    if (!this.inputs.has(key)) {
      // the input of this shape, kept for its other k (the same array stays resident on the GPU: Gpu.resident)
      const prev = [...this.inputs.entries()].find(([old]) => old.startsWith(`topk:${rows}x${cols}:`));
      for (const old of this.inputs.keys()) if (old.startsWith("topk:")) this.inputs.delete(old);
      const x = prev ? prev[1].x : topkInput(this.spec.seed ?? 1, rows, cols, "uniform");
      const ref = topkReference(x, rows, cols, k);
      this.inputs.set(key, { x, ref, checksum: await sha256Hex(ref.values, ref.indices) });
    }
    return this.inputs.get(key);
  }

  async topkJob(job) {
    const [rows, cols, k] = job.shape;
    let t = performance.now();
    const { x, ref, checksum } = await this.topkInputs(rows, cols, k);
    t = this.account("topk", "inputs", t);
    const plan = await this.gpu.topkPlan(x, rows, cols, k, job.params);
    try {
      await this.gpu.runOnce(plan.passes);
      const [vals, idx] = await this.gpu.readBack(plan.out);
      this.gpu.checkLost();
      const bad = compareTopk(vals, idx, ref, rows * k);
      t = this.account("topk", "check", t);
      if (bad) return { ok: false, error: `wrong result: ${bad}` };
      const timing = await this.timer.time(plan.passes, { repeats: this.spec.repeats ?? 5, warmups: this.spec.warmups ?? 1 });
      this.account("topk", "timing", t);
      this.gpu.checkLost();
      return { ok: true, timing, checksum };
    } finally {
      plan.destroy();
    }
  }

  async whereInputsFor(job) {
    const key = `where:${job.kase}:${job.shape.join("x")}:${job.dtype}`;
    if (!this.inputs.has(key)) {
      for (const old of this.inputs.keys()) if (old.startsWith("where:")) this.inputs.delete(old);
      const v = whereInputs(job.kase, job.shape, job.dtype, this.spec.seed ?? 1);
      const ref = whereReference(job.shape, ...[v.cond, v.x, v.y].map((t) => ({
        data: t.data, offset: t.offset, strides: broadcast(t, job.shape) })));
      this.inputs.set(key, { views: [v.cond, v.x, v.y], ref, checksum: await sha256Hex(ref) });
    }
    return this.inputs.get(key);
  }

  /** Upload + kernel per iteration on the wall clock, and with timestamps the kernel alone as kernel_ms, as
   *  native/wgpu_backend.py time_where_nd times it. */
  async whereJob(job) {
    let t = performance.now();
    const { views, ref, checksum } = await this.whereInputsFor(job);
    t = this.account("where_nd", "inputs", t);
    const gpu = this.gpu, dev = gpu.device;
    const outShape = job.shape, numel = outShape.reduce((a, b) => a * b, 1), p = job.params;
    const pipe = await gpu.wherePipeline(p);
    const out = gpu.empty(numel * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, 16);
    const items = [1, 4, 4];
    try {
      let tmp = gpu.whereIteration(pipe, views, items, outShape, numel, p, out);
      const [got] = await gpu.readBack([out]);
      tmp.forEach((b) => b.destroy());
      gpu.checkLost();
      const bad = compareBits(got, ref, numel);
      t = this.account("where_nd", "check", t);
      if (bad) return { ok: false, error: `wrong result: ${bad}` };
      const repeats = this.spec.repeats ?? 5, warmups = this.spec.warmups ?? 1;
      // with timestamps the kernel is timed alone below, and the call with its uploads takes space.json's
      // where_nd.call_timing samples at most (the rule pools the uploads per path), as native/tuner.py
      const ct = this.timer.kind === "timestamp" && getSpace().where_nd.call_timing;
      const callRepeats = ct ? Math.min(repeats, ct.repeats) : repeats;
      const callWarmups = ct ? Math.min(warmups, ct.warmups) : warmups;
      const samples = [];
      for (let it = 0; it < callWarmups + Math.max(1, callRepeats); it++) {
        const t0 = performance.now();
        tmp = gpu.whereIteration(pipe, views, items, outShape, numel, p, out);
        await dev.queue.onSubmittedWorkDone();
        if (it >= callWarmups) samples.push(performance.now() - t0);
        tmp.forEach((b) => b.destroy());
      }
      gpu.checkLost();
      t = this.account("where_nd", "call", t);
      const timing = { timer: "wall", ...summarize(samples) };
      let kernel_ms;
      if (this.timer.kind === "timestamp") {
        // the kernel alone, inputs resident, timed as TopK is (clock guard included): it tells one path's
        // configurations apart where the wall clock's noise cannot (native/heuristics.py pools the uploads)
        const { pass, bufs } = gpu.whereBind(pipe, views, items, outShape, numel, p, out);
        try {
          const k = await this.timer.time([pass], { repeats, warmups });
          kernel_ms = k.median_ms;
          timing.chains = k.chains;
          timing.quantum_ns = k.quantum_ns;
          if (Number.isFinite(k.clock)) timing.clock = k.clock;
        } finally {
          bufs.forEach((b) => b.destroy());
        }
        this.account("where_nd", "timing", t);
        gpu.checkLost();
      }
      return { ok: true, timing, kernel_ms, checksum };
    } finally {
      out.destroy();
    }
  }
}

function broadcast(view, outShape) {
  const lead = outShape.length - view.shape.length;
  return outShape.map((_, d) => (d < lead || view.shape[d - lead] === 1 ? 0 : view.strides[d - lead]));
}

export function compareTopk(vals, idx, ref, n) {
  const rv = bits32(ref.values), ri = ref.indices;
  let wrongIdx = 0, wrongVal = 0, first = -1;
  for (let j = 0; j < n; j++) {
    if (idx[j] !== ri[j]) { wrongIdx++; if (first < 0) first = j; }
    if (vals[j] !== rv[j]) wrongVal++;
  }
  if (wrongIdx) return `${wrongIdx} of ${n} indices differ (first at ${first}: got ${idx[first]}, expected ${ri[first]})`;
  if (wrongVal) return `${wrongVal} of ${n} values differ`;
  return null;
}

function compareBits(got, ref, n) {
  let wrong = 0, first = -1;
  for (let j = 0; j < n; j++) if (got[j] !== ref[j]) { wrong++; if (first < 0) first = j; }
  return wrong ? `${wrong} of ${n} elements differ (first at ${first})` : null;
}

async function popQuietly(dev) {
  try { return await dev.popErrorScope(); } catch (_) { return null; }
}

function describe(e, gpu) {
  if (gpu.lost) return gpu.lost;
  if (e instanceof DeviceLostError) return e.message;
  if (e instanceof KernelError) return `pipeline error: ${e.message}`;
  const msg = e && e.message ? e.message : String(e);
  return msg.startsWith("timeout") ? msg : `${(e && e.name) || "Error"}: ${msg}`;
}
