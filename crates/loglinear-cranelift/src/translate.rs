//! The translator: one kernel of a kernel-IR [`Program`] → one CLIF function.
//!
//! The generated function has the signature
//! `extern "C" fn(bufs: *const *mut f32, sizes: *const i64, lo: i64, hi: i64, scratch: *mut f32)` and runs the
//! kernel body for the grid points `lo..hi` (linearised, last grid variable fastest). `bufs[i]` is buffer `i` of
//! the program (row-major f32), `sizes` the values of the size symbols in [`sym_slot`] order, `scratch` a
//! per-worker area of [`KernelCode::scratch_floats`] floats holding the kernel's tiles.
//!
//! Specialisation: the program must have been through `loglinear_kernel::passes::specialise`, so K, V, C and
//! every tile shape are literals and every tile op maps onto an emitter of [`crate::emit`] with fixed sizes. All
//! other symbols (B, T, H, L, NT, M, MS, LC) are run-time values: loop bounds, index arithmetic and the valid part
//! of loads and stores (a partial last chunk reads zeros past the end and drops stores past the end, exactly as
//! the kernel IR specifies). Nothing here knows variants or transition classes: each op is translated by itself.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;
use loglinear_kernel::analysis::{upper_structure, upper_unobserved, used_buffers, Upper};
use loglinear_kernel::kernel::{
    BinOp, BufId, Cond, Dim, IExpr, Index, Kernel, Op, Pred, Program, Stmt, Sym, TileId, UnOp, VarId, L2NORM_EPS,
};

use crate::emit::tile::{
    emit_broadcast, emit_broadcast_binary, emit_causal_level_mask, emit_col, emit_copy_tile, emit_eye,
    emit_matmul_gated_causal, emit_pred_select, emit_row, emit_sum, emit_transpose, emit_tril_inplace,
    emit_zero_rows_from, PredSpec,
};
use crate::emit::{
    emit_cumsum, emit_fill, emit_for, emit_l2norm_rows, emit_level_mask, emit_map_binary, emit_map_unary, emit_matmul,
    fconst, for_each_col, mem, Axis, BinaryOp, EmitCtx, EmitError, Idx, LevelMaskSpec, MatmulSpec, Tile, Transpose,
    Triangular, UnaryOp, F32, PTR,
};
use crate::error::JitError;
use crate::jit::{define_function, CompiledFn, DefinedFn, JitModule, ParamType};
use cranelift_module::{Linkage, Module};

/// Number of size symbols passed in the `sizes` array.
pub const NUM_SYMS: usize = 12;

/// Position of a size symbol in the `sizes` array of a generated kernel.
pub fn sym_slot(s: Sym) -> usize {
    match s {
        Sym::B => 0,
        Sym::T => 1,
        Sym::H => 2,
        Sym::K => 3,
        Sym::V => 4,
        Sym::L => 5,
        Sym::NT => 6,
        Sym::C => 7,
        Sym::M => 8,
        Sym::MS => 9,
        Sym::LC => 10,
        Sym::Step => 11,
    }
}

/// All size symbols, in [`sym_slot`] order.
pub const ALL_SYMS: [Sym; NUM_SYMS] = loglinear_kernel::SizeEnv::ORDER;

/// The value of `d` when it is a compile-time constant (a literal: after specialisation K, V and C are).
pub fn static_dim(d: Dim) -> Option<usize> {
    match d {
        Dim::Lit(n) => Some(n),
        Dim::Sym(_) => None,
    }
}

/// Entry point of a generated kernel (see the module docs): the host ABI shared with the MLIR CPU target.
pub use loglinear_kernel::host::KernelEntry;

/// One translated kernel.
#[derive(Clone)]
pub struct KernelCode {
    /// The kernel's name.
    pub name: String,
    /// Its compiled code.
    pub code: CompiledFn,
    /// Floats of per-worker scratch the function needs.
    pub scratch_floats: usize,
    entry: KernelEntry,
}

impl std::fmt::Debug for KernelCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelCode").field("name", &self.name).field("code", &self.code).finish()
    }
}

impl KernelCode {
    /// The function pointer.
    ///
    /// # Safety
    /// Must not be called after `self` is dropped; arguments must follow the module docs.
    pub unsafe fn entry(&self) -> KernelEntry {
        self.entry
    }
}

/// A size known at compile time or a run-time `i64` value.
#[derive(Clone, Copy, Debug)]
enum Dv {
    C(i64),
    V(Value),
}

/// Byte offset of element `i` along a dimension of stride `stride` (in f32 elements).
fn f32_offset(b: &mut FunctionBuilder, i: Value, stride: Dv) -> Value {
    match stride {
        Dv::C(s) => b.ins().imul_imm_s(i, s * 4),
        Dv::V(s) => {
            let o = b.ins().imul(i, s);
            b.ins().ishl_imm_s(o, 2)
        }
    }
}

fn dv_val(b: &mut FunctionBuilder, x: Dv) -> Value {
    match x {
        Dv::C(c) => b.ins().iconst(PTR, c),
        Dv::V(v) => v,
    }
}

