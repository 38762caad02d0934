//! `emit --target wgsl|spirv|msl|hlsl`: one compute shader per kernel, as the `wgsl` backend generates it
//! (WebGPU's portable limits: 128 invocations, 16 KiB of workgroup memory, tiles past it in a spill buffer), and
//! naga's SPIR-V, MSL and HLSL translations of it. A host binds the buffers the manifest lists per kernel and
//! dispatches one workgroup per grid program.

use loglinear::kernel::kernel::Program;
use loglinear::RuntimeError;
use loglinear_wgsl::{cross_compile, translate_program, BindingRole, DeviceElem, ShaderLang, WgslOptions};

use super::Emitted;

/// The backend whose schedule the shaders follow.
pub(crate) const BACKEND: &str = "wgsl";

/// WebGPU's guaranteed invocations per workgroup (`maxComputeInvocationsPerWorkgroup`): the most an emitted
/// shader may ask for, since the host that runs it is unknown.
pub(crate) const MAX_PORTABLE_INVOCATIONS: usize = 256;

/// Shaders for every kernel of `p` with `threads` invocations per workgroup (`None`: 128): `<name>.k<i>.<ext>`,
/// and each kernel's bindings and dispatch.
///
/// # Errors
/// [`RuntimeError::Unsupported`] (exit code 2) for more invocations than every WebGPU device runs.
pub(crate) fn emit(
    p: &Program,
    name: &str,
    lang: Option<ShaderLang>,
    threads: Option<usize>,
) -> Result<Emitted, RuntimeError> {
    let fail = |message: String| RuntimeError::Backend { backend: "emit".into(), message };
    let mut opts = WgslOptions::default();
    if let Some(t) = threads {
        if t > MAX_PORTABLE_INVOCATIONS {
            return Err(RuntimeError::Unsupported {
                backend: BACKEND.into(),
                what: format!(
                    "threads={t} invocations per workgroup in emitted shaders (WebGPU guarantees \
                     {MAX_PORTABLE_INVOCATIONS}; use `--config threads=N` with N ≤ {MAX_PORTABLE_INVOCATIONS})"
                ),
            });
        }
        opts.workgroup_size = t as u32;
    }
    let kernels = translate_program(p, &opts).map_err(|e| fail(e.to_string()))?;
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for (i, k) in kernels.iter().enumerate() {
        let (ext, bytes) = match lang {
            None => ("wgsl", k.source.clone().into_bytes()),
            Some(l) => {
                (l.extension(), cross_compile(&k.source, l).map_err(|m| fail(format!("kernel `{}`: {m}", k.name)))?)
            }
        };
        let file = format!("{name}.k{i}.{ext}");
        let bindings: Vec<serde_json::Value> = k
            .bindings
            .iter()
            .map(|b| {
                let (role, element) = match b.role {
                    BindingRole::Sizes => ("sizes".to_string(), "i32"),
                    BindingRole::Spill => ("spill".to_string(), "f32"),
                    BindingRole::Buffer(id) => {
                        let buf = &p.buffers[id.0 as usize];
                        let element = match loglinear_wgsl::device_elem(buf) {
                            DeviceElem::F32 => "f32",
                            DeviceElem::PackedF16 => "f16x2 in u32",
                            DeviceElem::PackedBf16 => "bf16x2 in u32",
                        };
                        (format!("buffer {}", buf.name), element)
                    }
                };
                serde_json::json!({ "group": 0, "binding": b.binding, "role": role, "element": element, "writable": b.writable })
            })
            .collect();
        let grid: Vec<String> = k.grid.iter().map(|d| d.to_string()).collect();
        entries.push(serde_json::json!({
            "entry": "main",
            "file": file,
            "kernel": k.name,
            "workgroup_size": k.workgroup_size,
            "workgroup_bytes": k.workgroup_bytes,
            "spill_floats_per_workgroup": k.spill,
            "grid": grid,
            "storage_buffers": k.bindings.len(),
            "bindings": bindings,
        }));
        files.push((file, bytes));
    }
    Ok(Emitted { files, kernels: entries, fields: Default::default() })
}

/// Target-wide manifest fields.
pub(crate) fn manifest_fields(lang: Option<ShaderLang>) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "dispatch".into(),
        "one workgroup per grid program: dispatch (x, y, 1) workgroups with x·y ≥ ∏ grid (x ≤ 65535), programs \
         numbered x-fastest, the last grid variable fastest; binding `sizes` holds B,T,H,K,V,L,NT,C,M,MS,LC,Step as \
         i32 (NT = ceil(T/C), M = bitlen(NT−1) for log-linear variants else 1, MS = M+1 else 1, LC = L else 1); the \
         spill binding holds spill_floats_per_workgroup f32 per grid program; buffers are f32 except 16-bit inputs, \
         two per u32 (low half first); output, scratch and states start at zero"
            .into(),
    );
    if lang.is_none() {
        m.insert(
            "overrides".into(),
            "`wave_base` (u32, default 0): the first grid program of this dispatch, for grids run in several".into(),
        );
    }
    m
}
