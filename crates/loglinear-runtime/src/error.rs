//! [`RuntimeError`]: every way a run can fail.

use std::path::PathBuf;

use loglinear_ir::InputError;

/// Why a run failed. Every message names the tensor, file or argument at fault, its actual value or shape and
/// what was expected.
///
/// [`RuntimeError::is_user_error`] tells bad input and usage (the caller can fix it; the CLI exits with 2) from
/// internal failures (a bug or an environment problem; the CLI exits with 1).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The input tensors do not fit the variant (missing, unexpected, wrong rank or shape, non-finite, ...).
    #[error(transparent)]
    Input(#[from] InputError),
    /// An input file that does not exist.
    #[error("input file `{}` does not exist; expected a safetensors file", path.display())]
    FileMissing {
        /// The path as given.
        path: PathBuf,
    },
    /// A path that exists but cannot be read as a file (a directory, no permission, an I/O error).
    #[error("cannot read input file `{}`: {reason}; expected a readable safetensors file", path.display())]
    Unreadable {
        /// The path as given.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file whose contents are not in the safetensors format.
    #[error("`{}` is not a safetensors file ({reason})", path.display())]
    NotSafetensors {
        /// The path as given.
        path: PathBuf,
        /// The format error.
        reason: String,
    },
    /// A tensor stored in a dtype the runtime does not convert.
    #[error(
        "tensor `{name}` in `{}` has dtype {dtype} (shape {shape}); expected one of F64, F32, F16, BF16",
        path.display()
    )]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype, as safetensors names it.
        dtype: String,
        /// Its shape.
        shape: String,
    },
    /// The output file could not be written (directory missing, no permission, disk full, ...). Nothing was
    /// left at the destination.
    #[error("cannot write output file `{}`: {reason}", path.display())]
    Write {
        /// The destination path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The output has a NaN or ±Inf once rounded to its dtype: the inputs are out of the representable range.
    #[error(
        "output element {element} is not finite in {dtype} (value {value:e} before rounding): the inputs are out \
         of the range the computation can represent (largest input magnitude {max_input:e}, in `{max_input_tensor}`); \
         scale them down, or pass --allow-nonfinite to write the output anyway"
    )]
    NonFiniteOutput {
        /// The first non-finite element, e.g. `o[0,5,1,3]`.
        element: String,
        /// Its value before rounding to `dtype`.
        value: f64,
        /// The output's dtype.
        dtype: crate::io::DType,
        /// The largest absolute value among the inputs.
        max_input: f64,
        /// The input tensor holding it.
        max_input_tensor: String,
    },
    /// A backend name that is not registered.
    #[error("unknown backend `{name}`; known backends: {known}")]
    UnknownBackend {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// A variant name that is not registered.
    #[error("unknown variant `{name}`; known variants: {known}")]
    UnknownVariant {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// A chunk size that is zero, not a power of two or too large.
    #[error("invalid --chunk-size {value}: expected a power of two in 1..={max} (1, 2, 4, ..., {max})")]
    ChunkSize {
        /// The value given.
        value: usize,
        /// The largest accepted chunk size.
        max: usize,
    },
    /// Any other invalid argument (name, its value and what is expected are in the message).
    #[error("invalid {argument} {value}: expected {expected}")]
    InvalidArgument {
        /// The argument, e.g. `--t`.
        argument: String,
        /// Its value.
        value: String,
        /// What is expected.
        expected: String,
    },
    /// An invalid schedule configuration.
    #[error(transparent)]
    Config(#[from] loglinear_kernel::ConfigError),
    /// A backend that cannot run what was asked (a capability it lacks: a storage type, a tile budget, …).
    #[error("backend `{backend}` does not support {what}")]
    Unsupported {
        /// The backend.
        backend: String,
        /// What it lacks.
        what: String,
    },
    /// A backend failed on inputs that passed validation: an internal error.
    #[error("backend `{backend}` failed: {message}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// What went wrong.
        message: String,
    },
    /// An internal invariant was broken (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl RuntimeError {
    /// Whether the error is the caller's to fix (bad input, bad file, bad argument, unknown name): exit code 2
    /// in the CLI. Backend failures and internal errors are not (exit code 1).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, RuntimeError::Backend { .. } | RuntimeError::Internal(_))
    }

    /// The CLI exit code for this error: 2 for user errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.is_user_error() {
            2
        } else {
            1
        }
    }
}
