//! The Kernel-IR validator, run by the `verify` pass and before every backend.
//!
//! Static checks ([`verify`], symbolic in the sizes):
//! * every handle (buffer, tile, variable) is in range; loads and stores index every buffer dimension;
//! * every tile assignment has the shape its operation produces (shapes compared symbolically, size-1
//!   dimensions broadcast in elementwise operations, matmul inner dimensions equal); stores write a tile of
//!   exactly the region's shape;
//! * every tile is assigned before it is read (definite assignment; assignments inside loops and
//!   conditionals do not count after them); every buffer is written (by an earlier kernel, or earlier in the
//!   same kernel) before it is read, inputs and states excepted;
//! * grid programs write disjoint elements, proven per store: each grid variable `g` owns a dimension indexed by
//!   `g` alone (`At(g·s + c)`, `s ≠ 0`) or by a block `g·s + c +: n` with `s ≥ n` (`c` free of variables), so two
//!   programs that differ in `g` write different elements of that dimension — or the store runs under
//!   `if !(g >= 1)`, so only the program `g = 0` performs it (what `split_v` emits for a split kernel's stores
//!   without a `V` axis);
//! * `exp_nonpos` is applied only to local cumulative gates and segment sums of gates (`segsum`, `suffix_sum`),
//!   never to a difference of cumulative gates; `segsum`, `suffix_sum` and `matmul_gated_causal` sum raw
//!   per-token gates, never cumulative ones;
//! * no buffer is O(T²): sizes are at most linear in `T` (through `T` or `NT`), and only
//!   `T·(K | V | L)`, `NT·C·(K | V | L)` and `NT·K·V·M` shapes carry a `T` factor.
//!
//! Concrete checks ([`check_bounds`], for given sizes): interval arithmetic over loop ranges shows every
//! `At` index and every block start lies inside its dimension (conditions `x ≥ lit` narrow ranges).

use std::collections::HashSet;

use crate::bitlen;

use crate::kernel::*;
use crate::SizeEnv;

/// A validator finding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{program}: kernel `{kernel}`: {message}")]
pub struct VerifyError {
    /// Program name.
    pub program: String,
    /// Kernel name (or `-` for buffer-level findings).
    pub kernel: String,
    /// What is wrong.
    pub message: String,
}

fn dims_eq(a: Dim, b: Dim) -> bool {
    a == b
}

fn bcast(a: Dim, b: Dim) -> Option<Dim> {
    if dims_eq(a, b) {
        Some(a)
    } else if a == d::ONE {
        Some(b)
    } else if b == d::ONE {
        Some(a)
    } else {
        None
    }
}

fn sh(s: Shape2) -> String {
    format!("[{}, {}]", s[0], s[1])
}

/// The region shape a load/store index selects from a buffer.
pub fn region_shape(buf: &Buffer, index: &[Index]) -> Result<Shape2, String> {
    if index.len() != buf.shape.len() {
        return Err(format!(
            "buffer `{}` has rank {} but is indexed with {} indices",
            buf.name,
            buf.shape.len(),
            index.len()
        ));
    }
    let mut keep = Vec::new();
    for (i, d) in index.iter().zip(&buf.shape) {
        match i {
            Index::At(_) => {}
            Index::Block { len, .. } => keep.push(*len),
            Index::Full => keep.push(*d),
        }
    }
    match keep.len() {
        0 => Ok([d::ONE, d::ONE]),
        1 => Ok([keep[0], d::ONE]),
        2 => Ok([keep[0], keep[1]]),
        n => Err(format!("access to `{}` keeps {n} dimensions; tiles have at most 2", buf.name)),
    }
}

