"""The selection rule of wgpu_heuristics.rs, in Python: the same tables and the same arithmetic as the generated Rust,
so the report, the tests and the file agree.

TopK. Only correct measurements (ok, with a time) count, and only those taken at full clock (the clock canary's
ratio, where the run has one, within space.json canary.tolerance). From them two votes are fitted (fit_vote): one
over every configuration (for adapters with subgroups), one over sg = false configurations only. A query (rows,
cols, k, subgroups) is answered by the measured shapes nearest to it in half-octaves of rows, cols and k: each
configuration of the tuned grid gets their distance-weighted cost, and the query gets the cheapest one that is
legal for it as it is (2CE: k <= ch < cols; radix: rch < cols; 1CE always is). So every pick is a configuration of
the tuned grid, one a full run measures on any shape where it is legal, and runs as it was measured. SpiralTorch's
kernels have no radix pipeline: its files (the st-core flavours, the wasm-table) are fitted on the measurements
without_radix leaves.

where_nd. A decision tree over (contiguous, lg numel, ndim) of the measured cases (lg x = bit length of x; case
"contiguous" is contiguous, neg_stride and broadcast are not), each case weighed once per dtype; its leaves hold
(path, wg, vpt).
A where_nd measurement's median_ms is the time of a call with its uploads (the segmented path's cost is its many
writes), on the wall clock, whose noise swamps the differences between one path's workgroup sizes. Where the device
has timestamps it also carries kernel_ms, the kernel's own GPU time with the inputs resident. When every measurement
of a case's path carries one, a configuration's time is its kernel_ms plus the path's upload time, pooled: the
median over that path's measurements of median_ms - kernel_ms (the uploads do not depend on wg or vpt). Then the
uploads are most of a call's time (the H200: about 0.5 ms against a kernel of a few us), so a configuration's cost
in the tree also counts its kernel regret: its kernel time over the fastest kernel time of its path on that case.

Device classes. Runs are grouped by adapter class: (vendor, architecture, smallest and largest subgroup size,
backend; the architecture is the adapter's device name where it reports none, as wgpu-native does, so two GPUs of
one vendor stay apart; the backend is the adapter's, else the run's source). Several runs of one class are merged
into one measurement per configuration before the rules above: a measurement is dropped when its spread is over
OUTLIER_SPREAD (0.5: a noisy timing) or when its timer differs from the class's majority timer for that kernel
(times of different clocks do not compare; a kernel's configurations are only compared with each other, and the
browser times where_nd with a wall clock even where TopK has timestamps); each configuration then gets the median
of its remaining medians over all runs (and of their kernel_ms, where each has one).
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass

from .shaders import is_radix, space

TOPK_KEYS = ("use_2ce", "wg", "kl", "ch", "sg", "ls", "radix", "rb", "rch")
RADIX_OFF = {"radix": False, "rb": 0, "rch": 0}     # the radix pipeline's parameters in every other configuration
TOPK_DEFAULTS = {"sg": False, "ls": True, **RADIX_OFF}   # parameters that runs made before they existed did not post
WHERE_KEYS = ("path", "wg", "vpt")
OUTLIER_SPREAD = 0.5
CLOCK_TOLERANCE = space()["canary"]["tolerance"]


MIN_MS = 1e-6   # a measured 0 ms (a coarse wall timer) counts as 1 ns, so ratios and log-times stay finite


def usable(measurements) -> list[dict]:
    """The measurements the rule and the report work on: times of 0 raised to MIN_MS (everything else as is; the
    rule itself skips measurements that failed or have no time). rustgen feeds the rule the same list."""
    out = []
    for m in measurements:
        t = m.get("median_ms")
        out.append({**m, "median_ms": MIN_MS} if t is not None and t < MIN_MS else m)
    return out


def lg(x: int) -> int:
    return int(x).bit_length()


def _ok(m) -> bool:
    return bool(m.get("ok")) and m.get("median_ms") is not None and (m.get("clock") or 1.0) <= CLOCK_TOLERANCE


def params_tuple(params: dict, keys) -> tuple:
    return tuple(params[k] if k in params else TOPK_DEFAULTS[k] for k in keys)


def topk_config(c) -> tuple:
    """A TopK configuration tuple as long as TOPK_KEYS: one of a rules file written before the radix pipeline
    existed (six fields) padded with the defaults of the fields it lacks."""
    c = tuple(c)
    return c + tuple(TOPK_DEFAULTS[k] for k in TOPK_KEYS[len(c):])


def without_radix(measurements) -> list[dict]:
    """The measurements of configurations SpiralTorch's own kernels can run: all but the radix pipeline's
    (shaders.is_radix), which st-core has no kernel for. The st-core flavours and the wasm-table are fitted on these."""
    return [m for m in measurements if not is_radix(m.get("kernel"), m.get("params") or {})]


@dataclass(frozen=True)
class TopKEntry:
    rows: int
    cols: int
    k: int
    any: tuple            # (use_2ce, wg, kl, ch, sg, ls, radix, rb, rch) of the fastest configuration
    no_sg: tuple | None   # the fastest with sg = false, if one was measured
    any_ms: float
    no_sg_ms: float | None


class TopKModel(list):
    """The TopK rule fitted on a set of measurements: the measured shapes (a list of TopKEntry, in (rows, cols, k)
    order, each with its fastest configurations) plus the fitted votes: `votes[True]` over every configuration
    (subgroups available), `votes[False]` over sg = false ones (None when no shape has one)."""
    votes: dict


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
    out.votes = {True: fit_vote(shapes, lambda c: True), False: fit_vote(shapes, lambda c: not c[4])}
    return out


# The cost of a configuration on an item (TopK: a measured shape; where_nd: a measured case) is its log regret there,
# log(time / the item's best time), where a configuration not measured there (or, TopK, not legal there as it is)
# counts as the item's slowest; plus WORST_WEIGHT x the part of it over log(WORST_TARGET), so one badly served item
# weighs more than a few slightly slower ones. Rules pick among the grid: the configurations measured on at least
# MIN_SHARE of the items where they are legal as they are (1.0: the search grid; a one-off like st-core's fallback,
# measured beside the grid where it is not in it, is judged but not picked, and a pick is always one a full run
# measures).
MIN_SHARE = 1.0
WORST_TARGET = 1.25
WORST_WEIGHT = 4.0


def log_regret(t: dict, c) -> float:
    """log(time of c / best time) on an item ({configuration: ms}); c None or not measured: the item's slowest."""
    v = t.get(c) if c is not None else None
    return math.log((v if v is not None else max(t.values())) / min(t.values()))


