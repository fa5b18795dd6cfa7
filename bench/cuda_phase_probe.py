"""Where the CUDA TopK's time goes: each launch of a configuration's plan timed as the difference between running
the plan's first i launches and its first i - 1 (CUDA events around a spin kernel, as bench_gpu.py times a call), on
bench_gpu.py's TopK shapes (uniform inputs) with the default configuration or --params. The full plan's answer is
checked against the NumPy oracle first. Needs CuPy and an NVIDIA GPU.

    python3 bench/cuda_phase_probe.py --out phases.json
    python3 bench/cuda_phase_probe.py --shapes 1024,65536,128 \
        --params '{"use_2ce": true, "wg": 512, "kl": 4, "ch": 8192, "sg": false}' --out p.json
"""
from __future__ import annotations

import argparse
import json

import bench_gpu as B
from spiraltorch_tuner.cuda import CudaBackend


def shape_arg(s: str) -> tuple[int, int, int]:
    try:
        rows, cols, k = (int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: give ROWS,COLS,K") from None
    return rows, cols, k


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", nargs="+", type=shape_arg, default=B.TOPK_SHAPES, help="ROWS,COLS,K ...")
    ap.add_argument("--params", type=json.loads, default=None, help="a CUDA configuration (JSON); default: the table's")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmups", type=int, default=5)
    args = ap.parse_args()
    import cupy as cp
    cb = CudaBackend()
    out = {"device": cb.info(), "params": args.params, "shapes": []}
    for rows, cols, k, _, xd, rv, ri in B.oracle_inputs(args.shapes):
        v, i = cb.topk2d_device(xd, k, args.params)
        ok = B.cuda_exact(v, i, rv, ri)
        p, launches = cb._topk_plan(rows, cols, k, args.params)
        ov = cp.empty((rows, k), dtype=cp.float32)
        oi = cp.empty((rows, k), dtype=cp.int64)
        ls = launches(xd, ov, oi)
        cum = [0.0]
        for n in range(1, len(ls) + 1):
            t = cb.time_device(lambda: cb._run(ls[:n]), args.repeats, args.warmups)
            cum.append(t.median_ms * 1e3)
        steps = [{"kernel": ls[n][0], "grid": list(ls[n][1]), "block": list(ls[n][2]), "us": cum[n + 1] - cum[n]}
                 for n in range(len(ls))]
        out["shapes"].append({"rows": rows, "cols": cols, "k": k, "params": p, "ok": ok, "total_us": cum[-1],
                              "steps": steps})
        print(f"{rows}x{cols} k={k} {'exact' if ok else 'WRONG'} {cum[-1]:.1f} us: "
              + ", ".join(f"{s['kernel']} {tuple(s['grid'])}x{s['block'][0]} {s['us']:+.1f}" for s in steps),
              flush=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
