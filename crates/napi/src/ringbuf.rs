//! Ring-buffer consumers: one per map (a second is `BUSY`). JS reads the records where
//! the kernel wrote them: `data()` is an ArrayBuffer over the ring's data area (mapped
//! read-only, twice back to back), `peek()` finds the committed records as one span of
//! it, `release()` gives them back. Waiting for records happens on a blocking thread,
//! never the JS thread; a batch that is ready costs no thread hop.
//!
//! Where the runtime refuses external ArrayBuffers (Electron's V8 memory cage), or when
//! asked (`copy`), `peek` copies the span into a buffer JS owns and reuses.

use std::ptr;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{call, catch, closed, to_js, Ctx, Outcome};
use crate::object::NativeObject;

/// Upper bound of a span (records with headers) handed to JS at once: the rest waits in
/// the kernel ring, and a batch's memory is given back to the producer sooner.
const MAX_BATCH_BYTES: usize = 4 << 20;

#[napi]
impl NativeObject {
    /// The map's consumer; `BUSY` while another is open.
    #[napi]
    pub fn ringbuf(&self, env: Env, map: String) -> Result<NativeRingBuf> {
        let ctx = Ctx::op("ringbuf").map(&map);
        self.with(&env, &ctx, |o| core::RingBuf::new(o.map(&map)?))
            .map(|rb| NativeRingBuf {
                ctx,
                ring: Mutex::new(Some(Arc::new(rb))),
                span: Mutex::new(None),
                data_keep: Mutex::new(Vec::new()),
            })
    }
}

#[napi]
pub struct NativeRingBuf {
    ctx: Ctx,
    /// `None` once closed. A waiter in flight and the data ArrayBuffer hold their own
    /// clones, so the mapping and fds go away when they let go, never under them.
    ring: Mutex<Option<Arc<core::RingBuf>>>,
    /// The span the last `peek` found, until released.
    span: Mutex<Option<core::ringbuf::Span>>,
    /// What each `data()` ArrayBuffer keeps mapped: emptied by `close` once the buffer is
    /// detached (nothing can read the mapping then, so it goes at once rather than at
    /// the buffer's garbage collection).
    data_keep: Mutex<Vec<Keep>>,
}

/// The ring a data ArrayBuffer keeps alive, shared with its finalizer.
type Keep = Arc<Mutex<Option<Arc<core::RingBuf>>>>;

/// A span: where its records start in the data area (or the copy buffer), its bytes, and
/// its records.
#[napi(object)]
pub struct RingSpan {
    pub offset: u32,
    pub length: u32,
    pub records: u32,
}

impl NativeRingBuf {
    fn ring(&self) -> Outcome<Arc<core::RingBuf>> {
        self.ring
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .ok_or_else(|| closed(&self.ctx, "the ring buffer"))
    }
}

/// Drops the ring the data ArrayBuffer kept mapped, once V8 lets go of the buffer.
unsafe extern "C" fn release_mapping(
    _env: sys::napi_env,
    _data: *mut std::ffi::c_void,
    hint: *mut std::ffi::c_void,
) {
    // SAFETY: `hint` is the `Box<Keep>` leaked in `data`, finalized once.
    drop(unsafe { Box::from_raw(hint as *mut Keep) });
}

#[napi]
impl NativeRingBuf {
    /// An ArrayBuffer over the ring's data area (read-only memory: writing to it faults),
    /// which keeps the mapping alive until it is collected or `close` detaches it; `null`
    /// where the runtime does not allow external buffers: then `peek` into a copy.
    #[napi(ts_return_type = "ArrayBuffer | null")]
    pub fn data(&self, env: &Env) -> Result<Option<Unknown<'_>>> {
        let ring = self.ring().map_err(|f| to_js(env, f))?;
        let (ptr, len) = ring.data();
        let keep: Keep = Arc::new(Mutex::new(Some(ring)));
        let hint = Box::into_raw(Box::new(keep.clone()));
        let mut value = ptr::null_mut();
        // SAFETY: `ptr`/`len` is the mapped data area, which stays mapped while `hint`
        // holds the ring (until the finalizer, or `close` after detaching the buffer).
        let status = unsafe {
            sys::napi_create_external_arraybuffer(
                env.raw(),
                ptr as *mut std::ffi::c_void,
                len,
                Some(release_mapping),
                hint as *mut std::ffi::c_void,
                &mut value,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: not handed to V8: ours to free.
            drop(unsafe { Box::from_raw(hint) });
            if status == sys::Status::napi_no_external_buffers_allowed {
                return Ok(None);
            }
            return Err(Error::new(
                Status::GenericFailure,
                format!("creating the ring buffer's ArrayBuffer failed (napi status {status})"),
            ));
        }
        if let Ok(mut k) = self.data_keep.lock() {
            k.push(keep);
        }
        // SAFETY: a fresh, valid napi_value of this env.
        Ok(Some(unsafe {
            Unknown::from_raw_unchecked(env.raw(), value)
        }))
    }