/// The shape an operation produces, given the kernel's tile declarations and the program's buffers.
pub fn op_shape(op: &Op, tiles: &[TileDecl], bufs: &[Buffer]) -> Result<Shape2, String> {
    let t = |x: &TileId| -> Result<Shape2, String> {
        tiles.get(x.0 as usize).map(|d| d.shape).ok_or_else(|| format!("tile #{} does not exist", x.0))
    };
    Ok(match op {
        Op::Load { buf, index } => {
            let b = bufs.get(buf.0 as usize).ok_or_else(|| format!("buffer #{} does not exist", buf.0))?;
            region_shape(b, index)?
        }
        Op::Zeros(s) => *s,
        Op::Eye(n) => [*n, *n],
        Op::Const(_) => [d::ONE, d::ONE],
        Op::Unary(_, a) | Op::L2Norm(a) | Op::CumSum(a) => t(a)?,
        Op::Binary(_, a, b) => {
            let (x, y) = (t(a)?, t(b)?);
            match (bcast(x[0], y[0]), bcast(x[1], y[1])) {
                (Some(r), Some(c)) => [r, c],
                _ => return Err(format!("elementwise operands {} and {} do not broadcast", sh(x), sh(y))),
            }
        }
        Op::Matmul { a, b, ta, tb } => {
            let (mut x, mut y) = (t(a)?, t(b)?);
            if *ta {
                x.swap(0, 1);
            }
            if *tb {
                y.swap(0, 1);
            }
            if !dims_eq(x[1], y[0]) {
                return Err(format!("matmul inner dimensions differ: {} · {}", sh(x), sh(y)));
            }
            [x[0], y[1]]
        }
        Op::MatmulGatedCausal { a, b, g } => {
            let (x, y, gx) = (t(a)?, t(b)?, t(g)?);
            if x != y || x != gx {
                return Err(format!(
                    "matmul_gated_causal needs equal [n, k] operands and gates: {} {} {}",
                    sh(x),
                    sh(y),
                    sh(gx)
                ));
            }
            [x[0], y[0]]
        }
        Op::SegSum(a) => {
            let x = t(a)?;
            if x[1] != d::ONE {
                return Err(format!("segsum needs a column, got {}", sh(x)));
            }
            [x[0], x[0]]
        }
        Op::SuffixSum(a) => t(a)?,
        Op::Row(a, _) => [d::ONE, t(a)?[1]],
        Op::Col(a, _) => [t(a)?[0], d::ONE],
        Op::Transpose(a) => {
            let x = t(a)?;
            [x[1], x[0]]
        }
        Op::Tril { a, .. } => {
            let x = t(a)?;
            if !dims_eq(x[0], x[1]) {
                return Err(format!("tril of a non-square tile {}", sh(x)));
            }
            x
        }
        Op::LevelMask { lam, n } => {
            if let Some(l) = lam {
                let x = t(l)?;
                if !dims_eq(x[0], *n) {
                    return Err(format!("level_mask: λ rows {} do not match block {n}", sh(x)));
                }
            }
            [*n, *n]
        }
        Op::TriSolve { a, b } => {
            let (x, y) = (t(a)?, t(b)?);
            if !dims_eq(x[0], x[1]) || !dims_eq(x[1], y[0]) {
                return Err(format!("tri_solve_unit_lower: {} \\ {}", sh(x), sh(y)));
            }
            y
        }
        Op::MaskRows { a, .. } => t(a)?,
        Op::Broadcast(a, s) | Op::Select { a, shape: s, .. } => {
            let x = t(a)?;
            if bcast(x[0], s[0]) != Some(s[0]) || bcast(x[1], s[1]) != Some(s[1]) {
                return Err(format!("cannot broadcast {} to {}", sh(x), sh(*s)));
            }
            *s
        }
        Op::Mask { shape, .. } => *shape,
        Op::RowSum(a) => [t(a)?[0], d::ONE],
        Op::ColSum(a) => [d::ONE, t(a)?[1]],
    })
}

/// Provenance of a tile for the `exp_nonpos` rule.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Prov {
    Other,
    /// A local cumulative gate γ (or a row/transpose of one).
    Gate,
    /// A segment sum of gates (`segsum`): `γ_r − γ_s` summed directly.
    Diff,
    /// A difference of two cumulative gates: it cancels catastrophically after a huge negative gate and is
    /// `−∞ − (−∞)` = NaN once the sums overflow, so `exp_nonpos` of it is rejected.
    GateDiff,
    /// A 0/1 index-predicate mask ([`Op::Mask`]): a matmul of one with raw per-token values sums those values
    /// directly (the decomposed `cumsum`, `suffix_sum`, `segsum`), which is a gate sum ([`Prov::Gate`]).
    Mask,
}

