/// A TopK kernel configuration (parameters of shaders/topk.wgsl, or with `radix` of shaders/topk_radix.wgsl;
/// `use_2ce`, `wg`, `kl`, `ch` follow st-core's `Choice`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopKChoice {
    /// Two-stage pipeline: per-chunk candidates, then a K-way merge.
    pub use_2ce: bool,
    /// Threads per workgroup.
    pub wg: u32,
    /// Keys per thread per scan step (KLANE).
    pub kl: u32,
    /// Columns per chunk of 2CE pass 1; 0 for 1CE.
    pub ch: u32,
    /// Use the subgroup-operation variant (needs the adapter's `subgroups` feature).
    pub sg: bool,
    /// Sort candidate lists in workgroup memory when they fit (else in storage memory).
    pub ls: bool,
    /// The radix pipeline (topk_radix.wgsl): rows spread over chunks of `rch` columns, a radix select in rounds
    /// of `rb` key bits, a filter and a segmented sort; then `use_2ce` is false, `ch` 0 and `sg` false.
    pub radix: bool,
    /// Key bits per round of the radix select; 0 unless `radix`.
    pub rb: u32,
    /// Columns per chunk of the radix pipeline; 0 unless `radix`.
    pub rch: u32,
}

/// How where_nd reads its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WherePath {
    /// Views uploaded once; the kernel applies base offsets and byte strides.
    Direct,
    /// Contiguous segments written one by one, then a dense select.
    Segmented,
}

/// A where_nd kernel configuration (parameters of shaders/where_nd.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WhereChoice {
    pub path: WherePath,
    /// Threads per workgroup.
    pub wg: u32,
    /// Output elements per thread.
    pub vpt: u32,
}

/// A fitted TopK rule: (rows, cols, k, subgroups) -> the pick, or `None` without data for the subgroups flag.
type TopKRule = fn(u32, u32, u32, bool) -> Option<TopKChoice>;

/// A fitted where_nd rule: (numel, ndim, contiguous) -> the pick, or `None` without where_nd data.
type WhereRule = fn(u64, u32, bool) -> Option<WhereChoice>;

/// A fitted TopK vote (the rule above): the measured shapes as points (half-octaves of rows, cols, k), the grid's
/// configurations, `cost[i * points.len() + j]` = configuration i on shape j, and the grid's chunk sizes (2CE's
/// `ch`, the radix pipeline's `rch`).
#[allow(dead_code)]
struct Vote {
    points: &'static [[i64; 3]],
    configs: &'static [TopKChoice],
    cost: &'static [u32],
    grid: &'static [u32],
    rgrid: &'static [u32],
}

/// floor(2 log2 x), exactly (x = 0 counts as 1): the half-octave of x.
#[allow(dead_code)]
fn ho(x: u32) -> i64 {
    let x = x.max(1) as u64;
    let b = 63 - x.leading_zeros() as u64;
    (2 * b + (x * x >= 1u64 << (2 * b + 1)) as u64) as i64
}

/// Whether a configuration runs as it is on a shape.
#[allow(dead_code)]
fn legal(c: &TopKChoice, cols: u32, k: u32) -> bool {
    if c.radix {
        c.rch < cols
    } else if c.use_2ce {
        k <= c.ch && c.ch < cols && c.rb == 0 && c.rch == 0
    } else {
        c.ch == 0 && c.rb == 0 && c.rch == 0
    }
}

/// The vote's pick for a shape: the configuration of least distance-weighted cost among those legal as they are
/// (ties: the first); if none is, the cheapest of all, made legal.
#[allow(dead_code)]
fn vote(v: &Vote, rows: u32, cols: u32, k: u32) -> TopKChoice {
    let q = [ho(rows), ho(cols), ho(k)];
    let d: Vec<i64> = v.points.iter()
        .map(|p| (p[0] - q[0]).abs() + VOTE_COLS * (p[1] - q[1]).abs() + (p[2] - q[2]).abs())
        .collect();
    let near = d.iter().copied().min().unwrap_or(0) + VOTE_SLACK;
    let n = d.len();
    let mut best: Option<(f64, usize)> = None;
    for only_legal in [true, false] {
        for (i, c) in v.configs.iter().enumerate() {
            if only_legal && !legal(c, cols, k) {
                continue;
            }
            let mut s = 0.0f64;
            for j in 0..n {
                if d[j] <= near {
                    s += v.cost[i * n + j] as f64 / (2 + d[j]) as f64;
                }
            }
            if best.map_or(true, |(b, _)| s < b) {
                best = Some((s, i));
            }
        }
        if best.is_some() {
            break;
        }
    }
    legalize(v.configs[best.map_or(0, |(_, i)| i)], cols, k, v.grid, v.rgrid)
}

#[allow(dead_code)] // unused in a file without TopK data
fn lg32(x: u32) -> i64 {
    (u32::BITS - x.leading_zeros()) as i64
}

#[allow(dead_code)] // unused in a file without where_nd data
fn lg64(x: u64) -> i64 {
    (u64::BITS - x.leading_zeros()) as i64
}

