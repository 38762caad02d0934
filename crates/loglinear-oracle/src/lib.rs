//! f64 oracles (placeholder).
