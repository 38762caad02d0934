//! File tests: `tests/filetests/*.test` at the workspace root.
//!
//! Header lines (comments starting with `;`) say what is tested, in one of two ways.
//!
//! From a built-in variant:
//! * `; variant: NAME`: a built-in variant (`loglinear_mamba2`, `retnet`, ...);
//! * `; chunk: C` (optional; default the variant's), `; form: per_level | fused` (optional);
//! * `; dump: after-all` or `; dump: after <pass>`.
//!
//! From kernel-IR text:
//! * `; input: kernel-ir`: the program is the text after the `; ---` line (read by
//!   `loglinear_kernel::parse_program`; parse errors name the file's line and column);
//! * `; run: ...` lines (optional, applied in order to the program; none: print the parsed program):
//!   * `; run: verify`: prints `verified NAME`, or one `error: ...` line per verifier finding;
//!   * `; run: specialise K=8 V=5` (optional `C=`, default the program's chunk): specialises the program (element
//!     types kept) and prints it; later `run` lines see the specialised program;
//!   * `; run: resources budget=49152` (optional `K=`, `V=`; default the specialised sizes, else 16): prints
//!     `loglinear_kernel::resources::program_resources` for one chunk of one sequence (B = H = L = 1, T = C), then
//!     `within budget N B` or one line per kernel over it.
//!
//! Then `; check:` / `; nextln:` / `; not:` directives (see `loglinear_schedule::filecheck`), matched in order
//! against the output (the dump, or what the `run` lines print).
//!
//! Re-recording: `UPDATE_FILETESTS=1 cargo test -p loglinear-schedule --test filetests` rewrites the check lines
//! of every file that has a `; record: all` header from the current output: its `; check:`, `; nextln:` and
//! `; not:` lines are replaced (where the first of them stood, else right before `; ---`, else at the end) by
//! `; check:` with the first output line and `; nextln:` with each following one (`; check:` again after a
//! blank output line). Other files, whose check lines pick out what matters by hand, are never rewritten.

use loglinear_kernel::{parse_program, resources, specialise, verify, Program, SizeEnv, Specialisation};
use loglinear_schedule::{dump, filecheck, DumpWhen, ScanForm, ScheduleConfig};

fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    headers(text, key).into_iter().next()
}

fn headers<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(';').map(str::trim).and_then(|r| r.strip_prefix(key)).map(str::trim))
        .collect()
}

fn is_separator(line: &str) -> bool {
    line.trim() == "; ---"
}

fn is_directive(line: &str) -> bool {
    let l = line.trim_start();
    l.strip_prefix(';')
        .map(str::trim_start)
        .is_some_and(|r| r.starts_with("check:") || r.starts_with("nextln:") || r.starts_with("not:"))
}

/// The output a file's directives are matched against.
fn output_of(text: &str) -> Result<String, String> {
    match header(text, "input:") {
        Some("kernel-ir") => kernel_ir_output(text),
        Some(other) => Err(format!("unknown input `{other}` (known: kernel-ir)")),
        None => dump_output(text),
    }
}

fn dump_output(text: &str) -> Result<String, String> {
    let name = header(text, "variant:").ok_or("missing `; variant:` (or `; input:`) header")?;
    let v = loglinear_ir::builtins::by_name(name).ok_or_else(|| format!("unknown variant `{name}`"))?;
    let chunk = match header(text, "chunk:") {
        Some(c) => c.parse::<usize>().map_err(|e| format!("bad chunk: {e}"))?,
        None => v.chunk_size,
    };
    let form = match header(text, "form:") {
        Some(f) => ScanForm::from_name(f).ok_or_else(|| format!("bad form `{f}`"))?,
        None => ScanForm::PerLevel,
    };
    let when = match header(text, "dump:").ok_or("missing `; dump:` header")? {
        "after-all" => DumpWhen::AfterAll,
        other => DumpWhen::After(other.strip_prefix("after").ok_or("bad dump header")?.trim().to_string()),
    };
    dump(&v, &ScheduleConfig { chunk, form, ..Default::default() }, None, when).map_err(|e| e.to_string())
}

/// `KEY=VALUE` options of a `run` line.
fn options(words: &[&str], known: &[&str]) -> Result<Vec<(String, usize)>, String> {
    words
        .iter()
        .map(|w| {
            let (k, v) = w.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, found `{w}`"))?;
            if !known.contains(&k) {
                return Err(format!("unknown option `{k}` (known: {})", known.join(", ")));
            }
            let n = v.parse::<usize>().map_err(|e| format!("bad value of `{k}`: {e}"))?;
            Ok((k.to_string(), n))
        })
        .collect()
}

