"""REST endpoints that run the kernels natively (wgpu-py, CUDA, MPS, NumPy) through `spiraltorch_tuner`.

Inputs are explicit (JSON arrays for small inputs, an .npy / .npz body for large ones) or rebuilt from a seed with
the shared generator, so a browser run's inputs can be replayed exactly. GPU work is bounded: at most
`native_concurrency` requests run at once per device, the rest wait up to `native_timeout_s` and then get 503.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import threading
import time
import zipfile
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

import spiraltorch_tuner as st
from spiraltorch_tuner import cases, rules
from spiraltorch_tuner.tuner import result_sha256, topk_checksum

from . import get_settings, validation_message

router = APIRouter()
log = logging.getLogger("spiraltorch_tuner")

Device = Literal["auto", "cuda", "mps", "wgpu", "cpu", "spiraltorch"]   # spiraltorch_tuner.DEVICES
MAX_REPEATS = 1000


class TopKRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(ge=1, description="how many largest values per row")
    x: list[list[float | None]] | None = Field(None, description="explicit input [rows][cols]; null = NaN")
    seed: int | None = Field(None, ge=0, lt=2**32, description="rebuild the input with the shared generator")
    shape: list[int] | None = Field(None, min_length=2, max_length=2, description="[rows, cols] with seed")
    dist: Literal["uniform", "ties"] = "uniform"
    device: Device = "auto"
    params: dict[str, Any] | Literal["default"] | None = Field(
        None, description="a configuration; null: the tuned rule for this device; \"default\": the fixed default")
    repeats: int = Field(0, ge=0, le=MAX_REPEATS, description="timed repeats; 0 = no timing")
    warmups: int = Field(1, ge=0, le=100)
    result: Literal["full", "checksum"] = "full"


class WhereRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cond: Any = None
    x: Any = None
    y: Any = None
    dtype: Literal["float32", "int32"] = "float32"
    seed: int | None = Field(None, ge=0, lt=2**32)
    shape: list[int] | None = Field(None, min_length=1, max_length=6)
    case: Literal["contiguous", "neg_stride", "broadcast"] = "contiguous"
    device: Device = "auto"
    params: dict[str, Any] | Literal["default"] | None = None
    repeats: int = Field(0, ge=0, le=MAX_REPEATS)
    warmups: int = Field(1, ge=0, le=100)
    result: Literal["full", "checksum"] = "full"


# ---- helpers --------------------------------------------------------------------------------------------------
def _limit_elements(request: Request, n: int, what: str):
    lim = get_settings(request).max_elements
    if n > lim:
        raise HTTPException(413, f"{what} has {n} elements; this server's limit is {lim} (max_elements)")


def _check_shape(shape, what="shape"):
    if any((not isinstance(n, int)) or n < 1 for n in shape):
        raise HTTPException(422, f"{what} must be positive integers, got {shape}")


_gates_lock = threading.Lock()


def _gate(request: Request, name: str) -> threading.BoundedSemaphore:
    """The app's semaphore for device `name`: at most native_concurrency requests run on it at once."""
    state = request.app.state
    with _gates_lock:
        gates = getattr(state, "native_gates", None)
        if gates is None:
            gates = state.native_gates = {}
        if name not in gates:
            gates[name] = threading.BoundedSemaphore(max(1, int(get_settings(request).native_concurrency)))
        return gates[name]


async def _run_native(request: Request, device: str, fn):
    """Resolve the backend, wait for its gate (bounded), run `fn(backend)` in a worker thread, map errors to HTTP."""
    try:
        backend = await run_in_threadpool(st.backend_for, device)
    except st.BackendUnavailable as e:
        raise HTTPException(503, str(e)) from None
    gate = _gate(request, backend.name)
    timeout = float(get_settings(request).native_timeout_s)
    acquired = await run_in_threadpool(gate.acquire, True, timeout)
    if not acquired:
        raise HTTPException(503, f"the {backend.name} device is busy; retry later",
                            headers={"Retry-After": str(max(1, int(timeout)))})
    try:
        return await asyncio.wait_for(run_in_threadpool(fn, backend), timeout)
    except asyncio.TimeoutError:
        raise HTTPException(503, f"the request ran past its {timeout:g} s limit on {backend.name}",
                            headers={"Retry-After": str(max(1, int(timeout)))}) from None
    except st.HeuristicsError as e:
        raise HTTPException(503, f"the tuned defaults cannot be read: {e}; pass params (or \"default\")") from None
    except (st.ShapeError, st.ParamsError, st.Unsupported) as e:
        raise HTTPException(422, str(e)) from None
    except st.DTypeError as e:
        raise HTTPException(422, str(e)) from None
    except st.BackendUnavailable as e:
        raise HTTPException(503, str(e)) from None
    except (st.KernelError, MemoryError) as e:
        raise HTTPException(503, f"the kernel failed on {backend.name}: {e}") from None
    finally:
        gate.release()


