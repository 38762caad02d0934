//! A reference interpreter of the Kernel IR, generic over the element type ([`Float`]: f64 or f32).
//!
//! It executes the ops of the IR one by one, with no knowledge of variants or transition classes; it is the
//! model every compiled backend is compared with.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use crate::bitlen;
use crate::kernel::L2NORM_EPS;
use std::sync::Arc;

use crate::config::ScheduleConfig;
use crate::kernel::*;
use crate::target::{Bindings, Capabilities, CompileStats, Executable, KernelStats, States, Target, TargetError};
use crate::tensor::{DType, Tensor};
use crate::verify::{check_bounds, dim_value};
use crate::SizeEnv;
use std::collections::BTreeMap;

/// The element type of an interpretation.
pub trait Float:
    Copy
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + 'static
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Negative infinity (the masked entries before `exp_nonpos`).
    const NEG_INF: Self;
    /// Conversion from f64 (rounding).
    fn from_f64(x: f64) -> Self;
    /// Conversion to f64 (exact).
    fn to_f64(self) -> f64;
    /// `e^x`.
    fn exp(self) -> Self;
    /// `ln(1 + x)`.
    fn ln_1p(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
}

macro_rules! impl_float {
    ($t:ident) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INF: Self = $t::NEG_INFINITY;
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                $t::exp(self)
            }
            fn ln_1p(self) -> Self {
                $t::ln_1p(self)
            }
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
        }
    };
}

impl_float!(f64);
impl_float!(f32);

/// Element type of an interpretation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Double precision.
    F64,
    /// Single precision (inputs rounded to f32, all arithmetic in f32).
    F32,
}

#[derive(Clone, Debug)]
struct Tile<F> {
    r: usize,
    c: usize,
    d: Vec<F>,
}

impl<F: Float> Tile<F> {
    fn zeros(r: usize, c: usize) -> Self {
        Tile { r, c, d: vec![F::ZERO; r * c] }
    }
    #[inline]
    fn at(&self, i: usize, j: usize) -> F {
        // Size-1 dimensions broadcast.
        let i = if self.r == 1 { 0 } else { i };
        let j = if self.c == 1 { 0 } else { j };
        self.d[i * self.c + j]
    }
}

fn exp_nonpos<F: Float>(x: F) -> F {
    if x > F::ZERO {
        F::ONE
    } else {
        x.exp()
    }
}

