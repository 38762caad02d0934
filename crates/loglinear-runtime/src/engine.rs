//! [`Runtime`]: the pipeline driver. It owns the backends (the f64 oracle and every kernel-IR [`Target`]), the
//! pass pipeline (declaration → kernel IR → specialised, verified program) and the compiled-kernel cache; a
//! target only ever sees a verified program and a [`ScheduleConfig`].
//!
//! One run: check the inputs on their native dtype → pick the [`ScheduleConfig`] (the caller's, else the
//! target's default at the variant's chunk size) → compile through the cache (key: target, device, the
//! variant's text, K, V and the config — not B, T, H or the λ depth, so a new length never recompiles) → bind
//! the inputs as typed views → run → the output in the storage type.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use loglinear_ir::{check_inputs, Dims, HostTensor, TensorMap, VariantIr};
use loglinear_kernel::{
    host_views, Bindings, Capabilities, ConfigOverrides, DType, DeviceBindings, DeviceTensor, Executable, ScanForm,
    ScheduleConfig, SizeEnv, Target, TargetError, Tensor,
};
use loglinear_oracle::Form;

use crate::cache::KernelCache;
use crate::error::RuntimeError;

/// Relative-error tolerance of an f64 backend against the f64 oracle (spec §11.3).
pub const DEFAULT_TOLERANCE: f64 = 1e-12;

/// Tolerance of 16-bit storage with f32 accumulation against the oracle on the same rounded inputs (spec §11.3).
pub const HALF_TOLERANCE: f64 = 5e-3;

/// Options of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Chunk size; `None` uses the variant's ([`VariantIr::chunk_size`]). Overrides `config`'s chunk.
    pub chunk_size: Option<usize>,
    /// The whole schedule configuration; `None`: the target's default, with the scan form chosen by
    /// `max_scratch`.
    pub config: Option<ScheduleConfig>,
    /// Fields fixed over `config` (or the target's default): `--config storage=bf16` leaves everything else,
    /// the scan form included, to the runtime.
    pub overrides: ConfigOverrides,
    /// Most bytes of scratch the per-level scan form may take before the default configuration switches to the
    /// streaming form, whose scratch is O(L·K·V) per head; `None`: a quarter of physical memory.
    pub max_scratch: Option<u64>,
    /// Skip the tuning cache ([`crate::tune`]): run the default pick even where a tuned configuration exists
    /// (`--no-tune`).
    pub no_tune: bool,
}

impl RunOptions {
    /// Options with this chunk size.
    pub fn with_chunk_size(chunk_size: Option<usize>) -> Self {
        RunOptions { chunk_size, ..RunOptions::default() }
    }

    /// Options with this configuration.
    pub fn with_config(config: ScheduleConfig) -> Self {
        RunOptions { config: Some(config), ..RunOptions::default() }
    }

    /// Whether a run with these options consults the tuning cache: the caller fixed no configuration, no field
    /// of one, no chunk size, and did not ask for `no_tune`.
    pub fn uses_tuning(&self) -> bool {
        !self.no_tune && self.config.is_none() && self.overrides.is_empty() && self.chunk_size.is_none()
    }
}

/// A quarter of physical memory (`/proc/meminfo`), or 4 GiB where it cannot be read: the default
/// [`RunOptions::max_scratch`].
pub fn default_max_scratch() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines().find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    });
    total_kib.map_or(4 << 30, |k| k * 1024 / 4)
}

/// Checks a chunk size: a power of two in `1..=256`.
///
/// # Errors
/// [`RuntimeError::ChunkSize`], naming `--chunk-size`, the value and what is expected.
pub fn check_chunk_size(c: usize) -> Result<usize, RuntimeError> {
    if c.is_power_of_two() && c <= loglinear_ir::MAX_CHUNK_SIZE {
        Ok(c)
    } else {
        Err(RuntimeError::ChunkSize { value: c, max: loglinear_ir::MAX_CHUNK_SIZE })
    }
}

