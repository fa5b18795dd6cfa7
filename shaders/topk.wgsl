// Row-wise TopK over a float32 matrix [rows, cols]: the k largest values of each row with their column indices,
// sorted descending; equal values go to the lower index; NaN is larger than every number (and -0.0 < +0.0).
//
// Order: every element gets a 64-bit composite key (hi, lo): hi = the float's bits mapped to an order-preserving
// u32 (NaN -> 0xffffffff), lo = ~column, so a larger lo means a lower column. Composite keys are distinct, so
// "the k largest composites" is exactly the wanted set, ties included.
//
// Selection (both pipelines): radix select, 8 bits a pass from the top of (hi, lo), with a 256-bin histogram in
// workgroup memory; it stops as soon as the chosen bin holds exactly the number still needed, which for random
// data is after two or three passes. The selected elements are compacted into a scratch list and sorted with a
// bitonic sort (descending) in storage memory.
//
// 1CE: topk_1ce, one workgroup per row: select k of the row, sort, write the result. One dispatch.
// 2CE: topk_chunks (pass 1), one workgroup per (chunk of CH columns, row): select min(k, chunk length) of the chunk
//      and sort them into the chunk's candidate list (padded with sentinels to KP). topk_merge (pass 2), one
//      invocation per candidate: a K-way merge by rank, the rank of a candidate being its position in its own list
//      plus the number of larger candidates in every other list (binary search); ranks below k are written out.
//
// Parameters (override constants; see shaders/space.json): WG threads per workgroup, KL keys per thread per step of
// a scan over the row, CH columns per chunk (2CE). The scan helpers (scan_wg.wgsl or scan_sg.wgsl) come first.

override WG: u32 = 256u;
override KL: u32 = 4u;
override CH: u32 = 8192u;
// Capacity of the workgroup-memory sort, set by the host (native/space.py sort_cap): the candidate list length kp
// when kp pairs fit in the adapter's workgroup storage beside the other workgroup variables, else 1. Lists longer
// than SORT_CAP are sorted in storage memory instead (every bitonic stage then goes through L2).
override SORT_CAP: u32 = 1u;

