//! # loglinear-wgpu: the WGSL backend's runtime
//!
//! A [`Target`] that runs kernel IR on a GPU through wgpu (Vulkan, Metal, DX12; lavapipe on a machine without a
//! GPU). It asks the runtime for **decomposed** programs (`Capabilities::primitives_only`), translates each
//! kernel with `loglinear-wgsl` (validated by naga) for the adapter's limits (workgroup memory, invocations),
//! builds one compute pipeline per kernel, and runs a program as one command buffer: one compute pass per kernel
//! in program order, one workgroup per grid program.
//!
//! * **Memory.** Scratch buffers, zero-filled states and the spill buffer are kept by the executable between
//!   runs (a pool) and cleared on the GPU only when the kernel IR needs them zero (`analysis::needs_zeroing`);
//!   inputs stored in f16/bf16 stay 16-bit on the device (two per word).
//! * **Residency.** [`Target::upload`] puts a tensor in a GPU buffer; `run_resident` binds such buffers, leaves
//!   the output on the GPU and waits for completion; [`Target::download`] reads it back.
//! * **Adapters.** [`adapters`] lists them; [`WgpuTarget::with_adapter`] picks one (`--device N`,
//!   `LOGLINEAR_DEVICE`); the default is wgpu's high-performance choice.

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use loglinear_kernel::analysis::needs_zeroing;
use loglinear_kernel::kernel::{BufKind, Program};
use loglinear_kernel::verify::dim_value;
use loglinear_kernel::{
    Bindings, Capabilities, CompileStats, DType, DeviceBindings, DeviceStates, DeviceTensor, Executable, KernelStats,
    ScheduleConfig, SizeEnv, States, Target, TargetError, Tensor, TensorRef,
};
use loglinear_wgsl::{device_elem, translate_program, BindingRole, DeviceElem, WgslKernel, WgslOptions, WAVE_BASE};

const NAME: &str = "wgsl";

/// Invocations per workgroup when the configuration does not say (`threads`): 256 ran LL-Mamba-2 at B=8 T=4096
/// H=16 in 32 ms on the H200 against 47 ms with 128 (docs/BENCHMARKS.md).
pub const DEFAULT_WORKGROUP_SIZE: u32 = 256;

/// The name of the memory a [`DeviceTensor`] of this backend lives in.
const MEMORY: &str = "wgpu";

/// The GPU a target runs on.
struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    /// The loop iterations the driver lets one invocation run before it silently cuts every later loop short
    /// (Mesa's llvmpipe, under lavapipe: `LP_MAX_TGSI_LOOP_ITERATIONS`, 65,535, counted over all the loops of a
    /// shader); `None`: no such limit known.
    loop_limit: Option<u64>,
    /// Per-kernel GPU times are measured with timestamp queries and logged (`LOGLINEAR_WGPU_PROFILE=1`, where
    /// the adapter has `TIMESTAMP_QUERY`).
    profile: bool,
    /// Most grid programs one dispatch (wave) runs; `None`: as many as the dispatch and spill limits allow.
    wave_limit: Option<usize>,
}

/// The loop limit of the driver behind `info` (see `Gpu::loop_limit`).
fn loop_limit(info: &wgpu::AdapterInfo) -> Option<u64> {
    let name = info.name.to_ascii_lowercase();
    let driver = info.driver.to_ascii_lowercase();
    (name.contains("llvmpipe") || driver.contains("llvmpipe")).then_some(LLVMPIPE_LOOP_LIMIT)
}

/// Mesa llvmpipe's loop limit: a shader invocation that has run this many loop iterations (all its loops
/// together) leaves every later loop after one iteration.
pub const LLVMPIPE_LOOP_LIMIT: u64 = 65_535;

/// Workgroups a GPU adapter is taken to need to be busy ([`Capabilities::fill_programs`]).
pub const GPU_FILL_PROGRAMS: usize = 128;

/// The WGSL target (`--backend wgsl`).
pub struct WgpuTarget {
    adapter: Option<usize>,
    wave_limit: Option<usize>,
    gpu: OnceLock<Result<Arc<Gpu>, String>>,
}

impl Default for WgpuTarget {
    fn default() -> Self {
        Self::new()
    }
}

fn fail(message: impl Into<String>) -> TargetError {
    TargetError::Failed { target: NAME.into(), message: message.into() }
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// The adapters wgpu finds (`name (backend, device type)`), in index order (`--device N`).
pub fn adapters() -> Vec<String> {
    pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
        })
        .collect()
}

impl WgpuTarget {
    /// The target on the default adapter (wgpu's high-performance choice: a GPU before a CPU driver).
    pub fn new() -> Self {
        WgpuTarget { adapter: None, wave_limit: None, gpu: OnceLock::new() }
    }

