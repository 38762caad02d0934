//! # loglinear-wgsl: WGSL compute shaders from the kernel IR
//!
//! The first GPU client of the backend contract (`loglinear-kernel`). This crate translates one kernel of a
//! **specialised, decomposed** program (`loglinear_schedule::compile_decomposed` with sizes: K, V, C literal,
//! primitives only) into one WGSL compute shader, and checks it with naga's WGSL front end and validator.
//! It derives no maths: every statement is the WGSL form of one kernel-IR statement.
//!
//! ## The mapping
//! * **One workgroup per grid program** ([`WgslOptions::workgroup_size`] invocations): the dispatch is 2-D over
//!   `∏ grid extents` workgroups; workgroup `p` decodes its grid variables in mixed radix, the last grid variable
//!   fastest. Every loop bound and condition of the kernel IR depends only on grid variables, loop variables and
//!   sizes, so control flow is uniform across the workgroup and barriers are legal everywhere.
//! * **Tiles** live in one workgroup-memory array laid out by `resources::tile_arena` (tiles whose live ranges
//!   do not overlap share memory; literal shapes from the specialised program); tiles that do not fit in
//!   [`WgslOptions::fast_memory`] bytes **spill** to a per-program region of a global `spill` buffer
//!   ([`WgslKernel::spill`] elements per program), so any schedule runs and the tuner can weigh the spill.
//! * Each tile op is one cooperative loop: invocation `lid` computes elements `lid, lid + W, …` of the result,
//!   then a barrier. A matmul gives each invocation a register block (up to 4×4) of the result, with `fma`;
//!   an op whose result overwrites one of its operands (a matmul or reduction) keeps its results in private
//!   memory until every invocation has read its operands (barrier), then writes them.
//! * **Buffers** are storage bindings in the program's buffer order (only those the kernel touches); binding 0
//!   is `sizes: array<i32, 12>`, the run-time sizes in `SizeEnv` order (B, T, H, K, V, L, NT, C, M, MS, LC, t);
//!   the spill buffer, when a kernel has one, comes last. Inputs stored in f16 or bf16 are `array<u32>` with two
//!   elements per word, unpacked on load (`unpack2x16float`; bf16 is the high half of an f32), so no shader-f16
//!   feature is needed; every other buffer is `array<f32>` ([`device_elem`]). Offsets are `i32`: a target
//!   without 64-bit indices needs `verify::check_offsets_32` to hold.
//! * A grid too large for one dispatch — more than 65,535² workgroups, or a spill buffer over the binding
//!   limit — runs as several dispatches (waves) that reuse one spill region per program of the wave; the index
//!   of a wave's first program is the pipeline-overridable constant [`WAVE_BASE`] (0 by default), a constant
//!   to the driver's compiler, so the grid variables stay workgroup-uniform (read from a buffer, they made the
//!   H200's decode step 3× slower).
//! * Loads past the end of a dimension read zero and stores past it are dropped (kernel-IR invariant 6),
//!   checked per element.
//! * Conditions and index expressions are `i32` arithmetic (`tz` is `countTrailingZeros`, `bitlen(x)` is
//!   `32 − countLeadingZeros(x)`).
//! * `exp_nonpos(x)` is `exp(min(x, 0))` with `x < −87` giving 0 (an exponent that underflows f32), so a `−∞`
//!   gate sum gives 0, never NaN.
//!
//! Not here yet: subgroup operations and cooperative matrices (tensor cores); see `docs/ARCHITECTURE.md`.

#![warn(missing_docs)]

pub mod cross;
pub use cross::{cross_compile, ShaderLang};
use std::collections::BTreeSet;

use loglinear_kernel::kernel::{
    BinOp, BufId, BufKind, Buffer, Cond, Dim, IExpr, Index, Kernel, Op, Pred, Program, Stmt, Sym, TileId, UnOp, VarId,
};
use loglinear_kernel::passes::decompose::is_primitive;
use loglinear_kernel::resources::{tile_arena, TileArena, TileHome};
use loglinear_kernel::verify::dim_value;
use loglinear_kernel::{DType, SizeEnv};

