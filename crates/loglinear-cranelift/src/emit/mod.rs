//! CLIF emitters for the dense tile ops of the kernel IR.
//!
//! Every emitter appends instructions to a [`FunctionBuilder`] positioned in an open block and leaves the builder
//! positioned in an open block after the emitted code (emitters may create loops, i.e. new blocks). Sizes, strides
//! and transpose flags are compile-time constants, so each specialisation gets straight-line inner loops; only a
//! few quantities (a row count of a partial chunk, a loop index, the row stride of λ) are run-time [`Value`]s.
//!
//! Memory layout: a [`Tile`] is a row-major block of `f32` whose rows are contiguous (column stride 1) and whose
//! row stride is a compile-time number of elements. Pointers are `i64` values (the JIT targets 64-bit hosts only).
//! Loads and stores are emitted as non-trapping and *not* aligned, so operands need only 4-byte alignment.
//!
//! Vector code uses `f32x4` (Cranelift's x86 backend has 128-bit vectors only); `fma` is emitted when
//! [`EmitCtx::use_fma`] is set, `fmul` + `fadd` otherwise.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, BlockArg, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

pub mod elementwise;
pub mod mask;
pub mod math;
pub mod matmul;
pub mod scan;
pub mod segsum;
pub mod tile;

pub use elementwise::{
    emit_binary, emit_l2norm_rows, emit_map_binary, emit_map_unary, emit_scale_rows, emit_unary, BinaryOp, UnaryOp,
};
pub use mask::{emit_level_mask, LevelMaskSpec};
pub use math::{emit_exp, emit_exp_nonpos, emit_log, emit_log1p, emit_sigmoid, emit_softplus};
pub use matmul::{emit_matmul, MatmulSpec, Transpose, Triangular};
pub use scan::{emit_cumsum, emit_tri_solve_unit_lower, Axis};

/// The pointer / index type of the generated code.
pub const PTR: Type = types::I64;
/// Scalar element type.
pub const F32: Type = types::F32;
/// Vector element type (4 lanes of f32).
pub const F32X4: Type = types::F32X4;
/// Lanes of [`F32X4`].
pub const LANES: usize = 4;

/// Code-generation choices that depend on the host (or on a test that wants the portable path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmitCtx {
    /// Emit fused multiply-add (`fma`) instead of `fmul` + `fadd`. Only set this when the ISA has FMA.
    pub use_fma: bool,
}

/// Errors of the emitters: a specification that cannot be emitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmitError {
    /// A size or stride is invalid for the op (the message names it).
    #[error("invalid tile-op specification: {0}")]
    InvalidSpec(String),
}

/// An index that is either known when the code is generated or a run-time `i64` value.
#[derive(Clone, Copy, Debug)]
pub enum Idx {
    /// Compile-time constant.
    Const(usize),
    /// Run-time `i64` value.
    Val(Value),
}

/// A row-major `f32` tile in memory: `rows × cols` elements, element (r, c) at `base + 4·(r·row_stride + c)`.
#[derive(Clone, Copy, Debug)]
pub struct Tile {
    /// Address of element (0, 0) (an `i64` value).
    pub base: Value,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between consecutive rows, in elements (≥ `cols`).
    pub row_stride: usize,
}

impl Tile {
    /// A dense tile (row stride = `cols`).
    pub fn dense(base: Value, rows: usize, cols: usize) -> Self {
        Tile { base, rows, cols, row_stride: cols }
    }

    /// Checks that the tile is non-empty and its stride covers a row.
    pub fn validate(&self, what: &str) -> Result<(), EmitError> {
        if self.rows == 0 || self.cols == 0 {
            return Err(EmitError::InvalidSpec(format!("{what}: empty tile {}x{}", self.rows, self.cols)));
        }
        if self.row_stride < self.cols {
            return Err(EmitError::InvalidSpec(format!("{what}: row stride {} < cols {}", self.row_stride, self.cols)));
        }
        if (self.rows * self.row_stride).checked_mul(4).is_none_or(|b| b > i32::MAX as usize) {
            return Err(EmitError::InvalidSpec(format!("{what}: tile too large")));
        }
        Ok(())
    }

