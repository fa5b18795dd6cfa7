"""The fitted rules: TopK's vote of the nearest measured shapes and where_nd's decision tree, which pick well on
shapes nobody measured and report their held-out regret honestly; in Rust with the same arithmetic, agreeing with
Python everywhere (test_rustgen checks the dense grid)."""
import itertools
import json
import math
from pathlib import Path

import pytest

from conftest import _topk, _where, make_run
from spiraltorch_tuner.heuristics import (choose_topk, choose_where, fit_vote, group_by_class, ho, merge_measurements,
                                          topk_table, topk_times, vote_pick, where_table, where_times)
from spiraltorch_tuner.server.report import format_report, report
from spiraltorch_tuner.server.rustgen import generate

ROOT = Path(__file__).resolve().parents[1]

ONE = dict(use_2ce=False, wg=1024, kl=4)              # one workgroup per row: good for short rows
TWO = dict(use_2ce=True, wg=256, kl=4, ch=4096)      # chunks: good for long rows
MANY_ROWS = dict(use_2ce=False, wg=256, kl=4)         # small workgroups: good when there are many rows


def synthetic_run():
    """Times with a known structure: 2CE wins above cols = 2^14, small 1CE workgroups win at >= 1024 rows with
    short rows; everything else loses by 30%."""
    ms = []
    for rows, cols, k in itertools.product([1, 8, 64, 1024, 4096], [1024, 4096, 65536, 1 << 20], [8, 256]):
        if k >= cols:
            continue
        best = "two" if cols > 1 << 14 else ("many" if rows >= 1024 else "one")
        for name, p in (("one", ONE), ("two", TWO), ("many", MANY_ROWS)):
            if name == "two" and not k <= 4096 < cols:
                continue
            ms.append(_topk(rows, cols, k, 1.0 if name == best else 1.3, **p))
    return make_run(measurements=ms, features=["subgroups", "timestamp-query"])


def test_the_vote_picks_unmeasured_shapes_by_their_nearest_measured_shapes():
    model = topk_table(synthetic_run()["measurements"])
    pick = lambda r, c, k: choose_topk(model, r, c, k, True)   # noqa: E731
    assert pick(2, 1 << 18, 100)[:4] == (True, 256, 4, 4096)           # long rows, nobody measured 2^18
    assert pick(3, 2048, 16)[:3] == (False, 1024, 4)                   # short rows, few
    assert pick(2000, 2048, 16)[:3] == (False, 256, 4)                 # short rows, many
    assert pick(5, 3000, 4000) == (False, 1024, 4, 0, False, True, False, 0, 0)   # k > ch: 2CE is not legal: 1CE


def test_half_octaves_are_exact():
    assert [ho(x) for x in (0, 1, 2, 3, 4, 5, 6, 8, 11, 12, 65536, 92681, 92682, (1 << 32) - 1)] == \
        [0, 0, 2, 3, 4, 4, 5, 6, 6, 7, 32, 32, 33, 63]


def test_a_chunk_size_not_legal_on_a_measured_shape_is_not_credited_with_another_configurations_time():
    """At cols = 65536 a chunk of 65536 is not legal; what runs there instead says nothing about how it does on
    96379 columns (two chunks, one of them 65536 long), so the vote counts it as that shape's slowest."""
    a, b, c = (dict(use_2ce=True, wg=256, kl=4, ch=16384), dict(use_2ce=True, wg=256, kl=4, ch=65536),
               dict(use_2ce=False, wg=256, kl=4))
    ms = [_topk(1, 65536, 8, 1.0, **a), _topk(1, 65536, 8, 2.0, **c),
          _topk(1, 262144, 8, 1.1, **a), _topk(1, 262144, 8, 1.0, **b), _topk(1, 262144, 8, 2.0, **c)]
    model = topk_table(ms)
    assert choose_topk(model, 1, 96379, 8, True)[3] == 16384
    assert choose_topk(model, 1, 262144, 8, True)[3] == 65536


def test_held_out_regret_is_perfect_on_the_structured_run_and_the_default_is_not():
    r = report(synthetic_run())["regret"]
    assert r["tuned_heldout"]["geomean"] == 1.0 and r["tuned_heldout"]["worst"] == 1.0
    assert r["fixed_default"]["worst"] > 1.0