def _array(data, dtype, name: str) -> np.ndarray:
    try:
        a = np.array(data, dtype=np.float64 if dtype == np.float32 else object)
    except ValueError as e:  # ragged nested lists
        raise HTTPException(422, f"{name} must be a rectangular nested list of numbers ({e})") from None
    if a.dtype == object:
        try:
            if dtype == np.bool_:
                if not all(isinstance(v, bool) for v in a.reshape(-1)):
                    raise TypeError("not all booleans")
                return a.astype(np.bool_)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in a.reshape(-1)):
                raise TypeError("not all integers")
            if a.size and (min(a.reshape(-1)) < -2**31 or max(a.reshape(-1)) >= 2**31):
                raise HTTPException(422, f"{name} has values outside int32")
            return a.astype(np.int32)
        except TypeError as e:
            kind = "true/false" if dtype == np.bool_ else "int32 integers"
            raise HTTPException(422, f"{name} must hold {kind} ({e})") from None
    return a.astype(np.float32)


def _load_npy(body: bytes, name="body") -> np.ndarray:
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise HTTPException(400, f"{name} is not a valid .npy file: {e}") from None


def _load_npz(body: bytes) -> dict:
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise HTTPException(400, f"body is not a valid .npz file: {e}") from None


def _params_query(p: str | None):
    if p is None or p == "default":
        return p
    try:
        v = json.loads(p)
    except json.JSONDecodeError as e:
        raise HTTPException(422, f"params must be a JSON object: {e}") from None
    if not isinstance(v, dict):
        raise HTTPException(422, "params must be a JSON object or \"default\"")
    return v


def _db_rules(request: Request):
    """The rules of every stored run, merged per device class (what `?run=all` downloads), refitted when a run is
    stored: the server's own heuristics source, after SPIRALTORCH_TUNER_HEURISTICS. None without runs or when the
    database cannot be read (the call then goes on with the shipped rules)."""
    state, store = request.app.state, request.app.state.store
    try:
        key = store.latest_run_id()
        cached = getattr(state, "db_rules", None)
        if cached is None or cached[0] != key:
            docs = [{**r["run"], "run_id": r["run_id"]} for r in store.all_runs()] if key else []
            cached = state.db_rules = (key, rules.fit_runs(docs, "database") if docs else None)
        return cached[1]
    except Exception as e:     # the database is down or damaged: serve without it
        log.warning("native call without the database's rules: %s", e)
        return None


def _choice_fields(c) -> dict:
    return {"params": c.params or None, "source": c.source, "rule": c.rule, "note": c.note}


def _timing(t):
    return None if t is None else t.as_dict()


def _is_binary(request: Request) -> bool:
    ct = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return ct in ("application/octet-stream", "application/x-npy", "application/x-npz", "application/zip")


async def _json_body(request: Request, model):
    from pydantic import ValidationError
    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HTTPException(400, f"body is not valid JSON: {e}") from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise HTTPException(422, validation_message(e.errors())) from None


# ---- endpoints ------------------------------------------------------------------------------------------------
@router.get("/api/backends")
async def get_backends():
    """Every native backend with its availability (and why not) and device description; `auto` is what
    device="auto" picks here (CUDA > MPS > WGPU > CPU)."""
    rows = await run_in_threadpool(st.backends)
    auto = next((b["name"] for b in rows if b["available"]), None)
    return {"backends": rows, "auto": auto, "order": list(st.AUTO_ORDER)}


