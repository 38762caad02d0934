//! `decompose`, `cse` and `dce` (kernel IR → kernel IR): the decomposed programs hold primitives only and agree
//! with the f64 oracle on every built-in; `cse` and `dce` change no output bit and do remove code.

use std::collections::BTreeMap;

use loglinear_ir::builtins;
use loglinear_ir::random::random_inputs;
use loglinear_ir::{check_inputs, relative_error as rel, HostTensor, TensorMap, VariantIr};
use loglinear_kernel::{Bindings, Tensor};
use loglinear_oracle::{run, Form};
use loglinear_schedule::interp::{run_decode, run_program};
use loglinear_schedule::kernel::{visit, Op, Program, Stmt};
use loglinear_schedule::passes::{cse::cse, dce::dce, decompose::decompose, decompose::is_primitive};
use loglinear_schedule::{compile_decomposed, size_env, DType, PassState, ScanForm, ScheduleConfig, PASSES};

const FORMS: [ScanForm; 3] = ScanForm::ALL;
/// K ≠ V.
const KV: (usize, usize) = (3, 5);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Prec {
    F64,
    F32,
}

/// Runs program `p` (forward, or decode-step when `decode`) of `v` on `inputs` in the interpreter.
fn interpret(p: &Program, v: &VariantIr, inputs: &TensorMap, chunk: usize, prec: Prec, decode: bool) -> HostTensor {
    let dims = check_inputs(v, inputs).unwrap();
    let env = size_env(dims.b, dims.t, dims.h, dims.k, dims.v, dims.l, chunk, p.hierarchical);
    let owned: BTreeMap<String, Tensor> =
        inputs.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(DType::F64, t.shape.clone(), &t.data))).collect();
    let views: Bindings<'_> = owned.iter().map(|(n, t)| (n.clone(), t.view())).collect();
    let o = match (prec, decode) {
        (Prec::F64, false) => run_program::<f64>(p, &env, &views, DType::F64),
        (Prec::F32, false) => run_program::<f32>(p, &env, &views, DType::F64),
        (Prec::F64, true) => run_decode::<f64>(p, &env, &views, DType::F64),
        (Prec::F32, true) => run_decode::<f32>(p, &env, &views, DType::F64),
    }
    .unwrap_or_else(|e| panic!("{}: {e}", p.name));
    HostTensor::new(o.shape().to_vec(), o.to_f64())
}

fn config(chunk: usize, form: ScanForm) -> ScheduleConfig {
    ScheduleConfig { chunk, form, ..Default::default() }
}

/// The first compound op of `p`, if any.
fn compound(p: &Program) -> Option<String> {
    let mut found = None;
    for k in &p.kernels {
        visit(&k.body, &mut |s| {
            if let Stmt::Assign { op, .. } = s {
                if !is_primitive(op) && found.is_none() {
                    found = Some(format!("kernel {}: {op:?}", k.name));
                }
            }
        });
    }
    found
}

/// Statements and tile declarations of a program.
fn size(p: &Program) -> (usize, usize) {
    let mut stmts = 0;
    for k in &p.kernels {
        visit(&k.body, &mut |_| stmts += 1);
    }
    (stmts, p.kernels.iter().map(|k| k.tiles.len()).sum())
}

/// The programs after `specialise` (before `decompose`, `cse`, `dce`), specialised on `KV`.
fn before_cse(v: &VariantIr, cfg: &ScheduleConfig) -> (Program, Program) {
    let mut st = PassState { variant: Some(v.clone()), config: *cfg, sizes: Some(KV), ..Default::default() };
    for p in PASSES.iter().take_while(|p| p.name != "decompose") {
        (p.run)(&mut st).unwrap();
    }
    st.programs.unwrap()
}

fn tolerance_f32(v: &VariantIr) -> f64 {
    if v.class().is_delta() {
        1e-4
    } else {
        1e-5
    }
}

