//! nodebpf's Rust ring-buffer consumer, as the benchmark runs it.
//! usage: ringbuf_consumer OBJ TRIGGER TOTAL  -> prints "records seconds dropped errors"

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use nodebpf_core::attach::perf_event::attach_tracepoint;
use nodebpf_core::{load_file, GlobalValue, LoadOptions, RingBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, obj_path, trigger, total] = args.as_slice() else {
        return Err("usage: ringbuf_consumer OBJ TRIGGER TOTAL".into());
    };
    let total: u64 = total.parse()?;
    let mut child = Command::new(trigger)
        .args(["getppid", "1000000000000"])
        .stdin(Stdio::piped())
        .spawn()?;
    let opts = LoadOptions {
        globals: vec![
            ("target_tgid".into(), GlobalValue::Int(child.id().into())),
            ("total".into(), GlobalValue::Int(total.into())),
        ],
        ..Default::default()
    };
    let obj = load_file(obj_path.as_ref(), &opts)?;
    let _link = attach_tracepoint(
        obj.program("produce")?.fd()?,
        "syscalls",
        "sys_enter_getppid",
        None,
    )?;
    let ring = RingBuf::new(obj.map("records")?)?;

    let (mut received, mut next, mut errors) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    child.stdin.take().ok_or("no stdin")?.write_all(b"go\n")?;
    while received < total {
        ring.consume(usize::MAX, |rec| {
            let seq = u64::from_ne_bytes(rec[..8].try_into().unwrap_or_default());
            let value = u64::from_ne_bytes(rec[8..16].try_into().unwrap_or_default());
            if rec.len() != 16 || seq != next || value != seq * 3 {
                errors += 1;
            }
            next = seq + 1;
            received += 1;
        })?;
        if received < total {
            ring.wait(100, ring.wakes())?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    child.kill()?;
    child.wait()?;
    let bss = obj
        .maps
        .iter()
        .find(|m| m.name.ends_with(".bss"))
        .ok_or("no .bss")?;
    let counters = bss.lookup(&0u32.to_ne_bytes())?.unwrap_or_default();
    let dropped = u64::from_ne_bytes(counters[8..16].try_into()?);
    println!("{received} {secs:.6} {dropped} {errors}");
    Ok(())
}
