"""Heuristics per device class from many runs: grouping by adapter class, the merge's outlier rule, the merged
wgpu_heuristics.rs (one table per class, `choose_topk_for`) compiled with rustc and checked against the Python rule,
and the `?run=all` download and merged report over HTTP."""
import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient

from conftest import _topk, _where, make_run
from spiraltorch_tuner.heuristics import (AdapterClass, adapter_class, choose_topk, choose_where, class_order,
                                          group_by_class, merge_measurements, topk_table, where_table)
from spiraltorch_tuner.server.report import report_classes
from spiraltorch_tuner.server.rustgen import generate, generate_merged, merged_classes
from test_rustgen import EVIL, rustc, run_rust_tests

needs_rustc = pytest.mark.skipif(shutil.which("rustc") is None, reason="rustc is not installed")

NVIDIA = {"vendor": "nvidia", "architecture": "hopper", "device": "", "description": "H100", "backend": "vulkan"}


def rec(doc, when="2026-11-25T00:00:00+00:00"):
    return {"run_id": doc["run_id"], "created_at": when, "run": doc}


def test_runs_are_grouped_by_vendor_architecture_subgroup_sizes_and_backend():
    a = make_run()
    assert adapter_class(a) == AdapterClass("google", "swiftshader", 4, 4, "browser")   # no backend: the source
    b = make_run(adapter=NVIDIA, subgroup_sizes=[32, 32], source="native")
    assert adapter_class(b) == AdapterClass("nvidia", "hopper", 32, 32, "vulkan")
    c = make_run(subgroup_sizes=[8, 64])
    groups = group_by_class([a, b, c, make_run()])
    assert [len(v) for v in groups.values()] == [2, 1, 1] and list(groups) == sorted(groups)


def test_adapters_that_report_no_architecture_are_told_apart_by_their_device_name():
    """wgpu-native (wgpu-py, native runs) reports an empty architecture: an H100 and an H200 under Vulkan must not
    merge into one class."""
    native = [make_run(adapter={"vendor": "NVIDIA", "architecture": "", "device": f"NVIDIA {d}",
                                "description": "580.159.04", "backend": "wgpu:Vulkan"}, source="native",
                       subgroup_sizes=[0, 0])
              for d in ("H100 80GB HBM3", "H200", "H200")]
    groups = group_by_class(native)
    assert list(groups) == [AdapterClass("NVIDIA", "NVIDIA H100 80GB HBM3", 0, 0, "wgpu:Vulkan"),
                            AdapterClass("NVIDIA", "NVIDIA H200", 0, 0, "wgpu:Vulkan")]
    assert [len(v) for v in groups.values()] == [1, 2]


def test_merge_takes_the_median_of_medians_and_drops_noisy_and_foreign_timer_measurements():
    def run(ms, spread=0.1, timer="timestamp"):
        m = _topk(4, 1024, 8, ms)
        m.update(spread=spread, timer=timer)
        return make_run(measurements=[m])
    docs = [run(1.0), run(3.0), run(2.0), run(0.1, spread=0.9), run(0.2, timer="wall"),
            make_run(measurements=[_topk(4, 1024, 8, 0.3, ok=False)])]
    merged = merge_measurements(docs)
    assert len(merged) == 1
    assert merged[0]["median_ms"] == 2.0 and merged[0]["n"] == 3 and merged[0]["timer"] == "timestamp"
    assert merge_measurements(list(reversed(docs))) == merged                  # order does not matter
    walls = [run(5.0, timer="wall"), run(6.0, timer="wall"), run(1.0)]
    assert merge_measurements(walls)[0]["median_ms"] == 5.5                   # the majority timer wins
    sample = merge_measurements([make_run()])           # TopK timed by timestamps, where_nd by the wall clock:
    assert {m["kernel"] for m in sample} == {"topk", "where_nd"}                # the majority is per kernel


