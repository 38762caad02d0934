//! Inference on every backend: a prefill of T1 tokens with its final state, then T2 decode steps (or the empty
//! state at T1 = 0), equals one run of T1 + T2 tokens; the final states equal the token recurrence's; the states
//! of the independent implementation (`tests/vectors/states_*.safetensors`) are reproduced and decoding on from
//! them gives the recurrence's next outputs; sequences at different positions step together; bad states are
//! refused naming the tensor.

use std::collections::BTreeMap;
use std::path::PathBuf;

use loglinear::ir::random::random_inputs;
use loglinear::ir::{builtins, HostTensor, TensorMap, VariantIr};
use loglinear::runtime::{Backend, DecodeState, RunOptions, Runtime};
use loglinear::{DType, Tensor};

fn rt() -> &'static Runtime {
    loglinear::runtime()
}

fn stored(x: &TensorMap, dtype: DType) -> BTreeMap<String, Tensor> {
    x.iter().map(|(n, t)| (n.clone(), Tensor::from_f64(dtype, t.shape.clone(), &t.data))).collect()
}

use loglinear_testkit::time_rows as slice;

fn tol(b: &Backend<'_>, v: &VariantIr) -> f64 {
    b.default_tolerance(v)
}

/// Max |a − b| / max(1, max |b|).
fn err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

/// Prefill `t1` tokens (or start empty when `t1 = 0`), then decode the next `t2` one by one; returns the outputs
/// of all `t1 + t2` tokens in `[B, T, H, V]` order, and the final state.
fn prefill_then_decode(b: &Backend<'_>, v: &VariantIr, x: &TensorMap, t1: usize, t2: usize) -> (Vec<f64>, DecodeState) {
    let opts = RunOptions::with_chunk_size(Some(16));
    let storage = b.config(v, &opts).unwrap().storage;
    let (bb, h, vd) = (x["v"].shape[0], x["v"].shape[2], x["v"].shape[3]);
    let levels = x.get("lam").map_or(1, |l| l.shape[3]);
    let mut rows: Vec<Vec<f64>> = vec![Vec::new(); bb];
    let mut state = if t1 == 0 {
        let k = x["q"].shape[3];
        let accum = b.config(v, &opts).unwrap().accum;
        DecodeState::zeros(accum, bb, h, if v.is_log_linear() { levels } else { 1 }, k, vd)
    } else {
        let head = stored(&slice(x, 0, t1), storage);
        let (ran, st) = b.prefill(v, &loglinear::runtime::views(&head), &opts).unwrap();
        let o = ran.o.to_f64();
        for (bi, r) in rows.iter_mut().enumerate() {
            r.extend_from_slice(&o[bi * t1 * h * vd..(bi + 1) * t1 * h * vd]);
        }
        st
    };
    for t in t1..t1 + t2 {
        let tok = stored(&slice(x, t, t + 1), storage);
        let o = b.decode_step(v, &mut state, &loglinear::runtime::views(&tok), &opts).unwrap().to_f64();
        for (bi, r) in rows.iter_mut().enumerate() {
            r.extend_from_slice(&o[bi * h * vd..(bi + 1) * h * vd]);
        }
    }
    (rows.concat(), state)
}

#[test]
fn prefill_then_decode_equals_one_run_on_every_backend() {
    let grid: &[(usize, usize)] =
        &[(0, 7), (1, 1), (1, 7), (63, 1), (64, 7), (65, 64), (0, 300), (65, 300), (1000, 1), (1000, 7)];
    for b in rt().available() {
        for v in builtins::all() {
            for &(t1, t2) in grid {
                let heavy = t1 + t2 > 300;
                if heavy && !matches!(v.name.as_str(), "loglinear_mamba2" | "loglinear_gated_deltanet") {
                    continue; // the long cases on the two flagship variants only (2 cores)
                }
                let x = random_inputs(&v, (2, t1 + t2, 2, 4, 3), 0, (t1 * 7 + t2) as u64);
                let levels = x.get("lam").map_or(1, |l| l.shape[3]);
                let (want_o, want_s) = loglinear::oracle::run_with_state(&v, &x, 0, None, levels).unwrap();
                let (got, st) = prefill_then_decode(&b, &v, &x, t1, t2);
                let tag = format!("{} on {} T1={t1} T2={t2}", v.name, b.name());
                let e = err(&got, &want_o.data);
                assert!(e <= tol(&b, &v), "{tag}: outputs differ by {e:e}");
                assert_eq!(st.position, vec![t1 + t2; 2], "{tag}");
                let e = err(&st.state.to_f64(), &want_s.data);
                assert!(e <= tol(&b, &v), "{tag}: final states differ by {e:e}");
            }
        }
    }
}