/// Spec §11.3 tolerance of f32 compute against the f64 oracle: 1e-4 for delta-rule classes (the triangular
/// solve amplifies rounding), 1e-5 otherwise.
pub fn f32_tolerance(variant: &VariantIr) -> f64 {
    if variant.class().is_delta() {
        1e-4
    } else {
        1e-5
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Ran {
    /// The output `o` `[B, T, H, V]`, in the configuration's storage type.
    pub o: Tensor,
    /// The configuration it ran with.
    pub config: ScheduleConfig,
    /// The problem sizes of the inputs.
    pub dims: Dims,
}

/// Inputs checked against a variant and uploaded to a backend's memory ([`Backend::upload`]).
#[derive(Clone, Debug)]
pub struct ResidentInputs {
    variant: String,
    backend: &'static str,
    dims: Dims,
    tensors: BTreeMap<String, DeviceTensor>,
    held_as: Option<DType>,
}

impl ResidentInputs {
    /// The problem sizes.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// Records the dtype the caller holds these inputs in when they were converted before the upload (a GPU
    /// target reads resident inputs only in its storage type): runs look up tuned configurations for that dtype,
    /// as a run on the caller's own tensors would, rather than for the converted copy's.
    #[must_use]
    pub fn held_as(mut self, dtype: DType) -> Self {
        self.held_as = Some(dtype);
        self
    }

    /// The dtype tuned configurations are looked up for: [`ResidentInputs::held_as`]'s, else the tensors' own.
    pub fn input_dtype(&self, variant: &VariantIr) -> DType {
        self.held_as.unwrap_or_else(|| crate::tune::input_dtype(variant, |n| self.tensors.get(n).map(|t| t.dtype())))
    }

    /// The tensors by input name.
    pub fn bindings(&self) -> DeviceBindings<'_> {
        self.tensors.iter().map(|(n, t)| (n.clone(), t)).collect()
    }
}

/// What a backend is.
#[derive(Clone)]
pub enum BackendKind {
    /// The f64 oracle (per-level chunked scan): the ground truth, not a kernel-IR target.
    Reference,
    /// A kernel-IR target.
    Target(Arc<dyn Target>),
}

/// A backend of a [`Runtime`], by reference.
#[derive(Clone, Copy)]
pub struct Backend<'a> {
    pub(crate) runtime: &'a Runtime,
    pub(crate) kind: &'a BackendKind,
}

