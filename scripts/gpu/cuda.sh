#!/usr/bin/env bash
# The cuda backend (MLIR → PTX, run through the CUDA driver) on the GPU machine (NVIDIA H200): conformance at
# T = 16384 against the f64 reference, forward and decode benchmarks with the WGSL backend in the same run.
#
# PTX is made here (MLIR is not on the GPU machine) and carried with a binary built without MLIR:
#   here:  cargo build --release -p loglinear-cli --features mlir && LL=target/release/loglinear bash scripts/gpu/cuda.sh prep
#          cargo build --release -p loglinear-cli && strip -o gpu-bin/loglinear target/release/loglinear
#   there: device tool, carry gpu-bin .gl .whl, command `bash scripts/gpu/cuda.sh PHASE`
# PHASE: check (conformance at T = 16384), bench, decode, profile, anchors (fla 0.6.0), perf (the last four),
# tuned (the shipped tuned table against the default, and fla, same run),
# sweep (schedule knobs; PTX from scripts/gpu/cuda-sweep-prep.sh).
# Every figure goes to $OUT/*.jsonl|txt and stdout.
set -uo pipefail
cd "$(dirname "$0")/../.."
phase=${1:-check}
LL=${LL:-gpu-bin/loglinear}
export LOGLINEAR_CUDA_KERNELS=${LOGLINEAR_CUDA_KERNELS:-$PWD/gpu-bin/ptx}
if [ "$phase" != prep ] && [ ! -d "$LOGLINEAR_CUDA_KERNELS" ] && [ -f gpu-bin/ptx.tar.xz ]; then
    # PTX travels compressed (text: ~15× smaller).
    mkdir -p "$LOGLINEAR_CUDA_KERNELS" && tar -C "$LOGLINEAR_CUDA_KERNELS" --strip-components=1 -xJf gpu-bin/ptx.tar.xz
fi
CHECK="loglinear_mamba2:128:64:1e-5 loglinear_gated_deltanet:128:128:1e-4 mamba2:128:64:1e-5"
FORMS="per_level fused streaming"

if [ "$phase" = prep ]; then
    # The programs of every run below, emitted for the configuration each run asks for, into target/ptx, then
    # packed into gpu-bin/ptx.tar.xz (with the conformance suite's programs when they are there: see
    # docs/BENCHMARKS.md, "cuda on the H200").
    export LOGLINEAR_CUDA_KERNELS=${PTX_DIR:-$PWD/target/ptx}
    mkdir -p "$LOGLINEAR_CUDA_KERNELS" gpu-bin
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
    tar -C "$LOGLINEAR_CUDA_KERNELS/.." -cJf gpu-bin/ptx.tar.xz "$(basename "$LOGLINEAR_CUDA_KERNELS")"
    du -sh "$LOGLINEAR_CUDA_KERNELS" gpu-bin/ptx.tar.xz
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
    # Forward, B·T = 32768 tokens, H = 16, bf16 inputs and storage, device-resident: cuda in both forms, wgsl in
    # the per-level form (its figures of issue 11), same run.
    for T in 4096 8192 16384; do
        B=$((32768 / T))
        for run in "cuda per_level" "cuda fused" "wgsl per_level"; do
            set -- $run
            timeout 120 $LL bench --backend $1 --variant loglinear_mamba2 --shape $B,$T,16,128,64 --input-dtype bf16 \
                --config storage=bf16,form=$2 --resident --reps 5 --warmup 1 2>&1 | tee -a "$OUT/bench.txt"
            timeout 120 $LL bench --backend $1 --variant loglinear_gated_deltanet --shape $B,$T,16,128,128 --input-dtype bf16 \
                --config storage=bf16,form=$2 --resident --reps 3 --warmup 1 2>&1 | tee -a "$OUT/bench.txt"
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

profile() {
    # Per-kernel wall times (a synchronisation after each kernel): where the forward time goes.
    $LL --log-level debug bench --backend cuda --variant loglinear_mamba2 --shape 2,16384,16,128,64 --input-dtype bf16 \
        --config storage=bf16,form=per_level --resident --reps 1 --warmup 0 2>&1 | grep "cuda kernel" | tail -20 \
        | tee -a "$OUT/profile.txt"
    $LL --log-level debug bench --backend cuda --variant loglinear_gated_deltanet --shape 2,16384,16,128,128 \
        --input-dtype bf16 --config storage=bf16,form=per_level --resident --reps 1 --warmup 0 2>&1 \
        | grep "cuda kernel" | tail -20 | tee -a "$OUT/profile.txt"
}

sweep() {
    # Schedule knobs on the forward pass: V split into column blocks (more grid programs for the serial level
    # scan) and chunk 32 (tiles that fit shared memory).
    for T in 4096 16384; do
        B=$((32768 / T))
        for c in "v_block=32" "v_block=16" "chunk=32" "chunk=32,v_block=16"; do
            timeout 60 $LL bench --backend cuda --variant loglinear_mamba2 --shape $B,$T,16,128,64 --input-dtype bf16 \
                --config storage=bf16,form=per_level,$c --resident --reps 5 --warmup 1 2>&1 | sed "s/^/$c /" | tee -a "$OUT/sweep.txt"
        done
        for c in "v_block=64" "v_block=32" "chunk=32" "chunk=32,v_block=32"; do
            timeout 60 $LL bench --backend cuda --variant loglinear_gated_deltanet --shape $B,$T,16,128,128 --input-dtype bf16 \
                --config storage=bf16,form=per_level,$c --resident --reps 3 --warmup 1 2>&1 | sed "s/^/$c /" | tee -a "$OUT/sweep.txt"
        done
    done
    # Per-kernel times of a decode step.
    $LL --log-level debug bench --decode --backend cuda --variant loglinear_mamba2 --shape 1,16384,16,128,64 --reps 2 \
        2>&1 | grep "cuda kernel" | grep decode | tail -6 | tee -a "$OUT/profile.txt"
}

# The shipped tuned table in use (issue 13): bench picks it up on its own; --no-tune times the default, same run.
# PTX of both configurations: gpu-bin/ptx-tune.tar.xz (scripts/gpu/tune-h200.sh's header says how it is made).
tuned() {
    tar -C /tmp -xJf gpu-bin/ptx-tune.tar.xz
    export LOGLINEAR_CACHE=/tmp/empty-cache
    for spec in "loglinear_mamba2 2,16384,16,128,64" "loglinear_gated_deltanet 8,4096,16,128,128"; do
        set -- $spec
        for mode in "" --no-tune; do
            echo "== $1 $2 bf16 ${mode:-tuned (shipped table)}"
            LOGLINEAR_CUDA_KERNELS=/tmp/ptx-tune timeout 120 $LL bench --backend cuda --variant "$1" --shape "$2" \
                --input-dtype bf16 --resident --reps 10 $mode 2>&1 | tail -4
        done
    done 2>&1 | tee "$OUT/tuned.txt"
}

anchors() {
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    timeout 300 python3 .whl/anchors_fla.py "$OUT/anchors.json" 2>&1 | tail -40
}

case $phase in
check) check ;;
bench) bench ;;
decode) decode ;;
profile) profile ;;
sweep) sweep ;;
anchors) anchors ;;
tuned) tuned; anchors ;;
perf) anchors; bench; decode; profile ;;
esac
