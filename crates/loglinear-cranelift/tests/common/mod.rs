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
