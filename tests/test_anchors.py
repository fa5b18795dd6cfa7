"""The bench's anchors (bench/anchors: FlashInfer's and CUB's TopK beside ours) on a machine without a GPU: how an
anchor's answer is graded against the oracle, how bench_gpu.py's table and summary show anchors that ran, failed
the check or could not run, and, where nvcc and the CCCL headers are found, that the CUB harness compiles."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spiraltorch_tuner.cpu import topk_reference

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import anchors  # noqa: E402
import bench_gpu  # noqa: E402
from anchors import cub_topk  # noqa: E402
from anchors.check import grade_topk  # noqa: E402


def tied_rows():
    """Two rows of 8 with equal values inside the top 3 and, in row 1, at the 3rd value (index 6 ties index 2)."""
    x = np.array([[0.5, 0.9, 0.9, 0.1, 0.2, 0.3, 0.0, 0.4],
                  [0.9, 0.1, 0.5, 0.8, 0.2, 0.3, 0.5, 0.0]], dtype=np.float32)
    return x, *topk_reference(x, 3)


def test_the_oracles_own_answer_is_identical():
    x, rv, ri = tied_rows()
    assert grade_topk(x, rv, ri, rv.copy(), ri.copy(), sorted_output=True) == ("identical", None)


def test_equal_values_in_another_order_are_the_same_set():
    x, rv, ri = tied_rows()
    v, i = rv.copy(), ri.copy()
    i[0, [0, 1]] = i[0, [1, 0]]        # 0.9 at 2 before 0.9 at 1
    grade, note = grade_topk(x, rv, ri, v, i, sorted_output=True)
    assert grade == "same set" and "row 0: equal values in another order" in note


def test_an_unsorted_answer_is_sorted_before_comparing_only_when_unsorted_is_allowed():
    x, rv, ri = tied_rows()
    v, i = rv[:, ::-1].copy(), ri[:, ::-1].copy()
    assert grade_topk(x, rv, ri, v, i, sorted_output=False) == ("same set", None)
    grade, note = grade_topk(x, rv, ri, v, i, sorted_output=True)
    assert grade is None and "not sorted descending" in note


def test_another_item_of_the_kth_value_is_a_tie_choice():
    x, rv, ri = tied_rows()
    assert ri[1].tolist() == [0, 3, 2]
    i = ri.copy()
    i[1, 2] = 6                          # x[1, 6] == x[1, 2] == 0.5: valid, not the oracle's lower index
    grade, note = grade_topk(x, rv, ri, rv.copy(), i, sorted_output=True)
    assert grade == "tie choice" and "row 1: 1 items of the k-th value" in note


@pytest.mark.parametrize("how, expect", [
    ("value", "values differ from the oracle's"),
    ("index", "do not hold the value"),
    ("repeat", "repeated indices"),
    ("range", "out of range"),
])
def test_a_wrong_answer_names_the_row_and_what_is_wrong(how, expect):
    x, rv, ri = tied_rows()
    v, i = rv.copy(), ri.copy()
    if how == "value":
        i[1, 2], v[1, 2] = 7, x[1, 7]      # a real item, with its value, but not among the top 3
    elif how == "index":
        i[1, 0] = 1
    elif how == "repeat":
        i[0, 2] = i[0, 1]
        v[0, 2] = v[0, 1]
    else:
        i[1, 1] = 8
    grade, note = grade_topk(x, rv, ri, v, i, sorted_output=True)
    assert grade is None and expect in note


def fake_result():
    """bench_gpu's result for two TopK shapes: FlashInfer timed, CUB failing its check on the second shape, and the
    lower-index CUB variant not run on the first and, on the second, returning another valid set than the oracle's
    (which it must not)."""
    def shape(rows, cuda, torch_, fi, cub):
        return {"rows": rows, "cols": 1024, "k": 8,
                "cuda": {"params": {"use_2ce": False, "wg": 256, "kl": 4, "ch": 0}, "median_ms": cuda},
                "torch": {"median_ms": torch_},
                "anchors": {"flashinfer": {"ok": True, "grade": "tie choice", "median_ms": fi},
                            "cub": ({"ok": True, "grade": "same set", "median_ms": cub} if cub else
                                    {"ok": False, "grade": None, "note": "row 0: 1 repeated indices"}),
                            "cub_lower_index": ({"ok": False, "error": "RuntimeError: no"} if cub else
                                                {"ok": False, "grade": "tie choice", "required": "same set"})}}
    return {"topk": [shape(8, 0.010, 0.040, 0.020, 0.030), shape(16, 0.020, 0.060, 0.040, None)],
            "anchors": {"flashinfer": {"available": True, "version": "0.7.2.post1", "jit_build_s": 300.0},
                        "cub": {"available": False, "why": "FileNotFoundError: nvcc not found"}}}


def test_the_topk_table_has_a_column_per_anchor_and_says_why_one_did_not_run():
    result = fake_result()
    lines = bench_gpu.summarize(result)
    head = next(ln for ln in lines if ln.startswith("shape"))
    assert "flashinfer" in head and "cub" in head and "torch/cuda" in head
    row8, row16 = (next(ln for ln in lines if ln.startswith(f"{r}x1024")) for r in (8, 16))
    assert "20.0" in row8 and "30.0" in row8 and "wrong" in row16
    assert "cub: not run: FileNotFoundError: nvcc not found" in lines
    a = result["summary"]["anchors"]
    assert a["flashinfer"]["over_cuda_geomean"] == pytest.approx(2.0)
    assert a["flashinfer"]["torch_over_geomean"] == pytest.approx((2.0 * 1.5) ** 0.5)
    assert a["cub"]["shapes_timed"] == 1 and a["cub"]["grades"] == {"same set": 1, "wrong": 1}
    assert a["cub_lower_index"]["grades"] == {"not run": 1, "wrong (tie choice)": 1}


def test_without_anchors_the_table_is_as_before():
    result = fake_result()
    for e in result["topk"]:
        del e["anchors"]
    del result["anchors"]
    lines = bench_gpu.summarize(result)
    assert next(ln for ln in lines if ln.startswith("shape")).split() == [
        "shape", "cuda", "unsorted", "torch", "wgsl*", "torch/cuda", "torch/wgsl", "cuda", "params", "|", "wgsl",
        "params"]
    assert "anchors" not in result["summary"]


def test_unsorted_anchors_are_set_against_our_unsorted_call_and_sorted_ones_against_our_sorted():
    result = fake_result()
    for e, (ours, theirs) in zip(result["topk"], ((0.004, 0.006), (0.012, 0.009))):
        e["cuda_unsorted"] = {"params": {"radix": True, "wg": 512, "rch": 4096}, "ok": True, "median_ms": ours}
        e["anchors"]["flashinfer_unsorted"] = {"ok": True, "grade": "same set", "median_ms": theirs}
    lines = bench_gpu.summarize(result)
    assert next(ln for ln in lines if ln.startswith("8x1024")).split()[2:4] == ["10.0", "4.0"]
    a = result["summary"]["anchors"]
    assert a["flashinfer_unsorted"]["against"] == "cuda_unsorted" and a["flashinfer"]["against"] == "cuda"
    assert a["flashinfer_unsorted"]["over_cuda_geomean"] == pytest.approx((1.5 * 0.75) ** 0.5)
    assert a["flashinfer_unsorted"]["over_cuda_worst"] == pytest.approx(0.75)
    assert a["flashinfer"]["over_cuda_geomean"] == pytest.approx(2.0)
    assert any(ln.startswith("flashinfer_unsorted") and "flashinfer_unsorted/cuda_unsorted" in ln for ln in lines)


def test_two_anchor_columns_and_the_loosest_grade_each_variant_accepts():
    assert [v.key for v in anchors.VARIANTS if v.column] == ["flashinfer", "cub"]
    assert {v.key: v.require for v in anchors.VARIANTS}["cub_lower_index"] == "same set"
    assert all(v.require in anchors.GRADES for v in anchors.VARIANTS)


def cccl_or_skip():
    try:
        return cub_topk.cccl_include_dirs(), cub_topk.find_nvcc()
    except FileNotFoundError as e:
        pytest.skip(f"no CUB harness build here: {e}")


def test_the_cub_harness_compiles_for_sm90a(tmp_path):
    """Where nvcc and CCCL 3.6 headers are found (flashinfer-python installed, or SPIRALTORCH_ANCHORS_CCCL): the
    harness builds as the bench builds it, exporting the five functions bench/anchors/cub_topk.py calls."""
    includes, nvcc = cccl_or_skip()
    out = tmp_path / "libst_cub_topk.so"
    r = subprocess.run(cub_topk.build_command(nvcc, "90a", includes, out), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    if shutil.which("nm"):
        syms = subprocess.run(["nm", "-D", "--defined-only", str(out)], capture_output=True, text=True).stdout
        assert {"st_cub_topk", "st_cub_topk_temp_bytes", "st_cub_topk_segment_bound", "st_cub_version",
                "st_cub_error_string"} <= {
            ln.split()[-1] for ln in syms.splitlines() if ln.strip()}
