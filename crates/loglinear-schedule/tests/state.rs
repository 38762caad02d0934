//! The state after a prefill (the forward program's `final_state` kernel, spec §6.3) equals the token
//! recurrence's, and decoding on from it reproduces one long run: every built-in, both scan forms, chunk sizes
//! 1, 4, 16, lengths around chunk boundaries, on the f64 interpreter.

use std::collections::BTreeMap;

use loglinear_ir::random::random_inputs;
use loglinear_ir::{builtins, check_inputs, TensorMap, VariantIr};
use loglinear_kernel::interp::{decode_tokens, run_program_with_states};
use loglinear_kernel::{Bindings, States, Tensor};
use loglinear_oracle::run_with_state;
use loglinear_schedule::{compile_with, size_env, DType, ScanForm, ScheduleConfig};

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn owned(x: &TensorMap) -> BTreeMap<String, Tensor> {
    x.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(DType::F64, t.shape.clone(), &t.data))).collect()
}

fn views(o: &BTreeMap<String, Tensor>) -> Bindings<'_> {
    o.iter().map(|(n, t)| (n.clone(), t.view())).collect()
}

use loglinear_testkit::time_rows as slice;

fn cfg(chunk: usize, form: ScanForm) -> ScheduleConfig {
    ScheduleConfig { chunk, form, storage: DType::F64, accum: DType::F64, ..Default::default() }
}

fn prefill(v: &VariantIr, x: &TensorMap, chunk: usize, form: ScanForm) -> (Vec<f64>, Tensor) {
    let (k, vd) = (x["q"].shape[3], x["v"].shape[3]);
    let c = compile_with(v, &cfg(chunk, form), Some((k, vd)), None).unwrap();
    let dims = check_inputs(v, x).unwrap();
    let env = size_env(dims.b, dims.t, dims.h, dims.k, dims.v, dims.l, chunk, c.forward.hierarchical);
    let o_x = owned(x);
    let mut st = States::new();
    let o = run_program_with_states::<f64>(&c.forward, &env, &views(&o_x), &mut st, DType::F64).unwrap();
    (o.to_f64(), st.remove("state").expect("the forward program has a state"))
}

#[test]
fn final_states_match_the_recurrence() {
    for v in builtins::all() {
        for form in ScanForm::ALL {
            for chunk in [1, 4, 16] {
                for t in [1, 3, 4, 5, 16, 37, 64, 65] {
                    let x = random_inputs(&v, (2, t, 2, 3, 5), 1, t as u64);
                    let levels = x.get("lam").map_or(1, |l| l.shape[3]);
                    let (o, st) = prefill(&v, &x, chunk, form);
                    let (want_o, want_s) = run_with_state(&v, &x, 0, None, levels).unwrap();
                    let tag = format!("{} {form:?} C={chunk} T={t}", v.name);
                    assert!(max_abs(&o, &want_o.data) < 1e-10, "{tag}: o");
                    assert_eq!(st.shape(), want_s.shape.as_slice(), "{tag}: state shape");
                    let e = max_abs(&st.to_f64(), &want_s.data);
                    assert!(e < 1e-10, "{tag}: state differs by {e:e}");
                }
            }
        }
    }
}

#[test]
fn decoding_on_from_a_prefill_equals_one_long_run() {
    for v in builtins::all() {
        let (k, vd) = (3, 4);
        for (t1, t2) in [(1, 7), (5, 4), (16, 3), (17, 9)] {
            let x = random_inputs(&v, (1, t1 + t2, 2, k, vd), 0, (t1 * 31 + t2) as u64);
            let (want, _) = run_with_state(&v, &x, 0, None, x.get("lam").map_or(1, |l| l.shape[3])).unwrap();
            let head = slice(&x, 0, t1);
            let tail = slice(&x, t1, t1 + t2);
            let (o1, st) = prefill(&v, &head, 4, ScanForm::PerLevel);
            let c = compile_with(&v, &cfg(4, ScanForm::PerLevel), Some((k, vd)), None).unwrap();
            let dims = check_inputs(&v, &tail).unwrap();
            let mut env = size_env(dims.b, dims.t, dims.h, dims.k, dims.v, dims.l, 1, c.decode.hierarchical);
            env.step = t1;
            let mut states = States::new();
            states.insert("state".into(), st);
            let tail_x = owned(&tail);
            let o2 = decode_tokens(&env, &views(&tail_x), &mut states, |e, x, s| {
                run_program_with_states::<f64>(&c.decode, e, x, s, DType::F64)
            })
            .unwrap();
            let tag = format!("{} T1={t1} T2={t2}", v.name);
            let (b, h) = (1, 2);
            let mut got = vec![0.0; b * (t1 + t2) * h * vd];
            got[..t1 * h * vd].copy_from_slice(&o1);
            got[t1 * h * vd..].copy_from_slice(&o2.to_f64());
            let e = max_abs(&got, &want.data);
            assert!(e < 1e-10, "{tag}: {e:e}");
        }
    }
}

#[test]
fn a_prefill_from_a_chunk_aligned_state_continues_one_run() {
    use loglinear_kernel::bitlen;
    let chunk = 4;
    for v in builtins::all() {
        for form in [ScanForm::Fused, ScanForm::Streaming] {
            for (t1, t2) in [(4, 1), (8, 5), (12, 16), (16, 37), (64, 7)] {
                let (k, vd) = (3, 4);
                let x = random_inputs(&v, (2, t1 + t2, 2, k, vd), 0, (t1 * 13 + t2) as u64);
                let levels = x.get("lam").map_or(1, |l| l.shape[3]);
                let (want, want_s) = loglinear_oracle::run_with_state(&v, &x, 0, None, levels).unwrap();
                let (o1, st) = prefill(&v, &slice(&x, 0, t1), chunk, form);
                let tail = slice(&x, t1, t1 + t2);
                let c = compile_with(&v, &cfg(chunk, form), Some((k, vd)), None).unwrap();
                let dims = check_inputs(&v, &tail).unwrap();
                let mut env = size_env(dims.b, dims.t, dims.h, dims.k, dims.v, dims.l, chunk, c.forward.hierarchical);
                env.step = t1;
                if c.forward.hierarchical {
                    env.m = bitlen(((t1 / chunk) + env.nt - 1) as u64) as usize;
                    env.ms = env.m + 1;
                }
                let mut states = States::new();
                states.insert("state".into(), st);
                let tail_x = owned(&tail);
                let o2 =
                    run_program_with_states::<f64>(&c.forward, &env, &views(&tail_x), &mut states, DType::F64).unwrap();
                let tag = format!("{} {form:?} T1={t1} T2={t2}", v.name);
                let (h, bb) = (2, 2);
                let mut got = Vec::new();
                let (o1, o2) = (o1, o2.to_f64());
                for b in 0..bb {
                    got.extend_from_slice(&o1[b * t1 * h * vd..(b + 1) * t1 * h * vd]);
                    got.extend_from_slice(&o2[b * t2 * h * vd..(b + 1) * t2 * h * vd]);
                }
                let e = max_abs(&got, &want.data);
                assert!(e < 1e-10, "{tag}: outputs differ by {e:e}");
                let e = max_abs(&states["state"].to_f64(), &want_s.data);
                assert!(e < 1e-10, "{tag}: final states differ by {e:e}");
            }
        }
    }
}
