//! The MLIR context every module of this crate is built in.

use std::sync::Once;

use melior::dialect::DialectRegistry;
use melior::utility::{register_all_dialects, register_all_llvm_translations, register_all_passes};
use melior::Context;

static PASSES: Once = Once::new();

/// A context with every upstream dialect loaded and the LLVM IR translations registered (the passes are
/// registered once per process, for textual pipelines).
pub struct MlirContext {
    context: Context,
}

impl Default for MlirContext {
    fn default() -> Self {
        Self::new()
    }
}

impl MlirContext {
    /// A fresh context.
    pub fn new() -> Self {
        PASSES.call_once(register_all_passes);
        let registry = DialectRegistry::new();
        register_all_dialects(&registry);
        let context = Context::new();
        context.append_dialect_registry(&registry);
        context.load_all_available_dialects();
        register_all_llvm_translations(&context);
        MlirContext { context }
    }

    /// The melior context.
    pub fn get(&self) -> &Context {
        &self.context
    }
}
