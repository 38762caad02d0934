//! The declared variant on the reference backend against an independent, hand-written oracle.

use loglinear::{random::random_inputs, HostTensor, TensorMap, Variant};
use retnet_gated::{registry, LoglinearRetnetGated};

/// Naive sum (spec §3.1): `o_t = Σ_{s≤t} λ_t^{level(t,s)} exp((t−s) g_h) sigmoid(w_s) (q_t · k̂_s) v_s`.
fn oracle(x: &TensorMap) -> HostTensor {
    let (q, k, v, g, w, lam) = (&x["q"], &x["k"], &x["v"], &x["g"], &x["w"], &x["lam"]);
    let [b, t, h, dk] = q.shape[..] else { panic!() };
    let (dv, nl) = (v.shape[3], lam.shape[3]);
    let at = |x: &HostTensor, d: usize, b: usize, t: usize, h: usize| ((b * x.shape[1] + t) * x.shape[2] + h) * d;
    let mut o = HostTensor::zeros(vec![b, t, h, dv]);
    for (bi, ti, hi) in (0..b).flat_map(|bi| (0..t).flat_map(move |ti| (0..h).map(move |hi| (bi, ti, hi)))) {
        for s in 0..=ti {
            let ks = &k.data[at(k, dk, bi, s, hi)..][..dk];
            let norm = (ks.iter().map(|a| a * a).sum::<f64>() + 1e-6).sqrt();
            let qk: f64 = (0..dk).map(|i| q.data[at(q, dk, bi, ti, hi) + i] * ks[i] / norm).sum();
            let level = if s == ti { 0 } else { (usize::BITS - (ti ^ s).leading_zeros()) as usize };
            assert!(level < nl);
            let gate = 1.0 / (1.0 + (-w.data[at(w, 1, bi, s, hi)]).exp());
            let weight = lam.data[at(lam, nl, bi, ti, hi) + level] * ((ti - s) as f64 * g.data[hi]).exp() * gate * qk;
            let (oi, vi) = (at(&o, dv, bi, ti, hi), at(v, dv, bi, s, hi));
            for j in 0..dv {
                o.data[oi + j] += weight * v.data[vi + j];
            }
        }
    }
    o
}

#[test]
fn reference_backend_matches_hand_written_oracle() {
    let ir = LoglinearRetnetGated.ir();
    assert_eq!(ir.class(), loglinear::TransitionClass::ConstantDecay);
    for (seed, t) in [(1, 1), (2, 37), (3, 65)] {
        let x = random_inputs(&ir, (2, t, 2, 4, 3), 1, seed);
        let o = loglinear::run(&ir, "reference", &x, None).unwrap();
        let want = oracle(&x);
        assert!(want.data.iter().any(|y| y.abs() > 1e-3), "the oracle must not be trivially zero");
        let err = loglinear::relative_error(&o, &want);
        assert!(err <= 1e-10, "T={t}: relative error {err}");
    }
}

#[test]
fn registry_has_both_forms() {
    let r = registry();
    assert!(r.contains("loglinear_retnet_gated") && r.contains("retnet_gated") && r.contains("loglinear_mamba2"));
    assert_eq!(r.get("loglinear_retnet_gated").unwrap().chunk_size, 32);
}
