"""The wasm-table flavour (SpiralTorch's tuner_results.json) against the standalone Rust file: the records are
sorted and matched here as st-core's WasmTunerTable does (re-implemented below from wasm_tuner.rs, independently of
the package's own reader), and the first match's (use_2ce, wg, kl, ch) must equal the Rust file's pick on the dense
grid of the Rust/Python parity test."""
import functools
import json
import shutil
import subprocess

import pytest
from conftest import make_radix_run
from test_rustgen import GRID_MAIN, RUNS, rustc

from spiraltorch_tuner.server.exports import export_run

pytestmark = pytest.mark.skipif(shutil.which("rustc") is None, reason="rustc is not installed")

USIZE_MAX = 2**64 - 1


def compare_records(a, b):
    """WasmTunerTable::compare_records: subgroup Some(true) before Some(false); otherwise rows_min (None as 0),
    cols_min ascending, cols_max descending."""
    sa, sb = a.get("subgroup", a.get("sg")), b.get("subgroup", b.get("sg"))
    if sa is True and sb is False:
        return -1
    if sa is False and sb is True:
        return 1
    ka = (a.get("rows_min", a.get("rows")) or 0, a.get("cols_min", 0), -a.get("cols_max", USIZE_MAX))
    kb = (b.get("rows_min", b.get("rows")) or 0, b.get("cols_min", 0), -b.get("cols_max", USIZE_MAX))
    return (ka > kb) - (ka < kb)


def matches(r, rows, cols, k, subgroup):
    """WasmTunerRecord::matches."""
    lo, hi = r.get("rows_min", r.get("rows")), r.get("rows_max")
    sg = r.get("subgroup", r.get("sg"))
    return ((lo is None or rows >= lo) and (hi is None or rows <= hi)
            and r.get("cols_min", 0) <= cols <= r.get("cols_max", USIZE_MAX)
            and r.get("k_min", 0) <= k <= r.get("k_max", USIZE_MAX) and (sg is None or sg == subgroup))


def choose(records, rows, cols, k, subgroup):
    """WasmTunerTable::choose's record: the first match after the (stable) sort; and how many records match."""
    hits = [r for r in records if matches(r, rows, cols, k, subgroup)]
    return (hits[0] if hits else None), len(hits)


@pytest.mark.parametrize("data", ["sample", "radix", "h200-2026-11-29-full-topk.json",
                                  "h200-2026-11-29-offgrid-topk.json", "h100-2026-11-25-s4-full-topk.json"])
def test_the_first_matching_record_is_the_rust_files_pick_on_the_dense_grid(tmp_path, sample_run, data):
    """With radix measurements in the run, the table is that of the run without them (st-core has no radix
    pipeline), and agrees with the standalone file of that run."""
    doc = (make_radix_run() if data == "radix" else sample_run() if data == "sample"
           else json.loads((RUNS / data).read_text()))
    table = json.loads(export_run(doc, "wasm-table").text)
    if data == "radix":
        doc = {**doc, "measurements": [m for m in doc["measurements"] if not m["params"].get("radix")]}
        assert table == json.loads(export_run(doc, "wasm-table").text)
        assert json.loads(export_run(make_radix_run(), "rules").text)["classes"][0]["topk"]["subgroups"]["rgrid"]
    records = sorted(table, key=functools.cmp_to_key(compare_records))
    assert all(set(r) == {"rows_min", "rows_max", "cols_min", "cols_max", "k_min", "k_max", "subgroup", "use_2ce",
                          "wg", "kl", "ch"} for r in records)
    (tmp_path / "wgpu_heuristics.rs").write_text(export_run(doc, "standalone").text, "utf-8")
    rustc(tmp_path, GRID_MAIN, "-o", str(tmp_path / "grid"), name="main.rs")
    lines = subprocess.run([str(tmp_path / "grid")], capture_output=True, text=True, check=True).stdout.splitlines()
    n = agree = overlaps = 0
    for line in lines:
        f = line.split()
        if f[0] in ("w", "a"):
            continue
        rows, cols, k, sg = int(f[0]), int(f[1]), int(f[2]), f[3] == "true"
        rec, hits = choose(records, rows, cols, k, sg)
        overlaps += hits > 1
        want = None if f[4] == "none" else (f[4] == "true", int(f[5]), int(f[6]), int(f[7]))
        got = None if rec is None else (rec["use_2ce"], rec["wg"], rec["kl"], rec["ch"])
        n += 1
        agree += got == want
    print(f"{data}: {len(records)} records, {len(json.dumps(table))} bytes; agreement {agree}/{n}")
    assert n > 500 and overlaps == 0
    assert agree >= 0.99 * n, (agree, n)
    assert len(records) <= 2000
