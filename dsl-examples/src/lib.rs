//! # loglinear-builtins: the built-in variants, declared with `#[log_linear]`
//!
//! Six declarations give the twelve built-ins: each declares the log-linear form, and
//! [`Variant::forms`](loglinear_ir::Variant::forms) adds its linear base model. Two more variants that nobody
//! ships in log-linear form show preprocessing: [`LoglinearGlaL2`] and [`LoglinearDeltanetSigmoid`].
//!
//! This crate cannot depend on the `loglinear` facade (the facade depends on it), so its declarations name the
//! IR crate with `crate = ::loglinear_ir`; a user's crate writes plain `#[log_linear]`.

#![warn(missing_docs)]

use loglinear_ir::Variant;
use loglinear_macros::log_linear;

/// Log-linear linear attention: `A = I`, `W = k vᵀ`.
#[log_linear(crate = ::loglinear_ir)]
pub fn loglinear_linear_attention(q: Key, k: Key, v: Value, lam: Levels) {
    query(q);
    write(outer(k, v));
    hierarchy(fenwick(lam));
}

/// Log-linear RetNet: a constant per-head decay `A = exp(g_h) I`.
#[log_linear(crate = ::loglinear_ir)]
pub fn loglinear_retnet(q: Key, k: Key, v: Value, g: Head, lam: Levels) {
    query(q);
    transition(exp(g) * I);
    write(outer(k, v));
    hierarchy(fenwick(lam));
}

/// Log-linear Mamba-2: a per-token scalar decay `A_t = exp(g_t) I` (spec §4).
#[log_linear(crate = ::loglinear_ir)]
pub fn loglinear_mamba2(q: Key, k: Key, v: Value, g: Scalar, lam: Levels) {
    query(q);
    transition(exp(g) * I);
    write(outer(k, v));
    hierarchy(fenwick(lam));
}

/// Log-linear GLA: a per-channel decay `A_t = diag(exp(g_t))`.
#[log_linear(crate = ::loglinear_ir)]
pub fn loglinear_gla(q: Key, k: Key, v: Value, g: Channel, lam: Levels) {
    query(q);
    transition(diag(exp(g)));
    write(outer(k, v));
    hierarchy(fenwick(lam));
}

/// Log-linear DeltaNet: `A_t = I − β_t k_t k_tᵀ`, `W_t = β_t k_t v_tᵀ`.
#[log_linear(crate = ::loglinear_ir)]
pub fn loglinear_deltanet(q: Key, k: Key, v: Value, beta: Scalar, lam: Levels) {
    query(q);
    transition(I - beta * outer(k, k));
    write(beta * outer(k, v));
    hierarchy(fenwick(lam));
}

/// Log-linear Gated DeltaNet: `A_t = exp(g_t) (I − β_t k_t k_tᵀ)`, `W_t = β_t k_t v_tᵀ` (spec §5).
#[log_linear(crate = ::loglinear_ir, chunk = 64)]
pub fn loglinear_gated_deltanet(q: Key, k: Key, v: Value, g: Scalar, beta: Scalar, lam: Levels) {
    query(q);
    transition(exp(g) * (I - beta * outer(k, k)));
    write(beta * outer(k, v));
    hierarchy(fenwick(lam));
}

/// Log-linear GLA with l2-normalised queries and keys (new: not shipped in log-linear form anywhere).
#[log_linear(crate = ::loglinear_ir)]
pub fn loglinear_gla_l2(q: Key, k: Key, v: Value, g: Channel, lam: Levels) {
    let kn = l2norm(k);
    query(l2norm(q));
    transition(diag(exp(g)));
    write(outer(kn, v));
    hierarchy(fenwick(lam));
}

/// Log-linear DeltaNet with `β = sigmoid(b_raw)` computed from a raw per-token input (new).
#[log_linear(crate = ::loglinear_ir)]
pub fn loglinear_deltanet_sigmoid(q: Key, k: Key, v: Value, b_raw: Scalar, lam: Levels) {
    let beta = sigmoid(b_raw);
    query(q);
    transition(I - beta * outer(k, k));
    write(beta * outer(k, v));
    hierarchy(fenwick(lam));
}

/// The six declarations of the built-ins, in [`loglinear_ir::builtins::BASE_NAMES`] order; their
/// [`Variant::forms`] are the twelve built-ins.
pub fn builtins() -> Vec<Box<dyn Variant>> {
    vec![
        Box::new(LoglinearLinearAttention),
        Box::new(LoglinearRetnet),
        Box::new(LoglinearMamba2),
        Box::new(LoglinearGla),
        Box::new(LoglinearDeltanet),
        Box::new(LoglinearGatedDeltanet),
    ]
}

/// The variants declared here beyond the built-ins.
pub fn extras() -> Vec<Box<dyn Variant>> {
    vec![Box::new(LoglinearGlaL2), Box::new(LoglinearDeltanetSigmoid)]
}

/// Every declaration in this crate: [`builtins`] then [`extras`].
pub fn all() -> Vec<Box<dyn Variant>> {
    builtins().into_iter().chain(extras()).collect()
}
