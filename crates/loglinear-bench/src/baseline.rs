//! The hand-written baseline: the chunked algorithm of spec §7.2 written directly in Rust, in f32, the way a user
//! would write it without loglinear: per (batch, head), the intra-chunk block `(Q Kᵀ ⊙ decay ⊙ λ-mask) · V`, then
//! one masked chunk scan per chunk level; rustc compiles it ahead of time.
//!
//! Two transition families are covered:
//!
//! * **scalar decay** (`A_t = exp(g_t) I`): linear attention (`g ≡ 0`), RetNet (constant `g_h`), Mamba-2;
//! * **(gated) delta rule** (`A_t = exp(g_t) (I − β_t k_t k_tᵀ)`): DeltaNet, Gated DeltaNet, with the chunk
//!   primitives of spec §5.4 (WY / UT transform by forward substitution).
//!
//! Both log-linear (Fenwick λ) and linear (λ ≡ 1, a single carried state) forms are supported. Per-channel
//! decay (GLA) is not: [`prepare`] returns [`BaselineError::Unsupported`].
//!
//! Only [`BaselineProblem::run`] is meant to be timed; [`prepare`] converts the inputs to f32 per head once.

use std::fmt;

use loglinear_ir::level::bitlen;
use loglinear_ir::{resolve, HeadTransition, HostTensor, InputError, TensorMap, VariantIr};

/// Why the baseline cannot run a variant.
#[derive(Debug)]
pub enum BaselineError {
    /// The inputs do not fit the variant.
    Input(InputError),
    /// The variant's transition (or write) is not one the hand-written baseline covers.
    Unsupported(String),
}

impl fmt::Display for BaselineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaselineError::Input(e) => write!(f, "{e}"),
            BaselineError::Unsupported(why) => write!(f, "not covered by the hand-written baseline: {why}"),
        }
    }
}

impl std::error::Error for BaselineError {}

impl From<InputError> for BaselineError {
    fn from(e: InputError) -> Self {
        BaselineError::Input(e)
    }
}

/// Which chunk algorithm a problem uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaselineKind {
    /// Scalar (or no) decay: `A_t = exp(g_t) I`.
    ScalarDecay,
    /// Delta rule with optional scalar gate: `A_t = exp(g_t) (I − β_t k_t k_tᵀ)`.
    GatedDelta,
}

/// One (batch, head) problem in f32, rows of `[T, D]`.
#[derive(Clone, Debug)]
struct Head {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Log decay per token; `None`: no decay.
    g: Option<Vec<f32>>,
    /// Write scale per token (β for the delta rule); `None`: 1.
    scale: Option<Vec<f32>>,
    /// β per token (delta rule only).
    beta: Vec<f32>,
    /// λ, `T × lam_stride`; `None` for linear variants.
    lam: Option<Vec<f32>>,
    lam_stride: usize,
}

/// A variant's inputs prepared for the baseline: f32, split per (batch, head).
#[derive(Clone, Debug)]
pub struct BaselineProblem {
    /// The algorithm used.
    pub kind: BaselineKind,
    /// Sizes `(B, T, H, K, V)`.
    pub shape: (usize, usize, usize, usize, usize),
    heads: Vec<Head>,
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&a| a as f32).collect()
}

