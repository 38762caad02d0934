//! # loglinear-cranelift: Cranelift JIT backend groundwork
//!
//! * [`JitModule`]: host ISA from `cranelift-native` (`opt_level=speed`), FMA / SSE4.1 / AVX detection
//!   ([`IsaInfo`]), compilation of one function at a time into a [`CompiledFn`] (owning its code, `Send + Sync`)
//!   with typed function pointers and compile timing (`tracing::debug!`).
//! * [`emit`]: CLIF emitters for the kernel IR's dense tile ops, parameterised by compile-time sizes, strides and
//!   flags: register-blocked `f32x4` [`emit::emit_matmul`] (A·B, Aᵀ·B, A·Bᵀ, triangular shortcuts),
//!   [`emit::emit_exp`] / [`emit::emit_exp_nonpos`] / [`emit::emit_log`] / softplus / sigmoid in CLIF,
//!   elementwise maps, row scaling, L2 normalisation, cumulative sums, the in-chunk level mask and
//!   unit-lower-triangular forward substitution.
//! * [`KernelCache`]: compiled kernels keyed by specialisation; each key compiles once.
//! * [`IntraChunkKernel`]: a proof kernel end to end, the log-linear Mamba-2 intra-chunk block (spec §7.2 (1)).
#![warn(missing_docs)]

pub mod cache;
pub mod emit;
pub mod error;
pub mod intra;
pub mod jit;

pub use cache::KernelCache;
pub use error::JitError;
pub use intra::{IntraArgs, IntraChunkKernel, IntraShape};
pub use jit::{CompiledFn, IsaInfo, JitModule, JitOptions, ParamType};