/// How kernels are translated (from the schedule and the target's limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WgslOptions {
    /// Invocations per workgroup (one workgroup per grid program).
    pub workgroup_size: u32,
    /// Bytes of workgroup memory tiles may use; tiles beyond it spill to global memory.
    pub fast_memory: usize,
    /// How many inner-product steps (matmul, row and column sums) one loop iteration runs (1: no unrolling;
    /// reductions of at most this length are not looped at all). More unrolling means fewer loop iterations
    /// (see [`WgslKernel::loop_trips`]) and longer driver compiles.
    pub unroll: usize,
}

impl Default for WgslOptions {
    /// 128 invocations, 16 KiB of workgroup memory (WebGPU's guaranteed minimum), inner products unrolled by 2
    /// (lavapipe compiled a chunk-64 Gated DeltaNet scan in 13 s at 2, 55 s at 4, 72 s at 8).
    fn default() -> Self {
        WgslOptions { workgroup_size: 128, fast_memory: 16 * 1024, unroll: 2 }
    }
}

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

/// What a binding of a generated shader holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingRole {
    /// `sizes: array<i32, 12>` (read-only).
    Sizes,
    /// A program buffer.
    Buffer(BufId),
    /// The spill buffer: [`WgslKernel::spill`] f32 elements per grid program.
    Spill,
}

/// One binding of a generated shader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Binding index in group 0.
    pub binding: u32,
    /// What it holds.
    pub role: BindingRole,
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
    /// The grid variables' extents (one workgroup per grid program).
    pub grid: Vec<Dim>,
    /// Invocations per workgroup.
    pub workgroup_size: u32,
    /// Bytes of workgroup memory it declares.
    pub workgroup_bytes: usize,
    /// f32 elements of spill memory per grid program (0: none).
    pub spill: usize,
    /// The loop iterations one invocation runs, as a sum of terms `count × Π dims` (an upper bound: both arms of
    /// every `if` counted); [`WgslKernel::loop_iterations`] evaluates it. Some drivers stop a shader after a
    /// fixed number of loop iterations in all (Mesa's llvmpipe/lavapipe: 65,535), so the runtime checks it.
    pub loop_trips: Vec<(u64, Vec<Dim>)>,
}

impl WgslKernel {
    /// The loop iterations one invocation runs at sizes `env` (see [`WgslKernel::loop_trips`]).
    pub fn loop_iterations(&self, env: &SizeEnv) -> u64 {
        self.loop_trips
            .iter()
            .map(|(n, dims)| dims.iter().fold(*n, |a, d| a.saturating_mul(dim_value(*d, env) as u64)))
            .fold(0u64, u64::saturating_add)
    }
}

/// How a buffer's elements are stored on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceElem {
    /// `array<f32>`.
    F32,
    /// `array<u32>`, two f16 per word (little end first).
    PackedF16,
    /// `array<u32>`, two bf16 per word (little end first).
    PackedBf16,
}

impl DeviceElem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DeviceElem::F32 => 4,
            DeviceElem::PackedF16 | DeviceElem::PackedBf16 => 2,
        }
    }
}

/// The device storage of buffer `b`: inputs keep their 16-bit storage type (read-only, so two per word is
/// safe); the output, scratch and states are f32 (written by many invocations; the output is rounded to its
/// storage type when read back).
pub fn device_elem(b: &Buffer) -> DeviceElem {
    match (&b.kind, b.elem) {
        (BufKind::Input(_), DType::F16) => DeviceElem::PackedF16,
        (BufKind::Input(_), DType::BF16) => DeviceElem::PackedBf16,
        _ => DeviceElem::F32,
    }
}

/// Translates every kernel of `program`.
///
/// # Errors
/// The first kernel that fails [`translate_kernel`].
pub fn translate_program(program: &Program, opts: &WgslOptions) -> Result<Vec<WgslKernel>, WgslError> {
    (0..program.kernels.len()).map(|k| translate_kernel(program, k, opts)).collect()
}