fn dv_add(b: &mut FunctionBuilder, x: Dv, y: Dv) -> Dv {
    match (x, y) {
        (Dv::C(a), Dv::C(c)) => Dv::C(a + c),
        (Dv::C(0), v) | (v, Dv::C(0)) => v,
        (Dv::V(a), Dv::C(c)) | (Dv::C(c), Dv::V(a)) => Dv::V(b.ins().iadd_imm_s(a, c)),
        (Dv::V(a), Dv::V(c)) => Dv::V(b.ins().iadd(a, c)),
    }
}

fn dv_sub(b: &mut FunctionBuilder, x: Dv, y: Dv) -> Dv {
    match (x, y) {
        (Dv::C(a), Dv::C(c)) => Dv::C(a - c),
        (v, Dv::C(0)) => v,
        (Dv::V(a), Dv::C(c)) => Dv::V(b.ins().iadd_imm_s(a, -c)),
        (x, y) => {
            let (xv, yv) = (dv_val(b, x), dv_val(b, y));
            Dv::V(b.ins().isub(xv, yv))
        }
    }
}

fn dv_mul(b: &mut FunctionBuilder, x: Dv, y: Dv) -> Dv {
    match (x, y) {
        (Dv::C(a), Dv::C(c)) => Dv::C(a * c),
        (Dv::C(0), _) | (_, Dv::C(0)) => Dv::C(0),
        (Dv::C(1), v) | (v, Dv::C(1)) => v,
        (Dv::V(a), Dv::C(c)) | (Dv::C(c), Dv::V(a)) => Dv::V(b.ins().imul_imm_s(a, c)),
        (Dv::V(a), Dv::V(c)) => Dv::V(b.ins().imul(a, c)),
    }
}

/// `clamp(x, 0, hi)`.
fn dv_clamp(b: &mut FunctionBuilder, x: Dv, hi: i64) -> Dv {
    match x {
        Dv::C(c) => Dv::C(c.clamp(0, hi)),
        Dv::V(v) => {
            let z = b.ins().iconst(PTR, 0);
            let h = b.ins().iconst(PTR, hi);
            let v = b.ins().smax(v, z);
            Dv::V(b.ins().smin(v, h))
        }
    }
}

fn idx(x: Dv) -> Idx {
    match x {
        Dv::C(c) => Idx::Const(c.max(0) as usize),
        Dv::V(v) => Idx::Val(v),
    }
}

/// `if c { then } else { els }` with no values flowing out.
fn emit_if_else(
    b: &mut FunctionBuilder,
    c: Value,
    then: impl FnOnce(&mut FunctionBuilder),
    els: impl FnOnce(&mut FunctionBuilder),
) {
    let tb = b.create_block();
    let eb = b.create_block();
    let merge = b.create_block();
    b.ins().brif(c, tb, &[], eb, &[]);
    b.seal_block(tb);
    b.seal_block(eb);
    b.switch_to_block(tb);
    then(b);
    b.ins().jump(merge, &[]);
    b.switch_to_block(eb);
    els(b);
    b.ins().jump(merge, &[]);
    b.seal_block(merge);
    b.switch_to_block(merge);
}

fn unsupported(kernel: &str, what: impl Into<String>) -> JitError {
    JitError::Unsupported { kernel: kernel.to_string(), what: what.into() }
}

/// A resolved memory access: pointer of the region's first element, up to two kept dimensions
/// (element stride, valid count) and the tile shape.
struct Region {
    ptr: Value,
    /// (stride, valid) of the row dimension; `None` for a `[1, 1]` tile.
    d0: Option<(Dv, Dv)>,
    /// (stride, valid) of the column dimension.
    d1: Option<(Dv, Dv)>,
}

struct Tx<'a> {
    kern: &'a Kernel,
    ctx: EmitCtx,
    syms: [Option<Value>; NUM_SYMS],
    scratch: Value,
    buf_ptr: Vec<Option<Value>>,
    buf_shape: Vec<Vec<Dv>>,
    buf_stride: Vec<Vec<Dv>>,
    vars: Vec<Option<Dv>>,
    tile_off: Vec<usize>,
    tile_shape: Vec<(usize, usize)>,
    tmp_off: [usize; 2],
    upper: Vec<Upper>,
    /// Per tile: its values above the diagonal are never observed ([`upper_unobserved`]).
    upper_unobserved: Vec<bool>,
    err: Option<JitError>,
}