fn kernel_ir_output(text: &str) -> Result<String, String> {
    // The program: the lines after `; ---`, kept at their line numbers so that errors point into the file.
    let sep = text.lines().position(is_separator).ok_or("`; input: kernel-ir` needs a `; ---` line before the IR")?;
    let ir: String =
        text.lines().enumerate().map(|(i, l)| if i > sep { format!("{l}\n") } else { "\n".into() }).collect();
    let mut p = parse_program(&ir).map_err(|e| format!("parse error: {e}"))?;
    let mut out = String::new();
    let runs = headers(text, "run:");
    if runs.is_empty() {
        out.push_str(&p.to_string());
    }
    for run in runs {
        let words: Vec<&str> = run.split_whitespace().collect();
        let get = |o: &[(String, usize)], k: &str| o.iter().find(|x| x.0 == k).map(|x| x.1);
        match words.first().copied() {
            Some("verify") => {
                options(&words[1..], &[])?;
                match verify::verify(&p) {
                    Ok(()) => out.push_str(&format!("verified {}\n", p.name)),
                    Err(errs) => errs.iter().for_each(|e| out.push_str(&format!("error: {e}\n"))),
                }
            }
            Some("specialise") => {
                let o = options(&words[1..], &["K", "V", "C"])?;
                let (k, v) = (get(&o, "K").ok_or("specialise needs K=")?, get(&o, "V").ok_or("specialise needs V=")?);
                let spec = Specialisation { k, v, c: get(&o, "C").unwrap_or(p.chunk) };
                let storage = p.buf(p.output).elem;
                let cfg = ScheduleConfig { chunk: p.chunk, storage, accum: p.accum, ..Default::default() };
                p = specialise(&p, spec, &cfg);
                out.push_str(&p.to_string());
            }
            Some("resources") => {
                let o = options(&words[1..], &["budget", "K", "V"])?;
                let budget = get(&o, "budget").ok_or("resources needs budget=")?;
                let env = resource_env(&p, get(&o, "K"), get(&o, "V"));
                out.push_str(&format!("resources at {env}\n"));
                for r in resources::program_resources(&p, &env) {
                    out.push_str(&format!("{r}\n"));
                }
                match resources::check_budget(&p, &env, budget) {
                    Ok(()) => out.push_str(&format!("within budget {budget} B\n")),
                    Err(over) => over.iter().for_each(|l| out.push_str(&format!("{l}\n"))),
                }
            }
            _ => {
                return Err(format!(
                    "unknown run `{run}` (known: verify, specialise K= V= [C=], resources budget= [K= V=])"
                ))
            }
        }
    }
    Ok(out)
}

/// One chunk of one sequence: B = H = L = 1, T = C.
fn resource_env(p: &Program, k: Option<usize>, v: Option<usize>) -> SizeEnv {
    let spec = p.specialised;
    let k = k.or(spec.map(|s| s.k)).unwrap_or(16);
    let v = v.or(spec.map(|s| s.v)).unwrap_or(16);
    SizeEnv::new(1, p.chunk, 1, k, v, 1, p.chunk, p.hierarchical)
}

/// The file with its directives replaced by the whole of `out` (see the module doc).
fn recorded(text: &str, out: &str) -> String {
    let mut dirs = Vec::new();
    let mut prev_blank = true;
    for l in out.lines() {
        let l = l.trim();
        if l.is_empty() {
            prev_blank = true;
            continue;
        }
        dirs.push(format!("; {} {l}", if prev_blank { "check:" } else { "nextln:" }));
        prev_blank = false;
    }
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| is_directive(l))
        .or_else(|| lines.iter().position(|l| is_separator(l)))
        .unwrap_or(lines.len());
    let mut res: Vec<String> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if i == at {
            res.append(&mut dirs);
        }
        if !is_directive(l) {
            res.push(l.to_string());
        }
    }
    res.append(&mut dirs);
    res.join("\n") + "\n"
}

fn run_file(path: &std::path::Path) -> Result<(), String> {
    let mut text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let out = output_of(&text)?;
    if std::env::var_os("UPDATE_FILETESTS").is_some_and(|v| v != "0") && header(&text, "record:") == Some("all") {
        let new = recorded(&text, &out);
        if new != text {
            std::fs::write(path, &new).map_err(|e| e.to_string())?;
            eprintln!("re-recorded {}", path.display());
            text = new;
        }
    }
    let dirs = filecheck::parse(&text);
    if dirs.is_empty() {
        return Err("no check directives".into());
    }
    filecheck::check(&dirs, &out).map_err(|e| format!("{e}\n--- output ---\n{out}"))
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
    assert!(files.len() >= 12, "expected at least 12 file tests, found {}", files.len());
    let kernel_ir = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| header(&t, "input:") == Some("kernel-ir")))
        .count();
    assert!(kernel_ir >= 3, "expected at least 3 kernel-IR file tests, found {kernel_ir}");
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

const TINY: &str = "\
; input: kernel-ir
; run: verify
; check: nothing yet
; ---
program tiny.forward (C = 4, c = 2, NT = ceil(T/C), M = 1, MS = 1, LC = 1, accum = f32)
  buffer v: input `v` f32 [B, T, H, V] live 0..0
  buffer o: output f32 [B, T, H, V] live 0..0
kernel 0 copy grid(b < B, h < H, i < NT) {
  %v: [C, V] = load v[b, i*C +: C, h, :]
  store o[b, i*C +: C, h, :] = %v
}
";

#[test]
fn kernel_ir_input_runs_and_records() {
    assert_eq!(output_of(TINY).unwrap(), "verified tiny.forward\n");
    let rec = recorded(TINY, "verified tiny.forward\n\nsecond\nthird\n");
    assert!(rec.contains("; run: verify\n; check: verified tiny.forward\n; check: second\n; nextln: third\n; ---\n"));
    assert!(!rec.contains("nothing yet"));
    assert_eq!(recorded(&rec, "verified tiny.forward\n\nsecond\nthird\n"), rec, "recording is idempotent");
    // Without `run` lines, the parsed program is printed back.
    let plain = TINY.replace("; run: verify\n", "");
    assert!(output_of(&plain).unwrap().starts_with("program tiny.forward (C = 4"));
    // Parse errors point into the file.
    let bad = TINY.replace("load v[", "load w[");
    let e = output_of(&bad).unwrap_err();
    assert!(e.contains("line 9, column 21: unknown buffer `w`"), "{e}");
    assert!(output_of(&TINY.replace("; run: verify", "; run: frobnicate")).is_err());
}
