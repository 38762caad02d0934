//! [`CraneliftBackend`]: the kernel IR of a variant, translated to CLIF, JIT-compiled once per specialisation and
//! run in f32 on all cores.

use std::sync::{Arc, OnceLock};

use loglinear_ir::{check_inputs, HostTensor, TensorMap, VariantIr};
use loglinear_runtime::{f32_tolerance, resolve_chunk_size, Backend, RunOptions, RuntimeError};
use loglinear_schedule::verify::check_bounds;
use loglinear_schedule::{ScanForm, ScheduleOptions, SizeEnv};

use crate::cache::KernelCache;
use crate::exec::CompiledProgram;
use crate::jit::JitModule;
use crate::translate::Specialisation;

/// What a compiled program is specialised on: the variant (its full text form), K, V, C, the scan form and L.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProgramKey {
    /// The variant's text form (name, inputs, expressions): two variants with the same text compile alike.
    pub variant: String,
    /// Compile-time sizes.
    pub spec: Specialisation,
    /// Inter-chunk scan form.
    pub form: ScanForm,
}

/// The Cranelift JIT backend (`cranelift`): compiles the variant through the pass pipeline, translates each
/// kernel of the forward program to CLIF (specialised on K, V, C, L and the scan form), caches the compiled
/// program, and runs it in f32 with each kernel's grid spread over `std::thread::available_parallelism()` workers.
///
/// Handles made by [`CraneliftBackend::shared`] share one process-wide JIT and kernel cache, so that a
/// program compiled for one run is reused by every later run in the process.
#[derive(Clone)]
pub struct CraneliftBackend {
    inner: Arc<Inner>,
    form: ScanForm,
    threads: usize,
}

#[derive(Default)]
struct Inner {
    jit: OnceLock<Result<JitModule, String>>,
    cache: KernelCache<ProgramKey, CompiledProgram>,
}

impl std::fmt::Debug for CraneliftBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CraneliftBackend")
            .field("form", &self.form)
            .field("threads", &self.threads)
            .field("cache", &self.inner.cache)
            .finish()
    }
}

impl Default for CraneliftBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CraneliftBackend {
    /// A backend with its own (empty) kernel cache, the per-level scan form and one worker per available core.
    pub fn new() -> Self {
        Self::with_inner(Arc::new(Inner::default()))
    }

    /// A handle on the process-wide backend: its kernel cache is shared by every handle made by `shared`.
    pub fn shared() -> Self {
        static INNER: OnceLock<Arc<Inner>> = OnceLock::new();
        Self::with_inner(INNER.get_or_init(|| Arc::new(Inner::default())).clone())
    }

    fn with_inner(inner: Arc<Inner>) -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        CraneliftBackend { inner, form: ScanForm::PerLevel, threads }
    }

    /// The same backend using scan form `form`.
    pub fn with_form(mut self, form: ScanForm) -> Self {
        self.form = form;
        self
    }

    /// The same backend with `threads` workers (at least 1).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The scan form used by [`Backend::run`].
    pub fn form(&self) -> ScanForm {
        self.form
    }

    /// Number of programs compiled so far (each is one specialisation; a cache hit compiles nothing).
    pub fn compile_count(&self) -> u64 {
        self.inner.cache.compile_count()
    }

    /// Number of kernel functions JIT-compiled so far.
    pub fn kernel_compile_count(&self) -> u64 {
        match self.inner.jit.get() {
            Some(Ok(j)) => j.compile_count(),
            _ => 0,
        }
    }

    fn err(&self, message: impl Into<String>) -> RuntimeError {
        RuntimeError::Backend { backend: "cranelift".to_string(), message: message.into() }
    }

    fn jit(&self) -> Result<&JitModule, RuntimeError> {
        self.inner
            .jit
            .get_or_init(|| JitModule::new().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| self.err(e.clone()))
    }

    /// The compiled program for `variant` at chunk size `chunk` and scan form `form` for the sizes of `inputs`
    /// (compiled on first use, then served from the cache), with the run's sizes.
    ///
    /// # Errors
    /// [`RuntimeError::Input`] for inputs that do not fit the variant; [`RuntimeError::Backend`] when the
    /// pipeline or the JIT fails.
    pub fn prepare(
        &self,
        variant: &VariantIr,
        inputs: &TensorMap,
        chunk: usize,
        form: ScanForm,
    ) -> Result<(Arc<CompiledProgram>, SizeEnv), RuntimeError> {
        let dims = check_inputs(variant, inputs)?;
        let spec = Specialisation { k: dims.k, v: dims.v, c: chunk, l: dims.l.max(1) };
        let key = ProgramKey { variant: variant.to_string(), spec, form };
        let jit = self.jit()?;
        let prog = self.inner.cache.get_or_compile(&key, |_| {
            let compiled = loglinear_schedule::compile(variant, &ScheduleOptions { chunk_size: Some(chunk), form })
                .map_err(|e| self.err(e.to_string()))?;
            CompiledProgram::compile(jit, &compiled.forward, spec).map_err(|e| self.err(e.to_string()))
        })?;
        let env = SizeEnv::new(&dims, chunk, prog.program().hierarchical);
        Ok((prog, env))
    }

    /// Runs `variant` with an explicit scan form (see [`Backend::run`]).
    ///
    /// # Errors
    /// As [`Backend::run`].
    pub fn run_with_form(
        &self,
        variant: &VariantIr,
        inputs: &TensorMap,
        opts: &RunOptions,
        form: ScanForm,
    ) -> Result<HostTensor, RuntimeError> {
        let c = resolve_chunk_size(variant, opts)?;
        let _span = tracing::debug_span!("cranelift", variant = %variant.name, chunk = c).entered();
        let (prog, env) = self.prepare(variant, inputs, c, form)?;
        // The generated code does no bounds checks of its own: check every access for these sizes first.
        check_bounds(prog.program(), &env).map_err(|e| {
            let msgs: Vec<String> = e.iter().map(|x| x.to_string()).collect();
            self.err(format!("kernel IR out of bounds for {env}: {}", msgs.join("; ")))
        })?;
        prog.run(inputs, &env, self.threads).map_err(|e| self.err(e.to_string()))
    }
}

impl Backend for CraneliftBackend {
    fn name(&self) -> &'static str {
        "cranelift"
    }

    fn description(&self) -> &'static str {
        "kernel IR JIT-compiled with Cranelift, f32, multi-threaded"
    }

    fn run(&self, variant: &VariantIr, inputs: &TensorMap, opts: &RunOptions) -> Result<HostTensor, RuntimeError> {
        self.run_with_form(variant, inputs, opts, self.form)
    }

    fn tolerance(&self, variant: &VariantIr) -> f64 {
        f32_tolerance(variant)
    }
}
