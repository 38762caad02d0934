//! Autotuning with a persistent cache: [`tune`] searches [`ScheduleConfig`]s for one (variant, backend, shape,
//! input dtype), pruning with the capabilities and the cost model before measuring, and records the winner in
//! a [`TuneCache`] that [`Backend::run`] and [`Backend::run_resident`] consult on every run whose
//! [`RunOptions`] leave the configuration to the runtime (a lookup only: an untuned shape runs the default pick
//! at once, never a search).
//!
//! * **Key** ([`TuneKey`]): backend, device identity ([`Target::device`](loglinear_kernel::Target::device),
//!   hashed), compiler version (this crate's version and
//!   [`CODEGEN_VERSION`](loglinear_kernel::device::CODEGEN_VERSION)), the variant's name and IR hash (FNV-1a 64 of
//!   its text form), K, V, the inputs' dtype, and a bucketed shape: T and B·H rounded up to powers of two, so one
//!   tuning serves every length and batch in the bucket.
//! * **Candidates** ([`candidates`]): chunk ∈ {16, 32, 64, 128} (at most T rounded up to a power of two, at
//!   least 16), every scan form, `v_block` ∈ {whole V} ∪ up to four divisors of V in `[8, V)`, storage the
//!   default's plus the inputs' own 16-bit type where the backend stores it; threads and accumulation stay the
//!   backend's default.
//! * **Pruning** ([`plan`]): configurations the backend refuses ([`Backend::config`]), whose program exceeds its
//!   tile budget ([`Backend::program`]), or whose forward scratch exceeds the default scratch budget, a binding
//!   limit or 32-bit offsets (the test [`Backend::config_for`] applies) are dropped; the rest are ranked by the
//!   cost model ([`cost_program`]: `flops + 8 · bytes moved`) and the best [`TuneSpec::keep`] are measured, with
//!   the best of every (scan form, storage) pair and the default pick always among them.
//! * **Measuring**: random inputs at the shape, in the input dtype, uploaded once ([`Backend::upload`]); per
//!   candidate a first call (compiles; its output must agree with the default's), warm-up calls, then the median
//!   of [`TuneSpec::reps`] timed calls (more for fast candidates: up to [`SAMPLE_TIME`] or [`MAX_SAMPLES`]).
//!   Candidates are measured in the cost model's order until [`TuneSpec::budget`] is spent (the default pick is
//!   always measured, and the candidate under way gets [`MIN_REPS`] timed calls), so the winner's median is
//!   never above the measured default's.
//! * **Cache file** ([`TuneCache`]): `tune.json` in `$LOGLINEAR_CACHE`, else `$XDG_CACHE_HOME/loglinear`, else
//!   `$HOME/.cache/loglinear`. Writers take an exclusive lock on `tune.json.lock`, re-read, merge, write a
//!   temporary file and rename it over the cache; readers never lock. A corrupt or unreadable file is a warning
//!   and reads as empty (a writer moves it aside to `tune.json.corrupt`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use loglinear_ir::{Dims, InputKind, VariantIr};
use loglinear_kernel::cost::cost_program;
use loglinear_kernel::{DType, ScanForm, ScheduleConfig, Tensor};
use serde::{Deserialize, Serialize};

use crate::engine::{check_chunk_size, default_max_scratch, size_env, Backend, RunOptions};
use crate::error::RuntimeError;

/// Problem sizes `(B, T, H, K, V)`.
pub type Shape = (usize, usize, usize, usize, usize);

/// The environment variable naming the cache directory (it wins over the XDG cache directory).
pub const CACHE_ENV: &str = "LOGLINEAR_CACHE";

/// The cache file's name inside the cache directory.
pub const CACHE_FILE: &str = "tune.json";

/// The lock file writers hold while they update [`CACHE_FILE`].
pub const LOCK_FILE: &str = "tune.json.lock";

/// Version of the cache file's layout; a file with another version reads as empty.
pub const CACHE_FORMAT: u32 = 1;

/// Chunk sizes the search tries (those a problem's T can use).
pub const CHUNKS: [usize; 4] = [16, 32, 64, 128];

/// Most `v_block` values the search tries besides the whole of V.
pub const MAX_V_BLOCKS: usize = 4;

/// Weight of a byte moved against a flop in the cost model's ranking (a machine balance of about 8 flops per
/// byte, right within a factor of a few for CPUs and GPUs alike).
pub const BYTE_WEIGHT: f64 = 8.0;

/// Fewest timed calls of a measured candidate, even once the budget is spent (fewer only when
/// [`TuneSpec::reps`] asks for fewer).
pub const MIN_REPS: usize = 3;

/// Timed calls of a fast candidate continue past [`TuneSpec::reps`] until they add up to this much time …
pub const SAMPLE_TIME: Duration = Duration::from_millis(50);

/// … or number this many.
pub const MAX_SAMPLES: usize = 100;

