//! The shared kernel-IR analyses of `loglinear-kernel` on real lowered programs: triangular structure, tiles
//! whose upper part is never observed, loop-carried tiles and the resource model.

use loglinear_kernel::analysis::{loop_carried, upper_structure, upper_unobserved, Upper};
use loglinear_schedule::kernel::Dim;
use loglinear_schedule::{compile_with, ScheduleConfig};

fn lit(d: Dim) -> usize {
    match d {
        Dim::Lit(n) => n,
        Dim::Sym(s) => panic!("tile dimension {s:?} is not literal after specialisation"),
    }
}

fn structure(name: &str) -> Vec<(String, Upper)> {
    let v = loglinear_ir::builtins::by_name(name).unwrap();
    let c = compile_with(&v, &ScheduleConfig::with_chunk(16), Some((8, 8)), None).unwrap();
    let k = &c.forward.kernels[0];
    let shapes: Vec<(usize, usize)> = k.tiles.iter().map(|t| (lit(t.shape[0]), lit(t.shape[1]))).collect();
    let st = upper_structure(k, &shapes);
    k.tiles.iter().zip(st).map(|(t, u)| (t.name.clone(), u)).collect()
}

fn get(s: &[(String, Upper)], n: &str) -> Upper {
    s.iter().find(|(x, _)| x == n).map(|(_, u)| *u).unwrap_or_else(|| panic!("no tile {n}"))
}

#[test]
fn lower_triangular_tiles_are_found_from_ops() {
    let s = structure("loglinear_mamba2");
    assert_eq!(get(&s, "gdiff"), Upper::NegInf);
    assert_eq!(get(&s, "Gamma"), Upper::Zero);
    assert_eq!(get(&s, "P"), Upper::Zero);
    assert_eq!(get(&s, "qk"), Upper::Any);
    let s = structure("loglinear_gated_deltanet");
    assert_eq!(get(&s, "Tw"), Upper::Zero);
    assert_eq!(get(&s, "qk"), Upper::Zero);
    assert_eq!(get(&s, "kk"), Upper::Any);
    assert_eq!(get(&s, "W"), Upper::Any);
}

#[test]
fn tiles_read_only_under_a_lower_mask_are_found() {
    for (name, qk_unobserved) in [("loglinear_mamba2", true), ("mamba2", true), ("loglinear_gated_deltanet", false)] {
        let v = loglinear_ir::builtins::by_name(name).unwrap();
        let c = compile_with(&v, &ScheduleConfig::with_chunk(16), Some((8, 8)), None).unwrap();
        let k = &c.forward.kernels[0];
        let shapes: Vec<(usize, usize)> = k.tiles.iter().map(|t| (lit(t.shape[0]), lit(t.shape[1]))).collect();
        let un = upper_unobserved(k, &shapes, &upper_structure(k, &shapes));
        let got: Vec<&str> = k.tiles.iter().zip(&un).filter(|(_, u)| **u).map(|(t, _)| t.name.as_str()).collect();
        assert_eq!(got.contains(&"qk"), qk_unobserved, "{name}: {got:?}");
    }
}

#[test]
fn the_fused_scan_carries_its_output_tile_across_the_level_loop() {
    let v = loglinear_ir::builtins::by_name("loglinear_mamba2").unwrap();
    let c = compile_with(
        &v,
        &ScheduleConfig { form: loglinear_schedule::ScanForm::Fused, ..ScheduleConfig::with_chunk(16) },
        Some((8, 8)),
        None,
    )
    .unwrap();
    let k = c.forward.kernels.iter().find(|k| k.name == "fused_scan").expect("a fused scan kernel");
    let carried = loop_carried(k);
    assert!(!carried.is_empty(), "the scan has loops");
    let names: Vec<Vec<&str>> =
        carried.iter().map(|c| c.tiles.iter().map(|t| k.tiles[t.0 as usize].name.as_str()).collect()).collect();
    // The chunk loop carries nothing but what it reloads; the level loop accumulates into `o`.
    assert!(names.iter().any(|n| n.contains(&"o")), "{names:?}");
}

