#!/usr/bin/env python3
"""numpy/OpenBLAS baseline: log-linear Mamba-2, the chunked algorithm of spec §7.2, f32.

Per-level masked scans over chunk states, then one batched read per level, all heads and chunks batched in
matmuls (BLAS); only the scan over chunks is a Python loop (NT · M small steps). Raw operator
o_t = Σ_ℓ λ_t^(ℓ) (S_t^(ℓ))ᵀ q_t, no normalisation, like loglinear's built-in `loglinear_mamba2`.

  python numpy_loglinear_mamba2.py --check      # against a naive O(T²) form and tests/vectors/loglinear_mamba2
  python numpy_loglinear_mamba2.py --bench      # B=1 T=16384 H=4 K=V=64 C=64, median of 5 after a warm-up
"""
import argparse
import json
import math
import pathlib
import struct
import sys
import time

import numpy as np


def bitlen(x):
    x = np.asarray(x)
    out = np.zeros(x.shape, dtype=np.int64)
    y = x.copy()
    while np.any(y > 0):
        out += y > 0
        y >>= 1
    return out


def forward(q, k, v, g, lam, C=64):
    """q, k [B,T,H,K], v [B,T,H,V], g [B,T,H] (log decay ≤ 0), lam [B,T,H,L]; returns o [B,T,H,V] (f32)."""
    f = np.float32
    B, T, H, K = q.shape
    V = v.shape[-1]
    L = lam.shape[-1]
    NT = -(-T // C)
    Tp = NT * C
    c = int(math.log2(C))
    M = int(bitlen(np.array(NT - 1))) if NT > 1 else 0

    def chunks(x, d):  # [B,T,H,d] -> [B,H,NT,C,d], zero-padded
        x = np.pad(x.astype(f), ((0, 0), (0, Tp - T), (0, 0), (0, 0)))
        return np.ascontiguousarray(x.transpose(0, 2, 1, 3).reshape(B, H, NT, C, d))

    Q, Kc, Vc, Lam = chunks(q, K), chunks(k, K), chunks(v, V), chunks(lam, L)
    G = np.pad(g.astype(f), ((0, 0), (0, Tp - T), (0, 0))).transpose(0, 2, 1).reshape(B, H, NT, C)
    gam = np.cumsum(G, axis=-1, dtype=f)  # local, restarts every chunk
    r = np.arange(C)
    lev = bitlen(r[:, None] ^ r[None, :])
    causal = r[None, :] <= r[:, None]
    # (1) intra-chunk: (Q Kᵀ ⊙ exp(γ_r − γ_s) ⊙ λ[r, level(r, s)]) V
    seg = np.where(causal, gam[..., :, None] - gam[..., None, :], -np.inf).astype(f)
    Lm = np.take_along_axis(Lam, np.broadcast_to(np.minimum(lev, L - 1), (B, H, NT, C, C)), axis=-1)
    P = (Q @ Kc.swapaxes(-1, -2)) * np.exp(seg) * np.where(lev < L, Lm, 0)
    O = P @ Vc
    # chunk primitives: write, transition, pseudo-query
    glast = gam[..., -1]
    W = (Kc * np.exp(glast[..., None] - gam)[..., None]).swapaxes(-1, -2) @ Vc  # [B,H,NT,K,V]
    A = np.exp(glast)  # [B,H,NT]
    QT = Q * np.exp(gam)[..., None]
    # (2) one masked scan per chunk level, then its reads (batched over the reader chunks)
    for m in range(M):
        S = np.zeros((B, H, K, V), dtype=f)
        readers = [i for i in range(NT) if (i >> m) & 1]
        enter = np.zeros((B, H, len(readers), K, V), dtype=f)
        j = 0
        period = 1 << (m + 1)
        for i in range(NT):
            if (i >> m) & 1:
                enter[:, :, j] = S
                j += 1
            if i % period == period - 1:
                S = np.zeros_like(S)
            else:
                S = A[:, :, i, None, None] * S
            if not (i >> m) & 1:
                S = S + W[:, :, i]
        if readers and c + 1 + m < L:
            lam_m = Lam[:, :, readers][..., c + 1 + m][..., None]
            O[:, :, readers] += lam_m * (QT[:, :, readers] @ enter)
    return O.reshape(B, H, Tp, V).transpose(0, 2, 1, 3)[:, :T]


def naive(q, k, v, g, lam):
    """o_t = Σ_{s≤t} λ_t^{level(t,s)} exp(γ_t − γ_s) (q_t·k_s) v_s, f64."""
    B, T, H, K = q.shape
    o = np.zeros(v.shape)
    gam = np.cumsum(g.astype(np.float64), axis=1)
    t = np.arange(T)
    lev = bitlen(t[:, None] ^ t[None, :])
    for b in range(B):
        for h in range(H):
            w = (q[b, :, h] @ k[b, :, h].T) * np.exp(np.minimum(gam[b, :, h, None] - gam[b, None, :, h], 0))
            lw = np.take_along_axis(lam[b, :, h], np.minimum(lev, lam.shape[-1] - 1), axis=1)
            o[b, :, h] = np.tril(w * lw) @ v[b, :, h]
    return o


def random_inputs(B, T, H, K, V, rng):
    L = int(bitlen(np.array(max(T - 1, 0)))) + 1
    softplus = lambda x: np.log1p(np.exp(x))
    q = rng.standard_normal((B, T, H, K)) / math.sqrt(K)
    k = rng.standard_normal((B, T, H, K)) / math.sqrt(K)
    v = rng.standard_normal((B, T, H, V))
    g = -softplus(rng.standard_normal((B, T, H))) * 0.5
    lam = softplus(rng.standard_normal((B, T, H, L)))
    return q, k, v, g, lam


def read_safetensors(path):
    data = pathlib.Path(path).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, z = e["data_offsets"]
        dt = {"F64": np.float64, "F32": np.float32, "I64": np.int64}[e["dtype"]]
        out[name] = np.frombuffer(data[8 + n + a : 8 + n + z], dtype=dt).reshape(e["shape"])
    return out


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def check():
    rng = np.random.default_rng(0)
    worst = 0.0
    for T in (1, 37, 130):
        for C in (4, 16):
            x = random_inputs(2, T, 2, 5, 3, rng)
            e = rel(forward(*x, C=C), naive(*x))
            worst = max(worst, e)
            assert e <= 1e-5, f"T={T} C={C}: rel err {e}"
    here = pathlib.Path(__file__).resolve().parents[2]
    vec = read_safetensors(here / "tests/vectors/loglinear_mamba2.safetensors")
    cases = sorted({k.split(".")[0] for k in vec})
    for case in cases:
        x = [vec[f"{case}.{n}"] for n in ("q", "k", "v", "g", "lam")]
        for C in (4, 64):
            e = rel(forward(*x, C=C), vec[f"{case}.o"])
            worst = max(worst, e)
            assert e <= 1e-5, f"{case} C={C}: rel err {e}"
    print(f"check ok: naive (T in 1, 37, 130; C in 4, 16) and {len(cases)} vector cases, worst rel err {worst:.2e}")


def bench(reps=5):
    rng = np.random.default_rng(1)
    x = [a.astype(np.float32) for a in random_inputs(1, 16384, 4, 64, 64, rng)]
    forward(*x)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        forward(*x)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"numpy {np.__version__} loglinear_mamba2 B=1 T=16384 H=4 K=V=64 C=64 f32: median {times[len(times) // 2]:.3f} s, min {times[0]:.3f} s ({reps} reps)")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--check", action="store_true")
    p.add_argument("--bench", action="store_true")
    a = p.parse_args()
    if a.check:
        check()
    if a.bench:
        bench()
    if not (a.check or a.bench):
        p.print_help()
        sys.exit(2)