/// The compiler version in every key: this crate's version and the GPU code contract's.
pub fn compiler_version() -> String {
    format!("{}+codegen{}", env!("CARGO_PKG_VERSION"), loglinear_kernel::device::CODEGEN_VERSION)
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The cache directory from the process's environment: `$LOGLINEAR_CACHE`, else `$XDG_CACHE_HOME/loglinear`,
/// else `$HOME/.cache/loglinear`; `None` when none is set. Read on every call (never memoised).
pub fn default_cache_dir() -> Option<PathBuf> {
    cache_dir_from(|name| std::env::var_os(name))
}

/// [`default_cache_dir`] with the environment given by `var` (empty values count as unset).
pub fn cache_dir_from(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let get = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    get(CACHE_ENV)
        .or_else(|| get("XDG_CACHE_HOME").map(|d| d.join("loglinear")))
        .or_else(|| get("HOME").map(|d| d.join(".cache").join("loglinear")))
}

/// Parses a duration for `argument`: a number with a unit `ms`, `s`, `m` or `h` (`500ms`, `60s`, `1.5m`); a bare
/// number is seconds. It must be positive.
///
/// # Errors
/// [`RuntimeError::InvalidArgument`] naming `argument`, the value and the expected form.
pub fn parse_duration(argument: &str, s: &str) -> Result<Duration, RuntimeError> {
    let bad = || RuntimeError::InvalidArgument {
        argument: argument.into(),
        value: format!("`{s}`"),
        expected: "a positive duration with a unit: ms, s, m or h (e.g. 500ms, 60s, 2m)".into(),
    };
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let x: f64 = num.parse().map_err(|_| bad())?;
    let secs = x * scale;
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The dtype that keys a run's inputs: that of the variant's (first) value input, else of its first input that
/// is bound; f32 when none is.
pub fn input_dtype(variant: &VariantIr, dtype_of: impl Fn(&str) -> Option<DType>) -> DType {
    variant
        .inputs
        .iter()
        .filter(|d| d.kind == InputKind::Value)
        .chain(variant.inputs.iter())
        .find_map(|d| dtype_of(&d.name))
        .unwrap_or(DType::F32)
}

/// What a tuned configuration is for. Its text form ([`fmt::Display`]) is the cache file's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TuneKey {
    /// The backend's name.
    pub backend: String,
    /// FNV-1a 64 of the backend's device identity ([`Target::device`](loglinear_kernel::Target::device)).
    pub device: u64,
    /// [`compiler_version`].
    pub compiler: String,
    /// The variant's name.
    pub variant: String,
    /// FNV-1a 64 of the variant's text form (its IR).
    pub variant_hash: u64,
    /// Key dimension.
    pub k: usize,
    /// Value dimension.
    pub v: usize,
    /// The inputs' dtype.
    pub dtype: DType,
    /// T rounded up to a power of two.
    pub t_bucket: usize,
    /// B·H rounded up to a power of two.
    pub bh_bucket: usize,
}

impl TuneKey {
    /// The key of `variant` on `backend` at `shape` with inputs in `dtype`.
    pub fn new(backend: &Backend<'_>, variant: &VariantIr, (b, t, h, k, v): Shape, dtype: DType) -> Self {
        let device = backend.target().map(|t| t.device()).unwrap_or_default();
        TuneKey {
            backend: backend.name().to_string(),
            device: fnv1a64(device.as_bytes()),
            compiler: compiler_version(),
            variant: variant.name.clone(),
            variant_hash: fnv1a64(variant.to_string().as_bytes()),
            k,
            v,
            dtype,
            t_bucket: bucket(t),
            bh_bucket: bucket(b.saturating_mul(h)),
        }
    }
}

/// `n` rounded up to a power of two (1 for 0).
pub fn bucket(n: usize) -> usize {
    n.max(1).checked_next_power_of_two().unwrap_or(usize::MAX)
}

impl fmt::Display for TuneKey {
    /// `backend=cranelift device=… compiler=0.1.0+codegen1 variant=loglinear_mamba2#… K=64 V=64 input=f32
    /// T<=1024 BH<=4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "backend={} device={:016x} compiler={} variant={}#{:016x} K={} V={} input={} T<={} BH<={}",
            self.backend,
            self.device,
            self.compiler,
            self.variant,
            self.variant_hash,
            self.k,
            self.v,
            self.dtype.ir_name(),
            self.t_bucket,
            self.bh_bucket
        )
    }
}

/// One tuned result, as the cache file holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuneEntry {
    /// The winning configuration, in [`ScheduleConfig`]'s text form.
    pub config: String,
    /// Its median time, seconds.
    pub time_s: f64,
    /// The default pick it was measured against, in text form.
    pub default_config: String,
    /// The default pick's median time, seconds.
    pub default_time_s: f64,
    /// The shape it was measured at, `[B, T, H, K, V]`.
    pub shape: [usize; 5],
    /// The device identity in full.
    #[serde(default)]
    pub device: String,
    /// Seconds since the Unix epoch when it was measured.
    pub timestamp: u64,
}

impl TuneEntry {
    /// The winning configuration, parsed.
    ///
    /// # Errors
    /// Its text does not parse (a file written by another version or edited by hand).
    pub fn schedule(&self) -> Result<ScheduleConfig, loglinear_kernel::ConfigError> {
        self.config.parse()
    }
}

/// The cache file's contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TuneFile {
    /// [`CACHE_FORMAT`].
    pub format: u32,
    /// Entries by the text form of their [`TuneKey`].
    pub entries: BTreeMap<String, TuneEntry>,
}

enum Read {
    Absent,
    Good(TuneFile),
    Bad(String),
}

/// A tuning cache file ([`CACHE_FILE`] in a directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TuneCache {
    dir: PathBuf,
}

