//! The Schedule IR: how the chunked algorithm of spec §7 runs for one classified variant, stage by stage,
//! before any buffer or tile exists. The `lower` pass turns each stage into Kernel IR.

use std::fmt;

use loglinear_ir::TransitionClass;

use crate::classify::{Classified, Gate, Root};
use crate::{ScanForm, ScheduleError};

/// One per-chunk stage (all chunks in parallel; every chunk runs the same stages on its `C` rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkStage {
    /// Loads the inputs of the chunk and evaluates the expression arena into the roots; rows past `T` are zero.
    Preprocess,
    /// `γ = cumsum(g)` restarted in every chunk; `γ_last = γ[C−1]` (padded rows have `g = 0`).
    LocalCumsum,
    /// `Γ[r,s] = exp_nonpos(Σ_{u=s+1}^{r} g_u)` (= `γ_r − γ_s`, summed directly) for `s ≤ r`, 0 above (the mask
    /// before the exponential).
    DecayMatrix,
    /// WY/UT (spec §5.4): `T_w`, `T_u` by unit-lower solves, `W = T_w diag(β) K`, `U = T_u (scale ⊙ V)`.
    WyUt,
    /// The intra-chunk block with the hierarchical mask of levels `0..=c` (one `C × C` table for every chunk).
    Intra,
    /// The pseudo-query `q̃` (how an entering state is read at row `r`).
    PseudoQuery,
    /// The chunk-local write decayed to the chunk end.
    ChunkWrite,
    /// The operands of the whole-chunk transition.
    ChunkTransition,
}

impl ChunkStage {
    /// Name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            ChunkStage::Preprocess => "preprocess",
            ChunkStage::LocalCumsum => "local_cumsum",
            ChunkStage::DecayMatrix => "decay_matrix",
            ChunkStage::WyUt => "wy_ut",
            ChunkStage::Intra => "intra",
            ChunkStage::PseudoQuery => "pseudo_query",
            ChunkStage::ChunkWrite => "chunk_write",
            ChunkStage::ChunkTransition => "chunk_transition",
        }
    }
}

/// The inter-chunk part (levels above `c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InterStage {
    /// One masked scan per chunk level `m < M` (spec §7.2): readers have bit `m` set, writers clear; reset at
    /// the end of each `2^(m+1)` block. Linear variants: one unmasked scan. Then a read pass per chunk.
    PerLevelScan,
    /// The fused carry pass of spec §7.2: `M + 1` chunk-level states, one walk over the chunks.
    FusedCarry,
    /// The fused carry with each chunk's primitives computed inside the walk (no per-chunk scratch).
    Streaming,
}

/// One stage of the decode step (spec §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeStage {
    /// Preprocess token `t`'s inputs.
    Preprocess,
    /// The token's transition operands and write (the chunk primitives with `C = 1`).
    TokenPrimitives,
    /// Merge levels `0..=tz(t)` into `tz(t) + 1` (for `t ≥ 1`).
    Carry,
    /// `S^(ℓ) ← A_t S^(ℓ)` for every level.
    Transit,
    /// `S^(0) ← S^(0) + W_t`.
    Insert,
    /// `o_t = Σ_ℓ λ_t^(ℓ) (S^(ℓ))ᵀ q_t`.
    Read,
}

impl DecodeStage {
    /// Name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            DecodeStage::Preprocess => "preprocess",
            DecodeStage::TokenPrimitives => "token_primitives",
            DecodeStage::Carry => "carry",
            DecodeStage::Transit => "transit",
            DecodeStage::Insert => "insert",
            DecodeStage::Read => "read",
        }
    }
}

/// The Schedule IR of one variant at one chunk size and scan form.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The classified variant it schedules.
    pub classified: Classified,
    /// Chunk size `C = 2^c`.
    pub chunk: usize,
    /// The scan form.
    pub form: ScanForm,
    /// Per-chunk stages, in order.
    pub chunk_stages: Vec<ChunkStage>,
    /// The inter-chunk stage.
    pub inter: InterStage,
    /// The decode step, in order.
    pub decode: Vec<DecodeStage>,
}

impl Schedule {
    /// Gate kind.
    pub fn gate(&self) -> Gate {
        self.classified.gate
    }
    /// Delta rule?
    pub fn delta(&self) -> bool {
        self.classified.delta
    }
    /// Log-linear?
    pub fn hierarchical(&self) -> bool {
        self.classified.hierarchical
    }
    /// Whether the class transitions states at all.
    pub fn has_transition(&self) -> bool {
        self.classified.class != TransitionClass::Identity
    }
    /// `c = log2 C`.
    pub fn c(&self) -> u32 {
        self.chunk.trailing_zeros()
    }

