//! Expression types: [`infer`] gives the type of every expression of a variant's arena from its inputs' kinds
//! and [`Ty::join`]. It depends only on the expressions and the variant's declarations (not on the validator
//! or the printer, which both use it), so the crate's modules form no cycle.

use crate::expr::{Expr, ExprId, Ty, UnaryOp};
use crate::variant::VariantIr;

/// Why an arena does not type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeError {
    /// An operand handle that does not point to an earlier expression (or an input that does not exist).
    BadHandle {
        /// The expression's index.
        expr: u32,
        /// The bad operand.
        what: String,
    },
    /// `l2norm` of something that is not a vector.
    NormOfScalar {
        /// The expression.
        expr: ExprId,
        /// The operand's type.
        found: Ty,
    },
    /// A binary operation on incompatible types.
    Mismatch {
        /// The expression.
        expr: ExprId,
        /// Left operand's type.
        lhs: Ty,
        /// Right operand's type.
        rhs: Ty,
    },
}

/// The type of every expression of `v`'s arena, in arena order.
///
/// # Errors
/// The first expression that does not type.
pub fn infer(v: &VariantIr) -> Result<Vec<Ty>, TypeError> {
    let mut tys: Vec<Ty> = Vec::with_capacity(v.exprs.len());
    for (i, e) in v.exprs.iter().enumerate() {
        let bad = |what: String| TypeError::BadHandle { expr: i as u32, what };
        let get =
            |tys: &Vec<Ty>, a: ExprId| if a.index() < i { Ok(tys[a.index()]) } else { Err(bad(format!("%{}", a.0))) };
        let ty = match e {
            Expr::Input(id) => match v.inputs.get(id.index()) {
                Some(d) => d.kind.ty(),
                None => return Err(bad(format!("input #{}", id.0))),
            },
            Expr::Const(_) => Ty::Const,
            Expr::Unary(op, a) => {
                let t = get(&tys, *a)?;
                if *op == UnaryOp::L2Norm && !matches!(t, Ty::Key | Ty::Value) {
                    return Err(TypeError::NormOfScalar { expr: ExprId(i as u32), found: t });
                }
                t
            }
            Expr::Binary(_, a, b) => {
                let (ta, tb) = (get(&tys, *a)?, get(&tys, *b)?);
                ta.join(tb).ok_or(TypeError::Mismatch { expr: ExprId(i as u32), lhs: ta, rhs: tb })?
            }
        };
        tys.push(ty);
    }
    Ok(tys)
}

impl VariantIr {
    /// The type of an expression (the variant must be valid).
    pub fn ty(&self, id: ExprId) -> Ty {
        infer(self).map(|t| t[id.index()]).unwrap_or(Ty::Const)
    }
}
