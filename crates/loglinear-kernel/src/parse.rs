//! A parser for the kernel IR's text form: [`parse_program`] reads exactly what [`Program`]'s `Display` prints,
//! so that `parse_program(&p.to_string()) == Ok(p)` for every program the lowering and its passes produce.
//!
//! The text is line oriented (see [`crate::kernel`]); blank lines and lines starting with `;` (comments, the
//! headers of file tests) are skipped. What the printer derives is read back or recomputed:
//! * the header's `c`, `NT`, `MS`, `LC` are checked against `C` and `M` (`M = bitlen(NT-1)` makes a
//!   log-linear program, `M = 1` a linear one); `accum` defaults to f32 when left out;
//! * a buffer's `live a..b` / `unused` is derived from the kernels ([`Program::lifetimes`]) and is ignored;
//! * the program's output is its one `output` buffer;
//! * tiles are declared in order of first mention, with the shape their assignment prints (`%t: [r, c]`);
//!   variables are the grid's, then one per `for`, in text order; a name refers to the innermost variable of
//!   that name in scope, else to a size symbol (`B`, `T`, …, `t` for the decode position).
//!
//! * `zeros`, `mask` and `select` take the shape of the tile they assign unless a trailing `[r, c]` says
//!   otherwise.
//!
//! Where a kernel's declarations are not in that canonical order (or it declares tiles or variables never
//! mentioned, reuses a loop variable, or a variable hides a size or the `r` / `s` of a predicate), the printer
//! adds a `tiles %a: [r, c], …` and/or a `vars a < E, …` line right after the kernel header; with a `vars` line
//! every variable is written `name#index` (its position in that line) and bare names are sizes. Tile names are
//! unique in a kernel (as [`TileDecl::name`] requires).

use std::collections::HashMap;

use crate::kernel::*;
use crate::tensor::DType;
use crate::Specialisation;

/// Why a text is not a kernel-IR program: where (1-based line and column, in characters) and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1 (characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

type R<T> = Result<T, ParseError>;

/// A cursor over one line.
struct Cur<'a> {
    s: &'a str,
    pos: usize,
    line: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

impl<'a> Cur<'a> {
    fn new(s: &'a str, line: usize) -> Self {
        Cur { s, pos: 0, line }
    }
    fn err_at<T>(&self, pos: usize, msg: impl Into<String>) -> R<T> {
        Err(ParseError { line: self.line, column: self.s[..pos].chars().count() + 1, message: msg.into() })
    }
    fn err<T>(&mut self, msg: impl Into<String>) -> R<T> {
        self.ws();
        self.err_at(self.pos, msg)
    }
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }
    fn peek(&mut self) -> Option<char> {
        self.ws();
        self.rest().chars().next()
    }
    fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }
    fn starts(&mut self, t: &str) -> bool {
        self.ws();
        self.rest().starts_with(t)
    }
    fn eat(&mut self, t: &str) -> bool {
        if self.starts(t) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }
    /// What the next token looks like, for error messages.
    fn found(&mut self) -> String {
        self.ws();
        let r = self.rest();
        if r.is_empty() {
            return "the end of the line".into();
        }
        let n = r.chars().take_while(|c| is_name_char(*c)).map(char::len_utf8).sum::<usize>();
        let tok = if n > 0 { &r[..n] } else { &r[..r.chars().next().map_or(0, char::len_utf8)] };
        format!("`{tok}`")
    }
    fn expect(&mut self, t: &str) -> R<()> {
        if self.eat(t) {
            Ok(())
        } else {
            let f = self.found();
            self.err(format!("expected `{t}`, found {f}"))
        }
    }
    fn end(&mut self) -> R<()> {
        if self.at_end() {
            Ok(())
        } else {
            let f = self.found();
            self.err(format!("unexpected {f} at the end of the line"))
        }
    }
    /// A name: letters, digits, `_` and `.`.
    fn name(&mut self, what: &str) -> R<&'a str> {
        self.ws();
        let r = self.rest();
        let n = r.chars().take_while(|c| is_name_char(*c)).map(char::len_utf8).sum::<usize>();
        if n == 0 {
            let f = self.found();
            return self.err(format!("expected {what}, found {f}"));
        }
        self.pos += n;
        Ok(&r[..n])
    }
    /// A keyword (a whole name).
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.pos;
        match self.name("") {
            Ok(n) if n == kw => true,
            _ => {
                self.pos = save;
                false
            }
        }
    }
    fn number(&mut self) -> R<u64> {
        self.ws();
        let r = self.rest();
        let n = r.chars().take_while(char::is_ascii_digit).count();
        if n == 0 {
            let f = self.found();
            return self.err(format!("expected a number, found {f}"));
        }
        let start = self.pos;
        self.pos += n;
        r[..n].parse::<u64>().or_else(|e| self.err_at(start, format!("bad number `{}`: {e}", &r[..n])))
    }
    fn usize(&mut self) -> R<usize> {
        let start = self.pos;
        let n = self.number()?;
        usize::try_from(n).or_else(|_| self.err_at(start, "number out of range"))
    }
}

fn sym_by_name(s: &str) -> Option<Sym> {
    use Sym::*;
    [B, T, H, K, V, L, NT, C, M, MS, LC, Step].into_iter().find(|x| x.name() == s)
}

fn dim_of(s: &str) -> Option<Dim> {
    if let Ok(n) = s.parse::<usize>() {
        return Some(Dim::Lit(n));
    }
    sym_by_name(s).map(Dim::Sym)
}

fn dim(c: &mut Cur) -> R<Dim> {
    c.ws();
    let start = c.pos;
    let n = c.name("a size (a number or one of B, T, H, K, V, L, NT, C, M, MS, LC, t)")?;
    match dim_of(n) {
        Some(d) => Ok(d),
        None => {
            c.err_at(start, format!("unknown size `{n}` (sizes are numbers or B, T, H, K, V, L, NT, C, M, MS, LC, t)"))
        }
    }
}

/// `NxN` (one word).
fn square(c: &mut Cur) -> R<Dim> {
    c.ws();
    let start = c.pos;
    let w = c.name("a square size `NxN`")?;
    let d = w.split_once('x').and_then(|(a, b)| Some((dim_of(a)?, dim_of(b)?)));
    match d {
        Some((a, b)) if a == b => Ok(a),
        _ => c.err_at(start, format!("expected a square size `NxN`, found `{w}`")),
    }
}

fn shape2(c: &mut Cur) -> R<Shape2> {
    c.expect("[")?;
    let r = dim(c)?;
    c.expect(",")?;
    let s = dim(c)?;
    c.expect("]")?;
    Ok([r, s])
}

