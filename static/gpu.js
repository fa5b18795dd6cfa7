// WebGPU adapter, device, layouts and pipelines; the TopK launch plan and the where_nd upload + launch.
// Steps mirror native/wgpu_backend.py: features timestamp-query and subgroups when present, limits raised to the
// adapter's, one explicit bind group layout per kernel, pipelines cached per configuration.

import { derived, getSpace, sortCap } from "./space.js";
import { isRadix, moduleSource, overrides, read } from "./shaders.js";
import { broadcastStrides } from "./cases.js";

export const LIMIT_NAMES = [
  "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX", "maxComputeWorkgroupStorageSize",
  "maxComputeWorkgroupsPerDimension", "maxStorageBufferBindingSize", "maxBufferSize",
];
const WANTED_FEATURES = ["timestamp-query", "subgroups"];
// The radix pipeline's bind group layout (native/wgpu_radix.py LAYOUT): a uniform and 7 storage buffers, within
// WebGPU's default maxStorageBuffersPerShaderStage (8).
const RADIX_LAYOUT = "topk_radix";
const RADIX_STORAGE = 7;
const RADIX_UNIFORM_BYTES = 32, RADIX_UNIFORM_STRIDE = 256;   // native/wgpu_radix.py UNIFORM_BYTES, UNIFORM_STRIDE

export class KernelError extends Error {}
export class DeviceLostError extends Error {}

/** Why WebGPU is unusable here, or "" when navigator.gpu exists. */
export function webgpuMissingReason() {
  if (typeof navigator === "undefined" || !navigator.gpu) {
    return "This browser does not expose WebGPU (navigator.gpu is missing).";
  }
  return "";
}

export function isCpuAdapter(info, adapter) {
  const arch = (info.architecture || "").toLowerCase();
  const text = `${info.description || ""} ${info.device || ""} ${info.vendor || ""}`.toLowerCase();
  return arch === "swiftshader" || /llvmpipe|swiftshader|lavapipe/.test(text) || !!(adapter && adapter.isFallbackAdapter)
    || !!(info && info.isFallbackAdapter);
}

/** Opens the adapter and a device; returns a Gpu, or throws an Error whose message explains why not. */
export async function openGpu() {
  const missing = webgpuMissingReason();
  if (missing) throw new Error(missing);
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("navigator.gpu.requestAdapter() returned no adapter.");
  const gpu = new Gpu(adapter);
  await gpu.open();
  return gpu;
}

export class Gpu {
  constructor(adapter) {
    this.adapter = adapter;
    const ai = adapter.info || {};
    this.info = { vendor: ai.vendor || "", architecture: ai.architecture || "", device: ai.device || "",
                  description: ai.description || "", isFallbackAdapter: !!(ai.isFallbackAdapter || adapter.isFallbackAdapter) };
    this.features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
    this.allFeatures = [...adapter.features].sort();
    this.limits = {};
    for (const n of LIMIT_NAMES) if (adapter.limits[n] !== undefined) this.limits[n] = Number(adapter.limits[n]);
    this.subgroupSizes = this.features.includes("subgroups") && ai.subgroupMinSize
      ? [ai.subgroupMinSize, ai.subgroupMaxSize] : [];
    this.device = null;
    this.lost = null;
    this.reopened = 0;
  }

  get timestamps() { return this.features.includes("timestamp-query"); }
  get subgroups() { return this.features.includes("subgroups"); }

  async open() {
    const device = await this.adapter.requestDevice({ requiredFeatures: this.features, requiredLimits: this.limits });
    this.device = device;
    this.lost = null;
    this.pipelines = new Map();
    this.warming = new Map();    // key -> promise of a pipeline built ahead (warm), or of null where that failed
    this.pipelineWaitMs = 0;     // time callers of pipeline() waited for builds
    this.residentFor = this.residentBuf = null;   // resident(): the array last uploaded and its buffer
    this.layouts = new Map();
    this.canaryBindGroup = null;
    device.lost.then((info) => {
      if (this.device === device && !this.closing) this.lost = `device lost (${info.reason}): ${info.message}`;
    });
    device.onuncapturederror = (ev) => { this.uncaptured = ev.error && ev.error.message; };
  }

