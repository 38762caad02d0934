//! `--backend cuda` on a machine without an NVIDIA driver: `run` is a usage error (exit code 2, one `error:`
//! line naming the missing driver, no output file) and `backends` lists it as unavailable with the reason. On a
//! machine with a driver these checks are skipped (the facade's `tests/cuda.rs` covers the GPU).

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_loglinear");

fn loglinear(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LOGLINEAR_CUDA_KERNELS")
        .env_remove("LOGLINEAR_CUDA_PREPARE")
        .output()
        .expect("spawn loglinear")
}

/// Why the cuda backend is unavailable here, when the reason is a missing driver.
fn no_driver() -> Option<String> {
    match loglinear::backends().get("cuda").expect("cuda is registered").availability() {
        Err(why) if why.contains("no CUDA driver") => Some(why),
        other => {
            eprintln!("skip: this machine has a CUDA driver ({other:?})");
            None
        }
    }
}

#[test]
fn run_on_cuda_without_a_driver_is_a_usage_error() {
    if no_driver().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let output = dir.path().join("out.safetensors");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    let made = loglinear(&["random", "--variant", "loglinear_mamba2", "--shape", "1,20,2,4,3", "--output", i]);
    assert_eq!(made.status.code(), Some(0), "{}", String::from_utf8_lossy(&made.stderr));
    for extra in [&[][..], &["--kernels", dir.path().to_str().unwrap()][..]] {
        let mut args = vec!["run", "--variant", "loglinear_mamba2", "--input", i, "--output", o, "--backend", "cuda"];
        args.extend_from_slice(extra);
        let out = loglinear(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.contains("XDG_RUNTIME_DIR")).collect();
        assert_eq!(lines.len(), 1, "one stderr line: {err}");
        assert!(lines[0].starts_with("error: ") && lines[0].contains("no CUDA driver"), "{err}");
        assert!(lines[0].contains("backend `cuda`"), "{err}");
        assert!(out.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&out.stdout));
        assert!(!output.exists(), "no output file may be written");
    }
}

#[test]
fn backends_lists_cuda_as_unavailable_with_the_reason() {
    if no_driver().is_none() {
        return;
    }
    let out = loglinear(&["backends"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().skip_while(|l| !l.starts_with("cuda "));
    let head = lines.next().unwrap_or_else(|| panic!("cuda listed: {text}"));
    assert!(head.contains("[storage f32,f16,bf16; accumulation f32]"), "{head}");
    let state = lines.next().unwrap_or_default();
    assert!(state.contains("unavailable: no CUDA driver"), "{text}");
}
