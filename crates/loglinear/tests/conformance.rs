//! One conformance suite for every backend (CubeCL-style): a single table of cases, instantiated on every backend
//! of [`loglinear::backends()`] — a backend registered there is tested here without any change to this file.
//!
//! * **Case table** ([`case_table`]): every built-in variant (12) × a core set of shapes (spec §11.4: T = 1, 2, 3,
//!   37, 63, 64, 65, 257; partial last chunks; NT = 1, 2^k, 2^k + 1; K = 1; K ≠ V; B = 2, H = 2) × chunk sizes
//!   {1, 4, 16, 64}, plus the extreme cases on the variants they concern: λ with extra levels and with negative
//!   and zero entries (log-linear variants), g = 0 and g = −50, a block of g = −1e4 aligned with a chunk and one
//!   inside a chunk, one token of g ∈ {−1e4, −1e10, −3e38} in the middle of a chunk (a "reset" gate) and
//!   g = −3e38 everywhere (its sums overflow f32 to −∞) (variants with a decay input), β ∈ {0, 1} and mixed
//!   (delta rule), repeated keys inside a chunk. Each run is compared with the f64 naive oracle
//!   ([`Form::Naive`]) on the same (rounded) inputs within the backend's tolerance for the configuration
//!   ([`Backend::tolerance`]), in every configuration of the axes: default, the other scan form, and 16-bit
//!   storage types where the backend's capabilities declare them (skips are printed): no case is exempt.
//! * **External vectors**: `loglinear_mamba2` (≤ 1e-5) and `loglinear_gated_deltanet` (≤ 1e-4) for f32
//!   backends, ≤ 1e-10 for f64 ones (a backend whose own tolerance is ≤ 1e-10 counts as f64). Found through
//!   `LOGLINEAR_VECTORS`, else `<workspace>/tests/vectors`; the tests fail when they are absent.
//! * **Bad input**: every backend returns an error (not a panic) for a missing tensor and for a NaN.
//!
//! Every failure names the case, the variant, the backend, the chunk size and the error; all failures of a test
//! are collected before it fails.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use loglinear::oracle::Form;
use loglinear::random::random_inputs;
use loglinear::{
    relative_error, Backend, DType, HostTensor, RunOptions, ScanForm, ScheduleConfig, TensorMap, VariantIr,
};

/// Chunk sizes every core case runs with.
const CHUNKS: [usize; 4] = [1, 4, 16, 64];

/// A change applied to the random inputs of a case.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Edit {
    /// The random inputs as drawn.
    None,
    /// Every log decay `g` set to this value.
    G(f64),
    /// `g = −1e4` on positions `start..start + len` (and on the whole `[H]` tensor of RetNet).
    GBlock { start: usize, len: usize },
    /// `g = value` on every channel of token `pos` only (per-token `g`: `[B, T, H]` or `[B, T, H, K]`).
    GToken { pos: usize, value: f64 },
    /// Every β set to this value.
    Beta(f64),
    /// β alternating 0 and 1.
    BetaMixed,
    /// λ: every third entry 0, every fifth negative.
    LamSigns,
    /// Keys repeated in runs of four tokens (identical keys inside every chunk of size ≥ 4).
    RepeatedKeys,
}

/// One row of the table: a variant at one shape, run with several chunk sizes.
#[derive(Clone, Debug)]
struct Case {
    /// What the case covers.
    name: &'static str,
    /// The variant (a built-in name).
    variant: String,
    /// `(B, T, H, K, V)`.
    shape: (usize, usize, usize, usize, usize),
    /// λ levels beyond `num_levels(T)`.
    extra_levels: usize,
    /// The edit to the random inputs.
    edit: Edit,
    /// Chunk sizes to run.
    chunks: Vec<usize>,
}

fn names() -> Vec<String> {
    loglinear::builtins::all().into_iter().map(|v| v.name).collect()
}

fn variant(name: &str) -> VariantIr {
    loglinear::builtins::by_name(name).unwrap_or_else(|| panic!("no built-in `{name}`"))
}

