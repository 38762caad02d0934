//! `loglinear emit --target object` used by programs that know nothing of loglinear's Rust code: a C program
//! (`tests/emit_object/mamba2.c`, compiled with `cc` against the emitted header and objects) runs the forward
//! program and then decode steps from its final state; a Python script (`tests/emit_object/forward.py`, ctypes
//! and numpy) loads a shared library linked from the object and runs the forward program from `manifest.json`
//! (its sizes from the manifest's formulas). Both match the f64 oracle on the same f32 inputs. `docs/EMIT.md`
//! quotes both programs verbatim. A missing `cc`, `python3` or numpy skips a test with a note, except under
//! `LOGLINEAR_REQUIRE_CONSUMERS=1` (set by `scripts/test-all.sh`, so CI cannot skip them), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use loglinear::random::random_inputs;
use loglinear::{HostTensor, Registry, TensorMap};
use loglinear_cli::{main_with_args, EXIT_OK, EXIT_USAGE};

/// Norm-relative tolerance of the f32 kernels against the f64 oracle.
const TOLERANCE: f64 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emit_object").join(name)
}

/// Whether `tool args` runs; prints why the test is skipped when it does not, or fails the test when
/// `LOGLINEAR_REQUIRE_CONSUMERS=1`.
fn have_with(tool: &str, args: &[&str]) -> bool {
    let ok = Command::new(tool).args(args).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        let what = format!("`{tool} {}` does not run", args.join(" "));
        assert!(std::env::var("LOGLINEAR_REQUIRE_CONSUMERS").is_err(), "{what} (LOGLINEAR_REQUIRE_CONSUMERS is set)");
        eprintln!("note: {what}: skipping this consumer test (CI runs it)");
    }
    ok
}

/// Whether `tool --version` runs (see [`have_with`]).
fn have(tool: &str) -> bool {
    have_with(tool, &["--version"])
}

fn emit(args: &[&str]) -> i32 {
    let argv = ["loglinear", "emit"].iter().chain(args).map(|s| s.to_string()).collect::<Vec<_>>();
    main_with_args(Registry::builtin(), loglinear::backends(), argv)
}

/// The object code generators of this build: Cranelift, and MLIR/LLVM with the `mlir` feature. Every consumer
/// test runs on each.
fn codegens() -> Vec<&'static str> {
    if cfg!(feature = "mlir") {
        vec!["cranelift", "mlir"]
    } else {
        vec!["cranelift"]
    }
}

/// Emits `variant` for `shape` into `dir` with `codegen` and returns the manifest.
fn emit_object(variant: &str, shape: &str, chunk: &str, dir: &Path, codegen: &str) -> serde_json::Value {
    let d = dir.to_str().unwrap();
    let code = emit(&[
        "--target",
        "object",
        "--codegen",
        codegen,
        "--variant",
        variant,
        "--shape",
        shape,
        "--chunk-size",
        chunk,
        "--out",
        d,
    ]);
    assert_eq!(code, EXIT_OK, "emit {variant} ({codegen})");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["codegen"], codegen);
    m
}

/// Random inputs rounded to f32 (what the kernels see), and the oracle's output on them.
fn inputs_and_reference(variant: &str, dims: (usize, usize, usize, usize, usize)) -> (TensorMap, HostTensor) {
    let v = Registry::builtin().get(variant).unwrap().clone();
    let mut inputs = random_inputs(&v, dims, 0, 7);
    for t in inputs.values_mut() {
        t.data.iter_mut().for_each(|x| *x = *x as f32 as f64);
    }
    let reference = loglinear::run(&v, "reference", &inputs, None).unwrap();
    (inputs, reference)
}

/// Writes every input as `dir/<name>.f32` (f32, little-endian).
fn write_inputs(dir: &Path, inputs: &TensorMap) {
    for (name, t) in inputs {
        let bytes: Vec<u8> = t.data.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
        std::fs::write(dir.join(format!("{name}.f32")), bytes).unwrap();
    }
}

fn read_f32(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect()
}

/// λ levels of the inputs (1 without λ, as the sizes count them).
fn levels(inputs: &TensorMap) -> usize {
    inputs.get("lam").map_or(1, |t| *t.shape.last().unwrap())
}

