//! Preprocessing expressions: a small arena of pure, elementwise-with-broadcast operations over inputs.

use std::fmt;

/// Handle of an expression in a [`crate::VariantIr`]'s arena. Operands always have smaller handles than their users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub u32);

impl ExprId {
    /// The arena index of this handle.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Handle of a declared input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputId(pub u32);

impl InputId {
    /// The index of this input in [`crate::VariantIr::inputs`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One-argument operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `exp(x)`.
    Exp,
    /// `softplus(x) = log(1 + exp(x))`, computed stably.
    Softplus,
    /// `sigmoid(x) = 1 / (1 + exp(-x))`, computed stably.
    Sigmoid,
    /// `l2norm(x) = x / sqrt(Σ x² + 1e-6)` over the vector's channels (fla's convention); vectors only.
    L2Norm,
}

impl UnaryOp {
    /// Every unary operation, in printing order.
    pub const ALL: [UnaryOp; 5] = [UnaryOp::Neg, UnaryOp::Exp, UnaryOp::Softplus, UnaryOp::Sigmoid, UnaryOp::L2Norm];

    /// The operation's name in the text form and the DSL.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::L2Norm => "l2norm",
        }
    }

    /// Looks an operation up by its name.
    pub fn from_name(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Applies a scalar operation (not [`UnaryOp::L2Norm`], which needs the whole vector).
    pub fn apply_scalar(self, x: f64) -> f64 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Softplus => softplus(x),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::L2Norm => unreachable!("l2norm is not a scalar operation"),
        }
    }
}

/// `log(1 + exp(x))` without overflow.
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// `1 / (1 + exp(-x))` without overflow.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The epsilon inside [`UnaryOp::L2Norm`].
pub const L2NORM_EPS: f64 = 1e-6;

/// Two-argument operations (elementwise, with broadcasting of scalars over vectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b` (elementwise product; scalar × vector scales).
    Mul,
}

impl BinaryOp {
    /// The operator's symbol in the text form.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
        }
    }

    /// Applies the operation to two numbers.
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
        }
    }
}

/// One node of the expression arena.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// The value of a declared input.
    Input(InputId),
    /// A literal constant.
    Const(f64),
    /// A unary operation.
    Unary(UnaryOp, ExprId),
    /// A binary operation.
    Binary(BinaryOp, ExprId, ExprId),
}

/// The type of an expression: what it varies over. Scalars broadcast upward
/// (`Const` ⊂ `Head` ⊂ `Token`) and over vectors; vectors of different kinds never mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    /// One number for everything.
    Const,
    /// One number per head: shape `[H]`.
    Head,
    /// One number per token and head: shape `[B, T, H]`.
    Token,
    /// A key-dimension vector per token and head: shape `[B, T, H, K]`.
    Key,
    /// A value-dimension vector per token and head: shape `[B, T, H, V]`.
    Value,
    /// Per-level weights per token and head: shape `[B, T, H, L']`.
    Levels,
}

impl Ty {
    /// Whether values of this type are one number per element of `[B, T, H]` or coarser.
    pub fn is_scalar(self) -> bool {
        matches!(self, Ty::Const | Ty::Head | Ty::Token)
    }

    /// Whether this type has a trailing channel dimension.
    pub fn is_vector(self) -> bool {
        !self.is_scalar()
    }

    fn scalar_rank(self) -> u8 {
        match self {
            Ty::Const => 0,
            Ty::Head => 1,
            _ => 2,
        }
    }

    /// The result type of an elementwise operation on `self` and `other`, or `None` when they do not mix.
    pub fn join(self, other: Ty) -> Option<Ty> {
        match (self.is_scalar(), other.is_scalar()) {
            (true, true) => Some(if self.scalar_rank() >= other.scalar_rank() { self } else { other }),
            (true, false) => Some(other),
            (false, true) => Some(self),
            (false, false) => (self == other).then_some(self),
        }
    }

    /// A human description, used in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Ty::Const => "a constant",
            Ty::Head => "a per-head constant [H]",
            Ty::Token => "a per-token scalar [B,T,H]",
            Ty::Key => "a key-dimension vector [B,T,H,K]",
            Ty::Value => "a value-dimension vector [B,T,H,V]",
            Ty::Levels => "per-level weights [B,T,H,L]",
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ty::Const => "const",
            Ty::Head => "head",
            Ty::Token => "token",
            Ty::Key => "key",
            Ty::Value => "value",
            Ty::Levels => "levels",
        })
    }
}
