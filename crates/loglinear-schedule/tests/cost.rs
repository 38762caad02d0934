//! The cost model: O(T log T) flops and O(T·(K+V) + NT·K·V·levels) memory.

use loglinear_ir::builtins;
use loglinear_schedule::cost;

#[test]
fn t_log_t_growth() {
    for name in ["loglinear_mamba2", "loglinear_gated_deltanet", "loglinear_gla"] {
        let v = builtins::by_name(name).unwrap();
        let (t1, t2) = (1usize << 20, 1usize << 21);
        let a = cost(&v, (1, t1, 1, 16, 16), 64).unwrap();
        let b = cost(&v, (1, t2, 1, 16, 16), 64).unwrap();
        let want = 2.0 * (t2 as f64).log2() / (t1 as f64).log2();
        let r = b.flops / a.flops;
        assert!((r / want - 1.0).abs() <= 0.05, "{name}: flops ratio {r} vs {want}");
        // The inter-chunk part alone grows like T·log(T/C): one more level at 2T.
        let scan = |c: &loglinear_schedule::Cost| c.stages.iter().find(|s| s.name == "level_scan").unwrap().flops;
        let rs = scan(&b) / scan(&a);
        assert!((rs - 2.0 * 15.0 / 14.0).abs() < 0.02, "{name}: scan ratio {rs}");
    }
    // A linear variant is O(T): ratio 2 (up to the final state's constant cost).
    let v = builtins::by_name("mamba2").unwrap();
    let r = cost(&v, (1, 1 << 16, 1, 16, 16), 64).unwrap().flops / cost(&v, (1, 1 << 15, 1, 16, 16), 64).unwrap().flops;
    assert!((r - 2.0).abs() < 1e-4, "linear ratio {r}");
}

#[test]
fn peak_memory_bound() {
    for v in builtins::all() {
        for t in [1usize << 10, 1 << 14, 1 << 17] {
            let (k, vd, c) = (32usize, 64usize, 64usize);
            let co = cost(&v, (1, t, 1, k, vd), c).unwrap();
            let nt = t.div_ceil(c);
            let levels = loglinear_ir::level::num_levels(t);
            let bound = 4.0 * (8.0 * (t * (k + vd + levels)) as f64 + (nt * k * vd * (levels + 2)) as f64);
            assert!(co.peak_bytes <= bound, "{} T={t}: peak {} > {bound}", v.name, co.peak_bytes);
            assert!(co.peak_bytes >= 4.0 * (t * (2 * k + vd)) as f64, "peak includes the inputs");
        }
    }
}

#[test]
fn cost_counts_and_display() {
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let c = cost(&v, (2, 256, 3, 8, 8), 16).unwrap();
    let s = c.to_string();
    assert!(s.contains("flops") && s.contains("level_scan") && s.contains("peak memory"), "{s}");
    assert!(c.flops > 0.0 && c.bytes_moved > 0.0);
    // Batch and heads multiply everything.
    let one = cost(&v, (1, 256, 1, 8, 8), 16).unwrap();
    assert!((c.flops / one.flops - 6.0).abs() < 1e-9);
    // Intra flops: Q Kᵀ and P V per chunk = 2·C²·(K+V) per chunk, NT = 16 chunks.
    let intra = one.stages.iter().find(|s| s.name == "chunk").unwrap().flops;
    assert!(intra >= 16.0 * 2.0 * 256.0 * 16.0, "{intra}");
    assert!(loglinear_schedule::cost(&v, (1, 8, 1, 2, 2), 3).is_err());
}
