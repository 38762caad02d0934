//! Every kernel of every built-in (forward and decode-step programs, every scan form, decomposed and
//! specialised) translates to WGSL that naga parses and validates; snapshots of two variants' shaders; the
//! translator refuses programs it cannot map, naming why.

use std::path::PathBuf;

use loglinear_ir::builtins;
use loglinear_kernel::resources::{live_intervals, tile_arena, TileHome};
use loglinear_kernel::{DType, SizeEnv};
use loglinear_schedule::{compile_decomposed, compile_with, ScanForm, ScheduleConfig};
use loglinear_wgsl::{translate_kernel, translate_program, BindingRole, WgslError, WgslOptions};

#[test]
fn every_builtin_kernel_validates() {
    let mut n = 0;
    for v in builtins::all() {
        for (form, storage) in ScanForm::ALL.into_iter().zip([DType::F32, DType::F16, DType::BF16]) {
            let config = ScheduleConfig { form, storage, ..ScheduleConfig::with_chunk(16) };
            let c = compile_decomposed(&v, &config, Some((16, 8))).unwrap();
            // Default options, a tiny workgroup memory (tiles spill), an odd workgroup size.
            for opts in [
                WgslOptions::default(),
                WgslOptions { workgroup_size: 32, fast_memory: 1024, unroll: 1 },
                WgslOptions { workgroup_size: 96, fast_memory: 0, unroll: 8 },
            ] {
                for p in [&c.forward, &c.decode] {
                    let ks = translate_program(p, &opts).unwrap_or_else(|e| panic!("{} {form:?}: {e}", v.name));
                    assert_eq!(ks.len(), p.kernels.len());
                    for k in &ks {
                        assert!(k.source.contains("@compute") && k.bindings[0].role == BindingRole::Sizes);
                        assert!(k.workgroup_bytes <= opts.fast_memory, "{}: {} B", k.name, k.workgroup_bytes);
                        assert_eq!(k.spill > 0, k.bindings.iter().any(|b| b.role == BindingRole::Spill));
                        if opts.fast_memory == 0 {
                            assert_eq!(k.workgroup_bytes, 0);
                        }
                        n += 1;
                    }
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
        let text: String = translate_program(&c.forward, &WgslOptions::default())
            .unwrap()
            .iter()
            .map(|k| k.source.clone() + "\n")
            .collect();
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

/// The tile arena never lets two tiles that are live at once share memory, in either region.
#[test]
fn tiles_live_at_once_never_share_memory() {
    let mut checked = 0;
    for v in builtins::all() {
        let c = compile_decomposed(&v, &ScheduleConfig::with_chunk(16), Some((16, 8))).unwrap();
        for p in [&c.forward, &c.decode] {
            let env = SizeEnv::new(1, 1, 1, 16, 8, 1, 16, p.hierarchical);
            for k in &p.kernels {
                let iv = live_intervals(k, &env);
                for cap in [0, 300, 4096, usize::MAX / 8] {
                    let a = tile_arena(k, &env, cap);
                    assert!(a.fast <= cap);
                    for x in 0..iv.len() {
                        assert_eq!(iv[x].0.is_none(), a.homes[x] == TileHome::Unused);
                        for y in 0..x {
                            let (Some((xa, xz)), Some((ya, yz))) = (iv[x].0, iv[y].0) else { continue };
                            if xz < ya || yz < xa {
                                continue;
                            }
                            let region = |h: TileHome| match h {
                                TileHome::Fast(o) => (0, o),
                                TileHome::Spill(o) => (1, o),
                                TileHome::Unused => unreachable!(),
                            };
                            let ((rx, ox), (ry, oy)) = (region(a.homes[x]), region(a.homes[y]));
                            let disjoint = rx != ry || ox + iv[x].1 <= oy || oy + iv[y].1 <= ox;
                            assert!(disjoint, "{}: tiles {x} and {y} overlap at cap {cap}", k.name);
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn unmappable_programs_are_refused_by_name() {
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    // Not specialised.
    let c = compile_with(&v, &ScheduleConfig::with_chunk(16), None, None).unwrap();
    assert!(matches!(translate_kernel(&c.forward, 0, &WgslOptions::default()), Err(WgslError::NotSpecialised(_))));
    // Compound ops left (not decomposed).
    let c = compile_with(&v, &ScheduleConfig::with_chunk(16), Some((16, 8)), None).unwrap();
    match translate_kernel(&c.forward, 0, &WgslOptions::default()) {
        Err(e @ WgslError::Compound { .. }) => assert!(e.to_string().contains("decompose"), "{e}"),
        other => panic!("expected a compound-op error, got {other:?}"),
    }
}

#[test]
fn naga_rejects_broken_wgsl() {
    assert!(loglinear_wgsl::validate("@compute @workgroup_size(1) fn main() { let x: i32 = 1.5; }").is_err());
    assert!(loglinear_wgsl::validate("@compute @workgroup_size(1) fn main() { }").is_ok());
}

/// The loop count the runtime checks against a driver's limit: the streaming form's grows by the same amount per
/// chunk (at a fixed number of levels), and unrolling lowers it.
#[test]
fn loop_iterations_follow_the_schedule() {
    let v = builtins::all().into_iter().find(|v| v.name == "loglinear_gated_deltanet").unwrap();
    let env = |t: usize| SizeEnv::new(1, t, 1, 16, 8, 8, 16, true);
    let iters = |form: ScanForm, unroll: usize, t: usize| -> Vec<u64> {
        let config = ScheduleConfig { form, ..ScheduleConfig::with_chunk(16) };
        let c = compile_decomposed(&v, &config, Some((16, 8))).unwrap();
        let opts = WgslOptions { unroll, ..WgslOptions::default() };
        translate_program(&c.forward, &opts).unwrap().iter().map(|k| k.loop_iterations(&env(t))).collect()
    };
    // 5, 6 and 7 chunks: the same number of levels (3), one more chunk each.
    let (a, b, c) =
        (iters(ScanForm::Streaming, 1, 80), iters(ScanForm::Streaming, 1, 96), iters(ScanForm::Streaming, 1, 112));
    let scan = a.iter().zip(&b).position(|(x, y)| y > x).expect("a kernel that walks the chunks");
    assert_eq!(b[scan] - a[scan], c[scan] - b[scan], "streaming: {a:?} {b:?} {c:?}");
    let unrolled = iters(ScanForm::Streaming, 4, 96);
    assert!(unrolled[scan] > 0 && unrolled[scan] < b[scan], "unrolled {unrolled:?} vs {b:?}");
}