fn has_input(v: &VariantIr, name: &str) -> bool {
    v.input_by_name(name).is_some()
}

/// One token of huge negative `g` in the middle of a chunk, and the case's name.
const RESET_GATES: [(f64, &str); 3] = [
    (-1e4, "one token of g = −1e4 inside a chunk"),
    (-1e10, "one token of g = −1e10 inside a chunk"),
    (-3e38, "one token of g = −3e38 inside a chunk"),
];

/// The case table.
fn case_table() -> Vec<Case> {
    let core: [(&str, (usize, usize, usize, usize, usize)); 11] = [
        ("T=1", (1, 1, 1, 4, 3)),
        ("T=2", (1, 2, 1, 4, 3)),
        ("T=3, K≠V", (1, 3, 1, 3, 5)),
        ("T=37 prime, partial chunk, B=2 H=2", (2, 37, 2, 4, 3)),
        ("T=63", (1, 63, 1, 4, 4)),
        ("T=64", (1, 64, 1, 3, 4)),
        ("T=65, H=2", (1, 65, 2, 4, 3)),
        ("T=257 prime", (1, 257, 1, 2, 3)),
        ("K=1", (1, 37, 1, 1, 3)),
        ("K=V=16 (vector widths)", (1, 100, 1, 16, 16)),
        ("K=32, V=8, H=2", (1, 130, 2, 32, 8)),
    ];
    let mut cases = Vec::new();
    for name in names() {
        let v = variant(&name);
        let case = |what: &'static str, shape, extra_levels, edit, chunks: &[usize]| Case {
            name: what,
            variant: name.clone(),
            shape,
            extra_levels,
            edit,
            chunks: chunks.to_vec(),
        };
        for (what, shape) in core {
            cases.push(case(what, shape, 0, Edit::None, &CHUNKS));
        }
        if v.is_log_linear() {
            cases.push(case("λ with 3 extra levels", (2, 37, 2, 4, 3), 3, Edit::None, &CHUNKS));
            cases.push(case("λ negative and zero", (1, 65, 1, 4, 3), 0, Edit::LamSigns, &CHUNKS));
        }
        if has_input(&v, "g") {
            cases.push(case("g = 0", (1, 65, 1, 4, 3), 1, Edit::G(0.0), &CHUNKS));
            cases.push(case("g = −50", (1, 65, 1, 4, 3), 0, Edit::G(-50.0), &CHUNKS));
            for c in CHUNKS {
                // A block of exactly one chunk, aligned with the chunking (spec §11.4).
                let edit = Edit::GBlock { start: c, len: c };
                cases.push(case("g = −1e4 on one whole chunk", (1, 130, 2, 4, 3), 0, edit, &[c]));
            }
            // The same block straddling chunk boundaries or inside a chunk. Forming γ_r − γ_s as a difference of
            // local cumulative sums (spec §7.2) would cancel catastrophically after the block (they reach −1.6e5:
            // f32 ~3e-3 relative error at C = 64); the schedule sums the gates between the rows instead (kernel-IR
            // `segsum` / `suffix_sum`, and per channel inside `matmul_gated_causal` for GLA).
            let block = Edit::GBlock { start: 16, len: 16 };
            cases.push(case("g = −1e4 on a block inside a chunk", (1, 70, 2, 4, 3), 0, block, &CHUNKS));
            // One reset gate at token 21: row 1 of chunk 5 (C = 4), row 5 of chunk 1 (C = 16), row 21 of chunk 0
            // (C = 64). A difference of cumulative sums would lose every later gate of the chunk (−1e10: O(1)
            // error); −3e38 is finite in f32, and sums of it overflow to −∞ (where −∞ − (−∞) would be NaN).
            if v.input_by_name("g").is_some_and(|(_, g)| g.kind != loglinear::InputKind::HeadConst) {
                for (value, what) in RESET_GATES {
                    cases.push(case(what, (1, 70, 2, 4, 3), 0, Edit::GToken { pos: 21, value }, &CHUNKS));
                }
            }
            cases.push(case("g = −3e38 everywhere (sums overflow f32)", (1, 70, 2, 4, 3), 0, Edit::G(-3e38), &CHUNKS));
        }
        if has_input(&v, "beta") {
            cases.push(case("β = 0", (1, 40, 1, 4, 3), 0, Edit::Beta(0.0), &CHUNKS));
            cases.push(case("β = 1", (1, 40, 1, 4, 3), 0, Edit::Beta(1.0), &CHUNKS));
            cases.push(case("β ∈ {0, 1} mixed", (1, 40, 1, 4, 3), 0, Edit::BetaMixed, &CHUNKS));
        }
        if v.class().is_delta() || name.ends_with("mamba2") {
            cases.push(case("repeated keys in a chunk", (1, 40, 1, 4, 3), 0, Edit::RepeatedKeys, &CHUNKS));
        }
    }
    cases
}

