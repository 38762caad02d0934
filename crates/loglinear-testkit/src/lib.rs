//! # loglinear-testkit: shared test support
//!
//! The external f64 test vectors (`tests/vectors/<variant>.safetensors` in the repository, produced outside this
//! project; see that folder's README) and the error measure of spec §11.3. Every crate's tests read the vectors through here,
//! so the location rule and the file format live in one place.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use loglinear_ir::relative_error;
use loglinear_ir::{HostTensor, TensorMap};

/// Where the test vectors are: `$LOGLINEAR_VECTORS` (an override), else the copy committed in the repository,
/// `<workspace>/tests/vectors`.
pub fn vectors_dir() -> PathBuf {
    match std::env::var_os("LOGLINEAR_VECTORS") {
        Some(p) => p.into(),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors")),
    }
}

/// One case of a vectors file: the inputs under their plain names (`q`, `k`, `v`, `g`, `beta`, `lam`) and the
/// expected output `o`.
#[derive(Clone, Debug)]
pub struct Case {
    /// The case's index in the file (`case<i>.`).
    pub index: usize,
    /// The input tensors.
    pub inputs: TensorMap,
    /// The expected output.
    pub o: HostTensor,
}

/// Reads every case of `<vectors_dir>/<variant>.safetensors`.
///
/// # Panics
/// When the file is missing or malformed: a test that cannot find its vectors must fail, saying where it looked.
pub fn read_cases(variant: &str) -> Vec<Case> {
    let path = vectors_dir().join(format!("{variant}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("test vectors not found at {} ({e}); set LOGLINEAR_VECTORS to the vectors folder", path.display())
    });
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("{} is not a safetensors file: {e}", path.display()));
    let mut cases: BTreeMap<usize, TensorMap> = BTreeMap::new();
    for (key, view) in st.tensors() {
        let (case, field) = key.split_once('.').unwrap_or_else(|| panic!("{}: unexpected key `{key}`", path.display()));
        let i: usize = case
            .strip_prefix("case")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: unexpected key `{key}`", path.display()));
        assert_eq!(view.dtype(), safetensors::Dtype::F64, "{}: `{key}` is not F64", path.display());
        let data = view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        cases.entry(i).or_default().insert(field.to_string(), HostTensor::new(view.shape().to_vec(), data));
    }
    assert!(!cases.is_empty(), "{}: no cases", path.display());
    cases
        .into_iter()
        .map(|(index, mut inputs)| {
            let o = inputs.remove("o").unwrap_or_else(|| panic!("{}: case{index} has no `o`", path.display()));
            Case { index, inputs, o }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_mamba2_vectors() {
        let cases = read_cases("loglinear_mamba2");
        assert!(cases.len() >= 4);
        for c in &cases {
            let t = c.inputs["q"].shape[1];
            assert_eq!(c.o.shape[1], t);
            assert!(c.inputs.contains_key("lam") && c.inputs.contains_key("g"));
        }
    }

    #[test]
    fn relative_error_measures() {
        let a = HostTensor::new(vec![2], vec![3.0, 4.0]);
        let b = HostTensor::new(vec![2], vec![3.0, 4.5]);
        assert!((relative_error(&b, &a) - 0.1).abs() < 1e-15);
        assert_eq!(relative_error(&a, &HostTensor::new(vec![1], vec![0.0])), f64::INFINITY);
    }
}

/// Tokens `a..b` of every `[B, T, H, …]` tensor of `x` (tensors of rank < 3, e.g. `[H]` decays, are kept whole):
/// a prefix, a chunk or one decode step of a sequence.
pub fn time_rows(x: &TensorMap, a: usize, b: usize) -> TensorMap {
    x.iter()
        .map(|(n, t)| {
            if t.shape.len() < 3 {
                return (n.clone(), t.clone());
            }
            let (bb, tl) = (t.shape[0], t.shape[1]);
            let row: usize = t.shape[2..].iter().product();
            let mut data = Vec::new();
            for bi in 0..bb {
                data.extend_from_slice(&t.data[(bi * tl + a) * row..(bi * tl + b) * row]);
            }
            let mut shape = t.shape.clone();
            shape[1] = b - a;
            (n.clone(), HostTensor::new(shape, data))
        })
        .collect()
}
