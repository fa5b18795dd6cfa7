"""The selection rule of wgpu_heuristics.rs, in Python: the same tables and the same arithmetic as the generated Rust,
so the report, the tests and the file agree.

TopK. Only correct measurements (ok, with a time) count, and only those taken at full clock (the clock canary's
ratio, where the run has one, within space.json canary.tolerance). From them two decision trees are fitted (see
fit_tree): one over every configuration (for adapters with subgroups), one over sg = false configurations only.
A query (rows, cols, k, subgroups) walks its tree on lg rows, lg cols, lg k (lg x = bit length of x; Rust:
u32::BITS - x.leading_zeros()) to a leaf's configuration, which is then made legal for the query: a 2CE choice
needs k <= ch < cols, else ch becomes the smallest power of two >= max(1024, k) below cols, or the choice falls
back to 1CE with ch = 0.

where_nd. Measurements are grouped by (contiguous = the "contiguous" case, else strided; numel; ndim); a group's
winner is the configuration with the least mean log-time over the group's cases among those measured in all of
them. A query takes the nearest group of its contiguity (any group if none) by d = 2|lg numel - lg numel'| +
|ndim - ndim'|; ties go to the earlier group.

Device classes. Runs are grouped by adapter class: (vendor, architecture, smallest and largest subgroup size,
backend; the backend is the adapter's, else the run's source). Several runs of one class are merged into one
measurement per configuration before the rules above: a measurement is dropped when its spread is over
OUTLIER_SPREAD (0.5: a noisy timing) or when its timer differs from the class's majority timer for that kernel
(times of different clocks do not compare; a kernel's configurations are only compared with each other, and the
browser times where_nd with a wall clock even where TopK has timestamps); each configuration then gets the median
of its remaining medians over all runs.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass

from spiraltorch.shaders import space

TOPK_KEYS = ("use_2ce", "wg", "kl", "ch", "sg", "ls")
TOPK_DEFAULTS = {"sg": False, "ls": True}   # parameters that runs made before they existed did not post
WHERE_KEYS = ("path", "wg", "vpt")
OUTLIER_SPREAD = 0.5
CLOCK_TOLERANCE = space()["canary"]["tolerance"]


def lg(x: int) -> int:
    return int(x).bit_length()


def _ok(m) -> bool:
    return bool(m.get("ok")) and m.get("median_ms") is not None and (m.get("clock") or 1.0) <= CLOCK_TOLERANCE


def params_tuple(params: dict, keys) -> tuple:
    return tuple(params[k] if k in params else TOPK_DEFAULTS[k] for k in keys)


@dataclass(frozen=True)
class TopKEntry:
    rows: int
    cols: int
    k: int
    any: tuple            # (use_2ce, wg, kl, ch, sg, ls) of the fastest configuration
    no_sg: tuple | None   # the fastest with sg = false, if one was measured
    any_ms: float
    no_sg_ms: float | None


class TopKModel(list):
    """The TopK rule fitted on a set of measurements: the measured shapes (a list of TopKEntry, in (rows, cols, k)
    order, each with its fastest configurations) plus the fitted trees: `trees[True]` over every configuration
    (subgroups available), `trees[False]` over sg = false ones (None when no shape has one)."""
    trees: dict


def topk_times(measurements, exclude=None) -> dict:
    """{(rows, cols, k): {configuration: best median ms}} of the correct TopK measurements."""
    shapes: dict = {}
    for m in measurements:
        if m.get("kernel") != "topk" or not _ok(m):
            continue
        key = (m["rows"], m["cols"], m["k"])
        if key == exclude:
            continue
        t = shapes.setdefault(key, {})
        c = params_tuple(m["params"], TOPK_KEYS)
        t[c] = min(t.get(c, math.inf), m["median_ms"])
    return shapes


def topk_table(measurements, exclude=None) -> TopKModel:
    """The fitted TopK rule (see the module docstring) from measurements; `exclude`: a (rows, cols, k) shape to
    leave out, for held-out regret."""
    shapes = topk_times(measurements, exclude)
    out = TopKModel()
    for key in sorted(shapes):
        runs = sorted((t, c) for c, t in shapes[key].items())     # by time, then configuration: deterministic
        nosg = [r for r in runs if not r[1][4]]
        out.append(TopKEntry(*key, any=runs[0][1], no_sg=nosg[0][1] if nosg else None, any_ms=runs[0][0],
                             no_sg_ms=nosg[0][0] if nosg else None))
    out.trees = {True: fit_tree(shapes, lambda c: True),
                 False: fit_tree(shapes, lambda c: not c[4])}
    return out


# The tree: each node splits its shapes on one feature, lg rows, lg cols or lg k (lg = bit length), at a threshold;
# each leaf holds the one configuration with the least summed cost over its shapes. The cost of a configuration on
# a shape is log(time / the shape's best time) of the configuration made legal for that shape (legalize), plus
# WORST_WEIGHT x the part of it over log(WORST_TARGET) (so one badly served shape weighs more than a few slightly
# slower ones); a configuration not measured there costs log(that shape's slowest / best) (the worst it can be).
# Leaves pick among the configurations measured on at least MIN_SHARE of the shapes where they are legal as they are
# (the search grid; a one-off like st-core's fallback, measured beside the grid where it is not in it, is judged but
# not picked).
# A node is split (greedily, the split with the least cost; ties: cols, k, rows, lower threshold) while it holds
# more than one shape, is shallower than MAX_DEPTH, and the split lowers its cost by more than MIN_GAIN.
FEATURES = ("rows", "cols", "k")
SPLIT_ORDER = (1, 2, 0)     # ties between splits go to cols, then k, then rows
MAX_DEPTH = 6
MIN_SHARE = 0.2             # a leaf picks among configurations measured on at least this share of the shapes
                            # where they are legal as they are
MIN_GAIN = 1e-3
WORST_TARGET = 1.25
WORST_WEIGHT = 4.0


def _cost_matrix(shapes: dict, keys: list, cands: list):
    import numpy as np
    cost = np.empty((len(cands), len(keys)))
    for j, key in enumerate(keys):
        t = shapes[key]
        best, worst = min(t.values()), max(t.values())
        for i, c in enumerate(cands):
            v = t.get(legalize(c, key[1], key[2]))
            r = math.log((v if v is not None else worst) / best)
            cost[i, j] = r + WORST_WEIGHT * max(0.0, r - math.log(WORST_TARGET))
    return cost


def fit_tree(shapes: dict, allowed) -> tuple | None:
    """A tree over the shapes' measured times, using configurations for which `allowed(c)`; None when no shape has
    one. Nodes: ("leaf", configuration) or ("split", feature index into FEATURES, threshold, left, right), where
    left holds the shapes with lg(feature) <= threshold."""
    import numpy as np
    sub = {key: {c: v for c, v in t.items() if allowed(c)} for key, t in shapes.items()}
    sub = {key: t for key, t in sub.items() if t}
    if not sub:
        return None
    keys = sorted(sub)
    seen = Counter(c for t in sub.values() for c in t)
    cands = sorted(c for c, n in seen.items()
                   if n >= MIN_SHARE * sum(legalize(c, key[1], key[2]) == c for key in keys))
    cost = _cost_matrix(sub, keys, cands)
    lgs = np.array([[lg(v) for v in key] for key in keys])

    def leaf(idx):
        col = cost[:, idx].sum(axis=1)
        i = int(np.argmin(col))          # the first minimum: candidates are sorted, so deterministic
        return float(col[i]), cands[i]

    def grow(idx, depth):
        here, choice = leaf(idx)
        best = None
        if len(idx) > 1 and depth < MAX_DEPTH:
            for f in SPLIT_ORDER:
                vals = sorted(set(lgs[idx, f].tolist()))
                for a, b in zip(vals, vals[1:]):
                    thr = (a + b) // 2
                    left = idx[lgs[idx, f] <= thr]
                    right = idx[lgs[idx, f] > thr]
                    c = leaf(left)[0] + leaf(right)[0]
                    if best is None or c < best[0] - 1e-12:
                        best = (c, f, thr, left, right)
        if best is None or here - best[0] <= MIN_GAIN:
            return ("leaf", choice)
        _, f, thr, left, right = best
        return ("split", f, thr, grow(left, depth + 1), grow(right, depth + 1))
    return grow(np.arange(len(keys)), 0)


def walk(tree: tuple, rows: int, cols: int, k: int) -> tuple:
    x = (lg(rows), lg(cols), lg(k))
    while tree[0] == "split":
        tree = tree[3] if x[tree[1]] <= tree[2] else tree[4]
    return tree[1]


def legalize(c: tuple, cols: int, k: int) -> tuple:
    use_2ce, wg, kl, ch, sg, ls = c
    if not use_2ce:
        return (False, wg, kl, 0, sg, ls)
    if k <= ch < cols:
        return c
    ch = 1 << (max(1024, k) - 1).bit_length()     # next power of two >= max(1024, k)
    if ch < cols:
        return (True, wg, kl, ch, sg, ls)
    return (False, wg, kl, 0, sg, ls)


def choose_topk(model: TopKModel, rows: int, cols: int, k: int, subgroups: bool) -> tuple | None:
    """The fitted rule's configuration for a shape, made legal for it; None without data for the subgroups flag."""
    tree = model.trees.get(bool(subgroups)) if hasattr(model, "trees") else None
    if tree is None:
        return None
    return legalize(walk(tree, rows, cols, k), cols, k)


