//! The `loglinear` command: the built-in variants on every backend. See [`loglinear::cli`].

fn main() {
    std::process::exit(loglinear::cli::main_with(loglinear::registry::Registry::builtin()));
}
