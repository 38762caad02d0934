//! The interpreter of the Kernel IR against the f64 oracles, on every built-in and the spec §11.4 edge cases.

use loglinear_ir::builtins;
use loglinear_ir::random::random_inputs;
use loglinear_ir::{TensorMap, VariantIr};
use loglinear_oracle::{run, Form};
use loglinear_schedule::{compile, interpret, interpret_decode, Precision, ScanForm, ScheduleConfig};

use loglinear_testkit::relative_error as rel;

const FORMS: [ScanForm; 3] = ScanForm::ALL;

fn check_all_chunks(v: &VariantIr, inputs: &TensorMap, what: &str, chunks: &[usize]) {
    let want = run(v, inputs, Form::Naive).unwrap();
    assert!(want.data.iter().all(|x| x.is_finite()), "{what}: oracle not finite");
    for &c in chunks {
        for form in FORMS {
            let comp = compile(v, &ScheduleConfig { chunk: c, form, ..Default::default() }).unwrap();
            let o = interpret(&comp, inputs, Precision::F64).unwrap();
            let e = rel(&o, &want);
            assert!(e <= 1e-12, "{} {what} C={c} {form:?}: rel err {e:e}", v.name);
        }
    }
}

#[test]
fn all_builtins_lengths() {
    for v in builtins::all() {
        for (i, t) in [1usize, 2, 3, 37, 63, 64, 65].into_iter().enumerate() {
            let inputs = random_inputs(&v, (1, t, 2, 3, 5), 0, 100 + i as u64);
            check_all_chunks(&v, &inputs, &format!("T={t}"), &[1, 4, 16, 64]);
        }
    }
}

#[test]
fn long_prime_and_chunk_counts() {
    // T = 257 (prime, NT = 2^k + 1 at C = 16 and 64: 17, 5), T = 128 at C = 4/16/64 (NT = 32/8/2), T = 129.
    for v in builtins::all() {
        for (t, chunks) in [(257usize, &[16usize, 64][..]), (128, &[4, 16, 64][..]), (129, &[4, 64][..])] {
            let inputs = random_inputs(&v, (1, t, 1, 2, 3), 0, 7 + t as u64);
            check_all_chunks(&v, &inputs, &format!("T={t}"), chunks);
        }
        let inputs = random_inputs(&v, (1, 40, 1, 2, 2), 0, 9);
        check_all_chunks(&v, &inputs, "T=40 C=1", &[1]);
    }
}

#[test]
fn extra_levels_batches_k1() {
    for v in builtins::all() {
        let inputs = random_inputs(&v, (2, 33, 2, 1, 4), 3, 21);
        check_all_chunks(&v, &inputs, "B=2 K=1 extra levels", &[1, 4, 16]);
        let inputs = random_inputs(&v, (1, 20, 1, 6, 2), 0, 22);
        check_all_chunks(&v, &inputs, "K=6 V=2", &[4, 64]);
    }
}

#[test]
fn extreme_decays() {
    for name in ["loglinear_mamba2", "loglinear_gated_deltanet", "loglinear_gla", "loglinear_retnet", "mamba2", "gla"] {
        let v = builtins::by_name(name).unwrap();
        for g in [0.0, -50.0] {
            let mut inputs = random_inputs(&v, (1, 65, 1, 2, 3), 0, 3);
            inputs.get_mut("g").unwrap().data.iter_mut().for_each(|x| *x = g);
            check_all_chunks(&v, &inputs, &format!("g={g}"), &[1, 4, 16, 64]);
        }
        // A chunk-sized block of huge negative decay.
        let mut inputs = random_inputs(&v, (1, 70, 1, 2, 3), 0, 4);
        let gt = inputs.get_mut("g").unwrap();
        if gt.shape.len() >= 3 {
            let w = gt.data.len() / 70;
            for x in gt.data[16 * w..32 * w].iter_mut() {
                *x = -1e4;
            }
        }
        check_all_chunks(&v, &inputs, "block of -1e4", &[4, 16]);
    }
}

#[test]
fn delta_edge_cases() {
    for name in ["loglinear_deltanet", "loglinear_gated_deltanet", "deltanet", "gated_deltanet"] {
        let v = builtins::by_name(name).unwrap();
        for beta in [0.0, 1.0] {
            let mut inputs = random_inputs(&v, (1, 37, 1, 3, 2), 0, 5);
            inputs.get_mut("beta").unwrap().data.iter_mut().for_each(|x| *x = beta);
            check_all_chunks(&v, &inputs, &format!("beta={beta}"), &[1, 4, 16, 64]);
        }
        // Repeated identical unit keys inside chunks, β = 1 (ill-conditioned T_w / T_u).
        let mut inputs = random_inputs(&v, (1, 40, 1, 3, 2), 0, 6);
        let k = inputs.get_mut("k").unwrap();
        let first: Vec<f64> = k.data[..3].to_vec();
        for t in 0..40 {
            if t % 3 != 2 {
                k.data[t * 3..t * 3 + 3].copy_from_slice(&first);
            }
        }
        inputs.get_mut("beta").unwrap().data.iter_mut().for_each(|x| *x = 1.0);
        check_all_chunks(&v, &inputs, "repeated keys", &[4, 16, 64]);
    }
}

#[test]
fn f32_tolerances() {
    for v in builtins::all() {
        let inputs = random_inputs(&v, (1, 100, 2, 4, 4), 0, 11);
        let want = run(&v, &inputs, Form::Naive).unwrap();
        let tol = if v.class().is_delta() { 1e-4 } else { 1e-5 };
        for c in [4, 16] {
            for form in FORMS {
                let comp = compile(&v, &ScheduleConfig { chunk: c, form, ..Default::default() }).unwrap();
                let e = rel(&interpret(&comp, &inputs, Precision::F32).unwrap(), &want);
                assert!(e <= tol, "{} f32 C={c} {form:?}: {e:e}", v.name);
                assert!(e > 0.0, "{}: f32 run must differ from f64", v.name);
            }
        }
    }
}

#[test]
fn decode_step_matches() {
    for v in builtins::all() {
        for t in [1usize, 2, 17, 64] {
            let inputs = random_inputs(&v, (1, t, 2, 3, 2), 1, 31 + t as u64);
            let want = run(&v, &inputs, Form::Naive).unwrap();
            let comp = compile(&v, &ScheduleConfig::default()).unwrap();
            let e = rel(&interpret_decode(&comp, &inputs, Precision::F64).unwrap(), &want);
            assert!(e <= 1e-12, "{} decode T={t}: {e:e}", v.name);
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let comp = compile(&v, &ScheduleConfig::default()).unwrap();
    let mut inputs = random_inputs(&v, (1, 8, 1, 2, 2), 0, 1);
    inputs.remove("g");
    assert!(interpret(&comp, &inputs, Precision::F64).is_err());
    let mut inputs = random_inputs(&v, (1, 8, 1, 2, 2), 0, 1);
    inputs.get_mut("q").unwrap().data[0] = f64::NAN;
    assert!(interpret(&comp, &inputs, Precision::F32).is_err());
}
