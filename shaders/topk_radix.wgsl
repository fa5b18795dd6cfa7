// Row-wise TopK for long rows, each row spread over many workgroups (GitHub issue #19 item 3): the k largest values
// of each row of a float32 matrix [rows, cols] with their column indices, sorted descending; equal values go to the
// lower index; NaN is larger than every number (all NaNs equal) and -0.0 < +0.0. Same order as topk.wgsl and
// native/cpu.py topk_reference: the key is the float's bits mapped to an order-preserving u32 (sort_key), and the
// pair (key, ~column) orders ties by the lower column.
//
// A radix select over the 32-bit key, RB bits a round from the top (RB = 11: rounds of 11, 11 and 10 bits), then a
// filter and a sort. Every step is its own dispatch: WebGPU gives no ordering of storage memory between workgroups
// inside one dispatch, only between dispatches, so nothing here waits on another workgroup of the same dispatch.
//
//   radix_hist    (chunks x rows) each workgroup histograms the current digit of its chunk's keys that match the
//                 prefix found so far, in workgroup memory, then adds its bins to the row's global histogram.
//   radix_select  (rows)          one workgroup per row: the bin where the count from the top reaches `need`;
//                 appends that digit to the prefix, keeps the count still needed from it, clears the histogram.
//   ... radix_hist and radix_select once per round (the host encodes ceil(32 / RB) pairs; a row whose chosen bin
//   held exactly `need` keys is done early, and its later rounds return at once) ...
//   radix_count   (chunks x rows) per chunk: keys above the prefix (all taken) and keys equal to it (tied).
//   radix_filter  (chunks x rows) writes the chunk's keys above the prefix to sel[row][abase ..] and its tied keys
//                 whose rank among the row's tied keys, in column order, is below `need` to sel[row][k - need + r]:
//                 the prefix over earlier chunks' counts, then a scan inside the workgroup over tiles of WG * KL.
//   radix_segsort (segments x rows) bitonic sort, descending, of each SEG pairs of sel in workgroup memory; with
//                 one segment (k <= SEG) it writes the output itself and resets the row's state.
//   radix_rank    (k / WG x rows, only with more than one segment) a pair's place = its place in its segment +
//                 the pairs greater than it in every other segment (binary search); writes the value and the
//                 column there. Resets the row's state for the next call.
//
// Limits: workgroup memory max(4 * 2^RB, 8 * SEG) bytes plus a few words (RB = 11, SEG = 1024: 8 KiB); WG <= 256
// invocations; 7 storage buffers and 1 uniform; rows and chunks per row <= 65535 (one workgroup dimension each).

override WG: u32 = 256u;     // invocations per workgroup, every entry point
override CH: u32 = 4096u;    // columns per chunk: one workgroup of radix_hist, radix_count and radix_filter
override RB: u32 = 11u;      // key bits per round (2^RB bins of 4 bytes in workgroup memory)
override KL: u32 = 4u;       // consecutive columns per invocation per tile of radix_filter's tie scan
override SEG: u32 = 1024u;   // pairs per workgroup of radix_segsort, a power of two (8 * SEG bytes of workgroup memory)
override NB: u32 = 1u << RB;

