"""static/timing.js's quantum and chain logic under node, against the intervals of a real rounded H200 run: the
quantum is the timer's (every interval it read), not one configuration's, so a sample spans about MIN_QUANTA quanta
and no more."""
from __future__ import annotations

import json
import math
import shutil

import pytest
from conftest import run_node

from spiraltorch_tuner.paths import ROOT

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

RUN = ROOT / "bench" / "results" / "h200-2026-11-30-browser-full-topk-unrounded.json"


def run_js(body: str, payload) -> dict:
    return run_node(["timing"], body, payload)


def quanta(seqs):
    return run_js("const q = new timing.Quanta();\n"
                  "console.log(JSON.stringify(input.map((d) => q.observe(d))));", seqs)


def test_equal_deltas_of_a_long_kernel_do_not_make_it_the_quantum():
    # three estimates of a 4.4 ms kernel on a 100 us timer, then a configuration of 1.2 ms
    assert quanta([[4_400_000] * 3, [1_200_000] * 3]) == [100_000, 100_000]


def test_the_quantum_is_the_gcd_of_every_interval_read():
    assert quanta([[0, 0, 0], [200_000, 300_000], [2_000_000], [0]]) == [100_000, 100_000, 100_000, 100_000]
    # a coarser timer: believed once 8 different intervals share it
    coarse = [[1_000_000, 2_000_000], [5_000_000, 3_000_000, 7_000_000], [4_000_000, 9_000_000, 11_000_000]]
    assert quanta(coarse) == [100_000, 100_000, 1_000_000]


def test_unrounded_intervals_give_zero_and_stay_zero():
    assert quanta([[4_471_840, 4_469_120, 4_475_008], [400_000, 500_000]]) == [0, 0]
    assert quanta([[31_744], [0, 0]]) == [0, 0]


def simulate(times_ms, quantum_ns):
    """Chains per sample the timer picks for kernels of these true times on a timer that rounds down to
    quantum_ns (each pair at its own phase), as Timer.time does: three estimates, then spanQuanta, then SAMPLE_MS."""
    return run_js("""
let seed = 7;
const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const Q = input.quantum;
const read = (ns) => { const a = rnd() * 1e7; return Math.floor((a + ns) / Q) * Q - Math.floor(a / Q) * Q; };
const q = new timing.Quanta();
const chains = [];
let steps = 0;
for (const t of input.times) {
  const ns = t * 1e6;
  const est0 = [read(ns), read(ns), read(ns)];
  q.observe(est0);
  const s = await timing.spanQuanta(() => q.value, est0, async (c) => { steps++; const d = read(c * ns); q.observe([d]); return d; });
  const est = Math.max(timing.median(s.deltas) / s.chains / 1e6, 1e-4);
  chains.push(Math.max(s.chains, Math.ceil(timing.SAMPLE_MS / est)));
}
console.log(JSON.stringify({ chains, steps, quantum: q.value }));
""", {"times": times_ms, "quantum": quantum_ns})


def test_on_a_real_runs_kernel_times_each_sample_spans_about_min_quanta():
    """The 1,315 kernel times of an H200 run (unrounded timestamps): on a 100 us timer each sample must span
    >= 20 quanta (2 ms) and, where one chain is shorter than that, < 2x more than needed. The rounded run of the same
    day picked 20-40 chains for kernels of 1.2-4.5 ms: 70 s of samples where 26 s sufficed."""
    times = [m["median_ms"] for m in json.loads(RUN.read_text())["measurements"] if m["ok"]]
    got = simulate(times, 100_000)
    assert got["quantum"] == 100_000
    need_ms = 20 * 0.1
    spans = [c * t for c, t in zip(got["chains"], times)]
    assert all(s >= need_ms * 0.95 for s in spans), min(spans)
    over = [(c, t) for c, t in zip(got["chains"], times) if c * t > 2.5 * max(need_ms, t)]
    assert not over, over[:10]
    total_s = 10 * sum(spans) / 1e3                # 10 samples a configuration, as the full preset
    assert total_s < 40, total_s
    assert got["steps"] < 2 * len(times), got["steps"]     # submissions to find N: under two a configuration
    print(f"\n{len(times)} kernels: samples {total_s:.1f} s of GPU time on a 100 us timer "
          f"(the minimum, {10 * sum(max(need_ms, t) for t in times) / 1e3:.1f} s), {got['steps']} extra submissions")


def test_unrounded_timer_keeps_one_chain_for_long_kernels():
    got = simulate([4.47, 2.39, 1.19, 0.05], 1)
    assert got["quantum"] == 0
    assert got["chains"][:3] == [1, 1, 1] and got["chains"][3] == math.ceil(0.5 / 0.05)


def canary_flags(span_quanta, slowdowns, quantum_ns=100_000, n=2000):
    """A canary of span_quanta quanta read on a timer rounding to quantum_ns at random phases: the best of 9
    readings at full clock, then n readings each at a true slowdown drawn from `slowdowns`; how many of them
    Timer.time's two ratios put over the 1.06 tolerance: c / best, and clockRatio."""
    return run_js("""
let seed = 11;
const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const { span, slow, Q, n } = input;
const read = (ns) => { const a = rnd() * 1e9; return Math.floor((a + ns) / Q) * Q - Math.floor(a / Q) * Q; };
const ns = span * Q, toMs = (d) => d / 1e6;
const best = Math.min(...Array.from({ length: 9 }, () => toMs(read(ns))));
let naive = 0, proven = 0;
for (let i = 0; i < n; i++) {
  const c = toMs(read(ns * slow[i % slow.length]));
  if (c / Math.min(best, c) > 1.06) naive++;
  if (timing.clockRatio(c, Math.min(best, c), toMs(Q)) > 1.06) proven++;
}
console.log(JSON.stringify({ naive, proven }));
""", {"span": span_quanta, "slow": slowdowns, "Q": quantum_ns, "n": n})


def test_a_rounded_canary_is_not_read_as_a_lowered_clock():
    """The rounded H200 run: canaries of about 31.5 quanta with a percent or two of jitter; c / best flagged
    readings of 33/31 as a lowered clock, clockRatio does not, and still flags a clock 20 % or 3x down."""
    jitter = [1.0, 1.005, 1.01, 1.015, 1.02]
    got = canary_flags(31.5, jitter)
    assert got["naive"] > 20 and got["proven"] == 0, got
    assert canary_flags(31.5, [1.2], n=200)["proven"] == 200
    assert canary_flags(31.5, [3.0], n=200)["proven"] == 200
    # unrounded (a 1 ns quantum): the two agree
    fine = canary_flags(3_150_000, [1.0, 1.05, 1.07, 1.2], quantum_ns=1, n=400)
    assert fine["naive"] == fine["proven"] == 200, fine
