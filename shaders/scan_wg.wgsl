// Workgroup scan without subgroups (portable variant; sg = false).
// Assembled in front of topk.wgsl. Every invocation of the workgroup must call these in uniform control flow.

// The entry points' invocation builtins. Without subgroups there is no lane or subgroup size to read.
struct Invocation {
    @builtin(local_invocation_index) lid: u32,
}
fn inv_lane(inv: Invocation) -> u32 { return 0u; }
fn inv_size(inv: Invocation) -> u32 { return 1u; }

var<workgroup> scan_buf: array<u32, WG>;

// The rank of an invocation in scan order. Without subgroups it is simply its local index.
fn scan_rank_init(lid: u32, sg_lane: u32, sg_size: u32) -> u32 {
    return lid;
}

// Exclusive prefix sum of `v` over the workgroup in rank order; .y is the workgroup total.
// Hillis-Steele over workgroup memory: log2(WG) steps, two barriers each.
fn wg_exclusive_scan(v: u32, rank: u32, sg_lane: u32, sg_size: u32) -> vec2<u32> {
    scan_buf[rank] = v;
    workgroupBarrier();
    for (var off = 1u; off < WG; off = off << 1u) {
        var add = 0u;
        if (rank >= off) { add = scan_buf[rank - off]; }
        workgroupBarrier();
        scan_buf[rank] = scan_buf[rank] + add;
        workgroupBarrier();
    }
    let incl = scan_buf[rank];
    let total = scan_buf[WG - 1u];
    workgroupBarrier();
    return vec2<u32>(incl - v, total);
}