fn vectors_dir() -> PathBuf {
    std::env::var_os("LOGLINEAR_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors"))
}

#[test]
fn external_states_are_reproduced_and_decoding_continues_from_them() {
    for name in ["loglinear_mamba2", "loglinear_gated_deltanet"] {
        let path = vectors_dir().join(format!("states_{name}.safetensors"));
        let sf = loglinear::runtime::SafetensorsFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = sf.views().unwrap();
        let v = builtins::by_name(name).unwrap();
        let mut cases: Vec<String> =
            file.keys().filter_map(|k| k.strip_suffix(".state").map(|c| c.to_string())).collect();
        cases.sort();
        assert!(cases.len() >= 5, "{}: cases {cases:?}", path.display());
        for b in rt().available() {
            for case in &cases {
                let get = |n: &str| {
                    let t = &file[&format!("{case}.{n}")];
                    HostTensor::new(t.shape.to_vec(), t.to_f64())
                };
                let x: TensorMap = v.inputs.iter().map(|d| (d.name.clone(), get(&d.name))).collect();
                let storage = b.config(&v, &RunOptions::default()).unwrap().storage;
                let xs = stored(&x, storage);
                let (ran, st) = b.prefill(&v, &loglinear::runtime::views(&xs), &RunOptions::default()).unwrap();
                let want_o = get("o");
                let want_s = get("state");
                let tag = format!("{name} {case} on {}", b.name());
                assert!(err(&ran.o.to_f64(), &want_o.data) <= tol(&b, &v), "{tag}: o");
                assert_eq!(st.state.shape(), want_s.shape.as_slice(), "{tag}: state shape");
                assert!(err(&st.state.to_f64(), &want_s.data) <= tol(&b, &v), "{tag}: state");
                let want_pos = get("position");
                assert_eq!(st.position.iter().map(|p| *p as f64).collect::<Vec<_>>(), want_pos.data, "{tag}");
                // Decode on from the external state (not ours): 3 tokens of fresh inputs.
                let t = x["q"].shape[1];
                let levels = want_s.shape[2];
                if loglinear::ir::level::num_levels(t + 3) > levels {
                    continue; // the state's levels do not reach 3 more tokens
                }
                let dims = (x["q"].shape[0], 3, x["q"].shape[2], x["q"].shape[3], x["v"].shape[3]);
                let mut more = random_inputs(&v, dims, 0, 99);
                if let Some(l) = more.get_mut("lam") {
                    let extra = levels - l.shape[3];
                    *l = random_inputs(&v, dims, extra, 99)["lam"].clone();
                }
                let ext = DecodeState::from_tensors(
                    &v,
                    &Tensor::from_f64(DType::F64, want_s.shape.clone(), &want_s.data),
                    &Tensor::from_f64(DType::I64, want_pos.shape.clone(), &want_pos.data),
                    (dims.2, dims.3, dims.4),
                )
                .unwrap();
                let mut s = ext.clone();
                let mut got = Vec::new();
                for i in 0..3 {
                    let tok = stored(&slice(&more, i, i + 1), storage);
                    got.push(
                        b.decode_step(&v, &mut s, &loglinear::runtime::views(&tok), &RunOptions::default()).unwrap(),
                    );
                }
                let (want, _) = loglinear::oracle::run_with_state(&v, &more, t, Some(&want_s), levels).unwrap();
                let got: Vec<f64> = {
                    let (bb, h, vd) = (dims.0, dims.2, dims.4);
                    let mut out = vec![0.0; bb * 3 * h * vd];
                    for (i, o) in got.iter().enumerate() {
                        let o = o.to_f64();
                        for bi in 0..bb {
                            let dst = (bi * 3 + i) * h * vd;
                            out[dst..dst + h * vd].copy_from_slice(&o[bi * h * vd..(bi + 1) * h * vd]);
                        }
                    }
                    out
                };
                assert!(err(&got, &want.data) <= tol(&b, &v), "{tag}: decoding on");
            }
        }
    }
}

