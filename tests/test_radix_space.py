"""The radix TopK pipeline (shaders/topk_radix.wgsl) as part of the TopK search space: which configurations are legal
where (native/space.py and the page's space.js alike), what it adds to the presets, the native API running and
timing it bit for bit against the oracle, the native tuner measuring it and the tuned rule picking it, and the
documents and rules files from before it meaning what they meant."""
import itertools
import json
import shutil

import numpy as np
import pytest
from conftest import make_radix_run, make_run, run_node
from fastapi.testclient import TestClient

import spiraltorch_tuner as st
from spiraltorch_tuner import gen, rules
from spiraltorch_tuner import heuristics as h
from spiraltorch_tuner.cpu import topk_reference
from spiraltorch_tuner.cuda import CudaBackend
from spiraltorch_tuner.shaders import space
from spiraltorch_tuner.space import configurations, derived, violations
from spiraltorch_tuner.tuner import plan, preset_space, tune

RADIX = {"use_2ce": False, "wg": 256, "kl": 4, "ch": 0, "sg": False, "ls": True, "radix": True, "rb": 8, "rch": 2048}
SHAPE = {"rows": 8, "cols": 65536, "k": 4096}
# WebGPU's default limits (every adapter has at least these) and an H200's through Vulkan
DEFAULT_LIMITS = {"maxComputeInvocationsPerWorkgroup": 256, "maxComputeWorkgroupSizeX": 256,
                  "maxComputeWorkgroupStorageSize": 16384, "maxComputeWorkgroupsPerDimension": 65535,
                  "maxStorageBufferBindingSize": 1 << 27}
H200 = {**DEFAULT_LIMITS, "maxComputeInvocationsPerWorkgroup": 1024, "maxComputeWorkgroupSizeX": 1024,
        "maxComputeWorkgroupStorageSize": 49152, "maxStorageBufferBindingSize": 1 << 31}
SG = ["subgroups", "timestamp-query"]

# (changes to RADIX, limits, what breaks)
LEGALITY = [
    ({}, DEFAULT_LIMITS, []),
    ({"rb": 11, "rch": 8192}, DEFAULT_LIMITS, []),
    ({"wg": 64, "rch": 64}, DEFAULT_LIMITS, []),
    ({"rch": 65536}, DEFAULT_LIMITS, ["rch < cols"]),
    ({"rch": 128}, DEFAULT_LIMITS, ["rch >= wg"]),
    ({"rb": 0, "rch": 0}, DEFAULT_LIMITS, ["rb >= 4", "rch >= wg"]),
    ({"use_2ce": True, "ch": 8192}, DEFAULT_LIMITS, ["use_2ce == false"]),
    ({"sg": True}, DEFAULT_LIMITS, ["sg == false"]),
    ({"ls": False}, DEFAULT_LIMITS, ["ls == true"]),
    ({"kl": 16}, DEFAULT_LIMITS, ["kl == 4"]),
    ({"wg": 512, "rch": 4096}, H200, ["wg <= 256"]),
    ({"wg": 512, "rch": 4096}, DEFAULT_LIMITS, ["wg <= 256", "wg <= limits.maxcomputeinvocationsperworkgroup",
                                                "wg <= limits.maxcomputeworkgroupsizex"]),
    ({"rb": 12}, H200, []),                                       # 16 KiB of bins: over WebGPU's default 16384
    ({"rb": 12}, DEFAULT_LIMITS, ["radix_wg_bytes <= limits.maxcomputeworkgroupstoragesize"]),
    ({"radix": False}, DEFAULT_LIMITS, ["rb == 0", "rch == 0"]),    # rb, rch in a 1CE configuration
    ({"radix": False, "rb": 0, "rch": 0}, DEFAULT_LIMITS, []),     # which is 1CE wg 256 kl 4
]


