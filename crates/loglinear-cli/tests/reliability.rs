//! Issue 8: no input or output path can destroy data, hang, or exhaust memory; no silent non-finite output.
//! Each case drives the real binary and checks: exit code 2, one `error:` line naming the culprit, no output
//! file, no partial file, the input untouched, in bounded time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use loglinear::random::random_inputs;
use loglinear::registry::Registry;
use loglinear::{write_safetensors_atomic, DType, HostTensor, TensorMap};

const BIN: &str = env!("CARGO_BIN_EXE_loglinear");

/// Waits for `child` at most `limit`; kills it and fails the test when it takes longer (a hang).
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("loglinear did not finish within {limit:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn loglinear(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loglinear");
    wait_bounded(child, Duration::from_secs(60))
}

fn run(variant: &str, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "--variant", variant, "--input", input.to_str().unwrap()];
    args.extend(["--output", output.to_str().unwrap()]);
    args.extend_from_slice(extra);
    loglinear(&args)
}

fn inputs(variant: &str) -> TensorMap {
    random_inputs(Registry::builtin().get(variant).unwrap(), (1, 20, 2, 4, 3), 0, 7)
}

fn write_inputs(path: &Path, map: &TensorMap, dtype: DType) {
    let list: Vec<(&str, &HostTensor, DType)> = map.iter().map(|(n, t)| (n.as_str(), t, dtype)).collect();
    write_safetensors_atomic(path, &list).unwrap();
}

/// Asserts exit code 2 and exactly one `error:` line containing every key.
fn expect_error(out: &Output, keys: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one stderr line: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for k in keys {
        assert!(lines[0].contains(k), "stderr lacks {k:?}: {err}");
    }
    err
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

struct Scene {
    dir: tempfile::TempDir,
    input: PathBuf,
    bytes: Vec<u8>,
}

impl Scene {
    fn new(variant: &str) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.safetensors");
        write_inputs(&input, &inputs(variant), DType::F32);
        let bytes = std::fs::read(&input).unwrap();
        Scene { dir, input, bytes }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn input_untouched(&self) {
        assert_eq!(std::fs::read(&self.input).unwrap(), self.bytes, "the input file was changed");
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mknod_char(path: &Path, major: u32, minor: u32) -> bool {
    Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success(), "mkfifo");
}

// ---------------------------------------------------------------------------------------------------------
// 1. Outputs

#[test]
fn output_device_node_is_refused_not_replaced() {
    if !is_root() {
        eprintln!("skipped: creating a device node needs root");
        return;
    }
    let s = Scene::new("loglinear_mamba2");
    let null = s.path("null");
    assert!(mknod_char(&null, 1, 3), "mknod");
    let out = run("loglinear_mamba2", &s.input, &null, &[]);
    expect_error(&out, &["null", "character device", "refusing to replace"]);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&null).unwrap().file_type().is_char_device(), "still a device node");
    assert_eq!(listing(s.dir.path()), ["in.safetensors", "null"]);
    s.input_untouched();
}

