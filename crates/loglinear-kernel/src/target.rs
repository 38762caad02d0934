//! The contract between the runtime and a backend: a [`Target`] declares its [`Capabilities`] and compiles a
//! verified, specialised kernel-IR [`Program`] into an [`Executable`], which runs on typed tensors.
//!
//! The runtime owns everything before `compile` (the pass pipeline, specialisation, verification against the
//! target's budget) and the compiled-kernel cache; a target never calls the schedule compiler and never sees a
//! declaration. See `docs/ARCHITECTURE.md`, "How to add a backend".

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
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
    /// Whether it translates only the primitive ops: the runtime then compiles with `decompose` on.
    pub primitives_only: bool,
    /// Largest buffer it can bind, in bytes (a GPU API's storage-binding limit); `None`: no limit. The runtime's
    /// default configuration leaves the per-level form for the streaming one when a scratch buffer exceeds it.
    pub max_buffer_bytes: Option<u64>,
    /// About how many grid programs keep every compute unit busy (a GPU's multiprocessor count); `None`: no
    /// such concern (CPU targets share a grid's programs among their threads). With it, the runtime splits `V`
    /// ([`ScheduleConfig::v_block`]) of a decode step whose `N·H` programs are fewer.
    pub fill_programs: Option<usize>,
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
            primitives_only: false,
            max_buffer_bytes: None,
            fill_programs: None,
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

/// State buffers bound by name (the program's [`crate::kernel::BufKind::State`] buffers): a run starts each
/// bound one from its tensor (any float dtype, the buffer's shape) and zero-fills an unbound one; after the run
/// every state buffer's final contents are in the map, in the accumulation type. The layout of the log-linear
/// state is `[B, H, LC, K, V]` (level ℓ of sequence b, head h: `S^(ℓ)`, spec §6.1).
pub type States = BTreeMap<String, Tensor>;

/// The memory of host targets: a [`DeviceTensor`] made by [`Target::upload`]'s default holds a [`Tensor`] and
/// is accepted by every host target.
pub const HOST_MEMORY: &str = "host";

/// A tensor in a target's memory (a GPU buffer; host memory for CPU targets): uploaded once with
/// [`Target::upload`], used by any number of [`Executable::run_resident`] calls without crossing the bus again,
/// and read back only when asked ([`Target::download`]).
#[derive(Clone)]
pub struct DeviceTensor {
    dtype: DType,
    shape: Vec<usize>,
    memory: &'static str,
    storage: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for DeviceTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceTensor({} {:?} in {})", self.dtype, self.shape, self.memory)
    }
}

impl DeviceTensor {
    /// A tensor of `dtype` and `shape` held by the target whose memory is called `memory`, in `storage` (the
    /// target's own buffer type, found again with [`DeviceTensor::storage`]).
    pub fn new(dtype: DType, shape: Vec<usize>, memory: &'static str, storage: Arc<dyn Any + Send + Sync>) -> Self {
        DeviceTensor { dtype, shape, memory, storage }
    }

    /// A host-memory tensor ([`HOST_MEMORY`]).
    pub fn host(t: Tensor) -> Self {
        DeviceTensor { dtype: t.dtype(), shape: t.shape().to_vec(), memory: HOST_MEMORY, storage: Arc::new(t) }
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The memory it lives in ([`HOST_MEMORY`], or a GPU target's device name).
    pub fn memory(&self) -> &'static str {
        self.memory
    }

    /// The target's buffer, when it is of type `T`.
    pub fn storage<T: Any>(&self) -> Option<&T> {
        self.storage.downcast_ref::<T>()
    }

    /// The host tensor, when it lives in host memory.
    pub fn as_host(&self) -> Option<&Tensor> {
        if self.memory == HOST_MEMORY {
            self.storage()
        } else {
            None
        }
    }
}

/// State buffers resident in a target's memory, by name (see [`States`] for the layout and
/// [`Executable::run_with_resident_states`]).
pub type DeviceStates = BTreeMap<String, DeviceTensor>;

/// Device-resident inputs bound to a program's input buffers, by name.
pub type DeviceBindings<'a> = BTreeMap<String, &'a DeviceTensor>;

/// Views of host-memory tensors as [`Bindings`]; the name of the first one that is not in host memory.
///
/// # Errors
/// [`TargetError::Binding`] naming a tensor held by another target.
pub fn host_views<'a>(inputs: &DeviceBindings<'a>) -> Result<Bindings<'a>, TargetError> {
    inputs
        .iter()
        .map(|(n, t)| match t.as_host() {
            Some(h) => Ok((n.clone(), h.view())),
            None => Err(TargetError::Binding(format!(
                "input `{n}` lives in {} memory, not in host memory (upload it to this backend)",
                t.memory()
            ))),
        })
        .collect()
}

