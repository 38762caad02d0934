//! The loader side of the GPU code ABI (`loglinear_kernel::device`) on a hand-written PTX module, so that it is
//! tested without MLIR: a two-kernel program (a forward kernel over a 3-D grid, a state update over a 2-D one)
//! whose PTX is written here by hand, run on the GPU where there is one and compared with the f32 interpreter
//! (the results are exact: doubling and one addition). Without a GPU, the same compiler drives the
//! code-generation mode (`LOGLINEAR_CUDA_PREPARE`): the PTX file is written under its fingerprint and the
//! interpreter runs; and the backend reports why it is unavailable instead of panicking.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use loglinear_cuda::CudaTarget;
use loglinear_kernel::device::{fingerprint, gpu_layout, PtxCompiler};
use loglinear_kernel::kernel::Program;
use loglinear_kernel::{
    parse_program, specialise, Bindings, DType, DeviceBindings, DeviceStates, InterpreterTarget, ScheduleConfig,
    SizeEnv, Specialisation, States, Target, Tensor,
};

const PROGRAM: &str = "\
program abi.forward (C = 4, c = 2, NT = ceil(T/C), M = bitlen(NT-1), MS = M+1, LC = L, accum = f32)
  buffer x: input `x` f32 [B, T, H, V]
  buffer s: state f32 [B, H, C, V]
  buffer o: output f32 [B, T, H, V]
kernel 0 double grid(b < B, i < NT, h < H) {
  %x: [C, V] = load x[b, i*C +: C, h, :]
  %y: [C, V] = add %x, %x
  store o[b, i*C +: C, h, :] = %y
}
kernel 1 acc grid(b < B, h < H) {
  %s: [C, V] = load s[b, h, :, :]
  %x: [C, V] = load x[b, 0 +: C, h, :]
  %t: [C, V] = add %s, %x
  store s[b, h, :, :] = %t
}
";

/// The parameters every kernel takes: x, s, o, the twelve sizes, lo, hi, scratch.
const PARAMS: &str = "
    .param .u64 px, .param .u64 ps, .param .u64 po,
    .param .u64 sB, .param .u64 sT, .param .u64 sH, .param .u64 sK, .param .u64 sV, .param .u64 sL,
    .param .u64 sNT, .param .u64 sC, .param .u64 sM, .param .u64 sMS, .param .u64 sLC, .param .u64 sStep,
    .param .u64 plo, .param .u64 phi, .param .u64 pscratch";

