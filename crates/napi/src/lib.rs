//! N-API glue over nodebpf-core. No logic lives here: arguments are converted, the core
//! is called, and core errors are passed to JS as JSON the facade turns into `BpfError`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

/// Upper bound of record bytes handed to JS per batch; the rest waits in the kernel ring.
const MAX_BATCH_BYTES: usize = 4 << 20;

fn js_err(e: core::Error) -> Error {
    let json = serde_json::json!({
        "code": e.code.as_str(),
        "errno": e.errno,
        "message": e.message,
        "verifierLog": e.verifier_log,
    });
    Error::new(Status::GenericFailure, format!("nodebpf:{json}"))
}

fn closed(what: &str) -> Error {
    js_err(core::Error::new(
        core::Code::Closed,
        format!("{what} is closed"),
    ))
}

#[napi(object)]
pub struct LoadOptions {
    pub globals: Option<HashMap<String, Uint8Array>>,
    /// Integer globals, stored at the variable's own width.
    pub int_globals: Option<HashMap<String, BigInt>>,
    pub btf_path: Option<String>,
    pub pin_path: Option<String>,
}

fn core_options(o: Option<LoadOptions>) -> core::LoadOptions {
    let Some(o) = o else {
        return Default::default();
    };
    core::LoadOptions {
        globals: o
            .globals
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, core::GlobalValue::Bytes(v.to_vec())))
            .chain(o.int_globals.unwrap_or_default().into_iter().map(|(k, v)| {
                let (negative, magnitude, _) = v.get_u128();
                let value = if negative {
                    -(magnitude as i128)
                } else {
                    magnitude as i128
                };
                (k, core::GlobalValue::Int(value))
            }))
            .collect(),
        btf_path: o.btf_path.map(PathBuf::from),
        pin_path: o.pin_path.map(PathBuf::from),
    }
}

pub struct LoadTask {
    data: Vec<u8>,
    opts: core::LoadOptions,
}

impl Task for LoadTask {
    type Output = core::Object;
    type JsValue = NativeObject;

    fn compute(&mut self) -> Result<Self::Output> {
        core::load(&self.data, &self.opts).map_err(js_err)
    }

    fn resolve(&mut self, _env: Env, obj: Self::Output) -> Result<Self::JsValue> {
        Ok(NativeObject::new(obj, self.opts.btf_path.clone()))
    }
}

#[napi]
pub fn load_object(data: Uint8Array, options: Option<LoadOptions>) -> AsyncTask<LoadTask> {
    AsyncTask::new(LoadTask {
        data: data.to_vec(),
        opts: core_options(options),
    })
}

#[napi]
pub fn load_object_sync(data: Uint8Array, options: Option<LoadOptions>) -> Result<NativeObject> {
    let opts = core_options(options);
    let obj = core::load(&data, &opts).map_err(js_err)?;
    Ok(NativeObject::new(obj, opts.btf_path))
}

#[napi(object)]
pub struct ProgramDesc {
    pub name: String,
    pub section: String,
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub loaded: bool,
    pub insn_count: u32,
}

#[napi(object)]
pub struct MapDesc {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub percpu: bool,
    pub pinned: Option<String>,
}

#[napi(object)]
pub struct UprobeOptions {
    pub binary: String,
    pub symbol: Option<String>,
    pub offset: Option<BigInt>,
    pub pid: Option<i32>,
    pub retprobe: Option<bool>,
    pub cookie: Option<BigInt>,
}

#[napi(object)]
pub struct KprobeOptions {
    pub symbol: String,
    pub offset: Option<BigInt>,
    pub retprobe: Option<bool>,
    pub cookie: Option<BigInt>,
}

fn u64_of(b: Option<BigInt>) -> Option<u64> {
    b.map(|b| b.get_u64().1)
}

#[napi]
pub struct NativeObject {
    /// Shared with attach tasks running off the JS thread.
    inner: Arc<Mutex<Option<core::Object>>>,
    btf_path: Option<PathBuf>,
}

impl NativeObject {
    fn new(obj: core::Object, btf_path: Option<PathBuf>) -> Self {
        NativeObject {
            inner: Arc::new(Mutex::new(Some(obj))),
            btf_path,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&core::Object) -> core::Result<T>) -> Result<T> {
        let guard = self.inner.lock().map_err(|_| closed("the object"))?;
        let obj = guard.as_ref().ok_or_else(|| closed("the object"))?;
        f(obj).map_err(js_err)
    }

