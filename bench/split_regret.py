"""How well does the fitted TopK rule pick for shapes between the measured ones? Takes a run of the dense preset
(TopK on a 4x lattice), fits the rule on part of the lattice and judges it on the rest (regret = time of the pick /
fastest measured time, both from the run): a 16x-spaced sub-lattice (as sparse as a coarse grid) and a checkerboard
half (every shape's lattice neighbours are held out, 4x away).

    python3 bench/split_regret.py bench/results/h200-2026-11-29-lattice-topk.json
"""
from __future__ import annotations

import argparse
import json
import math

from spiraltorch_tuner import heuristics as H


ROWS, COLS, KS = (1, 4, 16, 64, 256, 1024, 4096), (1024, 4096, 16384, 65536, 262144, 1048576), (8, 32, 128, 512, 2048)


def _step(v: int, base: int) -> int:
    return round(math.log(v // base, 4))


SPLITS = {
    "16x sub-lattice (rows 1/16/256/4096, cols 1024/16384/262144, k 8/128/2048)":
        lambda r, c, k: _step(r, 1) % 2 == 0 and _step(c, 1024) % 2 == 0 and _step(k, 8) % 2 == 0,
    "checkerboard half of the lattice": lambda r, c, k: (_step(r, 1) + _step(c, 1024) + _step(k, 8)) % 2 == 0,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    args = ap.parse_args()
    ms = [m for m in json.loads(open(args.run).read())["measurements"] if m.get("kernel") == "topk"]
    times = H.topk_times(ms)
    lattice = [s for s in times if s[0] in ROWS and s[1] in COLS and s[2] in KS]
    for name, keep in SPLITS.items():
        model = H.topk_table([m for m in ms if keep(m["rows"], m["cols"], m["k"])])
        test = [s for s in lattice if not keep(*s)]
        regret = sorted((times[s][H.choose_topk(model, *s, True)] / min(times[s].values()), s) for s in test)
        geo = math.exp(sum(math.log(r) for r, _ in regret) / len(regret))
        print(f"{name}: fitted on {len(lattice) - len(test)} shapes, judged on the other {len(test)}: "
              f"regret geomean {geo:.3f}, worst {regret[-1][0]:.3f} ({'x'.join(map(str, regret[-1][1][:2]))} "
              f"k={regret[-1][1][2]}), over 1.25: {sum(r > 1.25 for r, _ in regret)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
