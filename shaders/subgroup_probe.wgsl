// Subgroup-size probe (native runs only: wgpu-py does not report the adapter's subgroup sizes, the browser does).
// Every invocation folds the subgroup size it runs with into a min and a max; the host dispatches it at several
// workgroup sizes, since a driver may choose the size per pipeline.

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read_write> sizes: array<atomic<u32>, 2>;   // [min, max]; host sets [~0, 0]

@compute @workgroup_size(WG)
fn probe(@builtin(subgroup_size) size: u32) {
    atomicMin(&sizes[0], size);
    atomicMax(&sizes[1], size);
}