/// The state of one kernel being read.
struct KernelState {
    vars: Vec<Var>,
    grid: Vec<VarId>,
    tiles: Vec<TileDecl>,
    tile_ids: HashMap<String, TileId>,
    /// Whether the tile's shape is known (assigned, or declared by a `tiles` line).
    shaped: Vec<bool>,
    /// Variables in scope, innermost last.
    scope: Vec<VarId>,
    /// Whether a `tiles` line declared the tiles.
    fixed_tiles: bool,
    /// Whether a `vars` line declared the variables (then they are written `name#index`).
    fixed_vars: bool,
}

/// `#index` right after a variable's name, if there.
fn var_index(c: &mut Cur, ks: &KernelState, name: &str, name_at: usize) -> R<Option<VarId>> {
    if !c.rest().starts_with('#') {
        return Ok(None);
    }
    c.pos += 1;
    let i = c.usize()?;
    match ks.vars.get(i) {
        Some(v) if v.name == name => Ok(Some(VarId(i as u32))),
        Some(v) => c.err_at(name_at, format!("variable #{i} is `{}`, not `{name}`", v.name)),
        None => c.err_at(name_at, format!("no variable #{i} (the kernel has {})", ks.vars.len())),
    }
}

struct Parser<'a> {
    lines: Vec<(usize, &'a str)>,
    next: usize,
    buffers: Vec<Buffer>,
    buf_ids: HashMap<String, BufId>,
    /// An index expression ends before `+r` (the start of a `start+r < limit` predicate).
    stop_at_row: std::cell::Cell<bool>,
}

/// A floating-point constant as `{:?}` prints it (`1.0`, `-inf`, `1e-6`, `NaN`).
fn float(c: &mut Cur, after: &str) -> R<f64> {
    c.ws();
    let at = c.pos;
    let w = c.rest().split_whitespace().next().unwrap_or("");
    c.pos += w.len();
    w.parse::<f64>().or_else(|_| c.err_at(at, format!("expected a number after {after}, found `{w}`")))
}

/// Whether the next token is the bare name `name` (not a longer name, not `name#index`).
fn bare(c: &mut Cur, name: &str) -> bool {
    c.ws();
    let r = c.rest();
    r.starts_with(name) && !r[name.len()..].starts_with(|x: char| is_name_char(x) || x == '#')
}

fn pvar(ks: &KernelState, name: &str) -> Option<VarId> {
    ks.scope.iter().rev().copied().find(|v| ks.vars[v.0 as usize].name == name)
}