#[test]
fn tiles_are_literal_and_within_a_budget_after_specialisation() {
    use loglinear_kernel::resources::{check_budget, program_resources};
    let v = loglinear_ir::builtins::by_name("loglinear_gated_deltanet").unwrap();
    let c = compile_with(&v, &ScheduleConfig::with_chunk(64), Some((64, 64)), None).unwrap();
    let env = loglinear_schedule::size_env(1, 1000, 1, 64, 64, 11, 64, true);
    let res = program_resources(&c.forward, &env);
    let chunk = res.iter().find(|r| r.kernel == "chunk").unwrap();
    // Dozens of 64×64 f32 tiles: far more than a GPU workgroup's 48 KiB, less than all of them together.
    assert!(chunk.peak_bytes > 48 * 1024 && chunk.peak_bytes <= chunk.total_bytes, "{chunk}");
    assert!(check_budget(&c.forward, &env, 48 * 1024).is_err());
    assert!(check_budget(&c.forward, &env, usize::MAX).is_ok());
    // The target's budget reaches the pipeline as an error naming the kernel.
    let e = compile_with(&v, &ScheduleConfig::with_chunk(64), Some((64, 64)), Some(48 * 1024)).unwrap_err();
    assert!(e.to_string().contains("kernel `chunk`") && e.to_string().contains("budget is 49152 B"), "{e}");
    for k in &c.forward.kernels {
        for t in &k.tiles {
            assert!(matches!(t.shape, [Dim::Lit(_), Dim::Lit(_)]), "{}: %{} {:?}", k.name, t.name, t.shape);
        }
    }
}

#[test]
fn fully_overwritten_buffers_are_not_zeroed() {
    use loglinear_kernel::analysis::needs_zeroing;
    use loglinear_schedule::kernel::BufKind;
    let v = loglinear_ir::builtins::by_name("loglinear_mamba2").unwrap();
    for sizes in [None, Some((8, 8))] {
        let c = compile_with(&v, &ScheduleConfig::with_chunk(16), sizes, None).unwrap();
        for (buf, z) in c.forward.buffers.iter().zip(needs_zeroing(&c.forward)) {
            // Inputs are converted; o, qt, cw, dec are each stored in full before they are read, hs wherever it
            // is read (under `bit(i, m)` in level_scan, level_read and final_state). The state is written under
            // conditions, so it keeps its zero start.
            assert_eq!(z, matches!(buf.kind, BufKind::Input(_) | BufKind::State), "{sizes:?}: buffer {}", buf.name);
        }
        // Decode states keep their zero start.
        let zero = needs_zeroing(&c.decode);
        assert!(c.decode.buffers.iter().zip(zero).all(|(b, z)| z || matches!(b.kind, BufKind::Output)));
    }
}

#[test]
fn offsets_fit_32_bits_until_a_buffer_reaches_2_pow_31_elements() {
    let v = loglinear_ir::builtins::by_name("loglinear_mamba2").unwrap();
    let c = compile_with(&v, &ScheduleConfig::with_chunk(64), Some((64, 64)), None).unwrap();
    let small = loglinear_schedule::size_env(1, 1 << 16, 4, 64, 64, 17, 64, true);
    assert!(loglinear_kernel::verify::check_offsets_32(&c.forward, &small).is_ok());
    // T = 2^20, H = 32: q alone has 2^20·32·64 = 2^31 elements.
    let big = loglinear_schedule::size_env(1, 1 << 20, 32, 64, 64, 21, 64, true);
    let e = loglinear_kernel::verify::check_offsets_32(&c.forward, &big).unwrap_err();
    assert!(e.contains("more than 32 bits") && e.contains("2147483648"), "{e}");
}
