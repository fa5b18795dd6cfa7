"""Tune the WGSL kernels natively on a GPU through wgpu-py and save the run document (the same document a browser
run posts), to store with `spiraltorch-tuner` and turn into wgpu_heuristics.rs and a quality report:

    python3 bench/tune_gpu.py --out run.json            # on the GPU machine
    .venv/bin/spiraltorch-tuner import run.json         # into the database (or POST it to /api/runs)

The space: the "full" preset of shaders/space.json (a grid of 44 TopK shapes, the benchmark's included, about 2,100
configurations with the radix pipeline's and wg 64; before them, 1,315 took 142 s on an H100, 91-131 s on an H200),
or --preset dense (a 4x lattice of 160 TopK shapes, about 7,100 configurations; before the radix pipeline and wg 64
4,450, 362 s on an H200); --kernels picks which of its kernels to tune (default: TopK only; where_nd's
cases, 14 shapes of up to 2^24 elements, time uploads on the wall clock: 290 s on an H200). --shapes R,C,K ...
replaces the preset's TopK shapes (same configurations), e.g. to judge a rule fitted on a full run on shapes off its
grid (bench/rule_probe.py --judge). --shapes-of RUN.json ... takes the TopK shapes of run documents instead.
--radix-only measures only the radix pipeline's configurations (radix true): to add them to runs made before the
pipeline existed, on the same shapes, so a merged rule can pick radix there too (bench/ship_rules.py). --params JSON
sets TopK parameter values instead of the preset's:

    python3 bench/tune_gpu.py --radix-only --shapes-of bench/results/h200-2026-11-29-lattice-topk.json --out r.json
    python3 bench/tune_gpu.py --shapes 4096,1024,8 --params '{"wg": [64, 128, 256], "radix": [false]}' --out r.json

Measured on the H200, 2026-11-30: the full preset with the radix pipeline, 1,491 configurations in 139 s
(bench/results/h200-2026-11-30-s21-full-topk.json); its wg 64 configurations alone (--params '{"wg": [64]}'), 644
in 74 s (...-s21-full-wg64.json).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from spiraltorch_tuner.tuner import preset_space, tune


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="wgpu")
    ap.add_argument("--preset", default="full")
    ap.add_argument("--kernels", default="topk", help="comma-separated: topk, where_nd")
    ap.add_argument("--shapes", nargs="*", help="TopK shapes ROWS,COLS,K instead of the preset's")
    ap.add_argument("--shapes-of", nargs="*", metavar="RUN.json", help="the TopK shapes of these run documents "
                    "instead of the preset's")
    ap.add_argument("--radix-only", action="store_true", help="only the radix pipeline's TopK configurations")
    ap.add_argument("--params", type=json.loads, default={}, metavar="JSON",
                    help='TopK parameter values instead of the preset\'s, e.g. \'{"wg": [64, 128]}\'')
    args = ap.parse_args()
    spec = dict(preset_space(args.preset))
    try:
        shapes = [[int(v) for v in s.split(",")] for s in args.shapes or []]
    except ValueError:
        ap.error(f"--shapes: {' '.join(args.shapes)}: each shape is ROWS,COLS,K (integers)")
    if any(len(s) != 3 for s in shapes):
        ap.error(f"--shapes: {' '.join(args.shapes)}: each shape is ROWS,COLS,K")
    for path in args.shapes_of or []:
        try:
            with open(path) as f:
                ms = json.load(f).get("measurements", [])
            shapes += sorted({(m["rows"], m["cols"], m["k"]) for m in ms if m.get("kernel") == "topk"})
        except (OSError, ValueError, AttributeError, KeyError, TypeError) as e:
            ap.error(f"--shapes-of {path}: not a readable run document ({type(e).__name__}: {e})")
    if shapes:
        spec["topk"] = {**spec["topk"], "shapes": [list(s) for s in dict.fromkeys(map(tuple, shapes))]}
    known = spec["topk"]["params"]
    given = args.params if isinstance(args.params, dict) else {"--params": args.params}
    bad = [f"{n}={v!r}" for n, v in given.items() if n not in known or not isinstance(v, list) or not v]
    if bad:
        ap.error(f"--params: {', '.join(bad)}: give a JSON object of TopK parameters ({', '.join(known)}), each with a "
                 f"non-empty list of values")
    params = {**known, **args.params, **({"radix": [True]} if args.radix_only else {})}
    spec["topk"] = {**spec["topk"], "params": params}
    for kernel in ("topk", "where_nd"):
        if kernel not in args.kernels.split(","):
            spec.pop(kernel, None)
    t0 = time.perf_counter()

    def progress(i, n, m):
        if i % 20 == 0 or i == n or not m["ok"]:
            shape = f"{m['rows']}x{m['cols']} k={m['k']}" if m["kernel"] == "topk" else f"{m['case']} {m['shape']}"
            print(f"[{i}/{n}] {time.perf_counter() - t0:.0f}s {shape} {m['params']} "
                  f"{m.get('median_ms') or m.get('error')}", file=sys.stderr, flush=True)
    doc = tune(args.device, args.preset, spec, label=f"{args.device} (bench/tune_gpu.py --preset {args.preset} "
               f"--kernels {args.kernels}{' --shapes ...' if shapes else ''}"
               f"{' --radix-only' if args.radix_only else ''}"
               f"{' --params ' + json.dumps(args.params) if args.params else ''})", progress=progress)
    with open(args.out, "w") as f:
        json.dump(doc, f)
    ok = sum(m["ok"] for m in doc["measurements"])
    print(f"{ok}/{len(doc['measurements'])} correct in {doc['duration_s']:.0f} s -> {args.out}", file=sys.stderr)
    return 0 if ok == len(doc["measurements"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
