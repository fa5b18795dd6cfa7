"""The CUDA backend against the NumPy oracle: bit-identical TopK values, identical indices (ties, NaN, +-0, +-inf,
odd sizes, both pipelines and their variants) and where_nd over views. Skipped where CuPy or a GPU is missing."""
import numpy as np
import pytest

from spiraltorch_tuner import gen
from spiraltorch_tuner.cpu import sort_keys, topk_reference
from spiraltorch_tuner.cuda import CLUSTER_BCAST, CudaBackend
from spiraltorch_tuner.errors import ParamsError

_B = CudaBackend()
_OK, _WHY = _B.available()
pytestmark = pytest.mark.skipif(not _OK, reason=f"CUDA backend unavailable: {_WHY}")


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        np.ascontiguousarray(a).view(np.uint32), np.ascontiguousarray(b).view(np.uint32))


def special(rows, cols, seed=7):
    x = gen.floats(seed, (rows, cols), dist="ties")
    x[0, [3, 100, cols - 1]] = np.nan
    x[0, 5] = np.inf
    x[0, 6] = -np.inf
    x[1 % rows, [1, 2]] = [-0.0, 0.0]
    x[1 % rows, 10:20] = 0.0
    x[1 % rows, 30:40] = -0.0
    x[2 % rows, :] = -np.inf
    x[2 % rows, 77] = np.float32(-3.4e38)
    x[2 % rows, 78] = np.float32(np.nan)
    return x


TOPK = [
    ("seed 8x65536 k=4096", lambda: gen.floats(1, (8, 65536)), 4096),
    ("8x65536 k=64", lambda: gen.floats(11, (8, 65536)), 64),
    ("k=1", lambda: gen.floats(2, (5, 1000)), 1),
    ("k=cols", lambda: gen.floats(3, (4, 300)), 300),
    ("ties", lambda: gen.floats(4, (6, 5000), dist="ties"), 777),
    ("ties wide", lambda: gen.floats(4, (3, 70000), dist="ties"), 4096),
    ("all equal", lambda: np.full((2, 9000), 0.5, np.float32), 100),
    ("NaN inf signed zeros", lambda: special(3, 515), 40),
    ("NaN inf signed zeros wide", lambda: special(4, 20001), 300),
    ("cols not a multiple of 4", lambda: gen.floats(5, (7, 1023)), 13),
    ("cols 4n+2", lambda: gen.floats(5, (9, 4098)), 64),
    ("one row, 1<<20 cols", lambda: gen.floats(6, (1, 1 << 20)), 1024),
    ("two rows, 3e5 cols (two histogram passes)", lambda: gen.floats(9, (2, 300001)), 2000),
    ("one column", lambda: gen.floats(8, (9, 1)), 1),
    ("many small rows", lambda: gen.floats(10, (4096, 1024)), 8),
]

CONFIGS = [
    None,
    {"use_2ce": False, "wg": 256, "kl": 4, "ch": 0, "sg": False},     # KLANE=128: two rows per block
    {"use_2ce": False, "wg": 1024, "kl": 32, "ch": 0, "sg": False},   # whole block on a row
    {"use_2ce": False, "wg": 64, "kl": 1, "ch": 0, "sg": False},
    {"use_2ce": True, "wg": 512, "kl": 4, "ch": 4096, "sg": False},
    {"use_2ce": True, "wg": 1024, "kl": 4, "ch": 1024, "sg": True},
    {"use_2ce": True, "wg": 128, "kl": 4, "ch": 16384, "sg": False},
]


def _check(x, k, params):
    v, i = _B.topk2d(x, k, params)
    rv, ri = topk_reference(x, k)
    assert i.dtype == np.int64 and v.dtype == np.float32 and v.shape == (x.shape[0], k)
    assert np.array_equal(i, ri), params
    assert same_bits(v, rv), params


