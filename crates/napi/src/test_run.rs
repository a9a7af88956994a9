//! `program.testRun()`: `BPF_PROG_TEST_RUN`, off the JS thread (`repeat` may run a
//! program millions of times).

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{to_js, CoreTask, Ctx};
use crate::object::NativeObject;

#[napi(object)]
pub struct TestRunOptions {
    pub data: Option<Buffer>,
    pub ctx: Option<Buffer>,
    pub repeat: Option<u32>,
    pub data_out_size: Option<u32>,
    pub cpu: Option<u32>,
}

#[napi(object)]
pub struct TestRunOutput {
    pub retval: u32,
    pub data: Buffer,
    pub ctx: Buffer,
    /// Nanoseconds one run took, on average.
    pub duration: u32,
}

#[napi]
impl NativeObject {
    #[napi(ts_return_type = "Promise<TestRunOutput>")]
    pub fn test_run(
        &self,
        env: Env,
        prog: String,
        options: TestRunOptions,
    ) -> Result<AsyncTask<CoreTask<TestRunOutput>>> {
        let ctx = Ctx::op("testRun").program(&prog);
        let obj = self.shared.get(&ctx).map_err(|e| to_js(&env, e))?;
        let run = core::test_run::TestRun {
            data: options.data.map(|b| b.to_vec()),
            ctx: options.ctx.map(|b| b.to_vec()),
            repeat: options.repeat.unwrap_or(0),
            data_out_size: options.data_out_size,
            cpu: options.cpu,
        };
        Ok(AsyncTask::new(CoreTask::new(ctx, move || {
            let out = obj.program(&prog)?.test_run(&run)?;
            Ok(TestRunOutput {
                retval: out.retval,
                data: out.data.into(),
                ctx: out.ctx.into(),
                duration: out.duration_ns,
            })
        })))
    }
}
