// Timing a dispatch chain: GPU timestamps (one query set, a write at the beginning of the chain's first pass and
// at the end of its last) when the device has timestamp-query, else wall time around queue.onSubmittedWorkDone().
// Browsers may quantize timestamps (Chrome: 100 us unless developer features are on); when the deltas look
// quantized, N chains are encoded between one timestamp pair and the time divided by N, N raised until the
// measured interval spans at least MIN_QUANTA quanta.

export const MIN_QUANTA = 20;
export const QUANTUM_FLOOR_NS = 50000;     // deltas all multiples of >= 50 us: quantized
const WALL_QUANTUM_NS = 100000;            // performance.now() is coarsened to ~100 us outside isolation
const MAX_CHAINS = 4096;

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

/** The timestamp quantum in ns when deltas look quantized (zeros, or all multiples of >= 50 us), else 0. */
export function quantumOf(deltasNs) {
  const nz = deltasNs.map((d) => Math.round(d)).filter((d) => d > 0);
  if (!nz.length) return 100000;
  const g = nz.reduce(gcd);
  return g >= QUANTUM_FLOOR_NS ? g : 0;
}

export class Timer {
  /** options (debugging aids, from the page URL): wall: ignore timestamp-query; simulateQuantumNs: round
   *  timestamps down to multiples of it, as a quantizing browser would. */
  constructor(gpu, { wall = false, simulateQuantumNs = 0 } = {}) {
    this.gpu = gpu;
    this.kind = gpu.timestamps && !wall ? "timestamp" : "wall";
    this.simQ = BigInt(Math.max(0, Math.floor(simulateQuantumNs)));
    if (this.kind === "timestamp") {
      const dev = gpu.device;
      this.querySet = dev.createQuerySet({ type: "timestamp", count: 2 });
      this.resolve = dev.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      this.readback = dev.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    }
  }

  /** One sample: the interval in ns of `chains` back-to-back copies of the dispatch chain `passes`. */
  async sample(passes, chains) {
    const dev = this.gpu.device;
    const enc = dev.createCommandEncoder();
    if (this.kind === "timestamp") {
      this.gpu.encodeChains(enc, passes, chains, this.querySet);
      enc.resolveQuerySet(this.querySet, 0, 2, this.resolve, 0);
      enc.copyBufferToBuffer(this.resolve, 0, this.readback, 0, 16);
      dev.queue.submit([enc.finish()]);
      await this.readback.mapAsync(GPUMapMode.READ);
      const t = new BigUint64Array(this.readback.getMappedRange().slice(0));
      this.readback.unmap();
      if (this.simQ > 0n) { t[0] -= t[0] % this.simQ; t[1] -= t[1] % this.simQ; }
      const d = t[1] - t[0];
      return d > 0n ? Number(d) : 0;
    }
    this.gpu.encodeChains(enc, passes, chains);
    const cb = enc.finish();
    const t0 = performance.now();
    dev.queue.submit([cb]);
    await dev.queue.onSubmittedWorkDone();
    return (performance.now() - t0) * 1e6;
  }

  /** Warm-ups, calibration of N, then `repeats` samples; returns {timer, chains, median_ms, min_ms, spread, samples_ms}. */
  async time(passes, { repeats = 5, warmups = 1 } = {}) {
    for (let i = 0; i < warmups; i++) await this.gpu.runOnce(passes);
    await this.gpu.device.queue.onSubmittedWorkDone();
    let chains = 1;
    let deltas = [];
    for (let i = 0; i < Math.min(3, Math.max(1, repeats)); i++) deltas.push(await this.sample(passes, chains));
    const quantum = this.kind === "timestamp" ? quantumOf(deltas) : WALL_QUANTUM_NS;
    while (quantum && median(deltas) < MIN_QUANTA * quantum && chains < MAX_CHAINS) {
      const m = median(deltas);
      const factor = m > 0 ? Math.ceil((MIN_QUANTA * quantum) / m) : 8;
      chains = Math.min(MAX_CHAINS, chains * Math.max(2, Math.min(64, factor)));
      deltas = [await this.sample(passes, chains)];
    }
    const samples = [];
    for (let i = 0; i < Math.max(1, repeats); i++) samples.push((await this.sample(passes, chains)) / chains / 1e6);
    return { timer: this.kind, chains, quantum_ns: quantum, ...summarize(samples) };
  }

  destroy() {
    if (this.querySet) { this.querySet.destroy(); this.resolve.destroy(); this.readback.destroy(); }
  }
}
