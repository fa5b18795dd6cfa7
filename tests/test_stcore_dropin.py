"""The st-core flavours dropped into crates laid out like SpiralTorch's st-core, built and tested with cargo offline.
Today's layout (flavour st-core): backend/wgpu_heuristics.rs defines the 11-field `Choice`, asks
`wgpu_heuristics_generated::choose` as a module and also `include!`s the file (as SpiralTorch's own does), so the
generated file must compile both ways. v1.3's layout (flavour st-core-v1.3): the 4-field `Choice` in backend/mod.rs,
both choose signatures, the fallback rule, our extras."""
import shutil
import subprocess

import pytest
from conftest import make_radix_run
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
    assert_eq!(t, h::TopKChoice { use_2ce: false, wg: 64, kl: 4, ch: 0, sg: true, ls: true, radix: false, rb: 0,
                                  rch: 0 });
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


TODAY_MOD_RS = "pub mod wgpu_heuristics;\npub mod wgpu_heuristics_generated;\n"

# The shape of SpiralTorch's backend/wgpu_heuristics.rs today: the 11-field Choice (field names and types as
# there), the generated module asked by path, the same file include!d at the end.
TODAY_HEURISTICS_RS = """
use crate::backend::wgpu_heuristics_generated as gen;

#[derive(Debug, Clone, Copy)]
pub struct Choice {
    pub use_2ce: bool,
    pub wg: u32,
    pub kl: u32,
    pub ch: u32,
    pub algo_topk: u8,
    pub ctile: u32,
    pub mode_midk: u8,
    pub mode_bottomk: u8,
    pub tile_cols: u32,
    pub radix: u32,
    pub segments: u32,
}

pub fn choose_topk(rows: u32, cols: u32, k: u32, subgroup: bool) -> Option<Choice> {
    gen::choose(rows as usize, cols as usize, k as usize, subgroup)
}

include!("wgpu_heuristics_generated.rs");
"""

TODAY_TEST_RS = """
use st_core::backend::wgpu_heuristics as h;
#[test]
fn picks() {
    let c = h::choose_topk(4, 1024, 8, true).expect("a tuned choice");
    assert_eq!((c.use_2ce, c.wg, c.kl, c.ch), (false, 64, 4, 0));
    assert_eq!((c.algo_topk, c.ctile, c.mode_midk, c.mode_bottomk, c.tile_cols, c.radix, c.segments),
               (0, 256, 0, 0, 1024, 4, 1));
    let i = h::choose(4, 1024, 8, true).unwrap();   // the include!d copy answers the same
    assert_eq!((i.use_2ce, i.wg, i.kl, i.ch), (c.use_2ce, c.wg, c.kl, c.ch));
    let p = h::choose_topk(2, 16384, 256, true).unwrap();
    assert_eq!((p.use_2ce, p.wg, p.kl, p.ch, p.ctile, p.segments), (true, 128, 4, 4096, 512, 1));
    let t = h::spiraltorch_tuner::choose_topk(4, 1024, 8, true).unwrap();
    assert!(t.sg && t.ls);
}
"""

TODAY_STUB_RS = """
use st_core::backend::wgpu_heuristics as h;
#[test]
fn stub_is_none() {
    assert!(h::choose_topk(8, 65536, 4096, true).is_none());
}
"""


def make_today_crate(root, generated_rs, test_rs):
    make_crate(root, TODAY_HEURISTICS_RS, test_rs, mod_rs=TODAY_MOD_RS)
    (root / "src" / "backend" / "wgpu_heuristics_generated.rs").write_text(generated_rs, encoding="utf-8")


def make_crate(root, heuristics_rs, test_rs, mod_rs=MOD_RS):
    (root / "src" / "backend").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "Cargo.toml").write_text('[package]\nname = "st-core"\nversion = "0.0.0"\nedition = "2021"\n'
                                     '[lib]\nname = "st_core"\npath = "src/lib.rs"\n')
    (root / "src" / "lib.rs").write_text("pub mod backend;\n")
    (root / "src" / "backend" / "mod.rs").write_text(mod_rs)
    (root / "src" / "backend" / "wgpu_heuristics.rs").write_text(heuristics_rs, encoding="utf-8")
    (root / "tests" / "picks.rs").write_text(test_rs)


def cargo_test(root):
    r = subprocess.run(["cargo", "test", "--offline", "-q"], cwd=root, capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "CARGO_TARGET_DIR": str(root / "target"),
                            "RUSTFLAGS": "-D warnings"})
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


# flavour -> (the file it downloads as, how the crate is laid out, its test, the stub's test)
LAYOUTS = {"st-core": ("wgpu_heuristics_generated.rs", make_today_crate, TODAY_TEST_RS, TODAY_STUB_RS),
           "st-core-v1.3": ("wgpu_heuristics.rs", make_crate, CHECK_RS, STUB_RS)}


@pytest.mark.parametrize("flavour", list(LAYOUTS))
@pytest.mark.parametrize("run", ["sample", "radix", "stub"])
def test_downloaded_file_drops_into_its_stcore_layout(make_app, tmp_path, sample_run, flavour, run):
    """The sample run's picks; with its radix measurements added (the fastest on two of its shapes) the same picks:
    st-core has no radix pipeline, so its files are fitted without them; no run: the stub."""
    name, make, test_rs, stub_rs = LAYOUTS[flavour]
    stub = run == "stub"
    with TestClient(make_app(tmp_path)) as c:
        doc = make_radix_run() if run == "radix" else sample_run()
        assert c.post("/api/runs", json=doc).status_code == 201
        r = c.get("/api/heuristics.rs" if stub else f"/api/runs/{doc['run_id']}/heuristics.rs",
                  params={"flavour": flavour})
        assert r.status_code == 200
        assert f'filename="{name}"' in r.headers["content-disposition"]
    crate = tmp_path / "st-core"
    make(crate, r.text, stub_rs if stub else test_rs)
    out = cargo_test(crate)
    assert "test result: ok" in out
