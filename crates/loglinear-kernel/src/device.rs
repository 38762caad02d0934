//! The contract between an ahead-of-time GPU code generator and the runtime that loads its code (issue 12:
//! MLIR → PTX, run through the CUDA driver by a crate that links no compiler).
//!
//! Both sides derive everything from the specialised, decomposed [`Program`] through this module, so they agree
//! without a side file: the kernel symbols, the threads per grid program, where each tile lives (the program's
//! shared memory or its region of a global scratch buffer, [`tile_arena`]), and the file name a program's code
//! is stored under ([`fingerprint`]).
//!
//! **Kernel parameters** (every kernel of a program, in this order): one `f32*` per program buffer (program
//! order; the runtime holds every buffer in f32 on the device), the twelve run-time sizes as `i64` in
//! [`SizeEnv::ORDER`], `lo: i64` and `hi: i64` (this launch runs grid programs `lo..hi`, program `lo + blockIdx.x`,
//! the last grid variable fastest), and `scratch: f32*`, holding [`GpuKernelLayout::scratch_floats`] per block of
//! the launch (block `blockIdx.x` at `blockIdx.x · scratch_floats`). Blocks have [`GpuKernelLayout::threads`]
//! threads along x; shared memory is static (in the code).

use crate::kernel::Program;
use crate::resources::{tile_arena, TileHome};
use crate::SizeEnv;

/// Threads per grid program (one CUDA block).
pub const GPU_THREADS: u32 = 128;

/// f32 elements of static shared memory a kernel may use (48 KiB: the static limit of every CUDA device).
pub const GPU_SHARED_FLOATS: usize = 48 * 1024 / 4;

/// Version of the generated code's conventions: part of every [`fingerprint`], so code generated under other
/// conventions is never loaded.
pub const CODEGEN_VERSION: u32 = 1;

/// How one kernel of a program is laid out on a GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuKernelLayout {
    /// The entry point's name: `k<index>_<kernel name>`.
    pub symbol: String,
    /// Threads per block.
    pub threads: u32,
    /// Per tile: in shared memory ([`TileHome::Fast`]) or in the block's scratch region ([`TileHome::Spill`]).
    pub homes: Vec<TileHome>,
    /// f32 elements of shared memory the tiles use.
    pub shared_floats: usize,
    /// Where results that overwrite one of their operands are computed first (as big as the largest tile).
    pub temp: TileHome,
    /// f32 elements of global scratch per block.
    pub scratch_floats: usize,
}

/// The layout of kernel `index` of the specialised program `p` (tile shapes literal).
pub fn gpu_layout(p: &Program, index: usize) -> GpuKernelLayout {
    let k = &p.kernels[index];
    // Tile shapes are literal after specialisation: the sizes only matter for symbolic ones.
    let env = SizeEnv::new(1, 1, 1, 1, 1, 1, p.chunk, p.hierarchical);
    let arena = tile_arena(k, &env, GPU_SHARED_FLOATS);
    let largest = k
        .tiles
        .iter()
        .map(|t| crate::verify::dim_value(t.shape[0], &env) * crate::verify::dim_value(t.shape[1], &env))
        .max()
        .unwrap_or(0);
    let (temp, shared_floats, scratch_floats) = if arena.fast + largest <= GPU_SHARED_FLOATS {
        (TileHome::Fast(arena.fast), arena.fast + largest, arena.spill)
    } else {
        (TileHome::Spill(arena.spill), arena.fast, arena.spill + largest)
    };
    GpuKernelLayout {
        symbol: format!("k{index}_{}", k.name),
        threads: GPU_THREADS,
        homes: arena.homes,
        shared_floats,
        temp,
        scratch_floats,
    }
}

/// A stable name for the code of program `p`: 16 hex digits of FNV-1a over its printed form and
/// [`CODEGEN_VERSION`]. Equal programs (same variant, sizes, schedule and types) get equal names on every
/// machine.
pub fn fingerprint(p: &Program) -> String {
    let text = format!("codegen {CODEGEN_VERSION}\n{p}");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Produces PTX for a specialised, decomposed program (one module, an entry point per kernel as laid out by
/// [`gpu_layout`]). Implemented by the MLIR crate; a loader that links no compiler takes one when built with it.
pub trait PtxCompiler: Send + Sync {
    /// The PTX text of `p`'s module.
    ///
    /// # Errors
    /// Why the program could not be translated or lowered.
    fn ptx(&self, p: &Program) -> Result<String, String>;
}
