"""Calls without `params` run the tuned configuration for the device's class: the user's heuristics source (a run
document, a list of them, a rules file or SpiralTorch's tuner_results.json; the server's database), then the rules
shipped in the package, then the fixed default; every call says which configuration ran and where it came from."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import spiraltorch_tuner as stt
from spiraltorch_tuner import heuristics as h
from spiraltorch_tuner import rules
from spiraltorch_tuner.cpu import topk_reference
from spiraltorch_tuner.server.exports import export_run
from spiraltorch_tuner.space import default_params
from spiraltorch_tuner.tuner import tune

ROOT = Path(__file__).resolve().parents[1]
WGPU = any(b["name"] == "wgpu" and b["available"] for b in stt.backends())
needs_wgpu = pytest.mark.skipif(not WGPU, reason="no wgpu-py adapter here")

# A grid without space.json's default configuration (wg 256), so a tuned pick is never the default by chance.
SPACE = {"seed": 3, "repeats": 3, "warmups": 1,
         "topk": {"shapes": [[2, 16384, 64], [1, 32768, 8]],
                  "params": {"use_2ce": [False, True], "wg": [64, 128], "kl": [4], "ch": [0, 2048],
                             "sg": [False], "ls": [True]}}}


@pytest.fixture(autouse=True)
def no_user_source(monkeypatch):
    monkeypatch.delenv(rules.ENV, raising=False)
    stt.set_heuristics(None)
    yield
    stt.set_heuristics(None)


@pytest.fixture(scope="module")
def lavapipe_run():
    if not WGPU:
        pytest.skip("no wgpu-py adapter here")
    return tune(device="wgpu", spec=SPACE, label="tuned-defaults test")


def rule_pick(doc, rows, cols, k, merged=False):
    """The rule's pick on this adapter, fitted as the source is: one run as it is, or (a list of runs, the database)
    its runs merged per class (heuristics.merge_measurements drops noisy measurements first)."""
    ms = h.usable(doc["measurements"])
    model = h.topk_table(h.merge_measurements([{**doc, "measurements": ms}]) if merged else ms)
    sg = "subgroups" in stt.backend_for("wgpu").info()["features"]
    return dict(zip(h.TOPK_KEYS, h.choose_topk(model, rows, cols, k, sg)))


def test_the_shipped_rules_are_what_the_committed_runs_give():
    spec = importlib.util.spec_from_file_location("ship_rules", ROOT / "bench" / "ship_rules.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert rules.SHIPPED.read_text(encoding="utf-8") == mod.shipped_text(), \
        "native/shipped_rules.json is stale: run python3 bench/ship_rules.py"
    shipped = rules.BOOK.shipped()
    assert {c.key.architecture for c in shipped.classes} >= {"NVIDIA H100 80GB HBM3", "NVIDIA H200"}


class FakeGpu:
    """A backend object as rules.choose sees one (its name); the adapter info is given to choose as a dict."""
    name = "wgpu"


H200 = {"vendor": "NVIDIA", "architecture": "", "device": "NVIDIA H200", "backend": "Vulkan",
        "subgroup_sizes": [32, 32], "features": ["subgroups", "timestamp-query"],
        "limits": {"maxComputeInvocationsPerWorkgroup": 1024, "maxComputeWorkgroupSizeX": 1024,
                   "maxComputeWorkgroupStorageSize": 49152, "maxComputeWorkgroupsPerDimension": 65535,
                   "maxStorageBufferBindingSize": 2**31 - 1}}


def test_an_h200_adapter_is_served_by_the_shipped_rules_of_its_class():
    c = rules.choose("topk", FakeGpu(), H200, (8, 65536, 4096), H200["limits"], H200["features"],
                     default_params("topk"))
    assert c.source == "shipped" and c.rule == "NVIDIA|NVIDIA H200|32-32|wgpu:Vulkan"
    cls = next(x for x in rules.BOOK.shipped().classes if h.class_key(x.key) == c.rule)
    assert c.params == dict(zip(h.TOPK_KEYS, h.vote_pick(cls.votes[True], 8, 65536, 4096)))
    assert c.params != default_params("topk")
    w = rules.choose("where_nd", FakeGpu(), H200, (1 << 24, 2, True), H200["limits"], H200["features"],
                     default_params("where_nd"))
    assert w.source == "shipped" and set(w.params) == {"path", "wg", "vpt"}
    other = {**H200, "device": "NVIDIA B200"}     # no class of its architecture: the fixed default
    d = rules.choose("topk", FakeGpu(), other, (8, 65536, 4096), H200["limits"], H200["features"],
                     default_params("topk"))
    assert d.source == "default" and d.params == default_params("topk")


@needs_wgpu
def test_without_a_source_for_this_adapter_calls_run_the_fixed_default_and_say_so():
    x = np.random.default_rng(1).standard_normal((2, 5000)).astype(np.float32)
    v, i = stt.topk2d(x, 7, device="wgpu")
    c = stt.last_choice()
    assert (c.source, c.params) == ("default", default_params("topk"))
    rv, ri = topk_reference(x, 7)
    assert np.array_equal(i, ri) and np.array_equal(v, rv)
    stt.topk2d(x, 7, device="wgpu", params={"wg": 64})
    assert stt.last_choice().source == "explicit" and stt.last_choice().params == {"wg": 64}


@needs_wgpu
@pytest.mark.parametrize("form", ["run", "wrapper", "list", "rules", "wasm-table"])
def test_a_source_named_by_the_environment_is_used_and_named(tmp_path, monkeypatch, lavapipe_run, form):
    doc = lavapipe_run
    data = {"run": doc, "wrapper": {"run_id": doc["run_id"], "run": doc}, "list": [doc, doc],
            "rules": json.loads(export_run(doc, "rules").text),
            "wasm-table": json.loads(export_run(doc, "wasm-table").text)}[form]
    path = tmp_path / f"{form}.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv(rules.ENV, str(path))
    x = np.random.default_rng(2).standard_normal((2, 16384)).astype(np.float32)
    v, i = stt.topk2d(x, 64, device="wgpu")
    c = stt.last_choice()
    assert c.source == f"tuned:{form}.json"
    want = rule_pick(doc, 2, 16384, 64, merged=form == "list")
    if form == "wasm-table":      # st-core's table carries use_2ce, wg, kl, ch; sg follows the adapter, ls true
        assert [c.params[k] for k in ("use_2ce", "wg", "kl", "ch")] == [want[k] for k in ("use_2ce", "wg", "kl", "ch")]
    else:
        assert c.params == want
    assert c.params != default_params("topk")
    rv, ri = topk_reference(x, 64)
    assert np.array_equal(i, ri) and np.array_equal(v, rv)
    stt.topk2d(x, 64, device="wgpu", params="default")
    assert stt.last_choice().source == "default"
    assert stt.choose_topk(2, 16384, 64, device="wgpu").params == c.params


@needs_wgpu
def test_a_pick_not_legal_on_this_adapter_is_passed_over_with_a_note(tmp_path, monkeypatch):
    path = tmp_path / "tuner_results.json"
    path.write_text(json.dumps([{"cols_min": 0, "k_max": 4096, "use_2ce": False, "wg": 4096, "kl": 4, "ch": 0}]))
    monkeypatch.setenv(rules.ENV, str(path))
    c = stt.choose_topk(2, 5000, 8, device="wgpu")
    assert c.source == "default" and "wg <= limits.maxComputeInvocationsPerWorkgroup" in c.note


@needs_wgpu
@pytest.mark.parametrize("content, problem", [(None, "no such file"), ("{not json", "not JSON"),
                                              ('{"hello": 1}', "not a run document, a rules file or a tuner_results"),
                                              ('[{"cols_min": "wide"}]', "must be a non-negative integer"),
                                              ('[{"colour": 3}]', "unknown field 'colour'")])
def test_a_bad_source_is_a_clear_error_and_the_fixed_default_keeps_working(tmp_path, monkeypatch, content, problem):
    path = tmp_path / "h.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv(rules.ENV, str(path))
    x = np.random.default_rng(3).standard_normal((2, 300)).astype(np.float32)
    with pytest.raises(stt.HeuristicsError) as e:
        stt.topk2d(x, 4, device="wgpu")
    assert str(path) in str(e.value) and problem in str(e.value)
    v, i = stt.topk2d(x, 4, device="wgpu", params="default")
    assert np.array_equal(i, topk_reference(x, 4)[1])
    with pytest.raises(stt.HeuristicsError):
        stt.set_heuristics(str(path))
    with pytest.raises(stt.ParamsError, match="params must be a configuration"):
        stt.topk2d(x, 4, device="cpu", params="fastest")


def test_the_server_refuses_to_start_on_a_bad_source(tmp_path, make_app, monkeypatch):
    monkeypatch.setenv(rules.ENV, str(tmp_path / "missing.json"))
    with pytest.raises(stt.HeuristicsError, match="missing.json: no such file"):
        make_app(tmp_path)
    r = subprocess.run([sys.executable, "-m", "spiraltorch_tuner.server", "serve", "--port", "1", "--db",
                        str(tmp_path / "x.sqlite3")], capture_output=True, text=True, timeout=60,
                       env={**__import__("os").environ, rules.ENV: str(tmp_path / "missing.json")})
    assert r.returncode == 2 and "missing.json: no such file" in r.stderr


@needs_wgpu
def test_native_endpoints_use_the_databases_runs_and_say_which_configuration_ran(tmp_path, make_app, lavapipe_run):
    body = {"k": 64, "seed": 5, "shape": [2, 16384], "device": "wgpu", "result": "checksum"}
    with TestClient(make_app(tmp_path)) as c:
        r = c.post("/api/native/topk", json=body).json()
        assert (r["source"], r["params"]) == ("default", default_params("topk"))
        assert c.post("/api/runs", json=lavapipe_run).status_code == 201
        r = c.post("/api/native/topk", json=body).json()
        assert r["source"] == "tuned:database" and r["params"] == rule_pick(lavapipe_run, 2, 16384, 64, merged=True)
        assert r["rule"].startswith(h.class_key(h.adapter_class(lavapipe_run)).split("|")[0])
        d = c.post("/api/native/topk", json={**body, "params": "default"}).json()
        assert (d["source"], d["params"]) == ("default", default_params("topk")) and d["checksum"] == r["checksum"]
        w = c.post("/api/native/where_nd", json={"seed": 1, "shape": [4, 64], "device": "wgpu",
                                                 "result": "checksum"}).json()
        assert w["source"] in ("default", "tuned:database", "shipped") and set(w["params"]) == {"path", "wg", "vpt"}
        e = c.post("/api/native/topk", json={**body, "params": "fast"})
        assert e.status_code == 422
