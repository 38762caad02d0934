#!/usr/bin/env bash
# PyTorch as a consumer of `loglinear emit --target ptx` on the GPU machine (device tool; carry gpu-bin):
# crates/loglinear-cli/tests/emit_ptx/forward_torch.py runs each emitted forward program through the CUDA driver
# API on inputs from `loglinear random` and compares with `loglinear run --backend reference` (fails above 1e-4).
# The PTX is made on a machine with MLIR first:  bash scripts/gpu/ptx-consumer.sh prep  (needs LL_MLIR=<mlir build>)
set -uo pipefail
cd "$(dirname "$0")/../.."
CASES=("loglinear_mamba2 2,100,3,32,16 f32" "loglinear_gated_deltanet 1,77,2,16,16 bf16" "gla 2,33,2,16,8 f32"
    "loglinear_mamba2 1,1,2,16,8 f32")
if [ "${1:-}" = prep ]; then
    rm -rf target/ptx-consumer
    for c in "${CASES[@]}"; do
        set -- $c
        d=target/ptx-consumer/$1-${2//,/x}
        mkdir -p "$d" && "${LL_MLIR:?set LL_MLIR to a loglinear built with --features mlir}" emit --target ptx \
            --variant "$1" --shape "$2" --out "$d" >/dev/null || exit 1
    done
    tar -C target -cJf gpu-bin/ptx-consumer.tar.xz ptx-consumer
    exit 0
fi
tar -C /tmp -xJf gpu-bin/ptx-consumer.tar.xz
LL=gpu-bin/loglinear
fail=0
for c in "${CASES[@]}"; do
    set -- $c
    d=/tmp/ptx-consumer/$1-${2//,/x}
    echo "== $1 shape $2, $3 inputs"
    $LL random --variant "$1" --shape "$2" --dtype "$3" --seed 7 --output "$d/in.safetensors" &&
        $LL run --backend reference --variant "$1" --input "$d/in.safetensors" --output "$d/ref.safetensors" &&
        python3 crates/loglinear-cli/tests/emit_ptx/forward_torch.py "$d" "$d/in.safetensors" "$d/ref.safetensors" ||
        { echo "FAILED: $1 $2"; fail=1; }
done
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
exit $fail
