"""FlashInfer's top-k as an anchor: `flashinfer.top_k` of the flashinfer-python wheel (0.7.2.post1), on torch
tensors, JIT-compiled on first use with this machine's nvcc.

Only `flashinfer.topk` and what it imports are loaded: the package's own __init__.py, which imports every kernel
family FlashInfer has (attention, MoE, GEMM: CuTe-DSL, cuDNN frontend, ...), is skipped, so the top-k path needs no
more than torch, apache-tvm-ffi, filelock, jinja2, packaging, requests and nvidia-ml-py. The function that runs is
the wheel's, unchanged.

FlashInfer's semantics (flashinfer/topk.py, 0.7.2.post1): `top_k(x, k, sorted=False, deterministic=False,
tie_break=0)`; values and int64 indices. With tie_break 0 (the default) which items are returned among those that
tie at the k-th value is unspecified. `sorted=True` sorts the k results descending (torch.sort, not stable, unless
deterministic with k <= 2048); without it the order is unspecified. Its dispatch picks a backend per call: on an
H100/H200 (SM 9.0) the radix kernels (FilteredTopK / RadixTopK), or CUB's DeviceBatchedTopK for unsorted calls on
short rows or few rows (`can_use_cub_topk`, `is_cub_topk_beneficial`); the SM 10.0 clusters kernel not at all.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VERSION = "0.7.2.post1"
SPLIT_COMPILE = 0   # nvcc --split-compile: 0 = as many threads as the machine has CPUs


def cuda_home() -> str | None:
    """The CUDA toolkit's root: CUDA_HOME or CUDA_PATH, else where nvcc says it runs from (`nvcc --dryrun` prints
    it; FlashInfer's own guess, two folders above `which nvcc`, is /usr/local where /usr/local/bin/nvcc is a script
    that runs the real one, as on this workplace's CPU machine), else /usr/local/cuda."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home:
        return home
    nvcc = shutil.which("nvcc")
    if nvcc:
        try:
            r = subprocess.run([nvcc, "--dryrun", "-E", "-x", "cu", os.devnull], capture_output=True, text=True,
                               timeout=120)
            m = re.search(r"^#\$ _HERE_=(.+)$", r.stdout + r.stderr, re.M)
            if m:
                return str(Path(m.group(1).strip()).resolve().parent)
        except (OSError, subprocess.SubprocessError):
            pass
        return str(Path(nvcc).resolve().parents[1])
    return "/usr/local/cuda" if Path("/usr/local/cuda/bin/nvcc").exists() else None


def curand_include() -> str | None:
    """The folder of curand_kernel.h when the CUDA toolkit nvcc belongs to lacks it (a toolkit assembled from pip
    packages, like this workplace's CPU machine's) but the nvidia-curand wheel has it: FlashInfer's top-k sources
    include flashinfer/sampling.cuh, which includes cuRAND's device header. None when the toolkit has it or none is
    found."""
    home = os.environ.get("CUDA_HOME") or cuda_home()
    if home and Path(home, "include", "curand_kernel.h").is_file():
        return None
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations if spec else None) or []:
        for hit in sorted(Path(root).glob("*/include/curand_kernel.h")):
            return str(hit.parent)
    return None


def libcuda_link_dir(workspace: Path) -> str | None:
    """A folder with a libcuda.so for the link step's `-lcuda`, where the toolkit has no lib64/stubs (one assembled
    from pip packages) and the linker's own folders hold only the driver's libcuda.so.1: a link, in the workspace,
    to the driver library this process has loaded (torch has initialized CUDA by then). None when not needed or
    not found."""
    home = os.environ.get("CUDA_HOME") or cuda_home()
    if home and any(Path(home, d, "libcuda.so").exists() for d in ("lib64/stubs", "lib64", "lib/stubs", "lib")):
        return None
    try:
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        cache = ""
    if re.search(r"^\s*libcuda\.so \(", cache, re.M):
        return None
    loaded = [ln.split()[-1] for ln in Path("/proc/self/maps").read_text().splitlines() if "/libcuda.so" in ln]
    if not loaded:
        return None
    d = workspace / "libcuda"
    d.mkdir(parents=True, exist_ok=True)
    link = d / "libcuda.so"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(loaded[0])
    return str(d)


def _add_flag(var: str, flag: str, unless: str | None = None):
    """Append flag to the variable unless it, or `unless`, is already there (a value the caller set wins)."""
    if (unless or flag) not in os.environ.get(var, ""):
        os.environ[var] = (os.environ.get(var, "") + " " + flag).strip()


