"""The radix TopK pipeline's kernel (shaders/topk_radix.wgsl) through RadixTopK (native/wgpu_radix.py: its override
constants as given, chunk, segment and tile sizes beyond the search space's) on wgpu-py, bit for bit against the
NumPy oracle: values (NaN payloads included) and columns. Its place in the search space: test_radix_space.py."""
import importlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _checkout_package():
    """spiraltorch_tuner as this checkout has it: the installed package where it is this checkout's native/, else
    this checkout's native/ loaded under another name (a git worktree beside an editable install of the main one)."""
    import spiraltorch_tuner
    if Path(spiraltorch_tuner.__file__).resolve().parent == ROOT / "native":
        return spiraltorch_tuner
    name = "_spiraltorch_tuner_checkout"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "native" / "__init__.py",
                                                      submodule_search_locations=[str(ROOT / "native")])
        pkg = importlib.util.module_from_spec(spec)
        sys.modules[name] = pkg
        spec.loader.exec_module(pkg)
    return sys.modules[name]


PKG = _checkout_package()
radix = importlib.import_module(PKG.__name__ + ".wgpu_radix")
topk_reference = importlib.import_module(PKG.__name__ + ".cpu").topk_reference
ParamsError = importlib.import_module(PKG.__name__ + ".errors").ParamsError


@pytest.fixture(scope="module")
def rt():
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    r = radix.RadixTopK()
    ok, why = r.backend.available()
    if not ok:
        pytest.skip(why)
    return r


def check(rt, x, k, params=None):
    v, i = rt.topk2d(x, k, params)
    rv, ri = topk_reference(x, k)
    assert i.dtype == np.int64 and v.dtype == np.float32
    bad = np.argwhere((i != ri) | (v.view(np.uint32) != rv.view(np.uint32)))
    assert bad.size == 0, (f"{len(bad)} wrong of {i.size}; first at {bad[0].tolist()}: column {i[tuple(bad[0])]}, "
                           f"oracle {ri[tuple(bad[0])]}")


def uniform(seed, shape):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def few_values(seed, shape, n=5):
    return np.random.default_rng(seed).integers(0, n, size=shape).astype(np.float32)


def specials(seed, shape):
    """NaN (two payloads, both signs), +-inf, -0.0, +0.0, +-max, denormals and small integers, mixed."""
    pool = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 3.4e38, -3.4e38, 1e-45, -1e-45, 2.0],
                    dtype=np.float32)
    x = np.random.default_rng(seed).choice(pool, size=shape)
    x.view(np.uint32)[::7] = 0x7FC00123          # another NaN payload: equal to the others, by column
    return x


SMALL = {"ch": 256, "wg": 64, "seg": 64}        # many chunks and segments on small rows


@pytest.mark.parametrize("rows,cols,k", [(1, 1000, 1), (3, 3000, 37), (2, 4096, 4096), (5, 1500, 300)])
def test_random_uniform_rows_match_the_oracle(rt, rows, cols, k):
    check(rt, uniform(rows * cols + k, (rows, cols)), k)


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("rows,cols,k", [(1, 5000, 700), (3, 2500, 1), (2, 1023, 1023)])
def test_rows_of_few_distinct_values_take_ties_from_the_lowest_columns(rt, rows, cols, k, n):
    check(rt, few_values(n + cols, (rows, cols), n), k)
    check(rt, few_values(n + cols, (rows, cols), n), k, SMALL)


@pytest.mark.parametrize("k", [1, 13, 200, 999, 1000])
def test_nan_inf_and_signed_zeros_order_as_the_key_does(rt, k):
    check(rt, specials(k, (4, 1000)), k)
    check(rt, specials(k, (4, 1000)), k, SMALL)


def test_signed_zeros_alone_put_plus_zero_first_then_lower_columns(rt):
    x = np.zeros((2, 600), dtype=np.float32)
    x[:, 1::3] = -0.0
    check(rt, x, 250, SMALL)
    v, i = rt.topk2d(x, 450, SMALL)
    assert not np.signbit(v[:, :400]).any() and np.signbit(v[:, 400:]).all()


