//! NVIDIA: a specialised, decomposed program → one `gpu.module` (an entry point per kernel, laid out by
//! [`loglinear_kernel::device`]) → NVVM → PTX for `sm_90` ([`lower::GPU_TO_NVVM`], [`lower::NVVM_TO_PTX`]). The CUDA loader
//! (`loglinear-cuda`) links no MLIR: it takes the PTX text, from a directory or from [`MlirPtx`].

use std::time::{Duration, Instant};

use loglinear_kernel::device::{GpuKernelLayout, PtxCompiler};
use loglinear_kernel::kernel::Program;
use melior::ir::attribute::{ArrayAttribute, StringAttribute};
use melior::ir::operation::{OperationBuilder, OperationMutLike};
use melior::ir::{Attribute, Block, BlockLike, Identifier, Location, Module, Region, RegionLike};

use crate::lower::{ptx_of, run_pipeline, GPU_TO_NVVM, NVVM_TARGET, NVVM_TO_PTX};
use crate::translate::translate_gpu_kernel;
use crate::{MlirContext, MlirError};

/// A program compiled to PTX.
#[derive(Clone, Debug)]
pub struct PtxModule {
    /// The PTX text (one `.entry` per kernel).
    pub ptx: String,
    /// Each kernel's layout (its entry point, threads, shared memory and scratch).
    pub kernels: Vec<GpuKernelLayout>,
    /// The module before lowering (`--dump-ir`).
    pub mlir: String,
    /// The module in the NVVM and LLVM dialects, before PTX generation (`--dump-ir`).
    pub nvvm: String,
    /// Time to translate each kernel.
    pub translate_times: Vec<Duration>,
    /// Time to lower the module to PTX.
    pub lower_time: Duration,
}

/// Translates `p` (specialised, decomposed) and lowers it to PTX for `sm_90`.
///
/// # Errors
/// [`MlirError`] from translation, verification or lowering.
pub fn compile_ptx(p: &Program) -> Result<PtxModule, MlirError> {
    let ctx = MlirContext::new();
    let c = ctx.get();
    let loc = Location::unknown(c);
    let mut module = Module::new(loc);
    let body = Block::new(&[]);
    let mut kernels = Vec::with_capacity(p.kernels.len());
    let mut translate_times = Vec::with_capacity(p.kernels.len());
    for i in 0..p.kernels.len() {
        let t = Instant::now();
        kernels.push(translate_gpu_kernel(&ctx, &body, p, i)?);
        translate_times.push(t.elapsed());
    }
    let region = Region::new();
    region.append_block(body);
    let target = Attribute::parse(c, NVVM_TARGET).expect("#nvvm.target parses");
    let gmodule = OperationBuilder::new("gpu.module", loc)
        .add_attributes(&[
            (Identifier::new(c, "sym_name"), StringAttribute::new(c, "loglinear").into()),
            (Identifier::new(c, "targets"), ArrayAttribute::new(c, &[target]).into()),
        ])
        .add_regions([region])
        .build()
        .map_err(|e| MlirError::Codegen(format!("gpu.module: {e}")))?;
    module.body().append_operation(gmodule);
    module.as_operation_mut().set_attribute("gpu.container_module", Attribute::unit(c));
    let mlir = module.as_operation().to_string();
    let t = Instant::now();
    run_pipeline(&ctx, &mut module, GPU_TO_NVVM)?;
    let nvvm = module.as_operation().to_string();
    run_pipeline(&ctx, &mut module, NVVM_TO_PTX)?;
    let mut ptx = ptx_of(&module)?;
    let lower_time = t.elapsed();
    let ptx = ptx.pop().map(|(_, text)| text).ok_or_else(|| MlirError::Codegen("no gpu.binary".into()))?;
    Ok(PtxModule { ptx, kernels, mlir, nvvm, translate_times, lower_time })
}

/// The stages of `p` through MLIR, as `(name, text)`: for the CPU the module as translated (`mlir`) and in the
/// LLVM dialect (`llvm`); for NVIDIA (`gpu`) as translated, in the NVVM dialect (`nvvm`) and as PTX (`ptx`). What
/// `loglinear compile --mlir cpu|gpu --dump-ir after-all` prints.
///
/// # Errors
/// [`MlirError`] from translation, verification or lowering.
pub fn dump_stages(p: &Program, gpu: bool) -> Result<Vec<(&'static str, String)>, MlirError> {
    if gpu {
        let m = compile_ptx(p)?;
        Ok(vec![("mlir", m.mlir), ("nvvm", m.nvvm), ("ptx", m.ptx)])
    } else {
        let c = crate::CpuProgram::compile_whole(p)?;
        Ok(vec![("mlir", c.mlir_text.clone()), ("llvm", c.llvm_text.clone())])
    }
}

/// [`PtxCompiler`] through MLIR ([`compile_ptx`]): what the `cuda` backend uses when built with the `mlir`
/// feature (and `loglinear emit --target ptx`).
#[derive(Clone, Copy, Debug, Default)]
pub struct MlirPtx;

impl PtxCompiler for MlirPtx {
    fn ptx(&self, p: &Program) -> Result<String, String> {
        compile_ptx(p).map(|m| m.ptx).map_err(|e| e.to_string())
    }
}
