//! The autotuner and its cache (`loglinear_runtime::tune`): a second tune in the same bucket is served from the
//! cache without compiling, the winner is never slower than the measured default, runs pick tuned
//! configurations up (and skip them when asked), the cache file survives concurrent writers, and a corrupt file
//! is a warning, never a failure.
//!
//! Every test keeps its cache in its own temporary directory (`Runtime::with_tune_cache_dir` / `TuneCache::at`):
//! nothing reads or writes the user's cache or the process environment.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loglinear_ir::builtins;
use loglinear_ir::random::random_inputs;
use loglinear_runtime::tune::{self, TuneCache, TuneEntry, TuneKey, TuneSpec, CACHE_FILE};
use loglinear_runtime::{views, DType, RunOptions, Runtime, ScanForm, ScheduleConfig, Tensor};

const BACKEND: &str = "interpreter-f32";

fn runtime(dir: &tempfile::TempDir) -> Runtime {
    Runtime::with_defaults().with_tune_cache_dir(dir.path())
}

fn spec(shape: tune::Shape) -> TuneSpec {
    TuneSpec { budget: Duration::from_secs(2), reps: 3, ..TuneSpec::new(shape) }
}

fn stored(shape: tune::Shape, dtype: DType) -> BTreeMap<String, Tensor> {
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    random_inputs(&v, shape, 0, 1)
        .into_iter()
        .map(|(n, t)| (n, Tensor::from_f64(dtype, t.shape.clone(), &t.data)))
        .collect()
}

fn entry(config: &str) -> TuneEntry {
    TuneEntry {
        config: config.into(),
        time_s: 1e-3,
        default_config: ScheduleConfig::default().to_string(),
        default_time_s: 2e-3,
        shape: [1, 64, 2, 8, 4],
        device: String::new(),
        timestamp: 0,
    }
}

#[test]
fn a_second_tune_in_the_bucket_is_served_from_the_cache_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let r = runtime(&dir);
    let b = r.get(BACKEND).unwrap();
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let mut steps = 0;
    let first = tune::tune(&b, &v, &spec((1, 64, 2, 8, 4)), &mut |s| {
        assert!(s.index < s.total);
        steps += 1;
    })
    .unwrap();
    assert!(!first.cached && first.save_error.is_none(), "{first:?}");
    assert_eq!(steps, first.rows.len());
    assert!(first.rows[0].is_default && first.rows[0].config == first.default);
    assert!(first.generated >= first.rows.len() && first.pruned + first.ranked_out < first.generated);
    // The default is always measured, so the winner is never slower than it.
    assert!(first.winner_time <= first.default_time, "{first:?}");
    assert!(first.speedup() >= 1.0);
    let text = tune::format_report(&first);
    for needle in ["(default)", "vs default", "winner:", "saved to", &first.winner.to_string()] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    // The cache file holds the winner under the key.
    let cache = r.tune_cache().unwrap();
    assert_eq!(cache.path(), dir.path().join(CACHE_FILE));
    let saved = cache.get(&first.key).unwrap();
    assert_eq!(saved.schedule().unwrap(), first.winner);
    assert_eq!(saved.default_config.parse::<ScheduleConfig>().unwrap(), first.default);
    assert!(saved.time_s <= saved.default_time_s);

    // T = 40 and B·H = 2 fall in the same bucket (T ≤ 64, B·H ≤ 2): no search, no compile.
    let compiles = r.compile_count();
    let again = tune::tune(&b, &v, &spec((2, 40, 1, 8, 4)), &mut |_| panic!("no candidate is measured")).unwrap();
    assert!(again.cached && again.rows.is_empty(), "{again:?}");
    assert_eq!(again.key, first.key);
    assert_eq!((again.winner, again.default), (first.winner, first.default));
    assert_eq!(again.tuned_shape, (1, 64, 2, 8, 4));
    assert_eq!(r.compile_count(), compiles, "a cached tune compiles nothing");
    assert!(tune::format_report(&again).contains("cached"));
    // So does a fresh runtime (another process) on the same cache directory.
    let r2 = runtime(&dir);
    let again = tune::tune(&r2.get(BACKEND).unwrap(), &v, &spec((1, 33, 2, 8, 4)), &mut |_| {}).unwrap();
    assert!(again.cached);
    assert_eq!(r2.compile_count(), 0);

    // Another bucket, another dtype or other K, V are other keys.
    let key = |shape, dtype| TuneKey::new(&b, &v, shape, dtype);
    assert_eq!(key((1, 64, 2, 8, 4), DType::F32), first.key);
    for (shape, dtype) in [
        ((1, 65, 2, 8, 4), DType::F32),
        ((1, 64, 3, 8, 4), DType::F32),
        ((1, 64, 2, 8, 8), DType::F32),
        ((1, 64, 2, 8, 4), DType::BF16),
    ] {
        assert_ne!(key(shape, dtype), first.key, "{shape:?} {dtype}");
    }
    let other = builtins::by_name("loglinear_gla").unwrap();
    assert_ne!(TuneKey::new(&b, &other, (1, 64, 2, 8, 4), DType::F32), first.key);

    // --force searches again and replaces the entry.
    let forced = tune::tune(&b, &v, &TuneSpec { force: true, ..spec((1, 64, 2, 8, 4)) }, &mut |_| {}).unwrap();
    assert!(!forced.cached && forced.winner_time <= forced.default_time);
    assert_eq!(cache.get(&first.key).unwrap().schedule().unwrap(), forced.winner);
}