fn softplus<F: Float>(x: F) -> F {
    if x > F::ZERO {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid<F: Float>(x: F) -> F {
    if x >= F::ZERO {
        F::ONE / (F::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::ONE + e)
    }
}

/// A [`Pred`] with its integer expressions evaluated.
#[derive(Clone, Copy)]
enum ConcretePred {
    All,
    Lower,
    StrictLower,
    Diag,
    Level(i64),
    /// Rows `r < n` hold.
    RowBelow(i64),
    RowIs(i64),
    ColIs(i64),
}

impl ConcretePred {
    fn holds(self, r: usize, s: usize) -> bool {
        match self {
            ConcretePred::All => true,
            ConcretePred::Lower => s <= r,
            ConcretePred::StrictLower => s < r,
            ConcretePred::Diag => s == r,
            ConcretePred::Level(l) => s <= r && bitlen((r ^ s) as u64) as i64 == l,
            ConcretePred::RowBelow(n) => (r as i64) < n,
            ConcretePred::RowIs(x) => r as i64 == x,
            ConcretePred::ColIs(x) => s as i64 == x,
        }
    }
}

struct Machine<'a, F> {
    p: &'a Program,
    env: SizeEnv,
    bufs: Vec<Vec<F>>,
    shapes: Vec<Vec<usize>>,
}

fn ieval(e: &IExpr, vars: &[i64], env: &SizeEnv) -> i64 {
    match e {
        IExpr::Lit(n) => *n,
        IExpr::Var(v) => vars[v.0 as usize],
        IExpr::Sym(s) => env.get(*s) as i64,
        IExpr::Add(a, b) => ieval(a, vars, env) + ieval(b, vars, env),
        IExpr::Mul(a, b) => ieval(a, vars, env) * ieval(b, vars, env),
        IExpr::Tz(a) => {
            let x = ieval(a, vars, env);
            if x > 0 {
                x.trailing_zeros() as i64
            } else {
                0
            }
        }
    }
}

fn low_mask(bits: i64) -> i64 {
    if bits >= 63 {
        i64::MAX
    } else if bits <= 0 {
        0
    } else {
        (1i64 << bits) - 1
    }
}

pub(crate) fn eval_cond(c: &Cond, vars: &[i64], env: &SizeEnv) -> bool {
    match c {
        Cond::Bit { x, bit } => {
            let b = ieval(bit, vars, env);
            (0..63).contains(&b) && (ieval(x, vars, env) >> b) & 1 == 1
        }
        Cond::LowOnes { x, bits } => {
            let m = low_mask(ieval(bits, vars, env));
            ieval(x, vars, env) & m == m
        }
        Cond::LowZeros { x, bits } => ieval(x, vars, env) & low_mask(ieval(bits, vars, env)) == 0,
        Cond::Ge(a, b) => ieval(a, vars, env) >= ieval(b, vars, env),
        Cond::Not(a) => !eval_cond(a, vars, env),
        Cond::And(a, b) => eval_cond(a, vars, env) && eval_cond(b, vars, env),
    }
}

impl<F: Float> Machine<'_, F> {
    /// The region of an access: fixed offset, the (stride, start, len, extent) of up to two kept dimensions.
    fn region(&self, buf: BufId, index: &[Index], vars: &[i64]) -> (i64, Vec<(usize, i64, usize, i64)>) {
        let shape = &self.shapes[buf.0 as usize];
        let mut strides = vec![1usize; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        let mut base = 0i64;
        let mut kept = Vec::new();
        for (n, ix) in index.iter().enumerate() {
            match ix {
                Index::At(e) => base += ieval(e, vars, &self.env) * strides[n] as i64,
                Index::Block { start, len } => {
                    kept.push((strides[n], ieval(start, vars, &self.env), dim_value(*len, &self.env), shape[n] as i64))
                }
                Index::Full => kept.push((strides[n], 0, shape[n], shape[n] as i64)),
            }
        }
        (base, kept)
    }

    fn load(&self, buf: BufId, index: &[Index], vars: &[i64]) -> Tile<F> {
        let (base, kept) = self.region(buf, index, vars);
        let one = (1usize, 0i64, 1usize, 1i64);
        let (d0, d1) = match kept.len() {
            0 => (one, one),
            1 => (kept[0], one),
            _ => (kept[0], kept[1]),
        };
        let data = &self.bufs[buf.0 as usize];
        let mut t = Tile::zeros(d0.2, d1.2);
        for r in 0..d0.2 {
            let i0 = d0.1 + r as i64;
            if i0 < 0 || i0 >= d0.3 {
                continue;
            }
            for c in 0..d1.2 {
                let i1 = d1.1 + c as i64;
                if i1 < 0 || i1 >= d1.3 {
                    continue;
                }
                let off = base + i0 * d0.0 as i64 + if kept.len() > 1 { i1 * d1.0 as i64 } else { 0 };
                t.d[r * t.c + c] = data[off as usize];
            }
        }
        t
    }

    fn store(&mut self, buf: BufId, index: &[Index], vars: &[i64], t: &Tile<F>) {
        let (base, kept) = self.region(buf, index, vars);
        let one = (1usize, 0i64, 1usize, 1i64);
        let (d0, d1) = match kept.len() {
            0 => (one, one),
            1 => (kept[0], one),
            _ => (kept[0], kept[1]),
        };
        let data = &mut self.bufs[buf.0 as usize];
        for r in 0..d0.2.min(t.r) {
            let i0 = d0.1 + r as i64;
            if i0 < 0 || i0 >= d0.3 {
                continue;
            }
            for c in 0..d1.2.min(t.c) {
                let i1 = d1.1 + c as i64;
                if i1 < 0 || i1 >= d1.3 {
                    continue;
                }
                let off = base + i0 * d0.0 as i64 + if kept.len() > 1 { i1 * d1.0 as i64 } else { 0 };
                data[off as usize] = t.d[r * t.c + c];
            }
        }
    }

    fn op(&self, op: &Op, vars: &[i64], tiles: &[Option<Tile<F>>]) -> Tile<F> {
        let g = |t: &TileId| tiles[t.0 as usize].as_ref().expect("verified: assigned before use");
        let dv = |x: Dim| dim_value(x, &self.env);
        match op {
            Op::Load { buf, index } => self.load(*buf, index, vars),
            Op::Zeros(s) => Tile::zeros(dv(s[0]), dv(s[1])),
            Op::Eye(n) => {
                let n = dv(*n);
                let mut t = Tile::zeros(n, n);
                for i in 0..n {
                    t.d[i * n + i] = F::ONE;
                }
                t
            }
            Op::Const(c) => Tile { r: 1, c: 1, d: vec![F::from_f64(*c)] },
            Op::Unary(u, a) => {
                let a = g(a);
                let f: fn(F) -> F = match u {
                    UnOp::Neg => |x: F| -x,
                    UnOp::Exp => |x: F| x.exp(),
                    UnOp::ExpNonpos => exp_nonpos,
                    UnOp::Softplus => softplus,
                    UnOp::Sigmoid => sigmoid,
                    UnOp::Rsqrt => |x: F| F::ONE / x.sqrt(),
                };
                Tile { r: a.r, c: a.c, d: a.d.iter().map(|x| f(*x)).collect() }
            }
            Op::Binary(b, x, y) => {
                let (x, y) = (g(x), g(y));
                let (r, c) = (x.r.max(y.r), x.c.max(y.c));
                let mut t = Tile::zeros(r, c);
                for i in 0..r {
                    for j in 0..c {
                        let (p, q) = (x.at(i, j), y.at(i, j));
                        t.d[i * c + j] = match b {
                            BinOp::Add => p + q,
                            BinOp::Sub => p - q,
                            BinOp::Mul => p * q,
                        };
                    }
                }
                t
            }
            Op::L2Norm(a) => {
                let mut t = g(a).clone();
                let eps = F::from_f64(L2NORM_EPS);
                for row in t.d.chunks_mut(t.c.max(1)) {
                    let mut s = F::ZERO;
                    for x in row.iter() {
                        s += *x * *x;
                    }
                    let n = (s + eps).sqrt();
                    row.iter_mut().for_each(|x| *x = *x / n);
                }
                t
            }
            Op::Matmul { a, b, ta, tb } => {
                let (a, b) = (g(a), g(b));
                let (m, k) = if *ta { (a.c, a.r) } else { (a.r, a.c) };
                let n = if *tb { b.r } else { b.c };
                let ea = |i: usize, l: usize| if *ta { a.d[l * a.c + i] } else { a.d[i * a.c + l] };
                let eb = |l: usize, j: usize| if *tb { b.d[j * b.c + l] } else { b.d[l * b.c + j] };
                let mut t = Tile::zeros(m, n);
                for i in 0..m {
                    for l in 0..k {
                        let x = ea(i, l);
                        for j in 0..n {
                            t.d[i * n + j] += x * eb(l, j);
                        }
                    }
                }
                t
            }
            Op::MatmulGatedCausal { a, b, g: gt } => {
                let (a, b, gt) = (g(a), g(b), g(gt));
                let (n, k) = (a.r, a.c);
                let mut t = Tile::zeros(n, b.r);
                // seg[i] = Σ_{u=s+1}^{r} g[u, i], accumulated as s walks down from r (no differences).
                let mut seg = vec![F::ZERO; k];
                for r in 0..n {
                    seg.iter_mut().for_each(|x| *x = F::ZERO);
                    for s in (0..=r).rev() {
                        if s < b.r {
                            let mut acc = F::ZERO;
                            for (i, gi) in seg.iter().enumerate() {
                                acc += a.d[r * k + i] * b.d[s * k + i] * exp_nonpos(*gi);
                            }
                            t.d[r * b.r + s] = acc;
                        }
                        for (i, gi) in seg.iter_mut().enumerate() {
                            *gi += gt.d[s * k + i];
                        }
                    }
                }
                t
            }
            Op::CumSum(a) => {
                let mut t = g(a).clone();
                for i in 1..t.r {
                    for j in 0..t.c {
                        let prev = t.d[(i - 1) * t.c + j];
                        t.d[i * t.c + j] += prev;
                    }
                }
                t
            }
            Op::SegSum(a) => {
                let a = g(a);
                let n = a.r;
                let mut t = Tile { r: n, c: n, d: vec![F::NEG_INF; n * n] };
                for r in 0..n {
                    let mut acc = F::ZERO;
                    t.d[r * n + r] = acc;
                    for s in (0..r).rev() {
                        acc += a.d[s + 1];
                        t.d[r * n + s] = acc;
                    }
                }
                t
            }
            Op::SuffixSum(a) => {
                let a = g(a);
                let mut t = Tile::zeros(a.r, a.c);
                for r in (0..a.r.saturating_sub(1)).rev() {
                    for j in 0..a.c {
                        t.d[r * a.c + j] = t.d[(r + 1) * a.c + j] + a.d[(r + 1) * a.c + j];
                    }
                }
                t
            }
            Op::Row(a, r) => {
                let a = g(a);
                let r = ieval(r, vars, &self.env);
                if r < 0 || r as usize >= a.r {
                    return Tile::zeros(1, a.c);
                }
                let r = r as usize;
                Tile { r: 1, c: a.c, d: a.d[r * a.c..(r + 1) * a.c].to_vec() }
            }
            Op::Col(a, j) => {
                let a = g(a);
                let j = ieval(j, vars, &self.env);
                let mut t = Tile::zeros(a.r, 1);
                if j >= 0 && (j as usize) < a.c {
                    for i in 0..a.r {
                        t.d[i] = a.d[i * a.c + j as usize];
                    }
                }
                t
            }
            Op::Transpose(a) => {
                let a = g(a);
                let mut t = Tile::zeros(a.c, a.r);
                for i in 0..a.r {
                    for j in 0..a.c {
                        t.d[j * a.r + i] = a.d[i * a.c + j];
                    }
                }
                t
            }
            Op::Tril { a, strict } => {
                let mut t = g(a).clone();
                for i in 0..t.r {
                    for j in 0..t.c {
                        if j > i || (*strict && j == i) {
                            t.d[i * t.c + j] = F::ZERO;
                        }
                    }
                }
                t
            }
            Op::LevelMask { lam, n } => {
                let n = dv(*n);
                let lam = lam.as_ref().map(g);
                let mut t = Tile::zeros(n, n);
                for r in 0..n {
                    for s in 0..=r {
                        t.d[r * n + s] = match lam {
                            None => F::ONE,
                            Some(l) => {
                                let lv = bitlen((r ^ s) as u64) as usize;
                                if lv < l.c {
                                    l.d[r * l.c + lv]
                                } else {
                                    F::ZERO
                                }
                            }
                        };
                    }
                }
                t
            }
            Op::TriSolve { a, b } => {
                let (a, b) = (g(a), g(b));
                let mut x = b.clone();
                let c = x.c;
                for r in 0..x.r {
                    for s in 0..r {
                        let f = a.d[r * a.c + s];
                        if f != F::ZERO {
                            for j in 0..c {
                                let v = x.d[s * c + j];
                                x.d[r * c + j] = x.d[r * c + j] - f * v;
                            }
                        }
                    }
                }
                x
            }
            Op::MaskRows { a, start, limit } => {
                let mut t = g(a).clone();
                let (s, lim) = (ieval(start, vars, &self.env), dv(*limit) as i64);
                for r in 0..t.r {
                    if s + r as i64 >= lim {
                        for j in 0..t.c {
                            t.d[r * t.c + j] = F::ZERO;
                        }
                    }
                }
                t
            }
            Op::Broadcast(a, s) => {
                let a = g(a);
                let (r, c) = (dv(s[0]), dv(s[1]));
                let mut t = Tile::zeros(r, c);
                for i in 0..r {
                    for j in 0..c {
                        t.d[i * c + j] = a.at(i, j);
                    }
                }
                t
            }
            Op::Mask { pred, shape, on, off } => {
                let p = self.pred(pred, vars);
                let (r, c) = (dv(shape[0]), dv(shape[1]));
                let (on, off) = (F::from_f64(*on), F::from_f64(*off));
                let mut t = Tile::zeros(r, c);
                for i in 0..r {
                    for j in 0..c {
                        t.d[i * c + j] = if p.holds(i, j) { on } else { off };
                    }
                }
                t
            }
            Op::Select { pred, a, fill, shape } => {
                let a = g(a);
                let p = self.pred(pred, vars);
                let (r, c) = (dv(shape[0]), dv(shape[1]));
                let fill = F::from_f64(*fill);
                let mut t = Tile::zeros(r, c);
                for i in 0..r {
                    for j in 0..c {
                        t.d[i * c + j] = if p.holds(i, j) { a.at(i, j) } else { fill };
                    }
                }
                t
            }
            Op::RowSum(a) => {
                let a = g(a);
                let mut t = Tile::zeros(a.r, 1);
                for i in 0..a.r {
                    let mut s = F::ZERO;
                    for j in 0..a.c {
                        s += a.d[i * a.c + j];
                    }
                    t.d[i] = s;
                }
                t
            }
            Op::ColSum(a) => {
                let a = g(a);
                let mut t = Tile::zeros(1, a.c);
                for i in 0..a.r {
                    for j in 0..a.c {
                        t.d[j] += a.d[i * a.c + j];
                    }
                }
                t
            }
        }
    }

    /// A predicate with its integer expressions evaluated.
    fn pred(&self, p: &Pred, vars: &[i64]) -> ConcretePred {
        let e = |x: &IExpr| ieval(x, vars, &self.env);
        match p {
            Pred::All => ConcretePred::All,
            Pred::Lower => ConcretePred::Lower,
            Pred::StrictLower => ConcretePred::StrictLower,
            Pred::Diag => ConcretePred::Diag,
            Pred::Level(l) => ConcretePred::Level(e(l)),
            Pred::RowBelow { start, limit } => ConcretePred::RowBelow(dim_value(*limit, &self.env) as i64 - e(start)),
            Pred::RowIs(r) => ConcretePred::RowIs(e(r)),
            Pred::ColIs(c) => ConcretePred::ColIs(e(c)),
        }
    }

    fn exec(&mut self, k: &Kernel, body: &[Stmt], vars: &mut Vec<i64>, tiles: &mut Vec<Option<Tile<F>>>) {
        for s in body {
            match s {
                Stmt::Assign { dst, op } => {
                    let t = self.op(op, vars, tiles);
                    tiles[dst.0 as usize] = Some(t);
                }
                Stmt::Store { buf, index, src } => {
                    if let Some(t) = tiles[src.0 as usize].take() {
                        self.store(*buf, index, vars, &t);
                        tiles[src.0 as usize] = Some(t);
                    }
                }
                Stmt::For { var, body } => {
                    let ext = dim_value(k.vars[var.0 as usize].extent, &self.env);
                    for i in 0..ext {
                        vars[var.0 as usize] = i as i64;
                        self.exec(k, body, vars, tiles);
                    }
                }
                Stmt::If { cond, then, els } => {
                    if eval_cond(cond, vars, &self.env) {
                        self.exec(k, then, vars, tiles);
                    } else {
                        self.exec(k, els, vars, tiles);
                    }
                }
            }
        }
    }

    fn run_kernel(&mut self, k: &Kernel) {
        let extents: Vec<usize> = k.grid.iter().map(|g| dim_value(k.vars[g.0 as usize].extent, &self.env)).collect();
        if extents.contains(&0) {
            return;
        }
        let mut vars = vec![0i64; k.vars.len()];
        let mut idx = vec![0usize; extents.len()];
        loop {
            for (n, g) in k.grid.iter().enumerate() {
                vars[g.0 as usize] = idx[n] as i64;
            }
            let mut tiles = vec![None; k.tiles.len()];
            self.exec(k, &k.body, &mut vars, &mut tiles);
            // Next grid point (last variable fastest).
            let mut n = extents.len();
            loop {
                if n == 0 {
                    return;
                }
                n -= 1;
                idx[n] += 1;
                if idx[n] < extents[n] {
                    break;
                }
                idx[n] = 0;
            }
        }
    }
}

fn machine<'a, F: Float>(
    p: &'a Program,
    env: SizeEnv,
    inputs: &Bindings<'_>,
    states: &States,
) -> Result<Machine<'a, F>, TargetError> {
    let shapes: Vec<Vec<usize>> =
        p.buffers.iter().map(|b| b.shape.iter().map(|d| dim_value(*d, &env)).collect()).collect();
    let mut bufs = Vec::with_capacity(p.buffers.len());
    for (b, shape) in p.buffers.iter().zip(&shapes) {
        let n: usize = shape.iter().product();
        bufs.push(match &b.kind {
            BufKind::Input(name) => {
                let t = inputs.get(name).ok_or_else(|| TargetError::Binding(format!("input `{name}` is not bound")))?;
                let fits = t.shape.len() == shape.len()
                    && t.shape[..shape.len().saturating_sub(1)] == shape[..shape.len().saturating_sub(1)]
                    && t.shape.last() >= shape.last();
                if !fits {
                    return Err(TargetError::Binding(format!(
                        "input `{name}` has shape {:?}; the program reads {shape:?}",
                        t.shape
                    )));
                }
                // A λ with more levels than L keeps its first L (the last dimension is cut).
                let (l0, l) = (t.shape.last().copied().unwrap_or(1), shape.last().copied().unwrap_or(1));
                let rows = if l0 == 0 { 0 } else { t.numel() / l0 };
                (0..rows).flat_map(|r| (0..l).map(move |j| r * l0 + j)).map(|i| F::from_f64(t.get(i))).collect()
            }
            BufKind::State => match states.get(&b.name) {
                Some(t) => {
                    if t.shape() != shape.as_slice() {
                        return Err(TargetError::Binding(format!(
                            "state `{}` has shape {:?}; the program holds {shape:?}",
                            b.name,
                            t.shape()
                        )));
                    }
                    let v = t.view();
                    (0..n).map(|i| F::from_f64(v.get(i))).collect()
                }
                None => vec![F::ZERO; n],
            },
            _ => vec![F::ZERO; n],
        });
    }
    Ok(Machine { p, env, bufs, shapes })
}

