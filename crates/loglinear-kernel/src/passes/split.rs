//! `split_v`: splits the value dimension `V` of a kernel across grid programs, so that each program holds
//! `[·, v_block]` tiles instead of `[·, V]` ones — what a GPU target asks for when a kernel's tiles do not fit
//! its workgroup memory, and what gives a kernel with few programs (the level scan's `B·H·M`, the decode step's
//! `B·H`) more of them.
//!
//! The rewrite is a property of the kernel IR, not of a variant: a kernel is **V-separable** when no operation
//! mixes the columns of `V` — no matmul contracts over `V`, no reduction, normalisation, triangular structure,
//! row/column pick or index predicate runs along a `V` dimension, and every load and store touches a `V` axis
//! of a buffer only as a whole (`:`). Then column block `j` of every `V`-wide tile depends only on column block
//! `j` of the inputs and states, and the kernel gains a grid variable `vb < V / v_block`:
//!
//! * every tile dimension `V` becomes the literal `v_block`; every `:` along a buffer's `V` axis becomes the
//!   block `vb·v_block +: v_block`;
//! * a store to a buffer without a `V` axis (the chunk kernel's `K`-side scratch, its decay) would be written by
//!   every `vb` program: it runs under `if !(vb >= 1)`, so one program writes it (the verifier accepts a store
//!   pinned to one value of a grid variable as disjoint across it);
//! * kernels without any `V` dimension, and kernels that are not separable, are left as they are (the pass
//!   reports why).
//!
//! The `K`-side work of a split kernel (gates, `q kᵀ`, WY solves) is repeated by each of its `V / v_block`
//! programs: the schedule trades that for smaller tiles and more parallelism. Values are unchanged: each output
//! element is computed by the same operations in the same order.

use crate::kernel::{Buffer, Cond, Dim, IExpr, Index, Kernel, Op, Program, Shape2, Stmt, Sym, Var, VarId};

fn is_v(d: Dim) -> bool {
    d == Dim::Sym(Sym::V)
}

fn has_v(s: Shape2) -> bool {
    is_v(s[0]) || is_v(s[1])
}

/// What the pass did to each kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitOutcome {
    /// Split into `V / v_block` programs along `V`.
    Split,
    /// No dimension `V`: nothing to split.
    NoV,
    /// Not separable along `V`, and why.
    Inseparable(String),
}

/// Whether (and how) kernel `k` of a program with buffers `bufs` can be split along `V`.
pub fn separable(k: &Kernel, bufs: &[Buffer]) -> SplitOutcome {
    let mut uses_v = k.tiles.iter().any(|t| has_v(t.shape));
    let mut why: Option<String> = None;
    let shape = |t: crate::kernel::TileId| k.tiles.get(t.0 as usize).map(|d| d.shape);
    let tname = |t: crate::kernel::TileId| k.tiles.get(t.0 as usize).map_or("?".to_string(), |d| d.name.clone());
    let mut check_index = |buf: crate::kernel::BufId, index: &[Index], what: &str, why: &mut Option<String>| {
        let Some(b) = bufs.get(buf.0 as usize) else { return };
        for (i, d) in index.iter().zip(&b.shape) {
            if is_v(*d) {
                uses_v = true;
                if !matches!(i, Index::Full) && why.is_none() {
                    *why = Some(format!("{what} `{}` at one index of its V axis", b.name));
                }
            }
        }
    };
    let mut stack: Vec<&[Stmt]> = vec![&k.body];
    while let Some(body) = stack.pop() {
        for s in body {
            match s {
                Stmt::Assign { dst, op } => {
                    if let Op::Load { buf, index } = op {
                        check_index(*buf, index, "loads", &mut why);
                        continue;
                    }
                    if why.is_some() {
                        continue;
                    }
                    let rows_v = |t| shape(t).is_some_and(|s| is_v(s[0]));
                    let cols_v = |t| shape(t).is_some_and(|s| is_v(s[1]));
                    let any_v = |t| shape(t).is_some_and(has_v);
                    let bad = match op {
                        Op::Eye(n) | Op::LevelMask { n, .. } => is_v(*n),
                        Op::L2Norm(a) | Op::RowSum(a) | Op::Col(a, _) => cols_v(*a),
                        Op::Matmul { a, ta, .. } => {
                            if *ta {
                                rows_v(*a)
                            } else {
                                cols_v(*a)
                            }
                        }
                        Op::MatmulGatedCausal { a, b, .. } => any_v(*a) || any_v(*b),
                        Op::CumSum(a)
                        | Op::SegSum(a)
                        | Op::SuffixSum(a)
                        | Op::Row(a, _)
                        | Op::ColSum(a)
                        | Op::MaskRows { a, .. } => rows_v(*a),
                        Op::Tril { a, .. } => any_v(*a),
                        Op::TriSolve { a, b } => any_v(*a) || rows_v(*b),
                        Op::Mask { shape, .. } | Op::Select { shape, .. } => has_v(*shape),
                        _ => false,
                    };
                    if bad {
                        why = Some(format!("%{} = {} mixes the columns of V", tname(*dst), op_name(op)));
                    }
                }
                Stmt::Store { buf, index, .. } => check_index(*buf, index, "stores", &mut why),
                Stmt::For { body, .. } => stack.push(body),
                Stmt::If { then, els, .. } => {
                    stack.push(then);
                    stack.push(els);
                }
            }
        }
    }
    match (uses_v, why) {
        (false, _) => SplitOutcome::NoV,
        (true, Some(w)) => SplitOutcome::Inseparable(w),
        (true, None) => SplitOutcome::Split,
    }
}