/// Translates kernel `ki` of a specialised, decomposed `program` and validates the result with naga.
///
/// # Errors
/// [`WgslError`]: not specialised, a compound op, a run-time tile shape, or (a bug) WGSL naga rejects.
pub fn translate_kernel(program: &Program, ki: usize, opts: &WgslOptions) -> Result<WgslKernel, WgslError> {
    let k = &program.kernels[ki];
    let out = Gen::new(program, k, opts)?.run()?;
    validate(&out.source).map_err(|message| WgslError::Invalid { kernel: k.name.clone(), message })?;
    Ok(out)
}

/// Parses and validates WGSL with naga; the error text on failure.
pub fn validate(source: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
    v.validate(&module).map(|_| ()).map_err(|e| e.emit_to_string(source))
}

/// The pipeline-overridable constant holding the index of a dispatch's first grid program (waves).
pub const WAVE_BASE: &str = "wave_base";

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
    arena: TileArena,
    wg: usize,
    unroll: usize,
    out: String,
    indent: usize,
    /// Names of private result arrays already declared, with their lengths.
    privates: usize,
    /// Extents of the enclosing kernel-IR loops.
    enclosing: Vec<Dim>,
    /// Loop iterations per invocation (see [`WgslKernel::loop_trips`]).
    trips: Vec<(u64, Vec<Dim>)>,
}

fn lit(d: Dim) -> Option<usize> {
    match d {
        Dim::Lit(n) => Some(n),
        Dim::Sym(_) => None,
    }
}

impl<'a> Gen<'a> {
    fn new(p: &'a Program, k: &'a Kernel, opts: &WgslOptions) -> Result<Self, WgslError> {
        let Some(sp) = p.specialised.as_ref() else {
            return Err(WgslError::NotSpecialised(p.name.clone()));
        };
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
        if opts.workgroup_size == 0 || opts.workgroup_size > 1024 {
            return Err(WgslError::Unsupported {
                kernel: k.name.clone(),
                what: format!("workgroup size {} (expected 1..=1024)", opts.workgroup_size),
            });
        }
        let env = SizeEnv::new(1, 1, 1, sp.k, sp.v, 1, sp.c, p.hierarchical);
        let arena = tile_arena(k, &env, opts.fast_memory / 4);
        Ok(Gen {
            p,
            k,
            shapes,
            arena,
            wg: opts.workgroup_size as usize,
            unroll: opts.unroll,
            out: String::new(),
            indent: 0,
            privates: 0,
            enclosing: Vec::new(),
            trips: Vec::new(),
        })
    }

