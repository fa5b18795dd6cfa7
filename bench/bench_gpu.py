"""GPU benchmark: our CUDA kernels vs our WGSL kernels (wgpu-py) vs PyTorch, TopK and where_nd, one process.

    python3 bench/bench_gpu.py --out bench/results/h100-DATE.json       # everything (a few minutes on an H100)
    python3 bench/bench_gpu.py --quick --only topk                       # fewer repeats and candidates

Needs an NVIDIA GPU with CuPy and PyTorch; WGSL columns need wgpu-py and a Vulkan adapter (else they say why).
Every result is checked against the NumPy oracle (spiraltorch_tuner.cpu.topk_reference / np.where) before its time counts;
torch is only timed. Times are medians of >= 50 repeats after warm-ups: CUDA and torch between two CUDA events, each
sample preceded by a spin kernel that keeps the GPU busy while the host enqueues (so host launch overhead is left out
for both); WGSL between the timestamp queries of its compute passes. The same input buffer is reused across repeats
(the TopK inputs of up to 2 MB live in L2, for torch as for us). For WGSL TopK several configurations of
shaders/space.json are checked and timed and the fastest is reported: that is "the tuned configuration".
where_nd: 2^26 float32 outputs; GB/s counts the bytes of every input as stored (a broadcast input once) plus the
output; the reference is a device-to-device copy (cudaMemcpy) of 2^26 float32, 2 x 256 MiB moved.
Anchors (TopK; --no-anchors skips them): FlashInfer's flashinfer.top_k and CUB's DeviceBatchedTopK (bench/anchors),
built in background threads while our columns are timed, then timed on the same inputs, each answer graded against
the oracle by bench/anchors/check.py before its time counts; an anchor that cannot import or build says why under
the table, its column reads n/a, and the bench goes on (docs/performance.md#anchors-flashinfer-and-cub).
TopK's `unsorted` column: our CUDA call with sorted=False, graded as the anchors are (the oracle's set in any order);
the unsorted anchors' lines compare against it, the sorted ones against our sorted call.
"""
from __future__ import annotations

import argparse
import concurrent.futures as futures
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))   # ship_rules, beside this file

from spiraltorch_tuner import cases  # noqa: E402
from spiraltorch_tuner.cpu import topk_reference  # noqa: E402
from spiraltorch_tuner.cuda import CudaBackend  # noqa: E402
from spiraltorch_tuner.errors import SpiralTorchError  # noqa: E402
from spiraltorch_tuner.space import stcore_fallback, violations  # noqa: E402

import anchors  # noqa: E402  (bench/anchors: FlashInfer's and CUB's TopK)

TOPK_SHAPES = [(8, 65536, 4096), (8, 65536, 64), (1, 1048576, 1024), (64, 32768, 256), (1024, 65536, 128),
               (256, 4096, 16), (4096, 1024, 8), (16, 1048576, 4096)]
WHERE_SHAPE = (64, 64, 128, 128)   # 2^26 elements
ANCHOR_GRACE_S = 60.0
CUDA_SWEEP = [
    {"use_2ce": False, "wg": 128, "kl": 4, "ch": 0, "sg": False},
    {"use_2ce": False, "wg": 256, "kl": 4, "ch": 0, "sg": False},
    {"use_2ce": False, "wg": 512, "kl": 4, "ch": 0, "sg": False},
    {"use_2ce": False, "wg": 512, "kl": 16, "ch": 0, "sg": False},
    {"use_2ce": False, "wg": 1024, "kl": 32, "ch": 0, "sg": False},
    {"use_2ce": True, "wg": 256, "kl": 4, "ch": 2048, "sg": False},
    {"use_2ce": True, "wg": 512, "kl": 4, "ch": 2048, "sg": False},
    {"use_2ce": True, "wg": 512, "kl": 4, "ch": 4096, "sg": False},
    {"use_2ce": True, "wg": 1024, "kl": 4, "ch": 4096, "sg": False},
    {"use_2ce": True, "wg": 512, "kl": 4, "ch": 8192, "sg": False},
    {"use_2ce": True, "wg": 1024, "kl": 4, "ch": 8192, "sg": False},
]

LOG = []


def log(*a):
    s = " ".join(str(x) for x in a)
    LOG.append(s)
    print(s, flush=True)


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        np.ascontiguousarray(a).view(np.uint32), np.ascontiguousarray(b).view(np.uint32))


def cuda_exact(v, i, rv, ri) -> bool:
    """A TopK answer on the device (CuPy values v, indices i) is the oracle's (rv, ri), bit for bit."""
    import cupy as cp
    return np.array_equal(cp.asnumpy(i), ri) and same_bits(cp.asnumpy(v), rv)


def cuda_same_set(x, v, i, rv, ri):
    """An unsorted TopK answer on the device: (whether it is the oracle's set in any order, its grade, the note),
    graded as the anchors' are (bench/anchors/check.py)."""
    import cupy as cp
    grade, note = anchors.grade_topk(x, rv, ri, cp.asnumpy(v), cp.asnumpy(i), sorted_output=False)
    return grade in ("identical", "same set"), grade, note


