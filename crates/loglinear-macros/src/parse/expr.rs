//! Expressions of the DSL: a small AST over `syn::Expr` that keeps each node's source tokens for spans.

use std::fmt;

use loglinear_ir::BinaryOp;
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::spanned::Spanned;

/// One node of a DSL expression.
#[derive(Clone, Debug)]
pub struct DExpr {
    /// What the node is.
    pub kind: DKind,
    /// The source tokens, for error spans.
    pub tokens: TokenStream,
}

/// The shapes a DSL expression can take (before classification).
#[derive(Clone, Debug)]
pub enum DKind {
    /// A name: an input, a `let` binding, or a keyword (`I`, `none`).
    Name(syn::Ident),
    /// A float or integer literal.
    Lit(f64),
    /// Unary minus.
    Neg(Box<DExpr>),
    /// `a + b`, `a - b`, `a * b`.
    Binary(BinaryOp, Box<DExpr>, Box<DExpr>),
    /// `f(args...)`: functions (`exp`, `l2norm`, ...) and forms (`outer`, `diag`, `fenwick`).
    Call(syn::Ident, Vec<DExpr>),
}

impl DExpr {
    /// The name, if this node is a plain name.
    pub fn as_name(&self) -> Option<&syn::Ident> {
        match &self.kind {
            DKind::Name(i) => Some(i),
            _ => None,
        }
    }

    /// The arguments, if this node is a call of `f`.
    pub fn as_call(&self, f: &str) -> Option<&[DExpr]> {
        match &self.kind {
            DKind::Call(name, args) if name == f => Some(args),
            _ => None,
        }
    }

    fn prec(&self) -> u8 {
        match &self.kind {
            DKind::Binary(BinaryOp::Add | BinaryOp::Sub, ..) => 1,
            DKind::Binary(BinaryOp::Mul, ..) => 2,
            DKind::Neg(_) => 3,
            _ => 4,
        }
    }
}

impl ToTokens for DExpr {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.tokens.to_tokens(tokens)
    }
}

impl fmt::Display for DExpr {
    /// Prints the expression as the user wrote it, normalised (`exp(g) * (I - beta * outer(k, k))`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let child = |c: &DExpr, min: u8, f: &mut fmt::Formatter<'_>| {
            if c.prec() < min {
                write!(f, "({c})")
            } else {
                write!(f, "{c}")
            }
        };
        match &self.kind {
            DKind::Name(i) => write!(f, "{i}"),
            DKind::Lit(x) => write!(f, "{x:?}"),
            DKind::Neg(a) => {
                f.write_str("-")?;
                child(a, 3, f)
            }
            DKind::Binary(op, a, b) => {
                let p = self.prec();
                child(a, p, f)?;
                write!(f, " {} ", op.symbol())?;
                child(b, p + 1, f)
            }
            DKind::Call(name, args) => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

const SUPPORTED: &str = "expected names, float or integer literals, `+`, `-`, `*`, unary `-`, parentheses and calls \
                         such as `exp(x)`, `softplus(x)`, `sigmoid(x)`, `l2norm(x)`";

fn single_ident(path: &syn::Path) -> Option<&syn::Ident> {
    if path.leading_colon.is_none() && path.segments.len() == 1 && path.segments[0].arguments.is_none() {
        Some(&path.segments[0].ident)
    } else {
        None
    }
}

/// Converts a `syn` expression into the DSL AST; anything outside the expression language is an error.
pub fn parse_expr(e: &syn::Expr) -> syn::Result<DExpr> {
    let tokens = e.to_token_stream();
    let kind = match e {
        syn::Expr::Paren(p) => return Ok(DExpr { tokens, ..parse_expr(&p.expr)? }),
        syn::Expr::Group(g) => return Ok(DExpr { tokens, ..parse_expr(&g.expr)? }),
        syn::Expr::Path(p) if p.qself.is_none() => match single_ident(&p.path) {
            Some(i) => DKind::Name(i.clone()),
            None => {
                return Err(syn::Error::new_spanned(e, format!("unsupported path `{}`: expected a plain name", tokens)))
            }
        },
        syn::Expr::Lit(l) => match &l.lit {
            syn::Lit::Float(f) if f.suffix().is_empty() || f.suffix() == "f64" => DKind::Lit(f.base10_parse::<f64>()?),
            syn::Lit::Int(i) if i.suffix().is_empty() => DKind::Lit(i.base10_parse::<u64>()? as f64),
            _ => {
                return Err(syn::Error::new_spanned(
                    e,
                    "unsupported literal: expected an unsuffixed float or integer literal such as `0.5` or `2`",
                ))
            }
        },
        syn::Expr::Unary(u) => match u.op {
            syn::UnOp::Neg(_) => DKind::Neg(Box::new(parse_expr(&u.expr)?)),
            _ => {
                return Err(syn::Error::new_spanned(
                    u.op,
                    format!("unsupported operator `{}`: the only unary operator is `-`", u.op.to_token_stream()),
                ))
            }
        },
        syn::Expr::Binary(b) => {
            let op = match b.op {
                syn::BinOp::Add(_) => BinaryOp::Add,
                syn::BinOp::Sub(_) => BinaryOp::Sub,
                syn::BinOp::Mul(_) => BinaryOp::Mul,
                _ => {
                    return Err(syn::Error::new_spanned(
                        b.op,
                        format!(
                            "unsupported operator `{}`: expected `+`, `-` or `*` (elementwise, scalars broadcast)",
                            b.op.to_token_stream()
                        ),
                    ))
                }
            };
            DKind::Binary(op, Box::new(parse_expr(&b.left)?), Box::new(parse_expr(&b.right)?))
        }
        syn::Expr::Call(c) => {
            let name = match &*c.func {
                syn::Expr::Path(p) if p.qself.is_none() => single_ident(&p.path).cloned(),
                _ => None,
            };
            let Some(name) = name else {
                return Err(syn::Error::new_spanned(&c.func, "expected a function name such as `exp` or `outer`"));
            };
            let args = c.args.iter().map(parse_expr).collect::<syn::Result<Vec<_>>>()?;
            DKind::Call(name, args)
        }
        _ => {
            return Err(syn::Error::new(e.span(), format!("unsupported expression `{tokens}`: {SUPPORTED}")));
        }
    };
    Ok(DExpr { kind, tokens })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DExpr {
        parse_expr(&syn::parse_str(s).unwrap()).unwrap()
    }

    #[test]
    fn prints_normalised() {
        assert_eq!(p("exp(g) * (I - beta * outer(k, k))").to_string(), "exp(g) * (I - beta * outer(k, k))");
        assert_eq!(p("a - (b - c)").to_string(), "a - (b - c)");
        assert_eq!(p("-(a + 2)").to_string(), "-(a + 2.0)");
    }

    #[test]
    fn rejects_outside_language() {
        for s in ["a / b", "!a", "a.b", "x::y", "1u8", "f[0]"] {
            assert!(parse_expr(&syn::parse_str(s).unwrap()).is_err(), "{s}");
        }
    }
}
