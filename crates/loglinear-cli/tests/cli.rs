//! Drives the real `loglinear` binary: every bad input (exit code 2, one clear `error:` line, no output file),
//! the positive commands, and dtype handling.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use loglinear::oracle::Form;
use loglinear::random::random_inputs;
use loglinear::registry::Registry;
use loglinear::{relative_error, HostTensor, TensorMap};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

const BIN: &str = env!("CARGO_BIN_EXE_loglinear");

/// Small sizes: B=1, T=20, H=2, K=4, V=3.
const DIMS: (usize, usize, usize, usize, usize) = (1, 20, 2, 4, 3);

fn loglinear(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("RUST_LOG").output().expect("spawn loglinear")
}

fn encode(dtype: Dtype, data: &[f64]) -> Vec<u8> {
    let mut out = Vec::new();
    for &x in data {
        match dtype {
            Dtype::F64 => out.extend_from_slice(&x.to_le_bytes()),
            Dtype::F32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
            Dtype::F16 => out.extend_from_slice(&half::f16::from_f64(x).to_le_bytes()),
            Dtype::BF16 => out.extend_from_slice(&half::bf16::from_f64(x).to_le_bytes()),
            Dtype::I64 => out.extend_from_slice(&(x as i64).to_le_bytes()),
            other => panic!("test helper does not encode {other}"),
        }
    }
    out
}

fn round_trip(dtype: Dtype, x: f64) -> f64 {
    match dtype {
        Dtype::F64 => x,
        Dtype::F32 => x as f32 as f64,
        Dtype::F16 => half::f16::from_f64(x).to_f64(),
        Dtype::BF16 => half::bf16::from_f64(x).to_f64(),
        other => panic!("test helper does not decode {other}"),
    }
}

/// Writes tensors with the safetensors crate directly (independently of the runtime's writer).
fn write_file(path: &Path, tensors: &[(&str, &HostTensor, Dtype)]) {
    let bytes: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> =
        tensors.iter().map(|(n, t, d)| (n.to_string(), t.shape.clone(), *d, encode(*d, &t.data))).collect();
    let views: Vec<(String, TensorView<'_>)> =
        bytes.iter().map(|(n, s, d, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn write_map(path: &Path, map: &TensorMap, dtype: Dtype) {
    let list: Vec<(&str, &HostTensor, Dtype)> = map.iter().map(|(n, t)| (n.as_str(), t, dtype)).collect();
    write_file(path, &list);
}

/// Reads `o` back: (dtype, tensor).
fn read_o(path: &Path) -> (Dtype, HostTensor) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.names(), vec!["o"], "the output holds exactly `o`");
    let view = st.tensor("o").unwrap();
    let dtype = view.dtype();
    let size = match dtype {
        Dtype::F64 => 8,
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        other => panic!("unexpected output dtype {other}"),
    };
    let data = view
        .data()
        .chunks_exact(size)
        .map(|c| match dtype {
            Dtype::F64 => f64::from_le_bytes(c.try_into().unwrap()),
            Dtype::F32 => f32::from_le_bytes(c.try_into().unwrap()) as f64,
            Dtype::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f64(),
            _ => half::bf16::from_le_bytes([c[0], c[1]]).to_f64(),
        })
        .collect();
    (dtype, HostTensor::new(view.shape().to_vec(), data))
}

fn inputs(variant: &str) -> TensorMap {
    let reg = Registry::builtin();
    random_inputs(reg.get(variant).unwrap(), DIMS, 0, 11)
}

struct Case {
    dir: tempfile::TempDir,
    input: PathBuf,
    output: PathBuf,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.safetensors");
        let output = dir.path().join("out.safetensors");
        Case { dir, input, output }
    }

    fn with_inputs(map: &TensorMap) -> Case {
        let c = Case::new();
        write_map(&c.input, map, Dtype::F64);
        c
    }

    fn run(&self, variant: &str, extra: &[&str]) -> Output {
        let mut args = vec!["run", "--variant", variant, "--input", self.input.to_str().unwrap(), "--output"];
        args.push(self.output.to_str().unwrap());
        args.extend_from_slice(extra);
        loglinear(&args)
    }

    /// Asserts exit code 2, exactly one `error:` line on stderr containing every key word, nothing on stdout,
    /// no output file and nothing else left in the directory.
    fn expect_bad(&self, out: &Output, keys: &[&str]) {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one stderr line, got: {err:?}");
        assert!(lines[0].starts_with("error: "), "{err}");
        for k in keys {
            assert!(lines[0].contains(k), "stderr lacks {k:?}: {err}");
        }
        assert!(out.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&out.stdout));
        assert!(!self.output.exists(), "no output file may be written");
        let left: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "in.safetensors")
            .collect();
        assert!(left.is_empty(), "files left behind: {left:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Bad input: exit code 2.

#[test]
fn missing_tensor() {
    let mut x = inputs("loglinear_mamba2");
    x.remove("g");
    let c = Case::with_inputs(&x);
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["missing tensor `g`", "loglinear_mamba2", "[B, T, H]"]);
}

#[test]
fn wrong_rank() {
    let mut x = inputs("loglinear_mamba2");
    let g = x["g"].clone();
    x.insert("g".into(), HostTensor::new(vec![1, 20, 2, 1], g.data));
    let c = Case::with_inputs(&x);
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["`g`", "[1, 20, 2, 1]", "rank 4", "expected rank 3"]);
}