/// Writes every state buffer of `m` into `states`, in `F`'s type.
fn save_states<F: Float>(m: &Machine<F>, states: &mut States) {
    let dt = if std::mem::size_of::<F>() == 8 { DType::F64 } else { DType::F32 };
    for (i, b) in m.p.buffers.iter().enumerate() {
        if b.kind == BufKind::State {
            let data: Vec<f64> = m.bufs[i].iter().map(|x| x.to_f64()).collect();
            states.insert(b.name.clone(), Tensor::from_f64(dt, m.shapes[i].clone(), &data));
        }
    }
}

fn output<F: Float>(m: &Machine<F>, storage: DType) -> Tensor {
    let o = m.p.output.0 as usize;
    let data: Vec<f64> = m.bufs[o].iter().map(|x| x.to_f64()).collect();
    Tensor::from_f64(storage, m.shapes[o].clone(), &data)
}

fn bounds(p: &Program, env: &SizeEnv) -> Result<(), TargetError> {
    check_bounds(p, env).map_err(|e| {
        let msgs: Vec<String> = e.iter().map(|x| x.to_string()).collect();
        TargetError::Failed {
            target: "interpreter".into(),
            message: format!("compiler bug: kernel IR out of bounds for {env}: {}", msgs.join("; ")),
        }
    })
}