    /// The target on adapter `index` of [`adapters`].
    pub fn with_adapter(index: usize) -> Self {
        WgpuTarget { adapter: Some(index), wave_limit: None, gpu: OnceLock::new() }
    }

    /// The target on the adapter named by `LOGLINEAR_DEVICE` (an index into [`adapters`]), else the default.
    pub fn from_env() -> Self {
        match std::env::var("LOGLINEAR_DEVICE").ok().and_then(|s| s.trim().parse().ok()) {
            Some(i) => Self::with_adapter(i),
            None => Self::new(),
        }
    }

    /// The same target running at most `programs` grid programs per dispatch: a grid too large for one
    /// dispatch (over 65,535² workgroups, or a spill buffer over the binding limit) runs as several waves;
    /// this forces waves on small problems (tests of that path).
    pub fn with_wave_limit(mut self, programs: usize) -> Self {
        self.wave_limit = Some(programs.max(1));
        self
    }

    /// Whether an adapter is available (opening it on first use); why not.
    pub fn availability(&self) -> Result<(), String> {
        self.gpu().map(|_| ()).map_err(|e| e.to_string())
    }

    fn gpu(&self) -> Result<&Arc<Gpu>, TargetError> {
        self.gpu.get_or_init(|| open(self.adapter, self.wave_limit).map(Arc::new)).as_ref().map_err(|e| fail(e.clone()))
    }
}

fn open(index: Option<usize>, wave_limit: Option<usize>) -> Result<Gpu, String> {
    let instance = instance();
    let adapter = match index {
        Some(i) => {
            let all = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
            let n = all.len();
            all.into_iter()
                .nth(i)
                .ok_or_else(|| format!("no adapter {i} ({n} found; `loglinear backends` lists them)"))?
        }
        None => pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| {
            format!(
                "no GPU adapter ({e}); install a Vulkan driver (on Debian: `apt-get install mesa-vulkan-drivers \
                 libvulkan1` gives the CPU driver lavapipe) or use `--backend cranelift`"
            )
        })?,
    };
    let info = adapter.get_info();
    let limits = adapter.limits();
    let want_profile = std::env::var("LOGLINEAR_WGPU_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0");
    let profile = want_profile && adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
    if want_profile && !profile {
        tracing::warn!(adapter = %info.name, "LOGLINEAR_WGPU_PROFILE: the adapter has no timestamp queries");
    }
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("loglinear"),
        required_features: if profile { wgpu::Features::TIMESTAMP_QUERY } else { wgpu::Features::empty() },
        required_limits: limits.clone(),
        experimental_features: wgpu::ExperimentalFeatures::default(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| format!("{}: {e}", info.name))?;
    tracing::info!(adapter = %info.name, backend = ?info.backend, workgroup_memory = limits.max_compute_workgroup_storage_size, "wgpu device opened");
    let loop_limit = loop_limit(&info);
    Ok(Gpu { device, queue, info, limits, loop_limit, profile, wave_limit })
}

