//! The WGSL target on a real Vulkan device (lavapipe in CI, any GPU elsewhere) through the runtime: every
//! built-in, every scan form, two chunk sizes, against the f64 oracle; prefill with the final state and decode
//! steps. Without an adapter the tests print why and pass (the CI installs lavapipe, so they run there).

use std::collections::BTreeMap;
use std::sync::Arc;

use loglinear_ir::random::random_inputs;
use loglinear_ir::{builtins, relative_error, TensorMap};
use loglinear_oracle::{run, Form};
use loglinear_runtime::{f32_tolerance, views, DType, RunOptions, Runtime, ScanForm, ScheduleConfig, Tensor};
use loglinear_wgpu::WgpuTarget;

fn runtime() -> Option<Runtime> {
    let t = WgpuTarget::new();
    if let Err(why) = t.availability() {
        eprintln!("skip: {why}; adapters: {:?}", loglinear_wgpu::adapters());
        return None;
    }
    let mut rt = Runtime::empty();
    rt.register(Arc::new(t));
    Some(rt)
}

#[test]
fn every_builtin_matches_the_oracle() {
    let Some(rt) = runtime() else { return };
    let b = rt.get("wgsl").unwrap();
    eprintln!("wgsl on {}", b.target().unwrap().device());
    // lavapipe compiles each pipeline in seconds: every built-in in the per-level form, the other forms on the
    // two flagship variants.
    for v in builtins::all() {
        let x = random_inputs(&v, (1, 37, 2, 4, 3), 1, 3);
        let want = run(&v, &x, Form::Naive).unwrap();
        let flagship = matches!(v.name.as_str(), "loglinear_mamba2" | "loglinear_gated_deltanet");
        let forms: &[ScanForm] = if flagship { &ScanForm::ALL } else { &[ScanForm::PerLevel] };
        for chunk in [8] {
            for &form in forms {
                let opts = RunOptions::with_config(ScheduleConfig { form, ..ScheduleConfig::with_chunk(chunk) });
                let start = std::time::Instant::now();
                let got = b.run_f64(&v, &x, &opts).unwrap_or_else(|e| panic!("{} C={chunk} {form:?}: {e}", v.name));
                eprintln!("{} C={chunk} {form:?}: {:.1} s", v.name, start.elapsed().as_secs_f64());
                let e = relative_error(&got, &want);
                assert!(e <= f32_tolerance(&v), "{} C={chunk} {form:?}: rel err {e:e}", v.name);
            }
        }
    }
}

fn slice(x: &TensorMap, a: usize, z: usize) -> BTreeMap<String, Tensor> {
    x.iter()
        .map(|(n, t)| {
            let row: usize = t.shape[2..].iter().product();
            let mut sh = t.shape.clone();
            sh[1] = z - a;
            (n.clone(), Tensor::from_f64(DType::F32, sh, &t.data[a * row..z * row]))
        })
        .collect()
}

#[test]
fn prefill_state_and_decode_steps() {
    let Some(rt) = runtime() else { return };
    let b = rt.get("wgsl").unwrap();
    for name in ["loglinear_mamba2", "loglinear_gated_deltanet"] {
        let v = builtins::by_name(name).unwrap();
        let (t1, t2) = (21usize, 5usize);
        let x = random_inputs(&v, (1, t1 + t2, 2, 4, 3), 0, 5);
        let levels = x["lam"].shape[3];
        let (want, want_s) = loglinear_oracle::run_with_state(&v, &x, 0, None, levels).unwrap();
        let opts = RunOptions::with_chunk_size(Some(4));
        let head = slice(&x, 0, t1);
        let (ran, mut st) = b.prefill(&v, &views(&head), &opts).unwrap();
        let mut got = ran.o.to_f64();
        for t in t1..t1 + t2 {
            let tok = slice(&x, t, t + 1);
            got.extend(b.decode_step(&v, &mut st, &views(&tok), &opts).unwrap().to_f64());
        }
        let scale = want.data.iter().fold(1.0f64, |m, e| m.max(e.abs()));
        let e = got.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
        assert!(e <= f32_tolerance(&v), "{name}: {e:e}");
        let e = st.state.to_f64().iter().zip(&want_s.data).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
        assert!(e <= 10.0 * f32_tolerance(&v), "{name}: state {e:e}");
    }
}

/// On llvmpipe (lavapipe), a run whose shader would pass the driver's loop limit is refused with a reason,
/// never run into silently wrong numbers; below the limit the same program runs.
#[test]
fn llvmpipe_loop_limit_is_refused_not_miscomputed() {
    let Some(rt) = runtime() else { return };
    let b = rt.get("wgsl").unwrap();
    let device = b.target().unwrap().device();
    if !device.to_ascii_lowercase().contains("llvmpipe") {
        eprintln!("skip: `{device}` has no known loop limit");
        return;
    }
    let v = builtins::all().into_iter().find(|v| v.name == "loglinear_gated_deltanet").unwrap();
    let opts = RunOptions::with_config(ScheduleConfig { form: ScanForm::Streaming, ..ScheduleConfig::with_chunk(8) });
    // The streaming form walks the chunks in one invocation: its loop count grows with T.
    let long = random_inputs(&v, (1, 4096, 1, 4, 3), 0, 5);
    match b.run_f64(&v, &long, &opts) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("loop iterations") && msg.contains("65535"), "{msg}");
        }
        Ok(_) => panic!("T = 4096 in one streaming invocation passes llvmpipe's loop limit, yet it ran"),
    }
    let short = random_inputs(&v, (1, 20, 1, 4, 3), 0, 5);
    let got = b.run_f64(&v, &short, &opts).unwrap();
    let e = relative_error(&got, &run(&v, &short, Form::Naive).unwrap());
    assert!(e <= f32_tolerance(&v), "rel err {e:e}");
}

/// A grid run as several dispatches (waves, each with its own grid offset, reusing one spill region per
/// program of the wave) computes what one dispatch does: forced here with a wave limit of 3 programs on a
/// shape whose tiles spill (K = V = 64 at chunk 16 needs more than 32 KiB of tiles per program).
#[test]
fn grids_in_waves_match_the_oracle() {
    let t = WgpuTarget::new().with_wave_limit(3);
    if let Err(why) = t.availability() {
        eprintln!("skip: {why}");
        return;
    }
    let mut rt = Runtime::empty();
    rt.register(Arc::new(t));
    let b = rt.get("wgsl").unwrap();
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let x = random_inputs(&v, (2, 37, 2, 64, 64), 0, 11);
    let want = run(&v, &x, Form::Naive).unwrap();
    for form in [ScanForm::PerLevel, ScanForm::Fused] {
        let opts = RunOptions::with_config(ScheduleConfig { form, ..ScheduleConfig::with_chunk(16) });
        let got = b.run_f64(&v, &x, &opts).unwrap_or_else(|e| panic!("{form:?}: {e}"));
        let e = relative_error(&got, &want);
        assert!(e <= f32_tolerance(&v), "{form:?}: rel err {e:e}");
    }
}