    /// Address of element (r, c) as (pointer value, constant byte offset).
    pub fn addr(&self, b: &mut FunctionBuilder, r: Idx, c: Idx) -> (Value, i32) {
        elem_addr(b, self.base, self.row_stride, r, c)
    }
}

/// Address of element (r, c) of a row-major array with `row_stride` elements per row, as (pointer, byte offset).
pub fn elem_addr(b: &mut FunctionBuilder, base: Value, row_stride: usize, r: Idx, c: Idx) -> (Value, i32) {
    let mut ptr = base;
    let mut off: i64 = 0;
    match r {
        Idx::Const(r) => off += (r * row_stride * 4) as i64,
        Idx::Val(v) => {
            let o = b.ins().imul_imm_s(v, (row_stride * 4) as i64);
            ptr = b.ins().iadd(ptr, o);
        }
    }
    match c {
        Idx::Const(c) => off += (c * 4) as i64,
        Idx::Val(v) => {
            let o = b.ins().ishl_imm_s(v, 2);
            ptr = b.ins().iadd(ptr, o);
        }
    }
    (ptr, off as i32)
}

/// Memory flags of every load and store: non-trapping, no alignment promise.
pub fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// An `f32` constant of type `ty` ([`F32`] or [`F32X4`], splatted).
pub fn fconst(b: &mut FunctionBuilder, ty: Type, v: f32) -> Value {
    let s = b.ins().f32const(v);
    if ty.is_vector() {
        b.ins().splat(ty, s)
    } else {
        s
    }
}

/// An `i32` constant of the integer type matching `ty` (`i32` for [`F32`], `i32x4` for [`F32X4`]).
pub fn iconst32(b: &mut FunctionBuilder, ty: Type, v: i32) -> Value {
    let s = b.ins().iconst(types::I32, v as i64);
    if ty.is_vector() {
        b.ins().splat(types::I32X4, s)
    } else {
        s
    }
}

/// The integer type with the lane shape of the float type `ty`.
pub fn int_ty(ty: Type) -> Type {
    if ty.is_vector() {
        types::I32X4
    } else {
        types::I32
    }
}

/// Bit-reinterprets `x` as type `to` (same size, same lane count).
pub fn bitcast(b: &mut FunctionBuilder, to: Type, x: Value) -> Value {
    b.ins().bitcast(to, MemFlagsData::new(), x)
}

/// `a·x + c`: one `fma` when the context allows it, else `fmul` + `fadd`.
pub fn mul_add(b: &mut FunctionBuilder, ctx: &EmitCtx, a: Value, x: Value, c: Value) -> Value {
    if ctx.use_fma {
        b.ins().fma(a, x, c)
    } else {
        let p = b.ins().fmul(a, x);
        b.ins().fadd(p, c)
    }
}

/// Lane-wise `if cond { x } else { y }` where `cond` is the result of an `fcmp` on values of `x`'s type.
pub fn select_f(b: &mut FunctionBuilder, cond: Value, x: Value, y: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    if ty.is_vector() {
        let m = bitcast(b, ty, cond);
        b.ins().bitselect(m, x, y)
    } else {
        b.ins().select(cond, x, y)
    }
}

/// A value of type `ty` (`F32` or `F32X4`) splatted from a scalar `f32` when needed.
pub fn splat_to(b: &mut FunctionBuilder, ty: Type, s: Value) -> Value {
    if ty.is_vector() {
        b.ins().splat(ty, s)
    } else {
        s
    }
}

/// Horizontal sum of the 4 lanes of an `f32x4` (pairwise).
pub fn hsum(b: &mut FunctionBuilder, v: Value) -> Value {
    let l0 = b.ins().extractlane(v, 0);
    let l1 = b.ins().extractlane(v, 1);
    let l2 = b.ins().extractlane(v, 2);
    let l3 = b.ins().extractlane(v, 3);
    let a = b.ins().fadd(l0, l1);
    let c = b.ins().fadd(l2, l3);
    b.ins().fadd(a, c)
}