#[test]
fn wrong_shape() {
    // k's key dimension disagrees with q's.
    let mut x = inputs("loglinear_mamba2");
    x.insert("k".into(), HostTensor::zeros(vec![1, 20, 2, 5]));
    let c = Case::with_inputs(&x);
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["`k`", "[1, 20, 2, 5]", "expected [1, 20, 2, 4]", "K = 4"]);
}

#[test]
fn bth_disagree() {
    // v's T disagrees with q's.
    let mut x = inputs("loglinear_gated_deltanet");
    x.insert("v".into(), HostTensor::zeros(vec![1, 19, 2, 3]));
    let c = Case::with_inputs(&x);
    c.expect_bad(
        &c.run("loglinear_gated_deltanet", &[]),
        &["`v`", "[1, 19, 2, 3]", "expected [1, 20, 2, V]", "T = 20"],
    );
    // and H of a scalar input
    let mut x = inputs("loglinear_gated_deltanet");
    x.insert("beta".into(), HostTensor::zeros(vec![1, 20, 3]));
    let c = Case::with_inputs(&x);
    c.expect_bad(&c.run("loglinear_gated_deltanet", &[]), &["`beta`", "[1, 20, 3]", "H = 2"]);
}

#[test]
fn lam_too_few_levels() {
    let mut x = inputs("loglinear_mamba2");
    x.insert("lam".into(), HostTensor::zeros(vec![1, 20, 2, 3]));
    let c = Case::with_inputs(&x);
    c.expect_bad(
        &c.run("loglinear_mamba2", &[]),
        &["`lam`", "[1, 20, 2, 3]", "3 levels", "T = 20", "at least 6 levels"],
    );
}

#[test]
fn nan_in_input() {
    let mut x = inputs("loglinear_mamba2");
    let q = x.get_mut("q").unwrap();
    // index [0, 3, 1, 2] in [1, 20, 2, 4]
    q.data[3 * 8 + 4 + 2] = f64::NAN;
    let c = Case::with_inputs(&x);
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["`q`", "NaN", "[0, 3, 1, 2]", "finite"]);
}

#[test]
fn positive_log_decay() {
    let mut x = inputs("loglinear_mamba2");
    // index [0, 2, 1] in [1, 20, 2]
    x.get_mut("g").unwrap().data[2 * 2 + 1] = 0.5;
    let c = Case::with_inputs(&x);
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["`g`", "0.5", "[0, 2, 1]", "≤ 0"]);
}

