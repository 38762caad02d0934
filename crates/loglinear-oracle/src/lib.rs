//! # loglinear-oracle: f64 ground truth
//!
//! Three independent derivations of the operator `o_t = Σ_ℓ λ_t^(ℓ) (S_t^(ℓ))ᵀ q_t` (spec §3.1), generic over
//! every transition class through [`HeadProblem::apply_state`] and [`HeadProblem::apply_row`]:
//!
//! * [`naive`]: the masked/quadratic form (spec §11.1 (1)): for each query walk the sources backwards, carrying
//!   the row vector `q_tᵀ A_t ··· A_{s+1}`; levels from [`level`]. O(T²(K+V)); the only place anything T×T is
//!   touched, and nothing T×T is stored.
//! * [`recurrent`]: the token recurrence with O(log T) Fenwick states (spec §6.2).
//! * [`chunked`]: the per-level masked chunk scan (spec §7.2) for any power-of-two chunk size, partial last
//!   chunk included, with the chunk primitives (transition, write, pseudo-query) obtained by composing the
//!   class's per-token operators; [`fused`]: the same with all chunk levels carried in one pass (end of §7.2).
//!
//! Linear variants (no hierarchy) are the case λ ≡ 1.

use loglinear_ir::level::{bitlen, level, lssb, num_levels};
use loglinear_ir::{resolve, HeadProblem, HostTensor, InputError, TensorMap, VariantIr};

/// Which oracle form to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// Masked quadratic form.
    Naive,
    /// Token recurrence over Fenwick states.
    Recurrent,
    /// Per-level chunked scan with this chunk size (a power of two).
    Chunked(usize),
    /// Fused chunk-carry pass with this chunk size (a power of two).
    Fused(usize),
}

/// Evaluates one head problem; returns `o` as T×V row-major.
///
/// # Panics
/// When a chunked form is given a chunk size that is zero or not a power of two (callers validate it).
pub fn head(p: &HeadProblem, form: Form) -> Vec<f64> {
    match form {
        Form::Naive => naive(p),
        Form::Recurrent => recurrent(p),
        Form::Chunked(c) => chunked(p, c),
        Form::Fused(c) => fused(p, c),
    }
}

/// The token recurrence on every (batch, head) from position `t0` with initial states `state` (`[B, H, L, K, V]`,
/// `None`: zero; for a linear variant `L = 1`): `o` `[B, T, H, V]` and the final states, same layout, with
/// `levels` levels (≥ what position `t0 + T − 1` needs).
///
/// # Errors
/// Inputs that do not fit the variant.
pub fn run_with_state(
    variant: &VariantIr,
    inputs: &TensorMap,
    t0: usize,
    state: Option<&HostTensor>,
    levels: usize,
) -> Result<(HostTensor, HostTensor), InputError> {
    let r = resolve(variant, inputs)?;
    let d = r.dims;
    let levels = if variant.is_log_linear() { levels } else { 1 };
    let kv = d.k * d.v;
    let mut finals = HostTensor::zeros(vec![d.b, d.h, levels, d.k, d.v]);
    let mut outs = Vec::new();
    for (bh, p) in r.heads().iter().enumerate() {
        let mut st = vec![0.0; levels * kv];
        if let Some(s0) = state {
            let l0 = s0.shape[2];
            for l in 0..l0.min(levels) {
                let src = (bh * l0 + l) * kv;
                st[l * kv..(l + 1) * kv].copy_from_slice(&s0.data[src..src + kv]);
            }
        }
        outs.push(recurrent_from(p, t0, &mut st));
        finals.data[bh * levels * kv..(bh + 1) * levels * kv].copy_from_slice(&st);
    }
    Ok((r.assemble(&outs), finals))
}

/// Checks inputs, evaluates preprocessing and runs `form` on every (batch, head): `o` of shape `[B, T, H, V]`.
pub fn run(variant: &VariantIr, inputs: &TensorMap, form: Form) -> Result<HostTensor, InputError> {
    let r = resolve(variant, inputs)?;
    let outs: Vec<Vec<f64>> = r.heads().iter().map(|p| head(p, form)).collect();
    Ok(r.assemble(&outs))
}

