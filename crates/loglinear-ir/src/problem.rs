//! A variant's preprocessing evaluated on concrete inputs ([`crate::eval`]), giving per-(batch, head) problems in
//! the canonical form every oracle and backend consumes: `q`, the write's `k`, `v` and scale, the transition's
//! operands, and λ.

use crate::check::check_inputs;
pub use crate::eval::eval_all;
use crate::eval::index;
use crate::expr::{ExprId, Ty};
use crate::level::num_levels;
use crate::tensor::{Dims, HostTensor, InputError, TensorMap};
use crate::variant::{Hierarchy, Transition, TransitionClass, VariantIr};

/// The transition operands of one (batch, head), by class.
#[derive(Clone, Debug, PartialEq)]
pub enum HeadTransition {
    /// `A = I`.
    Identity,
    /// `A_t = exp(g_t) I`; `g` has one entry per token (constants are broadcast).
    Scalar {
        /// Log decay per token, length T.
        g: Vec<f64>,
    },
    /// `A_t = diag(exp(g_t))`.
    Diagonal {
        /// Log decay per token and key channel, T×K row-major.
        g: Vec<f64>,
    },
    /// `A_t = exp(g_t) (I − β_t k_t k_tᵀ)`.
    Delta {
        /// Log decay per token (`None`: α ≡ 1).
        g: Option<Vec<f64>>,
        /// β per token.
        beta: Vec<f64>,
        /// Erasure keys, T×K.
        key: Vec<f64>,
    },
}

/// One (batch, head) problem in canonical form.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadProblem {
    /// Sequence length.
    pub t: usize,
    /// Key dimension.
    pub k: usize,
    /// Value dimension.
    pub v: usize,
    /// Read-out vectors, T×K.
    pub q: Vec<f64>,
    /// Write keys, T×K.
    pub key: Vec<f64>,
    /// Write values, T×V.
    pub value: Vec<f64>,
    /// Write scale per token (`None`: 1).
    pub scale: Option<Vec<f64>>,
    /// The transition.
    pub transition: HeadTransition,
    /// λ, T×`lambda_stride` (only the first `num_levels(T)` columns are read); `None` for linear variants.
    pub lambda: Option<Vec<f64>>,
    /// Row stride of `lambda`.
    pub lambda_stride: usize,
}

impl HeadProblem {
    /// Write scale of token `t`.
    #[inline]
    pub fn scale(&self, t: usize) -> f64 {
        self.scale.as_ref().map_or(1.0, |s| s[t])
    }

    /// λ of query `t` at level `l` (1 for linear variants).
    #[inline]
    pub fn lambda(&self, t: usize, l: usize) -> f64 {
        self.lambda.as_ref().map_or(1.0, |lam| lam[t * self.lambda_stride + l])
    }

    /// Number of Fenwick levels this problem uses.
    pub fn levels(&self) -> usize {
        num_levels(self.t)
    }

    /// `S ← A_t S` for a K×V state (row-major).
    pub fn apply_state(&self, t: usize, s: &mut [f64]) {
        let (k, v) = (self.k, self.v);
        match &self.transition {
            HeadTransition::Identity => {}
            HeadTransition::Scalar { g } => {
                let a = g[t].exp();
                s.iter_mut().for_each(|x| *x *= a);
            }
            HeadTransition::Diagonal { g } => {
                for i in 0..k {
                    let a = g[t * k + i].exp();
                    s[i * v..(i + 1) * v].iter_mut().for_each(|x| *x *= a);
                }
            }
            HeadTransition::Delta { g, beta, key } => {
                let kt = &key[t * k..(t + 1) * k];
                // S ← S − β k (kᵀ S)
                let mut ks = vec![0.0; v];
                for i in 0..k {
                    for j in 0..v {
                        ks[j] += kt[i] * s[i * v + j];
                    }
                }
                for i in 0..k {
                    for j in 0..v {
                        s[i * v + j] -= beta[t] * kt[i] * ks[j];
                    }
                }
                if let Some(g) = g {
                    let a = g[t].exp();
                    s.iter_mut().for_each(|x| *x *= a);
                }
            }
        }
    }

    /// `r ← A_tᵀ r` for a key-dimension row vector (that is, `rᵀ ← rᵀ A_t`).
    pub fn apply_row(&self, t: usize, r: &mut [f64]) {
        let k = self.k;
        match &self.transition {
            HeadTransition::Identity => {}
            HeadTransition::Scalar { g } => {
                let a = g[t].exp();
                r.iter_mut().for_each(|x| *x *= a);
            }
            HeadTransition::Diagonal { g } => {
                for i in 0..k {
                    r[i] *= g[t * k + i].exp();
                }
            }
            HeadTransition::Delta { g, beta, key } => {
                let kt = &key[t * k..(t + 1) * k];
                let dot: f64 = r.iter().zip(kt).map(|(a, b)| a * b).sum();
                let a = g.as_ref().map_or(1.0, |g| g[t].exp());
                for i in 0..k {
                    r[i] = a * (r[i] - beta[t] * dot * kt[i]);
                }
            }
        }
    }

