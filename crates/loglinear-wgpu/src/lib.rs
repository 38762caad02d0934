//! # loglinear-wgpu: the WGSL backend's runtime
//!
//! A [`Target`] that runs kernel IR on a GPU through wgpu (Vulkan, Metal, DX12; lavapipe on a machine without a
//! GPU). It asks the runtime for **decomposed** programs (`Capabilities::primitives_only`), translates each
//! kernel with `loglinear-wgsl` (validated by naga), builds one compute pipeline per kernel, and runs a program
//! as one command buffer: buffers created zeroed (wgpu's guarantee, which is the kernel IR's scratch rule),
//! inputs and bound states uploaded as f32, one compute pass per kernel in program order, the output and the
//! states read back.
//!
//! This is the correct-first form: one invocation per grid program with tiles in private memory. Workgroup
//! tiles, f16/bf16 storage, subgroups and cooperative matrices come next (issue 11).

#![warn(missing_docs)]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use loglinear_kernel::kernel::{BufKind, Program};
use loglinear_kernel::verify::dim_value;
use loglinear_kernel::{
    Bindings, Capabilities, CompileStats, DType, Executable, KernelStats, ScheduleConfig, SizeEnv, States, Target,
    TargetError, Tensor,
};
use loglinear_wgsl::{translate_program, WgslKernel, WORKGROUP_SIZE};

const NAME: &str = "wgsl";

/// The GPU a target runs on.
struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
}

/// The WGSL target (`--backend wgsl`).
pub struct WgpuTarget {
    adapter: Option<usize>,
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

/// The adapters wgpu finds (name, backend, device type), in index order (`--device N`).
pub fn adapters() -> Vec<String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
        })
        .collect()
}

impl WgpuTarget {
    /// The target on the default adapter (the first wgpu offers: a GPU before a CPU driver).
    pub fn new() -> Self {
        WgpuTarget { adapter: None, gpu: OnceLock::new() }
    }

    /// The target on adapter `index` of [`adapters`].
    pub fn with_adapter(index: usize) -> Self {
        WgpuTarget { adapter: Some(index), gpu: OnceLock::new() }
    }

    /// Whether an adapter is available (opening it on first use).
    pub fn available(&self) -> bool {
        self.gpu().is_ok()
    }

    fn gpu(&self) -> Result<&Arc<Gpu>, TargetError> {
        self.gpu.get_or_init(|| open(self.adapter).map(Arc::new)).as_ref().map_err(|e| fail(e.clone()))
    }
}

fn open(index: Option<usize>) -> Result<Gpu, String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = match index {
        Some(i) => pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .into_iter()
            .nth(i)
            .ok_or_else(|| format!("no adapter {i}: `loglinear backends` lists them"))?,
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
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("loglinear"),
        required_features: wgpu::Features::empty(),
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::default(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| format!("{}: {e}", info.name))?;
    tracing::info!(adapter = %info.name, backend = ?info.backend, "wgpu device opened");
    Ok(Gpu { device, queue, info })
}

impl Target for WgpuTarget {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "WGSL compute shaders through wgpu (Vulkan, Metal, DX12), f32"
    }

    fn device(&self) -> String {
        self.gpu().map(|g| g.info.name.clone()).unwrap_or_default()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            storage: vec![DType::F32],
            accum: vec![DType::F32],
            tile_memory: None,
            subgroup_size: None,
            tensor_cores: false,
            index64: false,
            max_grid: Some(65_535u64 * 65_535 * WORKGROUP_SIZE as u64),
            decode: true,
            primitives_only: true,
        }
    }

    fn compile(&self, program: &Program, config: &ScheduleConfig) -> Result<Arc<dyn Executable>, TargetError> {
        if config.storage != DType::F32 || config.accum != DType::F32 {
            return Err(TargetError::Unsupported {
                target: NAME.into(),
                what: format!("storage {} with accumulation {}", config.storage.ir_name(), config.accum.ir_name()),
            });
        }
        let gpu = self.gpu()?.clone();
        let start = Instant::now();
        let kernels = translate_program(program).map_err(|e| fail(e.to_string()))?;
        let mut stats = CompileStats::default();
        let mut pipelines = Vec::new();
        for k in &kernels {
            let t = Instant::now();
            let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&k.name),
                source: wgpu::ShaderSource::Wgsl(k.source.as_str().into()),
            });
            let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&k.name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
            stats.kernels.push(KernelStats { name: k.name.clone(), time: t.elapsed(), code_bytes: k.source.len() });
            pipelines.push(pipeline);
        }
        stats.total = start.elapsed();
        Ok(Arc::new(WgpuExecutable { program: program.clone(), gpu, kernels, pipelines, stats }))
    }
}

