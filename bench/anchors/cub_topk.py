"""CUB's batched top-k as an anchor: bench/anchors/cub_topk.cu built with nvcc into a shared library at bench time,
against the CCCL headers that flashinfer-python's wheel vendors, and called through ctypes with CuPy device pointers
on CuPy's current stream (so it is timed exactly as our CUDA kernels are: CudaBackend.time_device).

One batched call covers all rows (cub::DeviceBatchedTopK::MaxPairs, each row a segment); its temporary storage is
allocated once per (shape, k, mode) and reused. Modes (see cub_topk.cu): `sorted` adds CUB's segmented sort of each
row's k results (DeviceBatchedTopK itself only returns them unsorted); `tie_break` 1 asks for the lower indices among
items that tie at the k-th value (the oracle's set), 0 leaves that choice to CUB.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).with_name("cub_topk.cu")
MAX_COLS = 1 << 21   # DeviceBatchedTopK's segment limit in CCCL 3.6


def cccl_include_dirs() -> list[Path]:
    """The CCCL headers of the installed flashinfer-python (flashinfer/data/cccl), found without importing it;
    SPIRALTORCH_ANCHORS_CCCL (a CCCL checkout's root) overrides. Raises FileNotFoundError naming what is missing."""
    root = os.environ.get("SPIRALTORCH_ANCHORS_CCCL")
    if not root:
        spec = importlib.util.find_spec("flashinfer")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("flashinfer-python is not installed, and its wheel carries the CCCL headers "
                                    "(bash bench/anchors.sh prepare; or set SPIRALTORCH_ANCHORS_CCCL)")
        root = str(Path(list(spec.submodule_search_locations)[0]) / "data" / "cccl")
    dirs = [Path(root) / "cub", Path(root) / "libcudacxx" / "include", Path(root) / "thrust"]
    if not (dirs[0] / "cub" / "device" / "device_batched_topk.cuh").is_file():
        raise FileNotFoundError(f"no cub/device/device_batched_topk.cuh under {dirs[0]} (CCCL 3.6 or later needed)")
    return dirs


def find_nvcc() -> str:
    for cand in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if cand and Path(cand, "bin", "nvcc").is_file():
            return str(Path(cand, "bin", "nvcc"))
    nvcc = shutil.which("nvcc")
    if not nvcc:
        raise FileNotFoundError("nvcc not found (not on PATH, nor in CUDA_HOME/bin)")
    return nvcc


def build_command(nvcc: str, arch: str, includes: list[Path], out: Path) -> list[str]:
    """The nvcc line: Hopper's own code (sm_90a) where the device is sm_90, written as -gencode (HOPPER.md: the
    -arch=sm_90a shorthand also runs a plain sm_90 pass); cudart linked statically, nvcc's default."""
    return [nvcc, "-std=c++17", f"-gencode=arch=compute_{arch},code=sm_{arch}", "-O3", "-shared",
            "-Xcompiler", "-fPIC", *[f"-I{d}" for d in includes], str(SOURCE), "-o", str(out)]


class CubTopK:
    """The harness, built once per process (or found built in the cache folder, keyed by source, flags and nvcc)."""

    name = "cub"

    def __init__(self, device: int = 0, cache_dir: str | None = None):
        self._device = device
        self._cache = Path(cache_dir or Path(tempfile.gettempdir()) / "spiraltorch-anchors")
        self._status = None
        self._lib = None
        self._info = {}
        self._temp = {}

    def available(self) -> tuple[bool, str]:
        if self._status is None:
            try:
                self._load()
                self._status = (True, "")
            except Exception as e:   # any failure to find, build or load is reported, never raised
                self._status = (False, f"{type(e).__name__}: {e}")
        return self._status

    def info(self) -> dict:
        return dict(self._info)

    def _load(self):
        import cupy as cp
        cc = cp.cuda.Device(self._device).compute_capability   # "90" on an H100 or H200
        arch = cc + ("a" if cc[:-1] == "9" else "")
        includes = cccl_include_dirs()
        nvcc = find_nvcc()
        version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
        key = hashlib.sha256("\n".join([SOURCE.read_text(), arch, version, *map(str, includes)]).encode()).hexdigest()
        out = self._cache / f"libst_cub_topk-{key[:16]}.so"
        cmd = build_command(nvcc, arch, includes, out)
        t0 = time.perf_counter()
        if not out.is_file():
            self._cache.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(f".{os.getpid()}.tmp")
            r = subprocess.run(cmd[:-1] + [str(tmp)], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"nvcc failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-2000:]}")
            tmp.replace(out)
        build_s = time.perf_counter() - t0
        lib = ctypes.CDLL(str(out))
        lib.st_cub_version.restype = ctypes.c_int
        lib.st_cub_error_string.restype = ctypes.c_char_p
        lib.st_cub_error_string.argtypes = [ctypes.c_int]
        lib.st_cub_topk_segment_bound.restype = ctypes.c_int64
        lib.st_cub_topk_segment_bound.argtypes = [ctypes.c_int64]
        lib.st_cub_topk_temp_bytes.restype = ctypes.c_int
        lib.st_cub_topk_temp_bytes.argtypes = ([ctypes.c_int64] * 3 + [ctypes.c_int] * 2
                                               + [ctypes.POINTER(ctypes.c_size_t)])
        lib.st_cub_topk.restype = ctypes.c_int
        lib.st_cub_topk.argtypes = ([ctypes.c_void_p] * 4 + [ctypes.c_size_t] + [ctypes.c_int64] * 3
                                    + [ctypes.c_int] * 2 + [ctypes.c_void_p])
        self._lib = lib
        v = lib.st_cub_version()
        self._info = {"cub_version": f"{v // 100000}.{v // 100 % 1000}.{v % 100}", "nvcc": version,
                      "build": " ".join(cmd), "build_s": round(build_s, 1), "library": str(out),
                      "api": "cub::DeviceBatchedTopK::MaxPairs (one call, rows as segments); sorted: + "
                             "cub::DeviceSegmentedSort::SortPairsDescending"}

    def _check(self, err: int, what: str):
        if err:
            raise RuntimeError(f"{what}: {self._lib.st_cub_error_string(err).decode()} (cudaError {err})")

    def temp_for(self, rows: int, cols: int, k: int, tie_break: int, sorted_output: bool):
        """The temporary storage of these arguments (CuPy, allocated once and kept until release())."""
        import cupy as cp
        key = (rows, cols, k, tie_break, bool(sorted_output))
        if key not in self._temp:
            n = ctypes.c_size_t(0)
            self._check(self._lib.st_cub_topk_temp_bytes(rows, cols, k, tie_break, int(sorted_output),
                                                         ctypes.byref(n)), "temporary storage query")
            self._temp[key] = cp.empty(max(1, n.value), dtype=cp.uint8)
        return self._temp[key]

    def release(self):
        """Free the temporary storage kept so far (the bench calls this after each shape)."""
        self._temp.clear()

    def describe(self, rows: int, cols: int, k: int, tie_break: int, sorted_output: bool) -> dict:
        """For the log: the segment-size bound the call compiles against and its temporary storage in bytes."""
        return {"segment_bound": int(self._lib.st_cub_topk_segment_bound(cols)),
                "temp_bytes": int(self.temp_for(rows, cols, k, tie_break, sorted_output).nbytes)}

    def enqueue(self, xd, k: int, *, tie_break: int = 0, sorted_output: bool = True):
        """(run, values, indices): run() enqueues the top-k of CuPy float32 [rows, cols] xd on CuPy's current stream
        into the preallocated values (float32) and indices (int64) [rows, k]."""
        import cupy as cp
        ok, why = self.available()
        if not ok:
            raise RuntimeError(why)
        rows, cols = xd.shape
        if xd.dtype != cp.float32 or not xd.flags.c_contiguous:
            raise ValueError("xd must be a C-contiguous float32 CuPy array")
        if cols > MAX_COLS:
            raise ValueError(f"CUB's DeviceBatchedTopK takes rows of at most 2^21 columns, got {cols}")
        temp = self.temp_for(rows, cols, k, tie_break, sorted_output)
        values = cp.empty((rows, k), dtype=cp.float32)
        indices = cp.empty((rows, k), dtype=cp.int64)

        def run():
            self._check(self._lib.st_cub_topk(xd.data.ptr, values.data.ptr, indices.data.ptr, temp.data.ptr,
                                              temp.nbytes, rows, cols, k, tie_break, int(sorted_output),
                                              cp.cuda.get_current_stream().ptr), "st_cub_topk")
        return run, values, indices