def test_k_equal_to_cols(rt):
    check(rt, uniform(1, (2, 777)), 777)
    check(rt, few_values(2, (3, 600), 3), 600, SMALL)


@pytest.mark.parametrize("k", [255, 256, 257, 512, 513, 1100])
def test_k_across_chunk_and_segment_boundaries(rt, k):
    x = uniform(k, (2, 2000))
    x[0, 250:262] = x[0].max()       # ties of the largest value across the first chunk boundary
    check(rt, x, k, SMALL)


@pytest.mark.parametrize("cols", [257, 1000, 4095, 4097, 8191])
def test_cols_not_a_multiple_of_the_chunk(rt, cols):
    check(rt, uniform(cols, (2, cols)), min(cols, 300))
    check(rt, few_values(cols, (2, cols), 3), min(cols, 300), SMALL)


@pytest.mark.parametrize("params", [{"rb": 8}, {"rb": 4}, {"rb": 11, "kl": 1}, {"wg": 128, "ch": 1024, "kl": 8},
                                    {"seg": 2}, {"wg": 32, "ch": 32}])
def test_other_configurations_match_the_oracle(rt, params):
    check(rt, few_values(7, (2, 3000), 40), 345, params)
    check(rt, specials(7, (2, 3000)), 345, params)


@pytest.mark.parametrize("params", [SMALL, None], ids=["rank-pass", "one-segment"])
def test_each_call_starts_from_a_fresh_state(rt, params):
    # The chain's last pass (radix_rank, or radix_segsort when k fits one segment) resets each row's state for the
    # next call; timing runs many chains on one plan. Here the input changes under the same plan between calls.
    x, y = uniform(3, (2, 5000)), few_values(4, (2, 5000), 7)
    passes, bg, bufs = rt.plan(x, 100, params)
    b = rt.backend
    try:
        for inp in (x, y, x):
            b._device.queue.write_buffer(bufs[1], 0, inp)
            enc = b._device.create_command_encoder()
            b._encode(enc, passes, bg, chains=2)
            b._device.queue.submit([enc.finish()])
            idx = np.frombuffer(b._device.queue.read_buffer(bufs[7]), dtype=np.uint32)[:200].reshape(2, 100)
            assert np.array_equal(idx, topk_reference(inp, 100)[1])
    finally:
        for buf in bufs:
            buf.destroy()


# One row of each kind, 3000 columns, k = 300 (rb 8: four rounds): which round decides the k-th key, and the state
# slot of the last round (slot 3: S_3 = prefix, need, rounds fixed, keys matching) that shows it.
CASE_COLS, CASE_K, CASE_PARAMS = 3000, 300, {"rb": 8, "wg": 32, "ch": 256, "seg": 64}


def decided_in_round_0(seed):
    """300 values in [2, 8) (key's top byte 0xc0) among values in [0, 1) (0xbf and below): round 0's top bin holds
    exactly the k keys, so the row is decided after round 0 and later rounds skip it."""
    rng = np.random.default_rng(seed)
    x = rng.random(CASE_COLS, dtype=np.float32)
    x[rng.choice(CASE_COLS, CASE_K, replace=False)] = rng.uniform(2, 8, CASE_K).astype(np.float32)
    return x


def decided_in_the_last_round(seed):
    """Distinct keys that share their top 20 bits: the k-th one's bin of round 2 holds more keys than still needed,
    and round 3's holds it alone."""
    return (np.uint32(0x3F800000) + np.random.default_rng(seed).permutation(CASE_COLS).astype(np.uint32)).view(
        np.float32)


def tied_past_k(seed):
    """Five values: the k-th key ties with about 600 keys, more than still needed; those of the lowest columns."""
    return few_values(seed, CASE_COLS)


def all_equal(seed):
    return np.full(CASE_COLS, 3.0, dtype=np.float32)


def descending(seed):
    """Sorted: the first chunk holds all k (more than the filter's stage of wg pairs)."""
    return np.sort(uniform(seed, CASE_COLS))[::-1].copy()


