//! [`ScheduleConfig`]: every choice of *how* a variant runs — the one value the autotuner searches, printed in
//! dumps, validated, and the only way options reach the lowering.

use std::fmt;
use std::str::FromStr;

use crate::tensor::DType;

/// The largest chunk size.
pub const MAX_CHUNK: usize = 256;

/// The inter-chunk scan form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum ScanForm {
    /// One masked scan per chunk level, then one read pass (spec §7.2, the reference's organisation).
    #[default]
    PerLevel,
    /// The fused chunk-carry pass (end of spec §7.2).
    Fused,
    /// The fused carry with the chunk primitives (pseudo-queries, writes, transitions) computed inside the walk:
    /// scratch O(L·K·V) per head, no `T`-sized buffer besides the output (long contexts).
    Streaming,
}

impl ScanForm {
    /// Every form.
    pub const ALL: [ScanForm; 3] = [ScanForm::PerLevel, ScanForm::Fused, ScanForm::Streaming];

    /// Name in the text form and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ScanForm::PerLevel => "per_level",
            ScanForm::Fused => "fused",
            ScanForm::Streaming => "streaming",
        }
    }

    /// Parses `per_level` (or `per-level`) / `fused` / `streaming`.
    pub fn from_name(s: &str) -> Option<ScanForm> {
        match s {
            "per_level" | "per-level" => Some(ScanForm::PerLevel),
            "fused" => Some(ScanForm::Fused),
            "streaming" => Some(ScanForm::Streaming),
            _ => None,
        }
    }
}

/// How a variant is scheduled and run. Built by the runtime (defaults from the variant and the target's
/// capabilities, or a tuned entry), validated with [`ScheduleConfig::validate`], handed to the lowering and to
/// the target; part of every compiled-kernel cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScheduleConfig {
    /// Chunk size `C`: a power of two in `1..=256`.
    pub chunk: usize,
    /// Inter-chunk scan form.
    pub form: ScanForm,
    /// Storage type of the floating-point buffers (inputs are converted on the way in; the output comes back
    /// in it). f32, f16 or bf16 on the f32 backends; f64 on the f64 interpreter.
    pub storage: DType,
    /// Accumulation type of every tile operation: f32 or f64.
    pub accum: DType,
    /// CPU worker threads; `None`: one per available core.
    pub threads: Option<usize>,
    /// Columns of `V` per grid program in the kernels that can be split along `V` (the `split_v` pass); a
    /// divisor of `V`. `None`: whole `V` (no split) unless the target's tile budget asks for a split, in
    /// which case the pipeline picks the widest block that fits.
    pub v_block: Option<usize>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            chunk: 64,
            form: ScanForm::PerLevel,
            storage: DType::F32,
            accum: DType::F32,
            threads: None,
            v_block: None,
        }
    }
}

/// Why a [`ScheduleConfig`] is invalid: the field, its value and what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule config: {field} = {value}; expected {expected}")]
pub struct ConfigError {
    /// The field.
    pub field: &'static str,
    /// Its value.
    pub value: String,
    /// What is expected.
    pub expected: String,
}

impl ScheduleConfig {
    /// The default configuration at chunk size `chunk`.
    pub fn with_chunk(chunk: usize) -> Self {
        ScheduleConfig { chunk, ..Self::default() }
    }

    /// Checks every field on its own (a target's [`crate::target::Capabilities`] may refuse more).
    ///
    /// # Errors
    /// The first invalid field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, value: String, expected: &str| Err(ConfigError { field, value, expected: expected.into() });
        if !self.chunk.is_power_of_two() || self.chunk > MAX_CHUNK {
            return bad("chunk", self.chunk.to_string(), "a power of two in 1..=256");
        }
        if !self.storage.is_float() {
            return bad("storage", self.storage.ir_name().into(), "one of f64, f32, f16, bf16");
        }
        if !matches!(self.accum, DType::F32 | DType::F64) {
            return bad("accum", self.accum.ir_name().into(), "f32 or f64");
        }
        if self.storage == DType::F64 && self.accum != DType::F64 {
            return bad("storage", "f64".into(), "accum = f64 with f64 storage");
        }
        if self.threads == Some(0) {
            return bad("threads", "0".into(), "a positive number, or auto");
        }
        if self.v_block == Some(0) {
            return bad("v_block", "0".into(), "a positive divisor of V, or auto");
        }
        Ok(())
    }
}

impl fmt::Display for ScheduleConfig {
    /// `chunk=64 form=per_level storage=f32 accum=f32 threads=auto v_block=auto`; [`FromStr`] parses it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |x: Option<usize>, none: &str| x.map_or(none.to_string(), |v| v.to_string());
        write!(
            f,
            "chunk={} form={} storage={} accum={} threads={} v_block={}",
            self.chunk,
            self.form.name(),
            self.storage.ir_name(),
            self.accum.ir_name(),
            opt(self.threads, "auto"),
            opt(self.v_block, "auto")
        )
    }
}

impl FromStr for ScheduleConfig {
    type Err = ConfigError;

    /// Parses `key=value` pairs separated by spaces or commas ([`ConfigOverrides`]) over
    /// [`ScheduleConfig::default`]; missing keys keep their defaults.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let c = s.parse::<ConfigOverrides>()?.apply(ScheduleConfig::default());
        c.validate()?;
        Ok(c)
    }
}

