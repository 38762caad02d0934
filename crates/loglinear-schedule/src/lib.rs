//! # loglinear-schedule: from a variant to kernels
//!
//! The pass pipeline is one visible list, [`PASSES`]:
//!
//! ```text
//! validate → classify → schedule → lower → split_v → specialise → decompose → cse → dce → verify
//! VariantIr   Classified  Schedule IR  Kernel IR  ───────────────── Kernel IR ─────────────  Kernel IR (checked)
//! ```
//!
//! * `validate` re-runs the variant validator of `loglinear-ir`.
//! * `classify` ([`classify`]) reduces the variant to its transition class, gate kind, the *roots* the operator
//!   reads (`q`, `k`, `v`, scale, `g`, β, λ, each bound to an arena expression) and the four chunk primitives of
//!   spec §10. Nothing after it looks at the declaration's syntax (only at the arena, to lower preprocessing).
//! * `schedule` ([`schedule`]) gives the Schedule IR: the per-chunk stages of spec §7 (preprocess, local
//!   cumulative gates, decay matrix, WY/UT, intra block with the `C × C` level table, pseudo-query, chunk write,
//!   chunk transition), the inter-chunk form (per-level masked scans or the fused carry of §7.2) and the
//!   decode step (§6.2).
//! * `lower` ([`lower`]) turns each stage into Kernel IR ([`kernel`]): kernels with grids over
//!   (batch, head, chunk | level), explicit symbolic buffers, and small dense tile ops.
//! * `split_v` (when sizes are given and the config's `v_block`, or the target's tile budget, asks for it)
//!   splits every V-separable kernel's value dimension across grid programs
//!   (`loglinear_kernel::passes::split`); the config records the block chosen.
//! * `specialise` fixes K, V and C (when sizes are given); `decompose` rewrites every compound op into
//!   primitives, only when asked ([`compile_decomposed`]); `cse` and `dce` remove repeated and dead tile
//!   assignments (`loglinear_kernel::passes`; outputs bit for bit unchanged).
//! * `verify` ([`verify`]) checks the Kernel IR.
//!
//! Every stage has a text form; [`dump`] prints them with `; after <pass>` headers.
//!
//! ## Kernel IR invariants (what a backend may assume after `verify`)
//! 1. Buffers have symbolic shapes over `B, T, H, K, V, L, NT, C, M, MS, LC`; none is O(T²): only
//!    `T·(K|V|L)`, `NT·C·(K|V|L)`, `NT·K·V·M` and T-free shapes exist.
//! 2. Every tile assignment has the shape its operation produces; stores write tiles of the region's shape.
//! 3. Every tile is assigned before it is read; every scratch buffer is written before it is read.
//! 4. Grid programs of a kernel write disjoint regions (every store indexes every grid variable); kernels run
//!    in order, each one seeing all writes of the previous ones.
//! 5. The only exponential of the transition maths is `exp_nonpos`, applied to local cumulative gates or to
//!    segment sums of gates (`segsum`, `suffix_sum`, and inside `matmul_gated_causal`), never to differences of
//!    cumulative sums, with masked entries set to `−∞` *before* the exponential (spec §11.4). Every sum of
//!    gates only adds non-positive numbers, so one that overflows is `−∞` and its exponential 0, never NaN.
//!    Plain `exp` appears only in preprocessing, where the variant's own expressions ask for it.
//! 6. Loads past the end of a dimension read zero and stores past it are dropped (the partial last chunk);
//!    every `At` index and block start is in bounds ([`verify::check_bounds`], for concrete sizes).
//! 7. Level logic is integer bit arithmetic (`bit`, `low_ones`, `low_zeros`, `tz`, `bitlen`); the in-chunk
//!    level table is the same for every chunk.
//!
//! ## Executing
//! [`interpret`] runs the Kernel IR generically in f64 or f32 ([`Float`]); [`interpret_decode`] runs the
//! decode-step program once per token. [`cost()`] counts flops and bytes from the Kernel IR.

#![warn(missing_docs)]

pub mod classify;
pub mod cost;
pub mod lower;
pub mod schedule;