impl TuneCache {
    /// The cache in `dir` (created when first written).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        TuneCache { dir: dir.into() }
    }

    /// The cache in [`default_cache_dir`], if any.
    pub fn from_env() -> Option<Self> {
        default_cache_dir().map(Self::at)
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(CACHE_FILE)
    }

    fn read(&self) -> Read {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Absent,
            Err(e) => return Read::Bad(format!("cannot read it: {e}")),
        };
        match serde_json::from_slice::<TuneFile>(&text) {
            Ok(f) if f.format == CACHE_FORMAT => Read::Good(f),
            Ok(f) => Read::Bad(format!("format {} (this build reads format {CACHE_FORMAT})", f.format)),
            Err(e) => Read::Bad(format!("not a tuning cache: {e}")),
        }
    }

    /// Every entry. A missing file is empty; a corrupt or unreadable one is a warning and reads as empty.
    pub fn load(&self) -> BTreeMap<String, TuneEntry> {
        match self.read() {
            Read::Absent => BTreeMap::new(),
            Read::Good(f) => f.entries,
            Read::Bad(why) => {
                tracing::warn!(path = %self.path().display(), "ignoring the tuning cache: {why}");
                BTreeMap::new()
            }
        }
    }

    /// The entry for `key`, read from the file now.
    pub fn get(&self, key: &TuneKey) -> Option<TuneEntry> {
        self.load().remove(&key.to_string())
    }

    /// Records `entry` under `key`, keeping every other entry, including those other processes wrote meanwhile:
    /// under an exclusive lock on [`LOCK_FILE`], the file is re-read, merged, written to a temporary file and
    /// renamed over the cache. A corrupt file is moved aside to `tune.json.corrupt` (with a warning).
    ///
    /// # Errors
    /// [`RuntimeError::Write`] naming the path when the directory, the lock or the file cannot be written.
    pub fn insert(&self, key: &TuneKey, entry: TuneEntry) -> Result<(), RuntimeError> {
        self.update(|entries| {
            entries.insert(key.to_string(), entry);
        })
    }

    /// Applies `f` to the entries under the lock and writes the result (see [`TuneCache::insert`]).
    ///
    /// # Errors
    /// As [`TuneCache::insert`].
    pub fn update(&self, f: impl FnOnce(&mut BTreeMap<String, TuneEntry>)) -> Result<(), RuntimeError> {
        let path = self.path();
        let err = |p: &Path, e: std::io::Error| RuntimeError::Write { path: p.to_path_buf(), reason: e.to_string() };
        std::fs::create_dir_all(&self.dir).map_err(|e| err(&self.dir, e))?;
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| err(&lock_path, e))?;
        // Released when `lock` is closed, at the end of this function (also on any error).
        lock.lock().map_err(|e| err(&lock_path, e))?;
        let mut file = match self.read() {
            Read::Absent => TuneFile::default(),
            Read::Good(f) => f,
            Read::Bad(why) if !path.is_file() => {
                return Err(RuntimeError::Write { path, reason: format!("{why}; expected a regular file") })
            }
            Read::Bad(why) => {
                let aside = self.dir.join(format!("{CACHE_FILE}.corrupt"));
                tracing::warn!(
                    path = %path.display(),
                    "replacing the tuning cache: {why}; the old file is kept as {}",
                    aside.display()
                );
                let _ = std::fs::rename(&path, &aside);
                TuneFile::default()
            }
        };
        file.format = CACHE_FORMAT;
        f(&mut file.entries);
        let mut text = serde_json::to_string_pretty(&file).map_err(|e| RuntimeError::Internal(e.to_string()))?;
        text.push('\n');
        let mut tmp = tempfile::Builder::new()
            .prefix(".tune.json.")
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(|e| err(&self.dir, e))?;
        tmp.write_all(text.as_bytes()).and_then(|()| tmp.as_file().sync_all()).map_err(|e| err(tmp.path(), e))?;
        tmp.persist(&path).map_err(|e| err(&path, e.error))?;
        drop(lock);
        Ok(())
    }
}

/// What identifies one version of the cache file on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp { len: m.len(), modified: m.modified().ok(), inode })
}

struct Memo {
    file: PathBuf,
    stamp: Option<Stamp>,
    entries: Arc<BTreeMap<String, TuneEntry>>,
}

