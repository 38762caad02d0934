//! Inference: a prefill that returns the state (spec §6.3, computed by the forward program's `final_state`
//! kernel), and the decode step (spec §6.2, its own compiled program) that advances N sequences by one token
//! each, every sequence at its own position.
//!
//! The state of N sequences is [`DecodeState`]: `state` `[N, H, L_cap, K, V]` (level ℓ of sequence n, head h is
//! `S^(ℓ)`, the states query `position[n] − 1` read; one level for a linear variant) and `position` `[N]`, the
//! position of each sequence's next token. The layout is the kernel IR's `state` buffer, shared by every
//! backend and by the external test vectors (`tests/vectors/states_*.safetensors`).

use std::collections::BTreeMap;

use loglinear_ir::level::num_levels;
use loglinear_ir::{check_inputs, Dims, HostTensor, TensorMap, VariantIr};
use loglinear_kernel::interp::rows_of;
use loglinear_kernel::{Bindings, DType, DeviceStates, DeviceTensor, ScanForm, ScheduleConfig, States, Tensor};

use crate::engine::{size_env, Backend, BackendKind, Ran, RunOptions};
use crate::error::RuntimeError;

/// The decode state of `N` sequences (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeState {
    /// `[N, H, L_cap, K, V]`, in the accumulation type (f32, or f64 on the f64 backends).
    pub state: Tensor,
    /// The position of each sequence's next token (the number of tokens it has seen).
    pub position: Vec<usize>,
}

impl DecodeState {
    /// Sequences `N`.
    pub fn sequences(&self) -> usize {
        self.position.len()
    }

    /// Levels `L_cap`.
    pub fn levels(&self) -> usize {
        self.state.shape().get(2).copied().unwrap_or(0)
    }

    /// The empty state of `n` sequences at position 0 with `levels` levels.
    pub fn zeros(dtype: DType, n: usize, h: usize, levels: usize, k: usize, v: usize) -> Self {
        DecodeState { state: Tensor::zeros(dtype, vec![n, h, levels, k, v]), position: vec![0; n] }
    }

    /// The state with `levels` levels (added levels are zero; dropping a non-zero level is refused).
    ///
    /// # Errors
    /// [`RuntimeError::InvalidArgument`] when a level that would be dropped holds a non-zero state.
    pub fn with_levels(&self, levels: usize) -> Result<DecodeState, RuntimeError> {
        let s = self.state.shape().to_vec();
        let (n, h, l0, kv) = (s[0], s[1], s[2], s[3] * s[4]);
        let src = self.state.to_f64();
        let mut out = vec![0.0; n * h * levels * kv];
        for nh in 0..n * h {
            for l in 0..l0 {
                let from = &src[(nh * l0 + l) * kv..(nh * l0 + l + 1) * kv];
                if l >= levels {
                    if from.iter().any(|x| *x != 0.0) {
                        return Err(RuntimeError::InvalidArgument {
                            argument: "state levels".into(),
                            value: levels.to_string(),
                            expected: format!("at least {} (level {l} of the state is not empty)", l + 1),
                        });
                    }
                    continue;
                }
                out[(nh * levels + l) * kv..(nh * levels + l + 1) * kv].copy_from_slice(from);
            }
        }
        let dt = self.state.dtype();
        Ok(DecodeState {
            state: Tensor::from_f64(dt, vec![n, h, levels, s[3], s[4]], &out),
            position: self.position.clone(),
        })
    }

    /// The `position` tensor (`[N]`, i64), as files hold it.
    pub fn position_tensor(&self) -> Tensor {
        let p: Vec<f64> = self.position.iter().map(|x| *x as f64).collect();
        Tensor::from_f64(DType::I64, vec![p.len()], &p)
    }