/// Part of a [`ScheduleConfig`]: the fields a user fixed (`--config storage=bf16,form=fused`); every other
/// field keeps what the runtime would pick — the target's default, a tuned entry, or the scan form chosen by
/// the problem's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConfigOverrides {
    /// Chunk size.
    pub chunk: Option<usize>,
    /// Inter-chunk scan form; `None` leaves the choice to the runtime (per-level, or streaming past the
    /// memory and binding limits).
    pub form: Option<ScanForm>,
    /// Storage type.
    pub storage: Option<DType>,
    /// Accumulation type.
    pub accum: Option<DType>,
    /// Worker threads (`Some(None)`: `threads=auto`).
    pub threads: Option<Option<usize>>,
    /// Columns of `V` per grid program (`Some(None)`: `v_block=auto`).
    pub v_block: Option<Option<usize>>,
}

impl ConfigOverrides {
    /// Whether no field is fixed.
    pub fn is_empty(&self) -> bool {
        *self == ConfigOverrides::default()
    }

    /// `base` with the fixed fields replaced (not validated: see [`ScheduleConfig::validate`]).
    pub fn apply(&self, base: ScheduleConfig) -> ScheduleConfig {
        ScheduleConfig {
            chunk: self.chunk.unwrap_or(base.chunk),
            form: self.form.unwrap_or(base.form),
            storage: self.storage.unwrap_or(base.storage),
            accum: self.accum.unwrap_or(base.accum),
            threads: self.threads.unwrap_or(base.threads),
            v_block: self.v_block.unwrap_or(base.v_block),
        }
    }
}

impl FromStr for ConfigOverrides {
    type Err = ConfigError;

    /// Parses `key=value` pairs separated by spaces or commas: `chunk`, `form`, `storage`, `accum`, `threads`,
    /// `v_block` (the last two take `auto`). Each value is checked on its own; the whole configuration is
    /// validated once applied.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let mut c = ConfigOverrides::default();
        for item in s.split([' ', ',']).filter(|x| !x.is_empty()) {
            let bad = |field: &'static str, expected: &str| ConfigError {
                field,
                value: item.to_string(),
                expected: expected.into(),
            };
            let (k, v) = item.split_once('=').ok_or_else(|| bad("config", "key=value"))?;
            let num = |field| v.parse::<usize>().map_err(|_| bad(field, "a number"));
            let opt = |field, none: &str| if v == none { Ok(None) } else { num(field).map(Some) };
            match k {
                "chunk" => c.chunk = Some(num("chunk")?),
                "form" => {
                    c.form = Some(ScanForm::from_name(v).ok_or_else(|| bad("form", "per_level, fused or streaming"))?)
                }
                "storage" => {
                    c.storage = Some(DType::from_name(v).ok_or_else(|| bad("storage", "f64, f32, f16, bf16"))?)
                }
                "accum" => c.accum = Some(DType::from_name(v).ok_or_else(|| bad("accum", "f32 or f64"))?),
                "threads" => c.threads = Some(opt("threads", "auto")?),
                "v_block" => c.v_block = Some(opt("v_block", "auto")?),
                _ => return Err(bad("config", "one of chunk, form, storage, accum, threads, v_block")),
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_fix_only_the_given_fields() {
        let o: ConfigOverrides = "storage=bf16, threads=auto".parse().unwrap();
        assert_eq!(o.form, None, "an unnamed form is left to the runtime");
        assert_eq!(o.threads, Some(None));
        let base = ScheduleConfig { chunk: 32, form: ScanForm::Fused, threads: Some(3), ..ScheduleConfig::default() };
        let c = o.apply(base);
        assert_eq!((c.chunk, c.form, c.storage, c.threads), (32, ScanForm::Fused, DType::BF16, None));
        assert!(ConfigOverrides::default().is_empty() && !o.is_empty());
        assert_eq!("form=streaming".parse::<ConfigOverrides>().unwrap().form, Some(ScanForm::Streaming));
        assert_eq!("form=sideways".parse::<ConfigOverrides>().unwrap_err().field, "form");
    }

    #[test]
    fn prints_parses_and_validates() {
        let c = ScheduleConfig {
            chunk: 16,
            form: ScanForm::Fused,
            storage: DType::BF16,
            accum: DType::F32,
            threads: Some(2),
            v_block: Some(32),
        };
        assert_eq!(c.to_string(), "chunk=16 form=fused storage=bf16 accum=f32 threads=2 v_block=32");
        assert_eq!(c.to_string().parse::<ScheduleConfig>().unwrap(), c);
        assert_eq!(ScheduleConfig::default().to_string().parse::<ScheduleConfig>().unwrap(), ScheduleConfig::default());
        for (text, field) in [
            ("chunk=12", "chunk"),
            ("chunk=512", "chunk"),
            ("storage=i64", "storage"),
            ("accum=f16", "accum"),
            ("storage=f64 accum=f32", "storage"),
            ("threads=0", "threads"),
            ("v_block=0", "v_block"),
            ("speed=11", "config"),
        ] {
            let e = text.parse::<ScheduleConfig>().unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
    }
}