@pytest.mark.parametrize("name,make,k", TOPK, ids=[c[0] for c in TOPK])
def test_topk_default_matches_oracle(name, make, k):
    _check(make(), k, None)


@pytest.mark.parametrize("params", CONFIGS[1:], ids=lambda p: "-".join(f"{a}{b}" for a, b in p.items()))
@pytest.mark.parametrize("name,make,k", TOPK, ids=[c[0] for c in TOPK])
def test_topk_every_variant_matches_oracle(name, make, k, params):
    x = make()
    try:
        _check(x, k, params)
    except ParamsError as e:          # a 1CE row that does not fit in shared memory is refused, not wrong
        assert not params["use_2ce"] and "shared memory" in str(e)


def test_topk_repeated_calls_reset_scratch():
    """The 2-stage kernels reset their counters and histograms: calls in a row on new data stay exact."""
    for seed in range(3):
        _check(gen.floats(seed, (8, 65536)), 4096, {"use_2ce": True, "wg": 1024, "kl": 4, "ch": 4096, "sg": False})


LARGE_K = [("seed", (8, 65536), 4096, {"use_2ce": True, "wg": 1024, "kl": 4, "ch": 4096, "sg": False}),
           ("ties, k not a multiple of 256", (3, 70000), 2500, {"use_2ce": True, "wg": 512, "kl": 4, "ch": 8192,
                                                                   "sg": False}),
           ("one long row", (1, 100000), 4096, {"use_2ce": True, "wg": 1024, "kl": 4, "ch": 16384, "sg": False}),
           ("many rows", (600, 16384), 2048, {"use_2ce": True, "wg": 256, "kl": 4, "ch": 4096, "sg": False})]


@pytest.mark.parametrize("name,shape,k,params", LARGE_K, ids=[c[0] for c in LARGE_K])
def test_topk_large_k_sorts_with_many_blocks(name, shape, k, params):
    """From k = 2048 the 2-stage path leaves the k keys to topk_segsort and topk_rank; exact on every shape, twice
    in a row (the kernels reset their scratch)."""
    rows, cols = shape
    x = gen.floats(21, shape, dist="ties" if name.startswith("ties") else "uniform")
    names = [ln[0] for ln in _B._topk_plan(rows, cols, k, params)[1](None, None, None)]
    assert names == ["topk_hist", "topk_filter", "topk_segsort", "topk_rank"]
    rv, ri = topk_reference(x, k)
    for _ in range(2):
        v, i = _B.topk2d(x, k, params)
        assert np.array_equal(i, ri) and same_bits(v, rv)


STREAM = [("uniform", lambda: gen.floats(31, (40, 70001)), 128),
          ("ties", lambda: gen.floats(32, (3, 200000), dist="ties"), 1000),
          ("ascending", lambda: np.sort(gen.floats(33, (5, 65537)), axis=1), 4096),
          ("one value, more than CAND_CAP of it", lambda: np.full((2, 90000), 0.5, np.float32), 300),
          ("masked: -inf but for a few", lambda: np.where(gen.floats(34, (4, 100000)) > 0.999, 1.0,
                                                          -np.inf).astype(np.float32), 200),
          ("NaN inf signed zeros", lambda: special(3, 80000), 64)]