/// Checks `inputs` against `variant`, evaluates its preprocessing (through [`loglinear_ir::resolve`]) and converts
/// every head to f32.
///
/// # Errors
/// [`BaselineError::Input`] for inputs that do not fit; [`BaselineError::Unsupported`] for per-channel decay, or
/// a delta rule whose erasure key differs from its write key.
pub fn prepare(variant: &VariantIr, inputs: &TensorMap) -> Result<BaselineProblem, BaselineError> {
    let r = resolve(variant, inputs)?;
    let d = r.dims;
    let mut kind = None;
    let mut heads = Vec::with_capacity(d.b * d.h);
    for p in r.heads() {
        let (k_, g, beta) = match &p.transition {
            HeadTransition::Identity => (BaselineKind::ScalarDecay, None, Vec::new()),
            HeadTransition::Scalar { g } => (BaselineKind::ScalarDecay, Some(f32s(g)), Vec::new()),
            HeadTransition::Diagonal { .. } => {
                return Err(BaselineError::Unsupported(format!(
                    "`{}` has a per-channel (diagonal) decay",
                    variant.name
                )))
            }
            HeadTransition::Delta { g, beta, key } => {
                if key != &p.key {
                    return Err(BaselineError::Unsupported(format!(
                        "`{}` erases with a key other than its write key",
                        variant.name
                    )));
                }
                (BaselineKind::GatedDelta, g.as_deref().map(f32s), f32s(beta))
            }
        };
        kind = Some(k_);
        heads.push(Head {
            q: f32s(&p.q),
            k: f32s(&p.key),
            v: f32s(&p.value),
            g,
            scale: p.scale.as_deref().map(f32s),
            beta,
            lam: p.lambda.as_deref().map(f32s),
            lam_stride: p.lambda_stride,
        });
    }
    Ok(BaselineProblem { kind: kind.unwrap_or(BaselineKind::ScalarDecay), shape: (d.b, d.t, d.h, d.k, d.v), heads })
}

impl BaselineProblem {
    /// Runs the chunked algorithm with chunk size `chunk` (a power of two ≥ 1) on `threads` threads (heads are
    /// split between them; `1` is a plain loop); returns `o` as `[B, T, H, V]` row-major f32.
    ///
    /// # Panics
    /// When `chunk` is not a power of two.
    pub fn run(&self, chunk: usize, threads: usize) -> Vec<f32> {
        assert!(chunk.is_power_of_two(), "chunk size {chunk} is not a power of two");
        let (b, t, h, k, v) = self.shape;
        let mut outs = vec![vec![0f32; t * v]; b * h];
        let threads = threads.clamp(1, outs.len().max(1));
        let per = outs.len().div_ceil(threads).max(1);
        let work = |heads: &[Head], outs: &mut [Vec<f32>]| {
            for (p, o) in heads.iter().zip(outs.iter_mut()) {
                match self.kind {
                    BaselineKind::ScalarDecay => scalar_head(p, t, k, v, chunk, o),
                    BaselineKind::GatedDelta => delta_head(p, t, k, v, chunk, o),
                }
            }
        };
        if threads == 1 {
            work(&self.heads, &mut outs);
        } else {
            std::thread::scope(|s| {
                for (hs, os) in self.heads.chunks(per).zip(outs.chunks_mut(per)) {
                    s.spawn(move || work(hs, os));
                }
            });
        }
        let mut o = vec![0f32; b * t * h * v];
        for (bh, out) in outs.iter().enumerate() {
            let (bi, hi) = (bh / h, bh % h);
            for ti in 0..t {
                let dst = ((bi * t + ti) * h + hi) * v;
                o[dst..dst + v].copy_from_slice(&out[ti * v..(ti + 1) * v]);
            }
        }
        o
    }

