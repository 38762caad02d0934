//! The JIT: host ISA detection, compilation of one function at a time, typed function pointers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cranelift_codegen::ir::{types, AbiParam, UserFuncName, Value};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use tracing::debug;

use crate::emit::{EmitCtx, EmitError};
use crate::error::JitError;

/// What the host ISA offers to the generated code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsaInfo {
    /// Target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub triple: String,
    /// Fused multiply-add is available (x86: the FMA3 extension; aarch64: always).
    pub has_fma: bool,
    /// SSE4.1 (x86 only; `false` elsewhere).
    pub has_sse41: bool,
    /// AVX (x86 only): VEX encodings, unaligned memory operands.
    pub has_avx: bool,
    /// AVX2 (x86 only).
    pub has_avx2: bool,
}

/// Options of a [`JitModule`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitOptions {
    /// `Some(false)` forces `fmul` + `fadd` even where FMA exists (tests of the portable path);
    /// `Some(true)` requires FMA (an error when the host has none); `None` uses FMA when available.
    pub fma: Option<bool>,
    /// Run Cranelift's IR verifier on each function (slower compiles). Default: on in debug builds.
    pub verify: bool,
    /// Keep Cranelift's textual machine code (VCode) of each function, see [`CompiledFn::disasm`].
    pub disasm: bool,
}

// Not derivable: `verify` defaults to on in debug builds (clippy sees only the release value).
#[allow(clippy::derivable_impls)]
impl Default for JitOptions {
    fn default() -> Self {
        JitOptions { fma: None, verify: cfg!(debug_assertions), disasm: false }
    }
}

/// Type of a parameter of a generated function (all generated functions return nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// A pointer (`i64`; Rust `*const f32` / `*mut f32`).
    Ptr,
    /// A 64-bit integer (Rust `i64`).
    I64,
    /// A 32-bit float.
    F32,
}

/// A host-specialised Cranelift JIT. Each [`JitModule::compile`] call produces an independent, finalised
/// [`CompiledFn`] that owns its machine code, so compiled functions can be cached, shared across threads and
/// dropped independently. `JitModule` itself is `Send + Sync`; compiles may run concurrently.
pub struct JitModule {
    isa: OwnedTargetIsa,
    info: IsaInfo,
    ctx: EmitCtx,
    disasm: bool,
    compiles: AtomicU64,
}

impl std::fmt::Debug for JitModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitModule").field("info", &self.info).field("ctx", &self.ctx).finish()
    }
}

fn set(b: &mut dyn Configurable, name: &str, value: &str) -> Result<(), JitError> {
    b.set(name, value).map_err(|e| JitError::Setting { name: name.into(), value: value.into(), msg: e.to_string() })
}

/// The host ISA with the flags every generated function is compiled with, its features and the matching
/// emitter context.
pub(crate) struct HostIsa {
    pub(crate) isa: OwnedTargetIsa,
    pub(crate) info: IsaInfo,
    pub(crate) ctx: EmitCtx,
}

/// Builds the host ISA: `pic` makes position-independent code (an object file that may go into a shared
/// library); the JIT places code itself and needs none.
pub(crate) fn host_isa(options: &JitOptions, pic: bool) -> Result<HostIsa, JitError> {
    let mut flags = settings::builder();
    // `none`: keep the emitters' instruction order. With `speed` the e-graph pass leaves loads in program order
    // but places pure ops (splat, fma) at their last use, so unrolled matmul micro-kernels spill.
    set(&mut flags, "opt_level", "none")?;
    set(&mut flags, "enable_verifier", if options.verify { "true" } else { "false" })?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "is_pic", if pic { "true" } else { "false" })?;
    // Kernels keep tiles in stack slots of tens of KiB: probe the pages so guard pages are never skipped.
    set(&mut flags, "enable_probestack", "true")?;
    set(&mut flags, "probestack_strategy", "inline")?;
    let isa_builder = cranelift_native::builder().map_err(|m| JitError::UnsupportedIsa(m.to_string()))?;
    let isa = isa_builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| JitError::UnsupportedIsa(format!("building the host ISA: {e}")))?;
    if isa.pointer_type() != types::I64 {
        return Err(JitError::UnsupportedIsa(format!("{}: pointers are not 64-bit", isa.triple())));
    }
    let flag = |name: &str| isa.isa_flags().iter().any(|v| v.name == name && v.as_bool() == Some(true));
    let triple = isa.triple().to_string();
    let arch = isa.triple().architecture.to_string();
    let info = match arch.as_str() {
        "x86_64" => IsaInfo {
            triple,
            has_fma: flag("has_fma"),
            has_sse41: flag("has_sse41"),
            has_avx: flag("has_avx"),
            has_avx2: flag("has_avx2"),
        },
        a if a.starts_with("aarch64") => {
            IsaInfo { triple, has_fma: true, has_sse41: false, has_avx: false, has_avx2: false }
        }
        _ => IsaInfo { triple, has_fma: false, has_sse41: false, has_avx: false, has_avx2: false },
    };
    let use_fma = match options.fma {
        None => info.has_fma,
        Some(false) => false,
        Some(true) if info.has_fma => true,
        Some(true) => return Err(JitError::UnsupportedIsa(format!("{}: FMA requested but absent", info.triple))),
    };
    Ok(HostIsa { isa, info, ctx: EmitCtx { use_fma } })
}

