//! Shape-changing and structural tile ops of the kernel IR: broadcasting binary ops, broadcasts, copies,
//! transposes, identity, triangular cuts, row / column extraction, the causal and level masks (λ of any depth),
//! row masks and the per-channel gated causal product (segment sums of raw gates).
//!
//! All sizes are compile-time; row / column indices and row limits may be run-time `i64` values.

#![allow(clippy::needless_range_loop)] // index arithmetic over lanes reads better with ranges

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::elementwise::{emit_binary, BinaryOp};
use super::math::emit_exp_nonpos;
use super::{
    emit_fill, emit_for, fconst, for_each_col, for_each_col_fold, hsum, mem, mul_add, EmitCtx, EmitError, Idx, Tile,
    F32, F32X4, LANES, PTR,
};

fn shape_err<T>(what: &str, msg: String) -> Result<T, EmitError> {
    Err(EmitError::InvalidSpec(format!("{what}: {msg}")))
}

/// `dst = op(x, y)` with size-1 dimensions of `x` and `y` broadcast to `dst`'s shape
/// (`dst` is `max(rows) × max(cols)`; `dst` may alias an operand of its own shape).
pub fn emit_broadcast_binary(
    b: &mut FunctionBuilder,
    op: BinaryOp,
    x: Tile,
    y: Tile,
    dst: Tile,
) -> Result<(), EmitError> {
    for (t, n) in [(&x, "x"), (&y, "y"), (&dst, "dst")] {
        t.validate(&format!("broadcast binary {n}"))?;
    }
    for t in [&x, &y] {
        if (t.rows != dst.rows && t.rows != 1) || (t.cols != dst.cols && t.cols != 1) {
            return shape_err(
                "broadcast binary",
                format!("operand {}x{} does not broadcast to {}x{}", t.rows, t.cols, dst.rows, dst.cols),
            );
        }
    }
    emit_for(b, Idx::Const(0), Idx::Const(dst.rows), 1, &[], |b, r, _| {
        let row_of = |b: &mut FunctionBuilder, t: &Tile| -> Value {
            if t.rows == 1 {
                t.base
            } else {
                let o = b.ins().imul_imm_s(r, (t.row_stride * 4) as i64);
                b.ins().iadd(t.base, o)
            }
        };
        let xr = row_of(b, &x);
        let yr = row_of(b, &y);
        let dr = row_of(b, &dst);
        // Scalars of column-broadcast operands, loaded once per row (before any store).
        let xs = (x.cols == 1 && dst.cols > 1).then(|| b.ins().load(F32, mem(), xr, 0));
        let ys = (y.cols == 1 && dst.cols > 1).then(|| b.ins().load(F32, mem(), yr, 0));
        let xsv = xs.map(|s| b.ins().splat(F32X4, s));
        let ysv = ys.map(|s| b.ins().splat(F32X4, s));
        for_each_col(b, dst.cols, |b, ty, c| {
            let get = |b: &mut FunctionBuilder, base: Value, s: Option<Value>, sv: Option<Value>| -> Value {
                match (s, sv) {
                    (Some(s), Some(sv)) => {
                        if ty.is_vector() {
                            sv
                        } else {
                            s
                        }
                    }
                    _ => {
                        let (p, o) = super::elem_addr(b, base, 0, Idx::Const(0), c);
                        b.ins().load(ty, mem(), p, o)
                    }
                }
            };
            let xv = get(b, xr, xs, xsv);
            let yv = get(b, yr, ys, ysv);
            let z = emit_binary(b, op, xv, yv);
            let (p, o) = super::elem_addr(b, dr, 0, Idx::Const(0), c);
            b.ins().store(mem(), z, p, o);
        });
        vec![]
    });
    Ok(())
}

