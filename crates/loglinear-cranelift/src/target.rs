//! [`CraneliftTarget`]: translates a specialised kernel-IR program to CLIF, JIT-compiles it and runs it in f32
//! on all cores. It implements the backend contract of `loglinear-kernel` and nothing more: the runtime owns the
//! pipeline and the compiled-kernel cache.

use std::sync::{Arc, OnceLock};

use loglinear_kernel::{Capabilities, DType, Executable, Program, ScheduleConfig, Target, TargetError};

use crate::exec::CompiledProgram;
use crate::jit::JitModule;

/// The Cranelift JIT target (`cranelift`): f32 compute with f32, f16 or bf16 storage, each kernel's grid spread
/// over `threads` workers (default: every available core). Handles made by [`CraneliftTarget::shared`] share one
/// process-wide JIT module.
#[derive(Clone)]
pub struct CraneliftTarget {
    jit: Arc<OnceLock<Result<JitModule, String>>>,
    threads: usize,
}

impl std::fmt::Debug for CraneliftTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CraneliftTarget").field("threads", &self.threads).finish()
    }
}

impl Default for CraneliftTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl CraneliftTarget {
    /// A target with its own JIT module and one worker per available core.
    pub fn new() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        CraneliftTarget { jit: Arc::new(OnceLock::new()), threads }
    }

    /// A handle on the process-wide target (one JIT module for every handle).
    pub fn shared() -> Self {
        static JIT: OnceLock<Arc<OnceLock<Result<JitModule, String>>>> = OnceLock::new();
        CraneliftTarget { jit: JIT.get_or_init(|| Arc::new(OnceLock::new())).clone(), ..Self::new() }
    }

    /// The same target with `threads` workers by default (at least 1).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Number of kernel functions JIT-compiled so far by this target's module.
    pub fn kernel_compile_count(&self) -> u64 {
        match self.jit.get() {
            Some(Ok(j)) => j.compile_count(),
            _ => 0,
        }
    }

    fn jit(&self) -> Result<&JitModule, TargetError> {
        self.jit
            .get_or_init(|| JitModule::new().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| TargetError::Failed { target: "cranelift".into(), message: e.clone() })
    }
}

impl Target for CraneliftTarget {
    fn name(&self) -> &'static str {
        "cranelift"
    }

    fn description(&self) -> &'static str {
        "kernel IR JIT-compiled with Cranelift, f32 compute (f32/f16/bf16 storage), multi-threaded"
    }

    fn device(&self) -> String {
        match self.jit() {
            Ok(j) => format!("{:?}", j.isa_info()),
            Err(_) => String::new(),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { decode: true, ..Capabilities::cpu_f32() }
    }

    fn compile(&self, program: &Program, config: &ScheduleConfig) -> Result<Arc<dyn Executable>, TargetError> {
        if !self.capabilities().storage.contains(&config.storage) || config.accum != DType::F32 {
            return Err(TargetError::Unsupported {
                target: "cranelift".into(),
                what: format!("storage {} with accumulation {}", config.storage.ir_name(), config.accum.ir_name()),
            });
        }
        let threads = config.threads.unwrap_or(self.threads);
        let prog = CompiledProgram::compile(self.jit()?, program, config.storage, threads)
            .map_err(|e| TargetError::Failed { target: "cranelift".into(), message: e.to_string() })?;
        Ok(Arc::new(prog))
    }
}
