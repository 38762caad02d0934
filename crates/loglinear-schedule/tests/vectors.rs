//! The interpreter against the external f64 test vectors (`LOGLINEAR_VECTORS` or `<workspace>/../shared/vectors`).

use loglinear_ir::{builtins, HostTensor, TensorMap};
use loglinear_schedule::{compile, interpret, Precision, ScanForm, ScheduleOptions};

fn vectors_dir() -> std::path::PathBuf {
    match std::env::var_os("LOGLINEAR_VECTORS") {
        Some(p) => p.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    }
}

fn read_cases(name: &str) -> Vec<TensorMap> {
    let path = vectors_dir().join(format!("{name}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("test vectors not found at {}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut cases: std::collections::BTreeMap<usize, TensorMap> = Default::default();
    for (key, view) in st.tensors() {
        let (case, field) = key.split_once('.').unwrap();
        let i: usize = case.trim_start_matches("case").parse().unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::F64);
        let data = view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
        cases.entry(i).or_default().insert(field.to_string(), HostTensor::new(view.shape().to_vec(), data));
    }
    cases.into_values().collect()
}

fn rel(x: &HostTensor, r: &HostTensor) -> f64 {
    assert_eq!(x.shape, r.shape);
    let num: f64 = x.data.iter().zip(&r.data).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
    num / r.data.iter().map(|b| b * b).sum::<f64>().sqrt()
}

#[test]
fn external_vectors() {
    let mut checked = 0;
    for v in builtins::all() {
        let cases = read_cases(&v.name);
        assert!(!cases.is_empty(), "{}: no cases", v.name);
        for (i, mut case) in cases.into_iter().enumerate() {
            let want = case.remove("o").expect("case has o");
            for c in [1, 4, 16, 64] {
                for form in [ScanForm::PerLevel, ScanForm::Fused] {
                    let comp = compile(&v, &ScheduleOptions { chunk_size: Some(c), form }).unwrap();
                    let e = rel(&interpret(&comp, &case, Precision::F64).unwrap(), &want);
                    assert!(e <= 1e-10, "{} case {i} C={c} {form:?}: rel err {e:e}", v.name);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 12 * 8, "too few vector cases: {checked}");
}
