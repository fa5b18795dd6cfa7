"""Probes of the TopK rule on committed run files (no GPU needed). Each prints the leave-one-shape-out regret of a
rule (as the report computes it), or with --judge its regret on another run's shapes:

- `--rule vote` (default): the rule of wgpu_heuristics.rs (native/heuristics.py: the nearest measured shapes vote).
- `--rule tree`: the rule before it (up to commit f6fe9aa): a decision tree over the bit lengths of rows, cols and
  k whose leaves hold one configuration, made legal for the query by moving its chunk size.
- `--rule cost-model`: a learned cost model of the kind autotuners use: gradient-boosted regression trees over
  features of (shape, configuration) -- lg rows, lg cols, lg k, the configuration's parameters, lg of the elements,
  of the stage-1 workgroups and of the invocations launched, elements per invocation -- fitted to each measured
  configuration's log regret; a shape gets the configuration of least predicted regret.
- `--judge RUN2`: fit on the whole of RUN, judge on RUN2's shapes (e.g. a run of shapes off RUN's grid:
  bench/tune_gpu.py --shapes).
- `--add-from RUN2 --add R,C,K ...`: add shapes measured by another run of the same device (the same
  configurations) to RUN first: how much the worst case depends on which shapes a grid holds.

    python3 bench/rule_probe.py bench/results/h200-2026-11-29-full-topk.json --rule tree
    python3 bench/rule_probe.py bench/results/h200-2026-11-29-full-topk.json \\
        --judge bench/results/h200-2026-11-29-offgrid-topk.json
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np

from spiraltorch_tuner import heuristics as H


def vote_rule(train: dict):
    """The report's rule (heuristics.fit_vote) fitted on {shape: {configuration: ms}}, subgroups allowed."""
    v = H.fit_vote(train, lambda c: True)
    return lambda r, c, k: H.vote_pick(v, r, c, k)


def tree_rule(train: dict):
    """The rule before the vote: heuristics' tree (grow_tree) over lg rows, lg cols, lg k (split order cols, k,
    rows); a configuration's cost on a shape is that of it made legal there; the pick is made legal likewise."""
    cands = H.grid_configs(train)
    grid, keys = H.ch_grid(cands), sorted(train)
    cost = np.array([[H.cost_of(H.log_regret(train[key], H.legalize(c, key[1], key[2], grid))) for key in keys]
                     for c in cands])
    tree = H._map_leaves(H.grow_tree([[H.lg(v) for v in key] for key in keys], cost, (1, 2, 0)), cands)
    return lambda r, c, k: H.legalize(H.descend(tree, (H.lg(r), H.lg(c), H.lg(k))), c, k, grid)


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


RULES = {"vote": vote_rule, "tree": tree_rule, "cost-model": cost_model_rule}


def held_out(times: dict, rule) -> list[tuple[float, tuple]]:
    """(regret, shape) per shape of the rule fitted without that shape, worst last."""
    out = []
    for shape in sorted(times):
        pick = rule({s: t for s, t in times.items() if s != shape})(*shape)
        t = times[shape]
        out.append((t.get(pick, max(t.values())) / min(t.values()), shape))
    return sorted(out)


def judged(times: dict, other: dict, rule) -> list[tuple[float, tuple]]:
    """(regret, shape) per shape of `other` of the rule fitted on all of `times`, worst last (a pick `other` did
    not measure counts as its slowest)."""
    choose = rule(times)
    return sorted((t.get(choose(*shape), max(t.values())) / min(t.values()), shape) for shape, t in other.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--add-from", help="a run of the same device to take the --add shapes from")
    ap.add_argument("--add", nargs="*", default=[], help="shapes ROWS,COLS,K")
    ap.add_argument("--rule", choices=sorted(RULES), default="vote")
    ap.add_argument("--judge", help="a run whose shapes to judge the rule fitted on RUN on")
    args = ap.parse_args()
    times = H.topk_times(json.loads(open(args.run).read())["measurements"])
    if args.add:
        other = H.topk_times(json.loads(open(args.add_from).read())["measurements"])
        for text in args.add:
            shape = tuple(int(v) for v in text.split(","))
            times[shape] = other[shape]
    if args.judge:
        regrets = judged(times, H.topk_times(json.loads(open(args.judge).read())["measurements"]), RULES[args.rule])
        how = f"fitted on {len(times)} shapes, judged on {len(regrets)} others"
    else:
        regrets = held_out(times, RULES[args.rule])
        how = f"{len(regrets)} shapes held out one at a time"
    geo = math.exp(sum(math.log(r) for r, _ in regrets) / len(regrets))
    worst = [f"{s[0]}x{s[1]} k={s[2]} {r:.3f}" for r, s in regrets[-3:][::-1]]
    print(f"{args.rule}, {how}: geomean {geo:.3f}, {sum(r > H.WORST_TARGET for r, _ in regrets)} over "
          f"{H.WORST_TARGET}; worst: {', '.join(worst)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
