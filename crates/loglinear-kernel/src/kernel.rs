//! The Kernel IR: what a backend needs and nothing more.
//!
//! A [`Program`] is a list of global [`Buffer`]s with symbolic shapes and a list of [`Kernel`]s run in order.
//! A kernel has a grid of independent programs (one per value of its grid variables) and a body of
//! statements: tile assignments ([`Op`]), guarded stores, sequential `for` loops and `if`s on integer bit
//! conditions. Tiles are small dense 2-D arrays local to one program; vectors are `[n, 1]` columns.
//!
//! Text form (one item per line, file-test friendly):
//!
//! ```text
//! program loglinear_mamba2.forward (C = 16, c = 4, NT = ceil(T/C), M = bitlen(NT-1))
//!   buffer q: input [B, T, H, K] live 0..0
//!   ...
//! kernel chunk grid(b < B, h < H, i < NT) {
//!   %q: [C, K] = load q[b, i*C +: C, h, :]
//!   ...
//! }
//! ```

use std::fmt::{self, Write as _};

use crate::tensor::DType;

/// The `ε` of [`Op::L2Norm`]: each row is divided by `sqrt(Σ row² + ε)` (as fla's `l2norm`; the variant
/// algebra's `l2norm` uses the same value).
pub const L2NORM_EPS: f64 = 1e-6;

/// A size symbol. Every size is one of these or a literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sym {
    /// Batch.
    B,
    /// Sequence length.
    T,
    /// Heads.
    H,
    /// Key dimension.
    K,
    /// Value dimension.
    V,
    /// Number of λ levels in the λ tensors (`L'`).
    L,
    /// Number of chunks, `ceil(T / C)`.
    NT,
    /// Chunk size (a compile-time power of two; kept symbolic in shapes).
    C,
    /// Number of inter-chunk scans: `bitlen(NT − 1)` for log-linear variants, 1 for linear ones.
    M,
    /// Number of carried states of the fused scan: `M + 1` (log-linear) or 1 (linear).
    MS,
    /// Number of decode states: `L` (log-linear) or 1 (linear).
    LC,
    /// The decode position `t` (a runtime scalar of the decode-step program).
    Step,
}

impl Sym {
    /// The symbol's name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            Sym::B => "B",
            Sym::T => "T",
            Sym::H => "H",
            Sym::K => "K",
            Sym::V => "V",
            Sym::L => "L",
            Sym::NT => "NT",
            Sym::C => "C",
            Sym::M => "M",
            Sym::MS => "MS",
            Sym::LC => "LC",
            Sym::Step => "t",
        }
    }
}

/// A symbolic size: a symbol or a literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size symbol.
    Sym(Sym),
    /// A literal size.
    Lit(usize),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Sym(s) => f.write_str(s.name()),
            Dim::Lit(n) => write!(f, "{n}"),
        }
    }
}

/// Shorthands for symbolic dimensions.
pub mod d {
    use super::{Dim, Sym};
    /// `B`.
    pub const B: Dim = Dim::Sym(Sym::B);
    /// `T`.
    pub const T: Dim = Dim::Sym(Sym::T);
    /// `H`.
    pub const H: Dim = Dim::Sym(Sym::H);
    /// `K`.
    pub const K: Dim = Dim::Sym(Sym::K);
    /// `V`.
    pub const V: Dim = Dim::Sym(Sym::V);
    /// `L`.
    pub const L: Dim = Dim::Sym(Sym::L);
    /// `NT`.
    pub const NT: Dim = Dim::Sym(Sym::NT);
    /// `C`.
    pub const C: Dim = Dim::Sym(Sym::C);
    /// `M`.
    pub const M: Dim = Dim::Sym(Sym::M);
    /// `MS`.
    pub const MS: Dim = Dim::Sym(Sym::MS);
    /// `LC`.
    pub const LC: Dim = Dim::Sym(Sym::LC);
    /// The literal 1.
    pub const ONE: Dim = Dim::Lit(1);
}

/// The shape of a tile: `[rows, cols]`.
pub type Shape2 = [Dim; 2];

/// Handle of a buffer in [`Program::buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufId(pub u32);

/// Handle of a tile in [`Kernel::tiles`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId(pub u32);

/// Handle of an integer variable (grid or loop) in [`Kernel::vars`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(pub u32);

/// What a buffer is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BufKind {
    /// A declared input tensor of the variant, bound by name.
    Input(String),
    /// The operator's output `o`, `[B, T, H, V]`.
    Output,
    /// Scratch written and read by the program's kernels.
    Scratch,
    /// Persistent state carried between invocations (the decode states); zero before the first one.
    State,
}

