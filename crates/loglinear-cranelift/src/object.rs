//! Ahead-of-time compilation: every kernel of a specialised program into one relocatable object file for this
//! CPU (`cranelift-object`), for C, Python (ctypes over a shared library linked from it) or any other host.
//!
//! The object holds, for a symbol prefix `P`:
//! * per kernel `i` of the program, `P_k<i>_<kernel name>` with the [`KernelEntry`](crate::translate::KernelEntry) ABI — `void f(float *const
//!   *bufs, const int64_t *sizes, int64_t lo, int64_t hi, float *scratch)`: grid programs `lo..hi` (linearised,
//!   last grid variable fastest), one `float*` per program buffer in `bufs`, the twelve sizes of
//!   [`loglinear_kernel::SizeEnv::ORDER`] in `sizes`, and `scratch` at least [`ObjectKernel::scratch_floats`]
//!   floats of tile memory (any alignment) private to the calling thread;
//! * `P_sizes`: `void f(int64_t sizes[12], int64_t B, int64_t T, int64_t H, int64_t L, int64_t step)` fills
//!   `sizes` exactly as [`loglinear_kernel::SizeEnv::new`] does for this program (K, V and C are the compiled
//!   ones, NT = ⌈T/C⌉, M = bitlen(NT − 1), MS = M + 1 and LC = max(L, 1) for a log-linear program, else 1), with
//!   `step` the decode position.
//!
//! The code is position-independent (ISA flag `is_pic`), for the host ISA with the features the JIT would use
//! (see [`ObjectCode::isa`]); it calls nothing ([`ObjectCode::imports`] lists what Cranelift's legalisation
//! would have it call, and is empty for every program the translator makes today: `exp` and `log` are CLIF).
//! Unlike [`crate::exec`], the caller does not get denormals flushed: the results are the same within f32
//! round-off, only slower when upper Fenwick states decay into the subnormal range.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder};
use cranelift_module::{default_libcall_names, Linkage};
use cranelift_object::{ObjectBuilder, ObjectModule};
use loglinear_kernel::kernel::{Program, Sym};

use crate::emit::mem;
use crate::error::JitError;
use crate::jit::{define_function, host_isa, IsaInfo, JitOptions, ParamType};
use crate::translate::{define_kernel, sym_slot};

/// One kernel of an [`ObjectCode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectKernel {
    /// The kernel's name in the program.
    pub name: String,
    /// Its exported symbol, `<prefix>_k<i>_<name>`.
    pub symbol: String,
    /// Floats of scratch one call needs (per calling thread).
    pub scratch_floats: usize,
    /// Size of its machine code in bytes.
    pub code_size: u32,
}

/// A program compiled into an object file by [`compile_object`].
#[derive(Clone, Debug)]
pub struct ObjectCode {
    /// The relocatable object file (ELF on Linux).
    pub bytes: Vec<u8>,
    /// The kernels, in execution order.
    pub kernels: Vec<ObjectKernel>,
    /// The exported size helper, `<prefix>_sizes`.
    pub sizes_symbol: String,
    /// Symbols the code imports (libcalls such as `fmaf` or `ceilf`), sorted; a C program links them from libm.
    pub imports: Vec<String>,
    /// The ISA the code was compiled for.
    pub isa: IsaInfo,
}

/// The symbol of kernel `i` named `name` under `prefix`: `<prefix>_k<i>_<name>`, with every character of the
/// kernel name that is not an ASCII letter, digit or `_` replaced by `_`.
pub fn kernel_symbol(prefix: &str, i: usize, name: &str) -> String {
    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    format!("{prefix}_k{i}_{name}")
}

/// Compiles every kernel of the specialised `program` into one position-independent object file for the host,
/// exporting the kernels and the size helper under `prefix` (a C identifier) as the module docs describe.
///
/// # Errors
/// [`JitError::InvalidArgument`] for a prefix that is not a C identifier or a program that is not specialised;
/// the translator's or Cranelift's error for the first kernel that fails.
pub fn compile_object(program: &Program, prefix: &str, options: &JitOptions) -> Result<ObjectCode, JitError> {
    let ident = prefix.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ident {
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
        let symbol = kernel_symbol(prefix, i, &k.name);
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
    Ok(ObjectCode { bytes, kernels, sizes_symbol, imports, isa: host.info })
}
