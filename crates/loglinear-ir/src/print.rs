//! The text form of a variant. `loglinear describe NAME` and `#[log_linear(debug)]` print exactly this.
//!
//! ```text
//! variant loglinear_mamba2 {
//!   input q: key [B, T, H, K]
//!   ...
//!   class scalar_decay
//!   query = q
//!   transition = exp(g) * I
//!   write = outer(k, v)
//!   hierarchy = fenwick(lam)
//!   chunk_size = 64
//! }
//! ```

use std::fmt::{self, Write as _};

use crate::expr::{BinaryOp, Expr, ExprId, UnaryOp};
use crate::variant::{Hierarchy, Transition, VariantIr};

fn prec(e: &Expr) -> u8 {
    match e {
        Expr::Binary(BinaryOp::Add | BinaryOp::Sub, ..) => 1,
        Expr::Binary(BinaryOp::Mul, ..) => 2,
        Expr::Unary(UnaryOp::Neg, _) => 3,
        _ => 4,
    }
}

fn write_expr(v: &VariantIr, id: ExprId, out: &mut String) {
    let Some(e) = v.exprs.get(id.index()) else {
        let _ = write!(out, "%{}", id.0);
        return;
    };
    let child = |c: ExprId, min: u8, out: &mut String| {
        let paren = v.exprs.get(c.index()).map(|ce| prec(ce) < min).unwrap_or(false);
        if paren {
            out.push('(');
        }
        write_expr(v, c, out);
        if paren {
            out.push(')');
        }
    };
    match e {
        Expr::Input(i) => match v.inputs.get(i.index()) {
            Some(d) => out.push_str(&d.name),
            None => {
                let _ = write!(out, "input#{}", i.0);
            }
        },
        Expr::Const(c) => {
            let _ = write!(out, "{c:?}");
        }
        Expr::Unary(UnaryOp::Neg, a) => {
            out.push('-');
            child(*a, 3, out);
        }
        Expr::Unary(op, a) => {
            out.push_str(op.name());
            out.push('(');
            write_expr(v, *a, out);
            out.push(')');
        }
        Expr::Binary(op, a, b) => {
            let p = prec(e);
            child(*a, p, out);
            let _ = write!(out, " {} ", op.symbol());
            // Right operands of equal precedence need parentheses for `-` (and are kept for clarity).
            child(*b, p + 1, out);
        }
    }
}

/// Prints one expression in infix form, e.g. `softplus(a + dt_bias) * -2.0`.
pub fn expr_to_string(v: &VariantIr, id: ExprId) -> String {
    let mut s = String::new();
    write_expr(v, id, &mut s);
    s
}

/// Prints the transition as the DSL writes it, e.g. `exp(g) * (I - beta * outer(k, k))`.
pub fn transition_to_string(v: &VariantIr) -> String {
    let e = |id: ExprId| {
        let s = expr_to_string(v, id);
        match v.exprs.get(id.index()) {
            Some(ex) if prec(ex) < 2 => format!("({s})"),
            _ => s,
        }
    };
    match &v.transition {
        Transition::Identity => "I".to_string(),
        Transition::ScalarDecay { log_decay } => {
            format!("exp({}) * I", expr_to_string(v, *log_decay))
        }
        Transition::DiagonalDecay { log_decay } => {
            format!("diag(exp({}))", expr_to_string(v, *log_decay))
        }
        Transition::Delta { log_decay, beta, key } => {
            let k = expr_to_string(v, *key);
            let core = format!("(I - {} * outer({k}, {k}))", e(*beta));
            match log_decay {
                Some(g) => format!("exp({}) * {core}", expr_to_string(v, *g)),
                None => core,
            }
        }
    }
}

/// Prints the write, e.g. `beta * outer(k, v)`.
pub fn write_to_string(v: &VariantIr) -> String {
    let o = format!("outer({}, {})", expr_to_string(v, v.write.key), expr_to_string(v, v.write.value));
    match v.write.scale {
        Some(s) => {
            let ss = expr_to_string(v, s);
            match v.exprs.get(s.index()) {
                Some(ex) if prec(ex) < 2 => format!("({ss}) * {o}"),
                _ => format!("{ss} * {o}"),
            }
        }
        None => o,
    }
}

impl fmt::Display for VariantIr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "variant {} {{", self.name)?;
        for d in &self.inputs {
            writeln!(f, "  input {}: {} {}", d.name, d.kind.keyword(), d.kind.layout())?;
        }
        let class = if crate::types::infer(self).is_ok() { self.class().name() } else { "<ill-typed>" };
        writeln!(f, "  class {class}")?;
        writeln!(f, "  query = {}", expr_to_string(self, self.query))?;
        writeln!(f, "  transition = {}", transition_to_string(self))?;
        writeln!(f, "  write = {}", write_to_string(self))?;
        match &self.hierarchy {
            Hierarchy::None => writeln!(f, "  hierarchy = none")?,
            Hierarchy::Fenwick { lambda } => writeln!(f, "  hierarchy = fenwick({})", expr_to_string(self, *lambda))?,
        }
        writeln!(f, "  chunk_size = {}", self.chunk_size)?;
        write!(f, "}}")
    }
}
