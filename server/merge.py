"""What the quality report (report.py) and the generator (rustgen.py) both read: the usable measurements of a run,
and stored runs merged per device class. Its one home, so neither of the two imports the other."""
from __future__ import annotations

from spiraltorch_tuner.heuristics import adapter_class, group_by_class, merge_measurements

MIN_MS = 1e-6   # a measured 0 ms (a coarse wall timer) counts as 1 ns, so ratios and log-times stay finite


def usable(measurements) -> list[dict]:
    """The measurements the rule and the report work on: times of 0 raised to MIN_MS (everything else as is; the
    rule itself skips measurements that failed or have no time). rustgen feeds the rule the same list."""
    out = []
    for m in measurements:
        t = m.get("median_ms")
        out.append({**m, "median_ms": MIN_MS} if t is not None and t < MIN_MS else m)
    return out


def merged_classes(records) -> list:
    """[(AdapterClass, run records, merged measurements)] for stored run records ({"run_id", "created_at", "run"}),
    classes in key order; each class's runs merged by heuristics.merge_measurements."""
    by = group_by_class([{**r["run"], "measurements": usable(r["run"].get("measurements", []))} for r in records])
    ids: dict = {}
    for r in records:
        ids.setdefault(adapter_class(r["run"]), []).append(r)
    return [(c, ids[c], merge_measurements(docs)) for c, docs in by.items()]
