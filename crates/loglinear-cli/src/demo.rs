//! The demo: every log-linear variant of a registry on every backend, checked against the naive f64 oracle.

use std::time::Instant;

use loglinear::oracle::Form;
use loglinear::random::random_inputs;
use loglinear::runtime::{check_chunk_size, RunOptions, Runtime, RuntimeError};
use loglinear::{relative_error, Registry};

/// What the demo runs.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoOptions {
    /// Batch size B.
    pub b: usize,
    /// Sequence length T (best not a multiple of the chunk size, to exercise the partial last chunk).
    pub t: usize,
    /// Heads H.
    pub h: usize,
    /// Key dimension K.
    pub k: usize,
    /// Value dimension V.
    pub v: usize,
    /// Chunk size given to every backend.
    pub chunk_size: usize,
    /// λ levels beyond the ⌈log2 T⌉ + 1 needed (they must be ignored).
    pub extra_levels: usize,
    /// Seed of the random inputs.
    pub seed: u64,
    /// Only these variants (empty: every log-linear variant of the registry).
    pub variants: Vec<String>,
    /// Only these backends (empty: every registered backend).
    pub backends: Vec<String>,
    /// Also run the linear (non-log-linear) variants.
    pub include_linear: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            b: 1,
            t: 100,
            h: 2,
            k: 16,
            v: 24,
            chunk_size: 16,
            extra_levels: 0,
            seed: 0,
            variants: Vec::new(),
            backends: Vec::new(),
            include_linear: false,
        }
    }
}

/// One (variant, backend) result.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoRow {
    /// Variant name.
    pub variant: String,
    /// Backend name.
    pub backend: &'static str,
    /// Wall time of the backend run, in milliseconds.
    pub time_ms: f64,
    /// Relative error against the naive oracle; `None` when the backend failed.
    pub rel_error: Option<f64>,
    /// The backend's tolerance for this variant.
    pub tolerance: f64,
    /// The backend's error message, when it failed.
    pub failure: Option<String>,
}

impl DemoRow {
    /// Whether the backend ran and stayed within its tolerance (NaN fails).
    pub fn ok(&self) -> bool {
        self.failure.is_none() && self.rel_error.is_some_and(|e| e <= self.tolerance)
    }
}

/// The (variant, backend) pairs the options select, checking every name and the chunk size first.
///
/// # Errors
/// [`RuntimeError::UnknownVariant`], [`RuntimeError::UnknownBackend`], [`RuntimeError::ChunkSize`],
/// [`RuntimeError::InvalidArgument`] for a zero dimension or an empty selection.
pub fn plan<'a>(
    registry: &'a Registry,
    backends: &Runtime,
    opts: &DemoOptions,
) -> Result<Vec<(&'a loglinear::ir::VariantIr, &'static str)>, RuntimeError> {
    for (arg, x) in [("--b", opts.b), ("--t", opts.t), ("--h", opts.h), ("--k", opts.k), ("--v", opts.v)] {
        if x == 0 {
            return Err(RuntimeError::InvalidArgument {
                argument: arg.into(),
                value: "0".into(),
                expected: "a size of at least 1".into(),
            });
        }
    }
    check_chunk_size(opts.chunk_size)?;
    let variants: Vec<_> = if opts.variants.is_empty() {
        registry.iter().filter(|v| opts.include_linear || v.is_log_linear()).collect()
    } else {
        opts.variants.iter().map(|n| registry.get(n)).collect::<Result<_, _>>()?
    };
    let names: Vec<&'static str> = if opts.backends.is_empty() {
        // Every backend that can run here (a GPU backend without an adapter is left out).
        backends.available().iter().map(|b| b.name()).collect()
    } else {
        opts.backends.iter().map(|n| backends.get(n).map(|b| b.name())).collect::<Result<_, _>>()?
    };
    if variants.is_empty() || names.is_empty() {
        return Err(RuntimeError::InvalidArgument {
            argument: "selection".into(),
            value: format!("{} variants × {} backends", variants.len(), names.len()),
            expected: "at least one variant and one backend".into(),
        });
    }
    Ok(variants.into_iter().flat_map(|v| names.iter().map(move |b| (v, *b))).collect())
}

