//! The no-kernel parse stage on arbitrary bytes: it may refuse them, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodebpf_core::LoadOptions;

fuzz_target!(|data: &[u8]| {
    let _ = nodebpf_core::parse(data, &LoadOptions::default());
});