impl Tx<'_> {
    fn fail(&mut self, e: JitError) {
        if self.err.is_none() {
            self.err = Some(e);
        }
    }

    fn emit_res(&mut self, r: Result<(), EmitError>) {
        if let Err(e) = r {
            let k = self.kern.name.clone();
            self.fail(JitError::Emit { kernel: k, source: e });
        }
    }

    fn dim(&self, d: Dim) -> Dv {
        match static_dim(d) {
            Some(n) => Dv::C(n as i64),
            None => match d {
                Dim::Sym(s) => Dv::V(self.syms[sym_slot(s)].expect("runtime symbols are loaded at entry")),
                Dim::Lit(n) => Dv::C(n as i64),
            },
        }
    }

    fn tile(&self, b: &mut FunctionBuilder, t: TileId) -> Tile {
        let (r, c) = self.tile_shape[t.0 as usize];
        let base = b.ins().iadd_imm_s(self.scratch, (self.tile_off[t.0 as usize] * 4) as i64);
        Tile::dense(base, r, c)
    }

    fn tmp(&self, b: &mut FunctionBuilder, which: usize, rows: usize, cols: usize) -> Tile {
        let base = b.ins().iadd_imm_s(self.scratch, (self.tmp_off[which] * 4) as i64);
        Tile::dense(base, rows, cols)
    }

    fn iexpr(&mut self, b: &mut FunctionBuilder, e: &IExpr) -> Dv {
        match e {
            IExpr::Lit(n) => Dv::C(*n),
            IExpr::Var(v) => match self.vars.get(v.0 as usize).copied().flatten() {
                Some(x) => x,
                None => {
                    self.fail(unsupported(&self.kern.name, format!("variable {} used outside its loop", v.0)));
                    Dv::C(0)
                }
            },
            IExpr::Sym(s) => self.dim(Dim::Sym(*s)),
            IExpr::Add(x, y) => {
                let (x, y) = (self.iexpr(b, x), self.iexpr(b, y));
                dv_add(b, x, y)
            }
            IExpr::Mul(x, y) => {
                let (x, y) = (self.iexpr(b, x), self.iexpr(b, y));
                dv_mul(b, x, y)
            }
            IExpr::Tz(x) => match self.iexpr(b, x) {
                Dv::C(c) => Dv::C(if c > 0 { c.trailing_zeros() as i64 } else { 0 }),
                Dv::V(v) => {
                    let t = b.ins().ctz(v);
                    let z = b.ins().iconst(PTR, 0);
                    let pos = b.ins().icmp_imm_s(IntCC::SignedGreaterThan, v, 0);
                    Dv::V(b.ins().select(pos, t, z))
                }
            },
        }
    }

    /// `(1 << clamp(bits, 0, 63)) − 1` (wrapping): the interpreter's `low_mask`.
    fn low_mask(&mut self, b: &mut FunctionBuilder, bits: &IExpr) -> Value {
        match self.iexpr(b, bits) {
            Dv::C(c) => {
                let m = if c >= 63 {
                    i64::MAX
                } else if c <= 0 {
                    0
                } else {
                    (1i64 << c) - 1
                };
                b.ins().iconst(PTR, m)
            }
            Dv::V(v) => {
                let z = b.ins().iconst(PTR, 0);
                let h = b.ins().iconst(PTR, 63);
                let v = b.ins().smax(v, z);
                let v = b.ins().smin(v, h);
                let one = b.ins().iconst(PTR, 1);
                let s = b.ins().ishl(one, v);
                b.ins().isub(s, one)
            }
        }
    }

    /// An `i8` truth value.
    fn cond(&mut self, b: &mut FunctionBuilder, c: &Cond) -> Value {
        match c {
            Cond::Bit { x, bit } => {
                let xv = self.iexpr(b, x);
                let xv = dv_val(b, xv);
                let bv = self.iexpr(b, bit);
                let bv = dv_val(b, bv);
                let inr = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, bv, 63);
                let s = b.ins().sshr(xv, bv);
                let s = b.ins().band_imm_s(s, 1);
                let one = b.ins().icmp_imm_s(IntCC::NotEqual, s, 0);
                b.ins().band(inr, one)
            }
            Cond::LowOnes { x, bits } | Cond::LowZeros { x, bits } => {
                let m = self.low_mask(b, bits);
                let xv = self.iexpr(b, x);
                let xv = dv_val(b, xv);
                let a = b.ins().band(xv, m);
                if matches!(c, Cond::LowOnes { .. }) {
                    b.ins().icmp(IntCC::Equal, a, m)
                } else {
                    b.ins().icmp_imm_s(IntCC::Equal, a, 0)
                }
            }
            Cond::Ge(x, y) => {
                let xv = self.iexpr(b, x);
                let yv = self.iexpr(b, y);
                let (xv, yv) = (dv_val(b, xv), dv_val(b, yv));
                b.ins().icmp(IntCC::SignedGreaterThanOrEqual, xv, yv)
            }
            Cond::Not(a) => {
                let v = self.cond(b, a);
                b.ins().bxor_imm_s(v, 1)
            }
            Cond::And(x, y) => {
                let xv = self.cond(b, x);
                let yv = self.cond(b, y);
                b.ins().band(xv, yv)
            }
        }
    }

    fn region(&mut self, b: &mut FunctionBuilder, buf: BufId, index: &[Index], tile: (usize, usize)) -> Region {
        let bi = buf.0 as usize;
        let name = self.kern.name.clone();
        if index.len() != self.buf_shape[bi].len() {
            self.fail(unsupported(&name, format!("access to buffer {bi} with {} indices", index.len())));
        }
        let mut base = Dv::C(0);
        let mut kept: Vec<(Dv, Dv, usize)> = Vec::new(); // (stride, valid, len)
        for (n, ix) in index.iter().enumerate().take(self.buf_shape[bi].len()) {
            let stride = self.buf_stride[bi][n];
            let extent = self.buf_shape[bi][n];
            match ix {
                Index::At(e) => {
                    let e = self.iexpr(b, e);
                    let o = dv_mul(b, e, stride);
                    base = dv_add(b, base, o);
                }
                Index::Block { start, len } => {
                    let Some(len) = static_dim(*len) else {
                        self.fail(unsupported(&name, format!("block of run-time length {len}")));
                        continue;
                    };
                    let s = self.iexpr(b, start);
                    let o = dv_mul(b, s, stride);
                    base = dv_add(b, base, o);
                    let rem = dv_sub(b, extent, s);
                    let valid = dv_clamp(b, rem, len as i64);
                    kept.push((stride, valid, len));
                }
                Index::Full => {
                    let Dv::C(len) = extent else {
                        self.fail(unsupported(&name, "full slice of a run-time dimension"));
                        continue;
                    };
                    kept.push((stride, Dv::C(len), len as usize));
                }
            }
        }
        let shape = match kept.len() {
            0 => (1, 1),
            1 => (kept[0].2, 1),
            2 => (kept[0].2, kept[1].2),
            n => {
                self.fail(unsupported(&name, format!("access keeping {n} dimensions")));
                (1, 1)
            }
        };
        if shape != tile {
            self.fail(unsupported(&name, format!("access of shape {shape:?} for a tile of shape {tile:?}")));
        }
        let bp = self.buf_ptr[bi].expect("used buffers are loaded at entry");
        let ptr = match base {
            Dv::C(c) => b.ins().iadd_imm_s(bp, c * 4),
            Dv::V(v) => {
                let o = b.ins().ishl_imm_s(v, 2);
                b.ins().iadd(bp, o)
            }
        };
        Region { ptr, d0: kept.first().map(|k| (k.0, k.1)), d1: kept.get(1).map(|k| (k.0, k.1)) }
    }

    /// Copies between a buffer region and a tile. `load`: region → tile, zero-filling what lies past the end;
    /// otherwise tile → region, dropping what lies past the end.
    fn transfer(&mut self, b: &mut FunctionBuilder, reg: Region, t: Tile, load: bool) {
        let Some((st0, valid0)) = reg.d0 else {
            let (src, dst) = if load { (reg.ptr, t.base) } else { (t.base, reg.ptr) };
            let v = b.ins().load(F32, mem(), src, 0);
            b.ins().store(mem(), v, dst, 0);
            return;
        };
        let (st1, valid1) = reg.d1.unwrap_or((Dv::C(1), Dv::C(1)));
        let ptr = reg.ptr;
        let cols = t.cols;
        emit_for(b, Idx::Const(0), idx(valid0), 1, &[], |b, r, _| {
            let ro = f32_offset(b, r, st0);
            let row = b.ins().iadd(ptr, ro);
            let (trow, toff) = t.addr(b, Idx::Val(r), Idx::Const(0));
            let contiguous = matches!(st1, Dv::C(1)) && matches!(valid1, Dv::C(v) if v as usize == cols);
            if contiguous {
                for_each_col(b, cols, |b, ty, c| {
                    let (bp, bo) = crate::emit::elem_addr(b, row, 0, Idx::Const(0), c);
                    let (tp, tof) = crate::emit::elem_addr(b, trow, 0, Idx::Const(0), c);
                    if load {
                        let v = b.ins().load(ty, mem(), bp, bo);
                        b.ins().store(mem(), v, tp, tof + toff);
                    } else {
                        let v = b.ins().load(ty, mem(), tp, tof + toff);
                        b.ins().store(mem(), v, bp, bo);
                    }
                });
            } else {
                emit_for(b, Idx::Const(0), idx(valid1), 1, &[], |b, c, _| {
                    let co = f32_offset(b, c, st1);
                    let bp = b.ins().iadd(row, co);
                    let to = b.ins().ishl_imm_s(c, 2);
                    let tp = b.ins().iadd(trow, to);
                    if load {
                        let v = b.ins().load(F32, mem(), bp, 0);
                        b.ins().store(mem(), v, tp, toff);
                    } else {
                        let v = b.ins().load(F32, mem(), tp, toff);
                        b.ins().store(mem(), v, bp, 0);
                    }
                    vec![]
                });
                if load {
                    let zero = fconst(b, F32, 0.0);
                    emit_for(b, idx(valid1), Idx::Const(cols), 1, &[], |b, c, _| {
                        let to = b.ins().ishl_imm_s(c, 2);
                        let tp = b.ins().iadd(trow, to);
                        b.ins().store(mem(), zero, tp, toff);
                        vec![]
                    });
                }
            }
            vec![]
        });
        match valid0 {
            Dv::C(v) if !load || v as usize >= t.rows => {}
            _ => {
                let v = dv_val(b, valid0);
                self.emit_res(emit_zero_rows_from(b, t, v));
            }
        }
    }

    fn stmts(&mut self, b: &mut FunctionBuilder, body: &[Stmt]) {
        for s in body {
            if self.err.is_some() {
                return;
            }
            match s {
                Stmt::Assign { dst, op } => self.assign(b, *dst, op),
                Stmt::Store { buf, index, src } => {
                    let t = self.tile(b, *src);
                    let reg = self.region(b, *buf, index, (t.rows, t.cols));
                    self.transfer(b, reg, t, false);
                }
                Stmt::For { var, body } => {
                    let ext = self.kern.vars.get(var.0 as usize).map(|v| v.extent);
                    let Some(ext) = ext else {
                        self.fail(unsupported(&self.kern.name, "loop over an undeclared variable"));
                        return;
                    };
                    let ext = self.dim(ext);
                    emit_for(b, Idx::Const(0), idx(ext), 1, &[], |b, i, _| {
                        self.vars[var.0 as usize] = Some(Dv::V(i));
                        self.stmts(b, body);
                        vec![]
                    });
                    self.vars[var.0 as usize] = None;
                }
                Stmt::If { cond, then, els } => {
                    let c = self.cond(b, cond);
                    // Both branches see the same variable bindings; the closures run one after the other.
                    let this = std::cell::RefCell::new(&mut *self);
                    emit_if_else(b, c, |b| this.borrow_mut().stmts(b, then), |b| this.borrow_mut().stmts(b, els));
                }
            }
        }
    }

    fn assign(&mut self, b: &mut FunctionBuilder, dst: TileId, op: &Op) {
        let d = self.tile(b, dst);
        let uses_dst = |t: &TileId| *t == dst;
        // Ops that cannot write over an operand go through a temporary.
        let (out, via_tmp) = match op {
            Op::Matmul { a, b: bb, .. } if uses_dst(a) || uses_dst(bb) => (self.tmp(b, 0, d.rows, d.cols), true),
            Op::MatmulGatedCausal { a, b: bb, g } if [a, bb, g].iter().any(|t| uses_dst(t)) => {
                (self.tmp(b, 0, d.rows, d.cols), true)
            }
            Op::Transpose(a) | Op::Broadcast(a, _) | Op::Row(a, _) | Op::Col(a, _) | Op::SegSum(a) if uses_dst(a) => {
                (self.tmp(b, 0, d.rows, d.cols), true)
            }
            Op::LevelMask { lam: Some(a), .. } | Op::TriSolve { a, .. } if uses_dst(a) => {
                (self.tmp(b, 0, d.rows, d.cols), true)
            }
            _ => (d, false),
        };
        let r = self.op(b, out, op, dst);
        self.emit_res(r);
        if via_tmp {
            let r = emit_copy_tile(b, out, d);
            self.emit_res(r);
        }
    }

    fn pred(&mut self, b: &mut FunctionBuilder, p: &Pred) -> PredSpec {
        let val = |this: &mut Self, b: &mut FunctionBuilder, e: &IExpr| {
            let x = this.iexpr(b, e);
            dv_val(b, x)
        };
        match p {
            Pred::All => PredSpec::All,
            Pred::Lower => PredSpec::Lower,
            Pred::StrictLower => PredSpec::StrictLower,
            Pred::Diag => PredSpec::Diag,
            Pred::Level(l) => PredSpec::Level(val(self, b, l)),
            Pred::RowBelow { start, limit } => {
                let s = self.iexpr(b, start);
                let l = self.dim(*limit);
                let valid = dv_sub(b, l, s);
                PredSpec::RowBelow(dv_val(b, valid))
            }
            Pred::RowIs(e) => PredSpec::RowIs(val(self, b, e)),
            Pred::ColIs(e) => PredSpec::ColIs(val(self, b, e)),
        }
    }

    fn op(&mut self, b: &mut FunctionBuilder, out: Tile, op: &Op, dst: TileId) -> Result<(), EmitError> {
        let ctx = self.ctx;
        match op {
            Op::Load { buf, index } => {
                let reg = self.region(b, *buf, index, (out.rows, out.cols));
                self.transfer(b, reg, out, true);
                Ok(())
            }
            Op::Zeros(_) => emit_fill(b, out, 0.0),
            Op::Eye(_) => emit_eye(b, out),
            Op::Const(c) => emit_fill(b, out, *c as f32),
            Op::Unary(u, a) => {
                let a = self.tile(b, *a);
                let u = match u {
                    UnOp::Neg => UnaryOp::Neg,
                    UnOp::Exp => UnaryOp::Exp,
                    UnOp::ExpNonpos => UnaryOp::ExpNonPos,
                    UnOp::Softplus => UnaryOp::Softplus,
                    UnOp::Sigmoid => UnaryOp::Sigmoid,
                    UnOp::Rsqrt => UnaryOp::Rsqrt,
                };
                emit_map_unary(b, &ctx, u, a, out)
            }
            Op::Binary(o, x, y) => {
                let (x, y) = (self.tile(b, *x), self.tile(b, *y));
                let o = match o {
                    BinOp::Add => BinaryOp::Add,
                    BinOp::Sub => BinaryOp::Sub,
                    BinOp::Mul => BinaryOp::Mul,
                };
                let same = |t: &Tile| t.rows == out.rows && t.cols == out.cols;
                if same(&x) && same(&y) {
                    emit_map_binary(b, o, x, y, out)
                } else {
                    emit_broadcast_binary(b, o, x, y, out)
                }
            }
            Op::L2Norm(a) => {
                let a = self.tile(b, *a);
                emit_l2norm_rows(b, &ctx, a, out, L2NORM_EPS as f32)
            }
            Op::Matmul { a, b: bm, ta, tb } => {
                let a_id = *a;
                let (a, bt) = (self.tile(b, *a), self.tile(b, *bm));
                let (m, k) = if *ta { (a.cols, a.rows) } else { (a.rows, a.cols) };
                let n = if *tb { bt.rows } else { bt.cols };
                let kb = if *tb { bt.cols } else { bt.rows };
                if kb != k || out.rows != m || out.cols != n {
                    return Err(EmitError::InvalidSpec(format!(
                        "matmul: {}x{}{} · {}x{}{} into {}x{}",
                        a.rows,
                        a.cols,
                        if *ta { "ᵀ" } else { "" },
                        bt.rows,
                        bt.cols,
                        if *tb { "ᵀ" } else { "" },
                        out.rows,
                        out.cols
                    )));
                }
                let (trans, bptr) = match (*ta, *tb) {
                    (false, false) => (Transpose::None, bt.base),
                    (true, false) => (Transpose::A, bt.base),
                    (false, true) => (Transpose::B, bt.base),
                    (true, true) => {
                        // Aᵀ·Bᵀ = Aᵀ·(Bᵀ): materialise Bᵀ (k × n) first.
                        let t = self.tmp(b, 1, k, n);
                        emit_transpose(b, bt, t)?;
                        (Transpose::A, t.base)
                    }
                };
                let mut spec = MatmulSpec::new(m, n, k, trans);
                spec.k_unroll = 4;
                if !*ta && m == k && self.upper.get(a_id.0 as usize) == Some(&Upper::Zero) {
                    // op(A) lower-triangular: reduce each row block only up to its end.
                    spec.tri = Triangular::ALower;
                } else if m == n && self.upper_unobserved.get(dst.0 as usize) == Some(&true) {
                    // Only `mul` by exact-zero-above-diagonal tiles ever reads the result: zero the tile (the
                    // blocks above the diagonal are not written, and `garbage × 0` could be NaN; vector stores, no
                    // reads), then compute only the blocks touching the lower triangle.
                    spec.tri = Triangular::CLower;
                    emit_fill(b, out, 0.0)?;
                }
                emit_matmul(b, &ctx, &spec, a.base, bptr, out.base)
            }
            Op::MatmulGatedCausal { a, b: bm, g } => {
                let (a, c, g) = (self.tile(b, *a), self.tile(b, *bm), self.tile(b, *g));
                // The running segment sums: one row of temporary 1 (temporary 0 may be `out`).
                let seg = self.tmp(b, 1, 1, a.cols);
                emit_matmul_gated_causal(b, &ctx, a, c, g, seg, out)
            }
            Op::CumSum(a) => {
                let a = self.tile(b, *a);
                emit_cumsum(b, a, out, Axis::Rows)
            }
            Op::SegSum(g) => {
                let g = self.tile(b, *g);
                crate::emit::segsum::emit_segsum(b, g, out)
            }
            Op::SuffixSum(a) => {
                let a = self.tile(b, *a);
                crate::emit::segsum::emit_suffix_sum(b, a, out)
            }
            Op::Row(a, r) => {
                let a = self.tile(b, *a);
                let r = self.iexpr(b, r);
                let r = dv_val(b, r);
                emit_row(b, a, r, out)
            }
            Op::Col(a, j) => {
                let a = self.tile(b, *a);
                let j = self.iexpr(b, j);
                let j = dv_val(b, j);
                emit_col(b, a, j, out)
            }
            Op::Transpose(a) => {
                let a = self.tile(b, *a);
                emit_transpose(b, a, out)
            }
            Op::Tril { a, strict } => {
                let a = self.tile(b, *a);
                emit_copy_tile(b, a, out)?;
                emit_tril_inplace(b, out, *strict)
            }
            Op::LevelMask { lam, .. } => {
                let lam = lam.map(|l| self.tile(b, l));
                match lam {
                    // Every in-chunk level is a column of λ: the vectorised mask emitter (groups of 4 sources
                    // share a level below the diagonal) applied to a tile of ones.
                    Some(l)
                        if out.rows == out.cols
                            && out.rows.is_power_of_two()
                            && l.rows == out.rows
                            && l.cols > out.rows.trailing_zeros() as usize =>
                    {
                        emit_fill(b, out, 1.0)?;
                        let spec = LevelMaskSpec { n: out.rows, ld: out.row_stride, decay: false };
                        let dummy = b.ins().iconst(PTR, 0);
                        emit_level_mask(b, &ctx, &spec, out.base, dummy, l.base, Idx::Const(l.row_stride))
                    }
                    _ => emit_causal_level_mask(b, lam, out),
                }
            }
            Op::TriSolve { a, b: rhs } => {
                let (a, rhs) = (self.tile(b, *a), self.tile(b, *rhs));
                emit_copy_tile(b, rhs, out)?;
                crate::emit::emit_tri_solve_unit_lower(b, &ctx, a, out)
            }
            Op::MaskRows { a, start, limit } => {
                let a = self.tile(b, *a);
                emit_copy_tile(b, a, out)?;
                let s = self.iexpr(b, start);
                let l = self.dim(*limit);
                let valid = dv_sub(b, l, s);
                let v = dv_val(b, valid);
                emit_zero_rows_from(b, out, v)
            }
            Op::Broadcast(a, _) => {
                let a = self.tile(b, *a);
                emit_broadcast(b, a, out)
            }
            // The primitives of `passes::decompose` (scalar loops; the compound ops are native and vectorised).
            Op::Mask { pred, on, off, .. } => {
                let p = self.pred(b, pred);
                emit_pred_select(b, p, None, *on as f32, *off as f32, out)
            }
            Op::Select { pred, a, fill, .. } => {
                let a = self.tile(b, *a);
                let p = self.pred(b, pred);
                emit_pred_select(b, p, Some(a), 0.0, *fill as f32, out)
            }
            Op::RowSum(a) => {
                let a = self.tile(b, *a);
                emit_sum(b, a, true, out)
            }
            Op::ColSum(a) => {
                let a = self.tile(b, *a);
                emit_sum(b, a, false, out)
            }
        }
    }
}