use loglinear_ir::{check_inputs, Dims, HostTensor, InputError, TensorMap, ValidationError, VariantIr};
pub use loglinear_kernel::{
    filecheck, interp, kernel, passes, verify, Capabilities, ConfigOverrides, DType, Float, Precision, Program,
    ScanForm, ScheduleConfig, SizeEnv, Specialisation, VerifyError,
};

pub use classify::{Classified, Gate, Root};
pub use cost::{cost, cost_program, Cost, StageCost};
pub use schedule::Schedule;

/// Why compilation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// The variant does not validate.
    #[error("invalid variant: {0}")]
    Invalid(#[from] ValidationError),
    /// A bad chunk size.
    #[error("chunk size {0} is not a power of two in 1..=256")]
    ChunkSize(usize),
    /// The variant is outside what the schedules support.
    #[error("variant `{variant}` is not supported: {what}")]
    Unsupported {
        /// Variant.
        variant: String,
        /// What is unsupported.
        what: String,
    },
    /// Lowering produced ill-formed Kernel IR (a compiler bug).
    #[error("internal error while lowering `{variant}`: {}", .messages.join("; "))]
    Lowering {
        /// Variant.
        variant: String,
        /// Messages.
        messages: Vec<String>,
    },
    /// The Kernel IR failed validation (a compiler bug).
    #[error("kernel IR does not validate: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Verify(Vec<VerifyError>),
    /// `dump` was asked for a pass that does not exist.
    #[error(
        "unknown pass `{0}`; passes are: validate, classify, schedule, lower, split_v, specialise, decompose, cse, dce, verify"
    )]
    UnknownPass(String),
    /// An invalid configuration.
    #[error(transparent)]
    Config(#[from] loglinear_kernel::ConfigError),
    /// The program does not fit the target's budget (one line per kernel over it).
    #[error("{0}")]
    Budget(String),
}

/// The result of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The variant.
    pub variant: VariantIr,
    /// Chunk size used.
    pub chunk: usize,
    /// Scan form used.
    pub form: ScanForm,
    /// After `classify`.
    pub classified: Classified,
    /// After `schedule`.
    pub schedule: Schedule,
    /// After `lower`: the forward program.
    pub forward: Program,
    /// After `lower`: the decode-step program.
    pub decode: Program,
}

/// Sizes of a problem for the kernel IR (see [`SizeEnv::new`]).
#[allow(clippy::too_many_arguments)]
pub fn size_env(
    b: usize,
    t: usize,
    h: usize,
    k: usize,
    v: usize,
    l: usize,
    chunk: usize,
    hierarchical: bool,
) -> SizeEnv {
    SizeEnv::new(b, t, h, k, v, l, chunk, hierarchical)
}

/// Sizes of a problem from checked input dimensions.
pub fn dims_env(dims: &Dims, chunk: usize, hierarchical: bool) -> SizeEnv {
    SizeEnv::new(dims.b, dims.t, dims.h, dims.k, dims.v, dims.l, chunk, hierarchical)
}

/// The state threaded through the passes.
#[derive(Clone, Debug, Default)]
pub struct PassState {
    /// Input variant.
    pub variant: Option<VariantIr>,
    /// The configuration.
    pub config: ScheduleConfig,
    /// Compile-time sizes `(K, V)`: when set, `specialise` fixes them (and C) in both programs.
    pub sizes: Option<(usize, usize)>,
    /// Bytes of live tiles a grid program may hold (the target's budget), checked by `verify` on specialised
    /// programs.
    pub budget: Option<usize>,
    /// After `classify`.
    pub classified: Option<Classified>,
    /// After `schedule`.
    pub schedule: Option<Schedule>,
    /// After `lower`: forward and decode programs.
    pub programs: Option<(Program, Program)>,
    /// Whether `decompose` rewrites the compound ops into primitives (off: the pass does nothing).
    pub decompose: bool,
    /// What `split_v` did to each forward kernel (empty: no split asked or needed).
    pub split: Vec<(String, passes::split::SplitOutcome)>,
    /// Set by `verify`.
    pub verified: bool,
}

