//! Kernel-IR → kernel-IR passes, each a plain function on a [`crate::Program`], named in the pipeline's
//! `PASSES` list of `loglinear-schedule` and printed by `--dump-ir`.

pub mod specialise;