/// `dst = src` repeated along its size-1 dimensions to `dst`'s shape (a plain copy for equal shapes).
pub fn emit_broadcast(b: &mut FunctionBuilder, src: Tile, dst: Tile) -> Result<(), EmitError> {
    src.validate("broadcast src")?;
    dst.validate("broadcast dst")?;
    if (src.rows != dst.rows && src.rows != 1) || (src.cols != dst.cols && src.cols != 1) {
        return shape_err("broadcast", format!("{}x{} to {}x{}", src.rows, src.cols, dst.rows, dst.cols));
    }
    emit_for(b, Idx::Const(0), Idx::Const(dst.rows), 1, &[], |b, r, _| {
        let sr = if src.rows == 1 {
            src.base
        } else {
            let o = b.ins().imul_imm_s(r, (src.row_stride * 4) as i64);
            b.ins().iadd(src.base, o)
        };
        let (dr, doff) = dst.addr(b, Idx::Val(r), Idx::Const(0));
        if src.cols == 1 {
            let s = b.ins().load(F32, mem(), sr, 0);
            let sv = b.ins().splat(F32X4, s);
            for_each_col(b, dst.cols, |b, ty, c| {
                let (p, o) = super::elem_addr(b, dr, 0, Idx::Const(0), c);
                b.ins().store(mem(), if ty.is_vector() { sv } else { s }, p, o + doff);
            });
        } else {
            for_each_col(b, dst.cols, |b, ty, c| {
                let (p, o) = super::elem_addr(b, sr, 0, Idx::Const(0), c);
                let v = b.ins().load(ty, mem(), p, o);
                let (p, o) = super::elem_addr(b, dr, 0, Idx::Const(0), c);
                b.ins().store(mem(), v, p, o + doff);
            });
        }
        vec![]
    });
    Ok(())
}

/// `dst = src` for tiles of one shape (no-op when they are the same tile).
pub fn emit_copy_tile(b: &mut FunctionBuilder, src: Tile, dst: Tile) -> Result<(), EmitError> {
    if src.rows != dst.rows || src.cols != dst.cols {
        return shape_err("copy", format!("{}x{} to {}x{}", src.rows, src.cols, dst.rows, dst.cols));
    }
    emit_broadcast(b, src, dst)
}

/// `dst = srcᵀ` (`dst` must not alias `src`).
pub fn emit_transpose(b: &mut FunctionBuilder, src: Tile, dst: Tile) -> Result<(), EmitError> {
    src.validate("transpose src")?;
    dst.validate("transpose dst")?;
    if src.rows != dst.cols || src.cols != dst.rows {
        return shape_err("transpose", format!("{}x{} to {}x{}", src.rows, src.cols, dst.rows, dst.cols));
    }
    emit_for(b, Idx::Const(0), Idx::Const(src.rows), 1, &[], |b, r, _| {
        let (sr, so) = src.addr(b, Idx::Val(r), Idx::Const(0));
        let (dc, dof) = dst.addr(b, Idx::Const(0), Idx::Val(r));
        for c in 0..src.cols {
            let v = b.ins().load(F32, mem(), sr, so + (c * 4) as i32);
            b.ins().store(mem(), v, dc, dof + (c * dst.row_stride * 4) as i32);
        }
        vec![]
    });
    Ok(())
}

/// The `n × n` identity.
pub fn emit_eye(b: &mut FunctionBuilder, dst: Tile) -> Result<(), EmitError> {
    if dst.rows != dst.cols {
        return shape_err("eye", format!("{}x{} is not square", dst.rows, dst.cols));
    }
    emit_fill(b, dst, 0.0)?;
    let one = fconst(b, F32, 1.0);
    emit_for(b, Idx::Const(0), Idx::Const(dst.rows), 1, &[], |b, r, _| {
        let (p, o) = dst.addr(b, Idx::Val(r), Idx::Val(r));
        b.ins().store(mem(), one, p, o);
        vec![]
    });
    Ok(())
}

