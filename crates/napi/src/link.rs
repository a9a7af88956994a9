//! Links: `close()` never blocks the JS thread on the kernel (a perf event waits for an
//! RCU grace period as it closes, ~100 ms each), and `closeAsync()` resolves once the
//! kernel has let go of every target.

use std::sync::{Arc, Condvar, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{closed, to_js, Ctx};

/// A link's owner: taken once by whichever close comes first; `closeAsync` waits for a
/// detach that a `close()` started in the background.
struct Owned<T: Send + 'static> {
    slot: Mutex<Option<T>>,
    detached: Arc<(Mutex<bool>, Condvar)>,
}

impl<T: Send + 'static> Owned<T> {
    fn new(value: T) -> Self {
        Owned {
            slot: Mutex::new(Some(value)),
            detached: Arc::new((Mutex::new(false), Condvar::new())),
        }
    }

    fn with<R>(&self, what: &str, f: impl FnOnce(&T) -> R) -> std::result::Result<R, String> {
        let guard = self.slot.lock().map_err(|_| format!("{what} is closed"))?;
        guard
            .as_ref()
            .map(f)
            .ok_or_else(|| format!("{what} is closed"))
    }

    fn take(&self) -> Option<T> {
        self.slot.lock().ok().and_then(|mut s| s.take())
    }

    /// Detaches on this thread, or on a thread of its own when `slow`.
    fn close(&self, slow: impl FnOnce(&T) -> bool) {
        let Some(value) = self.take() else { return };
        let is_slow = slow(&value);
        let detach = Detach {
            value: Some(value),
            detached: self.detached.clone(),
        };
        if !is_slow {
            return drop(detach);
        }
        // Where no thread can be had, the closure and the guard in it are dropped here:
        // detached on this thread rather than left attached.
        let spawned = std::thread::Builder::new()
            .name("nodebpf-detach".into())
            .spawn(move || drop(detach));
        drop(spawned);
    }

    /// Detaches on this (worker) thread, or waits for a detach already under way.
    fn close_blocking(&self) {
        match self.take() {
            Some(value) => drop(Detach {
                value: Some(value),
                detached: self.detached.clone(),
            }),
            None => {
                let (lock, cv) = &*self.detached;
                let Ok(mut done) = lock.lock() else { return };
                // Never taken (nothing to wait for) is told apart by the slot being
                // empty only after a take: a take always ends in a dropped `Detach`.
                while !*done {
                    match cv.wait(done) {
                        Ok(d) => done = d,
                        Err(_) => return,
                    }
                }
            }
        }
    }
}

/// A link on its way out: dropping it detaches the link, then tells `close_blocking`'s
/// waiters, on whichever thread drops it.
struct Detach<T> {
    value: Option<T>,
    detached: Arc<(Mutex<bool>, Condvar)>,
}

impl<T> Drop for Detach<T> {
    fn drop(&mut self) {
        drop(self.value.take());
        if let Ok(mut d) = self.detached.0.lock() {
            *d = true;
        }
        self.detached.1.notify_all();
    }
}

/// Resolves once the link is detached.
pub struct CloseTask<T: Send + Sync + 'static>(Arc<Owned<T>>);

impl<T: Send + Sync + 'static> Task for CloseTask<T> {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        self.0.close_blocking();
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _out: ()) -> Result<()> {
        Ok(())
    }
}

/// Detaches a link nobody may own any more, without blocking the caller.
pub fn detach_in_background(link: core::attach::multi::MultiLink) {
    Owned::new(link).close(|_| true);
}

fn closed_error(env: &Env, what: &str) -> Error {
    to_js(env, closed(&Ctx::op("link"), what))
}

#[napi(object)]
pub struct LinkInfo {
    /// What was attached: 'tracepoint', 'uprobe', 'kretprobe', 'fentry', ...
    pub kind: String,
    /// Where, e.g. 'syscalls/sys_enter_getppid' or '/usr/bin/node:uv_run'.
    pub target: String,
    /// The kernel's link type: 'perf_event', 'raw_tracepoint', 'tracing', ...
    pub link_type: String,
    pub id: u32,
    pub prog_id: u32,
    pub cookie: Option<BigInt>,
}

#[napi]
pub struct NativeLink {
    inner: Arc<Owned<core::Link>>,
}

impl NativeLink {
    pub fn new(link: core::Link) -> Self {
        NativeLink {
            inner: Arc::new(Owned::new(link)),
        }
    }
}

