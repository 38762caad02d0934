//! A translated program JIT-compiled and run on the host: buffers in f32 (inputs converted), states bound, each
//! kernel's grid split over worker threads with a scratch each, the output in the storage type.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use loglinear_kernel::analysis::needs_zeroing;
use loglinear_kernel::host::{run_grid, KernelEntry};
use loglinear_kernel::kernel::{BufKind, Program};
use loglinear_kernel::verify::{check_bounds, dim_value};
use loglinear_kernel::{Bindings, DType, SizeEnv, States, Tensor};

use crate::lower::{run_pipeline, CPU_TO_LLVM};
use crate::translate::{CpuKernel, SIZE_ORDER};
use crate::{Jit, MlirContext, MlirError};

/// The entry point of a translated kernel (see [`crate::translate`]): the host ABI shared with Cranelift.
type KernelFn = KernelEntry;

/// A specialised, decomposed program compiled through MLIR for this CPU.
pub struct CpuProgram {
    program: Program,
    /// Per buffer: whether a run must zero it first ([`needs_zeroing`]).
    zero: Vec<bool>,
    /// Buffers of the last run, reused by the next run of the same sizes.
    pool: Mutex<Option<(Vec<Vec<usize>>, Vec<Vec<f32>>)>>,
    kernels: Vec<(CpuKernel, KernelFn)>,
    /// The module as translated, before lowering (for dumps).
    pub mlir_text: String,
    /// The LLVM-dialect module as text (for dumps).
    pub llvm_text: String,
    /// Time to translate each kernel.
    pub translate_times: Vec<Duration>,
    /// Time to lower the module and JIT-compile it.
    pub jit_time: Duration,
    _jit: Jit,
    _ctx: MlirContext,
}

impl CpuProgram {
    /// Translates, lowers and JIT-compiles `p` at `-O3`.
    ///
    /// # Errors
    /// [`MlirError`] from translation, lowering or the JIT.
    pub fn compile(p: &Program) -> Result<Self, MlirError> {
        let t0 = Instant::now();
        let ctx = MlirContext::new();
        let ctx_time = t0.elapsed();
        let loc = melior::ir::Location::unknown(ctx.get());
        let mut module = melior::ir::Module::new(loc);
        let mut kernels = Vec::with_capacity(p.kernels.len());
        let mut translate_times = Vec::with_capacity(p.kernels.len());
        for (i, k) in p.kernels.iter().enumerate() {
            let t = Instant::now();
            kernels.push(crate::translate::translate_kernel(&ctx, &module, p, k, &format!("k{i}_{}", k.name))?);
            translate_times.push(t.elapsed());
        }
        let tp = Instant::now();
        let mlir_text = module.as_operation().to_string();
        let mut print_time = tp.elapsed();
        let t = Instant::now();
        run_pipeline(&ctx, &mut module, CPU_TO_LLVM)?;
        let lowered = t.elapsed();
        let tp = Instant::now();
        let llvm_text = module.as_operation().to_string();
        print_time += tp.elapsed();
        let t = Instant::now();
        let jit = Jit::new(&module, 3);
        let mut entries = Vec::with_capacity(kernels.len());
        for k in kernels {
            let f = jit.lookup(&k.symbol)?;
            // SAFETY: `f` is the JIT-compiled function of `k`, whose signature is `KernelFn` (see `cpu`).
            let f: KernelFn = unsafe { std::mem::transmute::<*mut (), KernelFn>(f) };
            entries.push((k, f));
        }
        let jit_time = t.elapsed();
        // Where a first call's compile goes (LLVM's -O3 optimisation and code generation, which ORC runs at the
        // first lookup, dominate: BENCHMARKS.md "Autotuning" U4).
        tracing::debug!(
            program = %p.name,
            context_ms = ctx_time.as_secs_f64() * 1e3,
            translate_ms = translate_times.iter().map(|d| d.as_secs_f64()).sum::<f64>() * 1e3,
            print_ms = print_time.as_secs_f64() * 1e3,
            lower_ms = lowered.as_secs_f64() * 1e3,
            llvm_ms = jit_time.as_secs_f64() * 1e3,
            "mlir-cpu compile"
        );
        Ok(CpuProgram {
            program: p.clone(),
            zero: needs_zeroing(p),
            pool: Mutex::new(None),
            kernels: entries,
            mlir_text,
            llvm_text,
            translate_times,
            jit_time,
            _jit: jit,
            _ctx: ctx,
        })
    }

