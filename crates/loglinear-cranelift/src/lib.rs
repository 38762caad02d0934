//! # loglinear-cranelift: the Cranelift JIT backend
//!
//! * [`CraneliftBackend`] (`--backend cranelift`): compiles a variant through the pass pipeline, translates every
//!   kernel of the forward kernel-IR program to CLIF ([`translate`]), JIT-compiles it once per specialisation
//!   (variant, K, V, C, L, scan form; [`ProgramKey`]) into a [`KernelCache`], and runs it in f32
//!   ([`CompiledProgram`]): buffers sized from the run's `SizeEnv`, kernels in order, each kernel's grid spread over
//!   `std::thread::available_parallelism()` workers. Nothing is specific to a variant or transition class: the
//!   translator maps each kernel-IR op onto an emitter.
//! * [`JitModule`]: host ISA from `cranelift-native` (`opt_level=none`: the emitters order loads and arithmetic
//!   themselves; the e-graph pass would move pure arithmetic away from its loads and make unrolled matmul loops
//!   spill), FMA / SSE4.1 / AVX detection
//!   ([`IsaInfo`]), compilation of one function at a time into a [`CompiledFn`] (owning its code, `Send + Sync`)
//!   with typed function pointers and compile timing (`tracing::debug!`).
//! * [`emit`]: CLIF emitters for the kernel IR's dense tile ops, parameterised by compile-time sizes, strides and
//!   flags: register-blocked `f32x4` [`emit::emit_matmul`] (A·B, Aᵀ·B, A·Bᵀ, triangular shortcuts),
//!   [`emit::emit_exp`] / [`emit::emit_exp_nonpos`] / [`emit::emit_log`] / softplus / sigmoid in CLIF,
//!   elementwise maps, row scaling, L2 normalisation, cumulative sums, the in-chunk level mask and
//!   unit-lower-triangular forward substitution; [`emit::tile`]: broadcasting binary ops, broadcasts, transposes,
//!   identity, triangular cuts, rows / columns, causal and level masks of any λ depth, row masks and the
//!   per-channel gated causal product (segment sums of raw gates); [`emit::segsum`]: segment and suffix sums.
//! * [`KernelCache`]: compiled kernels keyed by specialisation; each key compiles once.
//! * [`IntraChunkKernel`]: a proof kernel end to end, the log-linear Mamba-2 intra-chunk block (spec §7.2 (1)).
#![warn(missing_docs)]

pub mod backend;
pub mod cache;
pub mod emit;
pub mod error;
pub mod exec;
pub mod intra;
pub mod jit;
pub mod translate;

pub use backend::{CraneliftBackend, ProgramKey};
pub use cache::KernelCache;
pub use error::JitError;
pub use exec::CompiledProgram;
pub use intra::{IntraArgs, IntraChunkKernel, IntraShape};
pub use jit::{CompiledFn, IsaInfo, JitModule, JitOptions, ParamType};
pub use translate::{translate_kernel, KernelCode, Specialisation};
