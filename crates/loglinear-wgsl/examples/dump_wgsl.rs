//! Prints the WGSL of a built-in's forward (or decode-step) program: a debugging aid.
//! `cargo run -p loglinear-wgsl --example dump_wgsl -- VARIANT K V CONFIG [decode] [THREADS] [TILE_BYTES]`
//! e.g. `... loglinear_gated_deltanet 4 3 chunk=64,form=streaming`.

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 4 {
        eprintln!("usage: dump_wgsl VARIANT K V CONFIG [decode] [THREADS] [TILE_BYTES]");
        std::process::exit(2);
    }
    let v = loglinear_ir::builtins::by_name(&a[0]).expect("a built-in variant");
    let (k, vd): (usize, usize) = (a[1].parse().expect("K"), a[2].parse().expect("V"));
    let config: loglinear_schedule::ScheduleConfig = a[3].parse().expect("a configuration");
    let c = loglinear_schedule::compile_decomposed(&v, &config, Some((k, vd))).expect("compiles");
    let decode = a.get(4).is_some_and(|s| s == "decode");
    let mut opts = loglinear_wgsl::WgslOptions::default();
    if let Some(t) = a.get(5) {
        opts.workgroup_size = t.parse().expect("threads");
    }
    if let Some(m) = a.get(6) {
        opts.fast_memory = m.parse().expect("bytes");
    }
    let p = if decode { &c.decode } else { &c.forward };
    for k in loglinear_wgsl::translate_program(p, &opts).expect("translates") {
        println!("{}", k.source);
    }
}
