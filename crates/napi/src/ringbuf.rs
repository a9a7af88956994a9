//! Ring-buffer consumers: one per map (a second is `BUSY`), batches handed to JS from a
//! blocking thread, never the JS thread.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{call, catch, closed, to_js, Ctx, Outcome};
use crate::object::NativeObject;

/// Upper bound of record bytes handed to JS per batch; the rest waits in the kernel ring.
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
            })
    }
}

#[napi]
pub struct NativeRingBuf {
    ctx: Ctx,
    /// `None` once closed. A poller in flight holds its own clone, so the mapping and
    /// fds go away when it returns, never under it.
    ring: Mutex<Option<Arc<core::RingBuf>>>,
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

#[napi]
impl NativeRingBuf {
    /// Resolves with the next batch (records in core's batch format), or `null` once
    /// closed or woken by a `wake()` made after this call. Waits on a blocking thread.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn next_batch<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Option<Buffer>>> {
        let ring = self.ring().map_err(|f| to_js(env, f))?;
        // Read now, on the JS thread: a wake from an abort that fires after this call
        // ends this wait; one from before it cannot.
        let since = ring.wakes();
        let ctx = self.ctx.clone();
        env.spawn_future_with_callback(
            async move {
                let polled = tokio::task::spawn_blocking(move || {
                    catch(&ctx, || {
                        let mut out = Vec::new();
                        let n = ring.next_batch(&mut out, MAX_BATCH_BYTES, since)?;
                        Ok((n > 0).then_some(out))
                    })
                })
                .await;
                Ok(polled)
            },
            |env, polled| {
                let batch = polled
                    .map_err(|e| Error::from_reason(format!("ring-buffer poller failed: {e}")))?
                    .map_err(|f| to_js(env, f))?;
                Ok(batch.map(Buffer::from))
            },
        )
    }

    /// Drains what is available now without waiting.
    #[napi]
    pub fn try_batch(&self, env: Env) -> Result<Option<Buffer>> {
        let ring = self.ring().map_err(|f| to_js(&env, f))?;
        call(&env, &self.ctx, || {
            let mut out = Vec::new();
            let n = ring.drain_into(&mut out, MAX_BATCH_BYTES)?;
            Ok((n > 0).then(|| Buffer::from(out)))
        })
    }

    /// Makes a pending `nextBatch` resolve with `null`.
    #[napi]
    pub fn wake(&self) {
        if let Ok(ring) = self.ring() {
            ring.wake();
        }
    }

    /// Ends iteration and frees the map for another consumer; the mapping is released
    /// once no poller holds it. Idempotent.
    #[napi]
    pub fn close(&self) {
        if let Some(ring) = self.ring.lock().ok().and_then(|mut r| r.take()) {
            ring.close();
        }
    }
}
