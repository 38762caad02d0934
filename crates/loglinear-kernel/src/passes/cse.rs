//! `cse`: common-subexpression elimination of identical tile assignments.
//!
//! Every op is a pure function of its operand tiles, its integer expressions (grid and loop variables, sizes)
//! and, for a `load`, the buffer's contents. A later assignment `%y = op` whose op is identical (operands,
//! indices, constants bit for bit) to an earlier `%x = op` is removed and every read of `%y` reads `%x`, when:
//!
//! * `%x` and `%y` are each assigned exactly once in the kernel (tiles are mutable: a single assignment makes the
//!   value a tile holds after it unique, and every read of `%y` is dominated by its assignment — definite
//!   assignment — hence by `%x`'s);
//! * no operand of the op is reassigned between the two, and a `load`'s buffer is not stored to between them;
//! * `%x` is assigned in the same block as `%y` or an enclosing one: what a loop or conditional body computes is
//!   not reused after it; an earlier value is reused inside a loop or branch only when the body assigns none of
//!   its operands and stores to none of its buffers, and mentions no loop variable of the loop.
//!
//! The removed tile's declaration stays (unreferenced) for `dce` to drop. The result computes bit for bit what
//! the input computes.

use std::collections::HashMap;

use crate::analysis::op_reads;
use crate::kernel::{BufId, IExpr, Index, Kernel, Op, Pred, Program, Stmt, TileId, VarId};

/// Removes repeated identical tile assignments of every kernel of `p` (see the module doc).
pub fn cse(p: &Program) -> Program {
    let mut out = p.clone();
    for k in &mut out.kernels {
        cse_kernel(k);
    }
    out
}

/// The number of assignments removed from `k`.
pub fn cse_kernel(k: &mut Kernel) -> usize {
    let mut count = vec![0usize; k.tiles.len()];
    crate::kernel::visit(&k.body, &mut |s| {
        if let Stmt::Assign { dst, .. } = s {
            if let Some(c) = count.get_mut(dst.0 as usize) {
                *c += 1;
            }
        }
    });
    let once: Vec<bool> = count.iter().map(|c| *c == 1).collect();
    let mut c = Cse { once, rename: HashMap::new(), removed: 0 };
    let mut body = std::mem::take(&mut k.body);
    c.block(&mut body, Vec::new());
    k.body = body;
    c.removed
}

/// An available value: `dst` holds `op` (its key).
#[derive(Clone)]
struct Avail {
    key: String,
    dst: TileId,
    reads: Vec<TileId>,
    vars: Vec<VarId>,
    buf: Option<BufId>,
}

/// What a block may change: tiles assigned, buffers stored to, loop variables bound.
#[derive(Default)]
struct Effects {
    tiles: Vec<TileId>,
    bufs: Vec<BufId>,
    vars: Vec<VarId>,
}

impl Effects {
    fn of(body: &[Stmt]) -> Effects {
        let mut e = Effects::default();
        crate::kernel::visit(body, &mut |s| match s {
            Stmt::Assign { dst, .. } => e.tiles.push(*dst),
            Stmt::Store { buf, .. } => e.bufs.push(*buf),
            Stmt::For { var, .. } => e.vars.push(*var),
            Stmt::If { .. } => {}
        });
        e
    }

    fn kills(&self, a: &Avail) -> bool {
        self.tiles.contains(&a.dst)
            || a.reads.iter().any(|t| self.tiles.contains(t))
            || a.buf.is_some_and(|b| self.bufs.contains(&b))
            || a.vars.iter().any(|v| self.vars.contains(v))
    }
}

fn iexpr_vars(e: &IExpr, out: &mut Vec<VarId>) {
    match e {
        IExpr::Var(v) => out.push(*v),
        IExpr::Lit(_) | IExpr::Sym(_) => {}
        IExpr::Add(a, b) | IExpr::Mul(a, b) => {
            iexpr_vars(a, out);
            iexpr_vars(b, out);
        }
        IExpr::Tz(a) => iexpr_vars(a, out),
    }
}

/// The loop variables an op's integer expressions mention.
fn op_vars(op: &Op) -> Vec<VarId> {
    let mut v = Vec::new();
    let pred = |p: &Pred, v: &mut Vec<VarId>| match p {
        Pred::Level(e) | Pred::RowIs(e) | Pred::ColIs(e) | Pred::RowBelow { start: e, .. } => iexpr_vars(e, v),
        Pred::All | Pred::Lower | Pred::StrictLower | Pred::Diag => {}
    };
    match op {
        Op::Load { index, .. } => {
            for i in index {
                match i {
                    Index::At(e) | Index::Block { start: e, .. } => iexpr_vars(e, &mut v),
                    Index::Full => {}
                }
            }
        }
        Op::Row(_, e) | Op::Col(_, e) | Op::MaskRows { start: e, .. } => iexpr_vars(e, &mut v),
        Op::Mask { pred: p, .. } | Op::Select { pred: p, .. } => pred(p, &mut v),
        _ => {}
    }
    v
}

