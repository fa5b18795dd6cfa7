"""The CUDA radix pipeline in one launch (topk_cluster: a row's blocks are one thread-block cluster, sm_90+) against
DEFAULT_TABLE's configuration, on shapes of few long rows: 2, 4, 8 and 16 blocks a row at 256, 512 and 1024 threads,
sorted and unsorted (sorted=False, as FlashInfer's default). Every answer is checked first (sorted: bit for bit
against the NumPy oracle; unsorted: the oracle's set, graded as the anchors are), then timed (CUDA events, medians
of 50). The run behind native/cuda.py's CLUSTER_TABLE and CLUSTER_TABLE_UNSORTED. Needs CuPy and an H100/H200.

    python3 bench/cuda_cluster_shapes.py OUT.json
"""
from __future__ import annotations

import json
import sys

import bench_gpu as B
from spiraltorch_tuner.cuda import CudaBackend, radix_params
from spiraltorch_tuner.errors import ParamsError

SHAPES = [(8, 65536, 4096), (8, 65536, 64), (64, 32768, 256), (1, 65536, 2048), (1, 262144, 1024),
          (8, 131072, 1024), (8, 65536, 1024), (32, 65536, 256), (16, 65536, 512), (2, 131072, 256), (64, 65536, 64)]
BLOCKS = (2, 4, 8, 16)
WGS = (256, 512, 1024)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    cb = CudaBackend()
    cb._kernels()
    out = []
    for rows, cols, k, x, xd, rv, ri in B.oracle_inputs(SHAPES):
        d = cb.default_params(rows, cols, k)
        v, i = cb.topk2d_device(xd, k, d)
        rec = {"shape": [rows, cols, k], "table": d, "table_ok": B.cuda_exact(v, i, rv, ri),
               "table_us": cb.time_topk2d_device(xd, k, d, 50, 5).median_ms * 1e3, "cluster": []}
        for blocks in BLOCKS:
            for wg in WGS:
                p = radix_params(cols, blocks, wg)
                for srt in (True, False):
                    r = {"blocks": blocks, "wg": wg, "sorted": srt}
                    try:
                        v, i = cb.topk2d_device(xd, k, p, sorted=srt)
                    except ParamsError as e:
                        r["error"] = str(e)
                        rec["cluster"].append(r)
                        continue
                    r["ok"] = B.cuda_exact(v, i, rv, ri) if srt else B.cuda_same_set(x, v, i, rv, ri)[0]
                    r["us"] = cb.time_topk2d_device(xd, k, p, 50, 5, sorted=srt).median_ms * 1e3
                    rec["cluster"].append(r)
        out.append(rec)
        for srt in (True, False):
            got = [r for r in rec["cluster"] if r["sorted"] == srt and "us" in r]
            best = min(got, key=lambda r: r["us"]) if got else None
            bad = sum(not r["ok"] for r in got)
            print(f"{rows}x{cols} k={k} {'sorted' if srt else 'unsorted'}: table {rec['table_us']:.1f} us; best "
                  + (f"{best['blocks']}x{best['wg']} {best['us']:.1f} us" if best else "-")
                  + f"; {bad} wrong; " + " ".join(f"{r['blocks']}/{r['wg']}:{r['us']:.1f}" for r in got), flush=True)
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
