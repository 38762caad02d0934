//! The Kernel-IR validator accepts every lowered program and rejects broken ones.

use loglinear_ir::{builtins, Dims};
use loglinear_schedule::kernel::{d, BinOp, BufKind, Buffer, IExpr, Index, Op, Stmt, TileDecl, TileId, UnOp};
use loglinear_schedule::verify::{check_bounds, verify};
use loglinear_schedule::{compile, dump, DumpWhen, ScanForm, ScheduleConfig, ScheduleError};

fn mamba() -> loglinear_schedule::Compiled {
    compile(
        &builtins::by_name("loglinear_mamba2").unwrap(),
        &ScheduleConfig { chunk: 4, form: ScanForm::PerLevel, ..Default::default() },
    )
    .unwrap()
}

fn errors(p: &loglinear_schedule::Program) -> String {
    match verify(p) {
        Ok(()) => String::new(),
        Err(e) => e.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n"),
    }
}

#[test]
fn every_builtin_every_chunk_verifies() {
    for v in builtins::all() {
        for c in [1, 2, 4, 8, 16, 32, 64, 128, 256] {
            for form in ScanForm::ALL {
                let comp = compile(&v, &ScheduleConfig { chunk: c, form, ..Default::default() }).unwrap();
                assert_eq!(errors(&comp.forward), "", "{} C={c}", v.name);
                assert_eq!(errors(&comp.decode), "", "{} decode", v.name);
                for t in [1, 2, 5, 64, 65, 300] {
                    let dims = Dims { b: 1, t, h: 2, k: 3, v: 4, l: loglinear_ir::level::num_levels(t) };
                    check_bounds(&comp.forward, &loglinear_schedule::dims_env(&dims, c, v.is_log_linear())).unwrap();
                    check_bounds(&comp.decode, &loglinear_schedule::dims_env(&dims, 1, v.is_log_linear())).unwrap();
                }
            }
        }
    }
}

#[test]
fn rejects_quadratic_buffers() {
    for shape in
        [vec![d::B, d::T, d::T], vec![d::B, d::H, d::NT, d::C, d::C], vec![d::T, d::NT], vec![d::T, d::K, d::V]]
    {
        let mut p = mamba().forward;
        p.buffers.push(Buffer {
            name: "big".into(),
            kind: BufKind::Scratch,
            shape: shape.clone(),
            elem: loglinear_schedule::DType::F32,
        });
        let e = errors(&p);
        assert!(e.contains("buffer `big`"), "{shape:?} accepted: {e}");
    }
    let mut p = mamba().forward;
    p.buffers.push(Buffer {
        name: "ok".into(),
        kind: BufKind::Scratch,
        shape: vec![d::B, d::H, d::NT, d::C, d::K],
        elem: loglinear_schedule::DType::F32,
    });
    assert_eq!(errors(&p), "");
}

#[test]
fn rejects_read_before_write() {
    let mut p = mamba().forward;
    p.kernels.remove(0);
    let e = errors(&p);
    assert!(e.contains("read before it is written"), "{e}");
}

#[test]
fn rejects_tile_used_before_assignment() {
    let mut p = mamba().forward;
    // Drop the first assignment of the chunk kernel (the load of q).
    p.kernels[0].body.remove(0);
    let e = errors(&p);
    assert!(e.contains("%q is read before it is assigned"), "{e}");
}

#[test]
fn rejects_shape_mismatch_and_races() {
    let mut p = mamba().forward;
    p.kernels[0].tiles[0].shape = [d::C, d::V];
    assert!(errors(&p).contains("is declared [C, V]"), "{}", errors(&p));

    let mut p = mamba().forward;
    for s in p.kernels[0].body.iter_mut() {
        if let Stmt::Store { index, .. } = s {
            if index.len() == 5 {
                index[2] = Index::At(IExpr::Lit(0));
            }
        }
    }
    let e = errors(&p);
    assert!(e.contains("is not proven disjoint across grid variable `i`"), "{e}");
}

#[test]
fn rejects_exp_of_non_gates() {
    let mut p = mamba().forward;
    let body = &mut p.kernels[0].body;
    let mut done = false;
    for s in body.iter_mut() {
        if let Stmt::Assign { op: Op::Unary(UnOp::ExpNonpos, a), .. } = s {
            *a = loglinear_schedule::kernel::TileId(0); // %q
            done = true;
            break;
        }
    }
    assert!(done);
    let e = errors(&p);
    assert!(e.contains("exp_nonpos of %q"), "{e}");
}

/// The index of the tile named `name` in kernel 0.
fn tile_named(p: &loglinear_schedule::Program, name: &str) -> TileId {
    TileId(p.kernels[0].tiles.iter().position(|t| t.name == name).unwrap_or_else(|| panic!("no %{name}")) as u32)
}

