//! The interpreter against the external f64 test vectors (`LOGLINEAR_VECTORS` or `<workspace>/tests/vectors`).

use loglinear_ir::builtins;
use loglinear_schedule::{compile, interpret, Precision, ScanForm, ScheduleConfig};
use loglinear_testkit::{read_cases, relative_error as rel};

#[test]
fn external_vectors() {
    let mut checked = 0;
    for v in builtins::all() {
        let cases = read_cases(&v.name);
        for loglinear_testkit::Case { index: i, inputs: case, o: want } in cases {
            for c in [1, 4, 16, 64] {
                for form in ScanForm::ALL {
                    let comp = compile(&v, &ScheduleConfig { chunk: c, form, ..Default::default() }).unwrap();
                    let e = rel(&interpret(&comp, &case, Precision::F64).unwrap(), &want);
                    assert!(e <= 1e-10, "{} case {i} C={c} {form:?}: rel err {e:e}", v.name);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 12 * 8, "too few vector cases: {checked}");
}