    fn stage_text(&self, s: ChunkStage) -> String {
        let (g, dl) = (self.gate(), self.delta());
        match s {
            ChunkStage::Preprocess => {
                let r: Vec<String> =
                    self.classified.roots.iter().map(|(r, _, e)| format!("{} = {e}", r.name())).collect();
                let mut t = r.join("; ");
                if self.classified.root(Root::Scale).is_some() {
                    t.push_str("; vw = scale ⊙ v");
                } else {
                    t.push_str("; vw = v");
                }
                t
            }
            ChunkStage::LocalCumsum => match g {
                Gate::Channel => "γ[C, K] = cumsum_rows(g); γ_last = γ[C-1, :]".into(),
                _ => "γ[C] = cumsum(g); γ_last = γ[C-1]".into(),
            },
            ChunkStage::DecayMatrix => "Γ[r,s] = exp_nonpos(segsum(g)[r,s]) = exp(γ_r − γ_s) (s ≤ r), 0 above".into(),
            ChunkStage::WyUt => {
                let au =
                    if g == Gate::None { "T_u = T_w" } else { "T_u = solve(I + strict(diag(β)(K Kᵀ ⊙ Γ)), I)" };
                format!("T_w = solve(I + strict(diag(β) K Kᵀ), I); {au}; W = T_w diag(β) K; U = T_u vw")
            }
            ChunkStage::Intra => {
                let mask = if self.hierarchical() {
                    format!("λ[r, bitlen(r ^ s)] for levels 0..={}", self.c())
                } else {
                    "causal".into()
                };
                let p = match (dl, g) {
                    (false, Gate::None) => "Q Kᵀ",
                    (false, Gate::Scalar) => "(Q Kᵀ) ⊙ Γ",
                    (false, Gate::Channel) => "Σ_i q_ri k_si exp_nonpos(Σ_{u=s+1}^{r} g_ui)",
                    (true, Gate::None) => "tril(Q Kᵀ) T_w",
                    (true, _) => "(tril(Q Kᵀ) T_w) ⊙ Γ",
                };
                format!("o = ({p} ⊙ M) vw, M = {mask}")
            }
            ChunkStage::PseudoQuery => match (dl, g) {
                (false, Gate::None) => "q̃ = q".into(),
                (false, _) => "q̃ = q ⊙ exp_nonpos(γ)".into(),
                (true, Gate::None) => "q̃ = q − tril(Q Kᵀ) W".into(),
                (true, _) => "q̃ = exp_nonpos(γ) ⊙ (q − tril(Q Kᵀ) W)".into(),
            },
            ChunkStage::ChunkWrite => match (dl, g) {
                (false, Gate::None) => "cw = Kᵀ vw".into(),
                (false, _) => "K̃ = k ⊙ exp_nonpos(suffix_sum(g)) = k ⊙ exp(γ_last − γ); cw = K̃ᵀ vw".into(),
                (true, Gate::None) => "K̃ = K; cw = K̃ᵀ U".into(),
                (true, _) => "K̃ = k ⊙ exp_nonpos(suffix_sum(g)) = k ⊙ exp(γ_last − γ); cw = K̃ᵀ U".into(),
            },
            ChunkStage::ChunkTransition => match (dl, g) {
                (false, Gate::None) => "S' = S".into(),
                (false, Gate::Scalar) => "dec = exp_nonpos(γ_last); S' = dec S".into(),
                (false, Gate::Channel) => "dec[K] = exp_nonpos(γ_last); S' = diag(dec) S".into(),
                (true, Gate::None) => "W̃ = W; S' = S − K̃ᵀ (W̃ S)".into(),
                (true, _) => "W̃ = exp_nonpos(γ) ⊙ W; dec = exp_nonpos(γ_last); S' = dec S − K̃ᵀ (W̃ S)".into(),
            },
        }
    }
}

