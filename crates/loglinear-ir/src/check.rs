//! The input-checking rules every backend shares: [`check_inputs`] (names, ranks, shapes, λ levels, finiteness)
//! and [`check_decay`] (log decays ≤ 0).

use std::collections::BTreeMap;

use crate::eval::eval_one;
use crate::expr::Expr;
use crate::level::num_levels;
use crate::tensor::{Dims, HostTensor, InputError, ShapeFmt, TensorMap};
use crate::variant::{InputKind, Transition, VariantIr};

/// A tensor the input checks can read in its own element type: f64 [`HostTensor`]s, and typed views
/// ([`loglinear_kernel::TensorRef`]) straight from a memory-mapped file, never widened as a whole.
pub trait InputTensor {
    /// The shape.
    fn shape(&self) -> &[usize];
    /// Element `i` (row-major) as f64.
    fn value(&self, i: usize) -> f64;
    /// Number of elements.
    fn numel(&self) -> usize {
        self.shape().iter().product()
    }
    /// The first element (row-major) for which `bad` holds.
    fn find(&self, bad: &dyn Fn(f64) -> bool) -> Option<usize> {
        (0..self.numel()).find(|&i| bad(self.value(i)))
    }
    /// An f64 copy (only for the few tensors a derived decay expression needs).
    fn to_host(&self) -> HostTensor {
        HostTensor::new(self.shape().to_vec(), (0..self.numel()).map(|i| self.value(i)).collect())
    }
}

impl InputTensor for HostTensor {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn value(&self, i: usize) -> f64 {
        self.data[i]
    }
    fn numel(&self) -> usize {
        self.data.len()
    }
    fn find(&self, bad: &dyn Fn(f64) -> bool) -> Option<usize> {
        self.data.iter().position(|&x| bad(x))
    }
}

impl InputTensor for loglinear_kernel::TensorRef<'_> {
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn value(&self, i: usize) -> f64 {
        self.get(i)
    }
    fn numel(&self) -> usize {
        loglinear_kernel::TensorRef::numel(self)
    }
    fn find(&self, bad: &dyn Fn(f64) -> bool) -> Option<usize> {
        use loglinear_kernel::DType;
        let b = self.bytes;
        match self.dtype {
            DType::F32 => b.chunks_exact(4).position(|c| bad(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)),
            DType::F64 => b.chunks_exact(8).position(|c| bad(f64::from_le_bytes(c.try_into().expect("8 bytes")))),
            DType::F16 => b
                .chunks_exact(2)
                .position(|c| bad(loglinear_kernel::tensor::f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])) as f64)),
            DType::BF16 => b
                .chunks_exact(2)
                .position(|c| bad(loglinear_kernel::tensor::bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])) as f64)),
            _ => (0..self.numel()).find(|&i| bad(self.get(i))),
        }
    }
}

impl<T: InputTensor> InputTensor for &T {
    fn shape(&self) -> &[usize] {
        (**self).shape()
    }
    fn value(&self, i: usize) -> f64 {
        (**self).value(i)
    }
    fn numel(&self) -> usize {
        (**self).numel()
    }
    fn find(&self, bad: &dyn Fn(f64) -> bool) -> Option<usize> {
        (**self).find(bad)
    }
}

