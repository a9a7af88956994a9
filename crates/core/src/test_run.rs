//! `BPF_PROG_TEST_RUN` (libbpf's `bpf_prog_test_run_opts`): runs a loaded program once or
//! `repeat` times on a packet and/or a context given from user space, without attaching
//! it. XDP, TC, socket filters, flow dissectors, raw tracepoints and syscall programs take
//! it; the kernel says which others do.

use std::os::fd::AsRawFd;

use crate::error::{Code, Error, Result};
use crate::program::Program;
use crate::sys::{self, TestRunAttr};

/// `BPF_F_TEST_RUN_ON_CPU`: run on `cpu` (raw tracepoints only).
const F_TEST_RUN_ON_CPU: u32 = 1 << 0;
/// The kernel's own `ENOTSUPP`: no test run for this program type.
const ENOTSUPP: i32 = 524;
/// Room for the packet to grow beyond its input (XDP's `bpf_xdp_adjust_tail`, TC's
/// pushes): a page, what the kernel gives a test packet at most.
const DATA_OUT_GROWTH: usize = 4096;

#[derive(Default, Clone)]
pub struct TestRun {
    /// The packet (`data_in`).
    pub data: Option<Vec<u8>>,
    /// The context (`ctx_in`): `struct __sk_buff`, `struct xdp_md`, a raw tracepoint's args.
    pub ctx: Option<Vec<u8>>,
    /// Runs (0 and 1 are once); `duration` is the mean time of one.
    pub repeat: u32,
    /// Bytes of packet to read back; default: its input size plus room to grow.
    pub data_out_size: Option<u32>,
    /// The CPU a raw tracepoint program runs on.
    pub cpu: Option<u32>,
}

pub struct TestRunResult {
    /// What the program returned.
    pub retval: u32,
    /// The packet after the run (as far as `data_out_size` holds it).
    pub data: Vec<u8>,
    /// The context after the run, when one was given.
    pub ctx: Vec<u8>,
    /// Nanoseconds a run took, on average.
    pub duration_ns: u32,
}

impl Program {
    pub fn test_run(&self, run: &TestRun) -> Result<TestRunResult> {
        let fd = self.fd()?;
        let data = run.data.as_deref().unwrap_or(&[]);
        let ctx = run.ctx.as_deref().unwrap_or(&[]);
        let len = |b: &[u8], what: &str| {
            u32::try_from(b.len())
                .map_err(|_| Error::new(Code::Range, format!("testRun {what}: over 4 GiB")))
        };
        let mut data_out = vec![
            0u8;
            match run.data_out_size {
                Some(n) => n as usize,
                None if data.is_empty() => 0,
                None => data.len().saturating_add(DATA_OUT_GROWTH),
            }
        ];
        let mut ctx_out = vec![0u8; ctx.len()];
        let mut attr = TestRunAttr {
            prog_fd: fd.as_raw_fd() as u32,
            data_size_in: len(data, "data")?,
            data_size_out: len(&data_out, "dataOutSize")?,
            data_in: ptr_or_null(data),
            data_out: ptr_or_null(&data_out),
            repeat: run.repeat,
            ctx_size_in: len(ctx, "ctx")?,
            ctx_size_out: len(&ctx_out, "ctx")?,
            ctx_in: ptr_or_null(ctx),
            ctx_out: ptr_or_null(&ctx_out),
            flags: if run.cpu.is_some() {
                F_TEST_RUN_ON_CPU
            } else {
                0
            },
            cpu: run.cpu.unwrap_or(0),
            ..Default::default()
        };
        // The pointers stay valid: `data`, `ctx`, `data_out` and `ctx_out` outlive the call.
        if let Err(e) = sys::bpf(sys::BPF_PROG_TEST_RUN, &mut attr) {
            // ENOSPC: the program ran, and its packet outgrew `data_out_size`.
            if e.raw_os_error() != Some(libc::ENOSPC) {
                let not_supported = e.raw_os_error() == Some(ENOTSUPP);
                let mut err = Error::os(format!("test-running program '{}'", self.name), e);
                if not_supported {
                    err.code = Code::Unsupported;
                    err.message = format!(
                        "{}: this kernel cannot test-run programs of this type (SEC \"{}\")",
                        err.message, self.section
                    );
                }
                return Err(err.for_program(&self.name));
            }
        }
        data_out.truncate((attr.data_size_out as usize).min(data_out.len()));
        ctx_out.truncate((attr.ctx_size_out as usize).min(ctx_out.len()));
        Ok(TestRunResult {
            retval: attr.retval,
            data: data_out,
            ctx: ctx_out,
            duration_ns: attr.duration,
        })
    }
}

fn ptr_or_null(b: &[u8]) -> u64 {
    if b.is_empty() {
        0
    } else {
        sys::ptr(b.as_ptr())
    }
}
