//! # loglinear: a compiler for log-linear attention variants
//!
//! This is the facade crate: it re-exports the variant algebra ([`ir`]), the f64 oracles ([`oracle`]) and the
//! runtime ([`runtime`]: files, backends), and adds the variant [`registry`], every backend of this build
//! ([`backends`]) and a convenience [`run`] for Rust users. The `loglinear` command is the separate
//! `loglinear-cli` crate, so depending on this one pulls no command-line dependencies.
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
//! A binary of your own can expose your own variants through the same command line with
//! `loglinear_cli::main_with(registry)` (crate `loglinear-cli`).
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
pub use loglinear_kernel as kernel;
pub use loglinear_runtime::{
    check_chunk_size, read_safetensors, write_safetensors_atomic, Backend, Bindings, ConfigOverrides, DType,
    LoadedTensor, LoadedTensors, RunOptions, Runtime, RuntimeError, ScanForm, ScheduleConfig, Tensor, TensorRef,
    DEFAULT_TOLERANCE,
};

pub mod registry;

/// The WGSL backend's target and its adapter list (`--device N` picks one; `LOGLINEAR_DEVICE` too).
pub use loglinear_wgpu::{adapters, WgpuTarget};

/// The cuda backend's target: PTX from `LOGLINEAR_CUDA_KERNELS` (or this build's compiler) run through the CUDA
/// driver.
pub use loglinear_cuda::CudaTarget;

pub use registry::Registry;

/// A runtime with every backend this build provides, in order: the one place where backends from other crates
/// are added. Each runtime has its own compiled-kernel cache; [`runtime`] is the process-wide one.
pub fn backends() -> Runtime {
    let mut runtime = Runtime::with_defaults();
    runtime.register(std::sync::Arc::new(loglinear_cranelift::CraneliftTarget::shared()));
    // Registered even without a GPU: `--backend wgsl` then says how to get an adapter (`availability`).
    runtime.register(std::sync::Arc::new(loglinear_wgpu::WgpuTarget::from_env()));
    // Registered even without a driver: `--backend cuda` then says why it cannot run (`availability`).
    runtime.register(std::sync::Arc::new(cuda_target()));
    #[cfg(feature = "mlir")]
    runtime.register(std::sync::Arc::new(loglinear_mlir::MlirCpuTarget));
    runtime
}

/// Whether this build has the MLIR backends (the `mlir` feature): `mlir-cpu`, PTX, `compile --mlir`.
pub const HAS_MLIR: bool = cfg!(feature = "mlir");

/// The PTX compiler of this build: MLIR's (`loglinear_mlir::MlirPtx`) with the `mlir` feature, else none (then
/// the `cuda` backend loads PTX emitted elsewhere, and `loglinear emit --target ptx` is refused).
pub fn ptx_compiler() -> Option<std::sync::Arc<dyn loglinear_kernel::device::PtxCompiler>> {
    #[cfg(feature = "mlir")]
    return Some(std::sync::Arc::new(loglinear_mlir::MlirPtx));
    #[cfg(not(feature = "mlir"))]
    None
}

/// The stages of a specialised, decomposed program through MLIR (`gpu`: to PTX; else to the LLVM dialect for
/// the CPU), as `(stage, text)`; `None` in a build without the `mlir` feature.
pub fn mlir_stages(
    program: &loglinear_kernel::kernel::Program,
    gpu: bool,
) -> Option<Result<Vec<(&'static str, String)>, String>> {
    #[cfg(feature = "mlir")]
    return Some(loglinear_mlir::dump_stages(program, gpu).map_err(|e| e.to_string()));
    #[cfg(not(feature = "mlir"))]
    {
        let _ = (program, gpu);
        None
    }
}

/// The specialised, decomposed program compiled into a host object file through MLIR and LLVM (the contract of
/// [`loglinear_kernel::host::ObjectCode`], symbols under `prefix`); `None` in a build without the `mlir` feature.
pub fn mlir_object(
    program: &loglinear_kernel::kernel::Program,
    prefix: &str,
) -> Option<Result<loglinear_kernel::host::ObjectCode, String>> {
    #[cfg(feature = "mlir")]
    return Some(loglinear_mlir::compile_object(program, prefix).map_err(|e| e.to_string()));
    #[cfg(not(feature = "mlir"))]
    {
        let _ = (program, prefix);
        None
    }
}

/// The `cuda` backend as [`backends`] registers it: [`CudaTarget::from_env`] (kernels directory from
/// `LOGLINEAR_CUDA_KERNELS`, device from `LOGLINEAR_DEVICE`, code-generation mode from `LOGLINEAR_CUDA_PREPARE=1`)
/// with this build's PTX compiler ([`ptx_compiler`]) when it has one.
pub fn cuda_target() -> CudaTarget {
    let cuda = CudaTarget::from_env();
    match ptx_compiler() {
        Some(c) => cuda.with_compiler(c),
        None => cuda,
    }
}

/// The process-wide runtime ([`backends`], made once): its kernel cache serves every run of the process.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(backends)
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
    let b = runtime().get(backend)?;
    if let Some(c) = chunk_size {
        check_chunk_size(c)?;
    }
    let o = b.run_f64(variant, inputs, &RunOptions::with_chunk_size(chunk_size))?;
    loglinear_runtime::check_finite_output("o", &o, DType::F64, inputs)?;
    Ok(o)
}

pub use loglinear_ir::relative_error;
