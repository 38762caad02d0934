//! # loglinear-bench: measuring backends against baselines
//!
//! The one place where loglinear's timings are taken, shared by `loglinear bench` (the CLI calls [`run_bench`])
//! and `cargo bench -p loglinear-bench` (divan calls the [`Workload`] methods directly).
//!
//! A [`Workload`] holds a variant's random inputs at one shape and chunk size, the same inputs restricted to its
//! linear form, and the inputs prepared for the hand-written f32 [`baseline`]. [`run_bench`] times, on the same
//! inputs and in the same process:
//!
//! * the variant on the chosen backend (first call, then `warmup` untimed calls and `reps` timed ones);
//! * with baselines: the `interpreter-f32` backend, the hand-written rustc baseline ([`baseline`]) and the linear
//!   (non-hierarchical) form of the variant on the chosen backend.
//!
//! GFLOP/s come from the cost model ([`loglinear_schedule::cost`]); the backend API has no compile-time hook, so
//! the compile overhead is reported as *first call − median*.
#![warn(missing_docs)]

pub mod baseline;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use loglinear_ir::random::random_inputs;
use loglinear_ir::{HostTensor, TensorMap, VariantIr};
use loglinear_runtime::{
    check_chunk_size, Backend, ConfigOverrides, DType, ResidentInputs, RunOptions, Runtime, RuntimeError,
    ScheduleConfig, Tensor,
};

use crate::baseline::{BaselineError, BaselineProblem};

pub mod decode;
pub use decode::{format_decode_report, run_decode_bench, DecodeReport, DecodeRow, DecodeSpec};

/// Problem sizes `(B, T, H, K, V)`.
pub type Shape = (usize, usize, usize, usize, usize);

/// The backend the baselines always include.
pub const INTERPRETER_F32: &str = "interpreter-f32";

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    /// The variant.
    pub variant: VariantIr,
    /// The backend's name (one of the registry's).
    pub backend: String,
    /// Problem sizes.
    pub shape: Shape,
    /// Chunk size; `None` uses the variant's.
    pub chunk_size: Option<usize>,
    /// Timed repetitions per row (≥ 1).
    pub reps: usize,
    /// Untimed calls after the first call, before the timed ones.
    pub warmup: usize,
    /// Also run the baselines (`interpreter-f32`, the rustc baseline, the linear form).
    pub baselines: bool,
    /// Threads of the rustc baseline (heads are split between them).
    pub baseline_threads: usize,
    /// Seed of the random inputs.
    pub seed: u64,
    /// The dtype the inputs are held in, as a user's file would hold them (f32, f16, bf16): the backend reads
    /// them in it.
    pub input_dtype: DType,
    /// Schedule fields fixed by `--config`; the rest (the scan form included, unless given) is the backend's
    /// pick at the chunk size.
    pub overrides: ConfigOverrides,
    /// Time the main row on device-resident inputs (uploaded once, untimed) with the output left on the device
    /// (`Backend::run_resident`): what a GPU figure means. Off: every call takes host tensors in and out.
    pub resident: bool,
    /// Ignore the tuning cache: the main row runs the backend's default pick even where `loglinear tune` left a
    /// tuned configuration (which it otherwise uses when neither a chunk size nor `overrides` is given).
    pub no_tune: bool,
}

impl BenchSpec {
    /// A spec with 5 repetitions, 1 warm-up call, no baselines, one baseline thread and seed 0.
    pub fn new(variant: VariantIr, backend: impl Into<String>, shape: Shape) -> Self {
        BenchSpec {
            variant,
            backend: backend.into(),
            shape,
            chunk_size: None,
            reps: 5,
            warmup: 1,
            input_dtype: DType::F32,
            baselines: false,
            baseline_threads: 1,
            seed: 0,
            overrides: ConfigOverrides::default(),
            resident: false,
            no_tune: false,
        }
    }

    /// The run options of the main row: the chunk size only when given (else the variant's, or a tuned
    /// configuration's when the tuning cache has one and nothing else is fixed).
    pub fn options(&self) -> RunOptions {
        RunOptions { overrides: self.overrides, no_tune: self.no_tune, ..RunOptions::with_chunk_size(self.chunk_size) }
    }

    /// The chunk size used: `chunk_size` or the variant's.
    pub fn chunk(&self) -> usize {
        self.chunk_size.unwrap_or(self.variant.chunk_size)
    }
}