/// Zeroes the entries of `dst` at columns `≥ first_zero_col(r)` of each row `r`, where the first zeroed column is
/// `r + 1` (`strict = false`) or `r` (`strict = true`): the lower-triangular cut, in place.
pub fn emit_tril_inplace(b: &mut FunctionBuilder, dst: Tile, strict: bool) -> Result<(), EmitError> {
    dst.validate("tril")?;
    let zero = fconst(b, F32, 0.0);
    emit_for(b, Idx::Const(0), Idx::Const(dst.rows), 1, &[], |b, r, _| {
        let start = if strict { r } else { b.ins().iadd_imm_s(r, 1) };
        let (row, ro) = dst.addr(b, Idx::Val(r), Idx::Const(0));
        emit_for(b, Idx::Val(start), Idx::Const(dst.cols), 1, &[], |b, c, _| {
            let o = b.ins().ishl_imm_s(c, 2);
            let p = b.ins().iadd(row, o);
            b.ins().store(mem(), zero, p, ro);
            vec![]
        });
        vec![]
    });
    Ok(())
}

/// Zeroes rows `r ≥ valid` of `dst` in place (`valid` a run-time row count, possibly negative or past the end).
pub fn emit_zero_rows_from(b: &mut FunctionBuilder, dst: Tile, valid: Value) -> Result<(), EmitError> {
    dst.validate("mask rows")?;
    let zero = b.ins().iconst(PTR, 0);
    let lt = b.ins().icmp(IntCC::SignedLessThan, valid, zero);
    let start = b.ins().select(lt, zero, valid);
    let zv = fconst(b, F32X4, 0.0);
    let zs = fconst(b, F32, 0.0);
    emit_for(b, Idx::Val(start), Idx::Const(dst.rows), 1, &[], |b, r, _| {
        let (row, ro) = dst.addr(b, Idx::Val(r), Idx::Const(0));
        for_each_col(b, dst.cols, |b, ty, c| {
            let (p, o) = super::elem_addr(b, row, 0, Idx::Const(0), c);
            b.ins().store(mem(), if ty.is_vector() { zv } else { zs }, p, o + ro);
        });
        vec![]
    });
    Ok(())
}

/// `dst[0, :] = src[r, :]` (`dst` is `1 × cols`), zero when `r` is outside `0..rows`.
pub fn emit_row(b: &mut FunctionBuilder, src: Tile, r: Value, dst: Tile) -> Result<(), EmitError> {
    if dst.rows != 1 || dst.cols != src.cols {
        return shape_err("row", format!("{}x{} from {}x{}", dst.rows, dst.cols, src.rows, src.cols));
    }
    emit_fill(b, dst, 0.0)?;
    let inb = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, r, src.rows as i64);
    super::emit_if(b, inb, |b| {
        let (sr, so) = src.addr(b, Idx::Val(r), Idx::Const(0));
        for_each_col(b, src.cols, |b, ty, c| {
            let (p, o) = super::elem_addr(b, sr, 0, Idx::Const(0), c);
            let v = b.ins().load(ty, mem(), p, o + so);
            let (p, o) = dst.addr(b, Idx::Const(0), c);
            b.ins().store(mem(), v, p, o);
        });
    });
    Ok(())
}

/// `dst[:, 0] = src[:, j]` (`dst` is `rows × 1`), zero when `j` is outside `0..cols`.
pub fn emit_col(b: &mut FunctionBuilder, src: Tile, j: Value, dst: Tile) -> Result<(), EmitError> {
    if dst.cols != 1 || dst.rows != src.rows {
        return shape_err("col", format!("{}x{} from {}x{}", dst.rows, dst.cols, src.rows, src.cols));
    }
    emit_fill(b, dst, 0.0)?;
    let inb = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, j, src.cols as i64);
    super::emit_if(b, inb, |b| {
        let (sc, so) = src.addr(b, Idx::Const(0), Idx::Val(j));
        for r in 0..src.rows {
            let v = b.ins().load(F32, mem(), sc, so + (r * src.row_stride * 4) as i32);
            let (p, o) = dst.addr(b, Idx::Const(r), Idx::Const(0));
            b.ins().store(mem(), v, p, o);
        }
    });
    Ok(())
}

