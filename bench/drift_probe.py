"""Diagnose timing drift on a discrete GPU: inside one tuning process the driver may lower the GPU clock when the GPU
looks idle, and every later time is too high. Run beside `nvidia-smi --query-gpu=timestamp,clocks.sm
--format=csv -lms 250` to see the clock.

    python3 bench/drift_probe.py sequence [--steps 120]   # the tuner's sequence for 8x65536 k=4096; after each
        step one fixed reference configuration timed two ways: the backend's timing (warm-up and samples back to
        back in one submission) and "gapped" (one submission and one host round trip per sample, the old way)
    python3 bench/drift_probe.py ramp                      # after 3 s idle, 1500 reference chains in one submission,
        each between its own timestamps: how fast the clock comes back under continuous load

Measured on the H100 (2026-11-25, bench/results/h100-2026-11-25-drift.txt): with gapped samples the SM clock fell
from 1980 to 345 MHz about 4 s into a tuning run and the reference time rose from 125 us to 300-500 us.
"""
from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np

from spiraltorch_tuner import cases
from spiraltorch_tuner.tuner import plan, topk_job
from spiraltorch_tuner.wgpu_backend import WgpuBackend

SHAPE = (8, 65536, 4096)
REF = {"use_2ce": True, "wg": 256, "kl": 4, "ch": 8192, "sg": False}
PARAMS = {"use_2ce": [False, True], "wg": [256, 512, 1024], "kl": [4, 8, 16, 32],
          "ch": [0, 4096, 8192, 16384, 32768], "sg": [False, True]}


def smi() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,power.draw,clocks_throttle_reasons.active",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"nvidia-smi: {e}"


def gapped_us(be, x, params, repeats=10, warmups=2) -> float:
    """The old measurement: each sample its own submission and host round trip (the GPU idles in between)."""
    passes, bg, bufs = be._topk_plan(x, SHAPE[2], params)
    dev, u = be._device, be._wgpu.BufferUsage
    qs = dev.create_query_set(type="timestamp", count=2)
    res = dev.create_buffer(size=16, usage=u.QUERY_RESOLVE | u.COPY_SRC)
    for _ in range(warmups):
        enc = dev.create_command_encoder()
        be._encode(enc, passes, bg)
        dev.queue.submit([enc.finish()])
    out = []
    for _ in range(repeats):
        enc = dev.create_command_encoder()
        be._encode(enc, passes, bg, 1, qs, 0, 1)
        out.append(be._intervals_ms(enc, qs, res, 1)[0] * 1e3)
    for b in (*bufs, res):
        b.destroy()
    qs.destroy()
    return float(np.median(out))


def sequence(steps: int, with_smi: bool):
    be = WgpuBackend()
    info = be.info()
    x = cases.topk_input(1, *SHAPE[:2], "uniform")
    jobs = plan({"topk": {"shapes": [list(SHAPE)], "params": PARAMS}}, info["limits"], info["features"])
    print("device", info["description"], "jobs", len(jobs), flush=True)
    t0 = time.perf_counter()

    def ref(tag):
        busy = be.time_topk2d(x, SHAPE[2], REF, repeats=10, warmups=2).median_ms * 1e3
        print(f"{tag:>4} REF busy {busy:7.1f} us  gapped {gapped_us(be, x, REF):7.1f} us  "
              f"t {time.perf_counter() - t0:6.2f} s {smi() if with_smi else ''}", flush=True)
    ref("pre")
    for i, (_, shape, p) in enumerate(jobs[:steps]):
        m = topk_job(be, 1, *shape, p, 10, 2)
        t = m.get("median_ms")
        print(f"{i:>4} {p} -> {t * 1e3 if t else float('nan'):8.1f} us", flush=True)
        ref(str(i))


def ramp(idle_s: float = 3.0, chains: int = 1500):
    be = WgpuBackend()
    be.info()
    x = cases.topk_input(1, *SHAPE[:2], "uniform")
    passes, bg, bufs = be._topk_plan(x, SHAPE[2], REF)
    dev, u = be._device, be._wgpu.BufferUsage
    for _ in range(2):
        be._sync()
        time.sleep(idle_s)
        qs = dev.create_query_set(type="timestamp", count=2 * chains)
        res = dev.create_buffer(size=16 * chains, usage=u.QUERY_RESOLVE | u.COPY_SRC)
        enc = dev.create_command_encoder()
        for i in range(chains):
            be._encode(enc, passes, bg, 1, qs, 2 * i, 2 * i + 1)
        enc.resolve_query_set(qs, 0, 2 * chains, res, 0)
        dev.queue.submit([enc.finish()])
        t = np.frombuffer(dev.queue.read_buffer(res), dtype=np.uint64).astype(np.int64).reshape(-1, 2)
        d = (t[:, 1] - t[:, 0]) / 1e3
        start = (t[:, 0] - t[0, 0]) / 1e6     # when each chain began (the ramp's time axis): raw timestamps
        for i in [*range(0, 20, 2), *range(20, 200, 20), *range(200, chains, 100)]:
            print(f"ramp chain {i:5d} at {start[i]:8.2f} ms: {d[i]:7.1f} us", flush=True)
        print(f"ramp total {start[-1]:.1f} ms, median of the last 100 {np.median(d[-100:]):.1f} us", flush=True)
        res.destroy()
        qs.destroy()
        time.sleep(idle_s)
        print(f"after {idle_s} s idle: busy {be.time_topk2d(x, SHAPE[2], REF, 10, 2).median_ms * 1e3:.1f} us, "
              f"gapped {gapped_us(be, x, REF):.1f} us", flush=True)
    for b in bufs:
        b.destroy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["sequence", "ramp"])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--smi", action="store_true", help="read the clock with nvidia-smi after every step")
    args = ap.parse_args()
    sequence(args.steps, args.smi) if args.mode == "sequence" else ramp()


if __name__ == "__main__":
    main()
