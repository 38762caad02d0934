//! Host tensors in f64, the problem sizes [`Dims`] and the input errors [`InputError`]. The input-checking rules
//! that produce them are in the `check` module.

use std::collections::BTreeMap;
use std::fmt;

/// A dense row-major f64 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements, row-major; `data.len()` is the product of `shape`.
    pub data: Vec<f64>,
}

impl HostTensor {
    /// A tensor from a shape and its elements.
    ///
    /// # Panics
    /// When `data.len()` differs from the product of `shape` (a programming error, not an input error).
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "HostTensor::new: data does not fill shape {shape:?}");
        HostTensor { shape, data }
    }

    /// A zero tensor.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        HostTensor { shape, data: vec![0.0; n] }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Relative error `‖x − reference‖ / ‖reference‖` (Euclidean norms over all elements); the absolute error
/// `‖x − reference‖` when the reference is zero. Infinite when the shapes differ; NaN propagates. This is the
/// norm-relative error of spec §11.3 that every tolerance in the project refers to.
pub fn relative_error(x: &HostTensor, reference: &HostTensor) -> f64 {
    if x.shape != reference.shape || x.data.len() != reference.data.len() {
        return f64::INFINITY;
    }
    let diff = x.data.iter().zip(&reference.data).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
    let norm = reference.data.iter().map(|b| b * b).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}

/// Named tensors, the inputs of a run.
pub type TensorMap = BTreeMap<String, HostTensor>;

/// Problem sizes, read off validated inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    /// Batch.
    pub b: usize,
    /// Sequence length.
    pub t: usize,
    /// Heads.
    pub h: usize,
    /// Key dimension.
    pub k: usize,
    /// Value dimension.
    pub v: usize,
    /// Number of λ levels in the λ tensor (`L'`, 0 without hierarchy).
    pub l: usize,
}

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B={} T={} H={} K={} V={}", self.b, self.t, self.h, self.k, self.v)
    }
}

/// Shape formatting helper: `[1, 8, 2, 4]`.
pub struct ShapeFmt<'a>(pub &'a [usize]);

impl fmt::Display for ShapeFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Why a set of input tensors does not fit a variant. Each message names the tensor, its shape and what was
/// expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A declared input is absent.
    #[error("missing tensor `{name}`: variant `{variant}` needs `{name}` ({kind}) with shape {layout}")]
    Missing {
        /// VariantIr.
        variant: String,
        /// Tensor.
        name: String,
        /// Its kind keyword.
        kind: &'static str,
        /// Its layout.
        layout: &'static str,
    },
    /// A tensor the variant does not take.
    #[error("tensor `{name}` (shape {shape}) is not an input of variant `{variant}`; its inputs are: {expected}")]
    Unexpected {
        /// VariantIr.
        variant: String,
        /// Tensor.
        name: String,
        /// Its shape.
        shape: String,
        /// The declared inputs.
        expected: String,
    },
    /// Wrong number of dimensions.
    #[error("tensor `{name}` has shape {shape} (rank {rank}); expected rank {expected_rank}: {layout}")]
    Rank {
        /// Tensor.
        name: String,
        /// Actual shape.
        shape: String,
        /// Actual rank.
        rank: usize,
        /// Expected rank.
        expected_rank: usize,
        /// Layout.
        layout: &'static str,
    },
    /// A dimension disagrees with the other tensors.
    #[error("tensor `{name}` has shape {shape}; expected {expected} ({why})")]
    Shape {
        /// Tensor.
        name: String,
        /// Actual shape.
        shape: String,
        /// Expected shape, `_` for free dimensions.
        expected: String,
        /// Which dimension and where its value came from.
        why: String,
    },
    /// A zero-sized dimension.
    #[error("tensor `{name}` has shape {shape}; dimension {dim} must be at least 1")]
    Empty {
        /// Tensor.
        name: String,
        /// Actual shape.
        shape: String,
        /// Dimension name.
        dim: &'static str,
    },
    /// λ with fewer levels than `T` needs.
    #[error(
        "tensor `{name}` has shape {shape} with {levels} levels; T = {t} needs at least {needed} levels (⌈log2 T⌉ + 1)"
    )]
    TooFewLevels {
        /// Tensor.
        name: String,
        /// Actual shape.
        shape: String,
        /// Levels present.
        levels: usize,
        /// Sequence length.
        t: usize,
        /// Levels needed.
        needed: usize,
    },
    /// A log decay above zero (a decay factor above one).
    #[error(
        "{what} (shape {shape}) is {value} at index {index}; log decays must be ≤ 0 (decay factors exp(g) in (0, 1])"
    )]
    PositiveDecay {
        /// The tensor or expression.
        what: String,
        /// Its shape.
        shape: String,
        /// The offending value.
        value: f64,
        /// Its multi-index.
        index: String,
    },
    /// NaN or infinity.
    #[error("tensor `{name}` (shape {shape}) contains {what} at index {index}; inputs must be finite")]
    NonFinite {
        /// Tensor.
        name: String,
        /// Its shape.
        shape: String,
        /// `NaN`, `+inf` or `-inf`.
        what: &'static str,
        /// Multi-index of the first offending element.
        index: String,
    },
}