/// A named pass of the pipeline.
pub struct Pass {
    /// Name (for `--dump-ir after <name>`).
    pub name: &'static str,
    /// What it does.
    pub run: fn(&mut PassState) -> Result<(), ScheduleError>,
}

fn internal(what: &str) -> ScheduleError {
    ScheduleError::Lowering { variant: String::new(), messages: vec![format!("pass order: {what} missing")] }
}

fn pass_validate(s: &mut PassState) -> Result<(), ScheduleError> {
    let v = s.variant.as_ref().ok_or_else(|| internal("variant"))?;
    loglinear_ir::validate(v)?;
    Ok(())
}

fn pass_classify(s: &mut PassState) -> Result<(), ScheduleError> {
    let v = s.variant.as_ref().ok_or_else(|| internal("variant"))?;
    s.classified = Some(classify::classify(v)?);
    Ok(())
}

fn pass_schedule(s: &mut PassState) -> Result<(), ScheduleError> {
    let cl = s.classified.as_ref().ok_or_else(|| internal("classified"))?;
    let c = s.config.chunk;
    if !c.is_power_of_two() || c > loglinear_kernel::config::MAX_CHUNK {
        return Err(ScheduleError::ChunkSize(c));
    }
    s.config.validate()?;
    s.schedule = Some(schedule::schedule(cl, s.config.chunk, s.config.form)?);
    Ok(())
}

fn pass_lower(s: &mut PassState) -> Result<(), ScheduleError> {
    let v = s.variant.as_ref().ok_or_else(|| internal("variant"))?;
    let sc = s.schedule.as_ref().ok_or_else(|| internal("schedule"))?;
    let (mut fwd, mut e1) = lower::lower_forward(sc, v);
    let (mut dec, e2) = lower::lower_decode(sc, v);
    e1.extend(e2);
    if !e1.is_empty() {
        return Err(ScheduleError::Lowering { variant: v.name.clone(), messages: e1 });
    }
    for p in [&mut fwd, &mut dec] {
        p.set_types(s.config.storage, s.config.accum);
    }
    s.programs = Some((fwd, dec));
    Ok(())
}

/// The narrowest `V` block the automatic split tries.
pub const MIN_V_BLOCK: usize = 8;

fn pass_split_v(s: &mut PassState) -> Result<(), ScheduleError> {
    use passes::split::split_v;
    let Some((k, v)) = s.sizes else { return Ok(()) };
    let (f, d) = s.programs.as_ref().ok_or_else(|| internal("programs"))?;
    let vb = match (s.config.v_block, s.budget) {
        (Some(vb), _) => {
            if vb > v || v % vb != 0 {
                return Err(ScheduleError::Config(loglinear_kernel::ConfigError {
                    field: "v_block",
                    value: vb.to_string(),
                    expected: format!("a divisor of V = {v}"),
                }));
            }
            vb
        }
        (None, Some(budget)) => {
            // The widest block whose specialised forward program fits the target's tile budget.
            let env = SizeEnv::new(1, 1, 1, k, v, 1, s.config.chunk, f.hierarchical);
            let fits = |vb: usize| {
                let (p, _) = split_v(f, v, vb);
                let p = loglinear_kernel::specialise(&p, Specialisation { k, v, c: s.config.chunk }, &s.config);
                loglinear_kernel::resources::check_budget(&p, &env, budget).is_ok()
            };
            let mut vb = v;
            while !fits(vb) && vb % 2 == 0 && vb / 2 >= MIN_V_BLOCK {
                vb /= 2;
            }
            if fits(vb) {
                vb
            } else {
                v // no block fits: `verify` reports the budget
            }
        }
        (None, None) => v,
    };
    if vb == v {
        return Ok(());
    }
    let (fwd, report) = split_v(f, v, vb);
    let (dec, _) = split_v(d, v, vb);
    s.split = report;
    s.config.v_block = Some(vb);
    s.programs = Some((fwd, dec));
    Ok(())
}

