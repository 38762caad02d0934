//! `dce`: dead-code elimination.
//!
//! Per kernel: an assignment whose value no later statement can read (backward liveness over the structured
//! body: a loop may run zero or more times, either branch of an `if` may run; an assignment that is itself dead
//! makes nothing live) is removed; stores are the only effects and always stay. Then `for` loops with an empty
//! body and `if`s with two empty branches are removed, and tile declarations and loop variables nothing refers
//! to any more are dropped, the remaining ones renumbered in order (names unchanged; grid variables stay). The
//! result computes bit for bit what the input computes.

use std::collections::BTreeSet;

use super::cse::rename_reads;
use crate::analysis::op_reads;
use crate::kernel::{Cond, IExpr, Index, Kernel, Op, Pred, Program, Stmt, TileId, VarId};

type Live = BTreeSet<TileId>;

/// Removes dead assignments, empty loops and conditionals, and unused tiles and loop variables of every kernel of
/// `p` (see the module doc).
pub fn dce(p: &Program) -> Program {
    let mut out = p.clone();
    for k in &mut out.kernels {
        dce_kernel(k);
    }
    out
}

/// Runs [`dce`] on one kernel; returns the number of statements removed.
pub fn dce_kernel(k: &mut Kernel) -> usize {
    let before = count_stmts(&k.body);
    // Removing a loop's dead assignments can make others dead: sweep until nothing changes.
    loop {
        let n = count_stmts(&k.body);
        sweep(&mut k.body, Live::new());
        if count_stmts(&k.body) == n {
            break;
        }
    }
    drop_unused_tiles(k);
    drop_unused_vars(k);
    before - count_stmts(&k.body)
}

fn count_stmts(body: &[Stmt]) -> usize {
    let mut n = 0;
    crate::kernel::visit(body, &mut |_| n += 1);
    n
}

/// The tiles live before `body` given those live after it (nothing is removed).
fn live_in(body: &[Stmt], after: &Live) -> Live {
    let mut live = after.clone();
    for s in body.iter().rev() {
        match s {
            Stmt::Assign { dst, op } => {
                if live.remove(dst) {
                    live.extend(op_reads(op));
                }
            }
            Stmt::Store { src, .. } => {
                live.insert(*src);
            }
            Stmt::For { body, .. } => live = loop_live(body, &live),
            Stmt::If { then, els, .. } => {
                let mut t = live_in(then, &live);
                t.extend(live_in(els, &live));
                live = t;
            }
        }
    }
    live
}

/// The tiles live at the top (and bottom) of a loop over `body` given those live after it: the least fixpoint
/// of `L = after ∪ live_in(body, L)`; also what is live before the loop.
fn loop_live(body: &[Stmt], after: &Live) -> Live {
    let mut l = after.clone();
    loop {
        let mut next = after.clone();
        next.extend(live_in(body, &l));
        if next == l {
            return l;
        }
        l = next;
    }
}

/// Removes the dead assignments of `body` (given the tiles live after it) and empty loops and conditionals;
/// returns the tiles live before it.
fn sweep(body: &mut Vec<Stmt>, after: Live) -> Live {
    let mut live = after;
    let old = std::mem::take(body);
    let mut kept = Vec::with_capacity(old.len());
    for mut s in old.into_iter().rev() {
        match &mut s {
            Stmt::Assign { dst, op } => {
                if !live.remove(dst) {
                    continue;
                }
                live.extend(op_reads(op));
            }
            Stmt::Store { src, .. } => {
                live.insert(*src);
            }
            Stmt::For { body, .. } => {
                let l = loop_live(body, &live);
                sweep(body, l.clone());
                if body.is_empty() {
                    continue;
                }
                live = l;
            }
            Stmt::If { then, els, .. } => {
                let mut t = sweep(then, live.clone());
                t.extend(sweep(els, live.clone()));
                if then.is_empty() && els.is_empty() {
                    continue;
                }
                live = t;
            }
        }
        kept.push(s);
    }
    kept.reverse();
    *body = kept;
    live
}

/// Drops tile declarations no statement refers to; renumbers the rest in order.
fn drop_unused_tiles(k: &mut Kernel) {
    let mut used = vec![false; k.tiles.len()];
    crate::kernel::visit(&k.body, &mut |s| match s {
        Stmt::Assign { dst, op } => {
            for t in op_reads(op).into_iter().chain([*dst]) {
                if let Some(u) = used.get_mut(t.0 as usize) {
                    *u = true;
                }
            }
        }
        Stmt::Store { src, .. } => {
            if let Some(u) = used.get_mut(src.0 as usize) {
                *u = true;
            }
        }
        _ => {}
    });
    if used.iter().all(|u| *u) {
        return;
    }
    let mut map = std::collections::HashMap::new();
    let mut tiles = Vec::new();
    for (i, t) in k.tiles.iter().enumerate() {
        if used[i] {
            map.insert(TileId(i as u32), TileId(tiles.len() as u32));
            tiles.push(t.clone());
        }
    }
    k.tiles = tiles;
    map_stmts(&mut k.body, &mut |s| match s {
        Stmt::Assign { dst, op } => {
            *dst = map[&*dst];
            rename_reads(op, &map);
        }
        Stmt::Store { src, .. } => *src = map[&*src],
        _ => {}
    });
}

