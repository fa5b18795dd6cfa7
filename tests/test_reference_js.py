"""static/reference.js (the browser's answer key) agrees with native/cpu.py and NumPy, and the browser's
where_nd upload layout and search-space logic agree with native/, all run under node."""
from __future__ import annotations

import base64
import shutil

import numpy as np
import pytest
from conftest import run_node

from spiraltorch_tuner import cases
from spiraltorch_tuner.cpu import topk_reference
from spiraltorch_tuner.space import configurations, stcore_fallback, violations
from spiraltorch_tuner.shaders import space
from spiraltorch_tuner.wgpu_backend import coalesce, strided_view, where_uniform

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def run_js(body: str, payload, stderr: bool = False):
    return run_node(("reference", "cases", "gpu", "space", "tuner"),
                    "const b64 = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');\n"
                    "const unb64 = (s, C) => { const b = Buffer.from(s, 'base64'); const u = new Uint8Array(b.length);"
                    " u.set(b); return new C(u.buffer); };\n" + body, payload, stderr)


def topk_js(x: np.ndarray, k: int):
    rows, cols = x.shape
    got = run_js("const x = unb64(input.x, Float32Array);"
                 "const r = reference.topkReference(x, input.rows, input.cols, input.k);"
                 "console.log(JSON.stringify([b64(r.values), b64(r.indices)]));",
                 {"x": base64.b64encode(np.ascontiguousarray(x, np.float32).tobytes()).decode(),
                  "rows": rows, "cols": cols, "k": k})
    vals = np.frombuffer(base64.b64decode(got[0]), np.float32).reshape(rows, k)
    idx = np.frombuffer(base64.b64decode(got[1]), np.uint32).reshape(rows, k)
    return vals, idx


def assert_same_topk(x, k):
    v, i = topk_js(x, k)
    rv, ri = topk_reference(x, k)
    np.testing.assert_array_equal(i, ri.astype(np.uint32))
    np.testing.assert_array_equal(v.view(np.uint32), rv.view(np.uint32))


NAN = np.float32("nan")
INF = np.float32("inf")


@pytest.mark.parametrize("k", [1, 3, 8])
def test_topk_ties_go_to_the_lower_index(k):
    x = np.array([[0.5, 1.0, 0.5, 1.0, 0.5, -1.0, 1.0, 0.5]], np.float32)
    assert_same_topk(x, k)


def test_topk_nan_is_largest_and_negative_zero_is_below_positive_zero():
    neg_nan = np.array([0xFFC00001], np.uint32).view(np.float32)[0]
    x = np.array([[0.0, -0.0, NAN, 1.0, -INF, INF, neg_nan, -0.0, 0.0, -1.0],
                  [-0.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0]], np.float32)
    for k in (1, 2, 3, 5, 10):
        assert_same_topk(x, k)


def test_topk_infinities_and_k_equal_to_cols():
    x = np.array([[INF, -INF, 3.0, INF, -INF, NAN, 2.0], [-INF] * 7], np.float32)
    assert_same_topk(x, 7)
    assert_same_topk(x, 1)


@pytest.mark.parametrize("dist", ["uniform", "ties"])
@pytest.mark.parametrize("rows,cols,k", [(4, 1024, 8), (2, 4096, 64), (3, 777, 777), (1, 5000, 1)])
def test_topk_matches_numpy_reference_on_generated_inputs(rows, cols, k, dist):
    assert_same_topk(cases.topk_input(5, rows, cols, dist), k)


WHERE = [(case, shape, dtype) for case in cases.WHERE_CASES for dtype in cases.WHERE_DTYPES
         for shape in [(37,), (4, 5), (2, 3, 7), (2, 1, 4, 6), (2, 3, 8)]]


def test_where_reference_matches_numpy_for_every_case():
    got = run_js("console.log(JSON.stringify(input.map(([kase, shape, dtype]) => {"
                 " const v = cases.whereInputs(kase, shape, dtype, 11);"
                 " const views = [v.cond, v.x, v.y].map((t) => ({data: t.data, offset: t.offset,"
                 "   strides: cases.broadcastStrides(t, shape)}));"
                 " return b64(reference.whereReference(shape, ...views)); })));", WHERE)
    for (case, shape, dtype), out in zip(WHERE, got):
        c, x, y = cases.where_inputs(case, shape, dtype, 11)
        ref = np.where(c, x, y)
        np.testing.assert_array_equal(np.frombuffer(base64.b64decode(out), np.uint32),
                                      ref.reshape(-1).view(np.uint32), err_msg=f"{case} {shape} {dtype}")


