//! The non-finite rule: an output with a NaN or ±Inf, once rounded to the dtype it is delivered in, is an error.
//!
//! Finite inputs can still give a non-finite output when they are out of the range the computation can
//! represent (inputs ×1e15 in f32, a decay sum below f32's range). Such an output is never handed over as if it
//! were a result: [`check_finite_output`] names the first bad element, the dtype and the largest input
//! magnitude. The CLI's `--allow-nonfinite` skips the rule for users who want the file anyway.

use loglinear_ir::{HostTensor, TensorMap};
use loglinear_kernel::{Bindings, Tensor};

use crate::error::RuntimeError;
use crate::io::DType;

/// Checks that every element of `tensor` (named `name`) is finite once rounded to `dtype`.
///
/// # Errors
/// [`RuntimeError::NonFiniteOutput`] naming the first non-finite element as `name[i,j,...]`, its value, the
/// dtype and the largest magnitude among `inputs` (with the tensor holding it).
pub fn check_finite_output(
    name: &str,
    tensor: &HostTensor,
    dtype: DType,
    inputs: &TensorMap,
) -> Result<(), RuntimeError> {
    let Some(flat) = tensor.data.iter().position(|&x| !dtype.is_finite_in(x)) else {
        return Ok(());
    };
    let mut index = vec![0; tensor.shape.len()];
    let mut rest = flat;
    for (i, &d) in tensor.shape.iter().enumerate().rev() {
        if d > 0 {
            index[i] = rest % d;
            rest /= d;
        }
    }
    let (max_input, max_name) = inputs
        .iter()
        .map(|(n, t)| (t.data.iter().fold(0.0f64, |m, x| m.max(x.abs())), n.as_str()))
        .fold((0.0, ""), |best, cur| if cur.0 > best.0 { cur } else { best });
    Err(RuntimeError::NonFiniteOutput {
        element: format!("{name}[{}]", index.iter().map(usize::to_string).collect::<Vec<_>>().join(",")),
        value: tensor.data[flat],
        dtype,
        max_input,
        max_input_tensor: max_name.to_string(),
    })
}

/// [`check_finite_output`] for a typed output (already in the dtype it is delivered in) and typed inputs.
///
/// # Errors
/// As [`check_finite_output`].
pub fn check_finite_tensor(name: &str, tensor: &Tensor, inputs: &Bindings<'_>) -> Result<(), RuntimeError> {
    use loglinear_ir::InputTensor;
    let view = tensor.view();
    let Some(flat) = InputTensor::find(&view, &|x: f64| !x.is_finite()) else {
        return Ok(());
    };
    let mut index = vec![0; tensor.shape().len()];
    let mut rest = flat;
    for (i, &d) in tensor.shape().iter().enumerate().rev() {
        if d > 0 {
            index[i] = rest % d;
            rest /= d;
        }
    }
    let (max_input, max_name) = inputs
        .iter()
        .map(|(n, t)| {
            let m = std::cell::Cell::new(0.0f64);
            InputTensor::find(t, &|x: f64| {
                m.set(m.get().max(x.abs()));
                false
            });
            (m.get(), n.as_str())
        })
        .fold((0.0, ""), |best, cur| if cur.0 > best.0 { cur } else { best });
    Err(RuntimeError::NonFiniteOutput {
        element: format!("{name}[{}]", index.iter().map(usize::to_string).collect::<Vec<_>>().join(",")),
        value: view.get(flat),
        dtype: tensor.dtype(),
        max_input,
        max_input_tensor: max_name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_element_that_rounds_to_infinity() {
        let inputs: TensorMap = [("q".to_string(), HostTensor::new(vec![2], vec![1e20, -3.0]))].into();
        let o = HostTensor::new(vec![1, 2, 1, 2], vec![1.0, 2.0, 1e39, f64::NAN]);
        assert!(check_finite_output("o", &o, DType::F64, &inputs).is_err(), "NaN in f64");
        let e = check_finite_output("o", &o, DType::F32, &inputs).unwrap_err();
        let text = e.to_string();
        assert!(e.is_user_error());
        assert!(
            text.contains("o[0,1,0,0]") && text.contains("F32") && text.contains("1e20") && text.contains("`q`"),
            "{text}"
        );
        let fine = HostTensor::new(vec![2], vec![1.0, 6e4]);
        assert!(check_finite_output("o", &fine, DType::F16, &inputs).is_ok());
        let big = HostTensor::new(vec![2], vec![1.0, 7e4]);
        assert!(check_finite_output("o", &big, DType::F16, &inputs).unwrap_err().to_string().contains("o[1]"));
    }
}
