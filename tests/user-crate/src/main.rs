//! `retnet-gated list | describe | run ...`: the loglinear command line, with this crate's variant added.

fn main() {
    std::process::exit(loglinear_cli::main_with(retnet_gated::registry()));
}
