//! `split_v`: splitting `V` across grid programs verifies, changes no output bit (f64 interpreter, forward and
//! decode step, every built-in, both forms), is refused for a block that does not divide `V`, says why a kernel
//! is not split, and is chosen automatically when a target's tile budget asks for it.

use std::collections::BTreeMap;

use loglinear_ir::builtins;
use loglinear_ir::random::random_inputs;
use loglinear_ir::{check_inputs, HostTensor, TensorMap, VariantIr};
use loglinear_kernel::passes::split::{separable, SplitOutcome};
use loglinear_kernel::{Bindings, Capabilities, Tensor};
use loglinear_schedule::interp::{run_decode, run_program};
use loglinear_schedule::kernel::Program;
use loglinear_schedule::{
    compile_for_target, compile_with, dump, size_env, DType, DumpWhen, ScanForm, ScheduleConfig, ScheduleError,
};

fn interpret(p: &Program, v: &VariantIr, inputs: &TensorMap, chunk: usize, decode: bool) -> HostTensor {
    let dims = check_inputs(v, inputs).unwrap();
    let env = size_env(dims.b, dims.t, dims.h, dims.k, dims.v, dims.l, chunk, p.hierarchical);
    let owned: BTreeMap<String, Tensor> =
        inputs.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(DType::F64, t.shape.clone(), &t.data))).collect();
    let views: Bindings<'_> = owned.iter().map(|(n, t)| (n.clone(), t.view())).collect();
    let o = if decode {
        run_decode::<f64>(p, &env, &views, DType::F64)
    } else {
        run_program::<f64>(p, &env, &views, DType::F64)
    };
    let o = o.unwrap_or_else(|e| panic!("{}: {e}", p.name));
    HostTensor::new(o.shape().to_vec(), o.to_f64())
}

fn cfg(chunk: usize, form: ScanForm, v_block: Option<usize>) -> ScheduleConfig {
    ScheduleConfig { chunk, form, storage: DType::F64, accum: DType::F64, v_block, ..Default::default() }
}

#[test]
fn split_programs_verify_and_change_no_bit() {
    let (k, vd) = (3, 12);
    for var in builtins::all() {
        for form in ScanForm::ALL {
            let x = random_inputs(&var, (1, 37, 2, k, vd), 1, 5);
            let whole = compile_with(&var, &cfg(8, form, None), Some((k, vd)), None).unwrap();
            let o_fwd = interpret(&whole.forward, &var, &x, 8, false);
            let o_dec = interpret(&whole.decode, &var, &x, 1, true);
            for vb in [1, 4, 6] {
                let c = compile_with(&var, &cfg(8, form, Some(vb)), Some((k, vd)), None)
                    .unwrap_or_else(|e| panic!("{} {form:?} v_block={vb}: {e}", var.name));
                assert!(
                    c.forward.kernels.iter().any(|k| k.vars.iter().any(|x| x.name == "vb")),
                    "{} v_block={vb}: no kernel split",
                    var.name
                );
                let f = interpret(&c.forward, &var, &x, 8, false);
                assert_eq!(f.data, o_fwd.data, "{} {form:?} v_block={vb}: forward changed", var.name);
                let d = interpret(&c.decode, &var, &x, 1, true);
                assert_eq!(d.data, o_dec.data, "{} {form:?} v_block={vb}: decode changed", var.name);
            }
        }
    }
}

#[test]
fn the_level_scan_and_decode_step_split_and_the_dump_says_what_was_done() {
    let var = builtins::by_name("loglinear_mamba2").unwrap();
    let c = compile_with(&var, &cfg(16, ScanForm::PerLevel, Some(8)), Some((16, 32)), None).unwrap();
    let scan = c.forward.kernels.iter().find(|k| k.name == "level_scan").unwrap();
    assert_eq!(scan.grid.len(), 4, "level_scan grid: b, h, m, vb");
    assert_eq!(c.decode.kernels[0].grid.len(), 3, "decode grid: b, h, vb");
    let text =
        dump(&var, &cfg(16, ScanForm::PerLevel, Some(8)), Some((16, 32)), DumpWhen::After("split_v".into())).unwrap();
    assert!(text.contains("; v_block = 8") && text.contains("; kernel level_scan: split along V"), "{text}");
    assert!(text.contains("vb*8 +: 8"), "{text}");
    // A store without a V axis in a split kernel runs in block 0 only.
    assert!(text.contains("if !(vb >= 1) {"), "{text}");
}