/// The inputs of a case: random (seeded by the case's index in the table), then edited.
fn inputs(v: &VariantIr, case: &Case, seed: u64) -> TensorMap {
    let mut x = random_inputs(v, case.shape, case.extra_levels, seed);
    let (_, t, _, k, _) = case.shape;
    match case.edit {
        Edit::None => {}
        Edit::G(g) => x.get_mut("g").expect("g").data.iter_mut().for_each(|e| *e = g),
        Edit::GBlock { start, len } => {
            let g = x.get_mut("g").expect("g");
            if g.shape.len() == 1 {
                g.data.iter_mut().for_each(|e| *e = -1e4);
            } else {
                // [B, T, H] or [B, T, H, K]: positions 16..32 of every (b, h).
                let per_t: usize = g.shape[2..].iter().product();
                for (i, e) in g.data.iter_mut().enumerate() {
                    if (start..start + len).contains(&((i / per_t) % t)) {
                        *e = -1e4;
                    }
                }
            }
        }
        Edit::GToken { pos, value } => {
            let g = x.get_mut("g").expect("g");
            assert!(g.shape.len() > 1, "a per-token g");
            let per_t: usize = g.shape[2..].iter().product();
            for (i, e) in g.data.iter_mut().enumerate() {
                if (i / per_t) % t == pos {
                    *e = value;
                }
            }
        }
        Edit::Beta(b) => x.get_mut("beta").expect("beta").data.iter_mut().for_each(|e| *e = b),
        Edit::BetaMixed => {
            x.get_mut("beta").expect("beta").data.iter_mut().enumerate().for_each(|(i, e)| *e = (i % 2) as f64)
        }
        Edit::LamSigns => {
            for (i, e) in x.get_mut("lam").expect("lam").data.iter_mut().enumerate() {
                if i % 3 == 0 {
                    *e = 0.0;
                } else if i % 5 == 0 {
                    *e = -*e;
                }
            }
        }
        Edit::RepeatedKeys => {
            // [B, T, H, K]: token t takes the key of token t − t mod 4.
            let kt = x.get_mut("k").expect("k");
            let h = kt.shape[2];
            let row = |b: usize, t_: usize, h_: usize| ((b * t + t_) * h + h_) * k;
            for b in 0..kt.shape[0] {
                for t_ in 0..t {
                    for h_ in 0..h {
                        let (src, dst) = (row(b, t_ - t_ % 4, h_), row(b, t_, h_));
                        if src != dst {
                            let key: Vec<f64> = kt.data[src..src + k].to_vec();
                            kt.data[dst..dst + k].copy_from_slice(&key);
                        }
                    }
                }
            }
        }
    }
    x
}

/// Runs `backend` with `config` (or its default at chunk `chunk`) and turns a panic into an error message.
fn run_caught(
    backend: &Backend<'_>,
    v: &VariantIr,
    x: &TensorMap,
    chunk: Option<usize>,
    config: Option<ScheduleConfig>,
) -> Result<HostTensor, String> {
    let opts = RunOptions { chunk_size: chunk, config, ..RunOptions::default() };
    match catch_unwind(AssertUnwindSafe(|| backend.run_f64(v, x, &opts))) {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => Err(format!("returned an error: {e}")),
        Err(p) => Err(format!(
            "PANICKED: {}",
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        )),
    }
}

