//! # loglinear-kernel: the backend contract
//!
//! Everything a backend needs and nothing of the front end: the kernel IR ([`kernel`]) with its text form,
//! the verifier ([`verify`]), the interpreter that defines its meaning ([`interp`], also a [`Target`]), the
//! analyses every backend shares ([`analysis`]), the resource model ([`resources`]), the cost model
//! ([`cost`]), kernel-IR→kernel-IR passes ([`passes`]: `specialise`, `decompose`, `cse`, `dce`), the text-form parser
//! ([`parse`]), typed tensors ([`tensor`]), the schedule configuration
//! ([`config`]) and the [`Target`] / [`Executable`] traits ([`target`]). `loglinear-schedule` produces kernel
//! IR; the runtime drives targets; backends (`loglinear-cranelift`, …) depend on this crate only.
//!
//! ## Kernel IR invariants (what a backend may assume after [`verify::verify`])
//! 1. Buffers have symbolic shapes over `B, T, H, K, V, L, NT, C, M, MS, LC`; none is O(T²): only
//!    `T·(K|V|L)`, `NT·C·(K|V|L)`, `NT·K·V·M` and T-free shapes exist. After [`passes::specialise`], `K`, `V`
//!    and `C` are literals and every buffer has an element type ([`kernel::Buffer::elem`]); tile shapes are
//!    then all literal.
//! 2. Every tile assignment has the shape its operation produces; stores write tiles of the region's shape.
//! 3. Every tile is assigned before it is read; every scratch buffer is written before it is read. Output,
//!    scratch and state buffers start at zero ([`analysis::needs_zeroing`] says where a backend may skip it).
//! 4. Grid programs of a kernel write disjoint regions: every store indexes each grid variable in its own
//!    dimension, either exactly (`At(g)`) or as a block `g·s +: n` with `s ≥ n`, so no element is written by
//!    two programs ([`verify::verify`] proves it per element; a store it cannot prove is rejected). Kernels run
//!    in order, each seeing all writes of the previous ones.
//! 5. The only exponential of the transition maths is `exp_nonpos`, applied to local cumulative gates or segment
//!    sums of gates, with masked entries set to `−∞` *before* the exponential (spec §11.4). Plain `exp` appears
//!    only in preprocessing, where the variant's own expressions ask for it.
//! 6. Loads past the end of a dimension read zero and stores past it are dropped (the partial last chunk);
//!    every `At` index and block start is in bounds ([`verify::check_bounds`], for concrete sizes).
//! 7. Level logic is integer bit arithmetic (`bit`, `low_ones`, `low_zeros`, `tz`, `bitlen`); the in-chunk
//!    level table is the same for every chunk.
//! 8. Every tile op accumulates in the program's accumulation type ([`kernel::Program::accum`]).

#![warn(missing_docs)]

pub mod analysis;
pub mod config;
pub mod cost;
pub mod device;
pub mod filecheck;
pub mod host;
pub mod interp;
pub mod kernel;
pub mod parse;
pub mod passes;
pub mod resources;
pub mod target;
pub mod tensor;
pub mod verify;

use std::fmt;

pub use config::{ConfigError, ConfigOverrides, ScanForm, ScheduleConfig};
pub use interp::{Float, InterpreterTarget, Precision};
pub use kernel::Program;
pub use parse::{parse_program, ParseError};
pub use passes::specialise::{specialise, Specialisation};
pub use target::{
    host_views, Bindings, Capabilities, CompileStats, DeviceBindings, DeviceStates, DeviceTensor, Executable,
    KernelStats, States, Target, TargetError, HOST_MEMORY,
};
pub use tensor::{DType, Tensor, TensorRef};
pub use verify::VerifyError;

/// Number of bits needed to write `x` (`bitlen(0) = 0`, `bitlen(1) = 1`, `bitlen(4) = 3`).
pub fn bitlen(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Concrete sizes of one run, for bounds checks, interpretation, costs and every backend's launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeEnv {
    /// Batch.
    pub b: usize,
    /// Sequence length.
    pub t: usize,
    /// Heads.
    pub h: usize,
    /// Key dimension.
    pub k: usize,
    /// Value dimension.
    pub v: usize,
    /// λ levels in the λ tensors.
    pub l: usize,
    /// Chunks.
    pub nt: usize,
    /// Chunk size.
    pub c: usize,
    /// Inter-chunk scans.
    pub m: usize,
    /// Fused carry states.
    pub ms: usize,
    /// Decode states.
    pub lc: usize,
    /// Decode position.
    pub step: usize,
}

impl SizeEnv {
    /// Sizes for a problem `(B, T, H, K, V)` with `l` λ levels at chunk size `chunk`; `hierarchical` says
    /// whether the variant is log-linear (it fixes `M`, `MS`, `LC`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        b: usize,
        t: usize,
        h: usize,
        k: usize,
        v: usize,
        l: usize,
        chunk: usize,
        hierarchical: bool,
    ) -> SizeEnv {
        let nt = t.div_ceil(chunk.max(1));
        let m = if hierarchical { bitlen(nt.saturating_sub(1) as u64) as usize } else { 1 };
        SizeEnv {
            b,
            t,
            h,
            k,
            v,
            l: l.max(1),
            nt,
            c: chunk,
            m,
            ms: if hierarchical { m + 1 } else { 1 },
            lc: if hierarchical { l.max(1) } else { 1 },
            step: 0,
        }
    }

    /// The order of the run-time sizes wherever generated code takes them as one list (the CPU kernels' `sizes`
    /// array, the GPU kernels' parameters).
    pub const ORDER: [kernel::Sym; 12] = {
        use kernel::Sym::*;
        [B, T, H, K, V, L, NT, C, M, MS, LC, Step]
    };

    /// The sizes in [`SizeEnv::ORDER`].
    pub fn values(&self) -> [i64; 12] {
        Self::ORDER.map(|s| self.get(s) as i64)
    }

    /// The value of a symbol.
    pub fn get(&self, s: kernel::Sym) -> usize {
        use kernel::Sym::*;
        match s {
            B => self.b,
            T => self.t,
            H => self.h,
            K => self.k,
            V => self.v,
            L => self.l,
            NT => self.nt,
            C => self.c,
            M => self.m,
            MS => self.ms,
            LC => self.lc,
            Step => self.step,
        }
    }
}

impl fmt::Display for SizeEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "B={} T={} H={} K={} V={} L={} C={} NT={} M={}",
            self.b, self.t, self.h, self.k, self.v, self.l, self.c, self.nt, self.m
        )
    }
}