/// `k0_double`: program g = lo + ctaid.x is (b, i, h), h fastest; each thread doubles elements of the
/// `[C, V]` block `x[b, i*C.., h, :]` into `o` (rows past T skipped). `k1_acc`: program g is (b, h); adds
/// `x[b, 0..C, h, :]` to `s[b, h, :, :]`.
fn ptx() -> String {
    format!(
        "
.version 8.0
.target sm_90
.address_size 64

.visible .entry k0_double({PARAMS})
{{
    .reg .pred %p<4>;
    .reg .b32 %r<4>;
    .reg .b64 %rd<32>;
    .reg .f32 %f<4>;
    ld.param.u64 %rd1, [px];
    ld.param.u64 %rd2, [po];
    ld.param.u64 %rd3, [sT];
    ld.param.u64 %rd4, [sH];
    ld.param.u64 %rd5, [sV];
    ld.param.u64 %rd6, [sNT];
    ld.param.u64 %rd7, [sC];
    ld.param.u64 %rd8, [plo];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r1, %ctaid.x;
    cvt.u64.u32 %rd9, %r1;
    add.s64 %rd9, %rd9, %rd8;
    rem.u64 %rd10, %rd9, %rd4;
    div.u64 %rd11, %rd9, %rd4;
    rem.u64 %rd12, %rd11, %rd6;
    div.u64 %rd13, %rd11, %rd6;
    mul.lo.s64 %rd14, %rd7, %rd5;
    mov.u32 %r2, %tid.x;
    cvt.u64.u32 %rd15, %r2;
    mov.u32 %r3, %ntid.x;
    cvt.u64.u32 %rd16, %r3;
$L0_loop:
    setp.ge.u64 %p1, %rd15, %rd14;
    @%p1 bra $L0_done;
    div.u64 %rd17, %rd15, %rd5;
    rem.u64 %rd18, %rd15, %rd5;
    mul.lo.s64 %rd19, %rd12, %rd7;
    add.s64 %rd19, %rd19, %rd17;
    setp.ge.u64 %p2, %rd19, %rd3;
    @%p2 bra $L0_next;
    mul.lo.s64 %rd20, %rd13, %rd3;
    add.s64 %rd20, %rd20, %rd19;
    mul.lo.s64 %rd20, %rd20, %rd4;
    add.s64 %rd20, %rd20, %rd10;
    mul.lo.s64 %rd20, %rd20, %rd5;
    add.s64 %rd20, %rd20, %rd18;
    shl.b64 %rd21, %rd20, 2;
    add.s64 %rd22, %rd1, %rd21;
    ld.global.f32 %f1, [%rd22];
    add.f32 %f2, %f1, %f1;
    add.s64 %rd23, %rd2, %rd21;
    st.global.f32 [%rd23], %f2;
$L0_next:
    add.s64 %rd15, %rd15, %rd16;
    bra.uni $L0_loop;
$L0_done:
    ret;
}}

.visible .entry k1_acc({PARAMS})
{{
    .reg .pred %p<4>;
    .reg .b32 %r<4>;
    .reg .b64 %rd<32>;
    .reg .f32 %f<4>;
    ld.param.u64 %rd1, [px];
    ld.param.u64 %rd2, [ps];
    ld.param.u64 %rd3, [sT];
    ld.param.u64 %rd4, [sH];
    ld.param.u64 %rd5, [sV];
    ld.param.u64 %rd7, [sC];
    ld.param.u64 %rd8, [plo];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r1, %ctaid.x;
    cvt.u64.u32 %rd9, %r1;
    add.s64 %rd9, %rd9, %rd8;
    rem.u64 %rd10, %rd9, %rd4;
    div.u64 %rd13, %rd9, %rd4;
    mul.lo.s64 %rd14, %rd7, %rd5;
    mov.u32 %r2, %tid.x;
    cvt.u64.u32 %rd15, %r2;
    mov.u32 %r3, %ntid.x;
    cvt.u64.u32 %rd16, %r3;
$L1_loop:
    setp.ge.u64 %p1, %rd15, %rd14;
    @%p1 bra $L1_done;
    div.u64 %rd17, %rd15, %rd5;
    rem.u64 %rd18, %rd15, %rd5;
    mul.lo.s64 %rd24, %rd13, %rd4;
    add.s64 %rd24, %rd24, %rd10;
    mul.lo.s64 %rd24, %rd24, %rd7;
    add.s64 %rd24, %rd24, %rd17;
    mul.lo.s64 %rd24, %rd24, %rd5;
    add.s64 %rd24, %rd24, %rd18;
    shl.b64 %rd25, %rd24, 2;
    add.s64 %rd25, %rd2, %rd25;
    ld.global.f32 %f3, [%rd25];
    setp.ge.u64 %p2, %rd17, %rd3;
    @%p2 bra $L1_store;
    mul.lo.s64 %rd20, %rd13, %rd3;
    add.s64 %rd20, %rd20, %rd17;
    mul.lo.s64 %rd20, %rd20, %rd4;
    add.s64 %rd20, %rd20, %rd10;
    mul.lo.s64 %rd20, %rd20, %rd5;
    add.s64 %rd20, %rd20, %rd18;
    shl.b64 %rd21, %rd20, 2;
    add.s64 %rd22, %rd1, %rd21;
    ld.global.f32 %f1, [%rd22];
    add.f32 %f3, %f3, %f1;
$L1_store:
    st.global.f32 [%rd25], %f3;
    add.s64 %rd15, %rd15, %rd16;
    bra.uni $L1_loop;
$L1_done:
    ret;
}}
"
    )
}

/// Hands out the PTX above and counts its calls.
#[derive(Default)]
struct HandWritten(AtomicUsize);

impl PtxCompiler for HandWritten {
    fn ptx(&self, p: &Program) -> Result<String, String> {
        self.0.fetch_add(1, Ordering::Relaxed);
        assert_eq!(p.name, "abi.forward");
        Ok(ptx())
    }
}

fn program(storage: DType) -> (Program, ScheduleConfig) {
    let config = ScheduleConfig { storage, ..ScheduleConfig::with_chunk(4) };
    let p = parse_program(PROGRAM).unwrap();
    (specialise(&p, Specialisation { k: 1, v: 3, c: 4 }, &config), config)
}

fn env(p: &Program, b: usize, t: usize, h: usize) -> SizeEnv {
    SizeEnv::new(b, t, h, 1, 3, 1, 4, p.hierarchical)
}

fn x(b: usize, t: usize, h: usize, dtype: DType) -> Tensor {
    let data: Vec<f32> = (0..b * t * h * 3).map(|i| (i as f32 * 0.37).sin()).collect();
    Tensor::from_f32_as(dtype, vec![b, t, h, 3], &data)
}

fn s0(b: usize, h: usize) -> Tensor {
    let data: Vec<f32> = (0..b * h * 4 * 3).map(|i| i as f32 * 0.25 - 3.0).collect();
    Tensor::from_f32(vec![b, h, 4, 3], &data)
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("loglinear-cuda-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn has_gpu() -> bool {
    let t = CudaTarget::new().with_kernels_dir(std::env::temp_dir());
    match t.availability() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("no GPU here: {why}");
            false
        }
    }
}

