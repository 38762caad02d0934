//! Execution of a translated program: buffers from the [`SizeEnv`], kernels in order, each kernel's grid split
//! over worker threads (`std::thread::scope`).
//!
//! Grid programs of one kernel write disjoint regions (the verifier requires every store to index every grid
//! variable), so workers share the buffers without locks; kernels run one after the other, each seeing all writes
//! of the previous ones (the scope joins its threads).

use std::sync::Mutex;

use std::time::Instant;

use loglinear_kernel::analysis::needs_zeroing;
use loglinear_kernel::kernel::{BufKind, Program};
use loglinear_kernel::verify::{check_bounds, dim_value};
use loglinear_kernel::{
    Bindings, CompileStats, DType, Executable, KernelStats, SizeEnv, Specialisation, States, TargetError, Tensor,
    TensorRef,
};

use loglinear_kernel::host::run_grid;

use crate::error::JitError;
use crate::jit::JitModule;
use crate::translate::{sym_slot, translate_kernel, KernelCode, ALL_SYMS, NUM_SYMS};

/// A specialised kernel-IR program with every kernel translated and compiled: the Cranelift [`Executable`].
#[derive(Debug)]
pub struct CompiledProgram {
    program: Program,
    spec: Specialisation,
    storage: DType,
    threads: usize,
    stats: CompileStats,
    kernels: Vec<KernelCode>,
    /// Per buffer: whether a run must zero it first ([`needs_zeroing`]).
    zero: Vec<bool>,
    /// Buffers of the last run, reused by the next run of the same sizes (saves allocation and page faults).
    pool: Mutex<Option<Pooled>>,
}

/// Buffers of a finished run with their shapes.
type Pooled = (Vec<Vec<usize>>, Vec<Vec<f32>>);
/// Where an input buffer's values come from: its tensor and the buffer's shape.
type InputSrc<'a> = Option<(&'a TensorRef<'a>, &'a [usize])>;
/// A piece of a buffer to fill: the destination, its first element's index in the buffer, its source.
type Piece<'a> = (&'a mut [f32], usize, InputSrc<'a>);