  /** A fresh device after a loss (the adapter is asked again: a lost device's adapter may be spent). */
  async reopen() {
    this.reopened += 1;
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) throw new Error("no adapter after device loss");
    this.adapter = adapter;
    await this.open();
  }

  checkLost() { if (this.lost) throw new DeviceLostError(this.lost); }

  layout(kernel) {
    if (!this.layouts.has(kernel)) {
      const types = { topk: ["uniform", "read-only-storage", "storage", "storage", "storage"],
                      [RADIX_LAYOUT]: ["uniform", "read-only-storage", ...Array(RADIX_STORAGE - 1).fill("storage")],
                      where_nd: ["uniform", "read-only-storage", "read-only-storage", "read-only-storage", "storage"],
                      canary: ["storage"] }[kernel];
      const bgl = this.device.createBindGroupLayout({
        entries: types.map((type, binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type } })) });
      this.layouts.set(kernel, { bgl, layout: this.device.createPipelineLayout({ bindGroupLayouts: [bgl] }) });
    }
    return this.layouts.get(kernel);
  }

  /** Starts building a configuration's pipeline ahead of its use (the tuner: the next configuration's while this
   *  one is measured); pipeline() takes it, or on a failure builds it again to say why. The module is made inside
   *  error scopes of its own, pushed and popped in one turn: a measurement's scopes are open meanwhile, and an
   *  invalid module of the next configuration failed the one being measured. */
  warm(kernel, entry, params, derivedConstants = {}) {
    const { constants, key, layout } = pipelineKey(kernel, entry, params, derivedConstants);
    if (this.pipelines.has(key) || this.warming.has(key)) return;
    const dev = this.device;
    this.warming.set(key, moduleSource(kernel, params).then((code) => {
      if (dev !== this.device) return null;
      dev.pushErrorScope("validation");
      dev.pushErrorScope("internal");
      const pipe = dev.createComputePipelineAsync({ layout: this.layout(layout).layout,
        compute: { module: dev.createShaderModule({ code }), entryPoint: entry, constants } });
      dev.popErrorScope().catch(() => null);
      dev.popErrorScope().catch(() => null);
      return pipe;
    }).catch(() => null));
  }

  /** A compute pipeline for one entry point of a configuration; shader and pipeline errors become KernelError. */
  async pipeline(kernel, entry, params, derivedConstants = {}) {
    const { constants, key, layout } = pipelineKey(kernel, entry, params, derivedConstants);
    if (this.pipelines.has(key)) return this.pipelines.get(key);
    const t0 = performance.now();
    try {
      return await this.build(kernel, entry, params, constants, key, layout);
    } finally {
      this.pipelineWaitMs += performance.now() - t0;
    }
  }

  async build(kernel, entry, params, constants, key, layout = kernel) {
    if (this.warming.has(key)) {
      const warm = await this.warming.get(key);
      this.warming.delete(key);
      if (warm && this.device) {
        this.pipelines.set(key, warm);
        return warm;
      }
    }
    const code = await moduleSource(kernel, params);
    const dev = this.device;
    dev.pushErrorScope("validation");
    dev.pushErrorScope("internal");
    let pipe = null, failure = null, module = null;
    try {
      module = dev.createShaderModule({ code });
      pipe = await dev.createComputePipelineAsync({ layout: this.layout(layout).layout,
                                                    compute: { module, entryPoint: entry, constants } });
    } catch (e) {
      failure = e && e.message ? e.message : String(e);
    }
    const internal = await dev.popErrorScope();
    const validation = await dev.popErrorScope();
    const problem = failure || (validation && validation.message) || (internal && internal.message);
    if (problem) {
      let detail = "";
      try {
        const ci = module && await module.getCompilationInfo();
        const errs = ci ? ci.messages.filter((m) => m.type === "error") : [];
        if (errs.length) detail = ` [${errs.slice(0, 3).map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join("; ")}]`;
      } catch (_) { /* compilation info is a nicety */ }
      throw new KernelError(`pipeline ${entry} ${JSON.stringify(params)} failed to build: ${problem}${detail}`);
    }
    this.pipelines.set(key, pipe);
    return pipe;
  }

  /**
   * A buffer holding `data` (any typed array / bytes), size rounded up to `align` (where_nd binds every buffer
   * as array<vec4<u32>>: 16) and the tail zero-padded.
   */
  buffer(data, usage, align = 4) {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const size = Math.max(align, Math.ceil(bytes.byteLength / align) * align);
    const buf = this.device.createBuffer({ size, usage: usage | GPUBufferUsage.COPY_DST });
    const head = bytes.byteLength - (bytes.byteLength % 4);
    if (head) this.device.queue.writeBuffer(buf, 0, bytes, 0, head);
    if (head < bytes.byteLength) {
      const tail = new Uint8Array(4);
      tail.set(bytes.subarray(head));
      this.device.queue.writeBuffer(buf, head, tail);
    }
    return buf;
  }

  empty(size, usage, align = 4) {
    return this.device.createBuffer({ size: Math.max(align, Math.ceil(size / align) * align), usage });
  }

  async readBack(buffers) {
    const dev = this.device;
    const enc = dev.createCommandEncoder();
    const stage = buffers.map((b) => {
      const s = dev.createBuffer({ size: b.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      enc.copyBufferToBuffer(b, 0, s, 0, b.size);
      return s;
    });
    dev.queue.submit([enc.finish()]);
    const out = [];
    for (const s of stage) {
      await s.mapAsync(GPUMapMode.READ);
      out.push(new Uint32Array(s.getMappedRange().slice(0)));
      s.unmap();
      s.destroy();
    }
    return out;
  }

  // -- TopK -----------------------------------------------------------------------------------------------
  /** A TopK configuration's passes ([entry point, workgroups, the pass's own values]), derived sizes and derived
   *  constants. The radix pipeline's as native/wgpu_radix.py chain: a histogram pass over the chunks per round of
   *  rb bits (its own: the round), the filter, the segmented sort, and the rank pass with more than one segment. */
  topkPasses(rows, cols, k, params) {
    const d = derived("topk", { rows, cols, k }, params);
    if (params.radix) {
      const perRow = [d.nchunks, rows, 1], passes = [];
      for (let r = 0; r < d.rounds; r++) passes.push(["radix_hist", perRow, { round: r }]);
      passes.push(["radix_filter", perRow, {}], ["radix_segsort", [d.nseg, rows, 1], {}]);
      if (d.nseg > 1) passes.push(["radix_rank", [Math.ceil(k / params.wg), rows, 1], {}]);
      return { d, passes, sc: { SEG: d.seg } };
    }
    const passes = params.use_2ce
      ? [["topk_chunks", [d.nchunks, rows, 1], {}], ["topk_merge", [d.merge_groups, rows, 1], {}]]
      : [["topk_1ce", [rows, 1, 1], {}]];
    return { d, passes, sc: { SORT_CAP: sortCap(d.kp, params.wg, this.limits, params.ls !== false) } };
  }

  /** Builds a TopK configuration's pipelines ahead (warm). */
  warmTopk(rows, cols, k, params) {
    const { passes, sc } = this.topkPasses(rows, cols, k, params);
    for (const [entry] of passes) this.warm("topk", entry, params, sc);
  }

  /** A read-only storage buffer holding `data`, uploaded again only when another array is asked for: a TopK input
   *  is the same for every configuration of its rows x cols (the full preset's 1,315 TopK configurations uploaded
   *  23.5 GB, an input each; so, 20 uploads and 0.45 GB; Chrome's writeBuffer moved 0.9 GB/s here). */
  resident(data) {
    if (this.residentFor !== data) {
      this.releaseResident();
      this.residentBuf = this.buffer(data, GPUBufferUsage.STORAGE, 16);   // topk_radix.wgsl reads vec4<u32>
      this.residentFor = data;
    }
    return this.residentBuf;
  }

  releaseResident() {
    if (this.residentBuf) this.residentBuf.destroy();
    this.residentFor = this.residentBuf = null;
  }

  /** Buffers, bind groups and passes ({pipeline, bindGroup, groups}) of one TopK configuration, and `out`: the
   *  buffers of the values' bits and the columns; the input `x` is resident() (destroy() leaves it). */
  async topkPlan(x, rows, cols, k, params) {
    const U = GPUBufferUsage;
    const { d, passes, sc } = this.topkPasses(rows, cols, k, params);
    const pipes = [];
    for (const [entry] of passes) pipes.push(await this.pipeline("topk", entry, params, sc));
    const xbuf = this.resident(x);
    let bufs;
    if (params.radix) {
      // native/wgpu_radix.py plan: the uniform once per round, RADIX_UNIFORM_STRIDE bytes apart, each naming its
      // round (radix_hist's pass of round r binds copy r); each round's histogram of each row, then a counter a row
      // (zero at creation; radix_segsort clears them for the next call), the state slots (each written in a call
      // before it is read), the last round's histogram of each chunk, the k selected pairs, then the outputs
      const uni = new Uint32Array(d.rounds * RADIX_UNIFORM_STRIDE / 4);
      for (let r = 0; r < d.rounds; r++) {
        uni.set([rows, cols, k, d.nchunks, d.nseg, d.hwords, r, 0], r * RADIX_UNIFORM_STRIDE / 4);
      }
      bufs = [
        this.buffer(uni, U.UNIFORM),
        xbuf,
        this.empty((rows * d.hwords + rows) * 4, U.STORAGE),
        this.empty(rows * d.rounds * 16, U.STORAGE),
        this.empty(rows * d.nchunks * d.last_bins * 4, U.STORAGE),
        this.empty(rows * k * 8, U.STORAGE),
        this.empty(rows * k * 4, U.STORAGE | U.COPY_SRC),
        this.empty(rows * k * 4, U.STORAGE | U.COPY_SRC),
      ];
    } else {
      bufs = [
        this.buffer(new Uint32Array([rows, cols, k, d.kp, d.nchunks, 0, 0, 0]), U.UNIFORM),
        xbuf,
        this.empty(d.scratch_bytes, U.STORAGE),
        this.empty(rows * k * 4, U.STORAGE | U.COPY_SRC),
        this.empty(rows * k * 4, U.STORAGE | U.COPY_SRC),
      ];
    }
    // a bind group a round for the radix pipeline, each binding its copy of the uniform
    const layout = this.layout(params.radix ? RADIX_LAYOUT : "topk").bgl;
    const uniformAt = (r) => (params.radix ? { offset: r * RADIX_UNIFORM_STRIDE, size: RADIX_UNIFORM_BYTES } : {});
    const bindGroups = Array.from({ length: params.radix ? d.rounds : 1 }, (_, r) => this.device.createBindGroup({
      layout,
      entries: bufs.map((buffer, binding) => ({ binding, resource: { buffer, ...(binding ? {} : uniformAt(r)) } })),
    }));
    return { bufs, out: bufs.slice(-2),
             passes: passes.map(([, groups, own], i) => ({ pipeline: pipes[i], bindGroup: bindGroups[own.round ?? 0],
                                                           groups })),
             destroy: () => bufs.forEach((b) => b !== xbuf && b.destroy()) };
  }

  /** Encodes `chains` copies of a dispatch chain in one compute pass; with a query set, a timestamp at the beginning
   *  of the pass (index `begin`) and at its end (index `end`). As native/wgpu_backend.py _encode: a pass of its own
   *  per dispatch measured about 6 us more per dispatch on the H100. */
  encodeChains(enc, passes, chains = 1, querySet = null, begin = 0, end = 1) {
    const cp = enc.beginComputePass(querySet
      ? { timestampWrites: { querySet, beginningOfPassWriteIndex: begin, endOfPassWriteIndex: end } } : undefined);
    for (let c = 0; c < chains; c++) {
      for (const p of passes) {
        cp.setPipeline(p.pipeline);
        cp.setBindGroup(0, p.bindGroup);
        cp.dispatchWorkgroups(...p.groups);
      }
    }
    cp.end();
  }

  // -- clock canary (native/wgpu_backend.py _canary_pass) ---------------------------------------------------
  /** shaders/canary.wgsl as a pass ({pipeline, bindGroup, groups}) with ITERS = iters; spec: space.json "canary"
   *  (source, entry_point, wg, groups). One 16-byte sink buffer, shared by every canary of this device. */
  async canaryPass(spec, iters) {
    const key = JSON.stringify(["canary", spec.source, spec.entry_point, spec.wg, iters]);
    if (!this.pipelines.has(key)) {
      const module = this.device.createShaderModule({ code: await read(spec.source) });
      this.pipelines.set(key, await this.device.createComputePipelineAsync({
        layout: this.layout("canary").layout,
        compute: { module, entryPoint: spec.entry_point, constants: { WG: Number(spec.wg), ITERS: Number(iters) } } }));
    }
    if (!this.canaryBindGroup) {
      const sink = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
      this.canaryBindGroup = this.device.createBindGroup({ layout: this.layout("canary").bgl,
                                                           entries: [{ binding: 0, resource: { buffer: sink } }] });
    }
    return { pipeline: this.pipelines.get(key), bindGroup: this.canaryBindGroup, groups: [Number(spec.groups), 1, 1] };
  }

  async runOnce(passes) {
    const enc = this.device.createCommandEncoder();
    this.encodeChains(enc, passes);
    this.device.queue.submit([enc.finish()]);
  }

  // -- where_nd -------------------------------------------------------------------------------------------
  /**
   * One where_nd iteration as native/wgpu_backend.py _where_run does it: upload (direct: each view's underlying
   * memory once, with base offset and byte strides in the uniform; segmented: each input written out at full
   * output shape, one write per contiguous output row), dispatch, wait. Returns the output buffer's owner.
   */
  async wherePipeline(params) {
    return this.pipeline("where_nd", whereEntry(params), params);
  }

  /** Builds a where_nd configuration's pipeline ahead (warm). */
  warmWhere(params) { this.warm("where_nd", whereEntry(params), params); }

  whereIteration(pipe, views, items, outShape, numel, params, out) {
    const { pass, bufs } = this.whereBind(pipe, views, items, outShape, numel, params, out);
    const enc = this.device.createCommandEncoder();
    this.encodeChains(enc, [pass]);
    this.device.queue.submit([enc.finish()]);
    return bufs;
  }

  /** Upload the inputs as the path does and bind them: {pass ({pipeline, bindGroup, groups}), bufs (to destroy)}. */
  whereBind(pipe, views, items, outShape, numel, params, out) {
    const U = GPUBufferUsage;
    let ins, uni;
    if (params.path === "direct") {
      const sv = views.map((v, t) => stridedView(v, outShape, items[t]));
      ins = sv.map((s) => this.buffer(s.span, U.STORAGE, 16));
      const [shape, strides] = coalesce(outShape, sv.map((s) => s.strides));
      uni = whereUniform(shape, numel, sv.map((s, t) => [s.base, strides[t]]));
    } else {
      ins = views.map((v, t) => this.segmentedUpload(v, outShape, items[t]));
      uni = whereUniform([numel], numel, null);
    }
    const ub = this.buffer(uni, U.UNIFORM);
    const bindGroup = this.device.createBindGroup({ layout: this.layout("where_nd").bgl,
      entries: [ub, ...ins, out].map((buffer, binding) => ({ binding, resource: { buffer } })) });
    const groups = whereGroups(numel, params);
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension || 65535;
    const gx = Math.min(groups, maxDim), gy = Math.ceil(groups / gx);
    return { pass: { pipeline: pipe, bindGroup, groups: [gx, gy, 1] }, bufs: [ub, ...ins] };
  }

  /** The segmented baseline's upload of one input view (cond: bytes, materialised in one copy). */
  segmentedUpload(view, outShape, item) {
    const U = GPUBufferUsage;
    const numel = outShape.reduce((a, b) => a * b, 1);
    const strides = broadcastStrides(view, outShape);
    if (item === 1) return this.buffer(materialise(view, outShape, Uint8Array), U.STORAGE, 16);
    const buf = this.empty(numel * item, U.STORAGE | U.COPY_DST, 16);
    const inner = outShape.length ? outShape[outShape.length - 1] : 1;
    const data = view.data;
    let contiguous = view.offset === 0, s = 1;
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (outShape[d] !== 1 && strides[d] !== s) contiguous = false;
      s *= outShape[d];
    }
    if (contiguous) {
      this.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, numel * item);
      return buf;
    }
    const rows = numel / inner, nd = outShape.length, last = strides[nd - 1];
    const coord = new Array(Math.max(0, nd - 1)).fill(0);
    let start = view.offset;
    const seg = new data.constructor(inner);
    for (let r = 0; r < rows; r++) {
      if (last === 1) {
        this.device.queue.writeBuffer(buf, r * inner * item, data.buffer, data.byteOffset + start * item, inner * item);
      } else {   // not contiguous within the row (a broadcast): write a contiguous copy of the segment
        for (let j = 0; j < inner; j++) seg[j] = data[start + j * last];
        this.device.queue.writeBuffer(buf, r * inner * item, seg);
      }
      start = advance(coord, start, strides, outShape, nd - 1);   // the next row: the outer nd - 1 dimensions
    }
    return buf;
  }

  destroy() {
    this.closing = true;
    if (this.device) this.device.destroy();
  }
}