struct Shape {
    rows: u32,
    cols: u32,
    k: u32,
    kp: u32,        // k rounded up to a power of two: the length of a candidate list
    nchunks: u32,   // lists per row: 1 for 1CE, ceil(cols / CH) for 2CE
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> xbits: array<u32>;                 // the input, as float bits
@group(0) @binding(2) var<storage, read_write> cand: array<vec2<u32>>;      // candidate lists (hi, lo)
@group(0) @binding(3) var<storage, read_write> out_val: array<u32>;         // [rows, k] float bits
@group(0) @binding(4) var<storage, read_write> out_idx: array<u32>;         // [rows, k] column indices

const BINS: u32 = 256u;
var<workgroup> hist: array<atomic<u32>, BINS>;
var<workgroup> sel_prefix: vec2<u32>;   // digits chosen so far
var<workgroup> sel_need: u32;           // how many of the elements matching the prefix are still to be taken
var<workgroup> sel_done: u32;
var<workgroup> fill: atomic<u32>;
var<workgroup> sort_buf: array<vec2<u32>, SORT_CAP>;

// sort_key and greater: topk_key.wgsl, assembled in front of this file.

// Mask of the bits of (hi, lo) fixed by the first `d` digits.
fn digit_mask(d: u32) -> vec2<u32> {
    if (d == 0u) { return vec2<u32>(0u, 0u); }
    if (d < 4u) { return vec2<u32>(0xffffffffu << (32u - 8u * d), 0u); }
    if (d == 4u) { return vec2<u32>(0xffffffffu, 0u); }
    if (d < 8u) { return vec2<u32>(0xffffffffu, 0xffffffffu << (32u - 8u * (d - 4u))); }
    return vec2<u32>(0xffffffffu, 0xffffffffu);
}

fn composite(row_base: u32, col: u32) -> vec2<u32> {
    return vec2<u32>(sort_key(xbits[row_base + col]), ~col);
}

// Radix select of the `need` largest composites among columns [c0, c1) of the row starting at row_base.
// Returns (prefix, mask): the selected elements are exactly those with (c & mask) >= prefix.
fn radix_select(row_base: u32, c0: u32, c1: u32, need: u32, lid: u32, rank: u32, sg_lane: u32, sg_size: u32)
        -> array<vec2<u32>, 2> {
    if (lid == 0u) {
        sel_prefix = vec2<u32>(0u, 0u);
        sel_need = need;
        sel_done = 0u;
    }
    let bpt = (BINS + WG - 1u) / WG;   // bins per invocation in the bin search
    var d = 0u;
    loop {
        if (d >= 8u) { break; }
        for (var b = lid; b < BINS; b += WG) { atomicStore(&hist[b], 0u); }
        let done = workgroupUniformLoad(&sel_done);
        if (done != 0u) { break; }
        let mask = digit_mask(d);
        let prefix = sel_prefix;
        let shift = 24u - 8u * (d % 4u);
        for (var t = c0; t < c1; t += WG * KL) {
            for (var j = 0u; j < KL; j++) {
                let col = t + j * WG + lid;
                if (col < c1) {
                    let c = composite(row_base, col);
                    if ((c.x & mask.x) == prefix.x && (c.y & mask.y) == prefix.y) {
                        let word = select(c.y, c.x, d < 4u);
                        atomicAdd(&hist[(word >> shift) & 0xffu], 1u);
                    }
                }
            }
        }
        workgroupBarrier();
        // Find the bin b where the count of elements in bins >= b first reaches sel_need (bins scanned from the
        // top: rank r owns bins 255 - r*bpt down to 255 - (r+1)*bpt + 1).
        var mine = 0u;
        for (var q = 0u; q < bpt; q++) {
            let slot = rank * bpt + q;
            if (slot < BINS) { mine += atomicLoad(&hist[BINS - 1u - slot]); }
        }
        // Read sel_need before the scan: the scan's barriers separate every read from the single write below
        // (reading it after the scan raced with the invocation that updates it).
        let want = sel_need;
        let above = wg_exclusive_scan(mine, rank, sg_lane, sg_size).x;
        var run = above;
        for (var q = 0u; q < bpt; q++) {
            let slot = rank * bpt + q;
            if (slot < BINS) {
                let bin = BINS - 1u - slot;
                let h = atomicLoad(&hist[bin]);
                if (run < want && run + h >= want) {
                    let left = want - run;
                    if (d < 4u) { sel_prefix.x |= bin << shift; } else { sel_prefix.y |= bin << shift; }
                    sel_need = left;
                    if (h == left) { sel_done = 1u; }
                }
                run += h;
            }
        }
        workgroupBarrier();
        d += 1u;
    }
    // The loop leaves d = number of digits fixed (the last one included).
    return array<vec2<u32>, 2>(workgroupUniformLoad(&sel_prefix), digit_mask(d));
}

// Compact the selected columns of [c0, c1) into cand[list .. list + n), pad to KP with sentinels, sort descending.
fn collect_and_sort(row_base: u32, c0: u32, c1: u32, sel: array<vec2<u32>, 2>, list: u32, lid: u32) {
    if (lid == 0u) { atomicStore(&fill, 0u); }
    workgroupBarrier();
    let prefix = sel[0];
    let mask = sel[1];
    for (var t = c0; t < c1; t += WG * KL) {
        for (var j = 0u; j < KL; j++) {
            let col = t + j * WG + lid;
            if (col < c1) {
                let c = composite(row_base, col);
                let m = c & mask;
                if (m.x > prefix.x || (m.x == prefix.x && m.y >= prefix.y)) {
                    let slot = atomicAdd(&fill, 1u);
                    cand[list + slot] = c;
                }
            }
        }
    }
    let n = workgroupUniformLoad(&fill);
    let kp = shape.kp;
    for (var i = n + lid; i < kp; i += WG) { cand[list + i] = vec2<u32>(0u, 0u); }
    storageBarrier();
    workgroupBarrier();
    bitonic_sort_desc(list, kp, lid);
}

// Bitonic sort of cand[list .. list + n) (n a power of two), descending, by one workgroup: in workgroup memory when
// the list fits (n <= SORT_CAP, uniform), else in place in storage memory.
fn bitonic_sort_desc(list: u32, n: u32, lid: u32) {
    if (n <= SORT_CAP) {
        for (var i = lid; i < n; i += WG) { sort_buf[i] = cand[list + i]; }
        workgroupBarrier();
        for (var size = 2u; size <= n; size = size << 1u) {
            for (var stride = size >> 1u; stride > 0u; stride = stride >> 1u) {
                for (var i = lid; i < n / 2u; i += WG) {
                    let a = 2u * i - (i & (stride - 1u));
                    let b = a + stride;
                    let va = sort_buf[a];
                    let vb = sort_buf[b];
                    if (greater(vb, va) == ((a & size) == 0u)) {
                        sort_buf[a] = vb;
                        sort_buf[b] = va;
                    }
                }
                workgroupBarrier();
            }
        }
        for (var i = lid; i < n; i += WG) { cand[list + i] = sort_buf[i]; }
        storageBarrier();
        workgroupBarrier();
        return;
    }
    for (var size = 2u; size <= n; size = size << 1u) {
        for (var stride = size >> 1u; stride > 0u; stride = stride >> 1u) {
            for (var i = lid; i < n / 2u; i += WG) {
                let a = 2u * i - (i & (stride - 1u));
                let b = a + stride;
                let va = cand[list + a];
                let vb = cand[list + b];
                // Blocks with (a & size) == 0 end descending, the others ascending; the last merge is descending.
                let desc = (a & size) == 0u;
                if (greater(vb, va) == desc) {
                    cand[list + a] = vb;
                    cand[list + b] = va;
                }
            }
            storageBarrier();
            workgroupBarrier();
        }
    }
}

@compute @workgroup_size(WG)
fn topk_1ce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, inv: Invocation) {
    let lid = inv.lid;
    let sg_lane = inv_lane(inv);
    let sg_size = inv_size(inv);
    let rank = scan_rank_init(lid, sg_lane, sg_size);
    let row = wid.x + wid.y * nwg.x;
    if (row >= shape.rows) { return; }   // uniform: the same for the whole workgroup
    let cols = shape.cols;
    let k = shape.k;
    let row_base = row * cols;
    let sel = radix_select(row_base, 0u, cols, k, lid, rank, sg_lane, sg_size);
    let list = row * shape.kp;
    collect_and_sort(row_base, 0u, cols, sel, list, lid);
    for (var i = lid; i < k; i += WG) {
        let col = ~cand[list + i].y;
        out_val[row * k + i] = xbits[row_base + col];
        out_idx[row * k + i] = col;
    }
}

