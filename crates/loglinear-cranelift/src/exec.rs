//! Execution of a translated program: buffers from the [`SizeEnv`], kernels in order, each kernel's grid split
//! over worker threads (`std::thread::scope`).
//!
//! Grid programs of one kernel write disjoint regions (the verifier requires every store to index every grid
//! variable), so workers share the buffers without locks; kernels run one after the other, each seeing all writes
//! of the previous ones (the scope joins its threads).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use loglinear_ir::{HostTensor, TensorMap};
use loglinear_schedule::kernel::{BufKind, Cond, Dim, IExpr, Index, Kernel, Op, Program, Stmt, Sym, VarId};
use loglinear_schedule::verify::dim_value;
use loglinear_schedule::SizeEnv;

use crate::error::JitError;
use crate::jit::JitModule;
use crate::translate::{sym_slot, translate_kernel, KernelCode, Specialisation, ALL_SYMS, NUM_SYMS};

/// Flushes subnormal f32 results and operands to zero (x86-64 MXCSR FTZ + DAZ) on the current thread while
/// alive, restoring the previous mode on drop. States of upper Fenwick levels only decay for long stretches and
/// would otherwise sink into the subnormal range, where x86 arithmetic is up to ~100× slower; the values flushed
/// are below 1.2e-38, far under the f32 tolerance of any output.
struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushDenormals {
    #[allow(deprecated)] // _mm_getcsr / _mm_setcsr: the portable way to reach MXCSR on stable Rust
    fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: reading and writing MXCSR only changes this thread's SSE rounding / flushing mode; bits
            // 15 (FTZ) and 6 (DAZ) exist on every x86-64 CPU with SSE2 (all of them).
            let saved = unsafe { std::arch::x86_64::_mm_getcsr() };
            unsafe { std::arch::x86_64::_mm_setcsr(saved | 0x8040) };
            FlushDenormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {}
    }
}

impl Drop for FlushDenormals {
    #[allow(deprecated)]
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: restores the mode saved by `new` on this same thread.
        unsafe {
            std::arch::x86_64::_mm_setcsr(self.saved)
        };
    }
}

/// A kernel-IR program with every kernel translated and compiled for one [`Specialisation`].
#[derive(Debug)]
pub struct CompiledProgram {
    program: Program,
    spec: Specialisation,
    kernels: Vec<KernelCode>,
    /// Per buffer: whether a run must zero it first ([`needs_zeroing`]).
    zero: Vec<bool>,
    /// Buffers of the last run, reused by the next run of the same sizes (saves allocation and page faults).
    pool: Mutex<Option<Pooled>>,
}

/// Buffers of a finished run with their shapes.
type Pooled = (Vec<Vec<usize>>, Vec<Vec<f32>>);
/// Where an input buffer's values come from: the input's name, its tensor and the buffer's shape.
type InputSrc<'a> = Option<(&'a str, &'a HostTensor, &'a [usize])>;
/// A piece of a buffer to fill: the destination, its first element's index in the buffer, its source.
type Piece<'a> = (&'a mut [f32], usize, Option<(&'a HostTensor, &'a [usize])>);

/// Raw buffer pointers shared by the workers of one kernel.
#[derive(Clone, Copy)]
struct Shared {
    bufs: *const *mut f32,
    sizes: *const i64,
}

