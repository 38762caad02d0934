//! `emit --target ptx`: NVIDIA `sm_90` PTX (PTX 8.0) through MLIR, for the `cuda` backend or any CUDA driver API
//! host (the parameter order of [`loglinear::kernel::device`]).

use loglinear::kernel::device::gpu_layout;
use loglinear::kernel::kernel::Program;
use loglinear::RuntimeError;

use super::Emitted;

/// The backend whose schedule the PTX follows.
pub(crate) const BACKEND: &str = "cuda";

/// Whether this build can emit PTX (it needs the `mlir` feature).
pub(crate) fn check() -> Result<(), RuntimeError> {
    loglinear::ptx_compiler().map(|_| ()).ok_or_else(|| RuntimeError::Unsupported {
        backend: BACKEND.into(),
        what: "emitting PTX in this build: rebuild the CLI with `--features mlir` (MLIR/LLVM 22)".into(),
    })
}

/// `<name>.ptx` and each kernel's entry point and launch parameters.
pub(crate) fn emit(p: &Program, name: &str) -> Result<Emitted, RuntimeError> {
    check()?;
    let compiler = loglinear::ptx_compiler().expect("checked");
    let code = compiler.ptx(p).map_err(|message| RuntimeError::Backend { backend: "emit".into(), message })?;
    let kernels = (0..p.kernels.len())
        .map(|i| {
            let k = &p.kernels[i];
            let l = gpu_layout(p, i);
            let grid: Vec<String> = k.grid.iter().map(|g| k.vars[g.0 as usize].extent.to_string()).collect();
            serde_json::json!({
                "entry": l.symbol,
                "threads": l.threads,
                "shared_bytes": l.shared_floats * 4,
                "scratch_floats_per_block": l.scratch_floats,
                "grid": grid,
            })
        })
        .collect();
    Ok(Emitted { files: vec![(format!("{name}.ptx"), code.into_bytes())], kernels, fields: Default::default() })
}

/// Target-wide manifest fields.
pub(crate) fn manifest_fields() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("arch".into(), "sm_90".into());
    m.insert(
        "parameters".into(),
        "per kernel: one f32* per buffer (program order; every buffer f32 on the device), the sizes \
         B,T,H,K,V,L,NT,C,M,MS,LC,Step as i64, lo: i64, hi: i64 (programs lo..hi, program lo + blockIdx.x, the \
         last grid variable fastest), scratch: f32* (scratch_floats_per_block per block)"
            .into(),
    );
    m
}
