//! Support shared by the targets that run JIT-compiled kernels on the host CPU.

/// Flushes subnormal f32 results and operands to zero (x86-64 MXCSR FTZ + DAZ) on the current thread while
/// alive, restoring the previous mode on drop. States of upper Fenwick levels only decay for long stretches and
/// would otherwise sink into the subnormal range, where x86 arithmetic is up to ~100× slower; the values flushed
/// are below 1.2e-38, far under the f32 tolerance of any output.
pub struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl Default for FlushDenormals {
    fn default() -> Self {
        Self::new()
    }
}

impl FlushDenormals {
    #[allow(deprecated)] // _mm_getcsr / _mm_setcsr: the portable way to reach MXCSR on stable Rust
    /// Sets FTZ and DAZ on this thread until dropped.
    pub fn new() -> Self {
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

/// The entry point of a kernel JIT-compiled for the host (the Cranelift and MLIR CPU targets):
/// `(bufs, sizes, lo, hi, scratch)` runs grid programs `lo..hi` with one `f32*` per program buffer in `bufs`, the
/// run-time sizes in `sizes`, and `scratch` the calling thread's tile memory.
pub type KernelEntry = unsafe extern "C" fn(*const *mut f32, *const i64, i64, i64, *mut f32);

/// Buffer and size pointers shared by the workers of one kernel.
#[derive(Clone, Copy)]
struct Shared {
    bufs: *const *mut f32,
    sizes: *const i64,
}

// SAFETY: the pointers stay valid for the whole `thread::scope` of `run_grid`; workers write disjoint regions
// (kernel-IR invariant 4).
unsafe impl Send for Shared {}

/// Runs grid programs `0..total` of `entry` with denormals flushed: on this thread when the programs together
/// touch under 1 MiB of tiles (spawning workers costs tens of µs), else on up to `scratches.len()` workers that
/// take batches of programs, each with its own scratch.
///
/// # Safety
/// `bufs` and `sizes` must hold what `entry` indexes for these sizes (buffers sized and accesses checked), every
/// scratch must hold at least `scratch_floats` f32, and the kernel's grid programs must write disjoint regions.
pub unsafe fn run_grid(
    entry: KernelEntry,
    bufs: *const *mut f32,
    sizes: *const i64,
    total: usize,
    scratch_floats: usize,
    scratches: &mut [Vec<f32>],
) {
    if total == 0 || scratches.is_empty() {
        return;
    }
    let shared = Shared { bufs, sizes };
    let work = total.saturating_mul(scratch_floats).saturating_mul(4);
    let workers = if work < 1 << 20 { 1 } else { scratches.len().min(total) };
    if workers == 1 {
        let _ftz = FlushDenormals::new();
        // SAFETY: the caller's contract.
        unsafe { entry(shared.bufs, shared.sizes, 0, total as i64, scratches[0].as_mut_ptr()) };
        return;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let batch = (total / (workers * 8)).max(1);
    std::thread::scope(|scope| {
        for scratch in scratches.iter_mut().take(workers) {
            let next = &next;
            let sp = scratch.as_mut_ptr() as usize;
            scope.spawn(move || {
                let sh = shared;
                let _ftz = FlushDenormals::new();
                loop {
                    let lo = next.fetch_add(batch, std::sync::atomic::Ordering::Relaxed);
                    if lo >= total {
                        break;
                    }
                    let hi = (lo + batch).min(total);
                    // SAFETY: the caller's contract; each worker has its own scratch.
                    unsafe { entry(sh.bufs, sh.sizes, lo as i64, hi as i64, sp as *mut f32) };
                }
            });
        }
    });
}

/// One kernel of an [`ObjectCode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectKernel {
    /// The kernel's name in the program.
    pub name: String,
    /// Its exported symbol, [`object_symbol`]`(prefix, i, name)`.
    pub symbol: String,
    /// Floats of scratch one call needs (per calling thread).
    pub scratch_floats: usize,
    /// Size of its machine code in bytes (0 where the code generator does not say).
    pub code_size: u32,
}

/// A specialised program compiled ahead of time into one relocatable, position-independent object file for the
/// host CPU (`loglinear emit --target object`), whichever code generator made it (Cranelift, or MLIR/LLVM). The
/// contract every generator keeps, for a symbol prefix `P` (a C identifier):
/// * per kernel `i`, `P_k<i>_<kernel name>` ([`object_symbol`]) with the [`KernelEntry`] ABI — `void f(float
///   *const *bufs, const int64_t *sizes, int64_t lo, int64_t hi, float *scratch)`: grid programs `lo..hi`
///   (linearised, last grid variable fastest), one `float*` per program buffer in `bufs`, the twelve sizes of
///   [`crate::SizeEnv::ORDER`] in `sizes`, and `scratch` at least [`ObjectKernel::scratch_floats`] floats of tile
///   memory private to the calling thread;
/// * `P_sizes`: `void f(int64_t sizes[12], int64_t B, int64_t T, int64_t H, int64_t L, int64_t step)` fills `sizes`
///   exactly as [`crate::SizeEnv::new`] does for this program (K, V and C compiled in, NT = ⌈T/C⌉, M = bitlen(NT − 1),
///   MS = M + 1 and LC = max(L, 1) for a log-linear program, else 1; `step` the decode position).
#[derive(Clone, Debug)]
pub struct ObjectCode {
    /// The relocatable object file (ELF on Linux).
    pub bytes: Vec<u8>,
    /// The kernels, in execution order.
    pub kernels: Vec<ObjectKernel>,
    /// The exported size helper, `P_sizes`.
    pub sizes_symbol: String,
    /// Symbols the code imports (libm's `expf`, libc's `memset`, ...), sorted; a C program links them with `-lm`.
    pub imports: Vec<String>,
    /// The target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub triple: String,
    /// The CPU features the code uses beyond the triple's baseline (`fma`, `avx2`, ...): run it on a CPU with them.
    pub cpu_features: Vec<String>,
    /// The code generator (`cranelift`, `mlir`).
    pub generator: &'static str,
}

/// The symbol of kernel `i` named `name` under `prefix`: `<prefix>_k<i>_<name>`, with every character of the
/// kernel name that is not an ASCII letter, digit or `_` replaced by `_`.
pub fn object_symbol(prefix: &str, i: usize, name: &str) -> String {
    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    format!("{prefix}_k{i}_{name}")
}

/// Whether `prefix` is a C identifier (what [`ObjectCode`] symbols are made from).
pub fn is_c_identifier(prefix: &str) -> bool {
    prefix.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
