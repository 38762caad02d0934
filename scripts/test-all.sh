#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with a Rust toolchain.
# 1. installs (apt-get) the system packages the tests need, if any is missing;
# 2. runs every workspace test (unit, property, oracle, CLI, trybuild, file tests);
# 3. builds and tests the README's user crate (tests/user-crate) as a user would;
# 4. runs the demo (the main job), which checks every backend against the f64 oracle.
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-numpy: the Python consumer of emitted objects.
# mesa-vulkan-drivers + libvulkan1: lavapipe, the Vulkan CPU driver the wgsl backend is tested on.
# LLVM/MLIR 22: the loglinear-mlir crate (its paths are set in .cargo/config.toml).
packages=(build-essential pkg-config python3 python3-numpy mesa-vulkan-drivers libvulkan1
    llvm-22-dev libmlir-22-dev libpolly-22-dev libclang-common-22-dev libclang1-22 libzstd-dev zlib1g-dev)
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
# wgpu's Vulkan loader wants a runtime directory; the wgsl backend must find lavapipe here (a missing adapter fails
# the suite instead of skipping the backend).
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
export LOGLINEAR_REQUIRE_GPU=1
# The consumer tests of emitted kernels (cc, python3 with numpy) fail instead of skipping when a tool is missing.
export LOGLINEAR_REQUIRE_CONSUMERS=1
# The external test vectors are committed in tests/vectors; LOGLINEAR_VECTORS may point elsewhere (an override).

cargo test --workspace --locked
# The mlir-cpu backend through the shared conformance suite and the inference tests (the `mlir` feature links
# MLIR statically into these two test binaries).
cargo test --locked -p loglinear --features mlir --test conformance --test inference
# `loglinear emit --target ptx|mlir` end to end (PTX, MLIR and manifests valid against docs/manifest.schema.json),
# and the C and Python consumers of objects made by MLIR/LLVM (`--codegen mlir`) as well as by Cranelift.
cargo test --locked -p loglinear-cli --features mlir --test emit --test manifest_schema --test emit_object
# The user crate has its own lock file (as a user's would); it follows the workspace's pinned versions.
cargo test --manifest-path tests/user-crate/Cargo.toml --target-dir target
cargo run --locked -q -p loglinear-cli -- demo
