//! Errors of the Cranelift backend.

use crate::emit::EmitError;

/// Everything that can go wrong while building, compiling or calling a JIT kernel.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// The host cannot be targeted (unsupported architecture, missing required feature).
    #[error("unsupported host ISA: {0}")]
    UnsupportedIsa(String),
    /// A Cranelift setting was rejected.
    #[error("cranelift setting {name}={value} rejected: {msg}")]
    Setting {
        /// Setting name.
        name: String,
        /// Requested value.
        value: String,
        /// Cranelift's message.
        msg: String,
    },
    /// An emitter rejected its specification.
    #[error("emitting kernel {kernel}: {source}")]
    Emit {
        /// Kernel name.
        kernel: String,
        /// The emitter's error.
        #[source]
        source: EmitError,
    },
    /// Cranelift failed to compile or link (verifier errors included).
    #[error("cranelift failed on kernel {kernel}: {msg}")]
    Module {
        /// Kernel name.
        kernel: String,
        /// Cranelift's message.
        msg: String,
    },
    /// Kernel IR the translator does not handle (a tile with a run-time shape, a malformed access, ...).
    #[error("kernel {kernel}: unsupported kernel IR: {what}")]
    Unsupported {
        /// Kernel name.
        kernel: String,
        /// What is unsupported.
        what: String,
    },
    /// A caller passed arguments that do not fit the kernel (shapes, lengths, sizes).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