#[test]
fn runs_use_a_tuned_configuration_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let r = runtime(&dir);
    let b = r.get(BACKEND).unwrap();
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let x = stored((1, 50, 2, 8, 4), DType::F32);
    let default = b.run(&v, &views(&x), &RunOptions::default()).unwrap().config;
    let tuned = ScheduleConfig { chunk: 16, form: ScanForm::Streaming, ..default };
    assert_ne!(tuned, default);
    let key = TuneKey::new(&b, &v, (1, 64, 2, 8, 4), DType::F32);
    r.tune_cache().unwrap().insert(&key, entry(&tuned.to_string())).unwrap();

    // Same bucket (T = 50 ≤ 64, B·H = 2): the tuned configuration, with the same output as the default's.
    let ran = b.run(&v, &views(&x), &RunOptions::default()).unwrap();
    assert_eq!(ran.config, tuned);
    let (config, from_cache) = b.config_for_inputs(&v, &views(&x), &RunOptions::default()).unwrap();
    assert_eq!((config, from_cache), (tuned, true));
    let want = b.run(&v, &views(&x), &RunOptions { no_tune: true, ..RunOptions::default() }).unwrap();
    assert_eq!(want.config, default, "no_tune runs the default pick");
    let (o, w) = (ran.o.to_f64(), want.o.to_f64());
    let err = o.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-4, "{err}");
    // Resident runs too.
    let up = b.upload(&v, &views(&x)).unwrap();
    assert_eq!(b.run_resident(&v, &up, &RunOptions::default()).unwrap().1, tuned);
    // Resident inputs converted before the upload (a GPU target reads them only in its storage type) are looked
    // up for the dtype the caller holds them in: f32 copies of bf16 data find the bf16 entry, not the f32 one.
    let half_key = TuneKey::new(&b, &v, (1, 64, 2, 8, 4), DType::BF16);
    let half_tuned = ScheduleConfig { chunk: 32, ..default };
    r.tune_cache().unwrap().insert(&half_key, entry(&half_tuned.to_string())).unwrap();
    let up = b.upload(&v, &views(&x)).unwrap().held_as(DType::BF16);
    assert_eq!(up.input_dtype(&v), DType::BF16);
    assert_eq!(b.run_resident(&v, &up, &RunOptions::default()).unwrap().1, half_tuned);
    // Prefills (with the state after the last token) too, with the same output and state as the default's.
    let (pre, state) = b.prefill(&v, &views(&x), &RunOptions::default()).unwrap();
    assert_eq!(pre.config, tuned);
    let (pre0, state0) = b.prefill(&v, &views(&x), &RunOptions { no_tune: true, ..RunOptions::default() }).unwrap();
    assert_eq!(pre0.config, default);
    let d = state.state.to_f64().iter().zip(state0.state.to_f64()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(d < 1e-4, "tuned prefill state differs by {d}");
    // Fixing anything (chunk size, a field, the whole config) skips the cache.
    for opts in [
        RunOptions::with_chunk_size(Some(64)),
        RunOptions { overrides: "threads=auto".parse().unwrap(), ..RunOptions::default() },
        RunOptions::with_config(default),
    ] {
        assert!(!opts.uses_tuning());
        assert_ne!(b.run(&v, &views(&x), &opts).unwrap().config, tuned, "{opts:?}");
    }
    // Another bucket, another input dtype, another backend: no entry, the default at once.
    let long = stored((1, 65, 2, 8, 4), DType::F32);
    assert_eq!(b.run(&v, &views(&long), &RunOptions::default()).unwrap().config, default);
    let half = stored((1, 50, 2, 8, 4), DType::F16);
    assert_eq!(b.run(&v, &views(&half), &RunOptions::default()).unwrap().config, default);
    let f64_backend = r.get("interpreter").unwrap();
    assert_eq!(f64_backend.run(&v, &views(&x), &RunOptions::default()).unwrap().config.chunk, default.chunk);

    // A tuned per-level form whose scratch exceeds this run's budget falls back to the default pick.
    let per_level = ScheduleConfig { chunk: 16, form: ScanForm::PerLevel, ..default };
    r.tune_cache().unwrap().insert(&key, entry(&per_level.to_string())).unwrap();
    assert_eq!(b.run(&v, &views(&x), &RunOptions::default()).unwrap().config, per_level, "the file is re-read");
    let tight = RunOptions { max_scratch: Some(16), ..RunOptions::default() };
    assert_eq!(b.run(&v, &views(&x), &tight).unwrap().config.form, ScanForm::Streaming);
    assert_eq!(b.run(&v, &views(&x), &tight).unwrap().config.chunk, default.chunk);
    // An entry that does not parse (edited by hand) or that the backend refuses is ignored.
    for bad in ["chunk=12", "storage=f64 accum=f64", "v_block=3"] {
        r.tune_cache().unwrap().insert(&key, entry(bad)).unwrap();
        assert_eq!(b.run(&v, &views(&x), &RunOptions::default()).unwrap().config, default, "{bad}");
    }
}