/// A function defined in a [`Module`] by [`define_function`].
#[derive(Clone, Debug)]
pub struct DefinedFn {
    /// Its id in the module.
    pub id: FuncId,
    /// Size of its machine code in bytes.
    pub code_size: u32,
    /// Cranelift's textual machine code, when asked for.
    pub disasm: Option<String>,
}

/// Declares and defines one function `name(params…)` (the ISA's default C calling convention, no return value)
/// in `module` — the JIT's or an object file's.
///
/// `body(builder, ctx, params)` is called with the builder positioned in the entry block (its parameters are
/// `params`); it emits the function body and leaves the builder in an open block, where `return` is added.
///
/// # Errors
/// The body's error; [`JitError::Module`] when the module refuses the declaration or the definition.
#[allow(clippy::too_many_arguments)]
pub fn define_function<M, F>(
    module: &mut M,
    emit: &EmitCtx,
    disasm: bool,
    name: &str,
    linkage: Linkage,
    params: &[ParamType],
    body: F,
) -> Result<DefinedFn, JitError>
where
    M: Module,
    F: FnOnce(&mut FunctionBuilder, &EmitCtx, &[Value]) -> Result<(), JitError>,
{
    let module_err = |e: cranelift_module::ModuleError| JitError::Module { kernel: name.into(), msg: format!("{e:?}") };
    let mut sig = module.make_signature();
    for p in params {
        sig.params.push(AbiParam::new(match p {
            ParamType::Ptr | ParamType::I64 => types::I64,
            ParamType::F32 => types::F32,
        }));
    }
    let id = module.declare_function(name, linkage, &sig).map_err(module_err)?;
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    ctx.set_disasm(disasm);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let vals = b.block_params(entry).to_vec();
        body(&mut b, emit, &vals)?;
        use cranelift_codegen::ir::InstBuilder;
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    module.define_function(id, &mut ctx).map_err(module_err)?;
    let code_size = ctx.compiled_code().map(|c| c.code_info().total_size).unwrap_or(0);
    let disasm = ctx.compiled_code().and_then(|c| c.vcode.clone());
    Ok(DefinedFn { id, code_size, disasm })
}

impl JitModule {
    /// A JIT for the host with default options.
    pub fn new() -> Result<Self, JitError> {
        Self::with_options(JitOptions::default())
    }

    /// A JIT for the host. Fails on hosts Cranelift cannot target natively (or without 64-bit pointers, or
    /// without FMA when `options.fma == Some(true)`).
    pub fn with_options(options: JitOptions) -> Result<Self, JitError> {
        let host = host_isa(&options, false)?;
        debug!(info = ?host.info, use_fma = host.ctx.use_fma, "cranelift JIT ready");
        Ok(JitModule {
            isa: host.isa,
            info: host.info,
            ctx: host.ctx,
            disasm: options.disasm,
            compiles: AtomicU64::new(0),
        })
    }

    /// The host ISA's features.
    pub fn isa_info(&self) -> &IsaInfo {
        &self.info
    }

    /// The emitter context matching this JIT (FMA on or off).
    pub fn emit_ctx(&self) -> EmitCtx {
        self.ctx
    }

