"""The st-core flavour dropped into a crate laid out like SpiralTorch's st-core, built and tested with cargo
offline: st-core's Choice, both choose signatures, the fallback rule, our extras."""
import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")

MOD_RS = """
#[derive(Debug, Clone, Copy)]
pub struct Choice { pub use_2ce: bool, pub wg: u32, pub kl: u32, pub ch: u32 }
pub mod wgpu_heuristics;

/// How st-core consults the module: tuned choice first, its own rule otherwise.
pub fn pick(rows: u32, cols: u32, k: u32, subgroup: bool) -> Choice {
    wgpu_heuristics::generated::choose(rows as usize, cols as usize, k as usize, subgroup)
        .unwrap_or_else(|| wgpu_heuristics::fallback(rows, cols, k, subgroup))
}
"""

CHECK_RS = """
use st_core::backend::{pick, wgpu_heuristics as h, Choice};
#[test]
fn picks() {
    let c: Choice = h::choose(4, 1024, 8, true).expect("a tuned choice");
    assert_eq!((c.use_2ce, c.wg, c.kl, c.ch), (false, 64, 4, 0));
    assert!(h::choose_extras(4, 1024, 8, true).unwrap().sg);
    let g = h::generated::choose(4, 1024, 8, false).unwrap();
    assert_eq!((g.use_2ce, g.wg, g.kl, g.ch), (false, 64, 4, 0));
    assert!(!h::choose_extras(4, 1024, 8, false).unwrap().sg);
    let p = pick(2, 16384, 256, true);
    assert_eq!((p.use_2ce, p.wg, p.kl, p.ch), (true, 128, 4, 4096));
    let f = h::fallback(1, 1000, 8, false);
    assert_eq!((f.use_2ce, f.wg, f.kl, f.ch), (false, 128, 8, 0));
    let t = h::choose_topk(4, 1024, 8, true).unwrap();
    assert_eq!(t, h::TopKChoice { use_2ce: false, wg: 64, kl: 4, ch: 0, sg: true, ls: true });
}
"""

STUB_RS = """
use st_core::backend::{pick, wgpu_heuristics as h};
#[test]
fn stub_falls_back() {
    assert!(h::choose(8, 65536, 4096, true).is_none());
    let p = pick(8, 65536, 4096, true);
    assert_eq!((p.use_2ce, p.wg, p.kl, p.ch), (true, 256, 32, 8192));
}
"""


def make_crate(root, heuristics_rs, test_rs):
    (root / "src" / "backend").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "Cargo.toml").write_text('[package]\nname = "st-core"\nversion = "0.0.0"\nedition = "2021"\n'
                                     '[lib]\nname = "st_core"\npath = "src/lib.rs"\n')
    (root / "src" / "lib.rs").write_text("pub mod backend;\n")
    (root / "src" / "backend" / "mod.rs").write_text(MOD_RS)
    (root / "src" / "backend" / "wgpu_heuristics.rs").write_text(heuristics_rs, encoding="utf-8")
    (root / "tests" / "picks.rs").write_text(test_rs)


def cargo_test(root):
    r = subprocess.run(["cargo", "test", "--offline", "-q"], cwd=root, capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "CARGO_TARGET_DIR": str(root / "target"),
                            "RUSTFLAGS": "-D warnings"})
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.parametrize("stub", [False, True])
def test_downloaded_stcore_file_drops_into_an_stcore_layout(make_app, tmp_path, sample_run, stub):
    with TestClient(make_app(tmp_path)) as c:
        doc = sample_run()
        assert c.post("/api/runs", json=doc).status_code == 201
        r = c.get("/api/heuristics.rs" if stub else f"/api/runs/{doc['run_id']}/heuristics.rs",
                  params={"flavour": "st-core"})
        assert r.status_code == 200
    crate = tmp_path / "st-core"
    make_crate(crate, r.text, STUB_RS if stub else CHECK_RS)
    out = cargo_test(crate)
    assert "test result: ok" in out