# (kind, S_3's rounds fixed, whether S_3 is decided: matching == need); None: not pinned
CASES = [(decided_in_round_0, 1, True), (decided_in_the_last_round, 3, False), (tied_past_k, 3, False),
         (all_equal, 3, False), (descending, None, None)]


def run_plan(b, plan_, x, k):
    """One call of a plan on input x (written into the plan's input buffer): values, columns, the state slots."""
    passes, bg, bufs = plan_
    rows = x.shape[0]
    b._device.queue.write_buffer(bufs[1], 0, x)
    enc = b._device.create_command_encoder()
    b._encode(enc, passes, bg)
    b._device.queue.submit([enc.finish()])
    read = lambda buf, dt: np.frombuffer(b._device.queue.read_buffer(buf), dtype=dt)[: rows * k].reshape(rows, k)
    state = np.frombuffer(b._device.queue.read_buffer(bufs[3]), dtype=np.uint32).reshape(rows, -1, 4)
    return read(bufs[6], np.float32), read(bufs[7], np.uint32), state


def test_one_call_is_a_histogram_pass_per_round_then_filter_sort_and_rank():
    """ceil(32 / rb) + 2 dispatches, + 1 for the rank pass when k > SEG (no select, no count pass): the three shapes
    of issue #19 at the H200 probe's best configurations."""
    hist8 = [f"radix_hist{r}" for r in range(4)]
    for (rows, cols, k), params, names in [
            ((1, 1048576, 1024), {"ch": 2048, "rb": 8}, hist8 + ["radix_filter", "radix_segsort"]),
            ((16, 1048576, 4096), {"ch": 8192, "rb": 8}, hist8 + ["radix_filter", "radix_segsort", "radix_rank"]),
            ((8, 65536, 4096), {"ch": 2048, "rb": 8}, hist8 + ["radix_filter", "radix_segsort", "radix_rank"]),
            ((8, 65536, 4096), {"ch": 2048, "rb": 11},
             ["radix_hist0", "radix_hist1", "radix_hist2", "radix_filter", "radix_segsort", "radix_rank"])]:
        got = radix.chain(radix.plan_shape(rows, cols, k, params), rows, k)
        assert [radix.pass_name(e, own) for e, _, own in got] == names


def test_the_histogram_passes_share_a_pipeline_and_bind_their_round(rt):
    """One radix_hist pipeline for every round (a compile each on SwiftShader costs about 0.5 ms a word of
    workgroup memory: 1 s at rb 11); each histogram pass binds the uniform's copy that names its round."""
    x = uniform(1, (2, 3000))
    passes, bg, bufs = rt.plan(x, 300, {"rb": 8, "wg": 64, "ch": 256})
    try:
        hist, rest = passes[:4], passes[4:]
        assert len({id(p[0]) for p in hist}) == 1 and all(len(p) == 3 for p in hist)
        assert hist[0][2] is bg and len({id(p[2]) for p in hist}) == 4 and all(len(p) == 2 for p in rest)
        uni = np.frombuffer(rt.backend._device.queue.read_buffer(bufs[0]), dtype=np.uint32).reshape(4, -1)
        assert uni[:, 6].tolist() == [0, 1, 2, 3] and (uni[:, :6] == [2, 3000, 300, 12, 1, 4 * 256]).all()
    finally:
        for buf in bufs:
            buf.destroy()


@pytest.mark.parametrize("kind,fixed,decided", CASES, ids=[c[0].__name__ for c in CASES])
def test_rows_decided_in_each_round_match_the_oracle(rt, kind, fixed, decided):
    x = np.stack([kind(1), kind(2)])
    check(rt, x, CASE_K, CASE_PARAMS)
    check(rt, x, CASE_K, {"rb": 8})
    if fixed is not None:
        plan_ = rt.plan(x, CASE_K, CASE_PARAMS)
        try:
            _, _, state = run_plan(rt.backend, plan_, x, CASE_K)
        finally:
            for buf in plan_[2]:
                buf.destroy()
        s3 = state[:, 3]
        assert (s3[:, 2] == fixed).all() and ((s3[:, 3] == s3[:, 1]) == decided).all(), s3