impl<'a> Backend<'a> {
    /// Its name, as given to `--backend`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            BackendKind::Reference => "reference",
            BackendKind::Target(t) => t.name(),
        }
    }

    /// One line saying what it is.
    pub fn description(&self) -> &'static str {
        match self.kind {
            BackendKind::Reference => "f64 oracle, per-level chunked scan (slow, exact)",
            BackendKind::Target(t) => t.description(),
        }
    }

    /// What it can do (the oracle: f64 only).
    pub fn capabilities(&self) -> Capabilities {
        match self.kind {
            BackendKind::Reference => {
                Capabilities { storage: vec![DType::F64], accum: vec![DType::F64], ..Capabilities::cpu_f32() }
            }
            BackendKind::Target(t) => t.capabilities(),
        }
    }

    /// Whether it can run on this machine; why not (e.g. no GPU adapter, and how to get one).
    pub fn availability(&self) -> Result<(), String> {
        match self.kind {
            BackendKind::Reference => Ok(()),
            BackendKind::Target(t) => t.availability(),
        }
    }

    /// The kernel-IR target, unless this is the oracle.
    pub fn target(&self) -> Option<&'a Arc<dyn Target>> {
        match self.kind {
            BackendKind::Reference => None,
            BackendKind::Target(t) => Some(t),
        }
    }

    /// The kernel-IR program this backend's target compiles for `variant` specialised at `(k, v)` with `config`
    /// (the decode step when `decode`): decomposed into primitives for a target that asks for it, checked
    /// against its tile budget otherwise. `loglinear emit` writes code for exactly these programs.
    ///
    /// # Errors
    /// [`RuntimeError::Unsupported`] for the oracle backend or a program over the target's budget;
    /// [`RuntimeError::Config`] for an invalid configuration.
    pub fn program(
        &self,
        variant: &VariantIr,
        k: usize,
        v: usize,
        config: &ScheduleConfig,
        decode: bool,
    ) -> Result<loglinear_kernel::kernel::Program, RuntimeError> {
        let target = self.target().ok_or_else(|| RuntimeError::Unsupported {
            backend: self.name().into(),
            what: "compiling kernel IR (it is the f64 oracle)".into(),
        })?;
        let caps = target.capabilities();
        let compiled = if caps.primitives_only {
            loglinear_schedule::compile_decomposed(variant, config, Some((k, v)))
        } else {
            loglinear_schedule::compile_with(variant, config, Some((k, v)), caps.tile_memory)
        };
        compiled.map(|c| if decode { c.decode } else { c.forward }).map_err(|e| match e {
            loglinear_schedule::ScheduleError::Budget(what) => {
                RuntimeError::Unsupported { backend: self.name().into(), what }
            }
            loglinear_schedule::ScheduleError::Config(e) => RuntimeError::Config(e),
            other => RuntimeError::Backend { backend: self.name().into(), message: other.to_string() },
        })
    }

    /// The configuration a run with `opts` uses for `variant`.
    ///
    /// # Errors
    /// [`RuntimeError::ChunkSize`] or [`RuntimeError::Config`] for an invalid configuration,
    /// [`RuntimeError::Unsupported`] for one this backend cannot run.
    pub fn config(&self, variant: &VariantIr, opts: &RunOptions) -> Result<ScheduleConfig, RuntimeError> {
        let mut config = match (&opts.config, self.kind) {
            (Some(c), _) => *c,
            (None, BackendKind::Reference) => ScheduleConfig {
                chunk: variant.chunk_size,
                storage: DType::F64,
                accum: DType::F64,
                ..ScheduleConfig::default()
            },
            (None, BackendKind::Target(t)) => t.default_config(ScheduleConfig::with_chunk(variant.chunk_size)),
        };
        config = opts.overrides.apply(config);
        if let Some(c) = opts.chunk_size {
            config.chunk = check_chunk_size(c)?;
        }
        check_chunk_size(config.chunk)?;
        config.validate()?;
        self.capabilities()
            .supports(&config)
            .map_err(|what| RuntimeError::Unsupported { backend: self.name().into(), what })?;
        Ok(config)
    }

    /// The tolerance of this backend on `variant` with `config` against the f64 oracle on the same (rounded)
    /// inputs (spec §11.3).
    pub fn tolerance(&self, variant: &VariantIr, config: &ScheduleConfig) -> f64 {
        if matches!(config.storage, DType::F16 | DType::BF16) {
            HALF_TOLERANCE
        } else if config.accum == DType::F64 {
            DEFAULT_TOLERANCE
        } else {
            f32_tolerance(variant)
        }
    }

    /// The tolerance with this backend's default configuration.
    pub fn default_tolerance(&self, variant: &VariantIr) -> f64 {
        match self.config(variant, &RunOptions::default()) {
            Ok(c) => self.tolerance(variant, &c),
            Err(_) => f32_tolerance(variant),
        }
    }

    /// The configuration for a problem of sizes `dims`: [`Backend::config`], then — when the caller fixed
    /// neither a whole configuration nor the scan form, and the per-level form's scratch exceeds
    /// `opts.max_scratch`, its largest buffer the target's binding limit, or its offsets 32 bits on a target
    /// without 64-bit indexing — the fused form if it fits, else the streaming form.
    ///
    /// # Errors
    /// As [`Backend::config`].
    pub fn config_for(
        &self,
        variant: &VariantIr,
        dims: &Dims,
        opts: &RunOptions,
    ) -> Result<ScheduleConfig, RuntimeError> {
        let mut config = self.config(variant, opts)?;
        if opts.config.is_none()
            && opts.overrides.form.is_none()
            && config.form == ScanForm::PerLevel
            && self.target().is_some()
        {
            let budget = opts.max_scratch.unwrap_or_else(default_max_scratch) as u128;
            // The per-level form, else the fused one, else streaming (O(L·K·V) scratch per head): the first whose
            // scratch fits the budget, whose largest scratch buffer fits the target's binding limit, and whose
            // offsets fit 32 bits where the target has no 64-bit indexing.
            for form in [ScanForm::PerLevel, ScanForm::Fused, ScanForm::Streaming] {
                let candidate = ScheduleConfig { form, ..config };
                if form == ScanForm::Streaming || self.fits(variant, dims, &candidate, budget) {
                    if form != ScanForm::PerLevel {
                        tracing::info!(form = form.name(), "per-level scratch over the budget or the target's limits");
                    }
                    config = candidate;
                    break;
                }
            }
        }
        Ok(config)
    }

    /// Whether `config`'s forward program at `dims` keeps its scratch within `budget` bytes and its buffers
    /// within the target's binding limit and (without 64-bit indexing) 32-bit offsets.
    pub(crate) fn fits(&self, variant: &VariantIr, dims: &Dims, config: &ScheduleConfig, budget: u128) -> bool {
        let Ok(c) = loglinear_schedule::compile(variant, config) else { return false };
        let mut p = c.forward;
        p.set_types(config.storage, config.accum);
        self.program_fits(&p, dims, budget)
    }

    /// [`Backend::fits`] for a typed forward program (specialised or not).
    pub(crate) fn program_fits(&self, p: &loglinear_kernel::kernel::Program, dims: &Dims, budget: u128) -> bool {
        let env = size_env(dims, p.chunk, p.hierarchical);
        let need = loglinear_kernel::resources::scratch_bytes(p, &env);
        let caps = self.capabilities();
        let limit = caps.max_buffer_bytes.map_or(u128::MAX, u128::from);
        let largest = p
            .buffers
            .iter()
            .filter(|b| b.kind == loglinear_kernel::kernel::BufKind::Scratch)
            .map(|b| {
                b.shape.iter().fold(b.elem.size() as u128, |a, d| {
                    a.saturating_mul(loglinear_kernel::verify::dim_value(*d, &env) as u128)
                })
            })
            .max()
            .unwrap_or(0);
        need <= budget
            && largest <= limit
            && (caps.index64 || loglinear_kernel::verify::check_offsets_32(p, &env).is_ok())
    }

    /// The tuned configuration ([`crate::tune`]) for a run of `variant` at `dims` on inputs held in `dtype`:
    /// `None` unless `opts` leaves the configuration to the runtime ([`RunOptions::uses_tuning`]), the runtime's
    /// tuning cache has an entry for the key (same backend, device, compiler, variant, K, V, dtype, T and B·H
    /// buckets), and that configuration is still one this backend runs and whose scratch fits `opts.max_scratch`
    /// at these sizes. A lookup in memory only (the cache file is re-read when it changed): never a search.
    pub fn tuned_config(
        &self,
        variant: &VariantIr,
        dims: &Dims,
        dtype: DType,
        opts: &RunOptions,
    ) -> Option<ScheduleConfig> {
        if !opts.uses_tuning() {
            return None;
        }
        self.target()?;
        let shape = (dims.b, dims.t, dims.h, dims.k, dims.v);
        let mut made = None;
        let entry = self.runtime.tuning.lookup_with(|| {
            let key = crate::tune::TuneKey::new(self, variant, shape, dtype);
            made = Some(key.clone());
            key
        })?;
        let key = made?;
        let config = match entry.schedule() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%key, "ignoring a tuning cache entry that does not parse: {e}");
                return None;
            }
        };
        if let Err(e) = self.config(variant, &RunOptions::with_config(config)) {
            tracing::warn!(%key, %config, "ignoring a tuned configuration this backend refuses: {e}");
            return None;
        }
        if config.v_block.is_some_and(|vb| !dims.v.is_multiple_of(vb)) {
            return None;
        }
        let budget = opts.max_scratch.unwrap_or_else(default_max_scratch) as u128;
        if config.form != ScanForm::Streaming && !self.fits(variant, dims, &config, budget) {
            tracing::info!(%config, "tuned configuration over the scratch budget or the target's limits at these sizes");
            return None;
        }
        tracing::debug!(%key, %config, "tuned configuration");
        Some(config)
    }

    /// The configuration of a run at `dims` on inputs in `dtype`: the tuned one ([`Backend::tuned_config`]),
    /// else [`Backend::config_for`]; and whether it came from the tuning cache.
    ///
    /// # Errors
    /// As [`Backend::config`].
    pub fn run_config(
        &self,
        variant: &VariantIr,
        dims: &Dims,
        dtype: DType,
        opts: &RunOptions,
    ) -> Result<(ScheduleConfig, bool), RuntimeError> {
        match self.tuned_config(variant, dims, dtype, opts) {
            Some(c) => Ok((c, true)),
            None => Ok((self.config_for(variant, dims, opts)?, false)),
        }
    }

    /// The configuration [`Backend::run`] would use for `inputs` with `opts`, and whether it is a tuned one.
    ///
    /// # Errors
    /// [`RuntimeError::Input`] for inputs that do not fit the variant; as [`Backend::config`].
    pub fn config_for_inputs(
        &self,
        variant: &VariantIr,
        inputs: &Bindings<'_>,
        opts: &RunOptions,
    ) -> Result<(ScheduleConfig, bool), RuntimeError> {
        let dims = check_inputs(variant, inputs)?;
        let dtype = crate::tune::input_dtype(variant, |n| inputs.get(n).map(|t| t.dtype));
        self.run_config(variant, &dims, dtype, opts)
    }

    /// Runs `variant` on typed inputs: see [`Runtime::run`].
    ///
    /// # Errors
    /// As [`Runtime::run`].
    pub fn run(&self, variant: &VariantIr, inputs: &Bindings<'_>, opts: &RunOptions) -> Result<Ran, RuntimeError> {
        let dims = check_inputs(variant, inputs)?;
        let dtype = crate::tune::input_dtype(variant, |n| inputs.get(n).map(|t| t.dtype));
        let (config, _) = self.run_config(variant, &dims, dtype, opts)?;
        let _span = tracing::debug_span!("run", backend = self.name(), variant = %variant.name, %config).entered();
        match self.kind {
            BackendKind::Reference => {
                let map: TensorMap =
                    inputs.iter().map(|(n, t)| (n.clone(), HostTensor::new(t.shape.to_vec(), t.to_f64()))).collect();
                let o = loglinear_oracle::run(variant, &map, Form::Chunked(config.chunk))?;
                Ok(Ran { o: Tensor::from_f64(DType::F64, o.shape, &o.data), config, dims })
            }
            BackendKind::Target(_) => {
                let max_t = loglinear_kernel::passes::specialise::MAX_TOKENS;
                if dims.t > max_t {
                    return Err(RuntimeError::InvalidArgument {
                        argument: "T".into(),
                        value: dims.t.to_string(),
                        expected: format!("at most {max_t} tokens per sequence"),
                    });
                }
                let exec = self.runtime.compile_for(self, variant, dims.k, dims.v, &config)?;
                let env = size_env(&dims, config.chunk, exec.program().hierarchical);
                if !self.capabilities().index64 {
                    loglinear_kernel::verify::check_offsets_32(exec.program(), &env)
                        .map_err(|what| RuntimeError::Unsupported { backend: self.name().into(), what })?;
                }
                let o = exec.run(&env, inputs).map_err(|e| self.target_error(e))?;
                Ok(Ran { o, config, dims })
            }
        }
    }

    /// Runs on f64 host tensors (converted to the configuration's storage type on the way in) and returns `o`
    /// in f64: the convenience of tests, oracles and small problems.
    ///
    /// # Errors
    /// As [`Runtime::run`].
    pub fn run_f64(
        &self,
        variant: &VariantIr,
        inputs: &TensorMap,
        opts: &RunOptions,
    ) -> Result<HostTensor, RuntimeError> {
        let config = self.config(variant, opts)?;
        let stored: BTreeMap<String, Tensor> = inputs
            .iter()
            .map(|(n, t)| {
                if t.data.len() != t.shape.iter().product::<usize>() {
                    return Err(RuntimeError::Internal(format!("host tensor `{n}` does not fill its shape")));
                }
                Ok((n.clone(), Tensor::from_f64(config.storage, t.shape.clone(), &t.data)))
            })
            .collect::<Result<_, _>>()?;
        let views: Bindings<'_> = stored.iter().map(|(n, t)| (n.clone(), t.view())).collect();
        let o = self.run(variant, &views, &RunOptions::with_config(config))?.o;
        Ok(HostTensor::new(o.shape().to_vec(), o.to_f64()))
    }

    /// Checks `inputs` against `variant` (shapes, dtypes, values: once, here) and uploads them into the
    /// backend's memory, for any number of [`Backend::run_resident`] calls.
    ///
    /// # Errors
    /// [`RuntimeError::Input`] for inputs that do not fit the variant; [`RuntimeError::Backend`] when the
    /// device cannot take them.
    pub fn upload(&self, variant: &VariantIr, inputs: &Bindings<'_>) -> Result<ResidentInputs, RuntimeError> {
        let dims = check_inputs(variant, inputs)?;
        let mut tensors = BTreeMap::new();
        for (n, t) in inputs {
            let d = match self.kind {
                BackendKind::Reference => DeviceTensor::host(t.to_owned()),
                BackendKind::Target(target) => target.upload(*t).map_err(|e| self.target_error(e))?,
            };
            tensors.insert(n.clone(), d);
        }
        Ok(ResidentInputs { variant: variant.to_string(), backend: self.name(), dims, tensors, held_as: None })
    }

    /// Runs `variant` on inputs already in the backend's memory ([`Backend::upload`]) and leaves `o` there:
    /// nothing is checked, converted or copied again. Returns `o` and the configuration used.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidArgument`] for inputs uploaded for another variant or backend; as
    /// [`Backend::run`] otherwise.
    pub fn run_resident(
        &self,
        variant: &VariantIr,
        inputs: &ResidentInputs,
        opts: &RunOptions,
    ) -> Result<(DeviceTensor, ScheduleConfig), RuntimeError> {
        if inputs.backend != self.name() || inputs.variant != variant.to_string() {
            return Err(RuntimeError::InvalidArgument {
                argument: "resident inputs".into(),
                value: format!("uploaded to backend `{}`", inputs.backend),
                expected: format!("inputs uploaded for variant `{}` to backend `{}`", variant.name, self.name()),
            });
        }
        let dims = inputs.dims;
        let dtype = inputs.input_dtype(variant);
        let (config, _) = self.run_config(variant, &dims, dtype, opts)?;
        match self.kind {
            BackendKind::Reference => {
                let views = host_views(&inputs.bindings()).map_err(|e| self.target_error(e))?;
                let ran = self.run(variant, &views, &RunOptions::with_config(config))?;
                Ok((DeviceTensor::host(ran.o), config))
            }
            BackendKind::Target(_) => {
                let exec = self.runtime.compile_for(self, variant, dims.k, dims.v, &config)?;
                let env = size_env(&dims, config.chunk, exec.program().hierarchical);
                if !self.capabilities().index64 {
                    loglinear_kernel::verify::check_offsets_32(exec.program(), &env)
                        .map_err(|what| RuntimeError::Unsupported { backend: self.name().into(), what })?;
                }
                let o = exec.run_resident(&env, &inputs.bindings()).map_err(|e| self.target_error(e))?;
                Ok((o, config))
            }
        }
    }

    /// Reads a tensor of this backend's memory back to the host.
    ///
    /// # Errors
    /// [`RuntimeError::Backend`] for a tensor of another backend's memory or a device error.
    pub fn download(&self, t: &DeviceTensor) -> Result<Tensor, RuntimeError> {
        match self.kind {
            BackendKind::Reference => t.as_host().cloned().ok_or_else(|| RuntimeError::Backend {
                backend: self.name().into(),
                message: format!("a tensor in {} memory is not host memory", t.memory()),
            }),
            BackendKind::Target(target) => target.download(t).map_err(|e| self.target_error(e)),
        }
    }

    pub(crate) fn target_error(&self, e: TargetError) -> RuntimeError {
        match e {
            TargetError::Unsupported { target, what } => RuntimeError::Unsupported { backend: target, what },
            other => RuntimeError::Backend { backend: self.name().into(), message: other.to_string() },
        }
    }
}

