//! The contract between the runtime and a backend: a [`Target`] declares its [`Capabilities`] and compiles a
//! verified, specialised kernel-IR [`Program`] into an [`Executable`], which runs on typed tensors.
//!
//! The runtime owns everything before `compile` (the pass pipeline, specialisation, verification against the
//! target's budget) and the compiled-kernel cache; a target never calls the schedule compiler and never sees a
//! declaration. See `docs/ARCHITECTURE.md`, "How to add a backend".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ScheduleConfig;
use crate::kernel::Program;
use crate::tensor::{DType, Tensor, TensorRef};
use crate::SizeEnv;

/// What a target can do; the runtime prunes configurations with it and the verifier checks programs against
/// its budget. The conformance suite skips (and prints) what a target does not declare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Storage types it runs ([`ScheduleConfig::storage`]).
    pub storage: Vec<DType>,
    /// Accumulation types it runs ([`ScheduleConfig::accum`]).
    pub accum: Vec<DType>,
    /// Bytes of tiles one grid program may hold live at once (GPU workgroup memory); `None`: no limit that
    /// the schedule must respect (CPU targets spill to the stack or the heap).
    pub tile_memory: Option<usize>,
    /// Subgroup (warp) width, when it has subgroup operations.
    pub subgroup_size: Option<u32>,
    /// Whether it has matrix units (tensor cores, cooperative matrices).
    pub tensor_cores: bool,
    /// Whether its offsets are 64-bit; `false` requires every buffer offset to be proven below 2^31.
    pub index64: bool,
    /// Most grid programs of one kernel launch; `None`: no limit.
    pub max_grid: Option<u64>,
    /// Whether it runs the decode-step program.
    pub decode: bool,
}

impl Capabilities {
    /// A CPU target computing in f32: f32/f16/bf16 storage, f32 accumulation, no tile budget, 64-bit offsets.
    pub fn cpu_f32() -> Self {
        Capabilities {
            storage: vec![DType::F32, DType::F16, DType::BF16],
            accum: vec![DType::F32],
            tile_memory: None,
            subgroup_size: None,
            tensor_cores: false,
            index64: true,
            max_grid: None,
            decode: false,
        }
    }

    /// Whether the target runs `config`'s storage and accumulation types; the reason when it does not.
    pub fn supports(&self, config: &ScheduleConfig) -> Result<(), String> {
        if !self.storage.contains(&config.storage) {
            return Err(format!("storage {} (it has {})", config.storage.ir_name(), names(&self.storage)));
        }
        if !self.accum.contains(&config.accum) {
            return Err(format!("accumulation in {} (it has {})", config.accum.ir_name(), names(&self.accum)));
        }
        Ok(())
    }
}

fn names(d: &[DType]) -> String {
    d.iter().map(|d| d.ir_name()).collect::<Vec<_>>().join(", ")
}

/// How long one kernel took to compile and how big it came out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// The kernel's name.
    pub name: String,
    /// Compile time.
    pub time: Duration,
    /// Machine-code (or shader) size in bytes.
    pub code_bytes: usize,
}

/// Compile statistics of an [`Executable`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileStats {
    /// One entry per kernel, in execution order.
    pub kernels: Vec<KernelStats>,
    /// Wall time of the whole compile (the pass pipeline excluded).
    pub total: Duration,
}

impl CompileStats {
    /// Total code size in bytes.
    pub fn code_bytes(&self) -> usize {
        self.kernels.iter().map(|k| k.code_bytes).sum()
    }
}

/// Why a target could not compile or run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The target cannot serve this program or configuration (a capability it lacks). The runtime reports it
    /// to the user as such, and the conformance suite skips the case.
    #[error("{target} does not support {what}")]
    Unsupported {
        /// The target.
        target: String,
        /// What it lacks.
        what: String,
    },
    /// An input binding that does not match the program (a runtime bug: inputs are checked before).
    #[error("bad binding: {0}")]
    Binding(String),
    /// The target failed (code generation, JIT, driver).
    #[error("{target} failed: {message}")]
    Failed {
        /// The target.
        target: String,
        /// What went wrong.
        message: String,
    },
}

/// Input tensors bound to a program's input buffers, by buffer (input) name.
pub type Bindings<'a> = BTreeMap<String, TensorRef<'a>>;

/// A compiled program: compile once, run many times with any `B`, `T`, `H` and λ depth.
pub trait Executable: Send + Sync {
    /// The specialised program it runs.
    fn program(&self) -> &Program;

    /// How it was compiled.
    fn stats(&self) -> &CompileStats;

    /// Runs the program on `inputs` for sizes `sizes` (K, V and C must be the specialisation's) and returns the
    /// output buffer in the config's storage type (f64 for f64 storage).
    ///
    /// # Errors
    /// [`TargetError::Binding`] for inputs that do not match; [`TargetError::Failed`] for a target failure.
    fn run(&self, sizes: &SizeEnv, inputs: &Bindings<'_>) -> Result<Tensor, TargetError>;
}

/// A backend that translates kernel IR.
pub trait Target: Send + Sync {
    /// Its name, as given to `--backend`.
    fn name(&self) -> &'static str;

    /// One line saying what it is.
    fn description(&self) -> &'static str;

    /// The device it compiles for, for the cache key (e.g. the CPU's ISA, a GPU's adapter name).
    fn device(&self) -> String {
        String::new()
    }

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// The configuration it runs best when nobody has tuned: `config` with target-specific fields filled.
    fn default_config(&self, config: ScheduleConfig) -> ScheduleConfig {
        config
    }

    /// Compiles a verified program, specialised on K, V and C, for `config`.
    ///
    /// # Errors
    /// [`TargetError::Unsupported`] when a capability is missing; [`TargetError::Failed`] otherwise.
    fn compile(&self, program: &Program, config: &ScheduleConfig) -> Result<Arc<dyn Executable>, TargetError>;
}
