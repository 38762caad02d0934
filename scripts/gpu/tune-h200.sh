#!/usr/bin/env bash
# The H200's pretuned table for the wgsl backend (crates/loglinear-runtime/tuned/h200.json): `loglinear tune` at the
# benchmark shapes (B·T = 32768, H = 16, bf16 inputs). Device tool, carry gpu-bin .gl; the table is $OUT/tune/tune.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json XDG_RUNTIME_DIR=/tmp
export LOGLINEAR_CACHE=${OUT:-/tmp/out}/tune
LL=gpu-bin/loglinear
if [ "${1:-wgsl}" = cuda ]; then
    tar -C /tmp -xJf gpu-bin/ptx-tune.tar.xz
    export LOGLINEAR_CUDA_KERNELS=/tmp/ptx-tune
    timeout 150 $LL tune --backend cuda --variant loglinear_mamba2 --shape 2,16384,16,128,64 --input-dtype bf16 \
        --keep 24 --budget ${BUDGET:-60s} 2>&1 | tail -30
    timeout 280 $LL tune --backend cuda --variant loglinear_gated_deltanet --shape 8,4096,16,128,128 \
        --input-dtype bf16 --keep 24 --budget ${BUDGET:-150s} 2>&1 | tail -30
    exit 0
fi
for T in 4096 16384; do
    B=$((32768 / T))
    timeout 100 $LL tune --backend wgsl --variant loglinear_mamba2 --shape $B,$T,16,128,64 --input-dtype bf16 --budget ${BUDGET:-40s} 2>&1 | tail -22
done
timeout 100 $LL tune --backend wgsl --variant loglinear_gated_deltanet --shape 8,4096,16,128,128 --input-dtype bf16 --budget ${BUDGET:-40s} 2>&1 | tail -22
# The cuda backend (`bash scripts/gpu/tune-h200.sh cuda`): its candidates' PTX made here first with, for each
# (variant, shape) above, <mlir build> emit --target ptx --variant V --shape S --input-dtype bf16 --tune-candidates \
#       --out target/ptx-tune (every candidate: a superset of what tune measures there), then
#   tar -C target -cJf gpu-bin/ptx-tune.tar.xz ptx-tune