struct WgpuExecutable {
    program: Program,
    gpu: Arc<Gpu>,
    kernels: Vec<WgslKernel>,
    pipelines: Vec<wgpu::ComputePipeline>,
    stats: CompileStats,
}

fn f32_bytes(t: &loglinear_kernel::TensorRef<'_>) -> Vec<u8> {
    let mut v = vec![0f32; t.numel()];
    t.read_f32_into(0, &mut v);
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
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
        let dev = &self.gpu.device;
        let p = &self.program;
        let shapes: Vec<Vec<usize>> =
            p.buffers.iter().map(|b| b.shape.iter().map(|d| dim_value(*d, sizes)).collect()).collect();
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let mut bufs = Vec::with_capacity(p.buffers.len());
        for (b, shape) in p.buffers.iter().zip(&shapes) {
            let n: usize = shape.iter().product();
            let buf = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&b.name),
                size: (n.max(1) * 4) as u64,
                usage,
                mapped_at_creation: false,
            });
            let data = match &b.kind {
                BufKind::Input(name) => {
                    let t =
                        inputs.get(name).ok_or_else(|| TargetError::Binding(format!("input `{name}` is not bound")))?;
                    if t.shape != shape.as_slice() {
                        return Err(TargetError::Binding(format!(
                            "input `{name}` has shape {:?}; the program reads {shape:?}",
                            t.shape
                        )));
                    }
                    Some(f32_bytes(t))
                }
                BufKind::State => match states.get(&b.name) {
                    Some(t) if t.shape() == shape.as_slice() => Some(f32_bytes(&t.view())),
                    Some(t) => {
                        return Err(TargetError::Binding(format!(
                            "state `{}` has shape {:?}; the program holds {shape:?}",
                            b.name,
                            t.shape()
                        )))
                    }
                    None => None,
                },
                _ => None,
            };
            if let Some(d) = data {
                if !d.is_empty() {
                    self.gpu.queue.write_buffer(&buf, 0, &d);
                }
            }
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
        let size_buf = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sizes"),
            size: 48,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.gpu.queue.write_buffer(&size_buf, 0, &sz.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(&p.name) });
        for (k, pipe) in self.kernels.iter().zip(&self.pipelines) {
            let total: usize = k.grid.iter().map(|d| dim_value(*d, sizes)).product();
            if total == 0 {
                continue;
            }
            let groups = total.div_ceil(WORKGROUP_SIZE as usize);
            let x = groups.min(65_535);
            let y = groups.div_ceil(x);
            if y > 65_535 {
                return Err(TargetError::Unsupported {
                    target: NAME.into(),
                    what: format!("kernel `{}` with {total} grid programs (more than one dispatch holds)", k.name),
                });
            }
            let layout = pipe.get_bind_group_layout(0);
            let entries: Vec<wgpu::BindGroupEntry<'_>> = k
                .bindings
                .iter()
                .map(|b| wgpu::BindGroupEntry {
                    binding: b.binding,
                    resource: match b.buffer {
                        None => size_buf.as_entire_binding(),
                        Some(id) => bufs[id.0 as usize].as_entire_binding(),
                    },
                })
                .collect();
            let group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&k.name),
                layout: &layout,
                entries: &entries,
            });
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(&k.name), timestamp_writes: None });
            pass.set_pipeline(pipe);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(x as u32, y as u32, 1);
        }
        // Read back the output and every state buffer.
        let mut reads: Vec<(usize, wgpu::Buffer)> = Vec::new();
        for (i, b) in p.buffers.iter().enumerate() {
            if i == p.output.0 as usize || b.kind == BufKind::State {
                let n: usize = shapes[i].iter().product();
                let staging = dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: (n.max(1) * 4) as u64,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                enc.copy_buffer_to_buffer(&bufs[i], 0, &staging, 0, (n.max(1) * 4) as u64);
                reads.push((i, staging));
            }
        }
        self.gpu.queue.submit([enc.finish()]);
        for (_, s) in &reads {
            s.slice(..).map_async(wgpu::MapMode::Read, |r| {
                if let Err(e) = r {
                    tracing::error!("readback mapping failed: {e}");
                }
            });
        }
        dev.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| fail(format!("waiting for the GPU: {e}")))?;
        let mut out = None;
        for (i, s) in reads {
            let n: usize = shapes[i].iter().product();
            let view = s.slice(..).get_mapped_range().map_err(|e| fail(format!("reading back: {e}")))?;
            let data: Vec<f32> =
                view.chunks_exact(4).take(n).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            drop(view);
            s.unmap();
            let t = Tensor::from_f32(shapes[i].clone(), &data);
            if i == p.output.0 as usize {
                out = Some(t);
            } else {
                states.insert(p.buffers[i].name.clone(), t);
            }
        }
        out.ok_or_else(|| fail("no output"))
    }
}
