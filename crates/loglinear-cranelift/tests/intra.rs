//! The proof kernel (log-linear Mamba-2 intra-chunk block) against an f64 Rust implementation; the kernel cache.

#![allow(clippy::needless_range_loop)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::{jits, Rng};
use loglinear_cranelift::{IntraArgs, IntraChunkKernel, IntraShape, JitError, JitModule, KernelCache};

/// One chunk's inputs, `c` rows allocated, `n` valid.
struct Chunk {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    gamma: Vec<f32>,
    lam: Vec<f32>,
    lam_stride: usize,
}

fn make_chunk(rng: &mut Rng, s: IntraShape, n: usize, lam_stride: usize) -> Chunk {
    let g = rng.vec(n, -0.3, 0.0);
    let mut gamma = Vec::with_capacity(n);
    let mut acc = 0.0f32;
    for x in g {
        acc += x;
        gamma.push(acc);
    }
    Chunk {
        q: rng.vec(n * s.k, -1.0, 1.0),
        k: rng.vec(n * s.k, -1.0, 1.0),
        v: rng.vec(n * s.v, -1.0, 1.0),
        gamma,
        // the last row only needs `levels` entries: the slice ends there (checks the kernel reads no further)
        lam: rng.vec((n.max(1) - 1) * lam_stride + s.levels(), 0.05, 1.5),
        lam_stride,
    }
}

/// Straightforward f64 implementation of spec §7.2 step (1).
fn reference(s: IntraShape, ch: &Chunk, n: usize, o: &mut [f64]) {
    for r in 0..n {
        for t in 0..=r {
            let qk: f64 = (0..s.k).map(|i| ch.q[r * s.k + i] as f64 * ch.k[t * s.k + i] as f64).sum();
            let lvl = (usize::BITS - (r ^ t).leading_zeros()) as usize;
            let w = qk * (ch.gamma[r] as f64 - ch.gamma[t] as f64).exp() * ch.lam[r * ch.lam_stride + lvl] as f64;
            for j in 0..s.v {
                o[r * s.v + j] += w * ch.v[t * s.v + j] as f64;
            }
        }
    }
}

/// A plain Rust f32 loop (the baseline of the timing).
fn plain_rust(s: IntraShape, ch: &Chunk, n: usize, o: &mut [f32]) {
    let mut p = vec![0.0f32; n];
    for r in 0..n {
        for t in 0..=r {
            let mut qk = 0.0f32;
            for i in 0..s.k {
                qk += ch.q[r * s.k + i] * ch.k[t * s.k + i];
            }
            let lvl = (usize::BITS - (r ^ t).leading_zeros()) as usize;
            p[t] = qk * (ch.gamma[r] - ch.gamma[t]).exp() * ch.lam[r * ch.lam_stride + lvl];
        }
        let orow = &mut o[r * s.v..(r + 1) * s.v];
        for t in 0..=r {
            let vrow = &ch.v[t * s.v..(t + 1) * s.v];
            for j in 0..s.v {
                orow[j] += p[t] * vrow[j];
            }
        }
    }
}

fn check(jit: &JitModule, kern: &IntraChunkKernel, n: usize, lam_stride: usize, seed: u64, label: &str) {
    let s = kern.shape();
    let mut rng = Rng::new(seed);
    let ch = make_chunk(&mut rng, s, n, lam_stride);
    let o0 = rng.vec(n * s.v, -1.0, 1.0);
    let mut o = o0.clone();
    let args = IntraArgs { q: &ch.q, k: &ch.k, v: &ch.v, gamma: &ch.gamma, lam: &ch.lam, lam_stride, n };
    kern.run(&args, &mut o).expect("run");
    let mut want: Vec<f64> = o0.iter().map(|x| *x as f64).collect();
    reference(s, &ch, n, &mut want);
    // relative error, with |want| floored at 1 (|o| is O(1)–O(10) here; the floor only matters for
    // entries that cancel to near 0)
    let mut worst = 0.0f64;
    for (got, w) in o.iter().zip(&want) {
        worst = worst.max((*got as f64 - w).abs() / w.abs().max(1.0));
    }
    if std::env::var_os("LOGLINEAR_PRINT_ERR").is_some() {
        println!("{label}: worst rel err {worst:.2e}");
    }
    assert!(worst <= 1e-5, "{label}: relative error {worst:.3e} (n = {n}, shape {s:?})");
    let _ = jit;
}

