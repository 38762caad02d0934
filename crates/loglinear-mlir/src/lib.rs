//! MLIR backends of loglinear (issue 12), behind the facade's `mlir` feature.
//!
//! The plan, in the order it is built:
//! * [`MlirContext`]: one MLIR context with every upstream dialect, the LLVM translations and the passes
//!   registered; modules are built through melior's builder API (func, scf, arith, math, memref, vector; gpu and
//!   nvvm for NVIDIA) — never from string templates — and verified before and after lowering.
//! * [`lower`]: the named pass pipelines from the built module to the LLVM dialect (CPU) and to PTX (NVIDIA,
//!   `sm_90`, `+ptx80`, PTX text since `ptxas` is not on the build machine).
//! * [`Jit`]: MLIR's ExecutionEngine over a lowered module; entry points use the C interface
//!   (`llvm.emit_c_interface`: one [`MemRef1`] descriptor per buffer).
//! * [`cpu`]: specialised, decomposed kernel IR (the WGSL backend's input) → one MLIR function per kernel;
//!   [`CpuProgram`] lowers and JIT-compiles them and runs the grids on all cores; [`MlirCpuTarget`] is the
//!   `mlir-cpu` backend (registered by the facade's `mlir` feature).
//! * [`gpu`]: the same translation under `gpu.module` for NVIDIA (`sm_90` PTX, the contract of
//!   `loglinear_kernel::device`), loaded by the `cuda` backend.
//! * [`object`]: ahead-of-time object files for the host CPU through LLVM's back end (`emit --target object
//!   --codegen mlir`), with the contract of `loglinear_kernel::host::ObjectCode`.

mod context;
pub mod exec;
pub mod gpu;
pub mod jit;
pub mod lower;
pub mod object;
mod target;
pub mod translate;

pub use context::MlirContext;
pub use exec::CpuProgram;
pub use gpu::{compile_ptx, dump_stages, MlirPtx, PtxModule};
pub use jit::{Jit, MemRef1};
pub use object::compile_object;
pub use target::{MlirCpuTarget, NAME};

/// Why MLIR could not build, lower or run a module.
#[derive(Debug, thiserror::Error)]
pub enum MlirError {
    /// A module failed verification (the printed operation is given).
    #[error("MLIR verification failed: {0}")]
    Verify(String),
    /// A pass pipeline could not be parsed or failed.
    #[error("MLIR pass pipeline `{pipeline}` failed: {message}")]
    Pipeline {
        /// The pipeline.
        pipeline: String,
        /// melior's error.
        message: String,
    },
    /// The JIT could not find or run an entry point.
    #[error("MLIR JIT: {0}")]
    Jit(String),
    /// Code generation found something it cannot express.
    #[error("MLIR code generation: {0}")]
    Codegen(String),
}
