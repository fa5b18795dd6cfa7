"""The fitted TopK rule: a decision tree over lg rows, lg cols, lg k that finds the thresholds where the best
configuration changes, picks by them on shapes nobody measured, and reports its held-out regret honestly; in Rust
as plain `if`s that agree with Python everywhere (test_rustgen checks the dense grid)."""
import itertools
import json
from pathlib import Path

from conftest import _topk, make_run
from spiraltorch_tuner.heuristics import choose_topk, fit_tree, topk_table, walk
from spiraltorch_tuner.report import report
from spiraltorch_tuner.rustgen import generate

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


def test_the_tree_finds_the_thresholds_and_picks_unmeasured_shapes_by_them():
    model = topk_table(synthetic_run()["measurements"])
    pick = lambda r, c, k: choose_topk(model, r, c, k, True)   # noqa: E731
    assert pick(2, 1 << 18, 100)[:4] == (True, 256, 4, 4096)           # long rows, nobody measured 2^18
    assert pick(3, 2048, 16)[:3] == (False, 1024, 4)                   # short rows, few
    assert pick(2000, 2048, 16)[:3] == (False, 256, 4)                 # short rows, many
    tree = model.trees[True]
    assert tree[0] == "split" and walk(tree, 1, 1 << 20, 8)[0] is True


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
    assert topk_table([m for m in ms if m["params"]["sg"]]).trees[False] is None


def test_one_off_configurations_are_judged_but_not_picked():
    """A configuration measured on one shape of many (like st-core's fallback beside the grid) is not a leaf."""
    assert fit_tree({(4, 1024, 8): {(False, 512, 8, 0, False, True): 0.5, (False, 128, 4, 0, False, True): 1.0},
                     **{(4, c, 8): {(False, 128, 4, 0, False, True): 1.0} for c in (2048, 4096, 8192, 16384, 32768)}},
                    lambda c: True) == ("leaf", (False, 128, 4, 0, False, True))


def test_generated_rust_is_ifs_on_thresholds():
    src = generate(synthetic_run(), run_id="r", created_at="2026-11-25")
    assert "if lc <= " in src and "TopKEntry" not in src


def test_h100_full_runs_held_out_regret_is_what_the_readme_says():
    """The committed H100 runs (bench/tune_gpu.py, preset full: 44 shapes now, 36 before) give the README's figures."""
    def regret(name):
        return report(json.loads((ROOT / "bench/results" / name).read_text()))["regret"]
    r = regret("h100-2026-11-25-full44-topk.json")
    assert r["tuned_heldout"]["n"] == 43          # one held-out pick was not measured on its shape
    assert round(r["tuned_heldout"]["geomean"], 3) == 1.025 and round(r["tuned_heldout"]["worst"], 3) == 1.315
    assert round(r["tuned_measured"]["geomean"], 3) == 1.005 and round(r["tuned_measured"]["worst"], 3) == 1.101
    assert round(r["fixed_default"]["geomean"], 3) == 3.214 and round(r["stcore_fallback"]["geomean"], 3) == 1.326
    r = regret("h100-2026-11-25-full-topk.json")
    assert r["tuned_heldout"]["n"] == 36
    assert round(r["tuned_heldout"]["geomean"], 3) == 1.031 and round(r["tuned_heldout"]["worst"], 3) == 1.335