// SAFETY: the pointers stay valid for the whole `thread::scope`; workers write disjoint regions (kernel-IR
// invariant 4), and reads of other kernels' results happen after the scope that wrote them has joined.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl CompiledProgram {
    /// Translates and compiles every kernel of `program` for `spec`.
    ///
    /// # Errors
    /// The translator's or Cranelift's error for the first kernel that fails.
    pub fn compile(jit: &JitModule, program: &Program, spec: Specialisation) -> Result<Self, JitError> {
        let kernels =
            (0..program.kernels.len()).map(|ki| translate_kernel(jit, program, ki, spec)).collect::<Result<_, _>>()?;
        let zero = needs_zeroing(program);
        Ok(CompiledProgram { program: program.clone(), spec, kernels, zero, pool: Mutex::new(None) })
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

    /// Runs the program on `inputs` (already checked with `loglinear_ir::check_inputs`) with sizes `env`, on up to
    /// `threads` worker threads; returns the output buffer as an f64 tensor.
    ///
    /// # Errors
    /// [`JitError::InvalidArgument`] when `env` does not match the specialisation or an input is missing or has
    /// the wrong number of elements.
    pub fn run(&self, inputs: &TensorMap, env: &SizeEnv, threads: usize) -> Result<HostTensor, JitError> {
        let s = self.spec;
        if (env.k, env.v, env.c, env.l) != (s.k, s.v, s.c, s.l) {
            return Err(JitError::InvalidArgument(format!(
                "sizes {env} do not match the compiled specialisation K={} V={} C={} L={}",
                s.k, s.v, s.c, s.l
            )));
        }
        let t_start = std::time::Instant::now();
        let mut sizes = [0i64; NUM_SYMS];
        for sym in ALL_SYMS {
            sizes[sym_slot(sym)] = env.get(sym) as i64;
        }
        let shapes: Vec<Vec<usize>> =
            self.program.buffers.iter().map(|b| b.shape.iter().map(|d| dim_value(*d, env)).collect()).collect();
        let threads = threads.max(1);
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut data: Vec<Vec<f32>> = match pooled {
            Some((sh, d)) if sh == shapes => d,
            _ => shapes.iter().map(|s| vec![0.0f32; s.iter().product()]).collect(),
        };
        // Inputs converted f64 → f32; every other buffer zeroed (as the kernel IR's semantics start them) unless
        // it is entirely overwritten before anything reads it; spread over the workers.
        let mut jobs: Vec<(&mut [f32], InputSrc)> = Vec::new();
        for (((buf, shape), d), zero) in self.program.buffers.iter().zip(&shapes).zip(data.iter_mut()).zip(&self.zero) {
            match &buf.kind {
                BufKind::Input(name) => {
                    let t = inputs
                        .get(name)
                        .ok_or_else(|| JitError::InvalidArgument(format!("input `{name}` is missing")))?;
                    check_input(name, t, shape)?;
                    jobs.push((d.as_mut_slice(), Some((name.as_str(), t, shape.as_slice()))));
                }
                _ if *zero => jobs.push((d.as_mut_slice(), None)),
                _ => {}
            }
        }
        fill_buffers(jobs, threads);
        let ptrs: Vec<*mut f32> = data.iter_mut().map(|v| v.as_mut_ptr()).collect();
        let scratch_len = self.kernels.iter().map(|k| k.scratch_floats).max().unwrap_or(0) + 4;
        let mut scratches: Vec<Vec<f32>> = (0..threads).map(|_| vec![0.0f32; scratch_len]).collect();
        let shared = Shared { bufs: ptrs.as_ptr(), sizes: sizes.as_ptr() };
        let mut phases = vec![("setup", t_start.elapsed())];
        for (kern, code) in self.program.kernels.iter().zip(&self.kernels) {
            let total: usize = kern.grid.iter().map(|g| dim_value(kern.vars[g.0 as usize].extent, env)).product();
            if total == 0 {
                continue;
            }
            // SAFETY: `code` outlives this call; arguments follow the translator's contract.
            let entry = unsafe { code.entry() };
            let workers = threads.min(total);
            if workers == 1 {
                let _ftz = FlushDenormals::new();
                // SAFETY: buffers sized from `env` as the kernel indexes them (bounds verified by the pipeline);
                // the scratch holds the kernel's tiles.
                unsafe { entry(shared.bufs, shared.sizes, 0, total as i64, scratches[0].as_mut_ptr()) };
                phases.push(("kernel", t_start.elapsed()));
                continue;
            }
            let next = AtomicUsize::new(0);
            let batch = (total / (workers * 8)).max(1);
            std::thread::scope(|scope| {
                for scratch in scratches.iter_mut().take(workers) {
                    let next = &next;
                    let sp = scratch.as_mut_ptr() as usize;
                    scope.spawn(move || {
                        let sh = shared;
                        let _ftz = FlushDenormals::new();
                        loop {
                            let lo = next.fetch_add(batch, Ordering::Relaxed);
                            if lo >= total {
                                break;
                            }
                            let hi = (lo + batch).min(total);
                            // SAFETY: see the single-worker call; grid points of one kernel write disjoint
                            // regions, and each worker has its own scratch.
                            unsafe { entry(sh.bufs, sh.sizes, lo as i64, hi as i64, sp as *mut f32) };
                        }
                    });
                }
            });
            phases.push(("kernel", t_start.elapsed()));
        }
        tracing::debug!(?phases, "cranelift run: elapsed after setup and each kernel");
        let o = self.program.output.0 as usize;
        let out = HostTensor::new(shapes[o].clone(), widen(&data[o], threads));
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = Some((shapes, data));
        Ok(out)
    }
}

