"""A run document with each where_nd call's samples cut to the first N (median and min recomputed, kernel_ms kept),
under a run id of its own: to see whether a rule fitted on fewer call samples picks as well, judged on all of them
(docs/timing.md: where_nd.call_timing).

    python3 bench/call_samples.py RUN.json OUT.json [N=3]
    spiraltorch-tuner import --db j.sqlite3 RUN.json OUT.json
    spiraltorch-tuner judge --db j.sqlite3 --on RUN_ID --rule OUT_RUN_ID
"""
from __future__ import annotations

import json
import statistics
import sys


def cut(doc: dict, n: int) -> dict:
    out = json.loads(json.dumps(doc))
    out["run_id"] = f"{doc['run_id'][:24]}calls{n:03d}"
    out["label"] = f"{doc.get('label', '')} (where_nd calls: first {n} samples)"
    for m in out["measurements"]:
        s = m.get("samples_ms") or []
        if m["kernel"] == "where_nd" and m["ok"] and len(s) > n:
            m["samples_ms"] = s[:n]
            m["median_ms"], m["min_ms"] = statistics.median(s[:n]), min(s[:n])
    return out


def main(src: str, dst: str, n: str = "3") -> None:
    doc = cut(json.load(open(src)), int(n))
    json.dump(doc, open(dst, "w"))
    print(f"{dst}: run {doc['run_id']}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
