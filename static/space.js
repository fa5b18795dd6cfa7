// The search space of shaders/space.json: derived quantities, restrictions, configurations and st-core's
// fallback rule, step for step as native/space.py does them.

let SPACE = null;

export function setSpace(spec) { SPACE = spec; return spec; }
export function getSpace() {
  if (!SPACE) throw new Error("search space not loaded; call loadSpace() first");
  return SPACE;
}

export async function loadSpace(url = "/api/space") {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url} answered ${r.status}`);
  return setSpace(await r.json());
}

export function nextPow2(n) {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

const ceilDiv = (a, b) => Math.ceil(a / b);

/** Quantities that restrictions and launches need, computed from a shape and a configuration (the radix
 *  pipeline's: radixDerived). */
export function derived(kernel, shape, params) {
  if (kernel !== "topk") return {};
  if (params.radix) return radixDerived(shape, params);
  const { rows, cols, k } = shape;
  const kp = nextPow2(k);
  const nchunks = params.use_2ce && params.ch ? ceilDiv(cols, params.ch) : 1;
  return { kp, nchunks, merge_groups: ceilDiv(nchunks * kp, params.wg),
           scratch_bytes: rows * nchunks * kp * 8, input_bytes: rows * cols * 4, radix_wg_bytes: 0 };
}

/** SEG of topk_radix.wgsl, as native/space.py radix_seg: space.json topk.radix.seg lowered to k's power of two. */
export function radixSeg(k) {
  return Math.min(getSpace().topk.radix.seg, Math.max(2, nextPow2(k)));
}

/** derived() of a radix configuration, as native/space.py radix_derived: chunks of rch columns, the widest dispatch
 *  after the filter, the largest scratch buffer and the most workgroup memory of an entry point, and the chain's
 *  sizes (SEG, segments, rounds, histogram words a row, the last round's bins). */
export function radixDerived(shape, params) {
  const { rows, cols, k } = shape;
  const wg = Math.max(1, Number(params.wg)), rch = Number(params.rch) || 0;
  const rb = Math.min(Math.max(Number(params.rb) || 0, 0), 24);
  const nchunks = rch > 0 ? ceilDiv(cols, rch) : 1;
  const seg = radixSeg(k), nseg = ceilDiv(k, seg);
  const rounds = rb > 0 ? ceilDiv(32, rb) : 1;
  const bins = 2 ** rb, lastBins = 2 ** Math.min(32 - (rounds - 1) * rb, rb);
  return { kp: nextPow2(k), nchunks, merge_groups: Math.max(nseg, ceilDiv(k, wg)),
           scratch_bytes: Math.max(rows * k * 8, rows * nchunks * lastBins * 4, rows * (rounds * bins + 1) * 4),
           input_bytes: rows * cols * 4, radix_wg_bytes: Math.max(4 * bins + 8 * wg + 16, 16 * wg + 24, 8 * seg),
           seg, nseg, rounds, hwords: rounds * bins, last_bins: lastBins };
}

// Workgroup memory of the TopK kernels besides the sort buffer (native/space.py TOPK_WG_BYTES).
const TOPK_WG_BYTES = 256 * 4 + 64;

/** SORT_CAP of topk.wgsl, as native/space.py sort_cap: kp when the list fits in workgroup storage, else 1. */
export function sortCap(kp, wg, limits, ls = true) {
  if (!ls) return 1;
  const avail = (limits && limits.maxComputeWorkgroupStorageSize) || 16384;
  return kp * 8 + TOPK_WG_BYTES + 4 * wg <= avail ? kp : 1;
}

const OPS = { "==": (a, b) => a === b, "!=": (a, b) => a !== b, "<": (a, b) => a < b, "<=": (a, b) => a <= b,
              ">": (a, b) => a > b, ">=": (a, b) => a >= b };

function term(t, env) {
  if (typeof t !== "string") return t;
  if (!/^[A-Za-z0-9_.]+$/.test(t)) throw new Error(`bad term ${JSON.stringify(t)} in space.json`);
  if (t.startsWith("limits.")) {
    const v = env.limits[t.slice("limits.".length)];
    return v === undefined ? Infinity : v;
  }
  if (t.startsWith("features.")) return env.features.has(t.slice("features.".length));
  if (!(t in env)) throw new Error(`unknown term ${JSON.stringify(t)} in space.json`);
  return env[t];
}

/** Restrictions of space.json that this configuration breaks on an adapter, as readable strings (the page runs
 *  this project's WGSL: the term `wgsl` is true here). */
export function violations(kernel, shape, params, limits = {}, features = []) {
  const env = { ...shape, ...params, ...derived(kernel, shape, params), limits: limits || {},
                features: new Set(features), wgsl: true };
  return getSpace()[kernel].restrictions.flatMap((rule) => rule.require
    .filter((req) => !holds(rule.when || {}, req, params, env)).map(([lhs, op, rhs]) => `${lhs} ${op} ${rhs}`));
}

/** A restriction's requirement holds for a configuration: its rule's `when` does not match, or it is met
 *  (native/space.py _holds). */
function holds(when, [lhs, op, rhs], params, env) {
  return Object.entries(when).some(([p, w]) => params[p] !== w) || OPS[op](term(lhs, env), term(rhs, env));
}

/** Every legal configuration of `grid` ({param: [values]}) for a shape, in native/space.py's order: the product of
 *  its values walked parameter by parameter, a partial configuration dropped at the first requirement it breaks
 *  whose terms are all set (native/space.py configurations). */
export function configurations(kernel, shape, grid, limits = {}, features = []) {
  const spec = getSpace()[kernel];
  const names = Object.keys(spec.params);
  const values = names.map((n) => (grid && grid[n] !== undefined ? grid[n] : [spec.default[n]]));
  const stages = requirementStages(kernel, names, shape);
  const env = { ...shape, limits: limits || {}, features: new Set(features), wgsl: true };
  const params = {};
  const out = [];
  const walk = (d) => {
    if (d === names.length) { out.push({ ...params }); return; }
    for (const v of values[d]) {
      params[names[d]] = v;
      const here = { ...env, ...params, ...(d === names.length - 1 ? derived(kernel, shape, params) : {}) };
      if (stages[d].every(([when, req]) => holds(when, req, params, here))) walk(d + 1);
    }
    delete params[names[d]];
  };
  walk(0);
  return out;
}

/** The requirements of space.json's restrictions, [when, requirement], by the index of the last parameter they need
 *  (native/space.py _stages): those of the rule's `when` and those a term names; a derived quantity needs them all. */
function requirementStages(kernel, names, shape) {
  const stages = names.map(() => []);
  for (const rule of getSpace()[kernel].restrictions) {
    const when = rule.when || {};
    for (const req of rule.require) {
      const need = Object.keys(when).map((p) => names.indexOf(p));
      for (const t of [req[0], req[2]]) {
        const fixed = typeof t !== "string" || t in shape || t === "wgsl" || /^(limits|features)\./.test(t);
        if (fixed) continue;
        need.push(names.includes(t) ? names.indexOf(t) : names.length - 1);
      }
      stages[Math.max(0, ...need)].push([when, req]);
    }
  }
  return stages;
}

export function defaultParams(kernel) { return { ...getSpace()[kernel].default }; }

/** st-core's built-in TopK rule as a configuration of our space (space.json topk.baseline documents it). */
export function stcoreFallback(rows, cols, k, subgroups) {
  let use2ce = cols > 32768 || k > 128;
  const wg = subgroups ? 256 : 128;
  const kl = k >= 64 ? 32 : k >= 16 ? 16 : 8;
  let ch = cols > 16384 ? 8192 : 0;
  if (!use2ce) ch = 0;
  else if (!(k <= ch && ch < cols)) {
    ch = nextPow2(Math.max(1024, k));
    if (ch >= cols) { use2ce = false; ch = 0; }
  }
  return { use_2ce: use2ce, wg, kl, ch, sg: !!subgroups, ls: true, radix: false, rb: 0, rch: 0 };
}

export function sameParams(a, b) {
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((n) => a[n] === b[n]);
}
