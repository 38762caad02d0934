//! A loaded program and its runs: one f32 device buffer per program buffer (pooled between runs of the same
//! sizes), inputs converted to f32 on the host, each kernel's grid launched in waves over a shared scratch
//! buffer, the output read back in the configuration's storage type.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cudarc::driver::{CudaFunction, CudaModule, CudaSlice, DevicePtr, LaunchConfig, PushKernelArg};
use loglinear_kernel::device::GpuKernelLayout;
use loglinear_kernel::kernel::{BufKind, Program};
use loglinear_kernel::verify::{check_bounds, dim_value};
use loglinear_kernel::{
    Bindings, CompileStats, DType, DeviceBindings, DeviceStates, DeviceTensor, Executable, SizeEnv, States,
    TargetError, Tensor, TensorRef,
};

use crate::gpu::Gpu;
use crate::{failed, MEMORY};

/// Most bytes of scratch one wave of a kernel may use: a grid whose programs need more runs in several waves.
pub const MAX_WAVE_SCRATCH_BYTES: usize = 512 << 20;

/// Most blocks of one launch (the CUDA grid's x limit).
const MAX_GRID_X: usize = (1 << 31) - 1;

/// A device buffer of f32 that makes its context current before it is freed: cudarc frees on whatever thread
/// drops it, and a thread without the context would leave the memory allocated and the error recorded for the
/// next call.
pub(crate) struct Buf(pub(crate) CudaSlice<f32>);

impl std::ops::Deref for Buf {
    type Target = CudaSlice<f32>;
    fn deref(&self) -> &CudaSlice<f32> {
        &self.0
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut CudaSlice<f32> {
        &mut self.0
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: makes the buffer's own (primary) context current on this thread; it outlives the buffer.
        let _ = unsafe { cudarc::driver::result::ctx::set_current(self.0.context().cu_ctx()) };
    }
}

/// A device buffer of this backend behind a [`DeviceTensor`]: f32 elements (at least one), on the device
/// `ordinal`.
pub(crate) struct Resident {
    pub(crate) buf: Buf,
    pub(crate) ordinal: usize,
}

/// One kernel: its entry point and layout.
pub(crate) struct LoadedKernel {
    pub(crate) function: CudaFunction,
    pub(crate) layout: GpuKernelLayout,
}

/// Buffers of the last run, reused by the next run of the same sizes.
struct Pool {
    shapes: Vec<Vec<usize>>,
    bufs: Vec<Option<Buf>>,
    scratch: Option<Buf>,
}

/// A program loaded on the GPU.
pub(crate) struct CudaExecutable {
    pub(crate) program: Program,
    pub(crate) stats: CompileStats,
    pub(crate) storage: DType,
    pub(crate) gpu: Arc<Gpu>,
    pub(crate) kernels: Vec<LoadedKernel>,
    /// Keeps the module loaded while its functions are used.
    pub(crate) _module: Arc<CudaModule>,
    /// Per buffer: whether a run must zero it first ([`loglinear_kernel::analysis::needs_zeroing`]).
    pub(crate) zero: Vec<bool>,
    pool: Mutex<Option<Pool>>,
    /// Synchronise after every kernel (to name a failing one and time each): `LOGLINEAR_CUDA_SYNC=1` or debug
    /// logging.
    sync_each: bool,
    /// Most grid programs per launch ([`crate::CudaTarget::with_wave_limit`]).
    wave_limit: usize,
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
    Device(&'a Resident),
}

/// What a run leaves on the device until it is read back.
struct Ran {
    shapes: Vec<Vec<usize>>,
    pool: Pool,
    /// The output, when it was allocated for the caller rather than taken from the pool.
    fresh_output: Option<Buf>,
    /// Program buffers of the state buffers bound from host tensors or left unbound (read back after).
    host_states: Vec<usize>,
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl CudaExecutable {
    pub(crate) fn new(
        program: Program,
        stats: CompileStats,
        storage: DType,
        gpu: Arc<Gpu>,
        kernels: Vec<LoadedKernel>,
        module: Arc<CudaModule>,
        wave_limit: Option<usize>,
    ) -> Self {
        let sync_each = std::env::var("LOGLINEAR_CUDA_SYNC").is_ok_and(|v| !v.is_empty() && v != "0")
            || tracing::enabled!(tracing::Level::DEBUG);
        CudaExecutable {
            zero: loglinear_kernel::analysis::needs_zeroing(&program),
            program,
            stats,
            storage,
            gpu,
            kernels,
            _module: module,
            pool: Mutex::new(None),
            sync_each,
            wave_limit: wave_limit.unwrap_or(MAX_GRID_X).clamp(1, MAX_GRID_X),
        }
    }

    fn shapes(&self, sizes: &SizeEnv) -> Vec<Vec<usize>> {
        self.program.buffers.iter().map(|b| b.shape.iter().map(|d| dim_value(*d, sizes)).collect()).collect()
    }

    /// A device buffer of at least `len` f32 elements (uninitialised).
    fn alloc(&self, len: usize, what: &str) -> Result<Buf, TargetError> {
        // SAFETY: f32 has no invalid bit patterns; every buffer is zeroed or written before it is read (inputs
        // and bound states are copied in, the rest zeroed as `needs_zeroing` requires).
        unsafe { self.gpu.stream.alloc::<f32>(len.max(1)) }
            .map(Buf)
            .map_err(|e| failed(format!("allocating {} B for `{what}`: {e}", len.max(1) * 4)))
    }

    /// Pool slot `slot`, (re)allocated to hold at least `len` elements.
    fn slot<'p>(&self, slots: &'p mut [Option<Buf>], i: usize, len: usize) -> Result<&'p mut Buf, TargetError> {
        if slots[i].as_ref().is_none_or(|b| b.len() < len.max(1)) {
            slots[i] = None;
            slots[i] = Some(self.alloc(len, &self.program.buffers[i].name)?);
        }
        Ok(slots[i].as_mut().expect("allocated above"))
    }

