//! Prints `dump(.., after-all)` and a cost for a built-in: `cargo run -p loglinear-schedule --example dump -- NAME [C] [per_level|fused]`.
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let v = loglinear_ir::builtins::by_name(&a[1]).unwrap();
    let form = loglinear_schedule::ScanForm::from_name(a.get(3).map(|s| s.as_str()).unwrap_or("per_level")).unwrap();
    let chunk = a.get(2).map_or(v.chunk_size, |s| s.parse().unwrap());
    let opts = loglinear_schedule::ScheduleConfig { chunk, form, ..Default::default() };
    print!("{}", loglinear_schedule::dump(&v, &opts, None, loglinear_schedule::DumpWhen::AfterAll).unwrap());
    let c = loglinear_schedule::cost(&v, (1, 1 << 14, 1, 64, 64), 64).unwrap();
    print!("{c}");
}