@dataclass(frozen=True)
class WhereEntry:
    contiguous: bool
    numel: int
    ndim: int
    choice: tuple        # (path, wg, vpt)
    ms: float


def where_table(measurements) -> list[WhereEntry]:
    groups: dict = {}
    for m in measurements:
        if m.get("kernel") != "where_nd" or not _ok(m):
            continue
        numel = math.prod(m["shape"])
        key = (m["case"] == "contiguous", numel, len(m["shape"]))
        g = groups.setdefault(key, {})
        g.setdefault(params_tuple(m["params"], WHERE_KEYS), {}).setdefault((m["case"], m.get("dtype")), []).append(
            m["median_ms"])
    out = []
    for key in sorted(groups, key=lambda k: (not k[0], k[1], k[2])):
        g = groups[key]
        n = max(len(v) for v in g.values())
        scored = sorted((sum(math.log(min(ts)) for ts in v.values()) / n, cfg, v) for cfg, v in g.items()
                        if len(v) == n)
        score, cfg, v = scored[0]
        out.append(WhereEntry(key[0], key[1], key[2], cfg, math.exp(score)))
    return out


def choose_where(table: list[WhereEntry], numel: int, ndim: int, contiguous: bool) -> tuple | None:
    pool = [e for e in table if e.contiguous == contiguous] or table
    best, best_d = None, None
    for e in pool:
        d = 2 * abs(lg(numel) - lg(e.numel)) + abs(ndim - e.ndim)
        if best_d is None or d < best_d:
            best, best_d = e, d
    return best.choice if best else None