    fn upload_into(&self, dst: &mut CudaSlice<f32>, t: &TensorRef<'_>, what: &str) -> Result<(), TargetError> {
        let n = t.numel();
        if n == 0 {
            return Ok(());
        }
        let mut host = vec![0f32; n];
        t.read_f32_into(0, &mut host);
        self.gpu
            .stream
            .memcpy_htod(&host, &mut dst.slice_mut(0..n))
            .map_err(|e| failed(format!("copying `{what}` to the GPU: {e}")))
    }

    fn zero(&self, dst: &mut CudaSlice<f32>, what: &str) -> Result<(), TargetError> {
        self.gpu.stream.memset_zeros(dst).map_err(|e| failed(format!("zeroing `{what}`: {e}")))
    }

    fn read(&self, src: &CudaSlice<f32>, n: usize, what: &str) -> Result<Vec<f32>, TargetError> {
        let mut host = vec![0f32; n];
        if n > 0 {
            self.gpu
                .stream
                .memcpy_dtoh(&src.slice(0..n), &mut host)
                .map_err(|e| failed(format!("reading `{what}` back: {e}")))?;
        }
        self.gpu.stream.synchronize().map_err(|e| failed(format!("reading `{what}` back: {e}")))?;
        Ok(host)
    }

    /// Runs the program: inputs by buffer index, states by name (a state not in `states` starts at zero). With
    /// `fresh_output` the output goes to a new buffer handed to the caller (resident runs); otherwise to the pool.
    fn execute(
        &self,
        sizes: &SizeEnv,
        inputs: &BTreeMap<usize, Source<'_>>,
        states: &BTreeMap<String, StateSource<'_>>,
        fresh_output: bool,
    ) -> Result<Ran, TargetError> {
        let p = &self.program;
        check_bounds(p, sizes).map_err(|e| {
            let msgs: Vec<String> = e.iter().take(3).map(|x| x.to_string()).collect();
            failed(format!("compiler bug: kernel IR of `{}` out of bounds for {sizes}: {}", p.name, msgs.join("; ")))
        })?;
        let shapes = self.shapes(sizes);
        let taken = self.pool.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut pool = match taken {
            Some(pool) if pool.shapes == shapes => pool,
            // Other sizes: the old buffers are freed (stream-ordered) and new ones allocated as needed.
            other => {
                let scratch = other.and_then(|p| p.scratch);
                Pool { shapes: shapes.clone(), bufs: (0..p.buffers.len()).map(|_| None).collect(), scratch }
            }
        };
        let out_index = p.output.0 as usize;
        let mut fresh = None;
        let mut host_states = Vec::new();
        let mut ptrs: Vec<u64> = Vec::with_capacity(p.buffers.len());
        for (i, (b, shape)) in p.buffers.iter().zip(&shapes).enumerate() {
            let n = numel(shape);
            let ptr = match &b.kind {
                BufKind::Input(name) => match inputs.get(&i) {
                    Some(Source::Host(t)) => {
                        if t.shape != shape.as_slice() {
                            return Err(TargetError::Binding(format!(
                                "input `{name}` has shape {:?}; the program reads {shape:?}",
                                t.shape
                            )));
                        }
                        let buf = self.slot(&mut pool.bufs, i, n)?;
                        self.upload_into(buf, t, name)?;
                        self.ptr(buf)
                    }
                    Some(Source::Device(r)) => self.ptr(&r.buf),
                    None => return Err(TargetError::Binding(format!("input `{name}` is missing"))),
                },
                BufKind::State => match states.get(&b.name) {
                    Some(StateSource::Host(t)) => {
                        if t.shape() != shape.as_slice() {
                            return Err(TargetError::Binding(format!(
                                "state `{}` has shape {:?}; the program holds {shape:?}",
                                b.name,
                                t.shape()
                            )));
                        }
                        let buf = self.slot(&mut pool.bufs, i, n)?;
                        self.upload_into(buf, &t.view(), &b.name)?;
                        host_states.push(i);
                        self.ptr(buf)
                    }
                    Some(StateSource::Device(r)) => self.ptr(&r.buf),
                    None => {
                        let buf = self.slot(&mut pool.bufs, i, n)?;
                        self.zero(buf, &b.name)?;
                        host_states.push(i);
                        self.ptr(buf)
                    }
                },
                _ if i == out_index && fresh_output => {
                    let mut buf = self.alloc(n, &b.name)?;
                    self.zero(&mut buf, &b.name)?;
                    let ptr = self.ptr(&buf);
                    fresh = Some(buf);
                    ptr
                }
                _ => {
                    let must_zero = self.zero[i] || i == out_index;
                    let buf = self.slot(&mut pool.bufs, i, n)?;
                    if must_zero {
                        self.zero(buf, &b.name)?;
                    }
                    self.ptr(buf)
                }
            };
            ptrs.push(ptr);
        }
        // Each kernel's grid in waves that keep its scratch within MAX_WAVE_SCRATCH_BYTES; one scratch buffer
        // holds the largest wave of any kernel.
        let totals: Vec<usize> = p
            .kernels
            .iter()
            .map(|k| k.grid.iter().map(|g| dim_value(k.vars[g.0 as usize].extent, sizes)).product())
            .collect();
        let caps: Vec<usize> = self
            .kernels
            .iter()
            .zip(&totals)
            .map(|(k, &total)| {
                let cap =
                    MAX_WAVE_SCRATCH_BYTES.checked_div(k.layout.scratch_floats * 4).map_or(MAX_GRID_X, |c| c.max(1));
                total.min(cap).min(self.wave_limit)
            })
            .collect();
        let scratch_len =
            self.kernels.iter().zip(&caps).map(|(k, &w)| w * k.layout.scratch_floats).max().unwrap_or(0).max(1);
        if pool.scratch.as_ref().is_none_or(|s| s.len() < scratch_len) {
            pool.scratch = None;
            let mut s = self.alloc(scratch_len, "scratch")?;
            self.zero(&mut s, "scratch")?;
            pool.scratch = Some(s);
        }
        let scratch = self.ptr(pool.scratch.as_ref().expect("allocated above"));
        let sizes_i64 = sizes.values();
        for (ki, (kernel, &total)) in self.kernels.iter().zip(&totals).enumerate() {
            if total == 0 {
                continue;
            }
            let name = &p.kernels[ki].name;
            let wave = caps[ki];
            let start = Instant::now();
            let mut lo = 0usize;
            while lo < total {
                let hi = (lo + wave).min(total);
                let (lo64, hi64) = (lo as i64, hi as i64);
                let cfg = LaunchConfig {
                    grid_dim: ((hi - lo) as u32, 1, 1),
                    block_dim: (kernel.layout.threads, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut launch = self.gpu.stream.launch_builder(&kernel.function);
                for ptr in &ptrs {
                    launch.arg(ptr);
                }
                for s in &sizes_i64 {
                    launch.arg(s);
                }
                launch.arg(&lo64).arg(&hi64).arg(&scratch);
                // SAFETY: the parameters are those of the generated code's ABI (loglinear_kernel::device): one
                // pointer per program buffer, sized for `sizes` (bounds checked above), the twelve sizes, the
                // wave's program range and a scratch buffer of `scratch_floats` per block of the wave.
                unsafe { launch.launch(cfg) }.map_err(|e| {
                    failed(format!("launching kernel `{name}` of `{}` (programs {lo}..{hi}): {e}", p.name))
                })?;
                lo = hi;
            }
            if self.sync_each {
                self.gpu.stream.synchronize().map_err(|e| failed(format!("kernel `{name}` of `{}`: {e}", p.name)))?;
            }
            tracing::debug!(
                program = %p.name,
                kernel = %name,
                programs = total,
                waves = total.div_ceil(wave),
                threads = kernel.layout.threads,
                scratch_floats = kernel.layout.scratch_floats,
                ms = start.elapsed().as_secs_f64() * 1e3,
                "cuda kernel"
            );
        }
        Ok(Ran { shapes, pool, fresh_output: fresh, host_states })
    }

    fn ptr(&self, buf: &CudaSlice<f32>) -> u64 {
        // Event tracking is off (one stream): the guard records nothing.
        let (ptr, _guard) = buf.device_ptr(&self.gpu.stream);
        ptr
    }

    /// Waits for the GPU, naming the program when one of its kernels failed.
    fn finish(&self) -> Result<(), TargetError> {
        self.gpu.stream.synchronize().map_err(|e| {
            failed(format!("running `{}`: {e} (LOGLINEAR_CUDA_SYNC=1 names the failing kernel)", self.program.name))
        })
    }

    /// Reads the host-bound states into `states` and the output back; returns the pool.
    fn read_back(&self, ran: Ran, states: Option<&mut States>) -> Result<Tensor, TargetError> {
        self.finish()?;
        let p = &self.program;
        if let Some(states) = states {
            for &i in &ran.host_states {
                let b = &p.buffers[i];
                let n = numel(&ran.shapes[i]);
                let buf = ran.pool.bufs[i].as_ref().expect("state buffers are pooled");
                let data = self.read(buf, n, &b.name)?;
                states.insert(b.name.clone(), Tensor::from_f32(ran.shapes[i].clone(), &data));
            }
        }
        let o = p.output.0 as usize;
        let n = numel(&ran.shapes[o]);
        let buf = match &ran.fresh_output {
            Some(b) => b,
            None => ran.pool.bufs[o].as_ref().expect("the output is pooled"),
        };
        let data = self.read(buf, n, &p.buffers[o].name)?;
        let out = Tensor::from_f32_as(self.storage, ran.shapes[o].clone(), &data);
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = Some(ran.pool);
        Ok(out)
    }

    /// Host inputs by program buffer index.
    fn host_sources<'a>(&self, inputs: &Bindings<'a>) -> BTreeMap<usize, Source<'a>> {
        let mut sources = BTreeMap::new();
        for (i, b) in self.program.buffers.iter().enumerate() {
            if let BufKind::Input(name) = &b.kind {
                if let Some(t) = inputs.get(name) {
                    sources.insert(i, Source::Host(*t));
                }
            }
        }
        sources
    }