/// Interprets the (forward) program `p` on `inputs` for sizes `env`, computing in `F`; returns the output
/// buffer rounded to `storage`.
///
/// Log decays are expected to be ≤ 0 (α ∈ (0, 1], as the spec requires): `exp_nonpos` clamps positive
/// arguments to 0, like the reference's `safe_exp`.
///
/// # Errors
/// [`TargetError::Binding`] for a missing or mis-shaped input; [`TargetError::Failed`] for kernel IR that fails
/// the concrete bounds check for these sizes (a compiler bug).
pub fn run_program<F: Float>(
    p: &Program,
    env: &SizeEnv,
    inputs: &Bindings<'_>,
    storage: DType,
) -> Result<Tensor, TargetError> {
    run_program_with_states::<F>(p, env, inputs, &mut States::new(), storage)
}

/// [`run_program`] with the state buffers bound to `states` ([`States`]: read first, the final contents
/// written back).
///
/// # Errors
/// As [`run_program`]; [`TargetError::Binding`] for a state of the wrong shape.
pub fn run_program_with_states<F: Float>(
    p: &Program,
    env: &SizeEnv,
    inputs: &Bindings<'_>,
    states: &mut States,
    storage: DType,
) -> Result<Tensor, TargetError> {
    bounds(p, env)?;
    let mut m = machine::<F>(p, *env, inputs, states)?;
    for k in &p.kernels {
        m.run_kernel(k);
    }
    save_states(&m, states);
    Ok(output(&m, storage))
}