/// A global buffer with a symbolic shape (row-major) and an element type.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// Name in the text form.
    pub name: String,
    /// Role.
    pub kind: BufKind,
    /// Shape, outermost first.
    pub shape: Vec<Dim>,
    /// Element type: the configuration's storage type for inputs and the output, its accumulation type for
    /// scratch and states (set by the lowering from the [`crate::ScheduleConfig`]).
    pub elem: DType,
}

/// An integer index expression over grid/loop variables and size symbols.
#[derive(Clone, Debug, PartialEq)]
pub enum IExpr {
    /// A literal.
    Lit(i64),
    /// A grid or loop variable.
    Var(VarId),
    /// A size symbol's value.
    Sym(Sym),
    /// Sum.
    Add(Box<IExpr>, Box<IExpr>),
    /// Product.
    Mul(Box<IExpr>, Box<IExpr>),
    /// Number of trailing zero bits (`lssb`) of a positive value.
    Tz(Box<IExpr>),
}

impl IExpr {
    /// `a + b`.
    pub fn sum(a: IExpr, b: IExpr) -> IExpr {
        IExpr::Add(Box::new(a), Box::new(b))
    }
    /// `a * b`.
    pub fn prod(a: IExpr, b: IExpr) -> IExpr {
        IExpr::Mul(Box::new(a), Box::new(b))
    }
    /// Whether the expression mentions variable `v`.
    pub fn uses(&self, v: VarId) -> bool {
        match self {
            IExpr::Var(x) => *x == v,
            IExpr::Lit(_) | IExpr::Sym(_) => false,
            IExpr::Add(a, b) | IExpr::Mul(a, b) => a.uses(v) || b.uses(v),
            IExpr::Tz(a) => a.uses(v),
        }
    }
}

/// A condition on integers (all bit arithmetic; no floating point).
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// Bit `bit` of `x` is 1.
    Bit {
        /// Value.
        x: IExpr,
        /// Bit index.
        bit: IExpr,
    },
    /// The low `bits` bits of `x` are all 1 (`x mod 2^bits == 2^bits − 1`).
    LowOnes {
        /// Value.
        x: IExpr,
        /// Number of low bits.
        bits: IExpr,
    },
    /// The low `bits` bits of `x` are all 0 (`x mod 2^bits == 0`).
    LowZeros {
        /// Value.
        x: IExpr,
        /// Number of low bits.
        bits: IExpr,
    },
    /// `a ≥ b`.
    Ge(IExpr, IExpr),
    /// Negation.
    Not(Box<Cond>),
    /// Conjunction.
    And(Box<Cond>, Box<Cond>),
}

impl Cond {
    /// Whether the condition mentions variable `v`.
    pub fn uses(&self, v: VarId) -> bool {
        match self {
            Cond::Bit { x, bit } => x.uses(v) || bit.uses(v),
            Cond::LowOnes { x, bits } | Cond::LowZeros { x, bits } => x.uses(v) || bits.uses(v),
            Cond::Ge(a, b) => a.uses(v) || b.uses(v),
            Cond::Not(c) => c.uses(v),
            Cond::And(a, b) => a.uses(v) || b.uses(v),
        }
    }
}

/// How one buffer dimension is indexed by a load or store.
#[derive(Clone, Debug, PartialEq)]
pub enum Index {
    /// One element; the dimension is dropped from the tile.
    At(IExpr),
    /// `len` consecutive elements from `start`; elements past the buffer's end read as zero and are not stored.
    Block {
        /// First element.
        start: IExpr,
        /// Number of elements.
        len: Dim,
    },
    /// The whole dimension.
    Full,
}

/// Elementwise one-argument operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-x`.
    Neg,
    /// `exp(x)` for any `x` (preprocessing only).
    Exp,
    /// `exp(min(x, 0))`: the only exponential of the main kernels. Its arguments are local cumulative log decays
    /// or segment sums of them (`segsum`, `suffix_sum`), non-positive whenever the log decays are (α ∈ (0, 1]);
    /// masked entries and sums that overflow are `−∞` (giving 0).
    ExpNonpos,
    /// `log(1 + exp(x))`, stable.
    Softplus,
    /// `1 / (1 + exp(−x))`, stable.
    Sigmoid,
    /// `1 / sqrt(x)` (primitive: the row norms of a decomposed `l2norm`).
    Rsqrt,
}

impl UnOp {
    /// Name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            UnOp::Neg => "neg",
            UnOp::Exp => "exp",
            UnOp::ExpNonpos => "exp_nonpos",
            UnOp::Softplus => "softplus",
            UnOp::Sigmoid => "sigmoid",
            UnOp::Rsqrt => "rsqrt",
        }
    }
}

/// Elementwise two-argument operations, with broadcasting of size-1 dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
}