/** A view materialised contiguously at the output shape (broadcast applied), a row (the last dimension) at a
 *  time: copied where the row is contiguous, filled where it is broadcast (16M elements: 120 ms element by element
 *  in JavaScript, the segmented path's upload in the browser). */
export function materialise(view, outShape, Ctor) {
  const strides = broadcastStrides(view, outShape);
  const numel = outShape.reduce((a, b) => a * b, 1);
  const out = new Ctor(numel);
  const nd = outShape.length, inner = nd ? outShape[nd - 1] : 1, last = nd ? strides[nd - 1] : 0;
  const data = view.data, coord = new Array(Math.max(0, nd - 1)).fill(0);
  let start = view.offset;
  for (let o = 0; o < numel; o += inner) {
    if (last === 1) out.set(data.subarray(start, start + inner), o);
    else if (last === 0 || inner === 1) out.fill(data[start], o, o + inner);
    else for (let j = 0; j < inner; j++) out[o + j] = data[start + j * last];
    start = advance(coord, start, strides, outShape, nd - 1);      // the next row: the outer nd - 1 dimensions
  }
  return out;
}

/** One step of a row-major walk over dimensions 0..nd-1 of `shape`: `coord` advanced in place; returns the element
 *  offset `pos` moved along by `strides` (a carry out of a dimension rewinds it). */
