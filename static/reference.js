// Reference answers every configuration is checked against, with native/cpu.py's semantics.
// TopK: the k largest per row, sorted descending by the composite key (order-preserving float key, then lower
// column first); NaN is larger than every number (all NaNs equal), -0.0 < +0.0.

/** Order-preserving u32 key of float32 bits: NaN -> 0xffffffff, negatives flipped, positives with the top bit. */
export function sortKey(b) {
  b >>>= 0;
  if ((b & 0x7fffffff) >>> 0 > 0x7f800000) return 0xffffffff;
  return (b & 0x80000000) ? (~b) >>> 0 : (b | 0x80000000) >>> 0;
}

/** x: Float32Array [rows * cols]. Returns {values: Float32Array, indices: Uint32Array}, each [rows * k]. */
export function topkReference(x, rows, cols, k) {
  const bits = new Uint32Array(x.buffer, x.byteOffset, rows * cols);
  const values = new Float32Array(rows * k);
  const vbits = new Uint32Array(values.buffer);
  const indices = new Uint32Array(rows * k);
  const keys = new Uint32Array(cols);
  const heap = new Int32Array(k);   // min-heap of columns by composite key: the smallest of the k best on top
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) keys[c] = sortKey(bits[base + c]);
    // a > b in composite order: larger key, or equal key and lower column
    const gt = (a, b) => keys[a] > keys[b] || (keys[a] === keys[b] && a < b);
    let size = 0;
    const siftDown = (i) => {
      for (;;) {
        const l = 2 * i + 1, rr = l + 1;
        let m = i;
        if (l < size && gt(heap[m], heap[l])) m = l;
        if (rr < size && gt(heap[m], heap[rr])) m = rr;
        if (m === i) return;
        const t = heap[i]; heap[i] = heap[m]; heap[m] = t; i = m;
      }
    };
    for (let c = 0; c < cols; c++) {
      if (size < k) {
        let i = size++;
        heap[i] = c;
        while (i > 0) {
          const p = (i - 1) >> 1;
          if (!gt(heap[p], heap[i])) break;
          const t = heap[i]; heap[i] = heap[p]; heap[p] = t; i = p;
        }
      } else if (gt(c, heap[0])) {
        heap[0] = c;
        siftDown(0);
      }
    }
    const picked = Array.from(heap.subarray(0, k)).sort((a, b) => (gt(a, b) ? -1 : gt(b, a) ? 1 : 0));
    for (let j = 0; j < k; j++) {
      indices[r * k + j] = picked[j];
      vbits[r * k + j] = bits[base + picked[j]];
    }
  }
  return { values, indices };
}

/**
 * out = cond ? x : y over an output shape, each input a strided view {data, offset, strides} in elements
 * (strides per output dimension, 0 where broadcast, negative where reversed). cond data is one byte per element;
 * x and y are 32-bit arrays (float32 or int32, compared as bits). Returns a Uint32Array of the output bits.
 */
export function whereReference(shape, cond, x, y) {
  const numel = shape.reduce((a, b) => a * b, 1);
  const nd = shape.length;
  const xb = bits32(x.data), yb = bits32(y.data);
  const out = new Uint32Array(numel);
  const coord = new Array(nd).fill(0);
  let oc = cond.offset, ox = x.offset, oy = y.offset;
  for (let i = 0; i < numel; i++) {
    out[i] = cond.data[oc] ? xb[ox] : yb[oy];
    for (let d = nd - 1; d >= 0; d--) {   // odometer step over the output coordinates
      coord[d]++;
      oc += cond.strides[d]; ox += x.strides[d]; oy += y.strides[d];
      if (coord[d] < shape[d]) break;
      oc -= cond.strides[d] * shape[d]; ox -= x.strides[d] * shape[d]; oy -= y.strides[d] * shape[d];
      coord[d] = 0;
    }
  }
  return out;
}

export function bits32(a) {
  return a instanceof Uint32Array ? a : new Uint32Array(a.buffer, a.byteOffset, a.length);
}
