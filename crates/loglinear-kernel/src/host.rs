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

