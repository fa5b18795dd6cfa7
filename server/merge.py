"""What the quality report (report.py) and the generator (rustgen.py) both read: stored runs merged per device
class. Its one home, so neither of the two imports the other. (`usable`, the measurements the rule works on, lives
with the rule in spiraltorch_tuner.heuristics, which the tuned defaults use where kernels run.)"""
from __future__ import annotations

from spiraltorch_tuner.heuristics import MIN_MS, adapter_class, group_by_class, merge_measurements, usable  # noqa: F401


def merged_classes(records) -> list:
    """[(AdapterClass, run records, merged measurements)] for stored run records ({"run_id", "created_at", "run"}),
    classes in key order; each class's runs merged by heuristics.merge_measurements."""
    by = group_by_class([{**r["run"], "measurements": usable(r["run"].get("measurements", []))} for r in records])
    ids: dict = {}
    for r in records:
        ids.setdefault(adapter_class(r["run"]), []).append(r)
    return [(c, ids[c], merge_measurements(docs)) for c, docs in by.items()]