    fn link(
        &self,
        prog: &str,
        f: impl FnOnce(&core::Program) -> core::Result<core::Link>,
    ) -> Result<NativeLink> {
        self.with(|o| f(o.program(prog)?)).map(NativeLink::new)
    }
}

#[napi]
impl NativeObject {
    #[napi]
    pub fn programs(&self) -> Result<Vec<ProgramDesc>> {
        self.with(|o| {
            Ok(o.programs
                .iter()
                .map(|p| ProgramDesc {
                    name: p.name.clone(),
                    section: p.section.clone(),
                    prog_type: p.spec.prog_type,
                    expected_attach_type: p.spec.expected_attach_type,
                    loaded: p.is_loaded(),
                    insn_count: p.insn_count() as u32,
                })
                .collect())
        })
    }

    #[napi]
    pub fn maps(&self) -> Result<Vec<MapDesc>> {
        self.with(|o| {
            Ok(o.maps
                .iter()
                .map(|m| MapDesc {
                    name: m.name.clone(),
                    map_type: m.map_type,
                    key_size: m.key_size,
                    value_size: m.value_size,
                    max_entries: m.max_entries,
                    flags: m.flags,
                    percpu: m.is_percpu(),
                    pinned: m.pinned.as_ref().map(|p| p.display().to_string()),
                })
                .collect())
        })
    }

