//! Map reads and writes, as bytes: the facade's codecs check and encode keys and values.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::Ctx;
use crate::object::NativeObject;

/// `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`: the update flags a map takes.
const MAX_UPDATE_FLAG: u32 = 2;

#[napi]
impl NativeObject {
    #[napi]
    pub fn map_lookup(&self, env: Env, map: String, key: Uint8Array) -> Result<Option<Buffer>> {
        self.with(&env, &Ctx::op("lookup").map(&map), |o| {
            o.map(&map)?.lookup(&key)
        })
        .map(|v| v.map(Buffer::from))
    }

    #[napi]
    pub fn map_update(
        &self,
        env: Env,
        map: String,
        key: Uint8Array,
        value: Uint8Array,
        flags: Option<u32>,
    ) -> Result<()> {
        self.with(&env, &Ctx::op("update").map(&map), |o| {
            let flags = flags.unwrap_or(0);
            if flags > MAX_UPDATE_FLAG {
                return Err(nodebpf_core::Error::range(
                    "flags",
                    flags,
                    format!("0..={MAX_UPDATE_FLAG}"),
                ));
            }
            o.map(&map)?.update(&key, &value, u64::from(flags))
        })
    }

    #[napi]
    pub fn map_delete(&self, env: Env, map: String, key: Uint8Array) -> Result<bool> {
        self.with(&env, &Ctx::op("delete").map(&map), |o| {
            o.map(&map)?.delete(&key)
        })
    }

    #[napi]
    pub fn map_keys(&self, env: Env, map: String) -> Result<Vec<Buffer>> {
        self.with(&env, &Ctx::op("keys").map(&map), |o| o.map(&map)?.keys())
            .map(|keys| keys.into_iter().map(Buffer::from).collect())
    }
}
