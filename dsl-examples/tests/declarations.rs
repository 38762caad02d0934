//! The macro declarations against the hand-built Core IR, and the two new variants against independent
//! hand-written oracles.

use loglinear_builtins::{builtins, extras, LoglinearDeltanetSigmoid, LoglinearGlaL2};
use loglinear_ir::random::random_inputs;
use loglinear_ir::{HostTensor, TensorMap, Variant, VariantIr};
use loglinear_oracle::{run, Form};

const TS: [usize; 3] = [1, 37, 65];

fn max_rel_err(a: &HostTensor, b: &HostTensor) -> f64 {
    assert_eq!(a.shape, b.shape);
    let scale = b.data.iter().fold(1e-30f64, |m, x| m.max(x.abs()));
    a.data.iter().zip(&b.data).fold(0.0f64, |m, (x, y)| m.max((x - y).abs() / scale))
}

#[test]
fn six_declarations_give_the_twelve_builtins() {
    let forms: Vec<VariantIr> = builtins().iter().flat_map(|d| d.forms()).collect();
    assert_eq!(forms.len(), 12);
    let mut names: Vec<&str> = forms.iter().map(|v| v.name.as_str()).collect();
    names.sort_unstable();
    let mut want: Vec<String> = loglinear_ir::builtins::all().into_iter().map(|v| v.name).collect();
    want.sort_unstable();
    assert_eq!(names, want);
    let log_linear: Vec<VariantIr> = builtins().iter().map(|d| d.ir()).collect();
    let in_order: Vec<VariantIr> =
        log_linear.iter().cloned().chain(log_linear.iter().map(|v| v.linear_base())).collect();
    assert_eq!(in_order, loglinear_ir::builtins::all(), "same variants in the same order as the Core IR");
    for decl in builtins() {
        assert_eq!(decl.name(), decl.ir().name);
        for ir in decl.forms() {
            let core = loglinear_ir::builtins::by_name(&ir.name).expect("a built-in name");
            assert_eq!(ir, core, "{} differs from the Core IR:\n{ir}\n{core}", ir.name);
        }
    }
}

/// The macro-declared built-ins against the external vectors (made by an implementation independent of this
/// project): a declaration that meant something else than the variant's maths fails here, whatever the Core IR
/// says.
#[test]
fn declared_builtins_match_the_external_vectors() {
    let mut checked = 0;
    for decl in builtins() {
        for ir in decl.forms() {
            for case in loglinear_testkit::read_cases(&ir.name) {
                let o = run(&ir, &case.inputs, Form::Naive).unwrap();
                let e = max_rel_err(&o, &case.o);
                assert!(e <= 1e-10, "{} case{}: rel err {e}", ir.name, case.index);
                checked += 1;
            }
        }
    }
    assert!(checked >= 12 * 4, "only {checked} vector cases");
}