    fn line(&mut self, s: impl AsRef<str>) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }

    fn open(&mut self, s: impl AsRef<str>) {
        self.line(s);
        self.indent += 1;
    }

    fn close(&mut self) {
        self.indent -= 1;
        self.line("}");
    }

    fn var(&self, v: VarId) -> String {
        format!("v{}", v.0)
    }

    /// Element `idx` (an `i32` expression) of tile `t` in its home.
    fn el(&self, t: TileId, idx: &str) -> String {
        match self.arena.homes[t.0 as usize] {
            TileHome::Fast(0) => format!("wg[{idx}]"),
            TileHome::Fast(o) => format!("wg[{o} + {idx}]"),
            TileHome::Spill(o) => format!("spill[sbase + {o} + {idx}]"),
            TileHome::Unused => "0.0".into(),
        }
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

    fn barrier(&mut self) {
        if self.arena.spill > 0 {
            self.line("storageBarrier();");
        }
        self.line("workgroupBarrier();");
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
        let mut bindings = vec![Binding { binding: 0, role: BindingRole::Sizes, writable: false }];
        self.line(format!("// kernel `{}` of `{}` (loglinear-wgsl)", self.k.name, self.p.name));
        self.line("@group(0) @binding(0) var<storage, read> sizes: array<i32, 12>;");
        self.line(format!("override {WAVE_BASE}: i32 = 0;"));
        let mut binding = 1;
        for bi in self.used_buffers() {
            let b = &self.p.buffers[bi];
            let writable = !matches!(b.kind, BufKind::Input(_));
            bindings.push(Binding { binding, role: BindingRole::Buffer(BufId(bi as u32)), writable });
            let access = if writable { "read_write" } else { "read" };
            let elem = device_elem(b);
            self.line(format!(
                "// buffer `{}` {} {:?}",
                b.name,
                b.elem.ir_name(),
                b.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>()
            ));
            let ty = if elem == DeviceElem::F32 { "f32" } else { "u32" };
            self.line(format!("@group(0) @binding({binding}) var<storage, {access}> b{bi}: array<{ty}>;"));
            binding += 1;
        }
        if self.arena.spill > 0 {
            bindings.push(Binding { binding, role: BindingRole::Spill, writable: true });
            self.line(format!("// spill: {} f32 per grid program (tiles beyond workgroup memory)", self.arena.spill));
            self.line(format!("@group(0) @binding({binding}) var<storage, read_write> spill: array<f32>;"));
        }
        if self.arena.fast > 0 {
            self.line(format!("var<workgroup> wg: array<f32, {}>;", self.arena.fast));
        }
        self.line("");
        self.line(format!("@compute @workgroup_size({})", self.wg));
        self.open(
            "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, \
             @builtin(local_invocation_index) lidx: u32) {",
        );
        self.line("let li: i32 = i32(lidx);");
        // The program index and the grid variables (last fastest).
        self.line("let wp: i32 = i32(wid.x + wid.y * nwg.x);");
        self.line(format!("var p: i32 = wp + {WAVE_BASE};"));
        let extents: Vec<String> = self.k.grid.iter().map(|g| self.dim(self.k.vars[g.0 as usize].extent)).collect();
        let total = if extents.is_empty() { "1".to_string() } else { extents.join(" * ") };
        self.line(format!("if (p >= {total}) {{ return; }}"));
        if self.arena.spill > 0 {
            // One spill region per program of the wave.
            self.line(format!("let sbase: i32 = wp * {};", self.arena.spill));
        }
        for i in 0..self.k.vars.len() {
            self.line(format!("var v{i}: i32 = 0;"));
        }
        for g in self.k.grid.iter().rev() {
            let e = self.dim(self.k.vars[g.0 as usize].extent);
            let name = self.var(*g);
            self.line(format!("{name} = p % {e};"));
            self.line(format!("p = p / {e};"));
        }
        let body = self.k.body.clone();
        self.body(&body)?;
        self.close();
        let grid = self.k.grid.iter().map(|g| self.k.vars[g.0 as usize].extent).collect();
        Ok(WgslKernel {
            name: self.k.name.clone(),
            source: self.out,
            bindings,
            grid,
            workgroup_size: self.wg as u32,
            workgroup_bytes: self.arena.fast * 4,
            spill: self.arena.spill,
            loop_trips: self.trips,
        })
    }

    fn body(&mut self, body: &[Stmt]) -> Result<(), WgslError> {
        for s in body {
            match s {
                Stmt::Assign { dst, op } => self.assign(*dst, op)?,
                Stmt::Store { buf, index, src } => {
                    self.access(*buf, index, *src, true);
                    self.barrier();
                }
                Stmt::For { var, body } => {
                    let v = self.var(*var);
                    let e = self.dim(self.k.vars[var.0 as usize].extent);
                    self.open(format!("for ({v} = 0; {v} < {e}; {v} = {v} + 1) {{"));
                    let extent = self.k.vars[var.0 as usize].extent;
                    self.enclosing.push(extent);
                    self.count(1); // the loop's own iterations
                    self.body(body)?;
                    self.enclosing.pop();
                    self.close();
                }
                Stmt::If { cond, then, els } => {
                    let c = self.cond(cond);
                    self.open(format!("if ({c}) {{"));
                    self.body(then)?;
                    if !els.is_empty() {
                        self.indent -= 1;
                        self.line("} else {");
                        self.indent += 1;
                        self.body(els)?;
                    }
                    self.close();
                }
            }
        }
        Ok(())
    }

    /// Counts `n` loop iterations per pass of the enclosing kernel-IR loops.
    fn count(&mut self, n: u64) {
        if n > 0 {
            self.trips.push((n, self.enclosing.clone()));
        }
    }

    /// Opens a cooperative block giving each invocation the indices `li, li + wg, …` below `n`, as `var`, with
    /// `i` the round. One round is a plain `if`, more a strided loop (its trip count unknown to the driver, which
    /// then does not unroll it: lavapipe took minutes to compile unrolled ones). Closed by one [`Gen::close`].
    fn open_coop(&mut self, var: &str, n: usize) {
        let rounds = n.div_ceil(self.wg).max(1);
        if rounds == 1 {
            self.open(format!("if (li < {n}) {{"));
            self.line("let i: i32 = 0;");
            self.line(format!("let {var}: i32 = li;"));
            return;
        }
        self.count(rounds as u64);
        let wg = self.wg;
        self.open(format!("for (var {var}: i32 = li; {var} < {n}; {var} = {var} + {wg}) {{"));
        self.line(format!("let i: i32 = ({var} - li) / {wg};"));
    }

    /// Emits `body(q)` for `q` in `0..n`: unrolled by the largest divisor of `n` up to
    /// [`WgslOptions::unroll`] inside a loop over `q0` (no loop when `n` is at most that), counting
    /// `rounds × n / unroll` loop iterations.
    fn unrolled(&mut self, n: usize, rounds: usize, mut body: impl FnMut(&mut Self)) {
        let max = self.unroll.max(1);
        let u = if n <= max { n.max(1) } else { (1..=max).rev().find(|u| n % u == 0).unwrap_or(1) };
        let looped = n > u;
        if looped {
            self.count((rounds * n / u) as u64);
            self.open(format!("for (var q0: i32 = 0; q0 < {n}; q0 = q0 + {u}) {{"));
        }
        for j in 0..u.min(n) {
            self.open("{");
            if looped {
                self.line(format!("let q: i32 = q0 + {j};"));
            } else {
                self.line(format!("let q: i32 = {j};"));
            }
            body(self);
            self.close();
        }
        if looped {
            self.close();
        }
    }

    /// Opens the cooperative loop over the `rows × cols` elements of a tile: `e` the flat index, `r`, `s` its
    /// row and column.
    fn open_each(&mut self, rows: usize, cols: usize) {
        let n = rows * cols;
        self.open_coop("e", n);
        if cols == 1 {
            self.line("let r: i32 = e;");
            self.line("let s: i32 = 0;");
        } else if rows == 1 {
            self.line("let r: i32 = 0;");
            self.line("let s: i32 = e;");
        } else {
            self.line(format!("let r: i32 = e / {cols};"));
            self.line(format!("let s: i32 = e % {cols};"));
        }
    }

    /// Element `o` of buffer `buf` as f32.
    fn buf_read(&self, buf: BufId, o: &str) -> String {
        let b = &self.p.buffers[buf.0 as usize];
        let name = format!("b{}", buf.0);
        match device_elem(b) {
            DeviceElem::F32 => format!("{name}[{o}]"),
            DeviceElem::PackedF16 => format!("unpack2x16float({name}[({o}) >> 1u])[({o}) & 1]"),
            DeviceElem::PackedBf16 => {
                format!("bitcast<f32>(((({name}[({o}) >> 1u]) >> (16u * u32(({o}) & 1))) & 0xffffu) << 16u)")
            }
        }
    }

    /// A load (`store = false`: buffer → tile `t`) or a store (tile `t` → buffer) of a region, cooperatively,
    /// element by element with bounds checks: loads past a dimension's end read zero, stores past it are
    /// dropped.
    fn access(&mut self, buf: BufId, index: &[Index], t: TileId, store: bool) {
        let b = &self.p.buffers[buf.0 as usize];
        let (rows, cols) = self.shapes[t.0 as usize];
        // Which buffer dimensions the tile's rows and columns walk.
        let (rdim, _) = loglinear_kernel::kernel::access_dims(index, cols);
        self.open_each(rows, cols);
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
            off = if off == "0" { format!("c{d}") } else { format!("({off}) * {size} + c{d}") };
        }
        self.line(format!("let o: i32 = {off};"));
        let ok = if inb.is_empty() { "true".to_string() } else { inb.join(" && ") };
        let el = self.el(t, "e");
        if store {
            self.line(format!("if ({ok}) {{ b{}[o] = {el}; }}", buf.0));
        } else {
            let x = self.buf_read(buf, "o");
            self.line(format!("var x: f32 = 0.0;"));
            self.line(format!("if ({ok}) {{ x = {x}; }}"));
            self.line(format!("{el} = x;"));
        }
        self.close();
    }

    /// Element `(i, j)` of tile `t` read with size-1 dimensions broadcast.
    fn at(&self, t: TileId, i: &str, j: &str) -> String {
        let (r, c) = self.shapes[t.0 as usize];
        let idx = match (r == 1, c == 1) {
            (true, true) => "0".to_string(),
            (true, false) => j.to_string(),
            (false, true) => i.to_string(),
            (false, false) => format!("{i} * {c} + {j}"),
        };
        self.el(t, &idx)
    }

    /// An elementwise op: `dst[r, s] = expr(r, s)` (safe when `dst` is an operand: each element reads only
    /// its own position).
    fn each(&mut self, dst: TileId, expr: String) {
        let (rows, cols) = self.shapes[dst.0 as usize];
        self.open_each(rows, cols);
        let d = self.el(dst, "e");
        self.line(format!("{d} = {expr};"));
        self.close();
        self.barrier();
    }

    fn assign(&mut self, dst: TileId, op: &Op) -> Result<(), WgslError> {
        match op {
            Op::Load { buf, index } => {
                self.access(*buf, index, dst, false);
                self.barrier();
            }
            Op::Zeros(_) => self.each(dst, "0.0".into()),
            Op::Const(c) => self.each(dst, f32_lit(*c)),
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
                self.each(dst, e);
            }
            Op::Binary(o, a, b) => {
                let (x, y) = (self.at(*a, "r", "s"), self.at(*b, "r", "s"));
                let sym = match o {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                };
                self.each(dst, format!("({x} {sym} {y})"));
            }
            Op::Mask { pred, on, off, .. } => {
                let p = self.pred(pred);
                self.each(dst, format!("select({}, {}, {p})", f32_lit(*off), f32_lit(*on)));
            }
            Op::Select { pred, a, fill, .. } => {
                let p = self.pred(pred);
                let x = self.at(*a, "r", "s");
                self.each(dst, format!("select({}, {x}, {p})", f32_lit(*fill)));
            }
            Op::Matmul { a, b, ta, tb } => self.matmul(dst, *a, *b, *ta, *tb),
            Op::RowSum(a) | Op::ColSum(a) => {
                let (ar, ac) = self.shapes[a.0 as usize];
                let rowsum = matches!(op, Op::RowSum(_));
                let (n, inner) = if rowsum { (ar, ac) } else { (ac, ar) };
                let aliased = dst == *a;
                let el =
                    if rowsum { self.el(*a, &format!("o * {ac} + q")) } else { self.el(*a, &format!("q * {ac} + o")) };
                let iters = n.div_ceil(self.wg);
                let res = self.private(aliased, iters);
                self.open_coop("o", n);
                self.line("var acc: f32 = 0.0;");
                self.unrolled(inner, iters, |g| g.line(format!("acc = acc + {el};")));
                match &res {
                    Some(r) => self.line(format!("{r}[i] = acc;")),
                    None => {
                        let d = self.el(dst, "o");
                        self.line(format!("{d} = acc;"));
                    }
                }
                self.close();
                self.barrier();
                if let Some(r) = res {
                    self.open_coop("o", n);
                    let d = self.el(dst, "o");
                    self.line(format!("{d} = {r}[i];"));
                    self.close();
                    self.barrier();
                }
            }
            other => {
                return Err(WgslError::Compound { kernel: self.k.name.clone(), op: format!("{other:?}") });
            }
        }
        Ok(())
    }

    /// Declares a private result array of `len` f32 when `needed` (a result that overwrites an operand).
    fn private(&mut self, needed: bool, len: usize) -> Option<String> {
        if !needed {
            return None;
        }
        let name = format!("res{}", self.privates);
        self.privates += 1;
        self.line(format!("var {name}: array<f32, {}>;", len.max(1)));
        Some(name)
    }

    /// `dst = op(a) · op(b)`: each invocation computes `tr × tc` register blocks of the result.
    fn matmul(&mut self, dst: TileId, a: TileId, b: TileId, ta: bool, tb: bool) {
        let (rows, cols) = self.shapes[dst.0 as usize];
        let (ar, ac) = self.shapes[a.0 as usize];
        let (_, bc) = self.shapes[b.0 as usize];
        let kdim = if ta { ar } else { ac };
        // The largest register block that divides the result and still gives every invocation a block.
        let (tr, tc) = [(4, 4), (4, 2), (2, 4), (2, 2), (2, 1), (1, 2), (1, 1)]
            .into_iter()
            .find(|&(tr, tc)| rows % tr == 0 && cols % tc == 0 && (rows / tr) * (cols / tc) >= self.wg)
            .or_else(|| {
                [(2, 2), (2, 1), (1, 2), (1, 1)]
                    .into_iter()
                    .find(|&(tr, tc)| rows % tr == 0 && cols % tc == 0 && (rows / tr) * (cols / tc) >= self.wg / 4)
            })
            .unwrap_or((1, 1));
        let (nr, nc) = (rows / tr, cols / tc);
        let nb = nr * nc;
        let aliased = dst == a || dst == b;
        let iters = nb.div_ceil(self.wg);
        let res = self.private(aliased, iters * tr * tc);
        let aval = |g: &Self, i: &str| {
            let idx = if ta { format!("q * {ac} + {i}") } else { format!("({i}) * {ac} + q") };
            g.el(a, &idx)
        };
        let bval = |g: &Self, j: &str| {
            let idx = if tb { format!("({j}) * {bc} + q") } else { format!("q * {bc} + {j}") };
            g.el(b, &idx)
        };
        self.open_coop("e", nb);
        if nc == 1 {
            self.line(format!("let r0: i32 = e * {tr};"));
            self.line("let s0: i32 = 0;");
        } else {
            self.line(format!("let r0: i32 = (e / {nc}) * {tr};"));
            self.line(format!("let s0: i32 = (e % {nc}) * {tc};"));
        }
        for i in 0..tr {
            for j in 0..tc {
                self.line(format!("var a{i}{j}: f32 = 0.0;"));
            }
        }
        self.unrolled(kdim, iters, |g| {
            for i in 0..tr {
                let x = aval(g, &format!("r0 + {i}"));
                g.line(format!("let x{i}: f32 = {x};"));
            }
            for j in 0..tc {
                let y = bval(g, &format!("s0 + {j}"));
                g.line(format!("let y{j}: f32 = {y};"));
            }
            for i in 0..tr {
                for j in 0..tc {
                    g.line(format!("a{i}{j} = fma(x{i}, y{j}, a{i}{j});"));
                }
            }
        });
        for i in 0..tr {
            for j in 0..tc {
                match &res {
                    Some(r) => self.line(format!("{r}[i * {} + {}] = a{i}{j};", tr * tc, i * tc + j)),
                    None => {
                        let d = self.el(dst, &format!("(r0 + {i}) * {cols} + s0 + {j}"));
                        self.line(format!("{d} = a{i}{j};"));
                    }
                }
            }
        }
        self.close();
        self.barrier();
        if let Some(r) = res {
            self.open_coop("e", nb);
            if nc == 1 {
                self.line(format!("let r0: i32 = e * {tr};"));
                self.line("let s0: i32 = 0;");
            } else {
                self.line(format!("let r0: i32 = (e / {nc}) * {tr};"));
                self.line(format!("let s0: i32 = (e % {nc}) * {tc};"));
            }
            for i in 0..tr {
                for j in 0..tc {
                    let d = self.el(dst, &format!("(r0 + {i}) * {cols} + s0 + {j}"));
                    self.line(format!("{d} = {r}[i * {} + {}];", tr * tc, i * tc + j));
                }
            }
            self.close();
            self.barrier();
        }
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