impl Target for WgpuTarget {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "WGSL compute shaders through wgpu (Vulkan, Metal, DX12), f32 compute, f32/f16/bf16 storage"
    }

    fn device(&self) -> String {
        self.gpu().map(|g| g.info.name.clone()).unwrap_or_default()
    }

    fn availability(&self) -> Result<(), String> {
        WgpuTarget::availability(self)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            storage: vec![DType::F32, DType::F16, DType::BF16],
            accum: vec![DType::F32],
            // Tiles past workgroup memory spill to global memory: no hard budget.
            tile_memory: None,
            subgroup_size: None,
            tensor_cores: false,
            index64: false,
            max_grid: Some(65_535u64 * 65_535),
            decode: true,
            primitives_only: true,
            max_buffer_bytes: self
                .gpu()
                .ok()
                .map(|g| g.limits.max_storage_buffer_binding_size.min(g.limits.max_buffer_size)),
            // wgpu does not report the multiprocessor count: a GPU is taken to want about 128 workgroups (the
            // H200 has 132 SMs); a CPU driver (lavapipe) runs workgroups on its few threads.
            fill_programs: self
                .gpu()
                .ok()
                .filter(|g| g.info.device_type != wgpu::DeviceType::Cpu)
                .map(|_| GPU_FILL_PROGRAMS),
        }
    }

    fn compile(&self, program: &Program, config: &ScheduleConfig) -> Result<Arc<dyn Executable>, TargetError> {
        self.capabilities().supports(config).map_err(|what| TargetError::Unsupported { target: NAME.into(), what })?;
        let gpu = self.gpu()?.clone();
        let start = Instant::now();
        let max_wg = gpu.limits.max_compute_invocations_per_workgroup.min(gpu.limits.max_compute_workgroup_size_x);
        let wg = config.threads.map(|t| t as u32).unwrap_or(DEFAULT_WORKGROUP_SIZE);
        if wg == 0 || wg > max_wg {
            return Err(TargetError::Unsupported {
                target: NAME.into(),
                what: format!("threads={wg} invocations per workgroup (this adapter allows 1..={max_wg})"),
            });
        }
        // LOGLINEAR_WGSL_TILE_MEMORY (bytes) lowers the workgroup memory tiles may use (more spill): a debugging
        // and tuning knob; the adapter's limit caps it.
        let limit = gpu.limits.max_compute_workgroup_storage_size as usize;
        let fast = std::env::var("LOGLINEAR_WGSL_TILE_MEMORY")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map_or(limit, |b| b.min(limit));
        // LOGLINEAR_WGSL_UNROLL: inner-product steps per loop iteration (default 2): a tuning knob.
        let unroll = std::env::var("LOGLINEAR_WGSL_UNROLL")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map_or(WgslOptions::default().unroll, |u| u.clamp(1, 64));
        let opts = WgslOptions { workgroup_size: wg, fast_memory: fast, unroll };
        let mut kernels = translate_program(program, &opts).map_err(|e| fail(e.to_string()))?;
        // LOGLINEAR_WGSL_OVERRIDE (a directory): a `<kernel>.wgsl` there replaces the generated source (same
        // bindings expected): a debugging aid for trying a hand-edited kernel.
        if let Some(dir) = std::env::var_os("LOGLINEAR_WGSL_OVERRIDE") {
            for k in &mut kernels {
                if let Ok(src) = std::fs::read_to_string(std::path::Path::new(&dir).join(format!("{}.wgsl", k.name))) {
                    tracing::warn!(kernel = %k.name, "LOGLINEAR_WGSL_OVERRIDE: using a hand-edited kernel");
                    k.source = src;
                }
            }
        }
        // LOGLINEAR_WGSL_DUMP (a directory) receives each kernel's WGSL as `<kernel>.wgsl`: a debugging aid.
        if let Some(dir) = std::env::var_os("LOGLINEAR_WGSL_DUMP") {
            let dir = std::path::PathBuf::from(dir);
            for k in &kernels {
                if let Err(e) = std::fs::create_dir_all(&dir)
                    .and_then(|_| std::fs::write(dir.join(format!("{}.wgsl", k.name)), &k.source))
                {
                    tracing::warn!(dir = %dir.display(), error = %e, "LOGLINEAR_WGSL_DUMP: could not write the WGSL");
                }
            }
        }
        let mut stats = CompileStats::default();
        let mut pipelines = Vec::new();
        let mut layouts = Vec::new();
        for k in &kernels {
            let t = Instant::now();
            let layout = KernelLayout::new(&gpu.device, k);
            pipelines.push(layout.pipeline(&gpu.device, k, 0));
            layouts.push(layout);
            stats.kernels.push(KernelStats { name: k.name.clone(), time: t.elapsed(), code_bytes: k.source.len() });
        }
        stats.total = start.elapsed();
        let zero = needs_zeroing(program);
        Ok(Arc::new(WgpuExecutable {
            program: program.clone(),
            gpu,
            kernels,
            pipelines,
            layouts,
            stats,
            zero,
            pool: Mutex::new(HashMap::new()),
            wave_pipelines: Mutex::new(HashMap::new()),
        }))
    }

    fn upload(&self, t: TensorRef<'_>) -> Result<DeviceTensor, TargetError> {
        let gpu = self.gpu()?.clone();
        let elem = match t.dtype {
            DType::F16 => DeviceElem::PackedF16,
            DType::BF16 => DeviceElem::PackedBf16,
            _ => DeviceElem::F32,
        };
        let bytes = device_bytes(&t, elem);
        let buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("upload"),
            size: bytes.len().max(4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        gpu.queue.write_buffer(&buf, 0, &bytes);
        let dtype = if elem == DeviceElem::F32 { DType::F32 } else { t.dtype };
        Ok(DeviceTensor::new(dtype, t.shape.to_vec(), MEMORY, Arc::new(Resident { buf: Arc::new(buf), elem, dtype })))
    }

    fn download(&self, t: &DeviceTensor) -> Result<Tensor, TargetError> {
        let r = t.storage::<Resident>().ok_or_else(|| {
            TargetError::Binding(format!("a tensor in {} memory cannot be read by {NAME}", t.memory()))
        })?;
        let gpu = self.gpu()?;
        let n: usize = t.shape().iter().product();
        let bytes = read_back(gpu, &[(&r.buf, (n * r.elem.size()).div_ceil(4) * 4)])?.remove(0);
        Ok(host_tensor(&bytes, r.elem, r.dtype, t.shape().to_vec()))
    }
}