@pytest.mark.parametrize("change,limits,broken", LEGALITY)
def test_radix_restrictions_name_what_breaks(change, limits, broken):
    got = violations("topk", SHAPE, {**RADIX, **change}, limits, SG)
    assert [b.lower() for b in got] == broken


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_page_plans_the_radix_dispatch_chain_native_does():
    """static/gpu.js topkPasses against native/wgpu_radix.py chain: the same entry points, workgroups and rounds
    (a histogram pass a round, the filter, the sort, the rank pass for k > SEG), and the sizes its buffers take."""
    from spiraltorch_tuner import wgpu_radix
    cases = [((1, 1048576, 1024), {"rb": 8, "rch": 2048}), ((16, 1048576, 4096), {"rb": 8, "rch": 8192}),
             ((8, 65536, 4096), {"rb": 11, "rch": 2048}), ((3, 3000, 1100), {"rb": 11, "rch": 1024}),
             ((2, 9000, 64), {"rb": 8, "rch": 1024, "wg": 64})]
    got = run_node(["space", "gpu"], "space.setSpace(input.space); const g = Object.create(gpu.Gpu.prototype);"
                   " g.limits = {}; console.log(JSON.stringify(input.cases.map(([[r, c, k], p]) => {"
                   " const { d, passes, sc } = g.topkPasses(r, c, k, p);"
                   " return [passes.map(([e, groups, own]) => [e, groups, own.round ?? null]),"
                   " [d.nchunks, d.nseg, d.rounds, d.hwords, d.last_bins, sc.SEG]]; })));",
                   {"space": space(), "cases": [[shape, {**RADIX, **p}] for shape, p in cases]})
    for ((rows, cols, k), p), (js_passes, js_sizes) in zip(cases, got):
        shape = {"rows": rows, "cols": cols, "k": k}
        c = wgpu_radix.plan_shape(rows, cols, k, wgpu_radix.constants(shape, {**RADIX, **p}))
        native = [[e, list(groups), own.get("round")] for e, groups, own in wgpu_radix.chain(c, rows, k)]
        assert js_passes == native, (shape, p)
        assert js_sizes == [c["nchunks"], c["nseg"], c["rounds"], c["rounds"] * c["bins"], c["last_bins"], c["seg"]]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_page_judges_radix_configurations_as_native_does():
    cases = [[{**RADIX, **change}, limits] for change, limits, _ in LEGALITY]
    got = run_node(["space"], "space.setSpace(input.space); console.log(JSON.stringify(input.cases.map(([p, lim]) =>"
                   " [space.violations('topk', input.shape, p, lim, input.features),"
                   " space.derived('topk', input.shape, p)])));",
                   {"space": space(), "cases": cases, "shape": SHAPE, "features": SG})
    for (p, limits), (bad, js_derived) in zip(cases, got):
        assert [b.lower() for b in bad] == [b.lower() for b in violations("topk", SHAPE, p, limits, SG)], p
        assert js_derived == derived("topk", SHAPE, p), p


def test_radix_is_wgsl_only_in_the_space_and_cuda_takes_only_its_own_radix_configurations():
    """CUDA, MPS and NumPy run no WGSL (the space's term `wgsl`): the tuner plans no radix configuration there. Given
    explicitly, the CUDA backend runs a radix configuration of 11-bit rounds (topk_cluster) and says what it takes
    for any other."""
    assert violations("topk", SHAPE, RADIX, {}, [], wgsl=False) == ["wgsl == True"]
    full = preset_space("full")
    on_cuda = plan(full, {}, [], wgsl=False)
    assert on_cuda and not any(p.get("radix") for kind, _, p in on_cuda if kind == "topk")
    assert [j for j in plan(full, {}, []) if not j[2].get("radix")] == on_cuda
    with pytest.raises(st.ParamsError, match="pass rb=11, rch a positive multiple of 4"):
        CudaBackend()._resolve_params(8, 65536, 4096, RADIX)
    assert CudaBackend()._resolve_params(8, 65536, 4096, {**RADIX, "rb": 11})["rch"] == 2048
    with pytest.raises(st.ParamsError, match="rb=8"):
        CudaBackend()._resolve_params(8, 65536, 4096, {"rb": 8})


def test_the_walk_keeps_exactly_the_legal_configurations_of_the_product():
    """configurations() drops a partial configuration as soon as it breaks a requirement whose terms are set; it
    keeps what filtering the whole product by violations() keeps, in the product's order."""
    dense = preset_space("dense")
    names = list(space()["topk"]["params"])
    grid = {**dense["topk"]["params"], "ls": [False, True], "kl": [1, 4], "rch": [0, 64, 4096]}
    for limits, features, wgsl in ((H200, SG, True), (DEFAULT_LIMITS, [], True), ({}, [], False)):
        for rows, cols, k in dense["topk"]["shapes"][::27] + [[3, 100, 100]]:
            shape = {"rows": rows, "cols": cols, "k": k}
            product = [dict(zip(names, c)) for c in itertools.product(*(grid[n] for n in names))]
            want = [p for p in product if not violations("topk", shape, p, limits, features, wgsl)]
            assert configurations("topk", shape, grid, limits, features, wgsl) == want, (shape, limits)


