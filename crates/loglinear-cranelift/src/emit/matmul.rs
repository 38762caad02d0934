//! Register-blocked f32 matrix multiply: `C[m×n] (+)= α · op(A) · op(B)`, f32 accumulation.
//!
//! The output is cut into `mr × nr` micro-tiles (default 4 × 8). A micro-tile keeps `mr · ⌊nr/4⌋` `f32x4`
//! accumulators (plus `mr · (nr mod 4)` scalar ones) in registers and walks the reduction dimension in a
//! run-time loop unrolled up to 4×: per step it loads `⌈nr/4⌉` vectors of a B row, broadcasts `mr` elements of A
//! and issues `fma`s (or `fmul` + `fadd`). Edge tiles (`m mod mr`, `n mod nr`) get their own smaller
//! micro-kernels, all specialised at compile time. `A·Bᵀ` first packs `B` transposed into a stack buffer
//! (`k × n`, `O(k·n)` work against `O(m·n·k)`) and then runs the `A·B` kernel.
//!
//! Triangular structure (square operands in the chunk kernels) can skip work:
//! * [`Triangular::ALower`]: `A[i, p] = 0` for `p > i`, so row block `[i0, i0+mr)` reduces over `p < i0 + mr` only
//!   (e.g. `P·V` with a causal `P`). The entries of A above the diagonal inside a diagonal block are read, so
//!   they must hold zeros.
//! * [`Triangular::CLower`]: only the output blocks that intersect the lower triangle `j ≤ i` are computed;
//!   blocks entirely above the diagonal are **not written** (e.g. `Q·Kᵀ` followed by a causal mask).

#![allow(clippy::needless_range_loop)] // index arithmetic over micro-tile lanes reads better with ranges

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, StackSlotData, StackSlotKind, Value};
use cranelift_frontend::FunctionBuilder;

use super::{elem_addr, emit_for, emit_if, fconst, mem, mul_add, EmitCtx, EmitError, Idx, F32, F32X4, LANES, PTR};

/// Which operand is stored transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transpose {
    /// `C = A·B`: A stored `m×k`, B stored `k×n`.
    None,
    /// `C = Aᵀ·B`: A stored `k×m`, B stored `k×n`.
    A,
    /// `C = A·Bᵀ`: A stored `m×k`, B stored `n×k`.
    B,
}

/// Triangular structure to exploit (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Triangular {
    /// Dense.
    None,
    /// `op(A)` is lower-triangular (`m == k`): reduce only up to the end of each row block.
    ALower,
    /// Only output blocks that touch `j ≤ i` are computed (`m == n`); the others are left unwritten.
    CLower,
}

/// Compile-time description of one matrix multiply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulSpec {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Transposed operand.
    pub trans: Transpose,
    /// `C += α·op(A)·op(B)` when true, `C = α·op(A)·op(B)` otherwise.
    pub accumulate: bool,
    /// The factor α.
    pub alpha: f32,
    /// Row stride of A as stored, in elements.
    pub lda: usize,
    /// Row stride of B as stored, in elements.
    pub ldb: usize,
    /// Row stride of C, in elements.
    pub ldc: usize,
    /// Micro-tile rows (1..=8).
    pub mr: usize,
    /// Micro-tile columns (1..=16).
    pub nr: usize,
    /// Largest unroll factor of the reduction loop (1, 2 or 4; the factor used also divides `k`, and `mr` for
    /// [`Triangular::ALower`]).
    pub k_unroll: usize,
    /// Triangular structure.
    pub tri: Triangular,
}

impl MatmulSpec {
    /// A dense-stride spec: `C = op(A)·op(B)`, α = 1, 4 × 8 micro-tiles, no triangular structure.
    pub fn new(m: usize, n: usize, k: usize, trans: Transpose) -> Self {
        let (lda, ldb) = match trans {
            Transpose::None => (k, n),
            Transpose::A => (m, n),
            Transpose::B => (k, k),
        };
        MatmulSpec {
            m,
            n,
            k,
            trans,
            accumulate: false,
            alpha: 1.0,
            lda,
            ldb,
            ldc: n,
            mr: 4,
            nr: 8,
            k_unroll: 1,
            tri: Triangular::None,
        }
    }

