//! The cost model: flops, bytes moved and peak memory, counted from the Kernel IR for concrete sizes.
//!
//! Counting rules (per executed op, full tiles, partial last chunks counted as full): a matmul of
//! `[m, k]·[k, n]` is `2mkn` flops; the gated causal product `2n²k` (`n²/2` pairs × `k` channels × four: the
//! segment-sum add, the exponential counted as one, the product, the accumulation); the unit-lower solve
//! `n²·cols`; elementwise ops, cumulative and suffix sums and row masks one flop per element; `l2norm` three; the
//! segment sums (`segsum`) and level mask `n²/2`; data movement ops (row, column, transpose, broadcast,
//! constants, index-predicate masks) none; the primitives `select` one flop per element, `row_sum` and `col_sum`
//! one per element read. Loads and stores move `4` bytes (f32) per tile element. Peak memory is the largest sum of
//! sizes of the buffers live at one kernel ([`Program::lifetimes`]), at 4 bytes per element. Conditional bodies
//! are counted only when taken, so the masks of the level scans are exact.

use std::fmt;

use crate::kernel::*;
use crate::verify::dim_value;
use crate::SizeEnv;

/// Bytes per element of an f32 buffer (the cost model counts each buffer at its own element size).
pub const ELEM_BYTES: f64 = 4.0;

/// The cost of one kernel (stage).
#[derive(Clone, Debug, PartialEq)]
pub struct StageCost {
    /// Kernel name.
    pub name: String,
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes loaded and stored.
    pub bytes: f64,
}

/// The cost of a program at concrete sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    /// Total floating-point operations.
    pub flops: f64,
    /// Total bytes loaded and stored.
    pub bytes_moved: f64,
    /// Peak bytes of live buffers.
    pub peak_bytes: f64,
    /// Per-kernel breakdown.
    pub stages: Vec<StageCost>,
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cost: {:.4e} flops, {:.4e} bytes moved, peak memory {:.4e} bytes",
            self.flops, self.bytes_moved, self.peak_bytes
        )?;
        for s in &self.stages {
            writeln!(f, "  {:<12} {:.4e} flops  {:.4e} bytes", s.name, s.flops, s.bytes)?;
        }
        Ok(())
    }
}

fn cond_uses(body: &[Stmt], v: VarId) -> bool {
    let mut u = false;
    visit(body, &mut |s| {
        if let Stmt::If { cond, .. } = s {
            u |= cond.uses(v);
        }
    });
    u
}

struct Counter<'a> {
    p: &'a Program,
    k: &'a Kernel,
    env: &'a SizeEnv,
}

