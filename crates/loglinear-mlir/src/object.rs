//! Ahead-of-time object files through MLIR and LLVM (`loglinear emit --target object --codegen mlir`): the CPU
//! translation of [`crate::translate`] plus the `_sizes` helper, lowered to the LLVM dialect, translated to LLVM
//! IR, optimised at `-O3` and compiled by LLVM's x86-64 back end for the host CPU (its features) with
//! position-independent relocations. The object keeps the contract of [`ObjectCode`], like Cranelift's.
//!
//! LLVM's C API is linked in with MLIR (statically); the functions `mlir-sys` does not bind are declared here.

use std::ffi::{c_char, c_void, CStr, CString};

use loglinear_kernel::host::{is_c_identifier, object_symbol, ObjectCode, ObjectKernel};
use loglinear_kernel::kernel::Program;
use mlir_sys::{
    mlirTranslateModuleToLLVMIR, LLVMContextCreate, LLVMContextDispose, LLVMDisposeMemoryBuffer, LLVMDisposeMessage,
    LLVMDisposeModule, LLVMGetBufferSize, LLVMGetBufferStart, LLVMMemoryBufferRef, LLVMModuleRef, LLVMSetTarget,
};

use crate::lower::{run_pipeline, CPU_TO_LLVM};
use crate::translate::{sizes_function, translate_kernel};
use crate::{MlirContext, MlirError};

type TargetRef = *mut c_void;
type TargetMachineRef = *mut c_void;

unsafe extern "C" {
    fn LLVMInitializeX86TargetInfo();
    fn LLVMInitializeX86Target();
    fn LLVMInitializeX86TargetMC();
    fn LLVMInitializeX86AsmPrinter();
    fn LLVMInitializeX86AsmParser();
    fn LLVMGetDefaultTargetTriple() -> *mut c_char;
    fn LLVMGetHostCPUName() -> *mut c_char;
    fn LLVMGetHostCPUFeatures() -> *mut c_char;
    fn LLVMGetTargetFromTriple(triple: *const c_char, target: *mut TargetRef, error: *mut *mut c_char) -> i32;
    fn LLVMCreateTargetMachine(
        target: TargetRef,
        triple: *const c_char,
        cpu: *const c_char,
        features: *const c_char,
        level: u32,
        reloc: u32,
        code_model: u32,
    ) -> TargetMachineRef;
    fn LLVMDisposeTargetMachine(tm: TargetMachineRef);
    fn LLVMCreateTargetDataLayout(tm: TargetMachineRef) -> *mut c_void;
    fn LLVMSetModuleDataLayout(m: LLVMModuleRef, layout: *mut c_void);
    fn LLVMDisposeTargetData(layout: *mut c_void);
    fn LLVMCreatePassBuilderOptions() -> *mut c_void;
    fn LLVMDisposePassBuilderOptions(options: *mut c_void);
    fn LLVMRunPasses(
        m: LLVMModuleRef,
        passes: *const c_char,
        tm: TargetMachineRef,
        options: *mut c_void,
    ) -> *mut c_void;
    fn LLVMGetErrorMessage(error: *mut c_void) -> *mut c_char;
    fn LLVMDisposeErrorMessage(message: *mut c_char);
    fn LLVMTargetMachineEmitToMemoryBuffer(
        tm: TargetMachineRef,
        m: LLVMModuleRef,
        file_type: u32,
        error: *mut *mut c_char,
        out: *mut LLVMMemoryBufferRef,
    ) -> i32;
}

/// Registers LLVM's x86-64 target once per process, before threads compile modules at once (what each
/// ExecutionEngine and [`compile_object`] would otherwise do on first use, from several threads).
pub(crate) fn init_native_target() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: LLVM's target registration functions take no arguments and may be called at any time.
        unsafe {
            LLVMInitializeX86TargetInfo();
            LLVMInitializeX86Target();
            LLVMInitializeX86TargetMC();
            LLVMInitializeX86AsmPrinter();
            LLVMInitializeX86AsmParser();
        }
    });
}