    /// Closes every program and map fd of the object. Idempotent.
    #[napi]
    pub fn close(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.take();
        }
    }

    #[napi]
    pub fn attach(&self, prog: String) -> Result<NativeLink> {
        let btf = self.btf_path.clone();
        self.link(&prog, |p| {
            core::attach::auto::attach_auto(p, btf.as_deref())
        })
    }

    #[napi]
    pub fn attach_tracepoint(
        &self,
        prog: String,
        category: String,
        name: String,
        cookie: Option<BigInt>,
    ) -> Result<NativeLink> {
        self.link(&prog, |p| {
            core::attach::perf_event::attach_tracepoint(p.fd()?, &category, &name, u64_of(cookie))
        })
    }

    #[napi]
    pub fn attach_raw_tracepoint(&self, prog: String, name: String) -> Result<NativeLink> {
        self.link(&prog, |p| {
            core::attach::raw_tracepoint::attach_raw_tracepoint(p.fd()?, &name)
        })
    }

    #[napi]
    pub fn attach_uprobe(&self, prog: String, o: UprobeOptions) -> Result<NativeLink> {
        self.link(&prog, |p| {
            core::attach::perf_event::attach_uprobe(
                p.fd()?,
                &core::attach::perf_event::UprobeOptions {
                    binary: &o.binary,
                    symbol: o.symbol.as_deref(),
                    offset: u64_of(o.offset).unwrap_or(0),
                    pid: o.pid,
                    retprobe: o.retprobe.unwrap_or(false),
                    cookie: u64_of(o.cookie),
                },
            )
        })
    }

    #[napi]
    pub fn attach_kprobe(&self, prog: String, o: KprobeOptions) -> Result<NativeLink> {
        self.link(&prog, |p| {
            core::attach::perf_event::attach_kprobe(
                p.fd()?,
                &core::attach::perf_event::KprobeOptions {
                    symbol: &o.symbol,
                    offset: u64_of(o.offset).unwrap_or(0),
                    retprobe: o.retprobe.unwrap_or(false),
                    cookie: u64_of(o.cookie),
                },
            )
        })
    }

    #[napi]
    pub fn attach_fentry(
        &self,
        prog: String,
        target_fn: Option<String>,
        cookie: Option<BigInt>,
    ) -> Result<NativeLink> {
        let btf = self.btf_path.clone();
        self.link(&prog, |p| {
            core::attach::tracing::attach_tracing(
                p,
                target_fn.as_deref(),
                u64_of(cookie),
                btf.as_deref(),
            )
        })
    }

    #[napi]
    pub fn attach_multi(&self, prog: String) -> Result<NativeMultiLink> {
        let btf = self.btf_path.clone();
        self.with(|o| core::attach::auto::attach_multi_auto(o.program(&prog)?, btf.as_deref()))
            .map(NativeMultiLink::new)
    }

    #[napi]
    pub fn attach_kprobe_multi(
        &self,
        prog: String,
        o: KprobeMultiOptions,
    ) -> Result<NativeMultiLink> {
        self.with(|obj| MultiRequest::Kprobe(o).attach(obj, &prog, None, None))
            .map(NativeMultiLink::new)
    }

    #[napi]
    pub fn attach_uprobe_multi(
        &self,
        prog: String,
        o: UprobeMultiOptions,
    ) -> Result<NativeMultiLink> {
        self.with(|obj| MultiRequest::Uprobe(o).attach(obj, &prog, None, None))
            .map(NativeMultiLink::new)
    }

    /// The batch attaches off the JS thread, updating `progress` while a fallback works
    /// per target (perf kprobes/uprobes, or one fentry program per function). Other calls
    /// on this object wait for it.
    #[napi(ts_return_type = "Promise<NativeMultiLink>")]
    pub fn attach_kprobe_multi_async(
        &self,
        prog: String,
        o: KprobeMultiOptions,
        progress: &NativeProgress,
    ) -> AsyncTask<MultiAttachTask> {
        self.multi_task(prog, MultiRequest::Kprobe(o), progress)
    }

    #[napi(ts_return_type = "Promise<NativeMultiLink>")]
    pub fn attach_uprobe_multi_async(
        &self,
        prog: String,
        o: UprobeMultiOptions,
        progress: &NativeProgress,
    ) -> AsyncTask<MultiAttachTask> {
        self.multi_task(prog, MultiRequest::Uprobe(o), progress)
    }

    #[napi(ts_return_type = "Promise<NativeMultiLink>")]
    pub fn attach_tracing_multi_async(
        &self,
        prog: String,
        o: TracingMultiOptions,
        progress: &NativeProgress,
    ) -> AsyncTask<MultiAttachTask> {
        self.multi_task(prog, MultiRequest::Tracing(o), progress)
    }

    #[napi]
    pub fn attach_tracing_multi(
        &self,
        prog: String,
        o: TracingMultiOptions,
    ) -> Result<NativeMultiLink> {
        let btf = self.btf_path.clone();
        self.with(|obj| MultiRequest::Tracing(o).attach(obj, &prog, btf.as_deref(), None))
            .map(NativeMultiLink::new)
    }

    #[napi]
    pub fn map_lookup(&self, map: String, key: Uint8Array) -> Result<Option<Buffer>> {
        self.with(|o| o.map(&map)?.lookup(&key))
            .map(|v| v.map(Buffer::from))
    }

    #[napi]
    pub fn map_update(
        &self,
        map: String,
        key: Uint8Array,
        value: Uint8Array,
        flags: Option<u32>,
    ) -> Result<()> {
        self.with(|o| {
            o.map(&map)?
                .update(&key, &value, u64::from(flags.unwrap_or(0)))
        })
    }

    #[napi]
    pub fn map_delete(&self, map: String, key: Uint8Array) -> Result<bool> {
        self.with(|o| o.map(&map)?.delete(&key))
    }

    #[napi]
    pub fn map_keys(&self, map: String) -> Result<Vec<Buffer>> {
        self.with(|o| o.map(&map)?.keys())
            .map(|keys| keys.into_iter().map(Buffer::from).collect())
    }

    #[napi]
    pub fn ringbuf(&self, map: String) -> Result<NativeRingBuf> {
        self.with(|o| core::RingBuf::new(o.map(&map)?))
            .map(|rb| NativeRingBuf {
                ring: Mutex::new(Some(Arc::new(rb))),
            })
    }
}

/// `symbols`: a glob string or exact names.
fn selection(
    glob: Option<String>,
    names: Option<Vec<String>>,
) -> Option<core::symbols::pattern::Selection> {
    use core::symbols::pattern::Selection;
    match (glob, names) {
        (Some(g), _) => Some(Selection::Glob(g)),
        (None, Some(n)) => Some(Selection::Names(n)),
        (None, None) => None,
    }
}

fn u64s(v: Option<&[BigInt]>) -> Option<Vec<u64>> {
    v.map(|v| v.iter().map(|b| b.get_u64().1).collect())
}