/// A variant's inputs at one shape and chunk size, ready to be run by a backend, in its linear form, or by the
/// hand-written baseline. Building it is not timed.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The variant.
    pub variant: VariantIr,
    /// Its linear (non-hierarchical) form; `None` when the variant is already linear.
    pub linear: Option<VariantIr>,
    /// Problem sizes.
    pub shape: Shape,
    /// Chunk size.
    pub chunk: usize,
    /// Random inputs of `variant`.
    pub inputs: TensorMap,
    /// The same tensors, restricted to the inputs the linear form declares (λ dropped).
    pub linear_inputs: TensorMap,
    /// The inputs prepared for the hand-written baseline, or why it does not cover the variant.
    pub baseline: Result<BaselineProblem, String>,
    /// The inputs stored in the input dtype (f32 unless [`Workload::with_input_dtype`]; made once, as a user's
    /// file holds them): what a backend with f32 storage reads.
    pub typed: BTreeMap<String, Tensor>,
}

impl Workload {
    /// Random inputs (spec §11.5 distributions, seed `seed`) for `variant` at `shape`, chunk size `chunk`.
    ///
    /// # Errors
    /// [`RuntimeError::ChunkSize`] for a chunk size that is not a power of two in `1..=256`;
    /// [`RuntimeError::InvalidArgument`] for a zero size.
    pub fn new(variant: &VariantIr, shape: Shape, chunk: usize, seed: u64) -> Result<Self, RuntimeError> {
        check_chunk_size(chunk)?;
        check_shape(shape)?;
        let inputs = random_inputs(variant, shape, 0, seed);
        let linear = variant.is_log_linear().then(|| variant.linear_base());
        let linear_inputs = match &linear {
            Some(l) => {
                l.inputs.iter().filter_map(|d| inputs.get(&d.name).map(|t| (d.name.clone(), t.clone()))).collect()
            }
            None => inputs.clone(),
        };
        let baseline = match baseline::prepare(variant, &inputs) {
            Ok(p) => Ok(p),
            Err(BaselineError::Unsupported(why)) => Err(why),
            Err(e @ BaselineError::Input(_)) => {
                return Err(RuntimeError::Internal(format!("random inputs rejected by the baseline: {e}")))
            }
        };
        let typed =
            inputs.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(DType::F32, t.shape.clone(), &t.data))).collect();
        Ok(Workload { variant: variant.clone(), linear, shape, chunk, inputs, linear_inputs, baseline, typed })
    }

    /// The same workload with its inputs held in `dtype` (rounded to it: every row then computes on the same
    /// rounded values).
    pub fn with_input_dtype(mut self, dtype: DType) -> Self {
        for (n, t) in self.inputs.iter_mut() {
            let x = Tensor::from_f64(dtype, t.shape.clone(), &t.data);
            t.data = x.to_f64();
            self.typed.insert(n.clone(), x);
        }
        for (n, t) in self.linear_inputs.iter_mut() {
            if let Some(x) = self.typed.get(n) {
                t.data = x.to_f64();
            }
        }
        if let Ok(b) = baseline::prepare(&self.variant, &self.inputs) {
            self.baseline = Ok(b);
        }
        self
    }

    /// Runs the variant on `backend`.
    ///
    /// # Errors
    /// The backend's error.
    pub fn run_backend(&self, backend: &Backend<'_>) -> Result<HostTensor, RuntimeError> {
        run_typed(backend, &self.variant, &self.inputs, &self.typed, &RunOptions::with_chunk_size(Some(self.chunk)))
    }

    /// Runs the variant on `backend` with `opts`.
    ///
    /// # Errors
    /// The backend's error.
    pub fn run_backend_with(&self, backend: &Backend<'_>, opts: &RunOptions) -> Result<HostTensor, RuntimeError> {
        run_typed(backend, &self.variant, &self.inputs, &self.typed, opts)
    }

    /// The inputs converted to `dtype` (`None`: the inputs as held serve).
    fn converted(&self, dtype: DType, keep_f32: bool) -> Option<BTreeMap<String, Tensor>> {
        let held = self.typed.values().next().map(|t| t.dtype());
        let keep = dtype == DType::F64 || Some(dtype) == held || (keep_f32 && dtype == DType::F32);
        (!keep).then(|| {
            self.inputs.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(dtype, t.shape.clone(), &t.data))).collect()
        })
    }

    /// Views of the variant's inputs: `converted` when given, else the inputs as held.
    fn views<'a>(&'a self, converted: &'a Option<BTreeMap<String, Tensor>>) -> loglinear_runtime::Bindings<'a> {
        converted
            .as_ref()
            .unwrap_or(&self.typed)
            .iter()
            .filter(|(n, _)| self.variant.input_by_name(n).is_some())
            .map(|(n, t)| (n.clone(), t.view()))
            .collect()
    }

    /// The inputs in the storage type of the configuration the main row runs ([`Workload::main_config`]: the
    /// tuned one when the tuning cache has it), uploaded to `backend` once (a GPU backend reads resident inputs in
    /// the program's storage type).
    ///
    /// # Errors
    /// The backend's error.
    pub fn upload(&self, backend: &Backend<'_>, opts: &RunOptions) -> Result<ResidentInputs, RuntimeError> {
        let (config, _) = self.main_config(backend, opts)?;
        let converted = self.converted(config.storage, !reads_resident_in_storage(backend));
        let held = loglinear_runtime::tune::input_dtype(&self.variant, |n| self.typed.get(n).map(|t| t.dtype()));
        Ok(backend.upload(&self.variant, &self.views(&converted))?.held_as(held))
    }

    /// The configuration the main row runs with `opts` on `backend` (as [`Workload::run_backend_with`] binds the
    /// inputs), and whether it came from the tuning cache.
    ///
    /// # Errors
    /// The backend's error.
    pub fn main_config(
        &self,
        backend: &Backend<'_>,
        opts: &RunOptions,
    ) -> Result<(ScheduleConfig, bool), RuntimeError> {
        // Bound as `run_backend_with` binds them: held inputs for f32 storage, else the storage type.
        let converted = self.converted(backend.config(&self.variant, opts)?.storage, true);
        backend.config_for_inputs(&self.variant, &self.views(&converted), opts)
    }

    /// Runs the linear form on `backend`; `None` when the variant is already linear.
    ///
    /// # Errors
    /// The backend's error.
    pub fn run_linear(&self, backend: &Backend<'_>) -> Option<Result<HostTensor, RuntimeError>> {
        let l = self.linear.as_ref()?;
        Some(run_typed(backend, l, &self.linear_inputs, &self.typed, &RunOptions::with_chunk_size(Some(self.chunk))))
    }

    /// Runs the hand-written baseline on `threads` threads: `o` as `[B, T, H, V]` f32; `None` when it does not
    /// cover the variant.
    pub fn run_baseline(&self, threads: usize) -> Option<Vec<f32>> {
        self.baseline.as_ref().ok().map(|p| p.run(self.chunk, threads))
    }
}