/// What a compiled executable is specialised on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    target: &'static str,
    device: String,
    /// The variant's text form: two variants with the same text compile alike.
    variant: String,
    k: usize,
    v: usize,
    config: ScheduleConfig,
    /// The decode-step program (else the forward one).
    decode: bool,
}

/// Backends by name, the pipeline, and the compiled-kernel cache.
pub struct Runtime {
    backends: Vec<BackendKind>,
    cache: KernelCache<CacheKey, Arc<dyn Executable>>,
    pub(crate) tuning: crate::tune::TuneStore,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::with_defaults()
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("backends", &self.names()).field("compiles", &self.compile_count()).finish()
    }
}

impl Runtime {
    /// A runtime with no backend.
    pub fn empty() -> Self {
        Runtime { backends: Vec::new(), cache: KernelCache::new(), tuning: crate::tune::TuneStore::default() }
    }

    /// Keeps this runtime's tuning cache in `dir` (`None`: the directory [`crate::tune::default_cache_dir`]
    /// names at each lookup, the default). Tests and embedders use it to stay off the user's cache.
    pub fn set_tune_cache_dir(&mut self, dir: Option<PathBuf>) {
        self.tuning.set_dir(dir);
    }

    /// This runtime with its tuning cache in `dir` (see [`Runtime::set_tune_cache_dir`]).
    pub fn with_tune_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.set_tune_cache_dir(Some(dir.into()));
        self
    }

    /// The tuning cache runs consult and `tune` writes; `None` when no directory is configured or set in the
    /// environment.
    pub fn tune_cache(&self) -> Option<crate::tune::TuneCache> {
        self.tuning.cache()
    }

    /// The backends every build has: `reference` (the f64 oracle), `interpreter` (kernel IR in f64) and
    /// `interpreter-f32`.
    pub fn with_defaults() -> Self {
        let mut r = Self::empty();
        r.backends.push(BackendKind::Reference);
        r.register(Arc::new(loglinear_kernel::interp::InterpreterTarget::f64()));
        r.register(Arc::new(loglinear_kernel::interp::InterpreterTarget::f32()));
        r
    }

    /// Adds a target; one of the same name is replaced in place.
    pub fn register(&mut self, target: Arc<dyn Target>) {
        let name = target.name();
        let kind = BackendKind::Target(target);
        match self.backends.iter().position(|b| self.backend_name(b) == name) {
            Some(i) => self.backends[i] = kind,
            None => self.backends.push(kind),
        }
    }

    fn backend_name(&self, b: &BackendKind) -> &'static str {
        Backend { runtime: self, kind: b }.name()
    }

    /// A backend by name.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownBackend`], listing the registered names.
    pub fn get(&self, name: &str) -> Result<Backend<'_>, RuntimeError> {
        self.iter().find(|b| b.name() == name).ok_or_else(|| RuntimeError::UnknownBackend {
            name: name.to_string(),
            known: if self.backends.is_empty() { "(none)".into() } else { self.names().join(", ") },
        })
    }

    /// The backends, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = Backend<'_>> {
        self.backends.iter().map(move |kind| Backend { runtime: self, kind })
    }

    /// The backends that can run on this machine ([`Backend::availability`]), in registration order.
    pub fn available(&self) -> Vec<Backend<'_>> {
        self.iter().filter(|b| b.availability().is_ok()).collect()
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(|b| b.name()).collect()
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether no backend is registered.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Runs `variant` on `backend` with typed inputs (checked on their own dtype, never widened to f64 unless
    /// the backend is the oracle) and returns `o` in the configuration's storage type, with the configuration
    /// used and the problem sizes.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownBackend`], [`RuntimeError::Input`] for inputs that do not fit the variant,
    /// [`RuntimeError::ChunkSize`] / [`RuntimeError::Config`] / [`RuntimeError::Unsupported`] for a
    /// configuration the backend cannot run, [`RuntimeError::Backend`] when the backend fails.
    pub fn run(
        &self,
        variant: &VariantIr,
        backend: &str,
        inputs: &Bindings<'_>,
        opts: &RunOptions,
    ) -> Result<Ran, RuntimeError> {
        self.get(backend)?.run(variant, inputs, opts)
    }

    /// The compiled program for `variant` on `backend` at key and value dimensions `k`, `v` with `config`
    /// (compiled on first use, then served from the cache).
    ///
    /// # Errors
    /// [`RuntimeError::UnknownBackend`]; [`RuntimeError::Unsupported`] when the backend is the oracle or lacks a
    /// capability; [`RuntimeError::Backend`] when the pipeline or the target fails.
    pub fn compile(
        &self,
        variant: &VariantIr,
        backend: &str,
        k: usize,
        v: usize,
        config: &ScheduleConfig,
    ) -> Result<Arc<dyn Executable>, RuntimeError> {
        let b = self.get(backend)?;
        self.compile_for(&b, variant, k, v, config)
    }

    fn compile_for(
        &self,
        b: &Backend<'_>,
        variant: &VariantIr,
        k: usize,
        v: usize,
        config: &ScheduleConfig,
    ) -> Result<Arc<dyn Executable>, RuntimeError> {
        self.compile_program(b, variant, k, v, config, false)
    }

    pub(crate) fn compile_program(
        &self,
        b: &Backend<'_>,
        variant: &VariantIr,
        k: usize,
        v: usize,
        config: &ScheduleConfig,
        decode: bool,
    ) -> Result<Arc<dyn Executable>, RuntimeError> {
        let target = b.target().ok_or_else(|| RuntimeError::Unsupported {
            backend: b.name().into(),
            what: "compiling kernel IR (it is the f64 oracle)".into(),
        })?;
        let key = CacheKey {
            target: target.name(),
            device: target.device(),
            variant: variant.to_string(),
            k,
            v,
            config: *config,
            decode,
        };
        self.cache
            .get_or_compile(&key, |_| {
                let start = Instant::now();
                let caps = target.capabilities();
                if decode && !caps.decode {
                    return Err(RuntimeError::Unsupported {
                        backend: b.name().into(),
                        what: "the decode-step program".into(),
                    });
                }
                let program = b.program(variant, k, v, config, decode)?;
                let pipeline = start.elapsed();
                let exec = target.compile(&program, config).map_err(|e| b.target_error(e))?;
                tracing::info!(
                    backend = b.name(),
                    variant = %variant.name,
                    k, v, %config,
                    pipeline_ms = pipeline.as_secs_f64() * 1e3,
                    compile_ms = exec.stats().total.as_secs_f64() * 1e3,
                    "compiled"
                );
                Ok(exec)
            })
            .map(|e| (*e).clone())
    }

    /// Number of programs compiled so far (a cache hit compiles nothing).
    pub fn compile_count(&self) -> u64 {
        self.cache.compile_count()
    }
}