/// Drops loop variables no statement refers to (grid variables stay); renumbers the rest in order.
fn drop_unused_vars(k: &mut Kernel) {
    let mut used = vec![false; k.vars.len()];
    for g in &k.grid {
        if let Some(u) = used.get_mut(g.0 as usize) {
            *u = true;
        }
    }
    let mut body = std::mem::take(&mut k.body);
    map_vars(&mut body, &mut |v| {
        if let Some(u) = used.get_mut(v.0 as usize) {
            *u = true;
        }
    });
    if used.iter().all(|u| *u) {
        k.body = body;
        return;
    }
    let mut map = std::collections::HashMap::new();
    let mut vars = Vec::new();
    for (i, v) in k.vars.iter().enumerate() {
        if used[i] {
            map.insert(VarId(i as u32), VarId(vars.len() as u32));
            vars.push(v.clone());
        }
    }
    k.vars = vars;
    for g in &mut k.grid {
        *g = map[&*g];
    }
    map_vars(&mut body, &mut |v| *v = map[&*v]);
    k.body = body;
}

fn map_stmts(body: &mut [Stmt], f: &mut impl FnMut(&mut Stmt)) {
    for s in body {
        f(s);
        match s {
            Stmt::For { body, .. } => map_stmts(body, f),
            Stmt::If { then, els, .. } => {
                map_stmts(then, f);
                map_stmts(els, f);
            }
            _ => {}
        }
    }
}

/// Calls `f` on every variable of `body`: loop variables and those inside integer expressions.
fn map_vars(body: &mut [Stmt], f: &mut impl FnMut(&mut VarId)) {
    fn ie(e: &mut IExpr, f: &mut impl FnMut(&mut VarId)) {
        match e {
            IExpr::Var(v) => f(v),
            IExpr::Lit(_) | IExpr::Sym(_) => {}
            IExpr::Add(a, b) | IExpr::Mul(a, b) => {
                ie(a, f);
                ie(b, f);
            }
            IExpr::Tz(a) => ie(a, f),
        }
    }
    fn index(ix: &mut [Index], f: &mut impl FnMut(&mut VarId)) {
        for i in ix {
            match i {
                Index::At(e) | Index::Block { start: e, .. } => ie(e, f),
                Index::Full => {}
            }
        }
    }
    fn cond(c: &mut Cond, f: &mut impl FnMut(&mut VarId)) {
        match c {
            Cond::Bit { x, bit: y } | Cond::LowOnes { x, bits: y } | Cond::LowZeros { x, bits: y } | Cond::Ge(x, y) => {
                ie(x, f);
                ie(y, f);
            }
            Cond::Not(a) => cond(a, f),
            Cond::And(a, b) => {
                cond(a, f);
                cond(b, f);
            }
        }
    }
    for s in body {
        match s {
            Stmt::Assign { op, .. } => match op {
                Op::Load { index: ix, .. } => index(ix, f),
                Op::Row(_, e) | Op::Col(_, e) | Op::MaskRows { start: e, .. } => ie(e, f),
                Op::Mask { pred, .. } | Op::Select { pred, .. } => match pred {
                    Pred::Level(e) | Pred::RowIs(e) | Pred::ColIs(e) | Pred::RowBelow { start: e, .. } => ie(e, f),
                    Pred::All | Pred::Lower | Pred::StrictLower | Pred::Diag => {}
                },
                _ => {}
            },
            Stmt::Store { index: ix, .. } => index(ix, f),
            Stmt::For { var, body } => {
                f(var);
                map_vars(body, f);
            }
            Stmt::If { cond: c, then, els } => {
                cond(c, f);
                map_vars(then, f);
                map_vars(els, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{BinOp, BufId, Dim, TileDecl, UnOp, Var};

    fn set(i: u32, op: Op) -> Stmt {
        Stmt::Assign { dst: TileId(i), op }
    }

    #[test]
    fn removes_dead_code_and_keeps_carried_tiles() {
        let t = TileId;
        let z = Op::Zeros([Dim::Lit(1), Dim::Lit(1)]);
        let mut k = Kernel {
            name: "k".into(),
            grid: vec![VarId(0)],
            vars: vec![
                Var { name: "b".into(), extent: Dim::Lit(2) },
                Var { name: "i".into(), extent: Dim::Lit(3) },
                Var { name: "j".into(), extent: Dim::Lit(3) },
            ],
            tiles: (0..5).map(|i| TileDecl { name: format!("t{i}"), shape: [Dim::Lit(1), Dim::Lit(1)] }).collect(),
            body: vec![
                set(0, z.clone()),
                set(1, Op::Const(2.0)), // dead: overwritten before any read
                set(1, Op::Const(3.0)),
                // j's loop only computes a dead value.
                Stmt::For { var: VarId(2), body: vec![set(4, Op::Unary(UnOp::Exp, t(1)))] },
                Stmt::For {
                    var: VarId(1),
                    body: vec![set(2, Op::Binary(BinOp::Mul, t(0), t(1))), set(0, Op::Binary(BinOp::Add, t(0), t(2)))],
                },
                set(3, Op::Unary(UnOp::Neg, t(0))), // dead
                Stmt::Store { buf: BufId(0), index: vec![Index::At(IExpr::Var(VarId(0)))], src: t(0) },
            ],
        };
        assert_eq!(dce_kernel(&mut k), 4);
        assert_eq!(k.tiles.len(), 3);
        assert_eq!(k.vars.len(), 2);
        assert_eq!(k.body.len(), 4);
        assert_eq!(k.body[1], set(1, Op::Const(3.0)));
        assert!(matches!(&k.body[2], Stmt::For { var: VarId(1), body } if body.len() == 2));
    }
}
