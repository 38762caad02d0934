//! The `loglinear` command line.
//!
//! Exit codes: 0 on success; 2 for any bad input or usage error, with one line `error: ...` on stderr; 1 for
//! internal failures (and for a demo with a failing row). Output files are written atomically, so a failure
//! never leaves a partial file.

use std::ffi::OsString;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use loglinear::ir::{InputKind, VariantIr};
use loglinear::runtime::{
    check_chunk_size, check_finite_tensor, encode_tensors, DType, OutputFile, RunOptions, Runtime, RuntimeError,
    SafetensorsFile,
};

use crate::demo::{format_table, run_demo, DemoOptions};
use loglinear::Registry;

/// The shape `compile --cost` uses when `--shape` is not given.
const DEFAULT_COST_SHAPE: &str = "1,16384,4,64,64";

/// The backend `loglinear run` uses when `--backend` is not given.
pub const DEFAULT_BACKEND: &str = "cranelift";

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for internal failures (and failing demo rows).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for bad input and usage errors.
pub const EXIT_USAGE: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "loglinear",
    version,
    about = "Compile and run log-linear attention variants",
    long_about = "Compile and run log-linear attention variants.\n\nExit codes: 0 success, 1 internal failure \
                  (or a failing demo row), 2 bad input or usage."
)]
struct Cli {
    /// Log level on stderr (overrides RUST_LOG; default: RUST_LOG, else warn)
    #[arg(long, global = true, value_enum, value_name = "LEVEL")]
    log_level: Option<LogLevel>,

    /// GPU adapter for the wgsl backend, by index (see `loglinear backends`; default: wgpu's high-performance
    /// choice, or LOGLINEAR_DEVICE); the CUDA device ordinal for the cuda backend (default 0)
    #[arg(long, global = true, value_name = "N")]
    device: Option<usize>,

    /// Directory of PTX files for the cuda backend (`<fingerprint>.ptx`, written by `loglinear emit --target
    /// ptx`; default: LOGLINEAR_CUDA_KERNELS)
    #[arg(long, global = true, value_name = "DIR")]
    kernels: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the registered variants: name, transition class, hierarchy, inputs
    List,
    /// Print a variant's IR in its text form
    Describe {
        /// Variant name (see `loglinear list`)
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List the registered backends
    Backends,
    /// Run a variant on inputs from a safetensors file and write its output `o`
    Run(RunArgs),
    /// Lower a variant through the pass pipeline; print its IR after each pass and/or its cost
    Compile(CompileArgs),
    /// Run every log-linear variant on every backend with random inputs and compare with the naive f64 oracle
    Demo(DemoArgs),
    /// Time a variant on a backend (median, min, max, GFLOP/s, first call); `--baselines` adds interpreter-f32,
    /// a hand-written rustc implementation and the linear form on the same inputs
    Bench(BenchArgs),
    /// Write random inputs for a variant (spec §11.5 distributions) to a safetensors file, e.g. to try `run`
    Random(RandomArgs),
    /// Write standalone kernels (forward and decode step) and a manifest for another runtime, e.g. PTX for
    /// `--backend cuda --kernels DIR`
    Emit(crate::emit::EmitArgs),
    /// Search schedule configurations for a variant, backend and shape (pruned with the cost model, the
    /// survivors measured) and keep the fastest in the tuning cache, which `run` and `bench` then use for
    /// every shape in the same bucket (T and B·H by powers of two)
    Tune(TuneArgs),
}

/// An element type on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum DtypeArg {
    F64,
    F32,
    F16,
    Bf16,
}

impl From<DtypeArg> for DType {
    fn from(d: DtypeArg) -> DType {
        match d {
            DtypeArg::F64 => DType::F64,
            DtypeArg::F32 => DType::F32,
            DtypeArg::F16 => DType::F16,
            DtypeArg::Bf16 => DType::BF16,
        }
    }
}

