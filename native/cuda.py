"""CUDA backend: TopK and where_nd kernels written for this project in CUDA C++, compiled at first use with NVRTC
through CuPy (cupy.RawModule). `import cupy` happens only inside methods, so `import spiraltorch_tuner` works everywhere.

TopK (same semantics as cpu.topk_reference, bit for bit: the k largest of each row sorted descending, ties to the
lower column, NaN above every number, -0.0 below +0.0). Every element gets the 64-bit composite key
(order-preserving u32 of the float, ~column); keys are distinct, so "the k largest keys" is exactly the answer.

* 1CE (`use_2ce` false), kernel `topk_rows`: a group of KLANE lanes owns one row. The row is streamed once from
  global memory into shared memory as u32 keys (16-byte loads, double-buffered; the first 8-bit digit's histogram
  is built in the same pass), then radix-selected 8 bits at a time in shared memory (256-bin histogram, stops as
  soon as the chosen bin holds exactly what is still needed), the k selected keys compacted and bitonic-sorted.
  One launch. `kl` sets KLANE = min(wg, max(32*kl, wg/8)) lanes per row, so kl=4 is the KLANE=128 variant (four
  warps on a row, wg/128 rows per block, each group synchronised by its own named barrier).
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
from .space import default_params as space_defaults
from .space import next_pow2
from .wgpu_backend import coalesce, strided_view   # pure NumPy helpers; wgpu itself is imported lazily there

NAME = "cuda"
INSTALL_HINT = "CuPy is not installed: pip install spiraltorch-tuner[cuda]"

HBITS = 11                  # digit of the 2-stage histogram passes (2048 bins)
ONE_PASS_MAX_COLS = 1 << 17  # up to here one 11-bit histogram pass; above, two (22 bits) before filtering
CAND_CAP = 8192             # candidates the merge keeps in shared memory; more are read from global (L2)
DEFAULT_CH = 4096
SEG = 256                   # keys per segment of topk_segsort / topk_rank (the #define in CUDA_SRC)
RANK_SORT_MIN_K = 2048      # from this k (padded to a power of two) the 2-stage path sorts with many blocks per row

# params=None: the fastest configuration measured on an H100 for each kind of shape (bench/bench_gpu.py sweeps).
# (predicate on rows, cols, k) -> params; first match wins.
# Read off bench/results (sweep of bench/bench_gpu.py): short rows -> 1CE with KLANE=128 (kl=4, two rows per
# block); rows up to 8192 -> 1CE, 512 lanes; up to 32768 with enough rows -> 1CE, 1024 lanes; few long rows ->
# 2-stage with 4096-column chunks and 1024 threads (fills the SMs); many or very long rows -> 2-stage, 8192 columns.
DEFAULT_TABLE = [
    (lambda r, c, k: c <= 2048, {"use_2ce": False, "wg": 256, "kl": 4, "ch": 0, "sg": False}),
    (lambda r, c, k: c <= 8192, {"use_2ce": False, "wg": 512, "kl": 16, "ch": 0, "sg": False}),
    (lambda r, c, k: c <= 32768 and r >= 32, {"use_2ce": False, "wg": 1024, "kl": 32, "ch": 0, "sg": False}),
    (lambda r, c, k: c <= ONE_PASS_MAX_COLS and r < 132, {"use_2ce": True, "wg": 1024, "kl": 4, "ch": 4096,
                                                           "sg": False}),
    (lambda r, c, k: True, {"use_2ce": True, "wg": 512, "kl": 4, "ch": 8192, "sg": False}),
]

CUDA_SRC = r"""
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned char u8;
#define FULL 0xffffffffu
#define HBITS 11
#define HBINS 2048