#[test]
fn cache_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TuneCache::at(dir.path().join("nested").join("dir"));
    assert!(cache.load().is_empty(), "a missing file is empty");
    let r = Runtime::with_defaults();
    let b = r.get(BACKEND).unwrap();
    let v = builtins::by_name("loglinear_gla").unwrap();
    let k1 = TuneKey::new(&b, &v, (1, 100, 4, 16, 16), DType::F32);
    let k2 = TuneKey::new(&b, &v, (1, 100, 4, 16, 16), DType::F16);
    cache.insert(&k1, entry("chunk=32 form=fused")).unwrap();
    cache.insert(&k2, entry("chunk=16")).unwrap();
    cache.insert(&k1, entry("chunk=64 v_block=8")).unwrap();
    let all = cache.load();
    assert_eq!(all.len(), 2);
    assert_eq!(cache.get(&k1).unwrap(), entry("chunk=64 v_block=8"));
    assert_eq!(cache.get(&k2).unwrap().schedule().unwrap().chunk, 16);
    let text = std::fs::read_to_string(cache.path()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format"], 1);
    assert_eq!(json["entries"][k1.to_string()]["config"], "chunk=64 v_block=8");
    // The key's text names what it is for.
    let k = k1.to_string();
    for needle in ["backend=interpreter-f32", "variant=loglinear_gla#", "K=16", "V=16", "input=f32", "T<=128", "BH<=4"]
    {
        assert!(k.contains(needle), "{needle} missing in {k}");
    }
    assert!(k.contains(&tune::compiler_version()));
    // No temporary file is left behind.
    let names: Vec<String> =
        std::fs::read_dir(cache.dir()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert!(names.iter().all(|n| n == CACHE_FILE || n == tune::LOCK_FILE), "{names:?}");
}

#[test]
fn concurrent_writers_keep_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let r = Runtime::with_defaults();
    let b = r.get(BACKEND).unwrap();
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let keys: Vec<TuneKey> = (0..8).map(|i| TuneKey::new(&b, &v, (1, 16 << i, 1, 8, 8), DType::F32)).collect();
    std::thread::scope(|s| {
        for (i, key) in keys.iter().enumerate() {
            let path = dir.path().to_path_buf();
            s.spawn(move || {
                // Each writer has its own handle (as another process would), and writes several times.
                let cache = TuneCache::at(path);
                for round in 0..5 {
                    let mut e = entry("chunk=32");
                    e.timestamp = (i * 10 + round) as u64;
                    cache.insert(key, e).unwrap();
                }
            });
        }
    });
    let all = TuneCache::at(dir.path()).load();
    assert_eq!(all.len(), keys.len(), "{:?}", all.keys().collect::<Vec<_>>());
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(all[&key.to_string()].timestamp, (i * 10 + 4) as u64);
    }
}

