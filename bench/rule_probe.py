"""Two probes of the TopK rule's worst held-out regret, on committed run files (no GPU needed):

1. How much the worst case depends on which shapes a grid holds. `--add-from RUN --add R,C,K ...` adds shapes
   measured by another run of the same device (the same configurations) to the first run, then prints the
   leave-one-shape-out regret of the fitted rule (server/heuristics.py, as the report computes it).
2. `--cost-model`: instead of the decision tree, a learned cost model of the kind autotuners use: gradient-boosted
   regression trees over features of (shape, configuration) -- lg rows, lg cols, lg k, the configuration's
   parameters, lg of the elements, of the stage-1 workgroups and of the invocations launched, elements per
   invocation -- fitted to each measured configuration's log regret; a shape gets the configuration of least
   predicted regret. It sees what the tree cannot (e.g. how many workgroups a configuration launches on a shape),
   but its worst held-out regret is not lower on every run.

    python3 bench/rule_probe.py bench/results/h200-2026-11-29-full-topk.json \\
        --add-from bench/results/h200-2026-11-29-lattice-topk.json --add 256,65536,8
    python3 bench/rule_probe.py bench/results/h200-2026-11-29-full-topk.json --cost-model
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np

from _checkout import ensure_spiraltorch, heuristics

ensure_spiraltorch()
H = heuristics()


def tree_rule(train: dict):
    """The report's rule (heuristics.topk_table) fitted on {shape: {configuration: ms}}, subgroups allowed."""
    grid = H.ch_grid(H.grid_configs(train))
    tree = H.fit_tree(train, lambda c: True, grid)
    return lambda r, c, k: H.legalize(H.walk(tree, r, c, k), c, k, grid)


def _lg2(x: float) -> float:
    return math.log2(x) if x > 0 else 0.0


def pair_features(shape: tuple, c: tuple) -> list[float]:
    rows, cols, k = shape
    use_2ce, wg, kl, ch, sg, _ = c
    groups = rows * -(-cols // ch) if use_2ce else rows
    return [H.lg(rows), H.lg(cols), H.lg(k), float(use_2ce), _lg2(wg), _lg2(kl), _lg2(ch), float(sg),
            _lg2(rows * cols), _lg2(groups), _lg2(groups * wg), _lg2((ch if use_2ce else cols) / wg)]


def _regression_tree(x, y, depth: int, min_leaf: int):
    """Least-squares regression tree: ("leaf", value) or ("split", feature, threshold, left, right)."""
    def grow(idx, d):
        mean = float(y[idx].mean())
        if d >= depth or len(idx) < 2 * min_leaf:
            return ("leaf", mean)
        best = None
        for f in range(x.shape[1]):
            order = idx[np.argsort(x[idx, f], kind="stable")]
            xs, ys = x[order, f], y[order]
            s, s2, n = np.cumsum(ys), np.cumsum(ys * ys), len(order)
            i = np.arange(min_leaf, n - min_leaf + 1)
            if not len(i):
                continue
            left, right = s[i - 1], s[-1] - s[i - 1]
            sse = (s2[i - 1] - left * left / i) + (s2[-1] - s2[i - 1] - right * right / np.maximum(n - i, 1))
            sse = np.where((xs[i - 1] != xs[np.minimum(i, n - 1)]) & (n - i > 0), sse, np.inf)
            j = int(np.argmin(sse))
            if np.isfinite(sse[j]) and (best is None or sse[j] < best[0] - 1e-12):
                best = (float(sse[j]), f, (xs[i[j] - 1] + xs[i[j]]) / 2)
        if best is None:
            return ("leaf", mean)
        _, f, thr = best
        return ("split", f, thr, grow(idx[x[idx, f] <= thr], d + 1), grow(idx[x[idx, f] > thr], d + 1))
    return grow(np.arange(len(y)), 0)


def _predict(tree, x) -> np.ndarray:
    out = np.empty(len(x))
    for n, row in enumerate(x):
        t = tree
        while t[0] == "split":
            t = t[3] if row[t[1]] <= t[2] else t[4]
        out[n] = t[1]
    return out


def cost_model_rule(train: dict, depth: int = 6, trees: int = 60, rate: float = 0.2, min_leaf: int = 2):
    cands = H.grid_configs(train)
    grid = H.ch_grid(cands)
    x, y = [], []
    for shape in sorted(train):
        t = train[shape]
        best = min(t.values())
        for c in cands:
            run = H.legalize(c, shape[1], shape[2], grid)
            if run in t:
                x.append(pair_features(shape, run))
                y.append(math.log(t[run] / best))
    x, y = np.array(x), np.array(y)
    fitted, ensemble = np.zeros(len(y)), []
    for _ in range(trees):
        tree = _regression_tree(x, y - fitted, depth, min_leaf)
        ensemble.append(tree)
        fitted += rate * _predict(tree, x)

    def choose(rows, cols, k):
        runs = [H.legalize(c, cols, k, grid) for c in cands]
        q = np.array([pair_features((rows, cols, k), c) for c in runs])
        return runs[int(np.argmin(sum(rate * _predict(tree, q) for tree in ensemble)))]
    return choose


def held_out(times: dict, rule) -> list[tuple[float, tuple]]:
    """(regret, shape) per shape of the rule fitted without that shape, worst last."""
    out = []
    for shape in sorted(times):
        pick = rule({s: t for s, t in times.items() if s != shape})(*shape)
        t = times[shape]
        out.append((t.get(pick, max(t.values())) / min(t.values()), shape))
    return sorted(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--add-from", help="a run of the same device to take the --add shapes from")
    ap.add_argument("--add", nargs="*", default=[], help="shapes ROWS,COLS,K")
    ap.add_argument("--cost-model", action="store_true")
    args = ap.parse_args()
    times = H.topk_times(json.loads(open(args.run).read())["measurements"])
    if args.add:
        other = H.topk_times(json.loads(open(args.add_from).read())["measurements"])
        for text in args.add:
            shape = tuple(int(v) for v in text.split(","))
            times[shape] = other[shape]
    regrets = held_out(times, cost_model_rule if args.cost_model else tree_rule)
    geo = math.exp(sum(math.log(r) for r, _ in regrets) / len(regrets))
    worst = [f"{s[0]}x{s[1]} k={s[2]} {r:.3f}" for r, s in regrets[-3:][::-1]]
    print(f"{'cost model' if args.cost_model else 'tree'}, {len(regrets)} shapes held out one at a time: geomean "
          f"{geo:.3f}, {sum(r > H.WORST_TARGET for r, _ in regrets)} over {H.WORST_TARGET}; worst: {', '.join(worst)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