// Order-preserving u32 of a float's bits: NaN -> 0xffffffff (largest), -0.0 just below +0.0. Never 0.
__device__ __forceinline__ u32 key_of(u32 b) {
    if ((b & 0x7fffffffu) > 0x7f800000u) return 0xffffffffu;
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
// Composite key: larger key first, then the lower column. 0 is below every real key (a safe sentinel).
__device__ __forceinline__ u64 comp(u32 key, u32 col) { return ((u64)key << 32) | (u64)(~col); }

// Lanes cooperating on one row: the whole block (barrier 0) or a slice of it with its own named barrier.
struct Group {
    int lane, n, bar;
    __device__ __forceinline__ void sync() const {
        if (bar == 0) __syncthreads();
        else asm volatile("bar.sync %0, %1;" :: "r"(bar), "r"(n) : "memory");
    }
};

// Programmatic dependent launch (sm_90+): the host launches a plan's later kernels with the PDL attribute, so the
// launch of each is prepared while the one before runs; griddepcontrol.wait holds its blocks until that kernel has
// finished and its writes are visible. Without the attribute it is a no-op. (H100, 8x65536 k=4096: 32.8 -> 29.8 us.
// Also releasing the next kernel early with griddepcontrol.launch_dependents made that 44.3 us: its blocks then
// wait on the SMs beside the merge's.)
__device__ __forceinline__ void pdl_wait() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

struct SelState { u64 prefix; u32 need; u32 done; };

// f(col, bits) for every column of [c0, c1) of `row`. Body: 16-byte vectors, U in flight per lane, the next U
// prefetched while the current ones are processed (double buffer). Head/tail: scalars, so any alignment works.
template <int U, class F>
__device__ __forceinline__ void scan_row(const float* __restrict__ row, int c0, int c1, int lane, int nl, F&& f) {
    const u32* rb = reinterpret_cast<const u32*>(row);
    int mis = (int)((reinterpret_cast<size_t>(rb + c0) >> 2) & 3);
    int head = min((4 - mis) & 3, c1 - c0);
    if (lane < head) f(c0 + lane, __ldg(rb + c0 + lane));
    int b0 = c0 + head;
    int nvec = (c1 - b0) >> 2;
    const uint4* v = reinterpret_cast<const uint4*>(rb + b0);
    const int step = U * nl;
    uint4 cur[U], nxt[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
        int j = lane + u * nl;
        cur[u] = j < nvec ? __ldg(v + j) : make_uint4(0, 0, 0, 0);
    }
    for (int i = lane; i < nvec; i += step) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            int j = i + step + u * nl;
            nxt[u] = j < nvec ? __ldg(v + j) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            int j = i + u * nl;
            if (j < nvec) {
                int c = b0 + 4 * j;
                f(c, cur[u].x); f(c + 1, cur[u].y); f(c + 2, cur[u].z); f(c + 3, cur[u].w);
            }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) cur[u] = nxt[u];
    }
    int t0 = b0 + 4 * nvec;
    if (lane < c1 - t0) f(t0 + lane, __ldg(rb + t0 + lane));
}

__device__ __forceinline__ u32 warp_incl_scan(u32 v, int lane) {
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        u32 t = __shfl_up_sync(FULL, v, o);
        if (lane >= o) v += t;
    }
    return v;
}

// Exclusive prefix sum over the whole block (blockDim a multiple of 32); wsum: 32 words of shared memory.
__device__ u32 block_excl_scan(u32 v, u32* wsum) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    u32 incl = warp_incl_scan(v, lane);
    if (lane == 31) wsum[w] = incl;
    __syncthreads();
    if (w == 0) {
        u32 s = lane < nw ? wsum[lane] : 0u;
        u32 si = warp_incl_scan(s, lane);
        __syncwarp();
        if (lane < nw) wsum[lane] = si - s;
    }
    __syncthreads();
    u32 r = wsum[w] + incl - v;
    __syncthreads();
    return r;
}

// First warp of a group: the bin (scanning from the top) where the running count reaches st->need.
__device__ void pick_bin(const u32* hist, SelState* st, int shift, int lane) {
    u32 cnt[8], s = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) { cnt[j] = hist[255 - 8 * lane - j]; s += cnt[j]; }
    u32 want = st->need;
    u64 pre = st->prefix;
    __syncwarp();
    u32 run = warp_incl_scan(s, lane) - s;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        u32 h = cnt[j];
        if (run < want && run + h >= want) {
            u32 left = want - run;
            st->prefix = pre | ((u64)(255 - 8 * lane - j) << shift);
            st->need = left;
            st->done = h == left ? 1u : 0u;
        }
        run += h;
    }
}

// Radix select, 8 bits a pass from digit d0, of the `need` largest among get(0..n): returns T such that exactly
// `need` of them are >= T. `prefix` holds the digits above d0 (shared by every element). counted: the caller has
// already built digit d0's histogram in `hist`.
template <class Get>
__device__ u64 radix_select(Get&& get, int n, u32 need, int d0, u64 prefix, bool counted, const Group& g,
                            u32* hist, SelState* st) {
    if (g.lane == 0) { st->prefix = prefix; st->need = need; st->done = 0; }
    if (!counted) for (int b = g.lane; b < 256; b += g.n) hist[b] = 0;
    g.sync();
    for (int d = d0; d < 8; ++d) {
        int shift = 56 - 8 * d;
        if (!(counted && d == d0)) {
            u64 pre = st->prefix;
            u64 mask = d == 0 ? 0ull : (~0ull << (64 - 8 * d));
            for (int i = g.lane; i < n; i += g.n) {
                u64 c = get(i);
                if ((c & mask) == pre) atomicAdd(&hist[(u32)(c >> shift) & 255u], 1u);
            }
            g.sync();
        }
        if (g.lane < 32) pick_bin(hist, st, shift, g.lane);
        g.sync();
        if (st->done) break;
        for (int b = g.lane; b < 256; b += g.n) hist[b] = 0;
        g.sync();
    }
    return st->prefix;
}

