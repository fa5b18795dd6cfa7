// ---- st-core v1.3 interface: this file can replace crates/st-core/src/backend/wgpu_heuristics.rs as is ----------
// st-core's backend/mod.rs declares `pub struct Choice { pub use_2ce: bool, pub wg: u32, pub kl: u32, pub ch: u32 }`.
// st-core's kernels have no radix pipeline: the tuned rule here is fitted without its measurements.
pub use super::Choice;

/// Our parameters beyond st-core's `Choice`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extras {
    /// Use the subgroup-operation variant of the kernels.
    pub sg: bool,
    /// Sort candidate lists in workgroup memory when they fit.
    pub ls: bool,
}

/// st-core's chooser: the tuned choice, or `None` to fall back to the built-in rule.
pub fn choose(rows: u32, cols: u32, k: u32, subgroup: bool) -> Option<Choice> {
    choose_topk(rows, cols, k, subgroup).map(|c| Choice { use_2ce: c.use_2ce, wg: c.wg, kl: c.kl, ch: c.ch })
}

/// Our extra parameters for the same pick as `choose`.
pub fn choose_extras(rows: u32, cols: u32, k: u32, subgroup: bool) -> Option<Extras> {
    choose_topk(rows, cols, k, subgroup).map(|c| Extras { sg: c.sg, ls: c.ls })
}

/// st-core's built-in fallback rule (what it does without a tuned file).
pub fn fallback(_rows: u32, cols: u32, k: u32, subgroup: bool) -> Choice {
    let use_2ce = cols > 32_768 || k > 128;
    let wg = if subgroup { 256 } else { 128 };
    let kl = if k >= 64 { 32 } else if k >= 16 { 16 } else { 8 };
    let ch = if cols > 16_384 { 8192 } else { 0 };
    Choice { use_2ce, wg, kl, ch }
}

/// st-core's generated-module signature (`wgpu_heuristics_generated.rs`).
pub mod generated {
    fn clamp(v: usize) -> u32 {
        u32::try_from(v).unwrap_or(u32::MAX)
    }

    pub fn choose(rows: usize, cols: usize, k: usize, subgroup: bool) -> Option<super::Choice> {
        super::choose(clamp(rows), clamp(cols), clamp(k), subgroup)
    }
}
