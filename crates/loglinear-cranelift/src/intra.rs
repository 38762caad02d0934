//! Proof kernel: the intra-chunk block of log-linear Mamba-2 for one chunk (spec §7.2 step (1)).
//!
//! For rows `r, s < n ≤ C`:
//! `o[r, :] += Σ_{s ≤ r} (q_r · k_s) · exp(γ_r − γ_s) · λ[r, bitlen(r XOR s)] · v[s, :]`.
//!
//! Generated code (specialised on K, V, C): `S = Q·Kᵀ` (lower block triangle only, [`Triangular::CLower`]) into a
//! stack tile; the level mask ([`emit_level_mask`]) in place; `o += S·V` ([`Triangular::ALower`]). A partial chunk
//! (`n < C`, a run-time value) is first copied into zero-padded stack tiles and the result copied back, so the
//! compute path is the same compile-time C×C code.

use std::time::Duration;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, BlockArg, InstBuilder, StackSlotData, StackSlotKind};

use crate::emit::{
    emit_copy_rows, emit_fill, emit_level_mask, emit_matmul, Idx, LevelMaskSpec, MatmulSpec, Tile, Transpose,
    Triangular, PTR,
};
use crate::error::JitError;
use crate::jit::{CompiledFn, JitModule, ParamType};

/// The specialisation of the intra-chunk kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntraShape {
    /// Key dimension K.
    pub k: usize,
    /// Value dimension V.
    pub v: usize,
    /// Chunk size C (a power of two).
    pub c: usize,
}

impl IntraShape {
    /// Number of in-chunk levels, `log2(C) + 1` (λ rows must hold at least this many).
    pub fn levels(&self) -> usize {
        self.c.trailing_zeros() as usize + 1
    }

    fn validate(&self) -> Result<(), JitError> {
        if self.c == 0 || !self.c.is_power_of_two() || self.c > 1024 {
            return Err(JitError::InvalidArgument(format!("chunk size C = {} is not a power of two ≤ 1024", self.c)));
        }
        if self.k == 0 || self.v == 0 || self.k > 4096 || self.v > 4096 {
            return Err(JitError::InvalidArgument(format!("K = {}, V = {} must lie in 1..=4096", self.k, self.v)));
        }
        Ok(())
    }
}

/// Inputs of one chunk. Rows are contiguous: `q[r·K + i]`, `k[r·K + i]`, `v[r·V + j]`, `λ[r·lam_stride + ℓ]`.
#[derive(Clone, Copy, Debug)]
pub struct IntraArgs<'a> {
    /// Queries, `n × K`.
    pub q: &'a [f32],
    /// Keys, `n × K`.
    pub k: &'a [f32],
    /// Values, `n × V`.
    pub v: &'a [f32],
    /// Local inclusive cumulative sum of the log decays, `n` values.
    pub gamma: &'a [f32],
    /// λ rows (levels `0..=log2 C` are read).
    pub lam: &'a [f32],
    /// Distance between λ rows, in floats (≥ `log2 C + 1`).
    pub lam_stride: usize,
    /// Number of valid rows, `0 ≤ n ≤ C`.
    pub n: usize,
}

fn slot(b: &mut cranelift_frontend::FunctionBuilder, floats: usize) -> cranelift_codegen::ir::Value {
    let s = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (floats * 4) as u32, 4));
    b.ins().stack_addr(PTR, s, 0)
}

type IntraFn = extern "C" fn(*const f32, *const f32, *const f32, *const f32, *const f32, i64, i64, *mut f32);

/// The compiled intra-chunk kernel for one [`IntraShape`].
#[derive(Debug, Clone)]
pub struct IntraChunkKernel {
    shape: IntraShape,
    code: CompiledFn,
    f: IntraFn,
}