// Bitonic sort of a[0..n) (n a power of two), descending, by one group, in shared memory. Strides >= 64 pair
// elements across warps (group barrier); strides <= 32 stay inside 64-element blocks, each block owned by one warp,
// so those stages need only __syncwarp: 21 group barriers for n = 4096 instead of 78.
__device__ void bitonic_desc(u64* a, int n, const Group& g) {
    int wl = g.lane & 31, w = g.lane >> 5, nw = g.n >> 5;
    for (int size = 2; size <= n; size <<= 1) {
        int stride = size >> 1;
        for (; stride >= 64; stride >>= 1) {
            for (int i = g.lane; i < (n >> 1); i += g.n) {
                int lo = 2 * i - (i & (stride - 1));
                int hi = lo + stride;
                u64 va = a[lo], vb = a[hi];
                bool desc = (lo & size) == 0;
                if ((vb > va) == desc) { a[lo] = vb; a[hi] = va; }
            }
            g.sync();
        }
        for (; stride > 0; stride >>= 1) {
            for (int b = w; b * 64 < n; b += nw) {
                int i = b * 32 + wl;                 // pair index; its two elements lie in block b
                if (i < (n >> 1)) {
                    int lo = 2 * i - (i & (stride - 1));
                    int hi = lo + stride;
                    u64 va = a[lo], vb = a[hi];
                    bool desc = (lo & size) == 0;
                    if ((vb > va) == desc) { a[lo] = vb; a[hi] = va; }
                }
            }
            __syncwarp();
        }
        if (size >= 64) g.sync();
    }
    g.sync();
}

// dst[0..n) = src[0..n) (global, read through L2), then 0 up to n_pad; eight loads in flight per thread.
__device__ __forceinline__ void copy_in(u64* dst, const u64* __restrict__ src, int n, int n_pad, int lane, int nl) {
    for (int b = 0; b < n_pad; b += 8 * nl) {
        u64 v[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) { int i = b + j * nl + lane; v[j] = i < n ? __ldcg(src + i) : 0ull; }
#pragma unroll
        for (int j = 0; j < 8; ++j) { int i = b + j * nl + lane; if (i < n_pad) dst[i] = v[j]; }
    }
}

__device__ __forceinline__ void write_out(const u64* list, int k, const float* xr, float* ov, long long* oi,
                                          const Group& g) {
    for (int i = g.lane; i < k; i += g.n) {
        u32 col = ~(u32)list[i];
        oi[i] = (long long)col;
        ov[i] = xr[col];
    }
}

// ---- 1CE: one group of `lanes` lanes per row, the row's keys in shared memory --------------------------------
// Shared memory per group (gbytes): keys u32[cols] (padded to 16 B) | list u64[kp] | hist u32[256] | SelState | fill
extern "C" __global__ void __launch_bounds__(1024)
topk_rows(const float* __restrict__ x, float* __restrict__ out_v, long long* __restrict__ out_i,
          int rows, int cols, int k, int kp, int lanes, int gbytes, int keys_bytes) {
    extern __shared__ __align__(16) u8 smem[];
    int tid = threadIdx.x, gi = tid / lanes;
    Group g{tid - gi * lanes, lanes, lanes == (int)blockDim.x ? 0 : 1 + gi};
    int row = blockIdx.x * (blockDim.x / lanes) + gi;
    if (row >= rows) return;               // the whole group leaves; no other group waits on its barrier
    u8* base = smem + (size_t)gi * gbytes;
    u32* keys = reinterpret_cast<u32*>(base);
    u64* list = reinterpret_cast<u64*>(base + keys_bytes);
    u32* hist = reinterpret_cast<u32*>(list + kp);
    SelState* st = reinterpret_cast<SelState*>(hist + 256);
    u32* fill = reinterpret_cast<u32*>(st + 1);
    const float* xr = x + (size_t)row * cols;
    for (int b = g.lane; b < 256; b += g.n) hist[b] = 0;
    g.sync();
    scan_row<2>(xr, 0, cols, g.lane, g.n, [&](int c, u32 bits) {
        u32 kk = key_of(bits);
        keys[c] = kk;
        atomicAdd(&hist[kk >> 24], 1u);
    });
    g.sync();
    u64 T = radix_select([&](int i) { return comp(keys[i], (u32)i); }, cols, (u32)k, 0, 0ull, true, g, hist, st);
    if (g.lane == 0) *fill = 0;
    g.sync();
    for (int i = g.lane; i < cols; i += g.n) {
        u64 c = comp(keys[i], (u32)i);
        if (c >= T) list[atomicAdd(fill, 1u)] = c;
    }
    for (int i = k + g.lane; i < kp; i += g.n) list[i] = 0ull;
    g.sync();
    bitonic_desc(list, kp, g);
    write_out(list, k, xr, out_v + (size_t)row * k, out_i + (size_t)row * k, g);
}

