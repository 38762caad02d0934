//! Shared helpers of the integration tests.
#![allow(dead_code)]

use loglinear_cranelift::{JitModule, JitOptions};

/// Deterministic xorshift generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// JITs to test: the host default (FMA where available) and the portable mul+add path.
pub fn jits() -> Vec<(&'static str, JitModule)> {
    let mut v = vec![("default", JitModule::new().expect("host JIT"))];
    v.push((
        "no-fma",
        JitModule::with_options(JitOptions { fma: Some(false), ..Default::default() }).expect("host JIT"),
    ));
    v
}

/// max |a − b| / max(|b|, floor) over the elements.
pub fn max_rel_err(a: &[f32], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs() / y.abs().max(floor)).fold(0.0, f64::max)
}

/// A runtime whose only kernel-IR targets are the defaults and Cranelift with `threads` workers (its own
/// compiled-kernel cache).
pub fn cranelift_runtime(threads: usize) -> loglinear_runtime::Runtime {
    let mut rt = loglinear_runtime::Runtime::with_defaults();
    rt.register(std::sync::Arc::new(loglinear_cranelift::CraneliftTarget::new().with_threads(threads)));
    rt
}

/// Runs backend `name` of `rt` at chunk `c` in scan form `form` on f64 inputs.
pub fn run_form(
    rt: &loglinear_runtime::Runtime,
    name: &str,
    v: &loglinear_ir::VariantIr,
    x: &loglinear_ir::TensorMap,
    c: usize,
    form: loglinear_runtime::ScanForm,
) -> Result<loglinear_ir::HostTensor, loglinear_runtime::RuntimeError> {
    let b = rt.get(name)?;
    let config = loglinear_runtime::ScheduleConfig {
        form,
        ..b.config(v, &loglinear_runtime::RunOptions::with_chunk_size(Some(c)))?
    };
    b.run_f64(v, x, &loglinear_runtime::RunOptions::with_config(config))
}