impl CompiledProgram {
    /// Translates and compiles every kernel of the specialised `program`; runs store in `storage` (inputs are
    /// converted to f32 on the way in, `o` rounded to `storage` on the way out) on up to `threads` workers.
    ///
    /// # Errors
    /// [`JitError::InvalidArgument`] for a program that is not specialised; the translator's or Cranelift's
    /// error for the first kernel that fails.
    pub fn compile(jit: &JitModule, program: &Program, storage: DType, threads: usize) -> Result<Self, JitError> {
        let spec = program
            .specialised
            .ok_or_else(|| JitError::InvalidArgument(format!("program `{}` is not specialised", program.name)))?;
        let start = Instant::now();
        let mut kernels = Vec::with_capacity(program.kernels.len());
        let mut stats = CompileStats::default();
        for ki in 0..program.kernels.len() {
            let code = translate_kernel(jit, program, ki)?;
            stats.kernels.push(KernelStats {
                name: code.name.clone(),
                time: code.code.compile_time(),
                code_bytes: code.code.code_size() as usize,
            });
            kernels.push(code);
        }
        stats.total = start.elapsed();
        let zero = needs_zeroing(program);
        Ok(CompiledProgram {
            program: program.clone(),
            spec,
            storage,
            threads: threads.max(1),
            stats,
            kernels,
            zero,
            pool: Mutex::new(None),
        })
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The specialisation.
    pub fn spec(&self) -> Specialisation {
        self.spec
    }

    /// The compiled kernels, in execution order.
    pub fn kernels(&self) -> &[KernelCode] {
        &self.kernels
    }

    /// Runs the program on `inputs` (already checked by the runtime) with sizes `env`; returns the output in the
    /// storage type.
    ///
    /// # Errors
    /// [`JitError::InvalidArgument`] when `env` does not match the specialisation, an access would leave a
    /// buffer for these sizes, or an input is missing or has the wrong shape.
    pub fn run_tensor(&self, inputs: &Bindings<'_>, env: &SizeEnv) -> Result<Tensor, JitError> {
        self.run_tensor_states(inputs, env, &mut States::new())
    }

    /// [`CompiledProgram::run_tensor`] with the state buffers bound to `states` (see [`States`]).
    ///
    /// # Errors
    /// As [`CompiledProgram::run_tensor`]; a state of the wrong shape.
    pub fn run_tensor_states(
        &self,
        inputs: &Bindings<'_>,
        env: &SizeEnv,
        states: &mut States,
    ) -> Result<Tensor, JitError> {
        let s = self.spec;
        if (env.k, env.v, env.c) != (s.k, s.v, s.c) {
            return Err(JitError::InvalidArgument(format!(
                "sizes {env} do not match the compiled specialisation K={} V={} C={}",
                s.k, s.v, s.c
            )));
        }
        // The generated code does no bounds checks of its own: check every access for these sizes first.
        check_bounds(&self.program, env).map_err(|e| {
            let msgs: Vec<String> = e.iter().map(|x| x.to_string()).collect();
            JitError::InvalidArgument(format!("kernel IR out of bounds for {env}: {}", msgs.join("; ")))
        })?;
        let threads = self.threads;
        let t_start = std::time::Instant::now();
        let mut sizes = [0i64; NUM_SYMS];
        for sym in ALL_SYMS {
            sizes[sym_slot(sym)] = env.get(sym) as i64;
        }
        let shapes: Vec<Vec<usize>> =
            self.program.buffers.iter().map(|b| b.shape.iter().map(|d| dim_value(*d, env)).collect()).collect();
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut data: Vec<Vec<f32>> = match pooled {
            Some((sh, d)) if sh == shapes => d,
            _ => shapes.iter().map(|s| zeroed_buffer(s.iter().product())).collect(),
        };
        // Inputs converted f64 → f32; every other buffer zeroed (as the kernel IR's semantics start them) unless
        // it is entirely overwritten before anything reads it; spread over the workers.
        // An f32, aligned state of the program's shape is updated in place: its pointer goes to the kernels.
        let mut in_place: Vec<(usize, *mut f32)> = Vec::new();
        for (i, (buf, shape)) in self.program.buffers.iter().zip(&shapes).enumerate() {
            if buf.kind != BufKind::State {
                continue;
            }
            if let Some(t) = states.get_mut(&buf.name) {
                let ptr = t.bytes_mut().as_mut_ptr();
                if t.dtype() == DType::F32 && t.shape() == shape.as_slice() && (ptr as usize).is_multiple_of(4) {
                    in_place.push((i, ptr as *mut f32));
                }
            }
        }
        let state_views: Bindings<'_> = states
            .iter()
            .filter(|(n, _)| !in_place.iter().any(|(i, _)| self.program.buffers[*i].name == **n))
            .map(|(n, t)| (n.clone(), t.view()))
            .collect();
        let mut jobs: Vec<(&mut [f32], InputSrc)> = Vec::new();
        for (((buf, shape), d), zero) in self.program.buffers.iter().zip(&shapes).zip(data.iter_mut()).zip(&self.zero) {
            match &buf.kind {
                BufKind::State if state_views.contains_key(&buf.name) => {
                    let t = &state_views[&buf.name];
                    check_input(&buf.name, t, shape)?;
                    jobs.push((d.as_mut_slice(), Some((t, shape.as_slice()))));
                }
                BufKind::State if in_place.iter().any(|(i, _)| self.program.buffers[*i].name == buf.name) => {}
                BufKind::State => jobs.push((d.as_mut_slice(), None)),
                BufKind::Input(name) => {
                    let t = inputs
                        .get(name)
                        .ok_or_else(|| JitError::InvalidArgument(format!("input `{name}` is missing")))?;
                    check_input(name, t, shape)?;
                    // An aligned f32 input is read in place (e.g. straight from the memory-mapped file): its
                    // buffer stays untouched (calloc'd pages cost no memory) and the kernels get its pointer.
                    if !zero_copy(t) {
                        jobs.push((d.as_mut_slice(), Some((t, shape.as_slice()))));
                    }
                }
                _ if *zero => jobs.push((d.as_mut_slice(), None)),
                _ => {}
            }
        }
        fill_buffers(jobs, threads);
        let mut ptrs: Vec<*mut f32> = data.iter_mut().map(|v| v.as_mut_ptr()).collect();
        for (i, buf) in self.program.buffers.iter().enumerate() {
            if let BufKind::Input(name) = &buf.kind {
                if let Some(t) = inputs.get(name).filter(|t| zero_copy(t)) {
                    // The kernels never store to an input buffer (the verifier rejects it): read-only use.
                    ptrs[i] = t.bytes.as_ptr() as *mut f32;
                }
            }
        }
        for (i, p) in &in_place {
            ptrs[*i] = *p;
        }
        let scratch_len = self.kernels.iter().map(|k| k.scratch_floats).max().unwrap_or(0) + 4;
        let mut scratches: Vec<Vec<f32>> = (0..threads).map(|_| vec![0.0f32; scratch_len]).collect();
        let mut phases = vec![("setup", t_start.elapsed())];
        for (kern, code) in self.program.kernels.iter().zip(&self.kernels) {
            let total: usize = kern.grid.iter().map(|g| dim_value(kern.vars[g.0 as usize].extent, env)).product();
            if total == 0 {
                continue;
            }
            // SAFETY: `code` outlives this call; arguments follow the translator's contract.
            let entry = unsafe { code.entry() };
            // SAFETY: buffers sized from `env` as the kernel indexes them (bounds verified by the pipeline); each
            // scratch holds the kernel's tiles; grid points of one kernel write disjoint regions.
            unsafe { run_grid(entry, ptrs.as_ptr(), sizes.as_ptr(), total, code.scratch_floats, &mut scratches) };
            phases.push(("kernel", t_start.elapsed()));
        }
        tracing::debug!(?phases, "cranelift run: elapsed after setup and each kernel");
        let o = self.program.output.0 as usize;
        let out = narrow(shapes[o].clone(), &data[o], self.storage, threads);
        drop(state_views);
        for (i, b) in self.program.buffers.iter().enumerate() {
            if b.kind == BufKind::State && !in_place.iter().any(|(j, _)| *j == i) {
                states.insert(b.name.clone(), Tensor::from_f32(shapes[i].clone(), &data[i]));
            }
        }
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = Some((shapes, data));
        Ok(out)
    }
}

/// Whether input `t` can be handed to the kernels in place: f32, 4-byte aligned.
fn zero_copy(t: &TensorRef<'_>) -> bool {
    t.dtype == DType::F32 && (t.bytes.as_ptr() as usize).is_multiple_of(4)
}

fn check_input(name: &str, t: &TensorRef<'_>, shape: &[usize]) -> Result<(), JitError> {
    let ok = t.shape == shape;
    if ok {
        Ok(())
    } else {
        Err(JitError::InvalidArgument(format!("input `{name}` has shape {:?}, the program expects {shape:?}", t.shape)))
    }
}

/// Converts (inputs) or zeroes (the rest) every buffer, split into pieces spread over `threads` workers.
fn fill_buffers(jobs: Vec<(&mut [f32], InputSrc)>, threads: usize) {
    const PIECE: usize = 1 << 18;
    // (destination piece, first element index within the buffer, source)
    let mut pieces: Vec<Piece> = Vec::new();
    for (d, src) in jobs {
        let mut start = 0;
        for p in d.chunks_mut(PIECE) {
            let n = p.len();
            pieces.push((p, start, src));
            start += n;
        }
    }
    let work = |(p, start, src): Piece| match src {
        None => p.fill(0.0),
        Some((t, _)) => t.read_f32_into(start, p),
    };
    if threads <= 1 || pieces.len() <= 1 {
        pieces.into_iter().for_each(work);
        return;
    }
    let queue = Mutex::new(pieces);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                match next {
                    Some(p) => work(p),
                    None => break,
                }
            });
        }
    });
}