struct Checker<'a> {
    p: &'a Program,
    k: &'a Kernel,
    errs: Vec<VerifyError>,
    prov: Vec<Prov>,
    written: &'a mut HashSet<BufId>,
    /// Grid variables pinned to one value by the enclosing conditions (`if !(g >= 1)`: only `g = 0` runs).
    pinned: Vec<VarId>,
}

/// The grid variable a condition pins to one value: `!(g >= 1)` holds for `g = 0` only (grid variables are
/// non-negative).
pub fn pinned_var(c: &Cond) -> Option<VarId> {
    match c {
        Cond::Not(inner) => match inner.as_ref() {
            Cond::Ge(IExpr::Var(g), IExpr::Lit(1)) => Some(*g),
            _ => None,
        },
        _ => None,
    }
}

impl Checker<'_> {
    fn err(&mut self, m: String) {
        self.errs.push(VerifyError { program: self.p.name.clone(), kernel: self.k.name.clone(), message: m });
    }

    fn check_index(&mut self, buf: BufId, index: &[Index]) {
        let nv = self.k.vars.len() as u32;
        let mut bad = false;
        let mut chk = |e: &IExpr| {
            fn walk(e: &IExpr, nv: u32, bad: &mut bool) {
                match e {
                    IExpr::Var(v) => *bad |= v.0 >= nv,
                    IExpr::Add(a, b) | IExpr::Mul(a, b) => {
                        walk(a, nv, bad);
                        walk(b, nv, bad);
                    }
                    IExpr::Tz(a) => walk(a, nv, bad),
                    _ => {}
                }
            }
            walk(e, nv, &mut bad);
        };
        for i in index {
            match i {
                Index::At(e) | Index::Block { start: e, .. } => chk(e),
                Index::Full => {}
            }
        }
        if bad {
            self.err(format!("an index of buffer #{} uses an undeclared variable", buf.0));
        }
    }

    fn body(&mut self, body: &[Stmt], assigned: &mut HashSet<TileId>) {
        for s in body {
            match s {
                Stmt::Assign { dst, op } => {
                    self.uses(op, assigned);
                    let Some(decl) = self.k.tiles.get(dst.0 as usize) else {
                        self.err(format!("assignment to undeclared tile #{}", dst.0));
                        continue;
                    };
                    match op_shape(op, &self.k.tiles, &self.p.buffers) {
                        Ok(shape) if shape == decl.shape => {}
                        Ok(shape) => self.err(format!(
                            "%{} is declared {} but `{}` produces {}",
                            decl.name,
                            sh(decl.shape),
                            op_to_string(self.p, self.k, op),
                            sh(shape)
                        )),
                        Err(e) => self.err(format!("%{}: {e}", decl.name)),
                    }
                    if let Op::Load { buf, index } = op {
                        self.check_index(*buf, index);
                        if let Some(b) = self.p.buffers.get(buf.0 as usize) {
                            let pre = matches!(b.kind, BufKind::Input(_) | BufKind::State);
                            if !pre && !self.written.contains(buf) {
                                self.err(format!("buffer `{}` is read before it is written", b.name));
                            }
                        }
                    }
                    let pv = |t: &TileId, pr: &Vec<Prov>| pr.get(t.0 as usize).copied().unwrap_or(Prov::Other);
                    let p = match op {
                        Op::CumSum(_) | Op::SuffixSum(_) => Prov::Gate,
                        Op::SegSum(_) => Prov::Diff,
                        Op::Row(a, _) | Op::Transpose(a) | Op::Broadcast(a, _) if pv(a, &self.prov) == Prov::Gate => {
                            Prov::Gate
                        }
                        Op::Binary(BinOp::Sub, a, b)
                            if pv(a, &self.prov) == Prov::Gate && pv(b, &self.prov) == Prov::Gate =>
                        {
                            Prov::GateDiff
                        }
                        // The primitives of `passes::decompose`: a 0/1 mask; a masked sum of raw values (a mask
                        // times per-token values that are not themselves sums) is a direct gate sum; selections,
                        // row and column sums keep what their operand is (a selected difference stays one).
                        Op::Mask { on, off, .. } if [*on, *off].iter().all(|x| *x == 0.0 || *x == 1.0) => Prov::Mask,
                        Op::Matmul { a, b, .. }
                            if pv(a, &self.prov) == Prov::Mask && pv(b, &self.prov) == Prov::Other =>
                        {
                            Prov::Gate
                        }
                        Op::Select { a, fill, .. } if pv(a, &self.prov) == Prov::Mask => {
                            if *fill == 0.0 || *fill == 1.0 {
                                Prov::Mask
                            } else {
                                Prov::Other
                            }
                        }
                        Op::Select { a, .. } | Op::RowSum(a) | Op::ColSum(a) if pv(a, &self.prov) != Prov::Mask => {
                            pv(a, &self.prov)
                        }
                        _ => Prov::Other,
                    };
                    let tname = |a: &TileId| self.k.tiles.get(a.0 as usize).map_or("?".into(), |t| t.name.clone());
                    match op {
                        Op::Unary(UnOp::ExpNonpos, a) if pv(a, &self.prov) == Prov::Other => {
                            let name = tname(a);
                            self.err(format!(
                                "exp_nonpos of %{name}, which is not a local cumulative gate or a segment sum of gates"
                            ))
                        }
                        Op::Unary(UnOp::ExpNonpos, a) if pv(a, &self.prov) == Prov::GateDiff => {
                            let name = tname(a);
                            self.err(format!(
                                "exp_nonpos of %{name}, a difference of cumulative gates (it cancels; sum the gates \
                                 between the rows with `segsum` / `suffix_sum`)"
                            ))
                        }
                        // These ops sum raw per-token gates themselves: summing cumulative gates (or their
                        // differences) again would be wrong, and exp of a difference is what they replace.
                        Op::MatmulGatedCausal { g: a, .. } | Op::SegSum(a) | Op::SuffixSum(a)
                            if pv(a, &self.prov) != Prov::Other =>
                        {
                            let name = tname(a);
                            self.err(format!(
                                "`{}` takes raw per-token gates, but %{name} is a cumulative gate or a difference \
                                 of gates",
                                op_to_string(self.p, self.k, op)
                            ))
                        }
                        _ => {}
                    }
                    if let Some(x) = self.prov.get_mut(dst.0 as usize) {
                        *x = p;
                    }
                    assigned.insert(*dst);
                }
                Stmt::Store { buf, index, src } => {
                    self.use_tile(*src, assigned);
                    self.check_index(*buf, index);
                    let Some(b) = self.p.buffers.get(buf.0 as usize) else {
                        self.err(format!("store to undeclared buffer #{}", buf.0));
                        continue;
                    };
                    if matches!(b.kind, BufKind::Input(_)) {
                        self.err(format!("store to input buffer `{}`", b.name));
                    }
                    match region_shape(b, index) {
                        Ok(r) => {
                            if let Some(t) = self.k.tiles.get(src.0 as usize) {
                                if t.shape != r {
                                    self.err(format!(
                                        "store of %{} {} into a {} region of `{}`",
                                        t.name,
                                        sh(t.shape),
                                        sh(r),
                                        b.name
                                    ));
                                }
                            }
                        }
                        Err(e) => self.err(e),
                    }
                    for g in &self.k.grid {
                        if !index.iter().any(|i| owns(i, *g)) && !self.pinned.contains(g) {
                            let gn = self.k.vars.get(g.0 as usize).map_or("?".into(), |v| v.name.clone());
                            self.err(format!(
                                "store to `{}` is not proven disjoint across grid variable `{gn}`: no dimension is \
                                 indexed by `{gn}` alone, as `{gn} + c` or a block `{gn}·s +: n` with s ≥ n",
                                b.name
                            ));
                        }
                    }
                    self.written.insert(*buf);
                }
                Stmt::For { var, body } => {
                    if var.0 as usize >= self.k.vars.len() {
                        self.err(format!("loop over undeclared variable #{}", var.0));
                    }
                    let mut inner = assigned.clone();
                    self.body(body, &mut inner);
                }
                Stmt::If { cond, then, els } => {
                    let mut a = assigned.clone();
                    let mut b = assigned.clone();
                    let pin = pinned_var(cond).filter(|g| self.k.grid.contains(g));
                    if let Some(g) = pin {
                        self.pinned.push(g);
                    }
                    self.body(then, &mut a);
                    if pin.is_some() {
                        self.pinned.pop();
                    }
                    self.body(els, &mut b);
                    for t in a.intersection(&b) {
                        assigned.insert(*t);
                    }
                }
            }
        }
    }

    fn use_tile(&mut self, t: TileId, assigned: &HashSet<TileId>) {
        if !assigned.contains(&t) {
            let name = self.k.tiles.get(t.0 as usize).map_or(format!("#{}", t.0), |d| d.name.clone());
            self.err(format!("tile %{name} is read before it is assigned"));
        }
    }

    fn uses(&mut self, op: &Op, assigned: &HashSet<TileId>) {
        let ts = crate::analysis::op_reads(op);
        for t in ts {
            self.use_tile(t, assigned);
        }
    }
}