def two_classes():
    """Three runs: two of the sample class (one slower everywhere, so the merge differs from either), one NVIDIA run
    whose winners differ from the sample class's."""
    a, b = make_run(), make_run()
    for m in b["measurements"]:
        if m.get("median_ms") is not None:
            m["median_ms"] *= 1.5
    n = make_run(adapter=NVIDIA, subgroup_sizes=[32, 32], features=["timestamp-query"], measurements=[
        _topk(8, 65536, 64, 0.2, use_2ce=True, wg=256, kl=8, ch=4096), _topk(8, 65536, 64, 0.4, wg=256),
        _topk(1, 1024, 8, 0.05, wg=64, kl=8)])
    return [rec(a, "2026-11-25T00:00:01+00:00"), rec(n, "2026-11-25T00:00:02+00:00"),
            rec(b, "2026-11-25T00:00:03+00:00")]


GRID_MAIN = r'''
#[allow(dead_code)]
#[path = "wgpu_heuristics.rs"]
mod h;
fn main() {
    for (i, key) in h::ADAPTER_KEYS.iter().enumerate() {
        for &r in [1u32, 4, 8, 1000].iter() { for &c in [100u32, 1024, 4096, 16384, 65536, 1 << 20].iter() {
            for &k in [1u32, 8, 64, 256, 4096].iter() { if k > c { continue; } for &sg in [false, true].iter() {
                match h::choose_topk_for(key, r, c, k, sg) {
                    Some(x) => println!("{} {} {} {} {} {} {} {} {} {} {} {} {} {}",
                                        i, r, c, k, sg, x.use_2ce, x.wg, x.kl, x.ch, x.sg, x.ls, x.radix, x.rb,
                                        x.rch),
                    None => println!("{} {} {} {} {} none", i, r, c, k, sg),
                }
                assert!(i != h::ADAPTER_KEYS.iter().position(|a| *a == h::ADAPTER_KEY).unwrap()
                        || h::choose_topk(r, c, k, sg) == h::choose_topk_for(key, r, c, k, sg));
            }}
        }}
    }
}
'''


@needs_rustc
def test_the_merged_file_compiles_and_each_class_picks_by_its_own_merged_table(tmp_path):
    records = two_classes()
    src = generate_merged(records)
    assert src == generate_merged(records)                                  # deterministic
    assert "Merged: 3 runs in 2 device classes" in src and "pub fn choose_topk_for(" in src
    rustc(tmp_path, src, "--crate-type", "lib", "-o", str(tmp_path / "lib.rlib"))
    out = run_rust_tests(tmp_path, src)
    assert "device_classes_get_their_own_tables ... ok" in out
    (tmp_path / "wgpu_heuristics.rs").write_text(src, "utf-8")
    rustc(tmp_path, GRID_MAIN, "-o", str(tmp_path / "grid"), name="main.rs")
    lines = subprocess.run([str(tmp_path / "grid")], capture_output=True, text=True, check=True).stdout.splitlines()
    tables = [topk_table(ms) for _, _, ms in merged_classes(records)]
    assert len(tables) == 2
    for line in lines:
        f = line.split()
        want = choose_topk(tables[int(f[0])], int(f[1]), int(f[2]), int(f[3]), f[4] == "true")
        got = None if f[5] == "none" else (f[5] == "true", int(f[6]), int(f[7]), int(f[8]), f[9] == "true",
                                           f[10] == "true", f[11] == "true", int(f[12]), int(f[13]))
        assert got == want, line
    assert len(lines) > 200
    # the two classes answer differently for the same query, and the merge is not either run alone
    assert choose_topk(tables[0], 8, 65536, 64, False) != choose_topk(tables[1], 8, 65536, 64, False)
    merged_sample = next(ms for c, _, ms in merged_classes(records) if c.vendor == "google")
    t = next(m for m in merged_sample if m["kernel"] == "topk" and m["median_ms"] not in (0.9, 1.35))
    assert t["n"] == 2


def key_lit(c: AdapterClass) -> str:
    return (f'h::AdapterKey {{ vendor: "{c.vendor}", architecture: "{c.architecture}", subgroup_min: '
            f'{c.subgroup_min}, subgroup_max: {c.subgroup_max}, backend: "{c.backend}" }}')