    /// Stored shape (rows, cols) of A.
    pub fn a_shape(&self) -> (usize, usize) {
        match self.trans {
            Transpose::A => (self.k, self.m),
            _ => (self.m, self.k),
        }
    }

    /// Stored shape (rows, cols) of B.
    pub fn b_shape(&self) -> (usize, usize) {
        match self.trans {
            Transpose::B => (self.n, self.k),
            _ => (self.k, self.n),
        }
    }

    /// Checks sizes, strides and blocking.
    pub fn validate(&self) -> Result<(), EmitError> {
        let bad = |s: String| Err(EmitError::InvalidSpec(format!("matmul: {s}")));
        if self.m == 0 || self.n == 0 || self.k == 0 {
            return bad(format!("empty operand m={} n={} k={}", self.m, self.n, self.k));
        }
        let (ar, ac) = self.a_shape();
        let (br, bc) = self.b_shape();
        if self.lda < ac {
            return bad(format!("lda {} < {}", self.lda, ac));
        }
        if self.ldb < bc {
            return bad(format!("ldb {} < {}", self.ldb, bc));
        }
        if self.ldc < self.n {
            return bad(format!("ldc {} < n {}", self.ldc, self.n));
        }
        if ![1, 2, 4].contains(&self.k_unroll) {
            return bad(format!("k_unroll {} not in {{1, 2, 4}}", self.k_unroll));
        }
        if !(1..=8).contains(&self.mr) || !(1..=16).contains(&self.nr) {
            return bad(format!("micro-tile {}x{} outside 1..=8 x 1..=16", self.mr, self.nr));
        }
        match self.tri {
            Triangular::ALower if self.m != self.k => return bad("ALower needs m == k".into()),
            Triangular::CLower if self.m != self.n => return bad("CLower needs m == n".into()),
            _ => {}
        }
        let fits = |rows: usize, ld: usize| {
            rows.checked_mul(ld).and_then(|e| e.checked_mul(4)).is_some_and(|b| b < i32::MAX as usize)
        };
        if !fits(ar, self.lda) || !fits(br, self.ldb) || !fits(self.m, self.ldc) || !fits(self.k, self.n) {
            return bad("operand too large".into());
        }
        Ok(())
    }
}

/// The A·B kernel's view of its operands after packing: element strides per row index i and per k index p.
struct Plan {
    spec: MatmulSpec,
    a: Value,
    a_row_step: usize,
    a_k_step: usize,
    b: Value,
    ldb: usize,
    c: Value,
    unroll: usize,
}

/// Emits `C (+)= α·op(A)·op(B)` for pointer values `a`, `bm`, `c` (see [`MatmulSpec`] for the stored shapes).
///
/// The builder must be in an open block; it is left in an open block.
pub fn emit_matmul(
    b: &mut FunctionBuilder,
    ctx: &EmitCtx,
    spec: &MatmulSpec,
    a: Value,
    bm: Value,
    c: Value,
) -> Result<(), EmitError> {
    spec.validate()?;
    let (a_row_step, a_k_step) = match spec.trans {
        Transpose::A => (1, spec.lda),
        _ => (spec.lda, 1),
    };
    let (bp, ldb) = if spec.trans == Transpose::B {
        (pack_transposed(b, bm, spec.n, spec.k, spec.ldb), spec.n)
    } else {
        (bm, spec.ldb)
    };
    let mut unroll = 1;
    for u in [4, 2] {
        if u <= spec.k_unroll
            && spec.k.is_multiple_of(u)
            && (spec.tri != Triangular::ALower || spec.mr.is_multiple_of(u))
        {
            unroll = u;
            break;
        }
    }
    let plan = Plan { spec: *spec, a, a_row_step, a_k_step, b: bp, ldb, c, unroll };
    let m_full = spec.m / spec.mr * spec.mr;
    emit_for(b, Idx::Const(0), Idx::Const(m_full), spec.mr, &[], |b, i0, _| {
        row_block(b, ctx, &plan, Idx::Val(i0), spec.mr);
        vec![]
    });
    if m_full < spec.m {
        row_block(b, ctx, &plan, Idx::Const(m_full), spec.m - m_full);
    }
    Ok(())
}