def test_each_call_starts_from_a_fresh_state_whichever_round_decided_each_row(rt):
    """One plan, five calls: each row is each kind once (decided after round 0 or the last round, ties past k, all
    equal, all k in one chunk), so every row's histograms, counter and state slots go from one kind to the next."""
    x = np.stack([kind(10 + i) for i, (kind, _, _) in enumerate(CASES)])
    plan_ = rt.plan(x, CASE_K, CASE_PARAMS)
    try:
        for shift in [0, 1, 2, 3, 4, 0]:
            inp = np.ascontiguousarray(np.roll(x, shift, axis=0))
            vals, idx, state = run_plan(rt.backend, plan_, inp, CASE_K)
            rv, ri = topk_reference(inp, CASE_K)
            assert np.array_equal(idx, ri) and np.array_equal(vals.view(np.uint32), rv.view(np.uint32)), shift
            for row in range(len(CASES)):
                _, fixed, decided = CASES[(row - shift) % len(CASES)]
                if fixed is not None:
                    s3 = state[row, 3]
                    assert s3[2] == fixed and (s3[3] == s3[1]) == decided, (shift, row, s3)
    finally:
        for buf in plan_[2]:
            buf.destroy()


def test_k_equal_to_cols_is_decided_before_any_histogram(rt):
    """k = cols: S_0 is decided (every key is taken), no histogram pass counts a key, and the filter's stage
    overflows into places of their own (3000 pairs of a chunk of 4096, a stage of 32)."""
    x = np.stack([uniform(5, 3000), few_values(6, 3000), all_equal(0)])
    for params in (CASE_PARAMS, {"wg": 32, "ch": 4096}):
        check(rt, x, 3000, params)
        plan_ = rt.plan(x, 3000, params)
        try:
            _, _, state = run_plan(rt.backend, plan_, x, 3000)
            ghist = np.frombuffer(rt.backend._device.queue.read_buffer(plan_[2][2]), dtype=np.uint32)
        finally:
            for buf in plan_[2]:
                buf.destroy()
        assert (state[:, 1:] == [0, 3000, 0, 3000]).all()
        assert not ghist.any()    # nothing counted, and the counters cleared by radix_segsort


@pytest.mark.parametrize("seed", range(24))
def test_random_shapes_data_and_configurations(rt, seed):
    rng = np.random.default_rng(1000 + seed)
    rows, cols = int(rng.integers(1, 5)), int(rng.integers(1, 9000))
    k = int(rng.integers(1, min(cols, 4096) + 1))
    params = {"wg": int(rng.choice([32, 64, 256])), "rb": int(rng.choice([5, 8, 11])),
              "seg": int(rng.choice([2, 128, 1024])), "kl": int(rng.choice([1, 3, 4]))}
    params["ch"] = params["wg"] * int(rng.choice([1, 3, 16]))
    x = [uniform, few_values, specials][seed % 3](seed, (rows, cols))
    check(rt, x, k, params)


def test_long_row(rt):
    x = uniform(11, (1, 262144))
    x[0, 100000:100010] = 2.0        # ten equal largest values
    check(rt, x, 1024)


def test_many_rows_of_a_long_row(rt):
    check(rt, specials(12, (3, 65536)), 4096)


def test_configurations_over_webgpu_default_limits_are_refused():
    with pytest.raises(ParamsError, match="rb=12"):
        radix.plan_shape(1, 1000, 10, {"rb": 12})
    with pytest.raises(ParamsError, match="16384"):
        radix.plan_shape(1, 100000, 4096, {"seg": 4096})
    with pytest.raises(ParamsError, match="wg=512"):
        radix.plan_shape(1, 1000, 10, {"wg": 512})
    with pytest.raises(ParamsError, match="65535"):
        radix.plan_shape(70000, 1000, 10)