#[test]
fn sequences_at_different_positions_step_together() {
    let v = builtins::by_name("loglinear_gated_deltanet").unwrap();
    for b in rt().available() {
        // Two sequences prefilled separately to 5 and 12 tokens, stacked, then stepped together.
        let xa = random_inputs(&v, (1, 8, 2, 4, 3), 1, 1);
        let xb = random_inputs(&v, (1, 15, 2, 4, 3), 0, 2);
        let opts = RunOptions::with_chunk_size(Some(4));
        let storage = b.config(&v, &opts).unwrap().storage;
        let (_, sa) = b.prefill(&v, &loglinear::runtime::views(&stored(&slice(&xa, 0, 5), storage)), &opts).unwrap();
        let (_, sb) = b.prefill(&v, &loglinear::runtime::views(&stored(&slice(&xb, 0, 12), storage)), &opts).unwrap();
        assert_eq!(sa.levels(), sb.levels());
        let cat = |a: &Tensor, c: &Tensor| {
            let mut shape = a.shape().to_vec();
            shape[0] += c.shape()[0];
            Tensor::from_bytes(a.dtype(), shape, [a.bytes(), c.bytes()].concat()).unwrap()
        };
        let mut both = DecodeState { state: cat(&sa.state, &sb.state), position: vec![5, 12] };
        let (mut a1, mut b1) = (sa.clone(), sb.clone());
        for i in 0..3 {
            let ta = stored(&slice(&xa, 5 + i, 6 + i), storage);
            let tb = stored(&slice(&xb, 12 + i, 13 + i), storage);
            let tok: BTreeMap<String, Tensor> = ta.keys().map(|n| (n.clone(), cat(&ta[n], &tb[n]))).collect();
            let o = b.decode_step(&v, &mut both, &loglinear::runtime::views(&tok), &opts).unwrap().to_f64();
            let oa = b.decode_step(&v, &mut a1, &loglinear::runtime::views(&ta), &opts).unwrap().to_f64();
            let ob = b.decode_step(&v, &mut b1, &loglinear::runtime::views(&tb), &opts).unwrap().to_f64();
            assert_eq!(o, [oa, ob].concat(), "{} step {i}", b.name());
        }
        assert_eq!(both.position, vec![8, 15]);
        assert_eq!(both.state.to_f64(), [a1.state.to_f64(), b1.state.to_f64()].concat());
    }
}

/// Decode steps on a state held in the backend's memory (`upload_state`, `decode_step_resident`) give the same
/// outputs and final state as the host path, at one position and at different ones; a state uploaded to
/// another backend is refused.
#[test]
fn resident_decode_steps_match_the_host_steps_on_every_backend() {
    for name in ["loglinear_mamba2", "loglinear_gated_deltanet", "mamba2"] {
        let v = builtins::by_name(name).unwrap();
        for b in rt().available() {
            let opts = RunOptions::with_chunk_size(Some(4));
            let storage = b.config(&v, &opts).unwrap().storage;
            let x = random_inputs(&v, (2, 14, 2, 4, 3), 1, 3);
            let (_, host0) =
                b.prefill(&v, &loglinear::runtime::views(&stored(&slice(&x, 0, 9), storage)), &opts).unwrap();
            let mut host = host0.clone();
            let mut dev = b.upload_state(&host0).unwrap();
            assert_eq!((dev.sequences(), dev.levels(), dev.backend()), (2, host0.levels(), b.name()));
            for t in 9..14 {
                let tok = stored(&slice(&x, t, t + 1), storage);
                let want = b.decode_step(&v, &mut host, &loglinear::runtime::views(&tok), &opts).unwrap();
                let got = b.decode_step_resident(&v, &mut dev, &loglinear::runtime::views(&tok), &opts).unwrap();
                assert_eq!(got.to_f64(), want.to_f64(), "{name} on {} step {t}", b.name());
            }
            let back = b.download_state(&dev).unwrap();
            assert_eq!(back.position, vec![14, 14]);
            assert_eq!(back.state.to_f64(), host.state.to_f64(), "{name} on {}", b.name());
            // Sequences at different positions step too (through the host).
            let mut apart = host0.clone();
            apart.position = vec![9, 8];
            let mut dev = b.upload_state(&apart).unwrap();
            let tok = stored(&slice(&x, 9, 10), storage);
            let want = b.decode_step(&v, &mut apart, &loglinear::runtime::views(&tok), &opts).unwrap();
            let got = b.decode_step_resident(&v, &mut dev, &loglinear::runtime::views(&tok), &opts).unwrap();
            assert_eq!(got.to_f64(), want.to_f64(), "{name} on {}", b.name());
            assert_eq!(dev.position, vec![10, 9]);
            // A state of another backend is refused, naming it.
            let other = rt().get(if b.name() == "reference" { "interpreter" } else { "reference" }).unwrap();
            let mut foreign = other.upload_state(&host0).unwrap();
            let e = b.decode_step_resident(&v, &mut foreign, &loglinear::runtime::views(&tok), &opts).unwrap_err();
            assert!(e.to_string().contains(other.name()), "{e}");
        }
    }
}