@dataclass(frozen=True, order=True)
class AdapterClass:
    """The key runs are grouped by (AdapterKey in the generated Rust)."""
    vendor: str
    architecture: str
    subgroup_min: int
    subgroup_max: int
    backend: str


def adapter_class(doc: dict | None) -> AdapterClass:
    doc = doc or {}
    a = doc.get("adapter") or {}
    sizes = [int(x) for x in doc.get("subgroup_sizes") or []] or [0]
    return AdapterClass(str(a.get("vendor", "")), str(a.get("architecture", "")), min(sizes), max(sizes),
                        str(a.get("backend") or doc.get("source") or ""))


def group_by_class(docs) -> dict:
    """{AdapterClass: [run documents, in the given order]}, classes in key order."""
    out: dict = {}
    for d in docs:
        out.setdefault(adapter_class(d), []).append(d)
    return dict(sorted(out.items()))


def _mkey(m) -> tuple:
    shape = tuple(m["shape"]) if m.get("shape") is not None else None
    return (m["kernel"], m.get("rows"), m.get("cols"), m.get("k"), m.get("case"), shape, m.get("dtype"),
            tuple(sorted((k, str(v)) for k, v in m.get("params", {}).items())))


def merge_measurements(docs) -> list[dict]:
    """One class's runs as one list of measurements (one per configuration), by the outlier rule of the module
    docstring. Deterministic for the same runs in any order."""
    rows = [(m, m.get("timer") or d.get("timer") or "") for d in docs for m in d.get("measurements", []) if _ok(m)]
    votes: dict = {}
    for m, t in rows:
        votes.setdefault(m["kernel"], Counter())[t] += 1
    timer = {kernel: min(v, key=lambda t: (-v[t], t)) for kernel, v in votes.items()}   # ties: first by name
    groups: dict = {}
    for m, t in rows:
        if t != timer[m["kernel"]] or (m.get("spread") is not None and m["spread"] > OUTLIER_SPREAD):
            continue
        g = groups.setdefault(_mkey(m), {"m": m, "ms": []})
        g["ms"].append(m["median_ms"])
    out = []
    for key in sorted(groups, key=repr):
        m, ms = groups[key]["m"], groups[key]["ms"]
        out.append({"kernel": m["kernel"], "rows": m.get("rows"), "cols": m.get("cols"), "k": m.get("k"),
                    "case": m.get("case"), "shape": m.get("shape"), "dtype": m.get("dtype"), "params": m["params"],
                    "ok": True, "timer": timer[m["kernel"]], "median_ms": statistics.median(ms), "n": len(ms)})
    return out