impl BinOp {
    /// Name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            BinOp::Add => "add",
            BinOp::Sub => "sub",
            BinOp::Mul => "mul",
        }
    }
}

/// An integer predicate over the row `r` and the column `s` of a tile entry (of [`Op::Mask`] and
/// [`Op::Select`]): all integer comparisons and bit arithmetic, no floating point.
#[derive(Clone, Debug, PartialEq)]
pub enum Pred {
    /// Always true.
    All,
    /// `s ≤ r`: the causal lower triangle, diagonal included.
    Lower,
    /// `s < r`: the strictly lower triangle.
    StrictLower,
    /// `s = r`: the diagonal.
    Diag,
    /// `s ≤ r` and `bitlen(r XOR s) = l`: the in-chunk level-`l` entries of the causal triangle (level 0 is the
    /// diagonal).
    Level(IExpr),
    /// `start + r < limit`: the rows before the sequence end.
    RowBelow {
        /// Position of row 0.
        start: IExpr,
        /// Sequence length.
        limit: Dim,
    },
    /// `r = e`: one row (none when `e` is out of range).
    RowIs(IExpr),
    /// `s = e`: one column (none when `e` is out of range).
    ColIs(IExpr),
}

/// A tile operation; its result is assigned to a tile.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Reads a region of a buffer (one [`Index`] per buffer dimension; at most two non-`At` dimensions, which
    /// give the tile's shape, a single one giving a column `[n, 1]`).
    Load {
        /// Buffer.
        buf: BufId,
        /// Index per dimension.
        index: Vec<Index>,
    },
    /// A zero tile.
    Zeros(Shape2),
    /// The `n × n` identity.
    Eye(Dim),
    /// A `[1, 1]` constant.
    Const(f64),
    /// Elementwise unary operation.
    Unary(UnOp, TileId),
    /// Elementwise binary operation (size-1 dimensions broadcast).
    Binary(BinOp, TileId, TileId),
    /// Each row divided by `sqrt(Σ row² + 1e-6)`.
    L2Norm(TileId),
    /// `op(a) · op(b)` with optional transposes.
    Matmul {
        /// Left operand.
        a: TileId,
        /// Right operand.
        b: TileId,
        /// Transpose `a`.
        ta: bool,
        /// Transpose `b`.
        tb: bool,
    },
    /// Per-channel gated causal product over the raw gates `g` of a block (`a`, `b`, `g`: `[n, k]`):
    /// `out[r,s] = Σ_i a[r,i] b[s,i] exp_nonpos(Σ_{u=s+1}^{r} g[u,i])` for `s ≤ r` (the empty sum 0 on the
    /// diagonal), 0 above it. The per-channel segment sums are accumulated directly (walking `s` down from `r`),
    /// never formed as differences `γ_r − γ_s` of cumulative sums nor factorised into `(a e^{γ})(b e^{−γ})ᵀ`: a
    /// huge negative gate anywhere in the block costs no precision, and sums that overflow to `−∞` only add.
    MatmulGatedCausal {
        /// Left rows.
        a: TileId,
        /// Right rows.
        b: TileId,
        /// Raw local log gates, one row per token (summed between the rows by the op).
        g: TileId,
    },
    /// Inclusive cumulative sum down the rows.
    CumSum(TileId),
    /// Segment sums of a gate column `g` (`[n, 1]` → `[n, n]`): `out[r,s] = Σ_{u=s+1}^{r} g[u]` for `s ≤ r`
    /// (0 on the diagonal), `−∞` above it. Equal to `γ_r − γ_s` with `γ = cumsum(g)`, but summed directly, so
    /// that large gates elsewhere in the chunk do not cancel (spec §11.4, huge negative g).
    SegSum(TileId),
    /// Exclusive suffix sums down the rows: `out[r, :] = Σ_{u=r+1}^{n−1} a[u, :]` (`γ_last − γ_r`, summed
    /// directly).
    SuffixSum(TileId),
    /// Row `r` as a `[1, cols]` tile.
    Row(TileId, IExpr),
    /// Column `j` as a `[rows, 1]` tile; zero when `j` is out of range.
    Col(TileId, IExpr),
    /// Transpose.
    Transpose(TileId),
    /// Zeroes the entries above the diagonal (`strict`: the diagonal too).
    Tril {
        /// Operand.
        a: TileId,
        /// Also zero the diagonal.
        strict: bool,
    },
    /// The in-chunk level weights `[n, n]`: `lam[r, bitlen(r XOR s)]` for `s ≤ r` (0 when the level is not a
    /// column of `lam`), 0 above the diagonal; without `lam`, the causal ones mask.
    LevelMask {
        /// λ rows `[n, L]`.
        lam: Option<TileId>,
        /// Block size.
        n: Dim,
    },
    /// Solves `(I + StrictLower(a)) X = b` by forward substitution (unit lower-triangular solve).
    TriSolve {
        /// The strictly lower part is read.
        a: TileId,
        /// Right-hand side.
        b: TileId,
    },
    /// Zeroes rows `r` with `start + r ≥ limit` (rows past the sequence end).
    MaskRows {
        /// Operand.
        a: TileId,
        /// Position of row 0.
        start: IExpr,
        /// Sequence length.
        limit: Dim,
    },
    /// Repeats a tile with size-1 dimensions to a shape.
    Broadcast(TileId, Shape2),
    /// Primitive: a constant tile of shape `shape` from an index predicate, `on` where `pred(r, s)` holds and
    /// `off` elsewhere (causal and level masks, identities; `−∞` for masked log decays).
    Mask {
        /// Where `on` goes.
        pred: Pred,
        /// Shape.
        shape: Shape2,
        /// Value where the predicate holds.
        on: f64,
        /// Value elsewhere.
        off: f64,
    },
    /// Primitive: `a` (size-1 dimensions broadcast to `shape`) where `pred(r, s)` holds, `fill` elsewhere. The
    /// kept entries are copied exactly (no `0 · ∞`): triangles, row masks, broadcasts, row and column extraction.
    Select {
        /// Where `a` is kept.
        pred: Pred,
        /// Operand.
        a: TileId,
        /// Value elsewhere.
        fill: f64,
        /// Shape.
        shape: Shape2,
    },
    /// Primitive: `[n, m] → [n, 1]`, the sum of each row (left to right, from 0).
    RowSum(TileId),
    /// Primitive: `[n, m] → [1, m]`, the sum of each column (top to bottom, from 0).
    ColSum(TileId),
}