/// The multi-index of flat (row-major) index `i` in a tensor of shape `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
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
pub fn check_inputs<T: InputTensor>(variant: &VariantIr, inputs: &BTreeMap<String, T>) -> Result<Dims, InputError> {
    let names = variant.inputs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ");
    for (name, t) in inputs {
        if variant.input_by_name(name).is_none() {
            return Err(InputError::Unexpected {
                variant: variant.name.clone(),
                name: name.clone(),
                shape: ShapeFmt(t.shape()).to_string(),
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
        let shape = ShapeFmt(t.shape()).to_string();
        let rank = if d.kind == InputKind::HeadConst {
            1
        } else if d.kind == InputKind::Scalar {
            3
        } else {
            4
        };
        if t.shape().len() != rank {
            return Err(InputError::Rank {
                name: d.name.clone(),
                shape,
                rank: t.shape().len(),
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
        for (n, dn) in t.shape().iter().zip(dim_names) {
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
                Some((h, src)) if h != t.shape()[0] => {
                    return Err(mismatch(format!("[{h}]"), format!("H = {h} from `{src}`")));
                }
                _ => hdim = Some((t.shape()[0], &d.name)),
            }
            continue;
        }
        let here = [t.shape()[0], t.shape()[1], t.shape()[2]];
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
        let last = t.shape().get(3).copied();
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
            let shape = ShapeFmt(inputs[&d.name].shape()).to_string();
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
        if t.shape()[3] < needed {
            return Err(InputError::TooFewLevels {
                name: d.name.clone(),
                shape: ShapeFmt(t.shape()).to_string(),
                levels: t.shape()[3],
                t: tl,
                needed,
            });
        }
        l = if l == 0 { t.shape()[3] } else { l.min(t.shape()[3]) };
    }
    for d in &variant.inputs {
        let t = &inputs[&d.name];
        if let Some(i) = t.find(&|x: f64| !x.is_finite()) {
            let x = t.value(i);
            return Err(InputError::NonFinite {
                name: d.name.clone(),
                shape: ShapeFmt(t.shape()).to_string(),
                what: if x.is_nan() {
                    "NaN"
                } else if x > 0.0 {
                    "+inf"
                } else {
                    "-inf"
                },
                index: ShapeFmt(&unravel(i, t.shape())).to_string(),
            });
        }
    }
    let dims = Dims { b, t: tl, h, k: kdim.map(|x| x.0).unwrap_or(0), v: vdim.map(|x| x.0).unwrap_or(0), l };
    check_decay(variant, inputs, &dims)?;
    Ok(dims)
}

/// Checks that the transition's log decay is ≤ 0 everywhere (α = exp(g) ∈ (0, 1], spec §4.1, §11.4): chunked
/// schedules form decays only as exponentials of non-positive numbers. Only the decay's sub-expression is
/// evaluated. The inputs must already have passed the shape checks of [`check_inputs`].
pub fn check_decay<T: InputTensor>(
    variant: &VariantIr,
    inputs: &BTreeMap<String, T>,
    d: &Dims,
) -> Result<(), InputError> {
    let g = match &variant.transition {
        Transition::ScalarDecay { log_decay } | Transition::DiagonalDecay { log_decay } => *log_decay,
        Transition::Delta { log_decay: Some(g), .. } => *g,
        _ => return Ok(()),
    };
    let bad = |x: f64| x > 0.0 || x.is_nan();
    let (what, found) = match variant.expr(g) {
        Expr::Input(id) => {
            let name = variant.input(*id).name.clone();
            let t = &inputs[&name];
            let found = t.find(&bad).map(|i| (t.value(i), i, t.shape().to_vec()));
            (format!("tensor `{name}`"), found)
        }
        _ => {
            // A derived decay: evaluate its sub-expression on f64 copies of the inputs (the built-ins take their
            // decays as inputs and never come here).
            let host: TensorMap = inputs.iter().map(|(n, t)| (n.clone(), t.to_host())).collect();
            let t = eval_one(variant, &host, d, g);
            let what = format!("log decay `{}`", crate::print::expr_to_string(variant, g));
            (what, t.data.iter().position(|&x| bad(x)).map(|i| (t.data[i], i, t.shape.clone())))
        }
    };
    if let Some((value, i, shape)) = found {
        return Err(InputError::PositiveDecay {
            what,
            shape: ShapeFmt(&shape).to_string(),
            value,
            index: ShapeFmt(&unravel(i, &shape)).to_string(),
        });
    }
    Ok(())
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
