"""When each block of topk_cluster starts and ends (the global timer, ns), from the kernel compiled with CL_TIMELINE:
how far apart the clusters start, when each ends, how long a block lives, and when (median over blocks, from their
start) each phase ends: the row loaded, each radix pass's cluster barrier and its bin picked, the broadcast, the keys
selected. The rest of the device time of a call is launch and teardown (bench/cuda_floor.py: an empty kernel). Needs
CuPy and an H100/H200.

    python3 bench/cluster_timeline.py
"""
from __future__ import annotations

import re

import numpy as np

from spiraltorch_tuner import cases
from spiraltorch_tuner.cuda import CudaBackend, radix_params
from spiraltorch_tuner.shaders import cuda_source

PHASES = {2: "loaded", 3: "barrier 1", 4: "pick 1", 5: "barrier 2", 6: "pick 2", 7: "barrier 3", 8: "pick 3",
          11: "reserved", 12: "compacted", 13: "copied", 10: "broadcast", 9: "selected", 1: "end"}
CASES = [((8, 65536, 4096), False, 16, 512), ((8, 65536, 4096), False, 8, 1024), ((8, 65536, 4096), True, 8, 1024),
         ((8, 65536, 64), False, 16, 512), ((8, 65536, 64), True, 8, 512), ((64, 32768, 256), False, 2, 1024),
         ((64, 32768, 256), False, 16, 512)]


def main() -> int:
    import cupy as cp
    cb = CudaBackend()
    cb._kernels()
    src = cuda_source()
    mod = cp.RawModule(code=src, options=("-std=c++17", "-DCL_TIMELINE"))
    cb._kern["topk_cluster"] = mod.get_function("topk_cluster")
    nstamp = int(re.search(r"#define CL_NSTAMP (\d+)", src).group(1))   # cl_timeline[CL_NSTAMP][8192]
    stamps = cp.ndarray((nstamp, 8192), cp.uint64, mod.get_global("cl_timeline"))
    for (rows, cols, k), srt, blocks, wg in CASES:
        x = cp.asarray(cases.topk_input(1, rows, cols))
        p = radix_params(cols, blocks, wg)
        for _ in range(5):                    # the last of five calls, each after a spin as bench_gpu times them
            stamps.fill(0)
            cb.spin(200)
            cb.topk2d_device(x, k, p, sorted=srt)
            cp.cuda.Device().synchronize()
        t = cp.asnumpy(stamps).astype(np.int64).reshape(nstamp, -1, 16)[:, :rows, :blocks]
        s0, s1 = (t[0] - t[0].min()) / 1e3, (t[1] - t[0].min()) / 1e3
        print(f"{rows}x{cols} k={k} {'sorted' if srt else 'unsorted'} {blocks} blocks x {wg}: last block starts at "
              f"{s0.max():.2f} us, last ends at {s1.max():.2f} us, a block lives {np.median(s1 - s0):.2f} us "
              f"(median); clusters end at {np.round(np.sort(s1.max(1)), 1)[:8].tolist()}", flush=True)
        seen = [f"{name} {np.median((t[w] - t[0])[t[w] > 0]) / 1e3:.2f} ({int((t[w] > 0).sum())})"
                for w, name in PHASES.items() if (t[w] > 0).any()]
        print("    phases, us from the block's start (median; blocks that got there): " + ", ".join(seen), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