/// Runs `variant` on `backend` through the typed path `loglinear run` takes: with `f32` (the inputs stored in
/// f32, made once, as a user's f32 file is) when the backend stores f32, else with the inputs converted to its
/// storage type; returns `o` in f64.
fn run_typed(
    backend: &Backend<'_>,
    variant: &VariantIr,
    inputs: &TensorMap,
    f32: &BTreeMap<String, Tensor>,
    opts: &RunOptions,
) -> Result<HostTensor, RuntimeError> {
    let storage = backend.config(variant, opts)?.storage;
    let converted: BTreeMap<String, Tensor>;
    let typed = if storage == DType::F32 {
        f32
    } else {
        converted =
            inputs.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(storage, t.shape.clone(), &t.data))).collect();
        &converted
    };
    let views: loglinear_runtime::Bindings<'_> =
        typed.iter().filter(|(n, _)| variant.input_by_name(n).is_some()).map(|(n, t)| (n.clone(), t.view())).collect();
    let o = backend.run(variant, &views, opts)?.o;
    Ok(HostTensor::new(o.shape().to_vec(), o.to_f64()))
}

/// What a row of the report measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    /// The variant on the chosen backend.
    Main,
    /// The variant on `interpreter-f32`.
    Interpreter,
    /// The hand-written rustc baseline.
    Rustc,
    /// The linear form of the variant on the chosen backend.
    Linear,
}

/// One measured (or skipped) row.
#[derive(Clone, Debug)]
pub struct Row {
    /// What it measures.
    pub kind: RowKind,
    /// Short label: the backend name, `rustc-baseline`, or `<backend> (linear)`.
    pub label: String,
    /// The variant run.
    pub variant: String,
    /// The first call (includes any compilation).
    pub first_call: Duration,
    /// The timed repetitions.
    pub samples: Vec<Duration>,
    /// FLOPs of one call, from the cost model (0 when unknown).
    pub flops: f64,
    /// Relative difference of this row's `o` from the main row's (`None` for the main row and the linear form).
    pub diff_vs_main: Option<f64>,
    /// Why the row was not measured.
    pub skipped: Option<String>,
}

