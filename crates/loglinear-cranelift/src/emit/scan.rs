//! Sequential tile ops: inclusive cumulative sums and unit-lower-triangular forward substitution.

#![allow(clippy::needless_range_loop)] // index arithmetic over micro-tile lanes reads better with ranges

use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::{emit_for, fconst, mem, mul_add, EmitCtx, EmitError, Idx, Tile, F32, F32X4, LANES};

/// Dimension along which a scan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Down the rows: `dst[r, c] = Σ_{r' ≤ r} src[r', c]` (vectorised across columns).
    Rows,
    /// Along each row: `dst[r, c] = Σ_{c' ≤ c} src[r, c']` (a scalar chain per row).
    Cols,
}

/// Inclusive cumulative sum of a tile along `axis` (`dst` may alias `src`). A length-C vector (γ from g) is a
/// `1×C` tile with [`Axis::Cols`] or a `C×1` tile with [`Axis::Rows`].
pub fn emit_cumsum(b: &mut FunctionBuilder, src: Tile, dst: Tile, axis: Axis) -> Result<(), EmitError> {
    src.validate("cumsum src")?;
    dst.validate("cumsum dst")?;
    if src.rows != dst.rows || src.cols != dst.cols {
        return Err(EmitError::InvalidSpec("cumsum: shape mismatch".into()));
    }
    match axis {
        Axis::Cols => {
            emit_for(b, Idx::Const(0), Idx::Const(src.rows), 1, &[], |b, r, _| {
                let (sp, so) = src.addr(b, Idx::Val(r), Idx::Const(0));
                let (dp, dof) = dst.addr(b, Idx::Val(r), Idx::Const(0));
                let z = fconst(b, F32, 0.0);
                emit_for(b, Idx::Const(0), Idx::Const(src.cols), 1, &[z], |b, c, acc| {
                    let off = b.ins().ishl_imm_s(c, 2);
                    let s = b.ins().iadd(sp, off);
                    let x = b.ins().load(F32, mem(), s, so);
                    let y = b.ins().fadd(acc[0], x);
                    let d = b.ins().iadd(dp, off);
                    b.ins().store(mem(), y, d, dof);
                    vec![y]
                });
                vec![]
            });
        }
        Axis::Rows => {
            let nv = src.cols / LANES;
            let chunks: Vec<(usize, bool)> =
                (0..nv).map(|j| (j * LANES, true)).chain((nv * LANES..src.cols).map(|c| (c, false))).collect();
            for (c, vector) in chunks {
                let ty = if vector { F32X4 } else { F32 };
                let z = fconst(b, ty, 0.0);
                emit_for(b, Idx::Const(0), Idx::Const(src.rows), 1, &[z], |b, r, acc| {
                    let (sp, so) = src.addr(b, Idx::Val(r), Idx::Const(c));
                    let x = b.ins().load(ty, mem(), sp, so);
                    let y = b.ins().fadd(acc[0], x);
                    let (dp, dof) = dst.addr(b, Idx::Val(r), Idx::Const(c));
                    b.ins().store(mem(), y, dp, dof);
                    vec![y]
                });
            }
        }
    }
    Ok(())
}

/// Forward substitution with a unit lower-triangular matrix, in place:
/// solves `(I + StrictLower(A)) · X = B` for `X`, where `x` holds `B` on entry and `X` on exit.
///
/// `a` is `n×n` (only its strictly lower part is read); `x` is `n×w`. Row `i` of `X` is
/// `B[i,:] − Σ_{j<i} A[i,j] · X[j,:]`, vectorised across the `w` columns in blocks of up to 4 `f32x4`
/// accumulators. With `x = I` this yields `(I + StrictLower(A))⁻¹` (the §5.4 `T_w`, `T_u`).
pub fn emit_tri_solve_unit_lower(b: &mut FunctionBuilder, ctx: &EmitCtx, a: Tile, x: Tile) -> Result<(), EmitError> {
    a.validate("tri_solve a")?;
    x.validate("tri_solve x")?;
    if a.rows != a.cols || a.rows != x.rows {
        return Err(EmitError::InvalidSpec(format!(
            "tri_solve: a is {}x{}, x is {}x{} (need a n×n, x n×w)",
            a.rows, a.cols, x.rows, x.cols
        )));
    }
    const BLOCK_VECS: usize = 4;
    let w = x.cols;
    let nv = w / LANES;
    // Column blocks: (first column, vector count, scalar count).
    let mut blocks: Vec<(usize, usize, usize)> = Vec::new();
    let mut c = 0;
    while c + LANES <= nv * LANES {
        let v = BLOCK_VECS.min(nv - c / LANES);
        blocks.push((c, v, 0));
        c += v * LANES;
    }
    if nv * LANES < w {
        blocks.push((nv * LANES, 0, w - nv * LANES));
    }
    emit_for(b, Idx::Const(1), Idx::Const(a.rows), 1, &[], |b, i, _| {
        let (arow, aoff) = a.addr(b, Idx::Val(i), Idx::Const(0));
        for &(c0, v, sc) in &blocks {
            let (xi, xoff) = x.addr(b, Idx::Val(i), Idx::Const(c0));
            let mut init: Vec<Value> =
                (0..v).map(|t| b.ins().load(F32X4, mem(), xi, xoff + (t * LANES * 4) as i32)).collect();
            init.extend((0..sc).map(|t| b.ins().load(F32, mem(), xi, xoff + (t * 4) as i32)));
            let res = emit_for(b, Idx::Const(0), Idx::Val(i), 1, &init, |b, j, acc| {
                let off = b.ins().ishl_imm_s(j, 2);
                let ap = b.ins().iadd(arow, off);
                let aij = b.ins().load(F32, mem(), ap, aoff);
                let na = b.ins().fneg(aij);
                let nav = b.ins().splat(F32X4, na);
                let (xj, xjoff) = x.addr(b, Idx::Val(j), Idx::Const(c0));
                let mut out = Vec::with_capacity(acc.len());
                for t in 0..v {
                    let xv = b.ins().load(F32X4, mem(), xj, xjoff + (t * LANES * 4) as i32);
                    out.push(mul_add(b, ctx, nav, xv, acc[t]));
                }
                for t in 0..sc {
                    let xs = b.ins().load(F32, mem(), xj, xjoff + (t * 4) as i32);
                    out.push(mul_add(b, ctx, na, xs, acc[v + t]));
                }
                out
            });
            for t in 0..v {
                b.ins().store(mem(), res[t], xi, xoff + (t * LANES * 4) as i32);
            }
            for t in 0..sc {
                b.ins().store(mem(), res[v + t], xi, xoff + (t * 4) as i32);
            }
        }
        vec![]
    });
    Ok(())
}
