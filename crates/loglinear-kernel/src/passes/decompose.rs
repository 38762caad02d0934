//! `decompose`: rewrites every compound op into the primitive ops, so that a new backend is correct with the
//! primitives alone (then it may implement compound ops natively where it pays).
//!
//! The primitive set (ten ops, all GPU-friendly: elementwise maps over an index space, one contraction and two
//! reductions):
//!
//! | primitive | meaning |
//! |---|---|
//! | `load`, `zeros`, `const` | buffer reads, constant tiles |
//! | `unary` (`neg`, `exp`, `exp_nonpos`, `softplus`, `sigmoid`, `rsqrt`) | elementwise maps |
//! | `binary` (`add`, `sub`, `mul`) | elementwise, size-1 dimensions broadcast |
//! | `matmul` (optional transposes) | the only contraction |
//! | [`Op::Mask`] | a constant tile from an integer predicate of `(r, s)` ([`Pred`]: `s ≤ r`, `s < r`, `s = r`, the in-chunk level `bitlen(r ⊕ s) = l` on `s ≤ r`, `start + r < limit`, `r = e`, `s = e`, true) |
//! | [`Op::Select`] | an operand where a predicate holds, a constant elsewhere (exact copies: no `0 · ∞`) |
//! | [`Op::RowSum`], [`Op::ColSum`] | row and column reductions |
//!
//! How each compound op decomposes (`Lm = mask s ≤ r ? 1 : 0`, `Ls = mask s < r ? 1 : 0`):
//!
//! * `eye n` → `mask s == r ? 1 : 0`; `causal_mask` → `Lm`; `tril`, `tril_strict`, `mask_rows`, `broadcast` →
//!   one `select` (`s ≤ r`, `s < r`, `start + r < limit`, `true`) with fill 0;
//! * `row a, r` → `col_sum (select r == e ? a : 0)`; `col a, j` → `row_sum (select s == j ? a : 0)`: the one kept
//!   entry is added to exact zeros, so the value (even `−∞`) comes out unchanged;
//! * `transpose` of a vector → `select s == r` onto the diagonal, then `row_sum` / `col_sum`; of a matrix → a
//!   loop over its columns;
//! * `cumsum g` → `matmul Lm, g`; `suffix_sum g` → `matmul Lsᵀ, g` — the sums run over the kept rows directly, in
//!   the same order (`cumsum` bit for bit as the interpreter's);
//! * `segsum g` → `X = select s < r ? g : 0` (`X[u, s] = g_u` for `s < u`), `S = matmul Lm, X`
//!   (`S[r, s] = Σ_{s<u≤r} g_u`, each segment summed directly from the raw gates, never a difference of
//!   cumulative sums), then `select s ≤ r ? S : −∞` — masked entries are `−∞` before any exponential;
//! * `matmul_gated_causal a, b, g` → a loop over the `k` channels: the channel's segment sums as for `segsum`,
//!   `exp_nonpos` of them (non-positive below the diagonal, `−∞` above), times the outer product
//!   `a[:, i] b[:, i]ᵀ`, accumulated in channel order;
//! * `level_mask λ` → a loop over the in-chunk levels `l ≤ bitlen(n − 1)`: `select (s ≤ r ∧ bitlen(r ⊕ s) = l) ?
//!   λ[:, l] : 0`, summed (each entry receives exactly one term);
//! * `tri_solve_unit_lower a, b` → forward substitution over the rows: `A = select s < r ? a : 0`, `X = 0`, then
//!   for each row `r`: `x_r = b_r − A[r, :] X` (rows `≥ r` of `X` are still zero) put into row `r` of `X` by a
//!   `select`;
//! * `l2norm a` → `a · rsqrt(row_sum(a ⊙ a) + ε)`.
//!
//! Assumptions kept from the compound ops: the operands of `cumsum`, `suffix_sum`, `segsum` and of the gated
//! product are finite (raw per-token gates, which the runtime checks; the sums themselves may overflow to `−∞`,
//! and then only add), because a mask's zeros multiply them. Compound ops whose destination is also an operand
//! accumulate in a fresh tile and copy at the end. New tiles are named after the destination (`%gdiff.x`), new
//! loop variables `dc`, `dl`, `dr`, `dj` (numbered when taken). Run it after [`crate::passes::specialise`];
//! `cse` then shares the masks the expansions repeat. The interpreter agrees with the compound ops to f64
//! round-off (segment and suffix sums add in another order); `exp_nonpos` arguments stay gate sums, which the
//! verifier checks through the masks' provenance.