impl Row {
    fn skipped(kind: RowKind, label: impl Into<String>, variant: &str, why: impl Into<String>) -> Self {
        Row {
            kind,
            label: label.into(),
            variant: variant.to_string(),
            first_call: Duration::ZERO,
            samples: Vec::new(),
            flops: 0.0,
            diff_vs_main: None,
            skipped: Some(why.into()),
        }
    }

    /// Median of the samples (mean of the middle two for an even count); zero without samples.
    pub fn median(&self) -> Duration {
        loglinear_runtime::tune::median(&self.samples).unwrap_or_default()
    }

    /// Fastest sample.
    pub fn min(&self) -> Duration {
        self.samples.iter().min().copied().unwrap_or_default()
    }

    /// Slowest sample.
    pub fn max(&self) -> Duration {
        self.samples.iter().max().copied().unwrap_or_default()
    }

    /// GFLOP/s at the median (0 when unknown).
    pub fn gflops(&self) -> f64 {
        let m = self.median().as_secs_f64();
        if m > 0.0 && self.flops > 0.0 {
            self.flops / m / 1e9
        } else {
            0.0
        }
    }

    /// First call minus median: the one-off cost of the first call (JIT compilation, caches), floored at zero.
    pub fn first_call_overhead(&self) -> Duration {
        self.first_call.saturating_sub(self.median())
    }
}

/// The result of [`run_bench`].
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// The variant.
    pub variant: String,
    /// The chosen backend.
    pub backend: String,
    /// Problem sizes.
    pub shape: Shape,
    /// Chunk size.
    pub chunk: usize,
    /// Timed repetitions per row.
    pub reps: usize,
    /// Untimed warm-up calls per row.
    pub warmup: usize,
    /// The inputs' dtype.
    pub input_dtype: DType,
    /// The main row's configuration.
    pub config: Option<ScheduleConfig>,
    /// Whether it came from the tuning cache.
    pub tuned: bool,
    /// Rows: the main one first.
    pub rows: Vec<Row>,
}

impl BenchReport {
    /// The row of this kind, if measured.
    pub fn row(&self, kind: RowKind) -> Option<&Row> {
        self.rows.iter().find(|r| r.kind == kind && r.skipped.is_none())
    }
}

/// One step of [`run_bench`], for progress display.
#[derive(Clone, Debug)]
pub struct Step<'a> {
    /// The row being measured.
    pub label: &'a str,
    /// What the call was: `first call`, `warm-up` or `rep`.
    pub phase: &'static str,
}

/// How many calls (steps) [`run_bench`] makes for `spec`, for a progress bar's length.
pub fn total_steps(spec: &BenchSpec) -> u64 {
    let per_row = 1 + spec.warmup + spec.reps;
    let rows = if spec.baselines { 4 } else { 1 };
    (per_row * rows) as u64
}

fn relative_diff(x: &HostTensor, r: &HostTensor) -> f64 {
    if x.shape != r.shape {
        return f64::INFINITY;
    }
    let d: f64 = x.data.iter().zip(&r.data).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
    let n: f64 = r.data.iter().map(|b| b * b).sum::<f64>().sqrt();
    if n == 0.0 {
        d
    } else {
        d / n
    }
}

