#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with a Rust toolchain.
# 1. installs (apt-get) the system packages the tests need, if any is missing;
# 2. runs every workspace test (unit, property, oracle, CLI, trybuild, file tests);
# 3. builds and tests the README's user crate (tests/user-crate) as a user would;
# 4. runs the demo (the main job), which checks every backend against the f64 oracle.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo_=""
    [ "$(id -u)" = 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

export CARGO_TERM_COLOR=never
# The external test vectors are committed in tests/vectors; LOGLINEAR_VECTORS may point elsewhere (an override).

cargo test --workspace --locked
# The user crate has its own lock file (as a user's would); it follows the workspace's pinned versions.
cargo test --manifest-path tests/user-crate/Cargo.toml --target-dir target
cargo run --locked -q -p loglinear-cli -- demo
