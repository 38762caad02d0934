//! The variant: inputs, preprocessing expressions, transition, write, read-out and hierarchy.

use crate::expr::{Expr, ExprId, InputId, Ty};

/// What an input tensor is, which fixes its shape (layout `[B, T, H, D]`, as fla).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// Per-token key-dimension vector, `[B, T, H, K]` (queries and keys).
    Key,
    /// Per-token value-dimension vector, `[B, T, H, V]`.
    Value,
    /// Per-token, per-head scalar, `[B, T, H]` (log decay, β, Δt, ...).
    Scalar,
    /// Per-token, per-key-channel vector, `[B, T, H, K]` (GLA's log decay).
    Channel,
    /// Per-token, per-level weights λ, `[B, T, H, L']` with `L' ≥ ⌈log2 T⌉ + 1`.
    Levels,
    /// Per-head constant, `[H]` (RetNet's decay, biases).
    HeadConst,
}

impl InputKind {
    /// Every kind, in documentation order.
    pub const ALL: [InputKind; 6] = [
        InputKind::Key,
        InputKind::Value,
        InputKind::Scalar,
        InputKind::Channel,
        InputKind::Levels,
        InputKind::HeadConst,
    ];

    /// The kind's keyword in the text form and the DSL.
    pub fn keyword(self) -> &'static str {
        match self {
            InputKind::Key => "key",
            InputKind::Value => "value",
            InputKind::Scalar => "scalar",
            InputKind::Channel => "channel",
            InputKind::Levels => "levels",
            InputKind::HeadConst => "head",
        }
    }

    /// Looks a kind up by its keyword.
    pub fn from_keyword(word: &str) -> Option<InputKind> {
        InputKind::ALL.into_iter().find(|k| k.keyword() == word)
    }

    /// The type of the input's value.
    pub fn ty(self) -> Ty {
        match self {
            InputKind::Key | InputKind::Channel => Ty::Key,
            InputKind::Value => Ty::Value,
            InputKind::Scalar => Ty::Token,
            InputKind::Levels => Ty::Levels,
            InputKind::HeadConst => Ty::Head,
        }
    }

    /// The tensor layout, as dimension names.
    pub fn layout(self) -> &'static str {
        match self {
            InputKind::Key | InputKind::Channel => "[B, T, H, K]",
            InputKind::Value => "[B, T, H, V]",
            InputKind::Scalar => "[B, T, H]",
            InputKind::Levels => "[B, T, H, L]",
            InputKind::HeadConst => "[H]",
        }
    }
}

/// A declared input tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    /// The tensor's name in files and in the API.
    pub name: String,
    /// Its kind (and so its shape).
    pub kind: InputKind,
}

/// The transition `A_t` applied to every state at every step (spec §3.1), by class.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// `A_t = I`.
    Identity,
    /// `A_t = exp(g_t) I` with `g` a scalar (per token, per head or constant).
    ScalarDecay {
        /// The log decay `g` (a scalar expression).
        log_decay: ExprId,
    },
    /// `A_t = diag(exp(g_t))` with `g_t ∈ R^K`.
    DiagonalDecay {
        /// The per-channel log decay (a key-dimension vector expression).
        log_decay: ExprId,
    },
    /// `A_t = exp(g_t) (I − β_t k_t k_tᵀ)`; without `log_decay`, `α ≡ 1` (DeltaNet).
    Delta {
        /// Optional scalar log decay `g`.
        log_decay: Option<ExprId>,
        /// The erasure strength β (a scalar expression).
        beta: ExprId,
        /// The key `k` of the rank-one erasure (a key vector expression).
        key: ExprId,
    },
}

/// The write `W_t = scale_t · k_t v_tᵀ`.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// Optional scalar factor (β for the delta rule).
    pub scale: Option<ExprId>,
    /// The key vector `k_t`.
    pub key: ExprId,
    /// The value vector `v_t`.
    pub value: ExprId,
}

/// How the prefix is partitioned into states.
#[derive(Clone, Debug, PartialEq)]
pub enum Hierarchy {
    /// One state: the linear base model (`λ ≡ 1`).
    None,
    /// Fenwick-tree levels (spec §2) read with weights λ.
    Fenwick {
        /// λ, a per-level weight expression.
        lambda: ExprId,
    },
}

/// The transition classes of the algebra, derived from a [`Transition`] and the types of its operands.
/// Room is left for diagonal-plus-low-rank transitions (RWKV-7, DPLR) as a further class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransitionClass {
    /// `A = I`.
    Identity,
    /// `A = α_h I`, constant over time (RetNet).
    ConstantDecay,
    /// `A = α_t I` (Mamba-2).
    ScalarDecay,
    /// `A = diag(α_t)` (GLA).
    DiagonalDecay,
    /// `A = I − β k kᵀ` (DeltaNet).
    Delta,
    /// `A = α_t (I − β k kᵀ)` (Gated DeltaNet).
    GatedDelta,
}

impl TransitionClass {
    /// The class's name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            TransitionClass::Identity => "identity",
            TransitionClass::ConstantDecay => "constant_decay",
            TransitionClass::ScalarDecay => "scalar_decay",
            TransitionClass::DiagonalDecay => "diagonal_decay",
            TransitionClass::Delta => "delta",
            TransitionClass::GatedDelta => "gated_delta",
        }
    }

    /// Whether the class needs the WY/UT machinery (spec §5.4).
    pub fn is_delta(self) -> bool {
        matches!(self, TransitionClass::Delta | TransitionClass::GatedDelta)
    }
}