/// Sizes of a problem from checked input dimensions.
pub fn size_env(dims: &Dims, chunk: usize, hierarchical: bool) -> SizeEnv {
    SizeEnv::new(dims.b, dims.t, dims.h, dims.k, dims.v, dims.l, chunk, hierarchical)
}

/// Views of owned tensors, for [`Runtime::run`].
pub fn views(tensors: &BTreeMap<String, Tensor>) -> Bindings<'_> {
    tensors.iter().map(|(n, t)| (n.clone(), t.view())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use loglinear_ir::builtins;
    use loglinear_ir::random::random_inputs;

    #[test]
    fn chunk_sizes() {
        for c in [1, 2, 64, 256] {
            assert_eq!(check_chunk_size(c).unwrap(), c);
        }
        for c in [0, 3, 12, 512] {
            let e = check_chunk_size(c).unwrap_err().to_string();
            assert!(e.contains("--chunk-size") && e.contains(&c.to_string()) && e.contains("power of two"), "{e}");
        }
    }

    #[test]
    fn resident_inputs_upload_once_and_run_many() {
        let r = Runtime::with_defaults();
        let v = builtins::by_name("loglinear_mamba2").unwrap();
        let x = random_inputs(&v, (1, 19, 2, 4, 3), 1, 3);
        let stored: BTreeMap<String, Tensor> =
            x.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(DType::F32, t.shape.clone(), &t.data))).collect();
        let opts = RunOptions::with_chunk_size(Some(4));
        for name in ["reference", "interpreter-f32"] {
            let b = r.get(name).unwrap();
            let want = b.run(&v, &views(&stored), &opts).unwrap().o;
            let up = b.upload(&v, &views(&stored)).unwrap();
            assert_eq!(up.dims().t, 19);
            for _ in 0..2 {
                let (o, _) = b.run_resident(&v, &up, &opts).unwrap();
                assert_eq!(b.download(&o).unwrap(), want, "{name}");
            }
            // Inputs uploaded for another variant, or to another backend, are refused.
            let other = builtins::by_name("loglinear_gla").unwrap();
            let e = b.run_resident(&other, &up, &opts).unwrap_err().to_string();
            assert!(e.contains("loglinear_gla"), "{e}");
        }
        let up = r.get("reference").unwrap().upload(&v, &views(&stored)).unwrap();
        let e = r.get("interpreter").unwrap().run_resident(&v, &up, &opts).unwrap_err().to_string();
        assert!(e.contains("uploaded to backend `reference`"), "{e}");
        // A bad input is refused at upload, naming it.
        let mut bad = stored.clone();
        bad.insert("g".into(), Tensor::from_f64(DType::F32, vec![1, 19, 2], &[1.0; 38]));
        let e = r.get("interpreter").unwrap().upload(&v, &views(&bad)).unwrap_err().to_string();
        assert!(e.contains('g'), "{e}");
    }

    #[test]
    fn the_default_form_turns_fused_when_per_level_scratch_is_over_budget() {
        let r = Runtime::with_defaults();
        let b = r.get("interpreter-f32").unwrap();
        let v = builtins::by_name("loglinear_mamba2").unwrap();
        let x = random_inputs(&v, (1, 300, 2, 4, 3), 0, 1);
        let dims = check_inputs(&v, &x).unwrap();
        let mut opts = RunOptions::with_chunk_size(Some(4));
        assert_eq!(b.config_for(&v, &dims, &opts).unwrap().form, ScanForm::PerLevel);
        opts.max_scratch = Some(1000);
        assert_eq!(b.config_for(&v, &dims, &opts).unwrap().form, ScanForm::Streaming);
        // Resident runs pick the form the same way.
        let stored: BTreeMap<String, Tensor> =
            x.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(DType::F32, t.shape.clone(), &t.data))).collect();
        let up = b.upload(&v, &views(&stored)).unwrap();
        assert_eq!(b.run_resident(&v, &up, &opts).unwrap().1.form, ScanForm::Streaming);
        // A budget the fused form fits and the per-level form does not: fused.
        let need = |form| {
            let config = ScheduleConfig { form, ..ScheduleConfig::with_chunk(4) };
            let mut p = loglinear_schedule::compile(&v, &config).unwrap().forward;
            p.set_types(DType::F32, DType::F32);
            loglinear_kernel::resources::scratch_bytes(&p, &size_env(&dims, 4, p.hierarchical))
        };
        let (per_level, fused) = (need(ScanForm::PerLevel), need(ScanForm::Fused));
        assert!(fused < per_level, "fused {fused} per-level {per_level}");
        opts.max_scratch = Some(fused as u64);
        assert_eq!(b.config_for(&v, &dims, &opts).unwrap().form, ScanForm::Fused);
        opts.max_scratch = Some(1000);
        // Fixing other fields (`--config storage=bf16`) leaves the form to the runtime; fixing the form keeps it.
        opts.overrides = "storage=bf16".parse().unwrap();
        let c = b.config_for(&v, &dims, &opts).unwrap();
        assert_eq!((c.form, c.storage, c.chunk), (ScanForm::Streaming, DType::BF16, 4));
        opts.overrides.form = Some(ScanForm::PerLevel);
        assert_eq!(b.config_for(&v, &dims, &opts).unwrap().form, ScanForm::PerLevel);
        opts.overrides = ConfigOverrides::default();
        // A configuration fixed by the caller is kept.
        opts.config = Some(ScheduleConfig::with_chunk(4));
        assert_eq!(b.config_for(&v, &dims, &opts).unwrap().form, ScanForm::PerLevel);
        assert!(default_max_scratch() >= 1 << 20);
    }

    #[test]
    fn lookup_and_replace() {
        let mut r = Runtime::with_defaults();
        assert_eq!(r.names(), vec!["reference", "interpreter", "interpreter-f32"]);
        let e = r.get("cranelift").err().unwrap().to_string();
        assert!(e.contains("`cranelift`") && e.contains("reference"), "{e}");
        r.register(Arc::new(loglinear_kernel::InterpreterTarget::f64()));
        assert_eq!(r.len(), 3, "same name replaces");
    }

    #[test]
    fn reference_and_interpreter_match_naive_and_share_one_compile() {
        let r = Runtime::with_defaults();
        let v = builtins::by_name("loglinear_gla").unwrap();
        let x = random_inputs(&v, (1, 21, 2, 4, 3), 1, 7);
        let want = loglinear_oracle::run(&v, &x, Form::Naive).unwrap();
        for name in ["reference", "interpreter"] {
            let got = r.get(name).unwrap().run_f64(&v, &x, &RunOptions::with_chunk_size(Some(4))).unwrap();
            assert_eq!(got.shape, want.shape);
            let err: f64 = got.data.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-12, "{name}: {err}");
        }
        assert_eq!(r.compile_count(), 1, "the oracle compiles nothing");
        let e = r.get("reference").unwrap().run_f64(&v, &x, &RunOptions::with_chunk_size(Some(12))).unwrap_err();
        assert!(matches!(e, RuntimeError::ChunkSize { value: 12, .. }));
        // A configuration the backend cannot run is refused by its capabilities.
        let bf16 = ScheduleConfig { storage: DType::BF16, ..ScheduleConfig::with_chunk(4) };
        let e = r.get("interpreter").unwrap().run_f64(&v, &x, &RunOptions::with_config(bf16)).unwrap_err();
        assert!(matches!(e, RuntimeError::Unsupported { .. }) && e.to_string().contains("bf16"), "{e}");
    }
}