#[derive(Args, Debug)]
struct RandomArgs {
    /// Variant name (see `loglinear list`)
    #[arg(long, value_name = "NAME")]
    variant: String,
    /// Problem shape: B,T,H,K,V
    #[arg(long, value_name = "B,T,H,K,V")]
    shape: String,
    /// Element type of every tensor
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Seed
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output safetensors file (same rules as `run --output`)
    #[arg(long, value_name = "OUT.safetensors")]
    output: PathBuf,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Variant name (see `loglinear list`)
    #[arg(long, value_name = "NAME")]
    variant: String,
    /// Backend (see `loglinear backends`)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_BACKEND)]
    backend: String,
    /// Input safetensors file: one tensor per variant input, by its plain name (q, k, v, g, beta, lam, ...)
    #[arg(long, value_name = "IN.safetensors")]
    input: PathBuf,
    /// Output safetensors file; holds `o` [B, T, H, V] in the dtype of `v`. It must be absent or a regular file
    /// (a device, FIFO, socket or directory is refused) and not the same file as the input. It is written
    /// atomically: the bytes go to `.<name>.loglinear-partial` beside it, renamed over it when complete and
    /// removed on any error or on Ctrl-C/SIGTERM; a leftover `*.loglinear-partial` (after the process was killed)
    /// is an incomplete output and may be deleted
    #[arg(long, value_name = "OUT.safetensors")]
    output: PathBuf,
    /// Write the output even when some element is NaN or ±Inf in its dtype (by default that is an error, exit 2:
    /// the inputs are out of the representable range)
    #[arg(long)]
    allow_nonfinite: bool,
    /// Chunk size: a power of two in 1..=256 (default: the variant's)
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    chunk_size: Option<usize>,
    /// Inter-chunk scan form (default: per-level, or streaming when per-level's scratch would exceed
    /// --max-scratch)
    #[arg(long, value_enum)]
    form: Option<FormArg>,
    /// Schedule fields as `key=value` pairs (`storage=bf16,form=fused,threads=256`); fields not given keep the
    /// backend's pick (the scan form included); `--chunk-size` and `--form` override its fields when given
    #[arg(long, value_name = "CONFIG")]
    config: Option<String>,
    /// Most scratch memory the per-level form may take before the streaming form is used instead: bytes, or
    /// with a K, M, G suffix (default: a quarter of physical memory)
    #[arg(long, value_name = "BYTES")]
    max_scratch: Option<String>,
    /// Continue from a state (`state` [B, H, L, K, V], `position` [B] i64, as --final-state writes them): the
    /// input's tokens follow position `position` of each sequence (all sequences at the same position)
    #[arg(long, value_name = "STATE.safetensors")]
    initial_state: Option<PathBuf>,
    /// Also write the state after the last token: `state` [B, H, L', K, V] (f32; L' = λ's levels, 1 for a
    /// linear variant) and `position` [B] (i64), the layout a decoder continues from (spec §6.1)
    #[arg(long, value_name = "STATE.safetensors")]
    final_state: Option<PathBuf>,
    /// Ignore the tuning cache (`loglinear tune`): run the backend's default pick
    #[arg(long)]
    no_tune: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormArg {
    /// One masked scan per chunk level (spec §7.2)
    PerLevel,
    /// All chunk levels carried in one pass (end of spec §7.2)
    Fused,
    /// The fused pass with each chunk's primitives computed in the walk: O(L·K·V) scratch per head
    Streaming,
}

impl From<FormArg> for loglinear_schedule::ScanForm {
    fn from(f: FormArg) -> Self {
        match f {
            FormArg::PerLevel => loglinear_schedule::ScanForm::PerLevel,
            FormArg::Fused => loglinear_schedule::ScanForm::Fused,
            FormArg::Streaming => loglinear_schedule::ScanForm::Streaming,
        }
    }
}

#[derive(Args, Debug)]
struct CompileArgs {
    /// Variant name (see `loglinear list`)
    #[arg(long, value_name = "NAME")]
    variant: String,
    /// Chunk size: a power of two in 1..=256 (default: the variant's)
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    chunk_size: Option<usize>,
    /// Inter-chunk scan form (default: the config's, else per-level)
    #[arg(long, value_enum)]
    form: Option<FormArg>,
    /// Print the IR: `after-all` (every stage) or the name of one pass (validate, classify, schedule, lower,
    /// split_v, specialise, decompose, cse, dce, verify)
    #[arg(long, value_name = "WHEN")]
    dump_ir: Option<String>,
    /// Schedule configuration as `key=value` pairs (`chunk=32,form=fused,storage=bf16,v_block=16`); `--chunk-size`
    /// and `--form` override its fields when given
    #[arg(long, value_name = "CONFIG")]
    config: Option<String>,
    /// Run `decompose`: every compound op becomes primitives (what a new backend starts from)
    #[arg(long)]
    decompose: bool,
    /// Print the cost model's FLOPs, bytes moved and peak memory for `--shape`
    #[arg(long)]
    cost: bool,
    /// Problem shape B,T,H,K,V: for `--cost` (default 1,16384,4,64,64) and, when given, the K and V that
    /// `specialise` fixes in the dump
    #[arg(long, value_name = "B,T,H,K,V")]
    shape: Option<String>,
    /// Also translate the forward program (decomposed, at the shape's K and V) through MLIR and print each stage:
    /// `cpu` (as translated, then the LLVM dialect) or `gpu` (as translated, the NVVM dialect, PTX). Needs a build
    /// with the `mlir` feature
    #[arg(long, value_enum, value_name = "TARGET")]
    mlir: Option<MlirArg>,
}

/// Where `compile --mlir` lowers to.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum MlirArg {
    Cpu,
    Gpu,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Batch size B
    #[arg(long, default_value_t = 1)]
    b: usize,
    /// Sequence length T (best not a multiple of the chunk size)
    #[arg(long, default_value_t = 100)]
    t: usize,
    /// Number of heads H
    #[arg(long, default_value_t = 2)]
    h: usize,
    /// Key dimension K
    #[arg(long, default_value_t = 16)]
    k: usize,
    /// Value dimension V
    #[arg(long, default_value_t = 24)]
    v: usize,
    /// Chunk size given to every backend: a power of two in 1..=256
    #[arg(long, value_name = "C", default_value_t = 16, allow_negative_numbers = true)]
    chunk_size: usize,
    /// Extra λ levels beyond ⌈log2 T⌉ + 1 (must be ignored by every backend)
    #[arg(long, value_name = "N", default_value_t = 0)]
    extra_levels: usize,
    /// Seed of the random inputs
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only this variant (repeatable; default: every log-linear variant)
    #[arg(long = "variant", value_name = "NAME")]
    variants: Vec<String>,
    /// Only this backend (repeatable; default: every backend)
    #[arg(long = "backend", value_name = "NAME")]
    backends: Vec<String>,
    /// Also run the linear (non-log-linear) variants
    #[arg(long)]
    include_linear: bool,
    /// Skip the scaling tables (prefill as T doubles, decode as tokens accumulate)
    #[arg(long)]
    no_scaling: bool,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Variant name (see `loglinear list`)
    #[arg(long, value_name = "NAME")]
    variant: String,
    /// Backend (see `loglinear backends`)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_BACKEND)]
    backend: String,
    /// Problem shape: B,T,H,K,V (with --decode: N,T0,H,K,V — sequences and prefill length)
    #[arg(long, value_name = "B,T,H,K,V", default_value = "1,1024,4,64,64")]
    shape: String,
    /// Chunk size: a power of two in 1..=256 (default: the variant's)
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    chunk_size: Option<usize>,
    /// Timed repetitions per row
    #[arg(long, value_name = "N", default_value_t = 5)]
    reps: usize,
    /// Untimed calls after the first call, before the timed ones
    #[arg(long, value_name = "N", default_value_t = 1)]
    warmup: usize,
    /// Also time interpreter-f32, the hand-written rustc baseline and the linear form, on the same inputs
    #[arg(long)]
    baselines: bool,
    /// Threads of the hand-written rustc baseline (heads are split between them)
    #[arg(long, value_name = "N", default_value_t = 1)]
    baseline_threads: usize,
    /// Seed of the random inputs
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Measure decode steps after a T0-token prefill instead of the forward pass: µs per step, tokens/s, bytes
    /// of state moved per step and GB/s, against a plain copy of the state in the same run and the linear
    /// form's step (--reps timed steps)
    #[arg(long)]
    decode: bool,
    /// Dtype the inputs are held in, as in a user's file (the backend reads them in it)
    #[arg(long, value_enum, default_value = "f32")]
    input_dtype: DtypeArg,
    /// Schedule fields as `key=value` pairs (`chunk=32,form=fused,storage=bf16,threads=256`); fields not given
    /// keep the backend's pick (the scan form included); `--chunk-size` overrides its chunk
    #[arg(long, value_name = "CONFIG")]
    config: Option<String>,
    /// Time on device-resident inputs (uploaded once, untimed), the output left on the device: the GPU figure
    #[arg(long)]
    resident: bool,
    /// Ignore the tuning cache (`loglinear tune`): time the backend's default pick
    #[arg(long)]
    no_tune: bool,
}