/// `LLVMCodeGenLevelAggressive`, `LLVMRelocPIC`, `LLVMCodeModelDefault`, `LLVMObjectFile`.
const OPT_AGGRESSIVE: u32 = 3;
const RELOC_PIC: u32 = 2;
const CODE_MODEL_DEFAULT: u32 = 0;
const OBJECT_FILE: u32 = 1;

/// CPU features named in the object's description when the host has them.
const NAMED_FEATURES: [&str; 6] = ["fma", "sse4.1", "avx", "avx2", "avx512f", "avx512vl"];

/// Takes an LLVM-allocated message.
///
/// # Safety
/// `m` is null or a message LLVM allocated with `LLVMCreateMessage` semantics.
unsafe fn message(m: *mut c_char) -> String {
    if m.is_null() {
        return String::new();
    }
    // SAFETY: a NUL-terminated string from LLVM (caller's contract), freed once here.
    let s = unsafe { CStr::from_ptr(m) }.to_string_lossy().into_owned();
    unsafe { LLVMDisposeMessage(m) };
    s
}

/// Compiles every kernel of the specialised `program` and its `_sizes` helper into one position-independent
/// object file for this CPU, with the symbols of [`ObjectCode`] under `prefix`.
///
/// # Errors
/// [`MlirError::Codegen`] for a prefix that is not a C identifier, a host that is not x86-64, or a program the
/// translator refuses; [`MlirError::Pipeline`] when lowering fails; [`MlirError::Jit`] when LLVM cannot make
/// the object.
pub fn compile_object(program: &Program, prefix: &str) -> Result<ObjectCode, MlirError> {
    if !is_c_identifier(prefix) {
        return Err(MlirError::Codegen(format!("symbol prefix `{prefix}` is not a C identifier")));
    }
    if !cfg!(target_arch = "x86_64") {
        return Err(MlirError::Codegen("object files through MLIR: x86-64 hosts only".into()));
    }
    let ctx = MlirContext::new();
    let mut module = melior::ir::Module::new(melior::ir::Location::unknown(ctx.get()));
    let mut kernels = Vec::with_capacity(program.kernels.len());
    for (i, k) in program.kernels.iter().enumerate() {
        let symbol = object_symbol(prefix, i, &k.name);
        let t = translate_kernel(&ctx, &module, program, k, &symbol)?;
        kernels.push(ObjectKernel { name: k.name.clone(), symbol, scratch_floats: t.scratch_floats, code_size: 0 });
    }
    let sizes_symbol = format!("{prefix}_sizes");
    sizes_function(&ctx, &module, program, &sizes_symbol)?;
    run_pipeline(&ctx, &mut module, CPU_TO_LLVM)?;
    let (bytes, triple, cpu_features) = llvm_object(&module)?;
    let (imports, sizes) = elf_symbols(&bytes);
    for k in &mut kernels {
        k.code_size = sizes.iter().find(|(n, _)| *n == k.symbol).map_or(0, |(_, s)| *s);
    }
    Ok(ObjectCode { bytes, kernels, sizes_symbol, imports, triple, cpu_features, generator: "mlir" })
}

