"""Per-kernel GPU time of our CUDA TopK for one shape and configuration: CUDA events between the launches of one
call, medians over repeats, so a reader sees where the time goes (e.g. the 2-stage path's histogram passes vs the
filter launch whose last block per row merges and sorts).

    python3 bench/cuda_phases.py [--rows 8 --cols 65536 --k 4096] [--params '{"use_2ce": true, ...}']
"""
from __future__ import annotations

import argparse
import json
import statistics

from spiraltorch_tuner import cases
from spiraltorch_tuner.cuda import CudaBackend


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--cols", type=int, default=65536)
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--params", default=None, help="JSON; default: the backend's default for the shape")
    ap.add_argument("--repeats", type=int, default=50)
    a = ap.parse_args()
    import cupy as cp
    cb = CudaBackend()
    x = cases.topk_input(1, a.rows, a.cols, "uniform")
    xd = cp.asarray(x)
    params = json.loads(a.params) if a.params else None
    p, launches = cb._topk_plan(a.rows, a.cols, a.k, params)
    ov = cp.empty((a.rows, a.k), dtype=cp.float32)
    oi = cp.empty((a.rows, a.k), dtype=cp.int64)
    plan = launches(xd, ov, oi)
    times = [[] for _ in plan]
    total = []
    for it in range(a.repeats + 5):
        cb.spin(100.0)
        evs = [cp.cuda.Event() for _ in range(len(plan) + 1)]
        evs[0].record()
        for i, (name, grid, block, args, smem) in enumerate(plan):
            cb._launch(name, grid, block, args, smem)
            evs[i + 1].record()
        evs[-1].synchronize()
        if it >= 5:
            for i in range(len(plan)):
                times[i].append(cp.cuda.get_elapsed_time(evs[i], evs[i + 1]) * 1e3)
            total.append(cp.cuda.get_elapsed_time(evs[0], evs[-1]) * 1e3)
    print(f"{a.rows}x{a.cols} k={a.k} params {p}")
    for (name, grid, block, _, smem), t in zip(plan, times):
        print(f"  {name:<12} grid {grid} block {block} smem {smem}: {statistics.median(t):7.1f} us")
    print(f"  total {statistics.median(total):7.1f} us")


if __name__ == "__main__":
    main()