#[derive(Args, Debug)]
struct TuneArgs {
    /// Variant name (see `loglinear list`)
    #[arg(long, value_name = "NAME")]
    variant: String,
    /// Backend (see `loglinear backends`)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_BACKEND)]
    backend: String,
    /// Problem shape of the measured runs: B,T,H,K,V (the result serves every T and B·H up to the next power of
    /// two)
    #[arg(long, value_name = "B,T,H,K,V")]
    shape: String,
    /// Time for the search, compiles included: a number with ms, s, m or h (the default configuration is always
    /// measured)
    #[arg(long, value_name = "DURATION", default_value = "60s", allow_hyphen_values = true)]
    budget: String,
    /// Dtype the inputs are held in (16-bit inputs also try 16-bit storage)
    #[arg(long, value_enum, default_value = "f32")]
    input_dtype: DtypeArg,
    /// Candidates measured besides the default: the cost model's best N (and the best of each scan form and
    /// storage type)
    #[arg(long, value_name = "N", default_value_t = 12)]
    keep: usize,
    /// Search even when the cache has a result for this bucket (the new winner replaces it)
    #[arg(long)]
    force: bool,
}

/// Runs the CLI on the process's arguments with `registry`'s variants and every backend of [`loglinear::backends`];
/// returns the exit code.
pub fn main_with(registry: Registry) -> i32 {
    main_with_args(registry, loglinear::backends(), std::env::args_os())
}

