//! Fuzzing the input path in CI: 10^5 generated cases (random bytes, random headers, valid files with one field
//! changed) through the safetensors loader and the input checks of every built-in variant. Every case must give
//! a value (accepted, or an error with a message), never a panic. `fuzz/` has the cargo-fuzz target for longer
//! runs (see the README).

use loglinear_ir::random::Rng;
use loglinear_runtime::fuzz::{check_case, generate, valid_file};

const CASES: usize = 100_000;

#[test]
fn loader_and_checks_never_panic() {
    let variants = loglinear_ir::builtins::all();
    let mut rng = Rng::new(0x10_91_1e_a7);
    let mut accepted = 0;
    for i in 0..CASES {
        let v = &variants[i % variants.len()];
        let bytes = generate(v, &mut rng);
        if check_case(v, &bytes) {
            accepted += 1;
        }
    }
    // The generators must exercise both sides: some cases pass every check, most are rejected.
    assert!(accepted > CASES / 50, "only {accepted} of {CASES} cases were accepted");
    assert!(accepted < CASES / 2, "{accepted} of {CASES} cases were accepted");
}

#[test]
fn unmutated_files_are_accepted() {
    let mut rng = Rng::new(3);
    for v in loglinear_ir::builtins::all() {
        for _ in 0..20 {
            let bytes = valid_file(&v, &mut rng);
            assert!(check_case(&v, &bytes), "{}: a valid file was rejected", v.name);
        }
    }
}
