//! The [`Variant`] trait: what a `#[log_linear]` declaration (or a hand-written type) implements.

use crate::variant::VariantIr;

/// A declared linear-attention variant. `#[log_linear]` implements this for the unit struct it declares.
///
/// One declaration gives both forms: [`Variant::ir`] is the declared form (log-linear when it has a Fenwick
/// hierarchy) and [`VariantIr::linear_base`] its linear base model.
pub trait Variant: Send + Sync {
    /// The variant's name.
    fn name(&self) -> &'static str;
    /// The variant's IR, validated.
    fn ir(&self) -> VariantIr;
    /// The declared form and, for a log-linear declaration, its linear base model.
    fn forms(&self) -> Vec<VariantIr> {
        let ir = self.ir();
        if ir.is_log_linear() {
            let base = ir.linear_base();
            vec![ir, base]
        } else {
            vec![ir]
        }
    }
}
