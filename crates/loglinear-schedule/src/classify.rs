//! The `classify` pass: a validated variant → its transition class, the gate kind, the roots the operator
//! reads, and the chunk primitives (spec §10) the schedule needs.

use std::fmt;

use loglinear_ir::print::expr_to_string;
use loglinear_ir::{ExprId, Hierarchy, Transition, TransitionClass, VariantIr};

use crate::ScheduleError;

/// How the transition decays a state (what the local cumulative gate looks like).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gate {
    /// No decay (`α ≡ 1`).
    None,
    /// One log decay per token (`γ` is a `[C, 1]` column).
    Scalar,
    /// One log decay per token and key channel (`γ` is `[C, K]`).
    Channel,
}

impl Gate {
    /// Name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            Gate::None => "none",
            Gate::Scalar => "scalar",
            Gate::Channel => "channel",
        }
    }
}

/// The canonical values the operator reads, each bound to an expression of the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Root {
    /// The read-out `q` (key vector).
    Query,
    /// The write key `k` (also the delta rule's erasure key).
    Key,
    /// The write value `v`.
    Value,
    /// The write scale (β for the delta rule).
    Scale,
    /// The log decay `g`.
    LogDecay,
    /// The delta rule's β.
    Beta,
    /// The level weights λ.
    Lambda,
}

impl Root {
    /// Name in the text forms (and of the tile it becomes).
    pub fn name(self) -> &'static str {
        match self {
            Root::Query => "q",
            Root::Key => "k",
            Root::Value => "v",
            Root::Scale => "scale",
            Root::LogDecay => "g",
            Root::Beta => "beta",
            Root::Lambda => "lam",
        }
    }
}

/// A classified variant: what the schedule needs to know, and nothing of the declaration's syntax.
#[derive(Clone, Debug, PartialEq)]
pub struct Classified {
    /// Variant name.
    pub variant: String,
    /// Transition class.
    pub class: TransitionClass,
    /// Gate kind.
    pub gate: Gate,
    /// Whether the class uses the WY/UT machinery (spec §5.4).
    pub delta: bool,
    /// Whether the variant is log-linear (Fenwick levels).
    pub hierarchical: bool,
    /// The roots and the expressions bound to them, with their printed form.
    pub roots: Vec<(Root, ExprId, String)>,
}

impl Classified {
    /// The expression bound to a root, if the variant has it.
    pub fn root(&self, r: Root) -> Option<ExprId> {
        self.roots.iter().find(|x| x.0 == r).map(|x| x.1)
    }

    /// The four chunk primitives of spec §10 for this class, as formulas (`name`, formula).
    pub fn primitives(&self) -> Vec<(&'static str, &'static str)> {
        let g = self.gate;
        let intra = match (self.delta, g) {
            (false, Gate::None) => "P = (Q Kᵀ) ⊙ causal",
            (false, Gate::Scalar) => "P = (Q Kᵀ) ⊙ exp(γ_r − γ_s)",
            (false, Gate::Channel) => "P[r,s] = Σ_i q_ri k_si exp(γ_ri − γ_si)",
            (true, Gate::None) => "P = tril(Q Kᵀ) T_w",
            (true, _) => "P = (tril(Q Kᵀ) T_w) ⊙ exp(γ_r − γ_s)",
        };
        let transition = match (self.delta, g) {
            (false, Gate::None) => "S' = S",
            (false, Gate::Scalar) => "S' = exp(γ_last) S",
            (false, Gate::Channel) => "S' = diag(exp(γ_last)) S",
            (true, Gate::None) => "S' = S − K̃ᵀ (W̃ S)",
            (true, _) => "S' = exp(γ_last) S − K̃ᵀ (W̃ S)",
        };
        let write = match (self.delta, g) {
            (false, Gate::None) => "Kᵀ (scale ⊙ V)",
            (false, _) => "K̃ᵀ (scale ⊙ V), K̃_r = exp(γ_last − γ_r) ⊙ k_r",
            (true, _) => "K̃ᵀ U, U = T_u (scale ⊙ V)",
        };
        let pq = match (self.delta, g) {
            (false, Gate::None) => "q̃_r = q_r",
            (false, _) => "q̃_r = exp(γ_r) ⊙ q_r",
            (true, Gate::None) => "q̃_r = q_r − Σ_{u≤r} (q_r·k_u) w_u",
            (true, _) => "q̃_r = exp(γ_r) (q_r − Σ_{u≤r} (q_r·k_u) w_u)",
        };
        vec![("intra", intra), ("transition", transition), ("write", write), ("pseudo_query", pq)]
    }
}

/// Classifies a validated variant.
pub fn classify(v: &VariantIr) -> Result<Classified, ScheduleError> {
    let class = v.class();
    let mut roots = vec![(Root::Query, v.query), (Root::Key, v.write.key), (Root::Value, v.write.value)];
    if let Some(s) = v.write.scale {
        roots.push((Root::Scale, s));
    }
    let (gate, delta) = match &v.transition {
        Transition::Identity => (Gate::None, false),
        Transition::ScalarDecay { log_decay } => {
            roots.push((Root::LogDecay, *log_decay));
            (Gate::Scalar, false)
        }
        Transition::DiagonalDecay { log_decay } => {
            roots.push((Root::LogDecay, *log_decay));
            (Gate::Channel, false)
        }
        Transition::Delta { log_decay, beta, key } => {
            // Defensive: the validator (invariant 9 of `loglinear_ir::validate`) rejects a delta rule whose
            // erasure key is not its write key, so no valid variant reaches this.
            if *key != v.write.key {
                return Err(ScheduleError::Unsupported {
                    variant: v.name.clone(),
                    what: format!(
                        "a delta rule whose erasure key `{}` differs from the write key `{}` (the WY/UT form of spec §5.4 needs them equal; the IR validator rejects this, so the variant was not validated)",
                        expr_to_string(v, *key),
                        expr_to_string(v, v.write.key)
                    ),
                });
            }
            if let Some(g) = log_decay {
                roots.push((Root::LogDecay, *g));
            }
            roots.push((Root::Beta, *beta));
            (if log_decay.is_some() { Gate::Scalar } else { Gate::None }, true)
        }
    };
    let hierarchical = match &v.hierarchy {
        Hierarchy::None => false,
        Hierarchy::Fenwick { lambda } => {
            roots.push((Root::Lambda, *lambda));
            true
        }
    };
    Ok(Classified {
        variant: v.name.clone(),
        class,
        gate,
        delta,
        hierarchical,
        roots: roots.into_iter().map(|(r, e)| (r, e, expr_to_string(v, e))).collect(),
    })
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "classified {} {{", self.variant)?;
        writeln!(
            f,
            "  class {} (gate = {}, delta = {})",
            self.class.name(),
            self.gate.name(),
            if self.delta { "yes" } else { "no" }
        )?;
        writeln!(f, "  hierarchy {}", if self.hierarchical { "fenwick" } else { "none" })?;
        for (r, e, s) in &self.roots {
            writeln!(f, "  root {} = {s} (%{})", r.name(), e.0)?;
        }
        for (n, p) in self.primitives() {
            writeln!(f, "  primitive {n}: {p}")?;
        }
        write!(f, "}}")
    }
}