impl Counter<'_> {
    fn shape(&self, t: TileId) -> (f64, f64) {
        let s = self.k.tiles[t.0 as usize].shape;
        (dim_value(s[0], self.env) as f64, dim_value(s[1], self.env) as f64)
    }

    /// Bytes per element of buffer `b`.
    fn elem_bytes(&self, b: BufId) -> f64 {
        self.p.buffers.get(b.0 as usize).map_or(ELEM_BYTES, |x| x.elem.size() as f64)
    }

    fn op(&self, dst: TileId, op: &Op) -> (f64, f64) {
        let (r, c) = self.shape(dst);
        let n = r * c;
        match op {
            Op::Load { buf, .. } => (0.0, n * self.elem_bytes(*buf)),
            Op::Zeros(_) | Op::Eye(_) | Op::Const(_) | Op::Row(..) | Op::Col(..) | Op::Transpose(_) => (0.0, 0.0),
            Op::Broadcast(..) | Op::Mask { .. } => (0.0, 0.0),
            // One comparison (or add) per element produced (`select`) or read (row and column sums).
            Op::Select { .. } => (n, 0.0),
            Op::RowSum(a) | Op::ColSum(a) => {
                let (ar, ac) = self.shape(*a);
                (ar * ac, 0.0)
            }
            Op::Unary(..)
            | Op::Binary(..)
            | Op::CumSum(_)
            | Op::SuffixSum(_)
            | Op::MaskRows { .. }
            | Op::Tril { .. } => (n, 0.0),
            Op::L2Norm(_) => (3.0 * n, 0.0),
            Op::Matmul { a, ta, .. } => {
                let (ar, ac) = self.shape(*a);
                let k = if *ta { ar } else { ac };
                (2.0 * r * c * k, 0.0)
            }
            Op::MatmulGatedCausal { a, .. } => {
                // Lower triangle: per pair and channel a segment-sum add, an exp, a product, an accumulation.
                let (_, k) = self.shape(*a);
                (4.0 * (r * r / 2.0) * k, 0.0)
            }
            Op::SegSum(_) | Op::LevelMask { .. } => (n / 2.0, 0.0),
            Op::TriSolve { a, .. } => {
                let (ar, _) = self.shape(*a);
                (ar * n, 0.0)
            }
        }
    }

    fn body(&self, body: &[Stmt], vars: &mut Vec<i64>) -> (f64, f64) {
        let mut acc = (0.0, 0.0);
        for s in body {
            let x = match s {
                Stmt::Assign { dst, op } => self.op(*dst, op),
                Stmt::Store { src, buf, .. } => {
                    let (r, c) = self.shape(*src);
                    (0.0, r * c * self.elem_bytes(*buf))
                }
                Stmt::For { var, body } => {
                    let ext = dim_value(self.k.vars[var.0 as usize].extent, self.env);
                    if cond_uses(body, *var) {
                        let mut t = (0.0, 0.0);
                        for i in 0..ext {
                            vars[var.0 as usize] = i as i64;
                            let y = self.body(body, vars);
                            t = (t.0 + y.0, t.1 + y.1);
                        }
                        t
                    } else {
                        let y = self.body(body, vars);
                        (y.0 * ext as f64, y.1 * ext as f64)
                    }
                }
                Stmt::If { cond, then, els } => {
                    if crate::interp::eval_cond(cond, vars, self.env) {
                        self.body(then, vars)
                    } else {
                        self.body(els, vars)
                    }
                }
            };
            acc = (acc.0 + x.0, acc.1 + x.1);
        }
        acc
    }

    fn kernel(&self) -> (f64, f64) {
        let mut vars = vec![0i64; self.k.vars.len()];
        let mut mult = 1.0;
        let mut iter = Vec::new();
        for g in &self.k.grid {
            let ext = dim_value(self.k.vars[g.0 as usize].extent, self.env);
            if cond_uses(&self.k.body, *g) {
                iter.push((*g, ext));
            } else {
                mult *= ext as f64;
            }
        }
        let total = self.grid(&iter, &mut vars);
        (total.0 * mult, total.1 * mult)
    }

    fn grid(&self, iter: &[(VarId, usize)], vars: &mut Vec<i64>) -> (f64, f64) {
        match iter.split_first() {
            None => self.body(&self.k.body, vars),
            Some(((v, ext), rest)) => {
                let mut t = (0.0, 0.0);
                for i in 0..*ext {
                    vars[v.0 as usize] = i as i64;
                    let y = self.grid(rest, vars);
                    t = (t.0 + y.0, t.1 + y.1);
                }
                t
            }
        }
    }
}

/// The cost of a program at concrete sizes.
pub fn cost_program(p: &Program, env: &SizeEnv) -> Cost {
    let mut stages = Vec::new();
    for k in &p.kernels {
        let (flops, bytes) = Counter { p, k, env }.kernel();
        stages.push(StageCost { name: k.name.clone(), flops, bytes });
    }
    let sizes: Vec<f64> = p
        .buffers
        .iter()
        .map(|b| b.shape.iter().map(|d| dim_value(*d, env) as f64).product::<f64>() * b.elem.size() as f64)
        .collect();
    let lt = p.lifetimes();
    let mut peak: f64 = 0.0;
    for ki in 0..p.kernels.len() {
        let live: f64 = lt
            .iter()
            .zip(&sizes)
            .filter(|(l, _)| matches!(l, Some((a, z)) if *a <= ki && ki <= *z))
            .map(|(_, s)| s)
            .sum();
        peak = peak.max(live);
    }
    Cost {
        flops: stages.iter().map(|s| s.flops).sum(),
        bytes_moved: stages.iter().map(|s| s.bytes).sum(),
        peak_bytes: peak,
        stages,
    }
}