/// Runs the decode-step program `p` for `t = 0 .. T−1` in order (states carried between steps) and returns every
/// `o_t` as `[B, T, H, V]`. The decode state has `LC = L` levels (the λ tensor's depth).
///
/// # Errors
/// As [`run_program`].
pub fn run_decode<F: Float>(
    p: &Program,
    env: &SizeEnv,
    inputs: &Bindings<'_>,
    storage: DType,
) -> Result<Tensor, TargetError> {
    let mut states = States::new();
    let step = |env: &SizeEnv, x: &Bindings<'_>, st: &mut States| run_program_with_states::<F>(p, env, x, st, storage);
    decode_tokens(env, inputs, &mut states, step)
}

/// Row `t` of every `[B, T, H, …]` input as a `[B, 1, H, …]` tensor (inputs without a `T` axis as they are).
pub fn token_inputs(inputs: &Bindings<'_>, t: usize) -> BTreeMap<String, Tensor> {
    rows_of(inputs, t, t + 1)
}

/// Rows `a..z` of every `[B, T, H, …]` input as `[B, z − a, H, …]` tensors, copied (inputs without a `T` axis as
/// they are).
pub fn rows_of(inputs: &Bindings<'_>, a: usize, z: usize) -> BTreeMap<String, Tensor> {
    inputs
        .iter()
        .map(|(n, x)| {
            if x.shape.len() < 3 {
                return (n.clone(), x.to_owned());
            }
            let (b, tl) = (x.shape[0], x.shape[1]);
            let row = x.shape[2..].iter().product::<usize>() * x.dtype.size();
            let mut bytes = Vec::with_capacity(b * (z - a) * row);
            for bi in 0..b {
                bytes.extend_from_slice(&x.bytes[(bi * tl + a) * row..(bi * tl + z) * row]);
            }
            let mut shape = x.shape.to_vec();
            shape[1] = z - a;
            (n.clone(), Tensor::from_bytes(x.dtype, shape, bytes).expect("rows fill the shape"))
        })
        .collect()
}

