// where_nd: out = cond ? x : y over up to 6 dimensions with NumPy broadcasting, for 32-bit values (float32 and
// int32 alike: the kernel moves bits and never looks at them). The output is contiguous, row-major.
//
// Every thread writes runs of 4 consecutive output elements as one 16-byte store (run r = elements 4r..4r+3), so
// every buffer is bound as array<vec4<u32>>, padded by the host to a multiple of 16 bytes; a 32-bit scalar at byte
// offset b is v[b >> 4][(b >> 2) & 3]. Padding lanes of the last run get whatever select gives: never read back.
//
// where_strided (the direct-strided path): cond, x and y are each bound as the underlying buffer of a possibly
// non-contiguous view, uploaded once as is. An output element finds its three inputs from a base offset plus
// coordinate * stride, all in bytes; a broadcast dimension has stride 0 and a reversed one a negative stride.
// cond is one byte per element (NumPy's bool), read out of the 32-bit word that holds it.
// When params.runs is 1 (the host decides, where_uniform), a run of 4 never crosses the innermost dimension and
// each input's run is one aligned 16-byte load (x, y: stride 4 bytes; cond: one 4-byte word) or one broadcast
// scalar (stride 0), so the outer offsets are computed once per run; otherwise each element is gathered alone.
//
// where_dense (the segmented path): the host has already written cond, x and y out contiguously and at full
// output shape, one queue write per contiguous segment; the kernel is a plain elementwise select, 4 at a time.
//
// Parameters: WG threads per workgroup, VPT runs of 4 output elements per thread (consecutive blocks of WG runs;
// where_strided loads up to four of them before storing any, H200 broadcast 0.82 -> 0.87 of the device copy;
// sizes and strides read from the uniform buffer in place, not through by-value array copies: 0.87 -> 0.98).

override WG: u32 = 256u;
override VPT: u32 = 1u;

struct Params {
    ndim: u32,
    numel: u32,
    runs: u32,                       // 1: 16-byte loads per run of 4 (see above), 0: gather element by element
    _pad1: u32,
    shape: array<vec4<u32>, 2>,      // output shape, dims 0..5 (unused dims are 1)
    cond_strides: array<vec4<i32>, 2>,
    x_strides: array<vec4<i32>, 2>,
    y_strides: array<vec4<i32>, 2>,
    bases: vec4<i32>,                // byte offsets of element (0, ..., 0) in cond, x, y
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cond: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> xs: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> ys: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<u32>>;

// Dimension d's size and strides, read from the uniform buffer where they are (an array passed by value would be
// copied into a private array, in memory, on every call).
fn shape_of(d: u32) -> u32 { return params.shape[d / 4u][d % 4u]; }
fn strides_of(d: u32) -> vec3<i32> {
    return vec3<i32>(params.cond_strides[d / 4u][d % 4u], params.x_strides[d / 4u][d % 4u],
                     params.y_strides[d / 4u][d % 4u]);
}

fn x_at(b: u32) -> u32 { return xs[b >> 4u][(b >> 2u) & 3u]; }
fn y_at(b: u32) -> u32 { return ys[b >> 4u][(b >> 2u) & 3u]; }
fn cond_word(b: u32) -> u32 { return cond[b >> 4u][(b >> 2u) & 3u]; }
fn cond_at(b: u32) -> bool { return ((cond_word(b) >> ((b & 3u) * 8u)) & 0xffu) != 0u; }
// The four bool bytes of one 32-bit word, little-endian.
fn cond_bytes(w: u32) -> vec4<bool> {
    return ((vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu)) != vec4<u32>(0u);
}

// Byte offsets (cond, x, y) of output element i (i < numel). Every dimension but the outermost takes a remainder and
// a quotient; the outermost coordinate is what is left, i < numel. (Masks and shifts for power-of-two sizes as well
// measured slower where no size is one: H200, bench/results/h200-2026-11-30-s21-where-grid.txt.)
fn offsets(i: u32) -> vec3<i32> {
    var rest = i;
    var o = params.bases.xyz;
    for (var d = params.ndim; d > 0u; d--) {
        var c = i32(rest);
        if (d > 1u) {
            let n = shape_of(d - 1u);
            c = i32(rest % n);
            rest = rest / n;
        }
        o += c * strides_of(d - 1u);
    }
    return o;
}

// Run r when params.runs is 1: its first element's offsets hold for all four, the inner stride says how to load.
fn run_vec(r: u32) -> vec4<u32> {
    let o = vec3<u32>(offsets(r * 4u));
    let inner = strides_of(params.ndim - 1u);
    var c: vec4<bool>;
    var x: vec4<u32>;
    var y: vec4<u32>;
    if (inner.x == 0) { c = vec4<bool>(cond_at(o.x)); } else { c = cond_bytes(cond_word(o.x)); }
    if (inner.y == 0) { x = vec4<u32>(x_at(o.y)); } else { x = xs[o.y >> 4u]; }
    if (inner.z == 0) { y = vec4<u32>(y_at(o.z)); } else { y = ys[o.z >> 4u]; }
    return select(y, x, c);
}

// Run r element by element (any strides, any alignment; elements past numel stay 0).
fn run_gather(r: u32) -> vec4<u32> {
    var v = vec4<u32>(0u);
    for (var e = 0u; e < 4u; e++) {
        let i = r * 4u + e;
        if (i < params.numel) {
            let o = vec3<u32>(offsets(i));
            v[e] = select(y_at(o.z), x_at(o.y), cond_at(o.x));
        }
    }
    return v;
}

fn first_run(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * VPT;
}

@compute @workgroup_size(WG)
fn where_strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let first = first_run(wid, nwg);
    let nruns = (params.numel + 3u) / 4u;
    var v = 0u;
    if (params.runs != 0u) {
        // four runs (then two) loaded before any is stored, held in registers: more loads in flight a thread
        for (; v + 3u < VPT; v += 4u) {
            let r = first + v * WG + lid;
            if (r + 3u * WG >= nruns) { break; }
            let a = run_vec(r);
            let b = run_vec(r + WG);
            let c = run_vec(r + 2u * WG);
            let d = run_vec(r + 3u * WG);
            out[r] = a;
            out[r + WG] = b;
            out[r + 2u * WG] = c;
            out[r + 3u * WG] = d;
        }
        for (; v + 1u < VPT; v += 2u) {
            let r = first + v * WG + lid;
            if (r + WG >= nruns) { break; }
            let a = run_vec(r);
            let b = run_vec(r + WG);
            out[r] = a;
            out[r + WG] = b;
        }
    }
    for (; v < VPT; v++) {
        let r = first + v * WG + lid;
        if (r >= nruns) { return; }
        if (params.runs != 0u) {
            out[r] = run_vec(r);
        } else {
            out[r] = run_gather(r);
        }
    }
}

@compute @workgroup_size(WG)
fn where_dense(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let first = first_run(wid, nwg);
    let nruns = (params.numel + 3u) / 4u;
    for (var v = 0u; v < VPT; v++) {
        let r = first + v * WG + lid;
        if (r >= nruns) { return; }
        out[r] = select(ys[r], xs[r], cond_bytes(cond[r >> 2u][r & 3u]));
    }
}
