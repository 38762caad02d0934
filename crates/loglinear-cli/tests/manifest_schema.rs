//! Every target's `manifest.json` validates against `docs/manifest.schema.json` (the subset of JSON Schema it
//! uses: type (a name or a list of names), required, properties, additionalProperties, items, enum, minItems —
//! checked by the small validator below, which fails on
//! any other keyword so that the schema cannot silently outgrow it).

use loglinear::Registry;
use loglinear_cli::{main_with_args, EXIT_OK};
use serde_json::Value;

fn validate(v: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    let s = schema.as_object().expect("a schema is an object");
    for key in s.keys() {
        let known = [
            "$schema",
            "$id",
            "title",
            "description",
            "type",
            "required",
            "properties",
            "additionalProperties",
            "items",
            "enum",
            "minItems",
        ];
        assert!(known.contains(&key.as_str()), "schema keyword `{key}` at {path} is not supported by the validator");
    }
    if let Some(t) = s.get("type") {
        let names: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().map(|x| x.as_str().expect("type names")).collect(),
            other => panic!("type {other}"),
        };
        let ok = names.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            other => panic!("type `{other}`"),
        });
        if !ok {
            errors.push(format!("{path}: expected {t}, got {v}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{path}: {v} is not one of {e:?}"));
        }
    }
    if let Some(req) = s.get("required").and_then(Value::as_array) {
        for r in req {
            if v.get(r.as_str().unwrap()).is_none() {
                errors.push(format!("{path}: `{}` is missing", r.as_str().unwrap()));
            }
        }
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            if let Some(x) = v.get(k) {
                validate(x, sub, &format!("{path}.{k}"), errors);
            }
        }
    }
    if let (Some(extra), Some(o)) = (s.get("additionalProperties"), v.as_object()) {
        let declared = s.get("properties").and_then(Value::as_object);
        for (k, x) in o {
            if declared.is_none_or(|d| !d.contains_key(k)) {
                validate(x, extra, &format!("{path}.{k}"), errors);
            }
        }
    }
    if let Some(n) = s.get("minItems").and_then(Value::as_u64) {
        if v.as_array().is_some_and(|a| (a.len() as u64) < n) {
            errors.push(format!("{path}: fewer than {n} items"));
        }
    }
    if let (Some(items), Some(a)) = (s.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            validate(x, items, &format!("{path}[{i}]"), errors);
        }
    }
}

/// Evaluates a size formula of the manifest (integers, names, `+ - *`, `ceil_div(a, b)`, `bitlen(x)`) — the
/// grammar the schema states — over `env`.
fn eval(text: &str, env: &std::collections::BTreeMap<String, i64>) -> i64 {
    fn sum(t: &[char], i: &mut usize, env: &std::collections::BTreeMap<String, i64>) -> i64 {
        let mut x = product(t, i, env);
        while *i < t.len() && (t[*i] == '+' || t[*i] == '-') {
            let op = t[*i];
            *i += 1;
            let y = product(t, i, env);
            x = if op == '+' { x + y } else { x - y };
        }
        x
    }
    fn product(t: &[char], i: &mut usize, env: &std::collections::BTreeMap<String, i64>) -> i64 {
        let mut x = atom(t, i, env);
        while *i < t.len() && t[*i] == '*' {
            *i += 1;
            x *= atom(t, i, env);
        }
        x
    }
    fn atom(t: &[char], i: &mut usize, env: &std::collections::BTreeMap<String, i64>) -> i64 {
        let start = *i;
        while *i < t.len() && (t[*i].is_alphanumeric() || t[*i] == '_') {
            *i += 1;
        }
        let word: String = t[start..*i].iter().collect();
        assert!(!word.is_empty(), "a number, a name or a call at {start}");
        if *i < t.len() && t[*i] == '(' {
            *i += 1;
            let mut args = vec![sum(t, i, env)];
            while t[*i] == ',' {
                *i += 1;
                args.push(sum(t, i, env));
            }
            assert_eq!(t[*i], ')');
            *i += 1;
            return match (word.as_str(), args.as_slice()) {
                ("ceil_div", [a, b]) => (a + b - 1) / b,
                ("bitlen", [x]) => 64 - i64::from(x.leading_zeros()),
                (f, a) => panic!("unknown function {f} of {} arguments", a.len()),
            };
        }
        word.parse().unwrap_or_else(|_| *env.get(&word).unwrap_or_else(|| panic!("unknown name `{word}`")))
    }
    let t: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut i = 0;
    let x = sum(&t, &mut i, env);
    assert_eq!(i, t.len(), "trailing text in `{text}`");
    x
}

