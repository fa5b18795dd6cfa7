"""topk_cluster with and without the broadcast of the first pass's bin (native/cuda.py CLUSTER_BCAST), and optionally
an earlier topk.cu beside them, in one process on the same inputs: 11 shapes of 1-64 rows, 2-16 blocks a row,
sorted and unsorted; every answer checked (sorted: bit for bit against the NumPy oracle; unsorted: the oracle's
set); µs, the better of two medians of 50 (CUDA events). "on" lifts CLUSTER_BCAST_BLOCKS to 16, so the broadcast is
measured at every cluster size. Needs CuPy and an H100/H200.

    python3 bench/cluster_bcast_ab.py OUT.json [OLD_TOPK_CU]    # e.g. git show a59e51e:shaders/topk.cu > old.cu
"""
from __future__ import annotations

import json
import sys

import bench_gpu as B
from cuda_cluster_shapes import SHAPES     # the shapes behind CLUSTER_TABLE
from spiraltorch_tuner import cuda as C
from spiraltorch_tuner.cuda import CudaBackend, radix_params
from spiraltorch_tuner.errors import ParamsError
from spiraltorch_tuner.shaders import cuda_source

CONF = [(2, 512), (2, 1024), (4, 512), (8, 256), (8, 512), (8, 1024), (16, 512), (16, 1024)]


def old_kernel(path: str):
    """topk_cluster of an earlier topk.cu (the same prelude as today's source); it ignores the newer arguments."""
    import cupy as cp
    full, old = cuda_source(), open(path).read()
    start = "typedef unsigned int u32;"
    code = full[:full.index(start)] + old[old.index(start):]
    return cp.RawModule(code=code, options=("-std=c++17",)).get_function("topk_cluster")


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    cb = CudaBackend()
    cb._kernels()
    new = cb._kern["topk_cluster"]
    variants = {"off": (new, 0, 0), "on": (new, 4096, 16)}
    if len(sys.argv) == 3:
        variants = {"old": (old_kernel(sys.argv[2]), 0, 0), **variants}
    out = []
    for rows, cols, k, x, xd, rv, ri in B.oracle_inputs(SHAPES):
        for srt in (False, True):
            line = []
            for blocks, wg in CONF:
                p = radix_params(cols, blocks, wg)
                res = {}
                for _ in range(2):
                    for name, (kern, bcast, most) in variants.items():
                        cb._kern["topk_cluster"] = kern
                        C.CLUSTER_BCAST, C.CLUSTER_BCAST_BLOCKS = bcast, most
                        try:
                            v, i = cb.topk2d_device(xd, k, p, sorted=srt)
                        except ParamsError:
                            continue
                        ok = B.cuda_exact(v, i, rv, ri) if srt else B.cuda_same_set(x, v, i, rv, ri)[0]
                        us = cb.time_topk2d_device(xd, k, p, 50, 5, sorted=srt).median_ms * 1e3
                        prev = res.get(name)
                        res[name] = (ok and (prev is None or prev[0]), min(us, prev[1]) if prev else us)
                if len(res) == len(variants):
                    bad = [n for n in variants if not res[n][0]]
                    line.append(f"{blocks}x{wg}:" + "/".join(f"{res[n][1]:.1f}" for n in variants)
                                + (f" WRONG {bad}" if bad else ""))
                    out.append({"shape": [rows, cols, k], "sorted": srt, "blocks": blocks, "wg": wg,
                                **{n: {"ok": res[n][0], "us": res[n][1]} for n in variants}})
            print(f"{rows}x{cols} k={k} {'sorted' if srt else 'unsorted'} ({'/'.join(variants)}): " + " ".join(line),
                  flush=True)
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
