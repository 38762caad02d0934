//! Host tensors in f64 and the input-checking rules every backend shares.

use std::collections::BTreeMap;
use std::fmt;

use crate::level::num_levels;
use crate::variant::{InputKind, VariantIr};

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

pub(crate) fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            idx[d] = i % n;
            i /= n;
        }
    }
    idx
}

/// Checks `inputs` against `variant`'s declared inputs and returns the problem sizes.
///
/// The first token tensor in declaration order fixes B, T and H; the first key-dimension tensor fixes K; the first
/// value tensor fixes V. Every other tensor must agree. λ needs at least `num_levels(T)` levels; extra levels are
/// allowed and ignored. Every element must be finite, and the transition's log decay must be ≤ 0.
pub fn check_inputs(variant: &VariantIr, inputs: &TensorMap) -> Result<Dims, InputError> {
    let names = variant.inputs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ");
    for (name, t) in inputs {
        if variant.input_by_name(name).is_none() {
            return Err(InputError::Unexpected {
                variant: variant.name.clone(),
                name: name.clone(),
                shape: ShapeFmt(&t.shape).to_string(),
                expected: names,
            });
        }
    }
    // (value, source tensor) for each named dimension.
    let mut bth: Option<([usize; 3], &str)> = None;
    let mut kdim: Option<(usize, &str)> = None;
    let mut vdim: Option<(usize, &str)> = None;
    let mut hdim: Option<(usize, &str)> = None;
    for d in &variant.inputs {
        let t = inputs.get(&d.name).ok_or_else(|| InputError::Missing {
            variant: variant.name.clone(),
            name: d.name.clone(),
            kind: d.kind.keyword(),
            layout: d.kind.layout(),
        })?;
        let shape = ShapeFmt(&t.shape).to_string();
        let rank = if d.kind == InputKind::HeadConst {
            1
        } else if d.kind == InputKind::Scalar {
            3
        } else {
            4
        };
        if t.shape.len() != rank {
            return Err(InputError::Rank {
                name: d.name.clone(),
                shape,
                rank: t.shape.len(),
                expected_rank: rank,
                layout: d.kind.layout(),
            });
        }
        let dim_names: &[&'static str] = match d.kind {
            InputKind::HeadConst => &["H"],
            InputKind::Scalar => &["B", "T", "H"],
            InputKind::Key | InputKind::Channel => &["B", "T", "H", "K"],
            InputKind::Value => &["B", "T", "H", "V"],
            InputKind::Levels => &["B", "T", "H", "L"],
        };
        for (n, dn) in t.shape.iter().zip(dim_names) {
            if *n == 0 {
                return Err(InputError::Empty { name: d.name.clone(), shape, dim: dn });
            }
        }
        let mismatch = |expected: String, why: String| InputError::Shape {
            name: d.name.clone(),
            shape: shape.clone(),
            expected,
            why,
        };
        if d.kind == InputKind::HeadConst {
            match hdim {
                Some((h, src)) if h != t.shape[0] => {
                    return Err(mismatch(format!("[{h}]"), format!("H = {h} from `{src}`")));
                }
                _ => hdim = Some((t.shape[0], &d.name)),
            }
            continue;
        }
        let here = [t.shape[0], t.shape[1], t.shape[2]];
        match bth {
            Some((want, src)) if want != here => {
                let mut exp = format!("[{}, {}, {}", want[0], want[1], want[2]);
                if rank == 4 {
                    exp.push_str(&format!(", {}", dim_names[3]));
                }
                exp.push(']');
                let which = ["B", "T", "H"]
                    .iter()
                    .zip(want.iter().zip(here.iter()))
                    .filter(|(_, (a, b))| a != b)
                    .map(|(n, (a, _))| format!("{n} = {a}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(mismatch(exp, format!("{which} from `{src}`")));
            }
            Some(_) => {}
            None => bth = Some((here, &d.name)),
        }
        let last = t.shape.get(3).copied();
        match d.kind {
            InputKind::Key | InputKind::Channel => match kdim {
                Some((k, src)) if Some(k) != last => {
                    return Err(mismatch(
                        format!("[{}, {}, {}, {k}]", here[0], here[1], here[2]),
                        format!("K = {k} from `{src}`"),
                    ))
                }
                Some(_) => {}
                None => kdim = last.map(|k| (k, d.name.as_str())),
            },
            InputKind::Value => match vdim {
                Some((v, src)) if Some(v) != last => {
                    return Err(mismatch(
                        format!("[{}, {}, {}, {v}]", here[0], here[1], here[2]),
                        format!("V = {v} from `{src}`"),
                    ))
                }
                Some(_) => {}
                None => vdim = last.map(|v| (v, d.name.as_str())),
            },
            _ => {}
        }
    }
    let ([b, tl, h], _) = bth.expect("a valid variant has a token input (its query)");
    if let Some((hh, src)) = hdim {
        if hh != h {
            let d = variant.input_by_name(src).expect("declared").1;
            let shape = ShapeFmt(&inputs[&d.name].shape).to_string();
            return Err(InputError::Shape {
                name: d.name.clone(),
                shape,
                expected: format!("[{h}]"),
                why: format!("H = {h} from the token tensors"),
            });
        }
    }
    let mut l = 0;
    for d in variant.inputs.iter().filter(|d| d.kind == InputKind::Levels) {
        let t = &inputs[&d.name];
        let needed = num_levels(tl);
        if t.shape[3] < needed {
            return Err(InputError::TooFewLevels {
                name: d.name.clone(),
                shape: ShapeFmt(&t.shape).to_string(),
                levels: t.shape[3],
                t: tl,
                needed,
            });
        }
        l = if l == 0 { t.shape[3] } else { l.min(t.shape[3]) };
    }
    for d in &variant.inputs {
        let t = &inputs[&d.name];
        if let Some(i) = t.data.iter().position(|x| !x.is_finite()) {
            let x = t.data[i];
            return Err(InputError::NonFinite {
                name: d.name.clone(),
                shape: ShapeFmt(&t.shape).to_string(),
                what: if x.is_nan() {
                    "NaN"
                } else if x > 0.0 {
                    "+inf"
                } else {
                    "-inf"
                },
                index: ShapeFmt(&unravel(i, &t.shape)).to_string(),
            });
        }
    }
    let dims = Dims { b, t: tl, h, k: kdim.map(|x| x.0).unwrap_or(0), v: vdim.map(|x| x.0).unwrap_or(0), l };
    crate::problem::check_decay(variant, inputs, &dims)?;
    Ok(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::random_inputs;
    use crate::{builtins, InputKind, Transition, UnaryOp, VariantBuilder};

    #[test]
    fn positive_decay_is_rejected_with_its_position() {
        let v = builtins::by_name("loglinear_mamba2").unwrap();
        let mut x = random_inputs(&v, (1, 5, 2, 3, 2), 0, 1);
        assert!(check_inputs(&v, &x).is_ok());
        x.get_mut("g").unwrap().data[3] = 0.25;
        let e = check_inputs(&v, &x).unwrap_err().to_string();
        assert!(e.contains("tensor `g`") && e.contains("0.25") && e.contains("[0, 1, 1]") && e.contains("≤ 0"), "{e}");
    }

    #[test]
    fn positive_decay_expression_is_named() {
        let mut b = VariantBuilder::new("bad_decay");
        let q = b.input("q", InputKind::Key);
        let v = b.input("v", InputKind::Value);
        let a = b.input("a", InputKind::Scalar);
        let g = b.unary(UnaryOp::Softplus, a);
        b.query(q).transition(Transition::ScalarDecay { log_decay: g }).write(None, q, v);
        let var = b.finish().unwrap();
        let x = random_inputs(&var, (1, 4, 1, 2, 2), 0, 3);
        let e = check_inputs(&var, &x).unwrap_err().to_string();
        assert!(e.contains("log decay `softplus(a)`"), "{e}");
    }
}
