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
//! 7. the chunk size is a power of two in `1..=256`;
//! 8. no log decay is a constant (an expression that reads no input) above 0 or NaN: its decay factor would exceed
//!    1 whatever the inputs, and every backend requires log decays ≤ 0 (spec §4.1), so the variant could never run;
//! 9. a delta rule erases along its write key: the erasure key and the write key are one expression (the same
//!    handle; [`crate::VariantBuilder`] stores structurally equal expressions once, so the same inputs under the
//!    same operations and constants get the same handle). The chunked WY/UT form (spec §5.4) needs them equal.

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
    /// A log decay that reads no input and is above 0 (or NaN): a decay factor above 1 whatever the inputs.
    #[error(
        "variant `{variant}`: the log decay `{expr}` is the constant {value}, so its decay factor exp(g) is above 1 \
         whatever the inputs; log decays must be ≤ 0 (decay factors in (0, 1], spec §4.1), so this variant could \
         never run: use a constant ≤ 0 or a decay input"
    )]
    PositiveConstantDecay {
        /// VariantIr name.
        variant: String,
        /// The log decay, printed.
        expr: String,
        /// Its value.
        value: f64,
    },
    /// A delta rule whose erasure key is not its write key.
    #[error(
        "variant `{variant}`: the delta rule erases along `{erase}` but writes key `{write}`; the chunked WY/UT \
         schedule (spec §5.4) needs the write key to be the erasure key: use the same key expression in the \
         transition and the write"
    )]
    DeltaKeyMismatch {
        /// VariantIr name.
        variant: String,
        /// The erasure key, printed.
        erase: String,
        /// The write key, printed.
        write: String,
    },
    /// A delta rule whose erasure and write keys are equal expressions stored under two handles (only possible
    /// for an arena not built by [`crate::VariantBuilder`]); later stages match the keys by handle.
    #[error(
        "variant `{variant}`: the delta rule's erasure key %{erase_id} and write key %{write_id} are both `{expr}` \
         but stored twice; every stage identifies them by handle: build the variant with VariantBuilder, which \
         stores equal expressions once"
    )]
    DeltaKeyDuplicated {
        /// VariantIr name.
        variant: String,
        /// The key, printed.
        expr: String,
        /// The erasure key's handle.
        erase_id: u32,
        /// The write key's handle.
        write_id: u32,
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

/// The value of `id` if it reads no input, folded with the IR's own scalar operations; `None` when it reads an
/// input (or refers to a handle that does not precede it). Linear in the arena, however much it is shared.
pub fn constant_value(v: &VariantIr, id: ExprId) -> Option<f64> {
    let end = id.index().checked_add(1).filter(|n| *n <= v.exprs.len())?;
    let mut vals: Vec<Option<f64>> = Vec::with_capacity(end);
    for (i, e) in v.exprs[..end].iter().enumerate() {
        let operand = |vals: &Vec<Option<f64>>, a: ExprId| if a.index() < i { vals[a.index()] } else { None };
        let val = match e {
            Expr::Input(_) | Expr::Unary(UnaryOp::L2Norm, _) => None,
            Expr::Const(c) => Some(*c),
            Expr::Unary(op, a) => operand(&vals, *a).map(|x| op.apply_scalar(x)),
            Expr::Binary(op, a, b) => operand(&vals, *a).zip(operand(&vals, *b)).map(|(x, y)| op.apply(x, y)),
        };
        vals.push(val);
    }
    vals[id.index()]
}

/// Whether `a` and `b` are the same computation: the same inputs under the same operations, operands and
/// constants (compared with `==`, as [`crate::VariantBuilder`] does when it shares expressions). No algebra:
/// `k * 2.0` and `2.0 * k` differ. Each pair of handles is compared once.
pub fn same_expr(v: &VariantIr, a: ExprId, b: ExprId) -> bool {
    let mut todo = vec![(a, b)];
    let mut seen = std::collections::HashSet::new();
    while let Some((a, b)) = todo.pop() {
        if a == b || !seen.insert((a, b)) {
            continue;
        }
        let (Some(ea), Some(eb)) = (v.exprs.get(a.index()), v.exprs.get(b.index())) else {
            return false;
        };
        // Operands precede their users; a forward handle is left to the type checker and compares unequal.
        let mut sub = |x: ExprId, y: ExprId| {
            let ok = x.index() < a.index() && y.index() < b.index();
            todo.push((x, y));
            ok
        };
        let same = match (ea, eb) {
            (Expr::Input(x), Expr::Input(y)) => x == y,
            (Expr::Const(x), Expr::Const(y)) => x == y,
            (Expr::Unary(o, x), Expr::Unary(p, y)) => o == p && sub(*x, *y),
            (Expr::Binary(o, x1, x2), Expr::Binary(p, y1, y2)) => o == p && sub(*x1, *y1) && sub(*x2, *y2),
            _ => false,
        };
        if !same {
            return false;
        }
    }
    true
}

/// The type of every expression of `v`'s arena ([`crate::types::infer`]), as a validation error on failure.
pub fn infer_types(v: &VariantIr) -> Result<Vec<Ty>, ValidationError> {
    use crate::types::TypeError;
    crate::types::infer(v).map_err(|e| match e {
        TypeError::BadHandle { expr, what } => ValidationError::BadHandle { variant: v.name.clone(), expr, what },
        TypeError::NormOfScalar { expr, found } => ValidationError::NormOfScalar {
            variant: v.name.clone(),
            expr: crate::print::expr_to_string(v, expr),
            found: found.describe(),
        },
        TypeError::Mismatch { expr, lhs, rhs } => ValidationError::TypeMismatch {
            variant: v.name.clone(),
            expr: crate::print::expr_to_string(v, expr),
            lhs: lhs.describe(),
            rhs: rhs.describe(),
        },
    })
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
    let log_decay = match &v.transition {
        Transition::ScalarDecay { log_decay } | Transition::DiagonalDecay { log_decay } => Some(*log_decay),
        Transition::Delta { log_decay, .. } => *log_decay,
        Transition::Identity => None,
    };
    if let Some(g) = log_decay {
        if let Some(value) = constant_value(v, g).filter(|x| *x > 0.0 || x.is_nan()) {
            return Err(ValidationError::PositiveConstantDecay {
                variant: name.clone(),
                expr: crate::print::expr_to_string(v, g),
                value,
            });
        }
    }
    if let Transition::Delta { key, .. } = &v.transition {
        let (erase, write) = (*key, v.write.key);
        if erase != write {
            return Err(if same_expr(v, erase, write) {
                ValidationError::DeltaKeyDuplicated {
                    variant: name.clone(),
                    expr: crate::print::expr_to_string(v, erase),
                    erase_id: erase.0,
                    write_id: write.0,
                }
            } else {
                ValidationError::DeltaKeyMismatch {
                    variant: name.clone(),
                    erase: crate::print::expr_to_string(v, erase),
                    write: crate::print::expr_to_string(v, write),
                }
            });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::VariantBuilder;
    use crate::expr::BinaryOp;
    use crate::variant::InputKind;

    /// `q, k, v` inputs; `decay` builds the log decay of a scalar-decay transition.
    fn scalar_decay(decay: impl FnOnce(&mut VariantBuilder) -> ExprId) -> Result<VariantIr, ValidationError> {
        let mut b = VariantBuilder::new("x");
        let q = b.input("q", InputKind::Key);
        let k = b.input("k", InputKind::Key);
        let v = b.input("v", InputKind::Value);
        let g = decay(&mut b);
        b.query(q).transition(Transition::ScalarDecay { log_decay: g }).write(None, k, v);
        b.finish()
    }

    #[test]
    fn positive_constant_log_decay_is_rejected() {
        let e = scalar_decay(|b| b.constant(0.5)).unwrap_err();
        assert_eq!(e, ValidationError::PositiveConstantDecay { variant: "x".into(), expr: "0.5".into(), value: 0.5 });
        let m = e.to_string();
        for want in ["log decay `0.5`", "constant 0.5", "above 1", "≤ 0", "never run"] {
            assert!(m.contains(want), "{want}: {m}");
        }
        // Folded through the IR's own operations.
        let e = scalar_decay(|b| {
            let one = b.constant(1.0);
            b.unary(UnaryOp::Softplus, one)
        })
        .unwrap_err();
        assert!(
            matches!(&e, ValidationError::PositiveConstantDecay { expr, value, .. }
                if expr == "softplus(1.0)" && (*value - crate::expr::softplus(1.0)).abs() < 1e-15),
            "{e:?}"
        );
        // NaN is no decay either (inf - inf).
        let e = scalar_decay(|b| {
            let big = b.constant(1000.0);
            let inf = b.unary(UnaryOp::Exp, big);
            b.binary(BinaryOp::Sub, inf, inf)
        })
        .unwrap_err();
        assert!(matches!(&e, ValidationError::PositiveConstantDecay { value, .. } if value.is_nan()), "{e:?}");
        // The gated delta rule's decay too.
        let mut b = VariantBuilder::new("gd");
        let k = b.input("k", InputKind::Key);
        let v = b.input("v", InputKind::Value);
        let beta = b.input("beta", InputKind::Scalar);
        let g = b.constant(0.25);
        b.query(k).transition(Transition::Delta { log_decay: Some(g), beta, key: k }).write(Some(beta), k, v);
        assert!(matches!(b.finish(), Err(ValidationError::PositiveConstantDecay { value, .. }) if value == 0.25));
    }

    #[test]
    fn non_positive_and_input_log_decays_are_accepted() {
        scalar_decay(|b| b.constant(0.0)).unwrap();
        scalar_decay(|b| b.constant(-0.5)).unwrap();
        scalar_decay(|b| {
            let one = b.constant(1.0);
            let s = b.unary(UnaryOp::Softplus, one);
            b.unary(UnaryOp::Neg, s)
        })
        .unwrap();
        // Not a constant: checked on the data at run time, not here.
        scalar_decay(|b| b.input("g", InputKind::HeadConst)).unwrap();
        scalar_decay(|b| {
            let h = b.input("g", InputKind::HeadConst);
            let half = b.constant(0.5);
            b.binary(BinaryOp::Add, h, half)
        })
        .unwrap();
    }

    /// DeltaNet with erasure key `erase(k, u)` and write key `write(k, u)`.
    fn delta(
        erase: impl FnOnce(&mut VariantBuilder, ExprId, ExprId) -> ExprId,
        write: impl FnOnce(&mut VariantBuilder, ExprId, ExprId) -> ExprId,
    ) -> Result<VariantIr, ValidationError> {
        let mut b = VariantBuilder::new("d");
        let q = b.input("q", InputKind::Key);
        let k = b.input("k", InputKind::Key);
        let u = b.input("u", InputKind::Key);
        let v = b.input("v", InputKind::Value);
        let beta = b.input("beta", InputKind::Scalar);
        let (ke, kw) = (erase(&mut b, k, u), write(&mut b, k, u));
        // Keep every input used whatever the keys are.
        let qu = b.binary(BinaryOp::Add, k, u);
        let q = b.binary(BinaryOp::Add, q, qu);
        b.query(q).transition(Transition::Delta { log_decay: None, beta, key: ke }).write(Some(beta), kw, v);
        b.finish()
    }

    #[test]
    fn delta_rule_needs_its_write_key_to_be_its_erasure_key() {
        let e = delta(|_, k, _| k, |_, _, u| u).unwrap_err();
        assert_eq!(e, ValidationError::DeltaKeyMismatch { variant: "d".into(), erase: "k".into(), write: "u".into() });
        let m = e.to_string();
        for want in ["erases along `k`", "writes key `u`", "WY/UT", "same key expression"] {
            assert!(m.contains(want), "{want}: {m}");
        }
        // Same input, different preprocessing.
        let e = delta(|b, k, _| b.unary(UnaryOp::L2Norm, k), |_, k, _| k).unwrap_err();
        assert!(
            matches!(&e, ValidationError::DeltaKeyMismatch { erase, write, .. } if erase == "l2norm(k)" && write == "k"),
            "{e:?}"
        );
        let e = delta(
            |b, k, _| {
                let two = b.constant(2.0);
                b.mul(k, two)
            },
            |b, k, _| {
                let two = b.constant(2.0);
                b.mul(two, k)
            },
        )
        .unwrap_err();
        assert!(matches!(e, ValidationError::DeltaKeyMismatch { .. }), "no algebra: {e:?}");
        // The same expression built twice is one expression.
        let v = delta(|b, k, _| b.unary(UnaryOp::L2Norm, k), |b, k, _| b.unary(UnaryOp::L2Norm, k)).unwrap();
        assert_eq!(v.class(), crate::TransitionClass::Delta);
        delta(|_, k, _| k, |_, k, _| k).unwrap();
    }

    #[test]
    fn delta_keys_stored_twice_are_named() {
        let mut v = crate::builtins::by_name("deltanet").unwrap();
        let Transition::Delta { key, .. } = v.transition else { panic!("delta") };
        v.exprs.push(v.exprs[key.index()].clone());
        let dup = ExprId(v.exprs.len() as u32 - 1);
        assert!(same_expr(&v, key, dup) && key != dup);
        v.write.key = dup;
        let e = validate(&v).unwrap_err();
        assert!(matches!(&e, ValidationError::DeltaKeyDuplicated { expr, .. } if expr == "k"), "{e:?}");
        assert!(e.to_string().contains("VariantBuilder"), "{e}");
    }

    #[test]
    fn constant_folding_and_structural_equality() {
        let mut b = VariantBuilder::new("c");
        let k = b.input("k", InputKind::Key);
        let v = b.input("v", InputKind::Value);
        let c = b.constant(-2.0);
        let e = b.unary(UnaryOp::Exp, c);
        let kc = b.mul(k, e);
        let kn = b.unary(UnaryOp::L2Norm, k);
        b.query(kc).write(None, kn, v);
        let ir = b.finish().unwrap();
        assert_eq!(constant_value(&ir, c), Some(-2.0));
        assert_eq!(constant_value(&ir, e), Some((-2.0f64).exp()));
        assert_eq!(constant_value(&ir, k), None);
        assert_eq!(constant_value(&ir, kc), None);
        assert!(same_expr(&ir, kn, kn) && !same_expr(&ir, kn, k) && !same_expr(&ir, kc, kn));
    }

    #[test]
    fn folding_and_comparison_are_linear_in_shared_arenas() {
        // x_{i+1} = x_i + x_i, 200 deep: a tree walk would take 2^200 steps.
        let mut b = VariantBuilder::new("deep");
        let q = b.input("q", InputKind::Key);
        let v = b.input("v", InputKind::Value);
        let beta = b.input("beta", InputKind::Scalar);
        let (mut c, mut k) = (b.constant(-1e-300), q);
        for _ in 0..200 {
            c = b.binary(BinaryOp::Add, c, c);
            k = b.binary(BinaryOp::Add, k, k);
        }
        b.query(q).transition(Transition::Delta { log_decay: Some(c), beta, key: k }).write(Some(beta), k, v);
        let mut ir = b.finish().unwrap();
        assert_eq!(constant_value(&ir, c), Some(-1e-300 * 2f64.powi(200)));
        // The same deep key stored again from its last node down: still compared pair by pair.
        let Expr::Binary(op, x, y) = ir.exprs[k.index()].clone() else { panic!() };
        ir.exprs.push(Expr::Binary(op, x, y));
        assert!(same_expr(&ir, k, ExprId(ir.exprs.len() as u32 - 1)));
    }
}