#[test]
fn bad_states_are_refused_naming_the_tensor() {
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let st = Tensor::zeros(DType::F32, vec![2, 2, 3, 4, 3]);
    let pos = Tensor::from_f64(DType::I64, vec![2], &[3.0, 4.0]);
    assert!(DecodeState::from_tensors(&v, &st, &pos, (2, 4, 3)).is_ok());
    let cases: Vec<(Tensor, Tensor, &str)> = vec![
        (Tensor::zeros(DType::F32, vec![2, 2, 3, 5, 3]), pos.clone(), "state"),
        (Tensor::zeros(DType::I64, vec![2, 2, 3, 4, 3]), pos.clone(), "state"),
        (st.clone(), Tensor::from_f64(DType::F32, vec![2], &[3.0, 4.0]), "position"),
        (st.clone(), Tensor::from_f64(DType::I64, vec![3], &[3.0, 4.0, 1.0]), "position"),
        (st.clone(), Tensor::from_f64(DType::I64, vec![2], &[-1.0, 4.0]), "position"),
        (st.clone(), Tensor::from_f64(DType::I64, vec![2], &[3.0, 5.0]), "position"), // 5 tokens need 4 levels
        (Tensor::from_f64(DType::F32, vec![1, 1, 1, 1, 1], &[f64::NAN]), pos.clone(), "state"),
    ];
    for (s, p, what) in cases {
        let e = DecodeState::from_tensors(&v, &s, &p, (2, 4, 3)).unwrap_err().to_string();
        assert!(e.contains(what), "{what}: {e}");
    }
    // A linear variant's state has one level.
    let lin = builtins::by_name("mamba2").unwrap();
    let e = DecodeState::from_tensors(&lin, &st, &pos, (2, 4, 3)).unwrap_err().to_string();
    assert!(e.contains("one level"), "{e}");
    // Decoding past the state's levels is refused, naming both numbers.
    let b = rt().get("interpreter").unwrap();
    let mut s = DecodeState { state: Tensor::zeros(DType::F64, vec![1, 2, 3, 4, 3]), position: vec![4] };
    let x = random_inputs(&v, (1, 1, 2, 4, 3), 3, 1);
    let e = b
        .decode_step(&v, &mut s, &loglinear::runtime::views(&stored(&x, DType::F64)), &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("position[0] = 4") && e.contains("L_cap = 3"), "{e}");
    assert_eq!(s.position, vec![4], "a refused step changes nothing");
}