/// A GPU buffer behind a [`DeviceTensor`] of this backend.
struct Resident {
    buf: Arc<wgpu::Buffer>,
    elem: DeviceElem,
    /// The tensor's element type (the output's storage type for a result).
    dtype: DType,
}

/// The bytes of `t` in device layout `elem` (padded to a whole word).
fn device_bytes(t: &TensorRef<'_>, elem: DeviceElem) -> Vec<u8> {
    let n = t.numel();
    let mut out = Vec::with_capacity((n * elem.size()).div_ceil(4) * 4);
    match elem {
        DeviceElem::F32 if t.dtype == DType::F32 => out.extend_from_slice(t.bytes),
        DeviceElem::PackedF16 if t.dtype == DType::F16 => out.extend_from_slice(t.bytes),
        DeviceElem::PackedBf16 if t.dtype == DType::BF16 => out.extend_from_slice(t.bytes),
        DeviceElem::F32 => {
            let mut v = vec![0f32; n];
            t.read_f32_into(0, &mut v);
            v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        DeviceElem::PackedF16 | DeviceElem::PackedBf16 => {
            let d = if elem == DeviceElem::PackedF16 { DType::F16 } else { DType::BF16 };
            (0..n).for_each(|i| d.push(&mut out, t.get(i)));
        }
    }
    while out.len() % 4 != 0 || out.is_empty() {
        out.push(0);
    }
    out
}

/// A host tensor of `dtype` from device bytes in layout `elem`.
fn host_tensor(bytes: &[u8], elem: DeviceElem, dtype: DType, shape: Vec<usize>) -> Tensor {
    let n: usize = shape.iter().product();
    match elem {
        DeviceElem::F32 => {
            let data: Vec<f32> =
                bytes.chunks_exact(4).take(n).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            Tensor::from_f32_as(dtype, shape, &data)
        }
        DeviceElem::PackedF16 | DeviceElem::PackedBf16 => {
            let d = if elem == DeviceElem::PackedF16 { DType::F16 } else { DType::BF16 };
            Tensor::from_bytes(d, shape, bytes[..n * 2].to_vec()).expect("sized").convert(dtype)
        }
    }
}

/// Copies each `(buffer, bytes)` to a mappable buffer, waits, and returns the bytes.
fn read_back(gpu: &Gpu, bufs: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<u8>>, TargetError> {
    let dev = &gpu.device;
    let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
    let staging: Vec<wgpu::Buffer> = bufs
        .iter()
        .map(|(b, n)| {
            let s = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: (*n).max(4) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            enc.copy_buffer_to_buffer(b, 0, &s, 0, (*n).max(4) as u64);
            s
        })
        .collect();
    gpu.queue.submit([enc.finish()]);
    for s in &staging {
        s.slice(..).map_async(wgpu::MapMode::Read, |r| {
            if let Err(e) = r {
                tracing::error!("readback mapping failed: {e}");
            }
        });
    }
    dev.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| fail(format!("waiting for the GPU: {e}")))?;
    staging
        .iter()
        .zip(bufs)
        .map(|(s, (_, n))| {
            let view = s.slice(..).get_mapped_range().map_err(|e| fail(format!("reading back: {e}")))?;
            let v = view[..*n].to_vec();
            drop(view);
            s.unmap();
            Ok(v)
        })
        .collect()
}

/// A kernel's explicit bind group and pipeline layouts (from its bindings), shared by the pipelines of all
/// its waves so that one bind group serves them all.
struct KernelLayout {
    group: wgpu::BindGroupLayout,
    pipeline: wgpu::PipelineLayout,
}

impl KernelLayout {
    fn new(device: &wgpu::Device, k: &WgslKernel) -> Self {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = k
            .bindings
            .iter()
            .map(|b| wgpu::BindGroupLayoutEntry {
                binding: b.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: !b.writable },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let group = device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(&k.name), entries: &entries });
        let pipeline = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&k.name),
            bind_group_layouts: &[Some(&group)],
            immediate_size: 0,
        });
        KernelLayout { group, pipeline }
    }

    /// The kernel's pipeline with `wave_base` = `base`.
    fn pipeline(&self, device: &wgpu::Device, k: &WgslKernel, base: usize) -> wgpu::ComputePipeline {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&k.name),
            source: wgpu::ShaderSource::Wgsl(k.source.as_str().into()),
        });
        let constants = [(WAVE_BASE, base as f64)];
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&k.name),
            layout: Some(&self.pipeline),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: if base == 0 { &[] } else { &constants },
                ..Default::default()
            },
            cache: None,
        })
    }
}