/// Checks the decomposed forward program of `v` against the oracle on `inputs`, at every chunk size and form.
fn check_decomposed(v: &VariantIr, inputs: &TensorMap, what: &str, chunks: &[usize], worst: &mut [f64; 2]) {
    let want = run(v, inputs, Form::Naive).unwrap();
    assert!(want.data.iter().all(|x| x.is_finite()), "{what}: oracle not finite");
    for &c in chunks {
        for form in FORMS {
            let comp = compile_decomposed(v, &config(c, form), Some(KV)).unwrap();
            for p in [&comp.forward, &comp.decode] {
                assert_eq!(compound(p), None, "{} C={c} {form:?}: compound op left in {}", v.name, p.name);
            }
            let e64 = rel(&interpret(&comp.forward, v, inputs, c, Prec::F64, false), &want);
            assert!(e64 <= 1e-12, "{} {what} C={c} {form:?}: f64 rel err {e64:e}", v.name);
            let e32 = rel(&interpret(&comp.forward, v, inputs, c, Prec::F32, false), &want);
            assert!(e32 <= tolerance_f32(v), "{} {what} C={c} {form:?}: f32 rel err {e32:e}", v.name);
            worst[0] = worst[0].max(e64);
            worst[1] = worst[1].max(e32 / tolerance_f32(v));
        }
    }
}

#[test]
fn decomposed_programs_hold_primitives_only() {
    for v in builtins::all() {
        for form in FORMS {
            // Specialised and symbolic.
            for sizes in [Some(KV), None] {
                let comp = compile_decomposed(&v, &config(16, form), sizes).unwrap();
                for p in [&comp.forward, &comp.decode] {
                    assert_eq!(compound(p), None, "{} {form:?} {sizes:?}: {}", v.name, p.name);
                    // And the pipeline verified them (exp_nonpos of gate sums only, shapes, assignment).
                    loglinear_schedule::verify::verify(p).unwrap();
                }
                // The cost model counts the primitives.
                let env = size_env(1, 64, 1, KV.0, KV.1, 7, 16, comp.forward.hierarchical);
                let plain = loglinear_schedule::compile_with(&v, &config(16, form), sizes, None).unwrap();
                let (c0, c1) = (
                    loglinear_schedule::cost_program(&plain.forward, &env),
                    loglinear_schedule::cost_program(&comp.forward, &env),
                );
                assert!(c1.flops > 0.0 && c1.bytes_moved == c0.bytes_moved, "{}: {c0} vs {c1}", v.name);
            }
        }
    }
}

#[test]
fn decomposed_matches_oracle_on_every_builtin() {
    let mut worst = [0.0f64; 2];
    for v in builtins::all() {
        for (i, t) in [1usize, 37, 65].into_iter().enumerate() {
            let inputs = random_inputs(&v, (1, t, 2, KV.0, KV.1), 0, 300 + i as u64);
            check_decomposed(&v, &inputs, &format!("T={t}"), &[1, 4, 16], &mut worst);
        }
        // Chunk 64 across three chunks (a partial last one).
        let inputs = random_inputs(&v, (1, 130, 1, KV.0, KV.1), 0, 305);
        check_decomposed(&v, &inputs, "T=130", &[64], &mut worst);
        // Decomposed before specialisation (K, V, C symbolic; λ tiles of the caller's depth).
        let inputs = random_inputs(&v, (2, 37, 1, KV.0, KV.1), 2, 310);
        let want = run(&v, &inputs, Form::Naive).unwrap();
        for form in FORMS {
            let comp = compile_decomposed(&v, &config(4, form), None).unwrap();
            let e = rel(&interpret(&comp.forward, &v, &inputs, 4, Prec::F64, false), &want);
            assert!(e <= 1e-12, "{} symbolic {form:?}: f64 rel err {e:e}", v.name);
        }
    }
    eprintln!("decomposed vs oracle: worst f64 rel err {:e}, worst f32 err / tolerance {:.3}", worst[0], worst[1]);
}

/// Sets the gate of token `pos` (every token when `None`) to `value`; false when `v` has no per-token gate.
fn set_gate(inputs: &mut TensorMap, pos: Option<usize>, value: f64) -> bool {
    let Some(g) = inputs.get_mut("g") else { return false };
    if g.shape.len() < 3 {
        return false; // a per-head constant decay, not per token
    }
    let t = g.shape[1];
    let per_t: usize = g.shape[2..].iter().product();
    for (i, e) in g.data.iter_mut().enumerate() {
        if pos.is_none_or(|p| (i / per_t) % t == p) {
            *e = value;
        }
    }
    true
}