/// An `i64` value for an index.
pub fn idx_val(b: &mut FunctionBuilder, i: Idx) -> Value {
    match i {
        Idx::Const(c) => b.ins().iconst(PTR, c as i64),
        Idx::Val(v) => v,
    }
}

/// Emits a counted loop `for i in (start..end).step_by(step)` with loop-carried values.
///
/// `body(builder, i, carried)` emits the loop body and returns the next carried values (same number and types).
/// The function returns the carried values after the loop. Constant bounds with a trip count of 0 emit nothing;
/// a trip count of 1 inlines the body with a constant `i`. Run-time bounds get a guard for an empty range.
/// `step` must be positive. The builder is left in the (open) exit block.
pub fn emit_for(
    b: &mut FunctionBuilder,
    start: Idx,
    end: Idx,
    step: usize,
    carried: &[Value],
    mut body: impl FnMut(&mut FunctionBuilder, Value, &[Value]) -> Vec<Value>,
) -> Vec<Value> {
    debug_assert!(step > 0);
    let mut known_nonempty = false;
    if let (Idx::Const(s), Idx::Const(e)) = (start, end) {
        if s >= e {
            return carried.to_vec();
        }
        if e - s <= step {
            let i = b.ins().iconst(PTR, s as i64);
            return body(b, i, carried);
        }
        known_nonempty = true;
    }
    let types: Vec<Type> = carried.iter().map(|v| b.func.dfg.value_type(*v)).collect();
    let body_blk = b.create_block();
    let exit_blk = b.create_block();
    b.append_block_param(body_blk, PTR);
    for t in &types {
        b.append_block_param(body_blk, *t);
        b.append_block_param(exit_blk, *t);
    }
    let start_v = idx_val(b, start);
    let mut args: Vec<BlockArg> = vec![BlockArg::Value(start_v)];
    args.extend(carried.iter().map(|v| BlockArg::Value(*v)));
    let exit_args: Vec<BlockArg> = carried.iter().map(|v| BlockArg::Value(*v)).collect();
    if known_nonempty {
        b.ins().jump(body_blk, &args);
    } else {
        let end_v = idx_val(b, end);
        let c = b.ins().icmp(IntCC::SignedLessThan, start_v, end_v);
        b.ins().brif(c, body_blk, &args, exit_blk, &exit_args);
    }
    b.switch_to_block(body_blk);
    let params = b.block_params(body_blk).to_vec();
    let i = params[0];
    let next = body(b, i, &params[1..]);
    assert_eq!(next.len(), types.len(), "emit_for: body must return as many values as are carried");
    let i2 = b.ins().iadd_imm_s(i, step as i64);
    let end_v = idx_val(b, end);
    let c = b.ins().icmp(IntCC::SignedLessThan, i2, end_v);
    let mut args: Vec<BlockArg> = vec![BlockArg::Value(i2)];
    args.extend(next.iter().map(|v| BlockArg::Value(*v)));
    let exit_args: Vec<BlockArg> = next.iter().map(|v| BlockArg::Value(*v)).collect();
    b.ins().brif(c, body_blk, &args, exit_blk, &exit_args);
    b.seal_block(body_blk);
    b.seal_block(exit_blk);
    b.switch_to_block(exit_blk);
    b.block_params(exit_blk).to_vec()
}

/// Emits `if cond { then() }` (no values flow out); `cond` is an integer (non-zero = true).
/// The builder is left in the (open) merge block.
pub fn emit_if(b: &mut FunctionBuilder, cond: Value, then: impl FnOnce(&mut FunctionBuilder)) {
    let then_blk = b.create_block();
    let merge = b.create_block();
    b.ins().brif(cond, then_blk, &[], merge, &[]);
    b.seal_block(then_blk);
    b.switch_to_block(then_blk);
    then(b);
    b.ins().jump(merge, &[]);
    b.seal_block(merge);
    b.switch_to_block(merge);
}