/// Default chunk size used when a declaration gives none (the reference's value).
pub const DEFAULT_CHUNK_SIZE: usize = 64;

/// Largest chunk size any schedule accepts.
pub const MAX_CHUNK_SIZE: usize = 256;

/// A linear-attention variant: the algorithm, with no schedule in it but a default chunk size.
///
/// Built with [`crate::VariantBuilder`], which validates; a `VariantIr` obtained from it is well-formed:
/// see [`crate::validate`] for the invariants.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantIr {
    /// The variant's name (as listed by `loglinear list`).
    pub name: String,
    /// Declared inputs, in declaration order.
    pub inputs: Vec<InputDecl>,
    /// The expression arena; operands precede users.
    pub exprs: Vec<Expr>,
    /// The read-out vector `q_t` (key-dimension).
    pub query: ExprId,
    /// The transition `A_t`.
    pub transition: Transition,
    /// The write `W_t`.
    pub write: Write,
    /// The hierarchy.
    pub hierarchy: Hierarchy,
    /// Schedule default: chunk size (a power of two in `1..=256`).
    pub chunk_size: usize,
}

impl VariantIr {
    /// The expression behind a handle.
    pub fn expr(&self, id: ExprId) -> &Expr {
        &self.exprs[id.index()]
    }

    /// The declaration of an input.
    pub fn input(&self, id: InputId) -> &InputDecl {
        &self.inputs[id.index()]
    }

    /// Finds an input by name.
    pub fn input_by_name(&self, name: &str) -> Option<(InputId, &InputDecl)> {
        self.inputs.iter().enumerate().find(|(_, d)| d.name == name).map(|(i, d)| (InputId(i as u32), d))
    }

    /// Whether the variant has the log-linear (Fenwick) hierarchy.
    pub fn is_log_linear(&self) -> bool {
        matches!(self.hierarchy, Hierarchy::Fenwick { .. })
    }

    /// The transition's class (the variant must be valid).
    pub fn class(&self) -> TransitionClass {
        match &self.transition {
            Transition::Identity => TransitionClass::Identity,
            Transition::ScalarDecay { log_decay } => match self.ty(*log_decay) {
                Ty::Const | Ty::Head => TransitionClass::ConstantDecay,
                _ => TransitionClass::ScalarDecay,
            },
            Transition::DiagonalDecay { .. } => TransitionClass::DiagonalDecay,
            Transition::Delta { log_decay: None, .. } => TransitionClass::Delta,
            Transition::Delta { log_decay: Some(_), .. } => TransitionClass::GatedDelta,
        }
    }

    /// The roots of the expression graph: every expression the operator reads directly.
    pub fn roots(&self) -> Vec<ExprId> {
        let mut r = vec![self.query, self.write.key, self.write.value];
        r.extend(self.write.scale);
        match &self.transition {
            Transition::Identity => {}
            Transition::ScalarDecay { log_decay } | Transition::DiagonalDecay { log_decay } => r.push(*log_decay),
            Transition::Delta { log_decay, beta, key } => {
                r.extend(*log_decay);
                r.push(*beta);
                r.push(*key);
            }
        }
        if let Hierarchy::Fenwick { lambda } = &self.hierarchy {
            r.push(*lambda);
        }
        r
    }

    /// Which inputs the roots reach, indexed by input.
    pub fn used_inputs(&self) -> Vec<bool> {
        let mut live = vec![false; self.exprs.len()];
        for r in self.roots() {
            if let Some(l) = live.get_mut(r.index()) {
                *l = true;
            }
        }
        let mut used = vec![false; self.inputs.len()];
        for i in (0..self.exprs.len()).rev() {
            if !live[i] {
                continue;
            }
            match &self.exprs[i] {
                Expr::Input(id) => {
                    if let Some(u) = used.get_mut(id.index()) {
                        *u = true;
                    }
                }
                Expr::Const(_) => {}
                Expr::Unary(_, a) => {
                    if a.index() < i {
                        live[a.index()] = true;
                    }
                }
                Expr::Binary(_, a, b) => {
                    for x in [a, b] {
                        if x.index() < i {
                            live[x.index()] = true;
                        }
                    }
                }
            }
        }
        used
    }

    /// The same variant with the hierarchy removed: its linear base model (`λ ≡ 1`). Inputs that only fed λ
    /// are dropped, so one declaration gives both forms.
    pub fn linear_base(&self) -> VariantIr {
        let mut v = self.clone();
        if !self.is_log_linear() {
            return v;
        }
        v.hierarchy = Hierarchy::None;
        v.name = v.name.strip_prefix("loglinear_").unwrap_or(&v.name).to_string();
        let used = v.used_inputs();
        let mut remap = vec![None; v.inputs.len()];
        let mut inputs = Vec::new();
        for (i, d) in v.inputs.iter().enumerate() {
            if used[i] {
                remap[i] = Some(InputId(inputs.len() as u32));
                inputs.push(d.clone());
            }
        }
        // Expressions mentioning a dropped input are unreachable from the remaining roots; they become
        // inert constants so that the arena keeps its handles.
        for e in v.exprs.iter_mut() {
            if let Expr::Input(id) = e {
                *e = match remap[id.index()] {
                    Some(n) => Expr::Input(n),
                    None => Expr::Const(1.0),
                };
            }
        }
        v.inputs = inputs;
        v
    }
}