/// Translates an LLVM-dialect module to LLVM IR and compiles it: the object's bytes, the triple and the named
/// host features the code may use.
fn llvm_object(module: &melior::ir::Module<'_>) -> Result<(Vec<u8>, String, Vec<String>), MlirError> {
    let fail = |what: &str, detail: String| MlirError::Jit(format!("LLVM {what}: {detail}"));
    // SAFETY: LLVM-C calls in the documented order; every object created here is disposed of before returning,
    // and the module's operation outlives the translation.
    unsafe {
        init_native_target();
        let llvm_ctx = LLVMContextCreate();
        let m = mlirTranslateModuleToLLVMIR(module.as_operation().to_raw(), llvm_ctx);
        if m.is_null() {
            LLVMContextDispose(llvm_ctx);
            return Err(fail("translation", "mlirTranslateModuleToLLVMIR returned no module".into()));
        }
        let triple_c = LLVMGetDefaultTargetTriple();
        let triple = CStr::from_ptr(triple_c).to_string_lossy().into_owned();
        let cpu = LLVMGetHostCPUName();
        let features_c = LLVMGetHostCPUFeatures();
        let features = CStr::from_ptr(features_c).to_string_lossy().into_owned();
        let mut target: TargetRef = std::ptr::null_mut();
        let mut err: *mut c_char = std::ptr::null_mut();
        let result = (|| {
            if LLVMGetTargetFromTriple(triple_c, &mut target, &mut err) != 0 {
                return Err(fail("target", message(err)));
            }
            let tm = LLVMCreateTargetMachine(
                target,
                triple_c,
                cpu,
                features_c,
                OPT_AGGRESSIVE,
                RELOC_PIC,
                CODE_MODEL_DEFAULT,
            );
            if tm.is_null() {
                return Err(fail("target machine", triple.clone()));
            }
            LLVMSetTarget(m, triple_c);
            let layout = LLVMCreateTargetDataLayout(tm);
            LLVMSetModuleDataLayout(m, layout);
            LLVMDisposeTargetData(layout);
            let options = LLVMCreatePassBuilderOptions();
            let passes = CString::new("default<O3>").expect("no NUL");
            let e = LLVMRunPasses(m, passes.as_ptr(), tm, options);
            LLVMDisposePassBuilderOptions(options);
            if !e.is_null() {
                let msg = LLVMGetErrorMessage(e);
                let text = CStr::from_ptr(msg).to_string_lossy().into_owned();
                LLVMDisposeErrorMessage(msg);
                LLVMDisposeTargetMachine(tm);
                return Err(fail("optimisation", text));
            }
            let mut buf: LLVMMemoryBufferRef = std::ptr::null_mut();
            let r = LLVMTargetMachineEmitToMemoryBuffer(tm, m, OBJECT_FILE, &mut err, &mut buf);
            LLVMDisposeTargetMachine(tm);
            if r != 0 {
                return Err(fail("code generation", message(err)));
            }
            let start = LLVMGetBufferStart(buf) as *const u8;
            let bytes = std::slice::from_raw_parts(start, LLVMGetBufferSize(buf)).to_vec();
            LLVMDisposeMemoryBuffer(buf);
            Ok(bytes)
        })();
        LLVMDisposeMessage(triple_c);
        LLVMDisposeMessage(cpu);
        LLVMDisposeMessage(features_c);
        LLVMDisposeModule(m);
        LLVMContextDispose(llvm_ctx);
        let on: Vec<&str> = features.split(',').filter_map(|f| f.strip_prefix('+')).collect();
        let named = NAMED_FEATURES.iter().filter(|f| on.contains(f)).map(|f| f.to_string()).collect();
        result.map(|bytes| (bytes, triple, named))
    }
}

/// The undefined symbols of an object file (sorted) and the sizes of its defined functions; nothing for bytes that
/// are not an object file.
fn elf_symbols(bytes: &[u8]) -> (Vec<String>, Vec<(String, u32)>) {
    use object::{Object, ObjectSymbol, SymbolKind};
    let Ok(file) = object::File::parse(bytes) else { return (Vec::new(), Vec::new()) };
    let (mut imports, mut sizes) = (Vec::new(), Vec::new());
    for sym in file.symbols() {
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() {
            continue;
        }
        if sym.is_undefined() && sym.is_global() {
            imports.push(name.to_string());
        } else if sym.kind() == SymbolKind::Text && sym.is_definition() {
            sizes.push((name.to_string(), sym.size() as u32));
        }
    }
    imports.sort();
    imports.dedup();
    (imports, sizes)
}
