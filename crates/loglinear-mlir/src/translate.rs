//! Kernel IR (specialised, decomposed: the ten primitive ops) → MLIR functions for the CPU, built through
//! melior's builder API: `arith`, `math` and `scf` for the computation, `llvm` pointers for memory.
//!
//! **ABI** (the Cranelift backend's, so that one host executor can drive both): every kernel is
//! `func @<kernel>(bufs: !llvm.ptr, sizes: !llvm.ptr, lo: i64, hi: i64, scratch: !llvm.ptr)`, running grid
//! programs `lo..hi` (the last grid variable fastest). `bufs` holds one `f32*` per program buffer (inputs
//! already converted to f32), `sizes` the run-time sizes as `i64` in [`SIZE_ORDER`], `scratch` at least
//! [`CpuKernel::scratch_floats`] f32 of the calling thread's own memory, where the tiles live (one region per
//! tile, plus one for results that overwrite an operand).
//!
//! Semantics follow the kernel IR: loads past a dimension's end read zero, stores past it are dropped (checked
//! per element); a matmul, row sum or column sum accumulates in f32 from zero in index order. The loops are
//! scalar with literal trip counts: LLVM's optimiser (the ExecutionEngine at `-O3`, tuned for the host CPU)
//! vectorises them at the host's width. Register-blocked matmul micro-kernels come next.

use loglinear_kernel::device::{gpu_layout, GpuKernelLayout};
use loglinear_kernel::kernel::{
    access_dims, BinOp, BufId, Cond, Dim, IExpr, Index, Kernel, Op, Pred, Program, Stmt, Sym, TileId, UnOp,
};
use loglinear_kernel::passes::decompose::is_primitive;
use loglinear_kernel::resources::TileHome;
use melior::dialect::arith::{self, CmpfPredicate, CmpiPredicate};
use melior::dialect::{func, llvm, scf};
use melior::ir::attribute::{FloatAttribute, IntegerAttribute, StringAttribute, TypeAttribute};
use melior::ir::operation::OperationBuilder;
use melior::ir::r#type::{FunctionType, IntegerType};
use melior::ir::{Block, BlockLike, Location, Module, Region, RegionLike, Type, Value, ValueLike};
use melior::Context;
use mlir_sys::MlirValue;

use crate::{MlirContext, MlirError};

/// f32 lanes of the vector code (AVX2 width; LLVM splits or joins them for the host).
const LANES: usize = 8;

/// The order of the run-time sizes in the `sizes` argument.
pub const SIZE_ORDER: [Sym; 12] = loglinear_kernel::SizeEnv::ORDER;

/// What the executor needs to know of a translated kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuKernel {
    /// The function's name (the kernel's name, made unique in the module).
    pub symbol: String,
    /// f32 elements of scratch one calling thread must provide.
    pub scratch_floats: usize,
}

fn lit(d: Dim) -> Option<usize> {
    match d {
        Dim::Lit(n) => Some(n),
        Dim::Sym(_) => None,
    }
}

fn slot(s: Sym) -> usize {
    SIZE_ORDER.iter().position(|x| *x == s).expect("every symbol has a slot")
}

