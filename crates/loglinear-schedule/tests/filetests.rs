//! File tests: `tests/filetests/*.test` at the workspace root.
//!
//! Header lines (comments starting with `;`):
//! * `; variant: NAME`: a built-in variant (`loglinear_mamba2`, `retnet`, ...);
//! * `; chunk: C` (optional; default the variant's), `; form: per_level | fused` (optional);
//! * `; dump: after-all` or `; dump: after <pass>`.
//!
//! Then `; check:` / `; nextln:` / `; not:` directives (see `loglinear_schedule::filecheck`), matched in order
//! against the dump.

use loglinear_schedule::{dump, filecheck, DumpWhen, ScanForm, ScheduleConfig};

fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(';').map(str::trim).and_then(|r| r.strip_prefix(key)).map(str::trim))
}

fn run_file(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let name = header(&text, "variant:").ok_or("missing `; variant:` header")?;
    let v = loglinear_ir::builtins::by_name(name).ok_or_else(|| format!("unknown variant `{name}`"))?;
    let chunk = match header(&text, "chunk:") {
        Some(c) => c.parse::<usize>().map_err(|e| format!("bad chunk: {e}"))?,
        None => v.chunk_size,
    };
    let form = match header(&text, "form:") {
        Some(f) => ScanForm::from_name(f).ok_or_else(|| format!("bad form `{f}`"))?,
        None => ScanForm::PerLevel,
    };
    let when = match header(&text, "dump:").ok_or("missing `; dump:` header")? {
        "after-all" => DumpWhen::AfterAll,
        other => DumpWhen::After(other.strip_prefix("after").ok_or("bad dump header")?.trim().to_string()),
    };
    let out = dump(&v, &ScheduleConfig { chunk, form, ..Default::default() }, None, when).map_err(|e| e.to_string())?;
    let dirs = filecheck::parse(&text);
    if dirs.is_empty() {
        return Err("no check directives".into());
    }
    filecheck::check(&dirs, &out).map_err(|e| format!("{e}\n--- dump ---\n{out}"))
}

#[test]
fn filetests() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/filetests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "expected at least 8 file tests, found {}", files.len());
    let mut failures = Vec::new();
    for f in &files {
        if let Err(e) = run_file(f) {
            failures.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(failures.is_empty(), "{} file test(s) failed:\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn a_wrong_check_fails() {
    let v = loglinear_ir::builtins::by_name("loglinear_mamba2").unwrap();
    let out = dump(&v, &ScheduleConfig::default(), None, DumpWhen::AfterAll).unwrap();
    assert!(filecheck::check(&filecheck::parse("; check: matmul_gated_causal"), &out).is_err());
    assert!(filecheck::check(&filecheck::parse("; check: segsum"), &out).is_ok());
}
