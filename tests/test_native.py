"""Every backend available here (cpu, wgpu on lavapipe; cuda/mps where present) against the NumPy oracle."""
import numpy as np
import pytest

import spiraltorch_tuner as st
from spiraltorch_tuner import cases, gen
from spiraltorch_tuner.cpu import topk_reference
from spiraltorch_tuner.space import configurations, stcore_fallback

AVAILABLE = [b["name"] for b in st.backends() if b["available"] and b["name"] in st.AUTO_ORDER]   # ours, not peers
GPU_LIKE = [n for n in AVAILABLE if n != "cpu"]


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        np.ascontiguousarray(a).view(np.uint32), np.ascontiguousarray(b).view(np.uint32))


def special_matrix():
    x = gen.floats(7, (3, 515), dist="ties")
    x[0, [3, 100, 400]] = np.nan
    x[0, 5] = np.inf
    x[1, [1, 2]] = [-0.0, 0.0]
    x[1, 10:20] = 0.0
    x[2, :] = -np.inf
    x[2, 77] = np.float32(-3.4e38)
    return x


TOPK_CASES = [
    ("seed 8x65536 k=4096", lambda: gen.floats(1, (8, 65536)), 4096),
    ("k=1", lambda: gen.floats(2, (5, 1000)), 1),
    ("k=cols", lambda: gen.floats(3, (4, 300)), 300),
    ("ties", lambda: gen.floats(4, (6, 5000), dist="ties"), 777),
    ("NaN, inf, signed zeros", special_matrix, 40),
    ("odd sizes", lambda: gen.floats(5, (7, 1023)), 13),
    ("one row, wide", lambda: gen.floats(6, (1, 1 << 20)), 1024),
    ("one column", lambda: gen.floats(8, (9, 1)), 1),
]


@pytest.mark.parametrize("device", AVAILABLE)
@pytest.mark.parametrize("name,make,k", TOPK_CASES, ids=[c[0] for c in TOPK_CASES])
def test_topk_matches_oracle(device, name, make, k):
    x = make()
    v, i = st.topk2d(x, k, device=device)
    rv, ri = topk_reference(x, k)
    assert i.dtype == np.int64 and v.dtype == np.float32 and v.shape == (x.shape[0], k)
    assert np.array_equal(i, ri)
    assert same_bits(v, rv)


@pytest.mark.parametrize("device", AVAILABLE)
def test_topk_unsorted_gives_the_oracles_set_and_backends_without_an_unsorted_kernel_sort_it(device):
    """sorted=False: the same k of each row (ties to the lower index) in any order; CUDA's radix pipeline writes them
    unsorted, every other backend returns them sorted, which is one such order."""
    x = special_matrix()
    v, i = st.topk2d(x, 40, device=device, sorted=False)
    rv, ri = topk_reference(x, 40)
    assert all(set(i[r]) == set(ri[r]) for r in range(x.shape[0]))
    order = np.argsort(i, axis=1)
    ro = np.argsort(ri, axis=1)
    assert same_bits(np.take_along_axis(v, order, 1), np.take_along_axis(rv, ro, 1))
    if device != "cuda":
        assert np.array_equal(i, ri) and same_bits(v, rv)
    assert st.time_topk2d(x, 40, device=device, sorted=False, repeats=2, warmups=1).median_ms > 0


def test_reference_orders_ties_nan_and_zeros():
    x = np.array([[1.0, np.nan, 1.0, -0.0, 0.0, np.inf, np.nan]], np.float32)
    v, i = topk_reference(x, 7)
    assert i.tolist() == [[1, 6, 5, 0, 2, 4, 3]]
    assert np.signbit(v[0, 6]) and not np.signbit(v[0, 5])