/// Runs the CLI on `args` (the first one is the program name) with these variants and backends; returns the
/// exit code. Never panics on bad input; a panic inside is reported as an internal failure (exit code 1).
pub fn main_with_args<I, T>(registry: Registry, backends: Runtime, args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => return clap_error(e),
    };
    init_logging(cli.log_level);
    install_signal_cleanup();
    let mut backends = backends;
    if let Some(n) = cli.device {
        backends.register(std::sync::Arc::new(loglinear::WgpuTarget::with_adapter(n)));
    }
    if cli.device.is_some() || cli.kernels.is_some() {
        let mut cuda = loglinear::cuda_target();
        if let Some(n) = cli.device {
            cuda = cuda.with_device(n);
        }
        if let Some(dir) = &cli.kernels {
            cuda = cuda.with_kernels_dir(dir);
        }
        backends.register(std::sync::Arc::new(cuda));
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&registry, &backends, cli.command)));
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            e.exit_code()
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            eprintln!("error: internal error: {}", one_line(&msg));
            EXIT_FAILURE
        }
    }
}

/// Help and version go to stdout with exit code 0; any other clap error becomes one `error: ...` line on stderr
/// with exit code 2.
fn clap_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            EXIT_OK
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            use clap::CommandFactory;
            let names: Vec<String> =
                Cli::command().get_subcommands().map(|c| c.get_name().to_string()).filter(|n| n != "help").collect();
            eprintln!("error: no command given; expected one of: {} (see --help)", names.join(", "));
            EXIT_USAGE
        }
        _ => {
            let text = e.render().to_string();
            // Clap's message is the lines before the first blank line (the rest is usage and tips).
            let head: Vec<&str> =
                text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).filter(|l| !l.is_empty()).collect();
            let mut line = head.join(" ");
            if !line.starts_with("error:") {
                line = format!("error: {line}");
            }
            eprintln!("{line} (see --help)");
            EXIT_USAGE
        }
    }
}

/// On SIGINT/SIGTERM (and SIGHUP), removes the partial output files being written and exits with 130. Installed
/// once per process; a user's program that already has its own handler keeps it.
fn install_signal_cleanup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            loglinear::runtime::remove_partial_files();
            eprintln!("error: interrupted; no output written");
            std::process::exit(130);
        });
    });
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

fn init_logging(level: Option<LogLevel>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        // Cranelift logs every function it defines at info: keep its crates at warn unless RUST_LOG asks.
        Some(l) => EnvFilter::new(format!("{},cranelift_jit=warn,cranelift_codegen=warn", l.directive())),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    // A user's binary may already have installed a subscriber: keep theirs.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn dispatch(registry: &Registry, backends: &Runtime, command: Command) -> Result<i32, RuntimeError> {
    match command {
        Command::List => {
            print_out(&list_text(registry));
            Ok(EXIT_OK)
        }
        Command::Describe { name } => {
            let v = registry.get(&name)?;
            let mut text = format!("{v}");
            if !text.ends_with('\n') {
                text.push('\n');
            }
            print_out(&text);
            Ok(EXIT_OK)
        }
        Command::Backends => {
            let w = backends.iter().map(|b| b.name().len()).max().unwrap_or(0);
            let names = |d: &[DType]| d.iter().map(|x| x.ir_name()).collect::<Vec<_>>().join(",");
            let mut text: String = backends
                .iter()
                .map(|b| {
                    let c = b.capabilities();
                    let device = b.target().map(|t| t.device()).unwrap_or_default();
                    let state = match b.availability() {
                        Ok(()) if device.is_empty() => String::new(),
                        Ok(()) => format!("\n{:<w$}  on {device}", ""),
                        Err(why) => format!("\n{:<w$}  unavailable: {why}", ""),
                    };
                    format!(
                        "{:<w$}  {} [storage {}; accumulation {}]{state}\n",
                        b.name(),
                        b.description(),
                        names(&c.storage),
                        names(&c.accum)
                    )
                })
                .collect();
            let adapters = loglinear::adapters();
            if !adapters.is_empty() {
                text.push_str("\nGPU adapters (--device N):\n");
                for (i, a) in adapters.iter().enumerate() {
                    text.push_str(&format!("  {i}: {a}\n"));
                }
            }
            print_out(&text);
            Ok(EXIT_OK)
        }
        Command::Run(args) => cmd_run(registry, backends, &args).map(|()| EXIT_OK),
        Command::Compile(args) => cmd_compile(registry, &args).map(|()| EXIT_OK),
        Command::Demo(args) => cmd_demo(registry, backends, args),
        Command::Bench(args) => cmd_bench(registry, backends, &args).map(|()| EXIT_OK),
        Command::Random(args) => cmd_random(registry, &args).map(|()| EXIT_OK),
        Command::Emit(args) => crate::emit::cmd_emit(registry, backends, &args).map(|()| EXIT_OK),
        Command::Tune(args) => cmd_tune(registry, backends, &args).map(|()| EXIT_OK),
    }
}

