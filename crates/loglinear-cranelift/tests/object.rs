//! Ahead-of-time compilation into an object file (`compile_object`): every built-in's forward program in every
//! scan form, and its decode step, compiles into one ELF object exporting each kernel and the size helper, and
//! imports nothing (the C and Python consumers link it with no runtime library). Running the object is tested by
//! the consumers themselves (`loglinear-cli/tests/emit_object.rs`).

mod common;

use common::cranelift_runtime;
use loglinear_cranelift::{compile_object, JitOptions};
use loglinear_ir::builtins;
use loglinear_kernel::host::object_symbol as kernel_symbol;
use loglinear_runtime::{RunOptions, ScanForm, ScheduleConfig};

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn every_builtin_compiles_into_a_self_contained_object() {
    let rt = cranelift_runtime(1);
    let b = rt.get("cranelift").unwrap();
    for v in builtins::all() {
        let base = b.config(&v, &RunOptions::with_chunk_size(Some(8))).unwrap();
        let mut programs = Vec::new();
        for form in ScanForm::ALL {
            programs.push(b.program(&v, 8, 4, &ScheduleConfig { form, ..base }, false).unwrap());
        }
        programs.push(b.program(&v, 8, 4, &base, true).unwrap());
        for p in programs {
            let code = compile_object(&p, "ll_test", &JitOptions::default()).unwrap();
            assert_eq!(&code.bytes[..4], b"\x7fELF", "{}", p.name);
            assert!(code.imports.is_empty(), "{}: imports {:?}", p.name, code.imports);
            assert_eq!(code.kernels.len(), p.kernels.len());
            for (i, (k, o)) in p.kernels.iter().zip(&code.kernels).enumerate() {
                assert_eq!(o.symbol, kernel_symbol("ll_test", i, &k.name));
                assert!(contains(&code.bytes, &o.symbol), "{}: {} not in the object", p.name, o.symbol);
                assert!(o.scratch_floats > 0 && o.code_size > 0);
            }
            assert!(contains(&code.bytes, &code.sizes_symbol));
        }
    }
}

#[test]
fn bad_prefixes_and_unspecialised_programs_are_refused() {
    let rt = cranelift_runtime(1);
    let b = rt.get("cranelift").unwrap();
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let config = b.config(&v, &RunOptions::default()).unwrap();
    let p = b.program(&v, 8, 4, &config, false).unwrap();
    for prefix in ["", "1abc", "a-b", "a.b"] {
        assert!(compile_object(&p, prefix, &JitOptions::default()).is_err(), "prefix {prefix:?}");
    }
    let unspecialised = loglinear_kernel::Program { specialised: None, ..p };
    assert!(compile_object(&unspecialised, "ok", &JitOptions::default()).is_err());
}