def test_subgroup_free_tree_only_picks_sg_false():
    ms = [_topk(4, 1024, 8, 0.5, wg=64, sg=True), _topk(4, 1024, 8, 0.7, wg=128),
          _topk(4, 65536, 8, 0.5, wg=64, sg=True), _topk(4, 65536, 8, 0.9, wg=256)]
    model = topk_table(ms)
    for cols in (1024, 4096, 65536):
        assert choose_topk(model, 4, cols, 8, False)[4] is False
    assert choose_topk(model, 4, 1024, 8, True)[4] is True
    assert topk_table([m for m in ms if m["params"]["sg"]]).votes[False] is None


def test_one_off_configurations_are_judged_but_not_picked():
    """A configuration measured on one shape of many (like st-core's fallback beside the grid) is no candidate."""
    one, other = (False, 512, 8, 0, False, True, False, 0, 0), (False, 128, 4, 0, False, True, False, 0, 0)
    assert fit_vote({(4, 1024, 8): {one: 0.5, other: 1.0},
                     **{(4, c, 8): {other: 1.0} for c in (2048, 4096, 8192, 16384, 32768)}},
                    lambda c: True).configs == (other,)


def test_generated_rust_holds_the_vote_as_tables():
    src = generate(synthetic_run(), run_id="r", created_at="2026-11-25")
    assert "const TOPK_VOTE: Vote = Vote {" in src and "const TOPK_VOTE_NO_SG: Vote" in src
    assert "TopKEntry" not in src


def regret_of(name, kernel="topk"):
    r = report(json.loads((ROOT / "bench/results" / name).read_text()))
    return r["regret"] if kernel == "topk" else r["where_nd"]["regret"]


def rounded(r):
    return {k: (round(v["geomean"], 3), round(v["worst"], 3), v["n"]) for k, v in r.items()}


def test_h100_full_runs_held_out_regret_is_what_the_readme_says():
    """The committed H100 runs (bench/tune_gpu.py, preset full: 44 shapes) give the README's figures: held out, no
    shape over 1.25; every held-out pick is a grid configuration measured on its shape, so every shape has a
    regret."""
    assert rounded(regret_of("h100-2026-11-25-s4-full-topk.json")) == {
        "tuned_measured": (1.002, 1.068, 44), "tuned_heldout": (1.021, 1.123, 44),
        "fixed_default": (3.546, 66.507, 44), "stcore_fallback": (1.387, 5.418, 44)}
    assert rounded(regret_of("h100-2026-11-25-full44-topk.json"))["tuned_heldout"] == (1.014, 1.101, 44)
    assert rounded(regret_of("h100-2026-11-25-s4-dense-probe.json"))["tuned_heldout"] == (1.03, 1.702, 68)


def test_h200_dense_run_held_out_regret_is_what_the_readme_says():
    """The 160-shape run of the dense preset (4x lattice) on an H200: one shape over 1.25 held out."""
    assert rounded(regret_of("h200-2026-11-29-lattice-topk.json")) == {
        "tuned_measured": (1.006, 1.207, 160), "tuned_heldout": (1.023, 1.761, 160),
        "fixed_default": (3.405, 69.241, 160), "stcore_fallback": (1.452, 6.258, 160)}


def test_h200_full_runs_held_out_regret_is_what_the_readme_says():
    """Four runs of the full preset on an H200 (the fourth tuned after the rule was fixed): held out, no shape over
    1.25 in any; timings so repeatable that each run's fastest configurations, timed in the next run, have regret
    <= 1.023 (bench/noise.py)."""
    names = [f"h200-2026-11-29-full-topk{n}.json" for n in ("", "-2", "-3", "-4")]
    assert rounded(regret_of(names[0])) == {
        "tuned_measured": (1.003, 1.054, 44), "tuned_heldout": (1.022, 1.151, 44),
        "fixed_default": (3.601, 69.236, 43), "stcore_fallback": (1.401, 5.46, 44)}
    assert rounded(regret_of(names[1]))["tuned_heldout"] == (1.023, 1.147, 44)
    assert rounded(regret_of(names[2]))["tuned_heldout"] == (1.023, 1.139, 44)
    assert rounded(regret_of(names[3]))["tuned_heldout"] == (1.024, 1.145, 44)
    ta, tb = (topk_times(json.loads((ROOT / "bench/results" / n).read_text())["measurements"]) for n in names[:2])
    for x, y in ((ta, tb), (tb, ta)):
        floor = [y[key][min(x[key], key=x[key].get)] / min(y[key].values()) for key in y]
        assert len(floor) == 44 and max(floor) <= 1.023