def test_where_direct_upload_matches_python_strided_view_and_uniform():
    """The bytes, base offsets and uniform the direct path uploads are those native/wgpu_backend.py uploads."""
    got = run_js("console.log(JSON.stringify(input.map(([kase, shape, dtype]) => {"
                 " const v = cases.whereInputs(kase, shape, dtype, 11);"
                 " const sv = [v.cond, v.x, v.y].map((t, i) => gpu.stridedView(t, shape, i ? 4 : 1));"
                 " const [cs, strides] = gpu.coalesce(shape, sv.map((s) => s.strides));"
                 " const numel = shape.reduce((a, b) => a * b, 1);"
                 " const u = gpu.whereUniform(cs, numel, sv.map((s, t) => [s.base, strides[t]]));"
                 " return [sv.map((s) => b64(s.span)), b64(u)]; })));", WHERE)
    for (case, shape, dtype), (spans, uni) in zip(WHERE, got):
        c, x, y = cases.where_inputs(case, shape, dtype, 11)
        views = [strided_view(a, shape) for a in (c, x, y)]
        for (span, _, _), js in zip(views, spans):
            assert base64.b64decode(js) == np.asarray(span).tobytes(), (case, shape, dtype)
        cshape, strides = coalesce(shape, [st for _, _, st in views])
        ref = where_uniform(cshape, int(np.prod(shape)), [(v[1], st) for v, st in zip(views, strides)])
        assert base64.b64decode(uni) == ref.tobytes(), (case, shape, dtype)


def test_segmented_materialise_is_numpys_broadcast_for_every_case_and_a_strided_view():
    """gpu.materialise (the segmented path's host-side copy, a row at a time) gives NumPy's broadcast_to copy: every
    case's cond, x and y, and a view with a non-unit, negative-row stride."""
    got = run_js("console.log(JSON.stringify(input.map(([kase, shape, dtype]) => {"
                 " const v = cases.whereInputs(kase, shape, dtype, 11);"
                 " return [b64(gpu.materialise(v.cond, shape, Uint8Array)),"
                 "   ...[v.x, v.y].map((t) => b64(gpu.materialise(t, shape, Float32Array)))]; })));"
                 "const d = new Float32Array(200).map((_, i) => i);"
                 "console.error(b64(gpu.materialise({data: d, shape: [3, 4], strides: [-30, 3], offset: 90}, [2, 3, 4],"
                 " Float32Array)));", [w for w in WHERE if w[2] == "float32"], stderr=True)
    out, err = got
    for (case, shape, dtype), bufs in zip([w for w in WHERE if w[2] == "float32"], out):
        c, x, y = cases.where_inputs(case, shape, dtype, 11)
        for a, js, t in zip((c, x, y), bufs, (np.uint8, np.float32, np.float32)):
            want = np.ascontiguousarray(np.broadcast_to(a, shape)).astype(t)
            assert base64.b64decode(js) == want.tobytes(), (case, shape)
    base = np.arange(200, dtype=np.float32)
    view = np.lib.stride_tricks.as_strided(base[90:], (3, 4), (-30 * 4, 3 * 4))
    assert base64.b64decode(err.strip()) == np.ascontiguousarray(np.broadcast_to(view, (2, 3, 4))).tobytes()


LIMITS = {"maxComputeInvocationsPerWorkgroup": 256, "maxComputeWorkgroupSizeX": 256,
          "maxComputeWorkgroupsPerDimension": 65535, "maxStorageBufferBindingSize": 1 << 27}


@pytest.mark.parametrize("features", [[], ["subgroups", "timestamp-query"]])
def test_space_configurations_and_fallback_match_native_space(features):
    full = space()["presets"]["full"]
    shapes = [tuple(s) for s in full["topk"]["shapes"]] + [(4, 1024, 8), (2, 16384, 256), (1, 1000, 1000)]
    got = run_js("space.setSpace(input.space); console.log(JSON.stringify(input.shapes.map(([r, c, k]) => ["
                 " space.configurations('topk', {rows: r, cols: c, k}, input.grid, input.limits, input.features),"
                 " space.stcoreFallback(r, c, k, input.features.includes('subgroups')),"
                 " space.violations('topk', {rows: r, cols: c, k}, space.stcoreFallback(r, c, k, true), input.limits, input.features)])));",
                 {"space": space(), "shapes": shapes, "grid": full["topk"]["params"], "limits": LIMITS,
                  "features": features})
    sg = "subgroups" in features
    for (r, c, k), (cfgs, fb, bad) in zip(shapes, got):
        shape = {"rows": r, "cols": c, "k": k}
        assert cfgs == configurations("topk", shape, full["topk"]["params"], LIMITS, features), shape
        assert fb == stcore_fallback(r, c, k, sg), shape
        ref_bad = violations("topk", shape, stcore_fallback(r, c, k, True), LIMITS, features)
        assert [b.lower() for b in bad] == [b.lower() for b in ref_bad], shape   # JSON spells True "true"


def test_tuner_plan_matches_native_plan():
    from spiraltorch_tuner.tuner import plan
    spec = space()["presets"]["quick"]
    feats = ["subgroups", "timestamp-query"]
    got = run_js("space.setSpace(input.space); console.log(JSON.stringify(tuner.plan(input.spec, input.limits, input.features)"
                 ".map((j) => j.kernel === 'topk' ? ['topk', j.shape, j.params] : ['where_nd', [j.kase, j.shape, j.dtype], j.params])));",
                 {"space": space(), "spec": spec, "limits": LIMITS, "features": feats})
    ref = [[kern, list(shape) if kern == "topk" else [shape[0], list(shape[1]), shape[2]], p]
           for kern, shape, p in plan(spec, LIMITS, feats)]
    assert got == ref
