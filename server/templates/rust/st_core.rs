// ---- st-core interface (SpiralTorch today): this file is crates/st-core/src/backend/wgpu_heuristics_generated.rs.
// st-core's wgpu_heuristics.rs asks `choose` after SpiralK and its key-value rules. Our fields (use_2ce, wg, kl, ch)
// come from the tuned rule; st-core's other fields from its own fallback (DeviceCaps::wgpu(32, subgroup, 256 with
// subgroups else 128), no shared-memory budget; its `radix` field is st-core's own). st-core's kernels have no
// radix pipeline, so the tuned rule here is fitted without the radix pipeline's measurements and never picks one.
// The rest of the file is the module below, so it also compiles where wgpu_heuristics.rs `include!`s it.

/// The tuned choice for a TopK shape as st-core's `Choice`; `None` without TopK data for the subgroup flag.
pub fn choose(rows: usize, cols: usize, k: usize, subgroup: bool)
    -> Option<crate::backend::wgpu_heuristics::Choice> {
    let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    let (rows, cols, k) = (clamp(rows), clamp(cols), clamp(k));
    let t = spiraltorch_tuner::choose_topk(rows, cols, k, subgroup)?;
    Some(crate::backend::wgpu_heuristics::Choice {
        use_2ce: t.use_2ce,
        wg: t.wg,
        kl: t.kl,
        ch: t.ch,
        algo_topk: 0,
        ctile: if cols > 65_536 { 1024 } else if cols > 8_192 { 512 } else { 256 },
        mode_midk: 0,
        mode_bottomk: 0,
        tile_cols: cols.max(1).div_ceil(1024) * 1024,
        radix: if k.is_power_of_two() { 4 } else { 2 },
        segments: if cols > 131_072 { 4 } else if cols > 32_768 { 2 } else { 1 },
    })
}

/// The tuned rule and its tables (also usable directly: `choose_topk`, `choose_where_nd`, the `_for` choosers).
#[allow(dead_code, clippy::all)]
pub mod spiraltorch_tuner {
