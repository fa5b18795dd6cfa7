// Workgroup scan with subgroup operations (sg = true). Needs the adapter feature "subgroups"; the browser
// prefixes `enable subgroups;` (wgpu-py/naga takes the builtins without it). Assembled in front of topk.wgsl.

// The entry points' invocation builtins.
struct Invocation {
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) size: u32,
}
fn inv_lane(inv: Invocation) -> u32 { return inv.lane; }
fn inv_size(inv: Invocation) -> u32 { return inv.size; }

var<workgroup> sg_totals: array<u32, WG>;
var<workgroup> sg_count: atomic<u32>;

// WGSL does not promise that subgroups are made of consecutive local indices, so each subgroup takes a slot
// from a counter and invocations are ranked slot * subgroup_size + lane. Scans are in this rank order.
fn scan_rank_init(lid: u32, sg_lane: u32, sg_size: u32) -> u32 {
    if (lid == 0u) { atomicStore(&sg_count, 0u); }
    workgroupBarrier();
    // The lowest active lane takes the slot (subgroupElect is not in every WGSL compiler yet); the others
    // hold 0, so the subgroup maximum hands the slot to all.
    var slot = 0u;
    if (sg_lane == subgroupMin(sg_lane)) { slot = atomicAdd(&sg_count, 1u); }
    slot = subgroupMax(slot);
    workgroupBarrier();
    return slot * sg_size + sg_lane;
}

// Exclusive prefix sum of `v` over the workgroup in rank order; .y is the workgroup total.
// One subgroup scan, one store of each subgroup's total, then a short serial sum over the subgroups before us.
fn wg_exclusive_scan(v: u32, rank: u32, sg_lane: u32, sg_size: u32) -> vec2<u32> {
    let within = subgroupExclusiveAdd(v);
    let slot = rank / sg_size;
    let nsg = (WG + sg_size - 1u) / sg_size;
    if (sg_lane == sg_size - 1u || rank == WG - 1u) { sg_totals[slot] = within + v; }
    workgroupBarrier();
    var before = 0u;
    var total = 0u;
    for (var s = 0u; s < nsg; s++) {
        let t = sg_totals[s];
        if (s < slot) { before += t; }
        total += t;
    }
    workgroupBarrier();
    return vec2<u32>(before + within, total);
}
