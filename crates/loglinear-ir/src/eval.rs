//! Evaluation of a variant's preprocessing expressions on concrete inputs: the only place where expression
//! semantics live. The `problem` module builds the per-(batch, head) problems on it, and `check` evaluates
//! the log decay with it.

use crate::expr::{Expr, ExprId, Ty, UnaryOp, L2NORM_EPS};
use crate::tensor::{Dims, HostTensor, TensorMap};
use crate::variant::VariantIr;

/// The shape of a value of type `ty` for problem sizes `d`.
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
pub(crate) fn index(ty: Ty, d: &Dims, bth: usize, h: usize, c: usize) -> usize {
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

/// Evaluates expression `root` of `v` on validated inputs, and only the expressions it depends on; the result has
/// the shape of `root`'s type.
pub fn eval_one(v: &VariantIr, inputs: &TensorMap, d: &Dims, root: ExprId) -> HostTensor {
    let mut vals = eval_needed(v, inputs, d, &needed_by(v, root));
    std::mem::replace(&mut vals[root.index()], HostTensor::zeros(vec![0]))
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
    let tys = crate::types::infer(v).expect("evaluation needs a validated variant");
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
