// TopK's order, assembled in front of topk.wgsl and of topk_radix.wgsl (space.json's sources): a float's bits as an
// order-preserving u32 key (NaN above +inf, -0.0 just below +0.0), and the order of (key, ~column) pairs, the larger
// key first and of equal keys the lower column.

fn sort_key(b: u32) -> u32 {
    if ((b & 0x7fffffffu) > 0x7f800000u) { return 0xffffffffu; }
    if ((b & 0x80000000u) != 0u) { return ~b; }
    return b | 0x80000000u;
}

fn greater(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x > b.x || (a.x == b.x && a.y > b.y);
}
