//! Every transition class and the preprocessing operators compile and build the IR they declare.
use loglinear_ir::{TransitionClass, Variant};
use loglinear_macros::log_linear;

/// Gated DeltaNet with Mamba-style preprocessing.
#[log_linear(crate = ::loglinear_ir, chunk = 32, debug)]
pub fn loglinear_gdn_pre(q: Key, k: Key, v: Value, a: Scalar, dt_bias: Head, b_raw: Scalar, lam: Levels) {
    let g = -softplus(a + dt_bias) * 0.5;
    let kn = l2norm(k);
    let beta = sigmoid(b_raw);
    query(l2norm(q));
    transition(exp(g) * (I - beta * outer(kn, kn)));
    write(beta * outer(kn, v));
    hierarchy(fenwick(lam));
}

#[log_linear(crate = "::loglinear_ir")]
fn retnet(q: Key, k: Key, v: Value, g: Head) {
    query(q);
    transition(exp(g) * I);
    write(outer(k, v));
    hierarchy(none);
}

#[log_linear(crate = ::loglinear_ir)]
fn gla(q: Key, k: Key, v: Value, g: Channel) {
    query(q);
    transition(diag(exp(g)));
    write(2 * outer(k, v));
}

#[log_linear(crate = ::loglinear_ir)]
fn deltanet(q: Key, k: Key, v: Value, beta: Scalar) {
    query(q);
    transition(I - beta * outer(k, k));
    write(beta * outer(k, v));
}

/// The erasure key and the write key spelled out twice: the same expression, so the same key.
#[log_linear(crate = ::loglinear_ir)]
fn deltanet_l2(q: Key, k: Key, v: Value, beta: Scalar) {
    query(q);
    transition(exp(-0.5) * (I - beta * outer(l2norm(k), l2norm(k))));
    write(beta * outer(l2norm(k), v));
}

/// Non-positive constant log decays: `exp(0)` (α = 1) and a folded negative one.
#[log_linear(crate = ::loglinear_ir)]
fn constant_decays(q: Key, k: Key, v: Value) {
    query(q);
    transition(exp(0.0 - softplus(1.0)) * I);
    write(exp(0) * outer(k, v));
}

#[log_linear(crate = ::loglinear_ir)]
fn la(q: Key, k: Key, v: Value) {
    query(q);
    write(outer(k, v));
}

fn main() {
    let d = LoglinearGdnPre;
    assert_eq!(d.name(), "loglinear_gdn_pre");
    assert_eq!(LoglinearGdnPre::NAME, "loglinear_gdn_pre");
    let forms = d.forms();
    assert_eq!(forms.len(), 2);
    assert_eq!(forms[1].name, "gdn_pre");
    assert_eq!(forms[0].chunk_size, 32);
    assert_eq!(forms[0].class(), TransitionClass::GatedDelta);
    assert_eq!(Retnet.ir().class(), TransitionClass::ConstantDecay);
    assert_eq!(Gla.ir().class(), TransitionClass::DiagonalDecay);
    assert_eq!(Deltanet.ir().class(), TransitionClass::Delta);
    let l2 = DeltanetL2.ir();
    assert_eq!(l2.class(), TransitionClass::GatedDelta);
    assert!(matches!(l2.transition, loglinear_ir::Transition::Delta { key, .. } if key == l2.write.key));
    assert_eq!(ConstantDecays.ir().class(), TransitionClass::ConstantDecay);
    assert_eq!(La.ir().class(), TransitionClass::Identity);
    assert_eq!(La.forms().len(), 1);
}