/// Times `f`: one first call, `warmup` untimed calls, `reps` timed ones; returns (first call, samples, the first
/// call's output).
fn time_calls<T>(
    spec: &BenchSpec,
    label: &str,
    on_step: &mut dyn FnMut(Step<'_>),
    mut f: impl FnMut() -> Result<T, RuntimeError>,
) -> Result<(Duration, Vec<Duration>, T), RuntimeError> {
    let t0 = Instant::now();
    let out = f()?;
    let first = t0.elapsed();
    on_step(Step { label, phase: "first call" });
    for _ in 0..spec.warmup {
        std::hint::black_box(f()?);
        on_step(Step { label, phase: "warm-up" });
    }
    let mut samples = Vec::with_capacity(spec.reps);
    for _ in 0..spec.reps {
        let t0 = Instant::now();
        let o = f()?;
        samples.push(t0.elapsed());
        std::hint::black_box(o);
        on_step(Step { label, phase: "rep" });
    }
    Ok((first, samples, out))
}

/// Measures `spec` with the backends of `backends`; `on_step` is called after every call (for a progress bar).
///
/// # Errors
/// [`RuntimeError::UnknownBackend`] when `spec.backend` is not registered; [`RuntimeError::InvalidArgument`] for
/// `reps == 0` or a zero size; [`RuntimeError::ChunkSize`]; a backend's error on the main row. Failing baseline
/// rows are reported as skipped rows instead.
pub fn run_bench(
    backends: &Runtime,
    spec: &BenchSpec,
    on_step: &mut dyn FnMut(Step<'_>),
) -> Result<BenchReport, RuntimeError> {
    let backend = backends.get(&spec.backend)?;
    if spec.reps == 0 {
        return Err(RuntimeError::InvalidArgument {
            argument: "--reps".into(),
            value: "0".into(),
            expected: "at least 1 repetition".into(),
        });
    }
    if spec.resident && !spec.baselines {
        return run_resident_lean(&backend, spec, on_step);
    }
    let w = Workload::new(&spec.variant, spec.shape, spec.chunk(), spec.seed)?.with_input_dtype(spec.input_dtype);
    let flops = |v: &VariantIr| loglinear_schedule::cost(v, w.shape, w.chunk).map(|c| c.flops).unwrap_or(0.0);
    let vname = spec.variant.name.clone();
    let mut rows = Vec::new();

    let label = if spec.resident { format!("{} (resident)", backend.name()) } else { backend.name().to_string() };
    let opts = spec.options();
    let main_config = w.main_config(&backend, &opts)?;
    let (first, samples, main_out) = if spec.resident {
        let resident = w.upload(&backend, &opts)?;
        let (first, samples, o) =
            time_calls(spec, &label, on_step, || backend.run_resident(&spec.variant, &resident, &opts).map(|r| r.0))?;
        let o = backend.download(&o)?;
        (first, samples, HostTensor::new(o.shape().to_vec(), o.to_f64()))
    } else {
        time_calls(spec, &label, on_step, || w.run_backend_with(&backend, &opts))?
    };
    rows.push(Row {
        kind: RowKind::Main,
        label,
        variant: vname.clone(),
        first_call: first,
        samples,
        flops: loglinear_schedule::cost(&spec.variant, w.shape, main_config.0.chunk).map(|c| c.flops).unwrap_or(0.0),
        diff_vs_main: None,
        skipped: None,
    });
    if !spec.baselines {
        return Ok(report(spec, &w, rows).with_config(main_config));
    }

    // interpreter-f32 on the same inputs.
    let skip_steps = |on_step: &mut dyn FnMut(Step<'_>), label: &str| {
        for _ in 0..1 + spec.warmup + spec.reps {
            on_step(Step { label, phase: "skipped" });
        }
    };
    let interp_label = INTERPRETER_F32.to_string();
    match backends.get(INTERPRETER_F32) {
        Ok(ib) => match time_calls(spec, &interp_label, on_step, || w.run_backend(&ib)) {
            Ok((first, samples, o)) => rows.push(Row {
                kind: RowKind::Interpreter,
                label: interp_label,
                variant: vname.clone(),
                first_call: first,
                samples,
                flops: flops(&spec.variant),
                diff_vs_main: Some(relative_diff(&o, &main_out)),
                skipped: None,
            }),
            Err(e) => rows.push(Row::skipped(RowKind::Interpreter, interp_label, &vname, format!("failed: {e}"))),
        },
        Err(_) => {
            skip_steps(on_step, &interp_label);
            rows.push(Row::skipped(RowKind::Interpreter, interp_label, &vname, "not registered"));
        }
    }

    // The hand-written rustc baseline.
    let threads = spec.baseline_threads.max(1);
    let rlabel =
        if threads == 1 { "rustc-baseline".to_string() } else { format!("rustc-baseline ({threads} threads)") };
    match &w.baseline {
        Ok(p) => {
            let (b, t, h, _, v) = w.shape;
            let (first, samples, o) = time_calls(spec, &rlabel, on_step, || Ok(p.run(w.chunk, threads)))?;
            let o = HostTensor::new(vec![b, t, h, v], o.into_iter().map(f64::from).collect());
            rows.push(Row {
                kind: RowKind::Rustc,
                label: rlabel,
                variant: vname.clone(),
                first_call: first,
                samples,
                flops: flops(&spec.variant),
                diff_vs_main: Some(relative_diff(&o, &main_out)),
                skipped: None,
            });
        }
        Err(why) => {
            skip_steps(on_step, &rlabel);
            rows.push(Row::skipped(RowKind::Rustc, rlabel, &vname, why.clone()));
        }
    }

    // The linear form on the chosen backend.
    let llabel = format!("{} (linear)", backend.name());
    match &w.linear {
        Some(lin) => {
            let lname = lin.name.clone();
            let res = time_calls(spec, &llabel, on_step, || w.run_linear(&backend).expect("log-linear variant"));
            match res {
                Ok((first, samples, _)) => rows.push(Row {
                    kind: RowKind::Linear,
                    label: llabel,
                    variant: lname,
                    first_call: first,
                    samples,
                    flops: flops(lin),
                    diff_vs_main: None,
                    skipped: None,
                }),
                Err(e) => rows.push(Row::skipped(RowKind::Linear, llabel, &lname, format!("failed: {e}"))),
            }
        }
        None => {
            skip_steps(on_step, &llabel);
            rows.push(Row::skipped(RowKind::Linear, llabel, &vname, "the variant is already linear"));
        }
    }
    Ok(report(spec, &w, rows).with_config(main_config))
}

/// Refuses a shape with a zero size, naming `--shape`.
fn check_shape((b, t, h, k, v): Shape) -> Result<(), RuntimeError> {
    if [b, t, h, k, v].contains(&0) {
        return Err(RuntimeError::InvalidArgument {
            argument: "--shape".into(),
            value: format!("{b},{t},{h},{k},{v}"),
            expected: "five positive integers B,T,H,K,V".into(),
        });
    }
    Ok(())
}

/// The main row alone on device-resident inputs, built lean: each random input is rounded to the input dtype
/// (and to the storage type) and its f64 copy dropped before the next is made, so the host holds about one
/// f64 tensor plus the 16-bit ones — what T = 2^20 at H = 16 needs (a [`Workload`] keeps several f64 and f32
/// copies of every input for the baselines).
/// Whether `backend` reads resident inputs only in the program's storage type: targets whose uploads leave host
/// memory (GPUs) do; host targets read any float dtype (16-bit inputs straight from memory). Probed with a
/// one-element upload.
fn reads_resident_in_storage(backend: &Backend<'_>) -> bool {
    let probe = Tensor::from_f64(DType::F32, vec![1], &[0.0]);
    backend.target().and_then(|t| t.upload(probe.view()).ok()).is_some_and(|d| d.memory() != "host")
}

fn run_resident_lean(
    backend: &Backend<'_>,
    spec: &BenchSpec,
    on_step: &mut dyn FnMut(Step<'_>),
) -> Result<BenchReport, RuntimeError> {
    check_chunk_size(spec.chunk())?;
    check_shape(spec.shape)?;
    let opts = spec.options();
    // The storage of the configuration the run will use (tuned when the tuning cache has it).
    let (b, t, h, k, v) = spec.shape;
    let l = if spec.variant.is_log_linear() { loglinear_ir::level::num_levels(t) } else { 0 };
    let dims = loglinear_ir::Dims { b, t, h, k, v, l };
    let storage = backend.run_config(&spec.variant, &dims, spec.input_dtype, &opts)?.0.storage;
    let keep_f32 = !reads_resident_in_storage(backend);
    let mut inputs = random_inputs(&spec.variant, spec.shape, 0, spec.seed);
    let mut typed: BTreeMap<String, Tensor> = BTreeMap::new();
    let names: Vec<String> = inputs.keys().cloned().collect();
    for n in names {
        let Some(x) = inputs.remove(&n) else { continue };
        let held = Tensor::from_f64(spec.input_dtype, x.shape.clone(), &x.data);
        drop(x);
        // As `Workload::upload`: a host target with f32/f64 storage reads the inputs in their own dtype; otherwise
        // they are converted to the storage type (from the values rounded to the input dtype).
        let t = if storage == DType::F64 || (keep_f32 && storage == DType::F32) || storage == spec.input_dtype {
            held
        } else {
            Tensor::from_f64(storage, held.shape().to_vec(), &held.to_f64())
        };
        typed.insert(n, t);
    }
    let views: loglinear_runtime::Bindings<'_> = typed
        .iter()
        .filter(|(n, _)| spec.variant.input_by_name(n).is_some())
        .map(|(n, t)| (n.clone(), t.view()))
        .collect();
    let resident = backend.upload(&spec.variant, &views)?.held_as(spec.input_dtype);
    drop(views);
    drop(typed);
    let label = format!("{} (resident)", backend.name());
    let mut used = None;
    let (first, samples, _) = time_calls(spec, &label, on_step, || {
        backend.run_resident(&spec.variant, &resident, &opts).map(|(o, c)| {
            used = Some(c);
            o
        })
    })?;
    let tuned = backend.tuned_config(&spec.variant, &resident.dims(), spec.input_dtype, &opts).is_some();
    let chunk = used.map_or(spec.chunk(), |c| c.chunk);
    let flops = loglinear_schedule::cost(&spec.variant, spec.shape, chunk).map(|c| c.flops).unwrap_or(0.0);
    let rows = vec![Row {
        kind: RowKind::Main,
        label,
        variant: spec.variant.name.clone(),
        first_call: first,
        samples,
        flops,
        diff_vs_main: None,
        skipped: None,
    }];
    Ok(report_at(spec, spec.shape, spec.chunk(), rows)
        .with_config(used.map(|c| (c, tuned)).ok_or_else(|| RuntimeError::Internal("no timed call".into()))?))
}

fn report(spec: &BenchSpec, w: &Workload, rows: Vec<Row>) -> BenchReport {
    report_at(spec, w.shape, w.chunk, rows)
}

fn report_at(spec: &BenchSpec, shape: Shape, chunk: usize, rows: Vec<Row>) -> BenchReport {
    BenchReport {
        variant: spec.variant.name.clone(),
        backend: spec.backend.clone(),
        shape,
        chunk,
        reps: spec.reps,
        warmup: spec.warmup,
        input_dtype: spec.input_dtype,
        config: None,
        tuned: false,
        rows,
    }
}

impl BenchReport {
    /// With the main row's configuration (its chunk becomes the report's).
    fn with_config(mut self, (config, tuned): (ScheduleConfig, bool)) -> Self {
        self.chunk = config.chunk;
        self.config = Some(config);
        self.tuned = tuned;
        self
    }
}

/// Seconds with a unit that keeps 3–4 significant digits (the runtime's, shared with `loglinear tune`).
pub use loglinear_runtime::tune::fmt_duration;

/// The report as a text table, then the ratios the Cranelift issue's targets are stated in.
pub fn format_report(r: &BenchReport) -> String {
    let (b, t, h, k, v) = r.shape;
    let mut out = format!(
        "bench `{}` on `{}`: B={b} T={t} H={h} K={k} V={v} C={}, {} inputs, {} reps after {} warm-up call(s)\n\n",
        r.variant, r.backend, r.chunk, r.input_dtype, r.reps, r.warmup
    );
    if let Some(c) = &r.config {
        let from = if r.tuned { " (tuned: from the tuning cache; --no-tune for the default)" } else { "" };
        let _ = writeln!(out, "config: {c}{from}\n");
    }
    let header = ["row", "variant", "median", "min", "max", "GFLOP/s", "first call", "first−median", "diff vs main"];
    let mut cells: Vec<[String; 9]> = Vec::new();
    for row in &r.rows {
        if let Some(why) = &row.skipped {
            cells.push([
                row.label.clone(),
                row.variant.clone(),
                format!("skipped: {why}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            continue;
        }
        cells.push([
            row.label.clone(),
            row.variant.clone(),
            fmt_duration(row.median()),
            fmt_duration(row.min()),
            fmt_duration(row.max()),
            if row.flops > 0.0 { format!("{:.2}", row.gflops()) } else { "-".into() },
            fmt_duration(row.first_call),
            fmt_duration(row.first_call_overhead()),
            row.diff_vs_main.map_or("-".into(), |d| format!("{d:.1e}")),
        ]);
    }
    // A skip reason spans the remaining columns.
    out.push_str(&loglinear_runtime::tune::text_table(header, &cells, "skipped"));
    let main = r.row(RowKind::Main).map(|m| m.median().as_secs_f64()).unwrap_or(0.0);
    let mut ratios = String::new();
    for (kind, what) in [
        (RowKind::Interpreter, "interpreter-f32 / main"),
        (RowKind::Rustc, "rustc-baseline / main"),
        (RowKind::Linear, "main / linear form"),
    ] {
        if let (Some(row), true) = (r.row(kind), main > 0.0) {
            let x = row.median().as_secs_f64();
            let ratio = if kind == RowKind::Linear { main / x } else { x / main };
            let _ = write!(ratios, "{what} = {ratio:.2}×; ");
        }
    }
    if !ratios.is_empty() {
        out.push('\n');
        out.push_str("ratios (medians): ");
        out.push_str(ratios.trim_end_matches("; "));
        out.push('\n');
    }
    out.push_str(
        "first−median: one-off cost of the first call (JIT compilation, caches); the backend API reports no \
         compile time of its own.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use loglinear_ir::builtins;

    #[test]
    fn bench_runs_every_row_and_agrees() {
        let v = builtins::by_name("loglinear_mamba2").unwrap();
        let mut spec = BenchSpec::new(v, "interpreter", (1, 40, 2, 8, 4));
        spec.chunk_size = Some(8);
        spec.reps = 3;
        spec.baselines = true;
        let mut steps = 0u64;
        let r = run_bench(&Runtime::with_defaults(), &spec, &mut |_| steps += 1).unwrap();
        assert_eq!(steps, total_steps(&spec));
        assert_eq!(r.rows.len(), 4);
        for row in &r.rows {
            assert!(row.skipped.is_none(), "{row:?}");
            assert_eq!(row.samples.len(), 3);
            assert!(row.min() <= row.median() && row.median() <= row.max());
            assert!(row.flops > 0.0, "{row:?}");
        }
        // interpreter-f32 and the rustc baseline compute the same o as the f64 interpreter.
        for kind in [RowKind::Interpreter, RowKind::Rustc] {
            let d = r.row(kind).unwrap().diff_vs_main.unwrap();
            assert!(d <= 1e-5, "{kind:?}: {d:e}");
        }
        assert_eq!(r.row(RowKind::Linear).unwrap().variant, "mamba2");
        let text = format_report(&r);
        for needle in ["median", "GFLOP/s", "rustc-baseline", "interpreter-f32", "interpreter (linear)", "ratios"] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    #[test]
    fn resident_bench_builds_lean_inputs_and_picks_the_form() {
        let v = builtins::by_name("loglinear_mamba2").unwrap();
        let mut spec = BenchSpec::new(v.clone(), "interpreter-f32", (1, 40, 2, 8, 4));
        spec.chunk_size = Some(8);
        spec.reps = 2;
        spec.resident = true;
        spec.input_dtype = DType::BF16;
        spec.overrides = "storage=bf16".parse().unwrap();
        let mut steps = 0u64;
        let r = run_bench(&Runtime::with_defaults(), &spec, &mut |_| steps += 1).unwrap();
        assert_eq!(steps, total_steps(&spec));
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0].samples.len(), 2);
        assert!(r.rows[0].flops > 0.0 && r.rows[0].label.contains("resident"), "{:?}", r.rows[0]);
        assert_eq!((r.shape, r.chunk), ((1, 40, 2, 8, 4), 8));
        spec.shape = (1, 0, 2, 8, 4);
        let e = run_bench(&Runtime::with_defaults(), &spec, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("--shape"), "{e}");
    }

    #[test]
    fn skipped_rows_and_errors() {
        let reg = Runtime::with_defaults();
        let gla = builtins::by_name("gla").unwrap();
        let mut spec = BenchSpec::new(gla, "reference", (1, 9, 1, 2, 2));
        spec.baselines = true;
        spec.reps = 1;
        let r = run_bench(&reg, &spec, &mut |_| {}).unwrap();
        let skipped: Vec<_> = r.rows.iter().filter(|r| r.skipped.is_some()).map(|r| r.kind).collect();
        assert_eq!(skipped, vec![RowKind::Rustc, RowKind::Linear]);
        assert!(format_report(&r).contains("skipped: the variant is already linear"));

        spec.backend = "nope".into();
        assert!(matches!(run_bench(&reg, &spec, &mut |_| {}), Err(RuntimeError::UnknownBackend { .. })));
        spec.backend = "reference".into();
        spec.reps = 0;
        assert!(matches!(run_bench(&reg, &spec, &mut |_| {}), Err(RuntimeError::InvalidArgument { .. })));
        spec.reps = 1;
        spec.chunk_size = Some(3);
        assert!(matches!(run_bench(&reg, &spec, &mut |_| {}), Err(RuntimeError::ChunkSize { value: 3, .. })));
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        let mut row = Row::skipped(RowKind::Main, "x", "y", "z");
        row.samples = [3, 1, 2].map(Duration::from_millis).to_vec();
        assert_eq!(row.median(), Duration::from_millis(2));
        row.samples.push(Duration::from_millis(10));
        assert_eq!(row.median(), Duration::from_micros(2500));
        row.first_call = Duration::from_millis(1);
        assert_eq!(row.first_call_overhead(), Duration::ZERO);
    }
}
