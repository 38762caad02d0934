#!/usr/bin/env python3
"""numpy/OpenBLAS baseline: log-linear Mamba-2, the chunked algorithm of spec §7.2, f32.

Computes the raw operator (no normalisation, no scaling; the built-in `loglinear_mamba2`)

    o_t = Σ_ℓ λ_t^(ℓ) (S_t^(ℓ))ᵀ q_t = Σ_{s≤t} λ_t^{level(t,s)} exp(γ_t − γ_s) (q_t·k_s) v_s

for q, k [B,T,H,K], v [B,T,H,V], g [B,T,H] (log decay ≤ 0, γ = cumsum g), lam [B,T,H,L], L ≥ bitlen(T−1)+1.
All (b, h) pairs and all chunks are batched in np.matmul (BLAS sgemm); there is no Python loop over chunks,
only over the M = bitlen(NT−1) chunk levels. Exponentials are only ever taken of non-positive numbers.

  (1) intra-chunk: O_i = (Q_i K_iᵀ ⊙ exp(γ_r − γ_s)[s≤r] ⊙ λ_r[bitlen(r XOR s)]) V_i           (γ local to the chunk)
  (2) chunk states: W_i = K_iᵀ diag(exp(γ_last − γ_r)) V_i
  (3) for chunk level m (token level c+1+m), period P = 2^(m+1), half h = 2^m: the readers of period p are its
      chunks pP+h..pP+P−1, and the state entering reader chunk i is exp(D_i) X_p, where X_p is the decayed sum
      (to the end of the writer half) of the chunk states of the writer half pP..pP+h−1 and D_i ≤ 0 is the log
      decay from the end of the writer half to the start of chunk i. So, per period, one GEMM
          O[reader rows] += λ_r[c+1+m] · exp(γ_r + D_i) · (Q[reader rows] X_p).
      X_p at level m is the level-m block sum Y^(m)_{2p}, and Y^(m+1)_q = exp(a_{2q+1}) Y^(m)_{2q} + Y^(m)_{2q+1}
      (a = a block's total log decay) — the bit structure of the chunk index as a tree of 2·NT·K·V adds,
      the same sums as §7.2's sequential masked scan.

  python numpy_loglinear_mamba2.py --check      # vs a naive O(T²) form and tests/vectors/loglinear_mamba2
  python numpy_loglinear_mamba2.py --bench      # B=1 T=16384 H=4 K=V=64 C=64: warm-up + 5 timed calls
"""
import argparse
import ctypes
import glob
import json
import math
import os
import pathlib
import statistics
import struct
import sys
import time

import numpy as np

f32 = np.float32


def bitlen(x):
    """Elementwise bit length of non-negative integers (integer ops only)."""
    x = np.array(x, dtype=np.int64)
    out = np.zeros(x.shape, dtype=np.int64)
    while np.any(x > 0):
        out += x > 0
        x >>= 1
    return out


