//! BPF iterators read as a stream: each `read()` runs off the JS thread (an iteration
//! walks kernel objects as it is read) and resolves with the next bytes, empty at the end.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{closed, to_js, CoreTask, Ctx};
use crate::object::NativeObject;

/// Bytes asked of the kernel per read: seq_file fills up to this much per call.
const READ_CHUNK: usize = 64 << 10;

/// One iteration, with the iter link it came from (both closed by `close()`).
struct Iteration {
    fd: Arc<OwnedFd>,
    _link: core::Link,
}

#[napi]
pub struct NativeIter {
    state: Arc<Mutex<Option<Iteration>>>,
    ctx: Ctx,
}

#[napi]
impl NativeObject {
    /// Attaches an `iter/…` program (`map`: the map an `iter/bpf_map_elem` program walks)
    /// and starts one iteration of it.
    #[napi]
    pub fn open_iter(&self, env: Env, prog: String, map: Option<String>) -> Result<NativeIter> {
        let mut ctx = Ctx::op("iterate").program(&prog);
        if let Some(m) = &map {
            ctx = ctx.map(m);
        }
        let (link, fd) = self.with(&env, &ctx, |o| {
            let map_fd = map.as_deref().map(|m| o.map(m)).transpose()?;
            let link = core::attach::iter::attach_iter(o.program(&prog)?, map_fd.map(|m| m.fd()))?;
            let fd = core::attach::iter::create_iter(&link)?;
            Ok((link, fd))
        })?;
        Ok(NativeIter {
            state: Arc::new(Mutex::new(Some(Iteration {
                fd: Arc::new(fd),
                _link: link,
            }))),
            ctx,
        })
    }
}

#[napi]
impl NativeIter {
    /// The next bytes of the iteration; an empty buffer at its end.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn read(&self, env: Env) -> Result<AsyncTask<CoreTask<Buffer>>> {
        let fd = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|i| i.fd.clone()))
            .ok_or_else(|| to_js(&env, closed(&self.ctx, "the iterator")))?;
        Ok(AsyncTask::new(CoreTask::new(self.ctx.clone(), move || {
            let mut buf = vec![0u8; READ_CHUNK];
            let n = core::attach::iter::read_iter(fd.as_fd(), &mut buf)?;
            buf.truncate(n);
            Ok(Buffer::from(buf))
        })))
    }

    /// Ends the iteration and detaches its link. Idempotent; a read under way finishes first.
    #[napi]
    pub fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.take();
        }
    }
}