/// The masked/quadratic form.
pub fn naive(p: &HeadProblem) -> Vec<f64> {
    let (k, v) = (p.k, p.v);
    let mut o = vec![0.0; p.t * v];
    let mut r = vec![0.0; k];
    for t in 0..p.t {
        r.copy_from_slice(&p.q[t * k..(t + 1) * k]);
        for s in (0..=t).rev() {
            if s < t {
                // r = q_tᵀ A_t ··· A_{s+1}
                p.apply_row(s + 1, &mut r);
            }
            let l = level(t as u64, s as u64).expect("s <= t") as usize;
            let dot: f64 = r.iter().zip(&p.key[s * k..(s + 1) * k]).map(|(a, b)| a * b).sum();
            let w = p.lambda(t, l) * p.scale(s) * dot;
            for j in 0..v {
                o[t * v + j] += w * p.value[s * v + j];
            }
        }
    }
    o
}

/// `out[j] += w · Σ_i q[i] S[i, j]` for a K×V state.
fn read(q: &[f64], s: &[f64], w: f64, v: usize, out: &mut [f64]) {
    if w == 0.0 {
        return;
    }
    for (i, qi) in q.iter().enumerate() {
        let c = w * qi;
        if c != 0.0 {
            for j in 0..v {
                out[j] += c * s[i * v + j];
            }
        }
    }
}

/// The token recurrence (spec §6.2): carry, transition, insert, read.
pub fn recurrent(p: &HeadProblem) -> Vec<f64> {
    let levels = if p.lambda.is_some() { num_levels(p.t) } else { 1 };
    let mut states = vec![0.0; levels * p.k * p.v];
    recurrent_from(p, 0, &mut states)
}

/// The token recurrence from position `t0` with the level states `states` (`levels × K × V`, level-major; one
/// level for a linear variant), which it leaves as they are after the last token (spec §6.1). Token `t` of `p`
/// is at position `t0 + t`; `p`'s λ row `t` weights its levels.
///
/// # Panics
/// When a carry needs a level beyond `states` (too few levels for the last position).
pub fn recurrent_from(p: &HeadProblem, t0: usize, states: &mut [f64]) -> Vec<f64> {
    let (k, v) = (p.k, p.v);
    let kv = k * v;
    let levels = states.len() / kv.max(1);
    let mut o = vec![0.0; p.t * v];
    for t in 0..p.t {
        let pos = t0 + t;
        if p.lambda.is_some() && pos >= 1 {
            let c = lssb(pos as u64) as usize;
            assert!(c + 1 < levels, "position {pos} needs {} levels, the state has {levels}", c + 2);
            for l in 0..=c {
                for x in 0..kv {
                    states[(c + 1) * kv + x] += states[l * kv + x];
                    states[l * kv + x] = 0.0;
                }
            }
        }
        for l in 0..levels {
            p.apply_state(t, &mut states[l * kv..(l + 1) * kv]);
        }
        p.add_write(t, &mut states[..kv]);
        let q = &p.q[t * k..(t + 1) * k];
        for l in 0..levels {
            let w = if p.lambda.is_some() && l >= p.lambda_stride { 0.0 } else { p.lambda(t, l) };
            read(q, &states[l * kv..(l + 1) * kv], w, v, &mut o[t * v..(t + 1) * v]);
        }
    }
    o
}

/// Per-chunk primitives of a class, composed from per-token operators (spec §10).
struct Chunk {
    start: usize,
    len: usize,
    /// Pseudo-queries q̃_r = A_{start}ᵀ ··· A_rᵀ q_r, n×K: an entering state S contributes q̃_rᵀ S to o_r.
    pseudo_q: Vec<f64>,
    /// The chunk's own write decayed to its end, K×V.
    write: Vec<f64>,
}