/// The O(T²) rule for one buffer shape; `Err` explains the violation.
pub fn check_size_class(shape: &[Dim]) -> Result<(), String> {
    let count = |s: Sym| shape.iter().filter(|d| **d == Dim::Sym(s)).count();
    let long = count(Sym::T) + count(Sym::NT);
    if long > 1 || count(Sym::C) > 1 && count(Sym::NT) > 0 {
        return Err("its size grows like T² (two sequence-length factors)".into());
    }
    if shape.iter().any(|d| matches!(d, Dim::Lit(n) if *n > 1)) {
        // Specialised: K, V and C are literals now; what remains to check is that at most one factor grows
        // with T (the symbolic classes were checked before specialisation).
        return Ok(());
    }
    let feats = count(Sym::K) + count(Sym::V) + count(Sym::L);
    if count(Sym::T) == 1 {
        if feats > 1 || count(Sym::C) > 0 || count(Sym::M) > 0 {
            return Err("a T-sized buffer may carry at most one of K, V, L".into());
        }
    } else if count(Sym::NT) == 1 {
        let kv_state = count(Sym::K) == 1 && count(Sym::V) == 1 && count(Sym::L) == 0 && count(Sym::C) == 0;
        let rows = count(Sym::C) <= 1 && feats <= 1 && count(Sym::M) == 0;
        if !(kv_state || rows) {
            return Err("an NT-sized buffer must be NT·C·(K | V | L) or NT·K·V·M".into());
        }
    }
    Ok(())
}

