//! # loglinear-runtime: files, backends and their registry
//!
//! * [`io`]: reading inputs from and writing outputs to safetensors files (F64, F32, F16 and BF16 tensors,
//!   converted to and from the f64 [`HostTensor`]s that the rest of the project works on). Outputs are
//!   written atomically: a failure never leaves a partial file behind.
//! * [`Backend`]: something that evaluates a [`VariantIr`] on a [`TensorMap`] and returns `o` (`[B, T, H, V]`).
//!   [`ReferenceBackend`] is the f64 oracle's per-level chunked scan.
//! * [`BackendRegistry`]: backends by name, open to registration (interpreter, Cranelift, ... live in other
//!   crates and register themselves).
//! * [`RuntimeError`]: every failure, each message naming the tensor or argument, its actual value or shape and
//!   what was expected. [`RuntimeError::is_user_error`] separates bad input (exit code 2 in the CLI) from
//!   internal failures (exit code 1).
//!
//! [`HostTensor`]: loglinear_ir::HostTensor
//! [`VariantIr`]: loglinear_ir::VariantIr
//! [`TensorMap`]: loglinear_ir::TensorMap
#![warn(missing_docs)]

pub mod backend;
pub mod error;
pub mod finite;
pub mod fuzz;
pub mod io;

pub use backend::{
    check_chunk_size, f32_tolerance, resolve_chunk_size, Backend, BackendRegistry, InterpreterBackend,
    ReferenceBackend, RunOptions, DEFAULT_TOLERANCE,
};
pub use error::RuntimeError;
pub use finite::check_finite_output;
pub use io::{
    encode_safetensors, parse_safetensors, read_safetensors, remove_partial_files, write_safetensors_atomic, Dtype,
    LoadedTensor, LoadedTensors, OutputFile, SafetensorsFile,
};