impl<'a> Parser<'a> {
    fn next_line(&mut self) -> Option<Cur<'a>> {
        let (n, l) = *self.lines.get(self.next)?;
        self.next += 1;
        Some(Cur::new(l, n))
    }

    fn eof_err<T>(&self, msg: &str) -> R<T> {
        let line = self.lines.last().map_or(1, |l| l.0);
        let column = self.lines.last().map_or(0, |l| l.1.chars().count()) + 1;
        Err(ParseError { line, column, message: msg.into() })
    }

    fn tile(&self, c: &mut Cur, ks: &mut KernelState) -> R<TileId> {
        c.ws();
        let start = c.pos;
        if !c.eat("%") {
            let f = c.found();
            return c.err(format!("expected a tile `%name`, found {f}"));
        }
        let r = c.rest();
        let n = r.chars().take_while(|c| is_name_char(*c)).map(char::len_utf8).sum::<usize>();
        if n == 0 {
            return c.err_at(start, "expected a tile name after `%`");
        }
        c.pos += n;
        let name = &r[..n];
        if let Some(t) = ks.tile_ids.get(name) {
            return Ok(*t);
        }
        if ks.fixed_tiles {
            return c.err_at(start, format!("unknown tile `%{name}` (not in the kernel's `tiles` line)"));
        }
        let id = TileId(ks.tiles.len() as u32);
        ks.tiles.push(TileDecl { name: name.to_string(), shape: [d::ONE, d::ONE] });
        ks.shaped.push(false);
        ks.tile_ids.insert(name.to_string(), id);
        Ok(id)
    }

    fn buf(&self, c: &mut Cur) -> R<BufId> {
        c.ws();
        let start = c.pos;
        let n = c.name("a buffer name")?;
        match self.buf_ids.get(n) {
            Some(b) => Ok(*b),
            None => c.err_at(start, format!("unknown buffer `{n}`")),
        }
    }

    // ----- index expressions and conditions -----

    fn iexpr(&self, c: &mut Cur, ks: &KernelState) -> R<IExpr> {
        let mut e = self.term(c, ks)?;
        loop {
            if c.starts("+:") {
                break;
            }
            if self.stop_at_row.get() && c.starts("+") {
                let save = c.pos;
                c.pos += 1;
                let row = bare(c, "r");
                c.pos = save;
                if row {
                    break;
                }
            }
            if c.eat("+") {
                e = IExpr::sum(e, self.term(c, ks)?);
            } else if c.eat("-") {
                c.ws();
                if !c.rest().starts_with(|x: char| x.is_ascii_digit()) {
                    return c.err("expected a number after `-` (the index language has no subtraction of variables)");
                }
                let start = c.pos;
                let n = c.number()?;
                let n = i64::try_from(n).or_else(|_| c.err_at(start, "number out of range"))?;
                e = IExpr::sum(e, IExpr::Lit(-n));
            } else {
                break;
            }
        }
        Ok(e)
    }

    fn term(&self, c: &mut Cur, ks: &KernelState) -> R<IExpr> {
        let mut e = self.factor(c, ks)?;
        while c.eat("*") {
            e = IExpr::prod(e, self.factor(c, ks)?);
        }
        Ok(e)
    }

    fn factor(&self, c: &mut Cur, ks: &KernelState) -> R<IExpr> {
        if c.eat("(") {
            let e = self.iexpr(c, ks)?;
            c.expect(")")?;
            return Ok(e);
        }
        c.ws();
        let start = c.pos;
        let neg = c.eat("-");
        c.ws();
        if c.rest().starts_with(|x: char| x.is_ascii_digit()) {
            let n = c.number()?;
            let n = i64::try_from(n).or_else(|_| c.err_at(start, "number out of range"))?;
            return Ok(IExpr::Lit(if neg { -n } else { n }));
        }
        if neg {
            return c.err("expected a number after `-`");
        }
        if !c.rest().starts_with(|x: char| x.is_ascii_alphabetic() || x == '_') {
            let f = c.found();
            return c.err(format!("expected an index expression, found {f}"));
        }
        let n = c.name("an index expression")?;
        if let Some(v) = var_index(c, ks, n, start)? {
            return Ok(IExpr::Var(v));
        }
        if n == "tz" && c.eat("(") {
            let e = self.iexpr(c, ks)?;
            c.expect(")")?;
            return Ok(IExpr::Tz(Box::new(e)));
        }
        if let Some(v) = pvar(ks, n).filter(|_| !ks.fixed_vars) {
            return Ok(IExpr::Var(v));
        }
        match sym_by_name(n) {
            Some(s) => Ok(IExpr::Sym(s)),
            None => {
                c.err_at(start, format!("unknown variable `{n}` (not a grid or enclosing loop variable, nor a size)"))
            }
        }
    }

    fn cond(&self, c: &mut Cur, ks: &KernelState) -> R<Cond> {
        let mut e = self.cond_unary(c, ks)?;
        while c.eat("&&") {
            e = Cond::And(Box::new(e), Box::new(self.cond_unary(c, ks)?));
        }
        Ok(e)
    }

    fn cond_unary(&self, c: &mut Cur, ks: &KernelState) -> R<Cond> {
        if c.eat("!") {
            return Ok(Cond::Not(Box::new(self.cond_unary(c, ks)?)));
        }
        c.ws();
        let save = c.pos;
        if c.eat("(") {
            if let Ok(e) = self.cond(c, ks) {
                if c.eat(")") {
                    return Ok(e);
                }
            }
            c.pos = save;
        }
        for (kw, k) in [("bit", 0), ("low_ones", 1), ("low_zeros", 2)] {
            if c.keyword(kw) {
                if !c.eat("(") {
                    c.pos = save;
                    break;
                }
                let x = self.iexpr(c, ks)?;
                c.expect(",")?;
                let y = self.iexpr(c, ks)?;
                c.expect(")")?;
                return Ok(match k {
                    0 => Cond::Bit { x, bit: y },
                    1 => Cond::LowOnes { x, bits: y },
                    _ => Cond::LowZeros { x, bits: y },
                });
            }
        }
        let a = self.iexpr(c, ks)?;
        c.expect(">=")?;
        let b = self.iexpr(c, ks)?;
        Ok(Cond::Ge(a, b))
    }

    /// The predicate of `mask` / `select`, over the entry's row `r` and column `s`.
    fn pred(&self, c: &mut Cur, ks: &KernelState) -> R<Pred> {
        if c.keyword("true") {
            return Ok(Pred::All);
        }
        let save = c.pos;
        if bare(c, "s") {
            c.keyword("s");
            if c.eat("<=") {
                if !c.keyword("r") {
                    let f = c.found();
                    return c.err(format!("expected `r`, found {f}"));
                }
                if !c.eat("&&") {
                    return Ok(Pred::Lower);
                }
                for t in ["bitlen", "(", "r", "^", "s", ")", "=="] {
                    c.expect(t)?;
                }
                return Ok(Pred::Level(self.iexpr(c, ks)?));
            }
            if c.eat("<") {
                if !c.keyword("r") {
                    let f = c.found();
                    return c.err(format!("expected `r`, found {f}"));
                }
                return Ok(Pred::StrictLower);
            }
            if c.eat("==") {
                if bare(c, "r") {
                    c.keyword("r");
                    return Ok(Pred::Diag);
                }
                return Ok(Pred::ColIs(self.iexpr(c, ks)?));
            }
            c.pos = save;
        }
        if bare(c, "r") {
            c.keyword("r");
            c.expect("==")?;
            return Ok(Pred::RowIs(self.iexpr(c, ks)?));
        }
        self.stop_at_row.set(true);
        let start = self.iexpr(c, ks);
        self.stop_at_row.set(false);
        let start = start?;
        c.expect("+")?;
        if !c.keyword("r") {
            let f = c.found();
            return c.err(format!("expected `r`, found {f}"));
        }
        c.expect("<")?;
        Ok(Pred::RowBelow { start, limit: dim(c)? })
    }

    /// `[r, c]` at the end of a `zeros`, `mask` or `select` whose shape is not its tile's.
    fn shape_or(c: &mut Cur, dst_shape: Shape2) -> R<Shape2> {
        if c.at_end() {
            Ok(dst_shape)
        } else {
            shape2(c)
        }
    }

    fn access(&self, c: &mut Cur, ks: &KernelState) -> R<(BufId, Vec<Index>)> {
        let b = self.buf(c)?;
        c.expect("[")?;
        let mut index = Vec::new();
        if !c.eat("]") {
            loop {
                if c.eat(":") {
                    index.push(Index::Full);
                } else {
                    let start = self.iexpr(c, ks)?;
                    if c.eat("+:") {
                        index.push(Index::Block { start, len: dim(c)? });
                    } else {
                        index.push(Index::At(start));
                    }
                }
                if c.eat("]") {
                    break;
                }
                c.expect(",")?;
            }
        }
        Ok((b, index))
    }

    // ----- operations and statements -----

    fn op(&self, c: &mut Cur, ks: &mut KernelState, dst_shape: Shape2) -> R<Op> {
        c.ws();
        let start = c.pos;
        let name = c.name("an operation")?;
        let unary = [UnOp::Neg, UnOp::Exp, UnOp::ExpNonpos, UnOp::Softplus, UnOp::Sigmoid, UnOp::Rsqrt];
        let binary = [BinOp::Add, BinOp::Sub, BinOp::Mul];
        if let Some(u) = unary.into_iter().find(|u| u.name() == name) {
            return Ok(Op::Unary(u, self.tile(c, ks)?));
        }
        if let Some(b) = binary.into_iter().find(|b| b.name() == name) {
            let x = self.tile(c, ks)?;
            c.expect(",")?;
            return Ok(Op::Binary(b, x, self.tile(c, ks)?));
        }
        Ok(match name {
            "load" => {
                let (buf, index) = self.access(c, ks)?;
                Op::Load { buf, index }
            }
            "zeros" => Op::Zeros(Self::shape_or(c, dst_shape)?),
            "eye" => Op::Eye(dim(c)?),
            "const" => Op::Const(float(c, "`const`")?),
            "l2norm" => Op::L2Norm(self.tile(c, ks)?),
            "matmul" => {
                let a = self.tile(c, ks)?;
                let ta = c.eat("^T");
                c.expect(",")?;
                let b = self.tile(c, ks)?;
                let tb = c.eat("^T");
                Op::Matmul { a, b, ta, tb }
            }
            "matmul_gated_causal" => {
                let a = self.tile(c, ks)?;
                c.expect(",")?;
                let b = self.tile(c, ks)?;
                c.expect(",")?;
                Op::MatmulGatedCausal { a, b, g: self.tile(c, ks)? }
            }
            "cumsum" => Op::CumSum(self.tile(c, ks)?),
            "segsum" => Op::SegSum(self.tile(c, ks)?),
            "suffix_sum" => Op::SuffixSum(self.tile(c, ks)?),
            "row" | "col" => {
                let a = self.tile(c, ks)?;
                c.expect(",")?;
                let e = self.iexpr(c, ks)?;
                if name == "row" {
                    Op::Row(a, e)
                } else {
                    Op::Col(a, e)
                }
            }
            "transpose" => Op::Transpose(self.tile(c, ks)?),
            "tril" => Op::Tril { a: self.tile(c, ks)?, strict: false },
            "tril_strict" => Op::Tril { a: self.tile(c, ks)?, strict: true },
            "level_mask" => {
                let lam = self.tile(c, ks)?;
                c.expect("(")?;
                let n = square(c)?;
                for t in [",", "level", "=", "bitlen", "(", "r", "^", "s", ")", ")"] {
                    c.expect(t)?;
                }
                Op::LevelMask { lam: Some(lam), n }
            }
            "causal_mask" => Op::LevelMask { lam: None, n: square(c)? },
            "tri_solve_unit_lower" => {
                let a = self.tile(c, ks)?;
                c.expect(",")?;
                Op::TriSolve { a, b: self.tile(c, ks)? }
            }
            "mask_rows" => {
                let a = self.tile(c, ks)?;
                c.expect(",")?;
                let start = self.iexpr(c, ks)?;
                c.expect("<")?;
                Op::MaskRows { a, start, limit: dim(c)? }
            }
            "broadcast" => {
                let a = self.tile(c, ks)?;
                if !c.keyword("to") {
                    let f = c.found();
                    return c.err(format!("expected `to`, found {f}"));
                }
                Op::Broadcast(a, shape2(c)?)
            }
            "mask" => {
                let pred = self.pred(c, ks)?;
                c.expect("?")?;
                let on = float(c, "`?`")?;
                c.expect(":")?;
                let off = float(c, "`:`")?;
                Op::Mask { pred, on, off, shape: Self::shape_or(c, dst_shape)? }
            }
            "select" => {
                let pred = self.pred(c, ks)?;
                c.expect("?")?;
                let a = self.tile(c, ks)?;
                c.expect(":")?;
                let fill = float(c, "`:`")?;
                Op::Select { pred, a, fill, shape: Self::shape_or(c, dst_shape)? }
            }
            "row_sum" => Op::RowSum(self.tile(c, ks)?),
            "col_sum" => Op::ColSum(self.tile(c, ks)?),
            other => return c.err_at(start, format!("unknown operation `{other}`")),
        })
    }

    /// Statements up to the closing `}` of a block; returns them and whether the block closed with
    /// `} else {`.
    fn block(&mut self, ks: &mut KernelState) -> R<(Vec<Stmt>, bool)> {
        let mut out = Vec::new();
        loop {
            let Some(mut c) = self.next_line() else {
                return self.eof_err("unexpected end of input: a block is not closed with `}`");
            };
            if c.eat("}") {
                if c.keyword("else") {
                    c.expect("{")?;
                    c.end()?;
                    return Ok((out, true));
                }
                c.end()?;
                return Ok((out, false));
            }
            c.ws();
            if c.rest().starts_with('%') {
                let dst_start = c.pos;
                let dst_name_end = {
                    let r = &c.rest()[1..];
                    c.pos + 1 + r.chars().take_while(|x| is_name_char(*x)).map(char::len_utf8).sum::<usize>()
                };
                c.pos = dst_name_end;
                c.expect(":")?;
                let shape_at = {
                    c.ws();
                    c.pos
                };
                let shape = shape2(&mut c)?;
                c.expect("=")?;
                let op = self.op(&mut c, ks, shape)?;
                c.end()?;
                // The destination is declared after the operands it reads.
                let after = c.pos;
                c.pos = dst_start;
                let dst = self.tile(&mut c, ks)?;
                c.pos = after;
                let i = dst.0 as usize;
                if !ks.shaped[i] {
                    ks.tiles[i].shape = shape;
                    ks.shaped[i] = true;
                } else if ks.tiles[i].shape != shape {
                    let old = ks.tiles[i].shape;
                    return c.err_at(
                        shape_at,
                        format!(
                            "tile `%{}` has shape [{}, {}], not [{}, {}]",
                            ks.tiles[i].name, old[0], old[1], shape[0], shape[1]
                        ),
                    );
                }
                out.push(Stmt::Assign { dst, op });
            } else if c.keyword("store") {
                let (buf, index) = self.access(&mut c, ks)?;
                c.expect("=")?;
                let src = self.tile(&mut c, ks)?;
                c.end()?;
                out.push(Stmt::Store { buf, index, src });
            } else if c.keyword("for") {
                c.ws();
                let name_at = c.pos;
                let name = c.name("a loop variable")?;
                let var = if ks.fixed_vars {
                    let Some(v) = var_index(&mut c, ks, name, name_at)? else {
                        return c.err_at(name_at, "with a `vars` line, variables are written `name#index`");
                    };
                    c.expect("<")?;
                    let extent = dim(&mut c)?;
                    if ks.vars[v.0 as usize].extent != extent {
                        return c.err_at(
                            name_at,
                            format!("variable `{name}#{}` has extent {}", v.0, ks.vars[v.0 as usize].extent),
                        );
                    }
                    v
                } else {
                    c.expect("<")?;
                    let extent = dim(&mut c)?;
                    ks.vars.push(Var { name: name.to_string(), extent });
                    VarId(ks.vars.len() as u32 - 1)
                };
                c.expect("{")?;
                c.end()?;
                ks.scope.push(var);
                let (body, els) = self.block(ks)?;
                ks.scope.pop();
                if els {
                    return self.else_err("a `for` loop has no `else`");
                }
                out.push(Stmt::For { var, body });
            } else if c.keyword("if") {
                let cond = self.cond(&mut c, ks)?;
                c.expect("{")?;
                c.end()?;
                let (then, has_else) = self.block(ks)?;
                let els = if has_else {
                    let (e, again) = self.block(ks)?;
                    if again {
                        return self.else_err("an `if` has one `else`");
                    }
                    e
                } else {
                    vec![]
                };
                out.push(Stmt::If { cond, then, els });
            } else {
                let f = c.found();
                return c.err(format!(
                    "expected a statement (`%tile: [r, c] = op`, `store`, `for`, `if` or `}}`), found {f}"
                ));
            }
        }
    }

    /// `tiles %a: [r, c], …` and `vars a < E, …` lines right after a kernel header.
    fn decl_lines(&mut self, ks: &mut KernelState) -> R<()> {
        while let Some(&(n, l)) = self.lines.get(self.next) {
            let mut c = Cur::new(l, n);
            c.ws();
            let at = c.pos;
            if c.keyword("tiles") {
                self.next += 1;
                if ks.fixed_tiles {
                    return c.err_at(at, "a second `tiles` line");
                }
                loop {
                    c.ws();
                    let t_at = c.pos;
                    let t = self.tile(&mut c, ks)?;
                    if ks.shaped[t.0 as usize] {
                        return c.err_at(t_at, format!("tile `%{}` declared twice", ks.tiles[t.0 as usize].name));
                    }
                    c.expect(":")?;
                    ks.tiles[t.0 as usize].shape = shape2(&mut c)?;
                    ks.shaped[t.0 as usize] = true;
                    if c.at_end() {
                        break;
                    }
                    c.expect(",")?;
                }
                ks.fixed_tiles = true;
            } else if c.keyword("vars") {
                self.next += 1;
                if ks.fixed_vars {
                    return c.err_at(at, "a second `vars` line");
                }
                loop {
                    let name = c.name("a variable")?.to_string();
                    c.expect("<")?;
                    let extent = dim(&mut c)?;
                    ks.vars.push(Var { name, extent });
                    if c.at_end() {
                        break;
                    }
                    c.expect(",")?;
                }
                ks.fixed_vars = true;
            } else {
                return Ok(());
            }
        }
        Ok(())
    }

    fn else_err<T>(&self, msg: &str) -> R<T> {
        let (line, text) = self.lines[self.next - 1];
        let column = text.find('}').map_or(1, |p| text[..p].chars().count() + 1);
        Err(ParseError { line, column, message: msg.into() })
    }
}