fn l2norm(x: &[f64]) -> Vec<f64> {
    let n = (x.iter().map(|a| a * a).sum::<f64>() + 1e-6).sqrt();
    x.iter().map(|a| a / n).collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Fenwick level of source `s` for query `t` (spec §2.1).
fn level(t: usize, s: usize) -> usize {
    if s == t {
        0
    } else {
        (usize::BITS - (t ^ s).leading_zeros()) as usize
    }
}

struct Sizes {
    b: usize,
    t: usize,
    h: usize,
    k: usize,
    v: usize,
    l: usize,
}

fn sizes(inputs: &TensorMap) -> Sizes {
    let (q, v, lam) = (&inputs["q"].shape, &inputs["v"].shape, &inputs["lam"].shape);
    Sizes { b: q[0], t: q[1], h: q[2], k: q[3], v: v[3], l: lam[3] }
}

/// Row `[b, t, h, :]` of a `[B, T, H, D]` tensor.
fn row(x: &HostTensor, b: usize, t: usize, h: usize) -> &[f64] {
    let (tt, hh, d) = (x.shape[1], x.shape[2], x.shape[3]);
    let o = ((b * tt + t) * hh + h) * d;
    &x.data[o..o + d]
}

/// Naive sum (spec §3.1) for GLA with l2-normalised q and k:
/// `o_t = Σ_{s≤t} λ_t^{level(t,s)} Σ_i q̂_t[i] Π_{r=s+1..t} exp(g_r[i]) k̂_s[i] · v_s`.
fn gla_l2_oracle(inputs: &TensorMap) -> HostTensor {
    let z = sizes(inputs);
    let mut out = HostTensor::zeros(vec![z.b, z.t, z.h, z.v]);
    for b in 0..z.b {
        for h in 0..z.h {
            for t in 0..z.t {
                let q = l2norm(row(&inputs["q"], b, t, h));
                let lam = row(&inputs["lam"], b, t, h);
                let mut o = vec![0.0; z.v];
                for s in 0..=t {
                    let k = l2norm(row(&inputs["k"], b, s, h));
                    let mut score = 0.0;
                    for i in 0..z.k {
                        let decay: f64 = (s + 1..=t).map(|r| row(&inputs["g"], b, r, h)[i]).sum::<f64>().exp();
                        score += q[i] * decay * k[i];
                    }
                    let w = lam[level(t, s)] * score;
                    for (oj, vj) in o.iter_mut().zip(row(&inputs["v"], b, s, h)) {
                        *oj += w * vj;
                    }
                }
                let base = ((b * z.t + t) * z.h + h) * z.v;
                out.data[base..base + z.v].copy_from_slice(&o);
            }
        }
    }
    out
}

/// Token recurrence over Fenwick states (spec §6.2) for DeltaNet with `β = sigmoid(b_raw)`.
#[allow(clippy::needless_range_loop)] // index loops read like the spec's sums
fn deltanet_sigmoid_oracle(inputs: &TensorMap) -> HostTensor {
    let z = sizes(inputs);
    let mut out = HostTensor::zeros(vec![z.b, z.t, z.h, z.v]);
    let braw = &inputs["b_raw"];
    for b in 0..z.b {
        for h in 0..z.h {
            let mut states = vec![vec![vec![0.0f64; z.v]; z.k]; z.l + 1];
            for t in 0..z.t {
                let (q, k, v) = (row(&inputs["q"], b, t, h), row(&inputs["k"], b, t, h), row(&inputs["v"], b, t, h));
                let beta = sigmoid(braw.data[(b * z.t + t) * z.h + h]);
                // 1. carry.
                if t >= 1 {
                    let c = t.trailing_zeros() as usize;
                    let mut merged = vec![vec![0.0; z.v]; z.k];
                    for st in states.iter_mut().take(c + 1) {
                        for (m, s) in merged.iter_mut().zip(st.iter_mut()) {
                            for (mj, sj) in m.iter_mut().zip(s.iter_mut()) {
                                *mj += *sj;
                                *sj = 0.0;
                            }
                        }
                    }
                    states[c + 1] = merged;
                }
                // 2. transit: S ← S − β k (kᵀ S).
                for st in states.iter_mut() {
                    for j in 0..z.v {
                        let kts: f64 = (0..z.k).map(|i| k[i] * st[i][j]).sum();
                        for i in 0..z.k {
                            st[i][j] -= beta * k[i] * kts;
                        }
                    }
                }
                // 3. insert: S⁽⁰⁾ ← β k vᵀ.
                for i in 0..z.k {
                    for j in 0..z.v {
                        states[0][i][j] = beta * k[i] * v[j];
                    }
                }
                // 4. read.
                let lam = row(&inputs["lam"], b, t, h);
                let base = ((b * z.t + t) * z.h + h) * z.v;
                for (l, st) in states.iter().enumerate().take(z.l) {
                    for j in 0..z.v {
                        let r: f64 = (0..z.k).map(|i| st[i][j] * q[i]).sum();
                        out.data[base + j] += lam[l] * r;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn gla_l2_matches_independent_oracle() {
    let ir = LoglinearGlaL2.ir();
    assert!(ir.to_string().contains("query = l2norm(q)"), "{ir}");
    for (i, t) in TS.into_iter().enumerate() {
        let inputs = random_inputs(&ir, (2, t, 2, 4, 3), 1, 100 + i as u64);
        let want = gla_l2_oracle(&inputs);
        assert!(want.data.iter().any(|x| x.abs() > 1e-3), "the oracle must not be trivially zero");
        for form in [Form::Naive, Form::Recurrent, Form::Chunked(16)] {
            let e = max_rel_err(&run(&ir, &inputs, form).unwrap(), &want);
            assert!(e <= 1e-10, "T={t} {form:?}: rel err {e}");
        }
    }
    // Its linear base is GLA on normalised keys: with λ ≡ 1 the log-linear form must agree.
    let base = ir.linear_base();
    assert_eq!(base.name, "gla_l2");
    let mut inputs = random_inputs(&ir, (1, 37, 1, 4, 3), 0, 5);
    inputs.get_mut("lam").unwrap().data.iter_mut().for_each(|x| *x = 1.0);
    let want = gla_l2_oracle(&inputs);
    inputs.remove("lam");
    let e = max_rel_err(&run(&base, &inputs, Form::Naive).unwrap(), &want);
    assert!(e <= 1e-10, "linear base: rel err {e}");
}

#[test]
fn deltanet_sigmoid_matches_independent_oracle() {
    let ir = LoglinearDeltanetSigmoid.ir();
    assert_eq!(ir.class(), loglinear_ir::TransitionClass::Delta);
    for (i, t) in TS.into_iter().enumerate() {
        let inputs = random_inputs(&ir, (2, t, 2, 4, 3), 2, 200 + i as u64);
        let want = deltanet_sigmoid_oracle(&inputs);
        assert!(want.data.iter().any(|x| x.abs() > 1e-3), "the oracle must not be trivially zero");
        for form in [Form::Naive, Form::Chunked(16)] {
            let e = max_rel_err(&run(&ir, &inputs, form).unwrap(), &want);
            assert!(e <= 1e-10, "T={t} {form:?}: rel err {e}");
        }
    }
}

#[test]
fn extras_are_new_names() {
    for d in extras() {
        for ir in d.forms() {
            assert!(loglinear_ir::builtins::by_name(&ir.name).is_none(), "{} is a built-in", ir.name);
        }
    }
}
