//! Classification: the declaration AST → the builder calls that construct its [`VariantIr`].
//!
//! Lowering runs the real [`VariantBuilder`] at expansion time, recording every call that creates an
//! expression ([`Op`]); [`super::emit`] replays exactly these calls in the generated `Variant::ir`, so the
//! IR a program sees at run time is the one validated here (one semantics, no second interpreter).
//! Everything outside the algebra is rejected with an error spanning the offending sub-expression.

use std::collections::HashMap;

use loglinear_ir::{
    BinaryOp, ExprId, InputKind, Transition, Ty, UnaryOp, ValidationError, VariantBuilder, VariantIr, Write,
    DEFAULT_CHUNK_SIZE,
};
use quote::ToTokens;

use crate::parse::{Args, DExpr, DKind, Decl, Role, Stmt};

/// One builder call that creates an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `b.input(name, kind)`.
    Input(String, InputKind),
    /// `b.constant(c)`.
    Const(f64),
    /// `b.unary(op, a)`.
    Unary(UnaryOp, ExprId),
    /// `b.binary(op, a, b)`.
    Binary(BinaryOp, ExprId, ExprId),
}

/// A classified declaration: the builder calls and the roles, plus the validated IR they build.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// Expression-creating calls, in order, each with the handle it returns.
    pub ops: Vec<(ExprId, Op)>,
    /// The read-out.
    pub query: ExprId,
    /// The transition.
    pub transition: Transition,
    /// The write.
    pub write: Write,
    /// λ, when the variant is log-linear.
    pub fenwick: Option<ExprId>,
    /// The default chunk size.
    pub chunk: usize,
    /// The IR, built and validated at expansion time.
    pub ir: VariantIr,
}

/// The transitions the algebra supports, for error messages.
pub const TRANSITIONS: &str = "expected one of `I`, `exp(g) * I` (or `exp(g)`), `diag(exp(g))`, \
                               `I - beta * outer(k, k)`, `exp(g) * (I - beta * outer(k, k))` \
                               (g and beta scalars; in `diag(exp(g))` g is a key-dimension vector)";

const WRITES: &str = "expected `outer(k, v)` or `s * outer(k, v)` (k a key-dimension vector, v a value-dimension \
                      vector, s a scalar)";

const SCALAR: &str = "a scalar (`Scalar` [B,T,H], `Head` [H] or a constant)";
const KEY: &str = "a key-dimension vector (`Key` or `Channel`) [B,T,H,K]";
const VALUE: &str = "a value-dimension vector (`Value`) [B,T,H,V]";
const LEVELS: &str = "per-level weights (`Levels`) [B,T,H,L]";

fn err<T>(at: impl ToTokens, msg: impl std::fmt::Display) -> syn::Result<T> {
    Err(syn::Error::new_spanned(at, msg))
}

struct Lowerer {
    b: VariantBuilder,
    ops: Vec<(ExprId, Op)>,
    tys: Vec<Ty>,
    env: HashMap<String, ExprId>,
    names: Vec<String>,
    /// The delta rule's erasure key as written (the first argument of its `outer(k, k)`).
    erase_at: Option<DExpr>,
    /// The write's scale, key and value as written.
    write_at: Option<(Option<DExpr>, DExpr, DExpr)>,
}

impl Lowerer {
    fn push(&mut self, op: Op, ty: Ty) -> ExprId {
        let id = match &op {
            Op::Input(n, k) => self.b.input(n.clone(), *k),
            Op::Const(c) => self.b.constant(*c),
            Op::Unary(o, a) => self.b.unary(*o, *a),
            Op::Binary(o, a, c) => self.b.binary(*o, *a, *c),
        };
        if id.index() == self.tys.len() {
            self.tys.push(ty);
            self.ops.push((id, op));
        }
        id
    }

    fn ty(&self, id: ExprId) -> Ty {
        self.tys[id.index()]
    }

    /// The value of `id` when it reads no input, folded with the IR's own scalar operations (as the validator's
    /// `constant_value` does on the finished IR).
    /// One pass over the calls up to `id`, so shared sub-expressions are folded once.
    fn constant(&self, id: ExprId) -> Option<f64> {
        let mut vals: Vec<Option<f64>> = Vec::with_capacity(id.index() + 1);
        for (_, op) in &self.ops[..=id.index()] {
            vals.push(match op {
                Op::Input(..) | Op::Unary(UnaryOp::L2Norm, _) => None,
                Op::Const(c) => Some(*c),
                Op::Unary(o, a) => vals[a.index()].map(|x| o.apply_scalar(x)),
                Op::Binary(o, a, b) => vals[a.index()].zip(vals[b.index()]).map(|(x, y)| o.apply(x, y)),
            });
        }
        vals[id.index()]
    }