/// The in-chunk level weights over an `n × n` tile: `dst[r, s] = λ[r, bitlen(r XOR s)]` for `s ≤ r` (0 when
/// that level is not a column of `lam`), 0 above the diagonal; with `lam = None`, the causal ones mask.
pub fn emit_causal_level_mask(b: &mut FunctionBuilder, lam: Option<Tile>, dst: Tile) -> Result<(), EmitError> {
    dst.validate("level mask")?;
    if dst.rows != dst.cols {
        return shape_err("level mask", format!("{}x{} is not square", dst.rows, dst.cols));
    }
    if let Some(l) = lam {
        l.validate("level mask lam")?;
        if l.rows != dst.rows {
            return shape_err("level mask", format!("λ has {} rows, mask {}", l.rows, dst.rows));
        }
    }
    emit_fill(b, dst, 0.0)?;
    let one = fconst(b, F32, 1.0);
    let zero = fconst(b, F32, 0.0);
    emit_for(b, Idx::Const(0), Idx::Const(dst.rows), 1, &[], |b, r, _| {
        let (row, ro) = dst.addr(b, Idx::Val(r), Idx::Const(0));
        let lrow = lam.map(|l| l.addr(b, Idx::Val(r), Idx::Const(0)));
        let end = b.ins().iadd_imm_s(r, 1);
        emit_for(b, Idx::Const(0), Idx::Val(end), 1, &[], |b, s, _| {
            let v = match (lam, lrow) {
                (Some(l), Some((lp, lo))) => {
                    let x = b.ins().bxor(r, s);
                    let z = b.ins().clz(x);
                    let c64 = b.ins().iconst(PTR, 64);
                    let lvl = b.ins().isub(c64, z);
                    let inb = b.ins().icmp_imm_s(IntCC::SignedLessThan, lvl, l.cols as i64);
                    let maxl = b.ins().iconst(PTR, (l.cols - 1) as i64);
                    let lc = b.ins().select(inb, lvl, maxl);
                    let off = b.ins().ishl_imm_s(lc, 2);
                    let p = b.ins().iadd(lp, off);
                    let v = b.ins().load(F32, mem(), p, lo);
                    b.ins().select(inb, v, zero)
                }
                _ => one,
            };
            let off = b.ins().ishl_imm_s(s, 2);
            let p = b.ins().iadd(row, off);
            b.ins().store(mem(), v, p, ro);
            vec![]
        });
        vec![]
    });
    Ok(())
}