/// Statically validates a program; returns every finding.
pub fn verify(p: &Program) -> Result<(), Vec<VerifyError>> {
    let mut errs = Vec::new();
    for b in &p.buffers {
        if let Err(m) = check_size_class(&b.shape) {
            let shape: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
            errs.push(VerifyError {
                program: p.name.clone(),
                kernel: "-".into(),
                message: format!("buffer `{}` [{}] is not allowed: {m}", b.name, shape.join(", ")),
            });
        }
    }
    if p.output.0 as usize >= p.buffers.len() {
        errs.push(VerifyError { program: p.name.clone(), kernel: "-".into(), message: "no output buffer".into() });
    }
    let mut written = HashSet::new();
    for k in &p.kernels {
        for (i, t) in k.tiles.iter().enumerate() {
            if k.tiles[..i].iter().any(|u| u.name == t.name) {
                errs.push(VerifyError {
                    program: p.name.clone(),
                    kernel: k.name.clone(),
                    message: format!("tile name %{} is declared twice", t.name),
                });
            }
        }
        let mut c = Checker {
            p,
            k,
            errs: Vec::new(),
            prov: vec![Prov::Other; k.tiles.len()],
            written: &mut written,
            pinned: Vec::new(),
        };
        let mut assigned = HashSet::new();
        c.body(&k.body, &mut assigned);
        errs.extend(c.errs);
    }
    if !written.contains(&p.output) {
        errs.push(VerifyError {
            program: p.name.clone(),
            kernel: "-".into(),
            message: "the output buffer is never written".into(),
        });
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Value of a symbolic dimension.
pub fn dim_value(d: Dim, env: &SizeEnv) -> usize {
    match d {
        Dim::Lit(n) => n,
        Dim::Sym(s) => env.get(s),
    }
}

/// Closed integer interval `[lo, hi]`.
type Iv = (i64, i64);

fn iv_expr(e: &IExpr, vars: &[Iv], env: &SizeEnv, step: Iv) -> Iv {
    match e {
        IExpr::Lit(n) => (*n, *n),
        IExpr::Var(v) => vars.get(v.0 as usize).copied().unwrap_or((i64::MIN / 4, i64::MAX / 4)),
        IExpr::Sym(Sym::Step) => step,
        IExpr::Sym(s) => {
            let x = env.get(*s) as i64;
            (x, x)
        }
        IExpr::Add(a, b) => {
            let (x, y) = (iv_expr(a, vars, env, step), iv_expr(b, vars, env, step));
            (x.0 + y.0, x.1 + y.1)
        }
        IExpr::Mul(a, b) => {
            let (x, y) = (iv_expr(a, vars, env, step), iv_expr(b, vars, env, step));
            let c = [x.0 * y.0, x.0 * y.1, x.1 * y.0, x.1 * y.1];
            (*c.iter().min().unwrap_or(&0), *c.iter().max().unwrap_or(&0))
        }
        IExpr::Tz(a) => {
            let x = iv_expr(a, vars, env, step);
            let hi = if x.1 >= 1 { bitlen(x.1 as u64) as i64 - 1 } else { 0 };
            (0, hi.max(0))
        }
    }
}

struct Bounds<'a> {
    p: &'a Program,
    k: &'a Kernel,
    env: &'a SizeEnv,
    errs: Vec<VerifyError>,
}

impl Bounds<'_> {
    fn access(&mut self, buf: BufId, index: &[Index], vars: &[Iv], step: Iv) {
        let Some(b) = self.p.buffers.get(buf.0 as usize) else { return };
        for (n, (i, dm)) in index.iter().zip(&b.shape).enumerate() {
            let ext = dim_value(*dm, self.env) as i64;
            let (e, what) = match i {
                Index::At(e) => (e, "index"),
                Index::Block { start, .. } => (start, "block start"),
                Index::Full => continue,
            };
            let (lo, hi) = iv_expr(e, vars, self.env, step);
            if lo < 0 || hi >= ext {
                self.errs.push(VerifyError {
                    program: self.p.name.clone(),
                    kernel: self.k.name.clone(),
                    message: format!(
                        "{what} of dimension {n} of `{}` ranges over [{lo}, {hi}], outside 0..{ext} ({})",
                        b.name, self.env
                    ),
                });
            }
        }
    }

    fn body(&mut self, body: &[Stmt], vars: &mut Vec<Iv>, step: Iv) {
        for s in body {
            match s {
                Stmt::Assign { op: Op::Load { buf, index }, .. } => self.access(*buf, index, vars, step),
                Stmt::Store { buf, index, .. } => self.access(*buf, index, vars, step),
                Stmt::Assign { .. } => {}
                Stmt::For { var, body } => {
                    let ext = self.k.vars.get(var.0 as usize).map_or(0, |v| dim_value(v.extent, self.env)) as i64;
                    if ext == 0 {
                        continue;
                    }
                    let old = vars[var.0 as usize];
                    vars[var.0 as usize] = (0, ext - 1);
                    self.body(body, vars, step);
                    vars[var.0 as usize] = old;
                }
                Stmt::If { cond, then, els } => {
                    // Narrowing: `x >= lit` on a variable or the decode step.
                    if let Cond::Ge(x, IExpr::Lit(n)) = cond {
                        match x {
                            IExpr::Sym(Sym::Step) => {
                                let st = (step.0.max(*n), step.1);
                                if st.0 <= st.1 {
                                    self.body(then, vars, st);
                                }
                                self.body(els, vars, step);
                                continue;
                            }
                            IExpr::Var(v) if (v.0 as usize) < vars.len() => {
                                let old = vars[v.0 as usize];
                                vars[v.0 as usize] = (old.0.max(*n), old.1);
                                if vars[v.0 as usize].0 <= old.1 {
                                    self.body(then, vars, step);
                                }
                                vars[v.0 as usize] = old;
                                self.body(els, vars, step);
                                continue;
                            }
                            _ => {}
                        }
                    }
                    self.body(then, vars, step);
                    self.body(els, vars, step);
                }
            }
        }
    }
}

