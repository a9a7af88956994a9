//! Event consumers, ring buffers and perf buffers alike: one per map (a second is
//! `BUSY`). JS reads the records where the kernel wrote them: `buffers()` are
//! ArrayBuffers over the consumer's data areas (a ring's, mapped read-only and twice back
//! to back; a fan-in's one per CPU; a perf buffer's one per CPU plus a bounce buffer),
//! `peek()` finds the next batch in one of them and writes where each record's data is
//! into an index JS owns, `release()` gives the batch back.
//! Waiting for records happens on a blocking thread, never the JS thread; a batch that
//! is ready costs no thread hop.
//!
//! Where the runtime refuses external ArrayBuffers (Electron's V8 memory cage), or when
//! asked (`copy`), `peek` copies the span into a buffer JS owns and reuses.

use std::ptr;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core::{self as core, EventSource};

use crate::errors::{call, catch, closed, to_js, Ctx, Outcome};
use crate::external::external_arraybuffer;
use crate::object::NativeObject;

/// Upper bound of a span (records with headers) handed to JS at once: the rest waits in
/// the kernel ring, and a batch's memory is given back to the producer sooner.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// Data pages per CPU of a perf buffer when not given (libbpf-tools' PERF_BUFFER_PAGES).
const DEFAULT_PAGES_PER_CPU: u32 = 64;

type Source = Arc<dyn EventSource>;

#[napi]
impl NativeObject {
    /// The consumer of a ring buffer, or of a map of ring buffers (one per CPU, made and
    /// put in its slots here); `BUSY` while another is open.
    #[napi]
    pub fn ringbuf(&self, env: Env, map: String) -> Result<NativeEvents> {
        let ctx = Ctx::op("ringbuf").map(&map);
        self.with(&env, &ctx, |o| core::RingBuf::new(o.map(&map)?))
            .map(|rb| NativeEvents::new(ctx, Arc::new(rb)))
    }

    /// The map's perf-buffer consumer; `BUSY` while another is open.
    #[napi]
    pub fn perfbuf(
        &self,
        env: Env,
        map: String,
        pages_per_cpu: Option<u32>,
    ) -> Result<NativeEvents> {
        let ctx = Ctx::op("perfbuf").map(&map);
        let pages = pages_per_cpu.unwrap_or(DEFAULT_PAGES_PER_CPU) as usize;
        self.with(&env, &ctx, |o| {
            core::perfbuf::PerfBuf::new(o.map(&map)?, pages)
        })
        .map(|pb| NativeEvents::new(ctx, Arc::new(pb)))
    }
}

#[napi]
pub struct NativeEvents {
    ctx: Ctx,
    /// `None` once closed; a waiter in flight holds its own clone.
    source: Mutex<Option<Source>>,
    /// What each `buffers()` ArrayBuffer keeps mapped: emptied by `close` once the buffers
    /// are detached (nothing can read the mappings then, so they go at once rather than
    /// at the buffers' garbage collection).
    keeps: Mutex<Vec<Keep>>,
}

type Keep = Arc<Mutex<Option<Source>>>;

/// A batch: `records` records in buffer `buffer` (0, the copy buffer, when copying),
/// each at the data offset and length the index holds; `length` bytes with headers.
#[napi(object)]
pub struct EventSpan {
    pub buffer: u32,
    pub length: u32,
    pub records: u32,
}

/// Records the kernel could not write on one CPU.
#[napi(object)]
pub struct CpuLost {
    pub cpu: u32,
    pub lost: f64,
}

impl NativeEvents {
    fn new(ctx: Ctx, source: Source) -> Self {
        NativeEvents {
            ctx,
            source: Mutex::new(Some(source)),
            keeps: Mutex::new(Vec::new()),
        }
    }

    fn source(&self) -> Outcome<Source> {
        self.source
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .ok_or_else(|| closed(&self.ctx, "the consumer"))
    }
}

/// An ArrayBuffer over `len` bytes at `ptr`, keeping `keep` (the mapping's owner) until
/// it is collected; `None` where the runtime allows no external buffers.
fn external(env: &Env, ptr: *const u8, len: usize, keep: Keep) -> Result<Option<Unknown<'_>>> {
    // The memory stays mapped while `keep` holds the source.
    let value = external_arraybuffer(env, ptr, len, keep, "an event buffer")?;
    // SAFETY: `value` is the ArrayBuffer napi just created in this env.
    Ok(value.map(|v| unsafe { Unknown::from_raw_unchecked(env.raw(), v) }))
}

