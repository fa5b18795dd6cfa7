"""Write native/shipped_rules.json: the rules the package uses when the user points to none, fitted on committed
tuning runs of bench/results (merged per device class, as `spiraltorch-tuner heuristics --run all --flavour rules`
does). Re-run after committing new runs or changing the rule; tests/test_tuned_defaults.py checks the file is what
these runs give.

    python3 bench/ship_rules.py            # rewrites native/shipped_rules.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "native" / "shipped_rules.json"

# The newest full runs of each GPU with today's kernels (TopK: the full preset, the dense lattice and the off-grid
# samples; where_nd: the run with kernel times of today's kernel, s23 (its sizes and strides read in place; the runs
# before measured a slower kernel: 2026-11-29 before s21's changes, s22 before s23's); s21: the full preset with the
# radix pipeline and wg 64, added to the preset then, on the full preset's and the off-grid runs' shapes (--params
# '{"wg": [64]}'); s22: every radix configuration of the full preset (rch 16384 joined then) on both sets of shapes
# (tune_gpu.py --radix-only), below). Older H100 runs measured kernels that have since changed. s21-lattice-radix.json
# (the radix configurations on the lattice's shapes) is not among them: the lattice run is of the class without
# subgroup sizes (recorded before runs kept them), the radix runs of the class with size 32, and in that class the
# lattice's shapes would then have radix measurements alone, leaving radix the only configurations measured on every
# shape where they are legal (heuristics.MIN_SHARE).
SHIPPED_RUNS = [
    "h100-2026-11-25-s4-full-topk.json",
    "h200-2026-11-29-full-topk.json", "h200-2026-11-29-full-topk-2.json", "h200-2026-11-29-full-topk-3.json",
    "h200-2026-11-29-full-topk-4.json", "h200-2026-11-29-lattice-topk.json", "h200-2026-11-29-offgrid-topk.json",
    "h200-2026-11-29-offgrid-topk-2.json", "h200-2026-11-29-offgrid-topk-3.json",
    "h200-2026-11-30-s21-full-topk.json",
    "h200-2026-11-30-s21-full-wg64.json", "h200-2026-11-30-s21-offgrid-wg64.json",
    "h200-2026-11-30-s23-where-kt.json",
    "h200-2026-11-30-s22-full-radix.json", "h200-2026-11-30-s22-offgrid-radix.json",
]
# topk_radix.wgsl changed after these runs measured it (s22: four keys a 16-byte load in radix_hist and radix_filter
# where rows start on 16 bytes); s22-{full,offgrid}-radix.json measured every radix configuration of the full preset
# again on the same shapes, so these runs' radix measurements are left out (their 1CE and 2CE ones stay). The runs
# that held radix measurements only (s21-offgrid-radix, s22-{full,offgrid}-rch16k) are no longer among SHIPPED_RUNS.
RADIX_BEFORE_S22 = {"h200-2026-11-30-s21-full-topk.json", "h200-2026-11-30-s21-full-wg64.json",
                    "h200-2026-11-30-s21-offgrid-wg64.json"}


def run_doc(name: str) -> dict:
    """The run document bench/results/NAME as shipped: a run of RADIX_BEFORE_S22 without its radix measurements."""
    doc = json.loads((RESULTS / name).read_text())
    if name in RADIX_BEFORE_S22:
        doc["measurements"] = [m for m in doc["measurements"] if not (m.get("params") or {}).get("radix")]
    return doc


def records():
    """The runs as stored records (oldest first by file name), the input of exports.export_merged."""
    return [{"run_id": doc["run_id"], "created_at": doc.get("finished_at"), "run": doc}
            for doc in map(run_doc, SHIPPED_RUNS)]


def shipped_text() -> str:
    from spiraltorch_tuner.server.exports import export_merged
    return export_merged(records(), "rules").text


def main() -> int:
    text = shipped_text()
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text)} bytes) from {len(SHIPPED_RUNS)} runs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
