//! # loglinear-cli: the `loglinear` command
//!
//! The command line over the [`loglinear`] facade: `list`, `describe`, `backends`, `run`, `compile`, `bench` and
//! `demo` (every log-linear variant on every backend against the naive oracle, [`demo`]). It lives apart from the
//! facade so that a crate depending on `loglinear` pulls no command-line dependencies (clap, indicatif, ctrlc,
//! tracing-subscriber) and not the benchmark crate.
//!
//! A binary of your own can expose your own variants through the same command line:
//!
//! ```no_run
//! let mut reg = loglinear::Registry::builtin();
//! // reg.register(&MyVariant);
//! std::process::exit(loglinear_cli::main_with(reg));
//! ```
#![warn(missing_docs)]

pub mod cli;
pub mod demo;
pub mod emit;

pub use cli::{main_with, main_with_args, DEFAULT_BACKEND, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
