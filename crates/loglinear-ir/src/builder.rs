//! [`VariantBuilder`]: the one way variants are constructed (by hand, by the built-ins and by the
//! `#[log_linear]` macro's expansion). [`VariantBuilder::finish`] runs the validator.

use crate::expr::{BinaryOp, Expr, ExprId, InputId, UnaryOp};
use crate::validate::{validate, ValidationError};
use crate::variant::{Hierarchy, InputDecl, InputKind, Transition, VariantIr, Write, DEFAULT_CHUNK_SIZE};

/// Incremental constructor of a [`VariantIr`].
#[derive(Clone, Debug)]
pub struct VariantBuilder {
    name: String,
    inputs: Vec<InputDecl>,
    exprs: Vec<Expr>,
    query: Option<ExprId>,
    transition: Option<Transition>,
    write: Option<Write>,
    hierarchy: Hierarchy,
    chunk_size: usize,
}

impl VariantBuilder {
    /// Starts a variant named `name` (identity transition, no hierarchy, chunk size 64 until set).
    pub fn new(name: impl Into<String>) -> Self {
        VariantBuilder {
            name: name.into(),
            inputs: Vec::new(),
            exprs: Vec::new(),
            query: None,
            transition: None,
            write: None,
            hierarchy: Hierarchy::None,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    fn push(&mut self, e: Expr) -> ExprId {
        if let Some(i) = self.exprs.iter().position(|x| *x == e) {
            return ExprId(i as u32);
        }
        self.exprs.push(e);
        ExprId(self.exprs.len() as u32 - 1)
    }

    /// Declares an input and returns the expression reading it.
    pub fn input(&mut self, name: impl Into<String>, kind: InputKind) -> ExprId {
        self.inputs.push(InputDecl { name: name.into(), kind });
        let id = InputId(self.inputs.len() as u32 - 1);
        self.push(Expr::Input(id))
    }

    /// A constant.
    pub fn constant(&mut self, c: f64) -> ExprId {
        self.push(Expr::Const(c))
    }

    /// A unary operation.
    pub fn unary(&mut self, op: UnaryOp, a: ExprId) -> ExprId {
        self.push(Expr::Unary(op, a))
    }

    /// A binary operation.
    pub fn binary(&mut self, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId {
        self.push(Expr::Binary(op, a, b))
    }

    /// `a * b`.
    pub fn mul(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.binary(BinaryOp::Mul, a, b)
    }

    /// Sets the read-out vector `q_t`.
    pub fn query(&mut self, q: ExprId) -> &mut Self {
        self.query = Some(q);
        self
    }

    /// Sets the transition.
    pub fn transition(&mut self, t: Transition) -> &mut Self {
        self.transition = Some(t);
        self
    }

    /// Sets the write `scale · k vᵀ`.
    pub fn write(&mut self, scale: Option<ExprId>, key: ExprId, value: ExprId) -> &mut Self {
        self.write = Some(Write { scale, key, value });
        self
    }

    /// Makes the variant log-linear with weights λ.
    pub fn fenwick(&mut self, lambda: ExprId) -> &mut Self {
        self.hierarchy = Hierarchy::Fenwick { lambda };
        self
    }

    /// Sets the default chunk size.
    pub fn chunk_size(&mut self, c: usize) -> &mut Self {
        self.chunk_size = c;
        self
    }

    /// Validates and returns the variant.
    pub fn finish(&self) -> Result<VariantIr, ValidationError> {
        let missing = |part| ValidationError::Missing { variant: self.name.clone(), part };
        let v = VariantIr {
            name: self.name.clone(),
            inputs: self.inputs.clone(),
            exprs: self.exprs.clone(),
            query: self.query.ok_or_else(|| missing("query (read-out)"))?,
            transition: self.transition.clone().unwrap_or(Transition::Identity),
            write: self.write.clone().ok_or_else(|| missing("write"))?,
            hierarchy: self.hierarchy.clone(),
            chunk_size: self.chunk_size,
        };
        validate(&v)?;
        Ok(v)
    }
}