#[test]
fn a_packed_batch_equals_its_sequences_one_by_one() {
    for v in [builtins::by_name("loglinear_mamba2").unwrap(), builtins::by_name("gated_deltanet").unwrap()] {
        let lens = [5usize, 1, 17, 64, 9];
        let cu: Vec<usize> = std::iter::once(0)
            .chain(lens.iter().scan(0, |a, l| {
                *a += l;
                Some(*a)
            }))
            .collect();
        let t = *cu.last().unwrap();
        let x = random_inputs(&v, (1, t, 2, 4, 3), 0, 3);
        for b in rt().available() {
            let opts = RunOptions::with_chunk_size(Some(16));
            let storage = b.config(&v, &opts).unwrap().storage;
            let xs = stored(&x, storage);
            let (ran, st) = b.run_varlen(&v, &loglinear::runtime::views(&xs), &cu, &opts, true).unwrap();
            let st = st.unwrap();
            assert_eq!(st.position, lens.to_vec());
            let o = ran.o.to_f64();
            let (h, vd) = (2, 3);
            for (n, w) in cu.windows(2).enumerate() {
                let one = stored(&slice(&x, w[0], w[1]), storage);
                let (r1, s1) = b.prefill(&v, &loglinear::runtime::views(&one), &opts).unwrap();
                let tag = format!("{} on {} sequence {n}", v.name, b.name());
                assert_eq!(&o[w[0] * h * vd..w[1] * h * vd], r1.o.to_f64().as_slice(), "{tag}: o");
                let per = s1.state.to_f64();
                assert_eq!(&st.state.to_f64()[n * per.len()..(n + 1) * per.len()], per.as_slice(), "{tag}: state");
            }
        }
    }
}

#[test]
fn bad_cu_seqlens_are_refused_naming_them() {
    use loglinear::runtime::check_cu_seqlens;
    let t = |v: &[f64], dt: DType| Tensor::from_f64(dt, vec![v.len()], v);
    let ok = t(&[0.0, 3.0, 10.0], DType::I64);
    assert_eq!(check_cu_seqlens(&ok.view(), 1, 10).unwrap(), vec![0, 3, 10]);
    for (cu, b, tl, what) in [
        (t(&[0.0, 3.0, 10.0], DType::F32), 1, 10, "I64"),
        (t(&[0.0, 3.0, 10.0], DType::I64), 2, 10, "B = 1"),
        (t(&[1.0, 3.0, 10.0], DType::I64), 1, 10, "cu_seqlens[0]"),
        (t(&[0.0, 3.0, 9.0], DType::I64), 1, 10, "T = 10"),
        (t(&[0.0, 3.0, 3.0, 10.0], DType::I64), 1, 10, "strictly increasing"),
        (t(&[0.0], DType::I64), 1, 10, "N+1"),
    ] {
        let e = check_cu_seqlens(&cu.view(), b, tl).unwrap_err().to_string();
        assert!(e.contains("cu_seqlens") && e.contains(what), "{what}: {e}");
    }
}

#[test]
fn a_second_prefill_from_the_state_equals_one_run_on_every_backend() {
    let grid: &[(usize, usize)] =
        &[(0, 7), (1, 1), (1, 64), (63, 7), (64, 64), (65, 300), (100, 300), (1000, 64), (1000, 7)];
    for b in rt().available() {
        for v in builtins::all() {
            for &(t1, t2) in grid {
                if t1 + t2 > 400 && !matches!(v.name.as_str(), "loglinear_mamba2" | "loglinear_gated_deltanet") {
                    continue;
                }
                let x = random_inputs(&v, (2, t1 + t2, 2, 4, 3), 0, (t1 * 5 + t2) as u64);
                let levels = x.get("lam").map_or(1, |l| l.shape[3]);
                let (want_o, want_s) = loglinear::oracle::run_with_state(&v, &x, 0, None, levels).unwrap();
                let opts = RunOptions::with_chunk_size(Some(16));
                let cfg = b.config(&v, &opts).unwrap();
                let (mut state, mut got) = if t1 == 0 {
                    (
                        DecodeState::zeros(cfg.accum, 2, 2, if v.is_log_linear() { levels } else { 1 }, 4, 3),
                        vec![vec![]; 2],
                    )
                } else {
                    let head = stored(&slice(&x, 0, t1), cfg.storage);
                    let (ran, st) = b.prefill(&v, &loglinear::runtime::views(&head), &opts).unwrap();
                    let o = ran.o.to_f64();
                    (st, (0..2).map(|bi| o[bi * t1 * 6..(bi + 1) * t1 * 6].to_vec()).collect())
                };
                let tail = stored(&slice(&x, t1, t1 + t2), cfg.storage);
                let ran = b.prefill_from(&v, &mut state, &loglinear::runtime::views(&tail), &opts).unwrap();
                let o2 = ran.o.to_f64();
                for (bi, g) in got.iter_mut().enumerate() {
                    g.extend_from_slice(&o2[bi * t2 * 6..(bi + 1) * t2 * 6]);
                }
                let tag = format!("{} on {} T1={t1} T2={t2}", v.name, b.name());
                let e = err(&got.concat(), &want_o.data);
                assert!(e <= tol(&b, &v), "{tag}: outputs differ by {e:e}");
                assert_eq!(state.position, vec![t1 + t2; 2], "{tag}");
                let e = err(&state.state.to_f64(), &want_s.data);
                assert!(e <= tol(&b, &v), "{tag}: final states differ by {e:e}");
            }
        }
    }
}