#[napi]
impl NativeEvents {
    /// ArrayBuffers over the data areas spans point into, or null where the runtime does
    /// not allow external buffers: then `peek` into a copy.
    #[napi(ts_return_type = "ArrayBuffer[] | null")]
    pub fn buffers<'env>(&self, env: &'env Env) -> Result<Option<Vec<Unknown<'env>>>> {
        let source = self.source().map_err(|f| to_js(env, f))?;
        let keep: Keep = Arc::new(Mutex::new(Some(source.clone())));
        let mut out = Vec::new();
        for i in 0..source.buffers() {
            let Some((ptr, len)) = source.buffer(i) else {
                break;
            };
            match external(env, ptr, len, keep.clone())? {
                Some(b) => out.push(b),
                None => return Ok(None),
            }
        }
        if let Ok(mut k) = self.keeps.lock() {
            k.push(keep);
        }
        Ok(Some(out))
    }

    /// The next batch, its records' (data offset, length) pairs written into `index` (as
    /// many as it holds); with `copy`, its bytes copied into that buffer (offsets then
    /// into it), as much as it holds; at most `max_bytes` (4 MiB by default; one record
    /// always). `null` when there is none.
    #[napi]
    pub fn peek(
        &self,
        env: Env,
        mut index: Uint32Array,
        copy: Option<Uint8Array>,
        max_bytes: Option<u32>,
    ) -> Result<Option<EventSpan>> {
        let source = self.source().map_err(|f| to_js(&env, f))?;
        call(&env, &self.ctx, || {
            let max = copy
                .as_ref()
                .map_or(MAX_BATCH_BYTES, |c| c.len().min(MAX_BATCH_BYTES))
                .min(max_bytes.map_or(usize::MAX, |m| m as usize));
            // SAFETY: the JS index is not read or resized while this call runs.
            let mut index = core::events::Index::new(unsafe { index.as_mut() });
            let Some(span) = source.peek(max, &mut index)? else {
                return Ok(None);
            };
            let buffer = match copy {
                None => span.buffer,
                Some(mut dst) => {
                    // SAFETY: the JS buffer is not read or resized while this call runs.
                    let dst = unsafe { dst.as_mut() };
                    let dst = dst.get_mut(..span.len).ok_or_else(|| {
                        core::Error::new(
                            core::Code::Range,
                            format!("a {}-byte record does not fit the copy buffer", span.len),
                        )
                    })?;
                    let (data, len) = source.buffer(span.buffer).unwrap_or((ptr::null(), 0));
                    if span.offset + span.len > len {
                        return Err(core::Error::new(
                            core::Code::Einval,
                            "a batch beyond its data area",
                        ));
                    }
                    // SAFETY: the span lies in its data area (checked above), mapped while
                    // `source` lives.
                    let src =
                        unsafe { std::slice::from_raw_parts(data.add(span.offset), span.len) };
                    dst.copy_from_slice(src);
                    index.rebase(span.offset);
                    0
                }
            };
            Ok(Some(EventSpan {
                buffer: buffer as u32,
                length: span.len as u32,
                records: span.records as u32,
            }))
        })
    }

    /// Gives the first `records` records of the last batch back to the kernel (all of it
    /// when as many as it has); the rest is found again by the next `peek`.
    #[napi]
    pub fn release(&self, env: Env, records: u32) -> Result<()> {
        let source = self.source().map_err(|f| to_js(&env, f))?;
        call(&env, &self.ctx, || source.release(records as usize))
    }

    /// Records the kernel could not write, per CPU (perf buffers); null where it does not
    /// count them (ring buffers).
    #[napi]
    pub fn lost(&self, env: Env) -> Result<Option<Vec<CpuLost>>> {
        let source = self.source().map_err(|f| to_js(&env, f))?;
        Ok(source.lost_per_cpu().map(|l| {
            l.into_iter()
                .map(|(cpu, lost)| CpuLost {
                    cpu,
                    lost: lost as f64,
                })
                .collect()
        }))
    }

    /// How many `wake()`s there were: a `wait(since)` ends when this changes.
    #[napi]
    pub fn wakes(&self, env: Env) -> Result<f64> {
        let source = self.source().map_err(|f| to_js(&env, f))?;
        Ok(source.wakes() as f64)
    }

    /// Resolves `true` once records may be there, `false` once closed or woken by a
    /// `wake()` after `wakes()` read `since`. Waits in epoll on a blocking thread.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn wait<'env>(&self, env: &'env Env, since: f64) -> Result<PromiseRaw<'env, bool>> {
        let source = self.source().map_err(|f| to_js(env, f))?;
        let ctx = self.ctx.clone();
        env.spawn_future_with_callback(
            async move {
                let waited = tokio::task::spawn_blocking(move || {
                    catch(&ctx, || {
                        Ok(source.wait(-1, since as u64)? == core::events::Wait::Ready)
                    })
                })
                .await;
                Ok(waited)
            },
            |env, waited| {
                waited
                    .map_err(|e| Error::from_reason(format!("event waiter failed: {e}")))?
                    .map_err(|f| to_js(env, f))
            },
        )
    }

    /// Ends a `wait` in flight (it resolves `false`).
    #[napi]
    pub fn wake(&self) {
        if let Ok(source) = self.source() {
            source.wake();
        }
    }

    /// Ends waiting and frees the map for another consumer. Pass the `buffers()` (they are
    /// detached, so the mappings go now, not at their garbage collection); a waiter in
    /// flight keeps the consumer until it returns. Idempotent.
    #[napi]
    pub fn close(&self, buffers: Option<Vec<ArrayBuffer>>) {
        if let Some(source) = self.source.lock().ok().and_then(|mut r| r.take()) {
            source.close();
        }
        let detached = buffers.is_some_and(|bs| bs.into_iter().all(|b| b.detach().is_ok()));
        if detached {
            if let Ok(mut keeps) = self.keeps.lock() {
                for k in keeps.drain(..) {
                    k.lock().ok().and_then(|mut r| r.take());
                }
            }
        }
    }
}