@router.post("/api/native/topk")
async def native_topk(request: Request, k: int | None = Query(None, ge=1), device: Device | None = None,
                      params: str | None = None, repeats: int = Query(0, ge=0, le=MAX_REPEATS),
                      result: Literal["full", "checksum"] = "full"):
    """Row-wise TopK natively. JSON body (TopKRequest) or a binary .npy float32 [rows, cols] body with the options
    as query parameters (k required)."""
    if _is_binary(request):
        if k is None:
            raise HTTPException(422, "k is required as a query parameter with a binary .npy body")
        x = _load_npy(await request.body())
        req = TopKRequest(k=k, device=device or "auto", params=_params_query(params), repeats=repeats, result=result)
        if x.dtype != np.float32:
            raise HTTPException(422, f"the .npy array must be float32, got {x.dtype}")
    else:
        req = await _json_body(request, TopKRequest)
        if req.x is not None and req.seed is not None:
            raise HTTPException(422, "give either x or seed+shape, not both")
        if req.x is not None:
            x = _array(req.x, np.float32, "x")
        elif req.seed is not None and req.shape is not None:
            _check_shape(req.shape)
            _limit_elements(request, req.shape[0] * req.shape[1], "the input")
            x = cases.topk_input(req.seed, req.shape[0], req.shape[1], req.dist)
        else:
            raise HTTPException(422, "give the input as x (nested list), as seed+shape, or as an .npy body")
    if x.ndim != 2 or 0 in x.shape:
        raise HTTPException(422, f"x must be 2-d [rows, cols] with rows, cols >= 1; got shape {list(x.shape)}")
    _limit_elements(request, int(x.size), "the input")
    kk = req.k
    if kk > x.shape[1]:
        raise HTTPException(422, f"k must satisfy 1 <= k <= cols = {x.shape[1]}; got k={kk}")

    db = await run_in_threadpool(_db_rules, request) if req.params is None else None

    def work(b):
        c = st.choose("topk", b, (*x.shape, kk), req.params, extra=db)
        t0 = time.perf_counter()
        v, i = b.topk2d(x, kk, c.params or None)
        wall = (time.perf_counter() - t0) * 1e3
        t = b.time_topk2d(x, kk, c.params or None, repeats=req.repeats, warmups=req.warmups) if req.repeats else None
        return b, c, v, i, wall, t
    b, c, v, i, wall, t = await _run_native(request, req.device, work)
    out = {"backend": b.name, "shape": list(x.shape), "k": kk, **_choice_fields(c), "wall_ms": wall,
           "timing": _timing(t), "checksum": topk_checksum(v, i)}
    if req.result == "full":
        out["values"] = _jsonable(v.tolist())
        out["indices"] = i.tolist()
    return out


