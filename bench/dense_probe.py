"""Does a denser shape grid make the fitted TopK rule generalise better? Tunes the full preset's parameter space on a
4x-spaced grid (rows 1..256, cols 4096..262144, k 8..512, at most 2^22 elements: 68 shapes) through wgpu-py and
writes the run document; `spiraltorch-tuner report` (or server.report.report) on it gives the leave-one-shape-out
regret to set beside the 8x-spaced full run's.

    python3 bench/dense_probe.py OUT.json
"""
import json, sys, time
from _checkout import ensure_spiraltorch
ensure_spiraltorch()
from spiraltorch.tuner import preset_space, tune
spec = dict(preset_space("full"))
spec.pop("where_nd", None)
shapes = []
for r in (1, 4, 16, 64, 256):
    for c in (4096, 16384, 65536, 262144):
        if r * c > 2 ** 22:
            continue
        for k in (8, 32, 128, 512):
            shapes.append([r, c, k])
spec["topk"] = dict(spec["topk"], shapes=shapes)
t0 = time.perf_counter()
doc = tune("wgpu", "full", spec, label="dense probe (4x grid)",
           progress=lambda i, n, m: print(f"[{i}/{n}] {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True) if i % 100 == 0 else None)
json.dump(doc, open(sys.argv[1], "w"))
print(len(shapes), "shapes", len(doc["measurements"]), "measurements", doc["duration_s"], "s")
