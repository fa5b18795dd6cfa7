"""static/gen.js (the browser's input generator) is bit-identical to native/gen.py, run under node."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from conftest import run_node

from spiraltorch_tuner import gen

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def run_js(body: str, payload) -> dict:
    """Runs `body` as an ES module with `g` = static/gen.js, `input` = payload; it must print one JSON value."""
    return run_node(["gen"], "import { createHash } from 'node:crypto';\nconst g = gen;\n"
                    "const sha = (a) => createHash('sha256').update(Buffer.from(a.buffer, a.byteOffset, a.byteLength))"
                    ".digest('hex');\n" + body, payload)


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


CASES = [(seed, stream, n) for seed in (0, 1, 7, 123456789, 0xFFFFFFFF) for stream in (0, 1, 2, 3) for n in (1, 3, 1000)]


def test_hash_matches_python_for_seeds_streams_and_lengths():
    got = run_js("console.log(JSON.stringify(input.map(([s, t, n]) => Array.from(g.hashU32(s, t, n)))));", CASES)
    for (seed, stream, n), values in zip(CASES, got):
        assert values == gen.hash_u32(seed, stream, n).tolist(), (seed, stream, n)


def test_hash_matches_python_at_large_indices():
    starts = [(1 << 24) - 5, (1 << 24) + 12345, (1 << 31) - 2, (1 << 32) - 3]
    got = run_js("console.log(JSON.stringify(input.map((st) => Array.from(g.hashU32(5, 2, 10, st)))));", starts)
    for st, values in zip(starts, got):
        assert values == gen.hash_u32(5, 2, 10, start=st).tolist(), st


@pytest.mark.parametrize("dist", ["uniform", "ties"])
def test_floats_are_bit_identical(dist):
    shapes = [(1, 1), (4, 1024), (3, 4097), (2, 16384)]
    payload = [[seed, stream, r * c] for seed in (1, 42) for stream in (0, 2, 3) for r, c in shapes]
    got = run_js(f"console.log(JSON.stringify(input.map(([s, t, n]) => sha(g.floats(s, n, t, {json.dumps(dist)})))));",
                 payload)
    i = 0
    for seed in (1, 42):
        for stream in (0, 2, 3):
            for shape in shapes:
                ref = gen.floats(seed, shape, stream, dist)
                assert ref.dtype == np.float32
                assert got[i] == sha(ref), (seed, stream, shape, dist)
                i += 1


def test_floats_beyond_two_to_the_24_elements_are_bit_identical():
    n = (1 << 24) + 4099
    got = run_js("const a = g.floats(3, input, 0); console.log(JSON.stringify([sha(a), a[a.length - 1]]));", n)
    ref = gen.floats(3, (n,), 0)
    assert got[0] == sha(ref)
    assert np.float32(got[1]) == ref[-1]


def test_ints_and_bools_are_bit_identical():
    payload = [[seed, stream, n] for seed in (1, 99) for stream in (1, 2, 3) for n in (1, 7, 5000)]
    got = run_js("console.log(JSON.stringify(input.map(([s, t, n]) => [sha(g.ints(s, n, t)), sha(g.bools(s, n, t))])));",
                 payload)
    for (seed, stream, n), (si, sb) in zip(payload, got):
        assert si == sha(gen.ints(seed, (n,), stream)), (seed, stream, n)
        assert sb == sha(gen.bools(seed, (n,), stream).astype(np.uint8)), (seed, stream, n)


def test_floats_are_in_range_and_ties_have_sixteen_values():
    got = run_js("const u = g.floats(1, 100000, 0); const t = g.floats(1, 100000, 0, 'ties');"
                 "console.log(JSON.stringify([Math.min(...u), Math.max(...u), new Set(t).size]));", None)
    assert -1.0 <= got[0] and got[1] < 1.0
    assert got[2] == 16


def test_unknown_distribution_is_rejected():
    got = run_js("try { g.floats(1, 4, 0, 'normal'); console.log('null'); }"
                 "catch (e) { console.log(JSON.stringify(e.message)); }", None)
    assert "allowed: uniform, ties" in got
