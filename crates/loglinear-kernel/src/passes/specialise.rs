//! `specialise`: fixes the compile-time sizes and element types of a program, once, for every backend.
//!
//! K, V and C become literals everywhere (buffer shapes, tile shapes, loop and grid extents, index
//! expressions); B, T, H and the λ depth L — and the sizes derived from T (NT, M, MS) — stay symbolic, run-time
//! values, so a new length or batch never recompiles. λ rows are held in tiles of [`LAMBDA_TILE_LEVELS`]
//! levels: a whole-dimension index (`:`) along a buffer's `L` dimension becomes the block `0 +: 32`, whose
//! levels past the caller's `L` read as zero and are never stored (the kernel IR's block semantics); levels
//! above `⌈log2 T⌉` are never read, so any `T ≤ 2^31` runs with the same code. Buffers get their element type: inputs and the output the
//! configuration's storage type, scratch and states its accumulation type, which is also the program's
//! [`Program::accum`].

use crate::config::ScheduleConfig;
use crate::kernel::{Buffer, Cond, Dim, IExpr, Index, Op, Program, Stmt, Sym};

/// Levels of λ held per row in a tile after specialisation: enough for `T ≤ 2^31` tokens.
pub const LAMBDA_TILE_LEVELS: usize = 32;

/// The longest sequence a specialised program serves (its λ tiles hold [`LAMBDA_TILE_LEVELS`] levels).
pub const MAX_TOKENS: usize = 1 << 31;

/// The sizes fixed at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Specialisation {
    /// Key dimension.
    pub k: usize,
    /// Value dimension.
    pub v: usize,
    /// Chunk size.
    pub c: usize,
}

impl Specialisation {
    fn value(&self, s: Sym) -> Option<usize> {
        match s {
            Sym::K => Some(self.k),
            Sym::V => Some(self.v),
            Sym::C => Some(self.c),
            _ => None,
        }
    }

    fn dim(&self, d: Dim) -> Dim {
        match d {
            Dim::Sym(s) => self.value(s).map_or(d, Dim::Lit),
            lit => lit,
        }
    }

    /// A tile dimension: also `L` becomes [`LAMBDA_TILE_LEVELS`].
    fn tile_dim(&self, d: Dim) -> Dim {
        match d {
            Dim::Sym(Sym::L) => Dim::Lit(LAMBDA_TILE_LEVELS),
            d => self.dim(d),
        }
    }

    fn iexpr(&self, e: &mut IExpr) {
        match e {
            IExpr::Sym(s) => {
                if let Some(n) = self.value(*s) {
                    *e = IExpr::Lit(n as i64);
                }
            }
            IExpr::Lit(_) | IExpr::Var(_) => {}
            IExpr::Add(a, b) | IExpr::Mul(a, b) => {
                self.iexpr(a);
                self.iexpr(b);
            }
            IExpr::Tz(a) => self.iexpr(a),
        }
    }

    fn cond(&self, c: &mut Cond) {
        match c {
            Cond::Bit { x, bit } => {
                self.iexpr(x);
                self.iexpr(bit);
            }
            Cond::LowOnes { x, bits } | Cond::LowZeros { x, bits } => {
                self.iexpr(x);
                self.iexpr(bits);
            }
            Cond::Ge(a, b) => {
                self.iexpr(a);
                self.iexpr(b);
            }
            Cond::Not(a) => self.cond(a),
            Cond::And(a, b) => {
                self.cond(a);
                self.cond(b);
            }
        }
    }

    fn index(&self, buf: &Buffer, ix: &mut [Index]) {
        for (i, d) in ix.iter_mut().zip(&buf.shape) {
            if matches!(i, Index::Full) && *d == Dim::Sym(Sym::L) {
                *i = Index::Block { start: IExpr::Lit(0), len: Dim::Lit(LAMBDA_TILE_LEVELS) };
                continue;
            }
            match i {
                Index::At(e) => self.iexpr(e),
                Index::Block { start, len } => {
                    self.iexpr(start);
                    *len = self.dim(*len);
                }
                Index::Full => {}
            }
        }
    }

    fn op(&self, bufs: &[Buffer], op: &mut Op) {
        match op {
            Op::Load { buf, index } => self.index(&bufs[buf.0 as usize], index),
            Op::Zeros(s) | Op::Broadcast(_, s) => *s = [self.tile_dim(s[0]), self.tile_dim(s[1])],
            Op::Mask { pred, shape, .. } | Op::Select { pred, shape, .. } => {
                *shape = [self.tile_dim(shape[0]), self.tile_dim(shape[1])];
                match pred {
                    crate::kernel::Pred::Level(e) | crate::kernel::Pred::RowIs(e) | crate::kernel::Pred::ColIs(e) => {
                        self.iexpr(e)
                    }
                    crate::kernel::Pred::RowBelow { start, limit } => {
                        self.iexpr(start);
                        *limit = self.dim(*limit);
                    }
                    _ => {}
                }
            }
            Op::Eye(n) | Op::LevelMask { n, .. } => *n = self.dim(*n),
            Op::Row(_, e) | Op::Col(_, e) => self.iexpr(e),
            Op::MaskRows { start, limit, .. } => {
                self.iexpr(start);
                *limit = self.dim(*limit);
            }
            _ => {}
        }
    }

    fn body(&self, bufs: &[Buffer], body: &mut [Stmt]) {
        for s in body {
            match s {
                Stmt::Assign { op, .. } => self.op(bufs, op),
                Stmt::Store { buf, index, .. } => self.index(&bufs[buf.0 as usize], index),
                Stmt::For { body, .. } => self.body(bufs, body),
                Stmt::If { cond, then, els } => {
                    self.cond(cond);
                    self.body(bufs, then);
                    self.body(bufs, els);
                }
            }
        }
    }
}

/// Specialises `program` on `spec` and `config`'s element types (see the module doc).
pub fn specialise(program: &Program, spec: Specialisation, config: &ScheduleConfig) -> Program {
    let mut p = program.clone();
    p.set_types(config.storage, config.accum);
    p.specialised = Some(spec);
    // Indexes first, against the symbolic shapes (they see which dimension is `L`).
    let bufs = p.buffers.clone();
    for k in &mut p.kernels {
        spec.body(&bufs, &mut k.body);
    }
    for b in &mut p.buffers {
        // A buffer's `L` (the caller's λ depth) stays a run-time size.
        b.shape.iter_mut().for_each(|d| *d = spec.dim(*d));
    }
    for k in &mut p.kernels {
        for v in &mut k.vars {
            v.extent = spec.dim(v.extent);
        }
        for t in &mut k.tiles {
            t.shape = [spec.tile_dim(t.shape[0]), spec.tile_dim(t.shape[1])];
        }
    }
    p
}
