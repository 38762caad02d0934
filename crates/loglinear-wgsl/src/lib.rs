//! # loglinear-wgsl: WGSL compute shaders from the kernel IR
//!
//! The first GPU client of the backend contract (`loglinear-kernel`). This crate translates one kernel of a
//! **specialised, decomposed** program (`loglinear_schedule::compile_decomposed` with sizes: K, V, C literal,
//! primitives only) into one WGSL compute shader, and checks it with naga's WGSL front end and validator.
//! It derives no maths: every statement is the WGSL form of one kernel-IR statement.
//!
//! ## The mapping (the correct-first form)
//! * One **invocation per grid program**: the dispatch is 1-D over `∏ grid extents` (64 invocations per
//!   workgroup); invocation `p` decodes its grid variables in mixed radix, the last grid variable fastest.
//! * **Tiles** are private (`function`-space) `array<f32, R·C>`, row-major, with the literal shapes the
//!   specialised program gives; a scratch array holds the result of a matmul, mask-select or reduction whose
//!   destination is also an operand.
//! * **Buffers** are storage bindings `array<f32>` (`read` for inputs, `read_write` otherwise) at bindings
//!   `1..` in the program's buffer order (only those the kernel touches are declared); binding 0 is
//!   `sizes: array<i32, 12>`, the run-time sizes in `SizeEnv` order (B, T, H, K, V, L, NT, C, M, MS, LC, t).
//!   Offsets are `i32`: a target without 64-bit indices needs `verify::check_offsets_32` to hold.
//! * Loads past the end of a dimension read zero and stores past it are dropped (kernel-IR invariant 6),
//!   checked per element.
//! * Conditions and index expressions are `i32` arithmetic (`tz` is `countTrailingZeros`, `bitlen(x)` is
//!   `32 − countLeadingZeros(x)`).
//! * `exp_nonpos(x)` is `exp(min(x, 0))` with `x < −87` giving 0 (an exponent that underflows f32), so a `−∞`
//!   gate sum gives 0, never NaN.
//!
//! What is not here yet: workgroup-cooperative tiles in workgroup memory, f16/bf16 storage, subgroups and
//! cooperative matrices, and the wgpu runtime (`Target`); see `docs/ARCHITECTURE.md`.

#![warn(missing_docs)]

use std::collections::BTreeSet;

use loglinear_kernel::kernel::{
    BinOp, BufId, BufKind, Cond, Dim, IExpr, Index, Kernel, Op, Pred, Program, Stmt, Sym, TileId, UnOp, VarId,
};
use loglinear_kernel::passes::decompose::is_primitive;

/// Invocations per workgroup.
pub const WORKGROUP_SIZE: u32 = 64;

/// Why a kernel cannot be translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WgslError {
    /// The program is not specialised (K, V, C symbolic).
    #[error("program `{0}` is not specialised: run `specialise` (compile with sizes)")]
    NotSpecialised(String),
    /// A compound op remains: the program must be decomposed first.
    #[error("kernel `{kernel}`: `{op}` is not a primitive; run `decompose` (compile_decomposed)")]
    Compound {
        /// Kernel.
        kernel: String,
        /// The op.
        op: String,
    },
    /// A tile with a run-time shape, or another construct outside the mapping.
    #[error("kernel `{kernel}`: {what}")]
    Unsupported {
        /// Kernel.
        kernel: String,
        /// What.
        what: String,
    },
    /// naga rejected the generated WGSL (a translator bug).
    #[error("kernel `{kernel}`: generated WGSL does not validate: {message}")]
    Invalid {
        /// Kernel.
        kernel: String,
        /// naga's message.
        message: String,
    },
}

/// One binding of a generated shader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Binding index in group 0.
    pub binding: u32,
    /// The program buffer bound there (`None`: the sizes array).
    pub buffer: Option<BufId>,
    /// Whether the shader writes it.
    pub writable: bool,
}

/// A translated kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct WgslKernel {
    /// The kernel's name.
    pub name: String,
    /// WGSL source, entry point `main`.
    pub source: String,
    /// Its bindings, in binding order.
    pub bindings: Vec<Binding>,
    /// The grid variables' extents (the dispatch covers their product).
    pub grid: Vec<Dim>,
}

/// Translates every kernel of `program`.
///
/// # Errors
/// The first kernel that fails [`translate_kernel`].
pub fn translate_program(program: &Program) -> Result<Vec<WgslKernel>, WgslError> {
    (0..program.kernels.len()).map(|k| translate_kernel(program, k)).collect()
}