fn chunk_prims(p: &HeadProblem, start: usize, len: usize) -> Chunk {
    let (k, v) = (p.k, p.v);
    let mut pseudo_q = vec![0.0; len * k];
    for r in 0..len {
        let row = &mut pseudo_q[r * k..(r + 1) * k];
        row.copy_from_slice(&p.q[(start + r) * k..(start + r + 1) * k]);
        for u in (start..=start + r).rev() {
            p.apply_row(u, row);
        }
    }
    let mut write = vec![0.0; k * v];
    for r in start..start + len {
        p.apply_state(r, &mut write);
        p.add_write(r, &mut write);
    }
    Chunk { start, len, pseudo_q, write }
}

/// `S ← A_{end} ··· A_{start} S`: the chunk transition applied to an entering state.
fn chunk_transition(p: &HeadProblem, c: &Chunk, s: &mut [f64]) {
    for u in c.start..c.start + c.len {
        p.apply_state(u, s);
    }
}

/// Intra-chunk output: levels 0..c, every pair inside the chunk (the naive walk restricted to the chunk).
fn intra(p: &HeadProblem, c: &Chunk, o: &mut [f64]) {
    let (k, v) = (p.k, p.v);
    let mut r = vec![0.0; k];
    for a in 0..c.len {
        let t = c.start + a;
        r.copy_from_slice(&p.q[t * k..(t + 1) * k]);
        for b in (0..=a).rev() {
            let s = c.start + b;
            if s < t {
                p.apply_row(s + 1, &mut r);
            }
            let l = bitlen((a ^ b) as u64) as usize;
            let dot: f64 = r.iter().zip(&p.key[s * k..(s + 1) * k]).map(|(x, y)| x * y).sum();
            let w = p.lambda(t, l) * p.scale(s) * dot;
            for j in 0..v {
                o[t * v + j] += w * p.value[s * v + j];
            }
        }
    }
}

fn chunks(p: &HeadProblem, cs: usize) -> (u32, Vec<Chunk>) {
    assert!(cs > 0 && cs.is_power_of_two(), "chunk size {cs} is not a power of two");
    let c = cs.trailing_zeros();
    let nt = p.t.div_ceil(cs);
    (c, (0..nt).map(|i| chunk_prims(p, i * cs, cs.min(p.t - i * cs))).collect())
}

/// The per-level masked chunk scan (spec §7.2), chunk size `cs` (power of two).
pub fn chunked(p: &HeadProblem, cs: usize) -> Vec<f64> {
    let (k, v) = (p.k, p.v);
    let (c, ch) = chunks(p, cs);
    let nt = ch.len();
    let mut o = vec![0.0; p.t * v];
    for chunk in &ch {
        intra(p, chunk, &mut o);
    }
    let hier = p.lambda.is_some();
    // Chunk levels: M = bitlen(NT − 1). Without hierarchy one scan (no masks) covers every earlier chunk.
    let m_levels = if hier { bitlen(nt.saturating_sub(1) as u64) as usize } else { usize::from(nt > 1) };
    for m in 0..m_levels {
        let mut s = vec![0.0; k * v];
        for (i, chunk) in ch.iter().enumerate() {
            let reader = !hier || (i >> m) & 1 == 1;
            if reader {
                let l = c as usize + 1 + m;
                for a in 0..chunk.len {
                    let t = chunk.start + a;
                    let w = p.lambda(t, l.min(if hier { usize::MAX } else { 0 }));
                    read(&chunk.pseudo_q[a * k..(a + 1) * k], &s, w, v, &mut o[t * v..(t + 1) * v]);
                }
            }
            let period = 1usize << (m + 1);
            if hier && i % period == period - 1 {
                s.iter_mut().for_each(|x| *x = 0.0);
            } else {
                chunk_transition(p, chunk, &mut s);
            }
            let writer = !hier || (i >> m) & 1 == 0;
            if writer {
                s.iter_mut().zip(&chunk.write).for_each(|(x, w)| *x += w);
            }
        }
    }
    o
}