#[test]
fn decomposed_reset_gate_mid_chunk() {
    // One token of g = −1e10 in the middle of a chunk (t = 21: inside the second chunk of 16, the sixth of 4);
    // its segment sums must not cancel against the others. Then g = −3e38 (finite in f32; sums of two overflow
    // to −∞ there, which must only add, never give NaN), on one token and on all.
    for (pos, value) in [(Some(21), -1e10), (Some(21), -3e38), (None, -3e38)] {
        let mut worst = [0.0f64; 2];
        let mut n = 0;
        for v in builtins::all() {
            let mut inputs = random_inputs(&v, (1, 37, 2, KV.0, KV.1), 0, 77);
            if !set_gate(&mut inputs, pos, value) {
                continue;
            }
            check_decomposed(&v, &inputs, &format!("g = {value:e} at {pos:?}"), &[1, 4, 16], &mut worst);
            n += 1;
        }
        assert!(n >= 6, "only {n} variants with a per-token gate");
        eprintln!(
            "g = {value:e} at {pos:?}: worst f64 rel err {:e}, worst f32 err / tolerance {:.3}",
            worst[0], worst[1]
        );
    }
}

#[test]
fn decomposed_decode_step_matches_oracle() {
    for v in builtins::all() {
        let inputs = random_inputs(&v, (1, 37, 2, KV.0, KV.1), 0, 41);
        let want = run(&v, &inputs, Form::Naive).unwrap();
        let comp = compile_decomposed(&v, &config(4, ScanForm::PerLevel), Some(KV)).unwrap();
        let e = rel(&interpret(&comp.decode, &v, &inputs, 1, Prec::F64, true), &want);
        assert!(e <= 1e-12, "{} decode: rel err {e:e}", v.name);
    }
}

#[test]
fn cse_and_dce_change_no_bit_and_remove_code() {
    let mut removed_plain = 0;
    let mut removed_decomposed = 0;
    for v in builtins::all() {
        let inputs = random_inputs(&v, (2, 37, 2, KV.0, KV.1), 0, 55);
        for form in FORMS {
            let cfg = config(4, form);
            let (f, d) = before_cse(&v, &cfg);
            for (p, decode) in [(f, false), (d, true)] {
                let chunk = if decode { 1 } else { 4 };
                for (label, p) in [("plain", p.clone()), ("decomposed", decompose(&p))] {
                    let after = dce(&cse(&p));
                    loglinear_schedule::verify::verify(&after).unwrap();
                    for prec in [Prec::F64, Prec::F32] {
                        let x = interpret(&p, &v, &inputs, chunk, prec, decode);
                        let y = interpret(&after, &v, &inputs, chunk, prec, decode);
                        let same =
                            x.shape == y.shape && x.data.iter().zip(&y.data).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{} {} {label} {form:?} {prec:?}: cse+dce changed the output", v.name, p.name);
                    }
                    let (s0, t0) = size(&p);
                    let (s1, t1) = size(&after);
                    assert!(s1 <= s0 && t1 <= t0, "{} {label}: cse+dce grew the program", p.name);
                    if form == ScanForm::PerLevel {
                        eprintln!("{:<48} {label:<10} statements {s0:>4} -> {s1:>4}, tiles {t0:>4} -> {t1:>4}", p.name);
                    }
                    let r = s0 - s1 + t0 - t1;
                    if label == "plain" {
                        removed_plain += r;
                    } else {
                        removed_decomposed += r;
                    }
                }
            }
        }
    }
    assert!(removed_plain > 0, "cse + dce removed nothing from the built-ins' programs");
    assert!(removed_decomposed > 0, "cse + dce removed nothing from the decomposed programs");
}

#[test]
fn default_pipeline_runs_cse_and_dce() {
    // The GDN forward program computes exp_nonpos(γ) twice (pseudo-query and chunk transition): one is shared.
    let v = builtins::by_name("loglinear_gated_deltanet").unwrap();
    let cfg = config(4, ScanForm::PerLevel);
    let (f, _) = before_cse(&v, &cfg);
    let comp = loglinear_schedule::compile_with(&v, &cfg, Some(KV), None).unwrap();
    let count = |p: &Program| {
        let mut n = 0;
        visit(&p.kernels[0].body, &mut |s| {
            if matches!(s, Stmt::Assign { op: Op::Unary(loglinear_schedule::kernel::UnOp::ExpNonpos, _), .. }) {
                n += 1;
            }
        });
        n
    };
    assert_eq!(count(&comp.forward) + 1, count(&f));
    let dump = loglinear_schedule::dump(&v, &cfg, Some(KV), loglinear_schedule::DumpWhen::AfterAll).unwrap();
    for pass in ["; after specialise", "; after decompose", "; after cse", "; after dce", "; after verify"] {
        assert!(dump.contains(pass), "{pass} missing from the dump");
    }
}
