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
// The float whose key_of is kk: the bits back, or for a NaN (its payload not in the key) the row's own value.
__device__ __forceinline__ float value_of(u32 kk, u32 col, const float* __restrict__ xr) {
    if (kk == 0xffffffffu) return xr[col];
    return __uint_as_float((kk & 0x80000000u) ? (kk & 0x7fffffffu) : ~kk);
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

// The k selected keys of list[0..k) sorted descending (padded with 0, below every real key, to kp, a power of two)
// and written out.
__device__ __forceinline__ void sort_write(u64* list, int k, int kp, const float* xr, float* ov, long long* oi,
                                           const Group& g) {
    for (int i = k + g.lane; i < kp; i += g.n) list[i] = 0ull;
    g.sync();
    bitonic_desc(list, kp, g);
    write_out(list, k, xr, ov, oi, g);
}

// radix_select over n candidates whose keys share their top nbits bits (prefix): the whole 8-bit digits among them
// are known, and the select starts at the first digit they do not settle.
template <class Get>
__device__ __forceinline__ u64 select_in_bin(Get&& get, int n, u32 need, u32 prefix, int nbits, const Group& g,
                                             u32* hist, SelState* st) {
    const int d0 = nbits / 8;
    const u64 pre0 = d0 ? ((u64)(prefix >> (nbits - 8 * d0)) << (64 - 8 * d0)) : 0ull;
    return radix_select(get, n, need, d0, pre0, false, g, hist, st);
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
    sort_write(list, k, kp, xr, out_v + (size_t)row * k, out_i + (size_t)row * k, g);
}

// One warp: the bin of h[0..nbins) (shared memory, 16-byte aligned; nbins a power of two from 128 to 2048),
// scanning from the top, where the running count reaches need. out[0] = the bin, out[1] = what is still needed
// inside it, out[2] = its count. Two levels, each a warp scan: which lane's span of nbins / 32 bins, then which bin
// inside it (nbins / 1024 bins a lane, or one bin a lane for the first nbins / 32 lanes).
__device__ __forceinline__ void warp_pick(const u32* h, int nbins, u32 need, u32* out, int lane) {
    const int per = nbins >> 5;
    const uint4* hv = reinterpret_cast<const uint4*>(h + nbins - (lane + 1) * per);   // lane 0: the top bins
    u32 s = 0;
#pragma unroll 8
    for (int j = 0; j < per / 4; ++j) { uint4 v = hv[j]; s += v.x + v.y + v.z + v.w; }
    const u32 incl = warp_incl_scan(s, lane);
    const u32 hit = __ballot_sync(FULL, incl - s < need && incl >= need);
    if (!hit) return;
    const int L = __ffs(hit) - 1, step = per >= 32 ? per >> 5 : 1, per2 = lane * step < per ? step : 0;
    const u32 runL = __shfl_sync(FULL, incl - s, L);
    const int top = nbins - 1 - L * per - lane * step;                              // lane's bins, downwards
    u32 s2 = 0;
    for (int j = 0; j < per2; ++j) s2 += h[top - j];
    const u32 incl2 = warp_incl_scan(s2, lane);
    u32 run = runL + incl2 - s2;
    if (run < need && run + s2 >= need) {
        for (int j = 0; j < per2; ++j) {
            const u32 c = h[top - j];
            if (run + c >= need) { out[0] = (u32)(top - j); out[1] = need - run; out[2] = c; break; }
            run += c;
        }
    }
    __syncwarp();
}

// ---- 1CE over rows longer than shared memory holds: one block a row, the row read again (from L2) per pass. ----
// Histogram passes of 11 bits (from global memory) until the bin holding the k-th largest is settled or has at most
// `cap` keys; one more pass collects the keys above the prefix into `list` and those matching it into `cand`; a
// radix select in shared memory picks the still-needed ones among them, and the k are bitonic-sorted. Where more
// than `cap` keys are equal to the k-th largest (a row of one repeated value), they are taken in column order.
// Shared memory: cand u64[cap] | list u64[kp] | hist u32[2048] (16-byte aligned) | SelState | u32[8].
extern "C" __global__ void __launch_bounds__(1024)
topk_stream(const float* __restrict__ x, float* __restrict__ out_v, long long* __restrict__ out_i,
            int cols, int k, int kp, int cap) {
    extern __shared__ __align__(16) u8 smem[];
    u64* cand = reinterpret_cast<u64*>(smem);
    u64* list = cand + cap;
    u32* hist = reinterpret_cast<u32*>((reinterpret_cast<size_t>(list + kp) + 15) & ~(size_t)15);  // uint4 reads
    SelState* st = reinterpret_cast<SelState*>(hist + HBINS);
    u32* misc = reinterpret_cast<u32*>(st + 1);        // [0] list fill, [1] cand fill, [2..5) warp_pick, [5] taken
    const int tid = threadIdx.x, nt = blockDim.x, row = blockIdx.x;
    const float* xr = x + (size_t)row * cols;
    u32 prefix = 0, need = (u32)k, cnt = (u32)cols;
    int pbits = 0;
    while (true) {
        const int w = min(HBITS, 32 - pbits), shift = 32 - pbits - w;
        for (int b = tid; b < HBINS; b += nt) hist[b] = 0;
        __syncthreads();
        scan_row<2>(xr, 0, cols, tid, nt, [&](int, u32 bits) {
            u32 kk = key_of(bits);
            if (pbits == 0 || (kk >> (32 - pbits)) == prefix) atomicAdd(&hist[(kk >> shift) & ((1u << w) - 1u)], 1u);
        });
        __syncthreads();
        if (tid < 32) warp_pick(hist, 1 << w, need, misc + 2, tid);
        __syncthreads();
        prefix = (prefix << w) | misc[2];
        need = misc[3];
        cnt = misc[4];
        pbits += w;
        __syncthreads();
        if (cnt == need || cnt <= (u32)cap || pbits == 32) break;
    }
    const bool done = cnt == need, fits = cnt <= (u32)cap;
    if (tid == 0) { misc[0] = 0; misc[1] = 0; misc[5] = 0; }
    __syncthreads();
    scan_row<2>(xr, 0, cols, tid, nt, [&](int c, u32 bits) {
        u32 kk = key_of(bits), top = pbits == 32 ? kk : kk >> (32 - pbits);
        if (top > prefix || (done && top == prefix)) list[atomicAdd(misc, 1u)] = comp(kk, (u32)c);
        else if (top == prefix && fits) cand[atomicAdd(misc + 1, 1u)] = comp(kk, (u32)c);
    });
    __syncthreads();
    Group g{tid, nt, 0};
    if (!done && fits) {
        const int nc = (int)misc[1];
        const u64 T = select_in_bin([&](int i) { return cand[i]; }, nc, need, prefix, pbits, g, hist, st);
        for (int i = tid; i < nc; i += nt)
            if (cand[i] >= T) list[atomicAdd(misc, 1u)] = cand[i];
    } else if (!done) {
        // more than cap keys equal the k-th largest (pbits == 32): the `need` of lowest column, tile by tile
        for (int c0 = 0; c0 < cols; c0 += nt) {
            const int c = c0 + tid;
            const u32 kk = c < cols ? key_of(__float_as_uint(xr[c])) : 0u;
            const u32 eq = c < cols && kk == prefix;
            const u32 before = block_excl_scan(eq, reinterpret_cast<u32*>(cand));
            const u32 taken = misc[5];
            if (eq && taken + before < need) list[atomicAdd(misc, 1u)] = comp(kk, (u32)c);
            __syncthreads();
            if (tid == nt - 1) misc[5] = taken + before + eq;
            __syncthreads();
            if (misc[5] >= need) break;
        }
    }
    __syncthreads();
    sort_write(list, k, kp, xr, out_v + (size_t)row * k, out_i + (size_t)row * k, g);
}

// ---- The radix pipeline in one launch (sm_90+): a row's chunks are the blocks of one thread-block cluster. -------
// Block r of the cluster (CL blocks, CL a power of two, 2 to 16) keeps columns [r*chunk, (r+1)*chunk) as u32 keys in
// shared memory. Radix select, 11 + 11 + 10 bits: each block histograms its keys' digit and adds its non-zero bins,
// through distributed shared memory, into the bins' owner (block b / S owns bins [b*S, (b+1)*S), S = 2048/CL), and
// its per-owner totals into every block; after one cluster barrier every block finds the owner whose slice holds
// the k-th largest from the totals it has, and the bin inside that slice from the owner's sums. Each pass has its
// own accumulators (zeroed at the start, so no pass waits for another's readers). The passes stop when that bin
// holds at most `slack` keys past what is still needed (0: exactly what is needed); all of it is selected then.
// Keys equal to the k-th largest past what is needed (pbits 32) are taken in column order (blocks in column
// order, a cluster prefix of their counts). sorted: each block sorts its selected keys (bitonic), gathers every
// block's sorted list, and writes each of its keys at its rank over all of them (binary search), dropping ranks k
// and up (the slack's). Unsorted (slack 0): each block writes its keys at a place reserved on block 0's counter.
// Unsorted, when the first pass's bin holds at most `ccap` keys of the row (the host sets ccap only for clusters of
// 2 or 4 blocks), the passes stop and the bin's keys are broadcast: every block finishes the select alone (`bcast`).
// Shared memory: A (max(chunk u32 keys, sorted: k+slack u64 gathered lists)) | list u64[lcap] | hist u32[2048] |
// sl u32[1024] | acc u32[3][S] | tot u32[3][16] | misc u32[128] | cbuf u64[ccap]
#define CL_MAXC 16
#if __CUDA_ARCH__ >= 900
__device__ __forceinline__ u32 cl_rank() { u32 r; asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r)); return r; }
__device__ __forceinline__ u32 cl_size() { u32 r; asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(r)); return r; }
__device__ __forceinline__ void cl_arrive() { asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory"); }
__device__ __forceinline__ void cl_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory"); }
// The shared::cluster address of `p`'s place in block `rank`'s shared memory.
__device__ __forceinline__ u32 cl_map(const void* p, u32 rank) {
    u32 a = (u32)__cvta_generic_to_shared(p), ra;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"(a), "r"(rank));
    return ra;
}
__device__ __forceinline__ u32 cl_ld32(u32 ra) {
    u32 v; asm volatile("ld.shared::cluster.u32 %0, [%1];" : "=r"(v) : "r"(ra)); return v;
}
__device__ __forceinline__ void cl_add(u32 ra, u32 v) {
    asm volatile("red.shared::cluster.add.u32 [%0], %1;" :: "r"(ra), "r"(v) : "memory");
}
#endif
#define CL_NSTAMP 14
#ifdef CL_TIMELINE      // bench/cluster_timeline.py: the global timer (ns) at each block's start [0], end [1], row
                        // loaded [2], each pass p's barrier passed [3+2p] and bin picked [4+2p] (p < 3), keys
                        // selected [9], the bin's keys broadcast [10] (places reserved [11], compacted [12],
                        // copied [13])
__device__ unsigned long long cl_timeline[CL_NSTAMP][8192];
#define CL_STAMP(w) do { if (threadIdx.x == 0) { unsigned long long t_; \
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t_)); \
    cl_timeline[w][blockIdx.y * 16 + blockIdx.x] = t_; } } while (0)