fn pass_specialise(s: &mut PassState) -> Result<(), ScheduleError> {
    let Some((k, v)) = s.sizes else { return Ok(()) };
    let (f, d) = s.programs.as_ref().ok_or_else(|| internal("programs"))?;
    let fwd = loglinear_kernel::specialise(f, Specialisation { k, v, c: s.config.chunk }, &s.config);
    let dec = loglinear_kernel::specialise(d, Specialisation { k, v, c: 1 }, &s.config);
    s.programs = Some((fwd, dec));
    Ok(())
}

fn pass_decompose(s: &mut PassState) -> Result<(), ScheduleError> {
    if !s.decompose {
        return Ok(());
    }
    let (f, d) = s.programs.as_ref().ok_or_else(|| internal("programs"))?;
    s.programs = Some((passes::decompose::decompose(f), passes::decompose::decompose(d)));
    Ok(())
}

fn pass_cse(s: &mut PassState) -> Result<(), ScheduleError> {
    let (f, d) = s.programs.as_ref().ok_or_else(|| internal("programs"))?;
    s.programs = Some((passes::cse::cse(f), passes::cse::cse(d)));
    Ok(())
}

fn pass_dce(s: &mut PassState) -> Result<(), ScheduleError> {
    let (f, d) = s.programs.as_ref().ok_or_else(|| internal("programs"))?;
    s.programs = Some((passes::dce::dce(f), passes::dce::dce(d)));
    Ok(())
}

fn pass_verify(s: &mut PassState) -> Result<(), ScheduleError> {
    let (f, d) = s.programs.as_ref().ok_or_else(|| internal("programs"))?;
    let mut errs = Vec::new();
    for p in [f, d] {
        if let Err(e) = verify::verify(p) {
            errs.extend(e);
        }
    }
    if !errs.is_empty() {
        return Err(ScheduleError::Verify(errs));
    }
    if let (Some(budget), Some((k, v))) = (s.budget, s.sizes) {
        // Tile shapes are literal after `specialise`: any B, T, H, L give the same tile bytes.
        let env = SizeEnv::new(1, 1, 1, k, v, 1, s.config.chunk, f.hierarchical);
        loglinear_kernel::resources::check_budget(f, &env, budget).map_err(|e| ScheduleError::Budget(e.join("; ")))?;
    }
    s.verified = true;
    Ok(())
}

/// The pipeline, in order.
pub const PASSES: &[Pass] = &[
    Pass { name: "validate", run: pass_validate },
    Pass { name: "classify", run: pass_classify },
    Pass { name: "schedule", run: pass_schedule },
    Pass { name: "lower", run: pass_lower },
    Pass { name: "split_v", run: pass_split_v },
    Pass { name: "specialise", run: pass_specialise },
    Pass { name: "decompose", run: pass_decompose },
    Pass { name: "cse", run: pass_cse },
    Pass { name: "dce", run: pass_dce },
    Pass { name: "verify", run: pass_verify },
];

/// The text of the value after pass `name`.
fn stage_text(name: &str, s: &PassState) -> String {
    match name {
        "validate" => s.variant.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        "classify" => s.classified.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        "schedule" => s.schedule.as_ref().map(|c| format!("; config {}\n{c}", s.config)).unwrap_or_default(),
        "lower" | "specialise" if name == "specialise" && s.sizes.is_none() => {
            "; not specialised: no K, V given (pass --shape)".to_string()
        }
        "decompose" if !s.decompose => {
            "; not decomposed: compound ops kept (compile_decomposed asks for it)".to_string()
        }
        "split_v" if s.split.is_empty() => match (s.sizes, s.config.v_block) {
            (None, _) => "; not split: no V given (pass --shape)".to_string(),
            (Some((_, v)), _) => format!("; not split: v_block = V = {v}"),
        },
        "split_v" => {
            let mut t = format!("; v_block = {}\n", s.config.v_block.unwrap_or(0));
            for (k, o) in &s.split {
                let what = match o {
                    passes::split::SplitOutcome::Split => "split along V".to_string(),
                    passes::split::SplitOutcome::NoV => "no V dimension".to_string(),
                    passes::split::SplitOutcome::Inseparable(why) => format!("not split: {why}"),
                };
                t.push_str(&format!("; kernel {k}: {what}\n"));
            }
            if let Some((f, d)) = &s.programs {
                t.push_str(format!("{f}{d}").trim_end());
            }
            t
        }
        "lower" | "specialise" | "decompose" | "cse" | "dce" => match &s.programs {
            Some((f, d)) => format!("{f}{d}").trim_end().to_string(),
            None => String::new(),
        },
        "verify" => match &s.programs {
            Some((f, d)) => [f, d].iter().map(|p| verify_summary(p)).collect::<Vec<_>>().join("\n"),
            None => String::new(),
        },
        _ => String::new(),
    }
}

