//! The decode benchmark (`loglinear bench --decode`): decode steps after a `T0`-token prefill, the state resident
//! in the backend's memory (`Backend::decode_step_resident`), in µs per step,
//! tokens/s and the bytes of state each step moves, against a plain copy of the same bytes measured in the same
//! run (the memory-bandwidth floor of a step) and the linear form's step.

use std::time::{Duration, Instant};

use loglinear_ir::level::num_levels;
use loglinear_ir::random::random_inputs;
use loglinear_ir::VariantIr;
use loglinear_runtime::{views, Backend, ConfigOverrides, DType, DecodeState, RunOptions, RuntimeError, Tensor};

/// What to measure.
#[derive(Clone, Debug)]
pub struct DecodeSpec {
    /// The variant (its linear form is measured beside it).
    pub variant: VariantIr,
    /// `(N, T0, H, K, V)`: sequences, prefill length, heads, key and value dimensions.
    pub shape: (usize, usize, usize, usize, usize),
    /// Timed steps.
    pub steps: usize,
    /// Seed of the random inputs.
    pub seed: u64,
    /// Schedule fields fixed by `--config` (e.g. `v_block=16`); the rest is the backend's pick.
    pub overrides: ConfigOverrides,
}

/// One measured form.
#[derive(Clone, Debug)]
pub struct DecodeRow {
    /// The variant measured.
    pub variant: String,
    /// Median time of one step (all N sequences).
    pub step: Duration,
    /// Bytes of state one step reads and writes (2 × the state).
    pub state_bytes: usize,
    /// Levels of the state.
    pub levels: usize,
}

impl DecodeRow {
    /// Achieved state traffic, GB/s.
    pub fn gbps(&self) -> f64 {
        self.state_bytes as f64 / self.step.as_secs_f64() / 1e9
    }
}

