//! # loglinear-cuda: the `cuda` backend
//!
//! Runs kernel IR on an NVIDIA GPU from **PTX emitted ahead of time** by `loglinear-mlir` (MLIR → NVVM → PTX for
//! `sm_90`), through the CUDA driver API (cudarc, `libcuda.so` loaded at run time). The crate links no compiler
//! and needs no system package to build, so its binary is small enough to carry to a GPU machine that has no
//! MLIR; a machine without the driver gets a backend that reports itself unavailable, never a panic.
//!
//! * **Where the code comes from.** A program's PTX is the file `DIR/<fingerprint>.ptx`
//!   ([`loglinear_kernel::device::fingerprint`]: the same name on every machine), `DIR` being
//!   [`CudaTarget::with_kernels_dir`] or `LOGLINEAR_CUDA_KERNELS` (`--kernels DIR` on the command line). A
//!   build with a compiler ([`CudaTarget::with_compiler`], the facade's `mlir` feature) produces missing files
//!   and writes them to `DIR` atomically: an on-disk module cache. Without either, `compile` says which program
//!   is missing and the `loglinear emit --target ptx …` command that writes it.
//! * **The ABI** is [`loglinear_kernel::device`]'s: every program buffer in f32 on the device (16-bit inputs
//!   converted on the host), then the twelve sizes as i64, the wave's `lo..hi` grid programs and the scratch
//!   pointer; `threads` per block, static shared memory. Grids run in waves whose scratch stays within
//!   [`MAX_WAVE_SCRATCH_BYTES`].
//! * **Memory.** Buffers are pooled between runs of the same sizes and cleared only where the kernel IR needs
//!   them zero (`analysis::needs_zeroing`). [`Target::upload`] puts a tensor on the GPU (as f32);
//!   `run_resident` binds such buffers and leaves the output there; `run_with_resident_states` updates a
//!   decode state in place.
//! * **Devices.** Device 0, or `LOGLINEAR_DEVICE` / [`CudaTarget::with_device`] (`--device N`).
//! * **Code-generation mode** (`LOGLINEAR_CUDA_PREPARE=1`, for the build machine: MLIR but no GPU). When no GPU
//!   can be opened and a compiler is set, the backend reports itself available, `compile` produces and caches
//!   each program's PTX as above, and runs execute on the f32 kernel-IR interpreter. Driving a test suite or a
//!   benchmark through `--backend cuda` this way leaves in `DIR` every PTX file the same run needs on the GPU
//!   machine. The numbers it returns are the interpreter's: it checks nothing about the PTX.
//!
//! The schedule of a decode step depends on [`Capabilities::fill_programs`], the device's multiprocessor count
//! (132 without a device, the H200's): PTX generated without a GPU matches a GPU with 132 multiprocessors.

#![warn(missing_docs)]

mod cache;
mod exec;
mod gpu;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use loglinear_kernel::device::{gpu_layout, PtxCompiler};
use loglinear_kernel::kernel::Program;
use loglinear_kernel::{
    Bindings, Capabilities, CompileStats, DeviceTensor, Executable, InterpreterTarget, KernelStats, ScheduleConfig,
    SizeEnv, States, Target, TargetError, Tensor, TensorRef,
};

pub use exec::MAX_WAVE_SCRATCH_BYTES;
pub use gpu::DEFAULT_MULTIPROCESSORS;

use exec::{Buf, CudaExecutable, LoadedKernel, Resident};
use gpu::Gpu;

/// The target's name (`--backend cuda`).
pub const NAME: &str = "cuda";

/// The name of the memory a [`DeviceTensor`] of this backend lives in.
pub const MEMORY: &str = "cuda";

/// The environment variable naming the directory of PTX files (`<fingerprint>.ptx`).
pub const KERNELS_ENV: &str = "LOGLINEAR_CUDA_KERNELS";

/// The environment variable that turns on the code-generation mode (`1`).
pub const PREPARE_ENV: &str = "LOGLINEAR_CUDA_PREPARE";