/// A statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `dst = op` (tiles are mutable; a tile may be reassigned with the same shape).
    Assign {
        /// Destination tile.
        dst: TileId,
        /// Operation.
        op: Op,
    },
    /// Writes a tile to a buffer region (same indexing as [`Op::Load`]; elements past the end are dropped).
    Store {
        /// Buffer.
        buf: BufId,
        /// Index per dimension.
        index: Vec<Index>,
        /// Source tile.
        src: TileId,
    },
    /// Sequential loop over `0..extent(var)`.
    For {
        /// Loop variable.
        var: VarId,
        /// Body.
        body: Vec<Stmt>,
    },
    /// Conditional.
    If {
        /// Condition.
        cond: Cond,
        /// Taken when true.
        then: Vec<Stmt>,
        /// Taken when false.
        els: Vec<Stmt>,
    },
}

/// An integer variable with its range `0..extent`.
#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    /// Name.
    pub name: String,
    /// Exclusive upper bound.
    pub extent: Dim,
}

/// A tile declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct TileDecl {
    /// Name (unique in the kernel).
    pub name: String,
    /// Shape.
    pub shape: Shape2,
}

/// A kernel: a grid of independent programs, each running `body`.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// Name (the stage it implements).
    pub name: String,
    /// Grid variables (parallel).
    pub grid: Vec<VarId>,
    /// All variables (grid and loops).
    pub vars: Vec<Var>,
    /// All tiles.
    pub tiles: Vec<TileDecl>,
    /// Body.
    pub body: Vec<Stmt>,
}

/// A program: buffers and kernels run in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Name, `<variant>.forward` or `<variant>.decode_step`.
    pub name: String,
    /// Chunk size `C`.
    pub chunk: usize,
    /// Whether the variant is log-linear (fixes `M`, `MS`, `LC`).
    pub hierarchical: bool,
    /// Buffers.
    pub buffers: Vec<Buffer>,
    /// Kernels, in execution order.
    pub kernels: Vec<Kernel>,
    /// The output buffer.
    pub output: BufId,
    /// The type every tile operation accumulates in (f32 or f64).
    pub accum: DType,
    /// The compile-time sizes, once [`crate::passes::specialise`] has run.
    pub specialised: Option<crate::Specialisation>,
}

impl Program {
    /// Sets the element types: `storage` for inputs and the output, `accum` for scratch and states and as the
    /// accumulation type of every op.
    pub fn set_types(&mut self, storage: DType, accum: DType) {
        self.accum = accum;
        for b in &mut self.buffers {
            b.elem = match b.kind {
                BufKind::Input(_) | BufKind::Output => storage,
                BufKind::Scratch | BufKind::State => accum,
            };
        }
    }

    /// Buffer behind a handle.
    pub fn buf(&self, b: BufId) -> &Buffer {
        &self.buffers[b.0 as usize]
    }

