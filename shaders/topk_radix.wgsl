// Row-wise TopK for long rows, each row spread over many workgroups (GitHub issue #19 item 3): the k largest values
// of each row of a float32 matrix [rows, cols] with their column indices, sorted descending; equal values go to the
// lower index; NaN is larger than every number (all NaNs equal) and -0.0 < +0.0. Same order as topk.wgsl and
// native/cpu.py topk_reference: the key is the float's bits mapped to an order-preserving u32 (sort_key), and the
// pair (key, ~column) orders ties by the lower column.
//
// A radix select over the 32-bit key, RB bits a round from the top (ROUNDS = ceil(32 / RB) rounds; RB = 11: 11, 11
// and 10 bits), then a filter and a sort. Every step is its own dispatch: WebGPU gives no ordering of storage memory
// between workgroups inside one dispatch, only between dispatches, so nothing here waits on another workgroup of the
// same dispatch.
//
// The row's state after r rounds, S_r = (prefix, need, fixed, matching): the key bits fixed so far (the top
// min(32, fixed * RB)), how many of the k largest are still to be taken among the keys that match them, and how many
// keys match them. S_0 = (0, k, 0, cols). The row is decided once matching == need (every matching key is taken;
// later rounds skip it). S_r follows from S_{r-1} and round r - 1's histogram of the row (the digit whose bin,
// counted from the top, holds the need-th key): the pass that needs S_r derives it at its start (row_state), and
// the hist pass of round r also stores it (state slot r) for the next pass, so each derivation scans one histogram.
//
//   radix_hist    (chunks x rows) derives S_round, then histograms the current digit of its chunk's keys that
//                 match the prefix, in workgroup memory, and adds its bins to the row's histogram of this round
//                 (ghist, one region per round, so a round only reads finished ones). The last round also stores
//                 the chunk's bins (chist): radix_filter's tie ranks.
//   ... radix_hist once per round (the host encodes ROUNDS of them, each with the uniform's copy of its round) ...
//   radix_filter  (chunks x rows) derives the final state and writes the row's k selected pairs to sel[row]: the
//                 keys above the prefix, and the tied ones (equal to the prefix) when all of them are taken, at
//                 places from the row's counter (any order: radix_segsort orders them; staged in workgroup memory so
//                 a workgroup takes one range); when more keys tie than are still needed, the tied keys whose rank
//                 among the row's tied keys, in column order, is below `need` to sel[row][k - need + rank]: the
//                 earlier chunks' tied counts from chist, then a scan inside the workgroup over tiles of WG * KL.
//   radix_segsort (segments x rows) bitonic sort, descending, of each SEG pairs of sel in workgroup memory; with
//                 one segment (k <= SEG) it writes the output itself. Clears the row's histograms and counter for
//                 the next call (radix_filter was their last reader); the state slots need no reset (each is
//                 written in a call before it is read).
//   radix_rank    (k / WG x rows, only with more than one segment) a pair's place = its place in its segment +
//                 the pairs greater than it in every other segment (binary search); writes the value and the
//                 column there.
//
// Limits: workgroup memory max(4 * 2^RB + 8 * WG, 16 * WG, 8 * SEG) bytes plus a few words (RB = 11, WG = 256,
// SEG = 1024: 10 KiB); WG <= 256 invocations; 7 storage buffers and 1 uniform; rows and chunks per row <= 65535
// (one workgroup dimension each).

override WG: u32 = 256u;     // invocations per workgroup, every entry point
override CH: u32 = 4096u;    // columns per chunk: one workgroup of radix_hist and radix_filter
override RB: u32 = 11u;      // key bits per round (2^RB bins of 4 bytes in workgroup memory)
override KL: u32 = 4u;       // consecutive columns per invocation per tile of radix_filter's tie scan
override SEG: u32 = 1024u;   // pairs per workgroup of radix_segsort, a power of two (8 * SEG bytes of workgroup memory)
override NB: u32 = 1u << RB;
override ROUNDS: u32 = (32u + RB - 1u) / RB;
override NBL: u32 = 1u << (32u - (ROUNDS - 1u) * RB);   // bins of the last round (its digit ends at bit 0)
override WG2: u32 = 2u * WG;                             // the scan's two buffers