/// Collects the warnings logged on this thread.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut t = Text(String::new());
            event.record(&mut t);
            self.0.lock().unwrap().push(t.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_corrupt_cache_is_a_warning_and_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CACHE_FILE);
    let r = runtime(&dir);
    let b = r.get(BACKEND).unwrap();
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let x = stored((1, 20, 1, 4, 4), DType::F32);
    let default = b.run(&v, &views(&x), &RunOptions { no_tune: true, ..RunOptions::default() }).unwrap().config;
    let key = TuneKey::new(&b, &v, (1, 20, 1, 4, 4), DType::F32);
    for garbage in [&b"{ not json"[..], b"", b"\xff\xfe\x00", br#"{"format": 99, "entries": {}}"#, b"[1, 2]"] {
        std::fs::write(&path, garbage).unwrap();
        let warnings = Warnings::default();
        tracing::subscriber::with_default(warnings.clone(), || {
            assert!(TuneCache::at(dir.path()).load().is_empty());
            // A run does not fail: it takes the default pick.
            assert_eq!(b.run(&v, &views(&x), &RunOptions::default()).unwrap().config, default);
            assert!(r.tune_cache().unwrap().get(&key).is_none());
        });
        let w = warnings.0.lock().unwrap();
        assert!(!w.is_empty() && w.iter().all(|m| m.contains("tuning cache")), "{garbage:?}: {w:?}");
    }
    // A writer replaces the corrupt file, keeping it aside; the new entry then serves runs.
    let tuned = ScheduleConfig { chunk: 16, form: ScanForm::Fused, ..default };
    r.tune_cache().unwrap().insert(&key, entry(&tuned.to_string())).unwrap();
    assert!(dir.path().join(format!("{CACHE_FILE}.corrupt")).exists());
    assert_eq!(b.run(&v, &views(&x), &RunOptions::default()).unwrap().config, tuned);
    // An unreadable cache (a directory where the file should be) is a warning too.
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir2.path().join(CACHE_FILE)).unwrap();
    let r2 = runtime(&dir2);
    let warnings = Warnings::default();
    tracing::subscriber::with_default(warnings.clone(), || {
        assert_eq!(r2.get(BACKEND).unwrap().run(&v, &views(&x), &RunOptions::default()).unwrap().config, default);
    });
    assert!(!warnings.0.lock().unwrap().is_empty());
    // ... and a tune that cannot save says so in its report instead of failing.
    let rep = tune::tune(
        &r2.get(BACKEND).unwrap(),
        &v,
        &TuneSpec { budget: Duration::from_millis(200), ..spec((1, 20, 1, 4, 4)) },
        &mut |_| {},
    )
    .unwrap();
    assert!(rep.save_error.as_deref().is_some_and(|e| e.contains(CACHE_FILE)), "{:?}", rep.save_error);
    assert!(tune::format_report(&rep).contains("not saved"));
}

