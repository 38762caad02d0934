#!/usr/bin/env bash
# The cuda backend (MLIR → PTX, run through the CUDA driver) on the GPU machine (NVIDIA H200): conformance at
# T = 16384 against the f64 reference, forward and decode benchmarks with the WGSL backend in the same run.
#
# PTX is made here (MLIR is not on the GPU machine) and carried with a binary built without MLIR:
#   here:  cargo build --release -p loglinear-cli --features mlir && LL=target/release/loglinear bash scripts/gpu/cuda.sh prep
#          cargo build --release -p loglinear-cli && strip -o gpu-bin/loglinear target/release/loglinear
#   there: device tool, carry gpu-bin .gl .whl, command `bash scripts/gpu/cuda.sh check` (or bench, decode, all)
# Every figure goes to $OUT/*.jsonl|txt and stdout.
set -uo pipefail
cd "$(dirname "$0")/../.."
phase=${1:-check}
LL=${LL:-gpu-bin/loglinear}
export LOGLINEAR_CUDA_KERNELS=${LOGLINEAR_CUDA_KERNELS:-$PWD/gpu-bin/ptx}
CHECK="loglinear_mamba2:128:64:1e-5 loglinear_gated_deltanet:128:128:1e-4 mamba2:128:64:1e-5"
FORMS="per_level fused streaming"

if [ "$phase" = prep ]; then
    # The programs of every run below, emitted for the configuration each run asks for.
    mkdir -p "$LOGLINEAR_CUDA_KERNELS"
    em() { $LL emit --target ptx --out "$LOGLINEAR_CUDA_KERNELS" "$@" > /dev/null || echo "emit failed: $*"; }
    for spec in $CHECK; do
        IFS=: read -r v k vd tol <<< "$spec"
        for st in f32 f16 bf16; do
            for form in $FORMS; do em --variant $v --shape 1,16384,2,$k,$vd --config storage=$st,form=$form; done
        done
    done
    for T in 4096 8192 16384; do
        B=$((32768 / T))
        for form in per_level fused; do
            em --variant loglinear_mamba2 --shape $B,$T,16,128,64 --config storage=bf16,form=$form
            em --variant loglinear_gated_deltanet --shape $B,$T,16,128,128 --config storage=bf16,form=$form
        done
    done
    for N in 1 64; do
        for v in loglinear_mamba2 mamba2; do em --variant $v --shape $N,16384,16,128,64 --decode-batch $N; done
    done
    ls "$LOGLINEAR_CUDA_KERNELS" | grep -c '\.ptx$'
    du -sh "$LOGLINEAR_CUDA_KERNELS"
    exit 0
fi

OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
W=/tmp/ll
mkdir -p $W
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export XDG_RUNTIME_DIR=/tmp
$LL backends | tee "$OUT/backends.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee -a "$OUT/backends.txt"

check() {
    for spec in $CHECK; do
        IFS=: read -r v k vd tol <<< "$spec"
        for dt in f32 bf16; do
            x=$W/x_${v}_$dt.safetensors
            $LL random --variant $v --shape 1,16384,2,$k,$vd --dtype $dt --seed 7 --output $x
            $LL run --variant $v --backend reference --input $x --output $W/ref_${v}_$dt.safetensors
            if [ $dt = f32 ]; then storages="f32"; else storages="f16 bf16"; fi
            for st in $storages; do
                t=$tol; [ $st != f32 ] && t=5e-3
                for form in $FORMS; do
                    o=$W/o_${v}_${st}_$form.safetensors
                    if timeout 120 $LL run --variant $v --backend cuda --config storage=$st,form=$form --input $x --output $o; then
                        python3 scripts/gpu/compare.py $o $W/ref_${v}_$dt.safetensors $t "cuda $v T=16384 storage=$st form=$form" \
                            | tee -a "$OUT/check.jsonl"
                    else
                        echo "{\"check\": \"cuda $v storage=$st form=$form\", \"pass\": false, \"error\": \"run failed\"}" | tee -a "$OUT/check.jsonl"
                    fi
                done
            done
        done
    done
}

bench() {
    # Forward, B·T = 32768 tokens, H = 16, bf16 inputs and storage, device-resident; cuda then wgsl, same run.
    for T in 4096 8192 16384; do
        B=$((32768 / T))
        for form in per_level fused; do
            for be in cuda wgsl; do
                timeout 120 $LL bench --backend $be --variant loglinear_mamba2 --shape $B,$T,16,128,64 --input-dtype bf16 \
                    --config storage=bf16,form=$form --resident --reps 10 --warmup 2 2>&1 | tee -a "$OUT/bench.txt"
                timeout 120 $LL bench --backend $be --variant loglinear_gated_deltanet --shape $B,$T,16,128,128 --input-dtype bf16 \
                    --config storage=bf16,form=$form --resident --reps 5 --warmup 1 2>&1 | tee -a "$OUT/bench.txt"
            done
        done
    done
}

decode() {
    for N in 1 64; do
        for be in cuda wgsl; do
            timeout 120 $LL bench --decode --backend $be --variant loglinear_mamba2 --shape $N,16384,16,128,64 --reps 20 2>&1 \
                | tee -a "$OUT/decode.txt"
        done
    done
}

case $phase in
check) check ;;
bench) bench ;;
decode) decode ;;
all) check; decode; bench ;;
esac