/// Parses one program in the text form [`Program`]'s `Display` prints (see the module doc).
///
/// # Errors
/// The first problem found, with its line and column.
pub fn parse_program(text: &str) -> Result<Program, ParseError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with(';')
        })
        .collect();
    let mut p =
        Parser { lines, next: 0, buffers: Vec::new(), buf_ids: HashMap::new(), stop_at_row: Default::default() };
    let Some(mut c) = p.next_line() else {
        return Err(ParseError { line: 1, column: 1, message: "empty input: expected `program NAME (...)`".into() });
    };
    let (name, chunk, hierarchical, accum) = header(&mut c)?;
    let mut specialised = None;
    let mut output: Option<BufId> = None;
    let mut kernels = Vec::new();
    while let Some(mut c) = p.next_line() {
        c.ws();
        let at = c.pos;
        if c.keyword("specialised") {
            if specialised.is_some() || !p.buffers.is_empty() || !kernels.is_empty() {
                return c.err_at(at, "the `specialised` line comes once, right after the program header");
            }
            let mut v = [0usize; 3];
            for (i, k) in ["K", "V", "C"].into_iter().enumerate() {
                if i > 0 {
                    c.expect(",")?;
                }
                if !c.keyword(k) {
                    let f = c.found();
                    return c.err(format!("expected `{k}`, found {f}"));
                }
                c.expect("=")?;
                v[i] = c.usize()?;
            }
            c.end()?;
            specialised = Some(Specialisation { k: v[0], v: v[1], c: v[2] });
        } else if c.keyword("buffer") {
            if !kernels.is_empty() {
                return c.err_at(at, "buffers are declared before the kernels");
            }
            c.ws();
            let name_at = c.pos;
            let name = c.name("a buffer name")?.to_string();
            if p.buf_ids.contains_key(&name) {
                return c.err_at(name_at, format!("buffer `{name}` declared twice"));
            }
            c.expect(":")?;
            c.ws();
            let kind_at = c.pos;
            let kind = match c.name("a buffer kind (`input`, `output`, `scratch`, `state`)")? {
                "input" => {
                    c.expect("`")?;
                    let r = c.rest();
                    let Some(n) = r.find('`') else { return c.err("unclosed input name: expected a closing `") };
                    c.pos += n + 1;
                    BufKind::Input(r[..n].to_string())
                }
                "output" => BufKind::Output,
                "scratch" => BufKind::Scratch,
                "state" => BufKind::State,
                other => {
                    return c.err_at(
                        kind_at,
                        format!("unknown buffer kind `{other}` (kinds: input `name`, output, scratch, state)"),
                    )
                }
            };
            c.ws();
            let ty_at = c.pos;
            let ty = c.name("an element type")?;
            let Some(elem) = DType::from_name(ty) else {
                return c.err_at(ty_at, format!("unknown element type `{ty}`"));
            };
            c.expect("[")?;
            let mut shape = Vec::new();
            if !c.eat("]") {
                loop {
                    shape.push(dim(&mut c)?);
                    if c.eat("]") {
                        break;
                    }
                    c.expect(",")?;
                }
            }
            // `live a..b` / `unused` are derived from the kernels.
            if c.keyword("live") {
                c.number()?;
                c.expect("..")?;
                c.number()?;
            } else {
                let _ = c.keyword("unused");
            }
            c.end()?;
            let id = BufId(p.buffers.len() as u32);
            if kind == BufKind::Output {
                if output.is_some() {
                    return c.err_at(kind_at, "a second output buffer (a program has one)");
                }
                output = Some(id);
            }
            p.buf_ids.insert(name.clone(), id);
            p.buffers.push(Buffer { name, kind, shape, elem });
        } else if c.keyword("kernel") {
            let num_at = {
                c.ws();
                c.pos
            };
            let n = c.usize()?;
            if n != kernels.len() {
                return c.err_at(num_at, format!("kernel {n} out of order: expected kernel {}", kernels.len()));
            }
            let kname = c.name("a kernel name")?.to_string();
            c.expect("grid")?;
            c.expect("(")?;
            let mut ks = KernelState {
                vars: Vec::new(),
                grid: Vec::new(),
                tiles: Vec::new(),
                tile_ids: HashMap::new(),
                shaped: Vec::new(),
                scope: Vec::new(),
                fixed_tiles: false,
                fixed_vars: false,
            };
            // Grid variables: (name, index, extent, column), resolved once the declaration lines are read.
            let mut grid = Vec::new();
            if !c.eat(")") {
                loop {
                    c.ws();
                    let at = c.pos;
                    let vn = c.name("a grid variable")?;
                    let index = if c.rest().starts_with('#') {
                        c.pos += 1;
                        Some(c.usize()?)
                    } else {
                        None
                    };
                    c.expect("<")?;
                    grid.push((vn, index, dim(&mut c)?, at));
                    if c.eat(")") {
                        break;
                    }
                    c.expect(",")?;
                }
            }
            c.expect("{")?;
            c.end()?;
            p.decl_lines(&mut ks)?;
            for (vn, index, extent, at) in grid {
                if ks.fixed_vars {
                    let Some(i) = index else {
                        return c.err_at(at, "with a `vars` line, variables are written `name#index`");
                    };
                    match ks.vars.get(i) {
                        Some(v) if v.name == vn && v.extent == extent => ks.grid.push(VarId(i as u32)),
                        _ => {
                            return c
                                .err_at(at, format!("grid variable `{vn}#{i} < {extent}` is not in the `vars` line"))
                        }
                    }
                } else {
                    if index.is_some_and(|i| i != ks.vars.len()) {
                        return c.err_at(at, "`name#index` needs the kernel's `vars` line");
                    }
                    ks.vars.push(Var { name: vn.to_string(), extent });
                    ks.grid.push(VarId(ks.vars.len() as u32 - 1));
                }
            }
            ks.scope = ks.grid.clone();
            let (body, els) = p.block(&mut ks)?;
            if els {
                return p.else_err("a kernel body has no `else`");
            }
            kernels.push(Kernel { name: kname, grid: ks.grid, vars: ks.vars, tiles: ks.tiles, body });
        } else if c.keyword("program") {
            return c.err_at(at, "a second program: `parse_program` reads one");
        } else {
            let f = c.found();
            return c.err(format!("expected `buffer`, `kernel` or `specialised`, found {f}"));
        }
    }
    let Some(output) = output else {
        return p.eof_err("the program has no `output` buffer");
    };
    Ok(Program { name, chunk, hierarchical, buffers: p.buffers, kernels, output, accum, specialised })
}