/// Runs a decode-step executable (`step`: one call per token at `env.step = t`, `T = 1`, states carried in
/// `states`) over the `T` tokens of `inputs`, from position `t0 = env.step`; returns every `o_t` as
/// `[B, T, H, V]`.
///
/// # Errors
/// The first step's error.
pub fn decode_tokens(
    env: &SizeEnv,
    inputs: &Bindings<'_>,
    states: &mut States,
    mut step: impl FnMut(&SizeEnv, &Bindings<'_>, &mut States) -> Result<Tensor, TargetError>,
) -> Result<Tensor, TargetError> {
    let t0 = env.step;
    let mut out: Option<(DType, Vec<usize>, Vec<Vec<u8>>)> = None;
    for t in 0..env.t {
        let x = token_inputs(inputs, t);
        let views: Bindings<'_> = x.iter().map(|(n, t)| (n.clone(), t.view())).collect();
        let e = SizeEnv { t: 1, nt: 1, m: 0, ms: 1, step: t0 + t, ..*env };
        let o = step(&e, &views, states)?;
        let (b, row) = (o.shape()[0], o.shape()[2..].iter().product::<usize>() * o.dtype().size());
        let acc = out.get_or_insert_with(|| (o.dtype(), o.shape().to_vec(), vec![Vec::new(); b]));
        for (bi, dst) in acc.2.iter_mut().enumerate() {
            dst.extend_from_slice(&o.bytes()[bi * row..(bi + 1) * row]);
        }
    }
    let (dt, mut shape, rows) = out.ok_or_else(|| TargetError::Binding("no tokens to decode".into()))?;
    shape[1] = env.t;
    Tensor::from_bytes(dt, shape, rows.concat()).ok_or_else(|| TargetError::Binding("decode output size".into()))
}

/// The interpreter as a [`Target`]: it "compiles" by keeping the program, and runs it in f64 or f32. It
/// defines what the kernel IR means; every other target is tested against the same oracles.
#[derive(Clone, Copy, Debug)]
pub struct InterpreterTarget {
    precision: Precision,
}

impl InterpreterTarget {
    /// The f64 interpreter (`interpreter`).
    pub fn f64() -> Self {
        InterpreterTarget { precision: Precision::F64 }
    }

    /// The f32 interpreter (`interpreter-f32`).
    pub fn f32() -> Self {
        InterpreterTarget { precision: Precision::F32 }
    }
}

impl Target for InterpreterTarget {
    fn name(&self) -> &'static str {
        match self.precision {
            Precision::F64 => "interpreter",
            Precision::F32 => "interpreter-f32",
        }
    }

    fn description(&self) -> &'static str {
        match self.precision {
            Precision::F64 => "kernel-IR interpreter, f64 (checks the lowering exactly)",
            Precision::F32 => "kernel-IR interpreter, f32 arithmetic",
        }
    }

    fn capabilities(&self) -> Capabilities {
        match self.precision {
            Precision::F64 => Capabilities {
                storage: vec![DType::F64],
                accum: vec![DType::F64],
                decode: true,
                ..Capabilities::cpu_f32()
            },
            Precision::F32 => Capabilities { decode: true, ..Capabilities::cpu_f32() },
        }
    }

    fn default_config(&self, config: ScheduleConfig) -> ScheduleConfig {
        match self.precision {
            Precision::F64 => ScheduleConfig { storage: DType::F64, accum: DType::F64, ..config },
            Precision::F32 => ScheduleConfig { storage: DType::F32, accum: DType::F32, ..config },
        }
    }

    fn compile(&self, program: &Program, config: &ScheduleConfig) -> Result<Arc<dyn Executable>, TargetError> {
        let start = std::time::Instant::now();
        let stats = CompileStats {
            kernels: program
                .kernels
                .iter()
                .map(|k| KernelStats { name: k.name.clone(), ..Default::default() })
                .collect(),
            total: start.elapsed(),
        };
        Ok(Arc::new(Interpreted {
            program: program.clone(),
            precision: self.precision,
            storage: config.storage,
            stats,
        }))
    }
}

struct Interpreted {
    program: Program,
    precision: Precision,
    storage: DType,
    stats: CompileStats,
}

impl Executable for Interpreted {
    fn program(&self) -> &Program {
        &self.program
    }

    fn stats(&self) -> &CompileStats {
        &self.stats
    }

    fn run_with_states(
        &self,
        sizes: &SizeEnv,
        inputs: &Bindings<'_>,
        states: &mut States,
    ) -> Result<Tensor, TargetError> {
        match self.precision {
            Precision::F64 => run_program_with_states::<f64>(&self.program, sizes, inputs, states, self.storage),
            Precision::F32 => run_program_with_states::<f32>(&self.program, sizes, inputs, states, self.storage),
        }
    }
}
