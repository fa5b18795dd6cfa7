"""The native tuner: the browser tuner's loop (static/tuner.js) on a native backend, producing the same run
document (CONTRACT: POST /api/runs), so machines without a browser can be tuned and compared too.

Every configuration is checked against the NumPy oracle before its time counts; a failure is recorded on that
measurement and the run goes on.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import time
import uuid

import numpy as np

from . import cases
from .cpu import topk_reference
from .errors import SpiralTorchError
from .registry import resolve
from .rules import backend_family
from .shaders import space
from .space import configurations, stcore_fallback


def result_sha256(*arrays) -> str:
    """sha256 over the little-endian bytes of a result (TopK: float32 values then uint32 indices; where: the output
    in its dtype), the checksum the browser posts too."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def topk_checksum(values: np.ndarray, indices: np.ndarray) -> str:
    return result_sha256(values.astype(np.float32), indices.astype(np.uint32))


def preset_space(name: str) -> dict:
    presets = space()["presets"]
    if name not in presets:
        raise SpiralTorchError(f"unknown preset {name!r}; allowed: {', '.join(presets)}")
    return presets[name]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _measure(fn_run, fn_check, fn_time) -> dict:
    try:
        out = fn_run()
        bad = fn_check(out)
        if bad:
            return {"ok": False, "error": f"wrong result: {bad}"}
        t = fn_time()
        return {"ok": True, "error": None, **t.as_dict()}
    except SpiralTorchError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def describe_topk_difference(x, rv, ri, v, i, limit: int = 4) -> str | None:
    """How a TopK answer (v, i) differs from the oracle's (rv, ri) on input x, row by row, or None when identical:
    NaN ranked differently (the oracle ranks NaN above every number), equal values in another order (ties), or
    other values. Names the first `limit` differing rows."""
    notes = []
    for r in range(rv.shape[0]):
        if np.array_equal(i[r], ri[r]) and np.array_equal(v[r].view(np.uint32), rv[r].view(np.uint32)):
            continue
        nan_ref, nan_got = int(np.isnan(rv[r]).sum()), int(np.isnan(v[r]).sum())
        same_values = np.array_equal(np.sort(v[r].view(np.uint32)), np.sort(rv[r].view(np.uint32)))
        if nan_ref != nan_got:
            notes.append(f"row {r}: {nan_ref} NaN in the oracle's top {rv.shape[1]} (NaN ranks largest), {nan_got} "
                         "here")
        elif same_values and np.array_equal(x[r, np.clip(i[r], 0, x.shape[1] - 1)].view(np.uint32),
                                            v[r].view(np.uint32)):
            notes.append(f"row {r}: the same values, equal ones in another order of indices "
                         f"({int((i[r] != ri[r]).sum())} positions; the oracle puts the lower index first)")
        else:
            notes.append(f"row {r}: {int((v[r].view(np.uint32) != rv[r].view(np.uint32)).sum())} values and "
                         f"{int((i[r] != ri[r]).sum())} indices differ")
    if not notes:
        return None
    more = f"; and {len(notes) - limit} more rows" if len(notes) > limit else ""
    return "; ".join(notes[:limit]) + more


@functools.lru_cache(maxsize=2)
def _topk_case(seed, rows, cols, k, dist):
    """The input and the oracle's answer of a TopK shape, kept while its configurations are measured."""
    x = cases.topk_input(seed, rows, cols, dist)
    return x, topk_reference(x, k)


def topk_job(backend, seed, rows, cols, k, params, repeats, warmups, dist="uniform") -> dict:
    x, (rv, ri) = _topk_case(seed, rows, cols, k, dist)

    def check(out):
        v, i = out
        return describe_topk_difference(x, rv, ri, v, i)
    m = _measure(lambda: backend.topk2d(x, k, params), check,
                 lambda: backend.time_topk2d(x, k, params, repeats=repeats, warmups=warmups))
    if m["ok"]:
        m["checksum"] = topk_checksum(rv, ri)
    return {"kernel": "topk", "rows": rows, "cols": cols, "k": k, "params": dict(params or {}), **m}


@functools.lru_cache(maxsize=2)
def _where_case(seed, case, shape, dtype):
    """The inputs and the oracle's output of a where_nd case, kept while its configurations are measured."""
    c, x, y = cases.where_inputs(case, shape, dtype, seed)
    return c, x, y, np.where(c, x, y)