// ---- 2-stage. Row state, 8 words per row: [0] blocks done in topk_hist, [1] blocks done in topk_filter,
// [2] key prefix (top 11*pass bits), [3] still needed, [4] sure count, [5] candidate count. -----------------------
extern "C" __global__ void __launch_bounds__(1024)
topk_hist(const float* __restrict__ x, u32* __restrict__ ghist, u32* __restrict__ state,
          int cols, int k, int ch, int nchunks, int pass) {
    __shared__ u32 h[HBINS];
    __shared__ u32 wsum[32];
    __shared__ int last;
    pdl_wait();
    int tid = threadIdx.x, nt = blockDim.x;
    int row = blockIdx.y;
    int c0 = blockIdx.x * ch, c1 = min(cols, c0 + ch);
    u32* srow = state + (size_t)row * 8;
    u32 prefix = pass ? srow[2] : 0u;
    int cmp = 32 - HBITS * pass;
    int sh = 32 - HBITS * (pass + 1);
    for (int b = tid; b < HBINS; b += nt) h[b] = 0;
    __syncthreads();
    scan_row<2>(x + (size_t)row * cols, c0, c1, tid, nt, [&](int, u32 bits) {
        u32 kk = key_of(bits);
        // (Warp-aggregating these with __match_any_sync measured 20-40% slower on the H100: plain atomics.)
        if (pass == 0 || (kk >> cmp) == prefix) atomicAdd(&h[(kk >> sh) & (HBINS - 1)], 1u);
    });
    __syncthreads();
    u32* gh = ghist + (size_t)row * HBINS;
    for (int b = tid; b < HBINS; b += nt) { u32 v = h[b]; if (v) atomicAdd(gh + b, v); }
    __threadfence();
    __syncthreads();
    if (tid == 0) last = atomicAdd(srow, 1u) == (u32)(nchunks - 1);
    __syncthreads();
    if (!last) return;
    // Last block of the row: every other block's bins are in gh. Find the bin of the k-th largest from the top.
    __threadfence();
    u32 need = pass ? __ldcg(srow + 3) : (u32)k;
    int per = HBINS / nt;
    u32 s = 0;
    for (int j = 0; j < per; ++j) {
        int b = HBINS - 1 - tid * per - j;
        u32 v = __ldcg(gh + b);
        h[b] = v;
        s += v;
        gh[b] = 0;                          // reset for the next pass / call
    }
    u32 run = block_excl_scan(s, wsum);
    for (int j = 0; j < per; ++j) {
        int b = HBINS - 1 - tid * per - j;
        u32 v = h[b];
        if (run < need && run + v >= need) { srow[2] = (prefix << HBITS) | (u32)b; srow[3] = need - run; }
        run += v;
    }
    if (tid == 0) srow[0] = 0;
}

// Dynamic shared memory: max(ch u64 staging, cap u64 candidates | kp u64 list | hist u32[256] | SelState | fill).
extern "C" __global__ void __launch_bounds__(1024)
topk_filter(const float* __restrict__ x, u32* __restrict__ state, u64* __restrict__ sure, u64* __restrict__ cand,
            float* __restrict__ out_v, long long* __restrict__ out_i,
            int cols, int k, int kp, int ch, int nchunks, int nbits, int cap, int rank_out) {
    extern __shared__ __align__(16) u8 smem[];
    u64* buf = reinterpret_cast<u64*>(smem);
    __shared__ u32 ns, nc, gs, gc;
    __shared__ int last;
    pdl_wait();
    int tid = threadIdx.x, nt = blockDim.x;
    int row = blockIdx.y;
    int c0 = blockIdx.x * ch, c1 = min(cols, c0 + ch);
    u32* srow = state + (size_t)row * 8;
    u32 prefix = srow[2];
    int sh = 32 - nbits;
    const float* xr = x + (size_t)row * cols;
    if (tid == 0) { ns = 0; nc = 0; }
    __syncthreads();
    // Stage the chunk's candidates in shared memory: sure ones from the front, prefix-equal ones from the back.
    scan_row<2>(xr, c0, c1, tid, nt, [&](int c, u32 bits) {
        u32 kk = key_of(bits);
        u32 top = kk >> sh;
        if (top > prefix) buf[atomicAdd(&ns, 1u)] = comp(kk, (u32)c);
        else if (top == prefix) buf[ch - 1 - atomicAdd(&nc, 1u)] = comp(kk, (u32)c);
    });
    __syncthreads();
    if (tid == 0) {
        gs = ns ? atomicAdd(srow + 4, ns) : 0u;
        gc = nc ? atomicAdd(srow + 5, nc) : 0u;
    }
    __syncthreads();
    u64* srow_sure = sure + (size_t)row * k;
    u64* crow = cand + (size_t)row * cols;
    for (u32 i = tid; i < ns; i += nt) srow_sure[gs + i] = buf[i];
    for (u32 i = tid; i < nc; i += nt) crow[gc + i] = buf[ch - 1 - i];
    __threadfence();
    __syncthreads();
    if (tid == 0) last = atomicAdd(srow + 1, 1u) == (u32)(nchunks - 1);
    __syncthreads();
    if (!last) return;
    // Pass 2, last block of the row: merge the chunks' candidates.
    __threadfence();
    Group g{tid, nt, 0};
    u32 n_s = __ldcg(srow + 4), n_c = __ldcg(srow + 5);
    u32 need = (u32)k - n_s;
    u64* cbuf = buf;
    u64* list = buf + cap;
    u32* hist = reinterpret_cast<u32*>(list + kp);
    SelState* st = reinterpret_cast<SelState*>(hist + 256);
    u32* fill = reinterpret_cast<u32*>(st + 1);
    bool fits = n_c <= (u32)cap;
    if (fits) copy_in(cbuf, crow, (int)n_c, (int)n_c, tid, nt);
    __syncthreads();
    auto get = [&](int i) -> u64 { return fits ? cbuf[i] : __ldcg(crow + i); };
    int d0 = nbits / 8;
    u64 pre0 = d0 ? ((u64)(prefix >> (nbits - 8 * d0)) << (64 - 8 * d0)) : 0ull;
    u64 T = radix_select(get, (int)n_c, need, d0, pre0, false, g, hist, st);
    if (!rank_out) copy_in(list, srow_sure, (int)n_s, (int)n_s, tid, nt);
    if (tid == 0) *fill = n_s;
    __syncthreads();
    // Large k (rank_out): the selected candidates join the sure keys where they already are, in `sure`, and the k
    // keys are left there unsorted; topk_segsort and topk_rank sort them with many blocks per row instead.
    u64* dst = rank_out ? srow_sure : list;
    for (u32 i = tid; i < n_c; i += nt) {
        u64 c = get((int)i);
        if (c >= T) dst[atomicAdd(fill, 1u)] = c;
    }
    if (tid == 0) { srow[1] = 0; srow[4] = 0; srow[5] = 0; }
    if (rank_out) return;
    for (int i = k + tid; i < kp; i += nt) list[i] = 0ull;
    __syncthreads();
    bitonic_desc(list, kp, g);
    write_out(list, k, xr, out_v + (size_t)row * k, out_i + (size_t)row * k, g);
}