struct Shape {
    rows: u32,
    cols: u32,
    k: u32,
    nchunks: u32,   // ceil(cols / CH)
    nseg: u32,      // ceil(k / SEG)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> xbits: array<u32>;                 // the input, as float bits
@group(0) @binding(2) var<storage, read_write> ghist: array<atomic<u32>>;   // [rows, NB] this round's histogram
@group(0) @binding(3) var<storage, read_write> state: array<u32>;           // [rows, 4] prefix, need, rounds, done
@group(0) @binding(4) var<storage, read_write> counts: array<vec2<u32>>;    // [rows, nchunks] (above, tied)
@group(0) @binding(5) var<storage, read_write> sel: array<vec2<u32>>;       // [rows, k] selected (key, ~column)
@group(0) @binding(6) var<storage, read_write> out_val: array<u32>;         // [rows, k] float bits
@group(0) @binding(7) var<storage, read_write> out_idx: array<u32>;         // [rows, k] column indices

var<workgroup> whist: array<atomic<u32>, NB>;
var<workgroup> scan_buf: array<u32, WG>;
var<workgroup> sort_buf: array<vec2<u32>, SEG>;
var<workgroup> wsum: array<atomic<u32>, 3>;
var<workgroup> wstate: vec4<u32>;

fn sort_key(b: u32) -> u32 {
    if ((b & 0x7fffffffu) > 0x7f800000u) { return 0xffffffffu; }
    if ((b & 0x80000000u) != 0u) { return ~b; }
    return b | 0x80000000u;
}

fn greater(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x > b.x || (a.x == b.x && a.y > b.y);
}

// The key bits fixed after `r` rounds (the top min(32, r * RB)).
fn fixed_mask(r: u32) -> u32 {
    let n = min(32u, r * RB);
    if (n == 0u) { return 0u; }
    return 0xffffffffu << (32u - n);
}

// The row's state, the same in every invocation (read by one, then a barrier).
fn load_state(row: u32, lid: u32) -> vec4<u32> {
    if (lid == 0u) {
        let s = row * 4u;
        wstate = vec4<u32>(state[s], state[s + 1u], state[s + 2u], state[s + 3u]);
    }
    return workgroupUniformLoad(&wstate);
}

// Exclusive prefix sum of `v` over the workgroup and the total (Hillis-Steele in workgroup memory).
fn wg_scan(v: u32, lid: u32) -> vec2<u32> {
    scan_buf[lid] = v;
    workgroupBarrier();
    for (var off = 1u; off < WG; off = off << 1u) {
        var t = 0u;
        if (lid >= off) { t = scan_buf[lid - off]; }
        workgroupBarrier();
        scan_buf[lid] += t;
        workgroupBarrier();
    }
    let incl = scan_buf[lid];
    let total = scan_buf[WG - 1u];
    workgroupBarrier();   // scan_buf is written again by the next call
    return vec2<u32>(incl - v, total);
}

@compute @workgroup_size(WG)
fn radix_hist(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let chunk = wid.x;
    let row = wid.y;
    if (row >= shape.rows || chunk >= shape.nchunks) { return; }
    for (var b = lid; b < NB; b += WG) { atomicStore(&whist[b], 0u); }
    let st = load_state(row, lid);   // its barrier also orders the clearing above before the counting below
    let r = st.z;
    if (st.w != 0u || r * RB >= 32u) { return; }
    let top = 32u - r * RB;
    let width = min(RB, top);
    let shift = top - width;
    let dmask = (1u << width) - 1u;
    let mask = fixed_mask(r);
    let prefix = st.x;
    let c0 = chunk * CH;
    let c1 = min(shape.cols, c0 + CH);
    let base = row * shape.cols;
    for (var col = c0 + lid; col < c1; col += WG) {
        let key = sort_key(xbits[base + col]);
        if ((key & mask) == prefix) { atomicAdd(&whist[(key >> shift) & dmask], 1u); }
    }
    workgroupBarrier();
    let hb = row * NB;
    for (var b = lid; b <= dmask; b += WG) {
        let v = atomicLoad(&whist[b]);
        if (v != 0u) { atomicAdd(&ghist[hb + b], v); }
    }
}

@compute @workgroup_size(WG)
fn radix_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x;
    if (row >= shape.rows) { return; }
    let st = load_state(row, lid);
    let r = st.z;
    if (st.w != 0u || r * RB >= 32u) { return; }
    let top = 32u - r * RB;
    let width = min(RB, top);
    let shift = top - width;
    let nbins = 1u << width;
    let need = st.y;
    let hb = row * NB;
    // Invocation lid owns `per` bins counted from the top: slots lid * per .. lid * per + per - 1.
    let per = (nbins + WG - 1u) / WG;
    var mine = 0u;
    for (var q = 0u; q < per; q++) {
        let slot = lid * per + q;
        if (slot < nbins) { mine += atomicLoad(&ghist[hb + nbins - 1u - slot]); }
    }
    var run = wg_scan(mine, lid).x;
    for (var q = 0u; q < per; q++) {
        let slot = lid * per + q;
        if (slot < nbins) {
            let bin = nbins - 1u - slot;
            let h = atomicLoad(&ghist[hb + bin]);
            atomicStore(&ghist[hb + bin], 0u);   // cleared for the next round, and the next call
            if (run < need && run + h >= need) {
                let left = need - run;
                let s = row * 4u;
                state[s] = st.x | (bin << shift);
                state[s + 1u] = left;
                state[s + 3u] = select(0u, 1u, h == left);
            }
            run += h;
        }
    }
    if (lid == 0u) { state[row * 4u + 2u] = r + 1u; }
}