def where_job(backend, seed, case, shape, dtype, params, repeats, warmups) -> dict:
    c, x, y, ref = _where_case(seed, case, tuple(shape), dtype)

    def check(out):
        if out.shape != ref.shape or out.dtype != ref.dtype:
            return f"shape/dtype {out.shape}/{out.dtype}, expected {ref.shape}/{ref.dtype}"
        if not np.array_equal(out.view(np.uint32), ref.view(np.uint32)):
            return f"{int((out.view(np.uint32) != ref.view(np.uint32)).sum())} elements differ"
        return None
    # where a backend times the kernel alone too (wgpu with timestamps), the call with its uploads takes
    # space.json's where_nd.call_timing samples at most
    ct = space()["where_nd"].get("call_timing")
    call = (ct["repeats"], ct["warmups"]) if ct else None
    m = _measure(lambda: backend.where_nd(c, x, y, params), check,
                 lambda: backend.time_where_nd(c, x, y, params, repeats=repeats, warmups=warmups, call=call))
    if m["ok"]:
        m["checksum"] = result_sha256(ref)
    return {"kernel": "where_nd", "case": case, "shape": list(shape), "dtype": dtype, "params": dict(params or {}), **m}


def plan(spec: dict, limits: dict, features, wgsl: bool = True) -> list[tuple]:
    """The jobs of a space: ("topk", (rows, cols, k), params) and ("where_nd", (case, shape, dtype), params),
    TopK shapes each with the st-core baseline configuration added when it is legal and not in the grid, where_nd
    configurations with their paths in turns (alternate). `wgsl`: the backend runs this project's WGSL
    (space.violations; CUDA, MPS and NumPy: False, no radix pipeline)."""
    jobs = []
    sg = "subgroups" in features
    for rows, cols, k in spec.get("topk", {}).get("shapes", []):
        shape = {"rows": rows, "cols": cols, "k": k}
        cfgs = configurations("topk", shape, spec["topk"]["params"], limits, features, wgsl)
        base = stcore_fallback(rows, cols, k, sg)
        if base not in cfgs and configurations("topk", shape, {n: [v] for n, v in base.items()}, limits, features,
                                               wgsl):
            cfgs.append(base)
        jobs += [("topk", (rows, cols, k), p) for p in cfgs]
    w = spec.get("where_nd")
    if w:
        for shp in w["shapes"]:
            shape = {"ndim": len(shp), "numel": int(np.prod(shp))}
            for case in w["cases"]:
                for dtype in w.get("dtypes", ["float32"]):
                    for p in alternate(configurations("where_nd", shape, w["params"], limits, features), "path"):
                        jobs.append(("where_nd", (case, tuple(shp), dtype), p))
    return jobs


def alternate(cfgs: list[dict], name: str) -> list[dict]:
    """`cfgs` in turns of `name`'s values (direct, segmented, direct, ...), each value's in their order. A where_nd
    rule pools a call's uploads per path over the path's configurations; measured one path after the other, a
    drift of the host's call time (0.5 vs 1 ms on the H200, for spans of a dozen configurations) fell on one path
    and read as a difference between them. In turns, it falls on both alike (docs/timing.md)."""
    groups: dict = {}
    for c in cfgs:
        groups.setdefault(c.get(name), []).append(c)
    runs = list(groups.values())
    return [run[i] for i in range(max(map(len, runs), default=0)) for run in runs if i < len(run)]


def tune(device: str = "wgpu", preset: str = "quick", spec: dict | None = None, label: str = "",
         progress=None) -> dict:
    """Measure every configuration of a space on a native backend; returns a run document."""
    backend = resolve(device)
    info = backend.info()
    spec = spec or preset_space(preset)
    limits = info.get("limits", {})
    features = info.get("features", [])
    jobs = plan(spec, limits, features, wgsl=backend_family(backend.name) == "wgsl")
    seed, repeats, warmups = spec.get("seed", 1), spec.get("repeats", 5), spec.get("warmups", 1)
    t0, started = time.perf_counter(), _now()
    measurements = []
    for n, (kernel, shape, params) in enumerate(jobs):
        if kernel == "topk":
            m = topk_job(backend, seed, *shape, params, repeats, warmups)
        else:
            m = where_job(backend, seed, *shape, params, repeats, warmups)
        measurements.append(m)
        if progress:
            progress(n + 1, len(jobs), m)
    timers = {m.get("timer") for m in measurements if m.get("ok")} - {None}
    return {
        "run_id": uuid.uuid4().hex, "label": label, "source": "native",
        "adapter": {"vendor": str(info.get("vendor", "")), "architecture": str(info.get("architecture", "")),
                    "device": str(info.get("device", "")), "description": str(info.get("description", "")),
                    "backend": f"{backend.name}:{info.get('backend', '')}".rstrip(":")},
        "features": sorted(features), "subgroup_sizes": info.get("subgroup_sizes", []), "limits": limits,
        "user_agent": f"spiraltorch-tuner native tuner ({backend.name})", "preset": preset if spec is None or preset else "custom",
        "space": spec, "timer": "timestamp" if timers == {"timestamp"} else (sorted(timers)[0] if timers else "wall"),
        "started_at": started, "finished_at": _now(), "duration_s": round(time.perf_counter() - t0, 3),
        "status": "complete", "measurements": measurements,
    }