function advance(coord, pos, strides, shape, nd) {
  for (let d = nd - 1; d >= 0; d--) {
    coord[d]++;
    pos += strides[d];
    if (coord[d] < shape[d]) break;
    pos -= strides[d] * shape[d];
    coord[d] = 0;
  }
  return pos;
}

/**
 * native/wgpu_backend.py strided_view: the view's underlying memory as one byte span (no copy), the byte offset
 * of element (0, ..., 0) in it, and byte strides per output dimension (0 for broadcast dimensions).
 */
export function stridedView(view, outShape, item) {
  const nd = outShape.length, lead = nd - view.shape.length;
  const shape = outShape.map((_, d) => (d < lead ? 1 : view.shape[d - lead]));
  const strides = shape.map((n, d) => (d < lead || n === 1 ? 0 : view.strides[d - lead] * item));
  let lo = 0, hi = item;
  shape.forEach((n, d) => { if (strides[d] < 0) lo += (n - 1) * strides[d]; else hi += (n - 1) * strides[d]; });
  const data = view.data;
  const span = new Uint8Array(data.buffer, data.byteOffset + view.offset * item + lo, hi - lo);
  return { span, base: -lo, strides };
}

/** native/wgpu_backend.py coalesce: merge dimensions contiguous with each other in every tensor, drop size-1. */
export function coalesce(shape, stridesList) {
  const dims = [];
  shape.forEach((n, d) => { if (n !== 1) dims.push([n, stridesList.map((st) => st[d])]); });
  if (!dims.length) return [[1], stridesList.map(() => [0])];
  const out = [dims[0]];
  for (const [n, sts] of dims.slice(1)) {
    const [pn, psts] = out[out.length - 1];
    if (psts.every((ps, t) => ps === sts[t] * n)) out[out.length - 1] = [pn * n, sts];
    else out.push([n, sts]);
  }
  return [out.map(([n]) => n), stridesList.map((_, t) => out.map(([, sts]) => sts[t]))];
}

