//! # loglinear: a compiler for log-linear attention variants
//!
//! This is the facade crate: it re-exports the variant algebra ([`ir`]), the f64 oracles ([`oracle`]) and the
//! runtime ([`runtime`]: files, backends), and adds the variant [`registry`], a convenience [`run`] for Rust
//! users, the [`demo`] (every log-linear variant on every backend against the naive oracle) and the [`cli`]
//! behind the `loglinear` command.
//!
//! ```
//! use loglinear::{registry::Registry, random::random_inputs};
//!
//! let reg = Registry::builtin();
//! let v = reg.get("loglinear_mamba2").unwrap();
//! let x = random_inputs(v, (1, 10, 1, 4, 3), 0, 42);
//! let o = loglinear::run(v, "reference", &x, Some(4)).unwrap();
//! assert_eq!(o.shape, vec![1, 10, 1, 3]);
//! ```
//!
//! A binary of your own can expose your own variants through the same command line:
//!
//! ```no_run
//! let mut reg = loglinear::registry::Registry::builtin();
//! // reg.register(&MyVariant);
//! std::process::exit(loglinear::cli::main_with(reg));
//! ```
#![warn(missing_docs)]

pub use loglinear_ir as ir;
/// Declares a variant: see the `loglinear-macros` crate and `docs/DSL.md`.
pub use loglinear_macros::log_linear;
pub use loglinear_oracle as oracle;
pub use loglinear_runtime as runtime;

pub use loglinear_ir::{
    builtins, check_inputs, random, Dims, Hierarchy, HostTensor, InputDecl, InputError, InputKind, TensorMap,
    Transition, TransitionClass, Variant, VariantBuilder, VariantIr, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE,
};
pub use loglinear_runtime::{
    check_chunk_size, read_safetensors, write_safetensors_atomic, Backend, BackendRegistry, Dtype, LoadedTensor,
    LoadedTensors, ReferenceBackend, RunOptions, RuntimeError, DEFAULT_TOLERANCE,
};

pub mod cli;
pub mod demo;
pub mod registry;

pub use registry::Registry;

/// Every backend this build provides, in order: the one place where backends from other crates are added.
pub fn backends() -> BackendRegistry {
    let mut registry = BackendRegistry::with_defaults();
    registry.register(Box::new(loglinear_cranelift::CraneliftBackend::shared()));
    registry
}

/// Runs `variant` on `inputs` with the backend named `backend` (one of [`backends`]) and returns `o`
/// (`[B, T, H, V]`). `chunk_size` `None` uses the variant's default.
///
/// # Errors
/// [`RuntimeError::UnknownBackend`], [`RuntimeError::ChunkSize`], [`RuntimeError::Input`] for inputs that do not
/// fit the variant, [`RuntimeError::NonFiniteOutput`] when finite inputs give a NaN or ±Inf in `o` (they are out
/// of the representable range), or the backend's own failure.
pub fn run(
    variant: &VariantIr,
    backend: &str,
    inputs: &TensorMap,
    chunk_size: Option<usize>,
) -> Result<HostTensor, RuntimeError> {
    let registry = backends();
    let b = registry.get(backend)?;
    if let Some(c) = chunk_size {
        check_chunk_size(c)?;
    }
    let o = b.run(variant, inputs, &RunOptions { chunk_size })?;
    loglinear_runtime::check_finite_output("o", &o, Dtype::F64, inputs)?;
    Ok(o)
}

pub use loglinear_ir::relative_error;
