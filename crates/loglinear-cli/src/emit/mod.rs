//! `loglinear emit`: standalone kernels for another runtime, with a manifest.
//!
//! For a variant and a problem shape, emit writes the code of the programs a backend would run — the forward
//! pass and the decode step, with the schedule the runtime picks for that shape (on the backend the target
//! belongs to: `ptx` → cuda, `wgsl`/`spirv`/`msl`/`hlsl` → wgsl, `object` → cranelift) — into an existing
//! directory: per program, its code files named by its [`fingerprint`] (what the `cuda` backend loads with
//! `--kernels DIR`), the program's kernel IR beside them (`.kir`), and `manifest.json` listing every program: its
//! entry points and their launch parameters (threads, memory, grid extents), buffers with their dtypes and
//! symbolic shapes. One module per target ([`ptx`], …) turns a program into files and manifest entries.

mod mlir;
mod object;
mod ptx;
mod shader;

pub use object::ObjectCodegen;

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use loglinear::kernel::device::fingerprint;
use loglinear::kernel::kernel::{BufKind, Program, Sym};
use loglinear::kernel::{ScheduleConfig, SizeEnv};
use loglinear::{Registry, RunOptions, Runtime, RuntimeError};
use loglinear_wgsl::ShaderLang;

/// What `emit` writes.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum EmitTarget {
    /// PTX for NVIDIA `sm_90` (PTX 8.0), for the `cuda` backend and the CUDA driver API (needs a build with
    /// the `mlir` feature)
    Ptx,
    /// The MLIR module for the CPU, as translated and in the LLVM dialect (needs a build with the `mlir` feature)
    Mlir,
    /// WGSL compute shaders, one per kernel (WebGPU, wgpu)
    Wgsl,
    /// SPIR-V compute shaders (Vulkan), translated from the WGSL by naga
    Spirv,
    /// Metal Shading Language compute shaders, translated from the WGSL by naga
    Msl,
    /// HLSL compute shaders (DirectX 12), translated from the WGSL by naga
    Hlsl,
    /// A native object file for this CPU (x86-64 SysV, position-independent) with a C header declaring the entry
    /// points and a run helper
    Object,
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
    /// Code generator of `--target object`: Cranelift, or MLIR and LLVM (a build with the `mlir` feature)
    #[arg(long, value_enum, default_value = "cranelift")]
    pub codegen: object::ObjectCodegen,
    /// Sequences of the decode step (its V split depends on them, as in a run)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub decode_batch: usize,
    /// Also the forward program of every configuration `loglinear tune` would measure at this shape (so that a
    /// machine without a compiler — the GPU machine for `ptx` — can tune)
    #[arg(long)]
    pub tune_candidates: bool,
    /// With --tune-candidates: only the cost model's best N besides the default, as `tune --keep N` would pick
    /// on this machine (default: every candidate the backend can compile, whatever the memory of the machine
    /// that tunes — a superset of what any `tune` measures)
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Chunk size: a power of two in 1..=256 (default: the variant's)
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    pub chunk_size: Option<usize>,
    /// Dtype the inputs will be held in (picks the tuned configuration for them, if any)
    #[arg(long, value_enum, default_value = "f32")]
    pub(crate) input_dtype: crate::cli::DtypeArg,
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
    let backend_name = match args.target {
        EmitTarget::Ptx => ptx::BACKEND,
        EmitTarget::Mlir => mlir::BACKEND,
        EmitTarget::Object => object::backend(args.codegen),
        EmitTarget::Wgsl | EmitTarget::Spirv | EmitTarget::Msl | EmitTarget::Hlsl => shader::BACKEND,
    };
    if args.codegen != object::ObjectCodegen::Cranelift && args.target != EmitTarget::Object {
        return Err(RuntimeError::InvalidArgument {
            argument: "--codegen".into(),
            value: "mlir".into(),
            expected: "--target object (the other targets have one code generator each)".into(),
        });
    }
    // Refuse a target this build cannot emit before any work.
    match args.target {
        EmitTarget::Ptx => ptx::check()?,
        EmitTarget::Mlir => mlir::check()?,
        EmitTarget::Object => object::check(args.codegen)?,
        EmitTarget::Wgsl | EmitTarget::Spirv | EmitTarget::Msl | EmitTarget::Hlsl => {}
    }
    let backend = backends.get(backend_name)?;
    let mut opts = RunOptions::with_chunk_size(args.chunk_size);
    if let Some(text) = &args.config {
        opts.overrides = text.parse::<loglinear::ConfigOverrides>()?;
    }
    let levels = |tokens: usize| if variant.is_log_linear() { loglinear::ir::level::num_levels(tokens) } else { 0 };
    let l = levels(t);
    let dims = loglinear::Dims { b, t, h, k, v, l };
    // The configuration a run would use: the tuned one for this shape and input dtype if `loglinear tune` left
    // one (the tuning cache), else the runtime's pick.
    let (forward, tuned) = backend.run_config(variant, &dims, args.input_dtype.into(), &opts)?;
    if tuned {
        println!("forward: the tuned configuration for this shape ({forward})");
    }
    let decode = backend.decode_config(variant, &loglinear::Dims { b: args.decode_batch, t: 1, ..dims }, &opts)?;
    // Every file is made before any is written: a failure leaves the directory as it was.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut entries = Vec::new();
    let mut target_fields = serde_json::Map::new();
    let mut programs = vec![("forward", forward, false), ("decode_step", decode, true)];
    if args.tune_candidates {
        let no_tune = RunOptions { no_tune: true, ..opts.clone() };
        let default = backend.config_for(variant, &dims, &no_tune)?;
        let (keep, budget) = match args.keep {
            Some(n) => (n, u128::from(loglinear::runtime::engine::default_max_scratch())),
            None => (usize::MAX, u128::MAX),
        };
        let plan =
            loglinear::runtime::tune::plan(&backend, variant, &dims, args.input_dtype.into(), &default, keep, budget);
        for c in plan.measure {
            if c.config != forward {
                programs.push(("tune_candidate", c.config, false));
            }
        }
    }
    for (role, config, is_decode) in programs {
        let p = backend.program(variant, k, v, &config, is_decode)?;
        // The sizes at the emitted shape: the forward pass over T tokens; a decode step of `decode_batch`
        // sequences at position T (levels for T + 1 tokens).
        let mut at = if is_decode {
            SizeEnv::new(args.decode_batch, 1, h, k, v, levels(t + 1), p.chunk, p.hierarchical)
        } else {
            SizeEnv::new(b, t, h, k, v, levels(t), p.chunk, p.hierarchical)
        };
        if is_decode {
            at.step = t;
        }
        let name = fingerprint(&p);
        let emitted = match args.target {
            EmitTarget::Ptx => ptx::emit(&p, &name)?,
            EmitTarget::Mlir => mlir::emit(&p, &name)?,
            EmitTarget::Object => object::emit(&p, &name, args.codegen)?,
            EmitTarget::Wgsl => shader::emit(&p, &name, None, config.threads)?,
            EmitTarget::Spirv => shader::emit(&p, &name, Some(ShaderLang::Spirv), config.threads)?,
            EmitTarget::Msl => shader::emit(&p, &name, Some(ShaderLang::Msl), config.threads)?,
            EmitTarget::Hlsl => shader::emit(&p, &name, Some(ShaderLang::Hlsl), config.threads)?,
        };
        let kir = format!("{name}.kir");
        let mut entry = serde_json::json!({
            "role": role,
            "program": p.name,
            "fingerprint": name,
            "files": emitted.files.iter().map(|f| f.0.clone()).collect::<Vec<_>>(),
            "kernel_ir": kir,
            "config": config.to_string(),
            "schedule": schedule(&config),
            "chunk": p.chunk,
            "size_formulas": size_formulas(&p, k, v),
            "size_values": SizeEnv::ORDER.iter().map(|s| (s.name().to_string(), at.get(*s).into()))
                .collect::<serde_json::Map<_, _>>(),
            "log_linear": p.hierarchical,
            "buffers": buffers(&p),
            "kernels": emitted.kernels,
        });
        if let (Some(e), Some(first)) = (entry.as_object_mut(), emitted.files.first()) {
            e.insert("file".into(), first.0.clone().into());
        }
        println!(
            "{role}: {} ({config}) -> {}",
            p.name,
            emitted.files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>().join(", ")
        );
        target_fields.extend(emitted.fields);
        files.extend(emitted.files);
        files.push((kir, p.to_string().into_bytes()));
        entries.push(entry);
    }
    let variant_ir = format!("{}.ir", variant.name);
    files.push((variant_ir.clone(), variant.to_string().into_bytes()));
    let mut manifest = serde_json::json!({
        "loglinear": env!("CARGO_PKG_VERSION"),
        "variant": variant.name,
        "variant_ir": variant_ir,
        "variant_ir_text": variant.to_string(),
        "target": args.target.name(),
        "shape": { "B": b, "T": t, "H": h, "K": k, "V": v, "decode_batch": args.decode_batch },
        "layout": "every buffer row-major (C order) and contiguous, tensors [B, T, H, D] as fla; the element type the \
                   code takes is the target's (`parameters` or `dispatch`: f32 everywhere except 16-bit shader inputs)",
        "sizes": SizeEnv::ORDER.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "size_inputs": size_inputs(),
        "state": state_description(variant.is_log_linear()),
        "programs": entries,
    });
    if let Some(m) = manifest.as_object_mut() {
        let extra = match args.target {
            EmitTarget::Ptx => ptx::manifest_fields(),
            EmitTarget::Mlir => mlir::manifest_fields(),
            EmitTarget::Object => object::manifest_fields(),
            EmitTarget::Wgsl => shader::manifest_fields(None),
            EmitTarget::Spirv => shader::manifest_fields(Some(ShaderLang::Spirv)),
            EmitTarget::Msl => shader::manifest_fields(Some(ShaderLang::Msl)),
            EmitTarget::Hlsl => shader::manifest_fields(Some(ShaderLang::Hlsl)),
        };
        m.extend(extra);
        m.extend(target_fields);
    }
    files.push(("README.md".into(), readme(args.target, variant.name.as_str(), &args.shape).into_bytes()));
    for (file, bytes) in &files {
        write_atomic(&args.out.join(file), bytes)?;
    }
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| RuntimeError::Internal(e.to_string()))?;
    write_atomic(&args.out.join("manifest.json"), text.as_bytes())?;
    Ok(())
}

