//! The named lowering pipelines, run on a verified module: the dumps before and after each are what
//! `--dump-ir after-all` shows for this backend.

use melior::ir::attribute::ArrayAttribute;
use melior::ir::block::BlockLike;
use melior::ir::operation::OperationLike;
use melior::ir::AttributeLike;
use melior::ir::Module;
use melior::pass::PassManager;
use melior::utility::parse_pass_pipeline;

use crate::{MlirContext, MlirError};

/// CPU: structured control flow, vectors, math, memrefs and functions to the LLVM dialect.
pub const CPU_TO_LLVM: &str = "builtin.module(convert-vector-to-scf,convert-linalg-to-loops,lower-affine,\
convert-scf-to-cf,convert-vector-to-llvm,convert-math-to-llvm,expand-strided-metadata,finalize-memref-to-llvm,\
convert-arith-to-llvm,convert-index-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,reconcile-unrealized-casts)";

/// NVIDIA, first step: each `gpu.module` (carrying an `#nvvm.target`) to the NVVM and LLVM dialects.
pub const GPU_TO_NVVM: &str = "builtin.module(gpu.module(convert-scf-to-cf,convert-math-to-llvm,convert-gpu-to-nvvm,\
reconcile-unrealized-casts))";

/// NVIDIA, second step: each NVVM `gpu.module` to a `gpu.binary` holding PTX text.
pub const NVVM_TO_PTX: &str = "builtin.module(gpu-module-to-binary{format=isa})";

/// The `#nvvm.target` attribute for the H200: `sm_90` with PTX 8.0.
pub const NVVM_TARGET: &str = r#"#nvvm.target<chip = "sm_90", features = "+ptx80">"#;

/// Verifies `module`, runs `pipeline` on it, and verifies the result.
///
/// # Errors
/// [`MlirError::Verify`] before or after; [`MlirError::Pipeline`] when the pipeline does not parse or fails.
pub fn run_pipeline(ctx: &MlirContext, module: &mut Module<'_>, pipeline: &str) -> Result<(), MlirError> {
    if !module.as_operation().verify() {
        return Err(MlirError::Verify(module.as_operation().to_string()));
    }
    let pm = PassManager::new(ctx.get());
    // MLIR's diagnostics say why a pass failed: they go into the error.
    let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = notes.clone();
    let id = ctx.get().attach_diagnostic_handler(move |d| {
        sink.lock().unwrap_or_else(|e| e.into_inner()).push(d.to_string());
        true
    });
    let failed = |e: melior::Error| {
        let mut message = e.to_string();
        for n in notes.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            message.push_str("\n  ");
            message.push_str(n);
        }
        MlirError::Pipeline { pipeline: pipeline.into(), message }
    };
    let run = parse_pass_pipeline(pm.as_operation_pass_manager(), pipeline).and_then(|()| pm.run(module));
    ctx.get().detach_diagnostic_handler(id);
    run.map_err(failed)?;
    if !module.as_operation().verify() {
        return Err(MlirError::Verify(module.as_operation().to_string()));
    }
    Ok(())
}

/// The PTX text of every `gpu.binary` of a module lowered with [`GPU_TO_PTX`], by binary name.
///
/// # Errors
/// [`MlirError::Codegen`] when a binary holds no object.
pub fn ptx_of(module: &Module<'_>) -> Result<Vec<(String, String)>, MlirError> {
    let mut out = Vec::new();
    let mut op = module.body().first_operation();
    while let Some(o) = op {
        if o.name().as_string_ref().as_str().ok() == Some("gpu.binary") {
            let name = o.attribute("sym_name").map(|a| a.to_string().trim_matches('"').to_string()).unwrap_or_default();
            let objects = o
                .attribute("objects")
                .ok()
                .and_then(|a| ArrayAttribute::try_from(a).ok())
                .ok_or_else(|| MlirError::Codegen(format!("gpu.binary `{name}` has no objects")))?;
            let first = objects.element(0).map_err(|e| MlirError::Codegen(format!("gpu.binary `{name}`: {e}")))?;
            // SAFETY: `first` is a live attribute of `module`; the C API returns a view of its string.
            let text = unsafe {
                if !mlir_sys::mlirAttributeIsAGPUObjectAttr(first.to_raw()) {
                    return Err(MlirError::Codegen(format!("gpu.binary `{name}`: not a #gpu.object")));
                }
                let s = mlir_sys::mlirGPUObjectAttrGetObject(first.to_raw());
                let bytes = std::slice::from_raw_parts(s.data as *const u8, s.length);
                String::from_utf8_lossy(bytes).into_owned()
            };
            out.push((name, text));
        }
        op = o.next_in_block();
    }
    Ok(out)
}