/// Checks, for concrete sizes, that every index and block start is in bounds.
pub fn check_bounds(p: &Program, env: &SizeEnv) -> Result<(), Vec<VerifyError>> {
    let mut errs = Vec::new();
    let step = (0, env.t as i64 - 1);
    for k in &p.kernels {
        let mut vars: Vec<Iv> = k.vars.iter().map(|_| (0, -1)).collect();
        let mut empty = false;
        for g in &k.grid {
            let ext = k.vars.get(g.0 as usize).map_or(0, |v| dim_value(v.extent, env)) as i64;
            empty |= ext == 0;
            if let Some(x) = vars.get_mut(g.0 as usize) {
                *x = (0, ext - 1);
            }
        }
        if empty {
            continue;
        }
        let mut b = Bounds { p, k, env, errs: Vec::new() };
        b.body(&k.body, &mut vars, step);
        errs.extend(b.errs);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Whether `e` is free of variables.
fn var_free(e: &IExpr) -> bool {
    match e {
        IExpr::Lit(_) | IExpr::Sym(_) => true,
        IExpr::Var(_) => false,
        IExpr::Add(a, b) | IExpr::Mul(a, b) => var_free(a) && var_free(b),
        IExpr::Tz(a) => var_free(a),
    }
}

/// `e = g·stride + c` with `c` free of variables: the stride (a literal or a size symbol, never zero).
fn stride_of(e: &IExpr, g: VarId) -> Option<IExpr> {
    match e {
        IExpr::Var(v) if *v == g => Some(IExpr::Lit(1)),
        IExpr::Add(a, b) => match (stride_of(a, g), stride_of(b, g)) {
            (Some(s), None) if var_free(b) => Some(s),
            (None, Some(s)) if var_free(a) => Some(s),
            _ => None,
        },
        IExpr::Mul(a, b) => {
            let (x, k) = match (&**a, &**b) {
                (IExpr::Var(v), k) | (k, IExpr::Var(v)) if *v == g => (*v, k),
                _ => return None,
            };
            let _ = x;
            match k {
                IExpr::Lit(n) if *n != 0 => Some(IExpr::Lit(*n)),
                IExpr::Sym(s) => Some(IExpr::Sym(*s)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether index `i` gives every value of grid variable `g` its own elements of the dimension.
fn owns(i: &Index, g: VarId) -> bool {
    match i {
        Index::At(e) => stride_of(e, g).is_some(),
        Index::Block { start, len } => match (stride_of(start, g), len) {
            (Some(IExpr::Lit(s)), Dim::Lit(n)) => s.unsigned_abs() as usize >= *n,
            (Some(IExpr::Sym(s)), Dim::Sym(n)) => s == *n,
            (Some(IExpr::Sym(_)), Dim::Lit(1)) => true,
            _ => false,
        },
        Index::Full => false,
    }
}

/// The proof that every element offset of `p` fits in a signed 32-bit index for sizes `env` (targets without
/// 64-bit offsets, e.g. WGSL): every buffer holds fewer than 2^31 elements, so every in-bounds offset (which
/// [`check_bounds`] proves) is below 2^31.
///
/// # Errors
/// The first buffer too large, its shape and element count.
pub fn check_offsets_32(p: &Program, env: &SizeEnv) -> Result<(), String> {
    for b in &p.buffers {
        let shape: Vec<usize> = b.shape.iter().map(|d| dim_value(*d, env)).collect();
        let n = shape.iter().try_fold(1u128, |a, &d| a.checked_mul(d as u128)).unwrap_or(u128::MAX);
        if n >= 1 << 31 {
            return Err(format!(
                "buffer `{}` {shape:?} has {n} elements for {env}: its offsets need more than 32 bits",
                b.name
            ));
        }
    }
    Ok(())
}