/// A target that wants `fill_programs` grid programs (a GPU) gets a decode step with `V` split into column
/// blocks when `N·H` is below it, and the split step computes the same outputs and state.
#[test]
fn small_decode_grids_split_v_on_targets_that_want_many_programs() {
    use loglinear::kernel::{Capabilities, Executable, InterpreterTarget, Program, Target, TargetError};
    use loglinear::ScheduleConfig;
    use std::sync::Arc;
    struct Wide;
    impl Target for Wide {
        fn name(&self) -> &'static str {
            "wide"
        }
        fn description(&self) -> &'static str {
            "the f32 interpreter, declaring a GPU's fill"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities { fill_programs: Some(128), ..InterpreterTarget::f32().capabilities() }
        }
        fn compile(&self, p: &Program, c: &ScheduleConfig) -> Result<Arc<dyn Executable>, TargetError> {
            InterpreterTarget::f32().compile(p, c)
        }
    }
    let mut r = Runtime::with_defaults();
    r.register(Arc::new(Wide));
    let wide = r.get("wide").unwrap();
    let plain = r.get("interpreter-f32").unwrap();
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let opts = RunOptions::default();
    let dims = |n: usize, vd: usize| loglinear::ir::Dims { b: n, t: 1, h: 16, k: 8, v: vd, l: 4 };
    assert_eq!(wide.decode_config(&v, &dims(1, 64), &opts).unwrap().v_block, Some(16), "16 programs: 4 blocks");
    assert_eq!(wide.decode_config(&v, &dims(4, 64), &opts).unwrap().v_block, Some(32), "64 programs: 2 reach 128");
    assert_eq!(wide.decode_config(&v, &dims(8, 64), &opts).unwrap().v_block, None, "128 programs fill it");
    assert_eq!(wide.decode_config(&v, &dims(1, 16), &opts).unwrap().v_block, None, "nothing narrower than 16");
    assert_eq!(plain.decode_config(&v, &dims(1, 64), &opts).unwrap().v_block, None, "a CPU target");
    let fixed = RunOptions { overrides: "v_block=64".parse().unwrap(), ..RunOptions::default() };
    assert_eq!(wide.decode_config(&v, &dims(1, 64), &fixed).unwrap().v_block, Some(64), "the caller's choice");
    // The split step computes what the whole one does.
    let x = random_inputs(&v, (1, 6, 2, 8, 32), 0, 4);
    let (_, s0) = plain.prefill(&v, &loglinear::runtime::views(&stored(&slice(&x, 0, 5), DType::F32)), &opts).unwrap();
    let tok = stored(&slice(&x, 5, 6), DType::F32);
    let (mut a, mut b) = (s0.clone(), s0);
    let oa = plain.decode_step(&v, &mut a, &loglinear::runtime::views(&tok), &opts).unwrap().to_f64();
    let ob = wide.decode_step(&v, &mut b, &loglinear::runtime::views(&tok), &opts).unwrap().to_f64();
    assert!(err(&ob, &oa) <= 1e-6, "{:e}", err(&ob, &oa));
    assert!(err(&b.state.to_f64(), &a.state.to_f64()) <= 1e-6);
}