@needs_rustc
def test_a_device_whose_kernels_were_stored_in_two_classes_gets_both_from_the_for_choosers(tmp_path):
    """One H100 tuned for TopK before its subgroup sizes were recorded and for where_nd after: two classes of one
    vendor and architecture. Its `_for` choosers take TopK from the one and where_nd from the other (class_order),
    ignore ASCII case, and never serve another vendor or architecture; Rust and Python agree."""
    topk = make_run(adapter=NVIDIA, subgroup_sizes=[0, 0], features=["timestamp-query"], measurements=[
        _topk(8, 65536, 64, 0.2, use_2ce=True, wg=256, kl=8, ch=4096), _topk(8, 65536, 64, 0.4, wg=256)])
    where = make_run(adapter=NVIDIA, subgroup_sizes=[32, 32], features=["timestamp-query"], measurements=[
        _where("contiguous", [4, 64, 256], 1.0, wg=64), _where("contiguous", [4, 64, 256], 2.0, wg=256)])
    records = [rec(d, f"2026-11-25T00:00:0{i}+00:00") for i, d in enumerate([make_run(), topk, where])]
    classes = merged_classes(records)
    keys = [c for c, _, _ in classes]
    a, b = adapter_class(topk), adapter_class(where)
    loud = AdapterClass("NVIDIA", "Hopper", 32, 32, "Vulkan")
    assert class_order(keys, b) == [keys.index(b), keys.index(a)] == class_order(keys, loud)
    assert class_order(keys, a) == [keys.index(a), keys.index(b)]
    assert class_order(keys, AdapterClass("nvidia", "ampere", 32, 32, "vulkan")) == []
    assert class_order(keys, AdapterClass("amd", "hopper", 32, 32, "vulkan")) == []
    tables = {c: (topk_table(ms), where_table(ms)) for c, _, ms in classes}
    want_topk = choose_topk(tables[a][0], 8, 65536, 64, True)
    want_where = choose_where(tables[b][1], 4 * 64 * 256, 3, True)
    assert want_topk == (True, 256, 8, 4096, False, True, False, 0, 0) and want_where == ("direct", 64, 1)
    src = generate_merged(records)
    (tmp_path / "wgpu_heuristics.rs").write_text(src, "utf-8")
    calls = []
    for key in (a, b, loud, AdapterClass("nvidia", "ampere", 32, 32, "vulkan")):
        calls.append(f"    let k = {key_lit(key)};\n"
                     "    println!(\"{:?} {:?}\", h::choose_topk_for(&k, 8, 65536, 64, true).map(|c| (c.use_2ce, c.wg, "
                     "c.kl, c.ch)), h::choose_where_nd_for(&k, 65536, 3, true, false).map(|c| (c.wg, c.vpt)));\n")
    main = '#[allow(dead_code)]\n#[path = "wgpu_heuristics.rs"]\nmod h;\nfn main() {\n' + "".join(calls) + "}\n"
    rustc(tmp_path, main, "-o", str(tmp_path / "fallback"), name="main.rs")
    lines = subprocess.run([str(tmp_path / "fallback")], capture_output=True, text=True, check=True).stdout.splitlines()
    both = "Some((true, 256, 8, 4096)) Some((64, 1))"
    assert lines == [both, both, both, "None None"]


@needs_rustc
def test_the_st_core_flavour_of_the_merged_file_compiles_and_the_plain_chooser_uses_the_newest_runs_class(tmp_path):
    records = two_classes()
    src = generate_merged(records, "st-core-v1.3")
    assert "pub fn choose_extras" in src and "pub mod generated" in src
    assert "pub mod spiraltorch_tuner {" in generate_merged(records, "st-core")
    newest = adapter_class(records[-1]["run"])
    assert f'pub const ADAPTER_KEY: AdapterKey<\'static> = AdapterKey {{ vendor: "{newest.vendor}"' in src
    src = generate_merged(records)
    rustc(tmp_path, src, "--crate-type", "lib", "-o", str(tmp_path / "lib.rlib"))


