#!/usr/bin/env bash
# PTX for `scripts/gpu/cuda.sh sweep` (run after `cuda.sh prep`, with an mlir build of the CLI as LL; then re-pack
# target/ptx into gpu-bin/ptx.tar.xz: `tar -C target -cJf gpu-bin/ptx.tar.xz ptx`).
LL=${LL:-target/release/loglinear}
D=target/ptx
for T in 4096 16384; do
  B=$((32768 / T))
  for c in "form=per_level,v_block=32" "form=per_level,v_block=16" "form=per_level,chunk=32" "form=per_level,chunk=32,v_block=16"; do
    $LL emit --target ptx --out $D --variant loglinear_mamba2 --shape $B,$T,16,128,64 --config storage=bf16,$c > /dev/null || echo fail $c
  done
  for c in "form=per_level,v_block=64" "form=per_level,v_block=32" "form=per_level,chunk=32" "form=per_level,chunk=32,v_block=32"; do
    $LL emit --target ptx --out $D --variant loglinear_gated_deltanet --shape $B,$T,16,128,128 --config storage=bf16,$c > /dev/null || echo fail $c
  done
done