/// A runtime's tuning cache: where it is (an explicit directory, else [`default_cache_dir`] at each lookup) and
/// an in-memory copy of the file, re-read only when the file's size, modification time or inode changed.
#[derive(Default)]
pub(crate) struct TuneStore {
    dir: Option<PathBuf>,
    memo: Mutex<Option<Memo>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TuneStore {
    pub(crate) fn set_dir(&mut self, dir: Option<PathBuf>) {
        self.dir = dir;
        self.invalidate();
    }

    pub(crate) fn cache(&self) -> Option<TuneCache> {
        self.dir.clone().or_else(default_cache_dir).map(TuneCache::at)
    }

    pub(crate) fn invalidate(&self) {
        *lock(&self.memo) = None;
    }

    /// The entry for `key` from the in-memory copy (refreshed when the file changed).
    pub(crate) fn lookup(&self, key: &TuneKey) -> Option<TuneEntry> {
        self.lookup_with(|| key.clone())
    }

    /// [`TuneStore::lookup`] with the key made only when the cache has an entry at all (runs pay for no key
    /// when nothing is tuned).
    pub(crate) fn lookup_with(&self, key: impl FnOnce() -> TuneKey) -> Option<TuneEntry> {
        let cache = self.cache()?;
        let file = cache.path();
        let now = stamp(&file);
        let mut memo = lock(&self.memo);
        let fresh = matches!(&*memo, Some(m) if m.file == file && m.stamp == now);
        if !fresh {
            let entries = if now.is_some() { cache.load() } else { BTreeMap::new() };
            *memo = Some(Memo { file, stamp: now, entries: Arc::new(entries) });
        }
        let entries = &memo.as_ref()?.entries;
        let shipped = shipped();
        if entries.is_empty() && shipped.is_empty() {
            return None;
        }
        let key = key().to_string();
        // The user's own tunings first, then the tables shipped with loglinear.
        entries.get(&key).or_else(|| shipped.get(&key)).cloned()
    }
}

/// The pretuned tables shipped in the repository (`crates/loglinear-runtime/tuned/*.json`, the tuning cache's own
/// format, made by `loglinear tune` on the machines they name): consulted after the user's cache. Their keys hold
/// the device identity and the compiler version, so an entry serves only the CPU type or GPU it was measured on,
/// and only this version of the code generators.
pub const SHIPPED_TABLES: [(&str, &str); 2] = [
    ("x86-64 with FMA and AVX2 (cranelift, mlir-cpu)", include_str!("../tuned/x86_64-avx2.json")),
    ("NVIDIA H200", include_str!("../tuned/h200.json")),
];

/// Every entry of [`SHIPPED_TABLES`] (parsed once; a table that does not parse is a warning and left out).
pub fn shipped() -> &'static BTreeMap<String, TuneEntry> {
    static SHIPPED: std::sync::OnceLock<BTreeMap<String, TuneEntry>> = std::sync::OnceLock::new();
    SHIPPED.get_or_init(|| {
        let mut all = BTreeMap::new();
        for (name, text) in SHIPPED_TABLES {
            match serde_json::from_str::<TuneFile>(text) {
                Ok(f) if f.format == CACHE_FORMAT => all.extend(f.entries),
                Ok(f) => tracing::warn!(table = name, format = f.format, "ignoring a pretuned table of another format"),
                Err(e) => tracing::warn!(table = name, "ignoring a pretuned table: {e}"),
            }
        }
        all
    })
}

/// What [`tune`] searches and how long.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneSpec {
    /// Problem sizes of the measured runs.
    pub shape: Shape,
    /// The dtype the inputs are held in (f32, f16, bf16; f64 on f64 backends).
    pub input_dtype: DType,
    /// Time for the search, compiles included; the default pick is measured even past it.
    pub budget: Duration,
    /// How many of the cost model's best candidates are measured (besides the default pick and the best of
    /// each scan form and storage type).
    pub keep: usize,
    /// Timed calls per candidate (the median is kept); fast candidates get more, up to [`SAMPLE_TIME`] of
    /// calls or [`MAX_SAMPLES`] calls, and once the budget is spent a candidate stops after [`MIN_REPS`].
    pub reps: usize,
    /// Untimed calls after the first call of each candidate.
    pub warmup: usize,
    /// Seed of the random inputs.
    pub seed: u64,
    /// Search even when the cache has an entry for the key (the new winner replaces it).
    pub force: bool,
}

impl TuneSpec {
    /// f32 inputs, a 60 s budget, the best 12 candidates, 5 timed calls after 1 warm-up call, seed 0.
    pub fn new(shape: Shape) -> Self {
        TuneSpec {
            shape,
            input_dtype: DType::F32,
            budget: Duration::from_secs(60),
            keep: 12,
            reps: 5,
            warmup: 1,
            seed: 0,
            force: false,
        }
    }
}

/// A candidate the cost model kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The configuration.
    pub config: ScheduleConfig,
    /// The cost model's score (`flops + BYTE_WEIGHT · bytes moved` of the forward program at the shape).
    pub score: f64,
}

/// The candidates to measure and what happened to the others.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The default pick first, then the kept candidates in the cost model's order.
    pub measure: Vec<Candidate>,
    /// Configurations generated ([`candidates`], the default pick included).
    pub generated: usize,
    /// Refused by the backend or over a budget or limit.
    pub pruned: usize,
    /// Valid, but ranked out by the cost model.
    pub ranked_out: usize,
}

/// The configurations the search considers for `variant` on `backend` at `dims` with inputs in `input`, around
/// `base` (the backend's default): see the [module docs](self). Not yet checked against the backend.
pub fn candidates(backend: &Backend<'_>, dims: &Dims, input: DType, base: &ScheduleConfig) -> Vec<ScheduleConfig> {
    let top = bucket(dims.t).max(CHUNKS[0]);
    let chunks: Vec<usize> = CHUNKS.iter().copied().filter(|c| *c <= top && check_chunk_size(*c).is_ok()).collect();
    let mut v_blocks: Vec<Option<usize>> = vec![None];
    v_blocks.extend(
        (loglinear_schedule::MIN_V_BLOCK..dims.v)
            .rev()
            .filter(|d| dims.v.is_multiple_of(*d))
            .take(MAX_V_BLOCKS)
            .map(Some),
    );
    let caps = backend.capabilities();
    let mut storages = vec![base.storage];
    if matches!(input, DType::F16 | DType::BF16)
        && input != base.storage
        && base.accum == DType::F32
        && caps.storage.contains(&input)
    {
        storages.push(input);
    }
    let mut out = Vec::new();
    for &storage in &storages {
        for form in ScanForm::ALL {
            for &chunk in &chunks {
                for &v_block in &v_blocks {
                    out.push(ScheduleConfig { chunk, form, storage, v_block, ..*base });
                }
            }
        }
    }
    out
}

