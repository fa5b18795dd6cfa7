"""The CUDA TopK's 1CE path (topk_rows, or topk_stream where a row does not fit in shared memory) against the
2-stage path on shapes of many long rows: each configuration's answer checked against the NumPy oracle, then timed
(CUDA events, medians of 30). The run behind native/cuda.py's DEFAULT_TABLE rows for such shapes. Needs CuPy and an
NVIDIA GPU.

    python3 bench/cuda_stream_shapes.py OUT.json
"""
from __future__ import annotations

import json
import sys

import bench_gpu as B
from spiraltorch_tuner.cuda import CudaBackend

SHAPES = [(512, 50000, 64), (256, 65536, 256), (132, 131072, 64), (2048, 65536, 32), (1024, 65536, 128),
          (200, 200000, 64), (64, 65536, 128), (132, 65536, 128), (300, 40000, 16), (1024, 65536, 2048)]
CONFIGS = [("2ce-8192-512", {"use_2ce": True, "wg": 512, "kl": 4, "ch": 8192, "sg": False}),
           ("2ce-4096-1024", {"use_2ce": True, "wg": 1024, "kl": 4, "ch": 4096, "sg": False}),
           ("1ce-256", {"use_2ce": False, "wg": 256, "kl": 8, "ch": 0, "sg": False}),
           ("1ce-512", {"use_2ce": False, "wg": 512, "kl": 16, "ch": 0, "sg": False}),
           ("1ce-1024", {"use_2ce": False, "wg": 1024, "kl": 32, "ch": 0, "sg": False})]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    cb = CudaBackend()
    cb._kernels()
    out = []
    for rows, cols, k, _, xd, rv, ri in B.oracle_inputs(SHAPES):
        res = {}
        for name, p in CONFIGS:
            names = [ln[0] for ln in cb._topk_plan(rows, cols, k, p)[1](None, None, None)]
            v, i = cb.topk2d_device(xd, k, p)
            ok = B.cuda_exact(v, i, rv, ri)
            t = cb.time_topk2d_device(xd, k, p, 30, 3)
            res[name] = (round(t.median_ms * 1e3, 1), ok, "+".join(n[5:] for n in names))
        out.append({"shape": [rows, cols, k], "res": res})
        print(f"{rows}x{cols} k={k}: " + " | ".join(f"{n} {r}" for n, r in res.items()), flush=True)
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