/// Writes to stdout, ignoring a closed pipe (`loglinear list | head`).
fn print_out(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes()).and_then(|()| out.flush());
}

/// `loglinear list`: one line per variant.
fn list_text(registry: &Registry) -> String {
    let rows: Vec<[String; 4]> = registry
        .iter()
        .map(|v| {
            let inputs =
                v.inputs.iter().map(|d| format!("{}:{}", d.name, d.kind.keyword())).collect::<Vec<_>>().join(" ");
            let hier = if v.is_log_linear() { "log-linear" } else { "linear" };
            [v.name.clone(), v.class().name().to_string(), hier.to_string(), inputs]
        })
        .collect();
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r[2].len()).max().unwrap_or(0);
    rows.iter().map(|r| format!("{:<w0$}  {:<w1$}  {:<w2$}  {}\n", r[0], r[1], r[2], r[3])).collect()
}

/// The dtype `o` is written in: that of the variant's (first) value input, F64 when there is none.
fn output_dtype(variant: &VariantIr, inputs: &loglinear::Bindings<'_>) -> DType {
    variant
        .inputs
        .iter()
        .filter(|d| d.kind == InputKind::Value)
        .find_map(|d| inputs.get(&d.name).map(|t| t.dtype))
        .unwrap_or(DType::F64)
}