def forward(q, k, v, g, lam, C=64):
    """Chunked forward, f32. q, k [B,T,H,K], v [B,T,H,V], g [B,T,H], lam [B,T,H,L]; returns o [B,T,H,V] f32."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    L = lam.shape[-1]
    assert C > 0 and C & (C - 1) == 0, "C must be a power of two"
    assert L >= int(bitlen(max(T - 1, 0))) + 1, "lam needs L >= bitlen(T-1)+1 levels"
    c = C.bit_length() - 1
    NT = -(-T // C)
    Tp = NT * C
    M = int(bitlen(NT - 1))

    def to_chunks(x):  # [B,T,H,...] -> [B,H,NT,C,...] f32, contiguous, zero-padded to NT·C
        x = np.asarray(x, dtype=f32)
        x = np.moveaxis(x, 2, 1)
        if Tp != T:
            x = np.pad(x, [(0, 0), (0, 0), (0, Tp - T)] + [(0, 0)] * (x.ndim - 3))
        return np.ascontiguousarray(x).reshape((B, H, NT, C) + x.shape[3:])

    Q, Kc, Vc, G, Lam = (to_chunks(a) for a in (q, k, v, g, lam))
    # Decays as direct sums of g (never differences of cumulative sums, which lose digits when |γ| is large)
    gam = np.cumsum(G, axis=-1, dtype=f32)  # [B,H,NT,C] γ_r, local to each chunk, ≤ 0
    glast = gam[..., -1]  # [B,H,NT]: each chunk's total log decay (padding has g = 0)
    tail = np.zeros_like(G)  # γ_last − γ_r = Σ_{u>r} g_u
    tail[..., :-1] = np.cumsum(G[..., :0:-1], axis=-1, dtype=f32)[..., ::-1]

    # (1) intra-chunk
    r = np.arange(C)
    lev = bitlen(r[:, None] ^ r[None, :])  # [C,C] in-chunk level table (§2.5)
    strict = r[:, None] > r[None, :]
    E = np.where(strict, G[..., :, None], f32(0))  # row u, column s: g_u if u > s
    np.cumsum(E, axis=-2, out=E)  # segment sums γ_r − γ_s = Σ_{s<u≤r} g_u ≤ 0
    np.copyto(E, f32(-np.inf), where=strict.T)  # s > r: exp → 0
    np.exp(E, out=E)
    E *= np.take(Lam.reshape(B, H, NT, C * L), (r[:, None] * L + np.minimum(lev, L - 1)).ravel(), axis=-1).reshape(
        B, H, NT, C, C)  # λ_r[level(r, s)]
    P = Q @ Kc.swapaxes(-1, -2)
    P *= E
    O = P @ Vc  # [B,H,NT,C,V]
    del E, P

    # (2) chunk states W_i = K_iᵀ diag(exp(γ_last − γ_r)) V_i, [B,H,NT,K,V]
    Y = (Kc * np.exp(tail)[..., None]).swapaxes(-1, -2) @ Vc
    a = glast.copy()  # block log decays at the current level

    # (3) inter-chunk levels: one batched GEMM per level over the full periods (+ one for a partial last period)
    for m in range(M):
        h, per = 1 << m, 2 << m
        if Y.shape[2] % 2:  # odd number of blocks: pad one empty block
            Y = np.concatenate([Y, np.zeros_like(Y[:, :, :1])], axis=2)
            a = np.concatenate([a, np.zeros_like(a[:, :, :1])], axis=2)
        X = Y[:, :, 0::2]  # [B,H,nper,K,V]: each period's writer-half sum, decayed to the end of the half
        nf = NT // per  # full periods; then maybe a partial last period with w < h reader chunks
        w_last = min(NT - nf * per - h, h)
        groups = [(0, nf, per, h)] if nf else []  # (first period, periods, chunks spanned per period, readers)
        if w_last > 0:
            groups.append((nf, 1, h + w_last, w_last))
        for p0, n, span, w in groups:
            # view: chunk-level array [B,H,NT,...] -> its reader chunks in these periods [B,H,n,w,...]
            def view(x):
                x = x[:, :, p0 * per : p0 * per + n * span]
                return x.reshape((B, H, n, span) + x.shape[3:])[:, :, :, h : h + w]

            dec = view(glast)  # [B,H,n,w] log decay of each reader chunk
            D = np.zeros_like(dec)  # exclusive cumsum: log decay from the end of the writer half to each chunk
            np.cumsum(dec[..., :-1], axis=-1, dtype=f32, out=D[..., 1:])
            scale = view(Lam[..., c + 1 + m]) * np.exp(view(gam) + D[..., None])  # [B,H,n,w,C]
            R = (view(Q).reshape(B, H, n, w * C, K) @ X[:, :, p0 : p0 + n]).reshape(B, H, n, w, C, V)
            R *= scale[..., None]
            Ov = view(O)  # a view: the += lands in O
            Ov += R
        # next level: pair up blocks (block 2q decays through block 2q+1)
        Y = np.exp(a[:, :, 1::2])[..., None, None] * Y[:, :, 0::2] + Y[:, :, 1::2]
        a = a[:, :, 0::2] + a[:, :, 1::2]
    return np.moveaxis(O.reshape(B, H, Tp, V)[:, :, :T], 1, 2)


def naive(q, k, v, g, lam):
    """§3.2: o_t = Σ_{s≤t} λ_t^{level(t,s)} exp(γ_t − γ_s) (q_t·k_s) v_s, f64, O(T²)."""
    B, T, H, K = q.shape
    o = np.zeros(v.shape)
    gam = np.cumsum(np.asarray(g, dtype=np.float64), axis=1)
    t = np.arange(T)
    lev = bitlen(t[:, None] ^ t[None, :])
    causal = t[None, :] <= t[:, None]
    for b in range(B):
        for hh in range(H):
            seg = np.where(causal, gam[b, :, hh, None] - gam[b, None, :, hh], -np.inf)
            lw = np.take_along_axis(lam[b, :, hh], np.where(causal, lev, 0), axis=1)
            o[b, :, hh] = (q[b, :, hh] @ k[b, :, hh].T * np.exp(seg) * lw) @ v[b, :, hh]
    return o


def random_inputs(B, T, H, K, V, rng, dtype=np.float64):
    L = int(bitlen(max(T - 1, 0))) + 1
    softplus = lambda x: np.logaddexp(0.0, x)
    q = rng.standard_normal((B, T, H, K)) / math.sqrt(K)
    k = rng.standard_normal((B, T, H, K)) / math.sqrt(K)
    v = rng.standard_normal((B, T, H, V))
    g = -softplus(rng.standard_normal((B, T, H))) * 0.5
    lam = softplus(rng.standard_normal((B, T, H, L)))
    return [x.astype(dtype) for x in (q, k, v, g, lam)]


def read_safetensors(path):
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    dtypes = {"F64": "<f8", "F32": "<f4", "I64": "<i8", "I32": "<i4"}
    out = {}
    for name, e in header.items():
        if name != "__metadata__":
            a, z = e["data_offsets"]
            out[name] = np.frombuffer(data[8 + n + a : 8 + n + z], dtype=dtypes[e["dtype"]]).reshape(e["shape"])
    return out


def rel(x, ref):
    return float(np.linalg.norm(np.asarray(x, np.float64) - ref) / max(np.linalg.norm(ref), 1e-300))


def check(tol=1e-5):
    rng = np.random.default_rng(0)
    worst, n = 0.0, 0
    for T in (1, 37, 130, 300, 1000):
        for C in (4, 16, 64):
            x = random_inputs(2, T, 2, 5, 3, rng)
            x32 = [a.astype(f32).astype(np.float64) for a in x]  # the reference sees the same f32 inputs
            e = rel(forward(*x, C=C), naive(*x32))
            print(f"  naive  B=2 T={T:<4} H=2 K=5 V=3 C={C:<3} rel err {e:.2e}")
            assert e <= tol, f"T={T} C={C}: rel err {e}"
            worst, n = max(worst, e), n + 1
    path = pathlib.Path(__file__).resolve().parents[2] / "tests/vectors/loglinear_mamba2.safetensors"
    vec = read_safetensors(path)
    for case in sorted({key.split(".")[0] for key in vec}, key=lambda s: int(s[4:])):
        x = [vec[f"{case}.{name}"] for name in ("q", "k", "v", "g", "lam")]
        for C in (4, 16, 64):
            e = rel(forward(*x, C=C), vec[f"{case}.o"])
            print(f"  vector {case} {list(x[0].shape)} L={x[4].shape[-1]} C={C:<3} rel err {e:.2e}")
            assert e <= tol, f"{case} C={C}: rel err {e}"
            worst, n = max(worst, e), n + 1
    print(f"check ok: {n} comparisons, worst rel err {worst:.2e} (tol {tol:g})")


def blas_info():
    cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    info = f"{cfg.get('name')} {cfg.get('version')}"
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*"))
    for lib in libs:
        try:
            so = ctypes.CDLL(lib)
            so.scipy_openblas_get_corename64_.restype = ctypes.c_char_p
            info += f", core {so.scipy_openblas_get_corename64_().decode()}, {so.scipy_openblas_get_num_threads64_()} BLAS threads"
        except (OSError, AttributeError):
            pass
    env = {v: os.environ[v] for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if v in os.environ}
    return f"numpy {np.__version__}, {info}, cpus {os.cpu_count()}, env {env or '{}'}"


def bench(B=1, T=16384, H=4, K=64, V=64, C=64, reps=5):
    x = random_inputs(B, T, H, K, V, np.random.default_rng(1), dtype=f32)
    forward(*x, C=C)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        forward(*x, C=C)
        times.append(time.perf_counter() - t0)
    print(f"loglinear_mamba2 numpy f32 B={B} T={T} H={H} K={K} V={V} C={C}: "
          f"median {statistics.median(times):.4f} s, min {min(times):.4f} s ({reps} timed calls after 1 warm-up)")
    print(f"  {blas_info()}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="compare against the naive form and the test vectors")
    p.add_argument("--bench", action="store_true", help="time B=1 T=16384 H=4 K=V=64 C=64")
    a = p.parse_args()
    if a.check:
        check()
    if a.bench:
        bench()
    if not (a.check or a.bench):
        p.print_help()
        sys.exit(2)
