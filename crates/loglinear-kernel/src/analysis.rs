//! Analyses of kernel IR shared by every backend (moved out of the Cranelift backend so that no backend has to
//! re-derive them): which buffers must be zeroed before a run ([`needs_zeroing`], the scratch rule), the
//! triangular structure of square tiles ([`upper_structure`], [`upper_unobserved`]), the tiles an op reads
//! ([`op_reads`]), the buffers a kernel touches ([`used_buffers`]) and the tiles carried around loops
//! ([`loop_carried`]).

use crate::kernel::{
    visit, BinOp, BufId, BufKind, Cond, Dim, IExpr, Index, Kernel, Op, Program, Stmt, Sym, TileId, UnOp, VarId,
};

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
                visit(&k.body, &mut |s| {
                    if let Stmt::Assign { op: Op::Load { buf, .. }, .. } = s {
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
            visit(then, &mut |s| {
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

/// The `bit(x, y)` conjuncts of `c`.
fn conjuncts<'a>(c: &'a Cond, out: &mut Vec<(&'a IExpr, &'a IExpr)>) {
    match c {
        Cond::Bit { x, bit } => out.push((x, bit)),
        Cond::And(a, b) => {
            conjuncts(a, out);
            conjuncts(b, out);
        }
        _ => {}
    }
}

/// Whether every load of `bi` in `body` is inside the `then` branch of an `if bit(x, y)` whose `x` and `y` index
/// the loaded element at positions `pos` (`conds`: the enclosing `then` conditions).
fn loads_only_under<'a>(body: &'a [Stmt], bi: usize, pos: (usize, usize), conds: &mut Vec<&'a Cond>) -> bool {
    body.iter().all(|s| match s {
        Stmt::Assign { op: Op::Load { buf, index }, .. } if buf.0 as usize == bi => {
            // Under a conjunct `bit(x, y)` (any expressions) whose operands are the loaded element's coordinates
            // at `pos`.
            let at = |p: usize, e: &IExpr| matches!(index.get(p), Some(Index::At(x)) if x == e);
            let mut bits = Vec::new();
            for c in conds.iter() {
                conjuncts(c, &mut bits);
            }
            bits.iter().any(|(x, y)| at(pos.0, x) && at(pos.1, y))
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
                Index::Block { start: IExpr::Mul(x, y), len } if *d == Dim::Sym(Sym::T) => {
                    // `i*C +: C` with `i < NT` (C symbolic, or the literal it became after specialisation).
                    let step_is_len = |f: &IExpr| match (f, len) {
                        (IExpr::Sym(Sym::C), Dim::Sym(Sym::C)) => true,
                        (IExpr::Lit(n), Dim::Lit(m)) => *n >= 0 && *n as usize == *m,
                        _ => false,
                    };
                    match (&**x, &**y) {
                        (IExpr::Var(v), f) | (f, IExpr::Var(v)) if step_is_len(f) => {
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

/// Structure of a square tile's values above the diagonal, valid for every value the tile ever holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upper {
    /// Not yet constrained (the optimistic start of the fixpoint; never assigned at the end).
    Top,
    /// Exact zeros above the diagonal (lower-triangular).
    Zero,
    /// `−∞` above the diagonal (segment sums before `exp_nonpos`).
    NegInf,
    /// Nothing known.
    Any,
}

fn meet(x: Upper, y: Upper) -> Upper {
    match (x, y) {
        (Upper::Top, v) | (v, Upper::Top) => v,
        (a, b) if a == b => a,
        _ => Upper::Any,
    }
}

/// For every tile, what holds above its diagonal whatever assignment produced its value: the greatest fixpoint
/// over all assignments of the kernel (independent of control flow). Lets a matmul whose left operand is
/// lower-triangular skip the zero blocks (Cranelift's `Triangular::ALower`), found from kernel-IR ops alone.
pub fn upper_structure(k: &Kernel, shapes: &[(usize, usize)]) -> Vec<Upper> {
    let sq = |t: &TileId| shapes.get(t.0 as usize).is_some_and(|(r, c)| r == c && *r > 1);
    let mut assigns: Vec<(TileId, &Op)> = Vec::new();
    visit(&k.body, &mut |s| {
        if let Stmt::Assign { dst, op } = s {
            assigns.push((*dst, op));
        }
    });
    let mut st: Vec<Upper> =
        (0..shapes.len()).map(|i| if sq(&TileId(i as u32)) { Upper::Top } else { Upper::Any }).collect();
    loop {
        let g = |t: &TileId| st.get(t.0 as usize).copied().unwrap_or(Upper::Any);
        let zero = |t: &TileId| sq(t) && matches!(g(t), Upper::Zero | Upper::Top);
        let mut next: Vec<Upper> = st.iter().map(|u| if *u == Upper::Any { Upper::Any } else { Upper::Top }).collect();
        for (dst, op) in &assigns {
            let produced = match op {
                Op::Zeros(_) | Op::Eye(_) | Op::Tril { .. } | Op::LevelMask { .. } | Op::MatmulGatedCausal { .. } => {
                    Upper::Zero
                }
                Op::SegSum(..) => Upper::NegInf,
                Op::Unary(UnOp::ExpNonpos, a) if sq(a) && matches!(g(a), Upper::NegInf | Upper::Top) => Upper::Zero,
                Op::Unary(UnOp::Neg, a) if zero(a) => Upper::Zero,
                Op::Binary(BinOp::Mul, x, y) if zero(x) || zero(y) => Upper::Zero,
                Op::Binary(BinOp::Add | BinOp::Sub, x, y) if zero(x) && zero(y) => Upper::Zero,
                Op::Matmul { a, b, ta: false, tb: false } if zero(a) && zero(b) => Upper::Zero,
                Op::TriSolve { b, .. } if zero(b) => Upper::Zero,
                Op::MaskRows { a, .. } if zero(a) => Upper::Zero,
                _ => Upper::Any,
            };
            if let Some(n) = next.get_mut(dst.0 as usize) {
                *n = meet(*n, produced);
            }
        }
        if next == st {
            return st;
        }
        st = next;
    }
}

/// The tiles an op reads, mutably (for renaming passes); the same enumeration as [`op_reads`].
pub fn op_reads_mut(op: &mut Op) -> Vec<&mut TileId> {
    match op {
        Op::Load { .. } | Op::Zeros(_) | Op::Eye(_) | Op::Const(_) | Op::Mask { .. } => vec![],
        Op::LevelMask { lam, .. } => lam.iter_mut().collect(),
        Op::Select { a, .. } | Op::RowSum(a) | Op::ColSum(a) => vec![a],
        Op::Unary(_, a)
        | Op::L2Norm(a)
        | Op::CumSum(a)
        | Op::SegSum(a)
        | Op::SuffixSum(a)
        | Op::Row(a, _)
        | Op::Col(a, _)
        | Op::Transpose(a)
        | Op::Tril { a, .. }
        | Op::MaskRows { a, .. }
        | Op::Broadcast(a, _) => vec![a],
        Op::Binary(_, x, y) => vec![x, y],
        Op::Matmul { a, b, .. } | Op::TriSolve { a, b } => vec![a, b],
        Op::MatmulGatedCausal { a, b, g } => vec![a, b, g],
    }
}

/// Tiles an op reads.
pub fn op_reads(op: &Op) -> Vec<TileId> {
    match op {
        Op::Load { .. } | Op::Zeros(_) | Op::Eye(_) | Op::Const(_) | Op::Mask { .. } => vec![],
        Op::LevelMask { lam, .. } => lam.iter().copied().collect(),
        Op::Select { a, .. } | Op::RowSum(a) | Op::ColSum(a) => vec![*a],
        Op::Unary(_, a)
        | Op::L2Norm(a)
        | Op::CumSum(a)
        | Op::SegSum(a)
        | Op::SuffixSum(a)
        | Op::Row(a, _)
        | Op::Col(a, _)
        | Op::Transpose(a)
        | Op::Tril { a, .. }
        | Op::MaskRows { a, .. }
        | Op::Broadcast(a, _) => vec![*a],
        Op::Binary(_, x, y) => vec![*x, *y],
        Op::Matmul { a, b, .. } | Op::TriSolve { a, b } => vec![*a, *b],
        Op::MatmulGatedCausal { a, b, g } => vec![*a, *b, *g],
    }
}

/// For every tile: true when it is square and each of its reads in the kernel is an elementwise `mul` (same
/// shape, no broadcast) with another tile that is exactly zero above the diagonal ([`Upper::Zero`]), so its
/// entries above the diagonal never reach a result, as long as they are finite. Lets a matmul into it compute
/// only the blocks touching the lower triangle (Cranelift's `Triangular::CLower`, e.g. `Q·Kᵀ` before the decay mask);
/// the translator then zeroes the rest. Decided from kernel-IR ops alone.
pub fn upper_unobserved(k: &Kernel, shapes: &[(usize, usize)], upper: &[Upper]) -> Vec<bool> {
    let shape = |t: &TileId| shapes.get(t.0 as usize).copied();
    let mut ok: Vec<bool> = shapes.iter().map(|(r, c)| r == c && *r > 1).collect();
    visit(&k.body, &mut |s| match s {
        Stmt::Assign { op: Op::Binary(BinOp::Mul, x, y), .. } => {
            for (t, z) in [(x, y), (y, x)] {
                let fine = t != z && shape(t) == shape(z) && upper.get(z.0 as usize) == Some(&Upper::Zero);
                if !fine {
                    if let Some(o) = ok.get_mut(t.0 as usize) {
                        *o = false;
                    }
                }
            }
        }
        Stmt::Assign { op, .. } => {
            for t in op_reads(op) {
                if let Some(o) = ok.get_mut(t.0 as usize) {
                    *o = false;
                }
            }
        }
        Stmt::Store { src, .. } => {
            if let Some(o) = ok.get_mut(src.0 as usize) {
                *o = false;
            }
        }
        Stmt::For { .. } | Stmt::If { .. } => {}
    });
    ok
}

/// Buffers a kernel touches.
pub fn used_buffers(k: &Kernel) -> Vec<BufId> {
    let mut used = Vec::new();
    visit(&k.body, &mut |s| {
        let buf = match s {
            Stmt::Store { buf, .. } => Some(*buf),
            Stmt::Assign { op: Op::Load { buf, .. }, .. } => Some(*buf),
            _ => None,
        };
        if let Some(b) = buf {
            if !used.contains(&b) {
                used.push(b);
            }
        }
    });
    used
}

/// A loop's carried tiles: assigned in its body and live into the next iteration or out of the loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carried {
    /// The loop variable.
    pub var: VarId,
    /// The tiles whose value flows from one iteration to the next (or out of the loop), in id order: for
    /// `scf.for`, the `iter_args`.
    pub tiles: Vec<TileId>,
}

/// For every `for` loop of `k` (outermost first, then nested, in program order): the tiles it carries. A tile
/// is carried when the loop body assigns it and either reads it before assigning it on some path through the
/// body (a value from the previous iteration) or the code after the loop reads it before assigning it.
pub fn loop_carried(k: &Kernel) -> Vec<Carried> {
    let mut out = Vec::new();
    collect_loops(&k.body, &mut out);
    out
}

fn collect_loops(body: &[Stmt], out: &mut Vec<Carried>) {
    for (i, s) in body.iter().enumerate() {
        match s {
            Stmt::For { var, body: inner } => {
                let mut assigned = Vec::new();
                visit(inner, &mut |s| {
                    if let Stmt::Assign { dst, .. } = s {
                        if !assigned.contains(dst) {
                            assigned.push(*dst);
                        }
                    }
                });
                let mut upward = Vec::new();
                exposed_reads(inner, &mut Vec::new(), &mut upward);
                let mut after = Vec::new();
                exposed_reads(&body[i + 1..], &mut Vec::new(), &mut after);
                let mut tiles: Vec<TileId> =
                    assigned.into_iter().filter(|t| upward.contains(t) || after.contains(t)).collect();
                tiles.sort();
                out.push(Carried { var: *var, tiles });
                collect_loops(inner, out);
            }
            Stmt::If { then, els, .. } => {
                collect_loops(then, out);
                collect_loops(els, out);
            }
            _ => {}
        }
    }
}

/// Tiles read in `body` before any assignment to them on some path (`defined` holds the tiles surely
/// assigned so far).
fn exposed_reads(body: &[Stmt], defined: &mut Vec<TileId>, out: &mut Vec<TileId>) {
    let read = |t: TileId, defined: &Vec<TileId>, out: &mut Vec<TileId>| {
        if !defined.contains(&t) && !out.contains(&t) {
            out.push(t);
        }
    };
    for s in body {
        match s {
            Stmt::Assign { dst, op } => {
                for t in op_reads(op) {
                    read(t, defined, out);
                }
                if !defined.contains(dst) {
                    defined.push(*dst);
                }
            }
            Stmt::Store { src, .. } => read(*src, defined, out),
            Stmt::For { body, .. } => {
                // The body may run zero times: what it defines is not surely defined after it.
                let mut d = defined.clone();
                exposed_reads(body, &mut d, out);
            }
            Stmt::If { then, els, .. } => {
                let mut dt = defined.clone();
                exposed_reads(then, &mut dt, out);
                let mut de = defined.clone();
                exposed_reads(els, &mut de, out);
                for t in dt {
                    if de.contains(&t) && !defined.contains(&t) {
                        defined.push(t);
                    }
                }
            }
        }
    }
}
