//! The `lower` pass: Schedule IR → Kernel IR. This is the one place where the maths of each schedule stage
//! becomes tile operations; backends only translate the result.

use std::collections::BTreeMap;

use loglinear_ir::{Expr, ExprId, InputKind, Ty, UnaryOp, VariantIr};

use crate::classify::{Gate, Root};
use crate::kernel::*;
use crate::schedule::{ChunkStage, DecodeStage, InterStage, Schedule};
use crate::verify::op_shape;
use loglinear_kernel::DType;

/// Builds one kernel, inferring tile shapes as it goes.
struct KB<'a> {
    bufs: &'a [Buffer],
    k: Kernel,
    stack: Vec<Vec<Stmt>>,
    errs: Vec<String>,
}

impl<'a> KB<'a> {
    fn new(bufs: &'a [Buffer], name: &str) -> Self {
        KB {
            bufs,
            k: Kernel { name: name.into(), grid: vec![], vars: vec![], tiles: vec![], body: vec![] },
            stack: vec![vec![]],
            errs: vec![],
        }
    }
    fn var(&mut self, name: &str, extent: Dim) -> VarId {
        self.k.vars.push(Var { name: name.into(), extent });
        VarId(self.k.vars.len() as u32 - 1)
    }
    fn grid(&mut self, name: &str, extent: Dim) -> VarId {
        let v = self.var(name, extent);
        self.k.grid.push(v);
        v
    }
    fn emit(&mut self, s: Stmt) {
        if let Some(top) = self.stack.last_mut() {
            top.push(s);
        }
    }
    /// A new tile `%name = op`.
    fn t(&mut self, name: &str, op: Op) -> TileId {
        let shape = match op_shape(&op, &self.k.tiles, self.bufs) {
            Ok(s) => s,
            Err(e) => {
                self.errs.push(format!("%{name}: {e}"));
                [d::ONE, d::ONE]
            }
        };
        let mut nm = name.to_string();
        let mut n = 1;
        while self.k.tiles.iter().any(|t| t.name == nm) {
            nm = format!("{name}.{n}");
            n += 1;
        }
        self.k.tiles.push(TileDecl { name: nm, shape });
        let id = TileId(self.k.tiles.len() as u32 - 1);
        self.emit(Stmt::Assign { dst: id, op });
        id
    }
    /// Reassigns an existing tile.
    fn set(&mut self, dst: TileId, op: Op) {
        self.emit(Stmt::Assign { dst, op });
    }
    fn store(&mut self, buf: BufId, index: Vec<Index>, src: TileId) {
        self.emit(Stmt::Store { buf, index, src });
    }
    fn shape(&self, t: TileId) -> Shape2 {
        self.k.tiles[t.0 as usize].shape
    }
    fn for_(&mut self, var: VarId, f: impl FnOnce(&mut Self)) {
        self.stack.push(vec![]);
        f(self);
        let body = self.stack.pop().unwrap_or_default();
        self.emit(Stmt::For { var, body });
    }
    fn if_(&mut self, cond: Cond, then: impl FnOnce(&mut Self), els: impl FnOnce(&mut Self)) {
        self.stack.push(vec![]);
        then(self);
        let then = self.stack.pop().unwrap_or_default();
        self.stack.push(vec![]);
        els(self);
        let els = self.stack.pop().unwrap_or_default();
        self.emit(Stmt::If { cond, then, els });
    }
    fn un(&mut self, name: &str, op: UnOp, a: TileId) -> TileId {
        self.t(name, Op::Unary(op, a))
    }
    fn bin(&mut self, name: &str, op: BinOp, a: TileId, b: TileId) -> TileId {
        self.t(name, Op::Binary(op, a, b))
    }
    fn mm(&mut self, name: &str, a: TileId, ta: bool, b: TileId, tb: bool) -> TileId {
        self.t(name, Op::Matmul { a, b, ta, tb })
    }
    fn finish(mut self) -> (Kernel, Vec<String>) {
        self.k.body = self.stack.pop().unwrap_or_default();
        (self.k, self.errs)
    }
}

fn v(x: VarId) -> IExpr {
    IExpr::Var(x)
}
fn lit(n: i64) -> IExpr {
    IExpr::Lit(n)
}

/// Row positions a kernel works on: `len` rows from `start` for batch `b`, head `h`.
#[derive(Clone)]
struct Rows {
    b: VarId,
    h: VarId,
    start: IExpr,
    len: Dim,
    /// Whether rows may run past `T` (chunks; not the decode token).
    may_pad: bool,
}

impl Rows {
    /// Index of a `[B, T, H, X]` (or `[B, T, H]` when `vector` is false) buffer region.
    fn tok(&self, vector: bool) -> Vec<Index> {
        let mut ix =
            vec![Index::At(v(self.b)), Index::Block { start: self.start.clone(), len: self.len }, Index::At(v(self.h))];
        if vector {
            ix.push(Index::Full);
        }
        ix
    }
}

/// The buffers of a program.
struct Bufs {
    list: Vec<Buffer>,
    inputs: BTreeMap<String, BufId>,
}

impl Bufs {
    fn add(&mut self, name: &str, kind: BufKind, shape: Vec<Dim>) -> BufId {
        self.list.push(Buffer { name: name.into(), kind, shape, elem: DType::F32 });
        BufId(self.list.len() as u32 - 1)
    }
    fn with_inputs(var: &VariantIr) -> Bufs {
        let mut b = Bufs { list: vec![], inputs: BTreeMap::new() };
        for i in &var.inputs {
            let shape = match i.kind {
                InputKind::Key | InputKind::Channel => vec![d::B, d::T, d::H, d::K],
                InputKind::Value => vec![d::B, d::T, d::H, d::V],
                InputKind::Scalar => vec![d::B, d::T, d::H],
                InputKind::Levels => vec![d::B, d::T, d::H, d::L],
                InputKind::HeadConst => vec![d::H],
            };
            let id = b.add(&i.name, BufKind::Input(i.name.clone()), shape);
            b.inputs.insert(i.name.clone(), id);
        }
        b
    }
}