    /// Checks a state read from tensors against `variant` and the problem's `H`, `K`, `V`.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidArgument`] naming `state` or `position`: a wrong rank, shape or dtype, a negative
    /// position, a non-finite state, a state given to a variant with a different state shape, or positions that
    /// need more levels than the state has.
    pub fn from_tensors(
        variant: &VariantIr,
        state: &Tensor,
        position: &Tensor,
        (h, k, v): (usize, usize, usize),
    ) -> Result<DecodeState, RuntimeError> {
        let s = state.shape();
        if !state.dtype().is_float() || s.len() != 5 || s[1] != h || s[3] != k || s[4] != v {
            return Err(bad(
                "state",
                format!("{} {:?}", state.dtype(), s),
                format!("a float tensor [N, H={h}, L_cap, K={k}, V={v}]"),
            ));
        }
        if !variant.is_log_linear() && s[2] != 1 {
            return Err(bad("state", format!("{s:?}"), format!("one level for the linear variant `{}`", variant.name)));
        }
        if position.dtype() != DType::I64 || position.shape() != [s[0]] {
            return Err(bad(
                "position",
                format!("{} {:?}", position.dtype(), position.shape()),
                format!("an I64 tensor [N={}]", s[0]),
            ));
        }
        let pos: Vec<f64> = position.to_f64();
        let mut out = Vec::with_capacity(pos.len());
        for (n, p) in pos.iter().enumerate() {
            if *p < 0.0 {
                return Err(bad("position", format!("position[{n}] = {p}"), "a non-negative token count".into()));
            }
            let p = *p as usize;
            if variant.is_log_linear() && p > 0 && num_levels(p) > s[2] {
                return Err(bad(
                    "position",
                    format!("position[{n}] = {p}"),
                    format!("a position whose {} levels fit the state's L_cap = {}", num_levels(p), s[2]),
                ));
            }
            out.push(p);
        }
        if let Some(i) = state.to_f64().iter().position(|x| !x.is_finite()) {
            return Err(bad("state", format!("element {i} is not finite"), "finite values".into()));
        }
        Ok(DecodeState { state: state.clone(), position: out })
    }
}

/// The narrowest column block [`Backend::decode_config`] splits `V` into.
pub const MIN_DECODE_V_BLOCK: usize = 16;

/// A [`DecodeState`] held in a backend's memory ([`Backend::upload_state`]): decode steps
/// ([`Backend::decode_step_resident`]) update it in place there, so a GPU step moves only the token's inputs
/// and output across the bus; [`Backend::download_state`] reads it back.
#[derive(Clone, Debug)]
pub struct ResidentState {
    /// `[N, H, L_cap, K, V]` in the accumulation type, in the backend's memory.
    pub state: DeviceTensor,
    /// The position of each sequence's next token.
    pub position: Vec<usize>,
    backend: String,
}

impl ResidentState {
    /// Sequences `N`.
    pub fn sequences(&self) -> usize {
        self.position.len()
    }

    /// Levels `L_cap`.
    pub fn levels(&self) -> usize {
        self.state.shape().get(2).copied().unwrap_or(0)
    }

    /// The backend whose memory holds it.
    pub fn backend(&self) -> &str {
        &self.backend
    }
}

/// An invalid state, position or decode input: the argument, its value and what was expected.
fn bad(argument: &str, value: String, expected: String) -> RuntimeError {
    RuntimeError::InvalidArgument { argument: argument.into(), value, expected }
}

/// Rows `n` of a tensor's leading dimension, as a tensor with leading size 1.
fn row(t: &Tensor, n: usize) -> Tensor {
    let per = t.bytes().len() / t.shape()[0].max(1);
    let mut shape = t.shape().to_vec();
    shape[0] = 1;
    Tensor::from_bytes(t.dtype(), shape, t.bytes()[n * per..(n + 1) * per].to_vec()).expect("sized")
}

/// Writes `src` (leading size 1) over row `n` of `dst`.
fn set_row(dst: &mut Tensor, n: usize, src: &Tensor) {
    let src = src.clone().convert(dst.dtype());
    let per = src.bytes().len();
    let mut bytes = dst.bytes().to_vec();
    bytes[n * per..(n + 1) * per].copy_from_slice(src.bytes());
    *dst = Tensor::from_bytes(dst.dtype(), dst.shape().to_vec(), bytes).expect("sized");
}

/// Checks one decode step's inputs against a state of shape `state_shape` at `position`: one token per
/// sequence, the state's H, K, V, and levels enough for every position. Returns the inputs' sizes and `L_cap`.
fn check_step(
    variant: &VariantIr,
    state_shape: &[usize],
    position: &[usize],
    inputs: &Bindings<'_>,
) -> Result<(Dims, usize), RuntimeError> {
    let dims = check_inputs(variant, inputs)?;
    let n = position.len();
    if dims.t != 1 || dims.b != n {
        return Err(bad(
            "decode inputs",
            format!("B={} T={}", dims.b, dims.t),
            format!("one token for each of the state's {n} sequences: B={n} T=1"),
        ));
    }
    let s = state_shape.to_vec();
    if s.len() != 5 || s[1] != dims.h || s[3] != dims.k || s[4] != dims.v {
        return Err(bad(
            "state",
            format!("{s:?}"),
            format!("[N={n}, H={}, L_cap, K={}, V={}] as the inputs", dims.h, dims.k, dims.v),
        ));
    }
    let levels = s[2];
    for (i, p) in position.iter().enumerate() {
        let need = num_levels(p + 1);
        if variant.is_log_linear() && need > levels {
            return Err(bad(
                "position",
                format!("position[{i}] = {p}"),
                format!("a position whose {need} levels fit the state's L_cap = {levels}"),
            ));
        }
        if variant.is_log_linear() && need > dims.l {
            return Err(bad(
                "lam",
                format!("{} levels", dims.l),
                format!("at least {need} levels for the token at position {p}"),
            ));
        }
    }
    Ok((dims, levels))
}

