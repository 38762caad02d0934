//! A log-linear variant declared outside the loglinear project: RetNet with sigmoid-gated writes.

use loglinear::log_linear;

/// Log-linear RetNet whose writes are gated per token by `sigmoid(w)` and use l2-normalised keys:
/// `S_t = exp(g_h) S_{t-1} + sigmoid(w_t) · l2norm(k_t) v_tᵀ`, read with Fenwick weights λ.
#[log_linear(chunk = 32)]
pub fn loglinear_retnet_gated(q: Key, k: Key, v: Value, g: Head, w: Scalar, lam: Levels) {
    query(q);
    transition(exp(g) * I);
    write(sigmoid(w) * outer(l2norm(k), v));
    hierarchy(fenwick(lam));
}

/// The built-in variants plus this crate's (both its log-linear and its linear form).
pub fn registry() -> loglinear::Registry {
    let mut registry = loglinear::Registry::builtin();
    registry.register(&LoglinearRetnetGated);
    registry
}
