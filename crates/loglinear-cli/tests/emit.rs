//! `loglinear emit` through the real command line: refusals with exit code 2 (missing output directory, bad
//! shape, a build without a PTX compiler), and — with the `mlir` feature — PTX and a manifest for the programs the
//! `cuda` backend runs, named by fingerprint.

use loglinear::Registry;
use loglinear_cli::{main_with_args, EXIT_OK, EXIT_USAGE};

fn emit(args: &[&str]) -> i32 {
    let argv = ["loglinear", "emit"].iter().chain(args).map(|s| s.to_string()).collect::<Vec<_>>();
    main_with_args(Registry::builtin(), loglinear::backends(), argv)
}

#[test]
fn bad_arguments_exit_with_2() {
    let dir = std::env::temp_dir().join(format!("ll-emit-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let missing = dir.join("missing");
    for args in [
        &["--variant", "loglinear_mamba2", "--target", "ptx", "--out", missing.to_str().unwrap()][..],
        &["--variant", "loglinear_mamba2", "--target", "nope", "--out", d],
        &["--variant", "nope", "--target", "ptx", "--out", d],
        &["--variant", "loglinear_mamba2", "--target", "ptx", "--out", d, "--shape", "1,2,3"],
        &["--variant", "loglinear_mamba2", "--target", "ptx", "--out", d, "--decode-batch", "0"],
        &["--variant", "loglinear_mamba2", "--target", "ptx", "--out", d, "--config", "form=nope"],
        // A workgroup bigger than every WebGPU device runs.
        &["--variant", "loglinear_mamba2", "--target", "wgsl", "--out", d, "--config", "threads=1024"],
        &["--variant", "loglinear_mamba2", "--target", "spirv", "--out", d, "--config", "threads=512"],
    ] {
        assert_eq!(emit(args), EXIT_USAGE, "{args:?}");
    }
    assert!(!missing.exists());
    #[cfg(not(feature = "mlir"))]
    for target in ["ptx", "mlir"] {
        assert_eq!(emit(&["--variant", "loglinear_mamba2", "--target", target, "--out", d]), EXIT_USAGE);
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing written on refusal");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "mlir")]
#[test]
fn ptx_and_a_manifest_for_the_cuda_backend() {
    use loglinear::kernel::device::fingerprint;
    let dir = std::env::temp_dir().join(format!("ll-emit-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let shape = "2,300,2,16,8";
    assert_eq!(
        emit(&["--variant", "loglinear_mamba2", "--target", "ptx", "--out", d, "--shape", shape, "--chunk-size", "16"]),
        EXIT_OK
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let programs = manifest["programs"].as_array().unwrap();
    assert_eq!(programs.len(), 2);
    // The forward program is the one the cuda backend compiles for this shape: same fingerprint.
    let r = loglinear::backends();
    let b = r.get("cuda").unwrap();
    let v = Registry::builtin().get("loglinear_mamba2").unwrap().clone();
    let dims = loglinear::Dims { b: 2, t: 300, h: 2, k: 16, v: 8, l: loglinear::ir::level::num_levels(300) };
    let config = b.config_for(&v, &dims, &loglinear::RunOptions::with_chunk_size(Some(16))).unwrap();
    let p = b.program(&v, 16, 8, &config, false).unwrap();
    assert_eq!(programs[0]["fingerprint"], fingerprint(&p));
    for e in programs {
        let ptx = std::fs::read_to_string(dir.join(e["file"].as_str().unwrap())).unwrap();
        assert!(ptx.contains(".target sm_90"));
        for k in e["kernels"].as_array().unwrap() {
            assert!(ptx.contains(&format!(".entry {}(", k["entry"].as_str().unwrap())), "{k}");
        }
        assert!(dir.join(e["kernel_ir"].as_str().unwrap()).exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compile_prints_the_mlir_stages_only_in_an_mlir_build() {
    let argv = ["loglinear", "compile", "--variant", "loglinear_mamba2", "--shape", "1,64,1,8,4", "--mlir", "gpu"];
    let code = main_with_args(Registry::builtin(), loglinear::backends(), argv.iter().map(|s| s.to_string()));
    assert_eq!(code, if cfg!(feature = "mlir") { EXIT_OK } else { EXIT_USAGE });
    let bad = ["loglinear", "compile", "--variant", "loglinear_mamba2", "--mlir", "tpu"];
    assert_eq!(
        main_with_args(Registry::builtin(), loglinear::backends(), bad.iter().map(|s| s.to_string())),
        EXIT_USAGE
    );
}