/// What a target made of one program: its files (name, contents) and one manifest entry per kernel.
pub(crate) struct Emitted {
    /// Files, the main one first.
    pub files: Vec<(String, Vec<u8>)>,
    /// Per kernel: entry point and launch parameters.
    pub kernels: Vec<serde_json::Value>,
    /// Target-wide manifest fields learnt from the code (the object's triple and CPU features); equal for every
    /// program of one emit.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl EmitTarget {
    /// The name on the command line and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            EmitTarget::Ptx => "ptx",
            EmitTarget::Mlir => "mlir",
            EmitTarget::Object => "object",
            EmitTarget::Wgsl => "wgsl",
            EmitTarget::Spirv => "spirv",
            EmitTarget::Msl => "msl",
            EmitTarget::Hlsl => "hlsl",
        }
    }
}

/// The manifest's description of a program's buffers: name, kind, stored dtype, symbolic shape.
fn buffers(p: &Program) -> Vec<serde_json::Value> {
    p.buffers
        .iter()
        .map(|b| {
            let kind = match &b.kind {
                BufKind::Input(n) => format!("input {n}"),
                BufKind::Output => "output".into(),
                BufKind::Scratch => "scratch".into(),
                BufKind::State => "state".into(),
            };
            let shape: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
            serde_json::json!({ "name": b.name, "kind": kind, "dtype": b.elem.ir_name(), "shape": shape })
        })
        .collect()
}

