//! The MLIR toolchain end to end, on modules built through melior's builder API: a CPU function lowered to the
//! LLVM dialect, JIT-compiled and run; a GPU kernel lowered to PTX for `sm_90`.

use loglinear_mlir::lower::{ptx_of, run_pipeline, CPU_TO_LLVM, GPU_TO_NVVM, NVVM_TARGET, NVVM_TO_PTX};
use loglinear_mlir::{Jit, MemRef1, MlirContext};
use melior::dialect::{arith, func, memref, scf};
use melior::ir::attribute::{IntegerAttribute, StringAttribute, TypeAttribute};
use melior::ir::operation::{OperationBuilder, OperationMutLike};
use melior::ir::r#type::{FunctionType, MemRefType};
use melior::ir::{Attribute, Block, BlockLike, Identifier, Location, Module, Region, RegionLike, Type, Value};

/// Appends `y[i] = a * x[i] + y[i]` for every i of `x` to `block`.
fn saxpy_body<'c>(ctx: &'c MlirContext, block: &Block<'c>, x: Value<'c, '_>, y: Value<'c, '_>, a: Value<'c, '_>) {
    let c = ctx.get();
    let loc = Location::unknown(c);
    let idx = Type::index(c);
    let zero = block.append_operation(arith::constant(c, IntegerAttribute::new(idx, 0).into(), loc)).result(0).unwrap();
    let one = block.append_operation(arith::constant(c, IntegerAttribute::new(idx, 1).into(), loc)).result(0).unwrap();
    let n = block.append_operation(memref::dim(x, zero.into(), loc)).result(0).unwrap();
    let body = Block::new(&[(idx, loc)]);
    let i: Value = body.argument(0).unwrap().into();
    let xi = body.append_operation(memref::load(x, &[i], loc)).result(0).unwrap();
    let yi = body.append_operation(memref::load(y, &[i], loc)).result(0).unwrap();
    let ax = body.append_operation(arith::mulf(a, xi.into(), loc)).result(0).unwrap();
    let s = body.append_operation(arith::addf(ax.into(), yi.into(), loc)).result(0).unwrap();
    body.append_operation(memref::store(s.into(), y, &[i], loc));
    body.append_operation(scf::r#yield(&[], loc));
    let region = Region::new();
    region.append_block(body);
    block.append_operation(scf::r#for(zero.into(), n.into(), one.into(), region, loc));
}

/// The body of `saxpy(x: memref<?xf32>, y: memref<?xf32>, a: f32)` ended by the zero-operand op `ret`
/// (`func.return` or `gpu.return`), and the memref type.
fn saxpy_region<'c>(ctx: &'c MlirContext, ret: &str) -> (Region<'c>, Type<'c>) {
    let c = ctx.get();
    let loc = Location::unknown(c);
    let f32t = Type::float32(c);
    let mt: Type = MemRefType::new(f32t, &[i64::MIN], None, None).into();
    let block = Block::new(&[(mt, loc), (mt, loc), (f32t, loc)]);
    let (x, y, a) =
        (block.argument(0).unwrap().into(), block.argument(1).unwrap().into(), block.argument(2).unwrap().into());
    saxpy_body(&ctx, &block, x, y, a);
    block.append_operation(OperationBuilder::new(ret, loc).build().unwrap());
    let region = Region::new();
    region.append_block(block);
    (region, mt)
}

#[test]
fn a_cpu_function_is_lowered_jit_compiled_and_run() {
    let ctx = MlirContext::new();
    let c = ctx.get();
    let loc = Location::unknown(c);
    let f32t = Type::float32(c);
    let mut module = Module::new(loc);
    let (region, mt) = saxpy_region(&ctx, "func.return");
    module.body().append_operation(func::func(
        c,
        StringAttribute::new(c, "saxpy"),
        TypeAttribute::new(FunctionType::new(c, &[mt, mt, f32t], &[]).into()),
        region,
        &[(Identifier::new(c, "llvm.emit_c_interface"), Attribute::unit(c))],
        loc,
    ));
    run_pipeline(&ctx, &mut module, CPU_TO_LLVM).unwrap();
    let jit = Jit::new(&module, 3);
    let f: extern "C" fn(*mut MemRef1<f32>, *mut MemRef1<f32>, f32) =
        unsafe { std::mem::transmute(jit.c_interface("saxpy").unwrap()) };
    let mut xs: Vec<f32> = (0..37).map(|i| i as f32).collect();
    let mut ys: Vec<f32> = vec![1.0; 37];
    let (mut dx, mut dy) = (MemRef1::new(&mut xs), MemRef1::new(&mut ys));
    f(&mut dx, &mut dy, 2.0);
    assert_eq!(ys, (0..37).map(|i| 2.0 * i as f32 + 1.0).collect::<Vec<_>>());
    assert!(jit.c_interface("nope").is_err());
}

#[test]
fn a_gpu_kernel_is_lowered_to_ptx_for_sm_90() {
    let ctx = MlirContext::new();
    let c = ctx.get();
    let loc = Location::unknown(c);
    let f32t = Type::float32(c);
    let mut module = Module::new(loc);
    // gpu.module @kernels [#nvvm.target<…>] { gpu.func @saxpy(x, y, a) kernel { … } }
    let (region, mt) = saxpy_region(&ctx, "gpu.return");
    let gfunc = OperationBuilder::new("gpu.func", loc)
        .add_attributes(&[
            (Identifier::new(c, "sym_name"), StringAttribute::new(c, "saxpy").into()),
            (
                Identifier::new(c, "function_type"),
                TypeAttribute::new(FunctionType::new(c, &[mt, mt, f32t], &[]).into()).into(),
            ),
            (Identifier::new(c, "gpu.kernel"), Attribute::unit(c)),
        ])
        .add_regions([region])
        .build()
        .unwrap();
    let gbody = Block::new(&[]);
    gbody.append_operation(gfunc);
    let gregion = Region::new();
    gregion.append_block(gbody);
    let target = Attribute::parse(c, NVVM_TARGET).expect("#nvvm.target parses");
    let gmodule = OperationBuilder::new("gpu.module", loc)
        .add_attributes(&[
            (Identifier::new(c, "sym_name"), StringAttribute::new(c, "kernels").into()),
            (Identifier::new(c, "targets"), melior::ir::attribute::ArrayAttribute::new(c, &[target]).into()),
        ])
        .add_regions([gregion])
        .build()
        .unwrap();
    module.body().append_operation(gmodule);
    module.as_operation_mut().set_attribute("gpu.container_module", Attribute::unit(c));
    run_pipeline(&ctx, &mut module, GPU_TO_NVVM).unwrap();
    run_pipeline(&ctx, &mut module, NVVM_TO_PTX).unwrap();
    let ptx = ptx_of(&module).unwrap();
    assert_eq!(ptx.len(), 1, "{ptx:?}");
    let (name, text) = &ptx[0];
    assert!(name.contains("kernels"), "{name}");
    for needle in [".target sm_90", ".version 8.0", ".entry saxpy", "mul.rn.f32", "add.rn.f32", "ld.global.b32"] {
        assert!(text.contains(needle), "`{needle}` missing in\n{text}");
    }
}