def test_full_preset_adds_the_radix_values_that_matter_within_about_a_quarter():
    """rb 8 and 11, rch 2048, 4096 and 8192 (the best radix configurations of bench/radix_probe.py on the H200) and
    16384 (the best on 8x1048576 k=2048 and 16x1048576 k=4096, s22) at the preset's workgroups the radix pipeline takes
    (wg <= 256: 64 and 256), only where rch < cols: 436 configurations on 44 shapes, 25.1 % more TopK configurations
    on an H200 (2,175 in all; 2,091 before rch 16384, 1,491 before wg 64 joined the preset)."""
    full = preset_space("full")
    jobs = [j for j in plan(full, H200, SG) if j[0] == "topk"]
    radix = [p for _, _, p in jobs if p["radix"]]
    assert len(jobs) == 2175 and len(radix) == 436
    assert len(radix) <= 0.26 * (len(jobs) - len(radix))
    assert {(p["wg"], p["rb"], p["rch"]) for p in radix} == {(wg, rb, rch) for wg in (64, 256) for rb in (8, 11)
                                                            for rch in (2048, 4096, 8192, 16384)}
    assert all(p["rch"] < shape[1] for _, shape, p in jobs if p["radix"])
    assert not any(p["radix"] for _, _, p in plan(preset_space("quick"), H200, SG) if _ == "topk")


needs_wgpu = pytest.mark.skipif(not any(b["name"] == "wgpu" and b["available"] for b in st.backends()),
                                reason="no wgpu-py adapter here")


def same(x, k, v, i):
    rv, ri = topk_reference(x, k)
    return np.array_equal(i, ri) and np.array_equal(v.view(np.uint32), rv.view(np.uint32))


@needs_wgpu
@pytest.mark.parametrize("rows,cols,k,change", [
    (8, 16384, 300, {}),                               # 8 chunks per row, one segment
    (2, 20000, 1500, {"rb": 11, "rch": 4096}),         # the rank pass: 1500 > SEG = 1024
    (3, 5000, 1, {"wg": 64, "rch": 1024}),
    (1, 70000, 4096, {"rch": 8192}),
])
def test_the_native_api_runs_radix_configurations_exactly(rows, cols, k, change):
    p = {**RADIX, **change}
    for dist in ("uniform", "ties"):
        x = gen.floats(rows * cols + k, (rows, cols), dist=dist)
        x[0, 7] = np.nan
        x[-1, :3] = [-0.0, 0.0, np.inf]
        v, i = st.topk2d(x, k, device="wgpu", params=p)
        assert same(x, k, v, i), (p, dist)
        assert st.last_choice().params == p and st.last_choice().source == "explicit"
    t = st.time_topk2d(x, k, device="wgpu", params=p, repeats=2, warmups=1)
    assert t.median_ms > 0 and t.timer in ("timestamp", "wall")


@needs_wgpu
def test_the_native_api_refuses_a_radix_configuration_that_breaks_the_space():
    x = gen.floats(1, (2, 4096))
    with pytest.raises(st.ParamsError, match="rch < cols"):
        st.topk2d(x, 8, device="wgpu", params={**RADIX, "rch": 8192})
    with pytest.raises(st.ParamsError, match="rb == 0"):
        st.topk2d(x, 8, device="wgpu", params={"rb": 8})


@needs_wgpu
def test_the_native_tuner_measures_radix_and_its_rule_picks_it(tmp_path):
    """A custom space with the radix pipeline tuned natively: every configuration checked and timed; the run's rule,
    pointed to as the user's heuristics, serves a call without params with what it picks, radix or not, exactly."""
    spec = {"seed": 3, "repeats": 2, "warmups": 1,
            "topk": {"shapes": [[2, 16384, 256], [1, 65536, 1200]],
                     "params": {"use_2ce": [False], "wg": [128, 256], "kl": [4], "ch": [0], "sg": [False],
                                "ls": [True], "radix": [False, True], "rb": [0, 8], "rch": [0, 2048]}}}
    doc = tune("wgpu", spec=spec, preset="")
    topk = doc["measurements"]
    assert all(m["ok"] for m in topk), [m["error"] for m in topk if not m["ok"]]
    assert sum(m["params"]["radix"] for m in topk) == 4 and all(m["median_ms"] > 0 for m in topk)
    # on this CPU adapter either may win; make radix the fastest so the rule must pick it
    for m in topk:
        if m["params"]["radix"]:
            m.update(median_ms=m["median_ms"] / 100, min_ms=m["min_ms"] / 100)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    st.set_heuristics(str(path))
    try:
        x = gen.floats(9, (2, 50000))
        v, i = st.topk2d(x, 700, device="wgpu")
        c = st.last_choice()
        assert c.source == "tuned:run.json" and c.params["radix"] is True, c
        assert same(x, 700, v, i)
        assert st.choose_topk(2, 1500, 8, device="wgpu").params["radix"] is False   # rch 2048 >= cols
    finally:
        st.set_heuristics(None)


