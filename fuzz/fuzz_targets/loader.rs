//! libFuzzer target: arbitrary bytes through the safetensors loader and the input checks of every built-in
//! variant (the property of `loglinear_runtime::fuzz::check_case`: a value, never a panic).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the variant, the rest is the file.
    if let Some((&pick, bytes)) = data.split_first() {
        let variants = loglinear_ir::builtins::all();
        let v = &variants[pick as usize % variants.len()];
        loglinear_runtime::fuzz::check_case(v, bytes);
    }
});
