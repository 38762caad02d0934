//! `cargo bench -p loglinear-bench`: every registered backend (`loglinear::backends()`, minus the slow f64
//! `reference` oracle) against the baselines — the hand-written rustc implementation and the linear form — on
//! log-linear Mamba-2 and Gated DeltaNet at a modest shape, through the same [`Workload`] the `loglinear bench`
//! command uses.
//!
//! The shape is `B=1 T=1024 H=2 K=V=32`, chunk 64 (override with `LOGLINEAR_BENCH_SHAPE=B,T,H,K,V`); the whole
//! run takes a couple of minutes on two cores.

use std::sync::OnceLock;

use loglinear_bench::{Shape, Workload};
use loglinear_runtime::Runtime;

const VARIANTS: &[&str] = &["loglinear_mamba2", "loglinear_gated_deltanet"];
const CHUNK: usize = 64;

fn shape() -> Shape {
    static SHAPE: OnceLock<Shape> = OnceLock::new();
    *SHAPE.get_or_init(|| {
        let parsed = std::env::var("LOGLINEAR_BENCH_SHAPE").ok().and_then(|s| {
            let p: Vec<usize> = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            match p[..] {
                [b, t, h, k, v] if p.iter().all(|x| *x > 0) => Some((b, t, h, k, v)),
                _ => None,
            }
        });
        parsed.unwrap_or((1, 1024, 2, 32, 32))
    })
}

fn registry() -> &'static Runtime {
    loglinear::runtime()
}

/// The workloads, built once (not timed).
fn workload(variant: &str) -> &'static Workload {
    static WORK: OnceLock<Vec<Workload>> = OnceLock::new();
    let all = WORK.get_or_init(|| {
        VARIANTS
            .iter()
            .map(|n| {
                let v = loglinear_ir::builtins::by_name(n).expect("built-in");
                Workload::new(&v, shape(), CHUNK, 0).expect("workload")
            })
            .collect()
    });
    &all[VARIANTS.iter().position(|n| *n == variant).expect("known variant")]
}

/// Every registered backend but the f64 oracle (too slow to be interesting here).
fn backend_names() -> Vec<&'static str> {
    registry().names().into_iter().filter(|n| *n != "reference").collect()
}

fn main() {
    let (b, t, h, k, v) = shape();
    eprintln!("loglinear-bench: B={b} T={t} H={h} K={k} V={v} C={CHUNK}; backends: {:?}", backend_names());
    divan::main();
}

/// One divan module per variant: the variant on each backend, its linear form on each backend, and the rustc
/// baseline (one thread).
macro_rules! variant_benches {
    ($($module:ident => $index:literal),* $(,)?) => {
        $(
            mod $module {
                use super::*;

                /// The log-linear variant on each backend.
                #[divan::bench(args = backend_names(), sample_count = 5, sample_size = 1)]
                fn loglinear_form(bencher: divan::Bencher, backend: &str) {
                    let w = workload(VARIANTS[$index]);
                    let be = registry().get(backend).expect("registered");
                    w.run_backend(&be).expect("first call (compilation) outside the samples");
                    bencher.bench(|| w.run_backend(&be).expect("run"));
                }

                /// Its linear form on each backend.
                #[divan::bench(args = backend_names(), sample_count = 5, sample_size = 1)]
                fn linear_form(bencher: divan::Bencher, backend: &str) {
                    let w = workload(VARIANTS[$index]);
                    let be = registry().get(backend).expect("registered");
                    w.run_linear(&be).expect("log-linear").expect("first call");
                    bencher.bench(|| w.run_linear(&be).expect("log-linear").expect("run"));
                }

                /// The hand-written rustc baseline of the log-linear form (one thread).
                #[divan::bench(sample_count = 10, sample_size = 1)]
                fn rustc_baseline(bencher: divan::Bencher) {
                    let w = workload(VARIANTS[$index]);
                    bencher.bench(|| w.run_baseline(1).expect("covered"));
                }
            }
        )*
    };
}

variant_benches! {
    loglinear_mamba2 => 0,
    loglinear_gated_deltanet => 1,
}
