//! The validator. A [`VariantIr`] that passes it satisfies these invariants, on which every later stage relies:
//!
//! 1. input names are non-empty identifiers and unique;
//! 2. every operand handle is smaller than its user's handle (the arena is topologically ordered) and every
//!    input handle is in range;
//! 3. every expression is well typed ([`Ty::join`]; `l2norm` only on vectors);
//! 4. the read-out and the write's key are key vectors, the write's value is a value vector, scale factors,
//!    β and scalar log decays are scalars, a diagonal log decay is a key vector;
//! 5. λ is present exactly when the hierarchy is Fenwick, and is of levels type; no `levels` input exists
//!    without a hierarchy;
//! 6. every declared input is used;
//! 7. the chunk size is a power of two in `1..=256`.

use crate::expr::{Expr, ExprId, Ty, UnaryOp};
use crate::variant::{Hierarchy, InputKind, Transition, VariantIr, MAX_CHUNK_SIZE};

/// Why a variant is rejected. Every message names the offending part and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// Two inputs share a name.
    #[error("variant `{variant}`: input `{name}` is declared twice")]
    DuplicateInput {
        /// VariantIr name.
        variant: String,
        /// The repeated name.
        name: String,
    },
    /// An input name is not an identifier.
    #[error("variant `{variant}`: input name `{name}` is not an identifier (expected [A-Za-z_][A-Za-z0-9_]*)")]
    BadInputName {
        /// VariantIr name.
        variant: String,
        /// The name.
        name: String,
    },
    /// The variant name is not an identifier.
    #[error("variant name `{0}` is not an identifier (expected [A-Za-z_][A-Za-z0-9_]*)")]
    BadVariantName(String),
    /// A handle points outside the arena or forward.
    #[error("variant `{variant}`: expression %{expr} refers to {what}, which does not precede it")]
    BadHandle {
        /// VariantIr name.
        variant: String,
        /// The expression holding the handle.
        expr: u32,
        /// What it refers to.
        what: String,
    },
    /// Operands whose types do not mix.
    #[error("variant `{variant}`: `{expr}` combines {lhs} with {rhs}; vectors of different dimensions (or levels with vectors) do not mix")]
    TypeMismatch {
        /// VariantIr name.
        variant: String,
        /// The expression, printed.
        expr: String,
        /// Left operand type.
        lhs: &'static str,
        /// Right operand type.
        rhs: &'static str,
    },
    /// `l2norm` of something that is not a vector.
    #[error("variant `{variant}`: `{expr}` takes l2norm of {found}; l2norm needs a key or value vector")]
    NormOfScalar {
        /// VariantIr name.
        variant: String,
        /// The expression, printed.
        expr: String,
        /// Operand type.
        found: &'static str,
    },
    /// A role (query, write key, β, ...) filled by an expression of the wrong type.
    #[error("variant `{variant}`: the {role} `{expr}` is {found}; expected {expected}")]
    WrongRole {
        /// VariantIr name.
        variant: String,
        /// Which role.
        role: &'static str,
        /// The expression, printed.
        expr: String,
        /// Its type.
        found: &'static str,
        /// What the role needs.
        expected: &'static str,
    },
    /// A `levels` input on a variant without hierarchy.
    #[error("variant `{variant}`: input `{name}` is per-level weights (λ) but the variant has no hierarchy; declare `hierarchy = fenwick(...)` or remove it")]
    LevelsWithoutHierarchy {
        /// VariantIr name.
        variant: String,
        /// The input.
        name: String,
    },
    /// An input that nothing reads.
    #[error("variant `{variant}`: input `{name}` is declared but never used")]
    UnusedInput {
        /// VariantIr name.
        variant: String,
        /// The input.
        name: String,
    },
    /// A bad chunk size.
    #[error("variant `{variant}`: chunk size {chunk} is not a power of two in 1..={max}")]
    BadChunkSize {
        /// VariantIr name.
        variant: String,
        /// The value given.
        chunk: usize,
        /// The upper bound.
        max: usize,
    },
    /// A builder was finished without a required part.
    #[error("variant `{variant}`: no {part} was declared")]
    Missing {
        /// VariantIr name.
        variant: String,
        /// The missing part.
        part: &'static str,
    },
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Infers the type of every expression; fails on the first ill-typed or ill-formed one.
pub fn infer_types(v: &VariantIr) -> Result<Vec<Ty>, ValidationError> {
    let mut tys: Vec<Ty> = Vec::with_capacity(v.exprs.len());
    for (i, e) in v.exprs.iter().enumerate() {
        let bad = |what: String| ValidationError::BadHandle { variant: v.name.clone(), expr: i as u32, what };
        let get = |tys: &Vec<Ty>, a: ExprId| {
            if a.index() < i {
                Ok(tys[a.index()])
            } else {
                Err(bad(format!("%{}", a.0)))
            }
        };
        let ty = match e {
            Expr::Input(id) => match v.inputs.get(id.index()) {
                Some(d) => d.kind.ty(),
                None => return Err(bad(format!("input #{}", id.0))),
            },
            Expr::Const(_) => Ty::Const,
            Expr::Unary(op, a) => {
                let t = get(&tys, *a)?;
                if *op == UnaryOp::L2Norm && !matches!(t, Ty::Key | Ty::Value) {
                    return Err(ValidationError::NormOfScalar {
                        variant: v.name.clone(),
                        expr: crate::print::expr_to_string(v, ExprId(i as u32)),
                        found: t.describe(),
                    });
                }
                t
            }
            Expr::Binary(_, a, b) => {
                let (ta, tb) = (get(&tys, *a)?, get(&tys, *b)?);
                ta.join(tb).ok_or_else(|| ValidationError::TypeMismatch {
                    variant: v.name.clone(),
                    expr: crate::print::expr_to_string(v, ExprId(i as u32)),
                    lhs: ta.describe(),
                    rhs: tb.describe(),
                })?
            }
        };
        tys.push(ty);
    }
    Ok(tys)
}

