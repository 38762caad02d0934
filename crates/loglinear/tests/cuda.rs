//! The `cuda` backend through the facade. Without an NVIDIA driver (the build machine) it is registered,
//! listed as unavailable with the reason, and a run on it is an error naming that reason, never a panic. On a
//! GPU machine it is available once it has PTX (`LOGLINEAR_CUDA_KERNELS`, written by `loglinear emit --target
//! ptx` or a `LOGLINEAR_CUDA_PREPARE=1` run of this test on the build machine), and LL-Mamba-2 matches the f64
//! reference: a plain run, a run on device-resident inputs, and a prefill followed by resident decode steps.
//! Programs whose PTX is missing are skipped with a note.

use std::collections::BTreeMap;

use loglinear::ir::random::random_inputs;
use loglinear::ir::{HostTensor, TensorMap};
use loglinear::runtime::{views, Backend, RunOptions};
use loglinear::{relative_error, DType, Registry, Tensor};

/// B=1, T=37, H=2, K=8, V=4 at chunk 4.
const DIMS: (usize, usize, usize, usize, usize) = (1, 37, 2, 8, 4);
const CHUNK: usize = 4;
/// Decode steps after the prefill of T tokens.
const STEPS: usize = 3;

fn cuda() -> Backend<'static> {
    loglinear::runtime().get("cuda").expect("the cuda backend is registered in every build")
}

fn stored(x: &TensorMap, dtype: DType) -> BTreeMap<String, Tensor> {
    x.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(dtype, t.shape.clone(), &t.data))).collect()
}

use loglinear_testkit::time_rows as rows;

fn host(t: &Tensor) -> HostTensor {
    HostTensor::new(t.shape().to_vec(), t.to_f64())
}

/// Whether `e` says that a program's PTX is not there (then the case is skipped with a note).
fn missing_ptx(e: &str) -> bool {
    if e.contains("no PTX for program") {
        eprintln!("skip: {e}");
        true
    } else {
        false
    }
}

#[test]
fn cuda_is_registered_and_never_panics() {
    let b = cuda();
    assert_eq!(b.name(), "cuda");
    let caps = b.capabilities();
    assert!(caps.decode && caps.primitives_only, "{caps:?}");
    assert!(caps.fill_programs.is_some_and(|n| n > 0), "{caps:?}");
    let reg = Registry::builtin();
    let v = reg.get("loglinear_mamba2").unwrap();
    let x = random_inputs(v, DIMS, 0, 7);
    match b.availability() {
        Err(why) if why.contains("no CUDA driver") => {
            assert!(why.contains("libcuda.so") && why.contains("NVIDIA GPU"), "{why}");
            let listed: Vec<&str> = loglinear::runtime().available().iter().map(|b| b.name()).collect();
            assert!(!listed.contains(&"cuda"), "unavailable backends are left out of `available`: {listed:?}");
            let e = loglinear::run(v, "cuda", &x, Some(CHUNK)).unwrap_err().to_string();
            assert!(e.contains("no CUDA driver"), "{e}");
            let s = stored(&x, DType::F32);
            let e = b.upload(v, &views(&s)).unwrap_err().to_string();
            assert!(e.contains("no CUDA driver"), "{e}");
        }
        Err(why) => {
            // A driver without a usable device, or a GPU without PTX to run.
            assert!(why.contains("no CUDA device") || why.contains("LOGLINEAR_CUDA_KERNELS"), "{why}");
            eprintln!("skip: cuda is not available here: {why}");
            let e = loglinear::run(v, "cuda", &x, Some(CHUNK)).unwrap_err().to_string();
            assert!(!e.is_empty());
        }
        Ok(()) => eprintln!("cuda is available on {}: {}", b.target().unwrap().device(), b.description()),
    }
}

#[test]
fn mamba2_on_the_gpu_matches_the_reference() {
    let b = cuda();
    if let Err(why) = b.availability() {
        eprintln!("skip: cuda is not available here: {why}");
        return;
    }
    let reg = Registry::builtin();
    let v = reg.get("loglinear_mamba2").unwrap();
    let (bb, t, h, _, vd) = DIMS;
    let full = random_inputs(v, (bb, t + STEPS, h, DIMS.3, vd), 0, 7);
    let want_full = loglinear::run(v, "reference", &full, Some(CHUNK)).unwrap();
    let x = rows(&full, 0, t);
    let want = loglinear::run(v, "reference", &x, Some(CHUNK)).unwrap();
    // A plain run (inputs and output crossing the bus).
    let o = match loglinear::run(v, "cuda", &x, Some(CHUNK)) {
        Ok(o) => o,
        Err(e) if missing_ptx(&e.to_string()) => return,
        Err(e) => panic!("cuda run: {e}"),
    };
    assert_eq!(o.shape, vec![bb, t, h, vd]);
    let e = relative_error(&o, &want);
    assert!(e <= 1e-4, "cuda vs reference: relative error {e}");
    // Device-resident inputs and output.
    let opts = RunOptions::with_chunk_size(Some(CHUNK));
    let storage = b.config(v, &opts).unwrap().storage;
    let s = stored(&x, storage);
    let up = b.upload(v, &views(&s)).unwrap();
    for _ in 0..2 {
        let (dev, _) = b.run_resident(v, &up, &opts).unwrap();
        // (Code-generation mode runs on the interpreter: host memory.)
        if std::env::var("LOGLINEAR_CUDA_PREPARE").is_err() {
            assert_eq!(dev.memory(), "cuda");
        }
        let e = relative_error(&host(&b.download(&dev).unwrap()), &want);
        assert!(e <= 1e-4, "resident run: relative error {e}");
    }
    // A prefill of T tokens, then decode steps on the resident state.
    let (ran, state) = b.prefill(v, &views(&s), &opts).unwrap();
    let e = relative_error(&host(&ran.o), &want);
    assert!(e <= 1e-4, "prefill: relative error {e}");
    let mut resident = b.upload_state(&state).unwrap();
    for step in 0..STEPS {
        let tok = stored(&rows(&full, t + step, t + step + 1), storage);
        let o = match b.decode_step_resident(v, &mut resident, &views(&tok), &opts) {
            Ok(o) => o,
            Err(e) if missing_ptx(&e.to_string()) => return,
            Err(e) => panic!("decode step {step}: {e}"),
        };
        let want_row = rows(&std::iter::once(("o".to_string(), want_full.clone())).collect(), t + step, t + step + 1);
        let e = relative_error(&host(&o), &want_row["o"]);
        assert!(e <= 1e-4, "decode step {step}: relative error {e}");
    }
    let back = b.download_state(&resident).unwrap();
    assert_eq!(back.position, vec![t + STEPS; bb]);
}