/// A compiled program: compile once, run many times with any `B`, `T`, `H` and λ depth.
pub trait Executable: Send + Sync {
    /// The specialised program it runs.
    fn program(&self) -> &Program;

    /// How it was compiled.
    fn stats(&self) -> &CompileStats;

    /// Runs the program on `inputs` for sizes `sizes` (K, V and C must be the specialisation's) with its state
    /// buffers bound to `states` (see [`States`]: read, then overwritten with the final contents) and returns the
    /// output buffer in the config's storage type (f64 for f64 storage).
    ///
    /// # Errors
    /// [`TargetError::Binding`] for inputs or states that do not match; [`TargetError::Failed`] for a target
    /// failure.
    fn run_with_states(
        &self,
        sizes: &SizeEnv,
        inputs: &Bindings<'_>,
        states: &mut States,
    ) -> Result<Tensor, TargetError>;

    /// Runs the program with every state buffer starting at zero (and discarded): see
    /// [`Executable::run_with_states`].
    ///
    /// # Errors
    /// As [`Executable::run_with_states`].
    fn run(&self, sizes: &SizeEnv, inputs: &Bindings<'_>) -> Result<Tensor, TargetError> {
        self.run_with_states(sizes, inputs, &mut States::new())
    }

    /// Runs the program on host `inputs` (a decode step's few rows) with its state buffers resident in the
    /// target's memory ([`DeviceStates`], made by [`Target::upload`] in the accumulation type): each bound
    /// state is read and updated in place without crossing the bus, and the output comes back to the host.
    /// Every state buffer must be bound. The default (host targets) runs [`Executable::run_with_states`] on
    /// the host tensors.
    ///
    /// # Errors
    /// As [`Executable::run_with_states`]; [`TargetError::Binding`] for a state held by another target or not
    /// bound.
    fn run_with_resident_states(
        &self,
        sizes: &SizeEnv,
        inputs: &Bindings<'_>,
        states: &mut DeviceStates,
    ) -> Result<Tensor, TargetError> {
        let mut host = States::new();
        for (n, t) in states.iter() {
            let h = t.as_host().ok_or_else(|| {
                TargetError::Binding(format!("state `{n}` lives in {} memory, not in host memory", t.memory()))
            })?;
            host.insert(n.clone(), h.clone());
        }
        let o = self.run_with_states(sizes, inputs, &mut host)?;
        for (n, t) in host {
            states.insert(n, DeviceTensor::host(t));
        }
        Ok(o)
    }

    /// Runs the program on device-resident inputs and leaves the output in device memory. The default (host
    /// targets) runs [`Executable::run`] on the host tensors; a GPU target overrides it so that nothing crosses
    /// the bus.
    ///
    /// # Errors
    /// As [`Executable::run`]; [`TargetError::Binding`] for a tensor held by another target.
    fn run_resident(&self, sizes: &SizeEnv, inputs: &DeviceBindings<'_>) -> Result<DeviceTensor, TargetError> {
        Ok(DeviceTensor::host(self.run(sizes, &host_views(inputs)?)?))
    }
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

    /// Whether it can run on this machine; why not (e.g. no GPU adapter), saying how to get what is missing.
    /// The default: always available.
    fn availability(&self) -> Result<(), String> {
        Ok(())
    }

    /// The configuration it runs best when nobody has tuned: `config` with target-specific fields filled.
    fn default_config(&self, config: ScheduleConfig) -> ScheduleConfig {
        config
    }

    /// Compiles a verified program, specialised on K, V and C, for `config`.
    ///
    /// # Errors
    /// [`TargetError::Unsupported`] when a capability is missing; [`TargetError::Failed`] otherwise.
    fn compile(&self, program: &Program, config: &ScheduleConfig) -> Result<Arc<dyn Executable>, TargetError>;

    /// Copies a host tensor into the target's memory. The default (host targets) keeps an owned copy in host
    /// memory.
    ///
    /// # Errors
    /// [`TargetError::Failed`] when the device cannot allocate or copy.
    fn upload(&self, t: TensorRef<'_>) -> Result<DeviceTensor, TargetError> {
        Ok(DeviceTensor::host(t.to_owned()))
    }

    /// Copies a tensor back to the host.
    ///
    /// # Errors
    /// [`TargetError::Binding`] for a tensor held by another target; [`TargetError::Failed`] on a device error.
    fn download(&self, t: &DeviceTensor) -> Result<Tensor, TargetError> {
        t.as_host().cloned().ok_or_else(|| {
            TargetError::Binding(format!("a tensor in {} memory cannot be read by {}", t.memory(), self.name()))
        })
    }
}