// ---- Large k, after topk_filter's rank_out: the row's k selected keys (distinct) sorted by many blocks. --------
// topk_segsort: block (s, row) sorts segment s (SEG keys; past k: 0, below every real key) descending in place.
// topk_rank: block (s, row) loads all of the row's sorted segments; a key's place in the output is its place in
// its own segment plus, in every other segment, the count of greater keys (binary search). Then one write each.
// (Sorting the segments inside topk_rank instead, every block all of them, measured 10 us slower on the H100.)
#define SEG 256
extern "C" __global__ void __launch_bounds__(SEG / 2)
topk_segsort(u64* __restrict__ sel, int k) {
    __shared__ u64 s[SEG];
    pdl_wait();
    u64* r = sel + (size_t)blockIdx.y * k;
    int base = blockIdx.x * SEG;
    copy_in(s, r + base, min(SEG, k - base), SEG, threadIdx.x, blockDim.x);
    __syncthreads();
    Group g{(int)threadIdx.x, (int)blockDim.x, 0};
    bitonic_desc(s, SEG, g);
    for (int i = threadIdx.x; i < SEG && base + i < k; i += blockDim.x) r[base + i] = s[i];
}

extern "C" __global__ void __launch_bounds__(SEG)
topk_rank(const float* __restrict__ x, const u64* __restrict__ sel, float* __restrict__ out_v,
          long long* __restrict__ out_i, int cols, int k) {
    extern __shared__ __align__(16) u8 smem[];
    u64* s = reinterpret_cast<u64*>(smem);
    pdl_wait();
    int row = blockIdx.y, nseg = (k + SEG - 1) / SEG;
    const u64* r = sel + (size_t)row * k;
    copy_in(s, r, k, nseg * SEG, threadIdx.x, blockDim.x);
    __syncthreads();
    int i = blockIdx.x * SEG + (int)threadIdx.x;
    if (i >= k) return;
    u64 me = s[i];
    int rank = 0;
    for (int t = 0; t < nseg; ++t) {              // own segment included: it counts the keys above me there too
        const u64* seg = s + t * SEG;
        int lo = 0;                               // keys of seg greater than me (seg descending): branch-free search
#pragma unroll
        for (int step = SEG / 2; step; step >>= 1)
            if (seg[lo + step - 1] > me) lo += step;
        rank += lo + (seg[lo] > me);              // all SEG above me: the steps reach SEG - 1 only
    }
    u32 col = ~(u32)me;
    out_i[(size_t)row * k + rank] = (long long)col;
    out_v[(size_t)row * k + rank] = x[(size_t)row * cols + col];
}

// ---- where_nd. meta (int64[24]): shape[6] (outermost first, padded in front with 1), then byte strides[6] of
// cond, x, y. Pointers point at the start of each view's memory span; off* are the byte offsets of element 0. ---
__device__ __forceinline__ u32 splat_byte(u8 b) { return b ? 0x01010101u : 0u; }

// Adds to oc, ox, oy the byte offsets of output element `rest` (row-major over the last nd dims of meta m).
template <typename I>
__device__ __forceinline__ void add_offsets(I rest, int nd, const long long* m, long long& oc, long long& ox,
                                            long long& oy) {
#pragma unroll
    for (int d = 5; d >= 0; --d) {
        if (d >= 6 - nd) {
            I n = (I)m[d];
            I c = rest % n;
            rest /= n;
            oc += (long long)c * m[6 + d];
            ox += (long long)c * m[12 + d];
            oy += (long long)c * m[18 + d];
        }
    }
}

