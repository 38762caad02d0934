//! The Cranelift backend against the f64 naive oracle (every built-in, lengths around chunk boundaries, all
//! chunk sizes, both scan forms, K ≠ V, extreme decays and β), the external test vectors, a macro-declared
//! variant with preprocessing, and the kernel cache.

use std::sync::OnceLock;

mod common;

use common::{cranelift_runtime, run_form};
use loglinear_ir::level::num_levels;
use loglinear_ir::random::random_inputs;
use loglinear_ir::{builtins, TensorMap, VariantIr};
use loglinear_oracle::{run, Form};
use loglinear_runtime::{f32_tolerance, RunOptions, Runtime, ScanForm};

const FORMS: [ScanForm; 3] = ScanForm::ALL;
const LENGTHS: [usize; 8] = [1, 2, 3, 37, 63, 64, 65, 130];
const CHUNKS: [usize; 4] = [1, 4, 16, 64];
/// λ depth used by every test input (that of T = 130), so that one compiled program serves every length.
const LEVELS: usize = 9;

fn runtime() -> &'static Runtime {
    static B: OnceLock<Runtime> = OnceLock::new();
    B.get_or_init(|| cranelift_runtime(2))
}

use loglinear_testkit::relative_error as rel;

fn inputs(v: &VariantIr, t: usize, k: usize, vd: usize, seed: u64) -> TensorMap {
    random_inputs(v, (2, t, 2, k, vd), LEVELS - num_levels(t), seed)
}

fn check(v: &VariantIr, x: &TensorMap, what: &str, chunks: &[usize]) {
    let want = run(v, x, Form::Naive).unwrap();
    assert!(want.data.iter().all(|x| x.is_finite()), "{what}: oracle not finite");
    let tol = f32_tolerance(v);
    for &c in chunks {
        for form in FORMS {
            let o = run_form(runtime(), "cranelift", v, x, c, form).unwrap();
            let e = rel(&o, &want);
            assert!(e <= tol, "{} {what} C={c} {form:?}: rel err {e:e} > {tol:e}", v.name);
        }
    }
}

fn set_all(x: &mut TensorMap, name: &str, value: f64) {
    x.get_mut(name).unwrap().data.iter_mut().for_each(|e| *e = value);
}

#[test]
fn all_builtins_lengths_chunks_forms() {
    for v in builtins::all() {
        for (i, t) in LENGTHS.into_iter().enumerate() {
            for (k, vd) in [(5, 7), (16, 8)] {
                let x = inputs(&v, t, k, vd, 100 + i as u64);
                check(&v, &x, &format!("T={t} K={k} V={vd}"), &CHUNKS);
            }
        }
    }
}

#[test]
fn extreme_decays() {
    for v in builtins::all() {
        if !v.inputs.iter().any(|d| d.name == "g") {
            continue;
        }
        for g in [0.0, -50.0] {
            for t in [37, 65, 130] {
                let mut x = inputs(&v, t, 5, 7, 3);
                set_all(&mut x, "g", g);
                check(&v, &x, &format!("g={g} T={t}"), &CHUNKS);
            }
        }
    }
}

#[test]
fn delta_beta_edges() {
    let mut n = 0;
    for v in builtins::all() {
        if !v.class().is_delta() {
            continue;
        }
        for beta in [0.0, 1.0] {
            for t in [37, 130] {
                let mut x = inputs(&v, t, 5, 7, 5);
                set_all(&mut x, "beta", beta);
                check(&v, &x, &format!("beta={beta} T={t}"), &CHUNKS);
                n += 1;
            }
        }
    }
    assert_eq!(n, 4 * 2 * 2);
}

#[test]
fn macro_declared_variants_with_preprocessing() {
    let extras = loglinear_builtins::extras();
    assert!(extras.len() >= 2);
    for decl in extras {
        for v in decl.forms() {
            for t in [3, 65, 130] {
                let x = inputs(&v, t, 5, 7, 17);
                check(&v, &x, &format!("T={t}"), &[4, 16, 64]);
            }
        }
    }
}

#[test]
fn external_vectors() {
    for (name, tol) in [("loglinear_mamba2", 1e-5), ("loglinear_gated_deltanet", 1e-4)] {
        let v = builtins::by_name(name).unwrap();
        for loglinear_testkit::Case { index: i, inputs: case, o: want } in loglinear_testkit::read_cases(name) {
            for c in [4, 16, 64] {
                for form in FORMS {
                    let o = run_form(runtime(), "cranelift", &v, &case, c, form).unwrap();
                    let e = rel(&o, &want);
                    assert!(e <= tol, "{name} case {i} C={c} {form:?}: rel err {e:e}");
                }
            }
        }
    }
}