def cost_of(r: float) -> float:
    """The cost of a log regret `r` (above)."""
    return r + WORST_WEIGHT * max(0.0, r - math.log(WORST_TARGET))


# The TopK rule: the measured shapes nearest to the query vote. Shapes are points (ho rows, ho cols, ho k), where
# ho x = floor(2 log2 x), the half-octave of x, in integers (Rust: the same shift and compare). The distance of a
# measured shape to the query is |d ho rows| + VOTE_COLS x |d ho cols| + |d ho k| (cols weigh more: a row's length
# decides the pipeline and the chunking). The shapes within VOTE_SLACK of the nearest vote, each with weight
# 1 / (2 + distance). Each configuration of the grid (MIN_SHARE rule) gets the weighted sum of its costs on
# the voters (the cost above, in thousandths, as integers so Rust and Python add the very same numbers), and the
# query gets the configuration of least sum among those legal for it as they are (2CE: k <= ch < cols; radix:
# rch < cols; 1CE always);
# ties: the first in configuration order. A configuration's cost on a shape where it is not legal as it is counts
# as that shape's slowest: what would run there is another configuration, whose time says nothing about this one.
# So a pick is always a configuration of the grid, run as it was measured.
VOTE_COLS = 2
VOTE_SLACK = 4


def ho(x: int) -> int:
    """floor(2 log2 x) for x >= 1 (x < 1 counts as 1), exactly: the half-octave index of x."""
    x = max(int(x), 1)
    b = x.bit_length() - 1
    return 2 * b + (x * x >= 1 << (2 * b + 1))