#[test]
fn intra_matches_f64_reference() {
    for (name, jit) in jits() {
        for &(c, k, v) in
            &[(1, 3, 5), (4, 8, 4), (4, 5, 7), (16, 16, 24), (16, 7, 3), (64, 64, 64), (64, 32, 48), (64, 13, 9)]
        {
            let shape = IntraShape { k, v, c };
            let kern = IntraChunkKernel::compile(&jit, shape).expect("compile");
            let nl = shape.levels();
            for (n, stride) in [(c, nl), (c, nl + 9)] {
                check(&jit, &kern, n, stride, (c * 31 + k * 7 + v) as u64, &format!("{name} C={c} K={k} V={v} full"));
            }
            // partial chunks (run-time n < C)
            for n in [1, c / 2 + 1, c.saturating_sub(1)] {
                if n == 0 || n >= c {
                    continue;
                }
                check(&jit, &kern, n, nl + 2, (n * 13 + c) as u64, &format!("{name} C={c} K={k} V={v} n={n}"));
            }
        }
    }
}

#[test]
fn intra_rejects_bad_input() {
    let jit = JitModule::new().unwrap();
    assert!(matches!(
        IntraChunkKernel::compile(&jit, IntraShape { k: 4, v: 4, c: 6 }),
        Err(JitError::InvalidArgument(_))
    ));
    assert!(matches!(
        IntraChunkKernel::compile(&jit, IntraShape { k: 0, v: 4, c: 4 }),
        Err(JitError::InvalidArgument(_))
    ));
    let shape = IntraShape { k: 4, v: 3, c: 4 };
    let kern = IntraChunkKernel::compile(&jit, shape).unwrap();
    let mut rng = Rng::new(1);
    let ch = make_chunk(&mut rng, shape, 4, 3);
    let mut o = vec![0.0f32; 12];
    let ok = IntraArgs { q: &ch.q, k: &ch.k, v: &ch.v, gamma: &ch.gamma, lam: &ch.lam, lam_stride: 3, n: 4 };
    kern.run(&ok, &mut o).unwrap();
    let bad = [
        IntraArgs { n: 5, ..ok },
        IntraArgs { q: &ch.q[..15], ..ok },
        IntraArgs { v: &ch.v[..11], ..ok },
        IntraArgs { gamma: &ch.gamma[..3], ..ok },
        IntraArgs { lam_stride: 2, ..ok },
        IntraArgs { lam: &ch.lam[..ch.lam.len() - 1], ..ok },
    ];
    for a in bad {
        assert!(matches!(kern.run(&a, &mut o), Err(JitError::InvalidArgument(_))), "accepted n={} ", a.n);
    }
    assert!(matches!(kern.run(&ok, &mut o[..11]), Err(JitError::InvalidArgument(_))));
    // n = 0 is a no-op
    let before = o.clone();
    kern.run(&IntraArgs { n: 0, ..ok }, &mut o).unwrap();
    assert_eq!(o, before);
}

