//! A translated program JIT-compiled and run on the host (one thread for now; the shared host executor with the
//! Cranelift backend's threading, in-place inputs and states comes with the `mlir-cpu` target).

use loglinear_kernel::kernel::{BufKind, Program};
use loglinear_kernel::verify::{check_bounds, dim_value};
use loglinear_kernel::{Bindings, SizeEnv, Tensor};

use crate::cpu::{translate_program, CpuKernel, SIZE_ORDER};
use crate::lower::{run_pipeline, CPU_TO_LLVM};
use crate::{Jit, MlirContext, MlirError};

/// The entry point of a translated kernel (see [`crate::cpu`]).
type KernelFn = unsafe extern "C" fn(*const *mut f32, *const i64, i64, i64, *mut f32);

/// A specialised, decomposed program compiled through MLIR for this CPU.
pub struct CpuProgram {
    program: Program,
    kernels: Vec<(CpuKernel, KernelFn)>,
    /// The LLVM-dialect module as text (for dumps).
    pub llvm_text: String,
    _jit: Jit,
    _ctx: MlirContext,
}

impl CpuProgram {
    /// Translates, lowers and JIT-compiles `p` at `-O3`.
    ///
    /// # Errors
    /// [`MlirError`] from translation, lowering or the JIT.
    pub fn compile(p: &Program) -> Result<Self, MlirError> {
        let ctx = MlirContext::new();
        let loc = melior::ir::Location::unknown(ctx.get());
        let mut module = melior::ir::Module::new(loc);
        let kernels = translate_program(&ctx, &module, p)?;
        run_pipeline(&ctx, &mut module, CPU_TO_LLVM)?;
        let llvm_text = module.as_operation().to_string();
        let jit = Jit::new(&module, 3);
        let mut entries = Vec::with_capacity(kernels.len());
        for k in kernels {
            let f = jit.lookup(&k.symbol)?;
            // SAFETY: `f` is the JIT-compiled function of `k`, whose signature is `KernelFn` (see `cpu`).
            let f: KernelFn = unsafe { std::mem::transmute::<*mut (), KernelFn>(f) };
            entries.push((k, f));
        }
        Ok(CpuProgram { program: p.clone(), kernels: entries, llvm_text, _jit: jit, _ctx: ctx })
    }

    /// Runs the program for sizes `env` on `inputs` (any float dtype) and returns the output in f32.
    ///
    /// # Errors
    /// [`MlirError::Codegen`] for a missing or mis-shaped input or an access out of bounds for these sizes.
    pub fn run(&self, env: &SizeEnv, inputs: &Bindings<'_>) -> Result<Tensor, MlirError> {
        check_bounds(&self.program, env)
            .map_err(|e| MlirError::Codegen(format!("kernel IR out of bounds for {env}: {} errors", e.len())))?;
        let shapes: Vec<Vec<usize>> =
            self.program.buffers.iter().map(|b| b.shape.iter().map(|d| dim_value(*d, env)).collect()).collect();
        let mut data: Vec<Vec<f32>> = shapes.iter().map(|s| vec![0f32; s.iter().product::<usize>().max(1)]).collect();
        for (i, b) in self.program.buffers.iter().enumerate() {
            if let BufKind::Input(name) = &b.kind {
                let t = inputs.get(name).ok_or_else(|| MlirError::Codegen(format!("input `{name}` is missing")))?;
                if t.shape != shapes[i].as_slice() {
                    return Err(MlirError::Codegen(format!(
                        "input `{name}` has shape {:?}; the program reads {:?}",
                        t.shape, shapes[i]
                    )));
                }
                t.read_f32_into(0, &mut data[i][..t.numel()]);
            }
        }
        let sizes: Vec<i64> = SIZE_ORDER.iter().map(|s| env.get(*s) as i64).collect();
        let ptrs: Vec<*mut f32> = data.iter_mut().map(|v| v.as_mut_ptr()).collect();
        let scratch_len = self.kernels.iter().map(|(k, _)| k.scratch_floats).max().unwrap_or(0) + 1;
        let mut scratch = vec![0f32; scratch_len];
        for (kern, (_, f)) in self.program.kernels.iter().zip(&self.kernels) {
            let total: usize = kern.grid.iter().map(|g| dim_value(kern.vars[g.0 as usize].extent, env)).product();
            // SAFETY: buffers sized from `env` as the kernels index them (bounds checked above); the scratch
            // holds every tile of the kernel.
            unsafe { f(ptrs.as_ptr(), sizes.as_ptr(), 0, total as i64, scratch.as_mut_ptr()) };
        }
        let o = self.program.output.0 as usize;
        let n: usize = shapes[o].iter().product();
        Ok(Tensor::from_f32(shapes[o].clone(), &data[o][..n]))
    }
}