/// The report.
#[derive(Clone, Debug)]
pub struct DecodeReport {
    /// The spec.
    pub shape: (usize, usize, usize, usize, usize),
    /// The backend.
    pub backend: String,
    /// The variant, then its linear form.
    pub rows: Vec<DecodeRow>,
    /// Median time to copy the log-linear state's bytes once (read + write), same run.
    pub copy: Duration,
    /// Prefill time of the log-linear variant.
    pub prefill: Duration,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn measure(b: &Backend<'_>, v: &VariantIr, spec: &DecodeSpec) -> Result<(DecodeRow, Duration), RuntimeError> {
    let (n, t0, h, k, vd) = spec.shape;
    let last = t0 + spec.steps + 2;
    let extra = num_levels(last).saturating_sub(num_levels(t0.max(1)));
    let opts = RunOptions { overrides: spec.overrides, ..RunOptions::default() };
    let storage = b.config(v, &opts)?.storage;
    let typed = |x: &loglinear_ir::TensorMap| -> std::collections::BTreeMap<String, Tensor> {
        x.iter().map(|(nm, t)| (nm.clone(), Tensor::from_f64(storage, t.shape.clone(), &t.data))).collect()
    };
    let start = Instant::now();
    let state = if t0 == 0 {
        let accum = b.config(v, &opts)?.accum;
        DecodeState::zeros(accum, n, h, if v.is_log_linear() { num_levels(last) } else { 1 }, k, vd)
    } else {
        // One sequence is prefilled and its state given to all N (the step's cost does not depend on the
        // values): the prefill of N × T0 tokens would dominate the benchmark's time.
        let x = typed(&random_inputs(v, (1, t0, h, k, vd), extra, spec.seed));
        let one = b.prefill(v, &views(&x), &opts)?.1;
        let mut shape = one.state.shape().to_vec();
        shape[0] = n;
        let bytes = one.state.bytes().repeat(n);
        let state = Tensor::from_bytes(one.state.dtype(), shape, bytes)
            .ok_or_else(|| RuntimeError::Internal("tiled state size".into()))?;
        DecodeState { state, position: vec![t0; n] }
    };
    let prefill = start.elapsed();
    let levels = state.levels();
    let tok = typed(&random_inputs(v, (n, 1, h, k, vd), levels.saturating_sub(1), spec.seed + 1));
    // The state stays in the backend's memory, as a server keeps it: a step moves the token's inputs in and
    // `o` out. One untimed step (compiles the decode program), then the timed ones.
    let bytes = state.state.bytes().len() * 2;
    let mut state = b.upload_state(&state)?;
    b.decode_step_resident(v, &mut state, &views(&tok), &opts)?;
    let mut times = Vec::with_capacity(spec.steps);
    for _ in 0..spec.steps {
        let s = Instant::now();
        std::hint::black_box(b.decode_step_resident(v, &mut state, &views(&tok), &opts)?);
        times.push(s.elapsed());
    }
    Ok((DecodeRow { variant: v.name.clone(), step: median(times), state_bytes: bytes, levels }, prefill))
}

/// Runs the decode benchmark on `backend`.
///
/// # Errors
/// The backend's error.
pub fn run_decode_bench(backend: &Backend<'_>, spec: &DecodeSpec) -> Result<DecodeReport, RuntimeError> {
    let (row, prefill) = measure(backend, &spec.variant, spec)?;
    let mut rows = vec![row];
    if spec.variant.is_log_linear() {
        rows.push(measure(backend, &spec.variant.linear_base(), spec)?.0);
    }
    // The floor: one read and one write of the log-linear state's bytes.
    let n = rows[0].state_bytes / 2;
    let src = Tensor::zeros(DType::F32, vec![n / 4]);
    let mut dst = vec![1u8; src.bytes().len()];
    let mut times = Vec::new();
    for _ in 0..spec.steps.max(3) {
        let s = Instant::now();
        dst.copy_from_slice(std::hint::black_box(src.bytes()));
        std::hint::black_box(&dst);
        times.push(s.elapsed());
    }
    Ok(DecodeReport { shape: spec.shape, backend: backend.name().into(), rows, copy: median(times), prefill })
}

/// The report as a table.
pub fn format_decode_report(r: &DecodeReport) -> String {
    let (n, t0, h, k, v) = r.shape;
    let mut out = format!(
        "decode on `{}`: N={n} sequences after a T0={t0}-token prefill (took {}), H={h} K={k} V={v}\n\n",
        r.backend,
        crate::fmt_duration(r.prefill)
    );
    out.push_str("variant                     levels  µs/step   tokens/s  state bytes/step  GB/s   vs copy\n");
    for row in &r.rows {
        out.push_str(&format!(
            "{:<27} {:>6} {:>8.1} {:>10.0} {:>17} {:>5.2} {:>8.2}×\n",
            row.variant,
            row.levels,
            row.step.as_secs_f64() * 1e6,
            n as f64 / row.step.as_secs_f64(),
            row.state_bytes,
            row.gbps(),
            row.step.as_secs_f64() / r.copy.as_secs_f64()
        ));
    }
    out.push_str(&format!(
        "plain copy of the log-linear state (read + write, same run): {:.1} µs ({:.2} GB/s)\n",
        r.copy.as_secs_f64() * 1e6,
        r.rows[0].state_bytes as f64 / r.copy.as_secs_f64() / 1e9
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_bench_runs_and_reports_both_forms() {
        let rt = loglinear_runtime::Runtime::with_defaults();
        let b = rt.get("interpreter-f32").unwrap();
        let v = loglinear_ir::builtins::by_name("loglinear_mamba2").unwrap();
        let spec = DecodeSpec { variant: v, shape: (2, 37, 2, 4, 3), steps: 3, seed: 1, overrides: Default::default() };
        let r = run_decode_bench(&b, &spec).unwrap();
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.rows[0].levels, num_levels(37 + 5));
        assert_eq!(r.rows[1].levels, 1);
        assert_eq!(r.rows[0].state_bytes, 2 * 2 * 2 * r.rows[0].levels * 4 * 3 * 4);
        let text = format_decode_report(&r);
        assert!(text.contains("loglinear_mamba2") && text.contains("µs/step") && text.contains("plain copy"), "{text}");
    }
}