// Per invocation: (above, tied) among the columns it reads of [c0, c1), stride WG.
fn classify_counts(base: u32, c0: u32, c1: u32, mask: u32, prefix: u32, lid: u32) -> vec2<u32> {
    var n = vec2<u32>(0u, 0u);
    for (var col = c0 + lid; col < c1; col += WG) {
        let m = sort_key(xbits[base + col]) & mask;
        if (m > prefix) { n.x += 1u; } else if (m == prefix) { n.y += 1u; }
    }
    return n;
}

@compute @workgroup_size(WG)
fn radix_count(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let chunk = wid.x;
    let row = wid.y;
    if (row >= shape.rows || chunk >= shape.nchunks) { return; }
    if (lid == 0u) { atomicStore(&wsum[0], 0u); atomicStore(&wsum[1], 0u); }
    let st = load_state(row, lid);
    let c0 = chunk * CH;
    let n = classify_counts(row * shape.cols, c0, min(shape.cols, c0 + CH), fixed_mask(st.z), st.x, lid);
    if (n.x != 0u) { atomicAdd(&wsum[0], n.x); }
    if (n.y != 0u) { atomicAdd(&wsum[1], n.y); }
    workgroupBarrier();
    if (lid == 0u) { counts[row * shape.nchunks + chunk] = vec2<u32>(atomicLoad(&wsum[0]), atomicLoad(&wsum[1])); }
}

@compute @workgroup_size(WG)
fn radix_filter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let chunk = wid.x;
    let row = wid.y;
    if (row >= shape.rows || chunk >= shape.nchunks) { return; }
    if (lid == 0u) { atomicStore(&wsum[0], 0u); atomicStore(&wsum[1], 0u); atomicStore(&wsum[2], 0u); }
    let st = load_state(row, lid);
    let mask = fixed_mask(st.z);
    let prefix = st.x;
    let need = st.y;
    let k = shape.k;
    let nch = shape.nchunks;
    // Where this chunk's keys go: the above and tied counts of the row's earlier chunks.
    var before = vec2<u32>(0u, 0u);
    for (var c = lid; c < chunk; c += WG) { before += counts[row * nch + c]; }
    if (before.x != 0u) { atomicAdd(&wsum[0], before.x); }
    if (before.y != 0u) { atomicAdd(&wsum[1], before.y); }
    workgroupBarrier();
    if (lid == 0u) {
        let mine = counts[row * nch + chunk];
        let tbase = atomicLoad(&wsum[1]);
        wstate = vec4<u32>(atomicLoad(&wsum[0]), tbase, select(0u, 1u, mine.y != 0u && tbase < need), 0u);
    }
    let b = workgroupUniformLoad(&wstate);
    let out = row * k;
    let abase = out + b.x;
    let tout = out + (k - need);   // the tied keys taken fill the end of the row's k
    let c0 = chunk * CH;
    let c1 = min(shape.cols, c0 + CH);
    let base = row * shape.cols;
    if (b.z == 0u) {
        // No tied key of this chunk is taken: only the keys above, in any order (radix_segsort orders them).
        for (var col = c0 + lid; col < c1; col += WG) {
            let key = sort_key(xbits[base + col]);
            if ((key & mask) > prefix) { sel[abase + atomicAdd(&wsum[2], 1u)] = vec2<u32>(key, ~col); }
        }
        return;
    }
    // Tiles of WG * KL columns, KL consecutive ones per invocation, so a scan of the per-invocation tied counts
    // ranks the tied keys in column order.
    var rank = b.y;
    for (var t = c0; t < c1; t += WG * KL) {
        let first = t + lid * KL;
        let last = min(c1, first + KL);
        var tied = 0u;
        for (var col = first; col < last; col++) {
            let key = sort_key(xbits[base + col]);
            let m = key & mask;
            if (m > prefix) { sel[abase + atomicAdd(&wsum[2], 1u)] = vec2<u32>(key, ~col); }
            else if (m == prefix) { tied += 1u; }
        }
        let sc = wg_scan(tied, lid);
        var r = rank + sc.x;
        for (var col = first; col < last && tied != 0u; col++) {
            let key = sort_key(xbits[base + col]);
            if ((key & mask) == prefix) {
                if (r < need) { sel[tout + r] = vec2<u32>(key, ~col); }
                r += 1u;
            }
        }
        rank += sc.y;
    }
}

