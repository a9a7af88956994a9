//! Attaching a program: one target (`Link`), or many at once (`MultiLink`), on the JS
//! thread or off it with progress. An attach off the JS thread holds the object only
//! through its own reference, so `close()` answers at once and makes the attach stop,
//! detach what it attached, and reject with CLOSED.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{catch, closed, to_js, Ctx, Outcome};
use crate::link::{detach_in_background, NativeLink, NativeMultiLink};
use crate::object::{NativeObject, Shared};
use crate::options::{
    int_of, opt_u64, pid_of, KprobeMultiOptions, KprobeOptions, MultiRequest, PerfEventOptions,
    TracingMultiOptions, UprobeMultiOptions, UprobeOptions, UsdtOptions,
};

impl NativeObject {
    fn link(
        &self,
        env: &Env,
        ctx: Ctx,
        f: impl FnOnce(&core::Program, Option<&std::path::Path>) -> core::Result<core::Link>,
    ) -> Result<NativeLink> {
        let btf = self.shared.btf_path.clone();
        let prog = ctx.subject.program.clone().unwrap_or_default();
        self.with(env, &ctx, |o| f(o.program(&prog)?, btf.as_deref()))
            .map(NativeLink::new)
    }

    fn multi(
        &self,
        env: &Env,
        ctx: Ctx,
        request: core::Result<MultiRequest>,
    ) -> Result<NativeMultiLink> {
        let btf = self.shared.btf_path.clone();
        let prog = ctx.subject.program.clone().unwrap_or_default();
        self.with(env, &ctx, |o| {
            request?.attach(o, &prog, btf.as_deref(), None)
        })
        .map(NativeMultiLink::new)
    }

    fn multi_task(
        &self,
        ctx: Ctx,
        request: core::Result<MultiRequest>,
        progress: &NativeProgress,
    ) -> AsyncTask<MultiAttachTask> {
        let request = request
            .map_err(|e| ctx.fail(e))
            .and_then(|r| self.shared.get(&ctx).map(|_| r));
        AsyncTask::new(MultiAttachTask {
            shared: self.shared.clone(),
            ctx,
            request,
            progress: progress.counts.clone(),
        })
    }
}

#[napi]
impl NativeObject {
    /// Attaches where the program's SEC() name says (a single-target kind).
    #[napi]
    pub fn attach(&self, env: Env, prog: String) -> Result<NativeLink> {
        self.link(&env, Ctx::op("attach").program(&prog), |p, btf| {
            core::attach::auto::attach_auto(p, btf)
        })
    }

    /// An freplace program in place of function `func` of the program `target_fd` (each
    /// defaulting to the configured one).
    #[napi]
    pub fn attach_freplace(
        &self,
        env: Env,
        prog: String,
        target_fd: Option<f64>,
        func: Option<String>,
    ) -> Result<NativeLink> {
        let ctx = Ctx::op("attachFreplace")
            .program(&prog)
            .symbol(func.as_deref());
        self.link(&env, ctx, |p, _| {
            let target = target_fd
                .map(|v| {
                    let fd = int_of("program", v, 0, i32::MAX.into())?;
                    core::attach::freplace::dup_prog_fd("program", fd).map(Arc::new)
                })
                .transpose()?;
            core::attach::freplace::attach_freplace(p, target, func.as_deref())
        })
    }

    /// The fd of a program loaded with the object (another object's freplace target),
    /// valid while the object is open.
    #[napi]
    pub fn program_fd(&self, env: Env, prog: String) -> Result<i32> {
        use std::os::fd::AsRawFd;
        let ctx = Ctx::op("fd").program(&prog);
        self.with(&env, &ctx, |o| Ok(o.program(&prog)?.fd()?.as_raw_fd()))
    }

    #[napi]
    pub fn attach_tracepoint(
        &self,
        env: Env,
        prog: String,
        category: String,
        name: String,
        cookie: Option<BigInt>,
    ) -> Result<NativeLink> {
        let ctx = Ctx::op("attachTracepoint").program(&prog);
        self.link(&env, ctx, |p, _| {
            let cookie = opt_u64("cookie", cookie.as_ref())?;
            core::attach::perf_event::attach_tracepoint(p.fd()?, &category, &name, cookie)
        })
    }

    #[napi]
    pub fn attach_raw_tracepoint(
        &self,
        env: Env,
        prog: String,
        name: String,
    ) -> Result<NativeLink> {
        let ctx = Ctx::op("attachRawTracepoint").program(&prog);
        self.link(&env, ctx, |p, _| {
            core::attach::raw_tracepoint::attach_raw_tracepoint(p.fd()?, &name)
        })
    }

