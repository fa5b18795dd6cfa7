// The inputs a tuning run measures, built from (seed, shape) with gen.js by native/cases.py's rules, so a
// browser run can be replayed natively. where_nd inputs are strided views {data, shape, offset, strides} with
// offset and strides in elements; `shape` is the view's own shape (before broadcasting to the output).

import { floats, ints, bools, STREAM_TOPK, STREAM_COND, STREAM_X, STREAM_Y } from "./gen.js";

export const WHERE_CASES = ["contiguous", "neg_stride", "broadcast"];
export const WHERE_DTYPES = ["float32", "int32"];

export function topkInput(seed, rows, cols, dist = "uniform") {
  return floats(seed, rows * cols, STREAM_TOPK, dist);
}

const prod = (s) => s.reduce((a, b) => a * b, 1);

function contiguousStrides(shape) {
  const st = new Array(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) { st[d] = s; s *= shape[d]; }
  return st;
}

export function dense(data, shape) {
  return { data, shape: [...shape], offset: 0, strides: contiguousStrides(shape) };
}

const values = (seed, n, stream, dtype) => (dtype === "float32" ? floats(seed, n, stream) : ints(seed, n, stream));

/** {cond, x, y} views of a where_nd case at output shape `shape`. */
export function whereInputs(kase, shape, dtype = "float32", seed = 1) {
  if (!WHERE_CASES.includes(kase)) throw new Error(`unknown where_nd case ${kase}; allowed: ${WHERE_CASES.join(", ")}`);
  if (!WHERE_DTYPES.includes(dtype)) throw new Error(`unknown dtype ${dtype}; allowed: ${WHERE_DTYPES.join(", ")}`);
  const n = prod(shape);
  const x = dense(values(seed, n, STREAM_X, dtype), shape);
  if (kase === "broadcast") {
    const cshape = [...shape.slice(0, -1), 1];
    return { cond: dense(bools(seed, prod(cshape), STREAM_COND), cshape), x,
             y: dense(values(seed, 1, STREAM_Y, dtype), [1]) };
  }
  const cond = dense(bools(seed, n, STREAM_COND), shape);
  const y = dense(values(seed, n, STREAM_Y, dtype), shape);
  if (kase === "neg_stride") {   // x[..., ::-1, :]: element (..., i, j) = base(..., n-1-i, j)
    const axis = shape.length >= 2 ? shape.length - 2 : 0;
    x.offset = (shape[axis] - 1) * x.strides[axis];
    x.strides[axis] = -x.strides[axis];
  }
  return { cond, x, y };
}

/** A view's element strides per output dimension (NumPy broadcasting: leading dims and size-1 dims get 0). */
export function broadcastStrides(view, outShape) {
  const lead = outShape.length - view.shape.length;
  return outShape.map((_, d) => (d < lead || view.shape[d - lead] === 1 ? 0 : view.strides[d - lead]));
}