def jit_environment(arch: str) -> dict:
    """The environment FlashInfer's JIT reads at import, set where unset: one target architecture (e.g. "9.0",
    which FlashInfer builds as sm_90a), the toolkit's root, a workspace under the temporary folder, nvcc's split
    compilation (cicc's and ptxas's work spread over the CPUs: FlashInfer's cub_topk.cu takes 838 s on one core,
    555 s on two), and where needed cuRAND's include folder and a folder with libcuda.so. Returns what it set."""
    tmp = Path(tempfile.gettempdir())
    env = {"FLASHINFER_CUDA_ARCH_LIST": arch, "FLASHINFER_WORKSPACE_BASE": str(tmp / "flashinfer-ws"),
           "TVM_FFI_CACHE_DIR": str(tmp / "tvm-ffi-cache")}
    home = cuda_home()
    if home:
        env["CUDA_HOME"] = home   # for FlashInfer's include (-isystem) and link (-L) folders
    out = {k: os.environ.setdefault(k, v) for k, v in env.items()}
    _add_flag("FLASHINFER_EXTRA_CUDAFLAGS", f"--split-compile={SPLIT_COMPILE}", unless="--split-compile")
    inc = curand_include()
    if inc:
        _add_flag("FLASHINFER_EXTRA_CUDAFLAGS", f"-isystem {inc}")
    lib = libcuda_link_dir(Path(out["FLASHINFER_WORKSPACE_BASE"]))
    if lib:
        _add_flag("FLASHINFER_EXTRA_LDFLAGS", f"-L{lib}")
    out.update({k: os.environ[k] for k in ("FLASHINFER_EXTRA_CUDAFLAGS", "FLASHINFER_EXTRA_LDFLAGS")
                if os.environ.get(k)})
    return out


def load_topk_module():
    """flashinfer.topk, imported without running flashinfer/__init__.py (see the module docstring)."""
    if "flashinfer" not in sys.modules:
        spec = importlib.util.find_spec("flashinfer")
        if spec is None:
            raise ImportError("flashinfer-python is not installed (bash bench/anchors.sh prepare, then install "
                              ".anchors/flashinfer-topk-*.zip and .anchors/whl/*.whl: docs/performance.md)")
        sys.modules["flashinfer"] = importlib.util.module_from_spec(spec)   # the package, its __init__ not run
    return importlib.import_module("flashinfer.topk")


class FlashInferTopK:
    """flashinfer.top_k, loaded and JIT-built once (available() does both and says why when it cannot)."""

    name = "flashinfer"

    def __init__(self, device: int = 0):
        self._device = device
        self._status = None
        self._mod = None
        self._info = {}

    def available(self) -> tuple[bool, str]:
        if self._status is None:
            try:
                self._load()
                self._status = (True, "")
            except Exception as e:   # an import, JIT or load failure is reported, never raised
                self._status = (False, f"{type(e).__name__}: {str(e).strip()[-2000:]}")
        return self._status

    def info(self) -> dict:
        return dict(self._info)

    def _load(self):
        import torch
        major, minor = torch.cuda.get_device_capability(self._device)
        env = jit_environment(f"{major}.{minor}")
        mod = load_topk_module()
        try:
            version = importlib.metadata.version("flashinfer-python")
        except importlib.metadata.PackageNotFoundError:
            version = getattr(sys.modules.get("flashinfer.version"), "__version__", "unknown")
        jit_env = importlib.import_module("flashinfer.jit.env")
        aot = jit_env.FLASHINFER_AOT_DIR / "topk" / "topk.so"      # bench/anchors.sh aot: built ahead of time
        t0 = time.perf_counter()
        mod.get_topk_module()          # the AOT module where present, else the JIT build (ninja + nvcc) or its cache
        build_s = time.perf_counter() - t0
        self._mod = mod
        self._info = {"version": version, "expected_version": VERSION, "jit_build_s": round(build_s, 1),
                      "aot_module": str(aot) if aot.exists() else None,
                      "environment": env, "module": mod.__file__,
                      "api": "flashinfer.top_k(x, k, sorted=...) (flashinfer/topk.py)"}

    def backend(self, xt, k: int, sorted_output: bool) -> str:
        """Which of its backends FlashInfer's dispatch runs for this call, asked with its own predicates."""
        m = self._mod
        algo = os.environ.get("FLASHINFER_TOPK_ALGO")
        clusters = m.can_use_clusters_topk(algo, xt.device, False, m.TopKTieBreak.NONE, False)
        if m.can_use_cub_topk(algo, xt, m.TopKTieBreak.NONE, False, sorted_output) and m.is_cub_topk_beneficial(
                algo, xt.size(0), xt.size(1), k, xt.dtype, m.TopKTieBreak.NONE, False, clusters):
            return "cub (DeviceBatchedTopK)"
        if clusters:
            return "clusters" + (" + torch.sort" if sorted_output else "")
        return "radix" + (" + torch.sort" if sorted_output else "")

    def enqueue(self, xt, k: int, *, sorted_output: bool = True):
        """run(): one flashinfer.top_k call on torch's current stream, returning (values, indices)."""
        ok, why = self.available()
        if not ok:
            raise RuntimeError(why)
        top_k = self._mod.top_k
        return lambda: top_k(xt, k, sorted=sorted_output)