#[test]
fn candidates_are_pruned_and_ranked() {
    let r = Runtime::with_defaults();
    let b = r.get(BACKEND).unwrap();
    let v = builtins::by_name("loglinear_gated_deltanet").unwrap();
    let x = stored((1, 200, 2, 8, 32), DType::F32);
    let _ = x;
    let dims = loglinear_ir::Dims { b: 1, t: 200, h: 2, k: 8, v: 32, l: 9 };
    let base = b.config(&v, &RunOptions::default()).unwrap();
    let all = tune::candidates(&b, &dims, DType::F32, &base);
    // chunks 16..128 (T ≤ 256), three forms, v_block ∈ {whole, 16, 8}; f32 storage only for f32 inputs.
    assert_eq!(all.len(), 4 * 3 * 3);
    assert!(all.iter().all(|c| c.storage == DType::F32 && c.threads.is_none() && c.accum == base.accum));
    let vbs: std::collections::BTreeSet<_> = all.iter().map(|c| c.v_block).collect();
    assert_eq!(vbs.into_iter().collect::<Vec<_>>(), vec![None, Some(8), Some(16)]);
    // bf16 inputs also try bf16 storage.
    let half = tune::candidates(&b, &dims, DType::BF16, &base);
    assert_eq!(half.len(), 2 * all.len());
    assert!(half.iter().any(|c| c.storage == DType::BF16));
    // A short T keeps the chunks at most T rounded up (at least 16).
    let short = loglinear_ir::Dims { t: 20, ..dims };
    assert!(tune::candidates(&b, &short, DType::F32, &base).iter().all(|c| c.chunk <= 32));

    let default = b.config_for(&v, &dims, &RunOptions::default()).unwrap();
    let plan = tune::plan(&b, &v, &dims, DType::F32, &default, 5, u128::MAX);
    assert_eq!(plan.measure[0].config, default);
    assert_eq!(plan.generated, all.len() + usize::from(!all.contains(&default)));
    assert_eq!(plan.measure.len() + plan.pruned + plan.ranked_out, plan.generated);
    // The best of each scan form is measured, then the cost model's best up to 5.
    for form in ScanForm::ALL {
        assert!(plan.measure.iter().any(|c| c.config.form == form), "{form:?}");
    }
    assert_eq!(plan.measure.len(), 1 + 5);
    let scores: Vec<f64> = plan.measure[1..].iter().map(|c| c.score).collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{scores:?}");
    let mut seen = std::collections::BTreeSet::new();
    assert!(plan.measure.iter().all(|c| seen.insert(c.config)), "no duplicates");
    // Without a limit (what `emit --tune-candidates` writes): every candidate the backend compiles, a superset
    // of any limited plan; a tight scratch budget prunes.
    let all_plan = tune::plan(&b, &v, &dims, DType::F32, &default, usize::MAX, u128::MAX);
    assert_eq!(all_plan.ranked_out, 0);
    assert!(plan.measure.iter().all(|c| all_plan.measure.iter().any(|a| a.config == c.config)));
    // The cost model counts each buffer at its element size: 16-bit storage moves fewer bytes than its f32 twin.
    let half_plan = tune::plan(&b, &v, &dims, DType::BF16, &default, usize::MAX, u128::MAX);
    let mut pairs = 0;
    for c in half_plan.measure.iter().filter(|c| c.config.storage == DType::BF16) {
        let twin = ScheduleConfig { storage: DType::F32, ..c.config };
        if let Some(f) = half_plan.measure.iter().find(|x| x.config == twin) {
            assert!(c.score < f.score, "{}: {} vs {}", c.config, c.score, f.score);
            pairs += 1;
        }
    }
    assert!(pairs > 0);
    let tight = tune::plan(&b, &v, &dims, DType::F32, &default, usize::MAX, 1);
    assert_eq!(tight.measure.len(), 1, "only the default is kept when nothing fits");
    assert!(tight.pruned > 0);
}

#[test]
fn bad_requests_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = runtime(&dir);
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let e = tune::tune(&r.get("reference").unwrap(), &v, &spec((1, 8, 1, 2, 2)), &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("oracle"), "{e}");
    let b = r.get(BACKEND).unwrap();
    let e = tune::tune(&b, &v, &spec((1, 0, 1, 2, 2)), &mut |_| {}).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("--shape"), "{e}");
    let e =
        tune::tune(&b, &v, &TuneSpec { input_dtype: DType::I64, ..spec((1, 8, 1, 2, 2)) }, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("--input-dtype"), "{e}");
    assert!(!dir.path().join(CACHE_FILE).exists(), "nothing written");
}
