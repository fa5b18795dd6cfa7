"""What a call costs on the CUDA device timer before any work, timed as bench_gpu.py times ours
(CudaBackend.time_device: a spin kernel before each sample, CUDA events around the call; medians of 100): an empty
kernel (1 block; 128 blocks of 512 threads with 0, 50 and 100 KB of dynamic shared memory, plain and as clusters of 8
and 16 through cuLaunchKernelEx), a kernel that only reads the seed shape's 2 MB, and the seed shape through
topk_cluster. Kernels: bench/cuda_floor.cu. Needs CuPy and an H100/H200.

    python3 bench/cuda_floor.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spiraltorch_tuner import cases
from spiraltorch_tuner.cuda import CudaBackend, radix_params


def main() -> int:
    import cupy as cp
    cb = CudaBackend()
    cb._kernels()
    mod = cp.RawModule(code=(Path(__file__).parent / "cuda_floor.cu").read_text(), options=("-std=c++17",))
    nop, read_only = mod.get_function("nop"), mod.get_function("read_only")
    z = cp.zeros(4, dtype=cp.int32)
    x = cp.asarray(cases.topk_input(1, 8, 65536))
    o = cp.zeros(4, cp.float32)

    def us(f):
        return cb.time_device(f, 100, 10).median_ms * 1e3
    print(f"empty kernel, 1 block of 32: {us(lambda: nop((1,), (32,), (z,))):.2f} us")
    for smem in (0, 50 * 1024, 100 * 1024):
        if smem > 48 * 1024:
            nop.max_dynamic_shared_size_bytes = smem
        for cl in (0, 8, 16):
            t = us(lambda: cb._driver.launch(nop, (128,), (512,), (z,), smem, cluster=cl))
            print(f"empty kernel, 128 blocks of 512, {smem // 1024} KB shared, cluster {cl or '-'}: {t:.2f} us")
    t = us(lambda: read_only((512,), (256,), (x, o, np.int32(131072))))
    print(f"read 2 MB (8x65536 floats), 512 blocks of 256: {t:.2f} us")
    for srt in (False, True):
        for blocks, wg in ((16, 512), (8, 1024), (8, 512)):
            p = radix_params(65536, blocks, wg)
            t = cb.time_topk2d_device(x, 4096, p, 100, 10, sorted=srt).median_ms * 1e3
            print(f"8x65536 k=4096 topk_cluster {blocks} blocks x {wg}, {'sorted' if srt else 'unsorted'}: {t:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
