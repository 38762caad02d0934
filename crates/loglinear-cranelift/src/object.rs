//! Ahead-of-time compilation: every kernel of a specialised program into one relocatable object file for this
//! CPU (`cranelift-object`), for C, Python (ctypes over a shared library linked from it) or any other host.
//!
//! The object keeps the contract of [`ObjectCode`] (kernels `P_k<i>_<name>` with the kernel ABI, `P_sizes`),
//! which the MLIR back end's objects keep as well.
//!
//! The code is position-independent (ISA flag `is_pic`), for the host ISA with the features the JIT would use
//! (see [`ObjectCode::cpu_features`]); it calls nothing ([`ObjectCode::imports`] lists what Cranelift's legalisation
//! would have it call, and is empty for every program the translator makes today: `exp` and `log` are CLIF).
//! Unlike [`crate::exec`], the caller does not get denormals flushed: the results are the same within f32
//! round-off, only slower when upper Fenwick states decay into the subnormal range.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder};
use cranelift_module::{default_libcall_names, Linkage};
use cranelift_object::{ObjectBuilder, ObjectModule};
use loglinear_kernel::host::{is_c_identifier, object_symbol};
pub use loglinear_kernel::host::{ObjectCode, ObjectKernel};
use loglinear_kernel::kernel::{Program, Sym};

use crate::emit::mem;
use crate::error::JitError;
use crate::jit::{define_function, host_isa, JitOptions, ParamType};
use crate::translate::{define_kernel, sym_slot};

/// Compiles every kernel of the specialised `program` into one position-independent object file for the host,
/// exporting the kernels and the size helper under `prefix` (a C identifier) as the module docs describe.
///
/// # Errors
/// [`JitError::InvalidArgument`] for a prefix that is not a C identifier or a program that is not specialised;
/// the translator's or Cranelift's error for the first kernel that fails.
pub fn compile_object(program: &Program, prefix: &str, options: &JitOptions) -> Result<ObjectCode, JitError> {
    if !is_c_identifier(prefix) {
        return Err(JitError::InvalidArgument(format!("symbol prefix `{prefix}` is not a C identifier")));
    }
    let spec = program
        .specialised
        .ok_or_else(|| JitError::InvalidArgument(format!("program `{}` is not specialised", program.name)))?;
    let host = host_isa(options, true)?;
    let module_err =
        |e: cranelift_module::ModuleError| JitError::Module { kernel: prefix.into(), msg: format!("{e:?}") };
    // Record every libcall Cranelift's legalisation asks for: the object imports it.
    let imports: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let seen = imports.clone();
    let names = default_libcall_names();
    let libcall_names = Box::new(move |c| {
        let n = names(c);
        seen.lock().unwrap_or_else(|e| e.into_inner()).insert(n.clone());
        n
    });
    let builder = ObjectBuilder::new(host.isa, format!("{prefix}.o"), libcall_names).map_err(module_err)?;
    let mut module = ObjectModule::new(builder);
    let mut kernels = Vec::with_capacity(program.kernels.len());
    for (i, k) in program.kernels.iter().enumerate() {
        let symbol = object_symbol(prefix, i, &k.name);
        let (defined, scratch_floats) = define_kernel(&mut module, &host.ctx, program, i, &symbol, Linkage::Export)?;
        kernels.push(ObjectKernel { name: k.name.clone(), symbol, scratch_floats, code_size: defined.code_size });
    }
    let sizes_symbol = format!("{prefix}_sizes");
    let (k, v, c, hier) = (spec.k as i64, spec.v as i64, spec.c.max(1) as i64, program.hierarchical);
    let params = [ParamType::Ptr, ParamType::I64, ParamType::I64, ParamType::I64, ParamType::I64, ParamType::I64];
    define_function(&mut module, &host.ctx, false, &sizes_symbol, Linkage::Export, &params, |b, _, p| {
        let (out, bb, t, h, l, step) = (p[0], p[1], p[2], p[3], p[4], p[5]);
        let zero = b.ins().iconst(types::I64, 0);
        let one = b.ins().iconst(types::I64, 1);
        // NT = ⌈T / C⌉ (T ≥ 0).
        let tc = b.ins().iadd_imm_s(t, c - 1);
        let nt = b.ins().udiv_imm_s(tc, c);
        let l1 = b.ins().smax(l, one);
        let (m, ms, lc) = if hier {
            // M = bitlen(NT − 1), NT − 1 saturating at 0.
            let n1 = b.ins().iadd_imm_s(nt, -1);
            let pos = b.ins().icmp(IntCC::SignedGreaterThan, nt, zero);
            let n1 = b.ins().select(pos, n1, zero);
            let lz = b.ins().clz(n1);
            let sixty_four = b.ins().iconst(types::I64, 64);
            let m = b.ins().isub(sixty_four, lz);
            let ms = b.ins().iadd_imm_s(m, 1);
            (m, ms, l1)
        } else {
            (one, one, one)
        };
        let kc = b.ins().iconst(types::I64, k);
        let vc = b.ins().iconst(types::I64, v);
        let cc = b.ins().iconst(types::I64, c);
        for (sym, val) in [
            (Sym::B, bb),
            (Sym::T, t),
            (Sym::H, h),
            (Sym::K, kc),
            (Sym::V, vc),
            (Sym::L, l1),
            (Sym::NT, nt),
            (Sym::C, cc),
            (Sym::M, m),
            (Sym::MS, ms),
            (Sym::LC, lc),
            (Sym::Step, step),
        ] {
            b.ins().store(mem(), val, out, (sym_slot(sym) * 8) as i32);
        }
        Ok(())
    })?;
    let bytes = module.finish().emit().map_err(|e| JitError::Module { kernel: prefix.into(), msg: e.to_string() })?;
    let imports = imports.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
    let i = &host.info;
    let cpu_features = [("fma", i.has_fma), ("sse4.1", i.has_sse41), ("avx", i.has_avx), ("avx2", i.has_avx2)]
        .iter()
        .filter(|f| f.1)
        .map(|f| f.0.to_string())
        .collect();
    Ok(ObjectCode {
        bytes,
        kernels,
        sizes_symbol,
        imports,
        triple: i.triple.clone(),
        cpu_features,
        generator: "cranelift",
    })
}