/// The chunk size of `grid` for which `ok` holds nearest to `ch` in bit length (ties: the smaller; the grid is
/// ascending).
#[allow(dead_code)]
fn nearest(grid: &[u32], ch: u32, ok: impl Fn(u32) -> bool) -> Option<u32> {
    let mut best: Option<(u32, i64)> = None;
    for &g in grid.iter() {
        let d = (lg32(g) - lg32(ch)).abs();
        if ok(g) && best.map_or(true, |(_, bd)| d < bd) {
            best = Some((g, d));
        }
    }
    best.map(|(g, _)| g)
}

/// A configuration made legal for a shape: a 2CE or radix one whose chunk does not fit gets the legal chunk size
/// of the tuned grid nearest to it, else it becomes 1CE.
#[allow(dead_code)]
fn legalize(c: TopKChoice, cols: u32, k: u32, grid: &[u32], rgrid: &[u32]) -> TopKChoice {
    let one_ce = TopKChoice { use_2ce: false, ch: 0, radix: false, rb: 0, rch: 0, ..c };
    if c.radix {
        if c.rch < cols {
            return c;
        }
        return match nearest(rgrid, c.rch, |g| c.wg <= g && g < cols) {
            Some(rch) => TopKChoice { rch, ..c },
            None => one_ce,
        };
    }
    if !c.use_2ce {
        return one_ce;
    }
    if k <= c.ch && c.ch < cols {
        return TopKChoice { rb: 0, rch: 0, ..c };
    }
    match nearest(grid, c.ch, |g| k <= g && g < cols) {
        Some(ch) => TopKChoice { ch, rb: 0, rch: 0, ..c },
        None => one_ce,
    }
}

/// A device class: the key tuning runs are grouped by. Build one from your adapter's info as the tuning run saw it
/// (vendor and architecture strings, where the architecture is the device name, `wgpu::AdapterInfo::name`, for
/// adapters that report no architecture; the subgroup size range; the backend), or take it from `ADAPTER_KEYS`,
/// and pass it to the `_for` choosers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdapterKey<'a> {
    pub vendor: &'a str,
    pub architecture: &'a str,
    /// Smallest and largest subgroup size (0 when unknown).
    pub subgroup_min: u32,
    pub subgroup_max: u32,
    /// The backend ("vulkan", "metal", ...; "browser" for WebGPU runs that do not say).
    pub backend: &'a str,
}

/// The fitted rule's TopK configuration for this shape (see the rule above) on the class this file was
/// generated for (`ADAPTER_KEY`), or `None` when there is no TopK data usable here: then use your built-in defaults.
pub fn choose_topk(rows: u32, cols: u32, k: u32, subgroups: bool) -> Option<TopKChoice> {
    TOPK(rows, cols, k, subgroups)
}

/// The fitted rule's where_nd configuration for `numel` output elements over `ndim` dimensions; `contiguous`:
/// every input is contiguous at the output shape. `None`: no where_nd data in the run.
pub fn choose_where_nd(numel: u64, ndim: u32, contiguous: bool, subgroups: bool) -> Option<WhereChoice> {
    let _ = subgroups; // where_nd has no subgroup variant; kept so callers pass the adapter's flag uniformly
    WHERE(numel, ndim, contiguous)
}

/// The classes of this file (indices into `ADAPTER_KEYS`) whose tables may serve `adapter`, best first: those of
/// its vendor and architecture (ASCII case ignored), the one equal to it first, then those that agree on the
/// backend, then on the subgroup size range (ties: the lower index). Other vendors and architectures never serve.
pub fn class_order(adapter: &AdapterKey) -> Vec<usize> {
    let mut ranked: Vec<(u32, usize)> = ADAPTER_KEYS
        .iter()
        .enumerate()
        .filter(|(_, a)| a.vendor.eq_ignore_ascii_case(adapter.vendor)
                         && a.architecture.eq_ignore_ascii_case(adapter.architecture))
        .map(|(i, a)| {
            let same_sg = (a.subgroup_min, a.subgroup_max) == (adapter.subgroup_min, adapter.subgroup_max);
            (4 * (*a == *adapter) as u32 + 2 * a.backend.eq_ignore_ascii_case(adapter.backend) as u32
                 + same_sg as u32, i)
        })
        .collect();
    ranked.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
    ranked.into_iter().map(|(_, i)| i).collect()
}

/// `choose_topk` with the rule of the first class in `class_order(adapter)` that has TopK data (so a device whose
/// TopK and where_nd runs were recorded with different subgroup sizes or backends is still served); `None` when
/// no class of its vendor and architecture has any.
pub fn choose_topk_for(adapter: &AdapterKey, rows: u32, cols: u32, k: u32, subgroups: bool) -> Option<TopKChoice> {
    class_order(adapter).into_iter().find_map(|i| CLASS_TABLES[i].0(rows, cols, k, subgroups))
}

/// `choose_where_nd` with the tables of the first class in `class_order(adapter)` that has where_nd data.
pub fn choose_where_nd_for(adapter: &AdapterKey, numel: u64, ndim: u32, contiguous: bool, subgroups: bool)
    -> Option<WhereChoice> {
    let _ = subgroups;
    class_order(adapter).into_iter().find_map(|i| CLASS_TABLES[i].1(numel, ndim, contiguous))
}