/// Copies B (stored `n×k`, row stride `ldb`) transposed into a fresh stack buffer `k×n`; returns its address.
fn pack_transposed(b: &mut FunctionBuilder, src: Value, n: usize, k: usize, ldb: usize) -> Value {
    let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (k * n * 4) as u32, 4));
    let dst = b.ins().stack_addr(PTR, slot, 0);
    emit_for(b, Idx::Const(0), Idx::Const(n), 1, &[], |b, j, _| {
        let (srow, _) = elem_addr(b, src, ldb, Idx::Val(j), Idx::Const(0));
        let (dcol, _) = elem_addr(b, dst, n, Idx::Const(0), Idx::Val(j));
        let chunk = if k.is_multiple_of(4) { 4 } else { 1 };
        emit_for(b, Idx::Const(0), Idx::Const(k), chunk, &[], |b, p, _| {
            let (sp, _) = elem_addr(b, srow, 0, Idx::Const(0), Idx::Val(p));
            let (dp, _) = elem_addr(b, dcol, n, Idx::Val(p), Idx::Const(0));
            for u in 0..chunk {
                let x = b.ins().load(F32, mem(), sp, (u * 4) as i32);
                b.ins().store(mem(), x, dp, (u * n * 4) as i32);
            }
            vec![]
        });
        vec![]
    });
    dst
}

fn add_idx(b: &mut FunctionBuilder, i: Idx, d: usize) -> Idx {
    match i {
        Idx::Const(c) => Idx::Const(c + d),
        Idx::Val(v) => Idx::Val(b.ins().iadd_imm_s(v, d as i64)),
    }
}

/// All column blocks of the row block `[i0, i0 + mrh)`.
fn row_block(b: &mut FunctionBuilder, ctx: &EmitCtx, plan: &Plan, i0: Idx, mrh: usize) {
    let s = &plan.spec;
    let n_full = s.n / s.nr * s.nr;
    let kend = match s.tri {
        Triangular::ALower => add_idx(b, i0, mrh),
        _ => Idx::Const(s.k),
    };
    // Columns needed: all, or (CLower) j < i0 + mrh.
    let (j_end_full, rem_needed): (Idx, Option<Idx>) = match (s.tri, i0) {
        (Triangular::CLower, Idx::Const(i0c)) => {
            let jl = i0c + mrh;
            let end = jl.div_ceil(s.nr) * s.nr;
            (Idx::Const(end.min(n_full)), if n_full < jl { Some(Idx::Const(1)) } else { Some(Idx::Const(0)) })
        }
        (Triangular::CLower, Idx::Val(iv)) => {
            // end = min(n_full, ceil_to(i0 + mrh, nr))
            let t = b.ins().iadd_imm_s(iv, (mrh + s.nr - 1) as i64);
            let r = b.ins().urem_imm_s(t, s.nr as i64);
            let t = b.ins().isub(t, r);
            let nf = b.ins().iconst(PTR, n_full as i64);
            let lt = b.ins().icmp(IntCC::SignedLessThan, t, nf);
            let end = b.ins().select(lt, t, nf);
            let jl = b.ins().iadd_imm_s(iv, mrh as i64);
            let need = b.ins().icmp(IntCC::SignedLessThan, nf, jl);
            (Idx::Val(end), Some(Idx::Val(need)))
        }
        _ => (Idx::Const(n_full), Some(Idx::Const(1))),
    };
    emit_for(b, Idx::Const(0), j_end_full, s.nr, &[], |b, j0, _| {
        micro(b, ctx, plan, i0, Idx::Val(j0), mrh, s.nr, kend);
        vec![]
    });
    if n_full < s.n {
        match rem_needed {
            Some(Idx::Const(0)) | None => {}
            Some(Idx::Const(_)) => micro(b, ctx, plan, i0, Idx::Const(n_full), mrh, s.n - n_full, kend),
            Some(Idx::Val(cond)) => {
                emit_if(b, cond, |b| micro(b, ctx, plan, i0, Idx::Const(n_full), mrh, s.n - n_full, kend))
            }
        }
    }
}