def oracle_inputs(shapes):
    """(rows, cols, k, x, x on the device, oracle values, oracle indices) for each TopK shape: the bench's input."""
    import cupy as cp
    for rows, cols, k in shapes:
        x = cases.topk_input(1, rows, cols)
        rv, ri = topk_reference(x, k)
        yield rows, cols, k, x, cp.asarray(x), rv, ri


def med(t):
    return statistics.median(t.samples_ms) if t is not None else None


def heuristics_picker(run_doc):
    """pick(rows, cols, k, sg): the configuration our generated heuristics pick for a shape, with the rule fitted once
    on a tuning run document (the same rule as wgpu_heuristics.rs: native/heuristics.py, importable without the web
    server's dependencies); None without a run document."""
    if run_doc is None:
        return lambda rows, cols, k, sg: None
    from spiraltorch_tuner import heuristics as h
    model = h.topk_table(run_doc["measurements"])

    def pick(rows, cols, k, sg):
        c = h.choose_topk(model, rows, cols, k, sg)
        return dict(zip(h.TOPK_KEYS, c)) if c else None
    return pick


def tuned_candidates(adapter_info: dict, rows: int, cols: int, k: int, n: int = 4) -> list[dict]:
    """The `n` fastest configurations measured for this shape in the tuning runs shipped for this adapter's class
    (bench/ship_rules.py's runs, merged per class as the shipped rules are): what "the best tuned configuration" is
    re-timed from, beside the configuration a default-argument call runs."""
    import ship_rules
    from spiraltorch_tuner import heuristics as h
    from spiraltorch_tuner import rules
    adapter = rules.adapter_of("wgpu", adapter_info)
    docs = [r["run"] for r in ship_rules.records()]
    groups = h.group_by_class(docs)
    keys = list(groups)
    for i in h.class_order(keys, adapter):
        if rules.backend_family(keys[i].backend) != "wgsl":
            continue
        t = h.topk_times(h.merge_measurements(groups[keys[i]])).get((rows, cols, k))
        if t:
            return [dict(zip(h.TOPK_KEYS, c)) for c in sorted(t, key=lambda c: (t[c], c))[:n]]
    return []


def bench_default_call(args, wb, x, k, rv, ri, entry):
    """Our API as users call it: `topk2d(x, k, device="wgpu")` without params (the tuned rule: shipped rules for this
    adapter's class), `params="default"` (the fixed default), and the best tuned configuration (the fastest of the
    shipped runs' best few for this shape and of the default call's own, re-timed here); each checked, then timed."""
    import spiraltorch_tuner as stt
    rows, cols = x.shape
    out = {}
    for name, params in (("default_call", None), ("fixed_default", "default")):
        v, i = stt.topk2d(x, k, device="wgpu", params=params)
        c = stt.last_choice()
        ok = np.array_equal(i, ri) and same_bits(v, rv)
        t = stt.time_topk2d(x, k, device="wgpu", params=params, repeats=args.repeats, warmups=args.warmups)
        out[name] = {"params": c.params, "source": c.source, "rule": c.rule, "ok": ok, **t.as_dict()}
        log(f"   wgsl {name} ({c.source}) {c.params}: {t.median_ms * 1e3:.1f} us{'' if ok else ' WRONG RESULT'}")
    best = None
    for p in tuned_candidates(wb.info(), rows, cols, k) + [out["default_call"]["params"]]:
        try:
            v, i = wb.topk2d(x, k, p)
            if not (np.array_equal(i, ri) and same_bits(v, rv)):
                continue
            t = wb.time_topk2d(x, k, p, repeats=args.repeats, warmups=args.warmups)
        except SpiralTorchError as e:
            log(f"   wgsl tuned candidate {p}: {e}")
            continue
        if best is None or t.median_ms < best["median_ms"]:
            best = {"params": p, **t.as_dict()}
    out["best_tuned"] = best
    if best:
        log(f"   wgsl best tuned {best['params']}: {best['median_ms'] * 1e3:.1f} us; default call / best = "
            f"{out['default_call']['median_ms'] / best['median_ms']:.3f}")
    entry["api"] = out


