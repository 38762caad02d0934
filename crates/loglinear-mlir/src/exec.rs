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
    /// The module as translated, before lowering (for dumps; [`CpuProgram::compile_whole`] only, else empty).
    pub mlir_text: String,
    /// The LLVM-dialect module as text (for dumps; [`CpuProgram::compile_whole`] only, else empty).
    pub llvm_text: String,
    /// Time to translate each kernel.
    pub translate_times: Vec<Duration>,
    /// Time LLVM took to optimise and generate the code (the longest part's, when compiled in parts at once).
    pub jit_time: Duration,
    /// Each part's JIT and context, kept alive while the kernels may run (the JIT dropped first).
    _parts: Vec<(Jit, MlirContext)>,
}

/// Some kernels of a program compiled on their own: an MLIR context, the module's JIT and the kernels' entries.
struct Part {
    entries: Vec<(usize, CpuKernel, KernelFn)>,
    translate_times: Vec<(usize, Duration)>,
    /// The module as translated and in the LLVM dialect (when asked for).
    texts: Option<(String, String)>,
    llvm_time: Duration,
    // Dropped in this order: the JIT (and its code) before the context its module lived in.
    jit: Jit,
    ctx: MlirContext,
}

// SAFETY: an MLIR context and an ExecutionEngine have no thread affinity; a part is built on one thread and then
// only moved (never shared) until `CpuProgram` owns it, whose kernels only call the compiled code.
unsafe impl Send for Part {}

/// Translates kernels `indices` of `p` into one module, lowers it and JIT-compiles it at `-O3` (LLVM generates the
/// code at the lookups, on this thread).
fn compile_part(p: &Program, indices: &[usize], texts: bool) -> Result<Part, MlirError> {
    let t0 = Instant::now();
    let ctx = MlirContext::new();
    let ctx_time = t0.elapsed();
    let mut module = melior::ir::Module::new(melior::ir::Location::unknown(ctx.get()));
    let mut kernels = Vec::with_capacity(indices.len());
    let mut translate_times = Vec::with_capacity(indices.len());
    for &i in indices {
        let k = &p.kernels[i];
        let t = Instant::now();
        kernels.push((i, crate::translate::translate_kernel(&ctx, &module, p, k, &format!("k{i}_{}", k.name))?));
        translate_times.push((i, t.elapsed()));
    }
    let mlir_text = texts.then(|| module.as_operation().to_string());
    let t = Instant::now();
    run_pipeline(&ctx, &mut module, CPU_TO_LLVM)?;
    let lowered = t.elapsed();
    let llvm_text = texts.then(|| module.as_operation().to_string());
    let t = Instant::now();
    let jit = Jit::new(&module, 3);
    let mut entries = Vec::with_capacity(kernels.len());
    for (i, k) in kernels {
        let f = jit.lookup(&k.symbol)?;
        // SAFETY: `f` is the JIT-compiled function of `k`, whose signature is `KernelFn` (see `cpu`).
        let f: KernelFn = unsafe { std::mem::transmute::<*mut (), KernelFn>(f) };
        entries.push((i, k, f));
    }
    let llvm_time = t.elapsed();
    // Where a first call's compile goes (LLVM's -O3 optimisation and code generation, which ORC runs at the first
    // lookup, dominate: BENCHMARKS.md "Autotuning" U4).
    tracing::debug!(
        program = %p.name,
        kernels = ?indices,
        context_ms = ctx_time.as_secs_f64() * 1e3,
        translate_ms = translate_times.iter().map(|d| d.1.as_secs_f64()).sum::<f64>() * 1e3,
        lower_ms = lowered.as_secs_f64() * 1e3,
        llvm_ms = llvm_time.as_secs_f64() * 1e3,
        "mlir-cpu compile"
    );
    Ok(Part { entries, translate_times, texts: mlir_text.zip(llvm_text), llvm_time, jit, ctx })
}

/// Splits kernels `0..weights.len()` into at most `parts` groups of similar total weight (longest first, each to
/// the lightest group), every group non-empty.
fn partition(weights: &[usize], parts: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(weights[i]));
    let mut groups: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new()); parts.clamp(1, weights.len().max(1))];
    for i in order {
        let g = groups.iter_mut().min_by_key(|g| g.0).expect("at least one group");
        g.0 += weights[i];
        g.1.push(i);
    }
    let mut out: Vec<Vec<usize>> = groups.into_iter().map(|g| g.1).filter(|g| !g.is_empty()).collect();
    for g in &mut out {
        g.sort_unstable();
    }
    out
}