/// Generates the candidates, prunes them with the backend's checks (scratch within `scratch_budget` bytes) and
/// ranks the survivors with the cost model (see the [module docs](self)). `default` (the runtime's pick) is always
/// measured first. `keep = usize::MAX` with `scratch_budget = u128::MAX` gives every candidate the backend can
/// compile: a superset of what a tune on any machine would measure (what `emit --tune-candidates` writes).
pub fn plan(
    backend: &Backend<'_>,
    variant: &VariantIr,
    dims: &Dims,
    input: DType,
    default: &ScheduleConfig,
    keep: usize,
    scratch_budget: u128,
) -> Plan {
    let base = backend.config(variant, &RunOptions::default()).unwrap_or(*default);
    let mut all = candidates(backend, dims, input, &base);
    all.retain(|c| c != default);
    let generated = all.len() + 1;
    let budget = scratch_budget;
    let score = |c: &ScheduleConfig| -> Option<f64> {
        backend.config(variant, &RunOptions::with_config(*c)).ok()?;
        let p = backend.program(variant, dims.k, dims.v, c, false).ok()?;
        if !backend.program_fits(&p, dims, budget) {
            return None;
        }
        let cost = cost_program(&p, &size_env(dims, c.chunk, p.hierarchical));
        Some(cost.flops + BYTE_WEIGHT * cost.bytes_moved)
    };
    let mut valid: Vec<Candidate> =
        all.iter().filter_map(|c| score(c).map(|s| Candidate { config: *c, score: s })).collect();
    let pruned = all.len() - valid.len();
    valid.sort_by(|a, b| a.score.total_cmp(&b.score).then(a.config.cmp(&b.config)));
    // The best of every (form, storage) pair (the cost model sees no parallelism, and a GPU holding every buffer
    // in f32 gains nothing from 16-bit storage), then the best overall up to `keep`.
    let mut chosen = vec![false; valid.len()];
    let mut groups = Vec::new();
    for (i, c) in valid.iter().enumerate() {
        let g = (c.config.form, c.config.storage);
        if !groups.contains(&g) {
            groups.push(g);
            chosen[i] = true;
        }
    }
    let mut n = chosen.iter().filter(|x| **x).count();
    for x in chosen.iter_mut() {
        if n >= keep.max(groups.len()) {
            break;
        }
        if !*x {
            *x = true;
            n += 1;
        }
    }
    let default_score = score(default).unwrap_or(f64::NAN);
    let mut measure = vec![Candidate { config: *default, score: default_score }];
    measure.extend(valid.iter().zip(&chosen).filter(|(_, k)| **k).map(|(c, _)| c.clone()));
    let ranked_out = valid.len() + 1 - measure.len();
    Plan { measure, generated, pruned, ranked_out }
}

/// One measured candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneRow {
    /// The configuration.
    pub config: ScheduleConfig,
    /// Whether it is the runtime's default pick.
    pub is_default: bool,
    /// The cost model's score.
    pub score: f64,
    /// The first call (compile and run).
    pub first_call: Duration,
    /// The timed calls.
    pub samples: Vec<Duration>,
    /// Why it has no time (it failed to compile or run, or disagreed with the default's output).
    pub failed: Option<String>,
}

impl TuneRow {
    /// Median of the samples (mean of the middle two for an even count); `None` when it failed or has none.
    pub fn median(&self) -> Option<Duration> {
        if self.failed.is_some() {
            return None;
        }
        median(&self.samples)
    }
}

/// The result of [`tune`].
#[derive(Clone, Debug)]
pub struct TuneReport {
    /// The variant.
    pub variant: String,
    /// The backend.
    pub backend: String,
    /// The shape asked for.
    pub shape: Shape,
    /// The inputs' dtype.
    pub input_dtype: DType,
    /// The cache key.
    pub key: TuneKey,
    /// The search budget.
    pub budget: Duration,
    /// Served from the cache: nothing searched, measured or compiled.
    pub cached: bool,
    /// The shape the winner was measured at (the asked shape unless `cached`).
    pub tuned_shape: Shape,
    /// The winner.
    pub winner: ScheduleConfig,
    /// The winner's median time.
    pub winner_time: Duration,
    /// The runtime's default pick.
    pub default: ScheduleConfig,
    /// The default pick's median time.
    pub default_time: Duration,
    /// Every measured candidate, the default first (empty when `cached`).
    pub rows: Vec<TuneRow>,
    /// Configurations generated, pruned and ranked out (see [`Plan`]); zero when `cached`.
    pub generated: usize,
    /// See [`Plan::pruned`].
    pub pruned: usize,
    /// See [`Plan::ranked_out`].
    pub ranked_out: usize,
    /// Kept by the cost model but not measured: the budget ran out.
    pub unmeasured: usize,
    /// Wall time of the whole call.
    pub elapsed: Duration,
    /// The cache file read and written.
    pub cache_file: Option<PathBuf>,
    /// Why the winner could not be saved (no cache directory, an unwritable one); `None` when saved or cached.
    pub save_error: Option<String>,
}

impl TuneReport {
    /// The default's median over the winner's (≥ 1).
    pub fn speedup(&self) -> f64 {
        let w = self.winner_time.as_secs_f64();
        if w > 0.0 {
            self.default_time.as_secs_f64() / w
        } else {
            1.0
        }
    }
}

/// Progress of [`tune`]: called before each candidate is measured.
#[derive(Clone, Debug)]
pub struct TuneStep<'a> {
    /// Index of the candidate (0: the default pick).
    pub index: usize,
    /// Candidates to measure.
    pub total: usize,
    /// The candidate.
    pub config: &'a ScheduleConfig,
}

