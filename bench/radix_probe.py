"""The radix TopK pipeline for long rows (shaders/topk_radix.wgsl, run by native/wgpu_radix.py's RadixTopK with its
kernel constants: `ch` is the kernel's CH, the search space's rch) against the 1CE and 2CE pipelines (the shipped
rule's pick for the shape and 2CE candidates), on wgpu-py with timestamp queries: every configuration
is checked bit for bit against the NumPy oracle, then timed as WgpuBackend.time_topk2d times (one submission, warm-up
chains, the clock guard on GPU adapters). With --phases, also each dispatch of one chain in a compute pass of its
own (a pass per dispatch adds a few us each; the split, not the sum, is what it is for).

    python3 bench/radix_probe.py                                  # the three shapes of issue #19 item 3
    python3 bench/radix_probe.py --shapes 2x70000x1000 --quick    # a small check here (lavapipe: wall-clock timer)

On the lent GPU machine (wgpu-py and the Vulkan loader carried in .gpu/, as for bench/stress_wgsl_topk.py):

    for f in .gpu/deb/*.deb; do dpkg -x $f /; done; ldconfig; python3 -m pip install -q --no-index --no-deps \
      --no-compile --target /tmp/site .gpu/whl/*.whl; mkdir -p /tmp/pkg; ln -sfn $PWD/native /tmp/pkg/spiraltorch_tuner; \
      export PYTHONPATH=/tmp/site:/tmp/pkg XDG_RUNTIME_DIR=/tmp; python3 bench/radix_probe.py --phases \
      --out $OUT/radix_probe.json | tee $OUT/radix_probe.txt

Prints per shape each configuration's median us (or WRONG / the error), the best of each kind and their ratio;
exits 1 if any result was wrong. Its H200 run of 2026-11-30 chose the radix values of the full preset
(docs/kernels.md).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

import spiraltorch_tuner as stt
from spiraltorch_tuner import gen
from spiraltorch_tuner.cpu import topk_reference
from spiraltorch_tuner.errors import SpiralTorchError
from spiraltorch_tuner.space import violations
from spiraltorch_tuner.wgpu_backend import WgpuBackend
from spiraltorch_tuner.wgpu_radix import RadixTopK, pass_name, plan_shape
from spiraltorch_tuner.wgpu_radix import chain as radix_chain

SHAPES = [(1, 1048576, 1024), (16, 1048576, 4096), (8, 65536, 4096)]
RADIX_GRID = ([{"ch": ch, "rb": rb, "wg": 256} for rb in (11, 8) for ch in (2048, 4096, 8192, 16384)]
              + [{"ch": ch, "rb": 11, "wg": 256, "seg": 2048} for ch in (4096, 8192)]
              + [{"ch": 4096, "rb": 11, "wg": 128}])


def log(msg=""):
    print(msg, flush=True)


def same(v, i, rv, ri):
    return np.array_equal(i, ri) and np.array_equal(v.view(np.uint32), rv.view(np.uint32))


def existing_candidates(wb, rows, cols, k, quick):
    """The configuration a call without params runs (the shipped rule for this adapter), then 2CE candidates."""
    sg = "subgroups" in wb.features
    kp = 1 << (k - 1).bit_length()
    pick = stt.choose_topk(rows, cols, k, device="wgpu").params
    c = [pick] + [{"use_2ce": True, "wg": wg, "kl": kl, "ch": max(ch, kp), "sg": s}
                  for wg, kl, ch in ((256, 4, 4096), (512, 8, 16384), (1024, 4, 8192)) for s in sorted({False, sg})]
    out = []
    for p in c:
        if p not in out and not violations("topk", {"rows": rows, "cols": cols, "k": k}, p, wb.limits, wb.features):
            out.append(p)
    return out[:2] if quick else out


def phases_us(wb, passes, bg, reps=20):
    """Median GPU time of each dispatch of the chain, each in a compute pass of its own between timestamps (after
    the same number of warm-up chains); None without timestamp queries."""
    if "timestamp-query" not in wb.features:
        return None
    dev, u = wb._device, wb._wgpu.BufferUsage
    n = len(passes)
    qs = dev.create_query_set(type="timestamp", count=2 * n * reps)
    res = dev.create_buffer(size=16 * n * reps, usage=u.QUERY_RESOLVE | u.COPY_SRC)
    try:
        enc = dev.create_command_encoder()
        wb._encode(enc, passes, bg, chains=reps)
        for r in range(reps):
            for j, ps in enumerate(passes):
                q = 2 * (r * n + j)
                wb._encode(enc, [ps], bg, 1, qs, q, q + 1)
        t = wb._intervals_ms(enc, qs, res, n * reps)
    finally:
        res.destroy()
        qs.destroy()
    return [round(statistics.median(t[j::n]) * 1e3, 2) for j in range(n)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", help="ROWSxCOLSxK,... (default: 1x1048576x1024,16x1048576x4096,8x65536x4096)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmups", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="two configurations of each kind")
    ap.add_argument("--phases", action="store_true", help="also time each dispatch of the best of each kind")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes else SHAPES
    wb = WgpuBackend()
    ok, why = wb.available()
    if not ok:
        sys.exit(f"no wgpu adapter: {why}")
    rt = RadixTopK(wb)
    info = wb.info()
    log(f"adapter: {info['device'] or info['description']} ({info['backend']}, {info['adapter_type']}); "
        f"timer {info['timer']}; subgroups {info['subgroup_sizes']}")
    result, wrong = {"adapter": info, "shapes": []}, 0
    for seed, (rows, cols, k) in enumerate(shapes, 1):
        x = gen.floats(seed, (rows, cols))
        rv, ri = topk_reference(x, k)
        log(f"{rows}x{cols} k={k}")
        entry = {"shape": [rows, cols, k], "existing": [], "radix": []}
        kinds = (("existing", wb.topk2d, wb.time_topk2d, existing_candidates(wb, rows, cols, k, args.quick)),
                 ("radix", rt.topk2d, rt.time_topk2d, RADIX_GRID[:2] if args.quick else RADIX_GRID))
        for kind, run, timed, configs in kinds:
            for p in configs:
                try:
                    t0 = time.perf_counter()
                    good = same(*run(x, k, p), rv, ri)
                    if not good:
                        wrong += 1
                        log(f"   {kind} {p}: WRONG RESULT")
                        entry[kind].append({"params": p, "ok": False})
                        continue
                    t = timed(x, k, p, repeats=args.repeats, warmups=args.warmups)
                    log(f"   {kind} {p}: {t.median_ms * 1e3:.1f} us ({t.timer}; "
                        f"{time.perf_counter() - t0:.1f} s with the check)")
                    entry[kind].append({"params": p, "ok": True, **t.as_dict()})
                except SpiralTorchError as e:
                    log(f"   {kind} {p}: {e}")
                    entry[kind].append({"params": p, "error": str(e)})
        best = {kind: min((e for e in entry[kind] if "median_ms" in e), key=lambda e: e["median_ms"], default=None)
                for kind in ("existing", "radix")}
        entry["best"] = best
        if best["existing"] and best["radix"]:
            ratio = best["radix"]["median_ms"] / best["existing"]["median_ms"]
            entry["radix_over_existing"] = ratio
            log(f"   best existing {best['existing']['params']}: {best['existing']['median_ms'] * 1e3:.1f} us; "
                f"best radix {best['radix']['params']}: {best['radix']['median_ms'] * 1e3:.1f} us; "
                f"radix / existing = {ratio:.3f}")
        if args.phases:
            for kind in ("existing", "radix"):
                if not best[kind]:
                    continue
                p = best[kind]["params"]
                if kind == "radix":
                    passes, bg, bufs = rt.plan(x, k, p)
                    names = [pass_name(e, own) for e, _, own in radix_chain(plan_shape(rows, cols, k, p), rows, k)]
                else:
                    passes, bg, bufs = wb._topk_plan(x, k, p)
                    names = ["topk_chunks", "topk_merge"] if p["use_2ce"] else ["topk_1ce"]
                try:
                    us = phases_us(wb, passes, bg)
                finally:
                    for b in bufs:
                        b.destroy()
                entry[f"phases_{kind}_us"] = list(zip(names, us)) if us is not None else None
                if us is not None:
                    log(f"   phases {kind} (us, a pass each; sum {sum(us):.1f}): "
                        + ", ".join(f"{n} {v}" for n, v in zip(names, us)))
        result["shapes"].append(entry)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1, default=str)
    log(f"wrong results: {wrong}")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