@compute @workgroup_size(WG)
fn topk_chunks(@builtin(workgroup_id) wid: vec3<u32>, inv: Invocation) {
    let lid = inv.lid;
    let sg_lane = inv_lane(inv);
    let sg_size = inv_size(inv);
    let rank = scan_rank_init(lid, sg_lane, sg_size);
    let chunk = wid.x;
    let row = wid.y;
    if (row >= shape.rows || chunk >= shape.nchunks) { return; }
    let cols = shape.cols;
    let c0 = chunk * CH;
    let c1 = min(cols, c0 + CH);
    let need = min(shape.k, c1 - c0);
    let row_base = row * cols;
    let sel = radix_select(row_base, c0, c1, need, lid, rank, sg_lane, sg_size);
    collect_and_sort(row_base, c0, c1, sel, (row * shape.nchunks + chunk) * shape.kp, lid);
}

// Number of entries of the descending list starting at `list` (length kp, sentinel-padded) greater than v.
fn count_greater(list: u32, kp: u32, v: vec2<u32>) -> u32 {
    var lo = 0u;
    var hi = kp;
    while (lo < hi) {
        let mid = (lo + hi) >> 1u;
        if (greater(cand[list + mid], v)) { lo = mid + 1u; } else { hi = mid; }
    }
    return lo;
}

@compute @workgroup_size(WG)
fn topk_merge(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let kp = shape.kp;
    let k = shape.k;
    let nchunks = shape.nchunks;
    let g = gid.x;
    if (row >= shape.rows || g >= nchunks * kp) { return; }
    let chunk = g / kp;
    let pos = g % kp;
    if (pos >= k) { return; }
    let row_lists = row * nchunks * kp;
    let me = cand[row_lists + g];
    if (me.x == 0u) { return; }   // sentinel
    var r = pos;
    for (var c = 0u; c < nchunks && r < k; c++) {
        if (c != chunk) { r += count_greater(row_lists + c * kp, kp, me); }
    }
    if (r < k) {
        let col = ~me.y;
        out_val[row * k + r] = xbits[row * shape.cols + col];
        out_idx[row * k + r] = col;
    }
}