    #[napi]
    pub fn attach_uprobe(&self, env: Env, prog: String, o: UprobeOptions) -> Result<NativeLink> {
        let ctx = Ctx::op("attachUprobe")
            .program(&prog)
            .path(Some(&o.binary))
            .symbol(o.symbol.as_deref());
        self.link(&env, ctx, |p, _| {
            core::attach::perf_event::attach_uprobe(
                p.fd()?,
                &core::attach::perf_event::UprobeOptions {
                    binary: &o.binary,
                    symbol: o.symbol.as_deref(),
                    offset: opt_u64("offset", o.offset.as_ref())?.unwrap_or(0),
                    pid: pid_of(o.pid)?,
                    retprobe: o.retprobe.unwrap_or(false),
                    cookie: opt_u64("cookie", o.cookie.as_ref())?,
                    ref_ctr_offset: 0,
                },
            )
        })
    }

    #[napi]
    pub fn attach_kprobe(&self, env: Env, prog: String, o: KprobeOptions) -> Result<NativeLink> {
        let ctx = Ctx::op("attachKprobe")
            .program(&prog)
            .symbol(Some(&o.symbol));
        self.link(&env, ctx, |p, _| {
            core::attach::perf_event::attach_kprobe(
                p.fd()?,
                &core::attach::perf_event::KprobeOptions {
                    symbol: &o.symbol,
                    offset: opt_u64("offset", o.offset.as_ref())?.unwrap_or(0),
                    retprobe: o.retprobe.unwrap_or(false),
                    cookie: opt_u64("cookie", o.cookie.as_ref())?,
                },
            )
        })
    }

    /// A `perf_event` program on sampling perf events (every online CPU, a pid or a cgroup).
    #[napi]
    pub fn attach_perf_event(
        &self,
        env: Env,
        prog: String,
        o: PerfEventOptions,
    ) -> Result<NativeLink> {
        let ctx = Ctx::op("attachPerfEvent")
            .program(&prog)
            .path(o.cgroup.as_deref());
        self.link(&env, ctx, |p, _| {
            core::attach::sampling::attach_perf_event(p.fd()?, &o.to_core()?)
        })
    }

    /// fentry/fexit/fmod_ret/tp_btf/lsm; `target_fn` overrides the SEC() target.
    #[napi]
    pub fn attach_fentry(
        &self,
        env: Env,
        prog: String,
        target_fn: Option<String>,
        cookie: Option<BigInt>,
    ) -> Result<NativeLink> {
        let ctx = Ctx::op("attachFentry")
            .program(&prog)
            .symbol(target_fn.as_deref());
        self.link(&env, ctx, |p, btf| {
            let cookie = opt_u64("cookie", cookie.as_ref())?;
            core::attach::tracing::attach_tracing(p, target_fn.as_deref(), cookie, btf)
        })
    }

    /// Attaches a batch kind (or `usdt/…`) where its SEC() name says.
    #[napi]
    pub fn attach_multi(&self, env: Env, prog: String) -> Result<NativeMultiLink> {
        let btf = self.shared.btf_path.clone();
        let ctx = Ctx::op("attach").program(&prog);
        self.with(&env, &ctx, |o| {
            let p = o.program(&prog)?;
            if p.spec.kind == core::loader::section::AttachKind::Usdt {
                return core::usdt::attach_auto(o, p);
            }
            core::attach::auto::attach_multi_auto(p, btf.as_deref())
        })
        .map(NativeMultiLink::new)
    }

    /// A USDT probe of a binary, every site of it, for programs written with libbpf's
    /// `<bpf/usdt.bpf.h>`.
    #[napi]
    pub fn attach_usdt(&self, env: Env, prog: String, o: UsdtOptions) -> Result<NativeMultiLink> {
        let ctx = usdt_ctx("attachUsdt", &prog, &o);
        self.multi(&env, ctx, MultiRequest::usdt(o))
    }

    #[napi]
    pub fn attach_kprobe_multi(
        &self,
        env: Env,
        prog: String,
        o: KprobeMultiOptions,
    ) -> Result<NativeMultiLink> {
        let ctx = Ctx::op("attachKprobeMulti").program(&prog);
        self.multi(&env, ctx, MultiRequest::kprobe(o))
    }

    #[napi]
    pub fn attach_uprobe_multi(
        &self,
        env: Env,
        prog: String,
        o: UprobeMultiOptions,
    ) -> Result<NativeMultiLink> {
        let ctx = Ctx::op("attachUprobeMulti")
            .program(&prog)
            .path(Some(&o.binary));
        self.multi(&env, ctx, MultiRequest::uprobe(o))
    }

    #[napi]
    pub fn attach_tracing_multi(
        &self,
        env: Env,
        prog: String,
        o: TracingMultiOptions,
    ) -> Result<NativeMultiLink> {
        let ctx = Ctx::op("attachTracingMulti").program(&prog);
        self.multi(&env, ctx, MultiRequest::tracing(o))
    }