fn op_name(op: &Op) -> String {
    let dbg = format!("{op:?}");
    let end = dbg.find([' ', '(', '{']).unwrap_or(dbg.len());
    dbg[..end].to_string()
}

/// Splits every V-separable kernel of `p` along `V = v` into blocks of `v_block` columns (`v_block` divides `v`,
/// `v_block < v`; otherwise `p` is returned unchanged). Returns the program and, per kernel, what was done.
pub fn split_v(p: &Program, v: usize, v_block: usize) -> (Program, Vec<(String, SplitOutcome)>) {
    let mut out = p.clone();
    let mut report = Vec::new();
    if v_block == 0 || v_block >= v || !v.is_multiple_of(v_block) {
        return (out, report);
    }
    let nv = v / v_block;
    for k in &mut out.kernels {
        let o = separable(k, &p.buffers);
        if o == SplitOutcome::Split {
            split_kernel(k, &p.buffers, v_block, nv);
        }
        report.push((k.name.clone(), o));
    }
    (out, report)
}

fn split_kernel(k: &mut Kernel, bufs: &[Buffer], vbl: usize, nv: usize) {
    let mut name = "vb".to_string();
    while k.vars.iter().any(|x| x.name == name) {
        name.push('_');
    }
    k.vars.push(Var { name, extent: Dim::Lit(nv) });
    let vb = VarId(k.vars.len() as u32 - 1);
    k.grid.push(vb);
    let dim = |d: Dim| if is_v(d) { Dim::Lit(vbl) } else { d };
    for t in &mut k.tiles {
        t.shape = [dim(t.shape[0]), dim(t.shape[1])];
    }
    let block = || Index::Block {
        start: IExpr::Mul(Box::new(IExpr::Var(vb)), Box::new(IExpr::Lit(vbl as i64))),
        len: Dim::Lit(vbl),
    };
    let fix_index = |buf: &Buffer, index: &mut [Index]| {
        for (i, d) in index.iter_mut().zip(&buf.shape) {
            if is_v(*d) {
                *i = block();
            }
        }
    };
    fn walk(body: &mut [Stmt], f: &mut dyn FnMut(&mut Stmt) -> Option<Stmt>) {
        for s in body.iter_mut() {
            if let Some(new) = f(s) {
                *s = new;
                continue;
            }
            match s {
                Stmt::For { body, .. } => walk(body, f),
                Stmt::If { then, els, .. } => {
                    walk(then, f);
                    walk(els, f);
                }
                _ => {}
            }
        }
    }
    let mut f = |s: &mut Stmt| -> Option<Stmt> {
        match s {
            Stmt::Assign { op, .. } => {
                match op {
                    Op::Load { buf, index } => fix_index(&bufs[buf.0 as usize], index),
                    Op::Zeros(s) | Op::Broadcast(_, s) => *s = [dim(s[0]), dim(s[1])],
                    _ => {}
                }
                None
            }
            Stmt::Store { buf, index, .. } => {
                let b = &bufs[buf.0 as usize];
                if b.shape.iter().any(|d| is_v(*d)) {
                    fix_index(b, index);
                    None
                } else {
                    let first = Cond::Not(Box::new(Cond::Ge(IExpr::Var(vb), IExpr::Lit(1))));
                    Some(Stmt::If { cond: first, then: vec![s.clone()], els: vec![] })
                }
            }
            _ => None,
        }
    };
    walk(&mut k.body, &mut f);
}