    /// Number of functions compiled so far by this JIT.
    pub fn compile_count(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// Compiles one function `fn(params…)` (C calling convention, no return value) in a module of its own
    /// ([`define_function`] on a JIT module, then finalised).
    ///
    /// `body(builder, ctx, params)` is called with the builder positioned in the entry block (its parameters are
    /// `params`); it emits the function body and leaves the builder in an open block, where `return` is added.
    pub fn compile<F>(&self, name: &str, params: &[ParamType], body: F) -> Result<CompiledFn, JitError>
    where
        F: FnOnce(&mut FunctionBuilder, &EmitCtx, &[Value]) -> Result<(), EmitError>,
    {
        let t0 = Instant::now();
        let module_err =
            |e: cranelift_module::ModuleError| JitError::Module { kernel: name.into(), msg: format!("{e:?}") };
        let mut module = JITModule::new(JITBuilder::with_isa(self.isa.clone(), default_libcall_names()));
        let DefinedFn { id, code_size, disasm } =
            define_function(&mut module, &self.ctx, self.disasm, name, Linkage::Export, params, |b, ctx, vals| {
                body(b, ctx, vals).map_err(|e| JitError::Emit { kernel: name.into(), source: e })
            })?;
        let t_define = t0.elapsed();
        module.finalize_definitions().map_err(module_err)?;
        let ptr = module.get_finalized_function(id);
        let compile_time = t0.elapsed();
        self.compiles.fetch_add(1, Ordering::Relaxed);
        debug!(
            kernel = name,
            define_us = t_define.as_micros() as u64,
            compile_us = compile_time.as_micros() as u64,
            code_size,
            "cranelift compiled"
        );
        Ok(CompiledFn {
            _code: Arc::new(CodeHolder(Some(module))),
            ptr,
            name: name.into(),
            compile_time,
            code_size,
            disasm,
        })
    }
}

/// Owns the JIT memory of one finalised module; frees it when the last [`CompiledFn`] referring to it drops.
struct CodeHolder(Option<JITModule>);

// SAFETY: after `finalize_definitions` the module is never used again except to free its memory in `drop`, which
// requires exclusive ownership (the last `Arc`). The finalised code is immutable and position-fixed.
unsafe impl Send for CodeHolder {}
// SAFETY: see above; no method of the module is reachable through a shared reference.
unsafe impl Sync for CodeHolder {}

impl Drop for CodeHolder {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: this is the last owner, so no `CompiledFn` can hand out the pointer any more. Callers of
            // `CompiledFn::as_fn` promise not to use a copied fn pointer beyond the `CompiledFn`'s lifetime.
            unsafe { m.free_memory() };
        }
    }
}

/// A compiled, finalised function. Cloning is cheap (shared ownership of the code).
#[derive(Clone)]
pub struct CompiledFn {
    _code: Arc<CodeHolder>,
    ptr: *const u8,
    name: String,
    compile_time: Duration,
    code_size: u32,
    disasm: Option<String>,
}

// SAFETY: `ptr` points to immutable, finalised machine code kept alive by `_code`.
unsafe impl Send for CompiledFn {}
// SAFETY: as above.
unsafe impl Sync for CompiledFn {}

impl std::fmt::Debug for CompiledFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledFn")
            .field("name", &self.name)
            .field("compile_time", &self.compile_time)
            .field("code_size", &self.code_size)
            .finish()
    }
}

impl CompiledFn {
    /// Name given at compile time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Wall time of emission + Cranelift compilation + finalisation.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Size of the machine code in bytes.
    pub fn code_size(&self) -> u32 {
        self.code_size
    }

    /// Cranelift's textual machine code, when the JIT was built with [`JitOptions::disasm`].
    pub fn disasm(&self) -> Option<&str> {
        self.disasm.as_deref()
    }

    /// The entry address.
    pub fn code_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The function as a typed function pointer, e.g. `extern "C" fn(*const f32, i64)`.
    ///
    /// # Errors
    /// [`JitError::InvalidArgument`] when `F` is not pointer-sized (it cannot be a function pointer).
    ///
    /// # Safety
    /// `F` must be an `extern "C" fn` type whose parameters match the [`ParamType`]s the function was compiled
    /// with (pointers and `i64` as 64-bit integers, `f32`), returning `()`. The returned pointer must not be
    /// called after this `CompiledFn` and all its clones are dropped.
    pub unsafe fn as_fn<F: Copy>(&self) -> Result<F, JitError> {
        if std::mem::size_of::<F>() != std::mem::size_of::<*const u8>() {
            return Err(JitError::InvalidArgument(format!(
                "as_fn::<{}>: not a function pointer type",
                std::any::type_name::<F>()
            )));
        }
        // SAFETY: sizes match (checked); the caller guarantees F is the right fn-pointer type.
        Ok(unsafe { std::mem::transmute_copy::<*const u8, F>(&self.ptr) })
    }
}
