"""CUDA backend: TopK and where_nd kernels written for this project in CUDA C++ (shaders/topk.cu, where_nd.cu,
spin.cu; shaders.cuda_source assembles them), compiled at first use with NVRTC through CuPy (cupy.RawModule); this
module holds the launch logic. `import cupy` happens only inside methods, so `import spiraltorch_tuner` works
everywhere.

TopK (same semantics as cpu.topk_reference, bit for bit: the k largest of each row sorted descending, ties to the
lower column, NaN above every number, -0.0 below +0.0). Every element gets the 64-bit composite key
(order-preserving u32 of the float, ~column); keys are distinct, so "the k largest keys" is exactly the answer.

* 1CE (`use_2ce` false), kernel `topk_rows`: a group of KLANE lanes owns one row. The row is streamed once from
  global memory into shared memory as u32 keys (16-byte loads, double-buffered; the first 8-bit digit's histogram
  is built in the same pass), then radix-selected 8 bits at a time in shared memory (256-bin histogram, stops as
  soon as the chosen bin holds exactly what is still needed), the k selected keys compacted and bitonic-sorted.
  One launch. `kl` sets KLANE = min(wg, max(32*kl, wg/8)) lanes per row, so kl=4 is the KLANE=128 variant (four
  warps on a row, wg/128 rows per block, each group synchronised by its own named barrier).
* 1CE over rows longer than shared memory holds (one group a row), kernel `topk_stream`: one block a row reads
  the row from global memory once per pass instead of keeping it: 11-bit histogram passes (the first from DRAM,
  the next from L2) until the bin of the k-th largest is settled or holds at most CAND_CAP keys, one more pass
  collects the keys above that bin and its candidates into shared memory, then radix select and bitonic sort as
  above. Keys all equal to the k-th largest and more than CAND_CAP of them (a row of one repeated value) are taken
  in column order, a block-wide scan per tile. H200, 1024x65536 k=128: 210 us against 330 for the 2-stage path.
* 2-stage (`use_2ce` true; chunks of `ch` columns, `wg` threads per block; grid = chunks x rows, which fills the
  132 SMs even for 1..16 rows). Kernel `topk_hist` (pass 1a, once per 11-bit digit: once for cols <= 2^17, else
  twice): each block histograms its chunk's digit in shared memory and adds the non-zero bins into a per-row global
  histogram; the last block of a row to finish (atomic counter, threadfence) finds the bin holding the k-th largest
  and records the row's key prefix. Kernel `topk_filter` (pass 1b + pass 2): each block compacts its chunk's
  candidates -- keys above the prefix ("sure", fewer than k) and keys equal to it -- into per-row lists; the last
  block of the row then does the K-way merge of all chunks' candidates: radix select of the still-needed ones
  (in shared memory when they fit, else from L2), bitonic sort of the k, write. From k = 2048 the last block only
  leaves the k selected keys in scratch, and two more launches sort them with many blocks per row: `topk_segsort`
  (256-key segments, bitonic, in place) and `topk_rank` (each key's output place = its count of greater keys over
  all sorted segments, by binary search; one write each) -- on the H100 this took 8x65536 k=4096 from 56.7 to
  36.2 us (bench/cuda_phases.py shows the launches); the merge then leaving the sure keys where they are (only the
  selected candidates join them) and loads with eight in flight per thread took it to 33.0 us. So 2 launches for cols <= 2^17, 3 above, 2 more for large k;
  every scratch counter and histogram is reset by the kernel that consumed it (no memset launches).
  On sm_90+ every launch after a plan's first is a programmatic dependent launch (cuLaunchKernelEx, griddepcontrol.wait
  at the kernel's top): 8x65536 k=4096 33.0 -> 29.8 us on the H100.
  `kl` is not used by the 2-stage path.
* Radix pipeline (`radix` true, `rb` 11, `rch` columns a block; sm_90+), kernel `topk_cluster`: the 2-stage
  path's work in one launch. A row's blocks (2, 4, 8 or 16: rch columns each, rounded up to a power of two of
  blocks) are one thread-block cluster; each keeps its columns as keys in shared memory. Radix select 11 + 11 + 10
  bits: each block's histogram goes, through distributed shared memory, to the blocks owning its bins (adds into
  their shared memory) and its per-owner totals to every block; after one cluster barrier every block finds the
  bin of the k-th largest from those. A sorted call stops once that bin holds at most k/8 keys past what is needed,
  takes the whole bin, and drops the extra keys by rank; each block bitonic-sorts its selected keys in registers,
  gathers the others' sorted lists and writes each key at its rank over all of them (binary search). sorted=False
  selects exactly k (ties to the lower column across the cluster by a prefix of the blocks' counts) and writes
  them with no sort: one atomic on block 0's counter reserves a block's place; with 2 or 4 blocks, once the first
  round's bin holds at most CLUSTER_BCAST keys of the row, they are broadcast to every block, which finishes the
  select alone. H200, 8x65536 k=4096: 16.4 us unsorted (sorted, 30 us: the 2-stage path stays there);
  params=None takes it where CLUSTER_TABLE says.
* The scan loop (both paths) reads 16-byte vectors with ld.global.nc, two in flight per thread and the next two
  prefetched while the current ones are processed; a scalar head aligns the row to 16 bytes and a scalar tail
  finishes it, so any cols and unaligned row starts work.

where_nd (direct-strided): cond, x, y are the underlying memory of the original views, uploaded once (strided_view),
with byte offsets and byte strides per output dim (0 = broadcast, negative = reversed), dims coalesced first.
`where_vec{1,2,4,8}`: each thread produces `vpt` groups of 4 consecutive outputs (16-byte store) with 16-byte loads
of x/y (or one 4-byte load splatted for an innermost broadcast), 4 cond bytes in one load; used when the innermost
dim is a multiple of 4 and contiguous or broadcast in every input at 16/4-byte alignment. `where_any{32,64}`: one
element at a time, any strides. Path "segmented" writes each input out at full output shape on the host first
(the baseline the direct path is compared with).
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

from .backend import Timing, check_topk_args, check_where_args
from .errors import BackendUnavailable, KernelError, ParamsError, ShapeError
from .shaders import cuda_source
from .space import default_params as space_defaults
from .space import next_pow2
from .wgpu_backend import coalesce, strided_view   # pure NumPy helpers; wgpu itself is imported lazily there

sorted_ = sorted      # the builtin, where a `sorted` argument shadows it

NAME = "cuda"
INSTALL_HINT = "CuPy is not installed: pip install spiraltorch-tuner[cuda]"

HBITS = 11                  # digit of the 2-stage histogram passes (2048 bins)
HBINS_BYTES = 4 << HBITS
ONE_PASS_MAX_COLS = 1 << 17  # up to here one 11-bit histogram pass; above, two (22 bits) before filtering
MIN_BLOCKS = 256            # 2-stage: a block of topk_hist / topk_filter takes 2, 4, ... chunks while that leaves
                            # it this many blocks (2 a multiprocessor on the H200), up to 16 / 8
CAND_CAP = 8192             # candidates the merge keeps in shared memory; more are read from global (L2)
DEFAULT_CH = 4096
SEG = 256                   # keys per segment of topk_segsort / topk_rank (the #define in shaders/topk.cu)
RANK_SORT_MIN_K = 2048      # from this k (padded to a power of two) the 2-stage path sorts with many blocks per row

# params=None: the fastest configuration measured on an H100 for each kind of shape (bench/bench_gpu.py sweeps).
# (predicate on rows, cols, k) -> params; first match wins.
# Read off bench/results (sweep of bench/bench_gpu.py): short rows -> 1CE with KLANE=128 (kl=4, two rows per
# block); rows up to 8192 -> 1CE, 512 lanes; up to 32768 with enough rows -> 1CE, 1024 lanes; few long rows ->
# 2-stage with 4096-column chunks and 1024 threads (fills the SMs); many or very long rows -> 2-stage, 8192 columns.
# Since topk_stream (H200, bench/results/h200-2026-11-30-s23-stream-shapes.json): longer rows, 64 of them or more ->
# 1CE, a block a row: 1024 threads, or 512 where the row streams (over 57344 columns) and 256 rows or more keep
# three blocks on each multiprocessor. 1.0-1.8x faster than the 2-stage rows on the ten shapes measured (up to
# 200000 columns; longer rows keep the 2-stage path, unmeasured).
DEFAULT_TABLE = [
    (lambda r, c, k: c <= 2048, {"use_2ce": False, "wg": 256, "kl": 4, "ch": 0, "sg": False}),
    (lambda r, c, k: c <= 8192, {"use_2ce": False, "wg": 512, "kl": 16, "ch": 0, "sg": False}),
    (lambda r, c, k: c <= 32768 and r >= 32, {"use_2ce": False, "wg": 1024, "kl": 32, "ch": 0, "sg": False}),
    (lambda r, c, k: 57344 < c <= 262144 and r >= 256, {"use_2ce": False, "wg": 512, "kl": 16, "ch": 0,
                                                          "sg": False}),
    (lambda r, c, k: c <= 262144 and r >= 64, {"use_2ce": False, "wg": 1024, "kl": 32, "ch": 0, "sg": False}),
    (lambda r, c, k: c <= ONE_PASS_MAX_COLS and r < 132, {"use_2ce": True, "wg": 1024, "kl": 4, "ch": 4096,
                                                           "sg": False}),
    (lambda r, c, k: True, {"use_2ce": True, "wg": 512, "kl": 4, "ch": 8192, "sg": False}),
]

CLUSTER_MAX = 16            # blocks of a topk_cluster row (a non-portable cluster size on the H100/H200)
# topk_cluster, unsorted: once the first radix pass's bin holds at most CLUSTER_BCAST keys of a row, they are broadcast
# to every block of the cluster, which then finishes the select alone (no second and third pass). H200, 11 shapes
# (bench/results/h200-2026-12-01-s25-bcast-ab.txt): faster with 2 and 4 blocks a row (64x32768 k=256, 2x1024: 20.5 ->
# 19.0 us), slower on most shapes with 16 (8x65536 k=64, 16x512: 14.6 -> 17.8), so only up to CLUSTER_BCAST_BLOCKS.
CLUSTER_BCAST = 4096
CLUSTER_BCAST_BLOCKS = 4


def _rch(cols: int, blocks: int) -> int:
    """Columns a block (a multiple of 4) when a row is spread over `blocks` blocks."""
    return -(-(-(-cols // blocks)) // 4) * 4


def radix_params(cols: int, blocks: int, wg: int) -> dict:
    """The CUDA radix configuration (topk_cluster) that spreads a row of `cols` columns over `blocks` blocks."""
    return {"use_2ce": False, "wg": wg, "kl": 4, "ch": 0, "sg": False, "radix": True, "rb": 11,
            "rch": _rch(cols, blocks)}


def _radix(blocks: int, wg: int):
    return lambda r, c, k: radix_params(c, blocks, wg)


# On sm_90+, ahead of DEFAULT_TABLE: where the radix pipeline in one launch (topk_cluster, a row's blocks one
# thread-block cluster) is faster, each row used where its plan fits the device. (predicate, shape -> params).
# H200, bench/cuda_cluster_shapes.py (bench/results/h200-2026-12-01-s25-cluster-shapes.{json,txt}), 11 shapes of 1-64
# rows of 32768-262144 columns. Sorted: 1.1-1.5x faster than DEFAULT_TABLE's configuration for k up to 1024 and up
# to 64 rows of 32768 columns or more; not at k = 4096 (the seed shape: 29.8 against 28.4 us, the sort of each
# block's keys and their ranks across the blocks cost more than the 2-stage path's sort). sorted=False: no sort and no
# ranks, faster on all 11 shapes (seed 16.0 against 28.4 us).
CLUSTER_TABLE = [
    (lambda r, c, k: r <= 2 and 32768 < c <= 262144 and k <= 1024, _radix(16, 512)),
    (lambda r, c, k: r <= 8 and 32768 < c <= 131072 and k <= 1024, _radix(8, 512)),
    (lambda r, c, k: r <= 8 and 131072 < c <= 262144 and k <= 1024, _radix(16, 512)),
    (lambda r, c, k: r <= 16 and 32768 < c <= 65536 and k <= 1024, _radix(8, 512)),
    (lambda r, c, k: r <= 32 and 32768 < c <= 65536 and k <= 1024, _radix(8, 256)),
    (lambda r, c, k: r <= 64 and 32768 <= c <= 65536 and k <= 1024, _radix(2, 1024)),   # the columns measured
]
CLUSTER_TABLE_UNSORTED = [
    (lambda r, c, k: r <= 8 and 32768 < c <= 262144, _radix(16, 512)),
    (lambda r, c, k: r <= 16 and 32768 < c <= 65536, _radix(8, 512)),
    (lambda r, c, k: r <= 32 and 32768 < c <= 65536, _radix(8, 256)),
    (lambda r, c, k: r <= 64 and 32768 <= c <= 65536, _radix(2, 1024)),     # the columns measured
]

KERNELS = ("topk_rows", "topk_stream", "topk_cluster", "topk_hist", "topk_filter", "topk_segsort", "topk_rank",
           "where_vec1", "where_vec2", "where_vec4", "where_vec8", "where_any32", "where_any64", "spin")


class _LaunchAttr(ctypes.Structure):        # CUlaunchAttribute: id, padding, a 64-byte value union
    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_int * 16)]


class _LaunchConfig(ctypes.Structure):      # CUlaunchConfig
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3), ("smem", ctypes.c_uint),
                ("stream", ctypes.c_void_p), ("attrs", ctypes.POINTER(_LaunchAttr)), ("nattrs", ctypes.c_uint)]


_PROGRAMMATIC_STREAM_SERIALIZATION = 6     # CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
_CLUSTER_DIMENSION = 4                     # CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION
_NON_PORTABLE_CLUSTER_SIZE_ALLOWED = 14    # CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED


class DriverLauncher:
    """Launches a CuPy RawKernel through the driver's cuLaunchKernelEx, with programmatic stream serialization
    (pdl) or a thread-block cluster of `cluster` blocks along x; `active_clusters` asks the driver how many such
    clusters fit on the device at once. new() is None where the driver has no cuLaunchKernelEx (before CUDA 12)."""

    def __init__(self, cp, lib):
        self._cp = cp
        self._fn = lib.cuLaunchKernelEx
        self._fn.restype = ctypes.c_int
        self._lib = lib
        self._nonportable = set()

    @classmethod
    def new(cls, cp):
        try:
            lib = ctypes.CDLL("libcuda.so.1")
            lib.cuLaunchKernelEx
        except (OSError, AttributeError):
            return None
        return cls(cp, lib)

    def _config(self, kern, grid, block, smem, pdl, cluster):
        attrs = []
        if pdl:
            a = _LaunchAttr(id=_PROGRAMMATIC_STREAM_SERIALIZATION)
            a.value[0] = 1
            attrs.append(a)
        if cluster:
            if cluster > 8 and kern.kernel.ptr not in self._nonportable:
                self._lib.cuFuncSetAttribute(ctypes.c_void_p(kern.kernel.ptr), _NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1)
                self._nonportable.add(kern.kernel.ptr)
            a = _LaunchAttr(id=_CLUSTER_DIMENSION)
            a.value[0], a.value[1], a.value[2] = cluster, 1, 1
            attrs.append(a)
        arr = (_LaunchAttr * max(1, len(attrs)))(*attrs)
        g = tuple(grid) + (1,) * (3 - len(grid))
        b = tuple(block) + (1,) * (3 - len(block))
        cfg = _LaunchConfig((ctypes.c_uint * 3)(*g), (ctypes.c_uint * 3)(*b), smem,
                            ctypes.c_void_p(self._cp.cuda.get_current_stream().ptr),
                            ctypes.cast(arr, ctypes.POINTER(_LaunchAttr)), len(attrs))
        return cfg, arr

    def launch(self, kern, grid, block, args, smem, pdl=False, cluster=0):
        cp = self._cp
        vals = [ctypes.c_void_p(a.data.ptr) if isinstance(a, cp.ndarray) else
                (ctypes.c_int32 if a.dtype == np.int32 else ctypes.c_int64)(int(a)) for a in args]
        ptrs = (ctypes.c_void_p * len(vals))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in vals])
        cfg, keep = self._config(kern, grid, block, smem, pdl, cluster)
        err = self._fn(ctypes.byref(cfg), ctypes.c_void_p(kern.kernel.ptr), ptrs, None)
        if err:
            raise KernelError(f"cuLaunchKernelEx failed with CUresult {err}")

    def active_clusters(self, kern, grid, block, smem, cluster) -> int:
        n = ctypes.c_int(0)
        cfg, keep = self._config(kern, grid, block, smem, False, cluster)
        err = self._lib.cuOccupancyMaxActiveClusters(ctypes.byref(n), ctypes.c_void_p(kern.kernel.ptr),
                                                     ctypes.byref(cfg))
        return n.value if not err else 0


def _per_block(rows: int, nchunks: int, most: int) -> int:
    """Chunks a block takes (a power of two up to `most`): the most that still leaves MIN_BLOCKS blocks."""
    m = 1
    while 2 * m <= most and 2 * m <= nchunks and rows * -(-nchunks // (2 * m)) >= MIN_BLOCKS:
        m *= 2
    return m


class CudaBackend:
    name = NAME

    def __init__(self, device: int = 0):
        self._dev_id = device
        self._lock = threading.RLock()
        self._status = None          # (ok, why) once probed
        self._mod = None
        self._kern = {}
        self._scratch = {}           # (rows, cols, k) -> 2-stage scratch buffers, a few kept
        self._smem_optin = 0
        self._driver = None          # DriverLauncher (cuLaunchKernelEx), sm_90+ with a CUDA 12 driver
        self._pdl = False            # programmatic dependent launches through it (until the driver refuses one)
        self._cc = 0
        self._active = {}            # topk_cluster's (threads, shared bytes, blocks a cluster) -> clusters at once

    # -- availability -------------------------------------------------------------------------------------
    def available(self) -> tuple[bool, str]:
        if self._status is None:
            try:
                import cupy
            except ImportError:
                self._status = (False, INSTALL_HINT)
                return self._status
            except Exception as e:  # a broken CuPy install (missing CUDA libraries)
                self._status = (False, f"CuPy failed to import: {e}")
                return self._status
            try:
                n = cupy.cuda.runtime.getDeviceCount()
                if n <= self._dev_id:
                    self._status = (False, f"no CUDA device {self._dev_id} (found {n})")
                else:
                    self._status = (True, "")
            except Exception as e:
                self._status = (False, f"no CUDA device: {e}")
        return self._status

    def _cp(self):
        ok, why = self.available()
        if not ok:
            raise BackendUnavailable(why)
        import cupy
        return cupy

    def info(self) -> dict:
        cp = self._cp()
        props = cp.cuda.runtime.getDeviceProperties(self._dev_id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        rt = cp.cuda.runtime.runtimeGetVersion()
        drv = cp.cuda.runtime.driverGetVersion()
        return {"name": NAME, "device": name, "compute_capability": f"{props['major']}.{props['minor']}",
                "multiprocessors": props["multiProcessorCount"], "memory_bytes": int(props["totalGlobalMem"]),
                "l2_bytes": int(props.get("l2CacheSize", 0)), "cupy": cp.__version__,
                "cuda_runtime": f"{rt // 1000}.{rt % 1000 // 10}", "cuda_driver": f"{drv // 1000}.{drv % 1000 // 10}",
                "timer": "cuda-event"}

    def _kernels(self):
        with self._lock:
            if self._mod is None:
                cp = self._cp()
                with cp.cuda.Device(self._dev_id):
                    try:
                        self._mod = cp.RawModule(code=cuda_source(), options=("-std=c++17",))
                        self._kern = {n: self._mod.get_function(n) for n in KERNELS}
                    except Exception as e:
                        self._mod = None
                        raise KernelError(f"CUDA kernels failed to compile: {e}") from None
                    attrs = cp.cuda.Device(self._dev_id).attributes
                    self._smem_optin = int(attrs["MaxSharedMemoryPerBlockOptin"])
                    self._clock_khz = int(attrs["ClockRate"])
                    cc = int(cp.cuda.Device(self._dev_id).compute_capability)
                    self._cc = cc
                    self._driver = DriverLauncher.new(cp) if cc >= 90 else None
                    self._pdl = self._driver is not None
            return self._kern

    def _launch(self, name, grid, block, args, smem=0, pdl=False):
        """Launch a kernel on the current stream; pdl: as a programmatic dependent launch (see pdl_wait)
        when the device and driver have it, else a plain launch. topk_cluster: grid.x blocks a cluster."""
        k = self._kern[name]
        if smem > 48 * 1024 and k.max_dynamic_shared_size_bytes < smem:
            k.max_dynamic_shared_size_bytes = smem
        if name == "topk_cluster":
            return self._driver.launch(k, grid, block, args, smem, cluster=grid[0])
        if pdl and self._pdl:
            try:
                return self._driver.launch(k, grid, block, args, smem, pdl=True)
            except KernelError:
                self._pdl = False    # the driver refused the attribute: plain launches from now on
        k(grid, block, args, shared_mem=smem)

    # -- TopK ---------------------------------------------------------------------------------------------
    @staticmethod
    def default_params(rows: int, cols: int, k: int) -> dict:
        """The first matching row of DEFAULT_TABLE (measured fastest on an H100 and H200, see bench/)."""
        for pred, p in DEFAULT_TABLE:
            if pred(rows, cols, k):
                return dict(p)
        raise AssertionError("DEFAULT_TABLE has a catch-all row")

    def call_params(self, rows: int, cols: int, k: int, sorted: bool = True) -> dict:
        """params=None: on a device with thread-block clusters, the first row of CLUSTER_TABLE (or, unsorted,
        CLUSTER_TABLE_UNSORTED) that matches and fits; else default_params."""
        if self._clusters():
            for pred, f in CLUSTER_TABLE if sorted else CLUSTER_TABLE_UNSORTED:
                if pred(rows, cols, k):
                    p = {**space_defaults("topk"), **f(rows, cols, k)}
                    try:
                        self._cluster_geometry(rows, cols, k, p, sorted)
                    except ParamsError:
                        continue
                    return p
        return self.default_params(rows, cols, k)

    def _clusters(self) -> bool:
        self._kernels()
        return self._cc >= 90 and self._driver is not None

    def fixed_default(self, kernel: str, query: tuple) -> dict:
        """The configuration of params="default": call_params (sorted) for TopK, direct wg 256 vpt 4 for where_nd."""
        if kernel == "topk":
            return self.call_params(*query)
        return {**space_defaults("where_nd"), "wg": 256, "vpt": 4}

    def _resolve_params(self, rows, cols, k, params, sorted=True):
        # params None, or (unsorted) the sorted call's own pick, which the API passes on: this table's pick
        if params is None or (not sorted and dict(params) == self.call_params(rows, cols, k)):
            return self.call_params(rows, cols, k, sorted)
        p = space_defaults("topk")
        unknown = set(params) - set(p)
        if unknown:
            raise ParamsError(f"unknown topk parameters {sorted_(unknown)}; allowed: {sorted_(p)}")
        p.update(params)
        wg, kl, ch = int(p["wg"]), int(p["kl"]), int(p["ch"])
        if wg % 32 or not 64 <= wg <= 1024 or wg & (wg - 1):
            raise ParamsError(f"wg must be a power of two in [64, 1024], got {wg}")
        if p["radix"]:
            if int(p["rb"]) != 11 or int(p["rch"]) <= 0 or int(p["rch"]) % 4 or p["use_2ce"] or ch:
                raise ParamsError(f"the CUDA radix pipeline (topk_cluster) selects 11 bits a round over blocks of rch "
                                  f"columns: pass rb=11, rch a positive multiple of 4, use_2ce=false, ch=0 (got "
                                  f"rb={p['rb']}, rch={p['rch']}, use_2ce={p['use_2ce']}, ch={ch})")
            return p
        if p["rb"] or p["rch"]:
            raise ParamsError(f"rb and rch are the radix pipeline's: pass radix=true, or rb=0 and rch=0 "
                              f"(got rb={p['rb']}, rch={p['rch']})")
        if kl < 1:
            raise ParamsError(f"kl must be >= 1, got {kl}")
        if p["use_2ce"] and ch % 4:
            raise ParamsError(f"ch must be a multiple of 4 (or 0 for the default {DEFAULT_CH}), got {ch}")
        if not p["use_2ce"] and ch:
            raise ParamsError(f"ch must be 0 when use_2ce is false, got {ch}")
        return p

    def _cluster_geometry(self, rows, cols, k, p, sorted):
        """(blocks a row, chunk, abytes, lcap, slack, ccap, smem) of topk_cluster for a shape and radix configuration;
        ParamsError where the device has no clusters or the configuration does not fit it."""
        if not self._clusters():
            raise ParamsError("the CUDA radix pipeline (topk_cluster) needs thread-block clusters: compute "
                              f"capability 9.0 or above and a CUDA 12 driver; this device has {self._cc / 10:.1f}: "
                              "use radix=false")
        if rows > 65535:
            raise ParamsError(f"the CUDA radix pipeline takes at most 65535 rows, got {rows}")
        rch, wg = int(p["rch"]), int(p["wg"])
        blocks = max(2, next_pow2(-(-cols // rch)))
        if blocks > CLUSTER_MAX:
            raise ParamsError(f"rch={rch} spreads a row of {cols} columns over {blocks} blocks; a cluster holds at "
                              f"most {CLUSTER_MAX}: use rch >= {_rch(cols, CLUSTER_MAX)}")
        chunk = _rch(cols, blocks)
        slack = max(32, k // 8) if sorted else 0
        abytes = -(-max(chunk * 4, (k + slack) * 8 if sorted else 0) // 16) * 16   # keys, then (sorted) all lists
        lcap = max(2, next_pow2(min(k + slack, chunk)))   # list u64[lcap]: hist after it 16-byte aligned
        smem = abytes + lcap * 8 + (2048 + 1024 + 3 * (2048 // blocks) + 48 + 128) * 4
        if smem > self._smem_optin:
            raise ParamsError(f"the CUDA radix pipeline needs {smem} bytes of shared memory a block for cols={cols}, "
                              f"k={k}, rch={rch}; this device allows {self._smem_optin}: use a smaller rch or "
                              f"radix=false")
        at_once = self._clusters_at_once(wg, smem, blocks)
        if not at_once:
            raise ParamsError(f"no cluster of {blocks} blocks of {wg} threads and {smem} bytes of shared memory fits "
                              f"this device at once: use fewer threads (wg) or a larger rch")
        # Unsorted, with at most CLUSTER_BCAST_BLOCKS blocks a row, the first pass's bin is broadcast when it holds
        # at most CLUSTER_BCAST keys of the row, if the buffer for them leaves as many of this grid's clusters
        # running at once.
        ccap, wide = CLUSTER_BCAST, smem + CLUSTER_BCAST * 8
        if sorted or not ccap or blocks > CLUSTER_BCAST_BLOCKS or wide > self._smem_optin or \
                self._clusters_at_once(wg, wide, blocks) < min(rows, at_once):
            ccap = 0
        return blocks, chunk, abytes, lcap, slack, ccap, smem + ccap * 8

    def _clusters_at_once(self, wg, smem, blocks):
        """How many clusters of topk_cluster with this block size and shared memory the device runs at once."""
        key = (wg, smem, blocks)
        if key not in self._active:
            kern = self._kern["topk_cluster"]
            if smem > 48 * 1024 and kern.max_dynamic_shared_size_bytes < smem:
                kern.max_dynamic_shared_size_bytes = smem
            self._active[key] = self._driver.active_clusters(kern, (blocks, 1), (wg,), smem, blocks)
        return self._active[key]

    def _topk_plan(self, rows, cols, k, params, sorted=True):
        """Launch list [(kernel, grid, block, args, smem)] for a shape and configuration, scratch allocated.
        sorted=False: each row's k in any order, which only the radix pipeline (topk_cluster) uses to skip its sort."""
        cp = self._cp()
        self._kernels()
        p = self._resolve_params(rows, cols, k, params, sorted)
        wg = int(p["wg"])
        kp = next_pow2(k)
        if p.get("radix"):
            blocks, chunk, abytes, lcap, slack, ccap, smem = self._cluster_geometry(rows, cols, k, p, sorted)

            def launches(xd, ov, oi):
                return [("topk_cluster", (blocks, rows), (wg,),
                         (xd, ov, oi, np.int32(cols), np.int32(k), np.int32(chunk), np.int32(abytes), np.int32(lcap),
                          np.int32(slack), np.int32(sorted), np.int32(ccap)), smem)]
            return p, launches
        if not p["use_2ce"]:
            lanes = min(wg, max(32 * int(p["kl"]), wg // 8))
            groups = wg // lanes
            keys_bytes = -(-cols * 4 // 16) * 16
            gbytes = keys_bytes + kp * 8 + 256 * 4 + 32
            smem = gbytes * groups
            if smem > self._smem_optin and groups == 1:
                return p, self._stream_plan(rows, cols, k, kp, wg)
            if smem > self._smem_optin:
                raise ParamsError(f"1CE needs {smem} bytes of shared memory for cols={cols}, k={k}, wg={wg}, "
                                  f"kl={p['kl']} ({groups} rows per block); this device allows "
                                  f"{self._smem_optin}: use use_2ce=true or one row per block (kl >= wg / 32)")

            def launches(xd, ov, oi):
                return [("topk_rows", (-(-rows // groups),), (wg,),
                         (xd, ov, oi, np.int32(rows), np.int32(cols), np.int32(k), np.int32(kp), np.int32(lanes),
                          np.int32(gbytes), np.int32(keys_bytes)), smem)]
            return p, launches
        ch = int(p["ch"]) or DEFAULT_CH
        nchunks = -(-cols // ch)
        # Where there are blocks to spare, fewer and longer ones: each has a fixed cost (its histogram cleared and
        # flushed, its fences and counters). H200, 1024x65536 k=128: 417.6 -> 332.4 us; 16x1048576 k=4096: 120.2 ->
        # 95.0 (bench/results/h200-2026-11-30-s22-cuda-chunks.txt)
        hch = ch * _per_block(rows, nchunks, 16)       # topk_hist's chunk
        nch_h = -(-cols // hch)
        fpb = _per_block(rows, nchunks, 8)             # topk_filter's chunks per block, one after another
        nblk_f = -(-nchunks // fpb)
        passes = 1 if cols <= ONE_PASS_MAX_COLS else 2
        cap = min(cols, CAND_CAP)
        smem = max(ch * 8, cap * 8 + kp * 8 + 256 * 4 + 32)
        if smem > self._smem_optin:
            raise ParamsError(f"2-stage needs {smem} bytes of shared memory (ch={ch}, k={k}); this device allows "
                              f"{self._smem_optin}: use a smaller ch")
        s = self._scratch_for(cp, rows, cols, k)
        rank_sort = kp >= RANK_SORT_MIN_K

        def launches(xd, ov, oi):
            out = [("topk_hist", (nch_h, rows), (wg,),
                    (xd, s["ghist"], s["state"], np.int32(cols), np.int32(k), np.int32(hch), np.int32(nch_h),
                     np.int32(ps)), 0) for ps in range(passes)]
            out.append(("topk_filter", (nblk_f, rows), (wg,),
                        (xd, s["state"], s["sure"], s["cand"], ov, oi, np.int32(cols), np.int32(k), np.int32(kp),
                         np.int32(ch), np.int32(nblk_f), np.int32(HBITS * passes), np.int32(cap),
                         np.int32(rank_sort), np.int32(fpb)), smem))
            if rank_sort:
                nseg = -(-k // SEG)
                out.append(("topk_segsort", (nseg, rows), (SEG // 2,), (s["sure"], np.int32(k)), 0))
                out.append(("topk_rank", (nseg, rows), (SEG,), (xd, s["sure"], ov, oi, np.int32(cols), np.int32(k)),
                            nseg * SEG * 8))
            return out
        return p, launches

    def _stream_plan(self, rows, cols, k, kp, wg):
        """1CE for rows longer than shared memory holds: topk_stream, one block a row, the row read again (from
        L2) per pass instead of kept in shared memory."""
        fixed = kp * 8 + 16 + HBINS_BYTES + 64
        cap = min(cols, CAND_CAP, (self._smem_optin - fixed) // 8)
        if cap < 256:
            raise ParamsError(f"1CE needs {fixed + 256 * 8} bytes of shared memory for k={k}; this device allows "
                              f"{self._smem_optin}: use use_2ce=true")
        smem = cap * 8 + fixed

        def launches(xd, ov, oi):
            return [("topk_stream", (rows,), (wg,),
                     (xd, ov, oi, np.int32(cols), np.int32(k), np.int32(kp), np.int32(cap)), smem)]
        return launches

    def _scratch_for(self, cp, rows, cols, k):
        key = (rows, cols, k)
        with self._lock:
            if key not in self._scratch:
                while len(self._scratch) >= 4:
                    self._scratch.pop(next(iter(self._scratch)))
                self._scratch[key] = {
                    "ghist": cp.zeros(rows * (1 << HBITS), dtype=cp.uint32),   # zero between uses (kernels reset it)
                    "state": cp.zeros(rows * 8, dtype=cp.uint32),
                    "sure": cp.empty(rows * k, dtype=cp.uint64),
                    "cand": cp.empty(rows * cols, dtype=cp.uint64)}
            return self._scratch[key]

    def _run(self, launches):
        """A plan's launches in order, each after the first as a programmatic dependent launch."""
        for i, (name, grid, block, args, smem) in enumerate(launches):
            self._launch(name, grid, block, args, smem, pdl=i > 0)

    def topk2d_device(self, xd, k: int, params: dict | None = None, sorted: bool = True):
        """TopK of a CuPy float32 [rows, cols] C-contiguous array on the device: (values float32, indices int64).
        sorted=False: each row's k largest in any order (the same elements; a radix configuration skips its sort)."""
        cp = self._cp()
        if xd.dtype != cp.float32 or xd.ndim != 2 or not xd.flags.c_contiguous:
            raise ShapeError(f"xd must be a C-contiguous float32 2-d CuPy array, got {xd.dtype} {xd.shape}")
        rows, cols = xd.shape
        k = int(k)
        with self._lock, cp.cuda.Device(self._dev_id):
            _, launches = self._topk_plan(rows, cols, k, params, sorted)
            ov = cp.empty((rows, k), dtype=cp.float32)
            oi = cp.empty((rows, k), dtype=cp.int64)
            self._run(launches(xd, ov, oi))
            return ov, oi

    def topk2d(self, x, k, params=None, sorted=True):
        x = check_topk_args(x, k)
        cp = self._cp()
        with cp.cuda.Device(self._dev_id):
            xd = cp.asarray(np.ascontiguousarray(x))
            ov, oi = self.topk2d_device(xd, int(k), params, sorted)
            return cp.asnumpy(ov), cp.asnumpy(oi)

    def time_topk2d(self, x, k, params=None, repeats=5, warmups=1, sorted=True) -> Timing:
        x = check_topk_args(x, k)
        cp = self._cp()
        with self._lock, cp.cuda.Device(self._dev_id):
            xd = cp.asarray(np.ascontiguousarray(x))
            return self.time_topk2d_device(xd, int(k), params, repeats, warmups, sorted)

    def time_topk2d_device(self, xd, k, params=None, repeats=5, warmups=1, sorted=True) -> Timing:
        cp = self._cp()
        rows, cols = xd.shape
        with self._lock, cp.cuda.Device(self._dev_id):
            _, launches = self._topk_plan(rows, cols, int(k), params, sorted)
            ov = cp.empty((rows, k), dtype=cp.float32)
            oi = cp.empty((rows, k), dtype=cp.int64)
            ls = launches(xd, ov, oi)
            return self.time_device(lambda: self._run(ls), repeats, warmups)

    # -- timing -------------------------------------------------------------------------------------------
    def spin(self, us: float = 100.0):
        """Occupy the GPU for `us` microseconds (one tiny kernel) on the current stream."""
        self._kernels()
        self._kern["spin"]((1,), (1,), (np.int64(int(us * self._clock_khz / 1000)),))

    def time_device(self, fn, repeats=5, warmups=1, spin_us=200.0) -> Timing:
        """Device time of `fn` (which enqueues work on the current stream) between two CUDA events, median-ready
        samples. Before each sample a spin kernel keeps the GPU busy while the host enqueues, so the samples hold
        the GPU's time for the work (gaps between its kernels included), not the host's launch overhead."""
        cp = self._cp()
        for _ in range(warmups):
            fn()
        cp.cuda.get_current_stream().synchronize()
        evs = []
        for _ in range(max(1, repeats)):
            a, b = cp.cuda.Event(), cp.cuda.Event()
            self.spin(spin_us)
            a.record()
            fn()
            b.record()
            evs.append((a, b))
        evs[-1][1].synchronize()
        return Timing.of("cuda-event", [cp.cuda.get_elapsed_time(a, b) for a, b in evs])

    # -- where_nd -----------------------------------------------------------------------------------------
    def _where_plan(self, out_shape, inputs, out, params):
        """inputs: [(device array, byte offset of element 0 from its pointer, byte strides per output dim)] for
        cond, x, y. Returns (kernel name, grid, block, args)."""
        cp = self._cp()
        self._kernels()
        p = space_defaults("where_nd")
        p.update({"wg": 256, "vpt": 4})
        if params:
            unknown = set(params) - set(p)
            if unknown:
                raise ParamsError(f"unknown where_nd parameters {sorted(unknown)}; allowed: {sorted(p)}")
            p.update(params)
        wg, vpt = int(p["wg"]), int(p["vpt"])
        if wg % 32 or not 32 <= wg <= 1024:
            raise ParamsError(f"wg must be a multiple of 32 in [32, 1024], got {wg}")
        if vpt not in (1, 2, 4, 8):
            raise ParamsError(f"vpt must be 1, 2, 4 or 8, got {vpt}")
        if vpt == 8 and wg > 512:
            raise ParamsError(f"vpt=8 allows wg <= 512 (registers), got wg={wg}")
        numel = int(np.prod(out_shape, dtype=np.int64))
        shape, strides = coalesce(out_shape, [st for _, _, st in inputs])
        nd = len(shape)
        meta = np.zeros(24, dtype=np.int64)
        meta[:6] = 1
        meta[6 - nd:6] = shape
        for t in range(3):
            meta[6 * (t + 1) + 6 - nd: 6 * (t + 2)] = strides[t]
        meta_d = cp.asarray(meta)
        ptrs = [a.data.ptr + off for a, off, _ in inputs]
        inner = shape[-1]
        widths = (1, 4, 4)

        def vec_ok(t):
            st = strides[t]
            if st[-1] == 0:
                return ptrs[t] % widths[t] == 0 and all(s % widths[t] == 0 for s in st)
            align = 4 if t == 0 else 16
            return st[-1] == widths[t] and ptrs[t] % align == 0 and all(s % align == 0 for s in st[:-1])

        offs = [np.int64(off) for _, off, _ in inputs]
        arrs = [a for a, _, _ in inputs]
        if inner % 4 == 0 and numel < 2 ** 32 and all(vec_ok(t) for t in range(3)):
            ngroups = numel // 4
            grid = (max(1, -(-ngroups // (wg * vpt))),)
            bc = [np.int32(strides[t][-1] == 0) for t in range(3)]
            args = (*arrs, out, meta_d, *offs, np.uint32(ngroups), np.int32(nd), *bc)
            return f"where_vec{vpt}", grid, (wg,), args, meta_d
        grid = (max(1, -(-numel // (wg * vpt))),)
        big = numel >= 2 ** 32
        args = (*arrs, out, meta_d, *offs, (np.uint64 if big else np.uint32)(numel), np.int32(nd), np.int32(vpt))
        return ("where_any64" if big else "where_any32"), grid, (wg,), args, meta_d

    @staticmethod
    def _strides_for(a, out_shape):
        nd = len(out_shape)
        return [0] * (nd - a.ndim) + [0 if n == 1 else int(s) for n, s in zip(a.shape, a.strides)]

    def where_nd_device(self, cond, x, y, params=None, out=None):
        """where on CuPy arrays, views included (negative strides, broadcasts): each view is read in place through
        its pointer and byte strides. Returns a new contiguous CuPy array (or fills `out`)."""
        cp = self._cp()
        with self._lock, cp.cuda.Device(self._dev_id):
            name, grid, block, args, out = self._where_device_plan(cond, x, y, params, out)
            self._launch(name, grid, block, args)
            return out

    def _where_device_plan(self, cond, x, y, params, out=None):
        cp = self._cp()
        if cond.dtype != cp.bool_ or x.dtype != y.dtype or x.dtype not in (cp.float32, cp.int32):
            raise ShapeError(f"cond must be bool and x, y both float32 or both int32; got {cond.dtype}, "
                             f"{x.dtype}, {y.dtype}")
        out_shape = tuple(np.broadcast_shapes(cond.shape, x.shape, y.shape))
        if out is None:
            out = cp.empty(out_shape, dtype=x.dtype)
        inputs = [(a, 0, self._strides_for(a, out_shape)) for a in (cond, x, y)]
        name, grid, block, args, _ = self._where_plan(out_shape, inputs, out, params)
        return name, grid, block, args, out

    def _where_host_plan(self, cond, x, y, params):
        """Upload NumPy inputs for a where (direct: each view's memory span once; segmented: each input written
        out at full output shape) and plan the kernel. Returns (launch tuple, out, keep-alive list)."""
        cp = self._cp()
        out_shape = tuple(np.broadcast_shapes(cond.shape, x.shape, y.shape))
        path = (params or {}).get("path", "direct")
        if path not in ("direct", "segmented"):
            raise ParamsError(f"path must be 'direct' or 'segmented', got {path!r}")
        inputs = []
        for a in (cond, x, y):
            if path == "segmented":
                full = cp.asarray(np.ascontiguousarray(np.broadcast_to(a, out_shape)))
                inputs.append((full, 0, self._strides_for(full, out_shape)))
                continue
            if a.dtype != np.bool_ and (any(s % 4 for s in a.strides) or a.ctypes.data % 4):
                a = np.ascontiguousarray(a)   # unaligned 32-bit views (rare): one host copy
            span, base, strides = strided_view(a, out_shape)
            inputs.append((cp.asarray(np.ascontiguousarray(span)), base, strides))
        out = cp.empty(out_shape, dtype=x.dtype)
        name, grid, block, args, meta_d = self._where_plan(out_shape, inputs, out, params)
        return (name, grid, block, args), out, [inputs, meta_d]

    def where_nd(self, cond, x, y, params=None):
        cond, x, y = check_where_args(cond, x, y)
        cp = self._cp()
        out_shape = tuple(np.broadcast_shapes(cond.shape, x.shape, y.shape))
        if int(np.prod(out_shape, dtype=np.int64)) == 0:
            return np.empty(out_shape, dtype=x.dtype)
        with self._lock, cp.cuda.Device(self._dev_id):
            launch, out, keep = self._where_host_plan(cond, x, y, params)
            self._launch(*launch)
            res = cp.asnumpy(out)
            del keep
            return res

    def time_where_nd(self, cond, x, y, params=None, repeats=5, warmups=1, call=None) -> Timing:
        """Kernel time (CUDA events) with the inputs already on the device, uploaded as `path` says."""
        cond, x, y = check_where_args(cond, x, y)
        cp = self._cp()
        with self._lock, cp.cuda.Device(self._dev_id):
            launch, out, keep = self._where_host_plan(cond, x, y, params)
            t = self.time_device(lambda: self._launch(*launch), repeats, warmups)
            del keep
            return t

    def time_where_nd_device(self, cond, x, y, params=None, repeats=5, warmups=1) -> Timing:
        cp = self._cp()
        with self._lock, cp.cuda.Device(self._dev_id):
            name, grid, block, args, out = self._where_device_plan(cond, x, y, params)
            return self.time_device(lambda: self._launch(name, grid, block, args), repeats, warmups)

    def time_copy(self, nbytes: int, repeats=50, warmups=5) -> Timing:
        """Device-to-device copy of `nbytes` (cupy), the bandwidth reference: moves 2 * nbytes."""
        cp = self._cp()
        with cp.cuda.Device(self._dev_id):
            src = cp.empty(nbytes // 4, dtype=cp.float32)
            src.fill(1.0)
            dst = cp.empty_like(src)
            return self.time_device(lambda: dst.data.copy_from_device_async(src.data, src.nbytes), repeats, warmups)

