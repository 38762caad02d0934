//! `loglinear bench` through the real command line (`loglinear_cli::main_with_args`): exit codes for good runs
//! and for bad arguments.

use loglinear::Registry;
use loglinear_cli::{main_with_args, EXIT_OK, EXIT_USAGE};

fn bench(args: &[&str]) -> i32 {
    let argv = ["loglinear", "bench"].iter().chain(args).map(|s| s.to_string()).collect::<Vec<_>>();
    main_with_args(Registry::builtin(), loglinear::backends(), argv)
}

#[test]
fn bench_runs_with_and_without_baselines() {
    let base = ["--variant", "loglinear_gated_deltanet", "--shape", "1,40,2,8,4", "--chunk-size", "8", "--reps", "2"];
    assert_eq!(bench(&base), EXIT_OK);
    let mut with = base.to_vec();
    with.extend(["--baselines", "--baseline-threads", "2", "--warmup", "0", "--backend", "interpreter"]);
    assert_eq!(bench(&with), EXIT_OK);
    // Every backend that can run here can be benchmarked (cuda without a driver cannot).
    let runtime = loglinear::backends();
    for b in runtime.available().iter().map(|b| b.name()) {
        assert_eq!(
            bench(&["--variant", "mamba2", "--backend", b, "--shape", "1,9,1,2,2", "--reps", "1"]),
            EXIT_OK,
            "{b}"
        );
    }
}

#[test]
fn bad_arguments_exit_with_2() {
    for args in [
        &["--variant", "nope"][..],
        &["--variant", "mamba2", "--backend", "nope"],
        &["--variant", "mamba2", "--shape", "1,2,3"],
        &["--variant", "mamba2", "--shape", "1,0,1,1,1"],
        &["--variant", "mamba2", "--shape", "a,b,c,d,e"],
        &["--variant", "mamba2", "--reps", "0"],
        &["--variant", "mamba2", "--chunk-size", "3"],
        &["--variant", "mamba2", "--baseline-threads", "0"],
        &["--variant", "mamba2", "--reps", "-1"],
        &[],
    ] {
        assert_eq!(bench(args), EXIT_USAGE, "{args:?}");
    }
}