/// Per-channel gated causal product over raw gates (`a`, `c`, `g`: `n × k`; `dst`: `n × n`):
/// `dst[r, s] = Σ_i a[r,i] c[s,i] exp_nonpos(Σ_{u=s+1}^{r} g[u,i])` for `s ≤ r`, 0 above the diagonal.
///
/// For each row `r`, `s` walks down from `r` while the `1 × k` row `seg` (scratch, must not alias anything)
/// accumulates the per-channel segment sums: `seg = 0` at `s = r`, then `seg += g[s, :]` after column `s`. No
/// difference of cumulative sums is ever formed, so a huge negative gate costs no precision elsewhere, and sums
/// that overflow to `−∞` give 0 (never `−∞ − (−∞)`). `dst` must not alias an operand.
pub fn emit_matmul_gated_causal(
    b: &mut FunctionBuilder,
    ctx: &EmitCtx,
    a: Tile,
    c: Tile,
    g: Tile,
    seg: Tile,
    dst: Tile,
) -> Result<(), EmitError> {
    for (t, n) in [(&a, "a"), (&c, "b"), (&g, "g"), (&seg, "seg"), (&dst, "dst")] {
        t.validate(&format!("matmul_gated_causal {n}"))?;
    }
    let (n, k) = (a.rows, a.cols);
    if c.rows != n || c.cols != k || g.rows != n || g.cols != k || seg.rows != 1 || seg.cols != k {
        return shape_err("matmul_gated_causal", "operand shapes disagree".into());
    }
    if dst.rows != n || dst.cols != n {
        return shape_err("matmul_gated_causal", format!("dst {}x{}", dst.rows, dst.cols));
    }
    emit_fill(b, dst, 0.0)?;
    emit_for(b, Idx::Const(0), Idx::Const(n), 1, &[], |b, r, _| {
        let (ar, ao) = a.addr(b, Idx::Val(r), Idx::Const(0));
        let (dr, dof) = dst.addr(b, Idx::Val(r), Idx::Const(0));
        let zv = fconst(b, F32X4, 0.0);
        let zs = fconst(b, F32, 0.0);
        for_each_col(b, k, |b, ty, i| {
            let (p, o) = seg.addr(b, Idx::Const(0), i);
            b.ins().store(mem(), if ty.is_vector() { zv } else { zs }, p, o);
        });
        let r1 = b.ins().iadd_imm_s(r, 1);
        // s = r − j for j in 0..=r.
        emit_for(b, Idx::Const(0), Idx::Val(r1), 1, &[], |b, j, _| {
            let s = b.ins().isub(r, j);
            let (cr, co) = c.addr(b, Idx::Val(s), Idx::Const(0));
            let (gr, go) = g.addr(b, Idx::Val(s), Idx::Const(0));
            let zv = fconst(b, F32X4, 0.0);
            let zs = fconst(b, F32, 0.0);
            let acc = for_each_col_fold(b, k, &[zv, zs], |b, ty, i, st| {
                let ld = |b: &mut FunctionBuilder, base: Value, off: i32| {
                    let (p, o) = super::elem_addr(b, base, 0, Idx::Const(0), i);
                    b.ins().load(ty, mem(), p, o + off)
                };
                let x = ld(b, ar, ao);
                let y = ld(b, cr, co);
                let gs = ld(b, gr, go);
                let (sp, so) = seg.addr(b, Idx::Const(0), i);
                let sg = b.ins().load(ty, mem(), sp, so);
                let e = emit_exp_nonpos(b, ctx, sg);
                let next = b.ins().fadd(sg, gs);
                b.ins().store(mem(), next, sp, so);
                let xy = b.ins().fmul(x, y);
                if ty.is_vector() {
                    vec![mul_add(b, ctx, xy, e, st[0]), st[1]]
                } else {
                    vec![st[0], mul_add(b, ctx, xy, e, st[1])]
                }
            });
            let h = hsum(b, acc[0]);
            let sum = b.ins().fadd(h, acc[1]);
            let off = b.ins().ishl_imm_s(s, 2);
            let p = b.ins().iadd(dr, off);
            b.ins().store(mem(), sum, p, dof);
            vec![]
        });
        vec![]
    });
    let _ = LANES;
    Ok(())
}

/// An index predicate on `(r, s)` with its run-time operands already evaluated (see the kernel IR's `Pred`).
#[derive(Clone, Copy, Debug)]
pub enum PredSpec {
    /// Always.
    All,
    /// `s ≤ r`.
    Lower,
    /// `s < r`.
    StrictLower,
    /// `s = r`.
    Diag,
    /// `s ≤ r` and `bitlen(r XOR s) = l`.
    Level(Value),
    /// `r < valid` (signed).
    RowBelow(Value),
    /// `r = e`.
    RowIs(Value),
    /// `s = e`.
    ColIs(Value),
}

fn pred_value(b: &mut FunctionBuilder, p: PredSpec, r: Value, s: Value) -> Value {
    match p {
        PredSpec::All => b.ins().icmp(IntCC::Equal, r, r),
        PredSpec::Lower => b.ins().icmp(IntCC::SignedLessThanOrEqual, s, r),
        PredSpec::StrictLower => b.ins().icmp(IntCC::SignedLessThan, s, r),
        PredSpec::Diag => b.ins().icmp(IntCC::Equal, s, r),
        PredSpec::Level(l) => {
            let low = b.ins().icmp(IntCC::SignedLessThanOrEqual, s, r);
            let x = b.ins().bxor(r, s);
            let z = b.ins().clz(x);
            let c64 = b.ins().iconst(PTR, 64);
            let lvl = b.ins().isub(c64, z);
            let eq = b.ins().icmp(IntCC::Equal, lvl, l);
            b.ins().band(low, eq)
        }
        PredSpec::RowBelow(v) => b.ins().icmp(IntCC::SignedLessThan, r, v),
        PredSpec::RowIs(e) => b.ins().icmp(IntCC::Equal, r, e),
        PredSpec::ColIs(e) => b.ins().icmp(IntCC::Equal, s, e),
    }
}