def test_a_radix_pick_is_passed_over_where_it_is_not_legal():
    """A rule's radix pick on a backend that runs no WGSL (a CUDA class fitted on a browser run's data cannot
    happen; a user's file can): the Choice goes to the next source and says why."""
    class FakeCuda:
        name = "cuda"
    doc = make_radix_run(adapter={"vendor": "nvidia", "architecture": "h200", "device": "", "description": "",
                                  "backend": "cuda"}, subgroup_sizes=[])
    st.set_heuristics(doc)
    try:
        info = {"vendor": "nvidia", "architecture": "h200", "device": "", "backend": ""}
        c = rules.choose("topk", FakeCuda(), info, (2, 16384, 256), {}, [], {"use_2ce": False}, None)
        assert c.source != "tuned:set_heuristics" and "wgsl == True" in c.note, c
    finally:
        st.set_heuristics(None)


def test_runs_from_before_the_radix_pipeline_mean_what_they_meant(tmp_path, make_app):
    """A document without radix, rb, rch (nor ls) imports, and its configurations are 1CE and 2CE; merged with a
    newer run of the same class, whose configurations name every parameter, each configuration is one, of both runs'
    times."""
    old = make_run()
    assert not any({"radix", "rb", "rch"} & set(m["params"]) for m in old["measurements"])
    new = make_radix_run(adapter=old["adapter"])
    for m in new["measurements"]:
        if m["kernel"] == "topk":
            m["params"] = {**h.RADIX_OFF, "ls": True, **m["params"]}
    with TestClient(make_app(tmp_path)) as c:
        for d in (old, new):
            assert c.post("/api/runs", json=d).status_code == 201
        stored = c.get(f"/api/runs/{old['run_id']}").json()["run"]
        assert stored["measurements"] == old["measurements"]
        rep = c.get(f"/api/runs/{old['run_id']}/report").json()
        assert not any(s[k]["radix"] for s in rep["shapes"] for k in ("best", "pick", "default", "stcore"))
    merged = h.merge_measurements([old, new])
    keys = [(m["rows"], m["cols"], m["k"], h.params_tuple(m["params"], h.TOPK_KEYS)) for m in merged
            if m["kernel"] == "topk"]
    assert len(keys) == len(set(keys))
    assert {m["n"] for m in merged if m["kernel"] == "topk" and not m["params"].get("radix") and m["ok"]} == {2}


def test_a_rules_file_from_before_the_radix_pipeline_picks_as_it_did():
    """Six-field configurations and no rgrid (a rules file written before radix): read as 1CE and 2CE
    configurations, with the same picks as the file written today from the same run."""
    doc = rules.fit_runs([make_run()], "x").to_document()
    old = json.loads(json.dumps(doc))
    for c in old["classes"]:
        for v in c["topk"].values():
            if v:
                v["configs"] = [cfg[:6] for cfg in v["configs"]]
                del v["rgrid"]
    now, before = rules.rules_from_document(doc, "now"), rules.rules_from_document(old, "before")
    for a, b in zip(now.classes, before.classes):
        assert a.votes == b.votes
    shipped = rules.BOOK.shipped()
    assert all(len(cfg) == len(h.TOPK_KEYS) for c in shipped.classes for v in c.votes.values() if v
               for cfg in v.configs)


@needs_wgpu
def test_rest_runs_a_radix_configuration_and_answers_a_broken_one_with_422(make_app, tmp_path):
    from spiraltorch_tuner import cases
    from spiraltorch_tuner.tuner import topk_checksum
    with TestClient(make_app(tmp_path)) as c:
        r = c.post("/api/native/topk", json={"k": 1500, "seed": 4, "shape": [2, 9000], "device": "wgpu",
                                             "params": {**RADIX, "rch": 1024}, "repeats": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["params"]["radix"] is True and body["source"] == "explicit"
        assert body["checksum"] == topk_checksum(*topk_reference(cases.topk_input(4, 2, 9000), 1500))
        r = c.post("/api/native/topk", json={"k": 8, "seed": 4, "shape": [2, 1000], "device": "wgpu",
                                             "params": RADIX})
        assert r.status_code == 422 and "rch < cols" in r.text