    /// The committed records not yet released, as a span of the data area; with `copy`,
    /// copied into it (from offset 0), as much as it holds. `null` when there are none.
    #[napi]
    pub fn peek(&self, env: Env, copy: Option<Uint8Array>) -> Result<Option<RingSpan>> {
        let ring = self.ring().map_err(|f| to_js(&env, f))?;
        call(&env, &self.ctx, || {
            let max = copy
                .as_ref()
                .map_or(MAX_BATCH_BYTES, |c| c.len().min(MAX_BATCH_BYTES));
            let Some(span) = ring.peek(max)? else {
                return Ok(None);
            };
            let offset = match copy {
                None => span.offset,
                Some(mut dst) => {
                    let (data, _) = ring.data();
                    // SAFETY: the JS buffer is not read or resized while this call runs
                    // (JS is single-threaded and waiting on it).
                    let dst = unsafe { dst.as_mut() };
                    let dst = dst.get_mut(..span.len).ok_or_else(|| {
                        core::Error::new(
                            core::Code::Range,
                            format!("a {}-byte record does not fit the copy buffer", span.len),
                        )
                    })?;
                    // SAFETY: the span lies in the mapped data area: peek walked it.
                    let src =
                        unsafe { std::slice::from_raw_parts(data.add(span.offset), span.len) };
                    dst.copy_from_slice(src);
                    0
                }
            };
            if let Ok(mut s) = self.span.lock() {
                *s = Some(span);
            }
            Ok(Some(RingSpan {
                offset: offset as u32,
                length: span.len as u32,
                records: span.records as u32,
            }))
        })
    }

    /// Gives the first `length` bytes of the last span back to the kernel (all of it, or
    /// up to a record boundary); the rest is found again by the next `peek`.
    #[napi]
    pub fn release(&self, env: Env, length: u32) -> Result<()> {
        let ring = self.ring().map_err(|f| to_js(&env, f))?;
        call(&env, &self.ctx, || {
            let span = self.span.lock().ok().and_then(|mut s| s.take());
            match span {
                Some(span) => ring.release(&span, length as usize),
                None if length == 0 => Ok(()),
                None => Err(core::Error::new(
                    core::Code::Einval,
                    "release without a span: peek first",
                )),
            }
        })
    }

    /// How many `wake()`s there were: a `wait(since)` ends when this changes.
    #[napi]
    pub fn wakes(&self, env: Env) -> Result<f64> {
        let ring = self.ring().map_err(|f| to_js(&env, f))?;
        Ok(ring.wakes() as f64)
    }

    /// Resolves `true` once records may be there, `false` once closed or woken by a
    /// `wake()` after `wakes()` read `since`. Waits in epoll on a blocking thread.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn wait<'env>(&self, env: &'env Env, since: f64) -> Result<PromiseRaw<'env, bool>> {
        let ring = self.ring().map_err(|f| to_js(env, f))?;
        wait_ready(env, self.ctx.clone(), move || ring.wait(-1, since as u64))
    }

    /// Makes a pending `wait` resolve with `false`.
    #[napi]
    pub fn wake(&self) {
        if let Ok(ring) = self.ring() {
            ring.wake();
        }
    }

    /// Ends waiting, frees the map for another consumer and detaches `data` (its reads
    /// then fail instead of reading a mapping that is going away); the mapping is
    /// released once nothing holds it. Idempotent.
    #[napi]
    pub fn close(&self, data: Option<ArrayBuffer>) {
        if let Some(ring) = self.ring.lock().ok().and_then(|mut r| r.take()) {
            ring.close();
        }
        // Detached, the buffer reads nothing: its mapping can go now. Without it (not
        // given, or not detachable) the mapping stays until the buffer is collected.
        if data.is_some_and(|d| d.detach().is_ok()) {
            if let Ok(mut keeps) = self.data_keep.lock() {
                for k in keeps.drain(..) {
                    k.lock().ok().and_then(|mut r| r.take());
                }
            }
        }
    }
}

/// Runs a consumer's `wait` on a blocking thread: resolves `true` once its fds are
/// readable, `false` once it is closed or woken (ring and perf buffers alike).
pub(crate) fn wait_ready<'env>(
    env: &'env Env,
    ctx: Ctx,
    wait: impl FnOnce() -> core::Result<core::ringbuf::Wait> + Send + 'static,
) -> Result<PromiseRaw<'env, bool>> {
    env.spawn_future_with_callback(
        async move {
            let waited = tokio::task::spawn_blocking(move || {
                catch(&ctx, || Ok(wait()? == core::ringbuf::Wait::Ready))
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
