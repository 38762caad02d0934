//! The `mlir-cpu` target: kernel IR (decomposed) through MLIR and LLVM 22 for this CPU.

use std::sync::Arc;
use std::time::Instant;

use loglinear_kernel::kernel::Program;
use loglinear_kernel::{
    Bindings, Capabilities, CompileStats, DType, Executable, KernelStats, ScheduleConfig, SizeEnv, States, Target,
    TargetError, Tensor,
};

use crate::{CpuProgram, MlirError};

/// The target's name (`--backend mlir-cpu`).
pub const NAME: &str = "mlir-cpu";

/// The `mlir-cpu` [`Target`].
#[derive(Clone, Debug, Default)]
pub struct MlirCpuTarget;

fn failed(e: MlirError) -> TargetError {
    TargetError::Failed { target: NAME.into(), message: e.to_string() }
}

impl Target for MlirCpuTarget {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "kernel IR through MLIR (LLVM 22) JIT-compiled for this CPU at -O3, f32 compute (f32/f16/bf16 storage), \
         multi-threaded"
    }

    fn device(&self) -> String {
        format!("{}-host", std::env::consts::ARCH)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { decode: true, primitives_only: true, ..Capabilities::cpu_f32() }
    }

    fn compile(&self, program: &Program, config: &ScheduleConfig) -> Result<Arc<dyn Executable>, TargetError> {
        self.capabilities().supports(config).map_err(|what| TargetError::Unsupported { target: NAME.into(), what })?;
        let start = Instant::now();
        let inner = CpuProgram::compile(program).map_err(failed)?;
        let n = inner.translate_times.len().max(1) as u32;
        // Modules of several kernels are lowered and JIT-compiled as a whole: each kernel is charged its
        // translation and an equal share of the rest.
        let kernels = program
            .kernels
            .iter()
            .zip(&inner.translate_times)
            .map(|(k, t)| KernelStats { name: k.name.clone(), time: *t + inner.jit_time / n, code_bytes: 0 })
            .collect();
        let stats = CompileStats { kernels, total: start.elapsed() };
        let threads = config.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Ok(Arc::new(MlirExecutable { inner, stats, storage: config.storage, threads }))
    }
}

/// A compiled program of the `mlir-cpu` target.
struct MlirExecutable {
    inner: CpuProgram,
    stats: CompileStats,
    storage: DType,
    threads: usize,
}

// SAFETY: after compilation the MLIR context and the execution engine are only read (function addresses were
// looked up once) and dropped; the JIT-compiled functions touch only the memory passed to each call.
unsafe impl Send for MlirExecutable {}
// SAFETY: as for `Send`: no method mutates shared state.
unsafe impl Sync for MlirExecutable {}

impl Executable for MlirExecutable {
    fn program(&self) -> &Program {
        self.inner.program()
    }

    fn stats(&self) -> &CompileStats {
        &self.stats
    }

    fn run_with_states(
        &self,
        sizes: &SizeEnv,
        inputs: &Bindings<'_>,
        states: &mut States,
    ) -> Result<Tensor, TargetError> {
        self.inner
            .run_with_states(sizes, inputs, states, self.storage, self.threads)
            .map_err(|e| TargetError::Binding(e.to_string()))
    }
}