#[test]
fn the_hand_written_program_parses_and_lays_out_as_the_ptx_expects() {
    let (p, _) = program(DType::F32);
    assert_eq!(gpu_layout(&p, 0).symbol, "k0_double");
    assert_eq!(gpu_layout(&p, 1).symbol, "k1_acc");
    assert_eq!(gpu_layout(&p, 0).scratch_floats, 0);
    // The interpreter's answer, which the GPU must reproduce exactly.
    let (b, t, h) = (2, 10, 3);
    let xs = x(b, t, h, DType::F32);
    let mut states = States::new();
    states.insert("s".into(), s0(b, h));
    let inputs: Bindings<'_> = [("x".to_string(), xs.view())].into();
    let exec = InterpreterTarget::f32().compile(&p, &ScheduleConfig::with_chunk(4)).unwrap();
    let o = exec.run_with_states(&env(&p, b, t, h), &inputs, &mut states).unwrap();
    let xf = xs.view().to_f64();
    assert_eq!(o.to_f64(), xf.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
    let s = states["s"].to_f64();
    let want = s0(b, h).to_f64();
    for (bi, hi, r, c) in
        (0..b).flat_map(|bi| (0..h).flat_map(move |hi| (0..4).flat_map(move |r| (0..3).map(move |c| (bi, hi, r, c)))))
    {
        let add = if r < t { xf[((bi * t + r) * h + hi) * 3 + c] } else { 0.0 };
        let i = ((bi * h + hi) * 4 + r) * 3 + c;
        assert_eq!(s[i], f64::from(want[i] as f32 + add as f32));
    }
}

#[test]
fn without_a_driver_the_backend_is_unavailable_and_never_panics() {
    if has_gpu() {
        eprintln!("skip: a CUDA driver and device are present");
        return;
    }
    let t = CudaTarget::new().with_kernels_dir(dir("nodriver"));
    let why = t.availability().unwrap_err();
    if !why.contains("no CUDA driver") {
        // A driver without a device (a container with libcuda but no GPU).
        assert!(why.contains("no CUDA device 0"), "{why}");
    }
    assert_eq!(t.device(), "cuda");
    assert_eq!(t.capabilities().fill_programs, Some(loglinear_cuda::DEFAULT_MULTIPROCESSORS));
    let (p, config) = program(DType::F32);
    let e = t.compile(&p, &config).err().expect("no GPU: compile fails").to_string();
    assert!(e.contains(&why), "{e}");
    let xs = x(1, 4, 1, DType::F32);
    assert!(t.upload(xs.view()).unwrap_err().to_string().contains(&why));
    // A compiler alone does not make it available: the code-generation mode must be asked for.
    let t = CudaTarget::new().with_compiler(Arc::new(HandWritten::default()));
    assert!(!t.preparing());
    assert_eq!(t.availability().unwrap_err(), why);
}

#[test]
fn runs_the_hand_written_ptx_or_prepares_it() {
    let kernels = dir("abi");
    let compiler = Arc::new(HandWritten::default());
    let target = CudaTarget::new().with_kernels_dir(&kernels).with_compiler(compiler.clone()).with_prepare(true);
    target.availability().expect("available: on a GPU, or in code-generation mode");
    let gpu = !target.preparing();
    eprintln!("{} on {}", target.description(), target.device());
    if !gpu {
        assert!(target.description().contains("CODE-GENERATION MODE"));
    }
    for storage in [DType::F32, DType::BF16] {
        let (p, config) = program(storage);
        let exec = target.compile(&p, &config).unwrap();
        // The PTX is cached under the program's fingerprint, atomically (no temporary left).
        let file = kernels.join(format!("{}.ptx", fingerprint(&p)));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), ptx());
        assert_eq!(exec.stats().kernels.len(), 2);
        assert_eq!(exec.stats().code_bytes(), ptx().len() / 2 * 2);
        let interp = InterpreterTarget::f32().compile(&p, &config).unwrap();
        for (b, t, h) in [(1, 4, 1), (2, 10, 3), (1, 3, 2), (3, 1, 2)] {
            let xs = x(b, t, h, storage);
            let inputs: Bindings<'_> = [("x".to_string(), xs.view())].into();
            let e = env(&p, b, t, h);
            // Twice: the second run reuses the pooled buffers (the state is bound again, the output re-zeroed).
            for _ in 0..2 {
                let (mut got_s, mut want_s) = (States::new(), States::new());
                got_s.insert("s".into(), s0(b, h));
                want_s.insert("s".into(), s0(b, h));
                let got = exec.run_with_states(&e, &inputs, &mut got_s).unwrap();
                let want = interp.run_with_states(&e, &inputs, &mut want_s).unwrap();
                assert_eq!(got.dtype(), storage);
                assert_eq!(got.shape(), want.shape());
                assert_eq!(got.bytes(), want.bytes(), "{storage} B={b} T={t} H={h}");
                assert_eq!(got_s["s"].to_f64(), want_s["s"].to_f64(), "state {storage} B={b} T={t} H={h}");
            }
            // Unbound, the state starts at zero.
            let mut got_s = States::new();
            exec.run_with_states(&e, &inputs, &mut got_s).unwrap();
            let want: Vec<f64> = (0..b * h * 4 * 3)
                .map(|i| {
                    let (c, r, hb) = (i % 3, (i / 3) % 4, i / 12);
                    if r < t {
                        xs.view().to_f64()[(((hb / h) * t + r) * h + hb % h) * 3 + c]
                    } else {
                        0.0
                    }
                })
                .collect();
            assert_eq!(got_s["s"].to_f64(), want);
        }
    }
    assert_eq!(compiler.0.load(Ordering::Relaxed), 2, "one PTX per program");
    // A second target without a compiler finds the cached files.
    let again = CudaTarget::new().with_kernels_dir(&kernels);
    if gpu {
        let (p, config) = program(DType::F32);
        again.compile(&p, &config).expect("the cached PTX loads");
    }
    let left: Vec<String> =
        std::fs::read_dir(&kernels).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left.len(), 2, "two PTX files and nothing else: {left:?}");
    std::fs::remove_dir_all(&kernels).unwrap();
}