/// Translates kernel `ki` of a specialised, decomposed `program` and validates the result with naga.
///
/// # Errors
/// [`WgslError`]: not specialised, a compound op, a run-time tile shape, or (a bug) WGSL naga rejects.
pub fn translate_kernel(program: &Program, ki: usize) -> Result<WgslKernel, WgslError> {
    let k = &program.kernels[ki];
    let out = Gen::new(program, k)?.run()?;
    validate(&out.source).map_err(|message| WgslError::Invalid { kernel: k.name.clone(), message })?;
    Ok(out)
}

/// Parses and validates WGSL with naga; the error text on failure.
pub fn validate(source: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
    v.validate(&module).map(|_| ()).map_err(|e| e.emit_to_string(source))
}

fn sym_slot(s: Sym) -> usize {
    match s {
        Sym::B => 0,
        Sym::T => 1,
        Sym::H => 2,
        Sym::K => 3,
        Sym::V => 4,
        Sym::L => 5,
        Sym::NT => 6,
        Sym::C => 7,
        Sym::M => 8,
        Sym::MS => 9,
        Sym::LC => 10,
        Sym::Step => 11,
    }
}

struct Gen<'a> {
    p: &'a Program,
    k: &'a Kernel,
    shapes: Vec<(usize, usize)>,
    out: String,
    indent: usize,
    bind: Vec<Option<u32>>,
    /// Largest tile, in elements (the scratch array's size).
    max_tile: usize,
}

fn lit(d: Dim) -> Option<usize> {
    match d {
        Dim::Lit(n) => Some(n),
        Dim::Sym(_) => None,
    }
}

impl<'a> Gen<'a> {
    fn new(p: &'a Program, k: &'a Kernel) -> Result<Self, WgslError> {
        if p.specialised.is_none() {
            return Err(WgslError::NotSpecialised(p.name.clone()));
        }
        let mut shapes = Vec::new();
        for t in &k.tiles {
            match (lit(t.shape[0]), lit(t.shape[1])) {
                (Some(r), Some(c)) => shapes.push((r, c)),
                _ => {
                    return Err(WgslError::Unsupported {
                        kernel: k.name.clone(),
                        what: format!("tile %{} has a run-time shape [{}, {}]", t.name, t.shape[0], t.shape[1]),
                    })
                }
            }
        }
        let max_tile = shapes.iter().map(|(r, c)| r * c).max().unwrap_or(1).max(1);
        Ok(Gen { p, k, shapes, out: String::new(), indent: 0, bind: vec![None; p.buffers.len()], max_tile })
    }

