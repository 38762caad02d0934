//! # loglinear-ir: the variant algebra
//!
//! A [`VariantIr`] is the *algorithm* of a linear-attention model: its inputs, preprocessing expressions over them,
//! the transition `A_t`, the write `W_t = scale · k vᵀ`, the read-out `q`, and the hierarchy (none: the linear
//! base model; Fenwick: log-linear, spec §2). It says nothing about how it is scheduled, apart from a default
//! chunk size.
//!
//! ## Invariants
//! A `VariantIr` obtained from [`VariantBuilder::finish`] has passed [`validate()`](validate::validate):
//! names are unique identifiers, the expression arena is topologically ordered (operands precede users), every
//! expression is well typed ([`Ty`]), each role holds an expression of the right type, λ exists iff the hierarchy
//! is Fenwick, every input is used, and the chunk size is a power of two in `1..=256`. Later stages may assume
//! all of this.
//!
//! ## Text form
//! `Display` prints a variant as text (see [`print`]); it is what `loglinear describe` shows.
//!
//! ## Semantics
//! [`problem::resolve`] evaluates the preprocessing on concrete tensors and produces per-(batch, head)
//! [`HeadProblem`]s: the one definition of what each transition class does ([`HeadProblem::apply_state`],
//! [`HeadProblem::apply_row`]) that the f64 oracles build on.

pub mod builder;
pub mod builtins;
pub mod check;
pub mod declare;
pub mod eval;
pub mod expr;
pub mod level;
pub mod print;
pub mod problem;
pub mod random;
pub mod tensor;
pub mod types;
pub mod validate;
pub mod variant;

pub use builder::VariantBuilder;
pub use check::{check_decay, check_inputs, InputTensor};
pub use declare::Variant;
pub use expr::{BinaryOp, Expr, ExprId, InputId, Ty, UnaryOp};
pub use problem::{resolve, HeadProblem, HeadTransition, Resolved};
pub use tensor::{relative_error, Dims, HostTensor, InputError, TensorMap};
pub use validate::{validate, ValidationError};
pub use variant::{
    Hierarchy, InputDecl, InputKind, Transition, TransitionClass, VariantIr, Write, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE,
};