struct WgpuExecutable {
    program: Program,
    gpu: Arc<Gpu>,
    kernels: Vec<WgslKernel>,
    pipelines: Vec<wgpu::ComputePipeline>,
    layouts: Vec<KernelLayout>,
    stats: CompileStats,
    /// Per program buffer: whether a run must zero it first.
    zero: Vec<bool>,
    /// Buffers kept between runs, by program buffer index (`usize::MAX`: the spill buffer).
    pool: Mutex<HashMap<usize, Arc<wgpu::Buffer>>>,
    /// Pipelines of waves after the first, by (kernel, first program).
    wave_pipelines: Mutex<HashMap<(usize, usize), Arc<wgpu::ComputePipeline>>>,
}

/// Where a run's input comes from.
enum Source<'a> {
    Host(TensorRef<'a>),
    Device(&'a Resident),
}

/// Where a run's state buffer starts from: a host tensor (copied in, read back after), or a resident buffer
/// bound in place (updated on the GPU, never copied).
enum StateSource<'a> {
    Host(&'a Tensor),
    Device(&'a Resident, &'a [usize]),
}

const SPILL: usize = usize::MAX;

impl WgpuExecutable {
    fn buffer(&self, size: usize, label: &str) -> Result<wgpu::Buffer, TargetError> {
        let max = self.gpu.limits.max_storage_buffer_binding_size.min(self.gpu.limits.max_buffer_size);
        if size as u64 > max {
            return Err(TargetError::Unsupported {
                target: NAME.into(),
                what: format!(
                    "buffer `{label}` of {size} B (this adapter binds at most {max} B): use a smaller batch, \
                     `form=streaming` or a smaller chunk"
                ),
            });
        }
        Ok(self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }))
    }

    /// A pooled buffer of at least `size` bytes for slot `slot`.
    fn pooled(&self, slot: usize, size: usize, label: &str) -> Result<Arc<wgpu::Buffer>, TargetError> {
        let mut pool = self.pool.lock().map_err(|_| fail("buffer pool poisoned"))?;
        if let Some(b) = pool.get(&slot) {
            if b.size() >= size.max(4) as u64 {
                return Ok(b.clone());
            }
        }
        let b = Arc::new(self.buffer(size, label)?);
        pool.insert(slot, b.clone());
        Ok(b)
    }

    /// Runs the program: inputs from `sources` (by buffer index), bound states from `states`; returns the
    /// output buffer and, when `read_states`, every state buffer's bytes (after waiting for the GPU).
    fn execute(
        &self,
        sizes: &SizeEnv,
        sources: &HashMap<usize, Source<'_>>,
        states: &BTreeMap<String, StateSource<'_>>,
    ) -> Result<(Arc<wgpu::Buffer>, Vec<(usize, Arc<wgpu::Buffer>)>), TargetError> {
        let dev = &self.gpu.device;
        let p = &self.program;
        // A driver that cuts long-running shaders short would return wrong numbers without a word: refuse.
        if let Some(limit) = self.gpu.loop_limit {
            for k in &self.kernels {
                let n = k.loop_iterations(sizes);
                tracing::debug!(kernel = %k.name, loop_iterations = n, "loop iterations per invocation");
                if n >= limit {
                    return Err(TargetError::Unsupported {
                        target: NAME.into(),
                        what: format!(
                            "T={} at chunk {}: kernel `{}` would run up to {n} loop iterations per invocation, and \
                             {} cuts a shader short after {limit} (wrong results); use a shorter sequence, a smaller \
                             chunk, the per_level form, or another backend (cranelift)",
                            sizes.t, sizes.c, k.name, self.gpu.info.name
                        ),
                    });
                }
            }
        }
        let shapes: Vec<Vec<usize>> =
            p.buffers.iter().map(|b| b.shape.iter().map(|d| dim_value(*d, sizes)).collect()).collect();
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(&p.name) });
        let mut bufs: Vec<Arc<wgpu::Buffer>> = Vec::with_capacity(p.buffers.len());
        let mut state_bufs = Vec::new();
        for (i, (b, shape)) in p.buffers.iter().zip(&shapes).enumerate() {
            let n: usize = shape.iter().product();
            let elem = device_elem(b);
            let bytes = (n * elem.size()).div_ceil(4) * 4;
            let buf = match &b.kind {
                BufKind::Input(name) => match sources.get(&i) {
                    Some(Source::Host(t)) => {
                        if t.shape != shape.as_slice() {
                            return Err(TargetError::Binding(format!(
                                "input `{name}` has shape {:?}; the program reads {shape:?}",
                                t.shape
                            )));
                        }
                        let buf = self.pooled(i, bytes, &b.name)?;
                        self.gpu.queue.write_buffer(&buf, 0, &device_bytes(t, elem));
                        buf
                    }
                    Some(Source::Device(r)) => {
                        if r.elem != elem {
                            return Err(TargetError::Binding(format!(
                                "input `{name}` is resident as {}; the program reads {} (upload it in that dtype)",
                                r.dtype, b.elem
                            )));
                        }
                        r.buf.clone()
                    }
                    None => return Err(TargetError::Binding(format!("input `{name}` is not bound"))),
                },
                BufKind::State => {
                    let wrong = |s: &[usize]| {
                        TargetError::Binding(format!("state `{}` has shape {s:?}; the program holds {shape:?}", b.name))
                    };
                    let buf = match states.get(&b.name) {
                        Some(StateSource::Host(t)) => {
                            if t.shape() != shape.as_slice() {
                                return Err(wrong(t.shape()));
                            }
                            let buf = self.pooled(i, bytes, &b.name)?;
                            self.gpu.queue.write_buffer(&buf, 0, &device_bytes(&t.view(), elem));
                            buf
                        }
                        Some(StateSource::Device(r, s)) => {
                            if *s != shape.as_slice() {
                                return Err(wrong(s));
                            }
                            if r.elem != elem {
                                return Err(TargetError::Binding(format!(
                                    "state `{}` is resident as {}; the program holds {}",
                                    b.name, r.dtype, b.elem
                                )));
                            }
                            r.buf.clone()
                        }
                        None => {
                            let buf = self.pooled(i, bytes, &b.name)?;
                            enc.clear_buffer(&buf, 0, None);
                            buf
                        }
                    };
                    state_bufs.push((i, buf.clone()));
                    buf
                }
                // The output is handed to the caller: a fresh buffer (wgpu zero-fills it).
                _ if i == p.output.0 as usize => Arc::new(self.buffer(bytes, &b.name)?),
                _ => {
                    let buf = self.pooled(i, bytes, &b.name)?;
                    if self.zero[i] {
                        enc.clear_buffer(&buf, 0, None);
                    }
                    buf
                }
            };
            bufs.push(buf);
        }
        let mut sz = [0i32; 12];
        for (i, s) in [
            sizes.b, sizes.t, sizes.h, sizes.k, sizes.v, sizes.l, sizes.nt, sizes.c, sizes.m, sizes.ms, sizes.lc,
            sizes.step,
        ]
        .iter()
        .enumerate()
        {
            sz[i] = i32::try_from(*s).map_err(|_| fail(format!("size {s} does not fit in 32 bits")))?;
        }
        // Each kernel's grid in waves: at most 65,535² workgroups per dispatch, and at most as many programs as
        // the spill regions the binding limit holds (the regions are reused wave after wave).
        let max_bind = self.gpu.limits.max_storage_buffer_binding_size.min(self.gpu.limits.max_buffer_size);
        let totals: Vec<usize> =
            self.kernels.iter().map(|k| k.grid.iter().map(|d| dim_value(*d, sizes)).product()).collect();
        let mut waves: Vec<Vec<(usize, usize)>> = Vec::with_capacity(self.kernels.len());
        for (k, &total) in self.kernels.iter().zip(&totals) {
            let mut cap = 65_535usize * 65_535;
            if k.spill > 0 {
                cap = cap.min((max_bind / (k.spill as u64 * 4)) as usize);
            }
            if let Some(w) = self.gpu.wave_limit {
                cap = cap.min(w);
            }
            if cap == 0 {
                return Err(TargetError::Unsupported {
                    target: NAME.into(),
                    what: format!(
                        "kernel `{}`: one grid program spills {} B, over this adapter's {max_bind} B binding limit",
                        k.name,
                        k.spill * 4
                    ),
                });
            }
            waves.push((0..total).step_by(cap).map(|base| (base, cap.min(total - base))).collect());
        }
        let size_buf = self.pooled(SPILL - 1, 48, "sizes")?;
        self.gpu.queue.write_buffer(&size_buf, 0, &sz.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
        // One spill buffer for the largest wave of any kernel.
        let spill_bytes =
            self.kernels.iter().zip(&waves).map(|(k, w)| k.spill * 4 * w.first().map_or(0, |x| x.1)).max().unwrap_or(0);
        let spill = if spill_bytes > 0 { Some(self.pooled(SPILL, spill_bytes, "spill")?) } else { None };
        let queries = self.gpu.profile.then(|| {
            dev.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel times"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * self.kernels.len() as u32,
            })
        });
        for (ki, ((k, pipe), kw)) in self.kernels.iter().zip(&self.pipelines).zip(&waves).enumerate() {
            if kw.is_empty() {
                continue;
            }
            let group = self.bind_group(k, &self.layouts[ki].group, &bufs, &size_buf, spill.as_deref());
            // Waves after the first run pipelines with their first program as the `wave_base` constant.
            let mut wave_pipes = Vec::with_capacity(kw.len());
            for &(base, _) in kw {
                wave_pipes.push(if base == 0 { None } else { Some(self.wave_pipeline(ki, base)?) });
            }
            let timestamp_writes = queries.as_ref().map(|q| wgpu::ComputePassTimestampWrites {
                query_set: q,
                beginning_of_pass_write_index: Some(2 * ki as u32),
                end_of_pass_write_index: Some(2 * ki as u32 + 1),
            });
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(&k.name), timestamp_writes });
            pass.set_bind_group(0, &group, &[]);
            for (&(_, count), wp) in kw.iter().zip(&wave_pipes) {
                pass.set_pipeline(wp.as_deref().unwrap_or(pipe));
                let x = count.min(65_535);
                pass.dispatch_workgroups(x as u32, count.div_ceil(x) as u32, 1);
            }
        }
        let resolved = match &queries {
            Some(q) => {
                let n = 2 * self.kernels.len() as u64;
                let r = dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kernel times"),
                    size: 8 * n,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                // Kernels with an empty grid wrote no timestamps: zero them first.
                enc.clear_buffer(&r, 0, None);
                enc.resolve_query_set(q, 0..n as u32, &r, 0);
                Some(r)
            }
            None => None,
        };
        self.gpu.queue.submit([enc.finish()]);
        if let Some(r) = resolved {
            self.log_kernel_times(&r, &totals)?;
        }
        Ok((bufs[p.output.0 as usize].clone(), state_bufs))
    }

    /// Host inputs by program buffer index.
    fn host_sources<'a>(&self, inputs: &Bindings<'a>) -> HashMap<usize, Source<'a>> {
        let mut sources = HashMap::new();
        for (i, b) in self.program.buffers.iter().enumerate() {
            if let BufKind::Input(name) = &b.kind {
                if let Some(t) = inputs.get(name) {
                    sources.insert(i, Source::Host(*t));
                }
            }
        }
        sources
    }

    /// The bind group of kernel `k`: sizes, its buffers, the spill buffer.
    fn bind_group(
        &self,
        k: &WgslKernel,
        layout: &wgpu::BindGroupLayout,
        bufs: &[Arc<wgpu::Buffer>],
        sizes: &wgpu::Buffer,
        spill: Option<&wgpu::Buffer>,
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = k
            .bindings
            .iter()
            .map(|b| wgpu::BindGroupEntry {
                binding: b.binding,
                resource: match b.role {
                    BindingRole::Sizes => sizes.as_entire_binding(),
                    BindingRole::Buffer(id) => bufs[id.0 as usize].as_entire_binding(),
                    BindingRole::Spill => spill.expect("spill buffer").as_entire_binding(),
                },
            })
            .collect();
        self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&k.name),
            layout,
            entries: &entries,
        })
    }

    /// Kernel `ki`'s pipeline for the wave starting at grid program `base` (compiled once, then cached).
    fn wave_pipeline(&self, ki: usize, base: usize) -> Result<Arc<wgpu::ComputePipeline>, TargetError> {
        let mut cache = self.wave_pipelines.lock().map_err(|_| fail("pipeline cache poisoned"))?;
        if let Some(p) = cache.get(&(ki, base)) {
            return Ok(p.clone());
        }
        let p = Arc::new(self.layouts[ki].pipeline(&self.gpu.device, &self.kernels[ki], base));
        cache.insert((ki, base), p.clone());
        Ok(p)
    }

    /// Reads the resolved timestamps back (waiting for the GPU) and logs each kernel's time.
    fn log_kernel_times(&self, resolved: &wgpu::Buffer, totals: &[usize]) -> Result<(), TargetError> {
        let bytes = read_back(&self.gpu, &[(resolved, 16 * self.kernels.len())])?.remove(0);
        let ticks: Vec<u64> =
            bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        let period = f64::from(self.gpu.queue.get_timestamp_period());
        let mut sum = 0.0;
        for (i, (k, total)) in self.kernels.iter().zip(totals).enumerate() {
            let ms = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6;
            sum += ms;
            tracing::info!(program = %self.program.name, kernel = %k.name, programs = total, ms, "GPU kernel time");
        }
        tracing::info!(program = %self.program.name, ms = sum, "GPU time of all kernels");
        Ok(())
    }

    fn output_elem(&self) -> (DeviceElem, DType) {
        let b = &self.program.buffers[self.program.output.0 as usize];
        (device_elem(b), b.elem)
    }
}

