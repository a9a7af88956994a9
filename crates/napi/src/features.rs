//! `features()`: the core's feature table as a JS object, its fields generated from the
//! table (`for_each_feature!`), so the TypeScript type comes from the same rows.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{CoreTask, Ctx};

macro_rules! features_object {
    ($($field:ident, $js:literal, $what:literal, $needs:literal;)*) => {
        /// What this kernel supports, probed once per process by trying it.
        #[napi(object)]
        pub struct Features {
            /// `uname -r`.
            pub kernel: String,
            $(pub $field: bool,)*
        }

        impl From<&core::features::Features> for Features {
            fn from(f: &core::features::Features) -> Self {
                Features {
                    kernel: f.kernel.clone(),
                    $($field: f.$field,)*
                }
            }
        }
    };
}
core::for_each_feature!(features_object);

/// Rejects with EPERM, naming the capabilities, when the process cannot probe.
#[napi(ts_return_type = "Promise<Features>")]
pub fn features() -> AsyncTask<CoreTask<Features>> {
    AsyncTask::new(CoreTask::new(Ctx::op("features"), || {
        core::features::probe().map(Features::from)
    }))
}

/// A row of the feature table: a feature by its name in `Features`, what it is, and
/// what kernel has it.
#[napi(object)]
pub struct FeatureRow {
    pub name: String,
    pub what: String,
    pub needs: String,
}

/// The feature table, in order.
#[napi]
pub fn feature_table() -> Vec<FeatureRow> {
    core::features::Features::table()
        .iter()
        .map(|(name, what, needs)| FeatureRow {
            name: name.to_string(),
            what: what.to_string(),
            needs: needs.to_string(),
        })
        .collect()
}

#[napi]
pub fn possible_cpus(env: Env) -> Result<u32> {
    crate::errors::call(&env, &Ctx::op("possibleCpus"), || {
        core::maps::possible_cpus().map(|n| n as u32)
    })
}

#[napi]
pub fn missing_capabilities() -> Vec<String> {
    core::caps::missing_caps()
        .into_iter()
        .map(String::from)
        .collect()
}
