"""A browser run beside a native run of the same TopK space on the same GPU: per configuration browser time / native
time (geometric mean and spread), the fastest configuration per shape (agreement, and the native time of the
browser's fastest over the native fastest), measurements the heuristics would drop (clock over 1.06), run times.

    python3 bench/browser_vs_native.py NATIVE.json BROWSER.json [BROWSER.json ...]

The rule of each run judged on the other's measurements is `spiraltorch-tuner judge` (docs/browser-gpu.md)."""
from __future__ import annotations

import json
import math
import statistics
import sys


def topk(path):
    doc = json.load(open(path))
    return doc, {(m["rows"], m["cols"], m["k"], json.dumps(m["params"], sort_keys=True)): m
                 for m in doc["measurements"] if m["ok"] and m["kernel"] == "topk"}


def geomean(xs):
    return math.exp(statistics.mean(math.log(x) for x in xs))


def main(native_path, *browser_paths):
    nd, native = topk(native_path)
    print(f"native: {len(native)} configurations in {nd['duration_s']:.1f} s ({native_path})")
    for path in browser_paths:
        bd, browser = topk(path)
        keys = [k for k in browser if k in native]
        r = sorted(browser[k]["median_ms"] / native[k]["median_ms"] for k in keys)
        q = lambda p: r[min(len(r) - 1, int(p * len(r)))]          # noqa: E731
        shapes = sorted({k[:3] for k in keys})
        agree, regret = 0, []
        for s in shapes:
            ks = [k for k in keys if k[:3] == s]
            b = min(ks, key=lambda k: browser[k]["median_ms"])
            n = min(ks, key=lambda k: native[k]["median_ms"])
            agree += b == n
            regret.append(native[b]["median_ms"] / native[n]["median_ms"])
        hot = sum((m.get("clock") or 0) > 1.06 for m in browser.values())
        print(f"{path}\n  {len(keys)} configurations in both; {bd['duration_s']:.1f} s, "
              f"{bd['duration_s'] / nd['duration_s']:.2f}x native's tuning time\n"
              f"  browser / native time per configuration: geomean {geomean(r):.3f}, p5 {q(0.05):.3f}, "
              f"median {q(0.5):.3f}, p95 {q(0.95):.3f}, min {r[0]:.3f}, max {r[-1]:.3f}\n"
              f"  fastest configuration the same on {agree} of {len(shapes)} shapes; native time of the browser's "
              f"fastest / native fastest: geomean {geomean(regret):.3f}, worst {max(regret):.3f}\n"
              f"  measurements at a lowered clock (clock > 1.06, dropped by the heuristics): {hot}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