fn check_close(what: &str, got: &[f64], want: &[f64]) {
    let x = HostTensor::new(vec![got.len()], got.to_vec());
    let r = HostTensor::new(vec![want.len()], want.to_vec());
    let e = loglinear::relative_error(&x, &r);
    assert!(e <= TOLERANCE, "{what}: relative error {e:.3e} > {TOLERANCE:e}");
    eprintln!("{what}: relative error {e:.2e}");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `files` of a manifest's program: its object and its header.
fn object_and_header(program: &serde_json::Value) -> (String, String) {
    let files: Vec<&str> = program["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    let fp = program["fingerprint"].as_str().unwrap();
    assert_eq!(files, [format!("{fp}.o"), format!("{fp}.h")]);
    (files[0].to_string(), files[1].to_string())
}

#[test]
fn manifest_and_header_describe_the_object() {
    for codegen in codegens() {
        manifest_and_header_describe_the_object_with(codegen);
    }
}

fn manifest_and_header_describe_the_object_with(codegen: &str) {
    let dir = tempfile::tempdir().unwrap();
    let m = emit_object("loglinear_mamba2", "1,37,2,8,4", "8", dir.path(), codegen);
    assert_eq!(m["target"], "object");
    assert_eq!(m["sizes"], serde_json::json!(["B", "T", "H", "K", "V", "L", "NT", "C", "M", "MS", "LC", "t"]));
    let programs = m["programs"].as_array().unwrap();
    assert_eq!(programs.len(), 2);
    for (p, role) in programs.iter().zip(["forward", "decode_step"]) {
        assert_eq!(p["role"], role);
        let (obj, h) = object_and_header(p);
        let header = std::fs::read_to_string(dir.path().join(&h)).unwrap();
        let object = std::fs::read(dir.path().join(&obj)).unwrap();
        assert_eq!(&object[..4], b"\x7fELF");
        let prog = p["program"].as_str().unwrap().replace('.', "_");
        for k in p["kernels"].as_array().unwrap() {
            let entry = k["entry"].as_str().unwrap();
            assert!(entry.starts_with(&format!("ll_{}_k", p["fingerprint"].as_str().unwrap())), "{entry}");
            assert!(header.contains(&format!("void {entry}(float *const *bufs")), "{entry} not declared");
            assert!(k["scratch_floats"].as_u64().unwrap() > 0);
            assert!(!k["grid"].as_array().unwrap().is_empty());
        }
        for helper in ["sizes", "buffer_len", "buffer_name", "buffer_kind", "must_zero", "alloc", "free", "run"] {
            assert!(header.contains(&format!("{prog}_{helper}(")), "{prog}_{helper} missing from {h}");
        }
        // Cranelift's code calls nothing; LLVM's calls libm (`expf`) and libc, which `-lm` links.
        let imports: Vec<&str> = m["imports"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        if codegen == "cranelift" {
            assert!(header.contains("Symbols it imports: none."), "the object imports nothing");
            assert!(imports.is_empty());
        } else {
            assert!(imports.iter().all(|s| ["expf", "logf", "log1pf", "memset", "memcpy"].contains(s)), "{imports:?}");
            assert!(header.contains(&format!("Symbols it imports: {}.", imports.join(", "))), "{header}");
        }
        assert!(header.contains(&format!("code by {codegen}")));
    }
}

#[test]
fn c_program_runs_the_forward_program_then_decode_steps() {
    if !have("cc") {
        return;
    }
    for codegen in codegens() {
        c_program_with(codegen);
    }
}

fn c_program_with(codegen: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = emit_object("loglinear_mamba2", "1,37,2,8,4", "8", d, codegen);
    let programs = m["programs"].as_array().unwrap();
    let (fwd_o, fwd_h) = object_and_header(&programs[0]);
    let (dec_o, dec_h) = object_and_header(&programs[1]);
    std::fs::copy(fixture("mamba2.c"), d.join("mamba2.c")).unwrap();
    // Single-threaded, and with the forward program on 3 POSIX threads (`_run_threads`).
    for (exe, threads) in [("mamba2", false), ("mamba2_threads", true)] {
        let mut cc = Command::new("cc");
        cc.current_dir(d)
            .args(["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"])
            .arg(format!("-DFORWARD_H=\"{fwd_h}\""))
            .arg(format!("-DDECODE_H=\"{dec_h}\""));
        if threads {
            cc.args(["-DLOGLINEAR_THREADS", "-pthread"]);
        }
        run(cc.args(["mamba2.c", &fwd_o, &dec_o, "-lm", "-o", exe]));
        c_program_runs(d, exe, codegen);
    }
}

fn c_program_runs(d: &Path, exe: &str, codegen: &str) {
    let (t0, t) = (37, 41);
    // One sequence (the emitted shape) and two: the programs serve any B, T, H and λ depth.
    for b in [1, 2] {
        // Inputs for all T tokens: the forward program takes the first T0, decode steps the rest.
        let (inputs, reference) = inputs_and_reference("loglinear_mamba2", (b, t, 2, 8, 4));
        write_inputs(d, &inputs);
        let l = levels(&inputs).to_string();
        run(Command::new(d.join(exe)).args([&b.to_string(), &t.to_string(), "2", &l, &t0.to_string()]).arg(d));
        let o = read_f32(&d.join("o.f32"));
        assert_eq!(o.len(), reference.data.len());
        let row = 2 * 4;
        for s in 0..b {
            let fwd = s * t * row..(s * t + t0) * row;
            check_close(
                &format!("C forward ({codegen}, {exe}), B={b}, sequence {s}"),
                &o[fwd.clone()],
                &reference.data[fwd],
            );
            for p in t0..t {
                let r = (s * t + p) * row..(s * t + p + 1) * row;
                let what = format!("C decode step ({codegen}, {exe}), B={b}, sequence {s}, position {p}");
                check_close(&what, &o[r.clone()], &reference.data[r]);
            }
        }
    }
}

#[test]
fn python_script_runs_the_forward_program_through_ctypes() {
    // The first Python with numpy: `python3` on the path, else the system's (Debian's python3-numpy, which
    // scripts/test-all.sh installs, lives there when another python3 comes first on the path).
    let python = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Command::new(p).args(["-c", "import numpy"]).output().map(|o| o.status.success()).unwrap_or(false));
    if !have("cc") || !have_with(python.unwrap_or("python3"), &["-c", "import numpy"]) {
        return;
    }
    let python = python.expect("checked");
    // The example's variant, a delta-rule one (WY solve) and a linear one (no λ, M = MS = LC = 1).
    for (variant, shape, dims) in [
        ("loglinear_mamba2", "1,37,2,8,4", (1, 37, 2, 8, 4)),
        ("loglinear_gated_deltanet", "2,45,2,8,8", (2, 45, 2, 8, 8)),
        ("gla", "1,29,3,8,4", (1, 29, 3, 8, 4)),
    ] {
        for codegen in codegens() {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let m = emit_object(variant, shape, "8", d, codegen);
            let (obj, _) = object_and_header(&m["programs"][0]);
            let (inputs, reference) = inputs_and_reference(variant, dims);
            write_inputs(d, &inputs);
            run(Command::new("cc").current_dir(d).args(["-shared", "-o", "lib.so", &obj, "-lm"]));
            let (b, t, h, _, _) = dims;
            run(Command::new(python).arg(fixture("forward.py")).arg(d).arg(d.join("lib.so")).args([
                b.to_string(),
                t.to_string(),
                h.to_string(),
                levels(&inputs).to_string(),
            ]));
            check_close(
                &format!("Python forward, {variant} ({codegen})"),
                &read_f32(&d.join("o.f32")),
                &reference.data,
            );
        }
    }
}

#[test]
fn refusals_exit_with_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let missing = dir.path().join("missing");
    for args in [
        &["--variant", "loglinear_mamba2", "--target", "object", "--out", missing.to_str().unwrap()][..],
        &["--variant", "nope", "--target", "object", "--out", d],
        &["--variant", "loglinear_mamba2", "--target", "object", "--out", d, "--shape", "1,2,3"],
        &["--variant", "loglinear_mamba2", "--target", "object", "--out", d, "--chunk-size", "3"],
        &["--variant", "loglinear_mamba2", "--target", "object", "--out", d, "--config", "storage=f64"],
        &["--variant", "loglinear_mamba2", "--target", "wgsl", "--codegen", "mlir", "--out", d],
        &["--variant", "loglinear_mamba2", "--target", "object", "--codegen", "llvm", "--out", d],
    ] {
        assert_eq!(emit(args), EXIT_USAGE, "{args:?}");
    }
    if !cfg!(feature = "mlir") {
        // A build without MLIR refuses its code generator.
        assert_eq!(
            emit(&["--variant", "loglinear_mamba2", "--target", "object", "--codegen", "mlir", "--out", d]),
            EXIT_USAGE
        );
    }
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written on refusal");
}

#[test]
fn emit_md_quotes_the_consumer_programs_verbatim() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/EMIT.md")).unwrap();
    for name in ["mamba2.c", "forward.py", "../emit_ptx/forward_torch.py"] {
        let text = std::fs::read_to_string(fixture(name)).unwrap();
        assert!(doc.contains(text.trim_end()), "docs/EMIT.md does not quote tests/emit_object/{name} verbatim");
    }
}
