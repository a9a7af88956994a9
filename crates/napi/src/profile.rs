//! The profiler's symbolizer: stacks (addresses) to frames (names), on a thread of its
//! own (blazesym's caches live there, and the first lookups in a large binary take long:
//! never on the JS thread). Stacks come flat (all addresses in one array, a length per
//! stack); frames come back as one table and, per stack, indices into it.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Mutex;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core::{self as core, profile};

use crate::errors::{CoreTask, Ctx};

/// A frame of the table.
#[napi(object)]
#[derive(Clone)]
pub struct SymbolFrame {
    pub name: String,
    /// The file's base name, `[kernel]`, `[jit]`, `[vdso]`, `[anon]` or `[unmapped]`.
    pub module: String,
    /// `user`, `kernel`, `jit` or `unknown`.
    pub kind: String,
}

/// Each stack's frames as indices into `frames`, leaf first, one stack after another
/// (the lengths are the ones asked with).
#[napi(object)]
pub struct SymbolizedStacks {
    pub frames: Vec<SymbolFrame>,
    pub user: Vec<u32>,
    pub kernel: Vec<u32>,
}

struct Stacks {
    pids: Vec<u32>,
    user: Vec<u64>,
    user_lens: Vec<u32>,
    kernel: Vec<u64>,
    kernel_lens: Vec<u32>,
}

enum Job {
    Snapshot(u32),
    Symbolize(Stacks, mpsc::Sender<SymbolizedStacks>),
    Forget(Vec<u32>),
}

#[napi]
pub struct NativeSymbolizer {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

#[napi]
impl NativeSymbolizer {
    #[napi(constructor)]
    pub fn new() -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("nodebpf-symbolizer".into())
            .spawn(move || serve(rx))
            .map_err(|e| Error::from_reason(format!("starting the symbolizer thread: {e}")))?;
        Ok(NativeSymbolizer {
            jobs: Mutex::new(Some(tx)),
        })
    }

    fn send(&self, job: Job) -> bool {
        self.jobs
            .lock()
            .ok()
            .and_then(|j| j.as_ref().map(|tx| tx.send(job).is_ok()))
            .unwrap_or(false)
    }

    /// Takes in `pid`'s mappings and perf map now (kept once it exits), in the background.
    #[napi]
    pub fn snapshot(&self, pid: u32) {
        self.send(Job::Snapshot(pid));
    }

    /// Forgets processes (their mappings, their open files).
    #[napi]
    pub fn forget(&self, pids: Vec<u32>) {
        self.send(Job::Forget(pids));
    }

    /// Symbolizes stacks: stack `i` is process `pids[i]`'s, its user addresses the next
    /// `userLens[i]` of `user`, its kernel ones the next `kernelLens[i]` of `kernel`, each
    /// leaf first.
    #[napi(ts_return_type = "Promise<SymbolizedStacks>")]
    pub fn symbolize(
        &self,
        pids: Uint32Array,
        user: BigUint64Array,
        user_lens: Uint32Array,
        kernel: BigUint64Array,
        kernel_lens: Uint32Array,
    ) -> Result<AsyncTask<CoreTask<SymbolizedStacks>>> {
        let stacks = Stacks {
            pids: pids.to_vec(),
            user: user.to_vec(),
            user_lens: user_lens.to_vec(),
            kernel: kernel.to_vec(),
            kernel_lens: kernel_lens.to_vec(),
        };
        let sum = |lens: &[u32]| lens.iter().map(|&n| n as usize).sum::<usize>();
        if stacks.user_lens.len() != stacks.pids.len()
            || stacks.kernel_lens.len() != stacks.pids.len()
            || sum(&stacks.user_lens) != stacks.user.len()
            || sum(&stacks.kernel_lens) != stacks.kernel.len()
        {
            return Err(Error::new(
                Status::InvalidArg,
                "RANGE: stack lengths do not add up to the addresses given",
            ));
        }
        let (tx, rx) = mpsc::channel();
        let sent = self.send(Job::Symbolize(stacks, tx));
        Ok(AsyncTask::new(CoreTask::new(
            Ctx::op("symbolize"),
            move || {
                if !sent {
                    return Err(core::Error::new(
                        core::Code::Closed,
                        "the symbolizer is closed",
                    ));
                }
                rx.recv()
                    .map_err(|_| core::Error::new(core::Code::Internal, "the symbolizer stopped"))
            },
        )))
    }

    /// Ends the symbolizer's thread once the work sent before is done. Idempotent.
    #[napi]
    pub fn close(&self) {
        if let Ok(mut j) = self.jobs.lock() {
            j.take();
        }
    }
}

fn serve(rx: mpsc::Receiver<Job>) {
    let mut s = profile::Symbolizer::new();
    while let Ok(job) = rx.recv() {
        // A panic in a lookup must not end the thread with the work queued behind it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match job {
            Job::Snapshot(pid) => s.snapshot(pid),
            Job::Forget(pids) => s.retain(|p| !pids.contains(&p)),
            Job::Symbolize(stacks, reply) => {
                let _ = reply.send(symbolize(&mut s, &stacks));
            }
        }));
    }
}

fn symbolize(s: &mut profile::Symbolizer, stacks: &Stacks) -> SymbolizedStacks {
    let mut table = Table::default();
    let (mut user, mut kernel) = (Vec::new(), Vec::new());
    let (mut u, mut k) = (0usize, 0usize);
    for (i, &pid) in stacks.pids.iter().enumerate() {
        let n = stacks.user_lens[i] as usize;
        for f in s.user(pid, &stacks.user[u..u + n]) {
            user.push(table.index(f));
        }
        u += n;
        let n = stacks.kernel_lens[i] as usize;
        for f in s.kernel(&stacks.kernel[k..k + n]) {
            kernel.push(table.index(f));
        }
        k += n;
    }
    SymbolizedStacks {
        frames: table.frames,
        user,
        kernel,
    }
}

/// Distinct frames (by name, module and kind), numbered as first seen.
#[derive(Default)]
struct Table {
    frames: Vec<SymbolFrame>,
    seen: HashMap<(String, String, &'static str), u32>,
}

impl Table {
    fn index(&mut self, f: profile::Frame) -> u32 {
        let key = (f.name, f.module, f.kind.as_str());
        if let Some(&i) = self.seen.get(&key) {
            return i;
        }
        let i = self.frames.len() as u32;
        self.frames.push(SymbolFrame {
            name: key.0.clone(),
            module: key.1.clone(),
            kind: key.2.to_string(),
        });
        self.seen.insert(key, i);
        i
    }
}