/// Why the cuda backend could not open a device, find code or load it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CudaError {
    /// The driver library could not be loaded.
    #[error(
        "no CUDA driver: libcuda.so could not be loaded ({0}); the cuda backend needs an NVIDIA GPU and its driver"
    )]
    NoDriver(String),
    /// The driver loaded but the device could not be opened.
    #[error("no CUDA device {ordinal}: {message}")]
    NoDevice {
        /// The device ordinal asked for.
        ordinal: usize,
        /// The driver's answer.
        message: String,
    },
    /// Neither a kernels directory nor a compiler is set.
    #[error(
        "no PTX source: set {KERNELS_ENV} (or `--kernels DIR`) to a directory of PTX written by `loglinear emit \
         --target ptx`, or use a build with the `mlir` feature"
    )]
    NoSource,
    /// The program's PTX is not in the kernels directory and no compiler is set.
    #[error(
        "no PTX for program `{program}` (fingerprint {fingerprint}; {searched}): write it on a machine whose \
         loglinear is built with `--features mlir` with `{emit}` (B, T and H as in this run), or run this \
         workload there with {PREPARE_ENV}=1 and {KERNELS_ENV}=DIR, then copy DIR here"
    )]
    MissingPtx {
        /// The program's name.
        program: String,
        /// Its fingerprint (the file's stem).
        fingerprint: String,
        /// Where it was looked for (or that no directory is set).
        searched: String,
        /// The command that writes it.
        emit: String,
    },
    /// The compiler of this build failed.
    #[error("compiling `{program}` to PTX: {message}")]
    Compiler {
        /// The program's name.
        program: String,
        /// The compiler's message.
        message: String,
    },
    /// Reading or writing the kernels directory failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
    /// The driver rejected the PTX or an entry point is missing.
    #[error("loading the PTX of `{program}`: {message}")]
    Load {
        /// The program's name.
        program: String,
        /// The driver's message (with the JIT compiler's log when it wrote one).
        message: String,
    },
}

impl From<CudaError> for TargetError {
    /// What the user can fix (no driver, no device, no PTX) is [`TargetError::Unsupported`] (a usage error in
    /// the CLI, a skip in the conformance suite); the rest is [`TargetError::Failed`].
    fn from(e: CudaError) -> Self {
        let unsupported = |what: String| TargetError::Unsupported { target: NAME.into(), what };
        match e {
            CudaError::NoDriver(_) | CudaError::NoDevice { .. } => unsupported(format!("this machine: {e}")),
            CudaError::NoSource | CudaError::MissingPtx { .. } => unsupported(format!("this run: {e}")),
            CudaError::Compiler { .. } | CudaError::Io { .. } | CudaError::Load { .. } => failed(e.to_string()),
        }
    }
}

pub(crate) fn failed(message: impl Into<String>) -> TargetError {
    TargetError::Failed { target: NAME.into(), message: message.into() }
}

/// The `cuda` [`Target`]: PTX from a directory (or a compiler) run through the CUDA driver.
pub struct CudaTarget {
    ordinal: usize,
    kernels: Option<PathBuf>,
    compiler: Option<Arc<dyn PtxCompiler>>,
    prepare: bool,
    wave_limit: Option<usize>,
    gpu: OnceLock<Result<Arc<Gpu>, CudaError>>,
}

impl Default for CudaTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for CudaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaTarget")
            .field("ordinal", &self.ordinal)
            .field("kernels", &self.kernels)
            .field("compiler", &self.compiler.is_some())
            .field("prepare", &self.prepare)
            .field("wave_limit", &self.wave_limit)
            .finish()
    }
}

impl CudaTarget {
    /// The target on device 0, with no kernels directory, no compiler and the code-generation mode off. The
    /// driver is probed on first use.
    pub fn new() -> Self {
        CudaTarget { ordinal: 0, kernels: None, compiler: None, prepare: false, wave_limit: None, gpu: OnceLock::new() }
    }

