//! Core errors as real JS errors: an `Error` whose message is plain text and whose
//! properties carry `code`, `errno`, `verifierLog`, `operation`, the subject (`program`,
//! `map`, `symbol`, `path`) and `cause`; the facade turns it into a `BpfError`. A panic on
//! any path JS can reach is caught here and becomes `INTERNAL`, never an abort.

use std::panic::{catch_unwind, AssertUnwindSafe};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;
use nodebpf_core::error::Subject;

/// The marker property the facade recognizes nodebpf's errors by.
const MARKER: &str = "nodebpfCode";

/// What a call was doing, and on what: filled into errors where the core left it out.
#[derive(Clone, Default)]
pub struct Ctx {
    pub operation: &'static str,
    pub subject: Subject,
}

impl Ctx {
    pub fn op(operation: &'static str) -> Self {
        Ctx {
            operation,
            subject: Subject::default(),
        }
    }

    pub fn program(mut self, name: &str) -> Self {
        self.subject.program = Some(name.to_string());
        self
    }

    pub fn map(mut self, name: &str) -> Self {
        self.subject.map = Some(name.to_string());
        self
    }

    pub fn symbol(mut self, name: Option<&str>) -> Self {
        self.subject.symbol = name.map(str::to_string);
        self
    }

    pub fn path(mut self, path: Option<&str>) -> Self {
        self.subject.path = path.map(str::to_string);
        self
    }

    fn fill(&self, mut e: core::Error) -> core::Error {
        let s = &mut e.subject;
        for (field, ours) in [
            (&mut s.program, &self.subject.program),
            (&mut s.map, &self.subject.map),
            (&mut s.symbol, &self.subject.symbol),
            (&mut s.path, &self.subject.path),
        ] {
            if field.is_none() {
                field.clone_from(ours);
            }
        }
        e
    }
}

/// A result whose error is on its way to JS.
pub type Outcome<T> = std::result::Result<T, Failure>;

/// An error on its way to JS, with the operation it came from.
pub struct Failure {
    pub error: core::Error,
    pub operation: &'static str,
}

impl Ctx {
    pub fn fail(&self, e: core::Error) -> Failure {
        Failure {
            error: self.fill(e),
            operation: self.operation,
        }
    }
}

/// Runs `f`, turning a panic into `INTERNAL`. For work off the JS thread, whose errors
/// reach JS later through [`to_js`].
pub fn catch<T>(ctx: &Ctx, f: impl FnOnce() -> core::Result<T>) -> Outcome<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| ctx.fail(e)),
        Err(panic) => Err(ctx.fail(internal(panic.as_ref()))),
    }
}

/// Runs `f` on the JS thread: a core error or a panic is thrown as a nodebpf error.
pub fn call<T>(env: &Env, ctx: &Ctx, f: impl FnOnce() -> core::Result<T>) -> Result<T> {
    catch(ctx, f).map_err(|failure| to_js(env, failure))
}

fn internal(panic: &(dyn std::any::Any + Send)) -> core::Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_string());
    core::Error::new(
        core::Code::Internal,
        format!("internal error in nodebpf (please report it): {what}"),
    )
}

/// Builds the JS error for a failure; if building it fails, napi's own error is thrown.
pub fn to_js(env: &Env, f: Failure) -> Error {
    match build(env, &f) {
        Ok(obj) => Error::from(obj.to_unknown()),
        Err(e) => e,
    }
}

fn build<'e>(env: &'e Env, f: &Failure) -> Result<Object<'e>> {
    let e = &f.error;
    let mut obj = env.create_error(Error::new(Status::GenericFailure, e.message.clone()))?;
    obj.set_named_property(MARKER, e.code.as_str())?;
    obj.set_named_property("operation", f.operation)?;
    if let Some(errno) = e.errno {
        obj.set_named_property("errno", errno)?;
        // The OS error as the cause, as Node words it.
        let os = std::io::Error::from_raw_os_error(errno).to_string();
        let mut cause = env.create_error(Error::new(Status::GenericFailure, os))?;
        cause.set_named_property("errno", errno)?;
        obj.set_named_property("cause", cause)?;
    }
    if let Some(log) = &e.verifier_log {
        obj.set_named_property("verifierLog", log.as_str())?;
    }
    let s = &e.subject;
    for (key, value) in [
        ("program", &s.program),
        ("map", &s.map),
        ("symbol", &s.symbol),
        ("path", &s.path),
    ] {
        if let Some(v) = value {
            obj.set_named_property(key, v.as_str())?;
        }
    }
    Ok(obj)
}

/// A `CLOSED` failure for `what` ("the object", "the link", ...).
pub fn closed(ctx: &Ctx, what: &str) -> Failure {
    ctx.fail(core::Error::new(
        core::Code::Closed,
        format!("{what} is closed"),
    ))
}

/// Core work run off the JS thread (libuv's pool); its error, or a panic, is turned into
/// a nodebpf error back on the JS thread.
pub struct CoreTask<T: Send + 'static> {
    ctx: Ctx,
    work: Option<Box<dyn FnOnce() -> core::Result<T> + Send>>,
}

impl<T: Send + 'static> CoreTask<T> {
    pub fn new(ctx: Ctx, work: impl FnOnce() -> core::Result<T> + Send + 'static) -> Self {
        CoreTask {
            ctx,
            work: Some(Box::new(work)),
        }
    }
}

impl<T: Send + ToNapiValue + TypeName + 'static> Task for CoreTask<T> {
    type Output = Outcome<T>;
    type JsValue = T;

    fn compute(&mut self) -> Result<Self::Output> {
        let work = self.work.take();
        Ok(catch(&self.ctx, || match work {
            Some(w) => w(),
            None => Err(core::Error::new(core::Code::Internal, "a task ran twice")),
        }))
    }

    fn resolve(&mut self, env: Env, out: Self::Output) -> Result<T> {
        out.map_err(|f| to_js(&env, f))
    }
}

/// Every stable error code, for the test that holds the TypeScript union to it.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    core::Code::ALL.iter().map(|c| c.as_str()).collect()
}

/// Panics inside the boundary's guard, so the suite can check that a panic becomes a
/// `BpfError` `INTERNAL` and the process lives on. Not part of the API.
#[napi(js_name = "__panicForTests")]
pub fn panic_for_tests(env: Env) -> Result<()> {
    call(&env, &Ctx::op("__panicForTests"), || -> core::Result<()> {
        panic!("a panic on purpose")
    })
}
