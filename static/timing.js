// Timing a dispatch chain, as native/wgpu_backend.py _timed_submit does: GPU timestamps (one query set, a write at
// the beginning of a chain's first pass and at the end of its last) when the device has timestamp-query, else wall
// time around queue.onSubmittedWorkDone().
//
// The GPU is kept busy while it is measured: a discrete GPU's driver lowers the clock when the GPU looks idle (H100:
// 1980 -> 345 MHz a few seconds into a tuning run whose samples each were a submission of their own, every later
// time 3-5x too high). So after one estimate, warm-up chains worth WARM_MS of GPU time and all samples go in one
// submission, back to back, each sample `chains` copies between one timestamp pair; and on GPU adapters a clock
// canary (shaders/canary.wgsl) is timed right before and right after the samples: when it runs slower than its best
// time by more than the tolerance, the clock was lowered, so the GPU is loaded until the canary is back and the
// samples are taken again.
//
// Browsers may quantize timestamps (Chrome: 100 us unless developer features are on); when the deltas look
// quantized, N chains are encoded between one timestamp pair and the time divided by N, N raised until the
// measured interval spans at least MIN_QUANTA quanta (the canary's chains likewise).

import { isCpuAdapter } from "./gpu.js";
import { getSpace } from "./space.js";

export const MIN_QUANTA = 20;
export const QUANTUM_FLOOR_NS = 50000;     // deltas all multiples of >= 50 us: quantized
const DEFAULT_QUANTUM_NS = 100000;         // Chrome's rounding, taken while the deltas cannot tell
const SETTLE = 8;                          // different intervals before a coarser quantum is believed (Quanta)
const WALL_QUANTUM_NS = 100000;            // performance.now() is coarsened to ~100 us outside isolation
// As native/wgpu_backend.py: GPU time of warm-up before the samples, the least GPU time of one sample. MAX_CHAINS
// caps the chains of one sample and of the samples of one submission (native: 2048; the browser keeps 4096, which
// a quantized timer may need for a tiny kernel to span MIN_QUANTA quanta); WARM_CHAINS the warm-up's, as native's
// (a 3 us where_nd kernel on a rounded timer was encoded 4096 times for warm-up, then 10 x 1024 times for samples).
export const WARM_MS = 30;
export const SAMPLE_MS = 0.5;
const MAX_CHAINS = 4096;
const WARM_CHAINS = 2048;
const ESTIMATES = 3;                       // native times one chain; three deltas let Quanta tell a quantized timer

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function summarize(samples) {
  const med = median(samples);
  const mn = Math.min(...samples), mx = Math.max(...samples);
  return { median_ms: med, min_ms: mn, spread: med > 0 ? (mx - mn) / med : 0, samples_ms: samples };
}

const gcd = (a, b) => { while (b) [a, b] = [b, a % b]; return a; };

/** A timer's timestamp quantum in ns (0: not rounded), from every interval it has read: their gcd where that is
 *  >= QUANTUM_FLOOR_NS; zeros only say that a kernel is shorter than a quantum. Not from one configuration's
 *  deltas alone: three estimates of a 4.4 ms kernel can all read 4.4 ms, whose gcd is 4.4 ms, not the rounding's
 *  100 us, and the tuner then raised such a sample to 20 x 4.4 ms (an H200 run spent 70 s of GPU time so, chains
 *  20-40 where one was enough). A gcd above DEFAULT_QUANTUM_NS (Chrome's) is believed once SETTLE different
 *  non-zero intervals share it (were the quantum half of it, that would happen by chance about once in 2^(SETTLE-1)
 *  runs); till then the quantum is taken as at most DEFAULT_QUANTUM_NS. */
export class Quanta {
  constructor() { this.g = 0; this.seen = new Set(); }

  /** Reads intervals (ns); returns the quantum (0: not rounded). */
  observe(deltasNs) {
    for (const x of deltasNs) {
      const d = Math.round(x);
      if (!(d > 0)) continue;
      if (this.seen.size < SETTLE) this.seen.add(d);
      this.g = gcd(this.g, d);
    }
    return this.value;
  }

