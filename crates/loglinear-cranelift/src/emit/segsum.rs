//! Segment sums of gates: the numerically stable way to form `γ_r − γ_s` and `γ_last − γ_r` (kernel-IR ops
//! `segsum` and `suffix_sum`). Summing the gates between two rows directly never subtracts two large cumulative
//! sums, so a block of huge negative gates elsewhere in the chunk costs no precision.

use cranelift_codegen::ir::InstBuilder;
use cranelift_frontend::FunctionBuilder;

use super::{emit_for, fconst, mem, EmitError, Idx, Tile, F32};

/// `dst[r, s] = Σ_{u=s+1}^{r} g[u]` for `s ≤ r` (0 on the diagonal) and `−∞` above it; `g` is an `n × 1` column,
/// `dst` is `n × n`.
pub fn emit_segsum(b: &mut FunctionBuilder, g: Tile, dst: Tile) -> Result<(), EmitError> {
    g.validate("segsum g")?;
    dst.validate("segsum dst")?;
    let n = dst.rows;
    if g.cols != 1 || g.rows != n || dst.cols != n {
        return Err(EmitError::InvalidSpec(format!(
            "segsum: expected an {n}x1 column and an {n}x{n} result, got {}x{} and {}x{}",
            g.rows, g.cols, dst.rows, dst.cols
        )));
    }
    let ninf = fconst(b, F32, f32::NEG_INFINITY);
    let zero = fconst(b, F32, 0.0);
    emit_for(b, Idx::Const(0), Idx::Const(n), 1, &[], |b, r, _| {
        let (p, o) = dst.addr(b, Idx::Val(r), Idx::Val(r));
        b.ins().store(mem(), zero, p, o);
        // s = r − 1 − j for j in 0..r: acc += g[s + 1] = g[r − j].
        emit_for(b, Idx::Const(0), Idx::Val(r), 1, &[zero], |b, j, acc| {
            let u = b.ins().isub(r, j);
            let (gp, go) = g.addr(b, Idx::Val(u), Idx::Const(0));
            let x = b.ins().load(F32, mem(), gp, go);
            let acc = b.ins().fadd(acc[0], x);
            let s = b.ins().iadd_imm_s(u, -1);
            let (p, o) = dst.addr(b, Idx::Val(r), Idx::Val(s));
            b.ins().store(mem(), acc, p, o);
            vec![acc]
        });
        let s1 = b.ins().iadd_imm_s(r, 1);
        emit_for(b, Idx::Val(s1), Idx::Const(n), 1, &[], |b, s, _| {
            let (p, o) = dst.addr(b, Idx::Val(r), Idx::Val(s));
            b.ins().store(mem(), ninf, p, o);
            vec![]
        });
        vec![]
    });
    Ok(())
}

/// `dst[r, c] = Σ_{u=r+1}^{n−1} a[u, c]`: exclusive suffix sums down the rows (`dst` may alias `a`).
pub fn emit_suffix_sum(b: &mut FunctionBuilder, a: Tile, dst: Tile) -> Result<(), EmitError> {
    a.validate("suffix_sum src")?;
    dst.validate("suffix_sum dst")?;
    if a.rows != dst.rows || a.cols != dst.cols {
        return Err(EmitError::InvalidSpec("suffix_sum: shape mismatch".into()));
    }
    let n = a.rows;
    let zero = fconst(b, F32, 0.0);
    for c in 0..a.cols {
        // r = n − 1 − j for j in 0..n.
        emit_for(b, Idx::Const(0), Idx::Const(n), 1, &[zero], |b, j, acc| {
            let nm1 = b.ins().iconst(super::PTR, n as i64 - 1);
            let r = b.ins().isub(nm1, j);
            let (sp, so) = a.addr(b, Idx::Val(r), Idx::Const(c));
            let x = b.ins().load(F32, mem(), sp, so);
            let (dp, dof) = dst.addr(b, Idx::Val(r), Idx::Const(c));
            b.ins().store(mem(), acc[0], dp, dof);
            vec![b.ins().fadd(acc[0], x)]
        });
    }
    Ok(())
}