impl Executable for WgpuExecutable {
    fn program(&self) -> &Program {
        &self.program
    }

    fn stats(&self) -> &CompileStats {
        &self.stats
    }

    fn run_with_states(
        &self,
        sizes: &SizeEnv,
        inputs: &Bindings<'_>,
        states: &mut States,
    ) -> Result<Tensor, TargetError> {
        let p = &self.program;
        let sources = self.host_sources(inputs);
        let bound: BTreeMap<String, StateSource<'_>> =
            states.iter().map(|(n, t)| (n.clone(), StateSource::Host(t))).collect();
        let (out, state_bufs) = self.execute(sizes, &sources, &bound)?;
        let numel = |i: usize| p.buffers[i].shape.iter().map(|d| dim_value(*d, sizes)).product::<usize>();
        let shape = |i: usize| p.buffers[i].shape.iter().map(|d| dim_value(*d, sizes)).collect::<Vec<usize>>();
        let (elem, dtype) = self.output_elem();
        let oi = p.output.0 as usize;
        let mut reads: Vec<(&wgpu::Buffer, usize)> = vec![(&out, (numel(oi) * elem.size()).div_ceil(4) * 4)];
        for (i, b) in &state_bufs {
            reads.push((b, numel(*i) * 4));
        }
        let mut bytes = read_back(&self.gpu, &reads)?;
        for (k, (i, _)) in state_bufs.iter().enumerate() {
            let b = &p.buffers[*i];
            states.insert(b.name.clone(), host_tensor(&bytes[k + 1], DeviceElem::F32, b.elem, shape(*i)));
        }
        Ok(host_tensor(&bytes.swap_remove(0), elem, dtype, shape(oi)))
    }

