"""Faults of the native device, on real wgpu-py (lavapipe here): a request too large for the device's buffer limits,
and a lost device (destroyed as a driver reset would). Both are spiraltorch_tuner.KernelError naming the cause, HTTP
503 over REST, and the next request on the backend works (a lost device is replaced by a new one)."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

import spiraltorch_tuner as st
from spiraltorch_tuner.tuner import topk_checksum


@pytest.fixture(scope="module")
def gpu():
    b = st.registry.get("wgpu")
    ok, why = b.available()
    if not ok:
        pytest.skip(f"no wgpu-py adapter here: {why}")
    return b


def too_large(b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cond [n, 1], x [1, n], y [1]: small inputs whose broadcast output (n*n float32) is over the device's largest
    storage buffer."""
    n = math.isqrt(b.limits["maxStorageBufferBindingSize"] // 4) + 8
    return np.ones((n, 1), bool), np.ones((1, n), np.float32), np.zeros(1, np.float32)


def test_a_request_over_the_devices_buffer_limit_is_a_kernel_error_naming_the_limit(gpu, make_app, tmp_path):
    cond, x, y = too_large(gpu)
    with pytest.raises(st.KernelError, match="maxStorageBufferBindingSize"):
        st.where_nd(cond, x, y, device="wgpu")
    small = [a[:8, :] if a.ndim == 2 and a.shape[0] > 1 else a[:, :8] if a.ndim == 2 else a for a in (cond, x, y)]
    assert np.array_equal(st.where_nd(*small, device="wgpu"), st.where_nd(*small, device="cpu"))

    numel = cond.shape[0] * x.shape[1]
    body = io.BytesIO()
    np.savez(body, cond=cond, x=x, y=y)
    with TestClient(make_app(tmp_path, max_elements=max(numel, 1 << 26))) as c:
        r = c.post("/api/native/where_nd?device=wgpu&result=checksum", content=body.getvalue(),
                   headers={"Content-Type": "application/x-npz"})
        assert r.status_code == 503 and "maxStorageBufferBindingSize" in r.json()["detail"], r.text
        r = c.post("/api/native/topk", json={"k": 4, "seed": 3, "shape": [4, 256], "device": "wgpu"})
        assert r.status_code == 200, r.text


def test_a_lost_device_is_a_kernel_error_and_the_next_call_gets_a_new_device(gpu, make_app, tmp_path):
    x = st.gen.floats(5, (8, 2048), st.gen.STREAM_TOPK)
    want = st.topk2d(x, 16, device="cpu")
    gpu.lose_device()
    with pytest.raises(st.KernelError, match="lost"):
        st.topk2d(x, 16, device="wgpu")
    got = st.topk2d(x, 16, device="wgpu")
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    gpu.lose_device()
    with pytest.raises(st.KernelError, match="lost"):
        st.time_topk2d(x, 16, device="wgpu", repeats=2, warmups=0)
    assert st.time_topk2d(x, 16, device="wgpu", repeats=2, warmups=0).median_ms > 0

    req = {"k": 16, "seed": 5, "shape": [8, 2048], "device": "wgpu", "result": "checksum"}
    with TestClient(make_app(tmp_path)) as c:
        gpu.lose_device()
        r = c.post("/api/native/topk", json=req)
        assert r.status_code == 503 and "lost" in r.json()["detail"], r.text
        r = c.post("/api/native/topk", json=req)
        assert r.status_code == 200 and r.json()["checksum"] == topk_checksum(*want), r.text
        gpu.lose_device()
        r = c.post("/api/native/where_nd", json={"seed": 2, "shape": [4, 64], "case": "neg_stride", "device": "wgpu"})
        assert r.status_code == 503 and "lost" in r.json()["detail"], r.text
        r = c.post("/api/native/where_nd", json={"seed": 2, "shape": [4, 64], "case": "neg_stride", "device": "wgpu",
                                                 "repeats": 2})
        assert r.status_code == 200 and r.json()["timing"]["median_ms"] > 0, r.text