/// The fused chunk-carry pass (end of spec §7.2): all chunk-level states in one walk over the chunks.
pub fn fused(p: &HeadProblem, cs: usize) -> Vec<f64> {
    let (k, v) = (p.k, p.v);
    let (c, ch) = chunks(p, cs);
    let nt = ch.len();
    let kv = k * v;
    let hier = p.lambda.is_some();
    let m_levels = if hier { bitlen(nt.saturating_sub(1) as u64) as usize } else { 1 };
    let mut st = vec![0.0; (m_levels + 1) * kv];
    let mut o = vec![0.0; p.t * v];
    for (i, chunk) in ch.iter().enumerate() {
        intra(p, chunk, &mut o);
        for j in 0..m_levels {
            let active = if hier { (i >> j) & 1 == 1 } else { true };
            if active {
                let l = if hier { c as usize + 1 + j } else { 0 };
                for a in 0..chunk.len {
                    let t = chunk.start + a;
                    read(
                        &chunk.pseudo_q[a * k..(a + 1) * k],
                        &st[j * kv..(j + 1) * kv],
                        p.lambda(t, l),
                        v,
                        &mut o[t * v..(t + 1) * v],
                    );
                }
            }
        }
        for j in 0..=m_levels {
            chunk_transition(p, chunk, &mut st[j * kv..(j + 1) * kv]);
        }
        st[..kv].iter_mut().zip(&chunk.write).for_each(|(x, w)| *x += w);
        if hier {
            let mut j = 0;
            while (i >> j) & 1 == 1 && j < m_levels {
                for x in 0..kv {
                    st[(j + 1) * kv + x] += st[j * kv + x];
                    st[j * kv + x] = 0.0;
                }
                j += 1;
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use loglinear_ir::builtins;
    use loglinear_ir::random::random_inputs;

    fn forms() -> [Form; 6] {
        [Form::Recurrent, Form::Chunked(1), Form::Chunked(4), Form::Chunked(64), Form::Fused(4), Form::Fused(16)]
    }

    fn max_rel(a: &HostTensor, b: &HostTensor) -> f64 {
        let num = a.data.iter().zip(&b.data).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
        num / b.data.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-300)
    }

    /// Huge negative gates never meet in a difference here: every decay is `exp(g)` of one token's gate, so
    /// `g = −3e38` (and a single reset gate) give finite results on every form, and with every decay exactly 0
    /// only the diagonal term `λ_t[0] · scale_t · (q_t·k_t) · v_t` survives.
    #[test]
    fn huge_negative_gates() {
        for v in builtins::all() {
            let Some((_, decl)) = v.input_by_name("g") else { continue };
            let per_token = decl.kind != loglinear_ir::InputKind::HeadConst;
            let base = random_inputs(&v, (1, 70, 2, 3, 2), 0, 9);
            let mut everywhere = base.clone();
            everywhere.get_mut("g").unwrap().data.iter_mut().for_each(|e| *e = -3e38);
            let mut cases = vec![("-3e38 everywhere", everywhere.clone())];
            if per_token {
                for value in [-1e10, -3e38] {
                    let mut x = base.clone();
                    let g = x.get_mut("g").unwrap();
                    let per_t: usize = g.shape[2..].iter().product();
                    g.data.iter_mut().enumerate().filter(|(i, _)| (i / per_t) % 70 == 21).for_each(|(_, e)| *e = value);
                    cases.push(("one reset gate", x));
                }
            }
            for (what, x) in &cases {
                let naive = run(&v, x, Form::Naive).unwrap();
                assert!(naive.data.iter().all(|e| e.is_finite()), "{} {what}: naive not finite", v.name);
                for form in forms() {
                    let e = max_rel(&run(&v, x, form).unwrap(), &naive);
                    assert!(e <= 1e-12, "{} {what} {form:?}: rel err {e:e}", v.name);
                }
            }
            // Every decay 0: the diagonal term alone.
            let r = resolve(&v, &everywhere).unwrap();
            for p in r.heads() {
                let o = naive(&p);
                for t in 0..p.t {
                    let dot: f64 = (0..p.k).map(|i| p.q[t * p.k + i] * p.key[t * p.k + i]).sum();
                    for j in 0..p.v {
                        let want = p.lambda(t, 0) * p.scale(t) * dot * p.value[t * p.v + j];
                        assert!((o[t * p.v + j] - want).abs() <= 1e-12 * want.abs().max(1.0), "{} t={t}", v.name);
                    }
                }
            }
        }
    }
}
