//! PTX for NVIDIA (`sm_90`) from every built-in's programs: forward in every scan form on the flagships, the
//! decode step, 16-bit storage; each kernel an entry point with the layout `loglinear_kernel::device` gives,
//! no call into CUDA's libdevice (not on the build machine), and stable fingerprints.

use std::collections::BTreeMap;

use loglinear_ir::builtins;
use loglinear_kernel::device::{fingerprint, gpu_layout, GPU_SHARED_FLOATS};
use loglinear_kernel::DType;
use loglinear_mlir::compile_ptx;
use loglinear_schedule::{ScanForm, ScheduleConfig};

#[test]
fn every_builtin_compiles_to_ptx_for_sm_90() {
    let mut names = BTreeMap::new();
    for v in builtins::all() {
        let flagship = matches!(v.name.as_str(), "loglinear_mamba2" | "loglinear_gated_deltanet");
        let forms: &[ScanForm] = if flagship { &ScanForm::ALL } else { &[ScanForm::PerLevel] };
        for &form in forms {
            let storage = if flagship { DType::BF16 } else { DType::F32 };
            let config = ScheduleConfig { form, storage, ..ScheduleConfig::with_chunk(64) };
            let c = loglinear_schedule::compile_decomposed(&v, &config, Some((128, 64))).unwrap();
            for p in [c.forward, c.decode] {
                let m = compile_ptx(&p).unwrap_or_else(|e| panic!("{} {form:?}: {e}", p.name));
                assert!(m.ptx.contains(".target sm_90") && m.ptx.contains(".version 8.0"), "{}", p.name);
                assert!(!m.ptx.contains("__nv_"), "{}: calls libdevice", p.name);
                assert_eq!(m.kernels.len(), p.kernels.len());
                for (i, k) in m.kernels.iter().enumerate() {
                    assert_eq!(*k, gpu_layout(&p, i));
                    assert!(m.ptx.contains(&format!(".entry {}(", k.symbol)), "{}: no entry {}", p.name, k.symbol);
                    assert!(k.shared_floats <= GPU_SHARED_FLOATS);
                }
                assert!(m.ptx.contains("bar.sync"), "{}: no barrier", p.name);
                // Equal names only for equal programs (the decode step is the same in every scan form).
                let text = names.entry(fingerprint(&p)).or_insert_with(|| p.to_string());
                assert_eq!(*text, p.to_string(), "{}: fingerprint collides", p.name);
                assert!(m.ptx.contains("ld.shared") || m.kernels.iter().all(|k| k.shared_floats == 0), "{}", p.name);
                assert_eq!(fingerprint(&p), fingerprint(&p.clone()));
            }
        }
    }
}

#[test]
fn every_stage_can_be_dumped() {
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let p = loglinear_schedule::compile_decomposed(&v, &ScheduleConfig::with_chunk(16), Some((8, 4))).unwrap().forward;
    let gpu = loglinear_mlir::dump_stages(&p, true).unwrap();
    let names: Vec<&str> = gpu.iter().map(|s| s.0).collect();
    assert_eq!(names, ["mlir", "nvvm", "ptx"]);
    assert!(gpu[0].1.contains("gpu.func @k0_") && gpu[0].1.contains("gpu.barrier"), "{}", gpu[0].1);
    assert!(gpu[1].1.contains("nvvm.barrier") && !gpu[1].1.contains("scf.for"), "{}", gpu[1].1);
    assert!(gpu[2].1.contains(".entry k0_"));
    let cpu = loglinear_mlir::dump_stages(&p, false).unwrap();
    assert_eq!(cpu.iter().map(|s| s.0).collect::<Vec<_>>(), ["mlir", "llvm"]);
    assert!(cpu[0].1.contains("func.func @k0_") && cpu[0].1.contains("scf.for"));
    assert!(cpu[1].1.contains("llvm.func @k0_") && !cpu[1].1.contains("scf.for"));
}