@dataclass(frozen=True)
class Vote:
    """A fitted TopK vote: the measured shapes' points (ho rows, ho cols, ho k), the candidate configurations
    (sorted) and cost[i][j], the cost of configs[i] on the j-th shape in thousandths."""
    points: tuple
    configs: tuple
    cost: tuple
    grid: tuple            # the chunk sizes of the grid: a pick is made legal with them when none is legal as is
    rgrid: tuple = ()      # the same for the radix pipeline's chunks (rch)


def legal(c: tuple, cols: int, k: int) -> bool:
    """Whether a TopK configuration runs as it is on a shape (2CE: k <= ch < cols; radix: rch < cols)."""
    return legalize(c, cols, k, None) == topk_config(c)


def fit_vote(shapes: dict, allowed) -> Vote | None:
    """The vote over the shapes' measured times, among configurations for which `allowed(c)`; None when no shape
    has one."""
    sub = {key: {c: v for c, v in t.items() if allowed(c)} for key, t in shapes.items()}
    sub = {key: t for key, t in sub.items() if t}
    if not sub:
        return None
    keys = sorted(sub)
    cands = grid_configs(sub)

    def milli(c, key):
        r = log_regret(sub[key], c if legal(c, key[1], key[2]) else None)
        return min(65535, round(1000 * cost_of(r)))
    cost = tuple(tuple(milli(c, key) for key in keys) for c in cands)
    return Vote(tuple(tuple(ho(v) for v in key) for key in keys), tuple(cands), cost, ch_grid(cands),
                rch_grid(cands))


def vote_pick(v: Vote, rows: int, cols: int, k: int) -> tuple:
    """The vote's configuration for a shape (above), made legal for it; the same arithmetic as the Rust."""
    q = (ho(rows), ho(cols), ho(k))
    d = [abs(p[0] - q[0]) + VOTE_COLS * abs(p[1] - q[1]) + abs(p[2] - q[2]) for p in v.points]
    near = min(d) + VOTE_SLACK
    best = None
    for only_legal in (True, False):
        for i, c in enumerate(v.configs):
            if only_legal and not legal(c, cols, k):
                continue
            s = 0.0
            for j, dj in enumerate(d):
                if dj <= near:
                    s += v.cost[i][j] / (2 + dj)
            if best is None or s < best[0]:
                best = (s, i)
        if best is not None:
            break
    return legalize(v.configs[best[1]], cols, k, v.grid, v.rgrid)


# The where_nd tree: each node splits its items (measured cases) on one feature at a threshold; each leaf holds the
# one configuration of the grid with the least summed cost over its items. A node is split (greedily, the split
# with the least cost; ties: the feature order, then the lower threshold) while it holds more than one item, is
# shallower than MAX_DEPTH, and the split lowers its cost by more than MIN_GAIN.
WHERE_FEATURES = ("contiguous", "numel", "ndim")
WHERE_SPLIT_ORDER = (0, 1, 2)
MAX_DEPTH = 6
MIN_GAIN = 1e-3


def _fit(times: dict, keys: list, cands: list, x, order, kernel=None) -> tuple:
    """The tree over items `keys` (features `x`, split `order`) of `times` ({item: {configuration: ms}}), leaves
    holding configurations of `cands`. `kernel`: {item: {configuration: kernel ms}}; where c has one, its cost also
    counts kernel_regret."""
    import numpy as np
    cost = np.empty((len(cands), len(keys)))
    for j, key in enumerate(keys):
        for i, c in enumerate(cands):
            r = log_regret(times[key], c)
            if kernel is not None:
                r += math.log(kernel_regret(kernel.get(key, {}), c) or 1.0)
            cost[i, j] = cost_of(r)
    return _map_leaves(grow_tree(x, cost, order), cands)


def kernel_regret(kernel: dict, c: tuple) -> float | None:
    """where_nd: c's kernel time over the fastest kernel time of its path ({configuration: kernel ms} of one case;
    None where c has none). The time of a call is mostly its uploads, which wg and vpt do not change; this is what
    they do change."""
    v = kernel.get(c)
    if v is None:
        return None
    return v / min(t for o, t in kernel.items() if o[0] == c[0])