  get value() {
    if (!this.g) return DEFAULT_QUANTUM_NS;            // zeros only: shorter than a quantum of unknown size
    if (this.g < QUANTUM_FLOOR_NS) return 0;
    return this.seen.size >= SETTLE ? this.g : Math.min(this.g, DEFAULT_QUANTUM_NS);
  }
}

/** Chains N for a quantized timer: raised from 1 until the median interval (ns; `deltas` at N = 1, then one
 *  `measure(N)` per step) spans MIN_QUANTA quanta. `q()`: the quantum in ns as now known (a timer's Quanta learns
 *  from each step). Returns {chains, deltas}; {1, deltas} when the quantum is 0. */
export async function spanQuanta(q, deltas, measure) {
  let chains = 1;
  while (q() && median(deltas) < MIN_QUANTA * q() && chains < MAX_CHAINS) {
    // straight to the chains that span MIN_QUANTA quanta by this reading, 10 % over (a rounded reading is short by
    // up to a quantum); x8 while the reading is 0
    const m = median(deltas);
    const factor = m > 0 ? (1.1 * MIN_QUANTA * q()) / m : 8;
    chains = Math.min(MAX_CHAINS, Math.max(chains + 1, Math.ceil(chains * Math.min(64, factor))));
    deltas = [await measure(chains)];
  }
  return { chains, deltas };
}

/** The canary's slowdown over its best time that its readings prove: c / best, and on a timer rounded to `qc`
 *  (the quantum per canary, ms; 0: not rounded) the least ratio the readings allow, (c - qc) / (best + qc), at
 *  least 1. Each reading of a rounded timer is off by up to a quantum and the best (the least reading) is low by
 *  up to one: on a rounded H200 run (?quantize=100000) whose best canary read 31 quanta, c / best posted 32/31 on
 *  2,400 measurements and 33/31 = 1.065, over the 1.06 tolerance, on 188, each after two retries with the GPU
 *  loaded, and the heuristics dropped those 188. A lowered clock (3-5x) still reads far over. */
export function clockRatio(c, best, qc = 0) {
  if (!(qc > 0)) return c / best;
  return Math.max(1, (c - qc) / (best + qc));
}

/** Numeric fields of space.json "canary" a page URL may override (?canary=iters:1024,groups:16). */
export const CANARY_KEYS = ["wg", "groups", "iters", "load_iters", "tolerance", "ramp_ms", "ramp_max_ms",
                            "calibrate_ms", "retries"];

/** "key:value,key:value" -> {key: number} for CANARY_KEYS with finite, non-negative values; others dropped. */
export function parseCanary(text) {
  const out = {};
  for (const part of String(text || "").split(",")) {
    const [k, v] = part.split(":").map((s) => s.trim());
    const x = Number(v);
    if (CANARY_KEYS.includes(k) && v !== "" && Number.isFinite(x) && x >= 0) out[k] = x;
  }
  return out;
}

/** Whether the clock guard runs (native _clock_guard): forced by `option` (true/false), else on GPU adapters with
 *  timestamps and off on CPU adapters (SwiftShader: its timing noise of +-30% is larger than the clock steps the
 *  canary detects, and its canary is slow). Never without timestamps. */
export function clockGuardWanted(gpu, kind, option = null) {
  if (kind !== "timestamp") return false;
  if (option === true || option === false) return option;
  return !isCpuAdapter(gpu.info, gpu.adapter);
}