/// The text after `verify`: what was checked and each buffer's size class.
fn verify_summary(p: &Program) -> String {
    let mut t = format!(
        "verified {}: {} kernels, {} buffers; checks: shapes, definite assignment, written-before-read, disjoint grid stores, exp_nonpos on gates, no O(T^2) buffers",
        p.name,
        p.kernels.len(),
        p.buffers.len()
    );
    for b in &p.buffers {
        let shape: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
        let prod: Vec<String> = b
            .shape
            .iter()
            .filter(|d| !matches!(d, kernel::Dim::Sym(kernel::Sym::B | kernel::Sym::H)))
            .map(|d| d.to_string())
            .collect();
        let class = if prod.is_empty() { "1".to_string() } else { prod.join("·") };
        t.push_str(&format!("\n  buffer {} [{}]: O(B·H·{class})", b.name, shape.join(", ")));
    }
    t
}

/// Which stages [`dump`] prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpWhen {
    /// After every pass.
    AfterAll,
    /// After the named pass only.
    After(String),
}

fn run_passes(
    v: &VariantIr,
    config: &ScheduleConfig,
    sizes: Option<(usize, usize)>,
    budget: Option<usize>,
    decompose: bool,
    mut each: impl FnMut(&str, &PassState),
) -> Result<PassState, ScheduleError> {
    let mut st =
        PassState { variant: Some(v.clone()), config: *config, sizes, budget, decompose, ..Default::default() };
    for p in PASSES {
        (p.run)(&mut st)?;
        each(p.name, &st);
    }
    Ok(st)
}

/// Runs the pipeline without specialisation (K and V stay symbolic).
pub fn compile(v: &VariantIr, config: &ScheduleConfig) -> Result<Compiled, ScheduleError> {
    compile_with(v, config, None, None)
}

/// Runs the pipeline for a target: specialised on `k`, `v` and the config, verified, and checked against the
/// target's tile budget; returns the forward program.
///
/// # Errors
/// [`ScheduleError::Budget`] when a kernel needs more tile memory than `caps` allows; the pipeline's errors.
pub fn compile_for_target(
    v: &VariantIr,
    config: &ScheduleConfig,
    k: usize,
    vd: usize,
    caps: &Capabilities,
) -> Result<Program, ScheduleError> {
    Ok(compile_with(v, config, Some((k, vd)), caps.tile_memory)?.forward)
}

/// Runs the pipeline with optional specialisation sizes `(K, V)` and tile budget.
pub fn compile_with(
    v: &VariantIr,
    config: &ScheduleConfig,
    sizes: Option<(usize, usize)>,
    budget: Option<usize>,
) -> Result<Compiled, ScheduleError> {
    compiled(v, run_passes(v, config, sizes, budget, false, |_, _| {})?)
}

/// Runs the pipeline with `decompose` on: every compound op of both programs becomes primitive ops
/// (`loglinear_kernel::passes::decompose`), then `cse`, `dce` and `verify` run on the result. `sizes`: the
/// `(K, V)` to specialise on first (`None` keeps them symbolic). What a new backend runs before it translates
/// any compound op natively.
///
/// # Errors
/// The pipeline's errors.
pub fn compile_decomposed(
    v: &VariantIr,
    config: &ScheduleConfig,
    sizes: Option<(usize, usize)>,
) -> Result<Compiled, ScheduleError> {
    compiled(v, run_passes(v, config, sizes, None, true, |_, _| {})?)
}