def grow_tree(x, cost, order) -> tuple:
    """A tree over items with integer features `x` (items x features) and costs `cost` (candidates x items).
    Nodes: ("leaf", candidate index) or ("split", feature index, threshold, left, right); left holds the items
    with x[feature] <= threshold."""
    import numpy as np
    x = np.asarray(x)

    def leaf(idx):
        col = cost[:, idx].sum(axis=1)
        i = int(np.argmin(col))          # the first minimum: candidates are sorted, so deterministic
        return float(col[i]), i

    def grow(idx, depth):
        here, choice = leaf(idx)
        best = None
        if len(idx) > 1 and depth < MAX_DEPTH:
            for f in order:
                vals = sorted(set(x[idx, f].tolist()))
                for a, b in zip(vals, vals[1:]):
                    thr = (a + b) // 2
                    left = idx[x[idx, f] <= thr]
                    right = idx[x[idx, f] > thr]
                    c = leaf(left)[0] + leaf(right)[0]
                    if best is None or c < best[0] - 1e-12:
                        best = (c, f, thr, left, right)
        if best is None or here - best[0] <= MIN_GAIN:
            return ("leaf", choice)
        _, f, thr, left, right = best
        return ("split", f, thr, grow(left, depth + 1), grow(right, depth + 1))
    return grow(np.arange(len(x)), 0)


def descend(tree: tuple, x) -> tuple:
    """The leaf's configuration for features `x` (as the tree was grown on)."""
    while tree[0] == "split":
        tree = tree[3] if x[tree[1]] <= tree[2] else tree[4]
    return tree[1]


def _map_leaves(node, cands):
    if node[0] == "leaf":
        return ("leaf", cands[node[1]])
    return ("split", node[1], node[2], _map_leaves(node[3], cands), _map_leaves(node[4], cands))


def grid_configs(shapes: dict) -> list:
    """The TopK configurations the rule may pick (MIN_SHARE rule; when none qualifies, as in a run of scattered
    configurations, those with the largest share), sorted. A configuration legal as measured on none of the shapes
    (a posted run may hold one, e.g. 1CE with ch > 0) cannot be picked as measured and is left out."""
    keys = sorted(shapes)
    seen = Counter(c for key in keys for c in shapes[key])
    fits = {c: sum(legal(c, key[1], key[2]) for key in keys) for c in seen}
    return _best_shares({c: n / fits[c] for c, n in seen.items() if fits[c]})


def _best_shares(share: dict) -> list:
    ok = [c for c, v in share.items() if v >= MIN_SHARE - 1e-12]
    if not ok and share:
        top = max(share.values())
        ok = [c for c, v in share.items() if v == top]
    return sorted(ok)


def ch_grid(cands) -> tuple:
    """The chunk sizes of the tuned grid: those of the 2CE candidates."""
    return tuple(sorted({c[3] for c in cands if c[0] and not c[6]}))


def rch_grid(cands) -> tuple:
    """The radix pipeline's chunk sizes of the tuned grid: those of the radix candidates."""
    return tuple(sorted({c[8] for c in cands if c[6]}))


def _nearest(ok, ch):
    """The chunk size of `ok` nearest to ch in bit length (ties: the smaller)."""
    return min(ok, key=lambda g: (abs(lg(g) - lg(ch)), g))


