"""WGSL direct where_nd kernel times (GPU timestamps, inputs resident, as bench/bench_gpu.py times them) over
wg x vpt, per case, on 2^26 float32 (or --shape), as a fraction of the device copy (CUDA, so CuPy is needed).
Every result is checked against np.where before its time counts.

    python3 bench/where_kernel_grid.py --out where-kernel-grid.json
    python3 bench/where_kernel_grid.py --shape 96,80,100,88 --cases broadcast --out ...   # no power-of-two size
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import bench_gpu as B
from spiraltorch_tuner import cases
from spiraltorch_tuner.cuda import CudaBackend
from spiraltorch_tuner.wgpu_backend import WgpuBackend


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmups", type=int, default=5)
    ap.add_argument("--shape", default=",".join(map(str, B.WHERE_SHAPE)), help="output shape (default: the bench's)")
    ap.add_argument("--cases", default=",".join(cases.WHERE_CASES), help="comma-separated where_nd cases")
    args = ap.parse_args()
    try:
        shape = tuple(int(n) for n in args.shape.split(","))
    except ValueError:
        ap.error(f"--shape {args.shape}: give 1..6 sizes, comma-separated integers")
    case_list = args.cases.split(",")
    if not 1 <= len(shape) <= 6 or min(shape) < 1:
        ap.error(f"--shape {args.shape}: give 1..6 positive sizes")
    if not set(case_list) <= set(cases.WHERE_CASES):
        ap.error(f"--cases {args.cases}: allowed: {', '.join(cases.WHERE_CASES)}")
    cb, wb = CudaBackend(), WgpuBackend()
    numel = int(np.prod(shape))
    copy = cb.time_copy(numel * 4, repeats=args.repeats, warmups=args.warmups)
    gbs = 2 * numel * 4 / (copy.median_ms * 1e-3) / 1e9
    print(f"device copy of {numel} float32: {copy.median_ms * 1e3:.1f} us = {gbs:.0f} GB/s; shape {shape}", flush=True)
    out = {"device": wb.info().get("device"), "shape": list(shape), "copy_gbs": gbs, "rows": []}
    params = space_grid(wb)
    for case in case_list:
        c, x, y = cases.where_inputs(case, shape, "float32", seed=1)
        ref = np.where(c, x, y)
        nbytes = c.size * c.itemsize + x.size * 4 + y.size * 4 + numel * 4
        for p in params:
            t, res = wb.time_where_kernel(c, x, y, p, args.repeats, args.warmups)
            if not B.same_bits(res, ref):
                print(f"{case:<11} {p}: WRONG RESULT", flush=True)
                continue
            frac = nbytes / (t.median_ms * 1e-3) / 1e9 / gbs
            out["rows"].append({"case": case, **p, "us": t.median_ms * 1e3, "of_copy": frac})
            print(f"{case:<11} wg {p['wg']:<5} vpt {p['vpt']}: {t.median_ms * 1e3:7.1f} us  {frac:.2f} of copy",
                  flush=True)
    for case in case_list:
        best = max((r for r in out["rows"] if r["case"] == case), key=lambda r: r["of_copy"])
        print(f"best {case}: wg {best['wg']} vpt {best['vpt']}, {best['us']:.1f} us, {best['of_copy']:.2f} of copy")
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


def space_grid(wb) -> list[dict]:
    """wg 64..1024 (as far as the adapter allows) x vpt 1..8: the full preset's direct-path grid and wg 1024."""
    cap = wb.info()["limits"].get("maxComputeInvocationsPerWorkgroup", 256)
    return [{"path": "direct", "wg": wg, "vpt": vpt} for wg in (64, 128, 256, 512, 1024) if wg <= cap
            for vpt in (1, 2, 4, 8)]


if __name__ == "__main__":
    raise SystemExit(main())
