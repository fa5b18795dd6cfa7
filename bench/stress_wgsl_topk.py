"""Stress test of the WGSL TopK kernels (wgpu-py): every configuration of a small grid, 10 runs each on the same input,
each result compared bit for bit with the NumPy oracle. Written to catch races such as the one fixed in
"topk.wgsl: fix a race in radix_select" (seen once as a wrong result on the H100 for
{"use_2ce": true, "wg": 256, "kl": 4, "ch": 4096, "sg": true} on 16x1048576 k=4096).

    python3 bench/stress_wgsl_topk.py                      # all shapes, 10 runs per configuration
    python3 bench/stress_wgsl_topk.py --runs 50            # more runs per configuration
    python3 bench/stress_wgsl_topk.py --backend cpu        # dry run of this script's logic on the NumPy backend

On the lent GPU machine (with wgpu-py and the Vulkan loader carried in .gpu/, as for bench/bench_gpu.py):

    for f in .gpu/deb/*.deb; do dpkg -x $f /; done; ldconfig; python3 -m pip install -q --no-index --no-deps \
      --no-compile --target /tmp/site .gpu/whl/*.whl; mkdir -p /tmp/pkg; ln -sfn $PWD/native /tmp/pkg/spiraltorch_tuner; \
      export PYTHONPATH=/tmp/site:/tmp/pkg XDG_RUNTIME_DIR=/tmp; python3 bench/stress_wgsl_topk.py | tee $OUT/stress.txt

Grid: use_2ce True/False, wg 256/1024, kl 4, ch 4096/8192 (and ch 0, the only legal value for 1CE), sg False/True,
and the radix pipeline (radix True, rb 8/11, rch 2048/8192; its workgroup is 256); only the configurations spiraltorch_tuner.space.configurations calls legal for the shape and this adapter's limits and
features are run. Input: spiraltorch_tuner.gen.floats(seed 1, (rows, cols)). Prints one line per configuration
("ok N/RUNS"), then the total of wrong results; exits 1 if any result was wrong (or a run raised).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from spiraltorch_tuner import gen
from spiraltorch_tuner.cpu import topk_reference
from spiraltorch_tuner.errors import SpiralTorchError
from spiraltorch_tuner.space import configurations

SHAPES = [(16, 1048576, 4096), (8, 65536, 4096), (64, 32768, 256)]
GRID = {"use_2ce": [True, False], "wg": [256, 1024], "kl": [4], "ch": [0, 4096, 8192], "sg": [False, True],
        "radix": [False, True], "rb": [0, 8, 11], "rch": [0, 2048, 8192]}


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        np.ascontiguousarray(a).view(np.uint32), np.ascontiguousarray(b).view(np.uint32))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per configuration (default 10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backend", choices=("wgpu", "cpu"), default="wgpu",
                    help="wgpu (the point of this script) or cpu (checks the script itself, no GPU needed)")
    args = ap.parse_args(argv)

    if args.backend == "wgpu":
        from spiraltorch_tuner.wgpu_backend import WgpuBackend
        be = WgpuBackend()
    else:
        from spiraltorch_tuner.cpu import CpuBackend
        be = CpuBackend()
    ok, why = be.available()
    if not ok:
        print(f"{args.backend} backend unavailable: {why}", flush=True)
        return 2
    info = be.info()
    limits, features = info.get("limits", {}), info.get("features", [])
    print(f"backend: {info.get('name')} {info.get('device')} ({info.get('backend', '')}); features {features}; "
          f"runs per configuration {args.runs}", flush=True)

    total_runs = total_wrong = total_err = 0
    bad_configs = []
    t_all = time.perf_counter()
    for rows, cols, k in SHAPES:
        shape = {"rows": rows, "cols": cols, "k": k}
        x = gen.floats(args.seed, (rows, cols))
        rv, ri = topk_reference(x, k)
        cfgs = configurations("topk", shape, GRID, limits, features)
        print(f"-- topk {rows}x{cols} k={k}: {len(cfgs)} legal configurations", flush=True)
        for p in cfgs:
            good = wrong = err = 0
            notes = []
            t0 = time.perf_counter()
            for r in range(args.runs):
                try:
                    v, i = be.topk2d(x, k, p)
                except SpiralTorchError as e:
                    err += 1
                    notes.append(f"run {r}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                    continue
                if np.array_equal(i, ri) and same_bits(v, rv):
                    good += 1
                else:
                    wrong += 1
                    if i.shape == ri.shape:
                        bad_rows = np.flatnonzero(np.any(i != ri, axis=1) | np.any(
                            v.view(np.uint32) != rv.view(np.uint32), axis=1))
                        notes.append(f"run {r}: {bad_rows.size} of {rows} rows differ (first {bad_rows[:4].tolist()})")
                    else:
                        notes.append(f"run {r}: shape {i.shape} != {ri.shape}")
            dt = time.perf_counter() - t0
            total_runs += args.runs
            total_wrong += wrong
            total_err += err
            line = f"   {p}: ok {good}/{args.runs}"
            if wrong or err:
                line += f"  WRONG {wrong}" + (f" ERRORS {err}" if err else "")
                bad_configs.append((f"{rows}x{cols} k={k}", p, wrong, err))
            print(line + f"  ({dt:.1f} s)", flush=True)
            for n in notes[:5]:
                print(f"      {n}", flush=True)
    print("", flush=True)
    print(f"total: {total_wrong} wrong results and {total_err} errors in {total_runs} runs "
          f"({time.perf_counter() - t_all:.0f} s)", flush=True)
    for s, p, w, e in bad_configs:
        print(f"   failing: {s} {p}: {w} wrong, {e} errors", flush=True)
    return 1 if (total_wrong or total_err) else 0


if __name__ == "__main__":
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    sys.exit(main())