#[test]
fn rejects_exp_of_a_difference_of_cumulative_gates() {
    // %d = sub %gam, %gam_last; %eg = exp_nonpos %d: the cancelling form the segment sums replace.
    let mut p = mamba().forward;
    let (gam, glast) = (tile_named(&p, "gam"), tile_named(&p, "gam_last"));
    let k = &mut p.kernels[0];
    k.tiles.push(TileDecl { name: "d".into(), shape: [d::C, d::ONE] });
    let dt = TileId(k.tiles.len() as u32 - 1);
    let at = k
        .body
        .iter()
        .position(|s| matches!(s, Stmt::Assign { op: Op::Unary(UnOp::ExpNonpos, a), .. } if *a == gam))
        .expect("exp_nonpos %gam");
    if let Stmt::Assign { op: Op::Unary(_, a), .. } = &mut k.body[at] {
        *a = dt;
    }
    k.body.insert(at, Stmt::Assign { dst: dt, op: Op::Binary(BinOp::Sub, gam, glast) });
    let e = errors(&p);
    assert!(e.contains("exp_nonpos of %d, a difference of cumulative gates"), "{e}");
}

#[test]
fn gated_causal_product_takes_raw_gates() {
    // GLA's matmul_gated_causal sums the raw gates %g itself; handing it the cumulative %gam is rejected.
    let mut p = compile(&builtins::by_name("loglinear_gla").unwrap(), &ScheduleConfig::default()).unwrap().forward;
    assert_eq!(errors(&p), "");
    let gam = tile_named(&p, "gam");
    let mut done = false;
    for s in p.kernels[0].body.iter_mut() {
        if let Stmt::Assign { op: Op::MatmulGatedCausal { g, .. }, .. } = s {
            *g = gam;
            done = true;
        }
    }
    assert!(done);
    let e = errors(&p);
    assert!(e.contains("`matmul_gated_causal %q, %k, %gam` takes raw per-token gates"), "{e}");
}

#[test]
fn bounds_checked_concretely() {
    let mut p = mamba().forward;
    // Make the level scan store into hs[.., m + 1, ..]: out of bounds for the last level.
    fn bump(body: &mut [Stmt]) {
        for s in body {
            match s {
                Stmt::Store { index, .. } if index.len() == 6 => {
                    let Index::At(e) = &index[2] else { continue };
                    index[2] = Index::At(IExpr::sum(e.clone(), IExpr::Lit(1)));
                }
                Stmt::For { body, .. } => bump(body),
                Stmt::If { then, els, .. } => {
                    bump(then);
                    bump(els);
                }
                _ => {}
            }
        }
    }
    bump(&mut p.kernels[1].body);
    let dims = Dims { b: 1, t: 40, h: 1, k: 2, v: 2, l: 7 };
    let e = check_bounds(&p, &loglinear_schedule::dims_env(&dims, 4, true)).unwrap_err();
    assert!(e[0].message.contains("`hs`"), "{e:?}");
}

#[test]
fn errors_not_panics() {
    let v = builtins::by_name("loglinear_gla").unwrap();
    for c in [0, 3, 512] {
        let e = compile(&v, &ScheduleConfig::with_chunk(c)).unwrap_err();
        assert_eq!(e, ScheduleError::ChunkSize(c));
    }
    let e = dump(&v, &ScheduleConfig::default(), None, DumpWhen::After("nope".into())).unwrap_err();
    assert!(matches!(e, ScheduleError::UnknownPass(_)));
    // A delta rule whose erasure key is not the write key: refused by the variant validator.
    let mut bad = builtins::by_name("loglinear_deltanet").unwrap();
    if let loglinear_ir::Transition::Delta { key, .. } = &mut bad.transition {
        *key = bad.query;
    }
    assert!(matches!(compile(&bad, &ScheduleConfig::default()), Err(ScheduleError::Invalid(_))));
    // An invalid variant.
    let mut inv = builtins::by_name("mamba2").unwrap();
    inv.chunk_size = 3;
    assert!(matches!(compile(&inv, &ScheduleConfig::default()), Err(ScheduleError::Invalid(_))));
}

#[test]
fn dump_after_each_pass() {
    let v = builtins::by_name("loglinear_mamba2").unwrap();
    let all = dump(&v, &ScheduleConfig::default(), None, DumpWhen::AfterAll).unwrap();
    let mut last = 0;
    for p in loglinear_schedule::PASSES {
        let h = format!("; after {}\n", p.name);
        let at = all.find(&h).unwrap_or_else(|| panic!("no `{h}`"));
        assert!(at >= last, "passes out of order");
        last = at;
        let one = dump(&v, &ScheduleConfig::default(), None, DumpWhen::After(p.name.into())).unwrap();
        assert!(one.starts_with(&h) && one.matches("; after").count() == 1);
    }
    assert_eq!(all, dump(&v, &ScheduleConfig::default(), None, DumpWhen::AfterAll).unwrap(), "stable");
}