def legalize(c: tuple, cols: int, k: int, grid, rgrid=None) -> tuple:
    """`c` made legal for a shape: a 2CE configuration needs k <= ch < cols, else its ch becomes the chunk size of
    `grid` (the tuned ones) nearest in bit length that is legal (ties: the smaller), else it becomes 1CE with ch = 0.
    A radix configuration needs rch < cols, else its rch becomes the legal one of `rgrid` nearest in bit length
    (at least wg), else it becomes 1CE. `grid` and `rgrid` None: no replacement chunk (the configuration as it is,
    or 1CE). The radix pipeline's parameters are 0 in every other configuration."""
    use_2ce, wg, kl, ch, sg, ls, radix, rb, rch = topk_config(c)
    one_ce = (False, wg, kl, 0, sg, ls, False, 0, 0)
    if radix:
        if rch < cols:
            return (use_2ce, wg, kl, ch, sg, ls, radix, rb, rch)
        ok = [g for g in rgrid or () if wg <= g < cols]
        return (use_2ce, wg, kl, ch, sg, ls, radix, rb, _nearest(ok, rch)) if ok else one_ce
    if not use_2ce:
        return one_ce
    if k <= ch < cols:
        return (True, wg, kl, ch, sg, ls, False, 0, 0)
    ok = [g for g in grid or () if k <= g < cols]
    return (True, wg, kl, _nearest(ok, ch), sg, ls, False, 0, 0) if ok else one_ce


def choose_topk(model: TopKModel, rows: int, cols: int, k: int, subgroups: bool) -> tuple | None:
    """The fitted rule's configuration for a shape, made legal for it; None without data for the subgroups flag."""
    v = model.votes.get(bool(subgroups)) if hasattr(model, "votes") else None
    return None if v is None else vote_pick(v, rows, cols, k)


@dataclass(frozen=True)
class WhereEntry:
    """A measured where_nd case: its fastest configuration (path, wg, vpt) and time."""
    case: str
    shape: tuple
    dtype: str
    choice: tuple
    ms: float

    @property
    def query(self) -> tuple:
        """(numel, ndim, contiguous): what choose_where is asked."""
        return where_query(self.case, self.shape)


class WhereModel(list):
    """The where_nd rule fitted on a set of measurements: the measured cases (a list of WhereEntry, in (case,
    shape, dtype) order) plus `tree` (None without where_nd data)."""
    tree: tuple | None


def where_times(measurements, exclude_shape=None) -> dict:
    """{(case, shape, dtype): {configuration: ms}} of the correct where_nd measurements: each configuration's time
    per call, uploads included (module docstring: pooled uploads where measurements carry kernel_ms)."""
    groups: dict = {}
    for key, m in _where_measurements(measurements, exclude_shape):
        groups.setdefault((key, m["params"].get("path")), []).append(m)
    out: dict = {}
    for (key, _), ms in sorted(groups.items(), key=repr):
        pooled = all(m.get("kernel_ms") is not None for m in ms)
        upload = statistics.median(max(0.0, m["median_ms"] - m["kernel_ms"]) for m in ms) if pooled else 0.0
        t = out.setdefault(key, {})
        for m in ms:
            c = params_tuple(m["params"], WHERE_KEYS)
            t[c] = min(t.get(c, math.inf), upload + m["kernel_ms"] if pooled else m["median_ms"])
    return out


def where_kernel_times(measurements, exclude_shape=None) -> dict:
    """{(case, shape, dtype): {configuration: best kernel_ms}} of the correct where_nd measurements that carry one."""
    out: dict = {}
    for key, m in _where_measurements(measurements, exclude_shape):
        if m.get("kernel_ms") is not None:
            t = out.setdefault(key, {})
            c = params_tuple(m["params"], WHERE_KEYS)
            t[c] = min(t.get(c, math.inf), max(m["kernel_ms"], 1e-6))
    return out


def _where_measurements(measurements, exclude_shape=None):
    """((case, shape, dtype), measurement) of the correct where_nd measurements, but those of `exclude_shape`."""
    for m in measurements:
        if m.get("kernel") == "where_nd" and _ok(m):
            key = (m["case"], tuple(m["shape"]), m.get("dtype") or "float32")
            if key[1] != exclude_shape:
                yield key, m


def where_query(case: str, shape) -> tuple:
    """(numel, ndim, contiguous) of a measured case: the arguments of choose_where / choose_where_nd."""
    return (math.prod(shape), len(shape), case == "contiguous")


def where_features(numel: int, ndim: int, contiguous: bool) -> tuple:
    return (int(bool(contiguous)), lg(numel), int(ndim))