/// The parameters of every kernel function: `(bufs, sizes, lo, hi, scratch)`.
pub const KERNEL_PARAMS: [ParamType; 5] =
    [ParamType::Ptr, ParamType::Ptr, ParamType::I64, ParamType::I64, ParamType::Ptr];

/// What a kernel's translation needs before any code is emitted: tile layout in the scratch area, the buffers
/// it touches, triangular structure.
struct KernelPlan<'a> {
    prog: &'a Program,
    kern: &'a Kernel,
    tile_off: Vec<usize>,
    tile_shape: Vec<(usize, usize)>,
    tmp_off: [usize; 2],
    scratch_floats: usize,
    used: Vec<BufId>,
    upper: Vec<Upper>,
    upper_unobserved: Vec<bool>,
}

fn plan_kernel(prog: &Program, ki: usize) -> Result<KernelPlan<'_>, JitError> {
    if prog.specialised.is_none() {
        return Err(JitError::InvalidArgument(format!(
            "program `{}` is not specialised (run `specialise`)",
            prog.name
        )));
    }
    let kern = prog
        .kernels
        .get(ki)
        .ok_or_else(|| JitError::InvalidArgument(format!("kernel {ki} of a program with {}", prog.kernels.len())))?;
    // Tiles: compile-time shapes, 16-byte aligned offsets in the scratch area.
    let mut tile_off = Vec::with_capacity(kern.tiles.len());
    let mut tile_shape = Vec::with_capacity(kern.tiles.len());
    let mut off = 0usize;
    let mut max_tile = 1usize;
    for t in &kern.tiles {
        let (Some(r), Some(c)) = (static_dim(t.shape[0]), static_dim(t.shape[1])) else {
            return Err(unsupported(
                &kern.name,
                format!("tile %{} has a run-time shape [{}, {}]", t.name, t.shape[0], t.shape[1]),
            ));
        };
        if r == 0 || c == 0 || r * c > (1 << 24) {
            return Err(unsupported(&kern.name, format!("tile %{} of shape {r}x{c}", t.name)));
        }
        tile_off.push(off);
        tile_shape.push((r, c));
        off += (r * c).div_ceil(4) * 4;
        max_tile = max_tile.max(r * c);
    }
    let max_tile = max_tile.div_ceil(4) * 4;
    let tmp_off = [off, off + max_tile];
    let scratch_floats = off + 2 * max_tile;
    for g in &kern.grid {
        if kern.vars.get(g.0 as usize).is_none() {
            return Err(unsupported(&kern.name, "undeclared grid variable"));
        }
    }
    let used = used_buffers(kern);
    for bid in &used {
        if prog.buffers.get(bid.0 as usize).is_none() {
            return Err(unsupported(&kern.name, format!("access to undeclared buffer {}", bid.0)));
        }
    }
    let upper = upper_structure(kern, &tile_shape);
    let upper_unobserved = upper_unobserved(kern, &tile_shape, &upper);
    Ok(KernelPlan { prog, kern, tile_off, tile_shape, tmp_off, scratch_floats, used, upper, upper_unobserved })
}

