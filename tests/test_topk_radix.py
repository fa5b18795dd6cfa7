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