#[test]
fn output_fifo_socket_and_directory_are_refused() {
    let s = Scene::new("loglinear_mamba2");
    let fifo = s.path("fifo");
    mkfifo(&fifo);
    expect_error(&run("loglinear_mamba2", &s.input, &fifo, &[]), &["fifo", "FIFO", "refusing"]);
    let sock = s.path("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    expect_error(&run("loglinear_mamba2", &s.input, &sock, &[]), &["sock", "socket", "refusing"]);
    let dir = s.path("adir");
    std::fs::create_dir(&dir).unwrap();
    expect_error(&run("loglinear_mamba2", &s.input, &dir, &[]), &["adir", "directory"]);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(std::fs::symlink_metadata(&sock).unwrap().file_type().is_socket());
    assert_eq!(listing(s.dir.path()), ["adir", "fifo", "in.safetensors", "sock"]);
    s.input_untouched();
}

#[test]
fn output_that_is_the_input_is_refused() {
    let s = Scene::new("loglinear_mamba2");
    expect_error(&run("loglinear_mamba2", &s.input, &s.input, &[]), &["in.safetensors", "same file as the input"]);
    // `./x` against `x`, from the input's directory.
    let out = Command::new(BIN)
        .current_dir(s.dir.path())
        .args(["run", "--variant", "loglinear_mamba2", "--input", "in.safetensors", "--output", "./in.safetensors"])
        .output()
        .unwrap();
    expect_error(&out, &["same file"]);
    let hard = s.path("hard.safetensors");
    std::fs::hard_link(&s.input, &hard).unwrap();
    expect_error(&run("loglinear_mamba2", &s.input, &hard, &[]), &["hard.safetensors", "same file"]);
    let soft = s.path("soft.safetensors");
    std::os::unix::fs::symlink(&s.input, &soft).unwrap();
    expect_error(&run("loglinear_mamba2", &s.input, &soft, &[]), &["soft.safetensors", "same file"]);
    // and reading through the link while writing the original
    expect_error(&run("loglinear_mamba2", &soft, &s.input, &[]), &["same file"]);
    s.input_untouched();
    assert_eq!(listing(s.dir.path()), ["hard.safetensors", "in.safetensors", "soft.safetensors"]);
}

#[test]
fn output_through_a_symlink_writes_its_target_and_leaves_no_partial() {
    let s = Scene::new("loglinear_mamba2");
    let target = s.path("target.safetensors");
    std::fs::write(&target, b"old").unwrap();
    let link = s.path("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = run("loglinear_mamba2", &s.input, &link, &["--backend", "reference"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(loglinear::read_safetensors(&target).unwrap().get("o").is_some());
    assert_eq!(listing(s.dir.path()), ["in.safetensors", "link.safetensors", "target.safetensors"]);
}

#[test]
fn killed_run_leaves_no_partial_file() {
    // A run long enough to be interrupted (the f64 reference at T = 20000), stopped by SIGTERM and SIGINT.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let x = random_inputs(Registry::builtin().get("loglinear_gated_deltanet").unwrap(), (1, 20000, 4, 32, 32), 0, 1);
    write_inputs(&input, &x, DType::F32);
    for signal in ["TERM", "INT"] {
        let output = dir.path().join("out.safetensors");
        let child = Command::new(BIN)
            .args(["run", "--variant", "loglinear_gated_deltanet", "--backend", "reference"])
            .args(["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        let pid = child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
        let out = wait_bounded(child, Duration::from_secs(30));
        assert_ne!(out.status.code(), Some(0), "SIG{signal}: the run must not report success");
        assert_eq!(listing(dir.path()), ["in.safetensors"], "SIG{signal}: nothing left behind");
    }
}

#[test]
fn help_says_what_a_leftover_partial_file_is() {
    let out = loglinear(&["run", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(".loglinear-partial") && text.contains("leftover"), "{text}");
    assert!(text.contains("--allow-nonfinite"), "{text}");
}

// ---------------------------------------------------------------------------------------------------------
// 2. Inputs

#[test]
fn input_fifo_without_writer_is_refused_at_once() {
    let s = Scene::new("loglinear_mamba2");
    let fifo = s.path("in.fifo");
    mkfifo(&fifo);
    let out_path = s.path("out.safetensors");
    let start = Instant::now();
    let out = run("loglinear_mamba2", &fifo, &out_path, &[]);
    expect_error(&out, &["in.fifo", "FIFO"]);
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(!out_path.exists());
}

#[test]
fn input_device_is_refused_without_reading() {
    if !is_root() {
        eprintln!("skipped: creating a device node needs root");
        return;
    }
    let s = Scene::new("loglinear_mamba2");
    let zero = s.path("zero");
    assert!(mknod_char(&zero, 1, 5), "mknod");
    let out_path = s.path("out.safetensors");
    expect_error(&run("loglinear_mamba2", &zero, &out_path, &[]), &["zero", "character device"]);
    assert!(!out_path.exists());
}

/// A file with `header` as its JSON and `data` after it.
fn raw_file(path: &Path, header: &str, data: &[u8]) {
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header.as_bytes());
    f.extend_from_slice(data);
    std::fs::write(path, f).unwrap();
}

#[test]
fn lying_headers_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let output = dir.path().join("out.safetensors");
    let cases: &[(&str, usize, &[&str])] = &[
        (
            r#"{"q":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"q":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            8,
            &["duplicate tensor name `q`"],
        ),
        (
            r#"{"k":{"dtype":"F32","shape":[1,20,2,4],"data_offsets":[0,600]}}"#,
            600,
            &["tensor `k`", "[1, 20, 2, 4]", "F32", "bytes 0..600", "needs 640 bytes"],
        ),
        (
            r#"{"v":{"dtype":"BF16","shape":[1000000000,1000000000],"data_offsets":[0,8]}}"#,
            8,
            &["tensor `v`", "BF16", "needs 2000000000000000000 bytes"],
        ),
    ];
    for (header, n, keys) in cases {
        raw_file(&input, header, &vec![0u8; *n]);
        let out = run("loglinear_mamba2", &input, &output, &[]);
        expect_error(&out, keys);
        assert!(!output.exists());
    }
    // a header length far beyond the file and beyond 100 MB
    let mut f = (1u64 << 40).to_le_bytes().to_vec();
    f.extend_from_slice(b"{}");
    std::fs::write(&input, &f).unwrap();
    expect_error(&run("loglinear_mamba2", &input, &output, &[]), &["in.safetensors", "header claims"]);
    assert_eq!(listing(dir.path()), ["in.safetensors"]);
}

// ---------------------------------------------------------------------------------------------------------
// 3. Non-finite outputs

fn scaled(variant: &str, factor: f64) -> TensorMap {
    let mut x = inputs(variant);
    for name in ["q", "k", "v"] {
        x.get_mut(name).unwrap().data.iter_mut().for_each(|e| *e *= factor);
    }
    x
}

#[test]
fn overflowing_output_is_an_error_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.safetensors");
    // F32 inputs ×1e15 on the f64 reference: o ≈ 1e45 does not fit F32.
    let input = dir.path().join("f32.safetensors");
    write_inputs(&input, &scaled("loglinear_mamba2", 1e15), DType::F32);
    let out = run("loglinear_mamba2", &input, &output, &["--backend", "reference"]);
    expect_error(&out, &["o[0,", "not finite in F32", "largest input magnitude", "--allow-nonfinite"]);
    assert!(!output.exists());
    let out = run("loglinear_mamba2", &input, &output, &["--backend", "reference", "--allow-nonfinite"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let o = loglinear::read_safetensors(&output).unwrap();
    assert!(o.get("o").unwrap().tensor.data.iter().any(|x| !x.is_finite()));
    std::fs::remove_file(&output).unwrap();
    // F64 inputs ×1e25 on cranelift (f32 compute).
    let input = dir.path().join("f64.safetensors");
    write_inputs(&input, &scaled("loglinear_mamba2", 1e25), DType::F64);
    let out = run("loglinear_mamba2", &input, &output, &["--backend", "cranelift"]);
    expect_error(&out, &["o[0,", "not finite in F64", "e25"]);
    assert_eq!(listing(dir.path()), ["f32.safetensors", "f64.safetensors"]);
}

#[test]
fn library_run_returns_the_non_finite_error() {
    let x = scaled("loglinear_mamba2", 1e25);
    let v = Registry::builtin().get("loglinear_mamba2").unwrap().clone();
    let e = loglinear::run(&v, "cranelift", &x, None).unwrap_err();
    assert!(matches!(e, loglinear::RuntimeError::NonFiniteOutput { .. }), "{e}");
    assert!(e.is_user_error() && e.to_string().contains("o[0,"), "{e}");
    assert!(loglinear::run(&v, "cranelift", &scaled("loglinear_mamba2", 1.0), None).is_ok());
}