/// `program NAME (C = 16, c = 4, NT = ceil(T/C), M = bitlen(NT-1), MS = M+1, LC = L, accum = f32)`.
fn header(c: &mut Cur) -> R<(String, usize, bool, DType)> {
    if !c.keyword("program") {
        let f = c.found();
        return c.err(format!("expected `program`, found {f}"));
    }
    c.ws();
    let name_at = c.pos;
    let name = c.rest().split_whitespace().next().unwrap_or("").to_string();
    if name.is_empty() || name.starts_with('(') {
        return c.err_at(name_at, "expected the program's name");
    }
    c.pos += name.len();
    c.expect("(")?;
    let mut fields: Vec<(&str, String, usize)> = Vec::new();
    loop {
        c.ws();
        let key_at = c.pos;
        let key = c.name("a header field (`C`, `c`, `NT`, `M`, `MS`, `LC` or `accum`)")?;
        if fields.iter().any(|f| f.0 == key) {
            return c.err_at(key_at, format!("header field `{key}` given twice"));
        }
        c.expect("=")?;
        c.ws();
        let val_at = c.pos;
        let r = c.rest();
        let mut depth = 0i32;
        let mut end = None;
        for (i, ch) in r.char_indices() {
            match ch {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = Some(i);
                    break;
                }
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else { return c.err_at(c.s.len(), "expected `)` closing the program header") };
        let val: String = r[..end].chars().filter(|x| !x.is_whitespace()).collect();
        c.pos += end;
        if !["C", "c", "NT", "M", "MS", "LC", "accum"].contains(&key) {
            return c.err_at(key_at, format!("unknown header field `{key}` (fields: C, c, NT, M, MS, LC, accum)"));
        }
        fields.push((key, val, val_at));
        if c.eat(")") {
            break;
        }
        c.expect(",")?;
    }
    c.end()?;
    let get = |k: &str| fields.iter().find(|f| f.0 == k);
    let Some((_, cv, c_at)) = get("C") else { return c.err_at(name_at, "the program header has no `C = ...`") };
    let chunk = match cv.parse::<usize>() {
        Ok(n) if n.is_power_of_two() => n,
        _ => return c.err_at(*c_at, format!("`C` is a power of two, not `{cv}`")),
    };
    let Some((_, mv, m_at)) = get("M") else { return c.err_at(name_at, "the program header has no `M = ...`") };
    let hierarchical = match mv.as_str() {
        "bitlen(NT-1)" => true,
        "1" => false,
        _ => return c.err_at(*m_at, format!("`M` is `bitlen(NT-1)` (log-linear) or `1` (linear), not `{mv}`")),
    };
    let log2 = chunk.trailing_zeros().to_string();
    let (ms, lc) = if hierarchical { ("M+1", "L") } else { ("1", "1") };
    for (k, want) in [("c", log2.as_str()), ("NT", "ceil(T/C)"), ("MS", ms), ("LC", lc)] {
        if let Some((_, v, at)) = get(k) {
            if v != want {
                return c.err_at(*at, format!("`{k}` must be `{want}` here, not `{v}`"));
            }
        }
    }
    let accum = match get("accum") {
        None => DType::F32,
        Some((_, v, at)) => match DType::from_name(v) {
            Some(t) => t,
            None => return c.err_at(*at, format!("unknown accumulation type `{v}`")),
        },
    };
    Ok((name, chunk, hierarchical, accum))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "\
program t.forward (C = 4, c = 2, NT = ceil(T/C), M = bitlen(NT-1), MS = M+1, LC = L, accum = f32)
  buffer q: input `q` f32 [B, T, H, K] live 0..0
  buffer s: state f32 [B, H, LC, K, K] live 0..0
  buffer o: output f32 [B, T, H, K] live 0..0
kernel 0 k grid(b < B, h < H, i < NT) {
  %q: [C, K] = load q[b, i*C +: C, h, :]
  %z: [K, K] = zeros
  %c: [1, 1] = const -inf
  for l < LC {
    if bit(i, l) && !low_zeros(i, l+1) {
      %S: [K, K] = load s[b, h, l, :, :]
      %z: [K, K] = add %z, %S
    } else {
      %r: [1, K] = row %q, tz(i+1)-1
    }
  }
  %o: [C, K] = matmul %q, %z^T
  store o[b, i*C +: C, h, :] = %o
}
";

    fn err(text: &str) -> ParseError {
        parse_program(text).expect_err("should not parse")
    }

    /// `text` with line `n` (from 1) replaced.
    fn with_line(n: usize, line: &str) -> String {
        BASE.lines().enumerate().map(|(i, l)| format!("{}\n", if i + 1 == n { line } else { l })).collect()
    }

    fn round_trip(p: &Program) {
        let text = p.to_string();
        let q = parse_program(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(q, *p, "\n{text}");
        assert_eq!(q.to_string(), text);
    }

    #[test]
    fn parses_and_prints_back() {
        let p = parse_program(BASE).unwrap();
        assert_eq!(p.to_string(), BASE);
        assert!(p.hierarchical);
        assert_eq!(p.output, BufId(2));
        let k = &p.kernels[0];
        assert_eq!(k.vars.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["b", "h", "i", "l"]);
        assert_eq!(k.tiles.len(), 6);
        assert!(matches!(k.body[2], Stmt::Assign { op: Op::Const(c), .. } if c == f64::NEG_INFINITY));
        // Comments and blank lines are skipped; `live` is optional.
        let loose = format!("; a comment\n\n{}", BASE.replace(" live 0..0", ""));
        assert_eq!(parse_program(&loose).unwrap(), p);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = err(&with_line(6, "  %q: [C, K] = load w[b, i*C +: C, h, :]"));
        assert_eq!((e.line, e.column), (6, 21));
        assert_eq!(e.message, "unknown buffer `w`");
        assert_eq!(e.to_string(), "line 6, column 21: unknown buffer `w`");

        let e = err(&with_line(7, "  %z: [K, K] = frobnicate %q"));
        assert_eq!((e.line, e.column, e.message.as_str()), (7, 16, "unknown operation `frobnicate`"));

        let e = err(&with_line(6, "  %q: [C, K] = load q[b, i*C +: C, h; :]"));
        assert_eq!((e.line, e.column), (6, 37));
        assert_eq!(e.message, "expected `,`, found `;`");

        let e = err(&with_line(7, "  %z: [K, K] = zeros junk"));
        assert_eq!(e.message, "expected `[`, found `junk`");
        let e = err(&with_line(8, "  %c: [1, 1] = const 1.0 junk"));
        assert_eq!((e.line, e.column, e.message.as_str()), (8, 26, "unexpected `junk` at the end of the line"));

        let e = err(&with_line(14, "      %r: [1, K] = row %q, j"));
        assert_eq!((e.line, e.column), (14, 28));
        assert!(e.message.starts_with("unknown variable `j`"), "{}", e.message);

        let e = err(&with_line(7, "  %z: [K, Q] = zeros"));
        assert_eq!((e.line, e.column), (7, 11));
        assert!(e.message.starts_with("unknown size `Q`"), "{}", e.message);

        let e = err(&with_line(12, "      %z: [K, 1] = add %z, %S"));
        assert_eq!((e.line, e.column, e.message.as_str()), (12, 11, "tile `%z` has shape [K, K], not [K, 1]"));

        let e = err(&with_line(3, "  buffer s: stash f32 [B, H, LC, K, K] live 0..0"));
        assert_eq!((e.line, e.column), (3, 13));
        assert!(e.message.starts_with("unknown buffer kind `stash`"));

        let e = err(&with_line(1, "program t.forward (C = 4, c = 3, NT = ceil(T/C), M = 1, MS = 1, LC = 1)"));
        assert_eq!((e.line, e.column, e.message.as_str()), (1, 31, "`c` must be `2` here, not `3`"));

        let e = err(&with_line(5, "kernel 1 k grid(b < B, h < H, i < NT) {"));
        assert_eq!((e.line, e.column, e.message.as_str()), (5, 8, "kernel 1 out of order: expected kernel 0"));

        let e = err(&with_line(9, "  for l < LC"));
        assert_eq!((e.line, e.column), (9, 13));
        assert_eq!(e.message, "expected `{`, found the end of the line");

        let e = err(&with_line(16, "  !"));
        assert_eq!((e.line, e.column), (16, 3));
        assert!(e.message.starts_with("expected a statement"), "{}", e.message);

        let unclosed = BASE.trim_end().strip_suffix('}').unwrap();
        let e = err(unclosed);
        assert_eq!(e.line, 18);
        assert!(e.message.contains("not closed"), "{}", e.message);

        let e = err(&BASE.replace("output", "scratch"));
        assert_eq!(e.message, "the program has no `output` buffer");
        assert_eq!(err("").message, "empty input: expected `program NAME (...)`");
        let e = err(&format!("{BASE}{BASE}"));
        assert_eq!((e.line, e.message.as_str()), (20, "a second program: `parse_program` reads one"));
    }

    fn base() -> Program {
        parse_program(BASE).unwrap()
    }

    #[test]
    fn nested_expressions_and_conditions_round_trip() {
        let mut p = base();
        let k = &mut p.kernels[0];
        let (i, l) = (IExpr::Var(VarId(2)), IExpr::Var(VarId(3)));
        let c = IExpr::Sym(Sym::C);
        // Right-nested sums and products, negative literals.
        let e = IExpr::prod(
            IExpr::sum(i.clone(), IExpr::sum(IExpr::Lit(-1), l.clone())),
            IExpr::prod(c.clone(), IExpr::sum(IExpr::Lit(2), IExpr::Lit(-3))),
        );
        let Stmt::For { body, .. } = &mut k.body[3] else { panic!() };
        let Stmt::If { cond, els, .. } = &mut body[0] else { panic!() };
        let Stmt::Assign { op: Op::Row(_, r), .. } = &mut els[0] else { panic!() };
        *r = e;
        let ge = Cond::Ge(i.clone(), IExpr::prod(i.clone(), IExpr::prod(c.clone(), l.clone())));
        *cond = Cond::And(
            Box::new(Cond::Not(Box::new(Cond::And(Box::new(ge.clone()), Box::new(ge.clone()))))),
            Box::new(Cond::And(Box::new(Cond::Not(Box::new(ge.clone()))), Box::new(ge))),
        );
        // `zeros` of another shape than its tile's.
        k.body[1] = Stmt::Assign { dst: TileId(1), op: Op::Zeros([d::C, d::K]) };
        for x in [0.1, 1e-6, -0.0, f64::INFINITY, 1e300, -2.5] {
            p.kernels[0].body[2] = Stmt::Assign { dst: TileId(2), op: Op::Const(x) };
            round_trip(&p);
        }
        let text = p.to_string();
        assert!(text.contains("%z: [K, K] = zeros [C, K]"), "{text}");
        assert!(text.contains("row %q, (i+(-1+l))*(C*(2-3))"), "{text}");
        assert!(text.contains("if !(i >= i*(C*l) && i >= i*(C*l)) && (!(i >= i*(C*l)) && i >= i*(C*l)) {"), "{text}");
    }

    #[test]
    fn primitives_round_trip() {
        let mut p = base();
        let (i, l) = (IExpr::Var(VarId(2)), IExpr::Var(VarId(3)));
        let cc = [d::C, d::C];
        let preds = [
            Pred::All,
            Pred::Lower,
            Pred::StrictLower,
            Pred::Diag,
            Pred::Level(IExpr::sum(l.clone(), IExpr::Lit(1))),
            Pred::RowBelow { start: IExpr::prod(i.clone(), IExpr::Sym(Sym::C)), limit: d::T },
            Pred::RowBelow { start: IExpr::sum(i.clone(), IExpr::Lit(-1)), limit: d::T },
            Pred::RowIs(IExpr::Tz(Box::new(i.clone()))),
            Pred::ColIs(IExpr::sum(l.clone(), i.clone())),
        ];
        let Stmt::For { body, .. } = &mut p.kernels[0].body[3] else { panic!() };
        for (n, pred) in preds.into_iter().enumerate() {
            let mask = Op::Mask { pred: pred.clone(), shape: cc, on: 1.0, off: f64::NEG_INFINITY };
            let select = Op::Select { pred, a: TileId(0), fill: 0.0, shape: [d::C, d::K] };
            body.push(Stmt::Assign { dst: TileId(6 + 2 * n as u32), op: mask });
            body.push(Stmt::Assign { dst: TileId(7 + 2 * n as u32), op: select });
        }
        body.push(Stmt::Assign { dst: TileId(24), op: Op::RowSum(TileId(6)) });
        body.push(Stmt::Assign { dst: TileId(25), op: Op::ColSum(TileId(6)) });
        body.push(Stmt::Assign { dst: TileId(26), op: Op::Unary(UnOp::Rsqrt, TileId(24)) });
        // The last mask's shape differs from its tile's.
        body.push(Stmt::Assign {
            dst: TileId(27),
            op: Op::Mask { pred: Pred::All, shape: [d::ONE, d::C], on: 0.0, off: 0.0 },
        });
        let k = &mut p.kernels[0];
        for n in 0..9 {
            k.tiles.push(TileDecl { name: format!("m{n}"), shape: cc });
            k.tiles.push(TileDecl { name: format!("s{n}"), shape: [d::C, d::K] });
        }
        k.tiles.push(TileDecl { name: "rs".into(), shape: [d::C, d::ONE] });
        k.tiles.push(TileDecl { name: "cs".into(), shape: [d::ONE, d::C] });
        k.tiles.push(TileDecl { name: "rq".into(), shape: [d::C, d::ONE] });
        k.tiles.push(TileDecl { name: "x".into(), shape: cc });
        round_trip(&p);
        let text = p.to_string();
        for line in [
            "%m0: [C, C] = mask true ? 1.0 : -inf",
            "%s0: [C, K] = select true ? %q : 0.0",
            "%m1: [C, C] = mask s <= r ? 1.0 : -inf",
            "%m2: [C, C] = mask s < r ? 1.0 : -inf",
            "%m3: [C, C] = mask s == r ? 1.0 : -inf",
            "%m4: [C, C] = mask s <= r && bitlen(r ^ s) == l+1 ? 1.0 : -inf",
            "%m5: [C, C] = mask i*C+r < T ? 1.0 : -inf",
            "%s6: [C, K] = select i-1+r < T ? %q : 0.0",
            "%m7: [C, C] = mask r == tz(i) ? 1.0 : -inf",
            "%m8: [C, C] = mask s == l+i ? 1.0 : -inf",
            "%rs: [C, 1] = row_sum %m0",
            "%cs: [1, C] = col_sum %m0",
            "%rq: [C, 1] = rsqrt %rs",
            "%x: [C, C] = mask true ? 0.0 : 0.0 [1, C]",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        // A loop variable named `r` or `s` in a predicate is written `name#index`.
        p.kernels[0].vars[3].name = "r".into();
        round_trip(&p);
        assert!(p.to_string().contains("%m8: [C, C] = mask s == r#3+i#2 ? 1.0 : -inf"));
        p.kernels[0].vars[3].name = "s".into();
        round_trip(&p);

        let e = err(&with_line(8, "  %c: [1, 1] = mask s <= q ? 1.0 : 0.0"));
        assert_eq!((e.line, e.column, e.message.as_str()), (8, 26, "expected `r`, found `q`"));
        let e = err(&with_line(8, "  %c: [1, 1] = mask true ? one : 0.0"));
        assert_eq!((e.line, e.column, e.message.as_str()), (8, 28, "expected a number after `?`, found `one`"));
    }

    #[test]
    fn declarations_out_of_text_order_round_trip() {
        // An unused tile, and tiles declared in another order than mentioned: a `tiles` line.
        let mut p = base();
        p.kernels[0].tiles.push(TileDecl { name: "spare".into(), shape: [d::C, d::C] });
        round_trip(&p);
        assert!(p.to_string().contains("\n  tiles %q: [C, K], %z: [K, K], %c: [1, 1]"));
        let mut p = base();
        let k = &mut p.kernels[0];
        k.tiles = vec![
            TileDecl { name: "b".into(), shape: [d::ONE, d::ONE] },
            TileDecl { name: "a".into(), shape: [d::ONE, d::ONE] },
        ];
        k.body = vec![
            Stmt::Assign { dst: TileId(1), op: Op::Const(1.0) },
            Stmt::Assign { dst: TileId(0), op: Op::Binary(BinOp::Add, TileId(1), TileId(1)) },
        ];
        round_trip(&p);

        // A loop variable reused by two loops, an unused variable, a grid out of order, a variable named like
        // a size: a `vars` line and `name#index` references.
        let mut p = base();
        let k = &mut p.kernels[0];
        let loop_ = k.body[3].clone();
        k.body.push(loop_);
        round_trip(&p);
        let text = p.to_string();
        assert!(text.contains("\n  vars b < B, h < H, i < NT, l < LC\n"), "{text}");
        assert!(text.contains("kernel 0 k grid(b#0 < B, h#1 < H, i#2 < NT) {"), "{text}");
        assert!(text.contains("for l#3 < LC {"), "{text}");
        assert!(text.contains("load s[b#0, h#1, l#3, :, :]"), "{text}");
        let mut p = base();
        p.kernels[0].vars.push(Var { name: "u".into(), extent: d::K });
        round_trip(&p);
        let mut p = base();
        p.kernels[0].grid.swap(0, 1);
        round_trip(&p);
        let mut p = base();
        let k = &mut p.kernels[0];
        k.vars[3].name = "C".into();
        let Stmt::For { body, .. } = &mut k.body[3] else { panic!() };
        let Stmt::If { els, .. } = &mut body[0] else { panic!() };
        els[0] = Stmt::Assign {
            dst: TileId(4),
            op: Op::Row(TileId(0), IExpr::sum(IExpr::Sym(Sym::C), IExpr::Var(VarId(3)))),
        };
        round_trip(&p);
        let text = p.to_string();
        assert!(text.contains("for C#3 < LC {"), "{text}");
        assert!(text.contains("%r: [1, K] = row %q, C+C#3"), "{text}");
        assert!(text.contains("load q[b#0, i#2*C +: C, h#1, :]"), "{text}");
    }
}