struct Shape {
    rows: u32,
    cols: u32,
    k: u32,
    nchunks: u32,   // ceil(cols / CH)
    nseg: u32,      // ceil(k / SEG)
    hwords: u32,    // ROUNDS * NB: one row's histograms in ghist
    round: u32,     // radix_hist: the round its pass histograms (the host binds one copy of the uniform a round)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> xv: array<vec4<u32>>;              // the input, as float bits (the host
                                                                            // pads it to a multiple of 16 bytes)
@group(0) @binding(2) var<storage, read_write> ghist: array<atomic<u32>>;   // [rows, ROUNDS, NB] each round's
                                                                            // histogram, then [rows] counters
@group(0) @binding(3) var<storage, read_write> state: array<vec4<u32>>;     // [rows, ROUNDS] S_r (slot 0 unused)
@group(0) @binding(4) var<storage, read_write> chist: array<u32>;           // [rows, nchunks, NBL] last round's
@group(0) @binding(5) var<storage, read_write> sel: array<vec2<u32>>;       // [rows, k] selected (key, ~column)
@group(0) @binding(6) var<storage, read_write> out_val: array<u32>;         // [rows, k] float bits
@group(0) @binding(7) var<storage, read_write> out_idx: array<u32>;         // [rows, k] column indices

var<workgroup> whist: array<atomic<u32>, NB>;
var<workgroup> scan_buf: array<u32, WG2>;
var<workgroup> sort_buf: array<vec2<u32>, SEG>;
var<workgroup> stage: array<vec2<u32>, WG>;    // radix_filter's pairs before it takes a range for them
var<workgroup> wsum: array<atomic<u32>, 2>;
var<workgroup> wstate: vec4<u32>;

// Element i of the input (row-major).
fn xbits(i: u32) -> u32 { return xv[i >> 2u][i & 3u]; }

// sort_key and greater: topk_key.wgsl, assembled in front of this file.

// The key bits fixed after `r` rounds (the top min(32, r * RB)).
fn fixed_mask(r: u32) -> u32 {
    let n = min(32u, r * RB);
    if (n == 0u) { return 0u; }
    return 0xffffffffu << (32u - n);
}

// Round r's digit: its width in bits and its shift (rounds from the top; the last may be narrower and ends at bit 0).
fn round_width(r: u32) -> u32 { return min(RB, 32u - r * RB); }
fn round_shift(r: u32) -> u32 { return 32u - r * RB - round_width(r); }

// Exclusive prefix sum of `v` over the workgroup and the total: Hillis-Steele with four terms a step (a window of
// 4^s after step s) between two buffers, so one barrier a step.
fn wg_scan(v: u32, lid: u32) -> vec2<u32> {
    var src = 0u;
    scan_buf[lid] = v;
    workgroupBarrier();
    for (var off = 1u; off < WG; off = off * 4u) {
        var s = scan_buf[src + lid];
        for (var j = 1u; j < 4u; j++) {
            if (lid >= j * off) { s += scan_buf[src + lid - j * off]; }
        }
        src = WG - src;
        scan_buf[src + lid] = s;
        workgroupBarrier();
    }
    let incl = scan_buf[src + lid];
    let total = scan_buf[src + WG - 1u];
    workgroupBarrier();   // scan_buf is written again by the next call
    return vec2<u32>(incl - v, total);
}

// S_r of the row (see the top), the same in every invocation. From S_{r-1} (state slot r - 1, stored by the
// previous dispatch; S_0 from the shape) and round r - 1's histogram: one workgroup scan of its bins from the top.
// With r >= 2 it passes a barrier on every path.
fn row_state(row: u32, r: u32, lid: u32) -> vec4<u32> {
    let s0 = vec4<u32>(0u, shape.k, 0u, shape.cols);
    if (r == 0u) { return s0; }
    let q = r - 1u;
    let shift = round_shift(q);
    let nbins = 1u << round_width(q);
    let hb = (row * ROUNDS + q) * NB;
    // Invocation lid owns `per` bins counted from the top: slots lid * per .. lid * per + per - 1. Loaded before the
    // state slot is known, so the two loads overlap (a decided row's bins are zero and unused).
    let per = (nbins + WG - 1u) / WG;
    var mine = 0u;
    for (var i = 0u; i < per; i++) {
        let slot = lid * per + i;
        if (slot < nbins) { mine += atomicLoad(&ghist[hb + nbins - 1u - slot]); }
    }
    var prev = s0;
    if (r >= 2u) {
        if (lid == 0u) { wstate = state[row * ROUNDS + r - 1u]; }
        prev = workgroupUniformLoad(&wstate);
    }
    if (prev.w == prev.y) { return prev; }   // decided in an earlier round: nothing more to fix
    let need = prev.y;
    let run = wg_scan(mine, lid).x;
    if (run < need && run + mine >= need) {
        // This invocation's bins hold the need-th key: which one (with one bin each, no second load).
        var acc = run;
        for (var i = 0u; i < per; i++) {
            let bin = nbins - 1u - (lid * per + i);
            var h = mine;
            if (per > 1u) { h = atomicLoad(&ghist[hb + bin]); }
            if (acc + h >= need) {
                wstate = vec4<u32>(prev.x | (bin << shift), need - acc, r, h);
                break;
            }
            acc += h;
        }
    }
    return workgroupUniformLoad(&wstate);
}

// One key into this round's histogram, if its fixed digits are the prefix.
fn count_key(key: u32, mask: u32, prefix: u32, shift: u32, dmask: u32) {
    if ((key & mask) == prefix) { atomicAdd(&whist[(key >> shift) & dmask], 1u); }
}

@compute @workgroup_size(WG)
fn radix_hist(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let chunk = wid.x;
    let row = wid.y;
    if (row >= shape.rows || chunk >= shape.nchunks) { return; }
    for (var b = lid; b < NB; b += WG) { atomicStore(&whist[b], 0u); }
    let round = shape.round;
    let st = row_state(row, round, lid);
    if (round > 0u && chunk == 0u && lid == 0u) { state[row * ROUNDS + round] = st; }   // for the next pass
    if (st.w == st.y) { return; }
    workgroupBarrier();   // the clearing above before the counting below
    let shift = round_shift(round);
    let dmask = (1u << round_width(round)) - 1u;
    let mask = fixed_mask(round);
    let prefix = st.x;
    let c0 = chunk * CH;
    let c1 = min(shape.cols, c0 + CH);
    let base = row * shape.cols;
    if ((shape.cols & 3u) == 0u) {
        // Every row and chunk (CH a multiple of 4) starts on 16 bytes: four keys a load.
        for (var v = ((base + c0) >> 2u) + lid; v < ((base + c1) >> 2u); v += WG) {
            let q = xv[v];
            count_key(sort_key(q.x), mask, prefix, shift, dmask);
            count_key(sort_key(q.y), mask, prefix, shift, dmask);
            count_key(sort_key(q.z), mask, prefix, shift, dmask);
            count_key(sort_key(q.w), mask, prefix, shift, dmask);
        }
    } else {
        for (var col = c0 + lid; col < c1; col += WG) {
            count_key(sort_key(xbits(base + col)), mask, prefix, shift, dmask);
        }
    }
    workgroupBarrier();
    let hb = (row * ROUNDS + round) * NB;
    let last = round + 1u == ROUNDS;
    let cb = (row * shape.nchunks + chunk) * NBL;
    for (var b = lid; b <= dmask; b += WG) {
        let v = atomicLoad(&whist[b]);
        if (v != 0u) { atomicAdd(&ghist[hb + b], v); }
        if (last) { chist[cb + b] = v; }
    }
}

// A selected pair to a place from the row's counter (ghist[cnt]): staged in workgroup memory while there is room
// (radix_filter takes one range for them at its end), else a place of its own.
fn place(out: u32, cnt: u32, pair: vec2<u32>) {
    let i = atomicAdd(&wsum[0], 1u);
    if (i < WG) { stage[i] = pair; } else { sel[out + atomicAdd(&ghist[cnt], 1u)] = pair; }
}

// A key above the prefix selected, and one equal to it where all of those are taken (all).
fn take_key(key: u32, col: u32, mask: u32, prefix: u32, all: bool, out: u32, cnt: u32) {
    let m = key & mask;
    if (m > prefix || (m == prefix && all)) { place(out, cnt, vec2<u32>(key, ~col)); }
}

@compute @workgroup_size(WG)
fn radix_filter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let chunk = wid.x;
    let row = wid.y;
    if (row >= shape.rows || chunk >= shape.nchunks) { return; }
    if (lid == 0u) { atomicStore(&wsum[0], 0u); atomicStore(&wsum[1], 0u); }
    let st = row_state(row, ROUNDS, lid);   // its barrier orders the clearing above before the use below
    let mask = fixed_mask(st.z);
    let prefix = st.x;
    let need = st.y;
    let k = shape.k;
    let out = row * k;
    let cnt = shape.rows * shape.hwords + row;
    // More keys tie with the k-th largest than are still needed (after the last round: the key is whole): those of
    // the lowest columns are taken. tb = (the row's tied keys in earlier chunks, this chunk's), from chist.
    let ranked = st.w > need;
    var tb = vec2<u32>(0u, 0u);
    if (ranked) {
        let d = prefix & (NBL - 1u);
        let cb = row * shape.nchunks;
        var t = 0u;
        for (var c = lid; c < chunk; c += WG) { t += chist[(cb + c) * NBL + d]; }
        if (t != 0u) { atomicAdd(&wsum[1], t); }
        workgroupBarrier();
        if (lid == 0u) { wstate = vec4<u32>(atomicLoad(&wsum[1]), chist[(cb + chunk) * NBL + d], 0u, 0u); }
        tb = workgroupUniformLoad(&wstate).xy;
    }
    let c0 = chunk * CH;
    let c1 = min(shape.cols, c0 + CH);
    let base = row * shape.cols;
    if (!ranked || tb.y == 0u || tb.x >= need) {
        // No tied key of this chunk is ranked: the keys above the prefix, and those equal to it when all are taken
        // (four keys a load where rows start on 16 bytes, as in radix_hist).
        let all = !ranked;
        if ((shape.cols & 3u) == 0u) {
            for (var v = ((base + c0) >> 2u) + lid; v < ((base + c1) >> 2u); v += WG) {
                let q = xv[v];
                let col = v * 4u - base;
                take_key(sort_key(q.x), col, mask, prefix, all, out, cnt);
                take_key(sort_key(q.y), col + 1u, mask, prefix, all, out, cnt);
                take_key(sort_key(q.z), col + 2u, mask, prefix, all, out, cnt);
                take_key(sort_key(q.w), col + 3u, mask, prefix, all, out, cnt);
            }
        } else {
            for (var col = c0 + lid; col < c1; col += WG) {
                take_key(sort_key(xbits(base + col)), col, mask, prefix, all, out, cnt);
            }
        }
    } else {
        // Tiles of WG * KL columns, KL consecutive ones per invocation, so a scan of the per-invocation tied counts
        // ranks the tied keys in column order.
        let tout = out + (k - need);   // the tied keys taken fill the end of the row's k
        var rank = tb.x;
        for (var t = c0; t < c1; t += WG * KL) {
            let first = t + lid * KL;
            let last = min(c1, first + KL);
            var tied = 0u;
            for (var col = first; col < last; col++) {
                let key = sort_key(xbits(base + col));
                let m = key & mask;
                if (m > prefix) { place(out, cnt, vec2<u32>(key, ~col)); } else if (m == prefix) { tied += 1u; }
            }
            let sc = wg_scan(tied, lid);
            var r = rank + sc.x;
            for (var col = first; col < last && tied != 0u; col++) {
                let key = sort_key(xbits(base + col));
                if ((key & mask) == prefix) {
                    if (r < need) { sel[tout + r] = vec2<u32>(key, ~col); }
                    r += 1u;
                }
            }
            rank += sc.y;
        }
    }
    // The staged pairs to one range of the row's counter.
    workgroupBarrier();
    if (lid == 0u) {
        let n = min(atomicLoad(&wsum[0]), WG);
        var at = 0u;
        if (n != 0u) { at = atomicAdd(&ghist[cnt], n); }
        wstate = vec4<u32>(at, n, 0u, 0u);
    }
    let rg = workgroupUniformLoad(&wstate);
    for (var i = lid; i < rg.y; i += WG) { sel[out + rg.x + i] = stage[i]; }
}

