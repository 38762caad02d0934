//! The variant registry: the variants the CLI and the demo know by name.

use loglinear_ir::{Variant, VariantIr};
use loglinear_runtime::RuntimeError;

/// The built-in variants: the one source [`Registry::builtin`] draws from. They are the `#[log_linear]`
/// declarations of `loglinear-builtins` (six log-linear forms, then their six linear bases), which its tests
/// check equal to the hand-built Core IR of [`loglinear_ir::builtins`].
pub fn builtin_variants() -> Vec<VariantIr> {
    let log_linear: Vec<VariantIr> = loglinear_builtins::builtins().iter().map(|d| d.ir()).collect();
    let linear: Vec<VariantIr> = log_linear.iter().map(VariantIr::linear_base).collect();
    log_linear.into_iter().chain(linear).collect()
}

/// An ordered collection of variants, by name. Names are unique: registering a name again replaces the
/// earlier variant in place.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registry {
    variants: Vec<VariantIr>,
}

impl Registry {
    /// A registry with no variant.
    pub fn empty() -> Self {
        Registry { variants: Vec::new() }
    }

    /// The built-in variants ([`builtin_variants`]): six log-linear forms, then their six linear bases.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        for v in builtin_variants() {
            r.register_ir(v);
        }
        r
    }

    /// Registers every form of a declared variant ([`Variant::forms`]: the declared form and, for a log-linear
    /// declaration, its linear base model).
    pub fn register(&mut self, v: &dyn Variant) {
        for f in v.forms() {
            self.register_ir(f);
        }
    }

    /// Registers one variant IR; a variant of the same name is replaced in place and returned.
    pub fn register_ir(&mut self, ir: VariantIr) -> Option<VariantIr> {
        match self.variants.iter().position(|v| v.name == ir.name) {
            Some(i) => Some(std::mem::replace(&mut self.variants[i], ir)),
            None => {
                self.variants.push(ir);
                None
            }
        }
    }

    /// A variant by name.
    ///
    /// # Errors
    /// [`RuntimeError::UnknownVariant`], listing the registered names.
    pub fn get(&self, name: &str) -> Result<&VariantIr, RuntimeError> {
        self.variants.iter().find(|v| v.name == name).ok_or_else(|| RuntimeError::UnknownVariant {
            name: name.to_string(),
            known: if self.variants.is_empty() { "(none)".into() } else { self.names().join(", ") },
        })
    }

    /// Whether a variant of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.variants.iter().any(|v| v.name == name)
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.variants.iter().map(|v| v.name.as_str()).collect()
    }

    /// The registered variants, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &VariantIr> {
        self.variants.iter()
    }

    /// Number of variants.
    pub fn len(&self) -> usize {
        self.variants.len()
    }

    /// Whether no variant is registered.
    pub fn is_empty(&self) -> bool {
        self.variants.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mine;
    impl Variant for Mine {
        fn name(&self) -> &'static str {
            "loglinear_mine"
        }
        fn ir(&self) -> VariantIr {
            let mut v = loglinear_ir::builtins::by_name("loglinear_mamba2").unwrap();
            v.name = "loglinear_mine".into();
            v
        }
    }

    #[test]
    fn builtin_and_register() {
        let mut r = Registry::builtin();
        assert_eq!(r.len(), 12);
        assert_eq!(r.names()[0], "loglinear_linear_attention");
        let e = r.get("nope").unwrap_err().to_string();
        assert!(e.contains("`nope`") && e.contains("loglinear_gated_deltanet"), "{e}");
        r.register(&Mine);
        assert_eq!(r.len(), 14, "both forms registered");
        assert!(r.contains("loglinear_mine") && r.contains("mine"));
        r.register(&Mine);
        assert_eq!(r.len(), 14, "re-registering replaces");
        let e = Registry::empty().get("x").unwrap_err().to_string();
        assert!(e.contains("(none)"), "{e}");
    }
}