@pytest.mark.parametrize("run, geomean, worst, over", [("h200-2026-11-29-offgrid-topk.json", 1.027, 1.236, 0),
                                                         ("h200-2026-11-29-offgrid-topk-2.json", 1.066, 1.757, 4),
                                                         ("h200-2026-11-29-offgrid-topk-3.json", 1.043, 1.53, 2)])
def test_a_rule_fitted_on_a_full_run_serves_shapes_off_its_grid_as_the_readme_says(run, geomean, worst, over):
    """Three seeded samples of 40 shapes off the full preset's grid (bench/offgrid_shapes.py; no power of two in
    cols, e.g. 8x50257 k=40), each tuned in its own run, judged by the rule fitted on an H200 full run. The last two
    were tuned after the rule was fixed; 4 and 2 of their shapes are over 1.25."""
    full, off = (json.loads((ROOT / "bench/results" / n).read_text())["measurements"]
                 for n in ("h200-2026-11-29-full-topk.json", run))
    model, off = topk_table(full), topk_times(off)
    regret = [off[s][choose_topk(model, *s, True)] / min(off[s].values()) for s in off]
    assert len(regret) == 40 and sum(r > 1.25 for r in regret) == over
    assert round(math.exp(sum(map(math.log, regret)) / 40), 3) == geomean and round(max(regret), 3) == worst


def test_the_printed_report_names_and_marks_the_shapes_over_the_worst_case_target():
    text = format_report(report(json.loads((ROOT / "bench/results/h200-2026-11-29-offgrid-topk.json").read_text())))
    assert "worst held out: 45x38402 k=121 (1.308); 2 of 40 shapes over 1.25" in text
    w = report(json.loads((ROOT / "bench/results/h200-2026-11-29-where-kt-2.json").read_text()))["where_nd"]
    assert w["heldout_worst"] == {"name": "contiguous 2048x2048 float32", "regret": pytest.approx(1.486, abs=5e-4),
                                  "target": 1.25, "over": 1, "n": 42}
    marked = [line.split()[0:2] for line in text.splitlines() if "*" in line and "k=" in line]
    assert marked == [["37x7879", "k=36"], ["45x38402", "k=121"]]


def test_h200_where_nd_run_held_out_regret_is_what_the_readme_says():
    assert rounded(regret_of("h200-2026-11-29-where-grid.json", "where_nd")) == {
        "tuned_measured": (1.025, 1.392, 42), "tuned_heldout": (1.18, 1.941, 42), "fixed_default": (1.165, 1.81, 42)}


def test_h200_where_nd_runs_with_kernel_times_are_what_the_readme_says():
    """Four runs of the full preset's where_nd space with kernel times (bench/tune_gpu.py --kernels where_nd; the
    third on the kernel of s21-s22, the fourth on the kernel since s23): the rule's held-out picks are within 1.15 of
    the fastest kernel of their path; the fixed default is 1.36-1.45x slower."""
    a, b = (rounded(regret_of(f"h200-2026-11-29-where-kt{n}.json", "where_nd")) for n in ("", "-2"))
    assert a == {"tuned_measured": (1.0, 1.0, 42), "tuned_heldout": (1.005, 1.147, 42),
                 "fixed_default": (1.015, 1.278, 42), "tuned_measured_kernel": (1.002, 1.025, 42),
                 "tuned_heldout_kernel": (1.012, 1.148, 42), "fixed_default_kernel": (1.451, 2.414, 42)}
    assert b["tuned_heldout_kernel"] == (1.003, 1.033, 42) and b["fixed_default_kernel"] == (1.449, 2.418, 42)
    assert b["tuned_heldout"] == (1.022, 1.486, 42) and b["fixed_default"] == (1.019, 1.486, 42)
    c = rounded(regret_of("h200-2026-11-30-s22-where-kt.json", "where_nd"))   # the kernel of s21-s22
    assert c["tuned_heldout"] == (1.014, 1.214, 42) and c["fixed_default"] == (1.016, 1.217, 42)
    assert c["tuned_heldout_kernel"] == (1.005, 1.129, 42) and c["fixed_default_kernel"] == (1.422, 2.374, 42)
    d = rounded(regret_of("h200-2026-11-30-s23-where-kt.json", "where_nd"))   # the kernel since s23; shipped
    assert d["tuned_heldout"] == (1.001, 1.033, 42) and d["fixed_default"] == (1.003, 1.034, 42)
    assert d["tuned_heldout_kernel"] == (1.004, 1.036, 42) and d["fixed_default_kernel"] == (1.363, 2.354, 42)


