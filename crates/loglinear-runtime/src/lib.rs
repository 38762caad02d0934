//! # loglinear-runtime: the pipeline driver, files and backends
//!
//! * [`Runtime`] ([`engine`]): the backends by name — the f64 oracle `reference` and every kernel-IR
//!   [`Target`](loglinear_kernel::Target) (`interpreter`, `interpreter-f32`, and those registered by other
//!   crates such as Cranelift) — the pass pipeline and the compiled-kernel cache ([`cache`]). A run checks its
//!   typed inputs on their own dtype, picks the [`ScheduleConfig`], compiles through the cache (no recompile
//!   for a new B, T, H or λ depth) and returns `o` in the storage type.
//! * [`io`]: safetensors files in (memory-mapped, header checked before anything is allocated, typed views) and
//!   out (never over a non-regular file or an input, atomically).
//! * [`finite`]: the non-finite rule for outputs.
//! * [`tune`]: the autotuner (`loglinear tune`) and its persistent cache, which runs consult when their options
//!   leave the configuration to the runtime.
//! * [`RuntimeError`]: every failure, each message naming the tensor or argument, its actual value or shape and
//!   what was expected. [`RuntimeError::is_user_error`] separates bad input (exit code 2 in the CLI) from
//!   internal failures (exit code 1).
#![warn(missing_docs)]

pub mod cache;
pub mod decode;
pub mod engine;
pub mod error;
pub mod finite;
pub mod fuzz;
pub mod io;
pub mod tune;
pub mod varlen;

pub use decode::{DecodeState, ResidentState};
pub use engine::{
    check_chunk_size, f32_tolerance, size_env, views, Backend, BackendKind, Ran, ResidentInputs, RunOptions, Runtime,
    DEFAULT_TOLERANCE, HALF_TOLERANCE,
};
pub use error::RuntimeError;
pub use finite::{check_finite_output, check_finite_tensor};
pub use io::{
    encode_safetensors, encode_tensors, parse_safetensors, read_safetensors, remove_partial_files, safetensors_header,
    write_safetensors_atomic, LoadedTensor, LoadedTensors, OutputFile, SafetensorsFile,
};
pub use loglinear_kernel::{
    Bindings, ConfigOverrides, DType, DeviceTensor, ScanForm, ScheduleConfig, Tensor, TensorRef,
};
pub use tune::{TuneCache, TuneKey, TuneReport, TuneSpec};
pub use varlen::{check_cu_seqlens, CU_SEQLENS};