fn cmd_run(registry: &Registry, backends: &Runtime, args: &RunArgs) -> Result<(), RuntimeError> {
    let variant = registry.get(&args.variant)?;
    let backend = backends.get(&args.backend)?;
    if let Some(c) = args.chunk_size {
        check_chunk_size(c)?;
    }
    let output = OutputFile::prepare(&args.output, &[args.input.as_path()])?;
    let state_out = match &args.final_state {
        Some(p) => {
            if p == &args.output {
                return Err(RuntimeError::InvalidArgument {
                    argument: "--final-state".into(),
                    value: p.display().to_string(),
                    expected: "a path other than --output".into(),
                });
            }
            Some(OutputFile::prepare(p, &[args.input.as_path()])?)
        }
        None => None,
    };
    // Memory-mapped; the tensors are typed views of the file, never widened.
    let file = SafetensorsFile::open(&args.input)?;
    let mut inputs = file.views()?;
    // A packed batch: `cu_seqlens` [N+1] (i64) with B = 1, as fla and FlashAttention take it.
    let cu = match inputs.remove(loglinear::runtime::CU_SEQLENS) {
        Some(cu) => {
            let b = inputs.get("q").map_or(1, |q| q.shape.first().copied().unwrap_or(1));
            let t = inputs.get("q").map_or(0, |q| q.shape.get(1).copied().unwrap_or(0));
            Some(loglinear::runtime::check_cu_seqlens(&cu, b, t)?)
        }
        None => None,
    };
    let dtype = output_dtype(variant, &inputs);
    let start = Instant::now();
    let mut opts = RunOptions::with_chunk_size(args.chunk_size);
    if let Some(text) = &args.config {
        opts.overrides = text.parse::<loglinear::ConfigOverrides>()?;
    }
    if let Some(m) = &args.max_scratch {
        opts.max_scratch = Some(parse_bytes("--max-scratch", m)?);
    }
    if let Some(f) = args.form {
        opts.overrides.form = Some(f.into());
    }
    opts.no_tune = args.no_tune;
    let initial = match &args.initial_state {
        Some(path) => {
            if cu.is_some() {
                return Err(RuntimeError::InvalidArgument {
                    argument: "--initial-state".into(),
                    value: path.display().to_string(),
                    expected: "no cu_seqlens in the input (a packed batch starts every sequence at position 0)".into(),
                });
            }
            let sf = SafetensorsFile::open(path)?;
            let views = sf.views()?;
            let get = |name: &str| {
                views.get(name).map(|t| t.to_owned()).ok_or_else(|| RuntimeError::InvalidArgument {
                    argument: "--initial-state".into(),
                    value: format!("{} has no `{name}` tensor", path.display()),
                    expected: "tensors `state` [B, H, L, K, V] and `position` [B] (i64)".into(),
                })
            };
            let (st, pos) = (get("state")?, get("position")?);
            let shape = |n: &str| inputs.get(n).map(|t| t.shape.to_vec()).unwrap_or_default();
            let (q, v) = (shape("q"), shape("v"));
            let (h, k, vd) =
                (q.get(2).copied().unwrap_or(0), q.get(3).copied().unwrap_or(0), v.get(3).copied().unwrap_or(0));
            Some(loglinear::runtime::DecodeState::from_tensors(variant, &st, &pos, (h, k, vd))?)
        }
        None => None,
    };
    let (loglinear::runtime::Ran { o, config, dims }, state) = match (&cu, state_out.is_some()) {
        _ if initial.is_some() => {
            let mut st = initial.expect("some");
            let ran = backend.prefill_from(variant, &mut st, &inputs, &opts)?;
            (ran, Some(st))
        }
        (Some(cu), want) => backend.run_varlen(variant, &inputs, cu, &opts, want)?,
        (None, true) => {
            let (ran, st) = backend.prefill(variant, &inputs, &opts)?;
            (ran, Some(st))
        }
        (None, false) => (backend.run(variant, &inputs, &opts)?, None),
    };
    let expected = [dims.b, dims.t, dims.h, dims.v];
    if o.shape() != expected {
        return Err(RuntimeError::Backend {
            backend: backend.name().into(),
            message: format!("returned `o` of shape {:?}; expected {expected:?}", o.shape()),
        });
    }
    let o = o.convert(dtype);
    if args.allow_nonfinite {
        if check_finite_tensor("o", &o, &inputs).is_err() {
            tracing::warn!(variant = %variant.name, %dtype, "output `o` has non-finite elements (--allow-nonfinite)");
        }
    } else {
        check_finite_tensor("o", &o, &inputs)?;
    }
    tracing::info!(
        variant = %variant.name,
        backend = backend.name(),
        %dims,
        %config,
        ms = start.elapsed().as_secs_f64() * 1e3,
        "ran"
    );
    // Both files are complete before either is renamed into place.
    let state_bytes = match &state {
        Some(st) => {
            let s = st.state.clone().convert(DType::F32);
            if let Some(i) = s.to_f64().iter().position(|x| !x.is_finite()) {
                return Err(RuntimeError::NonFiniteOutput {
                    element: format!("state element {i}"),
                    value: f64::NAN,
                    dtype: DType::F32,
                    max_input: 0.0,
                    max_input_tensor: "-".into(),
                });
            }
            Some(encode_tensors(&[("state", &s), ("position", &st.position_tensor())])?)
        }
        None => None,
    };
    if let (Some(f), Some(b)) = (state_out, state_bytes) {
        f.write(&b)?;
    }
    // The header, then `o`'s bytes straight from the tensor: no serialised copy of the output in memory.
    output.write_parts(&[&loglinear::runtime::safetensors_header(&[("o", &o)]), o.bytes()])?;
    tracing::info!(path = %args.output.display(), %dtype, "wrote o");
    Ok(())
}

/// `123`, `64K`, `512M`, `4G` (powers of 1024).
fn parse_bytes(argument: &str, s: &str) -> Result<u64, RuntimeError> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>().ok().and_then(|n| n.checked_mul(mul)).ok_or_else(|| RuntimeError::InvalidArgument {
        argument: argument.into(),
        value: s.into(),
        expected: "a byte count, optionally with a K, M or G suffix".into(),
    })
}

fn cmd_random(registry: &Registry, args: &RandomArgs) -> Result<(), RuntimeError> {
    let variant = registry.get(&args.variant)?;
    let shape = parse_shape(&args.shape)?;
    let output = OutputFile::prepare(&args.output, &[])?;
    let dtype: DType = args.dtype.into();
    let x = loglinear::random::random_inputs(variant, shape, 0, args.seed);
    let list: Vec<(&str, &loglinear::HostTensor, DType)> = x.iter().map(|(n, t)| (n.as_str(), t, dtype)).collect();
    output.write(&loglinear::runtime::encode_safetensors(&list)?)?;
    Ok(())
}

/// Parses `B,T,H,K,V`.
pub(crate) fn parse_shape(s: &str) -> Result<(usize, usize, usize, usize, usize), RuntimeError> {
    let bad = || RuntimeError::InvalidArgument {
        argument: "--shape".into(),
        value: s.to_string(),
        expected: "five positive integers B,T,H,K,V (e.g. 1,16384,4,64,64)".into(),
    };
    let parts: Vec<usize> =
        s.split(',').map(|p| p.trim().parse::<usize>().map_err(|_| bad())).collect::<Result<_, _>>()?;
    match parts[..] {
        [b, t, h, k, v] if parts.iter().all(|x| *x > 0) => Ok((b, t, h, k, v)),
        _ => Err(bad()),
    }
}