/// Translates one kernel of `p` into function `symbol` of `module`.
///
/// # Errors
/// [`MlirError::Codegen`] for a program that is not specialised or not decomposed.
pub fn translate_kernel(
    ctx: &MlirContext,
    module: &Module<'_>,
    p: &Program,
    k: &Kernel,
    symbol: &str,
) -> Result<CpuKernel, MlirError> {
    let shapes = tile_shapes(k)?;
    let mut offsets = Vec::with_capacity(k.tiles.len());
    let mut total = 0usize;
    for (r, c) in &shapes {
        offsets.push(total);
        total += r * c;
    }
    let temp = total;
    let largest = shapes.iter().map(|(r, c)| r * c).max().unwrap_or(0);
    let scratch_floats = total + largest;

    let c = ctx.get();
    let loc = Location::unknown(c);
    let ptr = llvm::r#type::pointer(c, 0);
    let i64t: Type = IntegerType::new(c, 64).into();
    let f32t = Type::float32(c);
    let entry = Block::new(&[(ptr, loc), (ptr, loc), (i64t, loc), (i64t, loc), (ptr, loc)]);
    let mut g = Gen {
        c,
        loc,
        ptr,
        i64t,
        f32t,
        p,
        k,
        shapes,
        offsets,
        temp,
        vars: vec![None; k.vars.len()],
        bufs: vec![None; p.buffers.len()],
        sizes: [None; 12],
        scratch: entry.argument(4).expect("arg").to_raw(),
        tile_ptrs: vec![entry.argument(4).expect("arg").to_raw(); k.tiles.len()],
        temp_ptr: entry.argument(4).expect("arg").to_raw(),
        gpu: None,
    };
    let bufs_arg = entry.argument(0).expect("arg").to_raw();
    let sizes_arg = entry.argument(1).expect("arg").to_raw();
    // Buffer pointers and sizes, loaded once.
    for i in 0..p.buffers.len() {
        let idx = g.const_i64(&entry, i as i64);
        let a = g.gep(&entry, bufs_arg, idx, g.ptr);
        let v = entry
            .append_operation(llvm::load(c, val(a), g.ptr, loc, Default::default()))
            .result(0)
            .expect("result")
            .to_raw();
        g.bufs[i] = Some(v);
    }
    for (i, _) in SIZE_ORDER.iter().enumerate() {
        let idx = g.const_i64(&entry, i as i64);
        let a = g.gep(&entry, sizes_arg, idx, g.i64t);
        let v = entry
            .append_operation(llvm::load(c, val(a), g.i64t, loc, Default::default()))
            .result(0)
            .expect("result")
            .to_raw();
        g.sizes[i] = Some(v);
    }
    // for p in lo..hi: grid variables (last fastest), then the body.
    let lo = entry.argument(2).expect("arg").to_raw();
    let hi = entry.argument(3).expect("arg").to_raw();
    let one = g.const_i64(&entry, 1);
    let body = Block::new(&[(i64t, loc)]);
    let pv = body.argument(0).expect("arg").to_raw();
    g.program(&body, pv)?;
    body.append_operation(scf::r#yield(&[], loc));
    let region = Region::new();
    region.append_block(body);
    entry.append_operation(scf::r#for(val(lo), val(hi), val(one), region, loc));
    entry.append_operation(func::r#return(&[], loc));
    let fregion = Region::new();
    fregion.append_block(entry);
    module.body().append_operation(func::func(
        c,
        StringAttribute::new(c, symbol),
        TypeAttribute::new(FunctionType::new(c, &[ptr, ptr, i64t, i64t, ptr], &[]).into()),
        fregion,
        &[],
        loc,
    ));
    Ok(CpuKernel { symbol: symbol.to_string(), scratch_floats })
}

/// Appends `symbol(sizes: ptr, B: i64, T: i64, H: i64, L: i64, step: i64)`, which stores the twelve sizes of `p`
/// in [`SIZE_ORDER`] exactly as [`loglinear_kernel::SizeEnv::new`] computes them (K, V and C compiled in; NT =
/// ⌈T/C⌉; M = bitlen(NT − 1), MS = M + 1, LC = max(L, 1) for a log-linear program, else 1; L = max(L, 1)): the
/// `_sizes` helper of [`loglinear_kernel::host::ObjectCode`].
///
/// # Errors
/// [`MlirError::Codegen`] for a program that is not specialised.
pub fn sizes_function(ctx: &MlirContext, module: &Module<'_>, p: &Program, symbol: &str) -> Result<(), MlirError> {
    let spec = p.specialised.ok_or_else(|| MlirError::Codegen(format!("program `{}` is not specialised", p.name)))?;
    let c = ctx.get();
    let loc = Location::unknown(c);
    let ptr = llvm::r#type::pointer(c, 0);
    let i64t: Type = IntegerType::new(c, 64).into();
    let entry = Block::new(&[(ptr, loc), (i64t, loc), (i64t, loc), (i64t, loc), (i64t, loc), (i64t, loc)]);
    let arg = |i: usize| entry.argument(i).expect("parameter").to_raw();
    let one = |op: melior::ir::Operation<'_>| -> MlirValue {
        entry.append_operation(op).result(0).expect("one result").to_raw()
    };
    let konst = |n: i64| one(arith::constant(c, IntegerAttribute::new(i64t, n).into(), loc));
    let op2 = |name: &str, x: MlirValue, y: MlirValue| {
        one(OperationBuilder::new(name, loc)
            .add_operands(&[val(x), val(y)])
            .enable_result_type_inference()
            .build()
            .expect("valid operation"))
    };
    let (b, t, h, l, step) = (arg(1), arg(2), arg(3), arg(4), arg(5));
    let chunk = spec.c.max(1) as i64;
    let (zero, one_) = (konst(0), konst(1));
    // NT = ⌈T / C⌉ for T ≥ 0.
    let nt = op2("arith.divui", op2("arith.addi", t, konst(chunk - 1)), konst(chunk));
    let l1 = op2("arith.maxsi", l, one_);
    let (m, ms, lc) = if p.hierarchical {
        // M = bitlen(NT − 1) = 64 − ctlz(NT − 1), NT − 1 clamped at 0.
        let n1 = op2("arith.maxsi", op2("arith.subi", nt, one_), zero);
        let lz = one(OperationBuilder::new("math.ctlz", loc)
            .add_operands(&[val(n1)])
            .enable_result_type_inference()
            .build()
            .expect("valid math.ctlz"));
        let m = op2("arith.subi", konst(64), lz);
        (m, op2("arith.addi", m, one_), l1)
    } else {
        (one_, one_, one_)
    };
    let values = [b, t, h, konst(spec.k as i64), konst(spec.v as i64), l1, nt, konst(chunk), m, ms, lc, step];
    for (s, v) in SIZE_ORDER.iter().zip(values) {
        let idx = konst(slot(*s) as i64);
        let a = one(llvm::get_element_ptr_dynamic(c, val(arg(0)), &[val(idx)], i64t, ptr, loc));
        entry.append_operation(llvm::store(c, val(v), val(a), loc, Default::default()));
    }
    entry.append_operation(func::r#return(&[], loc));
    let region = Region::new();
    region.append_block(entry);
    module.body().append_operation(func::func(
        c,
        StringAttribute::new(c, symbol),
        TypeAttribute::new(FunctionType::new(c, &[ptr, i64t, i64t, i64t, i64t, i64t], &[]).into()),
        region,
        &[],
        loc,
    ));
    Ok(())
}

/// Translates kernel `index` of `p` into a `gpu.func` kernel appended to `gpu_body` (the body of a
/// `gpu.module`), with the parameters and layout of [`loglinear_kernel::device`]: tiles in shared memory
/// (one `addr_space = 3` global per kernel) or in the block's region of the scratch buffer, element loops
/// shared among the block's threads with a barrier after each tile operation.
///
/// # Errors
/// [`MlirError::Codegen`] for a program that is not specialised or not decomposed.
pub fn translate_gpu_kernel(
    ctx: &MlirContext,
    gpu_body: &Block<'_>,
    p: &Program,
    index: usize,
) -> Result<GpuKernelLayout, MlirError> {
    let k = &p.kernels[index];
    let shapes = tile_shapes(k)?;
    let layout = gpu_layout(p, index);
    let c = ctx.get();
    let loc = Location::unknown(c);
    let ptr = llvm::r#type::pointer(c, 0);
    let i64t: Type = IntegerType::new(c, 64).into();
    let f32t = Type::float32(c);
    let nb = p.buffers.len();
    let mut params: Vec<Type> = vec![ptr; nb];
    params.extend([i64t; 14]);
    params.push(ptr);
    let entry = Block::new(&params.iter().map(|t| (*t, loc)).collect::<Vec<_>>());
    let arg = |i: usize| entry.argument(i).expect("parameter").to_raw();
    let index_to_i64 = |name: &str| {
        let op = OperationBuilder::new(name, loc)
            .add_attributes(&[(
                melior::ir::Identifier::new(c, "dimension"),
                melior::ir::Attribute::parse(c, "#gpu<dim x>").expect("#gpu<dim> parses"),
            )])
            .add_results(&[Type::index(c)])
            .build()
            .expect("valid gpu id op");
        let v = entry.append_operation(op).result(0).expect("id").to_raw();
        entry.append_operation(arith::index_cast(val(v), i64t, loc)).result(0).expect("cast").to_raw()
    };
    let tid = index_to_i64("gpu.thread_id");
    let bid = index_to_i64("gpu.block_id");
    let shared = if layout.shared_floats > 0 {
        let name = format!("shm_{}", layout.symbol);
        let global = OperationBuilder::new("llvm.mlir.global", loc)
            .add_attributes(&[
                (melior::ir::Identifier::new(c, "sym_name"), StringAttribute::new(c, &name).into()),
                (
                    melior::ir::Identifier::new(c, "global_type"),
                    TypeAttribute::new(
                        Type::parse(c, &format!("!llvm.array<{} x f32>", layout.shared_floats))
                            .expect("array type parses"),
                    )
                    .into(),
                ),
                (
                    melior::ir::Identifier::new(c, "linkage"),
                    melior::ir::Attribute::parse(c, "#llvm.linkage<internal>").expect("linkage parses"),
                ),
                (
                    melior::ir::Identifier::new(c, "addr_space"),
                    IntegerAttribute::new(IntegerType::new(c, 32).into(), 3).into(),
                ),
                (melior::ir::Identifier::new(c, "alignment"), IntegerAttribute::new(i64t, 16).into()),
            ])
            .add_regions([Region::new()])
            .build()
            .map_err(|e| MlirError::Codegen(format!("shared memory of `{}`: {e}", k.name)))?;
        gpu_body.append_operation(global);
        let sym = melior::ir::Attribute::parse(c, &format!("@{name}")).expect("symbol parses");
        let addr = entry
            .append_operation(
                OperationBuilder::new("llvm.mlir.addressof", loc)
                    .add_attributes(&[(melior::ir::Identifier::new(c, "global_name"), sym)])
                    .add_results(&[llvm::r#type::pointer(c, 3)])
                    .build()
                    .expect("valid llvm.mlir.addressof"),
            )
            .result(0)
            .expect("address")
            .to_raw();
        entry
            .append_operation(
                OperationBuilder::new("llvm.addrspacecast", loc)
                    .add_operands(&[val(addr)])
                    .add_results(&[ptr])
                    .build()
                    .expect("valid llvm.addrspacecast"),
            )
            .result(0)
            .expect("generic pointer")
            .to_raw()
    } else {
        arg(nb + 14)
    };
    let mut g = Gen {
        c,
        loc,
        ptr,
        i64t,
        f32t,
        p,
        k,
        shapes,
        offsets: vec![0; k.tiles.len()],
        temp: 0,
        vars: vec![None; k.vars.len()],
        bufs: (0..nb).map(|i| Some(arg(i))).collect(),
        sizes: [None; 12],
        scratch: arg(nb + 14),
        tile_ptrs: vec![shared; k.tiles.len()],
        temp_ptr: shared,
        gpu: Some(GpuThreads { tid, threads: layout.threads as usize }),
    };
    for i in 0..12 {
        g.sizes[i] = Some(arg(nb + i));
    }
    let (lo, hi) = (arg(nb + 12), arg(nb + 13));
    // This block's scratch region.
    let per = g.const_i64(&entry, layout.scratch_floats as i64);
    let off = g.arith2(&entry, "arith.muli", bid, per);
    let spill = g.gep(&entry, g.scratch, off, f32t);
    let home = |h: TileHome| match h {
        TileHome::Fast(o) => (shared, o),
        TileHome::Spill(o) => (spill, o),
        TileHome::Unused => (spill, 0),
    };
    for (t, h) in layout.homes.iter().enumerate() {
        (g.tile_ptrs[t], g.offsets[t]) = home(*h);
    }
    (g.temp_ptr, g.temp) = home(layout.temp);
    // Program lo + blockIdx.x, when below hi (uniform over the block: barriers inside are safe).
    let pv = g.arith2(&entry, "arith.addi", lo, bid);
    let inside = g.cmpi(&entry, CmpiPredicate::Slt, pv, hi);
    let body = Block::new(&[]);
    g.program(&body, pv)?;
    body.append_operation(scf::r#yield(&[], loc));
    let region = Region::new();
    region.append_block(body);
    entry.append_operation(scf::r#if(val(inside), &[], region, Region::new(), loc));
    entry.append_operation(OperationBuilder::new("gpu.return", loc).build().expect("valid gpu.return"));
    let fregion = Region::new();
    fregion.append_block(entry);
    let func = OperationBuilder::new("gpu.func", loc)
        .add_attributes(&[
            (melior::ir::Identifier::new(c, "sym_name"), StringAttribute::new(c, &layout.symbol).into()),
            (
                melior::ir::Identifier::new(c, "function_type"),
                TypeAttribute::new(FunctionType::new(c, &params, &[]).into()).into(),
            ),
            (melior::ir::Identifier::new(c, "gpu.kernel"), melior::ir::Attribute::unit(c)),
            (
                melior::ir::Identifier::new(c, "known_block_size"),
                melior::ir::Attribute::parse(c, &format!("array<i32: {}, 1, 1>", layout.threads))
                    .expect("block size parses"),
            ),
        ])
        .add_regions([fregion])
        .build()
        .map_err(|e| MlirError::Codegen(format!("gpu.func of `{}`: {e}", k.name)))?;
    gpu_body.append_operation(func);
    Ok(layout)
}

/// The literal shape of every tile of `k`, after checking that `k` holds only primitive ops.
fn tile_shapes(k: &Kernel) -> Result<Vec<(usize, usize)>, MlirError> {
    let bad = |m: String| MlirError::Codegen(format!("kernel `{}`: {m}", k.name));
    let mut compound = None;
    loglinear_kernel::kernel::visit(&k.body, &mut |s| {
        if let Stmt::Assign { op, .. } = s {
            if !is_primitive(op) && compound.is_none() {
                compound = Some(format!("{op:?}").split([' ', '(', '{']).next().unwrap_or("").to_string());
            }
        }
    });
    if let Some(op) = compound {
        return Err(bad(format!("compound op `{op}`: compile with `decompose`")));
    }
    k.tiles
        .iter()
        .map(|t| match (lit(t.shape[0]), lit(t.shape[1])) {
            (Some(r), Some(c)) => Ok((r, c)),
            _ => Err(bad(format!("tile `{}` has a symbolic shape: specialise the program first", t.name))),
        })
        .collect()
}

/// A value handle back from its raw form (handles stay valid while the module lives).
fn val<'c, 'a>(v: MlirValue) -> Value<'c, 'a> {
    // SAFETY: every raw value here was taken from an operation or block of the module under construction,
    // which outlives the translation.
    unsafe { Value::from_raw(v) }
}

pub(crate) struct Gen<'c, 'p> {
    c: &'c Context,
    loc: Location<'c>,
    ptr: Type<'c>,
    i64t: Type<'c>,
    f32t: Type<'c>,
    p: &'p Program,
    k: &'p Kernel,
    shapes: Vec<(usize, usize)>,
    offsets: Vec<usize>,
    /// Scratch offset of the region for results that overwrite an operand.
    temp: usize,
    vars: Vec<Option<MlirValue>>,
    bufs: Vec<Option<MlirValue>>,
    sizes: [Option<MlirValue>; 12],
    scratch: MlirValue,
    /// Per tile: the pointer its offset is relative to (the scratch on the CPU; shared memory or the block's
    /// scratch region on a GPU).
    tile_ptrs: Vec<MlirValue>,
    /// The pointer [`Gen::temp`] is relative to.
    temp_ptr: MlirValue,
    /// Set when translating for a GPU: element loops are shared among the block's threads.
    gpu: Option<GpuThreads>,
}

/// A GPU block's threads, for cooperative element loops.
#[derive(Clone, Copy)]
pub(crate) struct GpuThreads {
    /// This thread's index in the block (i64).
    pub tid: MlirValue,
    /// Threads per block.
    pub threads: usize,
}

impl<'c> Gen<'c, '_> {
    /// Grid program `pv` (the last grid variable fastest): decodes the grid variables, then the kernel body.
    fn program(&mut self, body: &Block<'c>, mut pv: MlirValue) -> Result<(), MlirError> {
        for gv in self.k.grid.iter().rev() {
            let e = self.dim(body, self.k.vars[gv.0 as usize].extent);
            let r = self.arith2(body, "arith.remsi", pv, e);
            self.vars[gv.0 as usize] = Some(r);
            pv = self.arith2(body, "arith.divsi", pv, e);
        }
        let k = self.k;
        self.stmts(body, &k.body)
    }

    fn one(&self, b: &Block<'c>, op: melior::ir::Operation<'c>) -> MlirValue {
        b.append_operation(op).result(0).expect("one result").to_raw()
    }

    fn const_i64(&self, b: &Block<'c>, n: i64) -> MlirValue {
        self.one(b, arith::constant(self.c, IntegerAttribute::new(self.i64t, n).into(), self.loc))
    }

    fn const_f32(&self, b: &Block<'c>, x: f64) -> MlirValue {
        self.one(b, arith::constant(self.c, FloatAttribute::new(self.c, self.f32t, x).into(), self.loc))
    }

    fn arith2(&self, b: &Block<'c>, name: &str, x: MlirValue, y: MlirValue) -> MlirValue {
        self.one(
            b,
            OperationBuilder::new(name, self.loc)
                .add_operands(&[val(x), val(y)])
                .enable_result_type_inference()
                .build()
                .expect("valid operation"),
        )
    }

    fn arith1(&self, b: &Block<'c>, name: &str, x: MlirValue) -> MlirValue {
        self.one(
            b,
            OperationBuilder::new(name, self.loc)
                .add_operands(&[val(x)])
                .enable_result_type_inference()
                .build()
                .expect("valid operation"),
        )
    }

    fn cmpi(&self, b: &Block<'c>, p: CmpiPredicate, x: MlirValue, y: MlirValue) -> MlirValue {
        self.one(b, arith::cmpi(self.c, p, val(x), val(y), self.loc))
    }

    fn select(&self, b: &Block<'c>, cond: MlirValue, x: MlirValue, y: MlirValue) -> MlirValue {
        self.one(b, arith::select(val(cond), val(x), val(y), self.loc))
    }

    /// `&base[idx]` for elements of type `elem`.
    fn gep(&self, b: &Block<'c>, base: MlirValue, idx: MlirValue, elem: Type<'c>) -> MlirValue {
        self.one(b, llvm::get_element_ptr_dynamic(self.c, val(base), &[val(idx)], elem, self.ptr, self.loc))
    }

    fn load_f32(&self, b: &Block<'c>, base: MlirValue, idx: MlirValue) -> MlirValue {
        let a = self.gep(b, base, idx, self.f32t);
        self.one(b, llvm::load(self.c, val(a), self.f32t, self.loc, Default::default()))
    }

    fn store_f32(&self, b: &Block<'c>, x: MlirValue, base: MlirValue, idx: MlirValue) {
        let a = self.gep(b, base, idx, self.f32t);
        b.append_operation(llvm::store(self.c, val(x), val(a), self.loc, Default::default()));
    }

    fn dim(&self, b: &Block<'c>, d: Dim) -> MlirValue {
        match d {
            Dim::Lit(n) => self.const_i64(b, n as i64),
            Dim::Sym(s) => self.sizes[slot(s)].expect("sizes loaded"),
        }
    }

    fn iexpr(&self, b: &Block<'c>, e: &IExpr) -> MlirValue {
        match e {
            IExpr::Lit(n) => self.const_i64(b, *n),
            IExpr::Sym(s) => self.sizes[slot(*s)].expect("sizes loaded"),
            IExpr::Var(v) => self.vars[v.0 as usize].expect("variable in scope"),
            IExpr::Add(x, y) => {
                let (x, y) = (self.iexpr(b, x), self.iexpr(b, y));
                self.arith2(b, "arith.addi", x, y)
            }
            IExpr::Mul(x, y) => {
                let (x, y) = (self.iexpr(b, x), self.iexpr(b, y));
                self.arith2(b, "arith.muli", x, y)
            }
            IExpr::Tz(x) => {
                let x = self.iexpr(b, x);
                self.arith1(b, "math.cttz", x)
            }
        }
    }

    /// `(1 << bits) - 1`.
    fn low_mask(&self, b: &Block<'c>, bits: &IExpr) -> MlirValue {
        let bits = self.iexpr(b, bits);
        let one = self.const_i64(b, 1);
        let sh = self.arith2(b, "arith.shli", one, bits);
        self.arith2(b, "arith.subi", sh, one)
    }

    fn cond(&self, b: &Block<'c>, c: &Cond) -> MlirValue {
        match c {
            Cond::Bit { x, bit } => {
                let (x, bit) = (self.iexpr(b, x), self.iexpr(b, bit));
                let s = self.arith2(b, "arith.shrsi", x, bit);
                let one = self.const_i64(b, 1);
                let a = self.arith2(b, "arith.andi", s, one);
                self.cmpi(b, CmpiPredicate::Eq, a, one)
            }
            Cond::LowOnes { x, bits } => {
                let m = self.low_mask(b, bits);
                let x = self.iexpr(b, x);
                let a = self.arith2(b, "arith.andi", x, m);
                self.cmpi(b, CmpiPredicate::Eq, a, m)
            }
            Cond::LowZeros { x, bits } => {
                let m = self.low_mask(b, bits);
                let x = self.iexpr(b, x);
                let a = self.arith2(b, "arith.andi", x, m);
                let z = self.const_i64(b, 0);
                self.cmpi(b, CmpiPredicate::Eq, a, z)
            }
            Cond::Ge(x, y) => {
                let (x, y) = (self.iexpr(b, x), self.iexpr(b, y));
                self.cmpi(b, CmpiPredicate::Sge, x, y)
            }
            Cond::Not(a) => {
                let a = self.cond(b, a);
                let t = self.one(
                    b,
                    arith::constant(
                        self.c,
                        IntegerAttribute::new(IntegerType::new(self.c, 1).into(), 1).into(),
                        self.loc,
                    ),
                );
                self.arith2(b, "arith.xori", a, t)
            }
            Cond::And(x, y) => {
                let (x, y) = (self.cond(b, x), self.cond(b, y));
                self.arith2(b, "arith.andi", x, y)
            }
        }
    }

    fn pred(&self, b: &Block<'c>, p: &Pred, r: MlirValue, s: MlirValue) -> MlirValue {
        match p {
            Pred::All => self.cmpi(b, CmpiPredicate::Eq, r, r),
            Pred::Lower => self.cmpi(b, CmpiPredicate::Sle, s, r),
            Pred::StrictLower => self.cmpi(b, CmpiPredicate::Slt, s, r),
            Pred::Diag => self.cmpi(b, CmpiPredicate::Eq, s, r),
            Pred::Level(l) => {
                let low = self.cmpi(b, CmpiPredicate::Sle, s, r);
                let x = self.arith2(b, "arith.xori", r, s);
                let lz = self.arith1(b, "math.ctlz", x);
                let w = self.const_i64(b, 64);
                let bitlen = self.arith2(b, "arith.subi", w, lz);
                let l = self.iexpr(b, l);
                let eq = self.cmpi(b, CmpiPredicate::Eq, bitlen, l);
                self.arith2(b, "arith.andi", low, eq)
            }
            Pred::RowBelow { start, limit } => {
                let st = self.iexpr(b, start);
                let row = self.arith2(b, "arith.addi", st, r);
                let lim = self.dim(b, *limit);
                self.cmpi(b, CmpiPredicate::Slt, row, lim)
            }
            Pred::RowIs(e) => {
                let e = self.iexpr(b, e);
                self.cmpi(b, CmpiPredicate::Eq, r, e)
            }
            Pred::ColIs(e) => {
                let e = self.iexpr(b, e);
                self.cmpi(b, CmpiPredicate::Eq, s, e)
            }
        }
    }

    /// The body block of a loop carrying values of `types`: the i64 counter, then one argument per carried value.
    fn loop_body(&self, types: &[Type<'c>]) -> Block<'c> {
        let mut args = vec![(self.i64t, self.loc)];
        args.extend(types.iter().map(|t| (*t, self.loc)));
        Block::new(&args)
    }

    /// `scf.for iv = 0 to n step step` over `body` (made by [`Gen::loop_body`] and ended with its `scf.yield`),
    /// carrying `inits`; returns the final carried values.
    fn emit_for(
        &self,
        b: &Block<'c>,
        n: MlirValue,
        step: usize,
        inits: &[MlirValue],
        body: Block<'c>,
    ) -> Vec<MlirValue> {
        let zero = self.const_i64(b, 0);
        self.emit_for_from(b, zero, n, step, inits, body)
    }

    /// As [`Gen::emit_for`] from `start`.
    fn emit_for_from(
        &self,
        b: &Block<'c>,
        zero: MlirValue,
        n: MlirValue,
        step: usize,
        inits: &[MlirValue],
        body: Block<'c>,
    ) -> Vec<MlirValue> {
        let st = self.const_i64(b, step as i64);
        let region = Region::new();
        region.append_block(body);
        let mut operands = vec![val(zero), val(n), val(st)];
        operands.extend(inits.iter().map(|x| val(*x)));
        let types: Vec<Type> = inits.iter().map(|x| val(*x).r#type()).collect();
        let op = b.append_operation(
            OperationBuilder::new("scf.for", self.loc)
                .add_operands(&operands)
                .add_results(&types)
                .add_regions([region])
                .build()
                .expect("valid scf.for"),
        );
        (0..inits.len()).map(|i| op.result(i).expect("carried value").to_raw()).collect()
    }

    /// `for iv in (0..n).step_by(step)` carrying `inits`: `f(body, iv, carried)` gives the next carried values.
    fn carried(
        &self,
        b: &Block<'c>,
        n: usize,
        step: usize,
        inits: &[MlirValue],
        f: &dyn Fn(&Block<'c>, MlirValue, &[MlirValue]) -> Vec<MlirValue>,
    ) -> Vec<MlirValue> {
        let types: Vec<Type> = inits.iter().map(|x| val(*x).r#type()).collect();
        let body = self.loop_body(&types);
        let iv = body.argument(0).expect("iv").to_raw();
        let acc: Vec<MlirValue> = (0..inits.len()).map(|i| body.argument(i + 1).expect("carried").to_raw()).collect();
        let next: Vec<Value> = f(&body, iv, &acc).into_iter().map(val).collect();
        body.append_operation(scf::r#yield(&next, self.loc));
        let nv = self.const_i64(b, n as i64);
        self.emit_for(b, nv, step, inits, body)
    }

    /// `for v in 0..n { f(body, v) }` with an i64 counter.
    fn for_n(&self, b: &Block<'c>, n: MlirValue, f: &mut dyn FnMut(&Block<'c>, MlirValue)) {
        let body = self.loop_body(&[]);
        f(&body, body.argument(0).expect("iv").to_raw());
        body.append_operation(scf::r#yield(&[], self.loc));
        self.emit_for(b, n, 1, &[], body);
    }

    /// `for (r, s) in rows × cols { f(body, r, s) }`.
    fn each(&self, b: &Block<'c>, rows: usize, cols: usize, f: &mut dyn FnMut(&Block<'c>, MlirValue, MlirValue)) {
        if let Some(g) = self.gpu {
            // Element i = r·cols + s for i = tid, tid + threads, …; then every thread waits for the others
            // (the next op may read any element, or reuse this memory).
            let body = self.loop_body(&[]);
            let i = body.argument(0).expect("iv").to_raw();
            let nc = self.const_i64(&body, cols as i64);
            let r = self.arith2(&body, "arith.divui", i, nc);
            let s = self.arith2(&body, "arith.remui", i, nc);
            f(&body, r, s);
            body.append_operation(scf::r#yield(&[], self.loc));
            let n = self.const_i64(b, (rows * cols) as i64);
            self.emit_for_from(b, g.tid, n, g.threads, &[], body);
            b.append_operation(OperationBuilder::new("gpu.barrier", self.loc).build().expect("valid gpu.barrier"));
            return;
        }
        let nr = self.const_i64(b, rows as i64);
        self.for_n(b, nr, &mut |br, r| {
            let nc = self.const_i64(br, cols as i64);
            self.for_n(br, nc, &mut |bs, s| f(bs, r, s));
        });
    }

    /// Scratch index of element `(r, s)` of tile `t`, size-1 dimensions broadcast.
    fn tile_index(&self, b: &Block<'c>, t: TileId, r: MlirValue, s: MlirValue) -> MlirValue {
        let (rows, cols) = self.shapes[t.0 as usize];
        let base = self.offsets[t.0 as usize] as i64;
        let at = |v: MlirValue, n: usize| if n == 1 { None } else { Some(v) };
        match (at(r, rows), at(s, cols)) {
            (None, None) => self.const_i64(b, base),
            (None, Some(s)) => {
                let o = self.const_i64(b, base);
                self.arith2(b, "arith.addi", o, s)
            }
            (Some(r), None) => {
                let o = self.const_i64(b, base);
                self.arith2(b, "arith.addi", o, r)
            }
            (Some(r), Some(s)) => {
                let nc = self.const_i64(b, cols as i64);
                let rc = self.arith2(b, "arith.muli", r, nc);
                let o = self.const_i64(b, base);
                let x = self.arith2(b, "arith.addi", rc, o);
                self.arith2(b, "arith.addi", x, s)
            }
        }
    }

    fn read(&self, b: &Block<'c>, t: TileId, r: MlirValue, s: MlirValue) -> MlirValue {
        let i = self.tile_index(b, t, r, s);
        self.load_f32(b, self.tile_ptrs[t.0 as usize], i)
    }

    /// `dst[r, s] = f(r, s)` for every element (each element reads only its own position of its operands, so
    /// `dst` may be one of them).
    fn elementwise(&self, b: &Block<'c>, dst: TileId, f: &dyn Fn(&Block<'c>, MlirValue, MlirValue) -> MlirValue) {
        let (rows, cols) = self.shapes[dst.0 as usize];
        self.each(b, rows, cols, &mut |bb, r, s| {
            let x = f(bb, r, s);
            let i = self.tile_index(bb, dst, r, s);
            self.store_f32(bb, x, self.tile_ptrs[dst.0 as usize], i);
        });
    }

    /// Buffer access of tile `t` (a load into it, or a store from it): when the whole region lies inside the
    /// buffer (checked once), rows of strided — or, along the buffer's last dimension, contiguous and
    /// vectorised — copies; otherwise element by element with bounds checks.
    fn access(&self, b: &Block<'c>, buf: BufId, index: &[Index], t: TileId, store: bool) {
        let bd = &self.p.buffers[buf.0 as usize];
        let (rows, cols) = self.shapes[t.0 as usize];
        let (rdim, sdim) = access_dims(index, cols);
        // Whole region inside, base offset at (0, 0), and the strides of the row and column dimensions.
        let mut inside: Option<MlirValue> = None;
        let mut base: Option<MlirValue> = None;
        let (mut rstride, mut sstride): (Option<MlirValue>, Option<MlirValue>) = (None, None);
        let z = self.const_i64(b, 0);
        for (d, ix) in index.iter().enumerate() {
            let size = self.dim(b, bd.shape[d]);
            let (lo, ok) = match ix {
                Index::At(e) => {
                    let e = self.iexpr(b, e);
                    let ge = self.cmpi(b, CmpiPredicate::Sge, e, z);
                    let lt = self.cmpi(b, CmpiPredicate::Slt, e, size);
                    (e, self.arith2(b, "arith.andi", ge, lt))
                }
                Index::Block { start, .. } => {
                    let st = self.iexpr(b, start);
                    let n = self.const_i64(b, if Some(d) == rdim { rows } else { cols } as i64);
                    let end = self.arith2(b, "arith.addi", st, n);
                    let ge = self.cmpi(b, CmpiPredicate::Sge, st, z);
                    let le = self.cmpi(b, CmpiPredicate::Sle, end, size);
                    (st, self.arith2(b, "arith.andi", ge, le))
                }
                Index::Full => (z, self.cmpi(b, CmpiPredicate::Eq, z, z)),
            };
            inside = Some(match inside {
                None => ok,
                Some(o) => self.arith2(b, "arith.andi", o, ok),
            });
            // Horner: base = base * size + lo; strides scale by every later size.
            base = Some(match base {
                None => lo,
                Some(x) => {
                    let m = self.arith2(b, "arith.muli", x, size);
                    self.arith2(b, "arith.addi", m, lo)
                }
            });
            for st in [&mut rstride, &mut sstride] {
                if let Some(v) = *st {
                    *st = Some(self.arith2(b, "arith.muli", v, size));
                }
            }
            if Some(d) == rdim {
                rstride = Some(self.const_i64(b, 1));
            }
            if Some(d) == sdim {
                sstride = Some(self.const_i64(b, 1));
            }
        }
        let (Some(inside), Some(base)) = (inside, base) else {
            self.access_checked(b, buf, index, t, store);
            return;
        };
        let contiguous = self.gpu.is_none() && sdim == Some(index.len() - 1) && cols % LANES == 0;
        let fast = Block::new(&[]);
        let bufp = self.bufs[buf.0 as usize].expect("buffer loaded");
        let tp = self.tile_ptrs[t.0 as usize];
        // One element: buffer offset `base + r·rstride + s·sstride`.
        let element = |bs: &Block<'c>, r: MlirValue, s: MlirValue| {
            let mut o = base;
            for (v, st) in [(r, rstride), (s, sstride)] {
                if let Some(st) = st {
                    let x = self.arith2(bs, "arith.muli", v, st);
                    o = self.arith2(bs, "arith.addi", o, x);
                }
            }
            let ti = self.tile_index(bs, t, r, s);
            if store {
                let x = self.load_f32(bs, tp, ti);
                self.store_f32(bs, x, bufp, o);
            } else {
                let x = self.load_f32(bs, bufp, o);
                self.store_f32(bs, x, tp, ti);
            }
        };
        if !contiguous {
            self.each(&fast, rows, cols, &mut |bs, r, s| element(bs, r, s));
        } else {
            let nr = self.const_i64(&fast, rows as i64);
            self.for_n(&fast, nr, &mut |br, r| {
                let roff = match rstride {
                    Some(st) => {
                        let x = self.arith2(br, "arith.muli", r, st);
                        self.arith2(br, "arith.addi", base, x)
                    }
                    None => base,
                };
                let nb = self.const_i64(br, (cols / LANES) as i64);
                self.for_n(br, nb, &mut |bs, sb| {
                    let lanes = self.const_i64(bs, LANES as i64);
                    let s0 = self.arith2(bs, "arith.muli", sb, lanes);
                    let o = self.arith2(bs, "arith.addi", roff, s0);
                    let ti = self.flat(bs, self.offsets[t.0 as usize], cols, r, s0);
                    let bp = self.gep(bs, bufp, o, self.f32t);
                    let tp = self.gep(bs, self.scratch, ti, self.f32t);
                    let (from, to) = if store { (tp, bp) } else { (bp, tp) };
                    let v = self.one(bs, llvm::load(self.c, val(from), self.vec_type(), self.loc, self.opts()));
                    bs.append_operation(llvm::store(self.c, val(v), val(to), self.loc, self.opts()));
                });
            });
        }
        fast.append_operation(scf::r#yield(&[], self.loc));
        let slow = Block::new(&[]);
        self.access_checked(&slow, buf, index, t, store);
        slow.append_operation(scf::r#yield(&[], self.loc));
        let (fr, sr) = (Region::new(), Region::new());
        fr.append_block(fast);
        sr.append_block(slow);
        b.append_operation(scf::r#if(val(inside), &[], fr, sr, self.loc));
    }

    /// [`Gen::access`] element by element with bounds checks: loads past a dimension's end read zero, stores
    /// past it are dropped.
    fn access_checked(&self, b: &Block<'c>, buf: BufId, index: &[Index], t: TileId, store: bool) {
        let bd = &self.p.buffers[buf.0 as usize];
        let (rows, cols) = self.shapes[t.0 as usize];
        let (rdim, _) = access_dims(index, cols);
        let base = self.bufs[buf.0 as usize].expect("buffer loaded");
        self.each(b, rows, cols, &mut |bb, r, s| {
            let mut off = None;
            let mut ok = None;
            for (d, ix) in index.iter().enumerate() {
                let w = if Some(d) == rdim { r } else { s };
                let coord = match ix {
                    Index::At(e) => self.iexpr(bb, e),
                    Index::Block { start, .. } => {
                        let st = self.iexpr(bb, start);
                        self.arith2(bb, "arith.addi", st, w)
                    }
                    Index::Full => w,
                };
                let size = self.dim(bb, bd.shape[d]);
                let z = self.const_i64(bb, 0);
                let ge = self.cmpi(bb, CmpiPredicate::Sge, coord, z);
                let lt = self.cmpi(bb, CmpiPredicate::Slt, coord, size);
                let inb = self.arith2(bb, "arith.andi", ge, lt);
                ok = Some(match ok {
                    None => inb,
                    Some(o) => self.arith2(bb, "arith.andi", o, inb),
                });
                off = Some(match off {
                    None => coord,
                    Some(o) => {
                        let m = self.arith2(bb, "arith.muli", o, size);
                        self.arith2(bb, "arith.addi", m, coord)
                    }
                });
            }
            let off = off.unwrap_or_else(|| self.const_i64(bb, 0));
            let ok = ok.unwrap_or_else(|| self.cmpi(bb, CmpiPredicate::Eq, off, off));
            let ti = self.tile_index(bb, t, r, s);
            // Out-of-range elements: a load reads zero (and never touches memory), a store is dropped.
            let then = Block::new(&[]);
            let tp = self.tile_ptrs[t.0 as usize];
            if store {
                let x = self.load_f32(&then, tp, ti);
                self.store_f32(&then, x, base, off);
                then.append_operation(scf::r#yield(&[], self.loc));
                let tr = Region::new();
                tr.append_block(then);
                bb.append_operation(scf::r#if(val(ok), &[], tr, Region::new(), self.loc));
            } else {
                let x = self.load_f32(&then, base, off);
                then.append_operation(scf::r#yield(&[val(x)], self.loc));
                let els = Block::new(&[]);
                let z = self.const_f32(&els, 0.0);
                els.append_operation(scf::r#yield(&[val(z)], self.loc));
                let (tr, er) = (Region::new(), Region::new());
                tr.append_block(then);
                er.append_block(els);
                let x = self.one(bb, scf::r#if(val(ok), &[self.f32t], tr, er, self.loc));
                self.store_f32(bb, x, tp, ti);
            }
        });
    }

    fn stmts(&mut self, b: &Block<'c>, body: &[Stmt]) -> Result<(), MlirError> {
        for s in body {
            match s {
                Stmt::Assign { dst, op } => self.assign(b, *dst, op)?,
                Stmt::Store { buf, index, src } => self.access(b, *buf, index, *src, true),
                Stmt::For { var, body } => {
                    let n = self.dim(b, self.k.vars[var.0 as usize].extent);
                    let inner = self.loop_body(&[]);
                    self.vars[var.0 as usize] = Some(inner.argument(0).expect("iv").to_raw());
                    self.stmts(&inner, body)?;
                    inner.append_operation(scf::r#yield(&[], self.loc));
                    self.emit_for(b, n, 1, &[], inner);
                    self.vars[var.0 as usize] = None;
                }
                Stmt::If { cond, then, els } => {
                    let cv = self.cond(b, cond);
                    let tb = Block::new(&[]);
                    self.stmts(&tb, then)?;
                    tb.append_operation(scf::r#yield(&[], self.loc));
                    let tr = Region::new();
                    tr.append_block(tb);
                    let er = Region::new();
                    if !els.is_empty() {
                        let eb = Block::new(&[]);
                        self.stmts(&eb, els)?;
                        eb.append_operation(scf::r#yield(&[], self.loc));
                        er.append_block(eb);
                    }
                    b.append_operation(scf::r#if(val(cv), &[], tr, er, self.loc));
                }
            }
        }
        Ok(())
    }

    fn unary(&self, b: &Block<'c>, u: UnOp, x: MlirValue) -> MlirValue {
        match u {
            UnOp::Neg => self.arith1(b, "arith.negf", x),
            UnOp::Exp => self.exp(b, x),
            UnOp::ExpNonpos => {
                // exp(min(x, 0)), exactly 0 below −87 (no denormals).
                let z = self.const_f32(b, 0.0);
                let m = self.arith2(b, "arith.minimumf", x, z);
                let e = self.exp(b, m);
                let lim = self.const_f32(b, -87.0);
                let small = self.one(b, arith::cmpf(self.c, CmpfPredicate::Olt, val(x), val(lim), self.loc));
                self.select(b, small, z, e)
            }
            UnOp::Softplus => {
                let e = self.exp(b, x);
                let l = self.log1p(b, e);
                let lim = self.const_f32(b, 20.0);
                let big = self.one(b, arith::cmpf(self.c, CmpfPredicate::Ogt, val(x), val(lim), self.loc));
                self.select(b, big, x, l)
            }
            UnOp::Sigmoid => {
                let n = self.arith1(b, "arith.negf", x);
                let e = self.exp(b, n);
                let one = self.const_f32(b, 1.0);
                let d = self.arith2(b, "arith.addf", one, e);
                self.arith2(b, "arith.divf", one, d)
            }
            UnOp::Rsqrt => match self.gpu {
                Some(_) => self.ptx_f32(b, "rsqrt.approx.ftz.f32 $0, $1;", x),
                None => self.arith1(b, "math.rsqrt", x),
            },
        }
    }

    /// `eˣ`: `math.exp` on the CPU; on a GPU `2^(x·log₂e)` with PTX's `ex2.approx` (≤ 2 ulp; the `math` ops
    /// would become calls into CUDA's libdevice, which the build machine does not have).
    fn exp(&self, b: &Block<'c>, x: MlirValue) -> MlirValue {
        if self.gpu.is_none() {
            return self.arith1(b, "math.exp", x);
        }
        let l2e = self.const_f32(b, std::f64::consts::LOG2_E);
        let y = self.arith2(b, "arith.mulf", x, l2e);
        self.ptx_f32(b, "ex2.approx.ftz.f32 $0, $1;", y)
    }

    /// `ln(1 + x)`: `math.log1p` on the CPU; on a GPU `ln(u)·x/(u − 1)` with `u = 1 + x` (exact `x` where
    /// `u = 1`), `ln` from PTX's `lg2.approx`.
    fn log1p(&self, b: &Block<'c>, x: MlirValue) -> MlirValue {
        if self.gpu.is_none() {
            return self.arith1(b, "math.log1p", x);
        }
        let one = self.const_f32(b, 1.0);
        let u = self.arith2(b, "arith.addf", one, x);
        let l2 = self.ptx_f32(b, "lg2.approx.ftz.f32 $0, $1;", u);
        let ln2 = self.const_f32(b, std::f64::consts::LN_2);
        let ln = self.arith2(b, "arith.mulf", l2, ln2);
        let d = self.arith2(b, "arith.subf", u, one);
        let q = self.arith2(b, "arith.divf", x, d);
        let r = self.arith2(b, "arith.mulf", ln, q);
        let same = self.one(b, arith::cmpf(self.c, CmpfPredicate::Oeq, val(u), val(one), self.loc));
        self.select(b, same, x, r)
    }

    /// One PTX instruction `f32 → f32` (inline assembly; `$0` the result, `$1` the operand).
    fn ptx_f32(&self, b: &Block<'c>, asm: &str, x: MlirValue) -> MlirValue {
        self.one(
            b,
            OperationBuilder::new("llvm.inline_asm", self.loc)
                .add_attributes(&[
                    (melior::ir::Identifier::new(self.c, "asm_string"), StringAttribute::new(self.c, asm).into()),
                    (melior::ir::Identifier::new(self.c, "constraints"), StringAttribute::new(self.c, "=f,f").into()),
                ])
                .add_operands(&[val(x)])
                .add_results(&[self.f32t])
                .build()
                .expect("valid llvm.inline_asm"),
        )
    }

    fn assign(&self, b: &Block<'c>, dst: TileId, op: &Op) -> Result<(), MlirError> {
        match op {
            Op::Load { buf, index } => self.access(b, *buf, index, dst, false),
            Op::Zeros(_) => self.elementwise(b, dst, &|bb, _, _| self.const_f32(bb, 0.0)),
            Op::Const(x) => self.elementwise(b, dst, &|bb, _, _| self.const_f32(bb, *x)),
            Op::Unary(u, a) => self.elementwise(b, dst, &|bb, r, s| {
                let x = self.read(bb, *a, r, s);
                self.unary(bb, *u, x)
            }),
            Op::Binary(o, a, c) => self.elementwise(b, dst, &|bb, r, s| {
                let (x, y) = (self.read(bb, *a, r, s), self.read(bb, *c, r, s));
                let name = match o {
                    BinOp::Add => "arith.addf",
                    BinOp::Sub => "arith.subf",
                    BinOp::Mul => "arith.mulf",
                };
                self.arith2(bb, name, x, y)
            }),
            Op::Mask { pred, on, off, .. } => self.elementwise(b, dst, &|bb, r, s| {
                let p = self.pred(bb, pred, r, s);
                let (on, off) = (self.const_f32(bb, *on), self.const_f32(bb, *off));
                self.select(bb, p, on, off)
            }),
            Op::Select { pred, a, fill, .. } => self.elementwise(b, dst, &|bb, r, s| {
                let p = self.pred(bb, pred, r, s);
                let x = self.read(bb, *a, r, s);
                let f = self.const_f32(bb, *fill);
                self.select(bb, p, x, f)
            }),
            Op::RowSum(a) | Op::ColSum(a) => {
                let rowsum = matches!(op, Op::RowSum(_));
                let (ar, ac) = self.shapes[a.0 as usize];
                let n = if rowsum { ac } else { ar };
                self.reduced(b, dst, *a == dst, &|bb, r, s| {
                    let z = self.const_f32(bb, 0.0);
                    self.carried(bb, n, 1, &[z], &|bi, q, acc| {
                        let x = if rowsum { self.read(bi, *a, r, q) } else { self.read(bi, *a, q, s) };
                        vec![self.arith2(bi, "arith.addf", acc[0], x)]
                    })[0]
                });
            }
            Op::Matmul { a, b: bt, ta, tb } => {
                let (ar, ac) = self.shapes[a.0 as usize];
                let n = if *ta { ar } else { ac };
                let (a, bt, ta, tb) = (*a, *bt, *ta, *tb);
                let cols = self.shapes[dst.0 as usize].1;
                let aliased = a == dst || bt == dst;
                if self.gpu.is_none() && !tb && cols % LANES == 0 {
                    self.matmul_rows(b, dst, a, bt, ta, n, aliased);
                    return Ok(());
                }
                if self.gpu.is_some() {
                    self.matmul_threads(b, dst, a, bt, ta, tb, n, aliased);
                    return Ok(());
                }
                if self.gpu.is_none() && tb && !ta && n % LANES == 0 {
                    self.matmul_dots(b, dst, a, bt, n, aliased);
                    return Ok(());
                }
                self.reduced(b, dst, a == dst || bt == dst, &|bb, r, s| {
                    let z = self.const_f32(bb, 0.0);
                    self.carried(bb, n, 1, &[z], &|bi, q, acc| {
                        let x = if ta { self.read(bi, a, q, r) } else { self.read(bi, a, r, q) };
                        let y = if tb { self.read(bi, bt, s, q) } else { self.read(bi, bt, q, s) };
                        vec![self.fma(bi, x, y, acc[0])]
                    })[0]
                });
            }
            other => {
                return Err(MlirError::Codegen(format!("kernel `{}`: op {other:?} is not a primitive", self.k.name)))
            }
        }
        Ok(())
    }

    fn vec_type(&self) -> Type<'c> {
        Type::vector(&[LANES as u64], self.f32t)
    }

    fn opts(&self) -> llvm::LoadStoreOptions<'c> {
        llvm::LoadStoreOptions::new().align(Some(IntegerAttribute::new(self.i64t, 4)))
    }

    /// Loads `LANES` consecutive f32 of the scratch from element `idx`.
    fn load_vec(&self, b: &Block<'c>, idx: MlirValue) -> MlirValue {
        let a = self.gep(b, self.scratch, idx, self.f32t);
        self.one(b, llvm::load(self.c, val(a), self.vec_type(), self.loc, self.opts()))
    }

    fn store_vec(&self, b: &Block<'c>, x: MlirValue, idx: MlirValue) {
        let a = self.gep(b, self.scratch, idx, self.f32t);
        b.append_operation(llvm::store(self.c, val(x), val(a), self.loc, self.opts()));
    }

    /// Scratch index `base + r * cols + s` (no broadcast).
    fn flat(&self, b: &Block<'c>, base: usize, cols: usize, r: MlirValue, s: MlirValue) -> MlirValue {
        let nc = self.const_i64(b, cols as i64);
        let rc = self.arith2(b, "arith.muli", r, nc);
        let o = self.const_i64(b, base as i64);
        let x = self.arith2(b, "arith.addi", rc, o);
        self.arith2(b, "arith.addi", x, s)
    }

    fn zero_vec(&self, b: &Block<'c>) -> MlirValue {
        let z = self.const_f32(b, 0.0);
        self.broadcast(b, z)
    }

    fn broadcast(&self, b: &Block<'c>, x: MlirValue) -> MlirValue {
        self.one(
            b,
            OperationBuilder::new("vector.broadcast", self.loc)
                .add_operands(&[val(x)])
                .add_results(&[self.vec_type()])
                .build()
                .expect("valid vector.broadcast"),
        )
    }

    /// `x · y + z`, contracted to an FMA where the CPU has one (`fastmath<contract>`; `math.fma` would become a
    /// library call on a CPU without).
    fn fma(&self, b: &Block<'c>, x: MlirValue, y: MlirValue, z: MlirValue) -> MlirValue {
        let contract = melior::ir::Attribute::parse(self.c, "#arith.fastmath<contract>").expect("fastmath parses");
        let fm = |name: &str, ops: [MlirValue; 2]| {
            OperationBuilder::new(name, self.loc)
                .add_operands(&[val(ops[0]), val(ops[1])])
                .add_attributes(&[(melior::ir::Identifier::new(self.c, "fastmath"), contract)])
                .enable_result_type_inference()
                .build()
                .expect("valid arith op")
        };
        let m = self.one(b, fm("arith.mulf", [x, y]));
        self.one(b, fm("arith.addf", [m, z]))
    }

    /// Where a matmul's results go: `dst`'s region, or the temporary one when `dst` is an operand.
    fn result_base(&self, dst: TileId, aliased: bool) -> usize {
        if aliased {
            self.temp
        } else {
            self.offsets[dst.0 as usize]
        }
    }

    /// Copies the temporary region over `dst` (after an aliased matmul).
    fn copy_from_temp(&self, b: &Block<'c>, dst: TileId) {
        let (rows, cols) = self.shapes[dst.0 as usize];
        self.each(b, rows, cols, &mut |bb, r, s| {
            let i = self.flat(bb, self.temp, cols, r, s);
            let x = self.load_f32(bb, self.temp_ptr, i);
            let di = self.tile_index(bb, dst, r, s);
            self.store_f32(bb, x, self.tile_ptrs[dst.0 as usize], di);
        });
    }

    /// `dst = op(a) · b` with `b` not transposed: register blocks of `rb` rows × `cb` vectors of `LANES` columns,
    /// one vector accumulator each (independent FMA chains), `acc += a(i, q) · b[q, j0..j0+LANES]` in `q` order.
    #[allow(clippy::too_many_arguments)]
    fn matmul_rows(&self, b: &Block<'c>, dst: TileId, a: TileId, bt: TileId, ta: bool, n: usize, aliased: bool) {
        let (rows, cols) = self.shapes[dst.0 as usize];
        let (_, bc) = self.shapes[bt.0 as usize];
        let base = self.result_base(dst, aliased);
        let bbase = self.offsets[bt.0 as usize];
        let rb = [4, 2, 1].into_iter().find(|r| rows % r == 0).unwrap_or(1);
        let cb = [2, 1].into_iter().find(|c| cols % (c * LANES) == 0).unwrap_or(1);
        let nr = self.const_i64(b, (rows / rb) as i64);
        self.for_n(b, nr, &mut |br, ib| {
            let rbv = self.const_i64(br, rb as i64);
            let i0 = self.arith2(br, "arith.muli", ib, rbv);
            let nb = self.const_i64(br, (cols / (cb * LANES)) as i64);
            self.for_n(br, nb, &mut |bj, jb| {
                let w = self.const_i64(bj, (cb * LANES) as i64);
                let j0 = self.arith2(bj, "arith.muli", jb, w);
                let inits: Vec<MlirValue> = (0..rb * cb).map(|_| self.zero_vec(bj)).collect();
                let accs = self.carried(bj, n, 1, &inits, &|bq, q, acc| {
                    let bv: Vec<MlirValue> = (0..cb)
                        .map(|c| {
                            let off = self.const_i64(bq, (c * LANES) as i64);
                            let j = self.arith2(bq, "arith.addi", j0, off);
                            let bi = self.flat(bq, bbase, bc, q, j);
                            self.load_vec(bq, bi)
                        })
                        .collect();
                    let mut out = Vec::with_capacity(rb * cb);
                    for r in 0..rb {
                        let off = self.const_i64(bq, r as i64);
                        let i = self.arith2(bq, "arith.addi", i0, off);
                        let x = if ta { self.read(bq, a, q, i) } else { self.read(bq, a, i, q) };
                        let xv = self.broadcast(bq, x);
                        for (c, y) in bv.iter().enumerate() {
                            out.push(self.fma(bq, xv, *y, acc[r * cb + c]));
                        }
                    }
                    out
                });
                for r in 0..rb {
                    let off = self.const_i64(bj, r as i64);
                    let i = self.arith2(bj, "arith.addi", i0, off);
                    for c in 0..cb {
                        let coff = self.const_i64(bj, (c * LANES) as i64);
                        let j = self.arith2(bj, "arith.addi", j0, coff);
                        let di = self.flat(bj, base, cols, i, j);
                        self.store_vec(bj, accs[r * cb + c], di);
                    }
                }
            })
        });
        if aliased {
            self.copy_from_temp(b, dst);
        }
    }

    /// GPU: `dst = op(a) · op(b)` with each thread computing blocks of up to 4 × 4 results (shared among the
    /// block's threads by [`Gen::each`]), `rb + cb` operand loads per `rb · cb` FMAs, each result summed in
    /// `q` order.
    #[allow(clippy::too_many_arguments)]
    fn matmul_threads(
        &self,
        b: &Block<'c>,
        dst: TileId,
        a: TileId,
        bt: TileId,
        ta: bool,
        tb: bool,
        n: usize,
        aliased: bool,
    ) {
        let (rows, cols) = self.shapes[dst.0 as usize];
        let rb = [4, 2, 1].into_iter().find(|r| rows % r == 0).unwrap_or(1);
        let cb = [4, 2, 1].into_iter().find(|c| cols % c == 0).unwrap_or(1);
        let (base, ptr) = if aliased {
            (self.temp, self.temp_ptr)
        } else {
            (self.offsets[dst.0 as usize], self.tile_ptrs[dst.0 as usize])
        };
        self.each(b, rows / rb, cols / cb, &mut |bb, ib, jb| {
            let (rbv, cbv) = (self.const_i64(bb, rb as i64), self.const_i64(bb, cb as i64));
            let i0 = self.arith2(bb, "arith.muli", ib, rbv);
            let j0 = self.arith2(bb, "arith.muli", jb, cbv);
            let inits: Vec<MlirValue> = (0..rb * cb).map(|_| self.const_f32(bb, 0.0)).collect();
            let accs = self.carried(bb, n, 1, &inits, &|bq, q, acc| {
                let xs: Vec<MlirValue> = (0..rb)
                    .map(|r| {
                        let off = self.const_i64(bq, r as i64);
                        let i = self.arith2(bq, "arith.addi", i0, off);
                        if ta {
                            self.read(bq, a, q, i)
                        } else {
                            self.read(bq, a, i, q)
                        }
                    })
                    .collect();
                let ys: Vec<MlirValue> = (0..cb)
                    .map(|c| {
                        let off = self.const_i64(bq, c as i64);
                        let j = self.arith2(bq, "arith.addi", j0, off);
                        if tb {
                            self.read(bq, bt, j, q)
                        } else {
                            self.read(bq, bt, q, j)
                        }
                    })
                    .collect();
                let mut out = Vec::with_capacity(rb * cb);
                for (r, x) in xs.iter().enumerate() {
                    for (c, y) in ys.iter().enumerate() {
                        out.push(self.fma(bq, *x, *y, acc[r * cb + c]));
                    }
                }
                out
            });
            for r in 0..rb {
                let off = self.const_i64(bb, r as i64);
                let i = self.arith2(bb, "arith.addi", i0, off);
                for c in 0..cb {
                    let coff = self.const_i64(bb, c as i64);
                    let j = self.arith2(bb, "arith.addi", j0, coff);
                    let di = if aliased { self.flat(bb, base, cols, i, j) } else { self.tile_index(bb, dst, i, j) };
                    self.store_f32(bb, accs[r * cb + c], ptr, di);
                }
            }
        });
        if aliased {
            self.copy_from_temp(b, dst);
        }
    }

    /// `dst = a · bᵀ` (rows of `a` and `b` contiguous along the reduction): each element a dot product of
    /// `LANES`-wide pieces, reduced at the end.
    fn matmul_dots(&self, b: &Block<'c>, dst: TileId, a: TileId, bt: TileId, n: usize, aliased: bool) {
        let (rows, cols) = self.shapes[dst.0 as usize];
        let base = self.result_base(dst, aliased);
        let (abase, bbase) = (self.offsets[a.0 as usize], self.offsets[bt.0 as usize]);
        let (_, ac) = self.shapes[a.0 as usize];
        let (_, bc) = self.shapes[bt.0 as usize];
        self.each(b, rows, cols, &mut |bb, i, j| {
            let init = self.zero_vec(bb);
            let acc = self.carried(bb, n, LANES, &[init], &|bq, q, acc| {
                let ai = self.flat(bq, abase, ac, i, q);
                let bi = self.flat(bq, bbase, bc, j, q);
                let (x, y) = (self.load_vec(bq, ai), self.load_vec(bq, bi));
                vec![self.fma(bq, x, y, acc[0])]
            })[0];
            let sum = self.one(
                bb,
                OperationBuilder::new("vector.reduction", self.loc)
                    .add_attributes(&[(
                        melior::ir::Identifier::new(self.c, "kind"),
                        melior::ir::Attribute::parse(self.c, "#vector.kind<add>").expect("#vector.kind parses"),
                    )])
                    .add_operands(&[val(acc)])
                    .add_results(&[self.f32t])
                    .build()
                    .expect("valid vector.reduction"),
            );
            let di = self.flat(bb, base, cols, i, j);
            self.store_f32(bb, sum, self.scratch, di);
        });
        if aliased {
            self.copy_from_temp(b, dst);
        }
    }

    /// `dst[r, s] = f(r, s)` where `f` reads other elements of operands that may include `dst` (`aliased`):
    /// then the results go to the temporary region first.
    fn reduced(
        &self,
        b: &Block<'c>,
        dst: TileId,
        aliased: bool,
        f: &dyn Fn(&Block<'c>, MlirValue, MlirValue) -> MlirValue,
    ) {
        let (rows, cols) = self.shapes[dst.0 as usize];
        if !aliased {
            self.elementwise(b, dst, f);
            return;
        }
        self.each(b, rows, cols, &mut |bb, r, s| {
            let x = f(bb, r, s);
            let nc = self.const_i64(bb, cols as i64);
            let rc = self.arith2(bb, "arith.muli", r, nc);
            let o = self.const_i64(bb, self.temp as i64);
            let i = self.arith2(bb, "arith.addi", rc, o);
            let i = self.arith2(bb, "arith.addi", i, s);
            self.store_f32(bb, x, self.temp_ptr, i);
        });
        self.each(b, rows, cols, &mut |bb, r, s| {
            let nc = self.const_i64(bb, cols as i64);
            let rc = self.arith2(bb, "arith.muli", r, nc);
            let o = self.const_i64(bb, self.temp as i64);
            let i = self.arith2(bb, "arith.addi", rc, o);
            let i = self.arith2(bb, "arith.addi", i, s);
            let x = self.load_f32(bb, self.temp_ptr, i);
            let di = self.tile_index(bb, dst, r, s);
            self.store_f32(bb, x, self.tile_ptrs[dst.0 as usize], di);
        });
    }
}
