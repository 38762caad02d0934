#!/usr/bin/env bash
# The WGSL backend on the GPU machine (NVIDIA H200, Vulkan): conformance at T = 16384 against the f64 reference
# and the forward/decode benchmarks of issue 11, with fla's anchors in the same session.
#
# Build here first (the GPU machine has no Rust), then run through the device tool with
#   carry: gpu-bin .gl .whl        command: bash scripts/gpu/h200.sh PHASE
#   gpu-bin/loglinear   `cargo build --release -p loglinear-cli && strip -o gpu-bin/loglinear target/release/loglinear`
#   .gl                 `../shared/gpu/get-vulkan-loader.sh` (Debian's Vulkan loader)
#   .whl                fla 0.6.0 wheels + anchors_fla.py (../shared/gpu/README.md)
# PHASE: check (conformance), bench (forward, B·T = 32768, H = 16), long (T = 2^17, 2^20), decode, sweep (v_block),
# anchors.
# Every figure goes to $OUT/*.jsonl and stdout.
set -uo pipefail
cd "$(dirname "$0")/../.."
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export XDG_RUNTIME_DIR=/tmp
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LL=gpu-bin/loglinear
W=/tmp/ll
mkdir -p $W
phase=${1:-check}

$LL backends | tee "$OUT/backends.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee -a "$OUT/backends.txt"

case $phase in
check)
    # Conformance at T = 16384 (B = 1, H = 2): f32 storage on f32 inputs, f16 and bf16 storage on bf16 inputs,
    # every scan form, against the f64 reference on the same inputs (spec §11.3: 1e-5 / 1e-4 f32, 5e-3 16-bit).
    for spec in "loglinear_mamba2 128 64 1e-5" "loglinear_gated_deltanet 128 128 1e-4" "mamba2 128 64 1e-5"; do
        set -- $spec
        v=$1 k=$2 vd=$3 tol=$4
        for dt in f32 bf16; do
            x=$W/x_${v}_$dt.safetensors
            $LL random --variant $v --shape 1,16384,2,$k,$vd --dtype $dt --seed 7 --output $x
            $LL run --variant $v --backend reference --input $x --output $W/ref_${v}_$dt.safetensors
            if [ $dt = f32 ]; then storages="f32"; else storages="f16 bf16"; fi
            for st in $storages; do
                t=$tol; [ $st != f32 ] && t=5e-3
                for form in per_level fused streaming; do
                    o=$W/o_${v}_${st}_$form.safetensors
                    if $LL run --variant $v --backend wgsl --config storage=$st,form=$form --input $x --output $o; then
                        python3 scripts/gpu/compare.py $o $W/ref_${v}_$dt.safetensors $t "$v T=16384 storage=$st form=$form" \
                            | tee -a "$OUT/check.jsonl"
                    else
                        echo "{\"check\": \"$v storage=$st form=$form\", \"pass\": false, \"error\": \"run failed\"}" | tee -a "$OUT/check.jsonl"
                    fi
                done
            done
        done
    done
    ;;
bench)
    # Forward, B·T = 32768 tokens, H = 16, bf16 inputs and storage, device-resident; first call includes compile.
    for T in 4096 8192 16384; do
        B=$((32768 / T))
        for cfg in ${CONFIGS:-"form=per_level" "form=fused"}; do
            $LL bench --backend wgsl --variant loglinear_mamba2 --shape $B,$T,16,128,64 --input-dtype bf16 \
                --config storage=bf16,$cfg --resident --reps 10 --warmup 2 2>&1 | tee -a "$OUT/bench.txt"
            $LL bench --backend wgsl --variant loglinear_gated_deltanet --shape $B,$T,16,128,128 --input-dtype bf16 \
                --config storage=bf16,$cfg --resident --reps 5 --warmup 1 2>&1 | tee -a "$OUT/bench.txt"
        done
    done
    ;;