    /// The target configured from the environment: the kernels directory from `LOGLINEAR_CUDA_KERNELS`, the
    /// device from `LOGLINEAR_DEVICE` (an ordinal; default 0), the code-generation mode from
    /// `LOGLINEAR_CUDA_PREPARE=1`.
    pub fn from_env() -> Self {
        let mut t = Self::new();
        if let Some(dir) = std::env::var_os(KERNELS_ENV).filter(|d| !d.is_empty()) {
            t.kernels = Some(PathBuf::from(dir));
        }
        if let Some(i) = std::env::var("LOGLINEAR_DEVICE").ok().and_then(|s| s.trim().parse().ok()) {
            t.ordinal = i;
        }
        t.prepare = std::env::var(PREPARE_ENV).is_ok_and(|v| v.trim() == "1");
        t
    }

    /// The same target on device `ordinal`.
    pub fn with_device(mut self, ordinal: usize) -> Self {
        self.ordinal = ordinal;
        self.gpu = OnceLock::new();
        self
    }

    /// The same target reading (and, with a compiler, writing) PTX in `dir`.
    pub fn with_kernels_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.kernels = Some(dir.into());
        self
    }

    /// The same target producing missing PTX with `compiler` (cached in the kernels directory when set).
    pub fn with_compiler(mut self, compiler: Arc<dyn PtxCompiler>) -> Self {
        self.compiler = Some(compiler);
        self
    }

    /// The same target with the code-generation mode on or off (see the crate documentation; it takes effect
    /// only without a GPU and with a compiler).
    pub fn with_prepare(mut self, on: bool) -> Self {
        self.prepare = on;
        self
    }

    /// The same target launching at most `programs` grid programs per launch (a wave): large grids run in waves
    /// anyway (scratch within [`MAX_WAVE_SCRATCH_BYTES`]); this forces them on small problems (tests of that
    /// path).
    pub fn with_wave_limit(mut self, programs: usize) -> Self {
        self.wave_limit = Some(programs.max(1));
        self
    }

    /// The kernels directory, when set.
    pub fn kernels_dir(&self) -> Option<&Path> {
        self.kernels.as_deref()
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    fn gpu(&self) -> Result<&Arc<Gpu>, &CudaError> {
        self.gpu.get_or_init(|| gpu::open(self.ordinal).map(Arc::new)).as_ref()
    }

    /// Whether the code-generation mode is in effect: asked for, a compiler set, and no GPU.
    pub fn preparing(&self) -> bool {
        self.prepare && self.compiler.is_some() && self.gpu().is_err()
    }

    /// The PTX of `program` and where it came from.
    fn ptx(&self, program: &Program, config: &ScheduleConfig) -> Result<(String, cache::Origin), CudaError> {
        cache::ptx_for(program, config, self.kernels.as_deref(), self.compiler.as_deref())
    }
}

