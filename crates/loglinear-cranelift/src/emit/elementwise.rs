//! Elementwise tile ops: unary (neg, exp, exp_nonpos, softplus, sigmoid, scale, …), binary (add, sub, mul),
//! per-row scaling, and L2 normalisation of rows.

use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::math::{emit_exp, emit_exp_nonpos, emit_log, emit_sigmoid, emit_softplus};
use super::{
    emit_for, fconst, for_each_col, for_each_col_fold, hsum, mem, mul_add, splat_to, EmitCtx, EmitError, Idx, Tile,
    F32, F32X4,
};

/// A unary elementwise op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `e^x` (see [`super::emit_exp`])
    Exp,
    /// `e^x` for `x ≤ 0` (see [`super::emit_exp_nonpos`])
    ExpNonPos,
    /// `log(x)` for positive normal `x`
    Log,
    /// `log(1 + e^x)`
    Softplus,
    /// `1 / (1 + e^{-x})`
    Sigmoid,
    /// `x · sigmoid(x)`
    Silu,
    /// `s · x` for a compile-time constant `s`
    Scale(f32),
    /// `x + s` for a compile-time constant `s`
    AddConst(f32),
    /// `1 / sqrt(x)` (exact division, not an estimate)
    Rsqrt,
}

/// A binary elementwise op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `x + y`
    Add,
    /// `x - y`
    Sub,
    /// `x · y`
    Mul,
    /// `max(x, y)`
    Max,
    /// `min(x, y)`
    Min,
}

/// Applies a unary op to one `f32` or `f32x4` value.
pub fn emit_unary(b: &mut FunctionBuilder, ctx: &EmitCtx, op: UnaryOp, x: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    match op {
        UnaryOp::Neg => b.ins().fneg(x),
        UnaryOp::Exp => emit_exp(b, ctx, x),
        UnaryOp::ExpNonPos => emit_exp_nonpos(b, ctx, x),
        UnaryOp::Log => emit_log(b, ctx, x),
        UnaryOp::Softplus => emit_softplus(b, ctx, x),
        UnaryOp::Sigmoid => emit_sigmoid(b, ctx, x),
        UnaryOp::Rsqrt => {
            let r = b.ins().sqrt(x);
            let ty = b.func.dfg.value_type(x);
            let one = if ty == F32 {
                b.ins().f32const(1.0)
            } else {
                let o = b.ins().f32const(1.0);
                b.ins().splat(ty, o)
            };
            b.ins().fdiv(one, r)
        }
        UnaryOp::Silu => {
            let s = emit_sigmoid(b, ctx, x);
            b.ins().fmul(x, s)
        }
        UnaryOp::Scale(s) => {
            let c = fconst(b, ty, s);
            b.ins().fmul(x, c)
        }
        UnaryOp::AddConst(s) => {
            let c = fconst(b, ty, s);
            b.ins().fadd(x, c)
        }
    }
}

/// Applies a binary op to two values of the same type (`f32` or `f32x4`).
pub fn emit_binary(b: &mut FunctionBuilder, op: BinaryOp, x: Value, y: Value) -> Value {
    match op {
        BinaryOp::Add => b.ins().fadd(x, y),
        BinaryOp::Sub => b.ins().fsub(x, y),
        BinaryOp::Mul => b.ins().fmul(x, y),
        BinaryOp::Max => b.ins().fmax(x, y),
        BinaryOp::Min => b.ins().fmin(x, y),
    }
}

fn same_shape(a: &Tile, b: &Tile, what: &str) -> Result<(), EmitError> {
    if a.rows != b.rows || a.cols != b.cols {
        return Err(EmitError::InvalidSpec(format!(
            "{what}: shape mismatch {}x{} vs {}x{}",
            a.rows, a.cols, b.rows, b.cols
        )));
    }
    Ok(())
}

/// `dst = op(src)` elementwise over a tile (`dst` may alias `src`).
pub fn emit_map_unary(
    b: &mut FunctionBuilder,
    ctx: &EmitCtx,
    op: UnaryOp,
    src: Tile,
    dst: Tile,
) -> Result<(), EmitError> {
    src.validate("unary src")?;
    dst.validate("unary dst")?;
    same_shape(&src, &dst, "unary")?;
    emit_for(b, Idx::Const(0), Idx::Const(src.rows), 1, &[], |b, r, _| {
        for_each_col(b, src.cols, |b, ty, c| {
            let (p, o) = src.addr(b, Idx::Val(r), c);
            let x = b.ins().load(ty, mem(), p, o);
            let y = emit_unary(b, ctx, op, x);
            let (p, o) = dst.addr(b, Idx::Val(r), c);
            b.ins().store(mem(), y, p, o);
        });
        vec![]
    });
    Ok(())
}