/// The schedule as fields (the `config` string, parsed).
fn schedule(c: &ScheduleConfig) -> serde_json::Value {
    serde_json::json!({
        "chunk": c.chunk,
        "form": c.form.name(),
        "storage": c.storage.ir_name(),
        "accum": c.accum.ir_name(),
        "threads": c.threads,
        "v_block": c.v_block,
    })
}

/// Each run-time size of program `p` ([`SizeEnv::ORDER`]) as a formula over the caller's values (`B`, `T`, `H`,
/// `L`, `step`: [`size_inputs`]; `K` and `V` are compiled in) and the other sizes: integers, names, `+ - *`, `ceil_div(a, b)` and `bitlen(x)`
/// (the bits needed to write `x ≥ 0`; `bitlen(0) = 0`). What [`SizeEnv::new`] computes.
fn size_formulas(p: &Program, k: usize, v: usize) -> serde_json::Map<String, serde_json::Value> {
    SizeEnv::ORDER
        .iter()
        .map(|s| {
            let f = match s {
                Sym::B => "B".to_string(),
                Sym::T => "T".to_string(),
                Sym::H => "H".to_string(),
                Sym::K => k.to_string(),
                Sym::V => v.to_string(),
                Sym::L => "L".to_string(),
                Sym::NT => format!("ceil_div(T, {})", p.chunk),
                Sym::C => p.chunk.to_string(),
                Sym::M if p.hierarchical => "bitlen(NT - 1)".to_string(),
                Sym::MS if p.hierarchical => "M + 1".to_string(),
                Sym::LC if p.hierarchical => "L".to_string(),
                Sym::M | Sym::MS | Sym::LC => "1".to_string(),
                Sym::Step => "step".to_string(),
            };
            (s.name().to_string(), f.into())
        })
        .collect()
}