def test_where_times_pool_the_uploads_where_measurements_carry_the_kernel_time():
    def m(path, wg, wall, kernel=None):
        d = _where("broadcast", [64, 1024], wall, path=path, wg=wg)
        return d if kernel is None else {**d, "kernel_ms": kernel}
    ms = [m("direct", 64, 1.0, 0.5), m("direct", 256, 2.0, 0.4), m("direct", 128, 1.4, 0.6),
          m("segmented", 64, 3.0, 0.2), m("segmented", 256, 2.5)]
    t = where_times(ms)[("broadcast", (64, 1024), "float32")]
    # direct: uploads = median(0.5, 1.6, 0.8) = 0.8, so wg 256 (the fastest kernel) wins in spite of its wall time
    assert t[("direct", 256, 1)] == pytest.approx(1.2) and t[("direct", 64, 1)] == pytest.approx(1.3)
    assert t[("direct", 128, 1)] == pytest.approx(1.4)
    # segmented: one measurement without kernel_ms, so that path keeps its wall times
    assert t[("segmented", 64, 1)] == 3.0 and t[("segmented", 256, 1)] == 2.5
    merged = merge_measurements([make_run(measurements=ms), make_run(measurements=[m("direct", 64, 3.0, 0.7)])])
    by = {(x["params"]["path"], x["params"]["wg"]): x for x in merged}
    assert by[("direct", 64)]["kernel_ms"] == pytest.approx(0.6) and by[("direct", 64)]["median_ms"] == 2.0
    assert "kernel_ms" not in by[("segmented", 256)]


def synthetic_where_run():
    """where_nd times with a known structure: small workgroups with one run per thread win up to 2^16 elements,
    (256, 4) above; the segmented path wins on contiguous inputs only (no views to resolve); the rest lose by 30%."""
    from conftest import _where
    ms = []
    shapes = [[1024], [64, 256], [16, 32, 32], [65536], [256, 256], [262144], [512, 512], [8, 8, 64, 64],
              [16, 256, 256], [2048, 2048]]
    for shape, case in itertools.product(shapes, ("contiguous", "neg_stride", "broadcast")):
        small = math.prod(shape) <= 1 << 16
        for path, wg, vpt in itertools.product(("direct", "segmented"), (64, 256), (1, 4)):
            win = (wg, vpt) == ((64, 1) if small else (256, 4)) and (path == "segmented") == (case == "contiguous")
            ms.append(_where(case, shape, 1.0 if win else 1.3, path=path, wg=wg, vpt=vpt))
    return make_run(measurements=ms)


def test_the_where_tree_finds_the_thresholds_and_picks_unmeasured_shapes_by_them():
    model = where_table(synthetic_where_run()["measurements"])
    assert choose_where(model, 1 << 12, 5, True) == ("segmented", 64, 1)        # nobody measured 5 dims
    assert choose_where(model, 1 << 22, 2, False) == ("direct", 256, 4)
    assert choose_where(model, 3 << 20, 3, True) == ("segmented", 256, 4)
    assert choose_where(where_table([]), 1 << 20, 2, True) is None
    w = report(synthetic_where_run())["where_nd"]
    assert len(w["cases"]) == 30
    assert w["regret"]["tuned_heldout"] == {"geomean": 1.0, "worst": 1.0, "n": 30}
    assert w["regret"]["fixed_default"]["worst"] == pytest.approx(1.3)
    src = generate(synthetic_where_run(), run_id="r", created_at="2026-11-29")
    assert "if ct <= 0 {" in src and "if ln <= " in src and "WhereEntry" not in src


