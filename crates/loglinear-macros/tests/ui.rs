//! Compile-fail tests: declarations outside the algebra are rejected with spanned, explanatory errors.
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test -p loglinear-macros --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/pass/*.rs");
}
