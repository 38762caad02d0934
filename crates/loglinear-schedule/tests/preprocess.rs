//! Variants whose roots are expressions (not plain inputs): the arena is lowered into Kernel IR ops.

use loglinear_ir::random::random_inputs;
use loglinear_ir::{BinaryOp, InputKind, Transition, UnaryOp, VariantBuilder, VariantIr};
use loglinear_oracle::{run, Form};
use loglinear_schedule::{compile, interpret, interpret_decode, Precision, ScanForm, ScheduleConfig};

/// A model-style Gated DeltaNet: q, k L2-normalised, β = sigmoid(b), g = −exp(A_log)·softplus(dt + dt_bias),
/// λ = softplus(lp · 0.5).
fn model_gdn(hier: bool) -> VariantIr {
    let mut b = VariantBuilder::new("model_gdn");
    let q = b.input("q", InputKind::Key);
    let k = b.input("k", InputKind::Key);
    let v = b.input("v", InputKind::Value);
    let a_log = b.input("a_log", InputKind::HeadConst);
    let dt = b.input("dt", InputKind::Scalar);
    let dt_bias = b.input("dt_bias", InputKind::HeadConst);
    let braw = b.input("b", InputKind::Scalar);
    let qn = b.unary(UnaryOp::L2Norm, q);
    let kn = b.unary(UnaryOp::L2Norm, k);
    let beta = b.unary(UnaryOp::Sigmoid, braw);
    let ea = b.unary(UnaryOp::Exp, a_log);
    let na = b.unary(UnaryOp::Neg, ea);
    let s = b.binary(BinaryOp::Add, dt, dt_bias);
    let sp = b.unary(UnaryOp::Softplus, s);
    let g = b.mul(na, sp);
    b.query(qn).transition(Transition::Delta { log_decay: Some(g), beta, key: kn }).write(Some(beta), kn, v);
    if hier {
        let lp = b.input("lp", InputKind::Levels);
        let half = b.constant(0.5);
        let x = b.mul(lp, half);
        let lam = b.unary(UnaryOp::Softplus, x);
        b.fenwick(lam);
    }
    b.chunk_size(16);
    b.finish().unwrap()
}

/// Mamba-2 with a constant-times-head decay (`g = −0.3 · exp(a)` per head) and a per-channel GLA-style twin.
fn head_decay(diag: bool) -> VariantIr {
    let mut b = VariantBuilder::new(if diag { "chan" } else { "headdecay" });
    let q = b.input("q", InputKind::Key);
    let k = b.input("k", InputKind::Key);
    let v = b.input("v", InputKind::Value);
    let lam = b.input("lam", InputKind::Levels);
    let t = if diag {
        let a = b.input("a", InputKind::Channel);
        let sp = b.unary(UnaryOp::Softplus, a);
        let g = b.unary(UnaryOp::Neg, sp);
        Transition::DiagonalDecay { log_decay: g }
    } else {
        let a = b.input("a", InputKind::HeadConst);
        let e = b.unary(UnaryOp::Exp, a);
        let c = b.constant(-0.3);
        Transition::ScalarDecay { log_decay: b.mul(c, e) }
    };
    let s2 = b.constant(2.0);
    let vs = b.mul(v, s2);
    b.query(q).transition(t).write(None, k, vs).fenwick(lam);
    b.finish().unwrap()
}

use loglinear_testkit::relative_error as rel;

#[test]
fn expression_roots_match_oracle() {
    for v in [model_gdn(true), model_gdn(false), head_decay(false), head_decay(true)] {
        for t in [1usize, 5, 37, 64, 70] {
            let inputs = random_inputs(&v, (2, t, 2, 3, 2), 1, 40 + t as u64);
            let want = run(&v, &inputs, Form::Naive).unwrap();
            for c in [1, 4, 16] {
                for form in ScanForm::ALL {
                    let comp = compile(&v, &ScheduleConfig { chunk: c, form, ..Default::default() }).unwrap();
                    let e = rel(&interpret(&comp, &inputs, Precision::F64).unwrap(), &want);
                    assert!(e <= 1e-12, "{} T={t} C={c} {form:?}: {e:e}", v.name);
                }
            }
            let comp = compile(&v, &ScheduleConfig::default()).unwrap();
            let e = rel(&interpret_decode(&comp, &inputs, Precision::F64).unwrap(), &want);
            assert!(e <= 1e-12, "{} decode T={t}: {e:e}", v.name);
        }
    }
}

#[test]
fn expression_roots_are_lowered() {
    let c = compile(&model_gdn(true), &ScheduleConfig::default()).unwrap();
    let text = c.forward.to_string();
    for op in ["l2norm %q", "sigmoid %b", "exp %a_log", "neg %e", "softplus %e", "mask_rows", "buffer lam: scratch"] {
        assert!(text.contains(op), "missing `{op}` in\n{text}");
    }
}