@compute @workgroup_size(WG)
fn radix_segsort(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let seg = wid.x;
    let row = wid.y;
    if (row >= shape.rows || seg >= shape.nseg) { return; }
    let k = shape.k;
    let s0 = row * k + seg * SEG;
    let n = min(SEG, k - seg * SEG);
    // Past n: (0, 0), below every real pair (no key is 0).
    for (var i = lid; i < SEG; i += WG) { sort_buf[i] = select(vec2<u32>(0u, 0u), sel[s0 + min(i, n - 1u)], i < n); }
    workgroupBarrier();
    for (var size = 2u; size <= SEG; size = size << 1u) {
        for (var stride = size >> 1u; stride > 0u; stride = stride >> 1u) {
            for (var i = lid; i < SEG / 2u; i += WG) {
                let a = 2u * i - (i & (stride - 1u));
                let b = a + stride;
                let va = sort_buf[a];
                let vb = sort_buf[b];
                // Blocks with (a & size) == 0 end descending, the others ascending; the last merge is descending.
                if (greater(vb, va) == ((a & size) == 0u)) {
                    sort_buf[a] = vb;
                    sort_buf[b] = va;
                }
            }
            workgroupBarrier();
        }
    }
    if (shape.nseg == 1u) {
        // One segment holds the row's k: this is the output, and radix_rank is not dispatched.
        if (lid == 0u) { reset_state(row, k); }
        for (var i = lid; i < n; i += WG) {
            let col = ~sort_buf[i].y;
            out_val[s0 + i] = xbits[row * shape.cols + col];
            out_idx[s0 + i] = col;
        }
        return;
    }
    for (var i = lid; i < n; i += WG) { sel[s0 + i] = sort_buf[i]; }
}

// The state the next call's first round starts from (the host uploads the same before the first call).
fn reset_state(row: u32, k: u32) {
    let s = row * 4u;
    state[s] = 0u;
    state[s + 1u] = k;
    state[s + 2u] = 0u;
    state[s + 3u] = 0u;
}

// Pairs of the descending list sel[list .. list + n) greater than v.
fn count_greater(list: u32, n: u32, v: vec2<u32>) -> u32 {
    var lo = 0u;
    var hi = n;
    while (lo < hi) {
        let mid = (lo + hi) >> 1u;
        if (greater(sel[list + mid], v)) { lo = mid + 1u; } else { hi = mid; }
    }
    return lo;
}

@compute @workgroup_size(WG)
fn radix_rank(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y;
    if (row >= shape.rows) { return; }
    let k = shape.k;
    if (wid.x == 0u && lid == 0u) { reset_state(row, k); }
    let i = wid.x * WG + lid;
    if (i >= k) { return; }
    let list = row * k;
    let me = sel[list + i];
    let own = i / SEG;
    var rank = i - own * SEG;
    for (var t = 0u; t < shape.nseg; t++) {
        if (t != own) { rank += count_greater(list + t * SEG, min(SEG, k - t * SEG), me); }
    }
    let col = ~me.y;
    out_val[list + rank] = xbits[row * shape.cols + col];
    out_idx[list + rank] = col;
}
