//! Fuzzing support for the input path: case generators and the property every case must hold.
//!
//! The property ([`check_case`]): parsing any bytes as a safetensors file ([`parse_safetensors`]) and checking
//! the tensors against a variant ([`loglinear_ir::check_inputs`]) returns a value — `Ok` or an error — and
//! never panics, and every error names something (its message is not empty). The generators produce random
//! bytes, random headers, and valid input files with one thing changed (a byte, the header length, a shape, an
//! offset, a dtype, a name, a value made NaN/Inf/positive decay, a truncation). The CI test runs 10^5 cases;
//! the cargo-fuzz target in `fuzz/` calls [`check_case`] on arbitrary bytes for longer runs.

use std::path::Path;

use loglinear_ir::random::{random_inputs, Rng};
use loglinear_ir::VariantIr;

use crate::io::{encode_safetensors, parse_safetensors, DType};

/// Parses `bytes` and, when they parse, checks them as inputs of `variant`. Panics only if the property is
/// broken (an error with an empty message).
pub fn check_case(variant: &VariantIr, bytes: &[u8]) -> bool {
    match parse_safetensors(Path::new("fuzz.safetensors"), bytes) {
        Ok(loaded) => match loglinear_ir::check_inputs(variant, &loaded.into_tensor_map()) {
            Ok(_) => true,
            Err(e) => {
                assert!(!e.to_string().is_empty(), "an input error without a message");
                false
            }
        },
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a load error without a message");
            false
        }
    }
}

/// A valid input file for `variant` at a small random shape, each tensor in a random dtype.
pub fn valid_file(variant: &VariantIr, rng: &mut Rng) -> Vec<u8> {
    let dims = (1 + below(rng, 2), 1 + below(rng, 8), 1 + below(rng, 2), 1 + below(rng, 4), 1 + below(rng, 4));
    let x = random_inputs(variant, dims, below(rng, 3), rng.next_u64());
    let dtypes: Vec<DType> = x.keys().map(|_| DType::FLOATS[below(rng, 4)]).collect();
    let list: Vec<_> = x.iter().zip(&dtypes).map(|((n, t), d)| (n.as_str(), t, *d)).collect();
    encode_safetensors(&list).expect("valid tensors encode")
}

/// One generated case: random bytes, a random header, or a valid file with one mutation.
pub fn generate(variant: &VariantIr, rng: &mut Rng) -> Vec<u8> {
    match below(rng, 10) {
        0 => (0..below(rng, 64)).map(|_| rng.next_u64() as u8).collect(),
        1 => random_header(rng),
        _ => mutate(valid_file(variant, rng), rng),
    }
}

/// Uniform in `0..n` (`0` when `n` is 0).
fn below(rng: &mut Rng, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

fn random_header(rng: &mut Rng) -> Vec<u8> {
    const NAMES: [&str; 8] = ["q", "k", "v", "g", "beta", "lam", "__metadata__", "o"];
    const DTYPES: [&str; 8] = ["F64", "F32", "F16", "BF16", "I64", "U8", "F4", "?"];
    let mut json = String::from("{");
    for i in 0..below(rng, 5) {
        if i > 0 {
            json.push(',');
        }
        let shape: Vec<String> = (0..below(rng, 6)).map(|_| (rng.next_u64() % 5_000_000_000).to_string()).collect();
        let (a, b) = (rng.next_u64() % 64, rng.next_u64() % 64);
        json.push_str(&format!(
            r#""{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{a},{b}]}}"#,
            NAMES[below(rng, 8)],
            DTYPES[below(rng, 8)],
            shape.join(",")
        ));
    }
    json.push('}');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend((0..below(rng, 64)).map(|_| rng.next_u64() as u8));
    out
}

/// Replaces the first occurrence of `from` in the header with `to`, fixing up the header length.
fn edit_header(file: &[u8], from: &str, to: &str) -> Option<Vec<u8>> {
    let n = u64::from_le_bytes(file.get(..8)?.try_into().ok()?) as usize;
    let header = std::str::from_utf8(file.get(8..8 + n)?).ok()?;
    let at = header.find(from)?;
    let new = format!("{}{to}{}", &header[..at], &header[at + from.len()..]);
    let mut out = (new.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&file[8 + n..]);
    Some(out)
}

fn mutate(mut file: Vec<u8>, rng: &mut Rng) -> Vec<u8> {
    let n = u64::from_le_bytes(file[..8].try_into().expect("8 bytes")) as usize;
    match below(rng, 12) {
        0 => {
            for _ in 0..1 + below(rng, 3) {
                let i = below(rng, file.len());
                file[i] ^= 1 << below(rng, 8);
            }
            file
        }
        1 => {
            file.truncate(below(rng, file.len()));
            file
        }
        2 => {
            let len = [0, 1, n as u64 - 1, n as u64 + 1, u64::MAX, 100_000_001][below(rng, 6)];
            file[..8].copy_from_slice(&len.to_le_bytes());
            file
        }
        3 => {
            file.extend((0..1 + below(rng, 8)).map(|_| rng.next_u64() as u8));
            file
        }
        // valid header, one field changed
        4 => edit_header(&file, "\"shape\":[", "\"shape\":[7,").unwrap_or(file),
        5 => edit_header(&file, "\"data_offsets\":[", "\"data_offsets\":[1").unwrap_or(file),
        6 => {
            let to = ["\"I64\"", "\"F8_E4M3\"", "\"X\"", "1", "\"F64\""][below(rng, 5)];
            edit_header(&file, "\"F32\"", to).or_else(|| edit_header(&file, "\"F64\"", to)).unwrap_or(file)
        }
        7 => {
            let to = ["\"k\"", "\"nope\"", "\"\"", "\"q\\u0000\""][below(rng, 4)];
            edit_header(&file, "\"q\"", to).unwrap_or(file)
        }
        8 => edit_header(&file, "]", ",18446744073709551615]").unwrap_or(file),
        // data bytes set to NaN / Inf / large positive patterns
        9 | 10 => {
            if file.len() > 8 + n + 8 {
                let i = 8 + n + below(rng, file.len() - 8 - (8 + n));
                let pattern = [f64::NAN, f64::INFINITY, 1e300, 3.0][below(rng, 4)];
                file[i..i + 8].copy_from_slice(&pattern.to_le_bytes());
            }
            file
        }
        _ => file,
    }
}
