//! Deterministic pseudo-random inputs for tests, the demo and benchmarks (spec §11.5 distributions).

use crate::expr::{Expr, ExprId};
use crate::level::num_levels;
use crate::tensor::{HostTensor, TensorMap};
use crate::variant::{Hierarchy, InputKind, Transition, VariantIr};

/// SplitMix64: small, fast, deterministic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The role an input plays when it feeds a root directly; it picks the distribution.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Decay,
    Gate,
    Lambda,
    Plain,
}

fn direct_input(v: &VariantIr, id: ExprId) -> Option<usize> {
    match v.expr(id) {
        Expr::Input(i) => Some(i.index()),
        _ => None,
    }
}

/// Random inputs for `variant` of sizes `(b, t, h, k, v)`, with λ of `num_levels(t) + extra_levels` levels.
///
/// Log decays are `−softplus(N(0,1))·0.5`, β and write scales `sigmoid(N(0,1))`, λ `softplus(N(0,1))`, other
/// inputs `N(0,1)` with key vectors scaled to norm ≈ 1 (exactly unit norm for delta variants).
pub fn random_inputs(
    variant: &VariantIr,
    (b, t, h, k, v): (usize, usize, usize, usize, usize),
    extra_levels: usize,
    seed: u64,
) -> TensorMap {
    let mut rng = Rng::new(seed);
    let mut roles = vec![Role::Plain; variant.inputs.len()];
    let mut set = |id: Option<ExprId>, r: Role| {
        if let Some(i) = id.and_then(|id| direct_input(variant, id)) {
            roles[i] = r;
        }
    };
    match &variant.transition {
        Transition::Identity => {}
        Transition::ScalarDecay { log_decay } | Transition::DiagonalDecay { log_decay } => {
            set(Some(*log_decay), Role::Decay)
        }
        Transition::Delta { log_decay, beta, .. } => {
            set(*log_decay, Role::Decay);
            set(Some(*beta), Role::Gate);
        }
    }
    set(variant.write.scale, Role::Gate);
    if let Hierarchy::Fenwick { lambda } = &variant.hierarchy {
        set(Some(*lambda), Role::Lambda);
    }
    let unit_keys = variant.class().is_delta();
    let mut out = TensorMap::new();
    for (i, d) in variant.inputs.iter().enumerate() {
        let shape = match d.kind {
            InputKind::Key | InputKind::Channel => vec![b, t, h, k],
            InputKind::Value => vec![b, t, h, v],
            InputKind::Scalar => vec![b, t, h],
            InputKind::Levels => vec![b, t, h, num_levels(t) + extra_levels],
            InputKind::HeadConst => vec![h],
        };
        let n: usize = shape.iter().product();
        let mut data: Vec<f64> = (0..n)
            .map(|_| {
                let z = rng.normal();
                match roles[i] {
                    Role::Decay => -crate::expr::softplus(z) * 0.5,
                    Role::Gate => crate::expr::sigmoid(z),
                    Role::Lambda => crate::expr::softplus(z),
                    Role::Plain => z,
                }
            })
            .collect();
        if d.kind == InputKind::Key && roles[i] == Role::Plain {
            for row in data.chunks_mut(k) {
                let norm = if unit_keys {
                    row.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12)
                } else {
                    (k as f64).sqrt()
                };
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        out.insert(d.name.clone(), HostTensor::new(shape, data));
    }
    out
}