    /// The batch attaches off the JS thread, updating `progress` while a fallback works
    /// per target (perf kprobes/uprobes, or one fentry program per function). `close()`
    /// on the object stops it: it rejects with CLOSED, having detached what it attached.
    #[napi(ts_return_type = "Promise<NativeMultiLink>")]
    pub fn attach_kprobe_multi_async(
        &self,
        prog: String,
        o: KprobeMultiOptions,
        progress: &NativeProgress,
    ) -> AsyncTask<MultiAttachTask> {
        let ctx = Ctx::op("attachKprobeMultiAsync").program(&prog);
        self.multi_task(ctx, MultiRequest::kprobe(o), progress)
    }

    #[napi(ts_return_type = "Promise<NativeMultiLink>")]
    pub fn attach_uprobe_multi_async(
        &self,
        prog: String,
        o: UprobeMultiOptions,
        progress: &NativeProgress,
    ) -> AsyncTask<MultiAttachTask> {
        let ctx = Ctx::op("attachUprobeMultiAsync")
            .program(&prog)
            .path(Some(&o.binary));
        self.multi_task(ctx, MultiRequest::uprobe(o), progress)
    }

    #[napi(ts_return_type = "Promise<NativeMultiLink>")]
    pub fn attach_usdt_async(
        &self,
        prog: String,
        o: UsdtOptions,
        progress: &NativeProgress,
    ) -> AsyncTask<MultiAttachTask> {
        let ctx = usdt_ctx("attachUsdtAsync", &prog, &o);
        self.multi_task(ctx, MultiRequest::usdt(o), progress)
    }

    #[napi(ts_return_type = "Promise<NativeMultiLink>")]
    pub fn attach_tracing_multi_async(
        &self,
        prog: String,
        o: TracingMultiOptions,
        progress: &NativeProgress,
    ) -> AsyncTask<MultiAttachTask> {
        let ctx = Ctx::op("attachTracingMultiAsync").program(&prog);
        self.multi_task(ctx, MultiRequest::tracing(o), progress)
    }
}

/// A USDT attach's subject: the program, the binary and `provider:name`.
fn usdt_ctx(op: &'static str, prog: &str, o: &UsdtOptions) -> Ctx {
    Ctx::op(op)
        .program(prog)
        .path(Some(&o.binary))
        .symbol(Some(&format!("{}:{}", o.provider, o.name)))
}

/// (done, total) of a long attach, read by the facade while the attach runs.
#[napi]
pub struct NativeProgress {
    counts: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Default for NativeProgress {
    fn default() -> Self {
        Self::new()
    }
}

#[napi]
impl NativeProgress {
    #[napi(constructor)]
    pub fn new() -> Self {
        NativeProgress {
            counts: Arc::new((AtomicUsize::new(0), AtomicUsize::new(0))),
        }
    }

    #[napi]
    pub fn done(&self) -> u32 {
        self.counts.0.load(Ordering::Relaxed) as u32
    }

    #[napi]
    pub fn total(&self) -> u32 {
        self.counts.1.load(Ordering::Relaxed) as u32
    }
}

pub struct MultiAttachTask {
    shared: Arc<Shared>,
    ctx: Ctx,
    request: Outcome<MultiRequest>,
    progress: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Task for MultiAttachTask {
    type Output = Outcome<core::attach::multi::MultiLink>;
    type JsValue = NativeMultiLink;

    fn compute(&mut self) -> Result<Self::Output> {
        let request = match &self.request {
            Ok(r) => r,
            Err(f) => return Ok(Err(self.ctx.fail(f.error.clone()))),
        };
        // Our own reference: `close()` takes the object's away at once, and its fds
        // close when this attach lets go of it.
        let obj = match self.shared.get(&self.ctx) {
            Ok(o) => o,
            Err(f) => return Ok(Err(f)),
        };
        let (counts, shared) = (self.progress.clone(), self.shared.clone());
        let report = move |done: usize, total: usize| {
            counts.1.store(total, Ordering::Relaxed);
            counts.0.store(done, Ordering::Relaxed);
            !shared.closed.load(Ordering::Acquire)
        };
        let prog = self.ctx.subject.program.clone().unwrap_or_default();
        let btf = self.shared.btf_path.clone();
        let ctx = self.ctx.clone();
        Ok(catch(&ctx, || {
            let link = request.attach(&obj, &prog, btf.as_deref(), Some(&report))?;
            if self.shared.closed.load(Ordering::Acquire) {
                drop(link);
                return Err(core::attach::multi::stopped("closed as the attach ended"));
            }
            Ok(link)
        }))
    }

    fn resolve(&mut self, env: Env, out: Self::Output) -> Result<NativeMultiLink> {
        let link = out.map_err(|f| to_js(&env, f))?;
        // Closed between the attach's end and now: nothing may own a live link.
        if self.shared.closed.load(Ordering::Acquire) {
            detach_in_background(link);
            return Err(to_js(&env, closed(&self.ctx, "the BPF object")));
        }
        Ok(NativeMultiLink::new(link))
    }
}