/// The root tiles of one program after preprocessing.
struct Roots {
    map: BTreeMap<Root, TileId>,
    /// `scale ⊙ v` (or `v`).
    vw: TileId,
}

impl Roots {
    fn get(&self, r: Root) -> Option<TileId> {
        self.map.get(&r).copied()
    }
}

fn type_shape(ty: Ty, len: Dim) -> Shape2 {
    match ty {
        Ty::Const | Ty::Head => [d::ONE, d::ONE],
        Ty::Token => [len, d::ONE],
        Ty::Key => [len, d::K],
        Ty::Value => [len, d::V],
        Ty::Levels => [len, d::L],
    }
}

/// Stage `preprocess`: loads the inputs the roots need and evaluates the arena into per-row tiles.
fn emit_preprocess(kb: &mut KB, s: &Schedule, var: &VariantIr, bufs: &Bufs, rows: &Rows, need: &[Root]) -> Roots {
    let cl = &s.classified;
    let mut live = vec![false; var.exprs.len()];
    for r in need {
        if let Some(e) = cl.root(*r) {
            live[e.index()] = true;
        }
    }
    for i in (0..var.exprs.len()).rev() {
        if !live[i] {
            continue;
        }
        match &var.exprs[i] {
            Expr::Unary(_, a) => live[a.index()] = true,
            Expr::Binary(_, a, b) => {
                live[a.index()] = true;
                live[b.index()] = true;
            }
            _ => {}
        }
    }
    let mut vals: Vec<Option<TileId>> = vec![None; var.exprs.len()];
    for (i, e) in var.exprs.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let get = |x: &ExprId, vals: &Vec<Option<TileId>>| vals[x.index()].unwrap_or(TileId(u32::MAX));
        let name = format!("e{i}");
        let t = match e {
            Expr::Input(id) => {
                let decl = var.input(*id);
                let buf = bufs.inputs[&decl.name];
                let index = match decl.kind {
                    InputKind::HeadConst => vec![Index::At(v(rows.h))],
                    InputKind::Scalar => rows.tok(false),
                    _ => rows.tok(true),
                };
                kb.t(&decl.name, Op::Load { buf, index })
            }
            Expr::Const(c) => kb.t(&name, Op::Const(*c)),
            Expr::Unary(UnaryOp::L2Norm, a) => {
                let a = get(a, &vals);
                kb.t(&name, Op::L2Norm(a))
            }
            Expr::Unary(op, a) => {
                let a = get(a, &vals);
                let u = match op {
                    UnaryOp::Neg => UnOp::Neg,
                    UnaryOp::Exp => UnOp::Exp,
                    UnaryOp::Softplus => UnOp::Softplus,
                    UnaryOp::Sigmoid => UnOp::Sigmoid,
                    UnaryOp::L2Norm => UnOp::Neg, // handled above
                };
                kb.un(&name, u, a)
            }
            Expr::Binary(op, a, b) => {
                let (a, b) = (get(a, &vals), get(b, &vals));
                let o = match op {
                    loglinear_ir::BinaryOp::Add => BinOp::Add,
                    loglinear_ir::BinaryOp::Sub => BinOp::Sub,
                    loglinear_ir::BinaryOp::Mul => BinOp::Mul,
                };
                kb.bin(&name, o, a, b)
            }
        };
        vals[i] = Some(t);
    }
    let mut map = BTreeMap::new();
    for r in need {
        let Some(e) = cl.root(*r) else { continue };
        let Some(mut t) = vals[e.index()] else { continue };
        let ty = var.ty(e);
        let plain_input = matches!(var.expr(e), Expr::Input(_)) && !matches!(ty, Ty::Const | Ty::Head);
        let want = type_shape(if ty.is_scalar() { Ty::Token } else { ty }, rows.len);
        if kb.shape(t) != want {
            t = kb.t(r.name(), Op::Broadcast(t, want));
        }
        if !plain_input && rows.may_pad {
            t = kb.t(r.name(), Op::MaskRows { a: t, start: rows.start.clone(), limit: d::T });
        }
        map.insert(*r, t);
    }
    let vt = map.get(&Root::Value).copied().unwrap_or(TileId(u32::MAX));
    let vw = match map.get(&Root::Scale) {
        Some(sc) => kb.bin("vw", BinOp::Mul, vt, *sc),
        None => vt,
    };
    Roots { map, vw }
}

/// Tiles produced by the chunk stages.
#[derive(Default)]
struct Prims {
    o: Option<TileId>,
    qt: Option<TileId>,
    kt: Option<TileId>,
    wt: Option<TileId>,
    dec: Option<TileId>,
    cw: Option<TileId>,
}