@pytest.mark.skipif("wgpu" not in AVAILABLE, reason="no WebGPU adapter for wgpu-py here")
@pytest.mark.parametrize("rows,cols,k", [(3, 2048, 8), (2, 20000, 300), (8, 65536, 4096)])
def test_wgpu_every_pipeline_and_variant(rows, cols, k):
    """1CE and 2CE, subgroups on and off, several workgroup sizes: all bit-identical to the oracle."""
    b = st.backend_for("wgpu")
    info = b.info()
    x = gen.floats(rows + cols, (rows, cols))
    rv, ri = topk_reference(x, k)
    grid = {"use_2ce": [False, True], "wg": [64, 256], "kl": [1, 8], "ch": [0, 1024, 8192], "sg": [False, True],
            "ls": [False, True]}
    cfgs = configurations("topk", {"rows": rows, "cols": cols, "k": k}, grid, info["limits"], info["features"])
    cfgs.append(stcore_fallback(rows, cols, k, "subgroups" in info["features"]))
    assert any(c["use_2ce"] for c in cfgs) and any(not c["use_2ce"] for c in cfgs)
    both_sorts = [dict(c, ls=ls) for c in cfgs[:2] for ls in (False, True)]
    for p in cfgs[:: max(1, len(cfgs) // 8)] + both_sorts:
        v, i = b.topk2d(x, k, p)
        assert np.array_equal(i, ri), p
        assert same_bits(v, rv), p


def where_cases():
    c, x, y = (gen.bools(1, (3, 5, 7, 9)), gen.floats(1, (3, 5, 7, 9), 2), gen.floats(1, (3, 5, 7, 9), 3))
    xi, yi = gen.ints(1, (3, 5, 7, 9), 2), gen.ints(1, (3, 5, 7, 9), 3)
    c8, x8, y8 = (gen.bools(4, (3, 5, 6, 8)), gen.floats(4, (3, 5, 6, 8), 2), gen.floats(4, (3, 5, 6, 8), 3))
    xi8, yi8 = gen.ints(4, (3, 5, 6, 8), 2), gen.ints(4, (3, 5, 6, 8), 3)
    return {
        "contiguous": (c, x, y),
        "negative strides": (c, x[:, :, ::-1, :], y),
        "mixed strides": (c[::-1, :, :, ::-2], x[:, ::-1, ::-1, ::-2], y[..., ::2]),
        "broadcast": (c[..., :1], x, np.float32([2.5])),
        "int32": (c, xi[:, :, ::-1], yi),
        "6-d": (gen.bools(2, (2, 1, 3, 1, 2, 5)), gen.floats(2, (2, 3, 3, 4, 2, 5), 2)[:, ::-1],
                gen.floats(2, (3, 1, 2, 1), 3)),
        "1-d": (np.array([True, False, True]), np.arange(3, dtype=np.float32), np.float32([9])),
        "odd length": (gen.bools(3, (1001,)), gen.floats(3, (1001,), 2), gen.floats(3, (1001,), 3)),
        "NaN and inf": (np.array([True, True, False]), np.float32([np.nan, np.inf, 0]), np.float32([1, 2, -np.inf])),
        # innermost extent 8: where_strided's 16-byte runs where every input allows them, else element by element
        "runs contiguous": (c8, x8, y8),
        "runs reversed rows": (c8, x8[:, :, ::-1], y8[::-1]),
        "runs broadcast": (c8[..., :1], x8, np.float32([2.5])),
        "runs broadcast x along rows": (c8, x8[..., :1], y8[:, :1]),
        "runs int32": (c8[::-1], xi8[:, ::-1], yi8),
        "runs misaligned x": (c8, gen.floats(4, (3, 5, 6, 9), 2)[..., 1:], y8),
        "runs unaligned outer stride": (c8, gen.floats(4, (3, 5, 6, 9), 2)[..., :8], y8),
        "runs odd cond offset": (gen.bools(4, (3, 5, 6, 9))[..., 1:], x8, y8),
        "runs reversed inner": (c8, x8[..., ::-1], y8),
    }


@pytest.mark.parametrize("device", AVAILABLE)
@pytest.mark.parametrize("case", list(where_cases()))
def test_where_matches_numpy(device, case):
    c, x, y = where_cases()[case]
    ref = np.where(c, x, y)
    paths = [None] + ([{"path": "direct"}, {"path": "segmented", "wg": 64, "vpt": 4}] if device == "wgpu" else [])
    for p in paths:
        assert same_bits(st.where_nd(c, x, y, device=device, params=p), ref), p


@pytest.mark.skipif("wgpu" not in AVAILABLE, reason="no WebGPU adapter for wgpu-py here")
@pytest.mark.parametrize("path", ["direct", "segmented"])
def test_where_timing_carries_the_kernel_time_beside_the_wall_time(path):
    from spiraltorch_tuner.wgpu_backend import WgpuBackend
    b = st.backend_for("wgpu")
    assert isinstance(b, WgpuBackend) and "timestamp-query" in b.features     # lavapipe has timestamps
    c, x, y = cases.where_inputs("broadcast", (64, 1024), "float32", 1)
    p = {"path": path, "wg": 64, "vpt": 2}
    t, out = b.time_where_kernel(c, x, y, p, repeats=3, warmups=1)
    assert t.timer == "timestamp" and len(t.samples_ms) == 3 and same_bits(out, np.where(c, x, y))
    w = b.time_where_nd(c, x, y, p, repeats=3, warmups=1)
    d = w.as_dict()
    assert d["timer"] == "wall" and len(d["samples_ms"]) == 3
    # a time of its own (on a CPU adapter it is not always below the call's: lavapipe's back-to-back dispatches
    # share two cores), of the same order as the kernel timed alone
    assert d["kernel_ms"] > 0 and d["kernel_ms"] not in d["samples_ms"]
    assert t.median_ms / 10 < d["kernel_ms"] < t.median_ms * 10
    # the tuner's call_timing: the call with its uploads sampled at most twice, the kernel still three times
    w2 = b.time_where_nd(c, x, y, p, repeats=3, warmups=1, call=(2, 0)).as_dict()
    assert len(w2["samples_ms"]) == 2 and w2["kernel_ms"] > 0


def test_the_native_tuner_samples_where_calls_as_space_json_call_timing_says():
    """A where_nd measurement of the tuner on wgpu (timestamps: the kernel is timed alone too) has at most
    where_nd.call_timing's samples of the call with its uploads, and its kernel_ms; the repeats stay the kernel's."""
    from spiraltorch_tuner.shaders import space
    from spiraltorch_tuner.tuner import tune
    ct = space()["where_nd"]["call_timing"]
    doc = tune("wgpu", "custom", {"seed": 1, "repeats": 5, "warmups": 1, "where_nd": {
        "shapes": [[4, 64, 33]], "cases": ["neg_stride"], "dtypes": ["float32"],
        "params": {"path": ["direct", "segmented"], "wg": [64], "vpt": [1]}}})
    ms = doc["measurements"]
    assert len(ms) == 2 and all(m["ok"] and m["kernel_ms"] > 0 for m in ms), ms
    assert all(len(m["samples_ms"]) == min(5, ct["repeats"]) for m in ms), [m["samples_ms"] for m in ms]


@pytest.mark.skipif("wgpu" not in AVAILABLE, reason="no WebGPU adapter for wgpu-py here")
def test_direct_path_does_not_copy_views():
    from spiraltorch_tuner.wgpu_backend import strided_view
    base = gen.floats(1, (4, 6, 8))
    view = base[:, ::-1, ::2]
    span, offset, strides = strided_view(view, view.shape)
    assert np.shares_memory(span, base)
    assert strides == [6 * 8 * 4, -8 * 4, 8] and offset == 5 * 8 * 4


@pytest.mark.parametrize("case", list(where_cases()))
def test_where_runs_of_4_only_where_every_input_allows_16_byte_loads(case):
    from spiraltorch_tuner.wgpu_backend import coalesce, strided_view, where_runs
    c, x, y = where_cases()[case]
    out_shape = np.broadcast_shapes(c.shape, x.shape, y.shape)
    views = [strided_view(a, out_shape) for a in (c, x, y)]
    shape, strides = coalesce(out_shape, [st for _, _, st in views])
    expect = case in ("runs contiguous", "runs reversed rows", "runs broadcast",
                      "runs broadcast x along rows", "runs int32")
    assert where_runs(shape, [(v[1], st) for v, st in zip(views, strides)]) == expect


@pytest.mark.parametrize("case", cases.WHERE_CASES)
def test_where_bench_cases_take_the_16_byte_runs(case):
    from spiraltorch_tuner.wgpu_backend import coalesce, strided_view, where_uniform
    c, x, y = cases.where_inputs(case, (4, 6, 8, 16), "float32")
    out_shape = np.broadcast_shapes(c.shape, x.shape, y.shape)
    views = [strided_view(a, out_shape) for a in (c, x, y)]
    shape, strides = coalesce(out_shape, [st for _, _, st in views])
    assert where_uniform(shape, x.size, [(v[1], st) for v, st in zip(views, strides)])[2] == 1


@pytest.mark.parametrize("case", cases.WHERE_CASES)
def test_where_cases_are_the_documented_views(case):
    c, x, y = cases.where_inputs(case, (2, 3, 4), "float32", seed=5)
    if case == "neg_stride":
        assert x.strides[1] < 0
        assert np.array_equal(x[:, ::-1], gen.floats(5, (2, 3, 4), 2))
    if case == "broadcast":
        assert c.shape == (2, 3, 1) and y.shape == (1,)


def test_bad_input_raises_precise_errors():
    x = gen.floats(1, (2, 8))
    with pytest.raises(st.ShapeError, match="k must satisfy"):
        st.topk2d(x, 0)
    with pytest.raises(st.ShapeError, match="k must satisfy"):
        st.topk2d(x, 9)
    with pytest.raises(st.DTypeError, match="float32"):
        st.topk2d(x.astype(np.float64), 2)
    with pytest.raises(st.ShapeError, match="2-d"):
        st.topk2d(x.reshape(-1), 2)
    with pytest.raises(st.ShapeError, match="do not broadcast"):
        st.where_nd(np.ones((2, 3), bool), np.ones((4,), np.float32), np.ones((3,), np.float32))
    with pytest.raises(st.ShapeError, match="at most 6"):
        st.where_nd(np.ones((1,) * 7, bool), np.ones((1,) * 7, np.float32), np.ones((1,), np.float32))
    with pytest.raises(st.DTypeError, match="cond must be bool"):
        st.where_nd(np.ones(3, np.int32), np.ones(3, np.float32), np.ones(3, np.float32))
    with pytest.raises(st.DTypeError):
        st.where_nd(np.ones(3, bool), np.ones(3, np.float32), np.ones(3, np.int32))
    with pytest.raises(st.BackendUnavailable, match="unknown device"):
        st.topk2d(x, 2, device="tpu")


def test_backends_report_reasons_and_auto_order():
    rows = st.backends()
    assert [r["name"] for r in rows] == ["cuda", "mps", "wgpu", "cpu", "spiraltorch"]
    for r in rows:
        assert r["available"] or r["reason"]
    rows = rows[:4]
    first = next(r["name"] for r in rows if r["available"])
    assert st.backend_for("auto").name == first
    for r in rows:
        if not r["available"]:
            with pytest.raises(st.BackendUnavailable, match=r["name"]):
                st.topk2d(gen.floats(1, (1, 4)), 1, device=r["name"])


@pytest.mark.skipif("wgpu" not in AVAILABLE, reason="no WebGPU adapter for wgpu-py here")
def test_wgpu_measures_its_subgroup_sizes_and_a_native_run_records_them():
    """wgpu-py reports no subgroup sizes (its adapter info holds the spec's defaults, 4 and 128), so the backend
    measures them with shaders/subgroup_probe.wgsl; they then key the run's device class."""
    from spiraltorch_tuner.tuner import tune
    from spiraltorch_tuner.wgpu_backend import WgpuBackend
    info = st.backend_for("wgpu").info()
    if "subgroups" not in info["features"]:
        pytest.skip("this adapter has no subgroups")
    lo, hi = info["subgroup_sizes"]
    assert 4 <= lo <= hi <= 128 and lo & (lo - 1) == 0 and hi & (hi - 1) == 0, (lo, hi)
    assert WgpuBackend().info()["subgroup_sizes"] == [lo, hi]          # a fresh device measures the same
    doc = tune("wgpu", "custom", {"seed": 1, "repeats": 1, "warmups": 0, "topk": {
        "shapes": [[1, 1024, 8]], "params": {"use_2ce": [False], "wg": [64], "kl": [4], "ch": [0], "sg": [True]}}})
    assert doc["subgroup_sizes"] == [lo, hi] and doc["measurements"][0]["ok"]


@pytest.mark.skipif("wgpu" not in AVAILABLE, reason="no WebGPU adapter for wgpu-py here")
def test_wgpu_rejects_illegal_params_with_reason():
    x = gen.floats(1, (2, 4096))
    with pytest.raises(st.ParamsError, match="ch"):
        st.topk2d(x, 8, device="wgpu", params={"use_2ce": True, "ch": 8192})
    with pytest.raises(st.ParamsError, match="unknown"):
        st.topk2d(x, 8, device="wgpu", params={"nope": 1})
    t = st.time_topk2d(x, 8, device="wgpu", repeats=3, warmups=1)
    assert t.timer in ("timestamp", "wall") and len(t.samples_ms) == 3 and t.median_ms > 0


@pytest.mark.skipif("wgpu" not in AVAILABLE, reason="no WebGPU adapter for wgpu-py here")
def test_wgpu_timing_keeps_the_gpu_busy_and_checks_the_clock():
    """Samples are back to back in one submission (several chains each when a chain is short) and, with the clock
    guard on, carry the canary's time over its best: 1.0 at full clock. (On lavapipe the guard is forced on: a CPU
    adapter leaves it off by default.)"""
    from spiraltorch_tuner.wgpu_backend import WgpuBackend
    x = cases.topk_input(1, 2, 1024, "uniform")
    auto = WgpuBackend()
    if "timestamp-query" not in auto.info()["features"]:
        pytest.skip("adapter without timestamp queries")
    t = auto.time_topk2d(x, 8, repeats=4, warmups=1)
    assert len(t.samples_ms) == 4 and all(s > 0 for s in t.samples_ms)
    assert t.clock is None if auto.info()["adapter_type"].lower() == "cpu" else t.clock is not None
    guarded = WgpuBackend(clock_guard=True)
    t = guarded.time_topk2d(x, 8, repeats=4, warmups=1)
    d = t.as_dict()
    assert d["clock"] >= 1.0 and guarded._canary_best > 0
    assert t.chains >= 1 and (t.chains == 1) == ("chains" not in d)


@pytest.mark.skipif("wgpu" not in AVAILABLE, reason="no WebGPU adapter for wgpu-py here")
def test_spiraltorch_wgpu_adapter_picks_an_adapter_by_index_or_name_and_says_which_there_are():
    """SPIRALTORCH_WGPU_ADAPTER (a machine with several GPUs): an index into wgpu's adapters or text of one's name;
    one that names none makes the backend unavailable with the adapters listed (a fresh process each: the backend
    keeps its device)."""
    import json
    import os
    import subprocess
    import sys
    script = ("import json, spiraltorch_tuner as st\n"
              "try:\n    i = st.backend_for('wgpu').info(); print(json.dumps([i['backend'], i['device']]))\n"
              "except Exception as e:\n    print(json.dumps([type(e).__name__, str(e)]))\n")

    def run(choice):
        env = {**os.environ, "SPIRALTORCH_WGPU_ADAPTER": choice, "XDG_RUNTIME_DIR": "/tmp"}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = run("0")
    assert first[0] != "BackendUnavailable", first
    assert run(first[1][:8].upper()) == first                    # by name, case aside
    kind, why = run("99")
    assert kind == "BackendUnavailable" and "SPIRALTORCH_WGPU_ADAPTER='99' names no adapter" in why, why
    assert f"0: {first[1]}" in why                               # the adapters there are, by index


def test_the_tuner_measures_where_paths_in_turns():
    """docs/timing.md: a case's where_nd configurations are planned direct, segmented, direct, ... (each path's in
    the grid's order), so that a drift of the host's call time falls on both paths' pooled uploads alike; the
    page plans the same (tests/test_reference_js.py compares the two plans)."""
    from spiraltorch_tuner.tuner import alternate, plan, preset_space
    full = preset_space("full")
    jobs = [j for j in plan({"where_nd": full["where_nd"]}, {}, []) if j[1] == ("contiguous", (1024,), "float32")]
    paths = [p["path"] for _, _, p in jobs]
    assert len(jobs) == 32 and paths == ["direct", "segmented"] * 16
    grid = configurations("where_nd", {"ndim": 1, "numel": 1024}, full["where_nd"]["params"])
    assert sorted(map(repr, grid)) == sorted(repr(p) for _, _, p in jobs)       # the same configurations
    assert [p for _, _, p in jobs if p["path"] == "direct"] == [p for p in grid if p["path"] == "direct"]
    uneven = [{"path": "a", "n": 1}, {"path": "a", "n": 2}, {"path": "a", "n": 3}, {"path": "b", "n": 4}]
    assert alternate(uneven, "path") == [uneven[0], uneven[3], uneven[1], uneven[2]]
    assert alternate([], "path") == []