fn tracing_options<'a>(
    o: &TracingMultiOptions,
    btf_path: Option<&'a std::path::Path>,
    progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
) -> core::attach::tracing_multi::TracingMultiOptions<'a> {
    core::attach::tracing_multi::TracingMultiOptions {
        selection: selection(o.pattern.clone(), o.names.clone()),
        btf_ids: o.btf_ids.clone(),
        module: o.module.clone(),
        cookies: u64s(o.cookies.as_deref()),
        fallback: o.fallback.unwrap_or(true),
        force_fallback: o.force_fallback.unwrap_or(false),
        btf_path,
        progress,
    }
}

#[napi(object)]
pub struct KprobeMultiOptions {
    pub pattern: Option<String>,
    pub names: Option<Vec<String>>,
    pub addresses: Option<Vec<BigInt>>,
    pub cookies: Option<Vec<BigInt>>,
    pub retprobe: Option<bool>,
    pub session: Option<bool>,
    pub module: Option<String>,
    pub strict: Option<bool>,
    pub fallback: Option<bool>,
    pub force_fallback: Option<bool>,
}

#[napi(object)]
pub struct UprobeMultiOptions {
    pub binary: String,
    pub pattern: Option<String>,
    pub names: Option<Vec<String>>,
    pub offsets: Option<Vec<BigInt>>,
    pub pid: Option<i32>,
    pub cookies: Option<Vec<BigInt>>,
    pub retprobe: Option<bool>,
    pub session: Option<bool>,
    pub include_clones: Option<bool>,
    pub fallback: Option<bool>,
    pub force_fallback: Option<bool>,
}

#[napi(object)]
pub struct TracingMultiOptions {
    pub pattern: Option<String>,
    pub names: Option<Vec<String>>,
    pub btf_ids: Option<Vec<u32>>,
    pub module: Option<String>,
    pub cookies: Option<Vec<BigInt>>,
    pub fallback: Option<bool>,
    pub force_fallback: Option<bool>,
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

/// A batch attach, by kind, with its options as JS gave them.
pub enum MultiRequest {
    Kprobe(KprobeMultiOptions),
    Uprobe(UprobeMultiOptions),
    Tracing(TracingMultiOptions),
}

impl MultiRequest {
    fn attach(
        &self,
        obj: &core::Object,
        prog: &str,
        btf_path: Option<&std::path::Path>,
        progress: Option<&(dyn Fn(usize, usize) + Sync)>,
    ) -> core::Result<core::attach::multi::MultiLink> {
        let prog = obj.program(prog)?;
        match self {
            MultiRequest::Kprobe(o) => {
                let opts = core::attach::kprobe_multi::KprobeMultiOptions {
                    selection: selection(o.pattern.clone(), o.names.clone()),
                    addresses: u64s(o.addresses.as_deref()),
                    cookies: u64s(o.cookies.as_deref()),
                    retprobe: o.retprobe.unwrap_or(false),
                    session: o.session.unwrap_or(false),
                    module: o.module.clone(),
                    strict: o.strict.unwrap_or(false),
                    fallback: o.fallback.unwrap_or(true),
                    force_fallback: o.force_fallback.unwrap_or(false),
                    progress,
                };
                core::attach::kprobe_multi::attach_kprobe_multi(prog, &opts)
            }
            MultiRequest::Uprobe(o) => {
                let opts = core::attach::uprobe_multi::UprobeMultiOptions {
                    binary: &o.binary,
                    selection: selection(o.pattern.clone(), o.names.clone()),
                    offsets: u64s(o.offsets.as_deref()),
                    pid: o.pid,
                    cookies: u64s(o.cookies.as_deref()),
                    retprobe: o.retprobe.unwrap_or(false),
                    session: o.session.unwrap_or(false),
                    include_clones: o.include_clones.unwrap_or(false),
                    fallback: o.fallback.unwrap_or(true),
                    force_fallback: o.force_fallback.unwrap_or(false),
                    progress,
                };
                core::attach::uprobe_multi::attach_uprobe_multi(prog, &opts)
            }
            MultiRequest::Tracing(o) => {
                let opts = tracing_options(o, btf_path, progress);
                core::attach::tracing_multi::attach_tracing_multi(prog, &opts)
            }
        }
    }
}

impl NativeObject {
    fn multi_task(
        &self,
        prog: String,
        request: MultiRequest,
        progress: &NativeProgress,
    ) -> AsyncTask<MultiAttachTask> {
        AsyncTask::new(MultiAttachTask {
            object: self.inner.clone(),
            btf_path: self.btf_path.clone(),
            prog,
            request,
            progress: progress.counts.clone(),
        })
    }
}

pub struct MultiAttachTask {
    object: Arc<Mutex<Option<core::Object>>>,
    btf_path: Option<PathBuf>,
    prog: String,
    request: MultiRequest,
    progress: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Task for MultiAttachTask {
    type Output = core::attach::multi::MultiLink;
    type JsValue = NativeMultiLink;

    fn compute(&mut self) -> Result<Self::Output> {
        let guard = self.object.lock().map_err(|_| closed("the object"))?;
        let obj = guard.as_ref().ok_or_else(|| closed("the object"))?;
        let counts = self.progress.clone();
        let report = move |done: usize, total: usize| {
            counts.1.store(total, Ordering::Relaxed);
            counts.0.store(done, Ordering::Relaxed);
        };
        self.request
            .attach(obj, &self.prog, self.btf_path.as_deref(), Some(&report))
            .map_err(js_err)
    }

    fn resolve(&mut self, _env: Env, link: Self::Output) -> Result<NativeMultiLink> {
        Ok(NativeMultiLink::new(link))
    }
}

#[napi(object)]
pub struct MultiTarget {
    pub name: String,
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

#[napi]
pub struct NativeMultiLink {
    inner: Mutex<Option<core::attach::multi::MultiLink>>,
    mechanism: String,
}

impl NativeMultiLink {
    fn new(link: core::attach::multi::MultiLink) -> Self {
        NativeMultiLink {
            mechanism: link.mechanism.to_string(),
            inner: Mutex::new(Some(link)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&core::attach::multi::MultiLink) -> T) -> Result<T> {
        let guard = self.inner.lock().map_err(|_| closed("the link"))?;
        guard.as_ref().map(f).ok_or_else(|| closed("the link"))
    }
}

#[napi]
impl NativeMultiLink {
    #[napi(getter)]
    pub fn mechanism(&self) -> String {
        self.mechanism.clone()
    }