/// `src` converted to f64, split over `threads` workers.
fn widen(src: &[f32], threads: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; src.len()];
    let piece = src.len().div_ceil(threads.max(1)).max(1 << 16);
    std::thread::scope(|scope| {
        for (d, s) in out.chunks_mut(piece).zip(src.chunks(piece)) {
            scope.spawn(move || d.iter_mut().zip(s).for_each(|(d, s)| *d = *s as f64));
        }
    });
    out
}

/// For every buffer of `program`: whether a run must zero it before the first kernel. Inputs are converted, not
/// zeroed; states and outputs and scratch buffers start at zero (the kernel IR's semantics) unless a kernel
/// *before* every kernel that loads the buffer stores all of its elements: a store outside any `if` whose
/// indices each cover their whole dimension (`:`, a grid or loop variable ranging over the dimension, or
/// `i*C +: C` blocks with `i < NT` over `T`). Then no element can be read before it is overwritten.
pub fn needs_zeroing(program: &Program) -> Vec<bool> {
    program
        .buffers
        .iter()
        .enumerate()
        .map(|(bi, buf)| {
            if !matches!(buf.kind, BufKind::Output | BufKind::Scratch) {
                return true;
            }
            let loads = |k: &Kernel| {
                let mut found = false;
                loglinear_schedule::kernel::visit(&k.body, &mut |s| {
                    if let Stmt::Assign { op: loglinear_schedule::kernel::Op::Load { buf, .. }, .. } = s {
                        found |= buf.0 as usize == bi;
                    }
                });
                found
            };
            let first_load = program.kernels.iter().position(loads).unwrap_or(program.kernels.len());
            let first_cover = program.kernels.iter().position(|k| covers(k, &k.body, bi, &buf.shape));
            if first_cover.is_some_and(|c| c < first_load) {
                return false;
            }
            // A store under `if bit(x, y)` covering the elements whose coordinates satisfy it, in a kernel before
            // every load, and every load under the same predicate of the element's coordinates: no element is
            // read that was not stored.
            let cond_cover = program
                .kernels
                .iter()
                .enumerate()
                .find_map(|(ki, k)| cond_covers(k, &k.body, bi, &buf.shape).map(|p| (ki, p)));
            match cond_cover {
                Some((ki, pos)) => {
                    !(ki < first_load
                        && program.kernels.iter().all(|k| loads_only_under(&k.body, bi, pos, &mut Vec::new())))
                }
                None => true,
            }
        })
        .collect()
}

/// `bit(x, y)` on two variables.
fn bit_vars(c: &Cond) -> Option<(VarId, VarId)> {
    match c {
        Cond::Bit { x: IExpr::Var(x), bit: IExpr::Var(y) } => Some((*x, *y)),
        _ => None,
    }
}

/// Index positions of `x` and `y` in a store or load of `bi`, each indexed by exactly that variable.
fn positions(index: &[Index], (x, y): (VarId, VarId)) -> Option<(usize, usize)> {
    let at = |v: VarId| index.iter().position(|ix| matches!(ix, Index::At(IExpr::Var(w)) if *w == v));
    let (px, py) = (at(x)?, at(y)?);
    (px != py).then_some((px, py))
}

/// Whether `body` holds, outside any other `if`, an `if bit(x, y)` (two variables) whose `then` branch covers
/// buffer `bi` as [`covers`] does (the store's `x` and `y` ranging over their whole dimensions): every element
/// whose coordinates at positions `(px, py)` satisfy `bit(c[px], c[py])` is stored. Returns `(px, py)`.
fn cond_covers(k: &Kernel, body: &[Stmt], bi: usize, shape: &[Dim]) -> Option<(usize, usize)> {
    body.iter().find_map(|s| match s {
        Stmt::For { body, .. } => cond_covers(k, body, bi, shape),
        Stmt::If { cond, then, .. } => {
            let xy = bit_vars(cond)?;
            if !covers(k, then, bi, shape) {
                return None;
            }
            let mut pos = None;
            loglinear_schedule::kernel::visit(then, &mut |s| {
                if let Stmt::Store { buf, index, .. } = s {
                    if buf.0 as usize == bi && pos.is_none() {
                        pos = positions(index, xy);
                    }
                }
            });
            pos
        }
        _ => None,
    })
}