use std::collections::HashSet;

use crate::kernel::L2NORM_EPS;
use crate::kernel::{
    d, BinOp, Dim, IExpr, Kernel, Op, Pred, Program, Shape2, Stmt, TileDecl, TileId, UnOp, Var, VarId,
};

/// Whether `op` is a primitive (what [`decompose`] leaves; everything else is compound).
pub fn is_primitive(op: &Op) -> bool {
    matches!(
        op,
        Op::Load { .. }
            | Op::Zeros(_)
            | Op::Const(_)
            | Op::Unary(..)
            | Op::Binary(..)
            | Op::Matmul { .. }
            | Op::Mask { .. }
            | Op::Select { .. }
            | Op::RowSum(_)
            | Op::ColSum(_)
    )
}

/// Rewrites every compound op of `p` into primitive ops (see the module doc); the result computes the same
/// values up to round-off.
pub fn decompose(p: &Program) -> Program {
    let mut out = p.clone();
    for k in &mut out.kernels {
        let body = std::mem::take(&mut k.body);
        let mut d = Decomposer {
            tile_names: k.tiles.iter().map(|t| t.name.clone()).collect(),
            var_names: k.vars.iter().map(|v| v.name.clone()).collect(),
            k,
        };
        let body = d.body(body);
        d.k.body = body;
    }
    out
}

struct Decomposer<'a> {
    k: &'a mut Kernel,
    tile_names: HashSet<String>,
    var_names: HashSet<String>,
}

fn set(dst: TileId, op: Op) -> Stmt {
    Stmt::Assign { dst, op }
}

fn var(v: VarId) -> IExpr {
    IExpr::Var(v)
}

