//! Generation: the declaration AST → a validated IR ([`lower`]) → Rust tokens ([`emit`]).

pub mod emit;
pub mod lower;