// A compare-exchange of the bitonic network: the larger pair first where `down`, else the smaller.
fn cmpx(a: ptr<function, vec2<u32>>, b: ptr<function, vec2<u32>>, down: bool) {
    if (greater(*b, *a) == down) {
        let t = *a;
        *a = *b;
        *b = t;
    }
}

@compute @workgroup_size(WG)
fn radix_segsort(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let seg = wid.x;
    let row = wid.y;
    if (row >= shape.rows || seg >= shape.nseg) { return; }
    // The row's histograms and counter cleared for the next call (radix_filter, the dispatch before, read them last).
    let hw = shape.hwords;
    for (var i = seg * WG + lid; i < hw; i += shape.nseg * WG) { atomicStore(&ghist[row * hw + i], 0u); }
    if (seg == 0u && lid == 0u) { atomicStore(&ghist[shape.rows * hw + row], 0u); }
    let k = shape.k;
    let s0 = row * k + seg * SEG;
    let n = min(SEG, k - seg * SEG);
    // Past n: (0, 0), below every real pair (no key is 0).
    for (var i = lid; i < SEG; i += WG) { sort_buf[i] = select(vec2<u32>(0u, 0u), sel[s0 + min(i, n - 1u)], i < n); }
    workgroupBarrier();
    // The bitonic network two stages a step where it can: strides 2t and t at once, each invocation holding four
    // elements a, a + t, a + 2t, a + 3t (a with bits t and 2t clear) in registers; one barrier a step (30 for SEG
    // 1024 instead of 55). Blocks with (a & size) == 0 end descending, the others ascending; the last merge is
    // descending.
    for (var size = 2u; size <= SEG; size = size << 1u) {
        var stride = size >> 1u;
        for (; stride >= 2u; stride = stride >> 2u) {
            let t = stride >> 1u;
            for (var g = lid; g < SEG / 4u; g += WG) {
                let a = ((g & ~(t - 1u)) << 2u) | (g & (t - 1u));
                let down = (a & size) == 0u;
                var v0 = sort_buf[a];
                var v1 = sort_buf[a + t];
                var v2 = sort_buf[a + 2u * t];
                var v3 = sort_buf[a + 3u * t];
                cmpx(&v0, &v2, down);
                cmpx(&v1, &v3, down);
                cmpx(&v0, &v1, down);
                cmpx(&v2, &v3, down);
                sort_buf[a] = v0;
                sort_buf[a + t] = v1;
                sort_buf[a + 2u * t] = v2;
                sort_buf[a + 3u * t] = v3;
            }
            workgroupBarrier();
        }
        if (stride == 1u) {
            for (var i = lid; i < SEG / 2u; i += WG) {
                let a = 2u * i;
                var v0 = sort_buf[a];
                var v1 = sort_buf[a + 1u];
                cmpx(&v0, &v1, (a & size) == 0u);
                sort_buf[a] = v0;
                sort_buf[a + 1u] = v1;
            }
            workgroupBarrier();
        }
    }
    if (shape.nseg == 1u) {
        // One segment holds the row's k: this is the output, and radix_rank is not dispatched.
        for (var i = lid; i < n; i += WG) {
            let col = ~sort_buf[i].y;
            out_val[s0 + i] = xbits(row * shape.cols + col);
            out_idx[s0 + i] = col;
        }
        return;
    }
    for (var i = lid; i < n; i += WG) { sel[s0 + i] = sort_buf[i]; }
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
    out_val[list + rank] = xbits(row * shape.cols + col);
    out_idx[list + rank] = col;
}
