//! Evaluation of a variant's preprocessing on concrete inputs, giving per-(batch, head) problems in the
//! canonical form every oracle and backend consumes: `q`, the write's `k`, `v` and scale, the transition's
//! operands, and λ. This is the only place where expression semantics live.

use crate::expr::{Expr, ExprId, Ty, UnaryOp, L2NORM_EPS};
use crate::level::num_levels;
use crate::tensor::{check_inputs, Dims, HostTensor, InputError, TensorMap};
use crate::variant::{Hierarchy, Transition, TransitionClass, VariantIr};

fn shape_of(ty: Ty, d: &Dims) -> Vec<usize> {
    match ty {
        Ty::Const => vec![],
        Ty::Head => vec![d.h],
        Ty::Token => vec![d.b, d.t, d.h],
        Ty::Key => vec![d.b, d.t, d.h, d.k],
        Ty::Value => vec![d.b, d.t, d.h, d.v],
        Ty::Levels => vec![d.b, d.t, d.h, d.l],
    }
}

/// Flat index of element (token `bth`, head `h`, channel `c`) in a tensor of type `ty`.
#[inline]
fn index(ty: Ty, d: &Dims, bth: usize, h: usize, c: usize) -> usize {
    match ty {
        Ty::Const => 0,
        Ty::Head => h,
        Ty::Token => bth,
        Ty::Key => bth * d.k + c,
        Ty::Value => bth * d.v + c,
        Ty::Levels => bth * d.l + c,
    }
}

/// Evaluates every expression of `v` on validated inputs; element `i` is expression `%i` with the shape of its type.
pub fn eval_all(v: &VariantIr, inputs: &TensorMap, d: &Dims) -> Vec<HostTensor> {
    eval_needed(v, inputs, d, &vec![true; v.exprs.len()])
}

/// Marks `root` and every expression it depends on.
fn needed_by(v: &VariantIr, root: ExprId) -> Vec<bool> {
    let mut need = vec![false; v.exprs.len()];
    need[root.index()] = true;
    for i in (0..v.exprs.len()).rev() {
        if !need[i] {
            continue;
        }
        match &v.exprs[i] {
            Expr::Unary(_, a) => need[a.index()] = true,
            Expr::Binary(_, a, b) => {
                need[a.index()] = true;
                need[b.index()] = true;
            }
            _ => {}
        }
    }
    need
}

/// Evaluates the expressions marked in `need` (which must be closed under operands); the others are left empty.
fn eval_needed(v: &VariantIr, inputs: &TensorMap, d: &Dims, need: &[bool]) -> Vec<HostTensor> {
    let tys = crate::validate::infer_types(v).expect("evaluation needs a validated variant");
    let mut vals: Vec<HostTensor> = Vec::with_capacity(v.exprs.len());
    for (i, e) in v.exprs.iter().enumerate() {
        if !need[i] {
            vals.push(HostTensor::zeros(vec![0]));
            continue;
        }
        let ty = tys[i];
        let val = match e {
            Expr::Input(id) => {
                let name = &v.input(*id).name;
                let mut t = inputs[name].clone();
                if ty == Ty::Levels && t.shape[3] != d.l {
                    // Keep the first d.l levels (several λ inputs of different depths).
                    let (n, l0) = (t.shape[0] * t.shape[1] * t.shape[2], t.shape[3]);
                    let data = (0..n).flat_map(|r| t.data[r * l0..r * l0 + d.l].to_vec()).collect();
                    t = HostTensor::new(vec![t.shape[0], t.shape[1], t.shape[2], d.l], data);
                }
                t
            }
            Expr::Const(c) => HostTensor::new(vec![], vec![*c]),
            Expr::Unary(UnaryOp::L2Norm, a) => {
                let x = &vals[a.index()];
                let w = *x.shape.last().expect("l2norm of a vector");
                let mut out = x.clone();
                for row in out.data.chunks_mut(w) {
                    let n = (row.iter().map(|z| z * z).sum::<f64>() + L2NORM_EPS).sqrt();
                    row.iter_mut().for_each(|z| *z /= n);
                }
                out
            }
            Expr::Unary(op, a) => {
                let x = &vals[a.index()];
                HostTensor::new(x.shape.clone(), x.data.iter().map(|z| op.apply_scalar(*z)).collect())
            }
            Expr::Binary(op, a, b) => {
                let (ta, tb) = (tys[a.index()], tys[b.index()]);
                let (xa, xb) = (&vals[a.index()], &vals[b.index()]);
                let shape = shape_of(ty, d);
                let width = match ty {
                    Ty::Key => d.k,
                    Ty::Value => d.v,
                    Ty::Levels => d.l,
                    _ => 1,
                };
                let mut data = Vec::with_capacity(shape.iter().product());
                match ty {
                    Ty::Const => data.push(op.apply(xa.data[0], xb.data[0])),
                    Ty::Head => {
                        for h in 0..d.h {
                            data.push(op.apply(xa.data[index(ta, d, 0, h, 0)], xb.data[index(tb, d, 0, h, 0)]));
                        }
                    }
                    _ => {
                        for bth in 0..d.b * d.t * d.h {
                            let h = bth % d.h;
                            for c in 0..width {
                                data.push(op.apply(xa.data[index(ta, d, bth, h, c)], xb.data[index(tb, d, bth, h, c)]));
                            }
                        }
                    }
                }
                HostTensor::new(shape, data)
            }
        };
        vals.push(val);
    }
    vals
}

/// Checks that the transition's log decay is ≤ 0 everywhere (α = exp(g) ∈ (0, 1], spec §4.1, §11.4): chunked
/// schedules form decays only as exponentials of non-positive numbers. Only the decay's sub-expression is
/// evaluated. The inputs must already have passed the shape checks of [`check_inputs`].
pub fn check_decay(variant: &VariantIr, inputs: &TensorMap, d: &Dims) -> Result<(), InputError> {
    let g = match &variant.transition {
        Transition::ScalarDecay { log_decay } | Transition::DiagonalDecay { log_decay } => *log_decay,
        Transition::Delta { log_decay: Some(g), .. } => *g,
        _ => return Ok(()),
    };
    let (name, data, shape) = match variant.expr(g) {
        Expr::Input(id) => {
            let name = variant.input(*id).name.clone();
            let t = &inputs[&name];
            (format!("tensor `{name}`"), std::borrow::Cow::Borrowed(&t.data), t.shape.clone())
        }
        _ => {
            let mut vals = eval_needed(variant, inputs, d, &needed_by(variant, g));
            let t = std::mem::replace(&mut vals[g.index()], HostTensor::zeros(vec![0]));
            let what = format!("log decay `{}`", crate::print::expr_to_string(variant, g));
            (what, std::borrow::Cow::Owned(t.data), t.shape)
        }
    };
    if let Some(i) = data.iter().position(|x| *x > 0.0 || x.is_nan()) {
        return Err(InputError::PositiveDecay {
            what: name,
            shape: crate::tensor::ShapeFmt(&shape).to_string(),
            value: data[i],
            index: crate::tensor::ShapeFmt(&crate::tensor::unravel(i, &shape)).to_string(),
        });
    }
    Ok(())
}

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
    let tys = crate::validate::infer_types(variant).expect("resolve needs a validated variant");
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