impl Executable for CompiledProgram {
    fn program(&self) -> &Program {
        &self.program
    }

    fn stats(&self) -> &CompileStats {
        &self.stats
    }

    fn run_with_states(
        &self,
        sizes: &SizeEnv,
        inputs: &Bindings<'_>,
        states: &mut States,
    ) -> Result<Tensor, TargetError> {
        self.run_tensor_states(inputs, sizes, states)
            .map_err(|e| TargetError::Failed { target: "cranelift".into(), message: e.to_string() })
    }
}

/// A zero-filled buffer of `n` floats. Large ones come straight from the kernel's zero pages (`calloc`) and are
/// marked for transparent huge pages before anything touches them: a run's first touch of its buffers (hundreds
/// of MB at T = 16384) then takes 2 MiB faults instead of 4 KiB ones — 512× fewer page faults, which dominate a
/// fresh process's first call otherwise.
fn zeroed_buffer(n: usize) -> Vec<f32> {
    let v = vec![0.0f32; n];
    #[cfg(target_os = "linux")]
    if n * 4 >= 4 << 20 {
        let (start, end) = (v.as_ptr() as usize, v.as_ptr() as usize + n * 4);
        let page = 4096;
        let a = start.div_ceil(page) * page;
        if end > a {
            // SAFETY: advice on pages of an allocation this function owns; it changes no contents.
            unsafe { libc::madvise(a as *mut libc::c_void, end - a, libc::MADV_HUGEPAGE) };
        }
    }
    v
}

/// The f32 output as a tensor of `dtype`, converted on up to `threads` threads.
fn narrow(shape: Vec<usize>, src: &[f32], dtype: DType, threads: usize) -> Tensor {
    if dtype == DType::F32 {
        return Tensor::from_f32(shape, src);
    }
    let piece = src.len().div_ceil(threads.max(1)).max(1 << 16);
    let parts: Vec<Tensor> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            src.chunks(piece).map(|s| scope.spawn(move || Tensor::from_f32_as(dtype, vec![s.len()], s))).collect();
        handles.into_iter().map(|h| h.join().expect("conversion thread")).collect()
    });
    let mut bytes = Vec::with_capacity(src.len() * dtype.size());
    parts.iter().for_each(|p| bytes.extend_from_slice(p.bytes()));
    Tensor::from_bytes(dtype, shape, bytes).expect("bytes fill the shape")
}