    /// `S += W_t = scale_t k_t v_tᵀ` into a K×V state.
    pub fn add_write(&self, t: usize, s: &mut [f64]) {
        let (k, v) = (self.k, self.v);
        let c = self.scale(t);
        for i in 0..k {
            let ki = c * self.key[t * k + i];
            for j in 0..v {
                s[i * v + j] += ki * self.value[t * v + j];
            }
        }
    }
}

/// A variant evaluated on inputs: the roots' values and the sizes.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Problem sizes.
    pub dims: Dims,
    /// The transition class.
    pub class: TransitionClass,
    query: HostTensor,
    key: HostTensor,
    value: HostTensor,
    scale: Option<(Ty, HostTensor)>,
    decay: Option<(Ty, HostTensor)>,
    beta: Option<(Ty, HostTensor)>,
    delta_key: Option<HostTensor>,
    lambda: Option<HostTensor>,
}

/// Checks inputs ([`check_inputs`]) and evaluates the variant's preprocessing.
pub fn resolve(variant: &VariantIr, inputs: &TensorMap) -> Result<Resolved, InputError> {
    let dims = check_inputs(variant, inputs)?;
    let tys = crate::types::infer(variant).expect("resolve needs a validated variant");
    let vals = eval_all(variant, inputs, &dims);
    let get = |id: ExprId| vals[id.index()].clone();
    let typed = |id: ExprId| (tys[id.index()], get(id));
    let (decay, beta, delta_key) = match &variant.transition {
        Transition::Identity => (None, None, None),
        Transition::ScalarDecay { log_decay } | Transition::DiagonalDecay { log_decay } => {
            (Some(typed(*log_decay)), None, None)
        }
        Transition::Delta { log_decay, beta, key } => (log_decay.map(typed), Some(typed(*beta)), Some(get(*key))),
    };
    Ok(Resolved {
        dims,
        class: variant.class(),
        query: get(variant.query),
        key: get(variant.write.key),
        value: get(variant.write.value),
        scale: variant.write.scale.map(typed),
        decay,
        beta,
        delta_key,
        lambda: match &variant.hierarchy {
            Hierarchy::None => None,
            Hierarchy::Fenwick { lambda } => Some(get(*lambda)),
        },
    })
}

impl Resolved {
    /// The canonical problem of batch `b`, head `h`.
    pub fn head(&self, b: usize, h: usize) -> HeadProblem {
        let d = &self.dims;
        let rows = |x: &HostTensor, w: usize| -> Vec<f64> {
            (0..d.t)
                .flat_map(|t| {
                    let r = ((b * d.t + t) * d.h + h) * w;
                    x.data[r..r + w].to_vec()
                })
                .collect()
        };
        let scalar = |(ty, x): &(Ty, HostTensor)| -> Vec<f64> {
            (0..d.t).map(|t| x.data[index(*ty, d, (b * d.t + t) * d.h + h, h, 0)]).collect()
        };
        let transition = match self.class {
            TransitionClass::Identity => HeadTransition::Identity,
            TransitionClass::ConstantDecay | TransitionClass::ScalarDecay => {
                HeadTransition::Scalar { g: scalar(self.decay.as_ref().expect("decay")) }
            }
            TransitionClass::DiagonalDecay => {
                HeadTransition::Diagonal { g: rows(&self.decay.as_ref().expect("decay").1, d.k) }
            }
            TransitionClass::Delta | TransitionClass::GatedDelta => HeadTransition::Delta {
                g: self.decay.as_ref().map(scalar),
                beta: scalar(self.beta.as_ref().expect("beta")),
                key: rows(self.delta_key.as_ref().expect("delta key"), d.k),
            },
        };
        HeadProblem {
            t: d.t,
            k: d.k,
            v: d.v,
            q: rows(&self.query, d.k),
            key: rows(&self.key, d.k),
            value: rows(&self.value, d.v),
            scale: self.scale.as_ref().map(scalar),
            transition,
            lambda: self.lambda.as_ref().map(|l| rows(l, d.l)),
            lambda_stride: d.l,
        }
    }

    /// Every head problem, in (batch, head) order.
    pub fn heads(&self) -> Vec<HeadProblem> {
        let d = &self.dims;
        (0..d.b).flat_map(|b| (0..d.h).map(move |h| (b, h))).map(|(b, h)| self.head(b, h)).collect()
    }

    /// Assembles per-head outputs (T×V each, (batch, head) order) into `o` of shape `[B, T, H, V]`.
    pub fn assemble(&self, outs: &[Vec<f64>]) -> HostTensor {
        let d = &self.dims;
        let mut o = HostTensor::zeros(vec![d.b, d.t, d.h, d.v]);
        for (bh, out) in outs.iter().enumerate() {
            let (b, h) = (bh / d.h, bh % d.h);
            for t in 0..d.t {
                let dst = ((b * d.t + t) * d.h + h) * d.v;
                o.data[dst..dst + d.v].copy_from_slice(&out[t * d.v..(t + 1) * d.v]);
            }
        }
        o
    }
}
