//! Backends and their registry.

use loglinear_ir::{HostTensor, TensorMap, VariantIr, MAX_CHUNK_SIZE};
use loglinear_oracle::Form;
use loglinear_schedule::{Precision, ScanForm, ScheduleOptions};

use crate::error::RuntimeError;

/// Relative-error tolerance of an f64 backend against the naive oracle.
pub const DEFAULT_TOLERANCE: f64 = 1e-12;

/// Options of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Chunk size; `None` uses the variant's default ([`VariantIr::chunk_size`]). Must be a power of two in
    /// `1..=256` ([`MAX_CHUNK_SIZE`]).
    pub chunk_size: Option<usize>,
}

impl RunOptions {
    /// Options with this chunk size.
    pub fn with_chunk_size(chunk_size: Option<usize>) -> Self {
        RunOptions { chunk_size }
    }
}

/// Checks a chunk size: a power of two in `1..=`[`MAX_CHUNK_SIZE`].
///
/// # Errors
/// [`RuntimeError::ChunkSize`], naming `--chunk-size`, the value and what is expected.
pub fn check_chunk_size(c: usize) -> Result<usize, RuntimeError> {
    if c.is_power_of_two() && c <= MAX_CHUNK_SIZE {
        Ok(c)
    } else {
        Err(RuntimeError::ChunkSize { value: c, max: MAX_CHUNK_SIZE })
    }
}

/// The chunk size a run uses: `opts.chunk_size`, or else the variant's, checked with [`check_chunk_size`].
pub fn resolve_chunk_size(variant: &VariantIr, opts: &RunOptions) -> Result<usize, RuntimeError> {
    check_chunk_size(opts.chunk_size.unwrap_or(variant.chunk_size))
}

/// Something that evaluates a variant: `o = variant(inputs)`, of shape `[B, T, H, V]`.
///
/// Implementations must validate their inputs (with [`loglinear_ir::check_inputs`], or by going through
/// [`loglinear_ir::resolve`]) and return [`RuntimeError::Input`] rather than panic on bad input.
pub trait Backend: Send + Sync {
    /// The backend's name, as given to `--backend`.
    fn name(&self) -> &'static str;

    /// One line saying what the backend is.
    fn description(&self) -> &'static str {
        ""
    }

    /// Runs `variant` on `inputs` and returns `o` (`[B, T, H, V]`).
    fn run(&self, variant: &VariantIr, inputs: &TensorMap, opts: &RunOptions) -> Result<HostTensor, RuntimeError>;

    /// The relative error (‖o − ref‖ / ‖ref‖ against the naive f64 oracle) this backend is expected to stay
    /// within on `variant`. Defaults to [`DEFAULT_TOLERANCE`], right for f64 backends.
    fn tolerance(&self, variant: &VariantIr) -> f64 {
        let _ = variant;
        DEFAULT_TOLERANCE
    }
}

/// The f64 reference: the oracle's per-level chunked scan ([`Form::Chunked`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceBackend;

impl Backend for ReferenceBackend {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn description(&self) -> &'static str {
        "f64 oracle, per-level chunked scan (slow, exact)"
    }

    fn run(&self, variant: &VariantIr, inputs: &TensorMap, opts: &RunOptions) -> Result<HostTensor, RuntimeError> {
        let c = resolve_chunk_size(variant, opts)?;
        let _span = tracing::debug_span!("reference", variant = %variant.name, chunk = c).entered();
        Ok(loglinear_oracle::run(variant, inputs, Form::Chunked(c))?)
    }
}

/// The kernel-IR interpreter of `loglinear-schedule`: compiles the variant through the pass pipeline (validate,
/// classify, schedule, lower, verify) for the run's chunk size and executes the kernel IR in f64 or f32.
#[derive(Clone, Copy, Debug)]
pub struct InterpreterBackend {
    precision: Precision,
    form: ScanForm,
}

impl InterpreterBackend {
    /// The f64 interpreter (`interpreter`), per-level scans.
    pub fn f64() -> Self {
        InterpreterBackend { precision: Precision::F64, form: ScanForm::PerLevel }
    }

    /// The f32 interpreter (`interpreter-f32`), per-level scans.
    pub fn f32() -> Self {
        InterpreterBackend { precision: Precision::F32, form: ScanForm::PerLevel }
    }
}

