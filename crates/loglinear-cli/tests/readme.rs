//! The README's example crate is exactly `tests/user-crate/` (which CI builds and tests), and the README gives the
//! two set-up commands.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn readme_shows_the_user_crate_verbatim() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for file in ["Cargo.toml", "src/lib.rs", "src/main.rs"] {
        let text = std::fs::read_to_string(root().join("tests/user-crate").join(file)).unwrap();
        assert!(readme.contains(text.trim_end()), "README.md does not contain tests/user-crate/{file} verbatim");
    }
}

#[test]
fn readme_gives_the_two_setup_commands_and_ci_runs_one() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("cargo run --release -p loglinear-cli -- demo"));
    assert!(readme.contains("bash scripts/test-all.sh"));
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.contains("scripts/test-all.sh"));
}