/// Emits the chunk stages (all but `preprocess`) on `n` rows.
fn emit_chunk_stages(kb: &mut KB, s: &Schedule, stages: &[ChunkStage], r: &Roots, n: Dim, last: i64) -> Prims {
    let (gate, delta) = (s.gate(), s.delta());
    let bad = TileId(u32::MAX);
    let q = r.get(Root::Query).unwrap_or(bad);
    let k = r.get(Root::Key).unwrap_or(bad);
    let lam = r.get(Root::Lambda);
    let mut gam = None;
    let mut glast = None;
    let mut big_gamma = None;
    let (mut tw, mut w, mut u, mut qk) = (None, None, None, None);
    let mut p = Prims::default();
    for st in stages {
        match st {
            ChunkStage::Preprocess => {}
            ChunkStage::LocalCumsum => {
                let g = r.get(Root::LogDecay).unwrap_or(bad);
                let c = kb.t("gam", Op::CumSum(g));
                glast = Some(kb.t("gam_last", Op::Row(c, lit(last))));
                gam = Some(c);
            }
            ChunkStage::DecayMatrix => {
                // Segment sums of the raw gates, not differences of cumulative sums: no cancellation.
                let g = r.get(Root::LogDecay).unwrap_or(bad);
                let dm = kb.t("gdiff", Op::SegSum(g));
                big_gamma = Some(kb.un("Gamma", UnOp::ExpNonpos, dm));
            }
            ChunkStage::WyUt => {
                let beta = r.get(Root::Beta).unwrap_or(bad);
                let kk = kb.mm("kk", k, false, k, true);
                let kkb = kb.bin("kkb", BinOp::Mul, kk, beta);
                let aw = kb.t("Aw", Op::Tril { a: kkb, strict: true });
                let eye = kb.t("I", Op::Eye(n));
                let tw_ = kb.t("Tw", Op::TriSolve { a: aw, b: eye });
                let tu_ = match big_gamma {
                    Some(gm) => {
                        let x = kb.bin("kkbg", BinOp::Mul, kkb, gm);
                        let au = kb.t("Au", Op::Tril { a: x, strict: true });
                        kb.t("Tu", Op::TriSolve { a: au, b: eye })
                    }
                    None => tw_,
                };
                let kbeta = kb.bin("kbeta", BinOp::Mul, k, beta);
                w = Some(kb.mm("W", tw_, false, kbeta, false));
                u = Some(kb.mm("U", tu_, false, r.vw, false));
                tw = Some(tw_);
            }
            ChunkStage::Intra => {
                let mask = kb.t("mask", Op::LevelMask { lam, n });
                let a = match (delta, gate) {
                    (false, Gate::Channel) => {
                        // Per-channel segment sums of the raw gates inside the op, not differences of γ.
                        let g = r.get(Root::LogDecay).unwrap_or(bad);
                        kb.t("qk", Op::MatmulGatedCausal { a: q, b: k, g })
                    }
                    (false, _) => {
                        let a = kb.mm("qk", q, false, k, true);
                        match big_gamma {
                            Some(gm) => kb.bin("qkg", BinOp::Mul, a, gm),
                            None => a,
                        }
                    }
                    (true, _) => {
                        let a = kb.mm("qk_full", q, false, k, true);
                        let t = kb.t("qk", Op::Tril { a, strict: false });
                        qk = Some(t);
                        let x = kb.mm("qkT", t, false, tw.unwrap_or(bad), false);
                        match big_gamma {
                            Some(gm) => kb.bin("qkTg", BinOp::Mul, x, gm),
                            None => x,
                        }
                    }
                };
                let pm = kb.bin("P", BinOp::Mul, a, mask);
                p.o = Some(kb.mm("o", pm, false, r.vw, false));
            }
            ChunkStage::PseudoQuery => {
                p.qt = Some(match (delta, gam) {
                    (false, None) => q,
                    (false, Some(g)) => {
                        let e = kb.un("eg", UnOp::ExpNonpos, g);
                        kb.bin("qt", BinOp::Mul, q, e)
                    }
                    (true, g) => {
                        let qkw = kb.mm("qkw", qk.unwrap_or(bad), false, w.unwrap_or(bad), false);
                        let x = kb.bin("qt", BinOp::Sub, q, qkw);
                        match g {
                            Some(g) => {
                                let e = kb.un("eg", UnOp::ExpNonpos, g);
                                kb.bin("qt", BinOp::Mul, x, e)
                            }
                            None => x,
                        }
                    }
                });
            }
            ChunkStage::ChunkWrite => {
                let kt = match (gam, glast) {
                    (Some(_), Some(_)) => {
                        let g = r.get(Root::LogDecay).unwrap_or(bad);
                        let dl = kb.t("gtail", Op::SuffixSum(g));
                        let e = kb.un("etail", UnOp::ExpNonpos, dl);
                        kb.bin("kt", BinOp::Mul, k, e)
                    }
                    _ => k,
                };
                let src = if delta { u.unwrap_or(bad) } else { r.vw };
                p.cw = Some(kb.mm("cw", kt, true, src, false));
                p.kt = Some(kt);
            }
            ChunkStage::ChunkTransition => {
                if let Some(gl) = glast {
                    let e = kb.un("dec", UnOp::ExpNonpos, gl);
                    p.dec = Some(if gate == Gate::Channel { kb.t("dec", Op::Transpose(e)) } else { e });
                }
                if delta {
                    let w = w.unwrap_or(bad);
                    p.wt = Some(match gam {
                        Some(g) => {
                            let e = kb.un("eg_w", UnOp::ExpNonpos, g);
                            kb.bin("wt", BinOp::Mul, w, e)
                        }
                        None => w,
                    });
                }
            }
        }
    }
    p
}

/// Applies the chunk transition to state tile `st` given its operands.
fn emit_transition(kb: &mut KB, s: &Schedule, st: TileId, dec: Option<TileId>, kt: Option<TileId>, wt: Option<TileId>) {
    let bad = TileId(u32::MAX);
    if s.delta() {
        let x = kb.mm("ws", wt.unwrap_or(bad), false, st, false);
        let y = kb.mm("kws", kt.unwrap_or(bad), true, x, false);
        if let Some(dc) = dec {
            kb.set(st, Op::Binary(BinOp::Mul, st, dc));
        }
        kb.set(st, Op::Binary(BinOp::Sub, st, y));
    } else if let Some(dc) = dec {
        kb.set(st, Op::Binary(BinOp::Mul, st, dc));
    }
}

fn roots_needed(s: &Schedule) -> Vec<Root> {
    s.classified.roots.iter().map(|r| r.0).collect()
}