/// Builds the schedule of a classified variant.
pub fn schedule(cl: &Classified, chunk: usize, form: ScanForm) -> Result<Schedule, ScheduleError> {
    if chunk == 0 || !chunk.is_power_of_two() || chunk > loglinear_ir::MAX_CHUNK_SIZE {
        return Err(ScheduleError::ChunkSize(chunk));
    }
    let mut st = vec![ChunkStage::Preprocess];
    if cl.gate != Gate::None {
        st.push(ChunkStage::LocalCumsum);
    }
    if cl.gate == Gate::Scalar {
        st.push(ChunkStage::DecayMatrix);
    }
    if cl.delta {
        st.push(ChunkStage::WyUt);
    }
    st.extend([ChunkStage::Intra, ChunkStage::PseudoQuery, ChunkStage::ChunkWrite]);
    if cl.class != TransitionClass::Identity {
        st.push(ChunkStage::ChunkTransition);
    }
    let mut decode = vec![DecodeStage::Preprocess, DecodeStage::TokenPrimitives];
    if cl.hierarchical {
        decode.push(DecodeStage::Carry);
    }
    if cl.class != TransitionClass::Identity {
        decode.push(DecodeStage::Transit);
    }
    decode.extend([DecodeStage::Insert, DecodeStage::Read]);
    Ok(Schedule {
        classified: cl.clone(),
        chunk,
        form,
        chunk_stages: st,
        inter: match form {
            ScanForm::PerLevel => InterStage::PerLevelScan,
            ScanForm::Fused => InterStage::FusedCarry,
            ScanForm::Streaming => InterStage::Streaming,
        },
        decode,
    })
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.c();
        let h = self.hierarchical();
        writeln!(
            f,
            "schedule {} (class {}, C = {}, c = {c}, form = {}) {{",
            self.classified.variant,
            self.classified.class.name(),
            self.chunk,
            self.form.name()
        )?;
        writeln!(f, "  per chunk i < NT (parallel; rows i*C .. min((i+1)*C, T)):")?;
        for s in &self.chunk_stages {
            writeln!(f, "    {}: {}", s.name(), self.stage_text(*s))?;
        }
        let (rd, tr) = if self.delta() { ("q̃ᵀ S", "S' (chunk_transition)") } else { ("q̃ᵀ S", "S'") };
        match (self.inter, h) {
            (InterStage::PerLevelScan, true) => {
                writeln!(f, "  per level m < M = bitlen(NT-1) (token level c+1+m = {}+m):", c + 1)?;
                writeln!(f, "    masked_scan: for i < NT: h[m,i] = S; if low_ones(i, m+1) S = 0 else S = {tr}; if !bit(i, m) S += cw[i]")?;
                writeln!(f, "  per chunk i < NT:")?;
                writeln!(f, "    read: for m < M: if bit(i, m): o += λ[:, {}+m] ⊙ ({rd} with S = h[m,i])", c + 1)?;
            }
            (InterStage::PerLevelScan, false) => {
                writeln!(f, "  linear scan (M = 1, unmasked):")?;
                writeln!(f, "    scan: for i < NT: h[0,i] = S; S = {tr}; S += cw[i]")?;
                writeln!(f, "  per chunk i < NT:")?;
                writeln!(f, "    read: o += {rd} with S = h[0,i]")?;
            }
            (InterStage::FusedCarry, true) => {
                writeln!(f, "  fused carry (one walk, states S_0..S_M):")?;
                writeln!(f, "    for i < NT: for j < M: if bit(i, j): o += λ[:, {}+j] ⊙ {rd} with S = S_j", c + 1)?;
                writeln!(f, "                for j < MS: S_j = {tr}; S_0 += cw[i]")?;
                writeln!(f, "                for j < M: if low_ones(i, j+1): S_(j+1) += S_j; S_j = 0")?;
            }
            (InterStage::FusedCarry, false) => {
                writeln!(f, "  fused carry (linear: one state S_0):")?;
                writeln!(f, "    for i < NT: o += {rd} with S = S_0; S_0 = {tr}; S_0 += cw[i]")?;
            }
            (InterStage::Streaming, _) => {
                writeln!(f, "  streaming (the fused carry, each chunk's primitives computed in the walk):")?;
                writeln!(f, "    for i < NT: q̃, cw, transition of chunk i; then as the fused carry")?;
            }
        }
        writeln!(f, "  output: o = intra + inter, stored as [B, T, H, V]")?;
        writeln!(f, "  decode step t (states S^(0..LC)):")?;
        for s in &self.decode {
            let txt = match s {
                DecodeStage::Preprocess => "roots of token t".to_string(),
                DecodeStage::TokenPrimitives => "chunk primitives with C = 1 (dec, K̃, W̃, cw)".to_string(),
                DecodeStage::Carry => {
                    "if t >= 1: for l < LC: if low_zeros(t, l): S^(tz(t)+1) += S^(l); S^(l) = 0".into()
                }
                DecodeStage::Transit => "for l < LC: S^(l) = A_t S^(l)".into(),
                DecodeStage::Insert => "S^(0) += W_t".into(),
                DecodeStage::Read => {
                    if h {
                        "o_t = Σ_l λ_t[l] (S^(l))ᵀ q_t".into()
                    } else {
                        "o_t = (S^(0))ᵀ q_t".into()
                    }
                }
            };
            writeln!(f, "    {}: {txt}", s.name())?;
        }
        write!(f, "}}")
    }
}