/// The configurations `backend` runs each case in (the axes beyond backend × variant × case × chunk): its
/// default; the other scan form; `V` split into one-column blocks; and every 16-bit storage type its capabilities declare. What it does not
/// declare is skipped, and said so on stderr (never silently).
fn configs(backend: &Backend<'_>, v: &VariantIr, chunk: usize) -> Vec<(String, ScheduleConfig)> {
    let Ok(default) = backend.config(v, &RunOptions::with_chunk_size(Some(chunk))) else {
        eprintln!("skip: backend `{}` has no default configuration for `{}`", backend.name(), v.name);
        return vec![];
    };
    let mut out = vec![(format!("{default}"), default)];
    if backend.target().is_none() {
        return out; // the oracle has no schedule: forms and storage types do not apply
    }
    for form in ScanForm::ALL.into_iter().filter(|f| *f != default.form) {
        let c = ScheduleConfig { form, ..default };
        out.push((format!("{c}"), c));
    }
    // V split across grid programs one column each (`split_v`; 1 divides every V of the cases).
    let c = ScheduleConfig { v_block: Some(1), ..default };
    out.push((format!("{c}"), c));
    let caps = backend.capabilities();
    for storage in [DType::F16, DType::BF16] {
        let c = ScheduleConfig { storage, ..default };
        if caps.supports(&c).is_ok() {
            out.push((format!("{c}"), c));
        } else if chunk == 1 {
            eprintln!(
                "skip: backend `{}` does not declare storage {} (capabilities)",
                backend.name(),
                storage.ir_name()
            );
        }
    }
    out
}

/// `x` rounded to `storage` (the inputs a backend with that storage type actually sees).
fn rounded(x: &TensorMap, storage: DType) -> TensorMap {
    x.iter()
        .map(|(n, t)| {
            let r = loglinear::Tensor::from_f64(storage, t.shape.clone(), &t.data).to_f64();
            (n.clone(), HostTensor::new(t.shape.clone(), r))
        })
        .collect()
}

/// Checks `o` against `want` within `tol`; `None` when it passes, else the reason.
fn check(o: Result<HostTensor, String>, want: &HostTensor, tol: f64) -> Option<String> {
    match o {
        Err(e) => Some(e),
        Ok(o) if o.shape != want.shape => Some(format!("`o` has shape {:?}; expected {:?}", o.shape, want.shape)),
        Ok(o) if o.data.iter().any(|e| !e.is_finite()) => {
            let n = o.data.iter().filter(|e| !e.is_finite()).count();
            Some(format!("`o` has {n} non-finite elements"))
        }
        Ok(o) => {
            let e = relative_error(&o, want);
            // NaN fails too.
            (!(e <= tol)).then(|| format!("relative error {e:.3e} > tolerance {tol:.0e}"))
        }
    }
}

/// Whether the suite runs on backend `name`: every available one, or those listed in `LOGLINEAR_BACKENDS`
/// (`cuda,reference`; e.g. to run only the GPU backend on the GPU machine).
fn selected(name: &str) -> bool {
    match std::env::var("LOGLINEAR_BACKENDS") {
        Ok(list) if !list.is_empty() => list.split(',').any(|b| b == name),
        _ => true,
    }
}