    /// Lowers `e` and checks its type with `ok`; `role` and `expected` word the error.
    fn expect(&mut self, e: &DExpr, ok: fn(Ty) -> bool, role: &str, expected: &str) -> syn::Result<ExprId> {
        let id = self.expr(e)?;
        let ty = self.ty(id);
        if ok(ty) {
            Ok(id)
        } else {
            let hint = if ty == Ty::Key && expected == SCALAR && role.contains("log decay") {
                "; for a per-channel decay write `diag(exp(g))`"
            } else {
                ""
            };
            err(e, format!("the {role} must be {expected}, but `{e}` is {}{hint}", ty.describe()))
        }
    }

    fn one_arg<'a>(&self, call: &DExpr, f: &str, args: &'a [DExpr]) -> syn::Result<&'a DExpr> {
        match args {
            [a] => Ok(a),
            _ => err(call, format!("`{f}(..)` takes exactly one argument, found {}", args.len())),
        }
    }

    /// A preprocessing expression.
    fn expr(&mut self, e: &DExpr) -> syn::Result<ExprId> {
        match &e.kind {
            DKind::Name(n) => {
                let s = n.to_string();
                if let Some(id) = self.env.get(&s) {
                    return Ok(*id);
                }
                match s.as_str() {
                    "I" => err(e, "`I` (the identity matrix) is only allowed in `transition(..)`"),
                    "none" => err(e, "`none` is only allowed in `hierarchy(none)`"),
                    _ => err(
                        e,
                        format!(
                            "unknown name `{s}`: expected an input or a `let` binding declared above (known: {})",
                            self.names.join(", ")
                        ),
                    ),
                }
            }
            DKind::Lit(c) => Ok(self.push(Op::Const(*c), Ty::Const)),
            DKind::Neg(a) => {
                if let DKind::Lit(c) = a.kind {
                    return Ok(self.push(Op::Const(-c), Ty::Const));
                }
                let a = self.expr(a)?;
                Ok(self.push(Op::Unary(UnaryOp::Neg, a), self.ty(a)))
            }
            DKind::Binary(op, a, c) => {
                let (ia, ic) = (self.expr(a)?, self.expr(c)?);
                let (ta, tc) = (self.ty(ia), self.ty(ic));
                match ta.join(tc) {
                    Some(t) => Ok(self.push(Op::Binary(*op, ia, ic), t)),
                    None => err(
                        e,
                        format!(
                            "dimension mismatch in `{e}`: `{a}` is {} but `{c}` is {}; expected operands of the same \
                             kind (scalars broadcast over vectors, vectors of different dimensions do not mix)",
                            ta.describe(),
                            tc.describe()
                        ),
                    ),
                }
            }
            DKind::Call(f, args) => {
                let name = f.to_string();
                let op = match name.as_str() {
                    "exp" => UnaryOp::Exp,
                    "softplus" => UnaryOp::Softplus,
                    "sigmoid" => UnaryOp::Sigmoid,
                    "l2norm" => UnaryOp::L2Norm,
                    "outer" => {
                        return err(
                            e,
                            "`outer(..)` is only allowed in `write(..)` and in the delta-rule transition \
                             `I - beta * outer(k, k)`",
                        )
                    }
                    "diag" => return err(e, "`diag(..)` is only allowed as the transition `diag(exp(g))`"),
                    "fenwick" => return err(e, "`fenwick(..)` is only allowed as `hierarchy(fenwick(lam))`"),
                    _ => {
                        return err(
                            f,
                            format!("unknown function `{name}`: expected `exp`, `softplus`, `sigmoid` or `l2norm`"),
                        )
                    }
                };
                let a = self.one_arg(e, &name, args)?;
                let ia = self.expr(a)?;
                let t = self.ty(ia);
                if op == UnaryOp::L2Norm && !matches!(t, Ty::Key | Ty::Value) {
                    return err(a, format!("l2norm needs a key or value vector, but `{a}` is {}", t.describe()));
                }
                Ok(self.push(Op::Unary(op, ia), t))
            }
        }
    }

    fn is_identity(&self, e: &DExpr) -> bool {
        e.as_name().is_some_and(|n| n == "I")
    }

    /// `exp(g)` as a decay factor: lowers and returns `g`.
    fn log_decay(&mut self, e: &DExpr) -> syn::Result<ExprId> {
        let args = e.as_call("exp").expect("caller checked");
        let g = self.one_arg(e, "exp", args)?;
        let id = self.expect(g, Ty::is_scalar, "log decay g in `exp(g)`", SCALAR)?;
        match self.constant(id) {
            Some(c) if c > 0.0 || c.is_nan() => {
                let what = if c.is_nan() {
                    format!("`{g}` is the constant NaN, which is no decay")
                } else {
                    format!(
                        "`{g}` is the constant {c}: its decay factor exp({c}) ≈ {:.4} is above 1 whatever the inputs",
                        c.exp()
                    )
                };
                let neg = match &g.kind {
                    DKind::Neg(x) => x.to_string(),
                    _ => DExpr { kind: DKind::Neg(Box::new(g.clone())), tokens: Default::default() }.to_string(),
                };
                err(
                    g,
                    format!(
                        "positive constant log decay: the log decay g in `exp(g)` must be ≤ 0 (decay factors in (0, 1]), \
                         but {what}, so the variant could never run; expected a constant ≤ 0 (e.g. `exp({neg})`) or a \
                         decay input"
                    ),
                )
            }
            _ => Ok(id),
        }
    }

    /// `I - beta * outer(k, k)` (also `I - outer(k, k)`, β = 1): `Ok(None)` when `e` is not a difference.
    fn delta_core(&mut self, e: &DExpr) -> syn::Result<Option<(ExprId, ExprId)>> {
        let DKind::Binary(BinaryOp::Sub, a, b) = &e.kind else {
            return Ok(None);
        };
        if !self.is_identity(a) {
            return err(a, format!("expected `I` in `I - beta * outer(k, k)`, found `{a}`; {TRANSITIONS}"));
        }
        let (beta, outer) = match &b.kind {
            DKind::Binary(BinaryOp::Mul, x, y) if y.as_call("outer").is_some() => (Some(&**x), &**y),
            DKind::Binary(BinaryOp::Mul, x, y) if x.as_call("outer").is_some() => (Some(&**y), &**x),
            _ if b.as_call("outer").is_some() => (None, &**b),
            _ => return err(b, format!("expected `beta * outer(k, k)` after `I -`, found `{b}`; {TRANSITIONS}")),
        };
        let beta = match beta {
            Some(x) => self.expect(x, Ty::is_scalar, "delta-rule strength beta in `I - beta * outer(k, k)`", SCALAR)?,
            None => self.push(Op::Const(1.0), Ty::Const),
        };
        let args = outer.as_call("outer").expect("matched above");
        let [k1, k2] = args else {
            return err(outer, format!("`outer(..)` takes two arguments, found {}", args.len()));
        };
        let role = "delta-rule key k in `outer(k, k)`";
        let (i1, i2) = (self.expect(k1, |t| t == Ty::Key, role, KEY)?, self.expect(k2, |t| t == Ty::Key, role, KEY)?);
        if i1 != i2 {
            return err(
                outer,
                format!("the delta rule erases along one key: expected `outer(k, k)` with the same key twice, found `{outer}`"),
            );
        }
        self.erase_at = Some(k1.clone());
        Ok(Some((beta, i1)))
    }

    fn transition(&mut self, e: &DExpr) -> syn::Result<Transition> {
        if self.is_identity(e) {
            return Ok(Transition::Identity);
        }
        if e.as_call("exp").is_some() {
            return Ok(Transition::ScalarDecay { log_decay: self.log_decay(e)? });
        }
        if let Some(args) = e.as_call("diag") {
            let inner = self.one_arg(e, "diag", args)?;
            let Some(exp_args) = inner.as_call("exp") else {
                return err(inner, format!("expected `exp(g)` inside `diag(..)`, found `{inner}`; {TRANSITIONS}"));
            };
            let g = self.one_arg(inner, "exp", exp_args)?;
            let role = "per-channel log decay g in `diag(exp(g))`";
            return Ok(Transition::DiagonalDecay { log_decay: self.expect(g, |t| t == Ty::Key, role, KEY)? });
        }
        match &e.kind {
            DKind::Binary(BinaryOp::Mul, a, b) => {
                let (decay, mat) = if a.as_call("exp").is_some() {
                    (&**a, &**b)
                } else if b.as_call("exp").is_some() {
                    (&**b, &**a)
                } else {
                    return err(
                        e,
                        format!("unsupported transition `{e}`: a product must be `exp(g) * I` or `exp(g) * (I - beta * outer(k, k))`; {TRANSITIONS}"),
                    );
                };
                let g = self.log_decay(decay)?;
                if self.is_identity(mat) {
                    return Ok(Transition::ScalarDecay { log_decay: g });
                }
                match self.delta_core(mat)? {
                    Some((beta, key)) => Ok(Transition::Delta { log_decay: Some(g), beta, key }),
                    None => err(
                        mat,
                        format!("unsupported matrix `{mat}` in transition `{e}`: after `exp(g) *` expected `I` or `(I - beta * outer(k, k))`"),
                    ),
                }
            }
            DKind::Binary(BinaryOp::Sub, ..) => {
                let (beta, key) = self.delta_core(e)?.expect("a difference");
                Ok(Transition::Delta { log_decay: None, beta, key })
            }
            _ => err(e, format!("unsupported transition `{e}`: {TRANSITIONS}")),
        }
    }

    fn write(&mut self, e: &DExpr) -> syn::Result<Write> {
        let (scale, outer) = match &e.kind {
            _ if e.as_call("outer").is_some() => (None, e),
            DKind::Binary(BinaryOp::Mul, x, y) if y.as_call("outer").is_some() => (Some(&**x), &**y),
            DKind::Binary(BinaryOp::Mul, x, y) if x.as_call("outer").is_some() => (Some(&**y), &**x),
            _ => return err(e, format!("unsupported write `{e}`: {WRITES}")),
        };
        let scale_at = scale;
        let scale = match scale {
            Some(s) => Some(self.expect(s, Ty::is_scalar, "write scale s in `s * outer(k, v)`", SCALAR)?),
            None => None,
        };
        let args = outer.as_call("outer").expect("matched above");
        let [k, v] = args else {
            return err(outer, format!("`outer(..)` takes two arguments, found {}; {WRITES}", args.len()));
        };
        let key = self.expect(k, |t| t == Ty::Key, "key k of the write `outer(k, v)`", KEY)?;
        let value = self.expect(v, |t| t == Ty::Value, "value v of the write `outer(k, v)`", VALUE)?;
        self.write_at = Some((scale_at.cloned(), k.clone(), v.clone()));
        Ok(Write { scale, key, value })
    }

    fn hierarchy(&mut self, e: &DExpr) -> syn::Result<Option<ExprId>> {
        if e.as_name().is_some_and(|n| n == "none") {
            return Ok(None);
        }
        let Some(args) = e.as_call("fenwick") else {
            return err(e, format!("unsupported hierarchy `{e}`: expected `fenwick(lam)` or `none`"));
        };
        let lam = self.one_arg(e, "fenwick", args)?;
        Ok(Some(self.expect(lam, |t| t == Ty::Levels, "λ in `fenwick(lam)`", LEVELS)?))
    }
}

