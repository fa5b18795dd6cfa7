"""Print a seeded sample of TopK shapes off the full preset's grid, for bench/tune_gpu.py --shapes: log-uniform rows
in 1..4096, cols in 1024..1048576 and k in 8..2048 (k <= cols / 2, at most 2^24 elements), plus four shapes of
LLM vocabularies. The committed runs used seeds 2026 (bench/results/h200-2026-11-29-offgrid-topk.json), 2027
(...-offgrid-topk-2.json) and 2028 (...-offgrid-topk-3.json):

    python3 bench/tune_gpu.py --out run.json --shapes $(python3 bench/offgrid_shapes.py --seed 2027)
"""
from __future__ import annotations

import argparse
import random

VOCAB = {2026: [(1, 32000, 50), (8, 50257, 40), (32, 151936, 64), (4, 128256, 1000)],
         2027: [(16, 32000, 40), (2, 152064, 20), (64, 50257, 256), (1, 256000, 64)]}


def sample(seed: int, n: int = 36) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    shapes: set = set()
    while len(shapes) < n:
        r, c = round(2 ** rng.uniform(0, 12)), round(2 ** rng.uniform(10, 20))
        if r * c > 2 ** 24:
            continue
        k = round(2 ** rng.uniform(3, 11))
        if k <= c // 2:
            shapes.add((r, c, k))
    return sorted(shapes | set(VOCAB.get(seed, VOCAB[2027])))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2027)
    print(" ".join(f"{r},{c},{k}" for r, c, k in sample(ap.parse_args().seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