def where_table(measurements, exclude_shape=None) -> WhereModel:
    """The fitted where_nd rule (module docstring); `exclude_shape`: an output shape whose cases are left out, for
    held-out regret."""
    times = where_times(measurements, exclude_shape)
    keys = sorted(times)
    out = WhereModel()
    out.tree = None
    for key in keys:
        t = times[key]
        c = min(t, key=lambda c: (t[c], c))
        out.append(WhereEntry(*key, choice=c, ms=t[c]))
    if not keys:
        return out
    seen = Counter(c for t in times.values() for c in t)
    cands = _best_shares({c: n / len(keys) for c, n in seen.items()})
    out.tree = _fit(times, keys, cands, [where_features(*where_query(case, shape)) for case, shape, _ in keys],
                    WHERE_SPLIT_ORDER, kernel=where_kernel_times(measurements, exclude_shape))
    return out


def choose_where(model: WhereModel, numel: int, ndim: int, contiguous: bool) -> tuple | None:
    """The fitted rule's where_nd configuration; None without where_nd data."""
    tree = getattr(model, "tree", None)
    return None if tree is None else descend(tree, where_features(numel, ndim, contiguous))


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
    arch = a.get("architecture") or a.get("device") or ""
    return AdapterClass(str(a.get("vendor", "")), str(arch), min(sizes), max(sizes),
                        str(a.get("backend") or doc.get("source") or ""))


def class_key(c: AdapterClass) -> str:
    """A device class as one string: "vendor|architecture|subgroup_min-subgroup_max|backend" (the `device_class` of
    GET /api/classes and /api/report)."""
    return f"{c.vendor}|{c.architecture}|{c.subgroup_min}-{c.subgroup_max}|{c.backend}"


def _fold(s: str) -> str:
    return s.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def class_order(keys, adapter: AdapterClass) -> list[int]:
    """The classes (indices into `keys`) whose tables may serve `adapter`, best first, as the generated Rust's
    class_order: those of its vendor and architecture (ASCII case ignored), the equal one first, then those that
    agree on the backend, then on the subgroup size range; ties: the lower index."""
    ranked = [(-(4 * (k == adapter) + 2 * (_fold(k.backend) == _fold(adapter.backend))
                 + ((k.subgroup_min, k.subgroup_max) == (adapter.subgroup_min, adapter.subgroup_max))), i)
              for i, k in enumerate(keys)
              if _fold(k.vendor) == _fold(adapter.vendor) and _fold(k.architecture) == _fold(adapter.architecture)]
    return [i for _, i in sorted(ranked)]


def group_by_class(docs) -> dict:
    """{AdapterClass: [run documents, in the given order]}, classes in key order."""
    out: dict = {}
    for d in docs:
        out.setdefault(adapter_class(d), []).append(d)
    return dict(sorted(out.items()))


def _mkey(m) -> tuple:
    shape = tuple(m["shape"]) if m.get("shape") is not None else None
    params = m.get("params", {})
    if m["kernel"] == "topk":   # a run from before a parameter existed measured it at its default
        params = {**TOPK_DEFAULTS, **params}
    return (m["kernel"], m.get("rows"), m.get("cols"), m.get("k"), m.get("case"), shape, m.get("dtype"),
            tuple(sorted((k, str(v)) for k, v in params.items())))


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
        g = groups.setdefault(_mkey(m), {"m": m, "ms": [], "kernel": []})
        g["ms"].append(m["median_ms"])
        g["kernel"].append(m.get("kernel_ms"))
    out = []
    for key in sorted(groups, key=repr):
        m, ms, kernel = groups[key]["m"], groups[key]["ms"], groups[key]["kernel"]
        row = {"kernel": m["kernel"], "rows": m.get("rows"), "cols": m.get("cols"), "k": m.get("k"),
               "case": m.get("case"), "shape": m.get("shape"), "dtype": m.get("dtype"), "params": m["params"],
               "ok": True, "timer": timer[m["kernel"]], "median_ms": statistics.median(ms), "n": len(ms)}
        if None not in kernel:
            row["kernel_ms"] = statistics.median(kernel)
        out.append(row)
    return out
