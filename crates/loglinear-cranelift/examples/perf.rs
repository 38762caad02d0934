//! Timings of the Cranelift backend (not a test): `cargo run --release -p loglinear-cranelift --example perf`.
//!
//! Prints, for B=1, T=16384, H=4, K=V=64, C=64 in f32: the median run time of log-linear Mamba-2, log-linear
//! Gated DeltaNet and their linear forms (both scan forms), the JIT compile time per kernel, and the first call
//! (compile + run) at T=1024. Optional arguments: `T` and the number of repetitions.

use std::time::{Duration, Instant};

use loglinear_cranelift::CraneliftBackend;
use loglinear_ir::builtins;
use loglinear_ir::random::random_inputs;
use loglinear_runtime::{Backend, RunOptions};
use loglinear_schedule::ScanForm;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let t: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16384);
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let (b, h, k, v, c) = (1, 4, 64, 64, 64);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("B={b} T={t} H={h} K={k} V={v} C={c}, f32, {threads} worker threads, median of {reps}");
    let opts = RunOptions::with_chunk_size(Some(c));

    // First call (compile + run) at T = 1024 on a fresh backend.
    for name in ["loglinear_mamba2", "loglinear_gated_deltanet"] {
        let var = builtins::by_name(name).unwrap();
        let x = random_inputs(&var, (b, 1024, h, k, v), 0, 1);
        let be = CraneliftBackend::new();
        let t0 = Instant::now();
        be.run(&var, &x, &opts).unwrap();
        let first = t0.elapsed();
        let t0 = Instant::now();
        be.run(&var, &x, &opts).unwrap();
        let second = t0.elapsed();
        let (prog, _) = be.prepare(&var, &x, c, be.form()).unwrap();
        let compile: Vec<String> = prog
            .kernels()
            .iter()
            .map(|kc| {
                format!("{} {:.1} ms ({} B)", kc.name, kc.code.compile_time().as_secs_f64() * 1e3, kc.code.code_size())
            })
            .collect();
        println!(
            "{name:<28} T=1024 first call {:7.1} ms, second {:6.1} ms; JIT per kernel: {}",
            first.as_secs_f64() * 1e3,
            second.as_secs_f64() * 1e3,
            compile.join(", ")
        );
    }

    let be = CraneliftBackend::new();
    let mut base = std::collections::HashMap::new();
    for name in ["loglinear_mamba2", "mamba2", "loglinear_gated_deltanet", "gated_deltanet"] {
        let var = builtins::by_name(name).unwrap();
        let x = random_inputs(&var, (b, t, h, k, v), 0, 2);
        let cost = loglinear_schedule::cost(&var, (b, t, h, k, v), c).ok().map(|c| c.flops);
        for form in [ScanForm::PerLevel, ScanForm::Fused] {
            be.run_with_form(&var, &x, &opts, form).unwrap(); // compile + warm up
            let times: Vec<Duration> = (0..reps)
                .map(|_| {
                    let t0 = Instant::now();
                    be.run_with_form(&var, &x, &opts, form).unwrap();
                    t0.elapsed()
                })
                .collect();
            let m = median(times);
            let gf = cost.map(|f| f / m.as_secs_f64() / 1e9);
            base.insert((name, form.name()), m);
            println!(
                "{name:<28} {:<9} {:8.1} ms{}",
                form.name(),
                m.as_secs_f64() * 1e3,
                gf.map(|g| format!("  ({g:.1} GFLOP/s by the cost model)")).unwrap_or_default()
            );
        }
    }
    let r = |a: &str, fa: &str, bn: &str, fb: &str| base[&(a, fa)].as_secs_f64() / base[&(bn, fb)].as_secs_f64();
    println!(
        "ratios: gated_deltanet/mamba2 (log-linear, per_level) {:.2}; log-linear/linear mamba2 {:.2}, gated_deltanet {:.2}",
        r("loglinear_gated_deltanet", "per_level", "loglinear_mamba2", "per_level"),
        r("loglinear_mamba2", "per_level", "mamba2", "per_level"),
        r("loglinear_gated_deltanet", "per_level", "gated_deltanet", "per_level"),
    );
}
