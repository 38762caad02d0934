//! `emit --target mlir`: the MLIR module of each program for the CPU — as translated (func, scf, arith, math,
//! vector, llvm pointers) and lowered to the LLVM dialect — for MLIR-based toolchains (`mlir-translate
//! --mlir-to-llvmir`, then any LLVM back end). Needs a build with the `mlir` feature. Entry points take the
//! kernel ABI of the CPU backends: `(bufs: ptr to f32 pointers, sizes: ptr to 12 i64, lo: i64, hi: i64, scratch:
//! ptr)`.

use loglinear::kernel::kernel::Program;
use loglinear::RuntimeError;

use super::Emitted;

/// The backend whose schedule the module follows.
pub(crate) const BACKEND: &str = "mlir-cpu";

/// Whether this build can emit MLIR (it needs the `mlir` feature).
pub(crate) fn check() -> Result<(), RuntimeError> {
    if loglinear::HAS_MLIR {
        Ok(())
    } else {
        Err(RuntimeError::Unsupported {
            backend: BACKEND.into(),
            what: "emitting MLIR in this build: rebuild the CLI with `--features mlir` (MLIR/LLVM 22)".into(),
        })
    }
}

/// `<name>.mlir` (as translated) and `<name>.llvm.mlir` (the LLVM dialect), and each kernel's entry point.
pub(crate) fn emit(p: &Program, name: &str) -> Result<Emitted, RuntimeError> {
    check()?;
    let stages = loglinear::mlir_stages(p, false)
        .ok_or_else(|| RuntimeError::Internal("no MLIR in this build".into()))?
        .map_err(|message| RuntimeError::Backend { backend: "emit".into(), message })?;
    let mut files = Vec::new();
    for (stage, text) in stages {
        let file = if stage == "mlir" { format!("{name}.mlir") } else { format!("{name}.{stage}.mlir") };
        files.push((file, text.into_bytes()));
    }
    let kernels = p
        .kernels
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let grid: Vec<String> = k.grid.iter().map(|g| k.vars[g.0 as usize].extent.to_string()).collect();
            serde_json::json!({ "entry": format!("k{i}_{}", k.name), "grid": grid })
        })
        .collect();
    Ok(Emitted { files, kernels, fields: Default::default() })
}

/// Target-wide manifest fields.
pub(crate) fn manifest_fields() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "parameters".into(),
        "per kernel: bufs (pointer to one f32* per program buffer), sizes (pointer to B,T,H,K,V,L,NT,C,M,MS,LC,Step \
         as i64), lo: i64, hi: i64 (grid programs lo..hi, the last grid variable fastest), scratch (f32*, the \
         kernel's tiles: see the module)"
            .into(),
    );
    m
}
