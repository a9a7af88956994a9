//! The profiler's user side in Rust: symbolizing the stacks a sampling program counted.
//! Sampling itself is a perf-event program and maps (`bpf/profile.bpf.c`), driven from
//! the facade.

mod jitdump;
mod perf_map;
mod proc_maps;
pub mod symbolize;

pub use symbolize::{Frame, FrameKind, Symbolizer};