/// Whether every load of `bi` in `body` is inside the `then` branch of an `if bit(x, y)` whose `x` and `y` index
/// the loaded element at positions `pos` (`conds`: the enclosing `then` conditions).
fn loads_only_under<'a>(body: &'a [Stmt], bi: usize, pos: (usize, usize), conds: &mut Vec<&'a Cond>) -> bool {
    body.iter().all(|s| match s {
        Stmt::Assign { op: Op::Load { buf, index }, .. } if buf.0 as usize == bi => {
            conds.iter().any(|c| bit_vars(c).is_some_and(|xy| positions(index, xy) == Some(pos)))
        }
        Stmt::Assign { .. } | Stmt::Store { .. } => true,
        Stmt::For { body, .. } => loads_only_under(body, bi, pos, conds),
        Stmt::If { cond, then, els } => {
            conds.push(cond);
            let t = loads_only_under(then, bi, pos, conds);
            conds.pop();
            t && loads_only_under(els, bi, pos, conds)
        }
    })
}

/// Whether `body` (of kernel `k`) holds an unconditional store of every element of buffer `bi` (`shape`).
fn covers(k: &Kernel, body: &[Stmt], bi: usize, shape: &[Dim]) -> bool {
    let extent = |v: &VarId| k.vars.get(v.0 as usize).map(|x| x.extent);
    body.iter().any(|s| match s {
        Stmt::For { body, .. } => covers(k, body, bi, shape),
        Stmt::Store { buf, index, .. } if buf.0 as usize == bi && index.len() == shape.len() => {
            index.iter().zip(shape).all(|(ix, d)| match ix {
                Index::Full => true,
                Index::At(IExpr::Var(v)) => extent(v) == Some(*d),
                Index::Block { start: IExpr::Mul(x, y), len: Dim::Sym(Sym::C) } if *d == Dim::Sym(Sym::T) => {
                    match (&**x, &**y) {
                        (IExpr::Var(v), IExpr::Sym(Sym::C)) | (IExpr::Sym(Sym::C), IExpr::Var(v)) => {
                            extent(v) == Some(Dim::Sym(Sym::NT))
                        }
                        _ => false,
                    }
                }
                _ => false,
            })
        }
        _ => false,
    })
}

/// Checks that input `t` fits buffer `shape` (a 4-D input may have more entries in its last dimension: λ with
/// extra levels, of which the first `shape[3]` are used).
fn check_input(name: &str, t: &HostTensor, shape: &[usize]) -> Result<(), JitError> {
    let ok = t.data.len() == t.shape.iter().product::<usize>()
        && t.shape.len() == shape.len()
        && if shape.len() == 4 { t.shape[..3] == shape[..3] && t.shape[3] >= shape[3] } else { t.shape == shape };
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
            pieces.push((p, start, src.map(|(_, t, s)| (t, s))));
            start += n;
        }
    }
    let work = |(p, start, src): Piece| match src {
        None => p.fill(0.0),
        Some((t, shape)) => {
            if shape.len() == 4 && t.shape[3] != shape[3] {
                let (l0, l) = (t.shape[3], shape[3]);
                for (i, x) in p.iter_mut().enumerate() {
                    let e = start + i;
                    *x = t.data[(e / l) * l0 + e % l] as f32;
                }
            } else {
                for (x, y) in p.iter_mut().zip(&t.data[start..]) {
                    *x = *y as f32;
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use loglinear_schedule::{compile, ScheduleOptions};

    #[test]
    fn fully_overwritten_buffers_are_not_zeroed() {
        let v = loglinear_ir::builtins::by_name("loglinear_mamba2").unwrap();
        let p = compile(&v, &ScheduleOptions { chunk_size: Some(16), ..Default::default() }).unwrap().forward;
        let zero = needs_zeroing(&p);
        for (buf, z) in p.buffers.iter().zip(zero) {
            // Inputs are converted; o, qt, cw, dec are each stored in full before they are read, hs wherever it is
            // read (under `bit(i, m)` in both level_scan and level_read).
            assert_eq!(z, matches!(buf.kind, BufKind::Input(_) | BufKind::State), "buffer {}", buf.name);
        }
        // Decode states keep their zero start.
        let d = compile(&v, &ScheduleOptions { chunk_size: Some(16), ..Default::default() }).unwrap().decode;
        let zero = needs_zeroing(&d);
        assert!(d.buffers.iter().zip(zero).all(|(b, z)| z || matches!(b.kind, BufKind::Output)));
    }
}