fn compiled(v: &VariantIr, st: PassState) -> Result<Compiled, ScheduleError> {
    let (forward, decode) = st.programs.ok_or_else(|| internal("programs"))?;
    let schedule = st.schedule.ok_or_else(|| internal("schedule"))?;
    Ok(Compiled {
        variant: v.clone(),
        chunk: schedule.chunk,
        form: schedule.form,
        classified: st.classified.ok_or_else(|| internal("classified"))?,
        schedule,
        forward,
        decode,
    })
}

/// Runs the pipeline and prints `; after <pass>` followed by the stage's text form, after every pass or
/// after one. Fails if the pipeline fails or the pass name is unknown.
pub fn dump(
    v: &VariantIr,
    config: &ScheduleConfig,
    sizes: Option<(usize, usize)>,
    when: DumpWhen,
) -> Result<String, ScheduleError> {
    dump_with(v, config, sizes, when, false)
}

/// [`dump`], with `decompose` on when asked (the program [`compile_decomposed`] gives).
///
/// # Errors
/// As [`dump`].
pub fn dump_with(
    v: &VariantIr,
    config: &ScheduleConfig,
    sizes: Option<(usize, usize)>,
    when: DumpWhen,
    decompose: bool,
) -> Result<String, ScheduleError> {
    if let DumpWhen::After(n) = &when {
        if !PASSES.iter().any(|p| p.name == n) {
            return Err(ScheduleError::UnknownPass(n.clone()));
        }
    }
    let mut out = String::new();
    run_passes(v, config, sizes, None, decompose, |name, st| {
        let print = match &when {
            DumpWhen::AfterAll => true,
            DumpWhen::After(n) => n == name,
        };
        if print {
            out.push_str(&format!("; after {name}\n{}\n", stage_text(name, st)));
        }
    })?;
    Ok(out)
}

/// Interprets the forward program of `c` on f64 `inputs` (checked with [`check_inputs`]) at `precision`;
/// returns `o` in f64 (the convenience of the schedule's own tests; the runtime goes through
/// [`loglinear_kernel::InterpreterTarget`]).
///
/// # Panics
/// Only on a compiler bug (kernel IR out of bounds for these sizes).
pub fn interpret(c: &Compiled, inputs: &TensorMap, precision: Precision) -> Result<HostTensor, InputError> {
    interpret_program(c, &c.forward, c.chunk, inputs, precision, false)
}

/// Runs the decode-step program of `c` for `t = 0 .. T−1` (states carried between steps); returns every `o_t`.
///
/// # Panics
/// As [`interpret`].
pub fn interpret_decode(c: &Compiled, inputs: &TensorMap, precision: Precision) -> Result<HostTensor, InputError> {
    interpret_program(c, &c.decode, 1, inputs, precision, true)
}

fn interpret_program(
    c: &Compiled,
    p: &Program,
    chunk: usize,
    inputs: &TensorMap,
    precision: Precision,
    decode: bool,
) -> Result<HostTensor, InputError> {
    use loglinear_kernel::interp::{run_decode, run_program};
    let dims = check_inputs(&c.variant, inputs)?;
    let env = dims_env(&dims, chunk, p.hierarchical);
    let owned: std::collections::BTreeMap<String, loglinear_kernel::Tensor> = inputs
        .iter()
        .map(|(n, t)| (n.clone(), loglinear_kernel::Tensor::from_f64(DType::F64, t.shape.clone(), &t.data)))
        .collect();
    let views: loglinear_kernel::Bindings<'_> = owned.iter().map(|(n, t)| (n.clone(), t.view())).collect();
    let out = match (precision, decode) {
        (Precision::F64, false) => run_program::<f64>(p, &env, &views, DType::F64),
        (Precision::F32, false) => run_program::<f32>(p, &env, &views, DType::F64),
        (Precision::F64, true) => run_decode::<f64>(p, &env, &views, DType::F64),
        (Precision::F32, true) => run_decode::<f32>(p, &env, &views, DType::F64),
    };
    let o = out.unwrap_or_else(|e| panic!("{e}"));
    Ok(HostTensor::new(o.shape().to_vec(), o.to_f64()))
}
