// Clock canary: a fixed chain of dependent integer multiply-adds per invocation, no memory traffic. Its time follows
// the GPU's shader clock, so a tuner that times it beside its samples can tell when the driver had lowered the clock
// (a discrete GPU that looks idle between short measurements does: see native/wgpu_backend.py). ITERS is small for
// the canary and large for the load that brings the clock back up.

override WG: u32 = 64u;
override ITERS: u32 = 8192u;

@group(0) @binding(0) var<storage, read_write> sink: array<u32>;

@compute @workgroup_size(WG)
fn canary(@builtin(global_invocation_id) gid: vec3<u32>) {
    var x = gid.x;
    for (var i = 0u; i < ITERS; i = i + 1u) {
        x = x * 1664525u + 1013904223u;
    }
    // Never true for the invocations dispatched (x depends on gid), but the compiler cannot know: the loop stays.
    if (x == 0x9e3779b9u && gid.x == 0xffffffffu) {
        sink[0] = x;
    }
}
