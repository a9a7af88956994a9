//! `globalData(section)`: a data section's map value (`.data`, `.bss`, ...) as an
//! ArrayBuffer over the memory the BPF programs use, so JS reads and writes the object's
//! global variables in place, as a libbpf skeleton does.
//!
//! Lifetime: the mapping is never unmapped while an ArrayBuffer over it can be read. The
//! buffer's finalizer holds the mapping (through a `Keep`), so a buffer outliving its
//! object keeps it mapped (and the kernel map with it) until collected; and the object's
//! `close()` detaches every buffer it handed out that is still alive, then lets the
//! mappings go at once, so a closed object's maps do not wait for the garbage collector.
//! A buffer is found again through a weak reference: each section has one ArrayBuffer at
//! a time, and one mapping for the object's life.

use std::ptr;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{call, to_js, Ctx};
use crate::external::external_arraybuffer;
use crate::object::NativeObject;

/// What keeps a section's mapping: one clone in the buffer's finalizer, one in the
/// object's list; emptied by `close()` once the buffer is detached.
type Keep = Arc<Mutex<Option<Arc<core::loader::MapValue>>>>;

/// A weak reference to a handed-out ArrayBuffer.
struct WeakRef(sys::napi_ref);

// SAFETY: made, read and deleted only on the JS thread (in calls given its Env); the
// object holding it merely passes through a worker when loaded.
unsafe impl Send for WeakRef {}

struct Handed {
    section: String,
    buffer: WeakRef,
    keep: Keep,
}

/// The ArrayBuffers an object handed out (see the module's notes).
#[derive(Default)]
pub struct Handouts(Mutex<Vec<Handed>>);

impl Handouts {
    /// The section's buffer, if it was handed out and is still alive.
    fn alive<'env>(&self, env: &'env Env, section: &str) -> Option<Unknown<'env>> {
        let list = self.0.lock().ok()?;
        let handed = list.iter().find(|h| h.section == section)?;
        let value = referenced(env, &handed.buffer)?;
        // SAFETY: a live value of this env, from its reference.
        Some(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
    }

    /// Detaches every live buffer and lets the mappings go (those whose buffer cannot be
    /// detached stay mapped until it is collected); deletes the references. `close()`.
    pub fn detach_all(&self, env: &Env) {
        let Ok(mut list) = self.0.lock() else {
            return;
        };
        for handed in list.drain(..) {
            let detached = match referenced(env, &handed.buffer) {
                Some(value) => {
                    // SAFETY: a live ArrayBuffer of this env.
                    let status = unsafe { sys::napi_detach_arraybuffer(env.raw(), value) };
                    status == sys::Status::napi_ok
                }
                // Collected: nothing can read it.
                None => true,
            };
            delete(env, handed.buffer);
            if detached {
                if let Ok(mut k) = handed.keep.lock() {
                    k.take();
                }
            }
        }
    }

    /// Deletes the references (the object is being collected; its buffers, if alive,
    /// keep their mappings until they are).
    pub fn forget(&self, env: &Env) {
        if let Ok(mut list) = self.0.lock() {
            for handed in list.drain(..) {
                delete(env, handed.buffer);
            }
        }
    }

    fn remember(&self, env: &Env, section: &str, buffer: WeakRef, keep: Keep) {
        let Ok(mut list) = self.0.lock() else {
            delete(env, buffer);
            return;
        };
        // The section's earlier buffer was collected (else it would have been returned).
        if let Some(at) = list.iter().position(|h| h.section == section) {
            delete(env, list.swap_remove(at).buffer);
        }
        list.push(Handed {
            section: section.to_string(),
            buffer,
            keep,
        });
    }
}

/// The value a weak reference still holds.
fn referenced(env: &Env, r: &WeakRef) -> Option<sys::napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: a reference made in this env and not deleted (deleting takes it by value).
    let status = unsafe { sys::napi_get_reference_value(env.raw(), r.0, &mut value) };
    (status == sys::Status::napi_ok && !value.is_null()).then_some(value)
}

fn delete(env: &Env, r: WeakRef) {
    // SAFETY: a reference made in this env, deleted once (it is taken by value).
    unsafe { sys::napi_delete_reference(env.raw(), r.0) };
}

/// An ArrayBuffer over the mapped value, keeping `keep` until collected, and a weak
/// reference to it; `None` where the runtime allows no external buffers.
fn external(
    env: &Env,
    value: &core::loader::MapValue,
    keep: Keep,
) -> Result<Option<(sys::napi_value, WeakRef)>> {
    // The memory stays mapped while `keep` holds it (`close()` empties it only once the
    // buffer is detached).
    let Some(buffer) =
        external_arraybuffer(env, value.as_ptr(), value.len(), keep, "a data section")?
    else {
        return Ok(None);
    };
    let mut weak = ptr::null_mut();
    // SAFETY: `buffer` is the ArrayBuffer just made in this env; count 0: a weak reference.
    let status = unsafe { sys::napi_create_reference(env.raw(), buffer, 0, &mut weak) };
    if status != sys::Status::napi_ok {
        return Err(Error::new(
            Status::GenericFailure,
            format!("referencing a data section's ArrayBuffer failed (napi status {status})"),
        ));
    }
    Ok(Some((buffer, WeakRef(weak))))
}

#[napi]
impl NativeObject {
    /// A data section's map value (`.data`, `.bss`, `.data.<name>`...) as an ArrayBuffer
    /// over the memory the programs use: what JS writes there the programs see at once,
    /// and the other way round. The same buffer while it is alive; detached by `close()`.
    /// A frozen section (`.rodata*`) is mapped read-only, and V8 cannot make a read-only
    /// ArrayBuffer (a store would fault the process), so its buffer is a copy (its
    /// contents never change): writing it changes the copy only. `null` when the map is
    /// not mmapable (kernels before 5.5) or the runtime allows no external buffers: then
    /// look up and update key 0 of the section's map. `ENOENT` for no such data section.
    #[napi(ts_return_type = "ArrayBuffer | null")]
    pub fn global_data<'env>(
        &self,
        env: &'env Env,
        section: String,
    ) -> Result<Option<Unknown<'env>>> {
        let ctx = Ctx::op("globalData").map(&section);
        let obj = self.shared.get(&ctx).map_err(|e| to_js(env, e))?;
        if let Some(buffer) = self.handouts.alive(env, &section) {
            return Ok(Some(buffer));
        }
        let Some(value) = call(env, &ctx, || obj.global_data(&section))? else {
            return Ok(None);
        };
        if !value.writable() {
            return ArrayBuffer::from_data(env, value.read()).map(|b| Some(b.to_unknown()));
        }
        let keep: Keep = Arc::new(Mutex::new(Some(value.clone())));
        let Some((buffer, weak)) = external(env, &value, keep.clone())? else {
            return Ok(None);
        };
        self.handouts.remember(env, &section, weak, keep);
        // SAFETY: `buffer` is the ArrayBuffer just made in this env.
        Ok(Some(unsafe {
            Unknown::from_raw_unchecked(env.raw(), buffer)
        }))
    }
}