/// Lowers the forward schedule into a program.
pub fn lower_forward(s: &Schedule, var: &VariantIr) -> (Program, Vec<String>) {
    let h = s.hierarchical();
    let gate = s.gate();
    let delta = s.delta();
    let c = s.c() as i64;
    let mut bufs = Bufs::with_inputs(var);
    let o = bufs.add("o", BufKind::Output, vec![d::B, d::T, d::H, d::V]);
    // The streaming form keeps no per-chunk or per-token scratch: its walk computes each chunk's primitives.
    let streaming = s.inter == InterStage::Streaming;
    let qt = (!streaming).then(|| bufs.add("qt", BufKind::Scratch, vec![d::B, d::T, d::H, d::K]));
    let cw = (!streaming).then(|| bufs.add("cw", BufKind::Scratch, vec![d::B, d::H, d::NT, d::K, d::V]));
    let dec = match gate {
        _ if streaming => None,
        Gate::None => None,
        Gate::Scalar => Some(bufs.add("dec", BufKind::Scratch, vec![d::B, d::H, d::NT])),
        Gate::Channel => Some(bufs.add("dec", BufKind::Scratch, vec![d::B, d::H, d::NT, d::K])),
    };
    let (kt, wt) = if delta && !streaming {
        (
            Some(bufs.add("kt", BufKind::Scratch, vec![d::B, d::T, d::H, d::K])),
            Some(bufs.add("wt", BufKind::Scratch, vec![d::B, d::T, d::H, d::K])),
        )
    } else {
        (None, None)
    };
    let lam_expr = s.classified.root(Root::Lambda);
    let lam_src = match lam_expr {
        Some(e) => match var.expr(e) {
            Expr::Input(id) => Some((bufs.inputs[&var.input(*id).name], false)),
            _ if streaming => None,
            _ => Some((bufs.add("lam", BufKind::Scratch, vec![d::B, d::T, d::H, d::L]), true)),
        },
        None => None,
    };
    let hs = match s.inter {
        InterStage::PerLevelScan => Some(bufs.add("hs", BufKind::Scratch, vec![d::B, d::H, d::M, d::NT, d::K, d::V])),
        InterStage::FusedCarry | InterStage::Streaming => None,
    };
    let carry = match s.inter {
        InterStage::FusedCarry | InterStage::Streaming => {
            Some(bufs.add("carry", BufKind::Scratch, vec![d::B, d::H, d::MS, d::K, d::V]))
        }
        InterStage::PerLevelScan => None,
    };
    // The fused walk keeps the level states the last chunk reads (the per-level form has them in `hs`).
    let hlast = match s.inter {
        InterStage::FusedCarry | InterStage::Streaming if h => {
            Some(bufs.add("hlast", BufKind::Scratch, vec![d::B, d::H, d::M, d::K, d::V]))
        }
        _ => None,
    };
    // The state after the last token (spec §6.1 layout), written by the `final_state` kernel.
    let state = bufs.add("state", BufKind::State, vec![d::B, d::H, d::LC, d::K, d::V]);
    let mut errs = Vec::new();
    let mut kernels = Vec::new();
    let last = s.chunk as i64 - 1;

    // Kernel 0: per-chunk stages (the streaming form does them inside its walk).
    if !streaming {
        let mut kb = KB::new(&bufs.list, "chunk");
        let b = kb.grid("b", d::B);
        let hh = kb.grid("h", d::H);
        let i = kb.grid("i", d::NT);
        let rows = Rows { b, h: hh, start: IExpr::prod(v(i), IExpr::Sym(Sym::C)), len: d::C, may_pad: true };
        let roots = emit_preprocess(&mut kb, s, var, &bufs, &rows, &roots_needed(s));
        let p = emit_chunk_stages(&mut kb, s, &s.chunk_stages[1..], &roots, d::C, last);
        let bad = TileId(u32::MAX);
        kb.store(o, rows.tok(true), p.o.unwrap_or(bad));
        if let Some(qt) = qt {
            kb.store(qt, rows.tok(true), p.qt.unwrap_or(bad));
        }
        let chunk_ix = |full: usize| {
            let mut ix = vec![Index::At(v(b)), Index::At(v(hh)), Index::At(v(i))];
            ix.extend(std::iter::repeat_n(Index::Full, full));
            ix
        };
        if let Some(cw) = cw {
            kb.store(cw, chunk_ix(2), p.cw.unwrap_or(bad));
        }
        if let (Some(db), Some(dt)) = (dec, p.dec) {
            kb.store(db, chunk_ix(if gate == Gate::Channel { 1 } else { 0 }), dt);
        }
        if let (Some(kb_), Some(t)) = (kt, p.kt) {
            kb.store(kb_, rows.tok(true), t);
        }
        if let (Some(wb), Some(t)) = (wt, p.wt) {
            kb.store(wb, rows.tok(true), t);
        }
        if let (Some((lb, true)), Some(lt)) = (lam_src, roots.get(Root::Lambda)) {
            kb.store(lb, rows.tok(true), lt);
        }
        let (k, e) = kb.finish();
        kernels.push(k);
        errs.extend(e);
    }

    // Loads the transition operands of chunk `i` into tiles.
    let load_trans = |kb: &mut KB, b: VarId, hh: VarId, i: IExpr| -> (Option<TileId>, Option<TileId>, Option<TileId>) {
        let rows = Rows { b, h: hh, start: IExpr::prod(i.clone(), IExpr::Sym(Sym::C)), len: d::C, may_pad: true };
        let dt = dec.map(|db| {
            let mut ix = vec![Index::At(v(b)), Index::At(v(hh)), Index::At(i.clone())];
            if gate == Gate::Channel {
                ix.push(Index::Full);
            }
            kb.t("dec", Op::Load { buf: db, index: ix })
        });
        let ktt = kt.map(|buf| kb.t("kt", Op::Load { buf, index: rows.tok(true) }));
        let wtt = wt.map(|buf| kb.t("wt", Op::Load { buf, index: rows.tok(true) }));
        (dt, ktt, wtt)
    };
    let state_ix = |b: VarId, hh: VarId, pre: Vec<IExpr>| {
        let mut ix = vec![Index::At(v(b)), Index::At(v(hh))];
        ix.extend(pre.into_iter().map(Index::At));
        ix.extend([Index::Full, Index::Full]);
        ix
    };
    // Chunk-level bit logic on absolute positions (the walk may start at a chunk-aligned position t0 = `t`,
    // the run-time size `Step`, 0 for a prefill from scratch): bit m of chunk t0/C + i is bit c+m of t0 + i·C,
    // and low_ones(t0/C + i, m+1) is low_ones(t0 + i·C + C−1, c+m+1).
    let abs_bit = |i: IExpr, m: IExpr| Cond::Bit {
        x: IExpr::sum(IExpr::Sym(Sym::Step), IExpr::prod(i, IExpr::Sym(Sym::C))),
        bit: IExpr::sum(m, lit(c)),
    };
    let abs_low_ones = |i: IExpr, m: IExpr| Cond::LowOnes {
        x: IExpr::sum(IExpr::sum(IExpr::Sym(Sym::Step), IExpr::prod(i, IExpr::Sym(Sym::C))), lit((1i64 << c) - 1)),
        bits: IExpr::sum(m, lit(c + 1)),
    };
    // The carry states entering the walk, from the `state` buffer (zero unless an initial state is bound): the
    // decode state at t0 after its Fenwick carry (levels 0..tz(t0) merged into tz(t0)+1, spec §6.2 step 1) holds
    // at token level c+1+j the chunk-level state S_j (t0 is a multiple of C, so tz(t0) ≥ c).
    let init_carry = |kb: &mut KB, carry: BufId, b: VarId, hh: VarId, j: VarId| {
        let st = kb.t("S", Op::Zeros([d::K, d::V]));
        if h {
            let t = IExpr::Sym(Sym::Step);
            let up = IExpr::sum(IExpr::Tz(Box::new(t.clone())), lit(1)); // tz(t0) + 1
            let lvl = IExpr::sum(v(j), lit(c + 1)); // token level of S_j
            let eq = |a: IExpr, b: IExpr| {
                Cond::And(
                    Box::new(Cond::Ge(a.clone(), b.clone())),
                    Box::new(Cond::Not(Box::new(Cond::Ge(a, IExpr::sum(b, lit(1)))))),
                )
            };
            kb.if_(
                Cond::Ge(t.clone(), lit(1)),
                |kb| {
                    let l = kb.var("l", d::LC);
                    kb.for_(l, |kb| {
                        // S_j at the merged level takes every level up to it ...
                        let merged = Cond::And(
                            Box::new(eq(lvl.clone(), up.clone())),
                            Box::new(Cond::Not(Box::new(Cond::Ge(v(l), IExpr::sum(up.clone(), lit(1)))))),
                        );
                        kb.if_(
                            merged,
                            |kb| {
                                let x = kb.t("Si", Op::Load { buf: state, index: state_ix(b, hh, vec![v(l)]) });
                                kb.set(st, Op::Binary(BinOp::Add, st, x));
                            },
                            |_| {},
                        );
                        // ... and above it, its own level.
                        let own = Cond::And(
                            Box::new(Cond::Ge(lvl.clone(), IExpr::sum(up.clone(), lit(1)))),
                            Box::new(eq(v(l), lvl.clone())),
                        );
                        kb.if_(
                            own,
                            |kb| {
                                let x = kb.t("Si", Op::Load { buf: state, index: state_ix(b, hh, vec![v(l)]) });
                                kb.set(st, Op::Binary(BinOp::Add, st, x));
                            },
                            |_| {},
                        );
                    });
                },
                |_| {},
            );
        } else {
            let x = kb.t("Si", Op::Load { buf: state, index: state_ix(b, hh, vec![lit(0)]) });
            kb.set(st, Op::Binary(BinOp::Add, st, x));
        }
        kb.store(carry, state_ix(b, hh, vec![v(j)]), st);
    };
    // Reads of entering states into o for chunk i: `o += λ[:, c+1+m] ⊙ (q̃ S)`.
    let emit_read = |kb: &mut KB, st: TileId, qtt: TileId, lam: Option<TileId>, m: VarId, ot: TileId| {
        let x = kb.mm("x", qtt, false, st, false);
        let x = match lam {
            Some(l) => {
                let w = kb.t("lam_m", Op::Col(l, IExpr::sum(lit(c + 1), v(m))));
                kb.bin("x", BinOp::Mul, x, w)
            }
            None => x,
        };
        kb.set(ot, Op::Binary(BinOp::Add, ot, x));
    };

    match s.inter {
        InterStage::PerLevelScan => {
            let hs = hs.unwrap_or(BufId(u32::MAX));
            // Kernel 1: one (masked) scan per level.
            let mut kb = KB::new(&bufs.list, if h { "level_scan" } else { "scan" });
            let b = kb.grid("b", d::B);
            let hh = kb.grid("h", d::H);
            let m = kb.grid("m", d::M);
            let st = kb.t("S", Op::Zeros([d::K, d::V]));
            let i = kb.var("i", d::NT);
            kb.for_(i, |kb| {
                if h {
                    // Only level_read's `bit(i, m)` chunks read hs[m, i]: store just those (half the traffic).
                    let stored = Cond::Bit { x: v(i), bit: v(m) };
                    kb.if_(stored, |kb| kb.store(hs, state_ix(b, hh, vec![v(m), v(i)]), st), |_| {});
                } else {
                    kb.store(hs, state_ix(b, hh, vec![v(m), v(i)]), st);
                }
                let trans = |kb: &mut KB| {
                    if s.has_transition() {
                        let (dt, ktt, wtt) = load_trans(kb, b, hh, v(i));
                        emit_transition(kb, s, st, dt, ktt, wtt);
                    }
                };
                if h {
                    let reset = Cond::LowOnes { x: v(i), bits: IExpr::sum(v(m), lit(1)) };
                    kb.if_(reset, |kb| kb.set(st, Op::Zeros([d::K, d::V])), trans);
                } else {
                    trans(kb);
                }
                let add = |kb: &mut KB| {
                    let w =
                        kb.t("cw", Op::Load { buf: cw.unwrap_or(BufId(u32::MAX)), index: state_ix(b, hh, vec![v(i)]) });
                    kb.set(st, Op::Binary(BinOp::Add, st, w));
                };
                if h {
                    kb.if_(Cond::Not(Box::new(Cond::Bit { x: v(i), bit: v(m) })), add, |_| {});
                } else {
                    add(kb);
                }
            });
            let (k, e) = kb.finish();
            kernels.push(k);
            errs.extend(e);

            // Kernel 2: readers add the level states into o.
            let mut kb = KB::new(&bufs.list, if h { "level_read" } else { "read" });
            let b = kb.grid("b", d::B);
            let hh = kb.grid("h", d::H);
            let i = kb.grid("i", d::NT);
            let rows = Rows { b, h: hh, start: IExpr::prod(v(i), IExpr::Sym(Sym::C)), len: d::C, may_pad: true };
            let ot = kb.t("o", Op::Load { buf: o, index: rows.tok(true) });
            let qtt = kb.t("qt", Op::Load { buf: qt.unwrap_or(BufId(u32::MAX)), index: rows.tok(true) });
            let lam = lam_src.map(|(lb, _)| kb.t("lam", Op::Load { buf: lb, index: rows.tok(true) }));
            let m = kb.var("m", d::M);
            kb.for_(m, |kb| {
                let body = |kb: &mut KB| {
                    let st = kb.t("S", Op::Load { buf: hs, index: state_ix(b, hh, vec![v(m), v(i)]) });
                    emit_read(kb, st, qtt, lam, m, ot);
                };
                if h {
                    kb.if_(Cond::Bit { x: v(i), bit: v(m) }, body, |_| {});
                } else {
                    body(kb);
                }
            });
            kb.store(o, rows.tok(true), ot);
            let (k, e) = kb.finish();
            kernels.push(k);
            errs.extend(e);
        }
        InterStage::FusedCarry | InterStage::Streaming => {
            // One walk per (b, h) over the chunks with the M+1 chunk-level states: reads, transition, insert,
            // carries (end of spec §7.2). Fused: the chunk's operands come from the chunk kernel's scratch.
            // Streaming: the walk computes them (preprocessing, intra output, pseudo-queries, write, transition)
            // in tiles, so no per-chunk or per-token scratch exists.
            let carry = carry.unwrap_or(BufId(u32::MAX));
            let mut kb = KB::new(&bufs.list, if streaming { "streaming_scan" } else { "fused_scan" });
            let b = kb.grid("b", d::B);
            let hh = kb.grid("h", d::H);
            let z = kb.t("zero", Op::Zeros([d::K, d::V]));
            let j0 = kb.var("j", d::MS);
            kb.for_(j0, |kb| init_carry(kb, carry, b, hh, j0));
            let i = kb.var("i", d::NT);
            kb.for_(i, |kb| {
                let rows = Rows { b, h: hh, start: IExpr::prod(v(i), IExpr::Sym(Sym::C)), len: d::C, may_pad: true };
                let bad = TileId(u32::MAX);
                let (ot, qtt, lam, (dt, ktt, wtt), cwt) = if streaming {
                    let roots = emit_preprocess(kb, s, var, &bufs, &rows, &roots_needed(s));
                    let p = emit_chunk_stages(kb, s, &s.chunk_stages[1..], &roots, d::C, last);
                    let lam = roots.get(Root::Lambda);
                    (p.o.unwrap_or(bad), p.qt.unwrap_or(bad), lam, (p.dec, p.kt, p.wt), p.cw.unwrap_or(bad))
                } else {
                    let ot = kb.t("o", Op::Load { buf: o, index: rows.tok(true) });
                    let qtt = kb.t("qt", Op::Load { buf: qt.unwrap_or(BufId(u32::MAX)), index: rows.tok(true) });
                    let lam = lam_src.map(|(lb, _)| kb.t("lam", Op::Load { buf: lb, index: rows.tok(true) }));
                    let trans = if s.has_transition() { load_trans(kb, b, hh, v(i)) } else { (None, None, None) };
                    let cw_ix = state_ix(b, hh, vec![v(i)]);
                    let cwt = kb.t("cw", Op::Load { buf: cw.unwrap_or(BufId(u32::MAX)), index: cw_ix });
                    (ot, qtt, lam, trans, cwt)
                };
                let j = kb.var("j", d::M);
                kb.for_(j, |kb| {
                    let body = |kb: &mut KB| {
                        let st = kb.t("S", Op::Load { buf: carry, index: state_ix(b, hh, vec![v(j)]) });
                        emit_read(kb, st, qtt, lam, j, ot);
                        if let Some(hl) = hlast {
                            let last = Cond::Ge(v(i), IExpr::sum(IExpr::Sym(Sym::NT), lit(-1)));
                            kb.if_(last, |kb| kb.store(hl, state_ix(b, hh, vec![v(j)]), st), |_| {});
                        }
                    };
                    if h {
                        kb.if_(abs_bit(v(i), v(j)), body, |_| {});
                    } else {
                        body(kb);
                    }
                });
                kb.store(o, rows.tok(true), ot);
                if s.has_transition() {
                    let j = kb.var("j", d::MS);
                    kb.for_(j, |kb| {
                        let st = kb.t("S", Op::Load { buf: carry, index: state_ix(b, hh, vec![v(j)]) });
                        emit_transition(kb, s, st, dt, ktt, wtt);
                        kb.store(carry, state_ix(b, hh, vec![v(j)]), st);
                    });
                }
                let s0 = kb.t("S0", Op::Load { buf: carry, index: state_ix(b, hh, vec![lit(0)]) });
                kb.set(s0, Op::Binary(BinOp::Add, s0, cwt));
                kb.store(carry, state_ix(b, hh, vec![lit(0)]), s0);
                if h {
                    let j = kb.var("j", d::M);
                    kb.for_(j, |kb| {
                        kb.if_(
                            abs_low_ones(v(i), v(j)),
                            |kb| {
                                let lo = kb.t("Sj", Op::Load { buf: carry, index: state_ix(b, hh, vec![v(j)]) });
                                let up_ix = state_ix(b, hh, vec![IExpr::sum(v(j), lit(1))]);
                                let hi = kb.t("Sj1", Op::Load { buf: carry, index: up_ix.clone() });
                                kb.set(hi, Op::Binary(BinOp::Add, hi, lo));
                                kb.store(carry, up_ix, hi);
                                kb.store(carry, state_ix(b, hh, vec![v(j)]), z);
                            },
                            |_| {},
                        );
                    });
                }
            });
            let (k, e) = kb.finish();
            kernels.push(k);
            errs.extend(e);
        }
    }
    // Kernel: the state after token T − 1 (spec §6.3 with t* = T − 1, i* = NT − 1, a* = t* − i*·C), per level.
    // The last chunk's rows past T hold zero gates and writes (preprocessed roots are row-masked), so every
    // transition through them is the identity and "to the end of the chunk" is "to a*".
    {
        let mut kb = KB::new(&bufs.list, "final_state");
        let b = kb.grid("b", d::B);
        let hh = kb.grid("h", d::H);
        let l = kb.grid("l", d::LC);
        let istar = IExpr::sum(IExpr::Sym(Sym::NT), lit(-1));
        let astar = IExpr::sum(
            IExpr::sum(IExpr::Sym(Sym::T), lit(-1)),
            IExpr::prod(lit(-1), IExpr::prod(istar.clone(), IExpr::Sym(Sym::C))),
        );
        let out_ix = state_ix(b, hh, vec![v(l)]);
        let bad = TileId(u32::MAX);
        // The last chunk's transition operands: loaded from the chunk kernel's scratch, or recomputed (streaming).
        let trans_last = |kb: &mut KB| -> (Option<TileId>, Option<TileId>, Option<TileId>) {
            if !streaming {
                return load_trans(kb, b, hh, istar.clone());
            }
            let rows =
                Rows { b, h: hh, start: IExpr::prod(istar.clone(), IExpr::Sym(Sym::C)), len: d::C, may_pad: true };
            let roots = emit_preprocess(kb, s, var, &bufs, &rows, &roots_needed(s));
            let stages: Vec<ChunkStage> = s
                .chunk_stages
                .iter()
                .copied()
                .filter(|x| {
                    matches!(
                        x,
                        ChunkStage::LocalCumsum
                            | ChunkStage::DecayMatrix
                            | ChunkStage::WyUt
                            | ChunkStage::ChunkWrite
                            | ChunkStage::ChunkTransition
                    )
                })
                .collect();
            let p = emit_chunk_stages(kb, s, &stages, &roots, d::C, last);
            (p.dec, p.kt, p.wt)
        };
        // Levels inside the last chunk: its chunk write with the values of the other rows masked out.
        let in_chunk = |kb: &mut KB, level: Option<IExpr>| {
            let rows =
                Rows { b, h: hh, start: IExpr::prod(istar.clone(), IExpr::Sym(Sym::C)), len: d::C, may_pad: true };
            let roots = emit_preprocess(kb, s, var, &bufs, &rows, &roots_needed(s));
            let vw = match level {
                Some(lv) => {
                    let mask =
                        kb.t("lmask", Op::Mask { pred: Pred::Level(lv), shape: [d::C, d::C], on: 1.0, off: 0.0 });
                    let mrow = kb.t("mrow", Op::Row(mask, astar.clone()));
                    let mcol = kb.t("mcol", Op::Transpose(mrow));
                    kb.bin("vl", BinOp::Mul, roots.vw, mcol)
                }
                None => roots.vw,
            };
            let roots = Roots { map: roots.map.clone(), vw };
            let stages: Vec<ChunkStage> = s
                .chunk_stages
                .iter()
                .copied()
                .filter(|x| {
                    matches!(
                        x,
                        ChunkStage::LocalCumsum | ChunkStage::DecayMatrix | ChunkStage::WyUt | ChunkStage::ChunkWrite
                    )
                })
                .collect();
            let p = emit_chunk_stages(kb, s, &stages, &roots, d::C, last);
            p.cw.unwrap_or(bad)
        };
        if h {
            let above = Cond::Ge(v(l), lit(c + 1));
            kb.if_(
                above,
                |kb| {
                    // Level c+1+m: the level-m state entering the last chunk (when bit m of its index is set),
                    // carried through it; zero otherwise.
                    let z = kb.t("zero", Op::Zeros([d::K, d::V]));
                    kb.store(state, out_ix.clone(), z);
                    let m = kb.var("m", d::M);
                    let this_level = Cond::And(
                        Box::new(Cond::Ge(v(l), IExpr::sum(v(m), lit(c + 1)))),
                        Box::new(Cond::And(
                            Box::new(Cond::Not(Box::new(Cond::Ge(v(l), IExpr::sum(v(m), lit(c + 2)))))),
                            Box::new(if hs.is_some() {
                                Cond::Bit { x: istar.clone(), bit: v(m) }
                            } else {
                                abs_bit(istar.clone(), v(m))
                            }),
                        )),
                    );
                    kb.for_(m, |kb| {
                        kb.if_(
                            this_level,
                            |kb| {
                                let src = match (hs, hlast) {
                                    (Some(hs), _) => {
                                        Op::Load { buf: hs, index: state_ix(b, hh, vec![v(m), istar.clone()]) }
                                    }
                                    (None, Some(hl)) => Op::Load { buf: hl, index: state_ix(b, hh, vec![v(m)]) },
                                    (None, None) => Op::Zeros([d::K, d::V]),
                                };
                                let st = kb.t("S", src);
                                if s.has_transition() {
                                    let (dt, ktt, wtt) = trans_last(kb);
                                    emit_transition(kb, s, st, dt, ktt, wtt);
                                }
                                kb.store(state, out_ix.clone(), st);
                            },
                            |_| {},
                        );
                    });
                },
                |kb| {
                    let w = in_chunk(kb, Some(v(l)));
                    kb.store(state, out_ix.clone(), w);
                },
            );
        } else {
            // One state: the state entering the last chunk carried through it, plus the chunk's write.
            match (hs, carry) {
                (Some(hs), _) => {
                    let st = kb.t("S", Op::Load { buf: hs, index: state_ix(b, hh, vec![lit(0), istar.clone()]) });
                    if s.has_transition() {
                        let (dt, ktt, wtt) = load_trans(&mut kb, b, hh, istar.clone());
                        emit_transition(&mut kb, s, st, dt, ktt, wtt);
                    }
                    let w = kb.t(
                        "cw",
                        Op::Load { buf: cw.unwrap_or(BufId(u32::MAX)), index: state_ix(b, hh, vec![istar.clone()]) },
                    );
                    kb.set(st, Op::Binary(BinOp::Add, st, w));
                    kb.store(state, out_ix.clone(), st);
                }
                (None, Some(carry)) => {
                    let st = kb.t("S", Op::Load { buf: carry, index: state_ix(b, hh, vec![lit(0)]) });
                    kb.store(state, out_ix.clone(), st);
                }
                (None, None) => {}
            }
        }
        let (k, e) = kb.finish();
        kernels.push(k);
        errs.extend(e);
    }
    let prog = Program {
        name: format!("{}.forward", var.name),
        chunk: s.chunk,
        hierarchical: h,
        buffers: bufs.list,
        kernels,
        output: o,
        accum: DType::F32,
        specialised: None,
    };
    (prog, errs)
}

