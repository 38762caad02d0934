//! # loglinear-schedule: from a variant to kernels
//!
//! The pass pipeline is one visible list, [`PASSES`]:
//!
//! ```text
//! validate → classify → schedule → lower → verify
//! VariantIr   Classified  Schedule IR  Kernel IR  Kernel IR (checked)
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
pub mod filecheck;
pub mod interp;
pub mod kernel;
pub mod lower;
pub mod schedule;
pub mod verify;

use std::fmt;

use loglinear_ir::level::bitlen;
use loglinear_ir::{Dims, ValidationError, VariantIr};

pub use classify::{Classified, Gate, Root};
pub use cost::{cost, cost_program, Cost, StageCost};
pub use interp::{interpret, interpret_decode, Float, Precision};
pub use kernel::Program;
pub use schedule::Schedule;
pub use verify::VerifyError;

/// The inter-chunk scan form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ScanForm {
    /// One masked scan per chunk level, then one read pass (spec §7.2, the reference's organisation).
    #[default]
    PerLevel,
    /// The fused chunk-carry pass (end of spec §7.2).
    Fused,
}

impl ScanForm {
    /// Name in the text form and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ScanForm::PerLevel => "per_level",
            ScanForm::Fused => "fused",
        }
    }

    /// Parses `per_level` / `fused`.
    pub fn from_name(s: &str) -> Option<ScanForm> {
        match s {
            "per_level" | "per-level" => Some(ScanForm::PerLevel),
            "fused" => Some(ScanForm::Fused),
            _ => None,
        }
    }
}

/// Options of [`compile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ScheduleOptions {
    /// Chunk size `C` (a power of two in `1..=256`); `None`: the variant's default.
    pub chunk_size: Option<usize>,
    /// Scan form.
    pub form: ScanForm,
}

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
    #[error("unknown pass `{0}`; passes are: validate, classify, schedule, lower, verify")]
    UnknownPass(String),
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

/// Concrete sizes of one run, for bounds checks, interpretation and costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeEnv {
    /// Batch.
    pub b: usize,
    /// Sequence length.
    pub t: usize,
    /// Heads.
    pub h: usize,
    /// Key dimension.
    pub k: usize,
    /// Value dimension.
    pub v: usize,
    /// λ levels in the λ tensors.
    pub l: usize,
    /// Chunks.
    pub nt: usize,
    /// Chunk size.
    pub c: usize,
    /// Inter-chunk scans.
    pub m: usize,
    /// Fused carry states.
    pub ms: usize,
    /// Decode states.
    pub lc: usize,
    /// Decode position.
    pub step: usize,
}

impl SizeEnv {
    /// Sizes for `dims` at chunk size `chunk`.
    pub fn new(dims: &Dims, chunk: usize, hierarchical: bool) -> SizeEnv {
        let nt = dims.t.div_ceil(chunk.max(1));
        let m = if hierarchical { bitlen(nt.saturating_sub(1) as u64) as usize } else { 1 };
        SizeEnv {
            b: dims.b,
            t: dims.t,
            h: dims.h,
            k: dims.k,
            v: dims.v,
            l: dims.l.max(1),
            nt,
            c: chunk,
            m,
            ms: if hierarchical { m + 1 } else { 1 },
            lc: if hierarchical { dims.l.max(1) } else { 1 },
            step: 0,
        }
    }

    /// The value of a symbol.
    pub fn get(&self, s: kernel::Sym) -> usize {
        use kernel::Sym::*;
        match s {
            B => self.b,
            T => self.t,
            H => self.h,
            K => self.k,
            V => self.v,
            L => self.l,
            NT => self.nt,
            C => self.c,
            M => self.m,
            MS => self.ms,
            LC => self.lc,
            Step => self.step,
        }
    }
}

impl fmt::Display for SizeEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "B={} T={} H={} K={} V={} L={} C={} NT={} M={}",
            self.b, self.t, self.h, self.k, self.v, self.l, self.c, self.nt, self.m
        )
    }
}

/// The state threaded through the passes.
#[derive(Clone, Debug, Default)]
pub struct PassState {
    /// Input variant.
    pub variant: Option<VariantIr>,
    /// Options.
    pub options: ScheduleOptions,
    /// After `classify`.
    pub classified: Option<Classified>,
    /// After `schedule`.
    pub schedule: Option<Schedule>,
    /// After `lower`: forward and decode programs.
    pub programs: Option<(Program, Program)>,
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
    let v = s.variant.as_ref().ok_or_else(|| internal("variant"))?;
    let cl = s.classified.as_ref().ok_or_else(|| internal("classified"))?;
    let chunk = s.options.chunk_size.unwrap_or(v.chunk_size);
    s.schedule = Some(schedule::schedule(cl, chunk, s.options.form)?);
    Ok(())
}

fn pass_lower(s: &mut PassState) -> Result<(), ScheduleError> {
    let v = s.variant.as_ref().ok_or_else(|| internal("variant"))?;
    let sc = s.schedule.as_ref().ok_or_else(|| internal("schedule"))?;
    let (fwd, mut e1) = lower::lower_forward(sc, v);
    let (dec, e2) = lower::lower_decode(sc, v);
    e1.extend(e2);
    if !e1.is_empty() {
        return Err(ScheduleError::Lowering { variant: v.name.clone(), messages: e1 });
    }
    s.programs = Some((fwd, dec));
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
    s.verified = true;
    Ok(())
}

/// The pipeline, in order.
pub const PASSES: &[Pass] = &[
    Pass { name: "validate", run: pass_validate },
    Pass { name: "classify", run: pass_classify },
    Pass { name: "schedule", run: pass_schedule },
    Pass { name: "lower", run: pass_lower },
    Pass { name: "verify", run: pass_verify },
];

/// The text of the value after pass `name`.
fn stage_text(name: &str, s: &PassState) -> String {
    match name {
        "validate" => s.variant.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        "classify" => s.classified.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        "schedule" => s.schedule.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        "lower" => match &s.programs {
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
    opts: &ScheduleOptions,
    mut each: impl FnMut(&str, &PassState),
) -> Result<PassState, ScheduleError> {
    let mut st = PassState { variant: Some(v.clone()), options: *opts, ..Default::default() };
    for p in PASSES {
        (p.run)(&mut st)?;
        each(p.name, &st);
    }
    Ok(st)
}

/// Runs the pipeline.
pub fn compile(v: &VariantIr, opts: &ScheduleOptions) -> Result<Compiled, ScheduleError> {
    let st = run_passes(v, opts, |_, _| {})?;
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
pub fn dump(v: &VariantIr, opts: &ScheduleOptions, when: DumpWhen) -> Result<String, ScheduleError> {
    if let DumpWhen::After(n) = &when {
        if !PASSES.iter().any(|p| p.name == n) {
            return Err(ScheduleError::UnknownPass(n.clone()));
        }
    }
    let mut out = String::new();
    run_passes(v, opts, |name, st| {
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

/// Evaluates a condition of the Kernel IR (shared by the interpreter and the cost model).
pub(crate) fn interp_cond(c: &kernel::Cond, vars: &[i64], env: &SizeEnv) -> bool {
    interp::eval_cond(c, vars, env)
}