#[test]
fn kernel_cache_compiles_each_specialisation_once() {
    let jit = JitModule::new().unwrap();
    let cache: KernelCache<IntraShape, IntraChunkKernel> = KernelCache::new();
    let calls = AtomicUsize::new(0);
    let compile = |s: &IntraShape| {
        calls.fetch_add(1, Ordering::SeqCst);
        IntraChunkKernel::compile(&jit, *s)
    };
    let a = IntraShape { k: 8, v: 8, c: 16 };
    let b = IntraShape { k: 8, v: 4, c: 16 };
    let k1 = cache.get_or_compile(&a, compile).unwrap();
    let jit_before = jit.compile_count();
    let k2 = cache.get_or_compile(&a, compile).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "second lookup compiled again");
    assert_eq!(jit.compile_count(), jit_before, "second lookup reached the JIT");
    assert!(std::sync::Arc::ptr_eq(&k1, &k2));
    cache.get_or_compile(&b, compile).unwrap();
    assert_eq!(cache.compile_count(), 2);
    assert_eq!(cache.len(), 2);
    // a failed compile is not cached and is retried
    let bad = IntraShape { k: 8, v: 8, c: 3 };
    assert!(cache.get_or_compile(&bad, compile).is_err());
    assert!(cache.get_or_compile(&bad, compile).is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(cache.len(), 2);
    // concurrent lookups of one new key compile once
    let c = IntraShape { k: 16, v: 16, c: 32 };
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| cache.get_or_compile(&c, compile).unwrap());
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(cache.compile_count(), 3);
    assert!(cache.get(&c).is_some());
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn isa_detection_is_consistent() {
    let jit = JitModule::new().unwrap();
    let info = jit.isa_info();
    println!("host ISA: {info:?}, emit ctx: {:?}", jit.emit_ctx());
    assert_eq!(jit.emit_ctx().use_fma, info.has_fma);
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(info.has_fma, std::is_x86_feature_detected!("fma"));
        assert_eq!(info.has_sse41, std::is_x86_feature_detected!("sse4.1"));
        assert_eq!(info.has_avx2, std::is_x86_feature_detected!("avx2"));
    }
}

/// Prints the compile time of the C=64, K=V=64 kernel and one timing over 256 chunks against a plain Rust loop.
/// Checks only that both agree (no timed assertion).
#[test]
fn intra_timing_report() {
    let jit = JitModule::new().unwrap();
    let shape = IntraShape { k: 64, v: 64, c: 64 };
    let kern = IntraChunkKernel::compile(&jit, shape).unwrap();
    // second compile measured too (warm allocator / code caches)
    let kern2 = IntraChunkKernel::compile(&jit, shape).unwrap();
    println!(
        "intra kernel K=V=C=64: JIT compile {:.2} ms (again: {:.2} ms), {} bytes of code",
        kern.compile_time().as_secs_f64() * 1e3,
        kern2.compile_time().as_secs_f64() * 1e3,
        kern.code_size()
    );
    let chunks = 256;
    let nl = shape.levels();
    let mut rng = Rng::new(42);
    let data: Vec<Chunk> = (0..chunks).map(|_| make_chunk(&mut rng, shape, 64, nl)).collect();
    let mut o_jit = vec![0.0f32; chunks * 64 * 64];
    let mut o_rust = vec![0.0f32; chunks * 64 * 64];
    // warm-up
    for (ch, o) in data.iter().zip(o_jit.chunks_mut(64 * 64)).take(4) {
        let a = IntraArgs { q: &ch.q, k: &ch.k, v: &ch.v, gamma: &ch.gamma, lam: &ch.lam, lam_stride: nl, n: 64 };
        kern.run(&a, o).unwrap();
    }
    o_jit.iter_mut().for_each(|x| *x = 0.0);
    let t = Instant::now();
    for (ch, o) in data.iter().zip(o_jit.chunks_mut(64 * 64)) {
        let a = IntraArgs { q: &ch.q, k: &ch.k, v: &ch.v, gamma: &ch.gamma, lam: &ch.lam, lam_stride: nl, n: 64 };
        kern.run(&a, o).unwrap();
    }
    let t_jit = t.elapsed();
    let t = Instant::now();
    for (ch, o) in data.iter().zip(o_rust.chunks_mut(64 * 64)) {
        plain_rust(shape, ch, 64, o);
    }
    let t_rust = t.elapsed();
    let macs = chunks as f64 * (64.0 * 65.0 / 2.0) * (64.0 + 64.0);
    println!(
        "intra 256 chunks (C=K=V=64, 1 thread): JIT {:.2} ms ({:.2} GMAC/s useful), plain Rust {:.2} ms, speed-up {:.1}x",
        t_jit.as_secs_f64() * 1e3,
        macs / t_jit.as_secs_f64() / 1e9,
        t_rust.as_secs_f64() * 1e3,
        t_rust.as_secs_f64() / t_jit.as_secs_f64()
    );
    let worst = o_jit.iter().zip(&o_rust).map(|(a, b)| ((a - b).abs() / b.abs().max(1.0)) as f64).fold(0.0, f64::max);
    assert!(worst < 1e-4, "JIT and plain Rust disagree: {worst}");
}
