//! `loglinear tune` through the real binary, each process with its own `LOGLINEAR_CACHE` (a temporary
//! directory): the search and its table, the cache file, a second tune in the same bucket served from the cache,
//! `run` and `bench` picking the tuned configuration up (`--no-tune` skipping it), and bad arguments (exit 2).

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_loglinear");

fn loglinear(cache: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("LOGLINEAR_CACHE", cache).env_remove("RUST_LOG").output().expect("spawn loglinear")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tune(cache: &Path, shape: &str, budget: &str, extra: &[&str]) -> Output {
    let mut args = vec!["tune", "--variant", "loglinear_mamba2", "--backend", "cranelift", "--shape", shape];
    args.extend(["--budget", budget]);
    args.extend(extra);
    loglinear(cache, &args)
}

fn read_cache(cache: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(cache.join("tune.json")).unwrap()).unwrap()
}

/// The `config=...` of the `ran` log line.
fn ran_config(stderr: &str) -> String {
    let line = stderr.lines().find(|l| l.contains(" ran ")).unwrap_or_else(|| panic!("no `ran` line in\n{stderr}"));
    let at = line.find("config=").unwrap() + "config=".len();
    let rest = &line[at..];
    rest[..rest.find(" ms=").unwrap()].to_string()
}

#[test]
fn tune_saves_the_winner_and_run_and_bench_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path();
    let out = tune(cache, "1,64,2,8,4", "2s", &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for needle in ["config", "median", "vs default", "(default)", "winner:", "saved to", "T<=64 BH<=2"] {
        assert!(stdout.contains(needle), "{needle} missing in\n{stdout}");
    }
    assert!(stdout.lines().any(|l| l.starts_with('*')), "the winner is marked\n{stdout}");
    let json = read_cache(cache);
    let entries = json["entries"].as_object().unwrap();
    assert_eq!(entries.len(), 1);
    let (key, entry) = entries.iter().next().unwrap();
    assert!(key.contains("backend=cranelift") && key.contains("variant=loglinear_mamba2#"), "{key}");
    // The default is among the measured candidates: the winner is never slower than it.
    let (won, default) = (entry["time_s"].as_f64().unwrap(), entry["default_time_s"].as_f64().unwrap());
    assert!(won <= default, "{entry}");
    assert!(stdout.contains(entry["config"].as_str().unwrap()));

    // Same bucket (T = 40 ≤ 64): served from the cache, no search.
    let again = tune(cache, "1,40,2,8,4", "2s", &[]);
    let stdout = text(&again.stdout);
    assert_eq!(again.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("cached") && stdout.contains(entry["config"].as_str().unwrap()), "{stdout}");
    assert!(!stdout.contains("vs default"), "no table: nothing measured\n{stdout}");
    assert_eq!(read_cache(cache), json, "the cache is unchanged");

    // Make the tuned configuration distinctive, then check that `run` and `bench` pick it up.
    let tuned = "chunk=16 form=streaming storage=f32 accum=f32 threads=auto v_block=auto";
    let mut edited = json.clone();
    edited["entries"][key]["config"] = tuned.into();
    std::fs::write(cache.join("tune.json"), serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    let input = dir.path().join("in.safetensors");
    let output = dir.path().join("o.safetensors");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    let r = loglinear(cache, &["random", "--variant", "loglinear_mamba2", "--shape", "1,50,2,8,4", "--output", i]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--variant", "loglinear_mamba2", "--input", i, "--output", o, "--log-level", "info"];
        args.extend(extra);
        let out = loglinear(cache, &args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        ran_config(&text(&out.stderr))
    };
    assert_eq!(run(&[]), tuned);
    assert_eq!(run(&["--no-tune"]), entry["default_config"].as_str().unwrap());
    assert_ne!(run(&["--chunk-size", "32"]), tuned, "a fixed chunk size skips the cache");
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "--variant", "loglinear_mamba2", "--shape", "1,50,2,8,4", "--reps", "1"];
        args.extend(extra);
        let out = loglinear(cache, &args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let b = bench(&[]);
    assert!(b.contains(&format!("config: {tuned} (tuned")), "{b}");
    let b = bench(&["--no-tune"]);
    assert!(!b.contains("tuned") && b.contains("config: chunk=64"), "{b}");
    let b = bench(&["--resident"]);
    assert!(b.contains(&format!("config: {tuned} (tuned")), "{b}");

    // --force searches again and writes a fresh result.
    let forced = tune(cache, "1,64,2,8,4", "500ms", &["--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert!(text(&forced.stdout).contains("vs default"));
    assert_ne!(read_cache(cache)["entries"][key]["config"], tuned);
}

#[test]
fn a_corrupt_cache_warns_and_runs_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path();
    std::fs::write(cache.join("tune.json"), b"{ this is not json").unwrap();
    let input = dir.path().join("in.safetensors");
    let output = dir.path().join("o.safetensors");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    let r = loglinear(cache, &["random", "--variant", "mamba2", "--shape", "1,20,1,4,4", "--output", i]);
    assert_eq!(r.status.code(), Some(0));
    let out = loglinear(cache, &["run", "--variant", "mamba2", "--input", i, "--output", o]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("WARN") && stderr.contains("tuning cache"), "{stderr}");
    // A tune replaces it (keeping the old file aside).
    let out = loglinear(cache, &["tune", "--variant", "mamba2", "--shape", "1,20,1,4,4", "--budget", "300ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(cache.join("tune.json.corrupt").exists());
    assert_eq!(read_cache(cache)["entries"].as_object().unwrap().len(), 1);
}

#[test]
fn bad_arguments_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path();
    // Each case: (variant, shape, extra arguments) and what the error names.
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("mamba2", "1,16,1,4,4", &["--budget", "5x"], "--budget"),
        ("mamba2", "1,16,1,4,4", &["--budget", "0s"], "--budget"),
        ("mamba2", "1,16,1,4,4", &["--budget", "-1s"], "--budget"),
        ("mamba2", "1,16,1,4,4", &["--budget", "soon"], "--budget"),
        ("mamba2", "1,16,1,4,4", &["--budget", ""], "--budget"),
        ("mamba2", "1,16,1,4,4", &["--backend", "nope"], "unknown backend `nope`"),
        ("mamba2", "1,16,1,4,4", &["--backend", "reference"], "oracle"),
        ("mamba2", "1,16,1,4,4", &["--input-dtype", "i8"], "--input-dtype"),
        ("nope", "1,16,1,4,4", &[], "unknown variant `nope`"),
        ("mamba2", "1,0,1,4,4", &[], "--shape"),
        ("mamba2", "1,2,3", &[], "--shape"),
    ];
    for (variant, shape, extra, needle) in cases {
        let mut args = vec!["tune", "--variant", variant, "--shape", shape];
        args.extend(*extra);
        let out = loglinear(cache, &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.starts_with("error:") && stderr.contains(needle), "{extra:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{extra:?}: one line\n{stderr}");
    }
    let out = loglinear(cache, &["tune", "--variant", "mamba2"]);
    assert_eq!(out.status.code(), Some(2), "--shape is required");
    assert!(std::fs::read_dir(cache).unwrap().next().is_none(), "nothing written");

    // A cache that cannot be written: the table is printed, then one error line naming it, exit 2.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = loglinear(&file, &["tune", "--variant", "mamba2", "--shape", "1,16,1,4,4", "--budget", "200ms"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(text(&out.stdout).contains("not saved"));
    assert!(stderr.starts_with("error:") && stderr.contains("a-file"), "{stderr}");
}
