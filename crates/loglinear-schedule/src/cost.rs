//! The cost of a variant's forward pass: compiles it and counts its kernel IR with
//! [`loglinear_kernel::cost::cost_program`] (the counting rules are documented there).

use loglinear_ir::VariantIr;
pub use loglinear_kernel::cost::{cost_program, Cost, StageCost};

use crate::{compile, size_env, ScheduleError};
use loglinear_kernel::ScheduleConfig;

/// The cost of the forward pass of `v` (per-level scans) for sizes `(B, T, H, K, V)` and chunk size `chunk`;
/// λ is assumed to have `⌈log2 T⌉ + 1` levels.
pub fn cost(
    v: &VariantIr,
    (b, t, h, k, vd): (usize, usize, usize, usize, usize),
    chunk: usize,
) -> Result<Cost, ScheduleError> {
    let c = compile(v, &ScheduleConfig::with_chunk(chunk))?;
    let l = if v.is_log_linear() { loglinear_ir::level::num_levels(t) } else { 0 };
    let env = size_env(b, t, h, k, vd, l, c.chunk, c.forward.hierarchical);
    Ok(cost_program(&c.forward, &env))
}