fn cmd_compile(registry: &Registry, args: &CompileArgs) -> Result<(), RuntimeError> {
    use loglinear_schedule::{DumpWhen, ScheduleConfig, ScheduleError, PASSES};
    let variant = registry.get(&args.variant)?;
    if let Some(c) = args.chunk_size {
        check_chunk_size(c)?;
    }
    let shape = parse_shape(args.shape.as_deref().unwrap_or(DEFAULT_COST_SHAPE))?;
    let mut opts = match &args.config {
        Some(text) => text.parse::<ScheduleConfig>()?,
        None => ScheduleConfig::with_chunk(variant.chunk_size),
    };
    if let Some(c) = args.chunk_size {
        opts.chunk = c;
    }
    if let Some(f) = args.form {
        opts.form = f.into();
    }
    // With an explicit --shape, the dump shows `specialise` on its K and V too.
    let sizes = args.shape.as_ref().map(|_| (shape.3, shape.4));
    let to_err = |e: ScheduleError| match e {
        ScheduleError::UnknownPass(p) => RuntimeError::InvalidArgument {
            argument: "--dump-ir".into(),
            value: p,
            expected: format!(
                "`after-all` or a pass name ({})",
                PASSES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
            ),
        },
        ScheduleError::ChunkSize(c) => RuntimeError::ChunkSize { value: c, max: loglinear::ir::MAX_CHUNK_SIZE },
        ScheduleError::Config(e) => RuntimeError::Config(e),
        other => RuntimeError::Backend { backend: "compile".into(), message: other.to_string() },
    };
    let mut out = String::new();
    match args.dump_ir.as_deref() {
        Some(when) => {
            let when = match when {
                "after-all" | "all" => DumpWhen::AfterAll,
                p => DumpWhen::After(p.strip_prefix("after-").unwrap_or(p).to_string()),
            };
            out.push_str(&loglinear_schedule::dump_with(variant, &opts, sizes, when, args.decompose).map_err(to_err)?);
        }
        None => {
            let c = if args.decompose {
                loglinear_schedule::compile_decomposed(variant, &opts, sizes)
            } else {
                loglinear_schedule::compile_with(variant, &opts, sizes, None)
            }
            .map_err(to_err)?;
            out.push_str(&format!(
                "compiled `{}` (class {}, chunk {}, {:?}): {} forward kernels, {} decode kernels; passes: {}\n",
                variant.name,
                variant.class().name(),
                c.chunk,
                c.form,
                c.forward.kernels.len(),
                c.decode.kernels.len(),
                PASSES.iter().map(|p| p.name).collect::<Vec<_>>().join(" -> ")
            ));
        }
    }
    if let Some(target) = args.mlir {
        let mut p =
            loglinear_schedule::compile_decomposed(variant, &opts, Some((shape.3, shape.4))).map_err(to_err)?.forward;
        p.set_types(opts.storage, opts.accum);
        let gpu = matches!(target, MlirArg::Gpu);
        let stages = loglinear::mlir_stages(&p, gpu)
            .ok_or_else(|| RuntimeError::Unsupported {
                backend: "compile".into(),
                what: "--mlir in this build: rebuild the CLI with `--features mlir` (MLIR/LLVM 22)".into(),
            })?
            .map_err(|message| RuntimeError::Backend { backend: "mlir".into(), message })?;
        for (stage, text) in stages {
            if !out.ends_with('\n') && !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("; MLIR stage `{stage}` of `{}` (K={}, V={})\n{text}", p.name, shape.3, shape.4));
        }
    }
    if args.cost {
        let chunk = args.chunk_size.unwrap_or(variant.chunk_size);
        let cost = loglinear_schedule::cost(variant, shape, chunk).map_err(to_err)?;
        let (b, t, h, k, v) = shape;
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("; cost of `{}` at B={b} T={t} H={h} K={k} V={v} C={chunk}\n{cost}", variant.name));
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    print_out(&out);
    Ok(())
}