    fn line(&mut self, s: impl AsRef<str>) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }

    fn var(&self, v: VarId) -> String {
        format!("v{}", v.0)
    }

    fn tile(&self, t: TileId) -> String {
        format!("t{}", t.0)
    }

    fn buf(&self, b: BufId) -> String {
        format!("b{}", b.0)
    }

    fn dim(&self, d: Dim) -> String {
        match d {
            Dim::Lit(n) => format!("{n}"),
            Dim::Sym(s) => format!("sizes[{}]", sym_slot(s)),
        }
    }

    fn iexpr(&self, e: &IExpr) -> String {
        match e {
            IExpr::Lit(n) => format!("({n})"),
            IExpr::Sym(s) => format!("sizes[{}]", sym_slot(*s)),
            IExpr::Var(v) => self.var(*v),
            IExpr::Add(a, b) => format!("({} + {})", self.iexpr(a), self.iexpr(b)),
            IExpr::Mul(a, b) => format!("({} * {})", self.iexpr(a), self.iexpr(b)),
            IExpr::Tz(a) => format!("i32(countTrailingZeros({}))", self.iexpr(a)),
        }
    }

    fn cond(&self, c: &Cond) -> String {
        let mask = |bits: String| format!("((1 << u32({bits})) - 1)");
        match c {
            Cond::Bit { x, bit } => format!("((({} >> u32({})) & 1) != 0)", self.iexpr(x), self.iexpr(bit)),
            Cond::LowOnes { x, bits } => {
                let m = mask(self.iexpr(bits));
                format!("(({} & {m}) == {m})", self.iexpr(x))
            }
            Cond::LowZeros { x, bits } => format!("(({} & {}) == 0)", self.iexpr(x), mask(self.iexpr(bits))),
            Cond::Ge(a, b) => format!("({} >= {})", self.iexpr(a), self.iexpr(b)),
            Cond::Not(a) => format!("(!{})", self.cond(a)),
            Cond::And(a, b) => format!("({} && {})", self.cond(a), self.cond(b)),
        }
    }

    /// The predicate of a mask or select on element `(r, s)` (variables `r`, `s`).
    fn pred(&self, p: &Pred) -> String {
        match p {
            Pred::All => "true".into(),
            Pred::Lower => "(s <= r)".into(),
            Pred::StrictLower => "(s < r)".into(),
            Pred::Diag => "(s == r)".into(),
            Pred::Level(l) => format!("((s <= r) && (32 - i32(countLeadingZeros(r ^ s)) == {}))", self.iexpr(l)),
            Pred::RowBelow { start, limit } => format!("(({} + r) < {})", self.iexpr(start), self.dim(*limit)),
            Pred::RowIs(e) => format!("(r == {})", self.iexpr(e)),
            Pred::ColIs(e) => format!("(s == {})", self.iexpr(e)),
        }
    }

    fn used_buffers(&self) -> BTreeSet<usize> {
        let mut used = BTreeSet::new();
        loglinear_kernel::kernel::visit(&self.k.body, &mut |s| match s {
            Stmt::Assign { op: Op::Load { buf, .. }, .. } => {
                used.insert(buf.0 as usize);
            }
            Stmt::Store { buf, .. } => {
                used.insert(buf.0 as usize);
            }
            _ => {}
        });
        used
    }

    fn run(mut self) -> Result<WgslKernel, WgslError> {
        // Every op must be a primitive.
        let mut compound = None;
        loglinear_kernel::kernel::visit(&self.k.body, &mut |s| {
            if let Stmt::Assign { op, .. } = s {
                if !is_primitive(op) && compound.is_none() {
                    compound = Some(format!("{op:?}").split([' ', '(', '{']).next().unwrap_or("").to_string());
                }
            }
        });
        if let Some(op) = compound {
            return Err(WgslError::Compound { kernel: self.k.name.clone(), op });
        }
        let mut bindings = vec![Binding { binding: 0, buffer: None, writable: false }];
        self.line(format!("// kernel `{}` of `{}` (loglinear-wgsl)", self.k.name, self.p.name));
        self.line("@group(0) @binding(0) var<storage, read> sizes: array<i32, 12>;");
        for (n, bi) in self.used_buffers().into_iter().enumerate() {
            let b = &self.p.buffers[bi];
            let writable = !matches!(b.kind, BufKind::Input(_));
            let binding = n as u32 + 1;
            self.bind[bi] = Some(binding);
            bindings.push(Binding { binding, buffer: Some(BufId(bi as u32)), writable });
            let access = if writable { "read_write" } else { "read" };
            self.line(format!(
                "// buffer `{}` {:?}",
                b.name,
                b.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>()
            ));
            self.line(format!("@group(0) @binding({binding}) var<storage, {access}> b{bi}: array<f32>;"));
        }
        self.line("");
        self.line(format!("@compute @workgroup_size({WORKGROUP_SIZE})"));
        self.line("fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {");
        self.indent += 1;
        // The program index and the grid variables (last fastest).
        self.line(format!("var p: i32 = i32(gid.x + gid.y * nwg.x * {WORKGROUP_SIZE}u);"));
        let extents: Vec<String> = self.k.grid.iter().map(|g| self.dim(self.k.vars[g.0 as usize].extent)).collect();
        let total = if extents.is_empty() { "1".to_string() } else { extents.join(" * ") };
        self.line(format!("if (p >= {total}) {{ return; }}"));
        for (i, v) in self.k.vars.iter().enumerate() {
            let _ = v;
            self.line(format!("var v{i}: i32 = 0;"));
        }
        for g in self.k.grid.iter().rev() {
            let e = self.dim(self.k.vars[g.0 as usize].extent);
            let name = self.var(*g);
            self.line(format!("{name} = p % {e};"));
            self.line(format!("p = p / {e};"));
        }
        for (t, (r, c)) in self.shapes.clone().into_iter().enumerate() {
            self.line(format!("var t{t}: array<f32, {}>;", (r * c).max(1)));
        }
        self.line(format!("var tmp: array<f32, {}>;", self.max_tile));
        let body = self.k.body.clone();
        self.body(&body)?;
        self.indent -= 1;
        self.line("}");
        let grid = self.k.grid.iter().map(|g| self.k.vars[g.0 as usize].extent).collect();
        Ok(WgslKernel { name: self.k.name.clone(), source: self.out, bindings, grid })
    }

    fn body(&mut self, body: &[Stmt]) -> Result<(), WgslError> {
        for s in body {
            match s {
                Stmt::Assign { dst, op } => self.assign(*dst, op)?,
                Stmt::Store { buf, index, src } => self.access(*buf, index, *src, true),
                Stmt::For { var, body } => {
                    let v = self.var(*var);
                    let e = self.dim(self.k.vars[var.0 as usize].extent);
                    self.line(format!("for ({v} = 0; {v} < {e}; {v} = {v} + 1) {{"));
                    self.indent += 1;
                    self.body(body)?;
                    self.indent -= 1;
                    self.line("}");
                }
                Stmt::If { cond, then, els } => {
                    let c = self.cond(cond);
                    self.line(format!("if ({c}) {{"));
                    self.indent += 1;
                    self.body(then)?;
                    self.indent -= 1;
                    if els.is_empty() {
                        self.line("}");
                    } else {
                        self.line("} else {");
                        self.indent += 1;
                        self.body(els)?;
                        self.indent -= 1;
                        self.line("}");
                    }
                }
            }
        }
        Ok(())
    }

    /// A load (`store = false`: buffer → tile `t`) or a store (tile `t` → buffer) of a region, element by
    /// element with bounds checks: loads past a dimension's end read zero, stores past it are dropped.
    fn access(&mut self, buf: BufId, index: &[Index], t: TileId, store: bool) {
        let b = &self.p.buffers[buf.0 as usize];
        let (rows, cols) = self.shapes[t.0 as usize];
        // Which buffer dimensions the tile's rows and columns walk.
        let free: Vec<usize> =
            index.iter().enumerate().filter(|(_, i)| !matches!(i, Index::At(_))).map(|x| x.0).collect();
        let (rdim, _cdim) = match free.len() {
            0 => (None, None),
            1 if cols == 1 => (Some(free[0]), None),
            1 => (None, Some(free[0])),
            _ => (Some(free[0]), Some(free[1])),
        };
        let tile = self.tile(t);
        let bname = self.buf(buf);
        self.line("for (var r: i32 = 0; r < ".to_string() + &rows.to_string() + "; r = r + 1) {");
        self.indent += 1;
        self.line("for (var s: i32 = 0; s < ".to_string() + &cols.to_string() + "; s = s + 1) {");
        self.indent += 1;
        let mut off = "0".to_string();
        let mut inb = Vec::new();
        for (d, ix) in index.iter().enumerate() {
            let coord = match ix {
                Index::At(e) => self.iexpr(e),
                Index::Block { start, .. } => {
                    let w = if Some(d) == rdim { "r" } else { "s" };
                    format!("({} + {w})", self.iexpr(start))
                }
                Index::Full => (if Some(d) == rdim { "r" } else { "s" }).to_string(),
            };
            let size = self.dim(b.shape[d]);
            self.line(format!("let c{d}: i32 = {coord};"));
            inb.push(format!("c{d} >= 0 && c{d} < {size}"));
            off = format!("({off}) * {size} + c{d}");
        }
        let ok = if inb.is_empty() { "true".to_string() } else { inb.join(" && ") };
        let el = format!("{tile}[r * {cols} + s]");
        if store {
            self.line(format!("if ({ok}) {{ {bname}[{off}] = {el}; }}"));
        } else {
            self.line(format!("if ({ok}) {{ {el} = {bname}[{off}]; }} else {{ {el} = 0.0; }}"));
        }
        self.indent -= 1;
        self.line("}");
        self.indent -= 1;
        self.line("}");
    }

    /// Element `(i, j)` of tile `t` read with size-1 dimensions broadcast.
    fn at(&self, t: TileId, i: &str, j: &str) -> String {
        let (r, c) = self.shapes[t.0 as usize];
        let ii = if r == 1 { "0".to_string() } else { i.to_string() };
        let jj = if c == 1 { "0".to_string() } else { j.to_string() };
        format!("{}[{ii} * {c} + {jj}]", self.tile(t))
    }

    fn assign(&mut self, dst: TileId, op: &Op) -> Result<(), WgslError> {
        let (rows, cols) = self.shapes[dst.0 as usize];
        let d = self.tile(dst);
        let each = |g: &mut Self, expr: String, target: &str| {
            g.line(format!("for (var r: i32 = 0; r < {rows}; r = r + 1) {{"));
            g.line(format!("    for (var s: i32 = 0; s < {cols}; s = s + 1) {{"));
            g.line(format!("        {target}[r * {cols} + s] = {expr};"));
            g.line("    }");
            g.line("}");
        };
        let copy_back = |g: &mut Self| each(g, "tmp[r * ".to_string() + &cols.to_string() + " + s]", &d);
        match op {
            Op::Load { buf, index } => self.access(*buf, index, dst, false),
            Op::Zeros(_) => each(self, "0.0".into(), &d),
            Op::Const(c) => each(self, f32_lit(*c), &d),
            Op::Unary(u, a) => {
                let x = self.at(*a, "r", "s");
                let e = match u {
                    UnOp::Neg => format!("-({x})"),
                    UnOp::Exp => format!("exp({x})"),
                    UnOp::ExpNonpos => format!("select(exp(min({x}, 0.0)), 0.0, {x} < -87.0)"),
                    UnOp::Softplus => format!("select(log(1.0 + exp({x})), {x}, {x} > 20.0)"),
                    UnOp::Sigmoid => format!("(1.0 / (1.0 + exp(-({x}))))"),
                    UnOp::Rsqrt => format!("inverseSqrt({x})"),
                };
                each(self, e, &d);
            }
            Op::Binary(o, a, b) => {
                let (x, y) = (self.at(*a, "r", "s"), self.at(*b, "r", "s"));
                let sym = match o {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                };
                each(self, format!("({x} {sym} {y})"), &d);
            }
            Op::Matmul { a, b, ta, tb } => {
                let (ar, ac) = self.shapes[a.0 as usize];
                let (br, bc) = self.shapes[b.0 as usize];
                let kdim = if *ta { ar } else { ac };
                let av = if *ta {
                    format!("{}[q * {ac} + r]", self.tile(*a))
                } else {
                    format!("{}[r * {ac} + q]", self.tile(*a))
                };
                let bv = if *tb {
                    format!("{}[s * {bc} + q]", self.tile(*b))
                } else {
                    format!("{}[q * {bc} + s]", self.tile(*b))
                };
                let _ = br;
                self.line(format!("for (var r: i32 = 0; r < {rows}; r = r + 1) {{"));
                self.line(format!("    for (var s: i32 = 0; s < {cols}; s = s + 1) {{"));
                self.line("        var acc: f32 = 0.0;");
                self.line(format!(
                    "        for (var q: i32 = 0; q < {kdim}; q = q + 1) {{ acc = acc + {av} * {bv}; }}"
                ));
                self.line(format!("        tmp[r * {cols} + s] = acc;"));
                self.line("    }");
                self.line("}");
                copy_back(self);
            }
            Op::Mask { pred, on, off, .. } => {
                let p = self.pred(pred);
                each(self, format!("select({}, {}, {p})", f32_lit(*off), f32_lit(*on)), &d);
            }
            Op::Select { pred, a, fill, .. } => {
                let p = self.pred(pred);
                let x = self.at(*a, "r", "s");
                each(self, format!("select({}, {x}, {p})", f32_lit(*fill)), "tmp");
                copy_back(self);
            }
            Op::RowSum(a) | Op::ColSum(a) => {
                let (ar, ac) = self.shapes[a.0 as usize];
                let rowsum = matches!(op, Op::RowSum(_));
                let (n, inner) = if rowsum { (ar, ac) } else { (ac, ar) };
                let el = if rowsum {
                    format!("{}[o * {ac} + q]", self.tile(*a))
                } else {
                    format!("{}[q * {ac} + o]", self.tile(*a))
                };
                self.line(format!("for (var o: i32 = 0; o < {n}; o = o + 1) {{"));
                self.line("    var acc: f32 = 0.0;");
                self.line(format!("    for (var q: i32 = 0; q < {inner}; q = q + 1) {{ acc = acc + {el}; }}"));
                self.line("    tmp[o] = acc;");
                self.line("}");
                self.line(format!("for (var o: i32 = 0; o < {n}; o = o + 1) {{ {d}[o] = tmp[o]; }}"));
            }
            other => {
                return Err(WgslError::Compound { kernel: self.k.name.clone(), op: format!("{other:?}") });
            }
        }
        Ok(())
    }
}

/// An f32 literal in WGSL (infinities as large-magnitude values clamped by the shader's own arithmetic).
fn f32_lit(x: f64) -> String {
    if x.is_nan() {
        "(0.0 / 0.0)".into()
    } else if x == f64::INFINITY {
        "3.4028235e38".into()
    } else if x == f64::NEG_INFINITY {
        "-3.4028235e38".into()
    } else {
        let v = x as f32;
        if v.is_infinite() {
            return if v > 0.0 { "3.4028235e38".into() } else { "-3.4028235e38".into() };
        }
        let s = format!("{v:?}");
        if s.contains('.') || s.contains('e') {
            s
        } else {
            format!("{s}.0")
        }
    }
}
