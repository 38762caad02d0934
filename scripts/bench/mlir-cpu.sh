#!/usr/bin/env bash
# The MLIR issue's CPU rows in one run: numpy/OpenBLAS sgemm (the reference rate), then Cranelift and mlir-cpu on
# LL-Mamba2 and LL-GDN at B=1 T=16384 H=4 K=V=64, C=64, f32. Needs numpy (`python3 -m venv /tmp/np &&
# /tmp/np/bin/pip install numpy`; PYTHON=/tmp/np/bin/python) and a CLI built with `--features mlir`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
LL=${LL:-target/release/loglinear}
$PY scripts/bench/sgemm.py
for v in loglinear_mamba2 loglinear_gated_deltanet; do
    for be in cranelift mlir-cpu; do
        $LL bench --backend $be --variant $v --shape 1,16384,4,64,64 --reps 5 2>&1 | grep -E "^$be "
    done
done
$PY scripts/bench/sgemm.py
