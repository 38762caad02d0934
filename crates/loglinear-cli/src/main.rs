//! The `loglinear` command: the built-in variants on every backend. See [`loglinear_cli::cli`].

fn main() {
    std::process::exit(loglinear_cli::main_with(loglinear::Registry::builtin()));
}
