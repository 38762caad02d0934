//! Cranelift runs the primitives of `passes::decompose` (`mask`, `select`, `row_sum`, `col_sum`, `rsqrt`): the
//! decomposed forward program of every built-in agrees with the f64 oracle within the f32 tolerance.

use loglinear_ir::random::random_inputs;
use loglinear_ir::{builtins, check_inputs};
use loglinear_kernel::{Target, Tensor};
use loglinear_oracle::{run, Form};
use loglinear_runtime::{f32_tolerance, size_env, DType, ScheduleConfig};
use loglinear_testkit::relative_error as rel;

#[test]
fn decomposed_programs_run_on_cranelift() {
    let target = loglinear_cranelift::CraneliftTarget::new().with_threads(2);
    let (k, vd) = (3, 5);
    for v in builtins::all() {
        for form in loglinear_runtime::ScanForm::ALL {
            let config = ScheduleConfig { form, ..ScheduleConfig::with_chunk(4) };
            let c = loglinear_schedule::compile_decomposed(&v, &config, Some((k, vd))).unwrap();
            let exe = target.compile(&c.forward, &config).unwrap_or_else(|e| panic!("{} {form:?}: {e}", v.name));
            let x = random_inputs(&v, (2, 23, 2, k, vd), 1, 11);
            let dims = check_inputs(&v, &x).unwrap();
            let env = size_env(&dims, 4, c.forward.hierarchical);
            let owned: std::collections::BTreeMap<String, Tensor> =
                x.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(DType::F32, t.shape.clone(), &t.data))).collect();
            let o = exe.run(&env, &loglinear_runtime::views(&owned)).unwrap();
            let got = loglinear_ir::HostTensor::new(o.shape().to_vec(), o.to_f64());
            let want = run(&v, &x, Form::Naive).unwrap();
            let e = rel(&got, &want);
            assert!(e <= f32_tolerance(&v), "{} {form:?}: rel err {e:e}", v.name);
        }
    }
}
