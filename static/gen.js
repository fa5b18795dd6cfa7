// The shared input generator: an integer hash of (seed, stream, flat index) mapped to numbers.
// Bit-identical to native/gen.py, so any input the browser measured can be rebuilt natively.
// Streams: TopK input 0; where_nd cond 1, x 2, y 3.

export const STREAM_TOPK = 0, STREAM_COND = 1, STREAM_X = 2, STREAM_Y = 3;
export const DISTRIBUTIONS = ["uniform", "ties"];

export function lowbias32(x) {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** hash(seed, stream, i) for i in [start, start + n) as a Uint32Array (i taken modulo 2^32). */
export function hashU32(seed, stream, n, start = 0) {
  const key = lowbias32((seed >>> 0) ^ Math.imul(stream >>> 0, 0x9e3779b9));
  const out = new Uint32Array(n);
  for (let j = 0; j < n; j++) out[j] = lowbias32(((start + j) % 4294967296) ^ key);
  return out;
}

/** float32 values in [-1, 1): "uniform" keeps 24 random bits, "ties" only 4 (16 distinct values). */
export function floats(seed, n, stream = STREAM_TOPK, dist = "uniform") {
  if (!DISTRIBUTIONS.includes(dist)) {
    throw new Error(`unknown distribution ${JSON.stringify(dist)}; allowed: ${DISTRIBUTIONS.join(", ")}`);
  }
  const h = hashU32(seed, stream, n);
  const out = new Float32Array(n);
  if (dist === "uniform") for (let j = 0; j < n; j++) out[j] = (h[j] >>> 8) / 8388608 - 1;
  else for (let j = 0; j < n; j++) out[j] = (h[j] >>> 28) / 8 - 1;
  return out;
}

/** int32 values: the hash reinterpreted as signed. */
export function ints(seed, n, stream) {
  return new Int32Array(hashU32(seed, stream, n).buffer);
}

/** bools as one byte per element (0 or 1), the layout NumPy's bool and the where_nd kernel use. */
export function bools(seed, n, stream = STREAM_COND) {
  const h = hashU32(seed, stream, n);
  const out = new Uint8Array(n);
  for (let j = 0; j < n; j++) out[j] = h[j] & 1;
  return out;
}