#[test]
fn a_new_length_or_lambda_depth_does_not_recompile() {
    let rt = cranelift_runtime(2);
    let b = rt.get("cranelift").unwrap();
    let v = builtins::by_name("loglinear_gated_deltanet").unwrap();
    // λ exactly as deep as each length needs: T = 50 has 7 levels, T = 33 has 7, T = 300 has 10.
    let x = random_inputs(&v, (2, 50, 2, 4, 3), 0, 1);
    let opts = RunOptions::with_chunk_size(Some(16));
    let o1 = b.run_f64(&v, &x, &opts).unwrap();
    assert_eq!(rt.compile_count(), 1);
    let exe = rt.compile(&v, "cranelift", 4, 3, &b.config(&v, &opts).unwrap()).unwrap();
    let stats = exe.stats().clone();
    assert!(stats.kernels.len() >= 2 && stats.code_bytes() > 0, "{stats:?}");
    assert_eq!(rt.compile_count(), 1, "asking for the executable again compiles nothing");
    for (t, seed) in [(33, 2), (300, 3), (1, 4)] {
        let x2 = random_inputs(&v, (1, t, 3, 4, 3), 0, seed);
        let o2 = b.run_f64(&v, &x2, &opts).unwrap();
        assert_eq!(o2.shape, vec![1, t, 3, 3]);
        let want = run(&v, &x2, Form::Naive).unwrap();
        assert!(rel(&o2, &want) <= f32_tolerance(&v), "T={t}");
    }
    assert_eq!(rt.compile_count(), 1, "new B, T, H and λ depth: same executable");
    let o1b = b.run_f64(&v, &x, &opts).unwrap();
    assert_eq!(o1.data, o1b.data);
    // A new chunk size or scan form is a new configuration.
    b.run_f64(&v, &x, &RunOptions::with_chunk_size(Some(4))).unwrap();
    assert_eq!(rt.compile_count(), 2);
    run_form(&rt, "cranelift", &v, &x, 16, ScanForm::Fused).unwrap();
    assert_eq!(rt.compile_count(), 3);
}

#[test]
fn resident_inputs_run_many_times_without_recompiling() {
    let rt = cranelift_runtime(2);
    let b = rt.get("cranelift").unwrap();
    let v = builtins::by_name("loglinear_gla").unwrap();
    let x = random_inputs(&v, (1, 70, 2, 5, 3), 0, 9);
    let stored: std::collections::BTreeMap<String, loglinear_runtime::Tensor> = x
        .iter()
        .map(|(n, t)| {
            (n.clone(), loglinear_runtime::Tensor::from_f64(loglinear_runtime::DType::BF16, t.shape.clone(), &t.data))
        })
        .collect();
    let opts = RunOptions::with_chunk_size(Some(16));
    let want = b.run(&v, &loglinear_runtime::views(&stored), &opts).unwrap().o;
    let up = b.upload(&v, &loglinear_runtime::views(&stored)).unwrap();
    for _ in 0..3 {
        let (o, _) = b.run_resident(&v, &up, &opts).unwrap();
        assert_eq!(o.dtype(), want.dtype());
        assert_eq!(b.download(&o).unwrap(), want);
    }
    assert_eq!(rt.compile_count(), 1);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let rt = cranelift_runtime(2);
    let b = rt.get("cranelift").unwrap();
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let mut x = inputs(&v, 10, 4, 3, 1);
    x.remove("q");
    assert!(b.run_f64(&v, &x, &RunOptions::default()).is_err());
    let x = inputs(&v, 10, 4, 3, 1);
    assert!(b.run_f64(&v, &x, &RunOptions::with_chunk_size(Some(12))).is_err());
    assert_eq!(b.name(), "cranelift");
    assert_eq!(b.default_tolerance(&v), f32_tolerance(&v));
}

#[test]
fn single_and_many_threads_agree() {
    let v = builtins::by_name("loglinear_gla").unwrap();
    let x = inputs(&v, 130, 5, 7, 8);
    let opts = RunOptions::with_chunk_size(Some(16));
    let one = cranelift_runtime(1).get("cranelift").unwrap().run_f64(&v, &x, &opts).unwrap();
    let four = cranelift_runtime(4).get("cranelift").unwrap().run_f64(&v, &x, &opts).unwrap();
    assert_eq!(one.data, four.data);
}

#[test]
fn lambda_shallower_than_the_chunk() {
    // λ with only ⌈log2 T⌉ + 1 levels, fewer than the log2(C) + 1 in-chunk levels: the generic level mask.
    for name in ["loglinear_mamba2", "loglinear_gated_deltanet", "loglinear_gla"] {
        let v = builtins::by_name(name).unwrap();
        for t in [1, 3, 5, 9] {
            let x = random_inputs(&v, (2, t, 2, 5, 7), 0, 40 + t as u64);
            check(&v, &x, &format!("T={t} shallow λ"), &[16, 64]);
        }
    }
}
