//! The in-chunk hierarchical mask: decay `exp(γ_r − γ_s)`, causal mask and λ gathered by level
//! `bitlen(r XOR s)` (spec §2.5, §7.2 step (1)).
//!
//! For a row `r` and an aligned group of 4 sources `[s0, s0+4)` strictly below `r`'s own group, `r XOR s` has its
//! highest set bit at position ≥ 2 and the same one for the 4 sources, so the level (and λ) is one scalar per
//! group: `λ[r, bitlen(r XOR s0)]`, broadcast. Only the diagonal group (`s0 = r & !3`) needs per-lane levels and
//! the causal cut; it is done with scalars. Groups above the diagonal are set to 0.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::math::emit_exp_nonpos;
use super::{elem_addr, emit_for, fconst, mem, EmitCtx, EmitError, Idx, F32, F32X4, LANES, PTR};

/// Compile-time description of a level mask over a square `n × n` tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LevelMaskSpec {
    /// Tile size (the chunk size C): a power of two.
    pub n: usize,
    /// Row stride of the tile, in elements (≥ n).
    pub ld: usize,
    /// Multiply by the decay `exp(γ_r − γ_s)` (γ: `n` contiguous floats).
    pub decay: bool,
}

/// `bitlen(x) = 64 − clz(x)` for an `i64` value.
fn bitlen(b: &mut FunctionBuilder, x: Value) -> Value {
    let z = b.ins().clz(x);
    let c64 = b.ins().iconst(PTR, 64);
    b.ins().isub(c64, z)
}

/// In place on the tile at `p`: `P[r, s] ← P[r, s] · exp(γ_r − γ_s) · λ[r, bitlen(r XOR s)]` for `s ≤ r`,
/// `P[r, s] ← 0` for `s > r` (whatever `P` held there, NaN included).
///
/// `lam` points at row 0 of λ, whose rows are `lam_stride` floats apart (a compile-time or run-time value) and
/// must hold at least `log2(n) + 1` levels. `gamma` is read only when `spec.decay` is set.
pub fn emit_level_mask(
    b: &mut FunctionBuilder,
    ctx: &EmitCtx,
    spec: &LevelMaskSpec,
    p: Value,
    gamma: Value,
    lam: Value,
    lam_stride: Idx,
) -> Result<(), EmitError> {
    let n = spec.n;
    if n == 0 || !n.is_power_of_two() {
        return Err(EmitError::InvalidSpec(format!("level mask: n = {n} is not a power of two")));
    }
    if spec.ld < n || n.checked_mul(spec.ld).is_none_or(|e| e >= (i32::MAX as usize) / 4) {
        return Err(EmitError::InvalidSpec(format!("level mask: bad row stride {} for n = {n}", spec.ld)));
    }
    let lam_row_ptr = |b: &mut FunctionBuilder, r: Value| -> Value {
        let off = match lam_stride {
            Idx::Const(s) => b.ins().imul_imm_s(r, (s * 4) as i64),
            Idx::Val(s) => {
                let o = b.ins().imul(r, s);
                b.ins().ishl_imm_s(o, 2)
            }
        };
        b.ins().iadd(lam, off)
    };
    // factor for one (r, s) pair with s ≤ r known or not: returns the masked product P·factor (scalar).
    let scalar_entry = |b: &mut FunctionBuilder, r: Value, s: Value, lrow: Value, gr: Value, pv: Value| -> Value {
        let x = b.ins().bxor(r, s);
        let lvl = bitlen(b, x);
        let lo = b.ins().ishl_imm_s(lvl, 2);
        let lp = b.ins().iadd(lrow, lo);
        let lamv = b.ins().load(F32, mem(), lp, 0);
        let mut f = lamv;
        if spec.decay {
            let so = b.ins().ishl_imm_s(s, 2);
            let gp = b.ins().iadd(gamma, so);
            let gs = b.ins().load(F32, mem(), gp, 0);
            let d = b.ins().fsub(gr, gs);
            let e = emit_exp_nonpos(b, ctx, d);
            f = b.ins().fmul(f, e);
        }
        let prod = b.ins().fmul(pv, f);
        let zero = fconst(b, F32, 0.0);
        let causal = b.ins().icmp(IntCC::SignedLessThanOrEqual, s, r);
        b.ins().select(causal, prod, zero)
    };
    emit_for(b, Idx::Const(0), Idx::Const(n), 1, &[], |b, r, _| {
        let lrow = lam_row_ptr(b, r);
        let (prow, poff) = elem_addr(b, p, spec.ld, Idx::Val(r), Idx::Const(0));
        let gr = if spec.decay {
            let o = b.ins().ishl_imm_s(r, 2);
            let gp = b.ins().iadd(gamma, o);
            b.ins().load(F32, mem(), gp, 0)
        } else {
            fconst(b, F32, 0.0)
        };
        if n < LANES {
            for s in 0..n {
                let sv = b.ins().iconst(PTR, s as i64);
                let pv = b.ins().load(F32, mem(), prow, poff + (s * 4) as i32);
                let v = scalar_entry(b, r, sv, lrow, gr, pv);
                b.ins().store(mem(), v, prow, poff + (s * 4) as i32);
            }
            return vec![];
        }
        let gd = b.ins().band_imm_s(r, !(LANES as i64 - 1));
        // Groups strictly below the diagonal group: one λ per group.
        let grv = b.ins().splat(F32X4, gr);
        emit_for(b, Idx::Const(0), Idx::Val(gd), LANES, &[], |b, s0, _| {
            let x = b.ins().bxor(r, s0);
            let lvl = bitlen(b, x);
            let lo = b.ins().ishl_imm_s(lvl, 2);
            let lp = b.ins().iadd(lrow, lo);
            let lamv = b.ins().load(F32, mem(), lp, 0);
            let mut f = b.ins().splat(F32X4, lamv);
            if spec.decay {
                let so = b.ins().ishl_imm_s(s0, 2);
                let gp = b.ins().iadd(gamma, so);
                let gs = b.ins().load(F32X4, mem(), gp, 0);
                let d = b.ins().fsub(grv, gs);
                let e = emit_exp_nonpos(b, ctx, d);
                f = b.ins().fmul(f, e);
            }
            let so = b.ins().ishl_imm_s(s0, 2);
            let pp = b.ins().iadd(prow, so);
            let pv = b.ins().load(F32X4, mem(), pp, poff);
            let v = b.ins().fmul(pv, f);
            b.ins().store(mem(), v, pp, poff);
            vec![]
        });
        // The diagonal group: per-lane levels and the causal cut.
        let gdo = b.ins().ishl_imm_s(gd, 2);
        let pd = b.ins().iadd(prow, gdo);
        for t in 0..LANES {
            let s = b.ins().iadd_imm_s(gd, t as i64);
            let pv = b.ins().load(F32, mem(), pd, poff + (t * 4) as i32);
            let v = scalar_entry(b, r, s, lrow, gr, pv);
            b.ins().store(mem(), v, pd, poff + (t * 4) as i32);
        }
        // Groups above: zero.
        let zv = fconst(b, F32X4, 0.0);
        let start = b.ins().iadd_imm_s(gd, LANES as i64);
        emit_for(b, Idx::Val(start), Idx::Const(n), LANES, &[], |b, s0, _| {
            let so = b.ins().ishl_imm_s(s0, 2);
            let pp = b.ins().iadd(prow, so);
            b.ins().store(mem(), zv, pp, poff);
            vec![]
        });
        vec![]
    });
    Ok(())
}
