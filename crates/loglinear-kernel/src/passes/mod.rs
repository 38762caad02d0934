//! Kernel-IR → kernel-IR passes, each a plain function on a [`crate::Program`], named in the pipeline's
//! `PASSES` list of `loglinear-schedule` and printed by `--dump-ir`.
//!
//! What each pass guarantees (every one returns a program that passes [`crate::verify::verify`] when its input
//! does):
//!
//! * [`specialise`](specialise::specialise): K, V and C become literals in every shape, extent and index; λ
//!   tiles hold 32 levels; buffers get their element types. Same values as the symbolic program.
//! * [`split_v`](split::split_v) (when the configuration's `v_block` is below `V`): every V-separable kernel
//!   gets a grid variable over column blocks of `V`, its `V`-wide tiles become `v_block` wide; stores without a
//!   `V` axis run in block 0 only. Outputs bit for bit unchanged.
//! * [`decompose`](decompose::decompose) (on request: `loglinear_schedule::compile_decomposed`): **no compound op
//!   remains** — only the primitives `load`, `zeros`, `const`, `unary` (with `rsqrt`), `binary`, `matmul`,
//!   `mask`, `select`, `row_sum`, `col_sum` ([`decompose::is_primitive`]) — so a new backend that translates
//!   those is correct on every variant. Acceptance: the decomposed forward program of every built-in (chunk
//!   sizes 1, 4, 16; both scan forms; T ∈ {1, 37, 65}; K ≠ V; a single g = −1e10 token mid-chunk) agrees with
//!   the f64 oracle within 1e-12 on the f64 interpreter and within the f32 tolerances (1e-5; 1e-4 for the delta
//!   classes) on the f32 interpreter (`loglinear-schedule/tests/decompose.rs`). Segment sums stay direct sums of
//!   raw gates (never differences of cumulative sums), masked entries are `−∞` before every `exp_nonpos`, and
//!   the verifier still rejects `exp_nonpos` of a difference of cumulative gates.
//! * [`cse`](cse::cse): removes an assignment whose op (operands, indices, constants bit for bit) repeats an
//!   earlier single-assignment tile's, when no operand nor buffer changed in between and no loop or branch
//!   boundary is crossed unsafely; reads are renamed. Outputs bit for bit unchanged.
//! * [`dce`](dce::dce): removes assignments no later statement can read, empty loops and conditionals, unused
//!   tiles and loop variables (renumbered). Outputs bit for bit unchanged.

pub mod cse;
pub mod dce;
pub mod decompose;
pub mod specialise;
pub mod split;
