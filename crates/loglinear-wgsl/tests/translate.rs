//! Every kernel of every built-in (forward and decode-step programs, every scan form, decomposed and
//! specialised) translates to WGSL that naga parses and validates; snapshots of two variants' shaders; the
//! translator refuses programs it cannot map, naming why.

use std::path::PathBuf;

use loglinear_ir::builtins;
use loglinear_schedule::{compile_decomposed, compile_with, ScanForm, ScheduleConfig};
use loglinear_wgsl::{translate_kernel, translate_program, WgslError};

#[test]
fn every_builtin_kernel_validates() {
    let mut n = 0;
    for v in builtins::all() {
        for form in ScanForm::ALL {
            let c = compile_decomposed(&v, &ScheduleConfig { form, ..ScheduleConfig::with_chunk(16) }, Some((16, 8)))
                .unwrap();
            for p in [&c.forward, &c.decode] {
                let ks = translate_program(p).unwrap_or_else(|e| panic!("{} {form:?}: {e}", v.name));
                assert_eq!(ks.len(), p.kernels.len());
                for k in &ks {
                    assert!(k.source.contains("@compute") && k.bindings[0].buffer.is_none());
                    n += 1;
                }
            }
        }
    }
    assert!(n > 100, "{n} kernels");
}

#[test]
fn snapshots_of_two_variants() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    for name in ["loglinear_mamba2", "loglinear_gated_deltanet"] {
        let v = builtins::by_name(name).unwrap();
        let c = compile_decomposed(&v, &ScheduleConfig::with_chunk(16), Some((16, 8))).unwrap();
        let text: String = translate_program(&c.forward).unwrap().iter().map(|k| k.source.clone() + "\n").collect();
        let path = dir.join(format!("{name}.forward.wgsl"));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 records it)", path.display()));
        assert!(want == text, "{name}: the generated WGSL changed; review and re-record with UPDATE_SNAPSHOTS=1");
    }
}

#[test]
fn unmappable_programs_are_refused_by_name() {
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    // Not specialised.
    let c = compile_with(&v, &ScheduleConfig::with_chunk(16), None, None).unwrap();
    assert!(matches!(translate_kernel(&c.forward, 0), Err(WgslError::NotSpecialised(_))));
    // Compound ops left (not decomposed).
    let c = compile_with(&v, &ScheduleConfig::with_chunk(16), Some((16, 8)), None).unwrap();
    match translate_kernel(&c.forward, 0) {
        Err(e @ WgslError::Compound { .. }) => assert!(e.to_string().contains("decompose"), "{e}"),
        other => panic!("expected a compound-op error, got {other:?}"),
    }
}

#[test]
fn naga_rejects_broken_wgsl() {
    assert!(loglinear_wgsl::validate("@compute @workgroup_size(1) fn main() { let x: i32 = 1.5; }").is_err());
    assert!(loglinear_wgsl::validate("@compute @workgroup_size(1) fn main() { }").is_ok());
}
