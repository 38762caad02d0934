//! Every target's `manifest.json` validates against `docs/manifest.schema.json` (the subset of JSON Schema it
//! uses: type, required, properties, items, enum, minItems — checked by the small validator below, which fails on
//! any other keyword so that the schema cannot silently outgrow it).

use loglinear::Registry;
use loglinear_cli::{main_with_args, EXIT_OK};
use serde_json::Value;

fn validate(v: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    let s = schema.as_object().expect("a schema is an object");
    for key in s.keys() {
        let known =
            ["$schema", "$id", "title", "description", "type", "required", "properties", "items", "enum", "minItems"];
        assert!(known.contains(&key.as_str()), "schema keyword `{key}` at {path} is not supported by the validator");
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            other => panic!("type `{other}`"),
        };
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
        let d = dir.path().to_str().unwrap();
        let argv = [
            "loglinear",
            "emit",
            "--variant",
            "loglinear_mamba2",
            "--target",
            target,
            "--out",
            d,
            "--shape",
            "2,50,2,8,4",
        ];
        let code = main_with_args(Registry::builtin(), loglinear::backends(), argv.iter().map(|s| s.to_string()));
        assert_eq!(code, EXIT_OK, "{target}");
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap()).unwrap();
        let mut errors = Vec::new();
        validate(&m, &schema(), "$", &mut errors);
        assert!(errors.is_empty(), "{target}: {errors:#?}");
        for p in m["programs"].as_array().unwrap() {
            for f in p["files"].as_array().unwrap().iter().chain([&p["kernel_ir"]]) {
                assert!(dir.path().join(f.as_str().unwrap()).is_file(), "{target}: {f} missing");
            }
        }
    }
}

#[test]
fn tune_candidates_are_emitted_for_a_machine_without_a_compiler() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let argv = [
        "loglinear",
        "emit",
        "--variant",
        "loglinear_mamba2",
        "--target",
        "wgsl",
        "--out",
        d,
        "--shape",
        "1,100,2,8,4",
        "--tune-candidates",
        "--keep",
        "3",
    ];
    let code = main_with_args(Registry::builtin(), loglinear::backends(), argv.iter().map(|s| s.to_string()));
    assert_eq!(code, EXIT_OK);
    let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap()).unwrap();
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
