//! Transcendental functions in CLIF (Cranelift has no `exp` / `log` instruction).
//!
//! All functions work on `f32` or `f32x4` values alike (the type of the argument decides).
//!
//! * `exp`: range reduction `x = n·ln2 + r` (`n` rounded with the 1.5·2²³ "magic number" trick, so no SSE4.1
//!   `round` is needed; Cody–Waite split of ln2), a degree-5 minimax polynomial for `e^r` on `|r| ≤ ln2/2`
//!   (Cephes `expf`), then a scale by `2^n` built from integer bits of the exponent. Relative error ≈ 1–2 ulp.
//!   Results below `e^-87` are flushed to 0 (no subnormals); above `~88.72` the result is `+inf`.
//! * `log`: exponent / mantissa split by bit manipulation, mantissa in `[√½, √2)`, Cephes `logf` polynomial.
//!   Valid for positive normal inputs.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::{bitcast, fconst, iconst32, int_ty, mul_add, select_f, EmitCtx};

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 · 2^23: adding it rounds an f32 of magnitude < 2^22 to an integer held in the low mantissa bits.
const MAGIC: f32 = 12_582_912.0;
/// Below this argument, `exp` returns exactly 0.
pub const EXP_FLUSH_BELOW: f32 = -87.0;
const EXP_P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

/// Shared core: returns (polynomial `e^r`, integer `n` in the lane type's integer type).
fn exp_core(b: &mut FunctionBuilder, ctx: &EmitCtx, x: Value) -> (Value, Value) {
    let ty = b.func.dfg.value_type(x);
    let log2e = fconst(b, ty, LOG2E);
    let magic = fconst(b, ty, MAGIC);
    // kf = x·log2e + magic: n = round(x·log2e) sits in the low mantissa bits of kf.
    let kf = mul_add(b, ctx, x, log2e, magic);
    let nf = b.ins().fsub(kf, magic);
    let ki = bitcast(b, int_ty(ty), kf);
    let mi = bitcast(b, int_ty(ty), magic);
    let n = b.ins().isub(ki, mi);
    // r = x − n·ln2 (two steps).
    let neg_hi = fconst(b, ty, -LN2_HI);
    let neg_lo = fconst(b, ty, -LN2_LO);
    let r = mul_add(b, ctx, nf, neg_hi, x);
    let r = mul_add(b, ctx, nf, neg_lo, r);
    // e^r ≈ 1 + r + r²·P(r).
    let mut p = fconst(b, ty, EXP_P[0]);
    for &c in &EXP_P[1..] {
        let cv = fconst(b, ty, c);
        p = mul_add(b, ctx, p, r, cv);
    }
    let r2 = b.ins().fmul(r, r);
    let one = fconst(b, ty, 1.0);
    let r1 = b.ins().fadd(r, one);
    let e = mul_add(b, ctx, p, r2, r1);
    (e, n)
}

/// `2^n` as a float, for `n` in `[-126, 127]` (integer lanes).
fn pow2i(b: &mut FunctionBuilder, fty: cranelift_codegen::ir::Type, n: Value) -> Value {
    let bias = iconst32(b, fty, 127);
    let e = b.ins().iadd(n, bias);
    let e = b.ins().ishl_imm_s(e, 23);
    bitcast(b, fty, e)
}

/// `e^x` for any `x` (f32 or f32x4): 0 below [`EXP_FLUSH_BELOW`], `+inf` above ≈ 88.72, NaN for NaN.
pub fn emit_exp(b: &mut FunctionBuilder, ctx: &EmitCtx, x: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    let lo = fconst(b, ty, -88.0);
    let hi = fconst(b, ty, 89.0);
    let xc = b.ins().fmax(x, lo);
    let xc = b.ins().fmin(xc, hi);
    let (e, n) = exp_core(b, ctx, xc);
    // 2^n = 2^(n>>1) · 2^(n − (n>>1)): each factor stays a normal number for n ∈ [-127, 129].
    let h = b.ins().sshr_imm_s(n, 1);
    let h2 = b.ins().isub(n, h);
    let s1 = pow2i(b, ty, h);
    let s2 = pow2i(b, ty, h2);
    let y = b.ins().fmul(e, s1);
    let y = b.ins().fmul(y, s2);
    let flush = fconst(b, ty, EXP_FLUSH_BELOW);
    let zero = fconst(b, ty, 0.0);
    let small = b.ins().fcmp(FloatCC::LessThan, x, flush);
    select_f(b, small, zero, y)
}

