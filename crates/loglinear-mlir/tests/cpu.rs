//! Every built-in's forward program (specialised, decomposed), translated to MLIR, lowered, JIT-compiled and run
//! on the CPU, computes what the kernel-IR interpreter computes in f32 on the same program: every scan form, a T
//! that is not a multiple of the chunk, K ≠ V.

use std::collections::BTreeMap;

use loglinear_ir::random::random_inputs;
use loglinear_ir::{builtins, check_inputs};
use loglinear_kernel::{InterpreterTarget, SizeEnv, Target, Tensor};
use loglinear_mlir::CpuProgram;
use loglinear_schedule::{ScanForm, ScheduleConfig};

#[test]
fn every_builtin_matches_the_interpreter() {
    let interp = InterpreterTarget::f32();
    for v in builtins::all() {
        let flagship = matches!(v.name.as_str(), "loglinear_mamba2" | "loglinear_gated_deltanet");
        let forms: &[ScanForm] = if flagship { &ScanForm::ALL } else { &[ScanForm::PerLevel] };
        for &form in forms {
            let (b, t, h, k, vd) = (2, 37, 2, 8, 4);
            let config = ScheduleConfig { form, ..ScheduleConfig::with_chunk(8) };
            let mut p = loglinear_schedule::compile_decomposed(&v, &config, Some((k, vd))).unwrap().forward;
            p.set_types(loglinear_kernel::DType::F32, loglinear_kernel::DType::F32);
            let x = random_inputs(&v, (b, t, h, k, vd), 0, 3);
            let dims = check_inputs(&v, &x).unwrap();
            let env = SizeEnv::new(dims.b, dims.t, dims.h, dims.k, dims.v, dims.l, 8, p.hierarchical);
            let stored: BTreeMap<String, Tensor> = x
                .iter()
                .map(|(n, t)| (n.clone(), Tensor::from_f64(loglinear_kernel::DType::F32, t.shape.clone(), &t.data)))
                .collect();
            let views = stored.iter().map(|(n, t)| (n.clone(), t.view())).collect();
            let want = interp.compile(&p, &config).unwrap().run(&env, &views).unwrap().to_f64();
            let prog = CpuProgram::compile(&p).unwrap_or_else(|e| panic!("{} {form:?}: {e}", v.name));
            let got = prog.run(&env, &views).unwrap().to_f64();
            let scale = want.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            let e = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
            assert!(e <= 1e-5, "{} {form:?}: differs from the interpreter by {e:e}", v.name);
            assert!(got.iter().all(|x| x.is_finite()), "{} {form:?}", v.name);
        }
    }
}