    /// `(first, last)` kernel index touching each buffer (inputs and states live from kernel 0, the output to
    /// the last kernel); `None` for untouched buffers.
    pub fn lifetimes(&self) -> Vec<Option<(usize, usize)>> {
        let mut lt: Vec<Option<(usize, usize)>> = vec![None; self.buffers.len()];
        for (ki, k) in self.kernels.iter().enumerate() {
            let mut touch = |b: BufId| {
                let e = &mut lt[b.0 as usize];
                *e = Some(match *e {
                    None => (ki, ki),
                    Some((a, _)) => (a, ki),
                });
            };
            visit(&k.body, &mut |s| match s {
                Stmt::Store { buf, .. } => touch(*buf),
                Stmt::Assign { op: Op::Load { buf, .. }, .. } => touch(*buf),
                _ => {}
            });
        }
        let last = self.kernels.len().saturating_sub(1);
        for (i, b) in self.buffers.iter().enumerate() {
            if let Some((a, z)) = lt[i] {
                lt[i] = Some(match b.kind {
                    BufKind::Input(_) | BufKind::State => (0, z),
                    BufKind::Output => (a, last),
                    BufKind::Scratch => (a, z),
                });
            }
        }
        lt
    }
}

/// The buffer dimensions a tile access (`Op::Load`, `Stmt::Store`) walks: `(rows, cols)`, the dimension along the
/// tile's rows and the one along its columns (`None`: the tile is 1 wide there). The non-`At` indices are the
/// walked dimensions in order; a single one walks the rows of a column tile (`cols == 1`) and the columns
/// otherwise.
pub fn access_dims(index: &[Index], cols: usize) -> (Option<usize>, Option<usize>) {
    let mut free = index.iter().enumerate().filter(|(_, i)| !matches!(i, Index::At(_))).map(|x| x.0);
    match (free.next(), free.next()) {
        (None, _) => (None, None),
        (Some(d), None) if cols == 1 => (Some(d), None),
        (Some(d), None) => (None, Some(d)),
        (Some(r), Some(s)) => (Some(r), Some(s)),
    }
}

/// Calls `f` on every statement, depth first.
pub fn visit<'a>(body: &'a [Stmt], f: &mut impl FnMut(&'a Stmt)) {
    for s in body {
        f(s);
        match s {
            Stmt::For { body, .. } => visit(body, f),
            Stmt::If { then, els, .. } => {
                visit(then, f);
                visit(els, f);
            }
            _ => {}
        }
    }
}

