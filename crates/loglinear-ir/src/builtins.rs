//! The twelve built-in variants, built by hand with [`VariantBuilder`]. These are the Core IR definitions;
//! the registry serves the `#[log_linear]` declarations in `dsl-examples/`, and tests check the two agree.
//!
//! Built-ins compute the raw operator of the spec, `o_t = Σ_ℓ λ_t^(ℓ) (S_t^(ℓ))ᵀ q_t`, with no normalisation
//! or scaling of q, k or λ. Tensor names: `q`, `k`, `v`, `g` (log decay), `beta`, `lam`.

use crate::builder::VariantBuilder;
use crate::variant::{InputKind, Transition, VariantIr};

/// Names of the six base variants; each also exists as `loglinear_<name>`.
pub const BASE_NAMES: [&str; 6] = ["linear_attention", "retnet", "mamba2", "gla", "deltanet", "gated_deltanet"];

/// Builds the log-linear form of base variant `base` (one of [`BASE_NAMES`]).
pub fn loglinear(base: &str) -> Option<VariantIr> {
    let mut b = VariantBuilder::new(format!("loglinear_{base}"));
    let q = b.input("q", InputKind::Key);
    let k = b.input("k", InputKind::Key);
    let v = b.input("v", InputKind::Value);
    let (transition, scale) = match base {
        "linear_attention" => (Transition::Identity, None),
        "retnet" => (Transition::ScalarDecay { log_decay: b.input("g", InputKind::HeadConst) }, None),
        "mamba2" => (Transition::ScalarDecay { log_decay: b.input("g", InputKind::Scalar) }, None),
        "gla" => (Transition::DiagonalDecay { log_decay: b.input("g", InputKind::Channel) }, None),
        "deltanet" => {
            let beta = b.input("beta", InputKind::Scalar);
            (Transition::Delta { log_decay: None, beta, key: k }, Some(beta))
        }
        "gated_deltanet" => {
            let g = b.input("g", InputKind::Scalar);
            let beta = b.input("beta", InputKind::Scalar);
            (Transition::Delta { log_decay: Some(g), beta, key: k }, Some(beta))
        }
        _ => return None,
    };
    let lam = b.input("lam", InputKind::Levels);
    b.query(q).transition(transition).write(scale, k, v).fenwick(lam).chunk_size(64);
    Some(b.finish().expect("built-in variants are valid"))
}

/// Builds a built-in by its full name (`mamba2`, `loglinear_mamba2`, ...).
pub fn by_name(name: &str) -> Option<VariantIr> {
    match name.strip_prefix("loglinear_") {
        Some(base) => loglinear(base),
        None => loglinear(name).map(|v| v.linear_base()),
    }
}

/// All twelve built-ins: the six log-linear forms, then the six linear ones.
pub fn all() -> Vec<VariantIr> {
    let ll: Vec<VariantIr> = BASE_NAMES.iter().map(|n| loglinear(n).expect("known")).collect();
    let lin: Vec<VariantIr> = ll.iter().map(|v| v.linear_base()).collect();
    ll.into_iter().chain(lin).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate;

    #[test]
    fn all_valid_and_named() {
        let vs = all();
        assert_eq!(vs.len(), 12);
        for v in &vs {
            validate(v).unwrap();
            assert_eq!(by_name(&v.name).as_ref(), Some(v));
        }
        assert_eq!(by_name("mamba2").unwrap().inputs.len(), 4, "linear form drops lam");
        assert!(by_name("nope").is_none());
    }

    #[test]
    fn text_form() {
        let s = by_name("loglinear_gated_deltanet").unwrap().to_string();
        assert!(s.contains("class gated_delta"), "{s}");
        assert!(s.contains("transition = exp(g) * (I - beta * outer(k, k))"), "{s}");
        assert!(s.contains("write = beta * outer(k, v)"), "{s}");
        assert!(s.contains("hierarchy = fenwick(lam)"), "{s}");
        let r = by_name("retnet").unwrap().to_string();
        assert!(r.contains("class constant_decay") && r.contains("hierarchy = none"), "{r}");
    }
}