@needs_rustc
def test_a_single_run_file_answers_choose_topk_for_its_own_class_only(tmp_path):
    doc = make_run()
    src = generate(doc, run_id=doc["run_id"], created_at="2026-11-25")
    assert "pub const ADAPTER_KEYS: &[AdapterKey<'static>] = &[AdapterKey { vendor: \"google\"" in src
    assert "device_classes_get_their_own_tables ... ok" in run_rust_tests(tmp_path, src)
    stub = generate_merged([])
    assert "Stub" in stub
    rustc(tmp_path, stub, "--crate-type", "lib", "-o", str(tmp_path / "stub.rlib"))


def test_download_all_and_the_merged_report_over_http(tmp_path, make_app):
    records = two_classes()
    with TestClient(make_app(tmp_path)) as c:
        assert "Stub" in c.get("/api/heuristics.rs?run=all").text
        assert c.get("/api/report").json()["classes"] == []
        for r in records:
            assert c.post("/api/runs", json=r["run"]).status_code == 201
        resp = c.get("/api/heuristics.rs?run=all&flavour=st-core")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/x-rust")
        assert "Merged: 3 runs in 2 device classes" in resp.text and 'vendor: "nvidia"' in resp.text
        rep = c.get("/api/report?run=all").json()["classes"]
    assert [x["adapter_class"]["vendor"] for x in rep] == ["google", "nvidia"]
    assert [len(x["runs"]) for x in rep] == [2, 1]
    want = report_classes([{**r, "created_at": ""} for r in records])["classes"]
    assert [x["regret"] for x in rep] == [x["regret"] for x in want]
    google = rep[0]
    assert google["regret"]["tuned_heldout"]["n"] >= 1 and "fixed_default" in google["regret"]
    # judged on the merged times: the best time of 4x1024 k=8 is the median of 0.5 and 0.75
    shape = next(s for s in google["shapes"] if s["shape"] == "4x1024 k=8")
    assert shape["best_ms"] == pytest.approx(0.625)


def test_device_classes_are_listed_and_reported_one_at_a_time_over_http(tmp_path, make_app):
    records = two_classes()
    with TestClient(make_app(tmp_path)) as c:
        assert c.get("/api/classes").json() == []
        for r in records:
            assert c.post("/api/runs", json=r["run"]).status_code == 201
        classes = c.get("/api/classes").json()
        assert [x["adapter_class"]["vendor"] for x in classes] == ["google", "nvidia"]
        assert [x["runs"] for x in classes] == [[records[0]["run_id"], records[2]["run_id"]], [records[1]["run_id"]]]
        assert classes[1]["n_measurements"] == len(records[1]["run"]["measurements"])
        every = c.get("/api/report?run=all").json()["classes"]
        for cls, whole in zip(classes, every):
            one = c.get("/api/report", params={"device_class": cls["device_class"]}).json()["classes"]
            assert len(one) == 1 and one[0]["device_class"] == cls["device_class"]
            assert one[0]["regret"] == whole["regret"] and one[0]["runs"] == cls["runs"]
        r = c.get("/api/report", params={"device_class": "amd|rdna3|32-64|wgpu:Vulkan"})
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert "amd|rdna3|32-64|wgpu:Vulkan" in detail and classes[0]["device_class"] in detail


@needs_rustc
def test_hostile_adapter_strings_stay_inside_literals_and_comments_of_the_merged_file(tmp_path):
    records = two_classes()
    records[1]["run"]["adapter"] = {"vendor": EVIL, "architecture": EVIL, "device": "", "description": EVIL,
                                    "backend": EVIL}
    src = generate_merged(records)
    for line in src.splitlines():
        assert all(" " <= ch <= "~" for ch in line), repr(line)
    rustc(tmp_path, src, "--crate-type", "lib", "-o", str(tmp_path / "lib.rlib"))
    assert "device_classes_get_their_own_tables ... ok" in run_rust_tests(tmp_path, src)