template <int VPT>
__device__ __forceinline__ void where_vec_impl(const u8* __restrict__ cb, const u8* __restrict__ xb,
        const u8* __restrict__ yb, uint4* __restrict__ out, const long long* __restrict__ meta,
        long long offc, long long offx, long long offy, u32 ngroups, int nd, int cbc, int xbc, int ybc) {
    __shared__ long long m[24];
    if (threadIdx.x < 24) m[threadIdx.x] = meta[threadIdx.x];
    __syncthreads();
    u32 g0 = blockIdx.x * blockDim.x * VPT + threadIdx.x;
    uint4 xv[VPT], yv[VPT];
    u32 cv[VPT];
#pragma unroll
    for (int v = 0; v < VPT; ++v) {
        u32 gi = g0 + v * blockDim.x;
        if (gi < ngroups) {
            long long oc = offc, ox = offx, oy = offy;
            add_offsets<u32>(gi * 4u, nd, m, oc, ox, oy);
            cv[v] = cbc ? splat_byte(__ldg(cb + oc)) : __ldg(reinterpret_cast<const u32*>(cb + oc));
            if (xbc) { u32 s = __ldg(reinterpret_cast<const u32*>(xb + ox)); xv[v] = make_uint4(s, s, s, s); }
            else xv[v] = __ldg(reinterpret_cast<const uint4*>(xb + ox));
            if (ybc) { u32 s = __ldg(reinterpret_cast<const u32*>(yb + oy)); yv[v] = make_uint4(s, s, s, s); }
            else yv[v] = __ldg(reinterpret_cast<const uint4*>(yb + oy));
        }
    }
#pragma unroll
    for (int v = 0; v < VPT; ++v) {
        u32 gi = g0 + v * blockDim.x;
        if (gi < ngroups) {
            u32 c = cv[v];
            uint4 r;
            r.x = (c & 0xffu) ? xv[v].x : yv[v].x;
            r.y = (c & 0xff00u) ? xv[v].y : yv[v].y;
            r.z = (c & 0xff0000u) ? xv[v].z : yv[v].z;
            r.w = (c & 0xff000000u) ? xv[v].w : yv[v].w;
            __stcs(out + gi, r);
        }
    }
}

#define WHERE_VEC(V, B) extern "C" __global__ void __launch_bounds__(B) where_vec##V( \
    const u8* cb, const u8* xb, const u8* yb, uint4* out, const long long* meta, long long offc, long long offx, \
    long long offy, u32 ngroups, int nd, int cbc, int xbc, int ybc) { \
    where_vec_impl<V>(cb, xb, yb, out, meta, offc, offx, offy, ngroups, nd, cbc, xbc, ybc); }
WHERE_VEC(1, 1024)
WHERE_VEC(2, 1024)
WHERE_VEC(4, 1024)
WHERE_VEC(8, 512)

template <typename I>
__device__ __forceinline__ void where_any_impl(const u8* __restrict__ cb, const u8* __restrict__ xb,
        const u8* __restrict__ yb, u32* __restrict__ out, const long long* __restrict__ meta,
        long long offc, long long offx, long long offy, I numel, int nd, int vpt) {
    __shared__ long long m[24];
    if (threadIdx.x < 24) m[threadIdx.x] = meta[threadIdx.x];
    __syncthreads();
    for (int v = 0; v < vpt; ++v) {
        I i = ((I)blockIdx.x * vpt + v) * blockDim.x + threadIdx.x;
        if (i >= numel) return;
        long long oc = offc, ox = offx, oy = offy;
        add_offsets<I>(i, nd, m, oc, ox, oy);
        out[i] = cb[oc] ? *reinterpret_cast<const u32*>(xb + ox) : *reinterpret_cast<const u32*>(yb + oy);
    }
}

extern "C" __global__ void where_any32(const u8* cb, const u8* xb, const u8* yb, u32* out, const long long* meta,
        long long offc, long long offx, long long offy, u32 numel, int nd, int vpt) {
    where_any_impl<u32>(cb, xb, yb, out, meta, offc, offx, offy, numel, nd, vpt);
}
extern "C" __global__ void where_any64(const u8* cb, const u8* xb, const u8* yb, u32* out, const long long* meta,
        long long offc, long long offx, long long offy, u64 numel, int nd, int vpt) {
    where_any_impl<u64>(cb, xb, yb, out, meta, offc, offx, offy, numel, nd, vpt);
}