/** A configuration's pipeline constants (overrides and derived), its bind group layout's name and its key in Gpu's
 *  pipeline cache. */
function pipelineKey(kernel, entry, params, derivedConstants) {
  let constants = { ...overrides(kernel, params), ...derivedConstants };
  const radix = isRadix(kernel, params), layout = radix ? RADIX_LAYOUT : kernel;
  // a radix entry point is built with the constants it uses alone (native/wgpu_radix.py entry_constants), so
  // configurations that differ only in the others share its pipeline
  if (radix) {
    constants = Object.fromEntries(getSpace().topk.radix.entry_constants[entry].map((n) => [n, constants[n]]));
  }
  return { constants, layout, key: JSON.stringify([layout, entry, !!params.sg, Object.entries(constants).sort()]) };
}

const whereEntry = (params) => (params.path === "direct" ? "where_strided" : "where_dense");

/** native/wgpu_backend.py where_groups: workgroups of a where_nd dispatch, VPT runs of 4 outputs per thread. */
export function whereGroups(numel, params) {
  return Math.ceil(Math.ceil(numel / 4) / (params.wg * params.vpt));
}

/**
 * native/wgpu_backend.py where_runs: whether where_strided may read each run of 4 outputs with one 16-byte load
 * per input (innermost extent a multiple of 4; each input broadcast along it, or packed with its base and outer
 * strides multiples of 16 bytes, cond's of 4).
 */
export function whereRuns(outShape, views) {
  if (!views || outShape[outShape.length - 1] % 4) return false;
  return views.every(([base, strides], t) => {
    const item = t ? 4 : 1, inner = strides[strides.length - 1];
    if (inner === 0) return true;
    return inner === item && base % (4 * item) === 0 && strides.slice(0, -1).every((st) => st % (4 * item) === 0);
  });
}

/** The Params uniform of where_nd.wgsl; views = [[base, byteStrides]] for cond, x, y (null: dense). */
export function whereUniform(outShape, numel, views) {
  const nd = outShape.length;
  const u = new Uint32Array(40);
  const s = new Int32Array(u.buffer);
  u[0] = nd; u[1] = numel; u[2] = whereRuns(outShape, views) ? 1 : 0;
  u.fill(1, 4, 12);
  outShape.forEach((n, d) => { u[4 + d] = n; });
  for (let t = 0; t < 3; t++) {
    const [base, strides] = views ? views[t] : [0, null];
    if (strides) strides.forEach((st, d) => { s[12 + 8 * t + d] = st; });
    s[36 + t] = base;
  }
  return u;
}