def bench_spiraltorch(args, x, k, rv, ri, entry):
    """SpiralTorch's own WgpuRank TopK (the spiraltorch wheel) on the same input, checked against the oracle (its
    differences described row by row), timed by its own profile()."""
    import spiraltorch_tuner as stt
    from spiraltorch_tuner.tuner import describe_topk_difference
    try:
        v, i = stt.topk2d(x, k, device="spiraltorch")
        diff = describe_topk_difference(x, rv, ri, v, i)
        t = stt.time_topk2d(x, k, device="spiraltorch", repeats=max(3, args.repeats // 5), warmups=1)
    except SpiralTorchError as e:
        entry["spiraltorch"] = {"ok": False, "error": str(e)}
        log(f"   spiraltorch: {e}")
        return
    entry["spiraltorch"] = {"ok": diff is None, "difference": diff, **t.as_dict()}
    log(f"   spiraltorch WgpuRank: {t.median_ms * 1e3:.1f} us ({t.timer}){'' if diff is None else '; ' + diff}")


def host_time_us(cb, torch, run, n=10):
    """Median host time of one call, in µs, taken while a 5 ms spin keeps the GPU busy: what the call costs the host
    to enqueue. A call that waits for the GPU shows as about 5000."""
    import cupy as cp
    ts = []
    with cp.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
        for _ in range(n):
            cb.spin(5000.0)
            t0 = time.perf_counter()
            run()
            ts.append((time.perf_counter() - t0) * 1e6)
            torch.cuda.synchronize()
    return statistics.median(ts)


def bench_anchors(args, cb, tt, torch, found, x, xd, k, rv, ri, entry):
    """Other libraries' TopK on the same input (bench/anchors.VARIANTS): each answer graded against the oracle
    (bench/anchors/check.py; a variant counts if its grade is at least its `require`), then timed as ours or torch
    are: CUB between CUDA events on CuPy's stream (CudaBackend.time_device, like our CUDA kernels), FlashInfer between
    CUDA events on torch's stream (TorchTimer, like torch.topk). The spin ahead of each sample lasts at least 3x the
    call's host time (>= 200 µs), so the host's Python and launch overhead stays out of the time of both."""
    import cupy as cp
    rep, wu = args.repeats, args.warmups
    out = {}
    xt = None
    for var in anchors.VARIANTS:
        a = found.get(var.anchor)
        if a is None:
            continue
        ok, why = a.available()
        if not ok:
            out[var.key] = {"ok": False, "error": why}
            continue
        rec = {"call": var.call, "sorted": var.sorted_output}
        try:
            if var.anchor == "flashinfer":
                if xt is None:
                    xt = torch.from_numpy(x).cuda()
                run = a.enqueue(xt, k, sorted_output=var.sorted_output)
                vt, it = run()
                v, i = vt.cpu().numpy(), it.cpu().numpy()
                try:
                    rec["backend"] = a.backend(xt, k, var.sorted_output)
                except Exception as e:   # FlashInfer's own predicates, asked for the log only
                    rec["backend"] = f"unknown ({type(e).__name__}: {e})"

                def timed(fn, spin):
                    return tt.time(fn, rep, wu, spin_us=spin)
            else:
                run, vd, idd = a.enqueue(xd, k, tie_break=var.tie_break, sorted_output=var.sorted_output)
                run()
                v, i = cp.asnumpy(vd), cp.asnumpy(idd)
                rec.update(a.describe(*xd.shape, k, var.tie_break, var.sorted_output))

                def timed(fn, spin):
                    return cb.time_device(fn, rep, wu, spin_us=spin).samples_ms
        except Exception as e:
            out[var.key] = {**rec, "ok": False, "error": f"{type(e).__name__}: {str(e).strip()[-1000:]}"}
            log(f"   {var.key}: {out[var.key]['error']}")
            continue
        grade, note = anchors.grade_topk(x, rv, ri, v, i, sorted_output=var.sorted_output)
        ok = grade is not None and anchors.GRADES.index(grade) <= anchors.GRADES.index(var.require)
        rec.update({"ok": ok, "grade": grade, "required": var.require, "note": note})
        if not ok:
            out[var.key] = rec
            log(f"   {var.key}: WRONG RESULT ({grade or 'wrong'}, needs {var.require}): {note}")
            continue
        try:
            host = host_time_us(cb, torch, run)
            spin = max(200.0, 3 * host)
            ts = timed(run, spin)
        except Exception as e:
            out[var.key] = {**rec, "ok": False, "error": f"timing: {type(e).__name__}: {str(e).strip()[-1000:]}"}
            log(f"   {var.key}: {out[var.key]['error']}")
            continue
        rec.update({"median_ms": statistics.median(ts), "min_ms": min(ts), "samples_ms": ts, "host_us": host,
                    "spin_us": spin, "host_waits_for_gpu": host > 4000})
        out[var.key] = rec
        log(f"   {var.key}: {rec['median_ms'] * 1e3:.1f} us ({grade}{'; ' + rec['backend'] if 'backend' in rec else ''}"
            f"; host {host:.0f} us){'; ' + note if note and grade != 'same set' else ''}")
    del xt
    for a in found.values():
        if hasattr(a, "release"):
            a.release()
    entry["anchors"] = out


def wgsl_label(p: dict) -> str:
    """A TopK configuration in a few characters: pipeline, then its parameters."""
    if p.get("radix"):
        return f"radix wg{p.get('wg')} rb{p.get('rb')} rch{p.get('rch')}"
    return (f"{'2ce' if p.get('use_2ce') else '1ce'} wg{p.get('wg')} kl{p.get('kl')} ch{p.get('ch')} "
            f"sg{int(bool(p.get('sg')))}")


def wgsl_candidates(rows, cols, k, limits, feats, quick, pick=None):
    sg = "subgroups" in feats
    c = ([pick] if pick else []) + [stcore_fallback(rows, cols, k, sg),
         {"use_2ce": False, "wg": 256, "kl": 4, "ch": 0, "sg": sg},
         {"use_2ce": False, "wg": 1024, "kl": 4, "ch": 0, "sg": sg},
         {"use_2ce": True, "wg": 256, "kl": 4, "ch": max(4096, 1 << (k - 1).bit_length()), "sg": sg},
         {"use_2ce": True, "wg": 512, "kl": 8, "ch": max(16384, 1 << (k - 1).bit_length()), "sg": sg},
         {"use_2ce": False, "wg": 64, "kl": 16, "ch": 0, "sg": sg},
         {"use_2ce": False, "wg": 256, "kl": 4, "ch": 0, "sg": False, "ls": True, "radix": True, "rb": 8,
          "rch": 2048}]
    out = []
    for p in c:
        if p not in out and not violations("topk", {"rows": rows, "cols": cols, "k": k}, p, limits, feats):
            out.append(p)
    return out[:2] if quick else out


class TorchTimer:
    """torch ops timed like ours: CUDA events on torch's stream, a spin kernel (CuPy, same stream) before each."""

    def __init__(self, torch, cuda_backend):
        self.torch, self.cb = torch, cuda_backend

    def time(self, fn, repeats, warmups, spin_us=200.0):
        import cupy as cp
        torch = self.torch
        for _ in range(warmups):
            fn()
        torch.cuda.synchronize()
        stream = cp.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)
        evs = []
        with stream:
            for _ in range(repeats):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                self.cb.spin(spin_us)
                a.record()
                fn()
                b.record()
                evs.append((a, b))
        torch.cuda.synchronize()
        return [a.elapsed_time(b) for a, b in evs]


def bench_unsorted(cb, x, xd, k, rv, ri, entry, rep, wu):
    """Ours with sorted=False (as FlashInfer's default and CUB's top-k): graded as the anchors are, it must be the
    oracle's set (ties to the lower column) in any order."""
    rows, cols = x.shape
    p = cb.call_params(rows, cols, k, sorted=False)
    try:
        v, i = cb.topk2d_device(xd, k, None, sorted=False)
        ok, grade, note = cuda_same_set(x, v, i, rv, ri)
        if not ok:
            entry["cuda_unsorted"] = {"params": p, "ok": False, "grade": grade, "error": note or "wrong set"}
            log(f"   cuda unsorted {p}: WRONG RESULT ({grade or 'wrong'}): {note}")
            return
        t = cb.time_topk2d_device(xd, k, None, repeats=rep, warmups=wu, sorted=False)
        entry["cuda_unsorted"] = {"params": p, "ok": True, "grade": grade, **t.as_dict()}
        log(f"   cuda unsorted {p}: {t.median_ms * 1e3:.1f} us ({grade})")
    except SpiralTorchError as e:
        entry["cuda_unsorted"] = {"params": p, "ok": False, "error": str(e)}
        log(f"   cuda unsorted: {e}")


def bench_topk(args, cb, wb, torch, tt, result, found=None, loading=None):
    run_doc = None
    if args.tuned:
        with open(args.tuned) as f:
            run_doc = json.load(f)
        run_doc = run_doc.get("run", run_doc)
    heuristics_pick = heuristics_picker(run_doc)
    import cupy as cp
    rep, wu = args.repeats, args.warmups
    info = wb.info() if wb else None
    rows_out = []
    later = []
    for rows, cols, k in TOPK_SHAPES:
        log(f"-- topk {rows}x{cols} k={k}")
        x = cases.topk_input(1, rows, cols)
        t0 = time.perf_counter()
        rv, ri = topk_reference(x, k)
        log(f"   oracle {time.perf_counter() - t0:.1f} s")
        xd = cp.asarray(x)
        entry = {"rows": rows, "cols": cols, "k": k}
        # ours, CUDA: the default (tuned table) plus the sweep the table was read from
        default = cb.call_params(rows, cols, k)
        sweep = []
        for p in [None] + (CUDA_SWEEP if args.sweep else []):
            try:
                v, i = cb.topk2d_device(xd, k, p)
                ok = cuda_exact(v, i, rv, ri)
                if not ok:
                    sweep.append({"params": p or default, "ok": False, "error": "wrong result"})
                    log(f"   cuda {p or 'default'}: WRONG RESULT")
                    continue
                t = cb.time_topk2d_device(xd, k, p, repeats=rep, warmups=wu)
                sweep.append({"params": p or default, "default": p is None, "ok": True, **t.as_dict()})
                log(f"   cuda {'default ' + str(default) if p is None else p}: {t.median_ms * 1e3:.1f} us")
            except SpiralTorchError as e:
                sweep.append({"params": p, "ok": False, "error": str(e)})
        d = sweep[0]
        entry["cuda"] = {"params": default, "ok": d["ok"], "median_ms": d.get("median_ms"),
                         "min_ms": d.get("min_ms"), "samples_ms": d.get("samples_ms")}
        bench_unsorted(cb, x, xd, k, rv, ri, entry, rep, wu)
        good = [s for s in sweep if s["ok"]]
        entry["cuda_best_in_sweep"] = min(good, key=lambda s: s["median_ms"]) if good else None
        entry["cuda_sweep"] = [{k2: v2 for k2, v2 in s.items() if k2 != "samples_ms"} for s in sweep]
        # torch
        xt = torch.from_numpy(x).cuda()
        ts = tt.time(lambda: torch.topk(xt, k, dim=1, largest=True, sorted=True), rep, wu)
        entry["torch"] = {"median_ms": statistics.median(ts), "min_ms": min(ts), "samples_ms": ts}
        log(f"   torch.topk: {entry['torch']['median_ms'] * 1e3:.1f} us")
        del xt
        # ours, WGSL through wgpu-py: several configurations, the fastest correct one is the tuned one
        if wb:
            wres = []
            pick = heuristics_pick(rows, cols, k, "subgroups" in info["features"])
            for p in wgsl_candidates(rows, cols, k, info["limits"], info["features"], args.quick, pick):
                try:
                    v, i = wb.topk2d(x, k, p)
                    if not (np.array_equal(i, ri) and same_bits(v, rv)):
                        wres.append({"params": p, "ok": False, "error": "wrong result"})
                        log(f"   wgsl {p}: WRONG RESULT")
                        continue
                    t = wb.time_topk2d(x, k, p, repeats=rep, warmups=wu)
                    wres.append({"params": p, "ok": True, **t.as_dict()})
                    log(f"   wgsl {p}: {t.median_ms * 1e3:.1f} us ({t.timer})")
                except SpiralTorchError as e:
                    wres.append({"params": p, "ok": False, "error": str(e)})
                    log(f"   wgsl {p}: {e}")
            good = [w for w in wres if w["ok"]]
            picked = [w for w in good if pick is not None and w["params"] == pick]
            # "tuned": our heuristics' pick when a tuning run is given (--tuned), else the fastest candidate
            entry["wgsl_tuned"] = picked[0] if picked else (min(good, key=lambda w: w["median_ms"]) if good else None)
            entry["wgsl_best_candidate"] = min(good, key=lambda w: w["median_ms"]) if good else None
            entry["wgsl_tuned_by"] = "heuristics" if picked else "fastest candidate"
            entry["wgsl_all"] = [{k2: v2 for k2, v2 in w.items() if k2 != "samples_ms"} for w in wres]
            bench_default_call(args, wb, x, k, rv, ri, entry)
        if args.spiraltorch:
            bench_spiraltorch(args, x, k, rv, ri, entry)
        rows_out.append(entry)
        if found:
            later.append((x, rv, ri, entry))
        del xd
        cp.get_default_memory_pool().free_all_blocks()
    result["topk"] = rows_out
    if found:
        # the anchors last, on the same inputs kept in memory: their builds ran meanwhile on other CPU cores
        t0 = time.perf_counter()
        result["anchors"] = {name: f.result() for name, f in loading.items()}
        log(f"-- anchors (waited {time.perf_counter() - t0:.1f} s for their builds)")
        for name, i in result["anchors"].items():
            log(f"anchor {name}: " + (f"{ {k: v for k, v in i.items() if k != 'available'} }" if i["available"]
                                      else f"not run: {i['why']}"))
        for x, rv, ri, entry in later:
            log(f"-- topk {entry['rows']}x{entry['cols']} k={entry['k']}: anchors")
            xd = cp.asarray(x)
            bench_anchors(args, cb, tt, torch, found, x, xd, entry["k"], rv, ri, entry)
            del xd
            cp.get_default_memory_pool().free_all_blocks()
            torch.cuda.empty_cache()


def bench_where(args, cb, wb, torch, tt, result):
    import cupy as cp
    rep, wu = args.repeats, args.warmups
    numel = int(np.prod(WHERE_SHAPE))
    copy = cb.time_copy(numel * 4, repeats=rep, warmups=wu)
    copy_gbs = 2 * numel * 4 / (copy.median_ms * 1e-3) / 1e9
    log(f"-- device copy 2^26 float32: {copy.median_ms * 1e3:.1f} us = {copy_gbs:.0f} GB/s (read+write)")
    result["copy"] = {"bytes_moved": 2 * numel * 4, **copy.as_dict(), "gbs": copy_gbs}
    out_rows = []
    for case in cases.WHERE_CASES:
        log(f"-- where_nd {case} {WHERE_SHAPE} float32")
        c, x, y = cases.where_inputs(case, WHERE_SHAPE, "float32", seed=1)
        ref = np.where(c, x, y)
        nbytes = c.size * c.itemsize + x.size * 4 + y.size * 4 + numel * 4
        e = {"case": case, "shape": list(WHERE_SHAPE), "dtype": "float32", "bytes": nbytes}
        # ours, CUDA direct-strided (kernel only; inputs uploaded once as the views' memory spans)
        best = None
        for p in ([{"path": "direct", "wg": 256, "vpt": 4}, {"path": "direct", "wg": 256, "vpt": 2},
                   {"path": "direct", "wg": 512, "vpt": 8}, {"path": "direct", "wg": 128, "vpt": 4}]
                  if not args.quick else [{"path": "direct", "wg": 256, "vpt": 4}]):
            out = cb.where_nd(c, x, y, p)
            if not same_bits(out, ref):
                log(f"   cuda {p}: WRONG RESULT")
                continue
            t = cb.time_where_nd(c, x, y, p, repeats=rep, warmups=wu)
            log(f"   cuda direct {p}: {t.median_ms * 1e3:.1f} us")
            if best is None or t.median_ms < best[1].median_ms:
                best = (p, t)
        if best:
            e["cuda_direct"] = {"params": best[0], **best[1].as_dict()}
        # torch.where: views it can hold (a reversed axis it cannot: it gets the flipped copy, contiguous)
        tc, tx, ty = (torch.from_numpy(np.ascontiguousarray(a)).cuda() for a in (c, x, y))
        ts = tt.time(lambda: torch.where(tc, tx, ty), rep, wu)
        e["torch"] = {"median_ms": statistics.median(ts), "min_ms": min(ts), "samples_ms": ts}
        log(f"   torch.where: {e['torch']['median_ms'] * 1e3:.1f} us")
        del tc, tx, ty
        torch.cuda.empty_cache()
        if wb:
            bestw = None
            for p in ([{"path": "direct", "wg": 256, "vpt": 1}, {"path": "direct", "wg": 256, "vpt": 4}]
                      if not args.quick else [{"path": "direct", "wg": 256, "vpt": 1}]):
                try:
                    t, res = wb.time_where_kernel(c, x, y, p, rep, wu)
                except SpiralTorchError as err:
                    log(f"   wgsl direct {p}: {err}")
                    continue
                if not same_bits(res, ref):
                    log(f"   wgsl direct {p}: WRONG RESULT")
                    continue
                log(f"   wgsl direct kernel {p}: {t.median_ms * 1e3:.1f} us ({t.timer})")
                if bestw is None or t.median_ms < bestw[1].median_ms:
                    bestw = (p, t)
            if bestw:
                e["wgsl_direct_kernel"] = {"params": bestw[0], **bestw[1].as_dict()}
                wp = bestw[0]
                for path in ("direct", "segmented"):
                    t = wb.time_where_nd(c, x, y, {**wp, "path": path}, repeats=args.wall_repeats, warmups=1)
                    e[f"wgsl_{path}_wall"] = {"params": {**wp, "path": path}, **t.as_dict()}
                    log(f"   wgsl {path} wall (upload included): {t.median_ms:.1f} ms")
        out_rows.append(e)
        cp.get_default_memory_pool().free_all_blocks()
    result["where"] = out_rows


def anchor_verdict(a) -> str:
    """What became of one anchor variant on one shape: its grade (check.GRADES) when it was timed, 'wrong' (or
    'wrong (GRADE)' when its grade is below what the variant requires) when its answer failed the check, 'not run'
    when it could not be loaded, built, called or timed (its 'error' says why)."""
    if a.get("error"):
        return "not run"
    if not a.get("ok"):
        return f"wrong ({a['grade']})" if a.get("grade") else "wrong"
    return a["grade"]


def anchor_cell(a):
    """An anchor's cell in the TopK table: its median in µs, 'wrong' when its answer failed the check, 'n/a' when it
    did not run (the lines under the table, and the JSON's 'error', say why)."""
    if not a:
        return "-"
    if a.get("median_ms"):
        return f"{a['median_ms'] * 1e3:.1f}"
    return "n/a" if anchor_verdict(a) == "not run" else "wrong"


def cuda_label(p: dict) -> str:
    if p.get("radix"):
        return f"radix wg{p['wg']} rch{p['rch']}"
    return f"{'2ce' if p['use_2ce'] else '1ce'} wg{p['wg']} kl{p['kl']} ch{p['ch']}"


def geomean(rs):
    return math.exp(sum(math.log(r) for r in rs) / len(rs)) if rs else float("nan")


def anchor_summary(result, s):
    """The anchors' lines under the TopK table: what each variant is, its geomean time over our CUDA kernels' and
    torch's over its own, the grades of its answers; why an anchor did not run. Fills s["anchors"]."""
    lines = []
    info = result.get("anchors", {})
    for name, i in info.items():
        if not i.get("available"):
            lines.append(f"{name}: not run: {i.get('why')}")
        else:
            lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in i.items()
                                                 if k in ("version", "cub_version", "jit_build_s", "build_s")))
    s["anchors"] = {}
    for v in anchors.VARIANTS:
        got = [(e, e["anchors"][v.key]) for e in result["topk"] if v.key in e.get("anchors", {})]
        if not got:
            continue
        timed = [(e, a) for e, a in got if a.get("median_ms")]
        ours = "cuda" if v.sorted_output else "cuda_unsorted"     # like against like: sorted or not
        over_cuda = [a["median_ms"] / e[ours]["median_ms"] for e, a in timed if e.get(ours, {}).get("median_ms")]
        torch_over = [e["torch"]["median_ms"] / a["median_ms"] for e, a in timed]
        grades = {}
        for _, a in got:
            g = anchor_verdict(a)
            grades[g] = grades.get(g, 0) + 1
        s["anchors"][v.key] = {"call": v.call, "shapes_timed": len(timed), "shapes": len(got),
                               "against": ours, "over_cuda_geomean": geomean(over_cuda),
                               "over_cuda_worst": min(over_cuda) if over_cuda else None,
                               "torch_over_geomean": geomean(torch_over),
                               "grades": grades}
        lines.append(f"{v.key} = {v.call}: {len(timed)}/{len(got)} shapes timed; "
                     + (f"{v.key}/{ours} geomean {geomean(over_cuda):.2f} (> 1: ours faster), worst "
                        f"{min(over_cuda):.2f}; torch/{v.key} geomean {geomean(torch_over):.2f}; " if timed else "")
                     + "answers: " + ", ".join(f"{g} {n}" for g, n in grades.items()))
    return lines