/// Classifies and validates a declaration.
pub fn lower(decl: &Decl, args: &Args) -> syn::Result<Lowered> {
    let name = decl.name.to_string();
    let mut l = Lowerer {
        b: VariantBuilder::new(name.clone()),
        ops: Vec::new(),
        tys: Vec::new(),
        env: HashMap::new(),
        names: Vec::new(),
        erase_at: None,
        write_at: None,
    };
    let reserved = |n: &syn::Ident| -> syn::Result<()> {
        if n == "I" || n == "none" {
            err(n, format!("`{n}` is a keyword of the DSL: expected another name"))
        } else {
            Ok(())
        }
    };
    for p in &decl.params {
        reserved(&p.name)?;
        let id = l.push(Op::Input(p.name.to_string(), p.kind), p.kind.ty());
        l.env.insert(p.name.to_string(), id);
        l.names.push(p.name.to_string());
    }
    let mut query = None;
    let mut transition = None;
    let mut write = None;
    let mut hierarchy = None;
    for s in &decl.stmts {
        match s {
            Stmt::Let { name, value } => {
                reserved(name)?;
                let id = l.expr(value)?;
                l.env.insert(name.to_string(), id);
                if !l.names.contains(&name.to_string()) {
                    l.names.push(name.to_string());
                }
            }
            Stmt::Role { role, keyword, arg } => {
                let seen = match role {
                    Role::Query => query.is_some(),
                    Role::Transition => transition.is_some(),
                    Role::Write => write.is_some(),
                    Role::Hierarchy => hierarchy.is_some(),
                };
                if seen {
                    return err(keyword, format!("duplicate `{keyword}(..)`: expected it at most once"));
                }
                match role {
                    Role::Query => {
                        let q = l.expect(arg, |t| t == Ty::Key, "query", KEY)?;
                        query = Some(q);
                    }
                    Role::Transition => transition = Some(l.transition(arg)?),
                    Role::Write => write = Some(l.write(arg)?),
                    Role::Hierarchy => hierarchy = Some(l.hierarchy(arg)?),
                }
            }
        }
    }
    let Some(query) = query else {
        return err(
            &decl.name,
            format!("variant `{name}` has no read-out: expected a `query(q);` statement (q a key-dimension vector)"),
        );
    };
    let Some(write) = write else {
        return err(
            &decl.name,
            format!("variant `{name}` has no write: expected `write(outer(k, v));` or `write(beta * outer(k, v));`"),
        );
    };
    let transition = transition.unwrap_or(Transition::Identity);
    if let Transition::Delta { key, .. } = &transition {
        // The builder stores equal expressions once, so equal handles are structurally equal keys: the same
        // inputs under the same operations and constants, however they were spelled (`let` bindings included).
        if *key != write.key {
            let (Some(erase), Some((scale, wk, wv))) = (l.erase_at.clone(), l.write_at.clone()) else {
                unreachable!("a delta transition and a write were lowered")
            };
            // Spelling the erasure key again in the write is a fix only if its names still mean what they meant
            // in the transition (a later `let` may have shadowed one).
            let hint = if l.expr(&erase).ok() == Some(*key) {
                match scale {
                    Some(s) => format!("e.g. `write({s} * outer({erase}, {wv}))`"),
                    None => format!("e.g. `write(outer({erase}, {wv}))`"),
                }
            } else {
                format!("a `let` after the transition rebinds a name in `{erase}`, so bind the key once under a name that is not rebound")
            };
            return err(
                &wk,
                format!(
                    "the write key `{wk}` is not the delta rule's erasure key `{erase}` (in `outer({erase}, {erase})`): \
                     the chunked WY/UT schedule (spec §5.4) needs the write key to be the erasure key; use the same key \
                     expression in `transition(..)` and `write(..)`; {hint}"
                ),
            );
        }
    }
    let fenwick = hierarchy.flatten();
    if fenwick.is_none() {
        if let Some(p) = decl.params.iter().find(|p| p.kind == InputKind::Levels) {
            return err(
                &p.name,
                format!("input `{}` is per-level weights (`Levels`) but the variant has no hierarchy: expected `hierarchy(fenwick({}));`, or remove the input", p.name, p.name),
            );
        }
    }
    let chunk = args.chunk.as_ref().map(|c| c.0).unwrap_or(DEFAULT_CHUNK_SIZE);
    l.b.query(query).transition(transition.clone()).write(write.scale, write.key, write.value);
    if let Some(lam) = fenwick {
        l.b.fenwick(lam);
    }
    l.b.chunk_size(chunk);
    let ir = l.b.finish().or_else(|e| {
        let param = |n: &str| decl.params.iter().find(|p| p.name == n).map(|p| p.name.to_token_stream());
        let at = match &e {
            ValidationError::UnusedInput { name, .. } => param(name),
            ValidationError::LevelsWithoutHierarchy { name, .. } | ValidationError::DuplicateInput { name, .. } => {
                param(name)
            }
            _ => None,
        };
        let msg = match &e {
            ValidationError::UnusedInput { name, .. } => format!(
                "input `{name}` is declared but never used: expected every input to feed the query, transition, write or hierarchy"
            ),
            _ => e.to_string(),
        };
        err(at.unwrap_or_else(|| decl.name.to_token_stream()), msg)
    })?;
    Ok(Lowered { ops: l.ops, query, transition, write, fenwick, chunk, ir })
}