/// Lowers the decode-step schedule (spec §6.2) into a program run once per token `t`.
pub fn lower_decode(s: &Schedule, var: &VariantIr) -> (Program, Vec<String>) {
    let h = s.hierarchical();
    let mut bufs = Bufs::with_inputs(var);
    let state = bufs.add("state", BufKind::State, vec![d::B, d::H, d::LC, d::K, d::V]);
    let o = bufs.add("o", BufKind::Output, vec![d::B, d::T, d::H, d::V]);
    let mut kb = KB::new(&bufs.list, "decode_step");
    let b = kb.grid("b", d::B);
    let hh = kb.grid("h", d::H);
    // One token per sequence: the inputs are `[B, 1, H, …]`; the position `t` only drives the level logic.
    let rows = Rows { b, h: hh, start: lit(0), len: d::ONE, may_pad: false };
    let sx = |l: IExpr| vec![Index::At(v(b)), Index::At(v(hh)), Index::At(l), Index::Full, Index::Full];
    let mut roots = None;
    let mut p = Prims::default();
    let bad = TileId(u32::MAX);
    for st in &s.decode {
        match st {
            DecodeStage::Preprocess => roots = Some(emit_preprocess(&mut kb, s, var, &bufs, &rows, &roots_needed(s))),
            DecodeStage::TokenPrimitives => {
                let Some(r) = roots.as_ref() else { continue };
                let stages: Vec<ChunkStage> = s
                    .chunk_stages
                    .iter()
                    .copied()
                    .filter(|x| match x {
                        ChunkStage::Preprocess | ChunkStage::Intra | ChunkStage::PseudoQuery => false,
                        ChunkStage::DecayMatrix => s.delta(),
                        _ => true,
                    })
                    .collect();
                p = emit_chunk_stages(&mut kb, s, &stages, r, d::ONE, 0);
            }
            DecodeStage::Carry => {
                let step = IExpr::Sym(Sym::Step);
                kb.if_(
                    Cond::Ge(step.clone(), lit(1)),
                    |kb| {
                        let l = kb.var("l", d::LC);
                        kb.for_(l, |kb| {
                            kb.if_(
                                Cond::LowZeros { x: step.clone(), bits: v(l) },
                                |kb| {
                                    let lo = kb.t("Sl", Op::Load { buf: state, index: sx(v(l)) });
                                    let up = sx(IExpr::sum(IExpr::Tz(Box::new(step.clone())), lit(1)));
                                    let hi = kb.t("Sup", Op::Load { buf: state, index: up.clone() });
                                    kb.set(hi, Op::Binary(BinOp::Add, hi, lo));
                                    kb.store(state, up, hi);
                                    let z = kb.t("zero", Op::Zeros([d::K, d::V]));
                                    kb.store(state, sx(v(l)), z);
                                },
                                |_| {},
                            );
                        });
                    },
                    |_| {},
                );
            }
            // Transit, insert and read fused into one pass over the levels (each level is read once and
            // written once per step: the step is bound by the state's bytes): for l < LC:
            // S = A_t S^(l); if l = 0: S += W_t; store; o += λ_t[l] (Sᵀ q_t).
            DecodeStage::Transit | DecodeStage::Insert => {}
            DecodeStage::Read => {
                let Some(r) = roots.as_ref() else { continue };
                let q = r.get(Root::Query).unwrap_or(bad);
                let lam = r.get(Root::Lambda);
                let transit = s.decode.contains(&DecodeStage::Transit);
                let (dt, ktt, wtt, cwt) = (p.dec, p.kt, p.wt, p.cw.unwrap_or(bad));
                let ot = kb.t("o", Op::Zeros([d::ONE, d::V]));
                let l = kb.var("l", d::LC);
                kb.for_(l, |kb| {
                    let st = kb.t("S", Op::Load { buf: state, index: sx(v(l)) });
                    if transit {
                        emit_transition(kb, s, st, dt, ktt, wtt);
                    }
                    let first = Cond::Not(Box::new(Cond::Ge(v(l), lit(1))));
                    kb.if_(first, |kb| kb.set(st, Op::Binary(BinOp::Add, st, cwt)), |_| {});
                    kb.store(state, sx(v(l)), st);
                    let x = kb.mm("x", q, false, st, false);
                    let x = match lam {
                        Some(lt) => {
                            let w = kb.t("lam_l", Op::Col(lt, v(l)));
                            kb.bin("x", BinOp::Mul, x, w)
                        }
                        None => x,
                    };
                    kb.set(ot, Op::Binary(BinOp::Add, ot, x));
                });
                kb.store(o, rows.tok(true), ot);
            }
        }
    }
    let (k, errs) = kb.finish();
    let prog = Program {
        name: format!("{}.decode_step", var.name),
        chunk: 1,
        hierarchical: h,
        buffers: bufs.list,
        kernels: vec![k],
        output: o,
        accum: DType::F32,
        specialised: None,
    };
    (prog, errs)
}
