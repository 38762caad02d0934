//! Packed variable-length batches, as fla and FlashAttention take them: `B = 1`, the `N` sequences laid end to
//! end along `T`, and `cu_seqlens` (`[N+1]`, i64: 0, then each sequence's end, strictly increasing, ending at
//! `T`). Levels and chunks restart at every sequence start: each sequence is its own problem from position 0, with
//! its own final state.
//!
//! The runtime serves a packed batch by running the compiled program on each sequence's rows, which are
//! contiguous in the `[1, T, H, …]` layout — views of the same bytes, nothing copied on the way in.

use loglinear_ir::{check_inputs, VariantIr};
use loglinear_kernel::{Bindings, DType, Tensor, TensorRef};

use crate::decode::DecodeState;
use crate::engine::{Backend, Ran, RunOptions};
use crate::error::RuntimeError;

/// The name of the packed-batch boundaries tensor.
pub const CU_SEQLENS: &str = "cu_seqlens";

/// Checks `cu_seqlens` for a batch of `b` rows of `t` tokens and returns the boundaries.
///
/// # Errors
/// [`RuntimeError::InvalidArgument`] naming `cu_seqlens`: not an i64 vector, `B ≠ 1`, not starting at 0, not
/// ending at `T`, or not strictly increasing (an empty sequence).
pub fn check_cu_seqlens(cu: &TensorRef<'_>, b: usize, t: usize) -> Result<Vec<usize>, RuntimeError> {
    let bad = |value: String, expected: String| RuntimeError::InvalidArgument {
        argument: CU_SEQLENS.into(),
        value,
        expected,
    };
    if cu.dtype != DType::I64 || cu.shape.len() != 1 || cu.shape[0] < 2 {
        return Err(bad(format!("{} {:?}", cu.dtype, cu.shape), "an I64 tensor [N+1] with N ≥ 1".into()));
    }
    if b != 1 {
        return Err(bad(format!("given with B = {b}"), "B = 1 (the sequences packed along T)".into()));
    }
    let v: Vec<f64> = cu.to_f64();
    if v[0] != 0.0 {
        return Err(bad(format!("cu_seqlens[0] = {}", v[0]), "0".into()));
    }
    let last = v[v.len() - 1];
    if last != t as f64 {
        return Err(bad(format!("cu_seqlens[{}] = {last}", v.len() - 1), format!("T = {t}")));
    }
    for (i, w) in v.windows(2).enumerate() {
        if w[1] <= w[0] {
            return Err(bad(
                format!("cu_seqlens[{}] = {} after cu_seqlens[{i}] = {}", i + 1, w[1], w[0]),
                "strictly increasing boundaries (no empty sequence)".into(),
            ));
        }
    }
    Ok(v.iter().map(|x| *x as usize).collect())
}

impl Backend<'_> {
    /// Runs the `N` sequences packed in `inputs` (`B = 1`) between the boundaries `cu` ([`check_cu_seqlens`]);
    /// returns `o` `[1, T, H, V]` and, when `final_state`, the state of every sequence (`N` of them, positions
    /// their lengths).
    ///
    /// # Errors
    /// As [`Backend::run`] for any sequence (the message names it).
    pub fn run_varlen(
        &self,
        variant: &VariantIr,
        inputs: &Bindings<'_>,
        cu: &[usize],
        opts: &RunOptions,
        final_state: bool,
    ) -> Result<(Ran, Option<DecodeState>), RuntimeError> {
        let dims = check_inputs(variant, inputs)?;
        let t = cu.last().copied().unwrap_or(0);
        if dims.b != 1 || t != dims.t {
            return Err(RuntimeError::InvalidArgument {
                argument: CU_SEQLENS.into(),
                value: format!("ending at {t} for B = {} T = {}", dims.b, dims.t),
                expected: "B = 1 and boundaries ending at T".into(),
            });
        }
        let mut o_bytes = Vec::new();
        let mut o_dtype = None;
        let mut config = None;
        let mut states: Vec<Tensor> = Vec::new();
        for (n, w) in cu.windows(2).enumerate() {
            let (a, z) = (w[0], w[1]);
            let shapes: Vec<(String, Vec<usize>)> = inputs
                .iter()
                .map(|(k, x)| {
                    let mut s = x.shape.to_vec();
                    if s.len() >= 3 {
                        s[1] = z - a;
                    }
                    (k.clone(), s)
                })
                .collect();
            let mut sub = Bindings::new();
            for ((k, x), (_, s)) in inputs.iter().zip(&shapes) {
                let view = if x.shape.len() >= 3 {
                    let row = x.shape[2..].iter().product::<usize>() * x.dtype.size();
                    TensorRef::new(x.dtype, s, &x.bytes[a * row..z * row])
                } else {
                    Some(*x)
                };
                let view = view.ok_or_else(|| RuntimeError::Internal(format!("view of `{k}` rows {a}..{z}")))?;
                sub.insert(k.clone(), view);
            }
            let name = |e: RuntimeError| match e {
                RuntimeError::Input(i) => RuntimeError::InvalidArgument {
                    argument: format!("sequence {n} (tokens {a}..{z})"),
                    value: i.to_string(),
                    expected: "inputs that fit the variant".into(),
                },
                other => other,
            };
            let ran = if final_state {
                let (ran, st) = self.prefill(variant, &sub, opts).map_err(name)?;
                states.push(st.state);
                ran
            } else {
                self.run(variant, &sub, opts).map_err(name)?
            };
            o_dtype = Some(ran.o.dtype());
            config = Some(ran.config);
            o_bytes.extend_from_slice(ran.o.bytes());
        }
        let dt = o_dtype.ok_or_else(|| RuntimeError::Internal("no sequence".into()))?;
        let o = Tensor::from_bytes(dt, vec![1, dims.t, dims.h, dims.v], o_bytes)
            .ok_or_else(|| RuntimeError::Internal("packed output size".into()))?;
        let ran = Ran { o, config: config.unwrap_or_default(), dims };
        let state = if final_state {
            let first = &states[0];
            let mut shape = first.shape().to_vec();
            shape[0] = states.len();
            let bytes: Vec<u8> = states.iter().flat_map(|s| s.bytes().iter().copied()).collect();
            let state = Tensor::from_bytes(first.dtype(), shape, bytes)
                .ok_or_else(|| RuntimeError::Internal("packed state size".into()))?;
            Some(DecodeState { state, position: cu.windows(2).map(|w| w[1] - w[0]).collect() })
        } else {
            None
        };
        Ok((ran, state))
    }
}
