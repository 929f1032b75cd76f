//! What the latency benches share (included with `#[path]`: each bench is its own crate).

/// A deterministic spread of delays over one poll interval (a simple LCG, so runs are comparable): the moment of
/// each change falls in every phase of the poll cycle.
pub fn spread_ms(interval_ms: u64, i: u64) -> u64 {
    let x = i
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 33;
    200 + x % interval_ms.max(1)
}