@pytest.mark.parametrize("wg", [128, 512])
@pytest.mark.parametrize("name,make,k", STREAM, ids=[c[0] for c in STREAM])
def test_topk_1ce_rows_longer_than_shared_memory_stream(name, make, k, wg):
    """1CE with one group a row on rows whose keys do not fit in shared memory runs topk_stream (the row read
    again per pass), exact on ties, a repeated value, -inf masks, NaN and signed zeros."""
    x = make()
    params = {"use_2ce": False, "wg": wg, "kl": wg // 32, "ch": 0, "sg": False}
    names = [ln[0] for ln in _B._topk_plan(*x.shape, k, params)[1](None, None, None)]
    assert names == ["topk_stream"]
    _check(x, k, params)


def test_topk_plans_use_dependent_launches_on_hopper_and_plain_launches_agree():
    """On sm_90+ the launches after a plan's first go through cuLaunchKernelEx with programmatic stream
    serialization; the same plans with plain launches give the same bits."""
    import cupy as cp
    _B._kernels()
    if int(cp.cuda.Device(0).compute_capability) >= 90:
        assert _B._pdl
    x = gen.floats(23, (8, 65536))
    rv, ri = topk_reference(x, 4096)
    pdl = _B._pdl
    try:
        for launcher in (pdl, False):
            _B._pdl = launcher
            v, i = _B.topk2d(x, 4096)
            assert np.array_equal(i, ri) and same_bits(v, rv)
    finally:
        _B._pdl = pdl


def test_topk_unaligned_device_rows():
    """A row that starts off a 16-byte boundary (view at column 1) goes through the scalar head."""
    import cupy as cp
    x = gen.floats(12, (5, 4101))
    xd = cp.asarray(x)[:, 1:]
    xd = cp.ascontiguousarray(xd)
    big = cp.asarray(gen.floats(12, (1, 4100 * 5 + 1)))[0, 1:].reshape(5, 4100)   # rows start at odd floats
    for arr in (xd, big):
        for p in (CONFIGS[1], CONFIGS[4]):
            v, i = _B.topk2d_device(arr, 50, p)
            rv, ri = topk_reference(cp.asnumpy(arr), 50)
            assert np.array_equal(cp.asnumpy(i), ri) and same_bits(cp.asnumpy(v), rv)


def _where_cases():
    s4 = (3, 5, 7, 9)
    c, x, y = gen.bools(1, s4), gen.floats(1, s4, 2), gen.floats(1, s4, 3)
    s6 = (2, 3, 2, 5, 3, 8)
    yield "contiguous", c, x, y
    yield "contiguous 4n", gen.bools(2, (4, 6, 32)), gen.floats(2, (4, 6, 32), 2), gen.floats(2, (4, 6, 32), 3)
    yield "negative strides", c, x[:, :, ::-1, :], y
    yield ("negative strides 4n", gen.bools(3, (4, 8, 16)), gen.floats(3, (4, 8, 16), 2)[:, ::-1, :],
           gen.floats(3, (4, 8, 16), 3))
    yield "reversed innermost", c, x[..., ::-1], y
    yield "broadcast", gen.bools(4, (3, 5, 7, 1)), x, gen.floats(4, (1,), 3)
    yield "broadcast 4n", gen.bools(4, (4, 6, 1)), gen.floats(4, (4, 6, 32), 2), np.float32(2.5) * np.ones(1, np.float32)
    yield "6-d", gen.bools(5, s6), gen.floats(5, s6, 2), gen.floats(5, (1, 3, 1, 5, 1, 8), 3)
    yield "int32", c, gen.ints(1, s4, 2), gen.ints(1, s4, 3)[:, ::-1]
    yield "1-d", gen.bools(6, (1001,)), gen.floats(6, (1001,), 2), gen.floats(6, (1001,), 3)
    yield "scalar-like", np.array(True), np.array(1.5, np.float32), np.array(-2.0, np.float32)
    yield "slices", gen.bools(7, (8, 40))[::2, 3:35], gen.floats(7, (8, 40), 2)[1::2, 4:36], np.float32([7.0])
    yield "large 2^20", gen.bools(8, (64, 128, 128)), gen.floats(8, (64, 128, 128), 2)[:, ::-1], gen.floats(8, (1,), 3)


WHERE = list(_where_cases())


@pytest.mark.parametrize("params", [None, {"path": "direct", "wg": 128, "vpt": 1}, {"path": "direct", "wg": 512, "vpt": 8},
                                    {"path": "segmented", "wg": 256, "vpt": 2}], ids=["default", "wg128v1", "wg512v8", "seg"])
@pytest.mark.parametrize("name,c,x,y", WHERE, ids=[w[0] for w in WHERE])
def test_where_matches_numpy(name, c, x, y, params):
    out = _B.where_nd(c, x, y, params)
    ref = np.where(c, x, y)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert same_bits(out, ref)


def test_where_device_views():
    """where_nd_device reads CuPy views (negative strides, broadcasts) in place."""
    import cupy as cp
    c, x, y = gen.bools(9, (16, 64, 64)), gen.floats(9, (16, 64, 64), 2), gen.floats(9, (1, 1, 64), 3)
    cd, xd, yd = cp.asarray(c), cp.asarray(x)[:, ::-1, :], cp.asarray(y)
    out = _B.where_nd_device(cd, xd, yd)
    assert same_bits(cp.asnumpy(out), np.where(c, x[:, ::-1, :], y))


def test_timing_uses_cuda_events():
    t = _B.time_topk2d(gen.floats(1, (8, 4096)), 16, repeats=3, warmups=1)
    assert t.timer == "cuda-event" and len(t.samples_ms) == 3 and t.median_ms > 0
    assert _B.info()["timer"] == "cuda-event"


# ---- the radix pipeline in one launch (topk_cluster): a row's blocks are one thread-block cluster, sm_90+ --------
def _hopper():
    _B._kernels()
    return _B._clusters()


hopper = pytest.mark.skipif(_OK and not _hopper(), reason="thread-block clusters need sm_90 and a CUDA 12 driver")


def radix(rch, wg):
    return {"use_2ce": False, "wg": wg, "kl": 4, "ch": 0, "sg": False, "radix": True, "rb": 11, "rch": rch}


def in_oracle_order(v, i):
    """An unsorted answer, each row put in the oracle's order: key descending (NaN first, -0.0 below 0.0), then the
    lower column."""
    key = sort_keys(v).astype(np.int64)
    order = np.stack([np.lexsort((i[r], -key[r])) for r in range(v.shape[0])])
    return np.take_along_axis(v, order, 1), np.take_along_axis(i, order, 1)


def _check_radix(x, k, params, sorted_):
    v, i = _B.topk2d(x, k, params, sorted=sorted_)
    rv, ri = topk_reference(x, k)
    if not sorted_:
        v, i = in_oracle_order(v, i)
    assert np.array_equal(i, ri), (params, sorted_)
    assert same_bits(v, rv), (params, sorted_)


RADIX = [radix(4096, 512), radix(8192, 1024), radix(2048, 256), radix(16384, 128)]


@hopper
@pytest.mark.parametrize("sorted_", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("params", RADIX, ids=lambda p: f"rch{p['rch']}-wg{p['wg']}")
@pytest.mark.parametrize("name,make,k", TOPK, ids=[c[0] for c in TOPK])
def test_topk_radix_cluster_matches_oracle(name, make, k, params, sorted_):
    x = make()
    try:
        _check_radix(x, k, params, sorted_)
    except ParamsError as e:          # more than 16 blocks a row, or more shared memory than a block has
        assert "at most 16" in str(e) or "shared memory" in str(e)


@hopper
def test_topk_radix_cluster_stress_ties_ascending_constant_and_masked_rows():
    """Random shapes, k, block counts (2..16) and block sizes over rows that stress the select: 16 values only,
    ascending (every top key in the last block), descending, one repeated value (more equal keys than any slack, so
    ties go by column across the cluster), NaN and signed zeros, all but a few -inf."""
    rng = np.random.default_rng(24)
    ran = 0
    for trial in range(80):
        rows = int(rng.choice([1, 3, 8, 16]))
        cols = int(rng.integers(2, 140000))
        k = int(min(cols, 4096, rng.choice([1, 7, 64, 1000, 4096, int(rng.integers(1, 6000)), cols])))
        dist = ["uniform", "ties", "asc", "desc", "const", "special", "masked"][trial % 7]
        x = gen.floats(trial, (rows, cols), dist="ties" if dist == "ties" else "uniform")
        if dist == "asc":
            x = np.sort(x, axis=1)
        if dist == "desc":
            x = -np.sort(x, axis=1)
        if dist == "const":
            x[:] = 0.25
        if dist == "special":
            x[:, ::7] = np.nan
            x[:, 1::11] = -0.0
            x[:, 2::13] = 0.0
        if dist == "masked":
            x[:, rng.random(cols) < 0.999] = -np.inf
        p = radix(max(4, -(-cols // int(rng.choice([2, 4, 8, 16])) // 4) * 4), int(rng.choice([128, 256, 512, 1024])))
        try:
            _check_radix(x, k, p, bool(trial % 2))
            ran += 1
        except ParamsError as e:
            assert "shared memory" in str(e) or "fits this device" in str(e), e
    assert ran >= 60


@hopper
def test_topk_radix_unsorted_broadcasts_a_small_first_bin_to_few_blocks():
    """Unsorted, with 2 or 4 blocks a row, a first radix bin of at most CLUSTER_BCAST keys of the row is broadcast
    and each block finishes the select alone (the plan's ccap says so); the answer is the oracle's, ties by column
    across the blocks (rows of 16 values: the top bin is 1024 equal keys). Sorted, or with 8 blocks, no broadcast."""
    for dist in ("uniform", "ties"):
        x = gen.floats(12, (8, 16384), dist=dist)
        for blocks in (2, 4):
            p = radix(16384 // blocks, 512)
            assert _B._cluster_geometry(8, 16384, 100, p, False)[5] == CLUSTER_BCAST
            assert _B._cluster_geometry(8, 16384, 100, p, True)[5] == 0
            for k in (1, 100, 1000, 1024, 1025):
                _check_radix(x, k, p, False)
    assert _B._cluster_geometry(8, 16384, 100, radix(2048, 512), False)[5] == 0


@hopper
def test_topk_calls_take_the_cluster_where_its_table_says_and_unsorted_skips_the_sort():
    """8x65536 k=64 (sorted) and the seed shape unsorted run topk_cluster; the seed shape sorted keeps the 2-stage
    path (measured faster there)."""
    names = lambda r, c, k, s: [ln[0] for ln in _B._topk_plan(r, c, k, None, s)[1](None, None, None)]
    assert names(8, 65536, 64, True) == ["topk_cluster"]
    assert names(8, 65536, 4096, False) == ["topk_cluster"]
    assert "topk_cluster" not in names(8, 65536, 4096, True)
    assert _B.call_params(8, 65536, 4096, sorted=False)["rch"] == 4096
    _check_radix(gen.floats(1, (8, 65536)), 4096, None, False)
    import spiraltorch_tuner as st
    v, i = st.topk2d(gen.floats(1, (8, 65536)), 4096, device="cuda", sorted=False)
    rv, ri = topk_reference(gen.floats(1, (8, 65536)), 4096)
    v, i = in_oracle_order(v, i)
    assert np.array_equal(i, ri) and same_bits(v, rv)


@hopper
def test_topk_radix_refuses_what_it_cannot_run_with_the_reason():
    x = gen.floats(3, (2, 65536))
    with pytest.raises(ParamsError, match="rb=11"):
        _B.topk2d(x, 8, {**radix(4096, 256), "rb": 8})
    with pytest.raises(ParamsError, match="at most 16"):
        _B.topk2d(x, 8, radix(1024, 256))
    with pytest.raises(ParamsError, match="shared memory"):
        _B.topk2d(gen.floats(3, (1, 1 << 20)), 8, radix(65536, 256))
    with pytest.raises(ParamsError, match="radix=true"):
        _B.topk2d(x, 8, {"rb": 11})
