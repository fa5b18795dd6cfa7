"""How much of a where_nd tuning run's regret is timing noise? Given two runs of the same where_nd space on one
device (`python3 bench/tune_gpu.py --kernels where_nd --out A.json`, twice), prints per direction the regret of one
run's fastest configuration per case timed in the other run (the noise floor: a perfect rule cannot do better when
judged on a fresh run), and of the rule fitted on one run, and of the fixed default, judged on the other.

    python3 bench/where_noise.py A.json B.json
"""
from __future__ import annotations

import argparse
import json
import math

from _checkout import ROOT, ensure_spiraltorch, heuristics

ensure_spiraltorch()
H = heuristics()


def _geo(v):
    return math.exp(sum(math.log(x) for x in v) / len(v))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    docs = [json.loads(open(p).read()) for p in (args.a, args.b)]
    default = tuple(json.loads((ROOT / "shaders" / "space.json").read_text())["where_nd"]["default"][k]
                    for k in H.WHERE_KEYS)
    for (name_a, da), (name_b, db) in (((args.a, docs[0]), (args.b, docs[1])), ((args.b, docs[1]), (args.a, docs[0]))):
        ta, tb = H.where_times(da["measurements"]), H.where_times(db["measurements"])
        rule = H.where_table(da["measurements"])
        floor, fitted, fixed = [], [], []
        for key, t in sorted(tb.items()):
            if key not in ta:
                continue
            best = min(t.values())
            q = H.where_query(key[0], key[1])
            floor.append(t[min(ta[key], key=ta[key].get)] / best)
            fitted.append(t[H.choose_where(rule, *q)] / best)
            fixed.append(t[default] / best)
        print(f"fitted on {name_a}, timed in {name_b} ({len(floor)} cases): regret geomean / worst")
        for label, v in (("fastest of the first run", floor), ("fitted rule", fitted), ("fixed default", fixed)):
            print(f"  {label:<26} {_geo(v):.3f} / {max(v):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