/// Emits the body of a planned kernel into the function `b` is building (parameters `p`: [`KERNEL_PARAMS`]).
fn emit_kernel_body(plan: KernelPlan<'_>, b: &mut FunctionBuilder, ctx: &EmitCtx, p: &[Value]) -> Result<(), JitError> {
    let KernelPlan { prog, kern, tile_off, tile_shape, tmp_off, used, upper, upper_unobserved, .. } = plan;
    let (bufs, sizes, lo, hi, scratch) = (p[0], p[1], p[2], p[3], p[4]);
    let mut syms = [None; NUM_SYMS];
    for s in ALL_SYMS {
        if static_dim(Dim::Sym(s)).is_none() {
            syms[sym_slot(s)] = Some(b.ins().load(types::I64, mem(), sizes, (sym_slot(s) * 8) as i32));
        }
    }
    let mut tx = Tx {
        kern,
        ctx: *ctx,
        syms,
        scratch,
        buf_ptr: vec![None; prog.buffers.len()],
        buf_shape: Vec::new(),
        buf_stride: Vec::new(),
        vars: vec![None; kern.vars.len()],
        tile_off,
        tile_shape,
        tmp_off,
        upper,
        upper_unobserved,
        err: None,
    };
    tx.buf_shape = prog.buffers.iter().map(|buf| buf.shape.iter().map(|d| tx.dim(*d)).collect()).collect();
    for bid in &used {
        let i = bid.0 as usize;
        tx.buf_ptr[i] = Some(b.ins().load(PTR, mem(), bufs, (i * 8) as i32));
    }
    tx.buf_stride = Vec::with_capacity(prog.buffers.len());
    for i in 0..prog.buffers.len() {
        let shape = tx.buf_shape[i].clone();
        let mut st = vec![Dv::C(1); shape.len()];
        if used.iter().any(|u| u.0 as usize == i) {
            for n in (0..shape.len().saturating_sub(1)).rev() {
                st[n] = dv_mul(b, st[n + 1], shape[n + 1]);
            }
        }
        tx.buf_stride.push(st);
    }
    let extents: Vec<Dv> = kern.grid.iter().map(|g| tx.dim(kern.vars[g.0 as usize].extent)).collect();
    let grid = kern.grid.clone();
    emit_for(b, Idx::Val(lo), Idx::Val(hi), 1, &[], |b, i, _| {
        // Decompose the linear index, last grid variable fastest.
        let mut rem = i;
        for (n, g) in grid.iter().enumerate().rev() {
            let v = if n == 0 {
                rem
            } else {
                match extents[n] {
                    Dv::C(e) => {
                        let v = b.ins().urem_imm_s(rem, e.max(1));
                        rem = b.ins().udiv_imm_s(rem, e.max(1));
                        v
                    }
                    Dv::V(e) => {
                        let v = b.ins().urem(rem, e);
                        rem = b.ins().udiv(rem, e);
                        v
                    }
                }
            };
            tx.vars[g.0 as usize] = Some(Dv::V(v));
        }
        tx.stmts(b, &kern.body);
        vec![]
    });
    match tx.err.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Translates kernel `ki` of the specialised program `prog` into a JIT-compiled function.
///
/// # Errors
/// [`JitError::Unsupported`] for kernel IR outside what the translator handles (a tile with a run-time shape,
/// a malformed access), [`JitError::Emit`] / [`JitError::Module`] when an emitter or Cranelift rejects it.
pub fn translate_kernel(jit: &JitModule, prog: &Program, ki: usize) -> Result<KernelCode, JitError> {
    let plan = plan_kernel(prog, ki)?;
    let (kern, scratch_floats) = (plan.kern, plan.scratch_floats);
    let name = format!("{}.k{ki}.{}", prog.name, kern.name);
    let mut failure: Option<JitError> = None;
    let code = jit.compile(&name, &KERNEL_PARAMS, |b, ctx, p| {
        if let Err(e) = emit_kernel_body(plan, b, ctx, p) {
            failure = Some(e);
        }
        Ok(())
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let code = code?;
    // SAFETY: compiled with exactly KernelEntry's parameters (2 pointers, 2 i64, 1 pointer), returning nothing.
    let entry = unsafe { code.as_fn::<KernelEntry>()? };
    Ok(KernelCode { name: kern.name.clone(), code, scratch_floats, entry })
}

/// Translates kernel `ki` of the specialised program `prog` into a function `symbol` ([`KERNEL_PARAMS`], the
/// [`KernelEntry`] ABI) of any Cranelift module — the JIT's or an object file's ([`crate::object`]). Returns the
/// definition and the scratch floats one call needs.
///
/// # Errors
/// As [`translate_kernel`].
pub fn define_kernel<M: Module>(
    module: &mut M,
    ctx: &EmitCtx,
    prog: &Program,
    ki: usize,
    symbol: &str,
    linkage: Linkage,
) -> Result<(DefinedFn, usize), JitError> {
    let plan = plan_kernel(prog, ki)?;
    let scratch_floats = plan.scratch_floats;
    let defined = define_function(module, ctx, false, symbol, linkage, &KERNEL_PARAMS, |b, ctx, p| {
        emit_kernel_body(plan, b, ctx, p)
    })?;
    Ok((defined, scratch_floats))
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<KernelCode>();
    let _ = VarId(0);
}