    fn run_with_resident_states(
        &self,
        sizes: &SizeEnv,
        inputs: &Bindings<'_>,
        states: &mut DeviceStates,
    ) -> Result<Tensor, TargetError> {
        let p = &self.program;
        let sources = self.host_sources(inputs);
        let mut bound = BTreeMap::new();
        for b in p.buffers.iter().filter(|b| b.kind == BufKind::State) {
            let t =
                states.get(&b.name).ok_or_else(|| TargetError::Binding(format!("state `{}` is not bound", b.name)))?;
            let r = t.storage::<Resident>().ok_or_else(|| {
                TargetError::Binding(format!(
                    "state `{}` lives in {} memory, not on this GPU (upload it to {NAME})",
                    b.name,
                    t.memory()
                ))
            })?;
            bound.insert(b.name.clone(), StateSource::Device(r, t.shape()));
        }
        let (out, _) = self.execute(sizes, &sources, &bound)?;
        let oi = p.output.0 as usize;
        let shape: Vec<usize> = p.buffers[oi].shape.iter().map(|d| dim_value(*d, sizes)).collect();
        let (elem, dtype) = self.output_elem();
        let n: usize = shape.iter().product();
        let bytes = read_back(&self.gpu, &[(&out, (n * elem.size()).div_ceil(4) * 4)])?.remove(0);
        Ok(host_tensor(&bytes, elem, dtype, shape))
    }