/// `loglinear bench`: the measuring is `loglinear_bench::run_bench`, shared with `cargo bench`.
fn cmd_bench(registry: &Registry, backends: &Runtime, args: &BenchArgs) -> Result<(), RuntimeError> {
    let variant = registry.get(&args.variant)?;
    backends.get(&args.backend)?;
    if let Some(c) = args.chunk_size {
        check_chunk_size(c)?;
    }
    let shape = parse_shape(&args.shape)?;
    let positive = |argument: &str, value: usize| {
        if value == 0 {
            Err(RuntimeError::InvalidArgument {
                argument: argument.into(),
                value: "0".into(),
                expected: "a positive integer".into(),
            })
        } else {
            Ok(())
        }
    };
    positive("--reps", args.reps)?;
    positive("--baseline-threads", args.baseline_threads)?;
    if args.decode {
        let b = backends.get(&args.backend)?;
        let overrides =
            args.config.as_deref().map(str::parse::<loglinear::ConfigOverrides>).transpose()?.unwrap_or_default();
        let spec = loglinear_bench::DecodeSpec {
            variant: variant.clone(),
            shape,
            steps: args.reps,
            seed: args.seed,
            overrides,
        };
        let report = loglinear_bench::run_decode_bench(&b, &spec)?;
        print!("{}", loglinear_bench::format_decode_report(&report));
        return Ok(());
    }
    let overrides =
        args.config.as_deref().map(str::parse::<loglinear::ConfigOverrides>).transpose()?.unwrap_or_default();
    if let Some(c) = overrides.chunk {
        check_chunk_size(c)?;
    }
    let spec = loglinear_bench::BenchSpec {
        variant: variant.clone(),
        backend: args.backend.clone(),
        shape,
        chunk_size: args.chunk_size.or(overrides.chunk),
        reps: args.reps,
        warmup: args.warmup,
        baselines: args.baselines,
        baseline_threads: args.baseline_threads,
        seed: args.seed,
        input_dtype: args.input_dtype.into(),
        overrides,
        resident: args.resident,
        no_tune: args.no_tune,
    };
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(loglinear_bench::total_steps(&spec))
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    let report = loglinear_bench::run_bench(backends, &spec, &mut |step| {
        bar.set_message(format!("{}: {}", step.label, step.phase));
        bar.inc(1);
    });
    bar.finish_and_clear();
    print_out(&loglinear_bench::format_report(&report?));
    Ok(())
}

/// `loglinear tune`: the search is `loglinear_runtime::tune::tune`; a winner that cannot be saved is an error
/// after the table.
fn cmd_tune(registry: &Registry, backends: &Runtime, args: &TuneArgs) -> Result<(), RuntimeError> {
    use loglinear::runtime::tune;
    let variant = registry.get(&args.variant)?;
    let backend = backends.get(&args.backend)?;
    let shape = parse_shape(&args.shape)?;
    let budget = tune::parse_duration("--budget", &args.budget)?;
    let spec = tune::TuneSpec {
        input_dtype: args.input_dtype.into(),
        budget,
        keep: args.keep,
        force: args.force,
        ..tune::TuneSpec::new(shape)
    };
    let bar =
        if std::io::stderr().is_terminal() { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}") {
        bar.set_style(style);
    }
    let report = tune::tune(&backend, variant, &spec, &mut |step| {
        bar.set_length(step.total as u64);
        bar.set_position(step.index as u64);
        bar.set_message(step.config.to_string());
    });
    bar.finish_and_clear();
    let report = report?;
    print_out(&tune::format_report(&report));
    match (&report.save_error, &report.cache_file) {
        (Some(reason), Some(path)) => Err(RuntimeError::Write { path: path.clone(), reason: reason.clone() }),
        (Some(_), None) => Err(RuntimeError::InvalidArgument {
            argument: tune::CACHE_ENV.into(),
            value: "(unset, as are XDG_CACHE_HOME and HOME)".into(),
            expected: "a directory to keep tuned configurations in".into(),
        }),
        (None, _) => Ok(()),
    }
}

fn cmd_demo(registry: &Registry, backends: &Runtime, args: DemoArgs) -> Result<i32, RuntimeError> {
    let args_no_scaling = args.no_scaling;
    let opts = DemoOptions {
        b: args.b,
        t: args.t,
        h: args.h,
        k: args.k,
        v: args.v,
        chunk_size: args.chunk_size,
        extra_levels: args.extra_levels,
        seed: args.seed,
        variants: args.variants,
        backends: args.backends,
        include_linear: args.include_linear,
    };
    let total = crate::demo::plan(registry, backends, &opts)?.len();
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(total as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    let rows = run_demo(registry, backends, &opts, |row| {
        bar.set_message(format!("{} on {}", row.variant, row.backend));
        bar.inc(1);
    });
    bar.finish_and_clear();
    let rows = rows?;
    print_out(&format_table(&rows, &opts));
    if !args_no_scaling {
        let v = registry.get("loglinear_mamba2")?;
        let backend = if backends.get(DEFAULT_BACKEND).is_ok() { DEFAULT_BACKEND } else { "interpreter-f32" };
        print_out(&crate::demo::scaling_tables(backends, backend, v)?);
    }
    let failed = rows.iter().filter(|r| !r.ok()).count();
    if failed > 0 {
        eprintln!("error: {failed} of {} demo runs failed (see the table above)", rows.len());
        Ok(EXIT_FAILURE)
    } else {
        Ok(EXIT_OK)
    }
}
