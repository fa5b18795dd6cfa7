// where_nd: out = cond ? x : y over up to 6 dimensions with NumPy broadcasting, for 32-bit values (float32 and
// int32 alike: the kernel moves bits and never looks at them). The output is contiguous, row-major.
//
// where_strided (the direct-strided path): cond, x and y are each bound as the underlying buffer of a possibly
// non-contiguous view, uploaded once as is. Each output element finds its three inputs from a base offset plus
// coordinate * stride, all in bytes; a broadcast dimension has stride 0 and a reversed one a negative stride.
// cond is one byte per element (NumPy's bool), read out of the 32-bit word that holds it.
//
// where_dense (the segmented path): the host has already written cond, x and y out contiguously and at full
// output shape, one queue write per contiguous segment; the kernel is a plain elementwise select.
//
// Parameters: WG threads per workgroup, VPT output elements per thread (consecutive blocks of WG elements).

override WG: u32 = 256u;
override VPT: u32 = 1u;

struct Params {
    ndim: u32,
    numel: u32,
    _pad0: u32,
    _pad1: u32,
    shape: array<vec4<u32>, 2>,      // output shape, dims 0..5 (unused dims are 1)
    cond_strides: array<vec4<i32>, 2>,
    x_strides: array<vec4<i32>, 2>,
    y_strides: array<vec4<i32>, 2>,
    bases: vec4<i32>,                // byte offsets of element (0, ..., 0) in cond, x, y
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cond: array<u32>;
@group(0) @binding(2) var<storage, read> xs: array<u32>;
@group(0) @binding(3) var<storage, read> ys: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

fn dim(v: array<vec4<u32>, 2>, d: u32) -> u32 { return v[d / 4u][d % 4u]; }
fn sdim(v: array<vec4<i32>, 2>, d: u32) -> i32 { return v[d / 4u][d % 4u]; }

fn cond_byte(byte_off: u32) -> bool {
    return ((cond[byte_off >> 2u] >> ((byte_off & 3u) * 8u)) & 0xffu) != 0u;
}

fn first_element(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * VPT;
}

@compute @workgroup_size(WG)
fn where_strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let first = first_element(wid, nwg);
    let ndim = params.ndim;
    for (var v = 0u; v < VPT; v++) {
        let i = first + v * WG + lid;
        if (i >= params.numel) { return; }
        var rest = i;
        var oc = params.bases.x;
        var ox = params.bases.y;
        var oy = params.bases.z;
        for (var d = ndim; d > 0u; d--) {
            let n = dim(params.shape, d - 1u);
            let c = i32(rest % n);
            rest = rest / n;
            oc += c * sdim(params.cond_strides, d - 1u);
            ox += c * sdim(params.x_strides, d - 1u);
            oy += c * sdim(params.y_strides, d - 1u);
        }
        out[i] = select(ys[u32(oy) >> 2u], xs[u32(ox) >> 2u], cond_byte(u32(oc)));
    }
}

@compute @workgroup_size(WG)
fn where_dense(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let first = first_element(wid, nwg);
    for (var v = 0u; v < VPT; v++) {
        let i = first + v * WG + lid;
        if (i >= params.numel) { return; }
        out[i] = select(ys[i], xs[i], cond_byte(i));
    }
}