    /// The file of a uprobe link's targets.
    #[napi]
    pub fn path(&self) -> Result<Option<String>> {
        self.with(|l| l.path.as_ref().map(|p| p.display().to_string()))
    }

    #[napi]
    pub fn targets(&self) -> Result<Vec<MultiTarget>> {
        self.with(|l| {
            l.targets
                .iter()
                .map(|t| MultiTarget {
                    name: t.name.clone(),
                    address: BigInt::from(t.address),
                    cookie: BigInt::from(t.cookie),
                })
                .collect()
        })
    }

    #[napi]
    pub fn skipped(&self) -> Result<Vec<MultiSkipped>> {
        self.with(|l| {
            l.skipped
                .iter()
                .map(|s| MultiSkipped {
                    name: s.name.clone(),
                    reason: s.reason.clone(),
                })
                .collect()
        })
    }

    #[napi]
    pub fn kernel_links(&self) -> Result<u32> {
        self.with(|l| l.kernel_links() as u32)
    }

    #[napi]
    pub fn stats(&self) -> Result<MultiStats> {
        self.with(|l| {
            let s = l.stats();
            MultiStats {
                missed: s.missed.map(BigInt::from),
                recursion_misses: BigInt::from(s.recursion_misses),
                run_count: s.run_count.map(BigInt::from),
            }
        })
    }

    /// Detaches every target; targets and skipped stay readable. Idempotent.
    #[napi]
    pub fn close(&self) {
        if let Ok(mut g) = self.inner.lock() {
            if let Some(link) = g.as_mut() {
                link.detach();
            }
        }
    }
}

#[napi(object)]
pub struct LinkInfo {
    pub kind: String,
    pub target: String,
    pub link_type: String,
    pub id: u32,
    pub prog_id: u32,
    pub cookie: Option<BigInt>,
}

#[napi]
pub struct NativeLink {
    inner: Mutex<Option<core::Link>>,
}

impl NativeLink {
    fn new(link: core::Link) -> Self {
        NativeLink {
            inner: Mutex::new(Some(link)),
        }
    }
}

#[napi]
impl NativeLink {
    #[napi]
    pub fn info(&self) -> Result<LinkInfo> {
        let guard = self.inner.lock().map_err(|_| closed("the link"))?;
        let link = guard.as_ref().ok_or_else(|| closed("the link"))?;
        let info = link.info().map_err(js_err)?;
        Ok(LinkInfo {
            kind: link.kind.to_string(),
            target: link.target.clone(),
            link_type: info.link_type.to_string(),
            id: info.id,
            prog_id: info.prog_id,
            cookie: link.cookie.map(BigInt::from),
        })
    }