fn relative_diff(x: &[f64], r: &[f64]) -> f64 {
    if x.len() != r.len() {
        return f64::INFINITY;
    }
    let d: f64 = x.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
    let n: f64 = r.iter().map(|b| b * b).sum::<f64>().sqrt();
    if d.is_nan() {
        f64::INFINITY
    } else if n == 0.0 {
        d
    } else {
        d / n
    }
}

fn check_shape((b, t, h, k, v): Shape) -> Result<(), RuntimeError> {
    if [b, t, h, k, v].contains(&0) {
        return Err(RuntimeError::InvalidArgument {
            argument: "--shape".into(),
            value: format!("{b},{t},{h},{k},{v}"),
            expected: "five positive integers B,T,H,K,V".into(),
        });
    }
    Ok(())
}

/// Searches the schedule configurations of `variant` on `backend` for `spec`'s shape and input dtype and records
/// the winner in the runtime's tuning cache; or, when the cache already has an entry for the key (same
/// bucket) and `spec.force` is off, returns it without searching or compiling anything. `on_step` is called
/// before each candidate is measured (for a progress bar).
///
/// # Errors
/// [`RuntimeError::InvalidArgument`] for a zero size, zero reps or a non-float input dtype;
/// [`RuntimeError::Unsupported`] for the oracle backend or one unavailable here; the backend's error when its
/// default pick cannot run the shape. A failing candidate is a row of the report, and a cache that cannot be
/// written is [`TuneReport::save_error`].
pub fn tune(
    backend: &Backend<'_>,
    variant: &VariantIr,
    spec: &TuneSpec,
    on_step: &mut dyn FnMut(TuneStep<'_>),
) -> Result<TuneReport, RuntimeError> {
    let start = Instant::now();
    check_shape(spec.shape)?;
    if spec.reps == 0 {
        return Err(RuntimeError::InvalidArgument {
            argument: "--reps".into(),
            value: "0".into(),
            expected: "at least 1 timed call".into(),
        });
    }
    if !spec.input_dtype.is_float() {
        return Err(RuntimeError::InvalidArgument {
            argument: "--input-dtype".into(),
            value: spec.input_dtype.ir_name().into(),
            expected: "f32, f16, bf16 or f64".into(),
        });
    }
    if backend.target().is_none() {
        return Err(RuntimeError::Unsupported {
            backend: backend.name().into(),
            what: "tuning (it is the f64 oracle: it has no schedule to tune)".into(),
        });
    }
    backend.availability().map_err(|why| RuntimeError::Unsupported {
        backend: backend.name().into(),
        what: format!("this machine: {why}"),
    })?;
    let key = TuneKey::new(backend, variant, spec.shape, spec.input_dtype);
    let store = &backend.runtime.tuning;
    let cache = store.cache();
    let cache_file = cache.as_ref().map(TuneCache::path);
    let mut report = TuneReport {
        variant: variant.name.clone(),
        backend: backend.name().into(),
        shape: spec.shape,
        input_dtype: spec.input_dtype,
        key: key.clone(),
        budget: spec.budget,
        cached: false,
        tuned_shape: spec.shape,
        winner: ScheduleConfig::default(),
        winner_time: Duration::ZERO,
        default: ScheduleConfig::default(),
        default_time: Duration::ZERO,
        rows: Vec::new(),
        generated: 0,
        pruned: 0,
        ranked_out: 0,
        unmeasured: 0,
        elapsed: Duration::ZERO,
        cache_file,
        save_error: None,
    };
    if !spec.force {
        if let Some(entry) = store.lookup(&key) {
            match (entry.schedule(), entry.default_config.parse::<ScheduleConfig>()) {
                (Ok(winner), Ok(default)) => {
                    let [b, t, h, k, v] = entry.shape;
                    report.cached = true;
                    report.tuned_shape = (b, t, h, k, v);
                    report.winner = winner;
                    report.winner_time = Duration::from_secs_f64(entry.time_s.max(0.0));
                    report.default = default;
                    report.default_time = Duration::from_secs_f64(entry.default_time_s.max(0.0));
                    report.elapsed = start.elapsed();
                    return Ok(report);
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(%key, "ignoring a tuning cache entry that does not parse: {e}");
                }
            }
        }
    }

    // Random inputs (each f64 tensor dropped once converted), uploaded once per dtype: in the input dtype, and
    // for a candidate whose storage differs, in its storage type (a GPU backend reads resident inputs in the
    // program's storage type).
    let upload = |dtype: DType| -> Result<crate::engine::ResidentInputs, RuntimeError> {
        let mut x = loglinear_ir::random::random_inputs(variant, spec.shape, 0, spec.seed);
        let mut typed: BTreeMap<String, Tensor> = BTreeMap::new();
        let names: Vec<String> = x.keys().filter(|n| variant.input_by_name(n).is_some()).cloned().collect();
        for n in names {
            if let Some(t) = x.remove(&n) {
                typed.insert(n, Tensor::from_f64(dtype, t.shape.clone(), &t.data));
            }
        }
        drop(x);
        let views: loglinear_kernel::Bindings<'_> = typed.iter().map(|(n, t)| (n.clone(), t.view())).collect();
        backend.upload(variant, &views)
    };
    let mut uploads: BTreeMap<&'static str, crate::engine::ResidentInputs> = BTreeMap::new();
    let first = upload(spec.input_dtype)?;
    let dims = first.dims();
    uploads.insert(spec.input_dtype.ir_name(), first);
    let no_tune = RunOptions { no_tune: true, ..RunOptions::default() };
    let default = backend.config_for(variant, &dims, &no_tune)?;
    let plan = plan(backend, variant, &dims, spec.input_dtype, &default, spec.keep, u128::from(default_max_scratch()));
    report.default = default;
    report.generated = plan.generated;
    report.pruned = plan.pruned;
    report.ranked_out = plan.ranked_out;
    let total = plan.measure.len();
    let mut reference: Option<Vec<f64>> = None;
    for (i, cand) in plan.measure.iter().enumerate() {
        let is_default = i == 0;
        if !is_default && start.elapsed() >= spec.budget {
            report.unmeasured = total - i;
            break;
        }
        on_step(TuneStep { index: i, total, config: &cand.config });
        let opts = RunOptions::with_config(cand.config);
        let mut row = TuneRow {
            config: cand.config,
            is_default,
            score: cand.score,
            first_call: Duration::ZERO,
            samples: Vec::new(),
            failed: None,
        };
        let dtype = if backend.target().is_some() && cand.config.storage != spec.input_dtype {
            cand.config.storage
        } else {
            spec.input_dtype
        };
        if !uploads.contains_key(dtype.ir_name()) {
            match upload(dtype) {
                Ok(r) => {
                    uploads.insert(dtype.ir_name(), r);
                }
                Err(e) if is_default => return Err(e),
                Err(e) => {
                    row.failed = Some(e.to_string());
                    report.rows.push(row);
                    continue;
                }
            }
        }
        let resident = &uploads[dtype.ir_name()];
        let run = || backend.run_resident(variant, resident, &opts).map(|r| r.0);
        let measured = (|| -> Result<(), RuntimeError> {
            let t0 = Instant::now();
            let o = run()?;
            row.first_call = t0.elapsed();
            let o = backend.download(&o)?.to_f64();
            match &reference {
                None => reference = Some(o),
                Some(r) => {
                    let tol = backend.tolerance(variant, &cand.config).max(backend.tolerance(variant, &default));
                    let limit = (100.0 * tol).min(0.05);
                    let d = relative_diff(&o, r);
                    if d.is_nan() || d > limit {
                        return Err(RuntimeError::Internal(format!(
                            "output differs from the default's by {d:.1e} (relative; limit {limit:.0e})"
                        )));
                    }
                }
            }
            for _ in 0..spec.warmup {
                std::hint::black_box(run()?);
            }
            let mut sampled = Duration::ZERO;
            loop {
                let n = row.samples.len();
                if n >= spec.reps && (n >= MAX_SAMPLES || sampled >= SAMPLE_TIME) {
                    break;
                }
                if n >= spec.reps.min(MIN_REPS) && start.elapsed() >= spec.budget {
                    break;
                }
                let t0 = Instant::now();
                let o = run()?;
                let dt = t0.elapsed();
                row.samples.push(dt);
                sampled += dt;
                std::hint::black_box(o);
            }
            Ok(())
        })();
        if let Err(e) = measured {
            if is_default {
                return Err(e);
            }
            tracing::info!(config = %cand.config, "candidate failed: {e}");
            row.failed = Some(e.to_string());
            row.samples.clear();
        }
        report.rows.push(row);
    }
    let default_time = report.rows[0].median().unwrap_or_default();
    let best = report
        .rows
        .iter()
        .filter_map(|r| r.median().map(|m| (m, r)))
        .min_by(|a, b| a.0.cmp(&b.0).then((!a.1.is_default).cmp(&!b.1.is_default)))
        .map(|(m, r)| (m, r.config))
        .unwrap_or((default_time, default));
    report.default_time = default_time;
    (report.winner_time, report.winner) = best;
    report.elapsed = start.elapsed();

    let entry = TuneEntry {
        config: report.winner.to_string(),
        time_s: report.winner_time.as_secs_f64(),
        default_config: default.to_string(),
        default_time_s: default_time.as_secs_f64(),
        shape: [spec.shape.0, spec.shape.1, spec.shape.2, spec.shape.3, spec.shape.4],
        device: backend.target().map(|t| t.device()).unwrap_or_default(),
        timestamp: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    report.save_error = match &cache {
        None => Some(format!(
            "no cache directory: set {CACHE_ENV} (or XDG_CACHE_HOME or HOME) to a directory to keep tuned configurations"
        )),
        Some(c) => c.insert(&key, entry).err().map(|e| match e {
            RuntimeError::Write { path, reason } => format!("{}: {reason}", path.display()),
            other => other.to_string(),
        }),
    };
    store.invalidate();
    Ok(report)
}

/// Median of `samples` (the mean of the middle two for an even count); `None` for no samples.
pub fn median(samples: &[Duration]) -> Option<Duration> {
    let mut s = samples.to_vec();
    s.sort();
    let n = s.len();
    match n {
        0 => None,
        n if n % 2 == 1 => Some(s[n / 2]),
        n => Some((s[n / 2 - 1] + s[n / 2]) / 2),
    }
}

/// A text table (`tune`'s and `bench`'s): every column as wide as its widest cell, two spaces between columns, the
/// first two columns left-aligned and the others right-aligned, except a cell that starts with `note` (a row's
/// "failed: …" or "skipped: …"), which is left-aligned, spans the cells after it and widens no column.
pub fn text_table<const N: usize>(header: [&str; N], rows: &[[String; N]], note: &str) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for r in rows {
        for (i, s) in r.iter().enumerate() {
            if !s.starts_with(note) {
                widths[i] = widths[i].max(s.chars().count());
            }
        }
    }
    let line = |cols: &[String]| {
        let mut l = String::new();
        for (i, s) in cols.iter().enumerate() {
            let pad = " ".repeat(widths[i].saturating_sub(s.chars().count()));
            if i < 2 || s.starts_with(note) {
                l.push_str(s);
                l.push_str(&pad);
            } else {
                l.push_str(&pad);
                l.push_str(s);
            }
            l.push_str("  ");
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(String::from));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// Seconds with a unit that keeps 3–4 significant digits.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// The report as text: what was searched, a table of the measured candidates (fastest first; `*` marks the
/// winner), and the winner against the default pick.
pub fn format_report(r: &TuneReport) -> String {
    let (b, t, h, k, v) = r.shape;
    let mut out = format!(
        "tune `{}` on `{}`: B={b} T={t} H={h} K={k} V={v}, {} inputs\nkey: {}\n",
        r.variant,
        r.backend,
        r.input_dtype.ir_name(),
        r.key
    );
    if r.cached {
        let (b, t, h, k, v) = r.tuned_shape;
        out.push_str(&format!(
            "cached (tuned at B={b} T={t} H={h} K={k} V={v}; no search, nothing compiled; --force searches again)\n\
             winner:  {}  {}\ndefault: {}  {}\nwinner is {:.2}× the default's speed\n",
            r.winner,
            fmt_duration(r.winner_time),
            r.default,
            fmt_duration(r.default_time),
            r.speedup()
        ));
        if let Some(p) = &r.cache_file {
            out.push_str(&format!("cache: {}\n", p.display()));
        }
        return out;
    }
    out.push_str(&format!(
        "{} configurations: {} pruned (refused by the backend or over a limit), {} ranked out by the cost model, \
         {} measured, {} not measured (out of budget); {} of the {} budget used\n\n",
        r.generated,
        r.pruned,
        r.ranked_out,
        r.rows.len(),
        r.unmeasured,
        fmt_duration(r.elapsed),
        fmt_duration(r.budget)
    ));
    let mut rows: Vec<&TuneRow> = r.rows.iter().collect();
    rows.sort_by_key(|row| (row.median().is_none(), row.median()));
    let header = ["", "config", "median", "vs default", "first call"];
    let mut cells: Vec<[String; 5]> = Vec::new();
    for row in rows {
        let mark = if row.median().is_some() && row.config == r.winner { "*" } else { "" };
        let name = if row.is_default { format!("{} (default)", row.config) } else { row.config.to_string() };
        match (row.median(), &row.failed) {
            (Some(m), _) => {
                let ratio = r.default_time.as_secs_f64() / m.as_secs_f64().max(1e-12);
                cells.push([mark.into(), name, fmt_duration(m), format!("{ratio:.2}×"), fmt_duration(row.first_call)]);
            }
            (None, why) => cells.push([
                String::new(),
                name,
                format!("failed: {}", why.as_deref().unwrap_or("no sample")),
                String::new(),
                String::new(),
            ]),
        }
    }
    out.push_str(&text_table(header, &cells, "failed"));
    out.push_str(&format!(
        "\nwinner:  {}  {} ({:.2}× the default's speed)\ndefault: {}  {}\n",
        r.winner,
        fmt_duration(r.winner_time),
        r.speedup(),
        r.default,
        fmt_duration(r.default_time)
    ));
    match (&r.save_error, &r.cache_file) {
        (None, Some(p)) => out.push_str(&format!("saved to {}\n", p.display())),
        (Some(why), _) => out.push_str(&format!("not saved: {why}\n")),
        (None, None) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        let d = |s| parse_duration("--budget", s).unwrap();
        assert_eq!(d("60s"), Duration::from_secs(60));
        assert_eq!(d("2m"), Duration::from_secs(120));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("10"), Duration::from_secs(10));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        for bad in ["", "s", "0s", "-1s", "5x", "1.2.3s", "ms", "1e3s", "inf"] {
            let e = parse_duration("--budget", bad).unwrap_err().to_string();
            assert!(e.contains("--budget") && e.contains("duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn cache_dir_resolution() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| OsString::from(v))
        };
        assert_eq!(
            cache_dir_from(env(&[("LOGLINEAR_CACHE", "/a"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/a"))
        );
        assert_eq!(
            cache_dir_from(env(&[("LOGLINEAR_CACHE", ""), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/loglinear"))
        );
        assert_eq!(cache_dir_from(env(&[("HOME", "/h")])), Some(PathBuf::from("/h/.cache/loglinear")));
        assert_eq!(cache_dir_from(env(&[])), None);
    }

    #[test]
    fn buckets_and_hash() {
        assert_eq!([0, 1, 2, 3, 64, 65, 1000].map(bucket), [1, 1, 2, 4, 64, 128, 1024]);
        // FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}

#[cfg(test)]
mod shipped_tests {
    use super::*;

    #[test]
    fn the_shipped_tables_parse_and_hold_valid_configurations() {
        for (name, text) in SHIPPED_TABLES {
            let f: TuneFile = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(f.format, CACHE_FORMAT, "{name}");
            for (key, e) in &f.entries {
                e.schedule().unwrap_or_else(|err| panic!("{name}: {key}: {err}"));
                assert!(key.contains(&format!("compiler={}", compiler_version())), "{name}: {key} is stale");
            }
        }
        assert_eq!(
            shipped().len(),
            SHIPPED_TABLES
                .iter()
                .map(|(_, t)| serde_json::from_str::<TuneFile>(t).unwrap().entries.len())
                .sum::<usize>()
        );
    }
}