export class Timer {
  /** options (debugging aids, from the page URL): wall: ignore timestamp-query; simulateQuantumNs: round
   *  timestamps down to multiples of it, as a quantizing browser would; clockGuard: true/false forces the clock
   *  guard on/off (null: by adapter); canary: overrides of space.json "canary" numbers. */
  constructor(gpu, { wall = false, simulateQuantumNs = 0, clockGuard = null, canary = {} } = {}) {
    this.gpu = gpu;
    this.kind = gpu.timestamps && !wall ? "timestamp" : "wall";
    this.simQ = BigInt(Math.max(0, Math.floor(simulateQuantumNs)));
    this.guard = clockGuardWanted(gpu, this.kind, clockGuard);
    this.canary = { ...(getSpace().canary || {}), ...canary };
    if (!getSpace().canary) this.guard = false;
    this.canaryBest = null;      // ms; 0 once decided that the guard is off (native _canary_best)
    this.canaryChains = 1;       // canaries per timestamp pair (> 1 only on a quantized timer)
    this.stats = { calibrations: 0, retries: 0, load_ms: 0 };
    this.queryCount = 0;
    this.quanta = new Quanta();  // every timestamp interval read, for the quantum (native has none: never rounded)
  }

  /** Query set, resolve and readback buffers for `count` timestamps (grown, never shrunk). */
  ensureQueries(count) {
    if (count <= this.queryCount) return;
    this.destroyQueries();
    const dev = this.gpu.device;
    this.queryCount = count;
    this.querySet = dev.createQuerySet({ type: "timestamp", count });
    this.resolve = dev.createBuffer({ size: 8 * count, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    this.readback = dev.createBuffer({ size: 8 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  /** Resolves timestamp pairs 0..pairs-1 of `enc`, submits it, and returns each pair's interval in ns (one
   *  resolve, one readback). */
  async intervals(enc, pairs) {
    const count = 2 * pairs, bytes = 8 * count;
    enc.resolveQuerySet(this.querySet, 0, count, this.resolve, 0);
    enc.copyBufferToBuffer(this.resolve, 0, this.readback, 0, bytes);
    this.gpu.device.queue.submit([enc.finish()]);
    await this.readback.mapAsync(GPUMapMode.READ, 0, bytes);
    const t = new BigUint64Array(this.readback.getMappedRange(0, bytes).slice(0));
    this.readback.unmap();
    const out = [];
    for (let i = 0; i < pairs; i++) {
      let a = t[2 * i], b = t[2 * i + 1];
      if (this.simQ > 0n) { a -= a % this.simQ; b -= b % this.simQ; }
      out.push(b > a ? Number(b - a) : 0);
    }
    this.quanta.observe(out);
    return out;
  }

  /** One sample in its own submission: the interval in ns of `chains` back-to-back copies of `passes`. */
  async sample(passes, chains) {
    const dev = this.gpu.device;
    const enc = dev.createCommandEncoder();
    if (this.kind === "timestamp") {
      this.ensureQueries(2);
      this.gpu.encodeChains(enc, passes, chains, this.querySet, 0, 1);
      return (await this.intervals(enc, 1))[0];
    }
    this.gpu.encodeChains(enc, passes, chains);
    const cb = enc.finish();
    const t0 = performance.now();
    dev.queue.submit([cb]);
    await dev.queue.onSubmittedWorkDone();
    return (performance.now() - t0) * 1e6;
  }

  /** Time of `passes`: {timer, chains, quantum_ns, clock (guard on), median_ms, min_ms, spread, samples_ms}. */
  async time(passes, { repeats = 5, warmups = 1 } = {}) {
    if (this.kind !== "timestamp") return this.timeWall(passes, { repeats, warmups });
    const gpu = this.gpu, dev = gpu.device, n = Math.max(1, repeats);
    let best = await this.clockGuard();
    const canary = best ? await gpu.canaryPass(this.canary, this.canary.iters) : null;
    this.ensureQueries(2 * n + 4);
    const qs = this.querySet;
    // 1. one estimate submission: warm-ups, then single chains each between a timestamp pair
    let enc = dev.createCommandEncoder();
    gpu.encodeChains(enc, passes, Math.max(0, warmups));
    for (let i = 0; i < ESTIMATES; i++) gpu.encodeChains(enc, passes, 1, qs, 2 * i, 2 * i + 1);
    const est0 = await this.intervals(enc, ESTIMATES);
    // a quantized timer: N raised until a sample spans MIN_QUANTA quanta (one submission per step)
    const q = await spanQuanta(() => this.quanta.value, est0, (c) => this.sample(passes, c));
    const est = Math.max(median(q.deltas) / q.chains / 1e6, 1e-4);
    // 2. chains per sample: SAMPLE_MS of GPU time (all samples within MAX_CHAINS), at least the quantized need
    const chains = Math.max(q.chains, Math.max(1, Math.min(Math.floor(MAX_CHAINS / n), Math.ceil(SAMPLE_MS / est))));
    const warm = Math.min(WARM_CHAINS, Math.ceil(WARM_MS / est));
    // 3. one submission: warm-up, canary, the samples back to back, canary; one resolve, one readback
    const attempts = canary ? Math.max(0, Math.floor(this.canary.retries)) + 1 : 1;
    let samples = [], clock = null;
    for (let attempt = 0; attempt < attempts; attempt++) {
      enc = dev.createCommandEncoder();
      gpu.encodeChains(enc, passes, warm);
      if (canary) gpu.encodeChains(enc, [canary], this.canaryChains, qs, 2 * n, 2 * n + 1);
      for (let i = 0; i < n; i++) gpu.encodeChains(enc, passes, chains, qs, 2 * i, 2 * i + 1);
      if (canary) gpu.encodeChains(enc, [canary], this.canaryChains, qs, 2 * n + 2, 2 * n + 3);
      const t = await this.intervals(enc, n + (canary ? 2 : 0));
      samples = t.slice(0, n).map((d) => d / chains / 1e6);
      if (!canary) break;
      // 4. clock = the slower canary over the best canary time seen
      const c = Math.max(t[n], t[n + 1]) / this.canaryChains / 1e6;
      if (!(c > 0)) { clock = null; break; }          // not measurable on this timer: no clock to post
      this.canaryBest = best = Math.min(best, c);
      clock = clockRatio(c, best, this.canaryQuantumMs());
      if (clock <= this.canary.tolerance || attempt === attempts - 1) break;
      this.stats.retries += 1;
      await this.load(this.canary.ramp_max_ms, true);
      gpu.checkLost();
    }
    const out = { timer: "timestamp", chains, quantum_ns: this.quanta.value, ...summarize(samples) };
    if (clock !== null && Number.isFinite(clock)) out.clock = clock;
    return out;
  }

  /** The wall-clock path: warm-ups, calibration of N, then `repeats` samples, each its own submission. */
  async timeWall(passes, { repeats = 5, warmups = 1 } = {}) {
    for (let i = 0; i < warmups; i++) await this.gpu.runOnce(passes);
    await this.gpu.device.queue.onSubmittedWorkDone();
    const deltas = [];
    for (let i = 0; i < Math.min(3, Math.max(1, repeats)); i++) deltas.push(await this.sample(passes, 1));
    const { chains } = await spanQuanta(() => WALL_QUANTUM_NS, deltas, (c) => this.sample(passes, c));
    const samples = [];
    for (let i = 0; i < Math.max(1, repeats); i++) samples.push((await this.sample(passes, chains)) / chains / 1e6);
    return { timer: this.kind, chains, quantum_ns: WALL_QUANTUM_NS, ...summarize(samples) };
  }

  // -- clock canary (native/wgpu_backend.py _canary_ms, _load, _clock_guard) ------------------------------------
  /** The timer's quantum per canary in ms (canaryChains canaries per timestamp pair); 0 when not rounded. */
  canaryQuantumMs() { return this.quanta.value / this.canaryChains / 1e6; }

  /** Times in ms of `count` canaries back to back in one submission (each canaryChains copies per pair). */
  async canaryMs(count = 1) {
    return (await this.canaryIntervals(count, this.canaryChains)).map((d) => d / this.canaryChains / 1e6);
  }

  async canaryIntervals(count, chains, iters = this.canary.iters) {
    const pass = await this.gpu.canaryPass(this.canary, iters);
    this.ensureQueries(2 * count);
    const enc = this.gpu.device.createCommandEncoder();
    for (let i = 0; i < count; i++) this.gpu.encodeChains(enc, [pass], chains, this.querySet, 2 * i, 2 * i + 1);
    return this.intervals(enc, count);
  }

  /** Keeps the GPU busy with the canary's heavy variant (ITERS = load_iters) for `ms` of wall time; with
   *  untilClock: in steps of ramp_ms, stopping as soon as 3 canaries are back within tolerance of the best. */
  async load(ms, untilClock = false) {
    const gpu = this.gpu, dev = gpu.device;
    const heavy = await gpu.canaryPass(this.canary, this.canary.load_iters);
    const t0 = performance.now();
    let n = 1, stepEnd = t0;
    try {
      while (performance.now() - t0 < ms) {
        gpu.checkLost();
        const t1 = performance.now();
        const enc = dev.createCommandEncoder();
        gpu.encodeChains(enc, [heavy], n);
        dev.queue.submit([enc.finish()]);
        await dev.queue.onSubmittedWorkDone();
        const dt = performance.now() - t1;
        n = Math.max(1, Math.min(MAX_CHAINS, Math.floor((n * 20) / Math.max(dt, 0.01))));   // ~20 ms per submission
        if (untilClock && performance.now() >= stepEnd) {
          stepEnd = performance.now() + this.canary.ramp_ms;
          const c = Math.min(...await this.canaryMs(3));
          if (clockRatio(c, this.canaryBest, this.canaryQuantumMs()) <= this.canary.tolerance) return;
        }
      }
    } finally {
      this.stats.load_ms += performance.now() - t0;
    }
  }

  /** The canary's best time in ms, calibrated on first use (the GPU loaded for calibrate_ms, then the median of 9
   *  canaries), or null where the guard is off. */
  async clockGuard() {
    if (this.canaryBest === null) {
      if (!this.guard) {
        this.canaryBest = 0;
      } else {
        await this.load(this.canary.calibrate_ms);
        // browser only: canaries per timestamp pair so that one spans MIN_QUANTA quanta on a quantized timer and,
        // as a sample does, at least SAMPLE_MS of GPU time. A single canary (tens of us on the H200) right after a
        // heavy sample read 6-10 % slow on 177 of 1,315 configurations of an unrounded H200 run (heavy shapes only),
        // which the guard could not load away; canaries spanning >= 2 ms in the rounded run never read over 3.4 %.
        const d = await this.canaryIntervals(ESTIMATES, 1);
        const q = await spanQuanta(() => this.quanta.value, d, async (c) => (await this.canaryIntervals(1, c))[0]);
        const est = Math.max(median(q.deltas) / q.chains / 1e6, 1e-4);
        this.canaryChains = Math.max(q.chains, Math.min(MAX_CHAINS, Math.ceil(SAMPLE_MS / est)));
        this.canaryBest = median(await this.canaryMs(9));
        this.stats.calibrations += 1;
      }
    }
    return this.canaryBest || null;
  }

  /** Whether this device's timestamps look rounded, for the adapter card before a run: five intervals of a short
   *  clock canary (1/8 of its iterations), each its own timestamp pair, read by the timer's Quanta. {quantum_ns (0: not
   *  rounded), deltas_ns} or null without timestamp-query. */
  async probeQuantum() {
    if (this.kind !== "timestamp" || !getSpace().canary) return null;
    const d = await this.canaryIntervals(5, 1, Math.max(1, Math.floor(this.canary.iters / 8)));
    return { quantum_ns: this.quanta.value, deltas_ns: d };
  }

  /** The guard's state for the page and tests. */
  guardInfo() {
    return { on: !!this.canaryBest, best_ms: this.canaryBest || null, canary_chains: this.canaryChains,
             tolerance: this.canary.tolerance, ...this.stats };
  }

  destroyQueries() {
    if (this.querySet) { this.querySet.destroy(); this.resolve.destroy(); this.readback.destroy(); }
    this.querySet = this.resolve = this.readback = null;
    this.queryCount = 0;
  }

  destroy() { this.destroyQueries(); }
}
