//! `loglinear emit`: standalone kernels for another runtime, with a manifest.
//!
//! For a variant and a problem shape, emit writes the code of the programs a backend would run — the forward
//! pass and the decode step, with the schedule the runtime picks for that shape — into an existing directory:
//! one file per program named by its [`fingerprint`] (what the `cuda` backend loads with `--kernels DIR` /
//! `LOGLINEAR_CUDA_KERNELS`), the program's kernel IR beside it (`.kir`), and `manifest.json` listing every
//! program: its entry points, threads, shared memory and scratch per grid program, grid extents, buffers with
//! their dtypes and symbolic shapes, and the parameter order of [`loglinear::kernel::device`].

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use loglinear::kernel::device::{fingerprint, gpu_layout};
use loglinear::kernel::kernel::{BufKind, Program};
use loglinear::{Registry, RunOptions, Runtime, RuntimeError};

/// What `emit` writes.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum EmitTarget {
    /// PTX for NVIDIA `sm_90` (PTX 8.0), for the `cuda` backend and the CUDA driver API (needs a build with
    /// the `mlir` feature)
    Ptx,
}

/// Arguments of `loglinear emit`.
#[derive(Args, Debug)]
pub struct EmitArgs {
    /// Variant name (see `loglinear list`)
    #[arg(long, value_name = "NAME")]
    pub variant: String,
    /// What to emit
    #[arg(long, value_enum)]
    pub target: EmitTarget,
    /// Output directory (must exist); files of other programs already there are kept
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Problem shape B,T,H,K,V: K and V are compiled in; B, T and H pick the schedule as a run would
    #[arg(long, value_name = "B,T,H,K,V", default_value = "1,1024,4,64,64")]
    pub shape: String,
    /// Sequences of the decode step (its V split depends on them, as in a run)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub decode_batch: usize,
    /// Chunk size: a power of two in 1..=256 (default: the variant's)
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    pub chunk_size: Option<usize>,
    /// Schedule fields as `key=value` pairs (`form=fused,storage=bf16,v_block=16`); fields not given keep the
    /// backend's pick
    #[arg(long, value_name = "CONFIG")]
    pub config: Option<String>,
}

/// Runs `loglinear emit`.
///
/// # Errors
/// [`RuntimeError::InvalidArgument`] for a missing output directory or a bad shape; the backend's errors.
pub fn cmd_emit(registry: &Registry, backends: &Runtime, args: &EmitArgs) -> Result<(), RuntimeError> {
    let variant = registry.get(&args.variant)?;
    if !args.out.is_dir() {
        return Err(RuntimeError::InvalidArgument {
            argument: "--out".into(),
            value: args.out.display().to_string(),
            expected: "an existing directory".into(),
        });
    }
    let (b, t, h, k, v) = crate::cli::parse_shape(&args.shape)?;
    if args.decode_batch == 0 {
        return Err(RuntimeError::InvalidArgument {
            argument: "--decode-batch".into(),
            value: "0".into(),
            expected: "a positive integer".into(),
        });
    }
    let (backend_name, compiler) = match args.target {
        EmitTarget::Ptx => ("cuda", loglinear::ptx_compiler()),
    };
    let Some(compiler) = compiler else {
        return Err(RuntimeError::Unsupported {
            backend: backend_name.into(),
            what: "emitting PTX in this build: rebuild the CLI with `--features mlir` (MLIR/LLVM 22)".into(),
        });
    };
    let backend = backends.get(backend_name)?;
    let mut opts = RunOptions::with_chunk_size(args.chunk_size);
    if let Some(text) = &args.config {
        opts.overrides = text.parse::<loglinear::ConfigOverrides>()?;
    }
    let l = if variant.is_log_linear() { loglinear::ir::level::num_levels(t) } else { 0 };
    let dims = loglinear::Dims { b, t, h, k, v, l };
    let forward = backend.config_for(variant, &dims, &opts)?;
    let decode = backend.decode_config(variant, &loglinear::Dims { b: args.decode_batch, t: 1, ..dims }, &opts)?;
    let mut entries = Vec::new();
    for (role, config, is_decode) in [("forward", forward, false), ("decode_step", decode, true)] {
        let p = backend.program(variant, k, v, &config, is_decode)?;
        let name = fingerprint(&p);
        let code = compiler.ptx(&p).map_err(|message| RuntimeError::Backend { backend: "emit".into(), message })?;
        let file = format!("{name}.ptx");
        write_atomic(&args.out.join(&file), code.as_bytes())?;
        write_atomic(&args.out.join(format!("{name}.kir")), p.to_string().as_bytes())?;
        entries.push(manifest_entry(role, &config.to_string(), &p, &file));
        println!("{role}: {} ({config}) -> {}", p.name, args.out.join(&file).display());
    }
    let manifest = serde_json::json!({
        "loglinear": env!("CARGO_PKG_VERSION"),
        "variant": variant.name,
        "target": "ptx",
        "arch": "sm_90",
        "shape": { "B": b, "T": t, "H": h, "K": k, "V": v, "decode_batch": args.decode_batch },
        "parameters": "per kernel: one f32* per buffer (program order), the sizes B,T,H,K,V,L,NT,C,M,MS,LC,Step as \
                       i64, lo: i64, hi: i64 (programs lo..hi, program lo + blockIdx.x), scratch: f32* \
                       (scratch_floats per block)",
        "programs": entries,
    });
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| RuntimeError::Internal(e.to_string()))?;
    write_atomic(&args.out.join("manifest.json"), text.as_bytes())?;
    Ok(())
}

/// One program's entry in `manifest.json`.
fn manifest_entry(role: &str, config: &str, p: &Program, file: &str) -> serde_json::Value {
    let kernels: Vec<serde_json::Value> = (0..p.kernels.len())
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
    let buffers: Vec<serde_json::Value> = p
        .buffers
        .iter()
        .map(|b| {
            let kind = match &b.kind {
                BufKind::Input(n) => format!("input {n}"),
                BufKind::Output => "output".into(),
                BufKind::Scratch => "scratch".into(),
                BufKind::State => "state".into(),
            };
            let shape: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
            serde_json::json!({ "name": b.name, "kind": kind, "dtype": "f32", "stored": b.elem.ir_name(), "shape": shape })
        })
        .collect();
    serde_json::json!({
        "role": role,
        "program": p.name,
        "fingerprint": fingerprint(p),
        "file": file,
        "kernel_ir": file.replace(".ptx", ".kir"),
        "config": config,
        "kernels": kernels,
        "buffers": buffers,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory (no partial file on failure).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let fail = |e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        RuntimeError::Write { path: path.to_path_buf(), reason: e.to_string() }
    };
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