    /// [`BaselineProblem::run`] on one thread, widened to an f64 [`HostTensor`] `[B, T, H, V]`.
    pub fn run_tensor(&self, chunk: usize) -> HostTensor {
        let (b, t, h, _, v) = self.shape;
        HostTensor::new(vec![b, t, h, v], self.run(chunk, 1).into_iter().map(f64::from).collect())
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += a · x`.
#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `out += w · Sᵀ q` for a K×V state `s`.
#[inline]
fn read_state(out: &mut [f32], w: f32, q: &[f32], s: &[f32], v: usize) {
    for (i, qi) in q.iter().enumerate() {
        let c = w * qi;
        if c != 0.0 {
            axpy(out, c, &s[i * v..(i + 1) * v]);
        }
    }
}

/// Local inclusive cumulative log decay, restarting every chunk (spec §7.2).
fn local_cumsum(g: Option<&[f32]>, t: usize, cs: usize) -> Vec<f32> {
    let mut gam = vec![0f32; t];
    if let Some(g) = g {
        for a in (0..t).step_by(cs) {
            let mut acc = 0f32;
            for r in a..(a + cs).min(t) {
                acc += g[r];
                gam[r] = acc;
            }
        }
    }
    gam
}

/// Scalar-decay head (spec §7.2 pseudocode).
fn scalar_head(p: &Head, t: usize, k: usize, v: usize, cs: usize, o: &mut [f32]) {
    let c = cs.trailing_zeros() as usize;
    let nt = t.div_ceil(cs);
    let gam = local_cumsum(p.g.as_deref(), t, cs);
    let scale = |s: usize| p.scale.as_ref().map_or(1.0, |x| x[s]);
    let lam = |r: usize, l: usize| p.lam.as_ref().map_or(1.0, |x| x[r * p.lam_stride + l]);

    // (1) intra-chunk: P = (Q Kᵀ) ⊙ exp(γ_r − γ_s) ⊙ λ[r, level] (s ≤ r), o = P V.
    let mut pm = vec![0f32; cs * cs];
    for a in (0..t).step_by(cs) {
        let n = cs.min(t - a);
        for r in 0..n {
            let qr = &p.q[(a + r) * k..(a + r + 1) * k];
            for s in 0..=r {
                let ks = &p.k[(a + s) * k..(a + s + 1) * k];
                let lvl = bitlen((r ^ s) as u64) as usize;
                pm[r * cs + s] = dot(qr, ks) * (gam[a + r] - gam[a + s]).exp() * lam(a + r, lvl) * scale(a + s);
            }
        }
        for r in 0..n {
            let orow = &mut o[(a + r) * v..(a + r + 1) * v];
            for s in 0..=r {
                axpy(orow, pm[r * cs + s], &p.v[(a + s) * v..(a + s + 1) * v]);
            }
        }
    }

    // (2) inter-chunk: one masked scan per chunk level; linear variants carry one state over every chunk.
    let mut st = vec![0f32; k * v];
    let write = |st: &mut [f32], a: usize, n: usize| {
        let last = gam[a + n - 1];
        for r in 0..n {
            let w = (last - gam[a + r]).exp() * scale(a + r);
            let vr = &p.v[(a + r) * v..(a + r + 1) * v];
            for (i, kri) in p.k[(a + r) * k..(a + r + 1) * k].iter().enumerate() {
                axpy(&mut st[i * v..(i + 1) * v], w * kri, vr);
            }
        }
    };
    if p.lam.is_none() {
        for i in 0..nt {
            let (a, n) = (i * cs, cs.min(t - i * cs));
            if i > 0 {
                for r in 0..n {
                    let qr = &p.q[(a + r) * k..(a + r + 1) * k];
                    read_state(&mut o[(a + r) * v..(a + r + 1) * v], gam[a + r].exp(), qr, &st, v);
                }
            }
            let decay = gam[a + n - 1].exp();
            st.iter_mut().for_each(|x| *x *= decay);
            write(&mut st, a, n);
        }
        return;
    }
    let levels = if nt > 1 { bitlen(nt as u64 - 1) as usize } else { 0 };
    for m in 0..levels {
        let lvl = c + 1 + m;
        let period = 1usize << (m + 1);
        st.iter_mut().for_each(|x| *x = 0.0);
        let mut live = false;
        for i in 0..nt {
            let (a, n) = (i * cs, cs.min(t - i * cs));
            let reader = (i >> m) & 1 == 1;
            if reader && live {
                for r in 0..n {
                    let w = lam(a + r, lvl) * gam[a + r].exp();
                    let qr = &p.q[(a + r) * k..(a + r + 1) * k];
                    read_state(&mut o[(a + r) * v..(a + r + 1) * v], w, qr, &st, v);
                }
            }
            if i % period == period - 1 {
                if live {
                    st.iter_mut().for_each(|x| *x = 0.0);
                    live = false;
                }
            } else if live {
                let decay = gam[a + n - 1].exp();
                st.iter_mut().for_each(|x| *x *= decay);
            }
            if !reader && i + 1 < nt {
                write(&mut st, a, n);
                live = true;
            }
        }
    }
}

/// The chunk primitives of the delta rule (spec §5.4), for one chunk of `n` rows.
struct DeltaChunk {
    /// Pseudo-queries q̃, n×K.
    qt: Vec<f32>,
    /// K̃_r = exp(γ_last − γ_r) k_r, n×K.
    kt: Vec<f32>,
    /// W̃_r = exp(γ_r) w_r, n×K.
    wt: Vec<f32>,
    /// Pseudo-values U, n×V.
    u: Vec<f32>,
    /// exp(γ_last).
    decay: f32,
}

/// Gated delta-rule head: §5.4 chunk primitives, then the §7.2 scans with the GDN substitutions.
fn delta_head(p: &Head, t: usize, k: usize, v: usize, cs: usize, o: &mut [f32]) {
    let c = cs.trailing_zeros() as usize;
    let nt = t.div_ceil(cs);
    let gam = local_cumsum(p.g.as_deref(), t, cs);
    let scale = |s: usize| p.scale.as_ref().map_or(1.0, |x| x[s]);
    let lam = |r: usize, l: usize| p.lam.as_ref().map_or(1.0, |x| x[r * p.lam_stride + l]);

    let mut kk = vec![0f32; cs * cs];
    let mut qk = vec![0f32; cs * cs];
    let mut x = vec![0f32; cs * cs];
    let mut chunks = Vec::with_capacity(nt);
    for a in (0..t).step_by(cs) {
        let n = cs.min(t - a);
        let row = |r: usize, d: usize| (a + r) * d..(a + r + 1) * d;
        for r in 0..n {
            for s in 0..=r {
                kk[r * cs + s] = dot(&p.k[row(r, k)], &p.k[row(s, k)]);
                qk[r * cs + s] = dot(&p.q[row(r, k)], &p.k[row(s, k)]);
            }
        }
        // W = T_w diag(β) K and U = T_u diag(scale) V by forward substitution:
        // w_r = β_r k_r − β_r Σ_{s<r} (k_r·k_s) w_s;  u_r = c_r v_r − β_r Σ_{s<r} (k_r·k_s) exp(γ_r − γ_s) u_s.
        let mut w = vec![0f32; n * k];
        let mut u = vec![0f32; n * v];
        for r in 0..n {
            let br = p.beta[a + r];
            let (done_w, wr) = w.split_at_mut(r * k);
            let wr = &mut wr[..k];
            axpy(wr, br, &p.k[row(r, k)]);
            let (done_u, ur) = u.split_at_mut(r * v);
            let ur = &mut ur[..v];
            axpy(ur, scale(a + r), &p.v[row(r, v)]);
            for s in 0..r {
                let e = br * kk[r * cs + s];
                if e != 0.0 {
                    axpy(wr, -e, &done_w[s * k..(s + 1) * k]);
                    axpy(ur, -e * (gam[a + r] - gam[a + s]).exp(), &done_u[s * v..(s + 1) * v]);
                }
            }
        }
        // X = tril(Q Kᵀ) T_w by back substitution on X (I + A) = tril(Q Kᵀ), A[u,s] = β_u (k_u·k_s), u > s.
        for r in 0..n {
            for s in (0..=r).rev() {
                let mut acc = qk[r * cs + s];
                for uu in s + 1..=r {
                    acc -= x[r * cs + uu] * p.beta[a + uu] * kk[uu * cs + s];
                }
                x[r * cs + s] = acc;
            }
        }
        // Intra: o_r += Σ_{s≤r} X[r,s] exp(γ_r − γ_s) c_s λ[r, level] v_s.
        for r in 0..n {
            let orow = &mut o[(a + r) * v..(a + r + 1) * v];
            for s in 0..=r {
                let lvl = bitlen((r ^ s) as u64) as usize;
                let pw = x[r * cs + s] * (gam[a + r] - gam[a + s]).exp() * scale(a + s) * lam(a + r, lvl);
                axpy(orow, pw, &p.v[row(s, v)]);
            }
        }
        if nt == 1 {
            break;
        }
        // q̃_r = exp(γ_r) (q_r − Σ_{u≤r} (q_r·k_u) w_u); K̃_r = exp(γ_last − γ_r) k_r; W̃_r = exp(γ_r) w_r.
        let last = gam[a + n - 1];
        let mut qt = vec![0f32; n * k];
        let mut kt = vec![0f32; n * k];
        let mut wt = vec![0f32; n * k];
        for r in 0..n {
            let er = gam[a + r].exp();
            let qtr = &mut qt[r * k..(r + 1) * k];
            qtr.copy_from_slice(&p.q[row(r, k)]);
            for uu in 0..=r {
                axpy(qtr, -qk[r * cs + uu], &w[uu * k..(uu + 1) * k]);
            }
            qtr.iter_mut().for_each(|z| *z *= er);
            axpy(&mut kt[r * k..(r + 1) * k], (last - gam[a + r]).exp(), &p.k[row(r, k)]);
            axpy(&mut wt[r * k..(r + 1) * k], er, &w[r * k..(r + 1) * k]);
        }
        chunks.push(DeltaChunk { qt, kt, wt, u, decay: last.exp() });
    }
    if nt == 1 {
        return;
    }

    let mut st = vec![0f32; k * v];
    let mut ws = vec![0f32; cs * v];
    // S ← exp(γ_last) S − K̃ᵀ (W̃ S)
    let transition = |st: &mut [f32], ws: &mut [f32], ch: &DeltaChunk| {
        let n = ch.u.len() / v;
        for r in 0..n {
            let wsr = &mut ws[r * v..(r + 1) * v];
            wsr.iter_mut().for_each(|z| *z = 0.0);
            read_state(wsr, 1.0, &ch.wt[r * k..(r + 1) * k], st, v);
        }
        st.iter_mut().for_each(|z| *z *= ch.decay);
        for r in 0..n {
            for i in 0..k {
                let kti = ch.kt[r * k + i];
                if kti != 0.0 {
                    axpy(&mut st[i * v..(i + 1) * v], -kti, &ws[r * v..(r + 1) * v]);
                }
            }
        }
    };
    // S += K̃ᵀ U
    let write = |st: &mut [f32], ch: &DeltaChunk| {
        let n = ch.u.len() / v;
        for r in 0..n {
            for i in 0..k {
                axpy(&mut st[i * v..(i + 1) * v], ch.kt[r * k + i], &ch.u[r * v..(r + 1) * v]);
            }
        }
    };
    let read = |o: &mut [f32], st: &[f32], ch: &DeltaChunk, i: usize, lvl: Option<usize>| {
        let a = i * cs;
        let n = ch.u.len() / v;
        for r in 0..n {
            let w = lvl.map_or(1.0, |l| lam(a + r, l));
            read_state(&mut o[(a + r) * v..(a + r + 1) * v], w, &ch.qt[r * k..(r + 1) * k], st, v);
        }
    };
    if p.lam.is_none() {
        for (i, ch) in chunks.iter().enumerate() {
            if i > 0 {
                read(o, &st, ch, i, None);
                transition(&mut st, &mut ws, ch);
            }
            write(&mut st, ch);
        }
        return;
    }
    let levels = bitlen(nt as u64 - 1) as usize;
    for m in 0..levels {
        let lvl = c + 1 + m;
        let period = 1usize << (m + 1);
        st.iter_mut().for_each(|z| *z = 0.0);
        let mut live = false;
        for (i, ch) in chunks.iter().enumerate() {
            let reader = (i >> m) & 1 == 1;
            if reader && live {
                read(o, &st, ch, i, Some(lvl));
            }
            if i % period == period - 1 {
                if live {
                    st.iter_mut().for_each(|z| *z = 0.0);
                    live = false;
                }
            } else if live {
                transition(&mut st, &mut ws, ch);
            }
            if !reader && i + 1 < nt {
                write(&mut st, ch);
                live = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loglinear_ir::builtins;
    use loglinear_ir::random::random_inputs;
    use loglinear_oracle::Form;

    fn rel(x: &HostTensor, r: &HostTensor) -> f64 {
        assert_eq!(x.shape, r.shape);
        let d: f64 = x.data.iter().zip(&r.data).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
        let n: f64 = r.data.iter().map(|b| b * b).sum::<f64>().sqrt();
        if n == 0.0 {
            d
        } else {
            d / n
        }
    }

    const COVERED: [&str; 10] = [
        "linear_attention",
        "retnet",
        "mamba2",
        "deltanet",
        "gated_deltanet",
        "loglinear_linear_attention",
        "loglinear_retnet",
        "loglinear_mamba2",
        "loglinear_deltanet",
        "loglinear_gated_deltanet",
    ];

    #[test]
    fn agrees_with_the_oracle() {
        let mut checked = 0;
        for name in COVERED {
            let var = builtins::by_name(name).unwrap();
            for &(shape, chunks) in &[
                ((1, 1, 1, 4, 3), &[1usize, 4][..]),
                ((2, 37, 2, 5, 3), &[1, 4, 16, 64][..]),
                ((1, 65, 1, 8, 8), &[4, 16][..]),
                ((1, 257, 1, 4, 6), &[16, 64][..]),
            ] {
                let x = random_inputs(&var, shape, 2, 11);
                let want = loglinear_oracle::run(&var, &x, Form::Naive).unwrap();
                let prob = prepare(&var, &x).unwrap();
                for &c in chunks {
                    let got = prob.run_tensor(c);
                    let e = rel(&got, &want);
                    assert!(e <= 1e-4, "{name} shape {shape:?} chunk {c}: relative error {e:.3e} > 1e-4");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, COVERED.len() * 10);
    }

    #[test]
    fn threads_give_the_same_result() {
        let var = builtins::by_name("loglinear_gated_deltanet").unwrap();
        let x = random_inputs(&var, (2, 50, 3, 4, 5), 0, 3);
        let prob = prepare(&var, &x).unwrap();
        assert_eq!(prob.run(8, 1), prob.run(8, 4));
        assert_eq!(prob.run(8, 1), prob.run(8, 64));
    }

    #[test]
    fn extreme_decay_stays_finite() {
        for name in ["loglinear_mamba2", "loglinear_gated_deltanet"] {
            let var = builtins::by_name(name).unwrap();
            let mut x = random_inputs(&var, (1, 40, 1, 4, 4), 0, 5);
            x.get_mut("g").unwrap().data.iter_mut().for_each(|g| *g = -50.0);
            let want = loglinear_oracle::run(&var, &x, Form::Naive).unwrap();
            let got = prepare(&var, &x).unwrap().run_tensor(8);
            assert!(got.data.iter().all(|z| z.is_finite()), "{name}");
            assert!(rel(&got, &want) <= 1e-4, "{name}: {:.3e}", rel(&got, &want));
        }
    }

    #[test]
    fn gla_and_bad_inputs_are_refused() {
        let gla = builtins::by_name("loglinear_gla").unwrap();
        let x = random_inputs(&gla, (1, 8, 1, 4, 4), 0, 1);
        assert!(matches!(prepare(&gla, &x), Err(BaselineError::Unsupported(_))));
        let m = builtins::by_name("loglinear_mamba2").unwrap();
        let mut x = random_inputs(&m, (1, 8, 1, 4, 4), 0, 1);
        x.remove("v");
        let e = prepare(&m, &x).unwrap_err();
        assert!(matches!(e, BaselineError::Input(_)) && e.to_string().contains('v'), "{e}");
    }
}