/// `dst[r, s] = pred(r, s) ? (src[r, s] or on) : off` — the kernel IR's `mask` (no `src`) and `select` (with
/// `src`; `on` unused). Scalar loops: these are the primitives of `passes::decompose` and small masks.
pub fn emit_pred_select(
    b: &mut FunctionBuilder,
    pred: PredSpec,
    src: Option<Tile>,
    on: f32,
    off: f32,
    dst: Tile,
) -> Result<(), EmitError> {
    dst.validate("mask")?;
    if let Some(a) = src {
        a.validate("select source")?;
        if (a.rows != dst.rows && a.rows != 1) || (a.cols != dst.cols && a.cols != 1) {
            return shape_err("select", format!("{}x{} into {}x{}", a.rows, a.cols, dst.rows, dst.cols));
        }
    }
    let onv = fconst(b, F32, on);
    let offv = fconst(b, F32, off);
    emit_for(b, Idx::Const(0), Idx::Const(dst.rows), 1, &[], |b, r, _| {
        let (row, ro) = dst.addr(b, Idx::Val(r), Idx::Const(0));
        let srow = src.map(|a| {
            let zero = b.ins().iconst(PTR, 0);
            let rr = if a.rows == 1 { zero } else { r };
            (a, a.addr(b, Idx::Val(rr), Idx::Const(0)))
        });
        emit_for(b, Idx::Const(0), Idx::Const(dst.cols), 1, &[], |b, s, _| {
            let c = pred_value(b, pred, r, s);
            let yes = match srow {
                Some((a, (sp, so))) => {
                    let ss = if a.cols == 1 { b.ins().iconst(PTR, 0) } else { s };
                    let off4 = b.ins().ishl_imm_s(ss, 2);
                    let p = b.ins().iadd(sp, off4);
                    b.ins().load(F32, mem(), p, so)
                }
                None => onv,
            };
            let v = b.ins().select(c, yes, offv);
            let off4 = b.ins().ishl_imm_s(s, 2);
            let p = b.ins().iadd(row, off4);
            b.ins().store(mem(), v, p, ro);
            vec![]
        });
        vec![]
    });
    Ok(())
}

/// `dst[r, 0] = Σ_s a[r, s]` (`rows`) or `dst[0, s] = Σ_r a[r, s]` (`!rows`), summed in index order.
pub fn emit_sum(b: &mut FunctionBuilder, a: Tile, rows: bool, dst: Tile) -> Result<(), EmitError> {
    a.validate("sum")?;
    let (outer, inner) = if rows { (a.rows, a.cols) } else { (a.cols, a.rows) };
    if (rows && (dst.rows != a.rows || dst.cols != 1)) || (!rows && (dst.rows != 1 || dst.cols != a.cols)) {
        return shape_err("sum", format!("{}x{} from {}x{}", dst.rows, dst.cols, a.rows, a.cols));
    }
    emit_for(b, Idx::Const(0), Idx::Const(outer), 1, &[], |b, o, _| {
        let z = fconst(b, F32, 0.0);
        let acc = emit_for(b, Idx::Const(0), Idx::Const(inner), 1, &[z], |b, i, c| {
            let (r, s) = if rows { (o, i) } else { (i, o) };
            let (p, off) = a.addr(b, Idx::Val(r), Idx::Val(s));
            let x = b.ins().load(F32, mem(), p, off);
            vec![b.ins().fadd(c[0], x)]
        });
        let (r, s) = if rows { (o, b.ins().iconst(PTR, 0)) } else { (b.ins().iconst(PTR, 0), o) };
        let (p, off) = dst.addr(b, Idx::Val(r), Idx::Val(s));
        b.ins().store(mem(), acc[0], p, off);
        vec![]
    });
    Ok(())
}