// Keeps the GPU busy while the host enqueues a timed region, so host launch overhead stays out of event timings.
extern "C" __global__ void spin(long long cycles) {
    long long t0 = clock64();
    while (clock64() - t0 < cycles) { }
}
"""

KERNELS = ("topk_rows", "topk_hist", "topk_filter", "topk_segsort", "topk_rank",
           "where_vec1", "where_vec2", "where_vec4", "where_vec8", "where_any32", "where_any64", "spin")


class _LaunchAttr(ctypes.Structure):        # CUlaunchAttribute: id, padding, a 64-byte value union
    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_int * 16)]


class _LaunchConfig(ctypes.Structure):      # CUlaunchConfig
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3), ("smem", ctypes.c_uint),
                ("stream", ctypes.c_void_p), ("attrs", ctypes.POINTER(_LaunchAttr)), ("nattrs", ctypes.c_uint)]


_PROGRAMMATIC_STREAM_SERIALIZATION = 6     # CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION


def pdl_launcher(cp):
    """f(kernel, grid, block, args, smem) launching a CuPy RawKernel through the driver's cuLaunchKernelEx with
    programmatic stream serialization allowed; None where the driver has no cuLaunchKernelEx (before CUDA 12)."""
    try:
        fn = ctypes.CDLL("libcuda.so.1").cuLaunchKernelEx
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int
    attr = _LaunchAttr(id=_PROGRAMMATIC_STREAM_SERIALIZATION)
    attr.value[0] = 1

    def launch(kern, grid, block, args, smem):
        vals = [ctypes.c_void_p(a.data.ptr) if isinstance(a, cp.ndarray) else
                (ctypes.c_int32 if a.dtype == np.int32 else ctypes.c_int64)(int(a)) for a in args]
        ptrs = (ctypes.c_void_p * len(vals))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in vals])
        g = tuple(grid) + (1,) * (3 - len(grid))
        b = tuple(block) + (1,) * (3 - len(block))
        cfg = _LaunchConfig((ctypes.c_uint * 3)(*g), (ctypes.c_uint * 3)(*b), smem,
                            ctypes.c_void_p(cp.cuda.get_current_stream().ptr), ctypes.pointer(attr), 1)
        err = fn(ctypes.byref(cfg), ctypes.c_void_p(kern.kernel.ptr), ptrs, None)
        if err:
            raise KernelError(f"cuLaunchKernelEx failed with CUresult {err}")
    return launch


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
        self._pdl = None             # programmatic dependent launch (pdl_launcher), sm_90+ with a CUDA 12 driver

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
                        self._mod = cp.RawModule(code=CUDA_SRC, options=("-std=c++17",))
                        self._kern = {n: self._mod.get_function(n) for n in KERNELS}
                    except Exception as e:
                        self._mod = None
                        raise KernelError(f"CUDA kernels failed to compile: {e}") from None
                    attrs = cp.cuda.Device(self._dev_id).attributes
                    self._smem_optin = int(attrs["MaxSharedMemoryPerBlockOptin"])
                    self._clock_khz = int(attrs["ClockRate"])
                    cc = int(cp.cuda.Device(self._dev_id).compute_capability)
                    self._pdl = pdl_launcher(cp) if cc >= 90 else None
            return self._kern

    def _launch(self, name, grid, block, args, smem=0, pdl=False):
        """Launch a kernel on the current stream; pdl: as a programmatic dependent launch (see pdl_wait)
        when the device and driver have it, else a plain launch."""
        k = self._kern[name]
        if smem > 48 * 1024 and k.max_dynamic_shared_size_bytes < smem:
            k.max_dynamic_shared_size_bytes = smem
        if pdl and self._pdl is not None:
            try:
                return self._pdl(k, grid, block, args, smem)
            except KernelError:
                self._pdl = None     # the driver refused the attribute: plain launches from now on
        k(grid, block, args, shared_mem=smem)

    # -- TopK ---------------------------------------------------------------------------------------------
    @staticmethod
    def default_params(rows: int, cols: int, k: int) -> dict:
        """params=None: the first matching row of DEFAULT_TABLE (measured fastest on an H100, see bench/)."""
        for pred, p in DEFAULT_TABLE:
            if pred(rows, cols, k):
                return dict(p)
        raise AssertionError("DEFAULT_TABLE has a catch-all row")

    def fixed_default(self, kernel: str, query: tuple) -> dict:
        """The configuration of params="default": DEFAULT_TABLE's row for TopK, direct wg 256 vpt 4 for where_nd."""
        if kernel == "topk":
            return self.default_params(*query)
        return {**space_defaults("where_nd"), "wg": 256, "vpt": 4}

    def _resolve_params(self, rows, cols, k, params):
        if params is None:
            return self.default_params(rows, cols, k)
        p = space_defaults("topk")
        unknown = set(params) - set(p)
        if unknown:
            raise ParamsError(f"unknown topk parameters {sorted(unknown)}; allowed: {sorted(p)}")
        p.update(params)
        wg, kl, ch = int(p["wg"]), int(p["kl"]), int(p["ch"])
        if wg % 32 or not 64 <= wg <= 1024 or wg & (wg - 1):
            raise ParamsError(f"wg must be a power of two in [64, 1024], got {wg}")
        if kl < 1:
            raise ParamsError(f"kl must be >= 1, got {kl}")
        if p["use_2ce"] and ch % 4:
            raise ParamsError(f"ch must be a multiple of 4 (or 0 for the default {DEFAULT_CH}), got {ch}")
        if not p["use_2ce"] and ch:
            raise ParamsError(f"ch must be 0 when use_2ce is false, got {ch}")
        return p

    def _topk_plan(self, rows, cols, k, params):
        """Launch list [(kernel, grid, block, args, smem)] for a shape and configuration, scratch allocated."""
        cp = self._cp()
        self._kernels()
        p = self._resolve_params(rows, cols, k, params)
        wg = int(p["wg"])
        kp = next_pow2(k)
        if not p["use_2ce"]:
            lanes = min(wg, max(32 * int(p["kl"]), wg // 8))
            groups = wg // lanes
            keys_bytes = -(-cols * 4 // 16) * 16
            gbytes = keys_bytes + kp * 8 + 256 * 4 + 32
            smem = gbytes * groups
            if smem > self._smem_optin:
                raise ParamsError(f"1CE needs {smem} bytes of shared memory for cols={cols}, k={k}, wg={wg}, "
                                  f"kl={p['kl']} ({groups} rows per block); this device allows "
                                  f"{self._smem_optin}: use use_2ce=true or fewer rows per block (larger kl)")

            def launches(xd, ov, oi):
                return [("topk_rows", (-(-rows // groups),), (wg,),
                         (xd, ov, oi, np.int32(rows), np.int32(cols), np.int32(k), np.int32(kp), np.int32(lanes),
                          np.int32(gbytes), np.int32(keys_bytes)), smem)]
            return p, launches
        ch = int(p["ch"]) or DEFAULT_CH
        nchunks = -(-cols // ch)
        passes = 1 if cols <= ONE_PASS_MAX_COLS else 2
        cap = min(cols, CAND_CAP)
        smem = max(ch * 8, cap * 8 + kp * 8 + 256 * 4 + 32)
        if smem > self._smem_optin:
            raise ParamsError(f"2-stage needs {smem} bytes of shared memory (ch={ch}, k={k}); this device allows "
                              f"{self._smem_optin}: use a smaller ch")
        s = self._scratch_for(cp, rows, cols, k)
        rank_sort = kp >= RANK_SORT_MIN_K

        def launches(xd, ov, oi):
            out = [("topk_hist", (nchunks, rows), (wg,),
                    (xd, s["ghist"], s["state"], np.int32(cols), np.int32(k), np.int32(ch), np.int32(nchunks),
                     np.int32(ps)), 0) for ps in range(passes)]
            out.append(("topk_filter", (nchunks, rows), (wg,),
                        (xd, s["state"], s["sure"], s["cand"], ov, oi, np.int32(cols), np.int32(k), np.int32(kp),
                         np.int32(ch), np.int32(nchunks), np.int32(HBITS * passes), np.int32(cap),
                         np.int32(rank_sort)), smem))
            if rank_sort:
                nseg = -(-k // SEG)
                out.append(("topk_segsort", (nseg, rows), (SEG // 2,), (s["sure"], np.int32(k)), 0))
                out.append(("topk_rank", (nseg, rows), (SEG,), (xd, s["sure"], ov, oi, np.int32(cols), np.int32(k)),
                            nseg * SEG * 8))
            return out
        return p, launches

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

    def topk2d_device(self, xd, k: int, params: dict | None = None):
        """TopK of a CuPy float32 [rows, cols] C-contiguous array on the device: (values float32, indices int64)."""
        cp = self._cp()
        if xd.dtype != cp.float32 or xd.ndim != 2 or not xd.flags.c_contiguous:
            raise ShapeError(f"xd must be a C-contiguous float32 2-d CuPy array, got {xd.dtype} {xd.shape}")
        rows, cols = xd.shape
        k = int(k)
        with self._lock, cp.cuda.Device(self._dev_id):
            _, launches = self._topk_plan(rows, cols, k, params)
            ov = cp.empty((rows, k), dtype=cp.float32)
            oi = cp.empty((rows, k), dtype=cp.int64)
            self._run(launches(xd, ov, oi))
            return ov, oi

    def topk2d(self, x, k, params=None):
        x = check_topk_args(x, k)
        cp = self._cp()
        with cp.cuda.Device(self._dev_id):
            xd = cp.asarray(np.ascontiguousarray(x))
            ov, oi = self.topk2d_device(xd, int(k), params)
            return cp.asnumpy(ov), cp.asnumpy(oi)

    def time_topk2d(self, x, k, params=None, repeats=5, warmups=1) -> Timing:
        x = check_topk_args(x, k)
        cp = self._cp()
        with self._lock, cp.cuda.Device(self._dev_id):
            xd = cp.asarray(np.ascontiguousarray(x))
            return self.time_topk2d_device(xd, int(k), params, repeats, warmups)

    def time_topk2d_device(self, xd, k, params=None, repeats=5, warmups=1) -> Timing:
        cp = self._cp()
        rows, cols = xd.shape
        with self._lock, cp.cuda.Device(self._dev_id):
            _, launches = self._topk_plan(rows, cols, int(k), params)
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

    def time_where_nd(self, cond, x, y, params=None, repeats=5, warmups=1) -> Timing:
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