    /// The resident buffer of `t`, when it lives on this GPU.
    fn resident<'t>(&self, t: &'t DeviceTensor, what: &str) -> Result<&'t Resident, TargetError> {
        match t.storage::<Resident>() {
            Some(r) if r.ordinal == self.gpu.ordinal => Ok(r),
            Some(r) => Err(TargetError::Binding(format!(
                "{what} lives on CUDA device {}, this program runs on device {}",
                r.ordinal, self.gpu.ordinal
            ))),
            None => Err(TargetError::Binding(format!(
                "{what} lives in {} memory, not on this GPU (upload it to the cuda backend)",
                t.memory()
            ))),
        }
    }
}

impl Executable for CudaExecutable {
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
        let sources = self.host_sources(inputs);
        let bound: BTreeMap<String, StateSource<'_>> =
            states.iter().map(|(n, t)| (n.clone(), StateSource::Host(t))).collect();
        let ran = self.execute(sizes, &sources, &bound, false)?;
        drop(bound);
        self.read_back(ran, Some(states))
    }

    fn run_with_resident_states(
        &self,
        sizes: &SizeEnv,
        inputs: &Bindings<'_>,
        states: &mut DeviceStates,
    ) -> Result<Tensor, TargetError> {
        let sources = self.host_sources(inputs);
        let shapes = self.shapes(sizes);
        let mut bound = BTreeMap::new();
        for (i, b) in self.program.buffers.iter().enumerate().filter(|(_, b)| b.kind == BufKind::State) {
            let t =
                states.get(&b.name).ok_or_else(|| TargetError::Binding(format!("state `{}` is not bound", b.name)))?;
            let r = self.resident(t, &format!("state `{}`", b.name))?;
            if t.shape() != shapes[i].as_slice() || r.buf.len() < numel(&shapes[i]) {
                return Err(TargetError::Binding(format!(
                    "state `{}` has shape {:?}; the program holds {:?}",
                    b.name,
                    t.shape(),
                    shapes[i]
                )));
            }
            bound.insert(b.name.clone(), StateSource::Device(r));
        }
        let ran = self.execute(sizes, &sources, &bound, false)?;
        self.read_back(ran, None)
    }

    fn run_resident(&self, sizes: &SizeEnv, inputs: &DeviceBindings<'_>) -> Result<DeviceTensor, TargetError> {
        let p = &self.program;
        let shapes = self.shapes(sizes);
        let mut sources = BTreeMap::new();
        for (i, b) in p.buffers.iter().enumerate() {
            if let BufKind::Input(name) = &b.kind {
                if let Some(t) = inputs.get(name) {
                    let r = self.resident(t, &format!("input `{name}`"))?;
                    if t.shape() != shapes[i].as_slice() || r.buf.len() < numel(&shapes[i]) {
                        return Err(TargetError::Binding(format!(
                            "input `{name}` has shape {:?}; the program reads {:?}",
                            t.shape(),
                            shapes[i]
                        )));
                    }
                    sources.insert(i, Source::Device(r));
                }
            }
        }
        let mut ran = self.execute(sizes, &sources, &BTreeMap::new(), true)?;
        // The caller times this call: it returns once the GPU is done.
        self.finish()?;
        let out = ran.fresh_output.take().expect("a fresh output was asked for");
        let shape = ran.shapes[p.output.0 as usize].clone();
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = Some(ran.pool);
        let resident = Resident { buf: out, ordinal: self.gpu.ordinal };
        Ok(DeviceTensor::new(self.storage, shape, MEMORY, Arc::new(resident)))
    }
}
