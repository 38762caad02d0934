//! # loglinear-cranelift: the Cranelift JIT backend
//!
//! * [`CraneliftTarget`] (`--backend cranelift`) implements the backend contract of `loglinear-kernel`: it
//!   translates every kernel of a specialised kernel-IR program to CLIF ([`translate`]), JIT-compiles it
//!   ([`CompiledProgram`], an `Executable` with per-kernel compile statistics) and runs it in f32: buffers sized
//!   from the run's `SizeEnv`, inputs read from typed views (f32, f16, bf16, f64) straight into the kernels' f32
//!   buffers, kernels in order, each kernel's grid spread over worker threads, the output rounded to the
//!   storage type. Nothing is specific to a variant or transition class: the translator maps each kernel-IR op
//!   onto an emitter; the analyses it relies on (zeroing, triangular structure) are the shared ones of
//!   `loglinear_kernel::analysis`. The runtime owns the pipeline and the compiled-kernel cache.
//! * [`JitModule`]: host ISA from `cranelift-native` (`opt_level=none`: the emitters order loads and arithmetic
//!   themselves; the e-graph pass would move pure arithmetic away from its loads and make unrolled matmul loops
//!   spill), FMA / SSE4.1 / AVX detection
//!   ([`IsaInfo`]), compilation of one function at a time into a [`CompiledFn`] (owning its code, `Send + Sync`)
//!   with typed function pointers and compile timing; [`define_function`] / [`define_kernel`] define a function
//!   in any `cranelift_module::Module`, the JIT's or an object file's.
//! * [`object`]: ahead-of-time compilation of every kernel of a program into one position-independent object
//!   file for this CPU ([`compile_object`]), exported as `<prefix>_k<i>_<kernel>` with the JIT's kernel ABI plus
//!   a `<prefix>_sizes` helper — what `loglinear emit --target object` writes for C and Python hosts.
//! * [`emit`]: CLIF emitters for the kernel IR's dense tile ops, parameterised by compile-time sizes, strides and
//!   flags: register-blocked `f32x4` [`emit::emit_matmul`] (A·B, Aᵀ·B, A·Bᵀ, triangular shortcuts),
//!   [`emit::emit_exp`] / [`emit::emit_exp_nonpos`] / [`emit::emit_log`] / softplus / sigmoid in CLIF,
//!   elementwise maps, row scaling, L2 normalisation, cumulative sums, the in-chunk level mask and
//!   unit-lower-triangular forward substitution; [`emit::tile`]: broadcasting binary ops, broadcasts, transposes,
//!   identity, triangular cuts, rows / columns, causal and level masks of any λ depth, row masks and the
//!   per-channel gated causal product (segment sums of raw gates); [`emit::segsum`]: segment and suffix sums.
#![warn(missing_docs)]

pub mod emit;
pub mod error;
pub mod exec;
pub mod jit;
pub mod object;
pub mod target;
pub mod translate;

pub use error::JitError;
pub use exec::CompiledProgram;
pub use jit::{define_function, CompiledFn, DefinedFn, IsaInfo, JitModule, JitOptions, ParamType};
pub use object::{compile_object, ObjectCode, ObjectKernel};
pub use target::CraneliftTarget;
pub use translate::{define_kernel, translate_kernel, KernelCode, KERNEL_PARAMS};