/// Checks every invariant listed in the module documentation.
pub fn validate(v: &VariantIr) -> Result<(), ValidationError> {
    let name = &v.name;
    if !is_ident(name) {
        return Err(ValidationError::BadVariantName(name.clone()));
    }
    for (i, d) in v.inputs.iter().enumerate() {
        if !is_ident(&d.name) {
            return Err(ValidationError::BadInputName { variant: name.clone(), name: d.name.clone() });
        }
        if v.inputs[..i].iter().any(|o| o.name == d.name) {
            return Err(ValidationError::DuplicateInput { variant: name.clone(), name: d.name.clone() });
        }
    }
    let tys = infer_types(v)?;
    let role = |role: &'static str, id: ExprId, ok: fn(Ty) -> bool, expected: &'static str| {
        let found = tys.get(id.index()).copied().ok_or_else(|| ValidationError::BadHandle {
            variant: name.clone(),
            expr: id.0,
            what: format!("the {role}"),
        })?;
        if ok(found) {
            Ok(())
        } else {
            Err(ValidationError::WrongRole {
                variant: name.clone(),
                role,
                expr: crate::print::expr_to_string(v, id),
                found: found.describe(),
                expected,
            })
        }
    };
    let key = |t: Ty| t == Ty::Key;
    let scalar = |t: Ty| t.is_scalar();
    role("query", v.query, key, "a key-dimension vector [B,T,H,K]")?;
    role("write key", v.write.key, key, "a key-dimension vector [B,T,H,K]")?;
    role("write value", v.write.value, |t| t == Ty::Value, "a value-dimension vector [B,T,H,V]")?;
    if let Some(s) = v.write.scale {
        role("write scale", s, scalar, "a scalar (per token, per head or constant)")?;
    }
    match &v.transition {
        Transition::Identity => {}
        Transition::ScalarDecay { log_decay } => {
            role("log decay", *log_decay, scalar, "a scalar (per token, per head or constant)")?
        }
        Transition::DiagonalDecay { log_decay } => {
            role("per-channel log decay", *log_decay, key, "a key-dimension vector [B,T,H,K]")?
        }
        Transition::Delta { log_decay, beta, key: k } => {
            if let Some(g) = log_decay {
                role("log decay", *g, scalar, "a scalar (per token, per head or constant)")?;
            }
            role("delta-rule strength β", *beta, scalar, "a scalar (per token, per head or constant)")?;
            role("delta-rule key", *k, key, "a key-dimension vector [B,T,H,K]")?;
        }
    }
    match &v.hierarchy {
        Hierarchy::Fenwick { lambda } => role("λ", *lambda, |t| t == Ty::Levels, "per-level weights [B,T,H,L]")?,
        Hierarchy::None => {
            if let Some(d) = v.inputs.iter().find(|d| d.kind == InputKind::Levels) {
                return Err(ValidationError::LevelsWithoutHierarchy { variant: name.clone(), name: d.name.clone() });
            }
        }
    }
    for (d, used) in v.inputs.iter().zip(v.used_inputs()) {
        if !used {
            return Err(ValidationError::UnusedInput { variant: name.clone(), name: d.name.clone() });
        }
    }
    if v.chunk_size == 0 || !v.chunk_size.is_power_of_two() || v.chunk_size > MAX_CHUNK_SIZE {
        return Err(ValidationError::BadChunkSize { variant: name.clone(), chunk: v.chunk_size, max: MAX_CHUNK_SIZE });
    }
    Ok(())
}
