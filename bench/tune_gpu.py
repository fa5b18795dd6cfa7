"""Tune the WGSL kernels natively on a GPU through wgpu-py and save the run document (the same document a browser
run posts), to store with `spiraltorch-tuner` and turn into wgpu_heuristics.rs and a quality report:

    python3 bench/tune_gpu.py --out run.json            # on the GPU machine
    curl -X POST localhost:8000/api/runs -H 'content-type: application/json' --data-binary @run.json

The space: the issue's TopK shapes with a grid of the parameters that matter on a discrete GPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from spiraltorch.tuner import tune

SPACE = {
    "seed": 1, "repeats": 10, "warmups": 2,
    "topk": {"shapes": [[8, 65536, 4096], [8, 65536, 64], [1, 1048576, 1024], [64, 32768, 256],
                        [1024, 65536, 128], [256, 4096, 16], [4096, 1024, 8], [16, 1048576, 4096],
                        [32, 8192, 32], [128, 16384, 1]],
             "params": {"use_2ce": [False, True], "wg": [256, 512, 1024], "kl": [4, 8, 16, 32],
                        "ch": [0, 4096, 8192, 16384, 32768], "sg": [False, True]}},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="wgpu")
    args = ap.parse_args()
    t0 = time.perf_counter()

    def progress(i, n, m):
        if i % 20 == 0 or i == n or not m["ok"]:
            print(f"[{i}/{n}] {time.perf_counter() - t0:.0f}s {m['rows']}x{m['cols']} k={m['k']} {m['params']} "
                  f"{m.get('median_ms') or m.get('error')}", file=sys.stderr, flush=True)
    doc = tune(args.device, "custom", SPACE, label="H100 via wgpu-py (bench/tune_gpu.py)", progress=progress)
    doc["preset"] = "custom"
    with open(args.out, "w") as f:
        json.dump(doc, f)
    ok = sum(m["ok"] for m in doc["measurements"])
    print(f"{ok}/{len(doc['measurements'])} correct in {doc['duration_s']:.0f} s -> {args.out}", file=sys.stderr)
    return 0 if ok == len(doc["measurements"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