/// Runs every case of `variant_name` on every backend in every configuration of [`configs`], against the naive
/// oracle on the same (rounded) inputs; returns (runs checked, runs expected, failures).
fn run_cases(variant_name: &str) -> (usize, usize, Vec<String>) {
    let runtime = loglinear::runtime();
    let v = variant(variant_name);
    let (mut checked, mut expected) = (0, 0);
    let mut failures = Vec::new();
    for (i, case) in case_table().iter().enumerate().filter(|(_, c)| c.variant == variant_name) {
        let x = inputs(&v, case, 1000 + i as u64);
        let mut wants: Vec<(DType, TensorMap, HostTensor)> = Vec::new();
        for backend in runtime.available().into_iter().filter(|b| selected(b.name())) {
            // A backend that compiles decomposed programs through a heavy code generator (a GPU driver: lavapipe
            // takes about a second a program; MLIR and LLVM at -O3) runs each case at the smallest and largest of
            // its chunk sizes in its default configuration, and each other configuration on every fifth case
            // (rotating) at the largest: every case, chunk extreme and configuration is covered, not every
            // product.
            let driver_compiled = backend.capabilities().primitives_only;
            let (lo, hi) = (case.chunks[0], *case.chunks.last().expect("a chunk"));
            for &c in &case.chunks {
                if driver_compiled && c != lo && c != hi {
                    continue;
                }
                for (j, (label, config)) in configs(&backend, &v, c).into_iter().enumerate() {
                    if driver_compiled && j > 0 && !(c == hi && (i + j) % 5 == 0) {
                        continue;
                    }
                    expected += 1;
                    let storage = config.storage;
                    if !wants.iter().any(|w| w.0 == storage) {
                        let xs = if storage == DType::F64 || storage == DType::F32 {
                            x.clone()
                        } else {
                            rounded(&x, storage)
                        };
                        if xs.values().any(|t| t.data.iter().any(|e| !e.is_finite())) {
                            // g = −1e10 or −3e38 has no 16-bit value: such a file is refused at the door (Inf).
                            eprintln!(
                                "skip: case #{i} `{}`: inputs not representable in {}",
                                case.name,
                                storage.ir_name()
                            );
                            expected -= 1;
                            continue;
                        }
                        let want =
                            loglinear::oracle::run(&v, &xs, Form::Naive).expect("the oracle accepts the case's inputs");
                        wants.push((storage, xs, want));
                    }
                    let (_, xs, want) = wants.iter().find(|w| w.0 == storage).expect("just added");
                    let tol = backend.tolerance(&v, &config);
                    if let Some(why) = check(run_caught(&backend, &v, xs, None, Some(config)), want, tol) {
                        failures.push(format!(
                            "case #{i} `{}` ({:?}, B,T,H,K,V = {:?}) variant `{variant_name}` backend `{}` config `{label}`: {why}",
                            case.name,
                            case.edit,
                            case.shape,
                            backend.name()
                        ));
                    }
                    checked += 1;
                }
            }
        }
    }
    (checked, expected, failures)
}

fn assert_variant_conforms(variant_name: &str) {
    let (checked, expected, failures) = run_cases(variant_name);
    let per_backend = case_table().iter().filter(|c| c.variant == variant_name).map(|c| c.chunks.len()).sum::<usize>();
    assert_eq!(checked, expected, "{variant_name}: not every run was checked");
    let backends = loglinear::runtime().available().len();
    if std::env::var("LOGLINEAR_BACKENDS").map_or(true, |l| l.is_empty()) {
        assert!(checked >= per_backend * backends.min(4), "{variant_name}: a backend ran no configuration");
        assert!(checked >= 36, "{variant_name}: only {checked} runs");
    } else {
        assert!(checked > 0, "{variant_name}: LOGLINEAR_BACKENDS selects no available backend");
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} conformance runs failed for `{variant_name}`:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! conformance_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                assert_variant_conforms($name);
            }
        )*

        #[test]
        fn every_builtin_has_a_conformance_test() {
            let tested: BTreeSet<&str> = [$($name),*].into_iter().collect();
            let all: BTreeSet<String> = names().into_iter().collect();
            assert_eq!(all.len(), 12);
            assert_eq!(tested, all.iter().map(String::as_str).collect::<BTreeSet<_>>());
        }
    };
}