#[test]
fn a_kernel_mixing_v_columns_is_not_split() {
    // Any op contracting over V makes a kernel inseparable; build one from the mamba2 chunk kernel by turning
    // its `q kᵀ` into `vᵀ`-contracting `v vᵀ`.
    let var = builtins::by_name("loglinear_mamba2").unwrap();
    let c = compile_with(&var, &cfg(16, ScanForm::PerLevel, None), None, None).unwrap();
    let mut p = c.forward.clone();
    let k0 = &mut p.kernels[0];
    let v_tile = k0.tiles.iter().position(|t| t.name == "v").unwrap() as u32;
    let mut found = false;
    loglinear_schedule::kernel::visit_mut(&mut k0.body, &mut |s| {
        if let loglinear_schedule::kernel::Stmt::Assign {
            op: loglinear_schedule::kernel::Op::Matmul { a, b, .. },
            ..
        } = s
        {
            if !found {
                *a = loglinear_schedule::kernel::TileId(v_tile);
                *b = loglinear_schedule::kernel::TileId(v_tile);
                found = true;
            }
        }
    });
    assert!(found);
    match separable(&p.kernels[0], &p.buffers) {
        SplitOutcome::Inseparable(why) => assert!(why.contains("mixes the columns of V"), "{why}"),
        o => panic!("expected inseparable, got {o:?}"),
    }
    assert_eq!(separable(&c.forward.kernels[1], &c.forward.buffers), SplitOutcome::Split);
}

#[test]
fn a_block_that_does_not_divide_v_is_refused() {
    let var = builtins::by_name("loglinear_mamba2").unwrap();
    for vb in [5, 64] {
        match compile_with(&var, &cfg(16, ScanForm::PerLevel, Some(vb)), Some((16, 32)), None) {
            Err(ScheduleError::Config(e)) => {
                assert_eq!(e.field, "v_block");
                assert!(e.expected.contains("divisor of V = 32"), "{e}");
            }
            other => panic!("v_block={vb}: expected a config error, got {other:?}"),
        }
    }
    assert!("v_block=0".parse::<ScheduleConfig>().is_err());
}

#[test]
fn a_tight_tile_budget_picks_a_split_that_fits() {
    let var = builtins::by_name("loglinear_mamba2").unwrap();
    let config = ScheduleConfig::with_chunk(16);
    let (k, vd) = (64, 128);
    let whole = compile_for_target(&var, &config, k, vd, &Capabilities::cpu_f32()).unwrap();
    let need = |p: &Program| {
        let env = size_env(1, 1, 1, k, vd, 1, 16, true);
        loglinear_kernel::resources::program_resources(p, &env).iter().map(|r| r.peak_bytes).max().unwrap()
    };
    let full = need(&whole);
    // A budget below the whole-V need but above what a split needs.
    let caps = Capabilities { tile_memory: Some(full - 1), ..Capabilities::cpu_f32() };
    let split = compile_for_target(&var, &config, k, vd, &caps).unwrap();
    assert!(need(&split) < full);
    assert!(split.kernels.iter().any(|k| k.vars.iter().any(|v| v.name == "vb")), "no kernel split");
    // A budget nothing fits is a clear error.
    let caps = Capabilities { tile_memory: Some(64), ..Capabilities::cpu_f32() };
    match compile_for_target(&var, &config, k, vd, &caps) {
        Err(ScheduleError::Budget(m)) => assert!(m.contains("chunk"), "{m}"),
        other => panic!("expected a budget error, got {other:?}"),
    }
}