impl CpuProgram {
    /// Translates, lowers and JIT-compiles `p` at `-O3`: its kernels in up to one module per core, compiled on
    /// as many threads (LLVM's optimisation and code generation dominate a first call: BENCHMARKS.md U4). The
    /// texts ([`CpuProgram::mlir_text`], [`CpuProgram::llvm_text`]) stay empty; [`CpuProgram::compile_whole`] keeps them.
    ///
    /// # Errors
    /// [`MlirError`] from translation, lowering or the JIT.
    pub fn compile(p: &Program) -> Result<Self, MlirError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let parallel = cfg!(target_arch = "x86_64") && cores > 1 && p.kernels.len() > 1;
        if !parallel {
            return Self::assemble(p, vec![compile_part(p, &(0..p.kernels.len()).collect::<Vec<_>>(), false)?]);
        }
        crate::object::init_native_target();
        // Weight of a kernel's compile: its statements, loops and branches included.
        let weights: Vec<usize> = p
            .kernels
            .iter()
            .map(|k| {
                let mut n = 0;
                loglinear_kernel::kernel::visit(&k.body, &mut |_| n += 1);
                n
            })
            .collect();
        let groups = partition(&weights, cores);
        let results: Vec<Result<Part, MlirError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = groups[1..].iter().map(|g| scope.spawn(move || compile_part(p, g, false))).collect();
            let mut results = vec![compile_part(p, &groups[0], false)];
            for h in handles {
                results.push(h.join().unwrap_or_else(|_| Err(MlirError::Jit("a compile thread panicked".into()))));
            }
            results
        });
        Self::assemble(p, results.into_iter().collect::<Result<Vec<_>, _>>()?)
    }

    /// [`CpuProgram::compile`] as one module on this thread, keeping the module's texts (for dumps).
    ///
    /// # Errors
    /// As [`CpuProgram::compile`].
    pub fn compile_whole(p: &Program) -> Result<Self, MlirError> {
        Self::assemble(p, vec![compile_part(p, &(0..p.kernels.len()).collect::<Vec<_>>(), true)?])
    }

    fn assemble(p: &Program, parts: Vec<Part>) -> Result<Self, MlirError> {
        let mut entries: Vec<(usize, CpuKernel, KernelFn)> = Vec::with_capacity(p.kernels.len());
        let mut translate_times = vec![Duration::ZERO; p.kernels.len()];
        let mut jit_time = Duration::ZERO;
        let mut texts = (String::new(), String::new());
        let mut held = Vec::with_capacity(parts.len());
        for part in parts {
            let Part { entries: e, translate_times: t, texts: x, llvm_time, jit, ctx } = part;
            entries.extend(e);
            for (i, d) in t {
                translate_times[i] = d;
            }
            jit_time = jit_time.max(llvm_time);
            if let Some((m, l)) = x {
                texts.0.push_str(&m);
                texts.1.push_str(&l);
            }
            held.push((jit, ctx));
        }
        entries.sort_by_key(|e| e.0);
        if entries.len() != p.kernels.len() {
            return Err(MlirError::Jit(format!("{} of {} kernels compiled", entries.len(), p.kernels.len())));
        }
        Ok(CpuProgram {
            program: p.clone(),
            zero: needs_zeroing(p),
            pool: Mutex::new(None),
            kernels: entries.into_iter().map(|(_, k, f)| (k, f)).collect(),
            mlir_text: texts.0,
            llvm_text: texts.1,
            translate_times,
            jit_time,
            _parts: held,
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

#[cfg(test)]
mod partition_tests {
    use super::partition;

    #[test]
    fn kernels_are_split_into_balanced_non_empty_groups() {
        // The heavy chunk kernel alone, the three light ones together (what LL-GDN's four kernels look like).
        assert_eq!(partition(&[90, 10, 20, 30], 2), vec![vec![0], vec![1, 2, 3]]);
        assert_eq!(partition(&[5, 5, 5, 5], 2), vec![vec![0, 2], vec![1, 3]]);
        // More cores than kernels: one kernel each; one core: all together; every kernel exactly once.
        assert_eq!(partition(&[1, 2, 3], 8), vec![vec![2], vec![1], vec![0]]);
        assert_eq!(partition(&[1, 2, 3], 1), vec![vec![0, 1, 2]]);
        assert_eq!(partition(&[], 4), Vec::<Vec<usize>>::new());
    }
}