    fn run_resident(&self, sizes: &SizeEnv, inputs: &DeviceBindings<'_>) -> Result<DeviceTensor, TargetError> {
        let p = &self.program;
        let mut sources = HashMap::new();
        for (i, b) in p.buffers.iter().enumerate() {
            if let BufKind::Input(name) = &b.kind {
                if let Some(t) = inputs.get(name) {
                    let r = t.storage::<Resident>().ok_or_else(|| {
                        TargetError::Binding(format!(
                            "input `{name}` lives in {} memory, not on this GPU (upload it to {NAME})",
                            t.memory()
                        ))
                    })?;
                    if t.shape() != p.buffers[i].shape.iter().map(|d| dim_value(*d, sizes)).collect::<Vec<_>>() {
                        return Err(TargetError::Binding(format!(
                            "input `{name}` has shape {:?}; the program reads another",
                            t.shape()
                        )));
                    }
                    sources.insert(i, Source::Device(r));
                }
            }
        }
        let (out, _) = self.execute(sizes, &sources, &BTreeMap::new())?;
        self.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| fail(format!("waiting for the GPU: {e}")))?;
        let oi = p.output.0 as usize;
        let shape: Vec<usize> = p.buffers[oi].shape.iter().map(|d| dim_value(*d, sizes)).collect();
        let (elem, dtype) = self.output_elem();
        Ok(DeviceTensor::new(dtype, shape, MEMORY, Arc::new(Resident { buf: out, elem, dtype })))
    }
}