    /// Detaches. Idempotent.
    #[napi]
    pub fn close(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.take();
        }
    }
}

#[napi]
pub struct NativeRingBuf {
    /// `None` once closed. A poller in flight holds its own clone, so the mapping and
    /// fds go away when it returns, never under it.
    ring: Mutex<Option<Arc<core::RingBuf>>>,
}

impl NativeRingBuf {
    fn ring(&self) -> Result<Arc<core::RingBuf>> {
        self.ring
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .ok_or_else(|| closed("the ring buffer"))
    }
}

#[napi]
impl NativeRingBuf {
    /// Resolves with the next batch (records in core's batch format), or `null` once
    /// woken or closed. The wait runs on a blocking thread, never on the JS thread.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn next_batch<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Option<Buffer>>> {
        let ring = self.ring()?;
        env.spawn_future(async move {
            let batch = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                let n = ring.next_batch(&mut out, MAX_BATCH_BYTES)?;
                Ok::<_, core::Error>((n > 0).then_some(out))
            })
            .await
            .map_err(|e| Error::from_reason(format!("ring-buffer poller failed: {e}")))?
            .map_err(js_err)?;
            Ok(batch.map(Buffer::from))
        })
    }

    /// Drains what is available now without waiting.
    #[napi]
    pub fn try_batch(&self) -> Result<Option<Buffer>> {
        let mut out = Vec::new();
        let n = self
            .ring()?
            .drain_into(&mut out, MAX_BATCH_BYTES)
            .map_err(js_err)?;
        Ok((n > 0).then(|| Buffer::from(out)))
    }

    /// Makes a pending `nextBatch` resolve with `null`.
    #[napi]
    pub fn wake(&self) {
        if let Ok(ring) = self.ring() {
            ring.wake();
        }
    }

    /// Ends iteration; the mapping is released once no poller holds it. Idempotent.
    #[napi]
    pub fn close(&self) {
        if let Some(ring) = self.ring.lock().ok().and_then(|mut r| r.take()) {
            ring.close();
        }
    }
}

#[napi(object)]
pub struct Features {
    pub kernel: String,
    pub btf: bool,
    pub ringbuf: bool,
    pub bpf_cookie: bool,
    pub kprobe: bool,
    pub kprobe_multi: bool,
    pub kprobe_session: bool,
    pub uprobe_multi: bool,
    pub uprobe_session: bool,
    pub fentry: bool,
    pub tracing_multi: bool,
}

pub struct FeaturesTask;

impl Task for FeaturesTask {
    type Output = core::features::Features;
    type JsValue = Features;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(core::features::features().clone())
    }

    fn resolve(&mut self, _env: Env, f: Self::Output) -> Result<Features> {
        Ok(Features {
            kernel: f.kernel,
            btf: f.btf,
            ringbuf: f.ringbuf,
            bpf_cookie: f.bpf_cookie,
            kprobe: f.kprobe,
            kprobe_multi: f.kprobe_multi,
            kprobe_session: f.kprobe_session,
            uprobe_multi: f.uprobe_multi,
            uprobe_session: f.uprobe_session,
            fentry: f.fentry,
            tracing_multi: f.tracing_multi,
        })
    }
}

#[napi]
pub fn features() -> AsyncTask<FeaturesTask> {
    AsyncTask::new(FeaturesTask)
}

#[napi]
pub fn possible_cpus() -> Result<u32> {
    core::maps::possible_cpus()
        .map(|n| n as u32)
        .map_err(js_err)
}

#[napi]
pub fn missing_capabilities() -> Vec<String> {
    core::caps::missing_caps()
        .into_iter()
        .map(String::from)
        .collect()
}
