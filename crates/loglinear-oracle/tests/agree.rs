//! The three oracle forms agree with each other (property tests), satisfy the identity tests of spec §11.2, and
//! match the external test vectors.

use loglinear_ir::random::{random_inputs, Rng};
use loglinear_ir::{builtins, HostTensor, TensorMap, VariantIr};
use loglinear_oracle::{run, Form};

use loglinear_testkit::{read_cases, relative_error as rel};

#[test]
fn forms_agree_on_random_shapes() {
    let mut rng = Rng::new(7);
    for v in builtins::all() {
        for trial in 0..6 {
            let t = if trial == 0 { 1 } else { rng.range(1, 300) };
            let k = rng.range(1, 5);
            let vd = k + rng.range(1, 3);
            let c = 1usize << rng.range(0, 6);
            let inputs = random_inputs(&v, (1, t, 2, k, vd), trial % 2, rng.next_u64());
            let naive = run(&v, &inputs, Form::Naive).unwrap();
            for form in [Form::Recurrent, Form::Chunked(c), Form::Fused(c), Form::Chunked(256)] {
                let o = run(&v, &inputs, form).unwrap();
                let e = rel(&o, &naive);
                assert!(e <= 1e-12, "{} T={t} K={k} V={vd} {form:?}: rel err {e:e}", v.name);
            }
        }
    }
}

fn scale_lam(inputs: &mut TensorMap, f: impl Fn(usize) -> f64) {
    let lam = inputs.get_mut("lam").unwrap();
    let l = lam.shape[3];
    for (i, x) in lam.data.iter_mut().enumerate() {
        *x = f(i % l);
    }
}

#[test]
fn identity_tests() {
    for v in builtins::all().into_iter().filter(VariantIr::is_log_linear) {
        let base = v.linear_base();
        let (t, k, vd) = (45, 3, 4);
        let mut inputs = random_inputs(&v, (2, t, 2, k, vd), 2, 11);
        let levels = inputs["lam"].shape[3];
        // λ ≡ 1 equals the linear base model.
        scale_lam(&mut inputs, |_| 1.0);
        let ones = run(&v, &inputs, Form::Chunked(8)).unwrap();
        let mut base_in = inputs.clone();
        base_in.remove("lam");
        let lin = run(&base, &base_in, Form::Recurrent).unwrap();
        assert!(rel(&ones, &lin) <= 1e-12, "{}: λ≡1 vs base", v.name);
        // One-hot λ outputs sum to the λ ≡ 1 output, and each is non-trivial.
        let mut sum = HostTensor::zeros(ones.shape.clone());
        for l in 0..levels {
            scale_lam(&mut inputs, |i| if i == l { 1.0 } else { 0.0 });
            let o = run(&v, &inputs, Form::Naive).unwrap();
            let o2 = run(&v, &inputs, Form::Fused(4)).unwrap();
            assert!(rel(&o2, &o) <= 1e-12, "{} one-hot {l}", v.name);
            if l < loglinear_ir::level::num_levels(t) {
                assert!(o.data.iter().any(|x| *x != 0.0), "{} level {l} contributes", v.name);
            } else {
                assert!(o.data.iter().all(|x| *x == 0.0), "{} extra level {l} ignored", v.name);
            }
            sum.data.iter_mut().zip(&o.data).for_each(|(s, x)| *s += x);
        }
        assert!(rel(&sum, &ones) <= 1e-12, "{}: one-hot sum", v.name);
    }
}

#[test]
fn single_token() {
    // T = 1: o_0 = λ_0^(0) (q_0·k_0) v_0 (times β_0 for delta variants).
    for v in builtins::all() {
        let inputs = random_inputs(&v, (1, 1, 1, 3, 2), 0, 5);
        let o = run(&v, &inputs, Form::Chunked(1)).unwrap();
        let q = &inputs["q"].data;
        let k = &inputs["k"].data;
        let mut w: f64 = q.iter().zip(k).map(|(a, b)| a * b).sum();
        if let Some(lam) = inputs.get("lam") {
            w *= lam.data[0];
        }
        if let Some(beta) = inputs.get("beta") {
            w *= beta.data[0];
        }
        for j in 0..2 {
            let want = w * inputs["v"].data[j];
            assert!((o.data[j] - want).abs() <= 1e-14 * want.abs().max(1.0), "{}", v.name);
        }
    }
}

#[test]
fn extreme_decays() {
    for name in ["loglinear_mamba2", "loglinear_gated_deltanet", "loglinear_gla", "loglinear_retnet"] {
        let v = builtins::by_name(name).unwrap();
        for g in [0.0, -50.0] {
            let mut inputs = random_inputs(&v, (1, 65, 1, 2, 3), 0, 3);
            inputs.get_mut("g").unwrap().data.iter_mut().for_each(|x| *x = g);
            let naive = run(&v, &inputs, Form::Naive).unwrap();
            assert!(naive.data.iter().all(|x| x.is_finite()));
            for c in [1, 4, 64] {
                let e = rel(&run(&v, &inputs, Form::Chunked(c)).unwrap(), &naive);
                assert!(e <= 1e-12, "{name} g={g} C={c}: {e:e}");
            }
        }
    }
}

#[test]
fn external_vectors() {
    for v in builtins::all() {
        for loglinear_testkit::Case { index: i, inputs: case, o: want } in read_cases(&v.name) {
            for form in [Form::Naive, Form::Recurrent, Form::Chunked(4), Form::Chunked(64), Form::Fused(16)] {
                let o = run(&v, &case, form).unwrap();
                let e = rel(&o, &want);
                assert!(e <= 1e-10, "{} case {i} {form:?}: rel err {e:e}", v.name);
            }
        }
    }
}
