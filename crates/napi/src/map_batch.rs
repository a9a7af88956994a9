//! Many entries of a map per call (the kernel's `BPF_MAP_*_BATCH`, key by key where it has
//! none): keys and values cross as two contiguous buffers, never one JS object per entry.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

use crate::map::{update_flags, NativeMap};
use crate::options::{int_of, Checked};

/// Entries of a map: `count` keys of `keySize` bytes back to back in `keys`, and their
/// values in `values` (per-CPU maps: one 8-byte-aligned slot per possible CPU each).
#[napi(object)]
pub struct MapEntries {
    pub keys: Buffer,
    pub values: Buffer,
    pub count: u32,
    /// Whether the kernel's batch commands read them (else key by key).
    pub batched: bool,
}

fn entries(e: core::maps::batch::Entries) -> Checked<MapEntries> {
    Ok(MapEntries {
        count: count(e.count)?,
        keys: e.keys.into(),
        values: e.values.into(),
        batched: e.batched,
    })
}

fn count(n: usize) -> Checked<u32> {
    u32::try_from(n).map_err(|_| core::Error::range("count", n, format!("0..={}", u32::MAX)))
}

fn batch_size(v: Option<f64>) -> Checked<Option<u32>> {
    v.map(|v| int_of("batchSize", v, 1, u32::MAX.into()).map(|n| n as u32))
        .transpose()
}

#[napi]
impl NativeMap {
    /// Every entry (`BPF_MAP_LOOKUP_BATCH` to the end), `batchSize` per kernel call.
    #[napi]
    pub fn lookup_batch(&self, env: Env, batch: Option<f64>) -> Result<MapEntries> {
        self.with(&env, "lookupBatch", |m| {
            entries(m.lookup_batch(batch_size(batch)?)?)
        })
    }

    /// Every entry, taken out as it is read (`BPF_MAP_LOOKUP_AND_DELETE_BATCH`).
    #[napi]
    pub fn lookup_and_delete_batch(&self, env: Env, batch: Option<f64>) -> Result<MapEntries> {
        self.with(&env, "lookupAndDeleteBatch", |m| {
            entries(m.lookup_and_delete_batch(batch_size(batch)?)?)
        })
    }

    /// `keys[i]` → `values[i]` (`BPF_MAP_UPDATE_BATCH`); returns how many were written.
    #[napi]
    pub fn update_batch(
        &self,
        env: Env,
        keys: Uint8Array,
        values: Uint8Array,
        flags: Option<u32>,
    ) -> Result<u32> {
        self.with(&env, "updateBatch", |m| {
            count(m.update_batch(&keys, &values, update_flags(flags)?)?)
        })
    }

    /// Deletes the keys (`BPF_MAP_DELETE_BATCH`), skipping absent ones; returns how many
    /// were deleted.
    #[napi]
    pub fn delete_batch(&self, env: Env, keys: Uint8Array) -> Result<u32> {
        self.with(&env, "deleteBatch", |m| count(m.delete_batch(&keys)?))
    }

    /// Empties the map (arrays: zeroes every value); returns how many elements.
    #[napi]
    pub fn clear(&self, env: Env) -> Result<u32> {
        self.with(&env, "clear", |m| count(m.clear()?))
    }
}