#else
#define CL_STAMP(w) do {} while (0)
#endif

extern "C" __global__ void __launch_bounds__(1024)
topk_cluster(const float* __restrict__ x, float* __restrict__ out_v, long long* __restrict__ out_i,
             int cols, int k, int chunk, int abytes, int lcap, int slack, int sorted, int ccap) {
#if __CUDA_ARCH__ >= 900
    extern __shared__ __align__(16) u8 smem[];
    CL_STAMP(0);
    const u32 r = cl_rank(), CL = cl_size(), S = HBINS / CL;
    const int tid = threadIdx.x, nt = blockDim.x, lane = tid & 31, row = blockIdx.y;
    u32* keys = reinterpret_cast<u32*>(smem);
    u64* gath = reinterpret_cast<u64*>(smem);
    u64* list = reinterpret_cast<u64*>(smem + abytes);
    u32* hist = reinterpret_cast<u32*>(list + lcap);
    u32* sl = hist + HBINS;                  // the owner's slice of the summed histogram, copied
    u32* acc = sl + HBINS / 2;               // [3][S]
    u32* tot = acc + 3 * S;                  // [3][16]
    u32* misc = tot + 3 * CL_MAXC;           // [0,16) local totals, [16,20) pick, [20] fill, [32,64) scan scratch,
                                             // [64,68) counts, [68,70) output place, [70] cbuf fill (by every
                                             // block), [71] this block's place in it, [72] its bin keys so far,
                                             // [80,96) list offsets, [96,112) list sizes, [112,128) broadcast:
                                             // where this block's keys go in each block's cbuf
    u32* ltot = misc;
    u64* cbuf = reinterpret_cast<u64*>(misc + 128);   // [ccap]: the bin's keys of the whole row (broadcast)
    const float* xr = x + (size_t)row * cols;
    const int c0 = min(cols, (int)r * chunk), n = min(cols, c0 + chunk) - c0;
    for (int i = tid; i < 3 * (int)S; i += nt) acc[i] = 0;
    for (int i = tid; i < 3 * CL_MAXC; i += nt) tot[i] = 0;
    for (int i = tid; i < HBINS; i += nt) hist[i] = 0;
    if (tid < CL_MAXC) ltot[tid] = 0;
    if (tid == 0) { misc[20] = 0; misc[68] = 0; misc[70] = 0; misc[72] = 0; }
    __syncthreads();
    cl_arrive();                             // accumulators and counters zeroed; waited for before the first remote add
    scan_row<2>(xr, c0, c0 + n, tid, nt, [&](int c, u32 bits) {
        u32 kk = key_of(bits);
        keys[c - c0] = kk;
        atomicAdd(&hist[kk >> (32 - HBITS)], 1u);
    });
    __syncthreads();
    cl_wait();
    CL_STAMP(2);
    u32 prefix = 0, need = (u32)k, cnt = 0, mine = 0;
    int pbits = 0, pass = 0;
    while (true) {
        const int w = min(HBITS, 32 - pbits), nb = 1 << w, shift = 32 - pbits - w;
        if (pass > 0) {                      // hist and ltot were cleared after the last pass's barrier
            for (int i = tid; i < n; i += nt) {
                const u32 kk = keys[i];
                if ((kk >> (32 - pbits)) == prefix) atomicAdd(&hist[(kk >> shift) & (nb - 1)], 1u);
            }
            __syncthreads();
        }
        // each bin to its owner; S is a multiple of 32, so a warp's bins share one owner
        u32* pacc = acc + pass * S;
        u32* ptot = tot + pass * CL_MAXC;
        for (int b = tid; b < nb; b += nt) {
            const u32 v = hist[b], o = (u32)b / S;
            if (v) cl_add(cl_map(pacc + (b - o * S), o), v);
            u32 s = v;
#pragma unroll
            for (int d = 16; d; d >>= 1) s += __shfl_xor_sync(FULL, s, d);
            if (lane == 0 && s) atomicAdd(&ltot[o], s);
        }
        __syncthreads();
        for (int i = tid; i < (int)(CL * CL); i += nt) {   // this block's per-owner totals, to every block
            const u32 q = i / CL, o = i % CL, v = ltot[o];
            if (v) cl_add(cl_map(ptot + o, q), v);
        }
        cl_arrive();
        cl_wait();
        CL_STAMP(3 + 2 * pass);
        const bool last = pbits + w == 32;   // the last pass's hist stays: its counts settle ties
        const bool keep = pass == 0 && ccap; // and the first's until its bin is known, for the broadcast (below)
        if (!last && !keep) {
            for (int i = tid; i < HBINS; i += nt) hist[i] = 0;
            if (tid < CL_MAXC) ltot[tid] = 0;
        }
        {   // every warp: the owner whose slice holds the k-th largest (lane l looks at owner CL-1-l, from the top)
            const u32 t = lane < (int)CL ? ptot[CL - 1 - lane] : 0u;
            const u32 incl = warp_incl_scan(t, lane);
            const int L = __ffs(__ballot_sync(FULL, incl - t < need && incl >= need)) - 1;
            const u32 o = CL - 1 - L, want = need - __shfl_sync(FULL, incl - t, L);
            for (int i = tid; i < (int)S; i += nt) sl[i] = cl_ld32(cl_map(pacc + i, o));
            __syncthreads();
            if (tid < 32 && S >= 512) {      // two levels (2 blocks: 1024 bins a slice, 4: 512)
                warp_pick(sl, (int)S, want, misc + 16, lane);
                if (lane == 0) misc[16] += o * S;
            } else if (tid < 32) {           // lane l: per bins of the slice, from the top
                const int per = S / 32, top = S - 1 - lane * per;
                u32 s = 0;
                for (int j = 0; j < per; ++j) s += sl[top - j];
                u32 run = warp_incl_scan(s, lane) - s;
                if (run < want && run + s >= want) {
                    for (int j = 0; j < per; ++j) {
                        const u32 c = sl[top - j];
                        if (run + c >= want) { misc[16] = o * S + top - j; misc[17] = want - run; misc[18] = c; break; }
                        run += c;
                    }
                }
            }
        }
        __syncthreads();
        CL_STAMP(4 + 2 * pass);
        const u32 bin = misc[16];
        prefix = (prefix << w) | bin;
        need = misc[17];
        cnt = misc[18];
        pbits += w;
        ++pass;
        // Stop when the bin is all needed, or holds at most `slack` keys past what is needed: all of it is then
        // selected, and the ranks (below) drop the extra ones, which rank k or more.
        if (cnt - need <= (u32)slack || last) break;
        if (keep && cnt <= (u32)ccap) { mine = hist[bin]; break; }   // few enough to broadcast (below)
        if (keep) {
            for (int i = tid; i < HBINS; i += nt) hist[i] = 0;
            if (tid < CL_MAXC) ltot[tid] = 0;
        }
        __syncthreads();                     // misc[16..19) is written again by the next pass
    }
    // selection into list: keys above the prefix, and those matching it (all, the first `take` in column order, or
    // the `need` largest of the bin's keys over the whole row, broadcast)
    const bool all = cnt - need <= (u32)slack;
    const bool bcast = !all && pass == 1 && cnt <= (u32)ccap;
    if (bcast) {
        // Every block puts its `mine` keys of the bin (composite: key, then lower column) into every block's cbuf,
        // at a place reserved with one atomic on that block's counter: first into its own, then copied to the
        // others. After one cluster barrier each block holds the bin's `cnt` keys of the row and finds the
        // need-th largest, T, alone. Composites are unique, so every block agrees on T and takes its own keys >= T.
        if (tid < (int)CL && tid != (int)r) {
            u32 off;
            asm volatile("atom.shared::cluster.add.u32 %0, [%1], %2;"
                         : "=r"(off) : "r"(cl_map(misc + 70, tid)), "r"(mine) : "memory");
            misc[112 + tid] = cl_map(cbuf, tid) + 8u * off;
        }
        if (tid == (int)CL) misc[71] = atomicAdd(misc + 70, mine);
        __syncthreads();
        CL_STAMP(11);
        const u32 own = misc[71];
        const int shr = 32 - pbits;
        for (int i0 = 0; i0 < n; i0 += nt) {             // sure keys into list, the bin's into cbuf[own...)
            const int i = i0 + tid;
            const u32 kk = i < n ? keys[i] : 0u, top = kk >> shr;
            const bool sure = i < n && top > prefix, inbin = i < n && top == prefix;
            const u32 ms = __ballot_sync(FULL, sure), mb = __ballot_sync(FULL, inbin);
            u32 as = 0, ab = 0;
            if (lane == 0 && ms) as = atomicAdd(misc + 20, (u32)__popc(ms));
            if (lane == 0 && mb) ab = atomicAdd(misc + 72, (u32)__popc(mb));
            as = __shfl_sync(FULL, as, 0);
            ab = __shfl_sync(FULL, ab, 0);
            const u32 below = (1u << lane) - 1u;
            if (sure) list[as + __popc(ms & below)] = comp(kk, (u32)(c0 + i));
            if (inbin) cbuf[own + ab + __popc(mb & below)] = comp(kk, (u32)(c0 + i));
        }
        __syncthreads();
        CL_STAMP(12);
        for (u32 q = 0; q < CL; ++q) {                   // then copied to the others, consecutive threads adjacent
            if (q == r) continue;
            const u32 ra = misc[112 + q];
            for (int j = tid; j < (int)mine; j += nt)
                asm volatile("st.shared::cluster.u64 [%0], %1;" :: "r"(ra + 8u * j), "l"(cbuf[own + j]) : "memory");
        }
        CL_STAMP(13);
        cl_arrive();
        cl_wait();
        CL_STAMP(10);
        Group g{tid, nt, 0};
        SelState* st = reinterpret_cast<SelState*>(sl);
        // the need-th largest of the bin's keys, from their bits below the prefix (8 a digit: the first digit is
        // then not mostly known bits)
        const u64 T = ((u64)prefix << (64 - pbits)) | (radix_select([&](int i) { return cbuf[i] << pbits; }, (int)cnt,
                                                                    need, 0, 0ull, false, g, hist, st) >> pbits);
        for (int j = tid; j < (int)mine; j += nt) {
            const u64 e = cbuf[own + j];
            if (e >= T) list[atomicAdd(misc + 20, 1u)] = e;
        }
    } else if (all) {
        const int shr = 32 - pbits;
        for (int i0 = 0; i0 < n; i0 += nt) {             // warp-aggregated appends
            const int i = i0 + tid;
            const u32 kk = i < n ? keys[i] : 0u;
            const bool sel = i < n && (kk >> shr) >= prefix;
            const u32 m = __ballot_sync(FULL, sel);
            u32 at = 0;
            if (lane == 0 && m) at = atomicAdd(misc + 20, (u32)__popc(m));
            at = __shfl_sync(FULL, at, 0);
            if (sel) list[at + __popc(m & ((1u << lane) - 1u))] = comp(kk, (u32)(c0 + i));
        }
    } else {
        // pbits == 32: the keys equal to the k-th largest, more of them than needed; this block's count is its bin
        if (tid == 0) misc[64] = hist[prefix & 1023u];
        __syncthreads();
        cl_arrive();
        cl_wait();
        if (tid == 0) {
            u32 before = 0;
            for (u32 q = 0; q < r; ++q) before += cl_ld32(cl_map(misc + 64, q));
            misc[65] = before;
        }
        __syncthreads();
        const u32 before = misc[65], here = misc[64], take = need > before ? min(need - before, here) : 0u;
        u32 taken = 0;
        for (int t0 = 0; t0 < n; t0 += nt) {
            const int i = t0 + tid;
            const u32 kk = i < n ? keys[i] : 0u;
            const u32 eq = i < n && kk == prefix;
            if (i < n && kk > prefix) list[atomicAdd(misc + 20, 1u)] = comp(kk, (u32)(c0 + i));
            const u32 bef = block_excl_scan(eq, misc + 32);
            if (eq && taken + bef < take) list[atomicAdd(misc + 20, 1u)] = comp(kk, (u32)(c0 + i));
            taken += __syncthreads_count(eq);
        }
    }
    __syncthreads();
    CL_STAMP(9);
    const int nsel = (int)misc[20];
    if (!sorted) {
        // unsorted (slack 0, so exactly k selected): this block's keys at a place in the row's output reserved
        // with one atomic on block 0's counter
        if (tid == 0) {
            u32 base;
            asm volatile("atom.shared::cluster.add.u32 %0, [%1], %2;"
                         : "=r"(base) : "r"(cl_map(misc + 68, 0)), "r"((u32)nsel) : "memory");
            misc[69] = base;
        }
        __syncthreads();
        const u32 base = misc[69];
        cl_arrive();
        for (int j = tid; j < nsel; j += nt) {
            const u64 e = list[j];
            const u32 col = ~(u32)e;
            out_i[(size_t)row * k + base + j] = (long long)col;
            out_v[(size_t)row * k + base + j] = value_of((u32)(e >> 32), col, xr);
        }
        CL_STAMP(1);
        cl_wait();                           // block 0 stays until every block has taken its place
        return;
    }
    int np2 = 1;
    while (np2 < nsel) np2 <<= 1;
    if (np2 <= nt) {
        // bitonic sort, descending, one key a thread: strides under 32 by shuffles, the others through list
        u64 v = tid < nsel ? list[tid] : 0ull;
        for (int size = 2; size <= np2; size <<= 1) {
            for (int stride = size >> 1; stride > 0; stride >>= 1) {
                u64 o;
                if (stride >= 32) {
                    if (tid < np2) list[tid] = v;
                    __syncthreads();
                    o = tid < np2 ? list[tid ^ stride] : 0ull;
                    __syncthreads();
                } else {
                    o = __shfl_xor_sync(FULL, v, stride);
                }
                const bool keep_max = ((tid & size) == 0) == ((tid & stride) == 0);
                v = keep_max ? (o > v ? o : v) : (o < v ? o : v);
            }
        }
        if (tid < np2) list[tid] = v;
    } else {
        for (int i = nsel + tid; i < np2; i += nt) list[i] = 0ull;
        __syncthreads();
        Group g{tid, nt, 0};
        bitonic_desc(list, np2, g);
    }
    if (tid == 0) misc[66] = (u32)nsel;
    __syncthreads();
    cl_arrive();
    cl_wait();
    // every block's list, in block order, into gath
    if (tid < 32) {
        const u32 v = lane < (int)CL ? cl_ld32(cl_map(misc + 66, lane)) : 0u;
        const u32 incl = warp_incl_scan(v, lane);
        if (lane < CL_MAXC) { misc[80 + lane] = incl - v; misc[96 + lane] = v; }
    }
    __syncthreads();
    const u32* off = misc + 80;
    const u32* len = misc + 96;
    u32 most = 0;
    for (u32 q = 0; q < CL; ++q) most = max(most, len[q]);
    for (int i = 2 * tid; i < (int)most; i += 2 * nt) {
#pragma unroll
        for (u32 q0 = 0; q0 < CL_MAXC; q0 += 8) {
            u64 a[8], b[8];
#pragma unroll
            for (u32 j = 0; j < 8; ++j) {
                const u32 q = q0 + j;
                if (q < CL && (u32)i < len[q]) {
                    const u32 ra = cl_map(list + i, q);
                    asm volatile("ld.shared::cluster.v2.u64 {%0, %1}, [%2];" : "=l"(a[j]), "=l"(b[j]) : "r"(ra));
                }
            }
#pragma unroll
            for (u32 j = 0; j < 8; ++j) {
                const u32 q = q0 + j;
                if (q < CL && (u32)i < len[q]) {
                    gath[off[q] + i] = a[j];
                    if ((u32)i + 1 < len[q]) gath[off[q] + i + 1] = b[j];
                }
            }
        }
    }
    __syncthreads();
    cl_arrive();                             // this block reads no other's shared memory after this
    // each selected key's rank: its place in its own list plus, in every other list, the count of greater keys.
    // tpe threads a key, each searching every tpe-th list, summed across them. Ranks k and up are dropped.
    int tpe = 1;
    while (tpe * 2 <= (int)CL && nsel * tpe * 2 <= nt) tpe <<= 1;
    const int sub = tid & (tpe - 1);
    for (int j0 = 0; j0 < nsel; j0 += nt / tpe) {
        const int j = j0 + tid / tpe;
        u32 rk = 0;
        u64 e = 0;
        if (j < nsel) {
            e = list[j];
            for (u32 q = sub; q < CL; q += tpe) {
                if (q == r) continue;
                const u64* a = gath + off[q];
                const u32 L = len[q];
                u32 lo = 0;
                for (u32 step = L ? 1u << (31 - __clz(L)) : 0u; step; step >>= 1)
                    if (lo + step <= L && a[lo + step - 1] > e) lo += step;
                rk += lo;
            }
        }
        for (int d = 1; d < tpe; d <<= 1) rk += __shfl_xor_sync(FULL, rk, d);
        rk += (u32)j;
        if (j < nsel && sub == 0 && rk < (u32)k) {
            const u32 col = ~(u32)e;
            out_i[(size_t)row * k + rk] = (long long)col;
            out_v[(size_t)row * k + rk] = value_of((u32)(e >> 32), col, xr);
        }
    }
    CL_STAMP(1);
    cl_wait();                               // no block leaves while another may still read its shared memory
#endif
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
            int cols, int k, int kp, int ch, int nchunks, int nbits, int cap, int rank_out, int per_block) {
    extern __shared__ __align__(16) u8 smem[];
    u64* buf = reinterpret_cast<u64*>(smem);
    __shared__ u32 ns, nc, gs, gc;
    __shared__ int last;
    pdl_wait();
    int tid = threadIdx.x, nt = blockDim.x;
    int row = blockIdx.y;
    u32* srow = state + (size_t)row * 8;
    u32 prefix = srow[2];
    int sh = 32 - nbits;
    const float* xr = x + (size_t)row * cols;
    u64* srow_sure = sure + (size_t)row * k;
    u64* crow = cand + (size_t)row * cols;
    // This block's per_block chunks of ch columns (nchunks: blocks per row), one after another.
    for (int q = 0; q < per_block; ++q) {
        int c0 = (blockIdx.x * per_block + q) * ch, c1 = min(cols, c0 + ch);
        if (c0 >= cols) break;
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
        for (u32 i = tid; i < ns; i += nt) srow_sure[gs + i] = buf[i];
        for (u32 i = tid; i < nc; i += nt) crow[gc + i] = buf[ch - 1 - i];
        __syncthreads();                      // buf is staged again by the next chunk
    }
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
    u64 T = select_in_bin(get, (int)n_c, need, prefix, nbits, g, hist, st);
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
    sort_write(list, k, kp, xr, out_v + (size_t)row * k, out_i + (size_t)row * k, g);
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