#[napi]
impl NativeLink {
    #[napi]
    pub fn info(&self, env: Env) -> Result<LinkInfo> {
        let ctx = Ctx::op("info");
        let r = self
            .inner
            .with("the link", |link| {
                link.info().map(|info| LinkInfo {
                    kind: link.kind.to_string(),
                    target: link.target.clone(),
                    link_type: info.link_type.to_string(),
                    id: info.id,
                    prog_id: info.prog_id,
                    cookie: link.cookie.map(BigInt::from),
                })
            })
            .map_err(|what| closed_error(&env, what.trim_end_matches(" is closed")))?;
        r.map_err(|e| to_js(&env, ctx.fail(e)))
    }

    /// Detaches: at once, or in the background for a perf-event link (whose close waits
    /// for the kernel). Idempotent.
    #[napi]
    pub fn close(&self) {
        self.inner.close(core::Link::detach_is_slow);
    }

    /// Detaches off the JS thread; resolves once the kernel has let go. Idempotent.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close_async(&self) -> AsyncTask<CloseTask<core::Link>> {
        AsyncTask::new(CloseTask(self.inner.clone()))
    }
}

#[napi(object)]
pub struct MultiTarget {
    pub name: String,
    /// Kernel address, file offset (uprobes) or BTF id (tracing), by mechanism.
    pub address: BigInt,
    pub cookie: BigInt,
}

#[napi(object)]
pub struct MultiSkipped {
    pub name: String,
    pub reason: String,
}

#[napi(object)]
pub struct MultiStats {
    pub missed: Option<BigInt>,
    pub recursion_misses: BigInt,
    pub run_count: Option<BigInt>,
}

/// What a batch link attached and left out; kept readable after close.
struct Described {
    targets: Vec<core::attach::multi::Target>,
    skipped: Vec<core::attach::multi::Skipped>,
    path: Option<String>,
}

#[napi]
pub struct NativeMultiLink {
    inner: Arc<Owned<core::attach::multi::MultiLink>>,
    described: Described,
    mechanism: String,
}

impl NativeMultiLink {
    pub fn new(link: core::attach::multi::MultiLink) -> Self {
        NativeMultiLink {
            mechanism: link.mechanism.to_string(),
            described: Described {
                targets: link.targets.clone(),
                skipped: link.skipped.clone(),
                path: link.path.as_ref().map(|p| p.display().to_string()),
            },
            inner: Arc::new(Owned::new(link)),
        }
    }
}

#[napi]
impl NativeMultiLink {
    /// 'kprobe_multi' | 'kprobes' | 'uprobe_multi' | 'uprobes' | 'tracing_multi' | 'fentry' | 'fexit' ...
    #[napi(getter)]
    pub fn mechanism(&self) -> String {
        self.mechanism.clone()
    }

    /// The file of a uprobe link's targets.
    #[napi]
    pub fn path(&self) -> Option<String> {
        self.described.path.clone()
    }

    #[napi]
    pub fn targets(&self) -> Vec<MultiTarget> {
        self.described
            .targets
            .iter()
            .map(|t| MultiTarget {
                name: t.name.clone(),
                address: BigInt::from(t.address),
                cookie: BigInt::from(t.cookie),
            })
            .collect()
    }

    #[napi]
    pub fn skipped(&self) -> Vec<MultiSkipped> {
        self.described
            .skipped
            .iter()
            .map(|s| MultiSkipped {
                name: s.name.clone(),
                reason: s.reason.clone(),
            })
            .collect()
    }

    #[napi]
    pub fn kernel_links(&self, env: Env) -> Result<u32> {
        self.inner
            .with("the link", |l| l.kernel_links() as u32)
            .map_err(|_| closed_error(&env, "the link"))
    }

    #[napi]
    pub fn stats(&self, env: Env) -> Result<MultiStats> {
        self.inner
            .with("the link", |l| {
                let s = l.stats();
                MultiStats {
                    missed: s.missed.map(BigInt::from),
                    recursion_misses: BigInt::from(s.recursion_misses),
                    run_count: s.run_count.map(BigInt::from),
                }
            })
            .map_err(|_| closed_error(&env, "the link"))
    }

    /// Detaches every target in the background (targets and skipped stay readable);
    /// `closeAsync()` says when the kernel is done. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.inner.close(|_| true);
    }

    /// Detaches off the JS thread; resolves once every target is detached. Idempotent.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close_async(&self) -> AsyncTask<CloseTask<core::attach::multi::MultiLink>> {
        AsyncTask::new(CloseTask(self.inner.clone()))
    }
}
