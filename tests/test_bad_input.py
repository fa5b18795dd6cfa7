"""The rows of README.md's bad-input table that other test files do not already pin down."""
import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

import spiraltorch_tuner as st


@pytest.fixture()
def client(make_app, tmp_path):
    with TestClient(make_app(tmp_path)) as c:
        yield c


def test_a_run_with_100000_measurements_is_stored_whole(client, sample_run):
    doc = sample_run()
    one = doc["measurements"][0]
    doc["measurements"] = [dict(one, median_ms=1.0 + i * 1e-6) for i in range(100_000)]
    t0 = time.perf_counter()
    r = client.post("/api/runs", content=json.dumps(doc), headers={"content-type": "application/json"})
    took = time.perf_counter() - t0
    assert r.status_code == 201, r.text[:500]
    listed = client.get("/api/runs").json()[0]
    assert listed["run_id"] == doc["run_id"] and listed["n_measurements"] == 100_000
    print(f"\n100,000 measurements ({len(json.dumps(doc)) / 1e6:.1f} MB) stored in {took:.1f} s")


def test_megabyte_strings_in_adapter_fields_are_422_naming_the_limit(client, sample_run):
    doc = sample_run(adapter={"vendor": "v" * (1 << 20), "architecture": "", "device": "", "description": ""})
    r = client.post("/api/runs", json=doc)
    assert r.status_code == 422 and "adapter.vendor" in r.json()["detail"] and "4096" in r.json()["detail"]


def test_unicode_and_control_characters_are_kept(client, sample_run):
    text = "Ünïcödé ✓ 日本語 \t tab \x07 bell \u202e rtl"
    doc = sample_run(label=text)
    assert client.post("/api/runs", json=doc).status_code == 201
    assert client.get(f"/api/runs/{doc['run_id']}").json()["run"]["label"] == text


def test_nan_and_inf_in_topk_data_have_a_defined_result():
    x = np.float32([[np.nan, 1.0, np.inf, -np.inf, np.nan, 0.0]])
    for device in ("cpu", "wgpu"):
        if not st.backends()[["cuda", "mps", "wgpu", "cpu"].index(device)]["available"]:
            continue
        v, i = st.topk2d(x, 4, device=device)
        assert i.tolist() == [[0, 4, 2, 1]], device   # NaN largest (lower index first), then +inf, then 1.0


def test_non_float32_and_ragged_python_inputs_raise_precise_errors():
    with pytest.raises(st.DTypeError):
        st.topk2d(np.ones((2, 4), np.int32), 1)
    with pytest.raises(st.DTypeError):
        st.topk2d([[1.0, 2.0], [3.0]], 1)
    with pytest.raises(st.ShapeError):
        st.topk2d(np.ones((0, 4), np.float32), 1)


def test_native_where_with_nan_inf_json_and_unknown_backend(client):
    r = client.post("/api/native/where_nd", json={"cond": [True, False], "x": [None, 1.0], "y": [2.0, "inf"],
                                                  "device": "cpu"})
    assert r.status_code == 200 and r.json()["out"] == [None, "inf"]   # NaN in as null, out as null
    r = client.post("/api/native/where_nd", json={"seed": 1, "shape": [2, 2], "device": "quantum"})
    assert r.status_code == 422 and "device" in r.text
    r = client.post("/api/runs/unknown-run-id/compare?backend=cpu")
    assert r.status_code == 404