/// Runs `loglinear emit --variant loglinear_mamba2 --out DIR ARGS` (which must succeed) and returns the manifest.
fn emit_manifest(dir: &std::path::Path, args: &[&str]) -> Value {
    let d = dir.to_str().unwrap();
    let head = ["loglinear", "emit", "--variant", "loglinear_mamba2", "--out", d];
    let argv = head.iter().chain(args).map(|s| s.to_string());
    let code = main_with_args(Registry::builtin(), loglinear::backends(), argv);
    assert_eq!(code, EXIT_OK, "emit {args:?}");
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/manifest.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_validator_catches_a_bad_manifest() {
    let mut errors = Vec::new();
    let bad = serde_json::json!({ "loglinear": "0", "variant": "x", "target": "nope", "shape": {}, "programs": [] });
    validate(&bad, &schema(), "$", &mut errors);
    assert!(errors.iter().any(|e| e.contains("$.target")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("`B` is missing")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("fewer than 2")), "{errors:?}");
}

#[test]
fn every_target_writes_a_valid_manifest() {
    let mut targets = vec!["wgsl", "spirv", "msl", "hlsl", "object"];
    if cfg!(feature = "mlir") {
        targets.extend(["ptx", "mlir"]);
    }
    for target in targets {
        let dir = tempfile::tempdir().unwrap();
        let m = emit_manifest(dir.path(), &["--target", target, "--shape", "2,50,2,8,4"]);
        let mut errors = Vec::new();
        validate(&m, &schema(), "$", &mut errors);
        assert!(errors.is_empty(), "{target}: {errors:#?}");
        assert!(dir.path().join("README.md").is_file(), "{target}");
        let ir = std::fs::read_to_string(dir.path().join(m["variant_ir"].as_str().unwrap())).unwrap();
        assert_eq!(ir, m["variant_ir_text"].as_str().unwrap());
        assert!(ir.contains("hierarchy = fenwick(lam)"), "{ir}");
        let names: Vec<&str> = m["sizes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        for p in m["programs"].as_array().unwrap() {
            for f in p["files"].as_array().unwrap().iter().chain([&p["kernel_ir"]]) {
                assert!(dir.path().join(f.as_str().unwrap()).is_file(), "{target}: {f} missing");
            }
            // The formulas, evaluated in order from the caller's values, give the listed values; the forward
            // program's are the runtime's sizes at the shape (B=2 T=50 H=2 K=8 V=4, L = num_levels(50) = 7).
            let values = &p["size_values"];
            let mut env: std::collections::BTreeMap<String, i64> =
                ["B", "T", "H", "L"].iter().map(|n| (n.to_string(), values[*n].as_i64().unwrap())).collect();
            env.insert("step".into(), values["t"].as_i64().unwrap());
            for n in &names {
                let x = eval(p["size_formulas"][*n].as_str().unwrap(), &env);
                assert_eq!(x, values[*n].as_i64().unwrap(), "{target} {}: {n}", p["role"]);
                env.insert(n.to_string(), x);
            }
            if p["role"] == "forward" {
                let c = p["chunk"].as_u64().unwrap() as usize;
                let want = loglinear::kernel::SizeEnv::new(2, 50, 2, 8, 4, 7, c, true).values();
                let got: Vec<i64> = names.iter().map(|n| values[*n].as_i64().unwrap()).collect();
                assert_eq!(got, want.to_vec(), "{target}");
                assert_eq!(p["schedule"]["chunk"], p["chunk"]);
            }
        }
    }
}

#[test]
fn tune_candidates_are_emitted_for_a_machine_without_a_compiler() {
    let dir = tempfile::tempdir().unwrap();
    let m =
        emit_manifest(dir.path(), &["--target", "wgsl", "--shape", "1,100,2,8,4", "--tune-candidates", "--keep", "3"]);
    let mut errors = Vec::new();
    validate(&m, &schema(), "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
    let programs = m["programs"].as_array().unwrap();
    let candidates: Vec<&Value> = programs.iter().filter(|p| p["role"] == "tune_candidate").collect();
    // The kept 3, the best of each (form, storage) not among them, minus the forward pick itself.
    assert!(candidates.len() >= 2, "{} candidates", candidates.len());
    let configs: std::collections::BTreeSet<&str> = programs.iter().map(|p| p["config"].as_str().unwrap()).collect();
    assert_eq!(configs.len(), programs.len() - 1, "every forward configuration once (the decode step aside)");
}