/// Calls `f` on every statement, depth first, with mutable access (a statement's nested bodies are visited
/// after `f` has seen it).
pub fn visit_mut(body: &mut [Stmt], f: &mut impl FnMut(&mut Stmt)) {
    for s in body {
        f(s);
        match s {
            Stmt::For { body, .. } => visit_mut(body, f),
            Stmt::If { then, els, .. } => {
                visit_mut(then, f);
                visit_mut(els, f);
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Text form
// ---------------------------------------------------------------------------------------------------------

struct Ctx<'a> {
    p: &'a Program,
    k: &'a Kernel,
    /// Variables print as `name#index` (when names and text order do not identify them; see [`canonical`]).
    exact_vars: bool,
}

/// Whether the text of kernel `k` identifies its declarations by the parser's conventions
/// ([`crate::parse`]): `(tiles, vars)`. Tiles: declared in order of first mention, each assigned (or `[1, 1]`).
/// Variables: the grid's first, in order, then one per `for` in text order, every name resolving to the
/// innermost variable of that name in scope and no size symbol hidden by a variable's name. When one fails,
/// the printer lists the declarations after the kernel header (`tiles …`, `vars …`).
fn canonical(k: &Kernel) -> (bool, bool) {
    struct W<'a> {
        k: &'a Kernel,
        next_tile: usize,
        assigned: Vec<bool>,
        tiles_ok: bool,
        next_var: usize,
        vars_ok: bool,
        scope: Vec<VarId>,
    }
    impl W<'_> {
        fn tile(&mut self, t: TileId) {
            match (t.0 as usize).cmp(&self.next_tile) {
                std::cmp::Ordering::Equal => self.next_tile += 1,
                std::cmp::Ordering::Greater => self.tiles_ok = false,
                std::cmp::Ordering::Less => {}
            }
        }
        fn resolve(&self, name: &str) -> Option<VarId> {
            self.scope.iter().rev().copied().find(|v| self.k.vars.get(v.0 as usize).is_some_and(|x| x.name == name))
        }
        fn iexpr(&mut self, e: &IExpr) {
            match e {
                IExpr::Var(v) => {
                    if self.k.vars.get(v.0 as usize).is_none_or(|x| self.resolve(&x.name) != Some(*v)) {
                        self.vars_ok = false;
                    }
                }
                IExpr::Sym(s) => {
                    if self.resolve(s.name()).is_some() {
                        self.vars_ok = false;
                    }
                }
                IExpr::Lit(_) => {}
                IExpr::Add(a, b) | IExpr::Mul(a, b) => {
                    self.iexpr(a);
                    self.iexpr(b);
                }
                IExpr::Tz(a) => self.iexpr(a),
            }
        }
        fn cond(&mut self, c: &Cond) {
            match c {
                Cond::Bit { x, bit: y }
                | Cond::LowOnes { x, bits: y }
                | Cond::LowZeros { x, bits: y }
                | Cond::Ge(x, y) => {
                    self.iexpr(x);
                    self.iexpr(y);
                }
                Cond::Not(a) => self.cond(a),
                Cond::And(a, b) => {
                    self.cond(a);
                    self.cond(b);
                }
            }
        }
        fn pred(&mut self, p: &Pred) {
            if let Pred::Level(e) | Pred::RowBelow { start: e, .. } | Pred::RowIs(e) | Pred::ColIs(e) = p {
                self.iexpr(e);
                // `r` and `s` are the entry's row and column in a predicate.
                let rs = |(i, x): (usize, &Var)| (x.name == "r" || x.name == "s") && e.uses(VarId(i as u32));
                if self.k.vars.iter().enumerate().any(rs) {
                    self.vars_ok = false;
                }
            }
        }
        fn index(&mut self, index: &[Index]) {
            for i in index {
                if let Index::At(e) | Index::Block { start: e, .. } = i {
                    self.iexpr(e);
                }
            }
        }
        fn body(&mut self, body: &[Stmt]) {
            for s in body {
                match s {
                    Stmt::Assign { dst, op } => {
                        match op {
                            Op::Load { index, .. } => self.index(index),
                            Op::Row(_, e) | Op::Col(_, e) | Op::MaskRows { start: e, .. } => self.iexpr(e),
                            Op::Mask { pred, .. } | Op::Select { pred, .. } => self.pred(pred),
                            _ => {}
                        }
                        for t in crate::analysis::op_reads(op) {
                            self.tile(t);
                        }
                        self.tile(*dst);
                        if let Some(a) = self.assigned.get_mut(dst.0 as usize) {
                            *a = true;
                        }
                    }
                    Stmt::Store { index, src, .. } => {
                        self.index(index);
                        self.tile(*src);
                    }
                    Stmt::For { var, body } => {
                        if var.0 as usize == self.next_var {
                            self.next_var += 1;
                        } else {
                            self.vars_ok = false;
                        }
                        self.scope.push(*var);
                        self.body(body);
                        self.scope.pop();
                    }
                    Stmt::If { cond, then, els } => {
                        self.cond(cond);
                        self.body(then);
                        self.body(els);
                    }
                }
            }
        }
    }
    let grid_ok = k.grid.iter().enumerate().all(|(i, v)| v.0 as usize == i);
    let mut w = W {
        k,
        next_tile: 0,
        assigned: vec![false; k.tiles.len()],
        tiles_ok: true,
        next_var: k.grid.len(),
        vars_ok: grid_ok,
        scope: k.grid.clone(),
    };
    w.body(&k.body);
    let all_shaped = k.tiles.iter().zip(&w.assigned).all(|(t, a)| *a || t.shape == [d::ONE, d::ONE]);
    (w.tiles_ok && all_shaped && w.next_tile == k.tiles.len(), w.vars_ok && w.next_var == k.vars.len())
}

impl Ctx<'_> {
    fn var(&self, v: VarId) -> String {
        match self.k.vars.get(v.0 as usize) {
            Some(x) if self.exact_vars => format!("{}#{}", x.name, v.0),
            Some(x) => x.name.clone(),
            None => "?".into(),
        }
    }
    fn tile(&self, t: TileId) -> String {
        format!("%{}", self.k.tiles.get(t.0 as usize).map_or("?", |x| x.name.as_str()))
    }
    fn iexpr(&self, e: &IExpr) -> String {
        match e {
            IExpr::Lit(n) => n.to_string(),
            IExpr::Var(v) => self.var(*v),
            IExpr::Sym(s) => s.name().to_string(),
            // `+` and `*` associate to the left: a right operand of the same operator is parenthesised.
            IExpr::Add(a, b) => match **b {
                IExpr::Lit(n) if n < 0 => format!("{}-{}", self.iexpr(a), n.unsigned_abs()),
                IExpr::Add(..) => format!("{}+({})", self.iexpr(a), self.iexpr(b)),
                _ => format!("{}+{}", self.iexpr(a), self.iexpr(b)),
            },
            IExpr::Mul(a, b) => {
                let w = |x: &IExpr, right: bool| match x {
                    IExpr::Add(..) => format!("({})", self.iexpr(x)),
                    IExpr::Mul(..) if right => format!("({})", self.iexpr(x)),
                    _ => self.iexpr(x),
                };
                format!("{}*{}", w(a, false), w(b, true))
            }
            IExpr::Tz(a) => format!("tz({})", self.iexpr(a)),
        }
    }
    fn cond(&self, c: &Cond) -> String {
        match c {
            Cond::Bit { x, bit } => format!("bit({}, {})", self.iexpr(x), self.iexpr(bit)),
            Cond::LowOnes { x, bits } => format!("low_ones({}, {})", self.iexpr(x), self.iexpr(bits)),
            Cond::LowZeros { x, bits } => format!("low_zeros({}, {})", self.iexpr(x), self.iexpr(bits)),
            Cond::Ge(a, b) => format!("{} >= {}", self.iexpr(a), self.iexpr(b)),
            Cond::Not(a) => match **a {
                Cond::And(..) | Cond::Ge(..) => format!("!({})", self.cond(a)),
                _ => format!("!{}", self.cond(a)),
            },
            Cond::And(a, b) => match **b {
                Cond::And(..) => format!("{} && ({})", self.cond(a), self.cond(b)),
                _ => format!("{} && {}", self.cond(a), self.cond(b)),
            },
        }
    }
    fn access(&self, buf: BufId, index: &[Index]) -> String {
        let name = self.p.buffers.get(buf.0 as usize).map_or("?", |b| b.name.as_str());
        let parts: Vec<String> = index
            .iter()
            .map(|i| match i {
                Index::At(e) => self.iexpr(e),
                Index::Block { start, len } => format!("{} +: {len}", self.iexpr(start)),
                Index::Full => ":".to_string(),
            })
            .collect();
        format!("{name}[{}]", parts.join(", "))
    }
    fn op(&self, op: &Op) -> String {
        let t = |x: &TileId| self.tile(*x);
        match op {
            Op::Load { buf, index } => format!("load {}", self.access(*buf, index)),
            Op::Zeros(_) => "zeros".into(),
            Op::Eye(n) => format!("eye {n}"),
            Op::Const(c) => format!("const {c:?}"),
            Op::Unary(u, a) => format!("{} {}", u.name(), t(a)),
            Op::Binary(b, x, y) => format!("{} {}, {}", b.name(), t(x), t(y)),
            Op::L2Norm(a) => format!("l2norm {}", t(a)),
            Op::Matmul { a, b, ta, tb } => {
                format!("matmul {}{}, {}{}", t(a), if *ta { "^T" } else { "" }, t(b), if *tb { "^T" } else { "" })
            }
            Op::MatmulGatedCausal { a, b, g } => format!("matmul_gated_causal {}, {}, {}", t(a), t(b), t(g)),
            Op::CumSum(a) => format!("cumsum {}", t(a)),
            Op::SegSum(a) => format!("segsum {}", t(a)),
            Op::SuffixSum(a) => format!("suffix_sum {}", t(a)),
            Op::Row(a, r) => format!("row {}, {}", t(a), self.iexpr(r)),
            Op::Col(a, j) => format!("col {}, {}", t(a), self.iexpr(j)),
            Op::Transpose(a) => format!("transpose {}", t(a)),
            Op::Tril { a, strict } => format!("{} {}", if *strict { "tril_strict" } else { "tril" }, t(a)),
            Op::LevelMask { lam: Some(l), n } => format!("level_mask {} ({n}x{n}, level = bitlen(r ^ s))", t(l)),
            Op::LevelMask { lam: None, n } => format!("causal_mask {n}x{n}"),
            Op::TriSolve { a, b } => format!("tri_solve_unit_lower {}, {}", t(a), t(b)),
            Op::MaskRows { a, start, limit } => format!("mask_rows {}, {} < {limit}", t(a), self.iexpr(start)),
            Op::Broadcast(a, s) => format!("broadcast {} to [{}, {}]", t(a), s[0], s[1]),
            Op::Mask { pred, on, off, .. } => format!("mask {} ? {on:?} : {off:?}", self.pred(pred)),
            Op::Select { pred, a, fill, .. } => format!("select {} ? {} : {fill:?}", self.pred(pred), t(a)),
            Op::RowSum(a) => format!("row_sum {}", t(a)),
            Op::ColSum(a) => format!("col_sum {}", t(a)),
        }
    }
    fn pred(&self, p: &Pred) -> String {
        match p {
            Pred::All => "true".into(),
            Pred::Lower => "s <= r".into(),
            Pred::StrictLower => "s < r".into(),
            Pred::Diag => "s == r".into(),
            Pred::Level(l) => format!("s <= r && bitlen(r ^ s) == {}", self.iexpr(l)),
            Pred::RowBelow { start, limit } => format!("{}+r < {limit}", self.iexpr(start)),
            Pred::RowIs(e) => format!("r == {}", self.iexpr(e)),
            Pred::ColIs(e) => format!("s == {}", self.iexpr(e)),
        }
    }
    fn body(&self, body: &[Stmt], ind: usize, out: &mut String) {
        let pad = "  ".repeat(ind);
        for s in body {
            match s {
                Stmt::Assign { dst, op } => {
                    let sh = self.k.tiles.get(dst.0 as usize).map(|t| t.shape);
                    let shs = sh.map_or("?".to_string(), |s| format!("[{}, {}]", s[0], s[1]));
                    let ops = match op {
                        // `zeros`, `mask` and `select` take their shape from the tile unless they differ.
                        Op::Zeros(z) if Some(*z) != sh => format!("zeros [{}, {}]", z[0], z[1]),
                        Op::Mask { shape: z, .. } | Op::Select { shape: z, .. } if Some(*z) != sh => {
                            format!("{} [{}, {}]", self.op(op), z[0], z[1])
                        }
                        _ => self.op(op),
                    };
                    let _ = writeln!(out, "{pad}{}: {shs} = {ops}", self.tile(*dst));
                }
                Stmt::Store { buf, index, src } => {
                    let _ = writeln!(out, "{pad}store {} = {}", self.access(*buf, index), self.tile(*src));
                }
                Stmt::For { var, body } => {
                    let ext = self.k.vars.get(var.0 as usize).map_or("?".to_string(), |v| v.extent.to_string());
                    let _ = writeln!(out, "{pad}for {} < {ext} {{", self.var(*var));
                    self.body(body, ind + 1, out);
                    let _ = writeln!(out, "{pad}}}");
                }
                Stmt::If { cond, then, els } => {
                    let _ = writeln!(out, "{pad}if {} {{", self.cond(cond));
                    self.body(then, ind + 1, out);
                    if !els.is_empty() {
                        let _ = writeln!(out, "{pad}}} else {{");
                        self.body(els, ind + 1, out);
                    }
                    let _ = writeln!(out, "{pad}}}");
                }
            }
        }
    }
}

