"""SpiralTorch's real wheel (spiraltorch 0.4.32, installed with --no-deps by .ci/dev beside ours): both packages
import side by side, theirs untouched, and its WgpuRank TopK runs as the peer backend device="spiraltorch", checked
against our oracle, with its differences (NaN, ties) described row by row instead of failing."""
import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import spiraltorch_tuner as stt
from spiraltorch_tuner.cpu import topk_reference
from spiraltorch_tuner.tuner import describe_topk_difference

ROOT = Path(__file__).resolve().parents[1]
HAVE = importlib.util.find_spec("spiraltorch") is not None
needs_wheel = pytest.mark.skipif(not HAVE, reason="SpiralTorch's wheel is not installed (bash .ci/dev installs it)")
PEER_OK = HAVE and stt.backend_for("cpu") and dict((b["name"], b["available"]) for b in stt.backends())["spiraltorch"]
needs_peer = pytest.mark.skipif(not PEER_OK, reason="SpiralTorch's WgpuRank finds no adapter here")


@needs_wheel
def test_both_packages_import_side_by_side_and_theirs_is_their_own():
    import spiraltorch
    assert hasattr(spiraltorch, "WgpuRank") and hasattr(spiraltorch, "Tensor")
    theirs = Path(spiraltorch.__file__).resolve()                        # the wheel's own files, not ours
    assert theirs.parent.parent.name == "site-packages" and importlib.metadata.version("spiraltorch") == "0.4.32"
    tomllib = pytest.importorskip("tomllib")
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert not any(p == "spiraltorch" or p.startswith("spiraltorch.") for p in ours)
    assert Path(stt.__file__).resolve().parent == ROOT / "native"
    assert not hasattr(spiraltorch, "topk2d") and callable(stt.topk2d)
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    assert stt.topk2d(x, 2, device="cpu")[1].tolist() == [[5, 4], [5, 4]]


def test_the_peer_is_listed_with_its_reason_and_never_picked_by_auto(tmp_path, make_app):
    with TestClient(make_app(tmp_path)) as c:
        body = c.get("/api/backends").json()
    peer = next(b for b in body["backends"] if b["name"] == "spiraltorch")
    assert body["auto"] != "spiraltorch" and "spiraltorch" not in body["order"]
    assert peer["available"] == bool(PEER_OK)
    if not PEER_OK:
        assert peer["reason"]


@needs_peer
def test_its_topk_equals_our_oracle_on_distinct_values_and_is_timed_by_its_profile():
    x = np.random.default_rng(7).standard_normal((3, 4000)).astype(np.float32)
    v, i = stt.topk2d(x, 32, device="spiraltorch")
    rv, ri = topk_reference(x, 32)
    assert np.array_equal(i, ri) and np.array_equal(v, rv)
    assert stt.last_choice().source == "default" and stt.last_choice().params == {}
    t = stt.time_topk2d(x, 32, device="spiraltorch", repeats=2, warmups=1)
    assert t.timer == "spiraltorch-profile" and all(s > 0 for s in t.samples_ms)
    with pytest.raises(stt.ParamsError, match="takes no params"):
        stt.topk2d(x, 32, device="spiraltorch", params={"wg": 64})
    with pytest.raises(stt.Unsupported, match="no where_nd"):
        stt.where_nd(np.ones(4, bool), np.ones(4, np.float32), np.zeros(4, np.float32), device="spiraltorch")


@needs_peer
def test_where_it_differs_from_the_oracle_the_difference_is_said_per_row():
    x = np.random.default_rng(8).standard_normal((3, 64)).astype(np.float32)
    x[1, 10] = np.nan          # the oracle ranks NaN above every number
    v, i = stt.topk2d(x, 4, device="spiraltorch")
    rv, ri = topk_reference(x, 4)
    msg = describe_topk_difference(x, rv, ri, v, i)
    if np.isnan(v[1]).any():   # a later SpiralTorch may rank NaN as we do: then there is nothing to say
        assert msg is None
    else:
        assert msg.startswith("row 1: 1 NaN in the oracle's top 4") and "row 0" not in msg and "row 2" not in msg


def test_differences_are_classified(tmp_path):
    x = np.array([[3, 1, 3, 0, 2]], dtype=np.float32)
    rv, ri = topk_reference(x, 2)                        # (3 at 0, 3 at 2)
    assert describe_topk_difference(x, rv, ri, rv, ri) is None
    swapped = ri[:, ::-1].copy()
    assert "another order of indices (2 positions" in describe_topk_difference(x, rv, ri, rv, swapped)
    other = np.array([[3, 2]], dtype=np.float32), np.array([[0, 4]])
    assert describe_topk_difference(x, rv, ri, *other) == "row 0: 1 values and 1 indices differ"


@needs_peer
def test_the_compare_view_replays_a_stored_run_on_the_peer(tmp_path, make_app, sample_run):
    with TestClient(make_app(tmp_path)) as c:
        doc = sample_run()
        assert c.post("/api/runs", json=doc).status_code == 201
        r = c.post(f"/api/runs/{doc['run_id']}/compare", params={"backend": "spiraltorch", "repeats": 1})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["backend"] == "spiraltorch" and body["n"] > 0
    topk = [row for row in body["rows"] if row["kernel"] == "topk"]
    where = [row for row in body["rows"] if row["kernel"] == "where_nd"]
    assert topk and all(row["native_ms"] or row["error"] for row in topk)
    assert all("no where_nd" in row["error"] for row in where)
