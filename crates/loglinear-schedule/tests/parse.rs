//! The kernel IR's text form round-trips: `parse_program(&p.to_string()) == p` for every program the pipeline
//! produces (every built-in, both scan forms, several chunk sizes, forward and decode, unspecialised and
//! specialised, compound ops kept and decomposed into primitives).

use loglinear_kernel::kernel::Program;
use loglinear_kernel::parse_program;
use loglinear_schedule::{compile_decomposed, compile_with, ScanForm, ScheduleConfig};

/// The first difference between two programs, for a readable failure.
fn first_difference(a: &Program, b: &Program) -> String {
    if a.buffers != b.buffers {
        return format!("buffers differ:\n{:?}\n{:?}", a.buffers, b.buffers);
    }
    for (ka, kb) in a.kernels.iter().zip(&b.kernels) {
        if ka.vars != kb.vars {
            return format!("kernel `{}`: vars differ:\n{:?}\n{:?}", ka.name, ka.vars, kb.vars);
        }
        if ka.grid != kb.grid {
            return format!("kernel `{}`: grid differs:\n{:?}\n{:?}", ka.name, ka.grid, kb.grid);
        }
        if ka.tiles != kb.tiles {
            return format!("kernel `{}`: tiles differ:\n{:?}\n{:?}", ka.name, ka.tiles, kb.tiles);
        }
        for (sa, sb) in ka.body.iter().zip(&kb.body) {
            if sa != sb {
                return format!("kernel `{}`: statement differs:\n{sa:?}\n{sb:?}", ka.name);
            }
        }
        if ka != kb {
            return format!("kernel `{}` differs", ka.name);
        }
    }
    format!(
        "header differs: {:?} vs {:?}",
        (&a.name, a.chunk, a.hierarchical, a.output, a.accum, a.specialised, a.kernels.len()),
        (&b.name, b.chunk, b.hierarchical, b.output, b.accum, b.specialised, b.kernels.len())
    )
}

fn round_trip(p: &Program, what: &str) -> Result<(), String> {
    let text = p.to_string();
    let q = parse_program(&text).map_err(|e| format!("{what}: {e}\n--- text ---\n{text}"))?;
    if q != *p {
        return Err(format!("{what}: {}", first_difference(p, &q)));
    }
    // The text of the parsed program is the same text.
    let again = q.to_string();
    if again != text {
        return Err(format!("{what}: the parsed program prints differently"));
    }
    Ok(())
}

#[test]
fn every_builtin_round_trips() {
    let mut failures = Vec::new();
    let mut n = 0;
    let mut primitives = 0;
    for v in loglinear_ir::builtins::all() {
        for form in ScanForm::ALL {
            for chunk in [1, 4, 64] {
                let cfg = ScheduleConfig { chunk, form, ..Default::default() };
                for (sizes, decomposed) in [(None, false), (Some((8, 5)), false), (Some((8, 5)), true)] {
                    let c = if decomposed {
                        compile_decomposed(&v, &cfg, sizes)
                    } else {
                        compile_with(&v, &cfg, sizes, None)
                    };
                    let c = c.unwrap_or_else(|e| panic!("{} {form:?} C={chunk}: {e}", v.name));
                    for (p, kind) in [(&c.forward, "forward"), (&c.decode, "decode")] {
                        n += 1;
                        let text = p.to_string();
                        primitives += usize::from(text.contains(" = mask ") && text.contains(" = select "));
                        let what = format!(
                            "{} {} C={chunk} {kind} sizes={sizes:?} decomposed={decomposed}",
                            v.name,
                            form.name()
                        );
                        if let Err(e) = round_trip(p, &what) {
                            failures.push(e);
                        }
                    }
                }
            }
        }
    }
    assert!(n >= 12 * 2 * 3 * 3 * 2, "only {n} programs");
    assert!(primitives > 0, "no decomposed program has `mask` and `select`");
    assert!(failures.is_empty(), "{} of {n} programs do not round-trip:\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn f64_accumulation_round_trips() {
    let v = loglinear_ir::builtins::by_name("loglinear_gated_deltanet").unwrap();
    let cfg = ScheduleConfig { accum: loglinear_kernel::DType::F64, ..Default::default() };
    let c = compile_with(&v, &cfg, Some((16, 16)), None).unwrap();
    round_trip(&c.forward, "f64").unwrap();
}