/// Emits a traversal of `cols` columns in vector steps of 4 plus a scalar tail.
///
/// Calls `f(builder, ty, c)` with `ty` = [`F32X4`] for columns `c..c+4` and [`F32`] for tail columns. Column
/// indices are constants when there are at most 8 vector steps (fully unrolled), else the vector part is a
/// run-time loop.
pub fn for_each_col(b: &mut FunctionBuilder, cols: usize, mut f: impl FnMut(&mut FunctionBuilder, Type, Idx)) {
    for_each_col_fold(b, cols, &[], |b, ty, c, _| {
        f(b, ty, c);
        vec![]
    });
}

/// Like [`for_each_col`], with values carried from step to step (e.g. accumulators): `f` receives the current
/// values and returns the next ones (same number and types); the final values are returned.
pub fn for_each_col_fold(
    b: &mut FunctionBuilder,
    cols: usize,
    init: &[Value],
    mut f: impl FnMut(&mut FunctionBuilder, Type, Idx, &[Value]) -> Vec<Value>,
) -> Vec<Value> {
    const UNROLL_VECS: usize = 8;
    let nv = cols / LANES;
    let mut state = init.to_vec();
    if nv <= UNROLL_VECS {
        for j in 0..nv {
            state = f(b, F32X4, Idx::Const(j * LANES), &state);
        }
    } else {
        state =
            emit_for(b, Idx::Const(0), Idx::Const(nv * LANES), LANES, &state, |b, c, st| f(b, F32X4, Idx::Val(c), st));
    }
    for c in nv * LANES..cols {
        state = f(b, F32, Idx::Const(c), &state);
    }
    state
}

/// Fills a tile with a constant.
pub fn emit_fill(b: &mut FunctionBuilder, dst: Tile, value: f32) -> Result<(), EmitError> {
    dst.validate("fill dst")?;
    let zv = fconst(b, F32X4, value);
    let zs = fconst(b, F32, value);
    emit_for(b, Idx::Const(0), Idx::Const(dst.rows), 1, &[], |b, r, _| {
        for_each_col(b, dst.cols, |b, ty, c| {
            let (p, o) = dst.addr(b, Idx::Val(r), c);
            b.ins().store(mem(), if ty.is_vector() { zv } else { zs }, p, o);
        });
        vec![]
    });
    Ok(())
}

/// Copies `n_rows` rows of `cols` floats from `src` (row stride `src_stride` elements, possibly a run-time value)
/// to `dst` (compile-time row stride). `n_rows` may be a run-time value.
pub fn emit_copy_rows(
    b: &mut FunctionBuilder,
    src: Value,
    src_stride: Idx,
    dst: Tile,
    n_rows: Idx,
) -> Result<(), EmitError> {
    dst.validate("copy dst")?;
    emit_for(b, Idx::Const(0), n_rows, 1, &[], |b, r, _| {
        let srow = match src_stride {
            Idx::Const(s) => {
                let o = b.ins().imul_imm_s(r, (s * 4) as i64);
                b.ins().iadd(src, o)
            }
            Idx::Val(s) => {
                let o = b.ins().imul(r, s);
                let o = b.ins().ishl_imm_s(o, 2);
                b.ins().iadd(src, o)
            }
        };
        let drow = dst.addr(b, Idx::Val(r), Idx::Const(0)).0;
        let src_row = Tile { base: srow, rows: 1, cols: dst.cols, row_stride: dst.cols };
        let dst_row = Tile { base: drow, rows: 1, cols: dst.cols, row_stride: dst.cols };
        for_each_col(b, dst.cols, |b, ty, c| {
            let (sp, so) = src_row.addr(b, Idx::Const(0), c);
            let x = b.ins().load(ty, mem(), sp, so);
            let (dp, dof) = dst_row.addr(b, Idx::Const(0), c);
            b.ins().store(mem(), x, dp, dof);
        });
        vec![]
    });
    Ok(())
}