/// `dst = op(x, y)` elementwise over tiles of one shape (`dst` may alias an operand).
pub fn emit_map_binary(b: &mut FunctionBuilder, op: BinaryOp, x: Tile, y: Tile, dst: Tile) -> Result<(), EmitError> {
    x.validate("binary x")?;
    y.validate("binary y")?;
    dst.validate("binary dst")?;
    same_shape(&x, &y, "binary")?;
    same_shape(&x, &dst, "binary")?;
    emit_for(b, Idx::Const(0), Idx::Const(x.rows), 1, &[], |b, r, _| {
        for_each_col(b, x.cols, |b, ty, c| {
            let (p, o) = x.addr(b, Idx::Val(r), c);
            let xv = b.ins().load(ty, mem(), p, o);
            let (p, o) = y.addr(b, Idx::Val(r), c);
            let yv = b.ins().load(ty, mem(), p, o);
            let z = emit_binary(b, op, xv, yv);
            let (p, o) = dst.addr(b, Idx::Val(r), c);
            b.ins().store(mem(), z, p, o);
        });
        vec![]
    });
    Ok(())
}

/// `x[r, :] *= s[r]` for a column vector `s` (`rows` contiguous floats at `s_ptr`), in place.
/// With `unary = Some(op)`, the factor is `op(s[r])` (e.g. `ExpNonPos` for decays).
pub fn emit_scale_rows(
    b: &mut FunctionBuilder,
    ctx: &EmitCtx,
    x: Tile,
    s_ptr: Value,
    unary: Option<UnaryOp>,
) -> Result<(), EmitError> {
    x.validate("scale_rows x")?;
    emit_for(b, Idx::Const(0), Idx::Const(x.rows), 1, &[], |b, r, _| {
        let off = b.ins().ishl_imm_s(r, 2);
        let sp = b.ins().iadd(s_ptr, off);
        let s = b.ins().load(F32, mem(), sp, 0);
        let s = match unary {
            Some(op) => emit_unary(b, ctx, op, s),
            None => s,
        };
        let sv = b.ins().splat(F32X4, s);
        for_each_col(b, x.cols, |b, ty, c| {
            let (p, o) = x.addr(b, Idx::Val(r), c);
            let v = b.ins().load(ty, mem(), p, o);
            let f = if ty.is_vector() { sv } else { s };
            let v = b.ins().fmul(v, f);
            b.ins().store(mem(), v, p, o);
        });
        vec![]
    });
    Ok(())
}

/// `dst[r, :] = x[r, :] / sqrt(Σ_c x[r, c]² + eps)` (the GDN q/k normalisation; `dst` may alias `x`).
pub fn emit_l2norm_rows(b: &mut FunctionBuilder, ctx: &EmitCtx, x: Tile, dst: Tile, eps: f32) -> Result<(), EmitError> {
    x.validate("l2norm x")?;
    dst.validate("l2norm dst")?;
    same_shape(&x, &dst, "l2norm")?;
    emit_for(b, Idx::Const(0), Idx::Const(x.rows), 1, &[], |b, r, _| {
        let zv = fconst(b, F32X4, 0.0);
        let zs = fconst(b, F32, 0.0);
        let acc = for_each_col_fold(b, x.cols, &[zv, zs], |b, ty, c, st| {
            let (p, o) = x.addr(b, Idx::Val(r), c);
            let v = b.ins().load(ty, mem(), p, o);
            if ty.is_vector() {
                vec![mul_add(b, ctx, v, v, st[0]), st[1]]
            } else {
                vec![st[0], mul_add(b, ctx, v, v, st[1])]
            }
        });
        let (accv, accs) = (acc[0], acc[1]);
        let hv = hsum(b, accv);
        let ss = b.ins().fadd(hv, accs);
        let e = fconst(b, F32, eps);
        let ss = b.ins().fadd(ss, e);
        let nrm = b.ins().sqrt(ss);
        let one = fconst(b, F32, 1.0);
        let inv = b.ins().fdiv(one, nrm);
        for_each_col(b, x.cols, |b, ty, c| {
            let (p, o) = x.addr(b, Idx::Val(r), c);
            let v = b.ins().load(ty, mem(), p, o);
            let f = splat_to(b, ty, inv);
            let v = b.ins().fmul(v, f);
            let (p, o) = dst.addr(b, Idx::Val(r), c);
            b.ins().store(mem(), v, p, o);
        });
        vec![]
    });
    Ok(())
}