conformance_tests! {
    conformance_linear_attention => "linear_attention",
    conformance_retnet => "retnet",
    conformance_mamba2 => "mamba2",
    conformance_gla => "gla",
    conformance_deltanet => "deltanet",
    conformance_gated_deltanet => "gated_deltanet",
    conformance_loglinear_linear_attention => "loglinear_linear_attention",
    conformance_loglinear_retnet => "loglinear_retnet",
    conformance_loglinear_mamba2 => "loglinear_mamba2",
    conformance_loglinear_gla => "loglinear_gla",
    conformance_loglinear_deltanet => "loglinear_deltanet",
    conformance_loglinear_gated_deltanet => "loglinear_gated_deltanet",
}

/// The table covers the spec §11.4 edge cases it claims to, for every variant.
#[test]
fn case_table_covers_the_edge_cases() {
    let table = case_table();
    for name in names() {
        let v = variant(&name);
        let cases: Vec<&Case> = table.iter().filter(|c| c.variant == name).collect();
        let ts: BTreeSet<usize> = cases.iter().map(|c| c.shape.1).collect();
        for t in [1, 2, 3, 37, 63, 64, 65, 257] {
            assert!(ts.contains(&t), "{name}: no case with T = {t}");
        }
        let runs: Vec<(usize, usize)> =
            cases.iter().flat_map(|c| c.chunks.iter().map(move |&ch| (c.shape.1, ch))).collect();
        let nts: Vec<usize> = runs.iter().map(|&(t, c)| t.div_ceil(c)).collect();
        assert!(nts.contains(&1), "{name}: no NT = 1");
        assert!(nts.iter().any(|&n| n >= 4 && n.is_power_of_two()), "{name}: no NT = 2^k");
        assert!(nts.iter().any(|&n| n >= 5 && (n - 1).is_power_of_two()), "{name}: no NT = 2^k + 1");
        assert!(runs.iter().any(|&(t, c)| t > c && t % c != 0), "{name}: no partial last chunk");
        let chunks: BTreeSet<usize> = runs.iter().map(|r| r.1).collect();
        assert_eq!(chunks, CHUNKS.into_iter().collect(), "{name}: chunk sizes");
        assert!(cases.iter().any(|c| c.shape.3 == 1), "{name}: no K = 1");
        assert!(cases.iter().any(|c| c.shape.3 != c.shape.4), "{name}: no K ≠ V");
        assert!(cases.iter().any(|c| c.shape.0 == 2 && c.shape.2 == 2), "{name}: no B = 2, H = 2");
        let edits: Vec<Edit> = cases.iter().map(|c| c.edit).collect();
        if v.is_log_linear() {
            assert!(cases.iter().any(|c| c.extra_levels > 0), "{name}: no extra λ levels");
            assert!(edits.contains(&Edit::LamSigns), "{name}: no negative / zero λ");
        }
        if has_input(&v, "g") {
            for e in [Edit::G(0.0), Edit::G(-50.0), Edit::GBlock { start: 16, len: 16 }, Edit::G(-3e38)] {
                assert!(edits.contains(&e), "{name}: no {e:?}");
            }
            if v.input_by_name("g").is_some_and(|(_, g)| g.kind != loglinear::InputKind::HeadConst) {
                for (value, _) in RESET_GATES {
                    let e = Edit::GToken { pos: 21, value };
                    let c = cases.iter().find(|c| c.edit == e).unwrap_or_else(|| panic!("{name}: no {e:?}"));
                    // Not chunk-aligned for any chunk size above 1.
                    assert!(c.chunks.iter().all(|&ch| ch == 1 || 21 % ch != 0) && c.shape.1 > 21);
                }
            }
            for c in CHUNKS {
                assert!(
                    cases.iter().any(|k| k.edit == Edit::GBlock { start: c, len: c } && k.chunks == [c]),
                    "{name}: no chunk-aligned g block for C = {c}"
                );
            }
        }
        if has_input(&v, "beta") {
            for e in [Edit::Beta(0.0), Edit::Beta(1.0), Edit::BetaMixed, Edit::RepeatedKeys] {
                assert!(edits.contains(&e), "{name}: no {e:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// External vectors.

/// Every case of the vector file on every backend with a few chunk sizes; `f32_tol` for f32 backends.
fn check_vectors(variant_name: &str, f32_tol: f64) {
    let v = variant(variant_name);
    let backends = loglinear::backends();
    let mut failures = Vec::new();
    let mut checked = 0;
    for loglinear_testkit::Case { index: i, inputs: x, o: want } in loglinear_testkit::read_cases(variant_name) {
        for backend in backends.available().into_iter().filter(|b| selected(b.name())) {
            let tol = if backend.default_tolerance(&v) <= 1e-10 { 1e-10 } else { f32_tol };
            for chunk in [None, Some(4), Some(16)] {
                if let Some(why) = check(run_caught(&backend, &v, &x, chunk, None), &want, tol) {
                    failures.push(format!(
                        "vector {variant_name} case{i} backend `{}` chunk {chunk:?}: {why}",
                        backend.name()
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 4 * 3 * backends.available().iter().filter(|b| selected(b.name())).count(),
        "{variant_name}: only {checked} runs"
    );
    assert!(failures.is_empty(), "{} of {checked} vector runs failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn vectors_loglinear_mamba2_every_backend() {
    check_vectors("loglinear_mamba2", 1e-5);
}

#[test]
fn vectors_loglinear_gated_deltanet_every_backend() {
    check_vectors("loglinear_gated_deltanet", 1e-4);
}

// ---------------------------------------------------------------------------------------------------------------
// Bad input.

/// Every backend returns an error, never a panic and never an output, for a missing tensor and for a NaN, on
/// every built-in variant.
#[test]
fn bad_input_is_an_error_on_every_backend() {
    let backends = loglinear::runtime();
    let mut failures = Vec::new();
    for name in names() {
        let v = variant(&name);
        let good = random_inputs(&v, (1, 9, 2, 3, 2), 0, 5);
        let mut missing = good.clone();
        missing.remove("v");
        let mut nan = good.clone();
        nan.get_mut("q").expect("q").data[7] = f64::NAN;
        let mut inf = good.clone();
        inf.get_mut("k").expect("k").data[3] = f64::INFINITY;
        for backend in backends.available().into_iter().filter(|b| selected(b.name())) {
            for (what, x, needle) in
                [("missing `v`", &missing, "`v`"), ("NaN in `q`", &nan, "`q`"), ("+inf in `k`", &inf, "`k`")]
            {
                match run_caught(&backend, &v, x, Some(4), None) {
                    Ok(o) => failures.push(format!(
                        "variant `{name}` backend `{}`: {what} gave an output of shape {:?} instead of an error",
                        backend.name(),
                        o.shape
                    )),
                    Err(e) if e.starts_with("PANICKED") => {
                        failures.push(format!("variant `{name}` backend `{}`: {what}: {e}", backend.name()))
                    }
                    Err(e) if !e.contains(needle) => failures.push(format!(
                        "variant `{name}` backend `{}`: {what}: the error does not name {needle}: {e}",
                        backend.name()
                    )),
                    Err(_) => {}
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} bad-input failures:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------------
// The harness itself.

/// The suite runs on every registered backend, the three built into the runtime among them.
#[test]
fn suite_runs_on_every_registered_backend() {
    let names = loglinear::runtime().names();
    eprintln!("conformance backends: {names:?}");
    for n in ["reference", "interpreter", "interpreter-f32", "cranelift", "wgsl"] {
        assert!(names.contains(&n), "{n} not registered: {names:?}");
    }
    for b in loglinear::runtime().iter() {
        if let Err(why) = b.availability() {
            eprintln!("skip: backend `{}` is not available here: {why}", b.name());
            // The CI installs lavapipe: there, a missing adapter is a failure, not a skip.
            // `LOGLINEAR_REQUIRE_GPU=1` requires wgsl; a list (`wgsl,cuda`) requires those backends.
            let required = std::env::var("LOGLINEAR_REQUIRE_GPU").unwrap_or_default();
            let required: Vec<&str> =
                if required == "1" { vec!["wgsl"] } else { required.split(',').filter(|x| !x.is_empty()).collect() };
            assert!(
                !required.contains(&b.name()),
                "LOGLINEAR_REQUIRE_GPU={required:?} but `{}` is unavailable: {why}",
                b.name()
            );
        }
    }
}

/// A backend that is wrong, panics or accepts bad input is caught by the checks above.
#[test]
fn the_checks_catch_a_broken_backend() {
    use loglinear::kernel::{Bindings, Capabilities, CompileStats, Executable, Program, SizeEnv, Target, TargetError};
    use std::sync::Arc;
    /// Wraps the f64 interpreter and breaks its output.
    struct Broken(&'static str);
    struct BrokenExec(&'static str, Arc<dyn Executable>);
    impl Target for Broken {
        fn name(&self) -> &'static str {
            self.0
        }
        fn description(&self) -> &'static str {
            "broken on purpose"
        }
        fn capabilities(&self) -> Capabilities {
            loglinear::kernel::InterpreterTarget::f64().capabilities()
        }
        fn default_config(&self, c: ScheduleConfig) -> ScheduleConfig {
            loglinear::kernel::InterpreterTarget::f64().default_config(c)
        }
        fn compile(&self, p: &Program, c: &ScheduleConfig) -> Result<Arc<dyn Executable>, TargetError> {
            Ok(Arc::new(BrokenExec(self.0, loglinear::kernel::InterpreterTarget::f64().compile(p, c)?)))
        }
    }
    impl Executable for BrokenExec {
        fn program(&self) -> &Program {
            self.1.program()
        }
        fn stats(&self) -> &CompileStats {
            self.1.stats()
        }
        fn run_with_states(
            &self,
            sizes: &SizeEnv,
            inputs: &Bindings<'_>,
            states: &mut loglinear::kernel::States,
        ) -> Result<loglinear::Tensor, TargetError> {
            let o = self.1.run_with_states(sizes, inputs, states)?;
            match self.0 {
                "panics" => panic!("boom"),
                "off-by-eps" => {
                    let d: Vec<f64> = o.to_f64().iter().map(|e| e * (1.0 + 1e-9)).collect();
                    Ok(loglinear::Tensor::from_f64(o.dtype(), o.shape().to_vec(), &d))
                }
                _ => Ok(loglinear::Tensor::zeros(o.dtype(), o.shape().to_vec())),
            }
        }
    }
    let mut rt = loglinear::Runtime::empty();
    for name in ["panics", "off-by-eps", "zeros"] {
        rt.register(Arc::new(Broken(name)));
    }
    let v = variant("loglinear_mamba2");
    let case = &case_table().into_iter().find(|c| c.variant == v.name && c.shape.1 == 65).unwrap();
    let x = inputs(&v, case, 1);
    let want = loglinear::oracle::run(&v, &x, Form::Naive).unwrap();
    let b = |n: &str| rt.get(n).unwrap();
    let panics = check(run_caught(&b("panics"), &v, &x, Some(4), None), &want, 1e-12).unwrap();
    assert!(panics.contains("PANICKED: boom"), "{panics}");
    let eps = check(run_caught(&b("off-by-eps"), &v, &x, Some(4), None), &want, 1e-12).unwrap();
    assert!(eps.contains("relative error"), "{eps}");
    assert!(check(run_caught(&b("off-by-eps"), &v, &x, Some(4), None), &want, 1e-5).is_none());
    let zeros = check(run_caught(&b("zeros"), &v, &x, Some(4), None), &want, 1e-5).unwrap();
    assert!(zeros.contains("relative error 1.000e0"), "{zeros}");
    let mut nan = x.clone();
    nan.get_mut("q").unwrap().data[0] = f64::NAN;
    assert!(run_caught(&b("zeros"), &v, &nan, Some(4), None).unwrap_err().contains("`q`"));
}