impl Backend for InterpreterBackend {
    fn name(&self) -> &'static str {
        match self.precision {
            Precision::F64 => "interpreter",
            Precision::F32 => "interpreter-f32",
        }
    }

    fn description(&self) -> &'static str {
        match self.precision {
            Precision::F64 => "kernel-IR interpreter, f64 (checks the lowering exactly)",
            Precision::F32 => "kernel-IR interpreter, f32 arithmetic",
        }
    }

    fn run(&self, variant: &VariantIr, inputs: &TensorMap, opts: &RunOptions) -> Result<HostTensor, RuntimeError> {
        let c = resolve_chunk_size(variant, opts)?;
        let _span = tracing::debug_span!("interpreter", variant = %variant.name, chunk = c).entered();
        let compiled = loglinear_schedule::compile(variant, &ScheduleOptions { chunk_size: Some(c), form: self.form })
            .map_err(|e| RuntimeError::Backend { backend: self.name().to_string(), message: e.to_string() })?;
        Ok(loglinear_schedule::interpret(&compiled, inputs, self.precision)?)
    }

    fn tolerance(&self, variant: &VariantIr) -> f64 {
        match self.precision {
            Precision::F64 => DEFAULT_TOLERANCE,
            Precision::F32 => f32_tolerance(variant),
        }
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

/// Backends by name, in registration order.
pub struct BackendRegistry {
    backends: Vec<Box<dyn Backend>>,
}

impl Default for BackendRegistry {
    fn default() -> Self {
        Self::with_defaults()
    }
}

impl std::fmt::Debug for BackendRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendRegistry").field("backends", &self.names()).finish()
    }
}

impl BackendRegistry {
    /// A registry with no backend.
    pub fn empty() -> Self {
        BackendRegistry { backends: Vec::new() }
    }

    /// The backends this crate provides: `reference`, `interpreter`, `interpreter-f32`.
    pub fn with_defaults() -> Self {
        let mut r = Self::empty();
        r.register(Box::new(ReferenceBackend));
        r.register(Box::new(InterpreterBackend::f64()));
        r.register(Box::new(InterpreterBackend::f32()));
        r
    }

    /// Adds a backend. A backend of the same name is replaced (in place) and returned.
    pub fn register(&mut self, backend: Box<dyn Backend>) -> Option<Box<dyn Backend>> {
        match self.backends.iter().position(|b| b.name() == backend.name()) {
            Some(i) => Some(std::mem::replace(&mut self.backends[i], backend)),
            None => {
                self.backends.push(backend);
                None
            }
        }
    }

    /// A backend by name.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownBackend`], listing the registered names.
    pub fn get(&self, name: &str) -> Result<&dyn Backend, RuntimeError> {
        self.backends.iter().find(|b| b.name() == name).map(|b| b.as_ref()).ok_or_else(|| {
            RuntimeError::UnknownBackend {
                name: name.to_string(),
                known: if self.backends.is_empty() { "(none)".into() } else { self.names().join(", ") },
            }
        })
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.name()).collect()
    }

    /// The registered backends, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Backend> {
        self.backends.iter().map(|b| b.as_ref())
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether no backend is registered.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }
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
    fn registry_lookup_and_replace() {
        let mut r = BackendRegistry::with_defaults();
        assert_eq!(r.names(), vec!["reference", "interpreter", "interpreter-f32"]);
        let e = r.get("cranelift").err().unwrap().to_string();
        assert!(e.contains("`cranelift`") && e.contains("reference"), "{e}");
        assert!(r.register(Box::new(ReferenceBackend)).is_some());
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn reference_matches_naive() {
        let v = builtins::by_name("loglinear_gla").unwrap();
        let x = random_inputs(&v, (1, 21, 2, 4, 3), 1, 7);
        let got = ReferenceBackend.run(&v, &x, &RunOptions::with_chunk_size(Some(4))).unwrap();
        let want = loglinear_oracle::run(&v, &x, Form::Naive).unwrap();
        assert_eq!(got.shape, want.shape);
        let err: f64 = got.data.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-12, "{err}");
        let e = ReferenceBackend.run(&v, &x, &RunOptions::with_chunk_size(Some(12))).unwrap_err();
        assert!(matches!(e, RuntimeError::ChunkSize { value: 12, .. }));
    }
}
