"""How an anchor's TopK answer compares with our oracle's (spiraltorch_tuner.cpu.topk_reference).

The oracle returns, per row, the k largest values sorted descending, equal values in ascending index order, and at
the k-th value the lower indices. The anchors promise less: FlashInfer (tie_break 0) and CUB (not_guaranteed) pick
any of the items that tie at the k-th value, and order equal values (FlashInfer, CUB's sort) in no defined way;
CUB's top-k alone does not sort at all. So an answer is graded, from strictest to loosest:

- "identical": values bitwise equal to the oracle's and indices equal, position by position;
- "same set": the same (value, index) pairs as the oracle's, in another order of equal values (or, unsorted, in any
  order);
- "tie choice": the same values, bit for bit, but at the k-th value some other items of that value than the
  oracle's lower indices (a valid top-k: the returned indices are distinct, in range, and each holds its value);
- anything else is wrong, and the row says how.

Values are compared as bits (so -0.0 and 0.0 differ). For a sorted variant the values must also be
non-increasing along each row; for an unsorted one the pairs are put in the oracle's order (value descending, index
ascending) before comparing.
"""
from __future__ import annotations

import numpy as np

from spiraltorch_tuner.cpu import sort_keys

GRADES = ("identical", "same set", "tie choice")


def _order(v: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Per row, the permutation that sorts (value, index) pairs as the oracle does: value descending (the oracle's
    sort_keys: NaN largest, -0.0 below 0.0), index ascending among equal values."""
    comp = (sort_keys(v).astype(np.uint64) << np.uint64(32)) | (np.uint64(0xFFFFFFFF) - i.astype(np.uint64))
    return np.argsort(comp, axis=1, kind="stable")[:, ::-1]


def grade_topk(x: np.ndarray, rv: np.ndarray, ri: np.ndarray, v: np.ndarray, i: np.ndarray, *,
               sorted_output: bool, limit: int = 3) -> tuple[str | None, str | None]:
    """(grade, note): grade is one of GRADES or None when the answer is wrong; note names the first `limit` rows
    that are not identical and why (None when all are identical)."""
    rows, cols = x.shape
    k = rv.shape[1]
    if v.shape != rv.shape or i.shape != ri.shape:
        return None, f"shapes {v.shape} / {i.shape}, expected {rv.shape}"
    v = np.ascontiguousarray(v, dtype=np.float32)
    i = np.ascontiguousarray(i).astype(np.int64)
    rbits = rv.view(np.uint32)
    worst = 0
    notes = []
    for r in range(rows):
        vb, ir = v[r].view(np.uint32), i[r]
        if np.array_equal(vb, rbits[r]) and np.array_equal(ir, ri[r]):
            continue
        why = None
        if sorted_output:
            s = _order(v[r:r + 1], ir[None])[0]
            if not np.array_equal(v[r].view(np.uint32), v[r][s].view(np.uint32)):
                why = "values not sorted descending"
        if why is None and (ir.min() < 0 or ir.max() >= cols):
            why = f"index out of range [0, {cols})"
        if why is None and len(np.unique(ir)) != k:
            why = f"{k - len(np.unique(ir))} repeated indices"
        if why is None and not np.array_equal(x[r, ir].view(np.uint32), vb):
            why = f"{int((x[r, ir].view(np.uint32) != vb).sum())} indices do not hold the value returned beside them"
        if why is None:
            s = _order(v[r:r + 1], ir[None])[0]
            if not np.array_equal(v[r][s].view(np.uint32), rbits[r]):
                why = f"{int((v[r][s].view(np.uint32) != rbits[r]).sum())} values differ from the oracle's"
        if why is not None:
            notes.append(f"row {r}: {why}")
            worst = 3
            continue
        if np.array_equal(ir[s], ri[r]):
            grade, what = 1, "equal values in another order" if sorted_output else "the oracle's set, unsorted"
        else:
            grade, what = 2, (f"{int(np.setdiff1d(ir, ri[r]).size)} items of the k-th value ({rv[r, -1]!r}) other "
                              "than the oracle's lower indices")
        worst = max(worst, grade)
        if grade == 2 or sorted_output:
            notes.append(f"row {r}: {what}")
    grade = None if worst == 3 else GRADES[worst]
    if not notes:
        return grade, None
    more = f"; and {len(notes) - limit} more rows" if len(notes) > limit else ""
    return grade, "; ".join(notes[:limit]) + more