def _jsonable(v):
    """Nested lists with NaN as null and infinities as "inf"/"-inf" (JSON has no such numbers)."""
    if isinstance(v, list):
        return [_jsonable(a) for a in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


@router.post("/api/native/where_nd")
async def native_where(request: Request, device: Device | None = None, params: str | None = None,
                       repeats: int = Query(0, ge=0, le=MAX_REPEATS), result: Literal["full", "checksum"] = "full"):
    """`cond ? x : y` natively with NumPy broadcasting. JSON body (WhereRequest: explicit nested lists, or
    seed+shape+case+dtype) or an .npz body with arrays cond (bool), x, y (float32 or int32)."""
    if _is_binary(request):
        z = _load_npz(await request.body())
        missing = {"cond", "x", "y"} - set(z)
        if missing:
            raise HTTPException(422, f"the .npz must hold arrays cond, x, y; missing {sorted(missing)}")
        c, x, y = z["cond"], z["x"], z["y"]
        req = WhereRequest(device=device or "auto", params=_params_query(params), repeats=repeats, result=result)
    else:
        req = await _json_body(request, WhereRequest)
        explicit = [v is not None for v in (req.cond, req.x, req.y)]
        if any(explicit) and req.seed is not None:
            raise HTTPException(422, "give either cond/x/y or seed+shape, not both")
        if all(explicit):
            dt = np.float32 if req.dtype == "float32" else np.int32
            c = _array(req.cond, np.bool_, "cond")
            x, y = _array(req.x, dt, "x"), _array(req.y, dt, "y")
        elif req.seed is not None and req.shape is not None:
            _check_shape(req.shape)
            _limit_elements(request, int(np.prod(req.shape)), "the output")
            c, x, y = cases.where_inputs(req.case, req.shape, req.dtype, req.seed)
        else:
            raise HTTPException(422, "give cond, x and y (nested lists), or seed+shape(+case, dtype), or an .npz body")
    if c.dtype != np.bool_:
        raise HTTPException(422, f"cond must be bool, got {c.dtype}")
    if x.dtype != y.dtype or x.dtype not in (np.float32, np.int32):
        raise HTTPException(422, f"x and y must both be float32 or both int32, got {x.dtype} and {y.dtype}")
    try:
        shape = np.broadcast_shapes(c.shape, x.shape, y.shape)
    except ValueError:
        raise HTTPException(422, f"shapes do not broadcast: cond {list(c.shape)}, x {list(x.shape)}, "
                                 f"y {list(y.shape)}") from None
    if len(shape) > 6:
        raise HTTPException(422, f"at most 6 dimensions are supported; the broadcast shape has {len(shape)}")
    _limit_elements(request, int(np.prod(shape)), "the output")

    db = await run_in_threadpool(_db_rules, request) if req.params is None else None

    def work(b):
        ch = st.choose("where_nd", b, st.where_query(c, x, y), req.params, extra=db)
        t0 = time.perf_counter()
        o = b.where_nd(c, x, y, ch.params or None)
        wall = (time.perf_counter() - t0) * 1e3
        t = (b.time_where_nd(c, x, y, ch.params or None, repeats=req.repeats, warmups=req.warmups)
             if req.repeats else None)
        return b, ch, o, wall, t
    b, ch, o, wall, t = await _run_native(request, req.device, work)
    out = {"backend": b.name, "shape": list(o.shape), "dtype": str(o.dtype), **_choice_fields(ch), "wall_ms": wall,
           "timing": _timing(t), "checksum": result_sha256(o)}
    if req.result == "full":
        out["out"] = _jsonable(o.tolist())
    return out


@router.post("/api/runs/{run_id}/compare")
async def compare(request: Request, run_id: str, backend: Device = "auto",
                  limit: int = Query(200, ge=1, le=5000), repeats: int = Query(5, ge=1, le=100)):
    """Replay a stored run's correct configurations natively with the same inputs (rebuilt from the run's seed):
    per configuration, whether the results are identical (the browser's posted checksum against the native
    result's, or both equal to the oracle), the browser's and the native time, and their ratio."""
    store = request.app.state.store
    rec = await run_in_threadpool(store.get_run, run_id)
    if rec is None:
        raise HTTPException(404, f"no run {run_id!r}")
    doc = rec["run"] if "run" in rec else rec
    seed = int((doc.get("space") or {}).get("seed", 1))
    ms = [m for m in doc.get("measurements", []) if m.get("ok")][:limit]

    def work(b):
        rows = []
        for m in ms:
            rows.append(_replay(b, seed, m, repeats))
        return b, rows
    b, rows = await _run_native(request, backend, work)
    ratios = [r["ratio"] for r in rows if r.get("ratio")]
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None
    return {"run_id": run_id, "backend": b.name, "device": _safe_info(b), "n": len(rows),
            "identical": sum(1 for r in rows if r["identical"]), "geomean_ratio": geo, "rows": rows}


def _safe_info(b):
    try:
        i = b.info()
        return {k: i.get(k) for k in ("name", "vendor", "architecture", "device", "description", "backend")}
    except Exception:
        return {"name": b.name}


def _replay(b, seed, m, repeats):
    from spiraltorch_tuner.tuner import topk_job, where_job
    params = m.get("params") or {}
    if m["kernel"] == "topk":
        key = {"kernel": "topk", "rows": m["rows"], "cols": m["cols"], "k": m["k"], "params": params}
        r = topk_job(b, seed, m["rows"], m["cols"], m["k"], params if b.name == "wgpu" else None, repeats, 1)
    else:
        key = {"kernel": "where_nd", "case": m["case"], "shape": m["shape"], "dtype": m.get("dtype", "float32"),
               "params": params}
        r = where_job(b, seed, m["case"], tuple(m["shape"]), m.get("dtype", "float32"),
                      params if b.name == "wgpu" else None, repeats, 1)
    browser_sum = m.get("checksum")
    identical = bool(r["ok"]) and (browser_sum is None or browser_sum == r.get("checksum"))
    native_ms = r.get("median_ms") if r["ok"] else None
    ratio = (m["median_ms"] / native_ms) if (native_ms and m.get("median_ms")) else None
    return {**key, "identical": identical, "checksum_compared": browser_sum is not None,
            "browser_ms": m.get("median_ms"), "browser_timer": m.get("timer"), "native_ms": native_ms,
            "native_timer": r.get("timer"), "ratio": ratio, "error": r.get("error")}