#[test]
fn waves_resident_tensors_and_resident_states() {
    if !has_gpu() {
        eprintln!("skip: needs a CUDA GPU");
        return;
    }
    let kernels = dir("waves");
    let compiler = Arc::new(HandWritten::default());
    let target = CudaTarget::new().with_kernels_dir(&kernels).with_compiler(compiler).with_wave_limit(5);
    let (p, config) = program(DType::F16);
    let exec = target.compile(&p, &config).unwrap();
    let interp = InterpreterTarget::f32().compile(&p, &config).unwrap();
    let (b, t, h) = (3, 29, 4);
    let e = env(&p, b, t, h);
    let xs = x(b, t, h, DType::F16);
    let inputs: Bindings<'_> = [("x".to_string(), xs.view())].into();
    let want = interp.run(&e, &inputs).unwrap();
    // 3·8·4 = 96 programs of the first kernel in waves of 5.
    assert_eq!(exec.run(&e, &inputs).unwrap().bytes(), want.bytes());
    // Buffers freed and programs run on threads where the context was never current.
    let dropped = target.upload(xs.view()).unwrap();
    std::thread::spawn(move || drop(dropped)).join().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(exec.run(&e, &inputs).unwrap().bytes(), want.bytes()));
    });
    assert_eq!(exec.run(&e, &inputs).unwrap().bytes(), want.bytes());
    // Resident input and output.
    let dx = target.upload(xs.view()).unwrap();
    assert_eq!(dx.memory(), "cuda");
    assert_eq!(target.download(&dx).unwrap().to_f64(), xs.view().to_f64());
    let bound: DeviceBindings<'_> = [("x".to_string(), &dx)].into();
    for _ in 0..2 {
        let o = exec.run_resident(&e, &bound).unwrap();
        assert_eq!(o.memory(), "cuda");
        assert_eq!(o.dtype(), DType::F16);
        assert_eq!(target.download(&o).unwrap().bytes(), want.bytes());
    }
    // A host tensor is refused as a resident input.
    let host = loglinear_kernel::DeviceTensor::host(xs.clone());
    let bad: DeviceBindings<'_> = [("x".to_string(), &host)].into();
    assert!(exec.run_resident(&e, &bad).unwrap_err().to_string().contains("host memory"));
    // A resident state updated in place, step after step.
    let mut states = DeviceStates::new();
    states.insert("s".into(), target.upload(s0(b, h).view()).unwrap());
    let mut host_states = States::new();
    host_states.insert("s".into(), s0(b, h));
    for _ in 0..3 {
        let o = exec.run_with_resident_states(&e, &inputs, &mut states).unwrap();
        let w = interp.run_with_states(&e, &inputs, &mut host_states).unwrap();
        assert_eq!(o.bytes(), w.bytes());
        assert_eq!(target.download(&states["s"]).unwrap().to_f64(), host_states["s"].to_f64());
    }
    let mut unbound = DeviceStates::new();
    assert!(exec.run_with_resident_states(&e, &inputs, &mut unbound).unwrap_err().to_string().contains("not bound"));
    std::fs::remove_dir_all(&kernels).unwrap();
}
