"""A browser run beside a native run of the same space on the same GPU, per kernel: per configuration browser
time / native time (geometric mean and spread), the fastest configuration per shape (agreement, and the native time
of the browser's fastest over the native fastest), measurements the heuristics would drop (clock over 1.06), run
times. TopK compares median_ms; where_nd compares kernel_ms (the kernel alone, inputs resident, on GPU timestamps:
its median_ms is wall-clock time with the uploads, which the heuristics pool per path).

    python3 bench/browser_vs_native.py NATIVE.json BROWSER.json [BROWSER.json ...]

The rule of each run judged on the other's measurements is `spiraltorch-tuner judge` (docs/browser-gpu.md)."""
from __future__ import annotations

import json
import math
import statistics
import sys


def key(m):
    """(shape key, configuration key) of a measurement."""
    p = json.dumps(m["params"], sort_keys=True)
    if m["kernel"] == "topk":
        return (m["rows"], m["cols"], m["k"]), p
    return (m["case"], tuple(m["shape"]), m["dtype"]), p


def load(path):
    """(document, {kernel: {(shape, config): time in ms}}) of the correct measurements."""
    doc = json.load(open(path))
    out = {}
    for m in doc["measurements"]:
        t = m["median_ms"] if m["kernel"] == "topk" else m.get("kernel_ms")
        if m["ok"] and t:
            out.setdefault(m["kernel"], {})[key(m)] = (t, m.get("clock"))
    return doc, out


def geomean(xs):
    return math.exp(statistics.mean(math.log(x) for x in xs))


def compare(kernel, native, browser):
    keys = [k for k in browser if k in native]
    if not keys:
        return f"  {kernel}: no configuration in both"
    r = sorted(browser[k][0] / native[k][0] for k in keys)
    q = lambda p: r[min(len(r) - 1, int(p * len(r)))]          # noqa: E731
    shapes = sorted({k[0] for k in keys}, key=str)
    agree, regret = 0, []
    for s in shapes:
        ks = [k for k in keys if k[0] == s]
        b = min(ks, key=lambda k: browser[k][0])
        n = min(ks, key=lambda k: native[k][0])
        agree += b == n
        regret.append(native[b][0] / native[n][0])
    hot = sum((c or 0) > 1.06 for _, c in browser.values())
    what = "median_ms" if kernel == "topk" else "kernel_ms"
    return (f"  {kernel}: {len(keys)} configurations in both ({what})\n"
            f"    browser / native time per configuration: geomean {geomean(r):.3f}, p5 {q(0.05):.3f}, "
            f"median {q(0.5):.3f}, p95 {q(0.95):.3f}, min {r[0]:.3f}, max {r[-1]:.3f}\n"
            f"    fastest configuration the same on {agree} of {len(shapes)} shapes; native time of the browser's "
            f"fastest / native fastest: geomean {geomean(regret):.3f}, worst {max(regret):.3f}\n"
            f"    measurements at a lowered clock (clock > 1.06, dropped by the heuristics): {hot}")


def main(native_path, *browser_paths):
    nd, native = load(native_path)
    print(f"native: {sum(map(len, native.values()))} configurations in {nd['duration_s']:.1f} s ({native_path})")
    for path in browser_paths:
        bd, browser = load(path)
        print(f"{path}\n  {bd['duration_s']:.1f} s, {bd['duration_s'] / nd['duration_s']:.2f}x native's tuning time")
        for kernel in sorted(browser):
            print(compare(kernel, native.get(kernel, {}), browser[kernel]))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
