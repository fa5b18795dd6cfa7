"""The page's own cost around the kernels: a TopK space of many small configurations (13 x 5 shapes, 767
configurations) run by the page in headless Chromium here (SwiftShader), and the page's account of where the time
went (static/tuner.js Tuner.phases: inputs, first call and check, timer, between configurations).

    .venv/bin/python bench/page_overhead.py [--rows 13] [--no-warm]
    .venv/bin/python bench/page_overhead.py --where 16x1024x1024   # where_nd: 3 cases x 2 paths x wg 64, 128

Prints the run's wall time, its configurations and the phases in ms. Run it before and after a change to the page
(git stash), one after the other: SwiftShader shares the CPU with the page, so the absolute times are of this
machine only.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import start_server  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from test_browser_e2e import launch, open_tuner, set_space  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=13, help="TopK shapes of 1..ROWS rows (x 5 column counts)")
    ap.add_argument("--no-warm", action="store_true", help="the page's ?warm=0: no pipelines built ahead")
    ap.add_argument("--where", metavar="SHAPE", help="where_nd on this output shape (e.g. 16x1024x1024), beside one "
                    "TopK configuration, instead of the TopK space")
    args = ap.parse_args()
    live = start_server(Path(tempfile.mkdtemp()) / "overhead.sqlite3")
    try:
        with sync_playwright() as p:
            b = launch(p)
            page = b.new_page(viewport={"width": 1400, "height": 900})
            open_tuner(page, str(live), "?warm=0" if args.no_warm else "")
            if args.where:
                set_space(page, {"#where-shapes": args.where, "#where-path": "direct, segmented", "#where-wg": "64, 128",
                                 "#where-vpt": "4", "#topk-shapes": "1x1024:8", "#topk-wg": "64", "#topk-kl": "4",
                                 "#topk-ch": "0", "#topk-sg": "false", "#repeats": "3", "#warmups": "1", "#seed": "7"},
                          check=["#p-1ce", "#where-on", *(f"#where-cases input[value={c}]"
                                                          for c in ("contiguous", "neg_stride", "broadcast"))],
                          uncheck=["#p-2ce"])
            else:
                shapes = ", ".join(f"{r}x{c}:8" for r in range(1, args.rows + 1)
                                   for c in (1024, 2048, 4096, 8192, 16384))
                set_space(page, {"#topk-shapes": shapes, "#topk-wg": "64, 128, 256", "#topk-kl": "4",
                                 "#topk-ch": "0, 1024", "#topk-sg": "false, true", "#repeats": "3", "#warmups": "1",
                                 "#seed": "7"},
                          check=["#p-1ce", "#p-2ce"], uncheck=["#where-on"])
            print(page.text_content("#config-count"), "-", page.text_content("#status"))
            t0 = time.time()
            page.click("#run")
            page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=1_800_000)
            st = page.evaluate("window.__tuner")
            print(f"{time.time() - t0:.1f} s, {len(st['results'])} configurations, "
                  f"{sum(m['ok'] for m in st['results'])} ok")
            print(json.dumps({k: {p: round(v) for p, v in ph.items()} for k, ph in (st["phases"] or {}).items()}))
            print(page.text_content("#phases"))
            b.close()
    finally:
        live.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
