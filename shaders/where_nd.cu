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