impl Decomposer<'_> {
    fn shape(&self, t: TileId) -> Shape2 {
        self.k.tiles[t.0 as usize].shape
    }

    /// A fresh tile named after `base`.
    fn tmp(&mut self, base: TileId, tag: &str, shape: Shape2) -> TileId {
        let stem = format!("{}.{tag}", self.k.tiles[base.0 as usize].name);
        let mut name = stem.clone();
        let mut n = 1;
        while self.tile_names.contains(&name) {
            n += 1;
            name = format!("{stem}{n}");
        }
        self.tile_names.insert(name.clone());
        self.k.tiles.push(TileDecl { name, shape });
        TileId(self.k.tiles.len() as u32 - 1)
    }

    /// A fresh loop variable over `0..extent`.
    fn loop_var(&mut self, stem: &str, extent: Dim) -> VarId {
        let mut name = stem.to_string();
        let mut n = 1;
        while self.var_names.contains(&name) {
            n += 1;
            name = format!("{stem}{n}");
        }
        self.var_names.insert(name.clone());
        self.k.vars.push(Var { name, extent });
        VarId(self.k.vars.len() as u32 - 1)
    }

    fn body(&mut self, body: Vec<Stmt>) -> Vec<Stmt> {
        let mut out = Vec::with_capacity(body.len());
        for s in body {
            match s {
                Stmt::Assign { dst, op } => self.assign(&mut out, dst, op),
                Stmt::Store { .. } => out.push(s),
                Stmt::For { var, body } => {
                    let body = self.body(body);
                    out.push(Stmt::For { var, body });
                }
                Stmt::If { cond, then, els } => {
                    let then = self.body(then);
                    let els = self.body(els);
                    out.push(Stmt::If { cond, then, els });
                }
            }
        }
        out
    }

    /// The tile an expansion accumulates in: `dst` itself unless the op reads it.
    fn acc(&mut self, dst: TileId, reads: &[TileId], shape: Shape2) -> TileId {
        if reads.contains(&dst) {
            self.tmp(dst, "acc", shape)
        } else {
            dst
        }
    }

    /// `dst = src` (exact), when they differ.
    fn finish(&self, out: &mut Vec<Stmt>, dst: TileId, src: TileId) {
        if dst != src {
            let shape = self.shape(dst);
            out.push(set(dst, Op::Select { pred: Pred::All, a: src, fill: 0.0, shape }));
        }
    }

    fn assign(&mut self, out: &mut Vec<Stmt>, dst: TileId, op: Op) {
        let zero_fill = |pred: Pred, a: TileId, shape: Shape2| Op::Select { pred, a, fill: 0.0, shape };
        match op {
            op if is_primitive(&op) => out.push(set(dst, op)),
            Op::Eye(n) => out.push(set(dst, Op::Mask { pred: Pred::Diag, shape: [n, n], on: 1.0, off: 0.0 })),
            Op::Tril { a, strict } => {
                let pred = if strict { Pred::StrictLower } else { Pred::Lower };
                out.push(set(dst, zero_fill(pred, a, self.shape(a))));
            }
            Op::MaskRows { a, start, limit } => {
                out.push(set(dst, zero_fill(Pred::RowBelow { start, limit }, a, self.shape(a))));
            }
            Op::Broadcast(a, s) => out.push(set(dst, zero_fill(Pred::All, a, s))),
            Op::Row(a, r) => self.row(out, dst, a, r),
            Op::Col(a, j) => self.col(out, dst, a, j),
            Op::Transpose(a) => self.transpose(out, dst, a),
            Op::CumSum(a) => {
                let n = self.shape(a)[0];
                let lm = self.lower_mask(out, dst, n, Pred::Lower);
                out.push(set(dst, Op::Matmul { a: lm, b: a, ta: false, tb: false }));
            }
            Op::SuffixSum(a) => {
                let n = self.shape(a)[0];
                let ls = self.lower_mask(out, dst, n, Pred::StrictLower);
                // (Lsᵀ)[r, u] = [r < u]: the rows strictly below r.
                out.push(set(dst, Op::Matmul { a: ls, b: a, ta: true, tb: false }));
            }
            Op::SegSum(g) => {
                let n = self.shape(g)[0];
                let lm = self.lower_mask(out, dst, n, Pred::Lower);
                let s = self.segment_sums(out, dst, g, lm, n);
                out.push(set(dst, Op::Select { pred: Pred::Lower, a: s, fill: f64::NEG_INFINITY, shape: [n, n] }));
            }
            Op::MatmulGatedCausal { a, b, g } => self.gated_causal(out, dst, a, b, g),
            Op::LevelMask { lam: None, n } => {
                out.push(set(dst, Op::Mask { pred: Pred::Lower, shape: [n, n], on: 1.0, off: 0.0 }))
            }
            Op::LevelMask { lam: Some(l), n } => self.level_mask(out, dst, l, n),
            Op::TriSolve { a, b } => self.tri_solve(out, dst, a, b),
            Op::L2Norm(a) => {
                let [n, m] = self.shape(a);
                let sq = self.tmp(dst, "sq", [n, m]);
                out.push(set(sq, Op::Binary(BinOp::Mul, a, a)));
                let ss = self.tmp(dst, "ss", [n, d::ONE]);
                out.push(set(ss, Op::RowSum(sq)));
                let eps = self.tmp(dst, "eps", [d::ONE, d::ONE]);
                out.push(set(eps, Op::Const(L2NORM_EPS)));
                out.push(set(ss, Op::Binary(BinOp::Add, ss, eps)));
                out.push(set(ss, Op::Unary(UnOp::Rsqrt, ss)));
                out.push(set(dst, Op::Binary(BinOp::Mul, a, ss)));
            }
            op => unreachable!("decompose: no rule for {op:?}"),
        }
    }

    /// A `[n, n]` 0/1 mask of `pred` in a fresh tile.
    fn lower_mask(&mut self, out: &mut Vec<Stmt>, base: TileId, n: Dim, pred: Pred) -> TileId {
        let tag = if pred == Pred::Lower { "tri" } else { "stri" };
        let m = self.tmp(base, tag, [n, n]);
        out.push(set(m, Op::Mask { pred, shape: [n, n], on: 1.0, off: 0.0 }));
        m
    }

    /// `S[r, s] = Σ_{s<u≤r} g_u` (0 on and above the diagonal) of a gate column `g` `[n, 1]`, summed directly.
    fn segment_sums(&mut self, out: &mut Vec<Stmt>, base: TileId, g: TileId, lm: TileId, n: Dim) -> TileId {
        let x = self.tmp(base, "x", [n, n]);
        out.push(set(x, Op::Select { pred: Pred::StrictLower, a: g, fill: 0.0, shape: [n, n] }));
        let s = self.tmp(base, "seg", [n, n]);
        out.push(set(s, Op::Matmul { a: lm, b: x, ta: false, tb: false }));
        s
    }

    fn row(&mut self, out: &mut Vec<Stmt>, dst: TileId, a: TileId, r: IExpr) {
        let sh = self.shape(a);
        let t = self.tmp(dst, "sel", sh);
        out.push(set(t, Op::Select { pred: Pred::RowIs(r), a, fill: 0.0, shape: sh }));
        out.push(set(dst, Op::ColSum(t)));
    }

    fn col(&mut self, out: &mut Vec<Stmt>, dst: TileId, a: TileId, j: IExpr) {
        let sh = self.shape(a);
        let t = self.tmp(dst, "sel", sh);
        out.push(set(t, Op::Select { pred: Pred::ColIs(j), a, fill: 0.0, shape: sh }));
        out.push(set(dst, Op::RowSum(t)));
    }

    fn transpose(&mut self, out: &mut Vec<Stmt>, dst: TileId, a: TileId) {
        let [n, m] = self.shape(a);
        if n == d::ONE || m == d::ONE {
            // A vector: onto the diagonal, then summed along the other dimension.
            let len = if n == d::ONE { m } else { n };
            let t = self.tmp(dst, "diag", [len, len]);
            out.push(set(t, Op::Select { pred: Pred::Diag, a, fill: 0.0, shape: [len, len] }));
            out.push(set(dst, if n == d::ONE { Op::RowSum(t) } else { Op::ColSum(t) }));
            return;
        }
        let acc = self.acc(dst, &[a], [m, n]);
        out.push(set(acc, Op::Zeros([m, n])));
        let j = self.loop_var("dj", m);
        let mut body = Vec::new();
        let c = self.tmp(dst, "colj", [n, d::ONE]);
        self.col(&mut body, c, a, var(j));
        let r = self.tmp(dst, "rowj", [d::ONE, n]);
        self.transpose(&mut body, r, c);
        let put = self.tmp(dst, "put", [m, n]);
        body.push(set(put, Op::Select { pred: Pred::RowIs(var(j)), a: r, fill: 0.0, shape: [m, n] }));
        body.push(set(acc, Op::Binary(BinOp::Add, acc, put)));
        out.push(Stmt::For { var: j, body });
        self.finish(out, dst, acc);
    }

    fn gated_causal(&mut self, out: &mut Vec<Stmt>, dst: TileId, a: TileId, b: TileId, g: TileId) {
        let [n, k] = self.shape(a);
        let lm = self.lower_mask(out, dst, n, Pred::Lower);
        let acc = self.acc(dst, &[a, b, g], [n, n]);
        out.push(set(acc, Op::Zeros([n, n])));
        let i = self.loop_var("dc", k);
        let mut body = Vec::new();
        let ai = self.tmp(dst, "a", [n, d::ONE]);
        self.col(&mut body, ai, a, var(i));
        let bi = self.tmp(dst, "b", [n, d::ONE]);
        self.col(&mut body, bi, b, var(i));
        let gi = self.tmp(dst, "g", [n, d::ONE]);
        self.col(&mut body, gi, g, var(i));
        let s = self.segment_sums(&mut body, dst, gi, lm, n);
        let e = self.tmp(dst, "decay", [n, n]);
        body.push(set(e, Op::Select { pred: Pred::Lower, a: s, fill: f64::NEG_INFINITY, shape: [n, n] }));
        body.push(set(e, Op::Unary(UnOp::ExpNonpos, e)));
        let ab = self.tmp(dst, "ab", [n, n]);
        body.push(set(ab, Op::Matmul { a: ai, b: bi, ta: false, tb: true }));
        body.push(set(ab, Op::Binary(BinOp::Mul, ab, e)));
        body.push(set(acc, Op::Binary(BinOp::Add, acc, ab)));
        out.push(Stmt::For { var: i, body });
        self.finish(out, dst, acc);
    }

    fn level_mask(&mut self, out: &mut Vec<Stmt>, dst: TileId, lam: TileId, n: Dim) {
        let cols = self.shape(lam)[1];
        // In-chunk levels 0..=bitlen(n − 1); levels past λ's columns weigh 0 (their columns select nothing).
        let levels = match (n, cols) {
            (Dim::Lit(n), Dim::Lit(c)) => Dim::Lit((crate::bitlen(n.saturating_sub(1) as u64) as usize + 1).min(c)),
            (Dim::Lit(n), _) => Dim::Lit(crate::bitlen(n.saturating_sub(1) as u64) as usize + 1),
            _ => cols,
        };
        let acc = self.acc(dst, &[lam], [n, n]);
        out.push(set(acc, Op::Zeros([n, n])));
        let l = self.loop_var("dl", levels);
        let mut body = Vec::new();
        let c = self.tmp(dst, "lam", [n, d::ONE]);
        self.col(&mut body, c, lam, var(l));
        let t = self.tmp(dst, "level", [n, n]);
        body.push(set(t, Op::Select { pred: Pred::Level(var(l)), a: c, fill: 0.0, shape: [n, n] }));
        body.push(set(acc, Op::Binary(BinOp::Add, acc, t)));
        out.push(Stmt::For { var: l, body });
        self.finish(out, dst, acc);
    }

    fn tri_solve(&mut self, out: &mut Vec<Stmt>, dst: TileId, a: TileId, b: TileId) {
        let n = self.shape(a)[0];
        let [_, c] = self.shape(b);
        let al = self.tmp(dst, "l", [n, n]);
        out.push(set(al, Op::Select { pred: Pred::StrictLower, a, fill: 0.0, shape: [n, n] }));
        let x = self.acc(dst, &[a, b], [n, c]);
        out.push(set(x, Op::Zeros([n, c])));
        let r = self.loop_var("dr", n);
        let mut body = Vec::new();
        let ar = self.tmp(dst, "ar", [d::ONE, n]);
        self.row(&mut body, ar, al, var(r));
        // Rows r.. of X are still zero, as are the entries r.. of A's row r.
        let y = self.tmp(dst, "y", [d::ONE, c]);
        body.push(set(y, Op::Matmul { a: ar, b: x, ta: false, tb: false }));
        let br = self.tmp(dst, "br", [d::ONE, c]);
        self.row(&mut body, br, b, var(r));
        body.push(set(br, Op::Binary(BinOp::Sub, br, y)));
        let put = self.tmp(dst, "put", [n, c]);
        body.push(set(put, Op::Select { pred: Pred::RowIs(var(r)), a: br, fill: 0.0, shape: [n, c] }));
        body.push(set(x, Op::Binary(BinOp::Add, x, put)));
        out.push(Stmt::For { var: r, body });
        self.finish(out, dst, x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{visit, BufId, BufKind, Buffer, Index};
    use crate::tensor::{DType, Tensor};
    use crate::SizeEnv;

    const N: usize = 8;

    /// A one-kernel program: tiles loaded from the input `x` `[N, N]`, then `ops` (destination, op), each result
    /// stored to its own slice `o[i]`.
    struct Case {
        tiles: Vec<TileDecl>,
        body: Vec<Stmt>,
        outs: Vec<TileId>,
    }

    impl Case {
        fn new() -> Case {
            Case { tiles: Vec::new(), body: Vec::new(), outs: Vec::new() }
        }
        fn tile(&mut self, name: &str, r: usize, c: usize) -> TileId {
            self.tiles.push(TileDecl { name: name.into(), shape: [Dim::Lit(r), Dim::Lit(c)] });
            TileId(self.tiles.len() as u32 - 1)
        }
        fn load(&mut self, name: &str, r: usize, c: usize) -> TileId {
            let t = self.tile(name, r, c);
            let block = |n| Index::Block { start: IExpr::Lit(0), len: Dim::Lit(n) };
            let index = if c == 1 { vec![block(r), Index::At(IExpr::Lit(0))] } else { vec![block(r), block(c)] };
            self.body.push(set(t, Op::Load { buf: BufId(0), index }));
            t
        }
        fn op(&mut self, name: &str, r: usize, c: usize, op: Op) -> TileId {
            let t = self.tile(name, r, c);
            self.body.push(set(t, op));
            self.outs.push(t);
            t
        }
        fn program(&self) -> Program {
            let lit = Dim::Lit;
            let mut body = self.body.clone();
            for (i, t) in self.outs.iter().enumerate() {
                let [r, c] = self.tiles[t.0 as usize].shape;
                let block = |n| Index::Block { start: IExpr::Lit(0), len: n };
                body.push(Stmt::Store {
                    buf: BufId(1),
                    index: vec![Index::At(IExpr::Lit(i as i64)), block(r), block(c)],
                    src: *t,
                });
            }
            Program {
                name: "t".into(),
                chunk: N,
                hierarchical: false,
                buffers: vec![
                    Buffer {
                        name: "x".into(),
                        kind: BufKind::Input("x".into()),
                        shape: vec![lit(N), lit(N)],
                        elem: DType::F64,
                    },
                    Buffer {
                        name: "o".into(),
                        kind: BufKind::Output,
                        shape: vec![lit(self.outs.len()), lit(N), lit(N)],
                        elem: DType::F64,
                    },
                ],
                kernels: vec![Kernel { name: "k".into(), grid: vec![], vars: vec![], tiles: self.tiles.clone(), body }],
                output: BufId(1),
                accum: DType::F64,
                specialised: None,
            }
        }
    }

    fn run(p: &Program, x: &[f64]) -> Vec<f64> {
        let t = Tensor::from_f64(DType::F64, vec![N, N], x);
        let b: crate::Bindings<'_> = [("x".to_string(), t.view())].into_iter().collect();
        let env = SizeEnv::new(1, 1, 1, 1, 1, 1, 1, false);
        crate::interp::run_program::<f64>(p, &env, &b, DType::F64).unwrap().to_f64()
    }

    fn primitives_only(p: &Program) {
        for k in &p.kernels {
            visit(&k.body, &mut |s| {
                if let Stmt::Assign { op, .. } = s {
                    assert!(is_primitive(op), "{op:?}");
                }
            });
        }
    }

    /// Every compound op, on shapes and operand aliasing the built-ins do not reach, against the interpreter.
    #[test]
    fn every_compound_op_agrees_with_the_interpreter() {
        let mut c = Case::new();
        let a = c.load("a", N, N);
        let r = c.load("r", N, 3);
        let g = c.load("g", N, 1);
        let gn = c.tile("gn", N, 1);
        c.body.push(set(gn, Op::Binary(BinOp::Mul, g, g)));
        c.body.push(set(gn, Op::Unary(UnOp::Neg, gn)));
        let gr = c.tile("gr", N, 3);
        c.body.push(set(gr, Op::Binary(BinOp::Mul, r, r)));
        c.body.push(set(gr, Op::Unary(UnOp::Neg, gr)));
        let (n, lit) = (Dim::Lit(N), IExpr::Lit);
        c.op("t1", 3, N, Op::Transpose(r));
        c.op("t2", 1, N, Op::Transpose(g));
        c.op("t3", N, N, Op::Transpose(a));
        c.op("row5", 1, N, Op::Row(a, lit(5)));
        c.op("row9", 1, N, Op::Row(a, lit(9)));
        c.op("col2", N, 1, Op::Col(a, lit(2)));
        c.op("cs", N, 3, Op::CumSum(r));
        c.op("ss", N, 3, Op::SuffixSum(r));
        c.op("seg", N, N, Op::SegSum(gn));
        c.op("l2", N, 3, Op::L2Norm(r));
        c.op("tril", N, N, Op::Tril { a, strict: false });
        c.op("trils", N, N, Op::Tril { a, strict: true });
        c.op("eye", N, N, Op::Eye(n));
        c.op("rows", N, N, Op::MaskRows { a, start: lit(3), limit: Dim::Lit(6) });
        c.op("bc", N, 3, Op::Broadcast(g, [n, Dim::Lit(3)]));
        c.op("lm8", N, N, Op::LevelMask { lam: Some(a), n });
        c.op("lm3", N, N, Op::LevelMask { lam: Some(r), n });
        c.op("causal", N, N, Op::LevelMask { lam: None, n });
        c.op("solve", N, 3, Op::TriSolve { a, b: r });
        c.op("mgc", N, N, Op::MatmulGatedCausal { a: r, b: gr, g: gr });
        // Destinations that are operands.
        let x = c.op("x", N, 3, Op::Broadcast(r, [n, Dim::Lit(3)]));
        c.body.push(set(x, Op::TriSolve { a, b: x }));
        let y = c.op("y", N, N, Op::Broadcast(a, [n, n]));
        c.body.push(set(y, Op::Transpose(y)));
        c.body.push(set(y, Op::LevelMask { lam: Some(y), n }));
        let p = c.program();
        crate::verify::verify(&p).unwrap();
        let q = decompose(&p);
        crate::verify::verify(&q).unwrap();
        primitives_only(&q);
        let mut seed = 12345u64;
        let xs: Vec<f64> = (0..N * N)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect();
        let (want, got) = (run(&p, &xs), run(&q, &xs));
        for (i, (w, v)) in want.iter().zip(&got).enumerate() {
            assert!(
                w == v || (w - v).abs() <= 1e-13 * (1.0 + w.abs()),
                "o[{}, {}, {}]: {w} vs {v}",
                i / (N * N),
                i / N % N,
                i % N
            );
        }
    }

    /// Decomposed segment sums stay gate sums for the verifier, and a difference of cumulative sums is still
    /// rejected after decomposition.
    #[test]
    fn verifier_still_rejects_differences_of_cumulative_gates() {
        let mut c = Case::new();
        let g = c.load("g", N, 1);
        let gam = c.tile("gam", N, 1);
        c.body.push(set(gam, Op::CumSum(g)));
        let last = c.tile("last", 1, 1);
        c.body.push(set(last, Op::Row(gam, IExpr::Lit(N as i64 - 1))));
        let d = c.tile("d", N, 1);
        c.body.push(set(d, Op::Binary(BinOp::Sub, last, gam)));
        c.op("e", N, 1, Op::Unary(UnOp::ExpNonpos, d));
        let p = c.program();
        assert!(crate::verify::verify(&p).is_err());
        let e = crate::verify::verify(&decompose(&p)).unwrap_err();
        assert!(e[0].message.contains("difference of cumulative gates"), "{e:?}");
    }
}