#[test]
fn compile_takes_a_config_splits_v_and_dumps_the_decomposed_program() {
    let base = ["compile", "--variant", "loglinear_mamba2", "--shape", "1,100,2,16,32"];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        loglinear(&args)
    };
    let out = run(&["--config", "chunk=16,v_block=8", "--dump-ir", "after-split_v"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("; v_block = 8") && text.contains("grid(b < B, h < H, i < NT, vb < 4)"), "{text}");
    let out = run(&["--decompose", "--dump-ir", "after-decompose"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("= mask ") && !text.contains("= segsum ") && !text.contains("= level_mask "), "{text}");
    // Without --decompose the dump says the pass did nothing.
    let out = run(&["--dump-ir", "after-decompose"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("not decomposed"));
    for (config, field) in [("v_block=5", "v_block"), ("chunk=3", "chunk"), ("speed=2", "config")] {
        let out = run(&["--config", config]);
        assert_eq!(out.status.code(), Some(2), "{config}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{config}: {err}");
    }
}

#[test]
fn compile_dumps_every_stage_and_rejects_unknown_pass() {
    let out = loglinear(&[
        "compile",
        "--variant",
        "loglinear_gated_deltanet",
        "--chunk-size",
        "16",
        "--dump-ir",
        "after-all",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for pass in
        ["validate", "classify", "schedule", "lower", "split_v", "specialise", "decompose", "cse", "dce", "verify"]
    {
        assert!(text.contains(&format!("; after {pass}")), "{pass}: {text}");
    }
    let out = loglinear(&["compile", "--variant", "loglinear_mamba2", "--dump-ir", "optimize"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--dump-ir") && err.contains("optimize") && err.contains("lower"), "{err}");
    let out = loglinear(&["compile", "--variant", "loglinear_mamba2", "--cost", "--shape", "1,1024,2,16,16"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("flops"));
    let out = loglinear(&["compile", "--variant", "loglinear_mamba2", "--cost", "--shape", "1,0,2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shape"));
}

#[test]
fn interpreter_backend_honours_chunk_size() {
    let x = inputs("loglinear_gated_deltanet");
    let c = Case::with_inputs(&x);
    for chunk in ["1", "4", "16"] {
        let out = c.run("loglinear_gated_deltanet", &["--backend", "interpreter", "--chunk-size", chunk]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = c.run("loglinear_gated_deltanet", &["--backend", "interpreter", "--chunk-size", "6"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn inf_in_input() {
    let mut x = inputs("loglinear_mamba2");
    x.get_mut("g").unwrap().data[5] = f64::NEG_INFINITY;
    let c = Case::with_inputs(&x);
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["`g`", "-inf", "[0, 2, 1]", "finite"]);
}

#[test]
fn inf_in_f32_input() {
    let mut x = inputs("loglinear_mamba2");
    x.get_mut("v").unwrap().data[0] = f64::INFINITY;
    let c = Case::new();
    write_map(&c.input, &x, Dtype::F32);
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["`v`", "+inf", "[0, 0, 0, 0]"]);
}

#[test]
fn beta_given_to_mamba2() {
    let mut x = inputs("loglinear_mamba2");
    x.insert("beta".into(), HostTensor::zeros(vec![1, 20, 2]));
    let c = Case::with_inputs(&x);
    c.expect_bad(
        &c.run("loglinear_mamba2", &[]),
        &["`beta`", "[1, 20, 2]", "not an input of variant `loglinear_mamba2`", "q, k, v, g, lam"],
    );
}

#[test]
fn chunk_size_zero() {
    let c = Case::with_inputs(&inputs("loglinear_mamba2"));
    c.expect_bad(&c.run("loglinear_mamba2", &["--chunk-size", "0"]), &["--chunk-size 0", "power of two", "1..=256"]);
}

#[test]
fn chunk_size_twelve() {
    let c = Case::with_inputs(&inputs("loglinear_mamba2"));
    c.expect_bad(&c.run("loglinear_mamba2", &["--chunk-size", "12"]), &["--chunk-size 12", "power of two", "1..=256"]);
}

#[test]
fn chunk_size_too_large_or_not_a_number() {
    let c = Case::with_inputs(&inputs("loglinear_mamba2"));
    c.expect_bad(&c.run("loglinear_mamba2", &["--chunk-size", "512"]), &["--chunk-size 512", "power of two"]);
    c.expect_bad(&c.run("loglinear_mamba2", &["--chunk-size", "-4"]), &["--chunk-size"]);
    c.expect_bad(&c.run("loglinear_mamba2", &["--chunk-size", "abc"]), &["'abc'", "--chunk-size"]);
}

#[test]
fn unknown_variant() {
    let c = Case::with_inputs(&inputs("loglinear_mamba2"));
    c.expect_bad(&c.run("loglinear_nope", &[]), &["unknown variant `loglinear_nope`", "loglinear_mamba2", "gla"]);
}

#[test]
fn unknown_backend() {
    let c = Case::with_inputs(&inputs("loglinear_mamba2"));
    c.expect_bad(&c.run("loglinear_mamba2", &["--backend", "gpu"]), &["unknown backend `gpu`", "reference"]);
}

#[test]
fn input_file_missing() {
    let c = Case::new();
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["in.safetensors", "does not exist"]);
}

#[test]
fn input_not_safetensors() {
    let c = Case::new();
    // Deterministic pseudo-random bytes (SplitMix64).
    let mut s = 0x1234_5678_u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z >> 56) as u8
        })
        .collect();
    std::fs::write(&c.input, bytes).unwrap();
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["in.safetensors", "is not a safetensors file"]);
}

#[test]
fn input_unreadable_directory() {
    let c = Case::new();
    std::fs::create_dir(&c.input).unwrap();
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["cannot read input file", "in.safetensors", "directory"]);
}

#[test]
fn unsupported_dtype() {
    let c = Case::new();
    let x = inputs("loglinear_mamba2");
    let list: Vec<(&str, &HostTensor, Dtype)> = x.iter().map(|(n, t)| (n.as_str(), t, Dtype::F64)).collect();
    let mut bytes: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> =
        list.iter().map(|(n, t, d)| (n.to_string(), t.shape.clone(), *d, encode(*d, &t.data))).collect();
    bytes.push(("idx".into(), vec![2], Dtype::I32, vec![1, 0, 0, 0, 2, 0, 0, 0]));
    let views: Vec<(String, TensorView<'_>)> =
        bytes.iter().map(|(n, s, d, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(&c.input, safetensors::serialize(views, None).unwrap()).unwrap();
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["`idx`", "I32", "F64, F32, F16, BF16"]);
}

#[test]
fn output_directory_missing() {
    let mut c = Case::with_inputs(&inputs("loglinear_mamba2"));
    c.output = c.dir.path().join("no_such_dir").join("o.safetensors");
    c.expect_bad(&c.run("loglinear_mamba2", &[]), &["no_such_dir", "does not exist"]);
}

#[test]
fn failure_keeps_existing_output() {
    let mut x = inputs("loglinear_mamba2");
    x.remove("q");
    let c = Case::with_inputs(&x);
    std::fs::write(&c.output, b"previous").unwrap();
    let out = c.run("loglinear_mamba2", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(&c.output).unwrap(), b"previous", "an earlier output file is left untouched");
}

#[test]
fn usage_errors() {
    for args in [
        vec!["run", "--variant", "loglinear_mamba2"],
        vec!["frobnicate"],
        vec![],
        vec!["describe"],
        vec!["list", "--bogus"],
        vec!["--log-level", "loud", "list"],
        vec!["demo", "--t", "0"],
        vec!["demo", "--chunk-size", "12"],
        vec!["demo", "--variant", "nope"],
    ] {
        let out = loglinear(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err:?}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    let out = loglinear(&["run", "--variant", "loglinear_mamba2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--input") && err.contains("--output"), "{err}");
    let err = String::from_utf8_lossy(&loglinear(&["demo", "--chunk-size", "12"]).stderr).into_owned();
    assert!(err.contains("--chunk-size 12"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// Positive.

#[test]
fn help_on_every_command() {
    for args in [
        vec!["--help"],
        vec!["list", "--help"],
        vec!["describe", "--help"],
        vec!["run", "--help"],
        vec!["demo", "--help"],
        vec!["backends", "--help"],
    ] {
        let out = loglinear(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: loglinear"), "{args:?}: {text}");
    }
    let text = String::from_utf8(loglinear(&["run", "--help"]).stdout).unwrap();
    for flag in ["--variant", "--backend", "--input", "--output", "--chunk-size", "[default: cranelift]"] {
        assert!(text.contains(flag), "{flag}: {text}");
    }
}

#[test]
fn list() {
    let out = loglinear(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12, "{text}");
    let mamba = lines.iter().find(|l| l.starts_with("loglinear_mamba2 ")).expect("loglinear_mamba2 listed");
    for w in ["scalar_decay", "log-linear", "q:key", "g:scalar", "lam:levels"] {
        assert!(mamba.contains(w), "{w}: {mamba}");
    }
    let retnet = lines.iter().find(|l| l.starts_with("retnet ")).expect("retnet listed");
    assert!(retnet.contains("constant_decay") && retnet.contains(" linear ") && !retnet.contains("lam"), "{retnet}");
}

#[test]
fn describe() {
    let out = loglinear(&["describe", "loglinear_gated_deltanet"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("class gated_delta"), "{text}");
    assert!(text.contains("hierarchy = fenwick(lam)"), "{text}");
    let out = loglinear(&["describe", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown variant `nope`"));
}

#[test]
fn backends() {
    let out = loglinear(&["backends"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("reference"), "{text}");
    let cl = text.lines().find(|l| l.starts_with("cranelift")).expect("cranelift listed");
    assert!(cl.contains("[storage f32,f16,bf16; accumulation f32]"), "{cl}");
}

#[test]
fn demo() {
    let out = loglinear(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("loglinear_")).collect();
    // The demo runs every backend that can run here (cuda without a driver is left out).
    let runtime = loglinear::backends();
    let available: Vec<&str> = runtime.available().iter().map(|b| b.name()).collect();
    let n = 6 * available.len();
    assert_eq!(rows.len(), n, "{text}");
    assert!(rows.iter().all(|r| r.ends_with(" ok") && r.contains("1x100x2x16x24")), "{text}");
    for b in available {
        assert_eq!(rows.iter().filter(|r| r.contains(&format!(" {b} "))).count(), 6, "backend {b}: {text}");
    }
    assert!(text.contains(&format!("{n}/{n} ok, 0 FAIL")), "{text}");
    let out = loglinear(&["demo", "--t", "9", "--chunk-size", "4", "--include-linear", "--extra-levels", "2"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{0}/{0} ok", 2 * n)));
}

#[test]
fn run_writes_o_matching_the_oracle() {
    let reg = Registry::builtin();
    for name in ["loglinear_mamba2", "loglinear_gated_deltanet", "gla"] {
        let v = reg.get(name).unwrap();
        let x = inputs(name);
        let c = Case::with_inputs(&x);
        let want = loglinear::oracle::run(v, &x, Form::Naive).unwrap();
        for chunk in [None, Some("1"), Some("8"), Some("256")] {
            // The f64 reference explicitly: the default backend (cranelift) computes in f32.
            let mut extra: Vec<&str> = vec!["--backend", "reference"];
            extra.extend(chunk.map(|c| vec!["--chunk-size", c]).unwrap_or_default());
            let out = c.run(name, &extra);
            assert_eq!(out.status.code(), Some(0), "{name} {chunk:?}: {}", String::from_utf8_lossy(&out.stderr));
            assert!(out.stderr.is_empty(), "quiet at the default log level");
            let (dtype, o) = read_o(&c.output);
            assert_eq!(dtype, Dtype::F64);
            assert_eq!(o.shape, vec![1, 20, 2, 3]);
            let e = relative_error(&o, &want);
            assert!(e <= 1e-12, "{name} {chunk:?}: {e}");
        }
        let files = std::fs::read_dir(c.dir.path()).unwrap().count();
        assert_eq!(files, 2, "only the input and the output");
    }
}

#[test]
fn library_run_matches() {
    let reg = Registry::builtin();
    let v = reg.get("loglinear_deltanet").unwrap();
    let x = inputs("loglinear_deltanet");
    let o = loglinear::run(v, "reference", &x, Some(4)).unwrap();
    let want = loglinear::oracle::run(v, &x, Form::Naive).unwrap();
    assert!(relative_error(&o, &want) <= 1e-12);
    assert!(loglinear::run(v, "nope", &x, None).unwrap_err().to_string().contains("unknown backend `nope`"));
    assert!(loglinear::run(v, "reference", &x, Some(3)).unwrap_err().to_string().contains("--chunk-size 3"));
}

// ---------------------------------------------------------------------------------------------------------
// Dtypes.

/// Writes every input in `dtype` (v in `v_dtype`), runs, and checks `o`'s dtype and values against the oracle
/// on the rounded inputs.
fn dtype_case(dtype: Dtype, v_dtype: Dtype, tol: f64) {
    let name = "loglinear_gated_deltanet";
    let reg = Registry::builtin();
    let v = reg.get(name).unwrap();
    let x = inputs(name);
    let c = Case::new();
    let list: Vec<(&str, &HostTensor, Dtype)> =
        x.iter().map(|(n, t)| (n.as_str(), t, if n == "v" { v_dtype } else { dtype })).collect();
    write_file(&c.input, &list);
    let rounded: TensorMap = x
        .iter()
        .map(|(n, t)| {
            let d = if n == "v" { v_dtype } else { dtype };
            (n.clone(), HostTensor::new(t.shape.clone(), t.data.iter().map(|&e| round_trip(d, e)).collect()))
        })
        .collect();
    let want = loglinear::oracle::run(v, &rounded, Form::Naive).unwrap();
    let out = c.run(name, &["--backend", "reference", "--chunk-size", "4"]);
    assert_eq!(out.status.code(), Some(0), "{dtype}: {}", String::from_utf8_lossy(&out.stderr));
    let (got_dtype, o) = read_o(&c.output);
    assert_eq!(got_dtype, v_dtype, "o is written in v's dtype");
    let e = relative_error(&o, &want);
    assert!(e <= tol, "{dtype}/{v_dtype}: rel. error {e} > {tol}");
    assert!(e > 0.0 || v_dtype == Dtype::F64, "rounded to {v_dtype}, so not bit-exact");
}

#[test]
fn f32_input_gives_f32_output() {
    dtype_case(Dtype::F32, Dtype::F32, 1e-6);
}

#[test]
fn f16_input_accepted() {
    dtype_case(Dtype::F16, Dtype::F16, 2e-3);
}

#[test]
fn bf16_input_accepted() {
    dtype_case(Dtype::BF16, Dtype::BF16, 1.5e-2);
}

#[test]
fn mixed_dtypes_follow_v() {
    dtype_case(Dtype::F64, Dtype::F32, 1e-6);
    dtype_case(Dtype::F16, Dtype::F64, 1e-12);
}

#[test]
fn random_inputs_then_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.safetensors");
    let output = dir.path().join("o.safetensors");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    let out =
        loglinear(&["random", "--variant", "loglinear_gla", "--shape", "1,20,2,4,3", "--dtype", "bf16", "--output", i]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = loglinear(&["run", "--variant", "loglinear_gla", "--input", i, "--output", o]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (dtype, t) = read_o(&output);
    assert_eq!((dtype, t.shape), (Dtype::BF16, vec![1, 20, 2, 3]));
    let out = loglinear(&["random", "--variant", "loglinear_gla", "--shape", "1,0,2,4,3", "--output", o]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shape"));
    let out = loglinear(&["random", "--variant", "nope", "--shape", "1,2,2,4,3", "--output", o]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_writes_the_final_state_a_decoder_continues_from() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, state) =
        (dir.path().join("in.safetensors"), dir.path().join("o.safetensors"), dir.path().join("s.safetensors"));
    let reg = Registry::builtin();
    let v = reg.get("loglinear_gated_deltanet").unwrap();
    let x = random_inputs(v, (2, 37, 2, 4, 3), 1, 5);
    write_map(&input, &x, Dtype::F32);
    let (i, o, s) = (input.to_str().unwrap(), output.to_str().unwrap(), state.to_str().unwrap());
    for backend in ["reference", "cranelift"] {
        let out = loglinear(&[
            "run",
            "--variant",
            "loglinear_gated_deltanet",
            "--backend",
            backend,
            "--input",
            i,
            "--output",
            o,
            "--final-state",
            s,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let bytes = std::fs::read(&state).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names = st.names();
        names.sort();
        assert_eq!(names, vec!["position", "state"]);
        let pos = st.tensor("position").unwrap();
        assert_eq!((pos.dtype(), pos.shape()), (Dtype::I64, &[2usize][..]));
        let p: Vec<i64> = pos.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(p, vec![37, 37]);
        let sv = st.tensor("state").unwrap();
        assert_eq!((sv.dtype(), sv.shape()), (Dtype::F32, &[2usize, 2, 8, 4, 3][..]));
        let got: Vec<f64> =
            sv.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect();
        let xr: TensorMap = x
            .iter()
            .map(|(n, t)| {
                (n.clone(), HostTensor::new(t.shape.clone(), t.data.iter().map(|e| *e as f32 as f64).collect()))
            })
            .collect();
        let (_, want) = loglinear::oracle::run_with_state(v, &xr, 0, None, 8).unwrap();
        let scale = want.data.iter().fold(1.0f64, |m, e| m.max(e.abs()));
        let e = got.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
        assert!(e < 1e-4, "{backend}: state error {e:e}");
    }
    // The state path may not be the output path; nothing is written then.
    std::fs::remove_file(&output).unwrap();
    let out =
        loglinear(&["run", "--variant", "loglinear_gated_deltanet", "--input", i, "--output", o, "--final-state", o]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--final-state"));
    assert!(!output.exists());
}

#[test]
fn run_takes_a_packed_batch_with_cu_seqlens() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, state) =
        (dir.path().join("in.safetensors"), dir.path().join("o.safetensors"), dir.path().join("s.safetensors"));
    let reg = Registry::builtin();
    let v = reg.get("loglinear_mamba2").unwrap();
    let x = random_inputs(v, (1, 30, 2, 4, 3), 0, 5);
    let write = |cu: &[f64], dt: Dtype| {
        let cu = HostTensor::new(vec![cu.len()], cu.to_vec());
        let mut list: Vec<(&str, &HostTensor, Dtype)> = x.iter().map(|(n, t)| (n.as_str(), t, Dtype::F32)).collect();
        list.push(("cu_seqlens", &cu, dt));
        write_file(&input, &list);
    };
    write(&[0.0, 7.0, 30.0], Dtype::I64);
    let (i, o, s) = (input.to_str().unwrap(), output.to_str().unwrap(), state.to_str().unwrap());
    let out = loglinear(&["run", "--variant", "loglinear_mamba2", "--input", i, "--output", o, "--final-state", s]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, got) = read_o(&output);
    // Each sequence on its own, from position 0.
    let xr: TensorMap = x
        .iter()
        .map(|(n, t)| (n.clone(), HostTensor::new(t.shape.clone(), t.data.iter().map(|e| *e as f32 as f64).collect())))
        .collect();
    for (a, z) in [(0usize, 7usize), (7, 30)] {
        let sub: TensorMap = xr
            .iter()
            .map(|(n, t)| {
                let row: usize = t.shape[2..].iter().product();
                let mut sh = t.shape.clone();
                sh[1] = z - a;
                (n.clone(), HostTensor::new(sh, t.data[a * row..z * row].to_vec()))
            })
            .collect();
        let want = loglinear::oracle::run(v, &sub, Form::Naive).unwrap();
        let g = HostTensor::new(want.shape.clone(), got.data[a * 6..z * 6].to_vec());
        assert!(relative_error(&g, &want) < 1e-4, "sequence {a}..{z}");
    }
    std::fs::remove_file(&output).unwrap();
    for (cu, dt, what) in [
        (vec![0.0, 7.0, 29.0], Dtype::I64, "T = 30"),
        (vec![0.0, 7.0, 7.0, 30.0], Dtype::I64, "strictly increasing"),
        (vec![0.0, 7.0, 30.0], Dtype::F32, "I64"),
    ] {
        write(&cu, dt);
        let out = loglinear(&["run", "--variant", "loglinear_mamba2", "--input", i, "--output", o]);
        assert_eq!(out.status.code(), Some(2), "{what}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cu_seqlens") && err.contains(what), "{what}: {err}");
        assert!(!output.exists());
    }
}

#[test]
fn run_continues_from_an_initial_state() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let reg = Registry::builtin();
    let v = reg.get("loglinear_gated_deltanet").unwrap();
    let (t1, t2) = (37usize, 30usize);
    let x = random_inputs(v, (2, t1 + t2, 2, 4, 3), 0, 9);
    let part = |a: usize, z: usize| loglinear_testkit::time_rows(&x, a, z);
    write_map(&p("a.safetensors"), &part(0, t1), Dtype::F32);
    write_map(&p("b.safetensors"), &part(t1, t1 + t2), Dtype::F32);
    let s = |x: &str| p(x).to_str().unwrap().to_string();
    let run = |args: &[String]| {
        let mut all = vec!["run".to_string(), "--variant".into(), "loglinear_gated_deltanet".into()];
        all.extend(args.iter().cloned());
        let refs: Vec<&str> = all.iter().map(|a| a.as_str()).collect();
        loglinear(&refs)
    };
    let out = run(&[
        "--input".into(),
        s("a.safetensors"),
        "--output".into(),
        s("oa.safetensors"),
        "--final-state".into(),
        s("s1.safetensors"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&[
        "--input".into(),
        s("b.safetensors"),
        "--output".into(),
        s("ob.safetensors"),
        "--initial-state".into(),
        s("s1.safetensors"),
        "--final-state".into(),
        s("s2.safetensors"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, oa) = read_o(&p("oa.safetensors"));
    let (_, ob) = read_o(&p("ob.safetensors"));
    let xr: TensorMap = x
        .iter()
        .map(|(n, t)| (n.clone(), HostTensor::new(t.shape.clone(), t.data.iter().map(|e| *e as f32 as f64).collect())))
        .collect();
    let want = loglinear::oracle::run(v, &xr, Form::Naive).unwrap();
    let mut got = Vec::new();
    for b in 0..2 {
        got.extend_from_slice(&oa.data[b * t1 * 6..(b + 1) * t1 * 6]);
        got.extend_from_slice(&ob.data[b * t2 * 6..(b + 1) * t2 * 6]);
    }
    assert!(relative_error(&HostTensor::new(want.shape.clone(), got), &want) < 1e-4);
    // Bad initial states: exit 2 naming the problem, no output.
    write_map(&p("bad.safetensors"), &part(0, 1), Dtype::F32); // no `state` tensor
    std::fs::remove_file(p("ob.safetensors")).unwrap();
    let out = run(&[
        "--input".into(),
        s("b.safetensors"),
        "--output".into(),
        s("ob.safetensors"),
        "--initial-state".into(),
        s("bad.safetensors"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`state`"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!p("ob.safetensors").exists());
    // A state of another shape (from a K=4, V=3 run given to inputs with the same H but one sequence).
    write_map(
        &p("c.safetensors"),
        &{
            let mut m = part(t1, t1 + 3);
            for t in m.values_mut() {
                let row: usize = t.shape[1..].iter().product();
                t.data.truncate(row);
                t.shape[0] = 1;
            }
            m
        },
        Dtype::F32,
    );
    let out = run(&[
        "--input".into(),
        s("c.safetensors"),
        "--output".into(),
        s("ob.safetensors"),
        "--initial-state".into(),
        s("s1.safetensors"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("state"), "{}", String::from_utf8_lossy(&out.stderr));
}