impl Target for CudaTarget {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        if self.preparing() {
            "CODE-GENERATION MODE (LOGLINEAR_CUDA_PREPARE=1, no GPU): writes each program's PTX to \
             LOGLINEAR_CUDA_KERNELS and runs it on the f32 kernel-IR interpreter"
        } else {
            "PTX from loglinear-mlir (LOGLINEAR_CUDA_KERNELS / --kernels) through the CUDA driver, f32 compute \
             (f32/f16/bf16 storage)"
        }
    }

    fn device(&self) -> String {
        self.gpu().map_or_else(|_| NAME.to_string(), |g| g.name.clone())
    }

    fn capabilities(&self) -> Capabilities {
        let fill = self.gpu().map_or(DEFAULT_MULTIPROCESSORS, |g| g.multiprocessors);
        Capabilities { decode: true, primitives_only: true, fill_programs: Some(fill), ..Capabilities::cpu_f32() }
    }

    fn availability(&self) -> Result<(), String> {
        match self.gpu() {
            Ok(_) if self.kernels.is_none() && self.compiler.is_none() => Err(CudaError::NoSource.to_string()),
            Ok(_) => Ok(()),
            Err(_) if self.preparing() => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn compile(&self, program: &Program, config: &ScheduleConfig) -> Result<Arc<dyn Executable>, TargetError> {
        self.capabilities().supports(config).map_err(|what| TargetError::Unsupported { target: NAME.into(), what })?;
        let gpu = match self.gpu() {
            Ok(g) => Some(g.clone()),
            Err(_) if self.preparing() => None,
            Err(e) => return Err(e.clone().into()),
        };
        let start = Instant::now();
        let (text, origin) = self.ptx(program, config)?;
        let Some(gpu) = gpu else {
            // Code-generation mode: the PTX is written; the run is the interpreter's.
            tracing::debug!(program = %program.name, ?origin, "cuda code-generation mode: running on the interpreter");
            if self.kernels.is_none() {
                tracing::warn!("{PREPARE_ENV}=1 without {KERNELS_ENV}: the PTX is produced but written nowhere");
            }
            let stats = compile_stats(program, text.len(), start);
            let inner = InterpreterTarget::f32().compile(program, config)?;
            return Ok(Arc::new(Prepared { inner, stats }));
        };
        let layouts: Vec<_> = (0..program.kernels.len()).map(|i| gpu_layout(program, i)).collect();
        let symbols: Vec<String> = layouts.iter().map(|l| l.symbol.clone()).collect();
        let (module, functions) = gpu.load(&program.name, &text, &symbols)?;
        let stats = compile_stats(program, text.len(), start);
        tracing::debug!(program = %program.name, ?origin, kernels = program.kernels.len(), ms = stats.total.as_secs_f64() * 1e3, "PTX loaded");
        let kernels =
            functions.into_iter().zip(layouts).map(|(function, layout)| LoadedKernel { function, layout }).collect();
        Ok(Arc::new(CudaExecutable::new(program.clone(), stats, config.storage, gpu, kernels, module, self.wave_limit)))
    }

    fn upload(&self, t: TensorRef<'_>) -> Result<DeviceTensor, TargetError> {
        let gpu = match self.gpu() {
            Ok(g) => g,
            // Code-generation mode runs on the host.
            Err(_) if self.preparing() => return Ok(DeviceTensor::host(t.to_owned())),
            Err(e) => return Err(e.clone().into()),
        };
        let n = t.numel();
        let mut host = vec![0f32; n.max(1)];
        t.read_f32_into(0, &mut host[..n]);
        let buf = gpu.stream.clone_htod(&host).map(Buf).map_err(|e| failed(format!("uploading a tensor: {e}")))?;
        let resident = Resident { buf, ordinal: gpu.ordinal };
        Ok(DeviceTensor::new(loglinear_kernel::DType::F32, t.shape.to_vec(), MEMORY, Arc::new(resident)))
    }

    fn download(&self, t: &DeviceTensor) -> Result<Tensor, TargetError> {
        if let Some(h) = t.as_host() {
            if self.preparing() {
                return Ok(h.clone());
            }
        }
        let r = t.storage::<Resident>().ok_or_else(|| {
            TargetError::Binding(format!("a tensor in {} memory cannot be read by {NAME}", t.memory()))
        })?;
        let gpu = self.gpu().map_err(|e| TargetError::from(e.clone()))?;
        let n: usize = t.shape().iter().product();
        let mut host = vec![0f32; n];
        if n > 0 {
            gpu.stream
                .memcpy_dtoh(&r.buf.slice(0..n), &mut host)
                .map_err(|e| failed(format!("downloading a tensor: {e}")))?;
        }
        gpu.stream.synchronize().map_err(|e| failed(format!("downloading a tensor: {e}")))?;
        Ok(Tensor::from_f32_as(t.dtype(), t.shape().to_vec(), &host))
    }
}

/// Compile statistics: the module is found (or produced) and loaded as a whole, so each kernel is charged an
/// equal share of the time and of the PTX text.
fn compile_stats(program: &Program, code_bytes: usize, start: Instant) -> CompileStats {
    let n = program.kernels.len().max(1);
    let per = start.elapsed() / n as u32;
    CompileStats {
        kernels: program
            .kernels
            .iter()
            .map(|k| KernelStats { name: k.name.clone(), time: per, code_bytes: code_bytes / n })
            .collect(),
        total: start.elapsed(),
    }
}

/// A program compiled in code-generation mode: its PTX is written; it runs on the f32 interpreter.
struct Prepared {
    inner: Arc<dyn Executable>,
    stats: CompileStats,
}

impl Executable for Prepared {
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
        self.inner.run_with_states(sizes, inputs, states)
    }
}