/// `e^x` for arguments known to be ≤ 0 (decay factors): positive arguments are clamped to 0 (result 1), results
/// below `e^-87` are flushed to 0. Cheaper than [`emit_exp`] (a single exponent scale).
pub fn emit_exp_nonpos(b: &mut FunctionBuilder, ctx: &EmitCtx, x: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    let lo = fconst(b, ty, -88.0);
    let zero = fconst(b, ty, 0.0);
    let xc = b.ins().fmax(x, lo);
    let xc = b.ins().fmin(xc, zero);
    let (e, n) = exp_core(b, ctx, xc);
    let s = pow2i(b, ty, n);
    let y = b.ins().fmul(e, s);
    let flush = fconst(b, ty, EXP_FLUSH_BELOW);
    let small = b.ins().fcmp(FloatCC::LessThan, x, flush);
    select_f(b, small, zero, y)
}

const LOG_P: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_4e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];

/// Natural logarithm for positive normal `x` (f32 or f32x4). Zero, negative and subnormal inputs give
/// meaningless results: callers guarantee the domain (e.g. `log(1 + t)` with `t ≥ 0`).
pub fn emit_log(b: &mut FunctionBuilder, ctx: &EmitCtx, x: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    let ity = int_ty(ty);
    let bits = bitcast(b, ity, x);
    // exponent e with x = m · 2^e, m ∈ [0.5, 1)
    let e = b.ins().sshr_imm_s(bits, 23);
    let c126 = iconst32(b, ty, 126);
    let e = b.ins().isub(e, c126);
    let mant_mask = iconst32(b, ty, 0x007f_ffff);
    let half_bits = iconst32(b, ty, 0x3f00_0000);
    let m = b.ins().band(bits, mant_mask);
    let m = b.ins().bor(m, half_bits);
    let m = bitcast(b, ty, m);
    let ef = b.ins().fcvt_from_sint(ty, e);
    // if m < √½: e -= 1, m = 2m − 1; else m = m − 1
    let sqrthf = fconst(b, ty, std::f32::consts::FRAC_1_SQRT_2);
    let one = fconst(b, ty, 1.0);
    let zero = fconst(b, ty, 0.0);
    let lt = b.ins().fcmp(FloatCC::LessThan, m, sqrthf);
    let adj = select_f(b, lt, one, zero);
    let ef = b.ins().fsub(ef, adj);
    let madd = select_f(b, lt, m, zero);
    let m = b.ins().fsub(m, one);
    let m = b.ins().fadd(m, madd);
    let z = b.ins().fmul(m, m);
    let mut y = fconst(b, ty, LOG_P[0]);
    for &c in &LOG_P[1..] {
        let cv = fconst(b, ty, c);
        y = mul_add(b, ctx, y, m, cv);
    }
    let y = b.ins().fmul(y, m);
    let y = b.ins().fmul(y, z);
    let lo = fconst(b, ty, LN2_LO);
    let y = mul_add(b, ctx, ef, lo, y);
    let mhalf = fconst(b, ty, -0.5);
    let y = mul_add(b, ctx, z, mhalf, y);
    let r = b.ins().fadd(m, y);
    let hi = fconst(b, ty, LN2_HI);
    mul_add(b, ctx, ef, hi, r)
}

/// `log(1 + t)` for `t > -1`, accurate for small `t` (`u = 1 + t`; `log(u)·t/(u − 1)`, or `t` when `u == 1`).
pub fn emit_log1p(b: &mut FunctionBuilder, ctx: &EmitCtx, t: Value) -> Value {
    let ty = b.func.dfg.value_type(t);
    let one = fconst(b, ty, 1.0);
    let u = b.ins().fadd(one, t);
    let lu = emit_log(b, ctx, u);
    let um1 = b.ins().fsub(u, one);
    let q = b.ins().fdiv(t, um1);
    let v = b.ins().fmul(lu, q);
    let is_one = b.ins().fcmp(FloatCC::Equal, u, one);
    select_f(b, is_one, t, v)
}

/// `softplus(x) = log(1 + e^x)`, computed as `max(x, 0) + log1p(e^{-|x|})` (no overflow, accurate tails).
pub fn emit_softplus(b: &mut FunctionBuilder, ctx: &EmitCtx, x: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    let zero = fconst(b, ty, 0.0);
    let ax = b.ins().fabs(x);
    let nax = b.ins().fneg(ax);
    let t = emit_exp_nonpos(b, ctx, nax);
    let l = emit_log1p(b, ctx, t);
    let mx = b.ins().fmax(x, zero);
    b.ins().fadd(mx, l)
}

/// `sigmoid(x) = 1 / (1 + e^{-x})`, computed from `t = e^{-|x|}` as `1/(1+t)` (x ≥ 0) or `t/(1+t)` (x < 0).
pub fn emit_sigmoid(b: &mut FunctionBuilder, ctx: &EmitCtx, x: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    let zero = fconst(b, ty, 0.0);
    let one = fconst(b, ty, 1.0);
    let ax = b.ins().fabs(x);
    let nax = b.ins().fneg(ax);
    let t = emit_exp_nonpos(b, ctx, nax);
    let den = b.ins().fadd(one, t);
    let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
    let num = select_f(b, neg, t, one);
    b.ins().fdiv(num, den)
}
