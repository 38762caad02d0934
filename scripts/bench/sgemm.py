"""The CPU's dense f32 matrix-multiply rate through numpy's BLAS (OpenBLAS in the numpy wheel): the reference
the MLIR issue's CPU target is stated against. `python3 scripts/bench/sgemm.py [N]` prints the median GFLOP/s of
five N×N×N products (N = 2048 by default)."""
import sys
import time

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
rng = np.random.default_rng(0)
a = rng.random((n, n), dtype=np.float32)
b = rng.random((n, n), dtype=np.float32)
a @ b
times = []
for _ in range(5):
    t = time.perf_counter()
    a @ b
    times.append(time.perf_counter() - t)
t = sorted(times)[len(times) // 2]
print(f"sgemm {n}^3 f32 (numpy {np.__version__}): median {t * 1e3:.1f} ms, {2 * n**3 / t / 1e9:.1f} GFLOP/s")