fn kind_name(k: &BufKind) -> String {
    match k {
        BufKind::Input(n) => format!("input `{n}`"),
        BufKind::Output => "output".into(),
        BufKind::Scratch => "scratch".into(),
        BufKind::State => "state".into(),
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.chunk.trailing_zeros();
        let (m, ms, lc) = if self.hierarchical { ("bitlen(NT-1)", "M+1", "L") } else { ("1", "1", "1") };
        writeln!(
            f,
            "program {} (C = {}, c = {c}, NT = ceil(T/C), M = {m}, MS = {ms}, LC = {lc}, accum = {})",
            self.name,
            self.chunk,
            self.accum.ir_name()
        )?;
        if let Some(s) = self.specialised {
            writeln!(f, "  specialised K = {}, V = {}, C = {}", s.k, s.v, s.c)?;
        }
        let lt = self.lifetimes();
        for (i, b) in self.buffers.iter().enumerate() {
            let shape: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
            let live = match lt[i] {
                Some((a, z)) => format!("live {a}..{z}"),
                None => "unused".into(),
            };
            writeln!(
                f,
                "  buffer {}: {} {} [{}] {live}",
                b.name,
                kind_name(&b.kind),
                b.elem.ir_name(),
                shape.join(", ")
            )?;
        }
        for (ki, k) in self.kernels.iter().enumerate() {
            let (tiles_ok, vars_ok) = canonical(k);
            let ctx = Ctx { p: self, k, exact_vars: !vars_ok };
            let grid: Vec<String> = k
                .grid
                .iter()
                .map(|v| format!("{} < {}", ctx.var(*v), k.vars.get(v.0 as usize).map_or(d::ONE, |x| x.extent)))
                .collect();
            writeln!(f, "kernel {ki} {} grid({}) {{", k.name, grid.join(", "))?;
            if !tiles_ok {
                let t: Vec<String> =
                    k.tiles.iter().map(|t| format!("%{}: [{}, {}]", t.name, t.shape[0], t.shape[1])).collect();
                writeln!(f, "  tiles {}", t.join(", "))?;
            }
            if !vars_ok {
                let v: Vec<String> = k.vars.iter().map(|v| format!("{} < {}", v.name, v.extent)).collect();
                writeln!(f, "  vars {}", v.join(", "))?;
            }
            let mut s = String::new();
            ctx.body(&k.body, 1, &mut s);
            f.write_str(&s)?;
            writeln!(f, "}}")?;
        }
        Ok(())
    }
}

/// Prints one operation of a kernel (used by error messages).
pub fn op_to_string(p: &Program, k: &Kernel, op: &Op) -> String {
    Ctx { p, k, exact_vars: false }.op(op)
}