/// What the caller supplies to the size formulas.
fn size_inputs() -> serde_json::Value {
    serde_json::json!({
        "B": "sequences in the batch (the decode step: sequences stepped together)",
        "T": "tokens per sequence (1 for the decode step)",
        "H": "heads",
        "L": "λ levels, the last dimension of `lam`: num_levels(T) = bitlen(T - 1) + 1 for T > 1, else 1 (the \
              decode step: the state's L_cap, at least num_levels(step + 1)); any value for variants that are not \
              log-linear (treated as 1)",
        "step": "the decode step's position (tokens the state holds before this one); 0 for the forward program",
    })
}

/// How the `state` buffer is laid out and used.
fn state_description(log_linear: bool) -> serde_json::Value {
    serde_json::json!({
        "buffer": "state",
        "shape": ["B", "H", "LC", "K", "V"],
        "levels": if log_linear {
            "LC = L levels per (sequence, head): level 0 holds the current chunk's tokens, level ℓ ≥ 1 the ℓ-th \
             Fenwick segment of the prefix (spec §4); a K×V matrix each"
        } else {
            "LC = 1: the linear-attention state, a K×V matrix per (sequence, head)"
        },
        "forward": "the forward program writes the final state after the T tokens (fla's output_final_state)",
        "decode_step": "the decode step reads the state at position `step` and updates it in place to step + 1; \
                        an empty state (position 0) is all zeros; fla's initial_state is a state at its position",
    })
}

/// The README written beside the files.
fn readme(target: EmitTarget, variant: &str, shape: &str) -> String {
    let how = match target {
        EmitTarget::Ptx => {
            "Load `<fingerprint>.ptx` with the CUDA driver API (`cuModuleLoadData`), look up each \
            kernel's `entry`, and launch it with `threads` threads per block and ceil(programs / blocks) blocks per \
            launch over the grid's programs (`parameters` gives the argument list). docs/EMIT.md has a PyTorch \
            example."
        }
        EmitTarget::Object => {
            "Link `<fingerprint>.o` (x86-64 SysV ELF, position-independent; the symbols it imports, if any, are \
            the manifest's `imports`: link with `-lm`) and include `<fingerprint>.h`: it declares the entry points \
            and `_sizes`, `_alloc`, `_run` helpers. `cc -shared` turns the object into a library for ctypes."
        }
        EmitTarget::Mlir => {
            "`<fingerprint>.mlir` is the CPU module as translated, `<fingerprint>.llvm.mlir` in the \
            LLVM dialect: `mlir-translate --mlir-to-llvmir` then `llc` give an object with the `object` target's \
            entry-point ABI (`parameters`)."
        }
        EmitTarget::Wgsl | EmitTarget::Spirv | EmitTarget::Msl | EmitTarget::Hlsl => {
            "One compute shader per kernel \
            (`files`). Bind the program's buffers, the `sizes` uniform and the spill buffer as each kernel's \
            `bindings` say and dispatch as `dispatch` says."
        }
    };
    format!(
        "# loglinear kernels: `{variant}` ({target})\n\n\
         Written by `loglinear emit --target {target} --variant {variant} --shape {shape}` (loglinear {version}).\n\n\
         - `manifest.json`: every program (`forward`, `decode_step`, …): its code files, entry points and launch \
         parameters, buffers (name, kind, dtype, symbolic shape, row-major), the run-time sizes as formulas \
         (`size_formulas`, over `size_inputs`) and at the emitted shape (`size_values`), the state's layout, the \
         schedule. Its JSON schema is `docs/manifest.schema.json` in the loglinear repository.\n\
         - `<fingerprint>.kir`: each program's kernel IR (what the code computes, readable).\n\
         - `{variant}.ir`: the variant's IR (its inputs, transition and gating).\n\n\
         {how}\n\n\
         Buffers of kind `output`, `scratch` and `state` start at zero before a forward run (a decode step keeps its \
         state). Complete examples: docs/EMIT.md.\n",
        target = target.name(),
        version = env!("CARGO_PKG_VERSION"),
    )
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
