//! Strong decays inside a chunk (a document-boundary "reset" gate): one token with a huge negative `g` in the
//! middle of a chunk, and `g = −3e38` (finite in f32; its sums overflow to −∞) everywhere. The Cranelift backend
//! and the f32 interpreter must stay within the f32 tolerance of the f64 naive oracle: every decay is a segment
//! sum of gates (never a difference of cumulative sums), so a huge gate costs no precision elsewhere and an
//! overflowed −∞ never meets another −∞ in a subtraction.

mod common;

use common::{cranelift_runtime, run_form};
use loglinear_ir::random::random_inputs;
use loglinear_ir::{builtins, TensorMap, VariantIr};
use loglinear_oracle::{run, Form};
use loglinear_runtime::{f32_tolerance, ScanForm};
use loglinear_testkit::relative_error as rel;

/// Sets `g` of every (batch, head) at token `t0` (all channels) to `value`.
fn reset_at(x: &mut TensorMap, t0: usize, value: f64) {
    let g = x.get_mut("g").unwrap();
    let t = g.shape[1];
    let per_t: usize = g.shape[2..].iter().product();
    for (i, e) in g.data.iter_mut().enumerate() {
        if (i / per_t) % t == t0 {
            *e = value;
        }
    }
}

/// Runs the f32 interpreter and Cranelift (both scan forms) on `x`; a failure for every run whose relative error
/// to the oracle exceeds the variant's f32 tolerance.
fn check(v: &VariantIr, x: &TensorMap, what: &str, chunks: &[usize], failures: &mut Vec<String>) {
    let want = run(v, x, Form::Naive).unwrap();
    assert!(want.data.iter().all(|e| e.is_finite()), "{what}: oracle not finite");
    let tol = f32_tolerance(v);
    let rt = cranelift_runtime(2);
    for &c in chunks {
        let e = rel(&run_form(&rt, "interpreter-f32", v, x, c, ScanForm::PerLevel).unwrap(), &want);
        eprintln!("{} {what} C={c} interpreter-f32: {e:.3e}", v.name);
        if e.is_nan() || e > tol {
            failures.push(format!("{} {what} C={c} interpreter-f32: rel err {e:e} > {tol:e}", v.name));
        }
        for form in ScanForm::ALL {
            let e = rel(&run_form(&rt, "cranelift", v, x, c, form).unwrap(), &want);
            eprintln!("{} {what} C={c} cranelift {form:?}: {e:.3e}", v.name);
            if e.is_nan() || e > tol {
                failures.push(format!("{} {what} C={c} cranelift {form:?}: rel err {e:e} > {tol:e}", v.name));
            }
        }
    }
}

#[test]
fn one_reset_gate_in_the_middle_of_a_chunk() {
    let mut failures = Vec::new();
    for name in ["gla", "loglinear_gla"] {
        let v = builtins::by_name(name).unwrap();
        for g in [-1e4, -1e6, -1e10, -3e38] {
            let mut x = random_inputs(&v, (1, 70, 2, 8, 5), 0, 11);
            // Token 21: inside a chunk for C = 4 (row 1), 16 (row 5) and 64 (row 21).
            reset_at(&mut x, 21, g);
            check(&v, &x, &format!("g[21] = {g:e}"), &[4, 16, 64], &mut failures);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn huge_gates_everywhere() {
    let mut failures = Vec::new();
    for v in builtins::all() {
        if v.input_by_name("g").is_none() {
            continue;
        }
        let mut x = random_inputs(&v, (1, 70, 2, 4, 3), 0, 12);
        x.get_mut("g").unwrap().data.iter_mut().for_each(|e| *e = -3e38);
        check(&v, &x, "g = -3e38 everywhere", &[1, 4, 16, 64], &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