long)
    # H = 4: at H = 16, q and k alone are 4 GiB each in bf16, over the 2 GiB (2147483644 B) storage-binding limit
    # wgpu gives on this adapter; the runtime refuses such a buffer by name.
    # T = 131072 (B = 1, H = 16): fla 0.6.0's longest (it refuses T >= 2^17).
    timeout 120 $LL bench --backend wgsl --variant loglinear_mamba2 --shape 1,131072,16,128,64 --input-dtype bf16 \
        --config storage=bf16 --resident --reps 2 --warmup 1 2>&1 | tee -a "$OUT/long.txt"
    # GDN at H = 2: its f32 output at H = 4 is 2^31 B, 4 B over the binding limit.
    for v in "loglinear_mamba2 4 64" "loglinear_gated_deltanet 2 128"; do
        set -- $v
        # The configuration the runtime picks (streaming past the binding and 32-bit offset limits).
        timeout ${LONG_TIMEOUT:-270} /usr/bin/time -v $LL bench --backend wgsl --variant $1 --shape 1,1048576,$2,128,$3 \
            --input-dtype bf16 --config storage=bf16 --resident --reps 1 --warmup 0 2>&1 | tee -a "$OUT/long.txt"
    done
    ;;
decode)
    for N in 1 64; do
        $LL bench --decode --backend wgsl --variant loglinear_mamba2 --shape $N,16384,16,128,64 --reps 20 2>&1 | tee -a "$OUT/decode.txt"
    done
    ;;
sweep)
    # Column blocks (v_block: more, smaller grid programs; tiles that fit workgroup memory) on decode and forward.
    for N in 1 64; do
        for vb in auto 32 16 8; do
            $LL bench --decode --backend wgsl --variant loglinear_mamba2 --shape $N,16384,16,128,64 --reps 20 \
                --config v_block=$vb 2>&1 | sed "s/^/v_block=$vb /" | tee -a "$OUT/sweep.txt"
        done
    done
    for vb in 32 16; do
        $LL bench --backend wgsl --variant loglinear_mamba2 --shape 8,4096,16,128,64 --input-dtype bf16 \
            --config storage=bf16,form=per_level,v_block=$vb --resident --reps 5 --warmup 1 2>&1 | tee -a "$OUT/sweep.txt"
        $LL bench --backend wgsl --variant loglinear_gated_deltanet --shape 8,4096,16,128,128 --input-dtype bf16 \
            --config storage=bf16,form=fused,v_block=$vb --resident --reps 3 --warmup 1 2>&1 | tee -a "$OUT/sweep.txt"
    done
    # Per-kernel GPU times (timestamp queries): where the forward and decode time goes.
    export LOGLINEAR_WGPU_PROFILE=1
    $LL --log-level info bench --backend wgsl --variant loglinear_mamba2 --shape 8,4096,16,128,64 --input-dtype bf16 \
        --config storage=bf16,form=per_level --resident --reps 1 --warmup 1 2>&1 | grep "GPU" | tee -a "$OUT/profile.txt"
    $LL --log-level info bench --backend wgsl --variant loglinear_mamba2 --shape 2,16384,16,128,64 --input-dtype bf16 \
        --config storage=bf16 --resident --reps 1 --warmup 1 2>&1 | grep "GPU" | tee -a "$OUT/profile.txt"
    $LL --log-level info bench --backend wgsl --variant loglinear_gated_deltanet --shape 8,4096,16,128,128 \
        --input-dtype bf16 --config storage=bf16 --resident --reps 1 --warmup 1 2>&1 | grep "GPU" | tee -a "$OUT/profile.txt"
    $LL --log-level info bench --decode --backend wgsl --variant loglinear_mamba2 --shape 1,16384,16,128,64 --reps 3 \
        2>&1 | grep "GPU" | tail -4 | tee -a "$OUT/profile.txt"
    unset LOGLINEAR_WGPU_PROFILE
    ;;
anchors)
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    timeout 500 python3 .whl/anchors_fla.py "$OUT/anchors.json" 2>&1 | tail -40
    ;;
esac
