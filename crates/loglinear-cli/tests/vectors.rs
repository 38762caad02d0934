//! Acceptance: the external test vectors in `tests/vectors/<variant>.safetensors` (produced by an
//! implementation independent of this project) through the real `loglinear run --backend reference`.
//!
//! Each case `case<i>.<name>` is split into an input file with plain names (q, k, v, g, beta, lam), run with a
//! few chunk sizes, and the written `o` must match the vector's `o` to ≤ 1e-10 relative error.
//! The vectors are found through `LOGLINEAR_VECTORS`, else `<workspace root>/tests/vectors`; when they are
//! absent the tests fail, saying where they looked.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use loglinear::{relative_error, HostTensor};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

const BIN: &str = env!("CARGO_BIN_EXE_loglinear");
const TOLERANCE: f64 = 1e-10;

fn write_inputs(path: &Path, tensors: &BTreeMap<String, HostTensor>) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .filter(|(n, _)| n.as_str() != "o")
        .map(|(n, t)| (n.clone(), t.shape.clone(), t.data.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView<'_>)> =
        bytes.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F64, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn f64s(view: &TensorView<'_>, key: &str) -> Vec<f64> {
    assert_eq!(view.dtype(), Dtype::F64, "tensor `{key}` must be F64");
    view.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn read_o(path: &Path) -> HostTensor {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("o").unwrap();
    HostTensor::new(view.shape().to_vec(), f64s(&view, "o"))
}

/// Runs every case of `variant` with each chunk size (`None`: the variant's default); returns how many runs
/// were checked.
fn check_variant(variant: &str, chunk_sizes: &[Option<usize>]) -> usize {
    check_variant_on("reference", variant, chunk_sizes)
}

/// [`check_variant`] on a given backend.
fn check_variant_on(backend: &str, variant: &str, chunk_sizes: &[Option<usize>]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for loglinear_testkit::Case { index: i, inputs, o: want } in loglinear_testkit::read_cases(variant) {
        let want = &want;
        let input = dir.path().join(format!("case{i}.safetensors"));
        write_inputs(&input, &inputs);
        for chunk in chunk_sizes {
            let output = dir.path().join(format!("case{i}_o_{chunk:?}.safetensors"));
            let mut cmd = Command::new(BIN);
            cmd.args(["run", "--backend", backend, "--variant", variant, "--input"])
                .arg(&input)
                .arg("--output")
                .arg(&output);
            if let Some(c) = chunk {
                cmd.args(["--chunk-size", &c.to_string()]);
            }
            let out = cmd.output().expect("spawn loglinear");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{variant} case{i} chunk {chunk:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let got = read_o(&output);
            assert_eq!(got.shape, want.shape, "{variant} case{i}");
            let e = relative_error(&got, want);
            assert!(
                e <= TOLERANCE,
                "{backend}: {variant} case{i} chunk {chunk:?}: relative error {e:.3e} > {TOLERANCE:e}"
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn vectors_loglinear_mamba2() {
    let n = check_variant("loglinear_mamba2", &[None, Some(1), Some(4), Some(16)]);
    assert!(n >= 4 * 4, "{n}");
}

#[test]
fn vectors_loglinear_gated_deltanet() {
    let n = check_variant("loglinear_gated_deltanet", &[None, Some(1), Some(4), Some(16)]);
    assert!(n >= 4 * 4, "{n}");
}

/// Issue 4's acceptance: the kernel-IR interpreter through the CLI, C ∈ {1, 4, 16, 64}.
#[test]
fn vectors_interpreter_chunk_sizes() {
    let chunks = [Some(1), Some(4), Some(16), Some(64)];
    for variant in ["loglinear_mamba2", "loglinear_gated_deltanet"] {
        let n = check_variant_on("interpreter", variant, &chunks);
        assert!(n >= 4 * 4, "{n}");
    }
}

#[test]
fn vectors_all_twelve() {
    let names = loglinear::registry::Registry::builtin().names().iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(names.len(), 12);
    for name in &names {
        check_variant(name, &[Some(8)]);
    }
}

#[test]
fn vectors_dir_is_found() {
    let dir = loglinear_testkit::vectors_dir();
    for name in loglinear::registry::Registry::builtin().names() {
        assert!(dir.join(format!("{name}.safetensors")).is_file(), "{name} missing in {}", dir.display());
    }
}
