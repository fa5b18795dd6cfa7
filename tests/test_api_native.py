"""REST endpoints of native execution against a real app (TestClient) on a temporary SQLite file."""
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

import spiraltorch_tuner as st
from spiraltorch_tuner import cases, gen
from spiraltorch_tuner.cpu import topk_reference
from spiraltorch_tuner.tuner import topk_checksum
from spiraltorch_tuner.server.app import create_app
from spiraltorch_tuner.server.settings import Settings

WGPU = any(b["name"] == "wgpu" and b["available"] for b in st.backends())


@pytest.fixture()
def client(tmp_path):
    app = create_app(Settings(db_path=str(tmp_path / "t.sqlite3"), max_elements=1 << 20))
    with TestClient(app) as c:
        yield c


def npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_backends_lists_all_with_reasons(client):
    r = client.get("/api/backends")
    assert r.status_code == 200
    body = r.json()
    names = [b["name"] for b in body["backends"]]
    assert names == ["cuda", "mps", "wgpu", "cpu", "spiraltorch"]   # ours in auto order, then the peer
    assert body["auto"] in names
    for b in body["backends"]:
        assert b["available"] or b["reason"]


@pytest.mark.parametrize("device", ["cpu"] + (["wgpu"] if WGPU else []))
def test_topk_from_seed_matches_oracle(client, device):
    r = client.post("/api/native/topk", json={"k": 16, "seed": 9, "shape": [3, 2000], "device": device,
                                              "repeats": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    x = cases.topk_input(9, 3, 2000)
    rv, ri = topk_reference(x, 16)
    assert body["backend"] == device
    assert body["indices"] == ri.tolist()
    assert np.array_equal(np.float32(body["values"]), rv)
    assert body["checksum"] == topk_checksum(rv, ri)
    assert body["timing"]["median_ms"] > 0 and len(body["timing"]["samples_ms"]) == 3


def test_topk_explicit_json_with_nan_and_inf(client):
    r = client.post("/api/native/topk", json={"k": 3, "x": [[1.0, None, 2.0, 5.0]], "device": "cpu"})
    assert r.status_code == 200, r.text
    assert r.json()["indices"] == [[1, 3, 2]]
    assert r.json()["values"][0][0] is None  # NaN comes back as null


def test_topk_npy_body_and_checksum_only(client):
    x = gen.floats(3, (4, 5000))
    r = client.post("/api/native/topk?k=100&result=checksum&device=cpu", content=npy(x),
                    headers={"content-type": "application/x-npy"})
    assert r.status_code == 200, r.text
    assert "values" not in r.json()
    assert r.json()["checksum"] == topk_checksum(*topk_reference(x, 100))


@pytest.mark.parametrize("body,status,text", [
    ({"k": 0, "seed": 1, "shape": [2, 8]}, 422, "k"),
    ({"k": 9, "seed": 1, "shape": [2, 8]}, 422, "k must satisfy"),
    ({"k": 2, "seed": 1, "shape": [0, 8]}, 422, "positive"),
    ({"k": 2, "seed": 1, "shape": [-1, 8]}, 422, "positive"),
    ({"k": 2, "x": [[1.0, 2.0], [3.0]]}, 422, "rectangular"),
    ({"k": 2, "x": "abc"}, 422, "x"),
    ({"k": 2}, 422, "give the input"),
    ({"k": 2, "seed": 1, "shape": [2, 8], "device": "tpu"}, 422, "device"),
    ({"k": 2, "seed": 1, "shape": [2, 8], "bogus": 1}, 422, "bogus"),
    ({"k": 2, "seed": 1, "shape": [4096, 4096]}, 413, "limit"),
])
def test_topk_bad_input_is_4xx_with_message(client, body, status, text):
    r = client.post("/api/native/topk", json=body)
    assert r.status_code == status, r.text
    assert text in r.text


def test_topk_bad_binary_bodies(client):
    r = client.post("/api/native/topk?k=2", content=npy(np.ones((2, 4), np.float64)),
                    headers={"content-type": "application/x-npy"})
    assert r.status_code == 422 and "float32" in r.text
    r = client.post("/api/native/topk?k=2", content=npy(np.ones((2, 4), np.float32))[:-5],
                    headers={"content-type": "application/x-npy"})
    assert r.status_code == 400 and "npy" in r.text
    r = client.post("/api/native/topk", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.text


def test_unavailable_backend_is_503_with_reason(client):
    r = client.post("/api/native/topk", json={"k": 1, "seed": 1, "shape": [1, 4], "device": "mps"})
    assert r.status_code == 503 and "mps" in r.json()["detail"]


@pytest.mark.parametrize("device", ["cpu"] + (["wgpu"] if WGPU else []))
@pytest.mark.parametrize("case", cases.WHERE_CASES)
def test_where_from_seed(client, device, case):
    r = client.post("/api/native/where_nd", json={"seed": 4, "shape": [3, 4, 5], "case": case, "dtype": "int32",
                                                  "device": device})
    assert r.status_code == 200, r.text
    c, x, y = cases.where_inputs(case, (3, 4, 5), "int32", 4)
    assert r.json()["out"] == np.where(c, x, y).tolist()


def test_where_npz_with_views_and_errors(client):
    c, x, y = gen.bools(1, (4, 6)), gen.floats(1, (4, 6), 2)[:, ::-1], np.float32([7.0])
    buf = io.BytesIO()
    np.savez(buf, cond=c, x=x, y=y)
    r = client.post("/api/native/where_nd?device=cpu", content=buf.getvalue(),
                    headers={"content-type": "application/x-npz"})
    assert r.status_code == 200, r.text
    assert np.array_equal(np.float32(r.json()["out"]), np.where(c, x, y))
    bad = [({"cond": [True], "x": [[1.0, 2.0]], "y": [[1.0], [2.0], [3.0]], "device": "cpu"}, 200, ""),
           ({"cond": [True, False], "x": [1.0, 2.0, 3.0], "y": [0.0], "device": "cpu"}, 422, "broadcast"),
           ({"cond": [1, 0], "x": [1.0, 2.0], "y": [0.0]}, 422, "cond"),
           ({"seed": 1, "shape": [1] * 7}, 422, "shape"),
           ({"seed": 1, "shape": [2, 3], "case": "diagonal"}, 422, "case"),
           ({"seed": 1, "shape": [2048, 2048]}, 413, "limit")]
    for body, status, text in bad:
        r = client.post("/api/native/where_nd", json=body)
        assert r.status_code == status, (body, r.text)
        assert text in r.text


def test_compare_unknown_run_is_404(client):
    r = client.post("/api/runs/nosuchrun123/compare?backend=cpu")
    assert r.status_code == 404
