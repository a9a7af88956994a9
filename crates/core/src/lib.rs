//! nodebpf's core: plain Rust, no N-API. The loader (on aya-obj), attach paths,
//! symbol resolution, feature probes and the ring-buffer consumer.

pub mod attach;
pub mod btf;
pub mod btf_index;
pub mod caps;
pub mod error;
pub mod events;
pub mod features;
pub mod globals;
pub mod loader;
pub mod map_create;
pub mod maps;
pub mod memlock;
mod mmap;
pub mod perfbuf;
pub mod profile;
pub mod program;
pub mod ringbuf;
pub mod symbols;
pub mod sys;
pub mod test_run;
pub mod tracefs;
pub mod usdt;
mod waiter;

pub use attach::Link;
pub use error::{Code, Error, Result};
pub use events::EventSource;
pub use loader::{
    inspect, load, load_file, parse, GlobalValue, InnerMap, LoadOptions, MapConfig, MapSpec,
    Object, Parsed, ProgramConfig, ProgramSpec, Spec,
};
pub use maps::Map;
pub use program::Program;
pub use ringbuf::RingBuf;