/// Runs the demo; `progress` is called after each (variant, backend) pair with the row just produced.
///
/// # Errors
/// Those of [`plan`], and [`RuntimeError::Internal`] when the naive oracle itself rejects the generated inputs.
/// A backend's own failure is not an error here: it is a failing row.
pub fn run_demo(
    registry: &Registry,
    backends: &Runtime,
    opts: &DemoOptions,
    mut progress: impl FnMut(&DemoRow),
) -> Result<Vec<DemoRow>, RuntimeError> {
    let pairs = plan(registry, backends, opts)?;
    let mut rows = Vec::with_capacity(pairs.len());
    let mut current: Option<(&str, loglinear::ir::TensorMap, loglinear::ir::HostTensor)> = None;
    for (variant, bname) in pairs {
        if current.as_ref().map(|c| c.0) != Some(variant.name.as_str()) {
            let x = random_inputs(variant, (opts.b, opts.t, opts.h, opts.k, opts.v), opts.extra_levels, opts.seed);
            let reference = loglinear::oracle::run(variant, &x, Form::Naive)
                .map_err(|e| RuntimeError::Internal(format!("naive oracle on `{}`: {e}", variant.name)))?;
            current = Some((variant.name.as_str(), x, reference));
        }
        let (_, x, reference) = current.as_ref().expect("set above");
        let backend = backends.get(bname)?;
        let tolerance = backend.default_tolerance(variant);
        let start = Instant::now();
        let result = backend.run_f64(variant, x, &RunOptions::with_chunk_size(Some(opts.chunk_size)));
        let time_ms = start.elapsed().as_secs_f64() * 1e3;
        let row = match result {
            Ok(o) => DemoRow {
                variant: variant.name.clone(),
                backend: bname,
                time_ms,
                rel_error: Some(relative_error(&o, reference)),
                tolerance,
                failure: None,
            },
            Err(e) => DemoRow {
                variant: variant.name.clone(),
                backend: bname,
                time_ms,
                rel_error: None,
                tolerance,
                failure: Some(e.to_string()),
            },
        };
        tracing::info!(variant = %row.variant, backend = row.backend, rel_error = ?row.rel_error, "demo row");
        progress(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// The demo's results as a text table, with a closing `passed/total ok, failed FAIL` line.
pub fn format_table(rows: &[DemoRow], opts: &DemoOptions) -> String {
    let shape = format!("{}x{}x{}x{}x{}", opts.b, opts.t, opts.h, opts.k, opts.v);
    let wv = rows.iter().map(|r| r.variant.len()).chain(["variant".len()]).max().unwrap_or(7);
    let wb = rows.iter().map(|r| r.backend.len()).chain(["backend".len()]).max().unwrap_or(7);
    let ws = shape.len().max("B×T×H×K×V".chars().count());
    let mut s = format!(
        "{:<wv$}  {:<wb$}  {:<ws$}  {:>5}  {:>9}  {:>10}  {:>9}  status\n",
        "variant", "backend", "B×T×H×K×V", "chunk", "time ms", "rel. error", "tolerance"
    );
    for r in rows {
        let err = r.rel_error.map(|e| format!("{e:.3e}")).unwrap_or_else(|| "-".into());
        let status = match (&r.failure, r.ok()) {
            (Some(f), _) => format!("FAIL: {f}"),
            (None, true) => "ok".into(),
            (None, false) => "FAIL".into(),
        };
        s.push_str(&format!(
            "{:<wv$}  {:<wb$}  {:<ws$}  {:>5}  {:>9.2}  {:>10}  {:>9.0e}  {status}\n",
            r.variant, r.backend, shape, opts.chunk_size, r.time_ms, err, r.tolerance
        ));
    }
    let failed = rows.iter().filter(|r| !r.ok()).count();
    s.push_str(&format!("{}/{} ok, {failed} FAIL\n", rows.len() - failed, rows.len()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_demo_passes() {
        let opts = DemoOptions { t: 13, k: 3, v: 2, chunk_size: 4, ..DemoOptions::default() };
        let backends = Runtime::with_defaults();
        let n = 6 * backends.len();
        let rows = run_demo(&Registry::builtin(), &backends, &opts, |_| {}).unwrap();
        assert_eq!(rows.len(), n);
        assert!(rows.iter().all(DemoRow::ok), "{}", format_table(&rows, &opts));
        let table = format_table(&rows, &opts);
        assert!(
            table.contains("loglinear_gated_deltanet") && table.ends_with(&format!("{n}/{n} ok, 0 FAIL\n")),
            "{table}"
        );
    }

    #[test]
    fn failing_row_is_not_ok() {
        let mut r = DemoRow {
            variant: "x".into(),
            backend: "reference",
            time_ms: 0.0,
            rel_error: Some(f64::NAN),
            tolerance: 1e-12,
            failure: None,
        };
        assert!(!r.ok());
        r.rel_error = Some(1e-3);
        assert!(!r.ok());
        r.rel_error = Some(1e-13);
        assert!(r.ok());
    }

    #[test]
    fn plan_rejects_bad_options() {
        let (reg, be) = (Registry::builtin(), Runtime::with_defaults());
        let bad = |o: DemoOptions| plan(&reg, &be, &o).unwrap_err().to_string();
        assert!(bad(DemoOptions { chunk_size: 12, ..Default::default() }).contains("--chunk-size 12"));
        assert!(bad(DemoOptions { t: 0, ..Default::default() }).contains("--t"));
        assert!(bad(DemoOptions { variants: vec!["nope".into()], ..Default::default() }).contains("`nope`"));
        assert!(bad(DemoOptions { backends: vec!["gpu".into()], ..Default::default() }).contains("`gpu`"));
        assert_eq!(
            plan(&reg, &be, &DemoOptions { include_linear: true, ..Default::default() }).unwrap().len(),
            12 * be.len()
        );
    }
}

/// The scaling tables of the demo: prefill time and memory as T doubles, and decode µs per token against the
/// tokens already seen, for `variant` (log-linear) and its linear form on `backend` — O(T log T) and O(log T)
/// made visible. Sizes are small (H = 2, K = V = 32) so that it takes seconds on a laptop.
///
/// # Errors
/// The backend's error.
pub fn scaling_tables(
    backends: &Runtime,
    backend: &str,
    variant: &loglinear::VariantIr,
) -> Result<String, RuntimeError> {
    let b = backends.get(backend)?;
    let (h, k, v) = (2usize, 32usize, 32usize);
    let linear = variant.linear_base();
    let mut out = format!(
        "\nprefill on `{backend}` (B=1 H={h} K={k} V={v}): time per token grows like log T for `{}`, stays flat for `{}`\n\n",
        variant.name, linear.name
    );
    out.push_str("       T   log-linear ms   µs/token   buffers MB │  linear ms   µs/token   buffers MB │ ratio\n");
    let time = |var: &loglinear::VariantIr, t: usize| -> Result<f64, RuntimeError> {
        let x = random_inputs(var, (1, t, h, k, v), 0, 7);
        let opts = RunOptions::default();
        b.run_f64(var, &x, &opts)?; // compiles, warms the buffers
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let s = Instant::now();
            b.run_f64(var, &x, &opts)?;
            best = best.min(s.elapsed().as_secs_f64());
        }
        Ok(best)
    };
    let mb = |var: &loglinear::VariantIr, t: usize| {
        loglinear_schedule::cost(var, (1, t, h, k, v), var.chunk_size).map(|c| c.peak_bytes / 1e6).unwrap_or(f64::NAN)
    };
    for e in [10, 12, 14, 16] {
        let t = 1usize << e;
        let (a, l) = (time(variant, t)?, time(&linear, t)?);
        out.push_str(&format!(
            "{t:>8} {:>15.2} {:>10.3} {:>12.1} │ {:>10.2} {:>10.3} {:>12.1} │ {:>5.2}\n",
            a * 1e3,
            a * 1e6 / t as f64,
            mb(variant, t),
            l * 1e3,
            l * 1e6 / t as f64,
            mb(&linear, t),
            a / l
        ));
    }
    out.push_str(&format!(
        "\ndecode on `{backend}` (one sequence, H={h} K={k} V={v}): the log-linear state holds ⌈log2 t⌉+1 levels, the linear one 1\n\n"
    ));
    out.push_str("  tokens seen   levels   state KB   log-linear µs/token   linear µs/token\n");
    for e in [4, 8, 12, 16] {
        let t0 = 1usize << e;
        let spec = loglinear_bench::DecodeSpec {
            variant: variant.clone(),
            shape: (1, t0, h, k, v),
            steps: 30,
            seed: 3,
            overrides: Default::default(),
        };
        let r = loglinear_bench::run_decode_bench(&b, &spec)?;
        out.push_str(&format!(
            "{t0:>13} {:>8} {:>10.1} {:>21.1} {:>17.1}\n",
            r.rows[0].levels,
            r.rows[0].state_bytes as f64 / 2.0 / 1024.0,
            r.rows[0].step.as_secs_f64() * 1e6,
            r.rows.get(1).map_or(f64::NAN, |x| x.step.as_secs_f64() * 1e6)
        ));
    }
    Ok(out)
}
