"""Does a denser shape grid make the fitted TopK rule generalise better? Tunes the full preset's TopK parameter space
through wgpu-py on a 4x-spaced grid (rows 1..256, cols 4096..262144, k 8..512, at most 2^22 elements: 68 shapes)
and writes the run document; `spiraltorch-tuner report` (or server/report.py report()) on it gives the
leave-one-shape-out regret to set beside the 8x-spaced full run's.

    python3 bench/dense_probe.py --out OUT.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from spiraltorch_tuner.tuner import preset_space, tune

ROWS, COLS, KS, MAX_ELEMENTS = (1, 4, 16, 64, 256), (4096, 16384, 65536, 262144), (8, 32, 128, 512), 2 ** 22


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    spec = dict(preset_space("full"))
    spec.pop("where_nd", None)
    shapes = [[r, c, k] for r in ROWS for c in COLS if r * c <= MAX_ELEMENTS for k in KS]
    spec["topk"] = dict(spec["topk"], shapes=shapes)
    t0 = time.perf_counter()

    def progress(i, n, m):
        if i % 100 == 0 or i == n:
            print(f"[{i}/{n}] {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    doc = tune("wgpu", "full", spec, label="dense probe (4x grid)", progress=progress)
    with open(args.out, "w") as f:
        json.dump(doc, f)
    print(f"{len(shapes)} shapes, {len(doc['measurements'])} measurements in {doc['duration_s']:.0f} s -> {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