def summarize(result):
    lines = []
    s = {}
    if "topk" in result:
        lines.append("TopK (median us; ratio = torch / ours, > 1 means ours is faster)")
        cols = [v for v in anchors.VARIANTS if v.column and any(v.key in e.get("anchors", {}) for e in result["topk"])]
        lines.append(f"{'shape':<22}{'cuda':>9}{'unsorted':>9}{'torch':>9}{'wgsl*':>10}"
                     + "".join(f"{v.key:>{max(9, len(v.key) + 1)}}" for v in cols)
                     + f"{'torch/cuda':>12}{'torch/wgsl':>12}  cuda params | wgsl params")
        speed = []
        for e in result["topk"]:
            cu, to = e["cuda"]["median_ms"], e["torch"]["median_ms"]
            wg = e.get("wgsl_tuned", {}) or {}
            wm = wg.get("median_ms")
            r = to / cu if cu else float("nan")
            speed.append(r)
            p = e["cuda"]["params"]
            ps = cuda_label(p)
            un = e.get("cuda_unsorted", {}) or {}
            if un.get("params"):
                ps += f" (unsorted {cuda_label(un['params'])})"
            if wg.get("params"):
                ps += f" | wgsl {wgsl_label(wg['params'])}"
            lines.append(f"{e['rows']}x{e['cols']} k={e['k']:<6}"[:22].ljust(22)
                         + f"{cu * 1e3:9.1f}"
                         + (f"{un['median_ms'] * 1e3:9.1f}" if un.get("median_ms") else f"{'-':>9}")
                         + f"{to * 1e3:9.1f}" + (f"{wm * 1e3:10.1f}" if wm else f"{'-':>10}")
                         + "".join(f"{anchor_cell(e.get('anchors', {}).get(v.key)):>{max(9, len(v.key) + 1)}}"
                                   for v in cols)
                         + f"{r:12.2f}" + (f"{to / wm:12.2f}" if wm else f"{'-':>12}") + f"  {ps}")
        geo = math.exp(sum(math.log(r) for r in speed) / len(speed))
        seed = result["topk"][0]
        s["topk_geomean_speedup_vs_torch"] = geo
        s["topk_min_speedup_vs_torch"] = min(speed)
        s["seed_8x65536_k4096_cuda_over_torch"] = seed["cuda"]["median_ms"] / seed["torch"]["median_ms"]
        lines.append(f"geo-mean torch/cuda = {geo:.2f} (target >= 2); slowest shape torch/cuda = {min(speed):.2f} "
                     f"(target >= 1); 8x65536 k=4096 cuda/torch = {s['seed_8x65536_k4096_cuda_over_torch']:.3f} "
                     f"(target <= 0.333)")
        if any("anchors" in e for e in result["topk"]):
            lines += anchor_summary(result, s)
        by = {e.get("wgsl_tuned_by") for e in result["topk"]} - {None}
        lines.append("wgsl* = the tuned WGSL configuration: " + (
            "the pick of our heuristics from the tuning run given with --tuned" if by == {"heuristics"} else
            "the fastest correct one of the candidates measured" if by == {"fastest candidate"} else
            "our heuristics' pick where it was legal, else the fastest candidate"))
        api = [e for e in result["topk"] if e.get("api", {}).get("best_tuned")]
        if api:
            lines.append("")
            lines.append("Our API as called (WGSL, median us): topk2d(x, k, device='wgpu') without params, with "
                         "params='default', the best tuned configuration; ratios over the best tuned")
            lines.append(f"{'shape':<22}{'call':>9}{'fixed':>9}{'best':>9}{'call/best':>11}{'fixed/best':>12}"
                         f"{'spiraltorch':>13}  source | pick")
            rs, rf = [], []
            for e in api:
                a = e["api"]
                call, fixed, best = (a["default_call"]["median_ms"], a["fixed_default"]["median_ms"],
                                     a["best_tuned"]["median_ms"])
                rs.append(call / best)
                rf.append(fixed / best)
                sp = e.get("spiraltorch", {})
                spt = f"{sp['median_ms'] * 1e3:13.1f}" if sp.get("median_ms") else f"{'-':>13}"
                q = a["default_call"]["params"]
                lines.append(f"{e['rows']}x{e['cols']} k={e['k']:<6}"[:22].ljust(22)
                             + f"{call * 1e3:9.1f}{fixed * 1e3:9.1f}{best * 1e3:9.1f}{call / best:11.3f}"
                             f"{fixed / best:12.3f}{spt}  {a['default_call']['source']} | {wgsl_label(q)}")
            g = math.exp(sum(math.log(r) for r in rs) / len(rs))
            gf = math.exp(sum(math.log(r) for r in rf) / len(rf))
            s["api_call_over_best_geomean"], s["api_call_over_best_worst"] = g, max(rs)
            s["api_fixed_over_best_geomean"] = gf
            lines.append(f"default call / best tuned: geomean {g:.3f} (target <= 1.10), worst {max(rs):.3f} "
                         f"(target <= 1.25); the fixed default / best: geomean {gf:.3f}, worst {max(rf):.3f}")
    if "where" in result:
        cgb = result["copy"]["gbs"]
        lines.append(f"where_nd 2^26 float32 (median us, GB/s of bytes read+written, fraction of copy {cgb:.0f} GB/s)")
        lines.append(f"{'case':<12}{'contender':<28}{'time':>12}{'GB/s':>9}{'of copy':>9}{'vs torch':>10}")
        for e in result["where"]:
            to = e["torch"]["median_ms"]
            for name, key, unit in (("cuda direct (kernel)", "cuda_direct", 1e3),
                                    ("torch.where", "torch", 1e3),
                                    ("wgsl direct (kernel)", "wgsl_direct_kernel", 1e3),
                                    ("wgsl direct (wall+upload)", "wgsl_direct_wall", 1e3),
                                    ("wgsl segmented (wall+upl.)", "wgsl_segmented_wall", 1e3)):
                if key not in e:
                    continue
                m = e[key]["median_ms"]
                gbs = e["bytes"] / (m * 1e-3) / 1e9
                lines.append(f"{e['case']:<12}{name:<28}{m * unit:11.1f}u{gbs:9.0f}{gbs / cgb:9.2f}{to / m:10.2f}")
            if "wgsl_direct_wall" in e and "wgsl_segmented_wall" in e:
                lines.append(f"{'':<12}wgsl segmented / direct (wall) = "
                             f"{e['wgsl_segmented_wall']['median_ms'] / e['wgsl_direct_wall']['median_ms']:.2f}")
        s["where_cuda_fraction_of_copy"] = {e["case"]: e["bytes"] / (e["cuda_direct"]["median_ms"] * 1e-3) / 1e9 / cgb
                                            for e in result["where"] if "cuda_direct" in e}
    result["summary"] = s
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (20) and candidates")
    ap.add_argument("--only", choices=("topk", "where"), help="run one kernel only")
    ap.add_argument("--out", help="write the JSON here (and the log beside it as .txt)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 50; --quick 20)")
    ap.add_argument("--warmups", type=int, default=5)
    ap.add_argument("--wall-repeats", type=int, default=3, help="repeats of the wall-clock where timings")
    ap.add_argument("--no-sweep", dest="sweep", action="store_false",
                    help="time only the default CUDA configuration, not the sweep the default table came from")
    ap.add_argument("--no-wgsl", action="store_true")
    ap.add_argument("--no-spiraltorch", dest="spiraltorch", action="store_false",
                    help="skip SpiralTorch's own WgpuRank TopK (the spiraltorch wheel) column")
    ap.add_argument("--no-anchors", dest="anchors", action="store_false",
                    help="skip the anchors: FlashInfer's flashinfer.top_k and CUB's DeviceBatchedTopK (bench/anchors)")
    ap.add_argument("--tuned", metavar="RUN.json", help="a tuning run document (bench/tune_gpu.py, or GET "
                    "/api/runs/{id} -> run): time the WGSL configuration our heuristics pick from it")
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (20 if args.quick else 50)
    if args.quick:
        args.sweep = False

    cb = CudaBackend()
    ok, why = cb.available()
    if not ok:
        sys.exit(f"CUDA backend unavailable: {why}")
    import torch
    if not torch.cuda.is_available():
        sys.exit("PyTorch sees no CUDA device")
    wb = None
    wgsl_why = "disabled (--no-wgsl)"
    if not args.no_wgsl:
        from spiraltorch_tuner.wgpu_backend import WgpuBackend
        wb = WgpuBackend()
        okw, wgsl_why = wb.available()
        if not okw:
            log(f"WGSL columns skipped: {wgsl_why}")
            wb = None
    result = {"generated_by": "bench/bench_gpu.py", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "args": vars(args), "cuda": cb.info(), "torch": torch.__version__, "numpy": np.__version__,
              "python": platform.python_version(), "wgpu": wb.info() if wb else {"unavailable": wgsl_why},
              "timing": "median of repeats; cuda/torch: CUDA events with a spin kernel ahead of each sample; "
                        "wgsl: timestamp queries"}
    found, loading = {}, {}
    if args.anchors and args.only in (None, "topk"):
        # FlashInfer's JIT and CUB's nvcc build start now, in threads, and are waited for after our TopK columns
        found = anchors.make_anchors()
        loading = anchors.load_in_background(found)
        log("anchors: building FlashInfer's top-k module and CUB's harness in the background")
        # Their imports hold the interpreter while our first columns are timed, and a launch enqueued late is timed
        # as GPU time (the first CUDA column read 1755 us for 28.6 on the H200, s22): up to ANCHOR_GRACE_S for them
        # (built already, as `bench/anchors.sh build` leaves them, they take about a second), then our columns.
        t0 = time.perf_counter()
        futures.wait(list(loading.values()), timeout=ANCHOR_GRACE_S)
        log(f"anchors: {sum(f.done() for f in loading.values())} of {len(loading)} ready after "
            f"{time.perf_counter() - t0:.1f} s; the rest go on in the background")
    log(f"device: {result['cuda']}")
    log(f"wgpu: {result['wgpu'] if not wb else {k: result['wgpu'][k] for k in ('device', 'backend', 'timer')}}")
    tt = TorchTimer(torch, cb)
    if args.only in (None, "topk"):
        bench_topk(args, cb, wb, torch, tt, result, found, loading)
    if args.only in (None, "where"):
        bench_where(args, cb, wb, torch, tt, result)
    lines = summarize(result)
    log("")
    for ln in lines:
        log(ln)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=str))
        out.with_suffix(".txt").write_text("\n".join(LOG) + "\n")
        print(f"wrote {out} and {out.with_suffix('.txt')}")


if __name__ == "__main__":
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    main()
