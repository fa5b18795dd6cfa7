"""The generated wgpu_heuristics.rs compiled with the real rustc: warnings-free, its own tests pass, its picks equal
the Python rule on a dense grid of shapes, and hostile posted strings neither break nor change it."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import make_radix_run

from spiraltorch_tuner.heuristics import choose_topk, choose_where, topk_table, where_table
from spiraltorch_tuner.server.report import usable
from spiraltorch_tuner.server.rustgen import generate

pytestmark = pytest.mark.skipif(shutil.which("rustc") is None, reason="rustc is not installed")

EVIL = '*/ " \\ \n\r {{ x }} </script> \u2028\u2029\x85 \x00 \U0001F600 /* //'


def rustc(tmp_path, src, *args, name="wgpu_heuristics.rs"):
    path = tmp_path / name
    path.write_text(src, encoding="utf-8")
    r = subprocess.run(["rustc", "--edition", "2021", "-D", "warnings", *args, str(path)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def run_rust_tests(tmp_path, src):
    rustc(tmp_path, src, "--test", "-o", str(tmp_path / "tests"))
    r = subprocess.run([str(tmp_path / "tests")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_stub_compiles_and_returns_none(tmp_path):
    for flavour in ("standalone",):
        src = generate(None, flavour)
        rustc(tmp_path, src, "--crate-type", "lib", "-o", str(tmp_path / "lib.rlib"))
        assert "stub_returns_none ... ok" in run_rust_tests(tmp_path, src)


def test_generation_is_deterministic(sample_run):
    doc = sample_run()
    assert generate(doc, run_id="r", created_at="2026-11-25") == generate(doc, run_id="r", created_at="2026-11-25")


def test_measured_shapes_pick_their_fastest_and_rust_tests_pass(tmp_path, sample_run):
    doc = sample_run()
    src = generate(doc, run_id=doc["run_id"], created_at="2026-11-25")
    rustc(tmp_path, src, "--crate-type", "lib", "-o", str(tmp_path / "lib.rlib"))
    out = run_rust_tests(tmp_path, src)
    assert "measured_shapes_get_the_fitted_picks ... ok" in out
    t = topk_table(doc["measurements"])
    off = (False, 0, 0)   # not the radix pipeline
    assert choose_topk(t, 4, 1024, 8, True) == (False, 64, 4, 0, True, True, *off)     # 0.5 ms, needs subgroups
    assert choose_topk(t, 4, 1024, 8, False) == (False, 64, 4, 0, False, True, *off)   # 0.7 ms without
    assert choose_topk(t, 4, 4096, 64, True) == (True, 128, 4, 1024, False, True, *off)  # the failed 1.0 ms one is ignored


GRID_MAIN = r'''
#[allow(dead_code)]
#[path = "wgpu_heuristics.rs"]
mod h;
fn main() {
    let rows = [1u32, 2, 3, 8, 64, 1000, 65535];
    let cols = [1u32, 7, 100, 1023, 1024, 1025, 4096, 5000, 16384, 40000, 65536, 92681, 92682, 1 << 20,
                u32::MAX];
    let ks = [1u32, 2, 8, 33, 64, 100, 256, 1000, 4096, 92681];
    for &r in rows.iter() { for &c in cols.iter() { for &k in ks.iter() { if k > c { continue; }
        for &sg in [false, true].iter() {
            match h::choose_topk(r, c, k, sg) {
                Some(x) => println!("{} {} {} {} {} {} {} {} {} {} {} {} {}", r, c, k, sg, x.use_2ce, x.wg, x.kl, x.ch,
                                    x.sg, x.ls, x.radix, x.rb, x.rch),
                None => println!("{} {} {} {} none", r, c, k, sg),
            }
        }
    }}}
    let numels: Vec<u64> = (0..28).map(|e| 1u64 << e).chain([100u64, 3 << 20, 5000, (1 << 26) + 1].iter().cloned()).collect();
    for &n in numels.iter() { for &d in [1u32, 2, 3, 4, 5, 6].iter() {
        for &contig in [false, true].iter() {
            match h::choose_where_nd(n, d, contig, false) {
                Some(x) => println!("w {} {} {} {:?} {} {}", n, d, contig, x.path, x.wg, x.vpt),
                None => println!("w {} {} {} none", n, d, contig),
            }
        }
    }}
    for s in h::ADAPTER.iter() {
        let hex: String = s.bytes().map(|b| format!("{:02x}", b)).collect();
        println!("a {}", hex);
    }
}
'''


def b(v):
    return "true" if v else "false"


RUNS = Path(__file__).resolve().parents[1] / "bench" / "results"


@pytest.mark.parametrize("data", ["sample", "hostile", "radix", "h100-2026-11-25-s4-full-topk.json",
                                  "h200-2026-11-29-offgrid-topk.json", "h200-2026-11-29-where-grid.json"])
def test_rust_choice_equals_python_rule_on_a_dense_grid(tmp_path, sample_run, data):
    """The sample run, with hostile strings, with radix measurements (picks of the radix pipeline, made legal by
    its own chunk sizes or as 1CE), and real GPU runs whose rules pick many configurations (TopK: 44 shapes of the
    full grid, 40 off it; where_nd: a deep tree over 42 cases). The grid crosses half-octave boundaries
    (92681 | 92682) and reaches u32::MAX."""
    doc = (make_radix_run() if data == "radix" else sample_run() if data in ("sample", "hostile")
           else json.loads((RUNS / data).read_text()))
    if data == "hostile":
        doc.update(label=EVIL, adapter={"vendor": EVIL, "architecture": "x\ny", "device": "", "description": EVIL})
    (tmp_path / "wgpu_heuristics.rs").write_text(generate(doc, run_id=doc["run_id"], created_at=EVIL), "utf-8")
    rustc(tmp_path, GRID_MAIN, "-o", str(tmp_path / "grid"), name="main.rs")
    lines = subprocess.run([str(tmp_path / "grid")], capture_output=True, text=True, check=True).stdout.splitlines()
    ms = usable(doc["measurements"])
    t, w = topk_table(ms), where_table(ms)
    n = nw = 0
    for line in lines:
        f = line.split()
        if f[0] == "w":
            c = choose_where(w, int(f[1]), int(f[2]), f[3] == "true")
            assert f[4:] == (["none"] if c is None else [c[0].capitalize(), str(c[1]), str(c[2])]), line
            nw += 1
        elif f[0] == "a":
            continue
        else:
            r, c_, k, sg = int(f[0]), int(f[1]), int(f[2]), f[3] == "true"
            want = choose_topk(t, r, c_, k, sg)
            assert f[4:] == (["none"] if want is None else [b(want[0]), str(want[1]), str(want[2]), str(want[3]),
                                                              b(want[4]), b(want[5]), b(want[6]), str(want[7]),
                                                              str(want[8])]), line
            n += 1
    assert n > 500 and nw == 32 * 6 * 2
    if data == "radix":          # the radix pipeline where its rch < cols, else the rule's other configurations
        picks = {tuple(ln.split()[4:]) for ln in lines if ln[0].isdigit()}
        assert ("false", "256", "4", "0", "false", "true", "true", "8", "1024") in picks
        assert any(p[6] == "false" and p[0] != "none" for p in picks)
    if data.endswith(".json"):   # the real runs' rules pick many configurations: the grid meets several of them
        kinds = {tuple(ln.split()[4:]) for ln in lines if ln.startswith("w" if "where" in data else tuple("0123456789"))}
        assert len(kinds) >= 4, kinds
    adapters = [bytes.fromhex(line.split(" ", 1)[1] if " " in line else "").decode() for line in lines
                if line.startswith("a ")]
    a = doc["adapter"]
    assert adapters == [a["vendor"], a["architecture"], a["description"]]


def test_a_radix_pick_is_written_compiles_and_is_what_the_file_chooses(tmp_path):
    """A run whose radix configurations are the fastest on its long rows: the standalone file holds them in its
    vote, picks the radix pipeline for those shapes (its own tests assert each measured shape's pick) and for a
    long row nobody measured; SpiralTorch's drop-ins (st-core has no radix pipeline) are fitted without them and
    pick what the run's other configurations give."""
    doc = make_radix_run()
    src = generate(doc, run_id=doc["run_id"], created_at="2026-11-30")
    assert "TopKChoice { use_2ce: false, wg: 256, kl: 4, ch: 0, sg: false, ls: true, radix: true, rb: 8, rch: 1024 }" \
        in src
    out = run_rust_tests(tmp_path, src)
    assert "measured_shapes_get_the_fitted_picks ... ok" in out and "picks_are_legal_for_the_query ... ok" in out
    assert "assert_eq!(choose_topk(2, 16384, 256, true), Some(TopKChoice { use_2ce: false, wg: 256, kl: 4, ch: 0, " \
           "sg: false, ls: true, radix: true, rb: 8, rch: 1024 }));" in src
    (tmp_path / "wgpu_heuristics.rs").write_text(src, "utf-8")
    rustc(tmp_path, PICK_MAIN, "-o", str(tmp_path / "pick"), name="main.rs")
    got = subprocess.run([str(tmp_path / "pick")], capture_output=True, text=True, check=True).stdout.split()
    assert got == ["true", "8", "1024", "false", "0", "0"]     # 1x2^20 k=1024: radix; 4x1000 k=8: 1CE
    for flavour in ("st-core", "st-core-v1.3"):
        st = generate(doc, flavour, run_id=doc["run_id"], created_at="2026-11-30")
        assert "radix: true" not in st
        plain = {**doc, "measurements": [m for m in doc["measurements"] if not m["params"].get("radix")]}
        assert code_lines(st) == code_lines(generate(plain, flavour, run_id=doc["run_id"], created_at="2026-11-30"))


def code_lines(src: str) -> list[str]:
    """A generated file but its comments (the header counts the run's measurements, radix ones too)."""
    return [ln for ln in src.splitlines() if not ln.lstrip().startswith("//")]


PICK_MAIN = r'''
#[allow(dead_code)]
#[path = "wgpu_heuristics.rs"]
mod h;
fn main() {
    for &(r, c, k) in [(1u32, 1u32 << 20, 1024u32), (4, 1000, 8)].iter() {
        let x = h::choose_topk(r, c, k, true).unwrap();
        println!("{} {} {}", x.radix, x.rb, x.rch);
    }
}
'''


def test_hostile_strings_stay_inside_comments_and_literals(tmp_path, sample_run):
    doc = sample_run(label=EVIL, adapter={"vendor": EVIL, "architecture": EVIL, "device": EVIL, "description": EVIL})
    src = generate(doc, run_id=doc["run_id"], created_at=EVIL)
    for line in src.splitlines():
        assert all(" " <= ch <= "~" for ch in line), repr(line)
    clean = generate(sample_run(run_id=doc["run_id"], measurements=doc["measurements"]), run_id=doc["run_id"],
                     created_at="2026-11-25")
    code = [ln for ln in src.splitlines() if not ln.startswith("//") and "pub const ADAPTER" not in ln]
    clean_code = [ln for ln in clean.splitlines() if not ln.startswith("//") and "pub const ADAPTER" not in ln]
    assert code == clean_code  # the hostile text changed only comments and the ADAPTER literal
    rustc(tmp_path, src, "--crate-type", "lib", "-o", str(tmp_path / "lib.rlib"))
    run_rust_tests(tmp_path, src)


def test_header_comments_hold_the_posted_strings_escaped_and_reversibly(sample_run):
    from spiraltorch_tuner.server.rustgen import comment_safe, unescape_comment
    doc = sample_run(adapter={"vendor": EVIL, "architecture": "arch */ x", "device": "", "description": "d"})
    src = generate(doc, run_id=doc["run_id"], created_at="2026-11-25T07:00:00+00:00")
    header = [ln for ln in src.splitlines() if ln.startswith("//")]
    assert not any("*/" in ln or "/*" in ln for ln in header)
    adapter_line = next(ln for ln in header if ln.startswith("// Adapter: vendor "))
    assert comment_safe(EVIL) in adapter_line and unescape_comment(comment_safe(EVIL)) == EVIL
    assert "2026-11-25T07:00:00+00:00" in src and doc["run_id"] in src
    assert "Rule (TopK): the measured shapes nearest to the query vote" in src      # the rule is written into the file


def test_zero_times_generate_compilable_rust(tmp_path, sample_run):
    doc = sample_run()
    for m in doc["measurements"]:
        if m.get("median_ms") is not None:
            m["median_ms"] = 0.0
    src = generate(doc, "st-core-v1.3", run_id=doc["run_id"], created_at="2026-11-25")
    assert "pub mod generated" in src
    src = generate(doc, run_id=doc["run_id"], created_at="2026-11-25")
    rustc(tmp_path, src, "--crate-type", "lib", "-o", str(tmp_path / "lib.rlib"))
