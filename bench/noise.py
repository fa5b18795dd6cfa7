"""How much of a tuning run's regret is timing noise? Given two runs of the same space on one device (e.g.
`python3 bench/tune_gpu.py --out A.json` twice; `--kernels where_nd` for where_nd), prints per kernel and per
direction the regret of one run's fastest configuration per shape (TopK) or case (where_nd) timed in the other run
(the noise floor: a perfect rule cannot do better when judged on a fresh run), and of the rule fitted on one run and
of the fixed default (space.json), judged on the other; for where_nd runs with kernel times, also on those alone
(regret: kernel time over the fastest of the same path).

    python3 bench/noise.py A.json B.json
"""
from __future__ import annotations

import argparse
import json
import math

from spiraltorch_tuner import heuristics as H
from spiraltorch_tuner.shaders import space


def _geo(v):
    return math.exp(sum(math.log(x) for x in v) / len(v))


def _default(kernel: str, keys) -> tuple:
    return tuple(space()[kernel]["default"][k] for k in keys)


def _time_regret(t: dict, c) -> float | None:
    return t[c] / min(t.values()) if c in t else None


def _regrets(ta, tb, pick, default, regret=_time_regret):
    """(keys, floor, fitted, fixed): per key measured in both runs, the regret in run B (`regret(B's times of the
    key, configuration)`, NaN where None) of run A's fastest configuration, of `pick(key)` and of `default`."""
    out = ([], [], [], [])
    for key, t in sorted(tb.items()):
        if key not in ta:
            continue
        out[0].append(key)
        for v, c in zip(out[1:], (min(ta[key], key=ta[key].get), pick(key), default)):
            r = regret(t, c)
            v.append(math.nan if r is None else r)
    return out


def topk(ma, mb):
    """TopK (subgroups allowed): run A's picks timed in run B."""
    rule = H.topk_table(ma)
    return _regrets(H.topk_times(ma), H.topk_times(mb), lambda key: H.choose_topk(rule, *key, True),
                    _default("topk", H.TOPK_KEYS))


def where(ma, mb, times=H.where_times, regret=_time_regret):
    """The same for where_nd cases."""
    rule = H.where_table(ma)
    return _regrets(times(ma), times(mb), lambda key: H.choose_where(rule, *H.where_query(key[0], key[1])),
                    _default("where_nd", H.WHERE_KEYS), regret)


def where_kernel(ma, mb):
    """where_nd kernel times (runs that carry kernel_ms): the regret of a configuration is its kernel time over the
    fastest kernel time of its path (heuristics.kernel_regret), what wg and vpt change."""
    return where(ma, mb, H.where_kernel_times, H.kernel_regret)


def _line(label, v):
    ok = [x for x in v if not math.isnan(x)]
    missing = f" ({len(v) - len(ok)} not measured in the second run)" if len(ok) < len(v) else ""
    return f"  {label:<26} {_geo(ok):.3f} / {max(ok):.3f}{missing}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    docs = [json.loads(open(p).read()) for p in (args.a, args.b)]
    for (name_a, da), (name_b, db) in (((args.a, docs[0]), (args.b, docs[1])), ((args.b, docs[1]), (args.a, docs[0]))):
        for kernel, fn, unit in (("TopK", topk, "shapes"), ("where_nd", where, "cases"),
                                 ("where_nd kernel time", where_kernel, "cases")):
            keys, floor, fitted, fixed = fn(da["measurements"], db["measurements"])
            if not keys:
                continue
            print(f"{kernel}: fitted on {name_a}, timed in {name_b} ({len(keys)} {unit}): regret geomean / worst")
            for label, v in (("fastest of the first run", floor), ("fitted rule", fitted), ("fixed default", fixed)):
                print(_line(label, v))
            worst = max(range(len(keys)), key=lambda i: floor[i])
            print(f"  (the noise floor's worst: {keys[worst]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
