"""The `wasm-table` flavour: SpiralTorch's `tuner_results.json`, a JSON array of WasmTunerRecord objects
(crates/st-core/src/backend/wasm_tuner.rs), whose first match for (rows, cols, k, subgroup) is our TopK rule's pick.

The vote (native/heuristics.py) is constant on boxes: inside one half-octave of rows, of cols and of k the distances
to the measured shapes are fixed, and so is each configuration's legality (k <= ch < cols) once the cols and k axes
are also cut at ch + 1 for every chunk size of the grid. So the table is exact: every box of the u32 range gets the
vote's pick (computed for all boxes at once below, with the very float sums of vote_pick), then records are grown
greedily over neighbouring boxes of one pick (records_for). The records do not overlap, so WasmTunerTable's sort
cannot change which one matches. Each carries our four parameters (use_2ce, wg, kl, ch); st-core keeps its own
values for its other fields, and our sg/ls have no field (st-core's kernels have no such variants). st-core has no
radix pipeline either: the votes given here are fitted without its measurements (exports.py: rules.fit_runs with
radix=False), and a vote holding a radix configuration is refused.
"""
from __future__ import annotations

import math

import numpy as np

from spiraltorch_tuner import heuristics as h
from spiraltorch_tuner.shaders import space

U32_MAX = 2**32 - 1
MAX_ROWS = space()["topk"]["bounds"]["rows"][1]     # one workgroup row per dispatch row


def ho_starts() -> list[int]:
    """The x in [1, 2^32) where floor(2 log2 x) steps up: 2^b and the least x with x^2 >= 2^(2b+1)."""
    out = []
    for b in range(32):
        out += [1 << b, math.isqrt((1 << (2 * b + 1)) - 1) + 1]
    return sorted({x for x in out if x <= U32_MAX})


def intervals(cuts) -> list[tuple[int, int]]:
    s = sorted({c for c in cuts if 1 <= c <= U32_MAX} | {1})
    return [(a, (s[i + 1] - 1) if i + 1 < len(s) else U32_MAX) for i, a in enumerate(s)]


def vote_picks(v: h.Vote, queries: np.ndarray) -> list[tuple]:
    """vote_pick for many (rows, cols, k) at once, bit for bit: the same integer distances and the same float sums,
    added in the same order (a running sum along the shapes, as the Python loop adds them)."""
    pts = np.array(v.points, dtype=np.int64)
    cost = np.array(v.cost, dtype=np.float64)
    chs = np.array([c[3] for c in v.configs], dtype=np.int64)
    two = np.array([bool(c[0]) for c in v.configs])
    out = []
    for lo in range(0, len(queries), 1024):
        q = queries[lo:lo + 1024]
        hq = np.array([[h.ho(a) for a in row] for row in q], dtype=np.int64)
        d = (np.abs(pts[None, :, 0] - hq[:, None, 0]) + h.VOTE_COLS * np.abs(pts[None, :, 1] - hq[:, None, 1])
             + np.abs(pts[None, :, 2] - hq[:, None, 2]))
        near = d.min(axis=1, keepdims=True) + h.VOTE_SLACK
        terms = np.where((d <= near)[:, None, :], cost[None, :, :] / (2 + d)[:, None, :].astype(np.float64), 0.0)
        sums = np.cumsum(terms, axis=2)[:, :, -1]
        legal = ~two[None, :] | ((q[:, 2:3] <= chs[None, :]) & (chs[None, :] < q[:, 1:2]))
        for i in range(len(q)):
            ok = np.flatnonzero(legal[i])
            best = ok[np.argmin(sums[i, ok])] if len(ok) else int(np.argmin(sums[i]))
            out.append(h.legalize(v.configs[best], int(q[i, 1]), int(q[i, 2]), v.grid))
    return out


class RadixInVote(ValueError):
    """A vote given to the wasm-table holds a radix configuration, which st-core cannot run."""


def records_for(v: h.Vote, subgroup: bool) -> list[dict]:
    """The non-overlapping records of one vote (see the module docstring). Boxes are grown greedily: from the first
    uncovered box (rows, then cols, then k ascending), along k, then cols, then rows, while the boxes taken in hold
    the same pick or are empty (k > cols, which no query has), then marked covered. Rows stop at the kernels' limit
    (65535; the last interval stays open); cols and k span the u32 range."""
    if any(c[6] for c in v.configs):
        raise RadixInVote("the wasm-table's vote holds radix configurations; st-core has no radix pipeline: fit it "
                          "without them (rules.fit_runs(..., radix=False))")
    chs = {c[3] + 1 for c in v.configs if c[0]} | {g + 1 for g in v.grid}
    iv = (intervals([x for x in ho_starts() if x <= MAX_ROWS]), intervals(ho_starts() + sorted(chs)),
          intervals(ho_starts() + sorted(chs)))
    boxes = [(a, b, c) for a in range(len(iv[0])) for b in range(len(iv[1])) for c in range(len(iv[2]))
             if iv[2][c][0] <= iv[1][b][1]]
    q = np.array([(iv[0][a][0], iv[1][b][1], iv[2][c][0]) for a, b, c in boxes], dtype=np.int64)
    picks = vote_picks(v, q)
    ids: dict = {}
    label = np.full(tuple(len(x) for x in iv), -1)
    for box, p in zip(boxes, picks):
        label[box] = ids.setdefault(p, len(ids))
    configs = list(ids)
    covered = np.zeros(label.shape, dtype=bool)
    out = []
    for cell in zip(*np.nonzero(label >= 0)):
        if covered[cell]:
            continue
        lab, lo, hi = label[cell], list(cell), [c + 1 for c in cell]
        for ax in (2, 1, 0):
            while hi[ax] < label.shape[ax]:
                sl = [slice(lo[i], hi[i]) for i in range(3)]
                sl[ax] = slice(hi[ax], hi[ax] + 1)
                blk = label[tuple(sl)]
                if not (((blk == lab) | (blk < 0)).all() and not covered[tuple(sl)].any()):
                    break
                hi[ax] += 1
        covered[tuple(slice(lo[i], hi[i]) for i in range(3))] = True
        p = configs[lab]
        out.append({"rows_min": iv[0][lo[0]][0], "rows_max": iv[0][hi[0] - 1][1], "cols_min": iv[1][lo[1]][0],
                    "cols_max": iv[1][hi[1] - 1][1], "k_min": iv[2][lo[2]][0], "k_max": iv[2][hi[2] - 1][1],
                    "subgroup": subgroup, "use_2ce": bool(p[0]), "wg": int(p[1]), "kl": int(p[2]), "ch": int(p[3])})
    return out


def wasm_table(votes: dict) -> list[dict]:
    """tuner_results.json for one device class's TopK votes ({True: Vote, False: Vote}, either may be None)."""
    out = []
    for sg in (True, False):
        if votes.get(sg) is not None:
            out += records_for(votes[sg], sg)
    return out