/// One `mrh × nrh` micro-tile at (i0, j0), reducing over `p < kend`.
#[allow(clippy::too_many_arguments)]
fn micro(b: &mut FunctionBuilder, ctx: &EmitCtx, plan: &Plan, i0: Idx, j0: Idx, mrh: usize, nrh: usize, kend: Idx) {
    let s = &plan.spec;
    let nv = nrh / LANES;
    let ns = nrh % LANES;
    let (a_blk, a_off) = elem_addr(b, plan.a, plan.a_row_step, i0, Idx::Const(0));
    let (b_blk, b_off) = elem_addr(b, plan.b, plan.ldb, Idx::Const(0), j0);
    // Accumulators: mrh·nv vectors, then mrh·ns scalars.
    let zv = fconst(b, F32X4, 0.0);
    let zs = fconst(b, F32, 0.0);
    let mut init = vec![zv; mrh * nv];
    init.extend(std::iter::repeat_n(zs, mrh * ns));
    let u = plan.unroll;
    let accs = emit_for(b, Idx::Const(0), kend, u, &init, |b, p, acc| {
        let mut acc = acc.to_vec();
        let ap = b.ins().imul_imm_s(p, (plan.a_k_step * 4) as i64);
        let ap = b.ins().iadd(a_blk, ap);
        let bp = b.ins().imul_imm_s(p, (plan.ldb * 4) as i64);
        let bp = b.ins().iadd(b_blk, bp);
        for uu in 0..u {
            let brow = b_off + (uu * plan.ldb * 4) as i32;
            let bv: Vec<Value> =
                (0..nv).map(|jv| b.ins().load(F32X4, mem(), bp, brow + (jv * LANES * 4) as i32)).collect();
            let bs: Vec<Value> =
                (0..ns).map(|js| b.ins().load(F32, mem(), bp, brow + ((nv * LANES + js) * 4) as i32)).collect();
            for i in 0..mrh {
                let aoff = a_off + ((i * plan.a_row_step + uu * plan.a_k_step) * 4) as i32;
                let a_s = b.ins().load(F32, mem(), ap, aoff);
                if nv > 0 {
                    let a_v = b.ins().splat(F32X4, a_s);
                    for jv in 0..nv {
                        let k = i * nv + jv;
                        acc[k] = mul_add(b, ctx, a_v, bv[jv], acc[k]);
                    }
                }
                for js in 0..ns {
                    let k = mrh * nv + i * ns + js;
                    acc[k] = mul_add(b, ctx, a_s, bs[js], acc[k]);
                }
            }
        }
        acc
    });
    // Store: C (+)= α·acc.
    let (c_blk, c_off) = {
        let (p, o) = elem_addr(b, plan.c, s.ldc, i0, Idx::Const(0));
        let (p2, o2) = elem_addr(b, p, s.ldc, Idx::Const(0), j0);
        (p2, o + o2)
    };
    let alpha_v = fconst(b, F32X4, s.alpha);
    let alpha_s = fconst(b, F32, s.alpha);
    for i in 0..mrh {
        for jv in 0..nv {
            let off = c_off + ((i * s.ldc + jv * LANES) * 4) as i32;
            let v = store_val(b, ctx, s, accs[i * nv + jv], alpha_v, c_blk, off, true);
            b.ins().store(mem(), v, c_blk, off);
        }
        for js in 0..ns {
            let off = c_off + ((i * s.ldc + nv * LANES + js) * 4) as i32;
            let v = store_val(b, ctx, s, accs[mrh * nv + i * ns + js], alpha_s, c_blk, off, false);
            b.ins().store(mem(), v, c_blk, off);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn store_val(
    b: &mut FunctionBuilder,
    ctx: &EmitCtx,
    s: &MatmulSpec,
    acc: Value,
    alpha: Value,
    ptr: Value,
    off: i32,
    vector: bool,
) -> Value {
    let ty = if vector { F32X4 } else { F32 };
    match (s.accumulate, s.alpha == 1.0) {
        (true, true) => {
            let old = b.ins().load(ty, mem(), ptr, off);
            b.ins().fadd(old, acc)
        }
        (true, false) => {
            let old = b.ins().load(ty, mem(), ptr, off);
            mul_add(b, ctx, acc, alpha, old)
        }
        (false, true) => acc,
        (false, false) => b.ins().fmul(acc, alpha),
    }
}
