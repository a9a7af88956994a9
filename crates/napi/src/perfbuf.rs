//! Perf-buffer consumers (`PERF_EVENT_ARRAY`): the same surface as `NativeRingBuf` in
//! copy mode (`data()` is null; `peek` copies samples into the caller's buffer), so one
//! reader in the facade serves both; plus the kernel's lost counts per CPU.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{call, closed, to_js, Ctx, Outcome};
use crate::object::NativeObject;
use crate::ringbuf::{wait_ready, RingSpan};

/// Data pages per CPU when not given (libbpf-tools' PERF_BUFFER_PAGES).
const DEFAULT_PAGES_PER_CPU: u32 = 64;

#[napi]
impl NativeObject {
    /// The map's perf-buffer consumer; `BUSY` while another is open.
    #[napi]
    pub fn perfbuf(
        &self,
        env: Env,
        map: String,
        pages_per_cpu: Option<u32>,
    ) -> Result<NativePerfBuf> {
        let ctx = Ctx::op("perfbuf").map(&map);
        let pages = pages_per_cpu.unwrap_or(DEFAULT_PAGES_PER_CPU) as usize;
        self.with(&env, &ctx, |o| {
            core::perfbuf::PerfBuf::new(o.map(&map)?, pages)
        })
        .map(|pb| NativePerfBuf {
            ctx,
            buf: Mutex::new(Some(Arc::new(pb))),
        })
    }
}

#[napi]
pub struct NativePerfBuf {
    ctx: Ctx,
    /// `None` once closed; a waiter in flight holds its own clone.
    buf: Mutex<Option<Arc<core::perfbuf::PerfBuf>>>,
}

/// Records the kernel could not write on one CPU.
#[napi(object)]
pub struct CpuLost {
    pub cpu: u32,
    pub lost: f64,
}

impl NativePerfBuf {
    fn buf(&self) -> Outcome<Arc<core::perfbuf::PerfBuf>> {
        self.buf
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .ok_or_else(|| closed(&self.ctx, "the perf buffer"))
    }
}

#[napi]
impl NativePerfBuf {
    /// Always null: perf rings are read by copy.
    #[napi(ts_return_type = "ArrayBuffer | null")]
    pub fn data(&self) -> Option<Null> {
        None
    }

    /// The samples not yet released, copied into `copy` (from offset 0); null when none.
    #[napi]
    pub fn peek(&self, env: Env, copy: Option<Uint8Array>) -> Result<Option<RingSpan>> {
        let buf = self.buf().map_err(|f| to_js(&env, f))?;
        call(&env, &self.ctx, || {
            let Some(mut out) = copy else {
                return Err(core::Error::new(
                    core::Code::Einval,
                    "a perf buffer is read into a copy buffer",
                ));
            };
            // SAFETY: the JS buffer is not read or resized while this call runs.
            let out = unsafe { out.as_mut() };
            Ok(buf.peek_into(out)?.map(|s| RingSpan {
                offset: s.offset as u32,
                length: s.len as u32,
                records: s.records as u32,
            }))
        })
    }

    /// Gives the first `length` bytes of the last batch back (each CPU's records in them).
    #[napi]
    pub fn release(&self, env: Env, length: u32) -> Result<()> {
        let buf = self.buf().map_err(|f| to_js(&env, f))?;
        call(&env, &self.ctx, || buf.release(length as usize))
    }

    #[napi]
    pub fn lost(&self, env: Env) -> Result<Vec<CpuLost>> {
        let buf = self.buf().map_err(|f| to_js(&env, f))?;
        Ok(buf
            .lost()
            .into_iter()
            .map(|(cpu, lost)| CpuLost {
                cpu,
                lost: lost as f64,
            })
            .collect())
    }

    #[napi]
    pub fn wakes(&self, env: Env) -> Result<f64> {
        let buf = self.buf().map_err(|f| to_js(&env, f))?;
        Ok(buf.wakes() as f64)
    }

    /// Resolves `true` once a CPU's ring may have data, `false` once closed or woken.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn wait<'env>(&self, env: &'env Env, since: f64) -> Result<PromiseRaw<'env, bool>> {
        let buf = self.buf().map_err(|f| to_js(env, f))?;
        wait_ready(env, self.ctx.clone(), move || buf.wait(-1, since as u64))
    }

    #[napi]
    pub fn wake(&self) {
        if let Ok(buf) = self.buf() {
            buf.wake();
        }
    }

    /// Ends waiting and frees the map for another consumer; the events and mappings go
    /// once no waiter holds them. Idempotent. (`data` is for the ring-buffer surface.)
    #[napi]
    pub fn close(&self, _data: Option<ArrayBuffer>) {
        if let Some(buf) = self.buf.lock().ok().and_then(|mut r| r.take()) {
            buf.close();
        }
    }
}