fn to_map(inputs: &Bindings<'_>) -> TensorMap {
    inputs.iter().map(|(n, t)| (n.clone(), HostTensor::new(t.shape.to_vec(), t.to_f64()))).collect()
}

impl Backend<'_> {
    /// Runs `variant` on `inputs` (`T` tokens of `B` sequences from position 0) and returns the output and the
    /// state after the last token, with as many levels as the λ tensor (`L_cap = L'`; one for a linear variant).
    ///
    /// # Errors
    /// As [`Backend::run`].
    pub fn prefill(
        &self,
        variant: &VariantIr,
        inputs: &Bindings<'_>,
        opts: &RunOptions,
    ) -> Result<(Ran, DecodeState), RuntimeError> {
        let dims = check_inputs(variant, inputs)?;
        // The tuned configuration when the tuning cache has one (as `run` does), else the runtime's pick.
        let (config, _) = self.config_for_inputs(variant, inputs, opts)?;
        let levels = if variant.is_log_linear() { dims.l } else { 1 };
        match self.kind {
            BackendKind::Reference => {
                let (o, st) = loglinear_oracle::run_with_state(variant, &to_map(inputs), 0, None, levels)?;
                let ran = Ran { o: Tensor::from_f64(DType::F64, o.shape, &o.data), config, dims };
                let state = Tensor::from_f64(DType::F64, st.shape, &st.data);
                Ok((ran, DecodeState { state, position: vec![dims.t; dims.b] }))
            }
            BackendKind::Target(_) => {
                let exec = self.runtime.compile_program(self, variant, dims.k, dims.v, &config, false)?;
                let env = size_env(&dims, config.chunk, exec.program().hierarchical);
                let mut states = States::new();
                let o = exec.run_with_states(&env, inputs, &mut states).map_err(|e| self.target_error(e))?;
                let state = states
                    .remove("state")
                    .ok_or_else(|| RuntimeError::Internal("the forward program has no `state` buffer".into()))?;
                Ok((Ran { o, config, dims }, DecodeState { state, position: vec![dims.t; dims.b] }))
            }
        }
    }

    /// Runs `T` more tokens of every sequence of `state` (`inputs` `[N, T, H, …]`; every sequence at the same
    /// position t0) and advances the state: returns `o` `[N, T, H, V]`, equal to the outputs of one run from
    /// position 0 over all the tokens. The tokens up to the next multiple of the chunk size are decode steps
    /// (fewer than C); the rest is one chunked prefill that enters the fused or streaming walk from the state
    /// (the per-level form has no entry: the default becomes the streaming form).
    ///
    /// # Errors
    /// [`RuntimeError::InvalidArgument`] for a state that does not fit the inputs, sequences at different
    /// positions, a λ too shallow for the last position, or an explicit per-level configuration; as
    /// [`Backend::run`] otherwise.
    pub fn prefill_from(
        &self,
        variant: &VariantIr,
        state: &mut DecodeState,
        inputs: &Bindings<'_>,
        opts: &RunOptions,
    ) -> Result<Ran, RuntimeError> {
        let dims = check_inputs(variant, inputs)?;
        let n = state.sequences();
        let s = state.state.shape().to_vec();
        if dims.b != n || s[1] != dims.h || s[3] != dims.k || s[4] != dims.v {
            return Err(bad(
                "initial state",
                format!("{s:?} for inputs B={} H={} K={} V={}", dims.b, dims.h, dims.k, dims.v),
                format!("[N={}, H={}, L_cap, K={}, V={}]", dims.b, dims.h, dims.k, dims.v),
            ));
        }
        let t0 = state.position[0];
        if let Some((i, p)) = state.position.iter().enumerate().find(|(_, p)| **p != t0) {
            return Err(bad(
                "position",
                format!("position[{i}] = {p} while position[0] = {t0}"),
                "every sequence at the same position (prefill each from its own state)".into(),
            ));
        }
        let levels = if variant.is_log_linear() { dims.l } else { 1 };
        if variant.is_log_linear() && num_levels(t0 + dims.t) > levels {
            return Err(bad(
                "lam",
                format!("{levels} levels"),
                format!("at least {} levels for positions up to {}", num_levels(t0 + dims.t), t0 + dims.t - 1),
            ));
        }
        let (mut config, _) = self.config_for_inputs(variant, inputs, opts)?;
        if config.form == ScanForm::PerLevel {
            if opts.config.is_some() || opts.overrides.form.is_some() {
                return Err(bad(
                    "form",
                    "per_level".into(),
                    "fused or streaming for a prefill from a state (the per-level scans have no entry state)".into(),
                ));
            }
            config.form = ScanForm::Streaming;
        }
        let opts = RunOptions { config: Some(config), max_scratch: opts.max_scratch, ..RunOptions::default() };
        *state = state.with_levels(levels)?;
        let c = config.chunk;
        let head = if t0 % c == 0 { 0 } else { (c - t0 % c).min(dims.t) };
        let mut parts: Vec<(usize, Tensor)> = Vec::new();
        for t in 0..head {
            let tok = rows_of(inputs, t, t + 1);
            let views: Bindings<'_> = tok.iter().map(|(k, x)| (k.clone(), x.view())).collect();
            parts.push((1, self.decode_step(variant, state, &views, &opts)?));
        }
        if head < dims.t {
            let rest = rows_of(inputs, head, dims.t);
            let views: Bindings<'_> = rest.iter().map(|(k, x)| (k.clone(), x.view())).collect();
            let d = check_inputs(variant, &views)?;
            let pos = state.position[0];
            let o = match self.kind {
                BackendKind::Reference => {
                    let sh = HostTensor::new(state.state.shape().to_vec(), state.state.to_f64());
                    let (o, f) = loglinear_oracle::run_with_state(variant, &to_map(&views), pos, Some(&sh), levels)?;
                    state.state = Tensor::from_f64(DType::F64, f.shape, &f.data);
                    Tensor::from_f64(DType::F64, o.shape, &o.data)
                }
                BackendKind::Target(_) => {
                    let exec = self.runtime.compile_program(self, variant, d.k, d.v, &config, false)?;
                    let mut env = size_env(&d, c, exec.program().hierarchical);
                    env.step = pos;
                    if exec.program().hierarchical {
                        env.m = loglinear_kernel::bitlen(((pos / c) + env.nt - 1) as u64) as usize;
                        env.ms = env.m + 1;
                    }
                    let mut states = States::new();
                    let dt = state.state.dtype();
                    states.insert("state".into(), std::mem::replace(&mut state.state, Tensor::zeros(dt, vec![0])));
                    let ran = exec.run_with_states(&env, &views, &mut states);
                    state.state = states
                        .remove("state")
                        .ok_or_else(|| RuntimeError::Internal("the forward program has no `state` buffer".into()))?;
                    ran.map_err(|e| self.target_error(e))?
                }
            };
            for p in &mut state.position {
                *p += dims.t - head;
            }
            parts.push((dims.t - head, o));
        }
        // [N, T, H, V] from the parts, each [N, t_i, H, V].
        let dt = parts.first().map_or(DType::F32, |p| p.1.dtype());
        let row = dims.h * dims.v * dt.size();
        let mut bytes = Vec::with_capacity(n * dims.t * row);
        for b in 0..n {
            for (len, o) in &parts {
                let o = o.clone().convert(dt);
                bytes.extend_from_slice(&o.bytes()[b * len * row..(b + 1) * len * row]);
            }
        }
        let o = Tensor::from_bytes(dt, vec![n, dims.t, dims.h, dims.v], bytes)
            .ok_or_else(|| RuntimeError::Internal("prefill output size".into()))?;
        Ok(Ran { o, config, dims })
    }

    /// Advances every sequence of `state` by one token: `inputs` hold `[N, 1, H, …]` (one token per sequence),
    /// the state is updated in place (positions too) and `o` `[N, 1, H, V]` returned. Sequences at different
    /// positions are each stepped at their own position. Cost O(L_cap·K·V) per sequence and head.
    ///
    /// # Errors
    /// [`RuntimeError::Input`] for inputs that do not fit the variant or are not one token per sequence of the
    /// state; [`RuntimeError::InvalidArgument`] for a state that does not fit them or a position that needs
    /// more levels than the state (or the λ tensor) has; as [`Backend::run`] otherwise.
    pub fn decode_step(
        &self,
        variant: &VariantIr,
        state: &mut DecodeState,
        inputs: &Bindings<'_>,
        opts: &RunOptions,
    ) -> Result<Tensor, RuntimeError> {
        let (dims, levels) = check_step(variant, state.state.shape(), &state.position, inputs)?;
        let n = state.sequences();
        let config = self.decode_config(variant, &dims, opts)?;
        let owned: BTreeMap<String, Tensor> = inputs.iter().map(|(k, t)| (k.clone(), t.to_owned())).collect();
        let uniform = state.position.windows(2).all(|w| w[0] == w[1]);
        // One call when every sequence is at the same position; else one per sequence (its rows of the state
        // and the inputs are contiguous).
        let groups: Vec<Vec<usize>> = if uniform { vec![(0..n).collect()] } else { (0..n).map(|i| vec![i]).collect() };
        let mut out = Tensor::zeros(DType::F64, vec![n, 1, dims.h, dims.v]);
        let mut first = true;
        for g in groups {
            let pos = state.position[g[0]];
            let (x, st) = if g.len() == n {
                // The state moves into the run (updated in place where the backend can) and back.
                let dt = state.state.dtype();
                (owned.clone(), std::mem::replace(&mut state.state, Tensor::zeros(dt, vec![0])))
            } else {
                let x: BTreeMap<String, Tensor> = owned
                    .iter()
                    .map(|(k, t)| (k.clone(), if t.shape().len() >= 3 { row(t, g[0]) } else { t.clone() }))
                    .collect();
                (x, row(&state.state, g[0]))
            };
            let views: Bindings<'_> = x.iter().map(|(k, t)| (k.clone(), t.view())).collect();
            let (o, new_state) = match self.kind {
                BackendKind::Reference => {
                    let sh = HostTensor::new(st.shape().to_vec(), st.to_f64());
                    let (o, f) =
                        match loglinear_oracle::run_with_state(variant, &to_map(&views), pos, Some(&sh), levels) {
                            Ok(x) => x,
                            Err(e) => {
                                if g.len() == n {
                                    state.state = st;
                                }
                                return Err(e.into());
                            }
                        };
                    (Tensor::from_f64(DType::F64, o.shape, &o.data), Tensor::from_f64(DType::F64, f.shape, &f.data))
                }
                BackendKind::Target(_) => {
                    let d = check_inputs(variant, &views)?;
                    let exec = self.runtime.compile_program(self, variant, d.k, d.v, &config, true)?;
                    let mut env = size_env(&d, 1, exec.program().hierarchical);
                    env.lc = if exec.program().hierarchical { levels } else { 1 };
                    env.step = pos;
                    let mut states = States::new();
                    states.insert("state".into(), st);
                    let ran = exec.run_with_states(&env, &views, &mut states);
                    let f = states
                        .remove("state")
                        .ok_or_else(|| RuntimeError::Internal("the decode program has no `state` buffer".into()))?;
                    match ran {
                        Ok(o) => (o, f),
                        Err(e) => {
                            if g.len() == n {
                                state.state = f;
                            }
                            return Err(self.target_error(e));
                        }
                    }
                }
            };
            if first {
                out = Tensor::zeros(o.dtype(), vec![n, 1, dims.h, dims.v]);
                first = false;
            }
            if g.len() == n {
                out = o;
                state.state = new_state;
            } else {
                set_row(&mut out, g[0], &o);
                set_row(&mut state.state, g[0], &new_state);
            }
        }
        for p in &mut state.position {
            *p += 1;
        }
        Ok(out)
    }

    /// Copies `state` into this backend's memory for [`Backend::decode_step_resident`].
    ///
    /// # Errors
    /// [`RuntimeError::Backend`] when the device cannot take it.
    pub fn upload_state(&self, state: &DecodeState) -> Result<ResidentState, RuntimeError> {
        let t = match self.kind {
            BackendKind::Reference => DeviceTensor::host(state.state.clone()),
            BackendKind::Target(target) => target.upload(state.state.view()).map_err(|e| self.target_error(e))?,
        };
        Ok(ResidentState { state: t, position: state.position.clone(), backend: self.name().into() })
    }

    /// Reads a resident state back to the host.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidArgument`] for a state held by another backend; [`RuntimeError::Backend`] on a
    /// device error.
    pub fn download_state(&self, state: &ResidentState) -> Result<DecodeState, RuntimeError> {
        self.check_resident_state(state)?;
        Ok(DecodeState { state: self.download(&state.state)?, position: state.position.clone() })
    }

    fn check_resident_state(&self, state: &ResidentState) -> Result<(), RuntimeError> {
        if state.backend != self.name() {
            return Err(RuntimeError::InvalidArgument {
                argument: "state".into(),
                value: format!("a state uploaded to backend `{}`", state.backend),
                expected: format!("a state uploaded to `{}` (Backend::upload_state)", self.name()),
            });
        }
        Ok(())
    }

    /// [`Backend::decode_step`] on a state in the backend's memory: the state is read and updated in place
    /// there (a GPU step copies only the token's inputs in and `o` `[N, 1, H, V]` out). Sequences at different
    /// positions are stepped through the host path (the state crosses the bus twice).
    ///
    /// # Errors
    /// As [`Backend::decode_step`]; [`RuntimeError::InvalidArgument`] for a state uploaded to another backend.
    pub fn decode_step_resident(
        &self,
        variant: &VariantIr,
        state: &mut ResidentState,
        inputs: &Bindings<'_>,
        opts: &RunOptions,
    ) -> Result<Tensor, RuntimeError> {
        self.check_resident_state(state)?;
        let (dims, levels) = check_step(variant, state.state.shape(), &state.position, inputs)?;
        let uniform = state.position.windows(2).all(|w| w[0] == w[1]);
        let BackendKind::Target(_) = self.kind else { return self.step_through_host(variant, state, inputs, opts) };
        if !uniform {
            tracing::debug!("sequences at different positions: stepping through the host");
            return self.step_through_host(variant, state, inputs, opts);
        }
        let config = self.decode_config(variant, &dims, opts)?;
        let exec = self.runtime.compile_program(self, variant, dims.k, dims.v, &config, true)?;
        let mut env = size_env(&dims, 1, exec.program().hierarchical);
        env.lc = if exec.program().hierarchical { levels } else { 1 };
        env.step = state.position.first().copied().unwrap_or(0);
        let mut states = DeviceStates::new();
        states.insert("state".into(), state.state.clone());
        let o = exec.run_with_resident_states(&env, inputs, &mut states).map_err(|e| self.target_error(e))?;
        if let Some(s) = states.remove("state") {
            state.state = s;
        }
        for p in &mut state.position {
            *p += 1;
        }
        Ok(o)
    }

    /// The configuration of a decode step of sizes `dims`: [`Backend::config`], then — unless the caller fixed
    /// the configuration or `v_block` — on a target that declares [`Capabilities::fill_programs`] and a step of
    /// fewer `N·H` programs, `V` split into column blocks (the widest of at least [`MIN_DECODE_V_BLOCK`] columns
    /// that reaches the fill, else the narrowest): on the H200 (WGSL) N=1 H=16 V=64 went from 2.36 ms to 0.31 ms
    /// a step at 16 columns.
    ///
    /// [`Capabilities::fill_programs`]: loglinear_kernel::Capabilities::fill_programs
    ///
    /// # Errors
    /// As [`Backend::config`].
    pub fn decode_config(
        &self,
        variant: &VariantIr,
        dims: &Dims,
        opts: &RunOptions,
    ) -> Result<ScheduleConfig, RuntimeError> {
        let mut config = self.config(variant, opts)?;
        if opts.config.is_some() || opts.overrides.v_block.is_some() || config.v_block.is_some() {
            return Ok(config);
        }
        let Some(fill) = self.capabilities().fill_programs else { return Ok(config) };
        let programs = dims.b * dims.h;
        if programs >= fill {
            return Ok(config);
        }
        let blocks: Vec<usize> = (MIN_DECODE_V_BLOCK..dims.v).rev().filter(|vb| dims.v % vb == 0).collect();
        config.v_block = blocks.iter().copied().find(|vb| programs * (dims.v / vb) >= fill).or(blocks.last().copied());
        Ok(config)
    }

    fn step_through_host(
        &self,
        variant: &VariantIr,
        state: &mut ResidentState,
        inputs: &Bindings<'_>,
        opts: &RunOptions,
    ) -> Result<Tensor, RuntimeError> {
        let mut host = self.download_state(state)?;
        let o = self.decode_step(variant, &mut host, inputs, opts)?;
        *state = self.upload_state(&host)?;
        Ok(o)
    }
}