fn rename_tile(t: &mut TileId, map: &HashMap<TileId, TileId>) {
    if let Some(x) = map.get(t) {
        *t = *x;
    }
}

/// Applies `map` to every tile an op reads.
pub(crate) fn rename_reads(op: &mut Op, map: &HashMap<TileId, TileId>) {
    if map.is_empty() {
        return;
    }
    for t in crate::analysis::op_reads_mut(op) {
        rename_tile(t, map);
    }
}

struct Cse {
    once: Vec<bool>,
    rename: HashMap<TileId, TileId>,
    removed: usize,
}

impl Cse {
    fn once(&self, t: TileId) -> bool {
        self.once.get(t.0 as usize).copied().unwrap_or(false)
    }

    /// Rewrites `body` in place given the values available on entry; returns those available at its end.
    fn block(&mut self, body: &mut Vec<Stmt>, mut avail: Vec<Avail>) -> Vec<Avail> {
        let old = std::mem::take(body);
        for mut s in old {
            match &mut s {
                Stmt::Assign { dst, op } => {
                    rename_reads(op, &self.rename);
                    let dst = *dst;
                    let reads = op_reads(op);
                    // `{:?}` tells constants apart bit for bit (`0.0` from `-0.0`), unlike `==`.
                    let key = format!("{op:?}");
                    if self.once(dst) && !reads.contains(&dst) {
                        if let Some(a) = avail.iter().find(|a| a.key == key) {
                            self.rename.insert(dst, a.dst);
                            self.removed += 1;
                            continue;
                        }
                    }
                    avail.retain(|a| a.dst != dst && !a.reads.contains(&dst));
                    if self.once(dst) && !reads.contains(&dst) {
                        let buf = match op {
                            Op::Load { buf, .. } => Some(*buf),
                            _ => None,
                        };
                        avail.push(Avail { key, dst, reads, vars: op_vars(op), buf });
                    }
                }
                Stmt::Store { buf, src, .. } => {
                    rename_tile(src, &self.rename);
                    let b = *buf;
                    avail.retain(|a| a.buf != Some(b));
                }
                Stmt::For { var, body } => {
                    let mut fx = Effects::of(body);
                    fx.vars.push(*var);
                    avail.retain(|a| !fx.kills(a));
                    self.block(body, avail.clone());
                }
                Stmt::If { then, els, .. } => {
                    let mut fx = Effects::of(then);
                    let fe = Effects::of(els);
                    fx.tiles.extend(fe.tiles);
                    fx.bufs.extend(fe.bufs);
                    fx.vars.extend(fe.vars);
                    avail.retain(|a| !fx.kills(a));
                    self.block(then, avail.clone());
                    self.block(els, avail.clone());
                }
            }
            body.push(s);
        }
        avail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{BinOp, Dim, TileDecl, UnOp, Var};

    fn kernel(tiles: usize, body: Vec<Stmt>) -> Kernel {
        Kernel {
            name: "k".into(),
            grid: vec![],
            vars: vec![Var { name: "i".into(), extent: Dim::Lit(3) }],
            tiles: (0..tiles).map(|i| TileDecl { name: format!("t{i}"), shape: [Dim::Lit(2), Dim::Lit(2)] }).collect(),
            body,
        }
    }

    fn set(i: u32, op: Op) -> Stmt {
        Stmt::Assign { dst: TileId(i), op }
    }

    #[test]
    fn shares_identical_ops_and_respects_reassignment() {
        let t = TileId;
        let mut k = kernel(
            6,
            vec![
                set(0, Op::Zeros([Dim::Lit(2), Dim::Lit(2)])),
                set(1, Op::Unary(UnOp::Exp, t(0))),
                set(2, Op::Unary(UnOp::Exp, t(0))), // same as t1
                set(3, Op::Binary(BinOp::Mul, t(2), t(1))),
                set(4, Op::Const(0.0)),
                set(5, Op::Const(-0.0)), // differs bit for bit
            ],
        );
        assert_eq!(cse_kernel(&mut k), 1);
        assert_eq!(k.body.len(), 5);
        assert_eq!(k.body[2], set(3, Op::Binary(BinOp::Mul, t(1), t(1))));

        // A reassigned operand (in a loop body) blocks sharing.
        let mut k = kernel(
            4,
            vec![
                set(0, Op::Zeros([Dim::Lit(2), Dim::Lit(2)])),
                set(1, Op::Unary(UnOp::Exp, t(0))),
                Stmt::For {
                    var: VarId(0),
                    body: vec![set(2, Op::Unary(UnOp::Exp, t(0))), set(0, Op::Binary(BinOp::Add, t(0), t(2)))],
                },
                set(3, Op::Unary(UnOp::Exp, t(0))),
            ],
        );
        assert_eq!(cse_kernel(&mut k), 0);
    }
}