def _ship_rules():
    """bench/ship_rules.py as a module (bench/ is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("ship_rules", ROOT / "bench" / "ship_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _runs(*names):
    """Run documents of bench/results as one (the first's header, every one's measurements), each as ship_rules reads
    it: the runs that measured topk_radix.wgsl before s22's change without their radix measurements."""
    run_doc = _ship_rules().run_doc
    docs = [run_doc(n) for n in names]
    return {**docs[0], "measurements": [m for d in docs for m in d["measurements"]]}


def test_h200_full_preset_with_radix_and_wg64_held_out_and_off_grid_regret_are_what_the_docs_say():
    """The full preset as it is now on an H200 (the radix pipeline, wg 64, rch 16384): its run and the wg 64 run,
    with the radix configurations as measured again after s22's change to topk_radix.wgsl, as one. The larger space
    generalises less well than the old one (1.022-1.024 / 1.14-1.15 held out): 2 shapes over 1.25 held out, at the
    grid's edges (4096x1024 k=8 wants wg 64, its neighbours wg 256; 8x1048576 k=8 rch 16384, its neighbours 4096);
    judged on the 116 off-grid shapes, 4 over 1.25. (Before s22's radix change: 1.063 / 1.538 held out, 3 over.)"""
    full = _runs("h200-2026-11-30-s21-full-topk.json", "h200-2026-11-30-s21-full-wg64.json",
                 "h200-2026-11-30-s22-full-radix.json")
    r = report(full)
    assert rounded(r["regret"])["tuned_heldout"] == (1.053, 1.538, 44) and r["heldout_worst"]["over"] == 2
    assert rounded(r["regret"])["tuned_measured"][0] <= 1.01
    off = topk_times(_runs("h200-2026-11-29-offgrid-topk.json", "h200-2026-11-29-offgrid-topk-2.json",
                           "h200-2026-11-29-offgrid-topk-3.json", "h200-2026-11-30-s21-offgrid-wg64.json",
                           "h200-2026-11-30-s22-offgrid-radix.json")["measurements"])
    model = topk_table(full["measurements"])
    regret = [off[s][choose_topk(model, *s, True)] / min(off[s].values()) for s in off]
    assert len(regret) == 116 and sum(r > 1.25 for r in regret) == 4
    assert round(math.exp(sum(map(math.log, regret)) / 116), 3) == 1.042 and round(max(regret), 3) == 1.54


def test_the_shipped_h200_rule_held_out_over_all_its_shapes_is_what_the_docs_say():
    """The shipped rules' H200 class with subgroups (bench/ship_rules.py's runs of it, merged: the full preset's 44
    shapes and the 116 off-grid ones, the radix pipeline and wg 64 measured on all of them), each of the 160 shapes
    left out in turn: what a user's shape off those gets, roughly. 1.038 / 1.740, 3 shapes over 1.25 (7x431586 k=8
    1.740, 184x70253 k=52 1.294, 480x25675 k=300 1.261; 1.039 / 1.264 before s22's radix change, 1.037 / 1.267
    before rch 16384)."""
    groups = group_by_class([r["run"] for r in _ship_rules().records()])
    (key,) = [k for k in groups if k.architecture == "NVIDIA H200" and k.subgroup_min == 32]
    times = topk_times(merge_measurements(groups[key]))
    regret = []
    for s in times:
        vote = fit_vote({k: v for k, v in times.items() if k != s}, lambda c: True)
        t = times[s]
        regret.append(t.get(vote_pick(vote, *s), max(t.values())) / min(t.values()))
    assert len(regret) == 160 and sum(r > 1.25 for r in regret) == 3
    assert round(math.exp(sum(map(math.log, regret)) / 160), 3) == 1.038 and round(max(regret), 3) == 1.74