impl IntraChunkKernel {
    /// JIT-compiles the kernel for `shape`.
    pub fn compile(jit: &JitModule, shape: IntraShape) -> Result<Self, JitError> {
        shape.validate()?;
        let IntraShape { k: kd, v: vd, c } = shape;
        let nl = shape.levels();
        let name = format!("mamba2_intra_k{kd}_v{vd}_c{c}");
        let params = [
            ParamType::Ptr,
            ParamType::Ptr,
            ParamType::Ptr,
            ParamType::Ptr,
            ParamType::Ptr,
            ParamType::I64,
            ParamType::I64,
            ParamType::Ptr,
        ];
        let code = jit.compile(&name, &params, |b, ctx, p| {
            let (q, k, v, g, lam, lam_stride, n, o) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
            let sp = slot(b, c * c);
            let main = b.create_block();
            for _ in 0..6 {
                b.append_block_param(main, PTR);
            }
            b.append_block_param(main, types::I64);
            let pad = b.create_block();
            let full = b.ins().icmp_imm_s(IntCC::Equal, n, c as i64);
            let direct: Vec<BlockArg> = [q, k, v, g, lam, lam_stride, o].iter().map(|x| BlockArg::Value(*x)).collect();
            b.ins().brif(full, main, &direct, pad, &[]);
            b.seal_block(pad);

            // Partial chunk: zero-padded copies.
            b.switch_to_block(pad);
            let qp = slot(b, c * kd);
            let kp = slot(b, c * kd);
            let vp = slot(b, c * vd);
            let gp = slot(b, c);
            let lp = slot(b, c * nl);
            let op = slot(b, c * vd);
            let tq = Tile::dense(qp, c, kd);
            let tk = Tile::dense(kp, c, kd);
            let tv = Tile::dense(vp, c, vd);
            let tg = Tile::dense(gp, c, 1);
            let tl = Tile::dense(lp, c, nl);
            let to = Tile::dense(op, c, vd);
            for t in [tq, tk, tv, tg, tl, to] {
                emit_fill(b, t, 0.0)?;
            }
            emit_copy_rows(b, q, Idx::Const(kd), tq, Idx::Val(n))?;
            emit_copy_rows(b, k, Idx::Const(kd), tk, Idx::Val(n))?;
            emit_copy_rows(b, v, Idx::Const(vd), tv, Idx::Val(n))?;
            emit_copy_rows(b, g, Idx::Const(1), tg, Idx::Val(n))?;
            emit_copy_rows(b, lam, Idx::Val(lam_stride), tl, Idx::Val(n))?;
            emit_copy_rows(b, o, Idx::Const(vd), to, Idx::Val(n))?;
            let nlv = b.ins().iconst(types::I64, nl as i64);
            let padded: Vec<BlockArg> = [qp, kp, vp, gp, lp, nlv, op].iter().map(|x| BlockArg::Value(*x)).collect();
            b.ins().jump(main, &padded);
            b.seal_block(main);

            // Compute on C×C tiles.
            b.switch_to_block(main);
            let mp = b.block_params(main).to_vec();
            let (q, k, v, g, lam, lam_stride, o) = (mp[0], mp[1], mp[2], mp[3], mp[4], mp[5], mp[6]);
            let mut qk = MatmulSpec::new(c, c, kd, Transpose::B);
            qk.tri = Triangular::CLower;
            emit_matmul(b, ctx, &qk, q, k, sp)?;
            emit_level_mask(b, ctx, &LevelMaskSpec { n: c, ld: c, decay: true }, sp, g, lam, Idx::Val(lam_stride))?;
            let mut pv = MatmulSpec::new(c, vd, c, Transpose::None);
            pv.tri = Triangular::ALower;
            pv.accumulate = true;
            // 2×16 tiles: finer steps of the triangular reduction bound, fewer broadcasts per fma
            pv.mr = 2;
            pv.nr = 16;
            emit_matmul(b, ctx, &pv, sp, v, o)?;

            // Partial chunk: copy the n valid output rows back.
            let back = b.create_block();
            let done = b.create_block();
            b.ins().brif(full, done, &[], back, &[]);
            b.seal_block(back);
            b.switch_to_block(back);
            let obuf = b.block_params(main)[6];
            let out = Tile::dense(p[7], c, vd);
            emit_copy_rows(b, obuf, Idx::Const(vd), out, Idx::Val(n))?;
            b.ins().jump(done, &[]);
            b.seal_block(done);
            b.switch_to_block(done);
            Ok(())
        })?;
        // SAFETY: the function was compiled with exactly IntraFn's parameter list (5 pointers, 2 i64, 1 pointer).
        let f = unsafe { code.as_fn::<IntraFn>()? };
        Ok(IntraChunkKernel { shape, code, f })
    }

    /// The specialisation.
    pub fn shape(&self) -> IntraShape {
        self.shape
    }

    /// JIT compile time of this kernel.
    pub fn compile_time(&self) -> Duration {
        self.code.compile_time()
    }

    /// Machine-code size in bytes.
    pub fn code_size(&self) -> u32 {
        self.code.code_size()
    }

    /// `o[0..n, :] += intra-chunk attention of the chunk` (`o` is `n × V`, rows contiguous).
    /// Checks every length against the shape; `n == 0` does nothing.
    pub fn run(&self, a: &IntraArgs<'_>, o: &mut [f32]) -> Result<(), JitError> {
        let IntraShape { k: kd, v: vd, c } = self.shape;
        let nl = self.shape.levels();
        let bad = |s: String| Err(JitError::InvalidArgument(s));
        if a.n > c {
            return bad(format!("n = {} rows exceed the chunk size {c}", a.n));
        }
        if a.n == 0 {
            return Ok(());
        }
        let n = a.n;
        for (name, len, need) in [
            ("q", a.q.len(), n * kd),
            ("k", a.k.len(), n * kd),
            ("v", a.v.len(), n * vd),
            ("gamma", a.gamma.len(), n),
            ("o", o.len(), n * vd),
        ] {
            if len < need {
                return bad(format!("{name} has {len} floats, {need} needed (n = {n})"));
            }
        }
        if a.lam_stride < nl {
            return bad(format!("lam_stride {} < {nl} levels", a.lam_stride));
        }
        let lam_need = (n - 1) * a.lam_stride + nl;
        if a.lam.len() < lam_need {
            return bad(format!("lam has {} floats, {lam_need} needed", a.lam.len()));
        }
        // SAFETY: all lengths were checked above against what the kernel reads (n rows) and writes (n rows of o).
        unsafe {
            self.run_unchecked(
                a.q.as_ptr(),
                a.k.as_ptr(),
                a.v.as_ptr(),
                a.gamma.as_ptr(),
                a.lam.as_ptr(),
                a.lam_stride,
                n,
                o.as_mut_ptr(),
            )
        };
        Ok(())
    }

    /// Calls the kernel without checks.
    ///
    /// # Safety
    /// `1 ≤ n ≤ C`; `q`, `k` readable for `n·K` floats, `v` for `n·V`, `gamma` for `n`, `lam` for
    /// `(n−1)·lam_stride + log2 C + 1` with `lam_stride ≥ log2 C + 1`; `o` readable and writable for `n·V` floats
    /// and not overlapping the inputs.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn run_unchecked(
        &self,
        q: *const f32,
        k: *const f32,
        v: *const f32,
        gamma: *const f32,
        lam: *const f32,
        lam_stride: usize,
        n: usize,
        o: *mut f32,
    ) {
        (self.f)(q, k, v, gamma, lam, lam_stride as i64, n as i64, o)
    }
}