    /// The program it runs.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Runs the program for sizes `env` on `inputs` (any float dtype) with no bound states; returns the output in
    /// f32.
    ///
    /// # Errors
    /// As [`CpuProgram::run_with_states`].
    pub fn run(&self, env: &SizeEnv, inputs: &Bindings<'_>) -> Result<Tensor, MlirError> {
        self.run_with_states(env, inputs, &mut States::new(), DType::F32, 1)
    }

    /// Runs the program for sizes `env` on `inputs` (any float dtype) with its state buffers bound to `states`
    /// (read, then overwritten with the final contents in f32) on `threads` workers; returns the output in
    /// `storage`.
    ///
    /// # Errors
    /// [`MlirError::Codegen`] for a missing or mis-shaped input or state, or an access out of bounds for these
    /// sizes.
    pub fn run_with_states(
        &self,
        env: &SizeEnv,
        inputs: &Bindings<'_>,
        states: &mut States,
        storage: DType,
        threads: usize,
    ) -> Result<Tensor, MlirError> {
        check_bounds(&self.program, env)
            .map_err(|e| MlirError::Codegen(format!("kernel IR out of bounds for {env}: {} errors", e.len())))?;
        let shapes: Vec<Vec<usize>> =
            self.program.buffers.iter().map(|b| b.shape.iter().map(|d| dim_value(*d, env)).collect()).collect();
        // Buffers of the previous run of these sizes are reused: only those a kernel may read before writing
        // are zeroed again (inputs and bound states are overwritten below).
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut data: Vec<Vec<f32>> = match pooled {
            Some((sh, mut d)) if sh == shapes => {
                for (i, v) in d.iter_mut().enumerate() {
                    let b = &self.program.buffers[i];
                    if self.zero[i] || b.kind == BufKind::State || i == self.program.output.0 as usize {
                        v.fill(0.0);
                    }
                }
                d
            }
            _ => shapes.iter().map(|s| vec![0f32; s.iter().product::<usize>().max(1)]).collect(),
        };
        for (i, b) in self.program.buffers.iter().enumerate() {
            let t = match &b.kind {
                BufKind::Input(name) => {
                    Some(*inputs.get(name).ok_or_else(|| MlirError::Codegen(format!("input `{name}` is missing")))?)
                }
                BufKind::State => states.get(&b.name).map(|t| t.view()),
                _ => None,
            };
            if let Some(t) = t {
                if t.shape != shapes[i].as_slice() {
                    return Err(MlirError::Codegen(format!(
                        "`{}` has shape {:?}; the program holds {:?}",
                        b.name, t.shape, shapes[i]
                    )));
                }
                t.read_f32_into(0, &mut data[i][..t.numel()]);
            }
        }
        let sizes: Vec<i64> = SIZE_ORDER.iter().map(|s| env.get(*s) as i64).collect();
        let ptrs: Vec<*mut f32> = data.iter_mut().map(|v| v.as_mut_ptr()).collect();
        let scratch_len = self.kernels.iter().map(|(k, _)| k.scratch_floats).max().unwrap_or(0) + 1;
        let threads = threads.max(1);
        let mut scratches: Vec<Vec<f32>> = (0..threads).map(|_| vec![0f32; scratch_len]).collect();
        for (kern, (code, f)) in self.program.kernels.iter().zip(&self.kernels) {
            let total: usize = kern.grid.iter().map(|g| dim_value(kern.vars[g.0 as usize].extent, env)).product();
            if total == 0 {
                continue;
            }
            let _t = KernelTimer { name: &kern.name, programs: total, start: Instant::now() };
            // SAFETY: buffers sized from `env` as the kernels index them (bounds checked above); each scratch
            // holds the kernel's tiles; grid programs of one kernel write disjoint regions (verified).
            unsafe { run_grid(*f, ptrs.as_ptr(), sizes.as_ptr(), total, code.scratch_floats, &mut scratches) };
        }
        for (i, b) in self.program.buffers.iter().enumerate() {
            if b.kind == BufKind::State {
                let n: usize = shapes[i].iter().product();
                states.insert(b.name.clone(), Tensor::from_f32(shapes[i].clone(), &data[i][..n]));
            }
        }
        let o = self.program.output.0 as usize;
        let n: usize = shapes[o].iter().product();
        let out = Tensor::from_f32_as(storage, shapes[o].clone(), &data[o][..n]);
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = Some((shapes, data));
        Ok(out)
    }
}

/// Logs a kernel's wall time (debug level) when dropped.
struct KernelTimer<'a> {
    name: &'a str,
    programs: usize,
    start: Instant,
}

impl Drop for KernelTimer<'_> {
    fn drop(&mut self) {
        tracing::debug!(
            kernel = self.name,
            programs = self.programs,
            ms = self.start.elapsed().as_secs_f64() * 1e3,
            "mlir-cpu kernel"
        );
    }
}
