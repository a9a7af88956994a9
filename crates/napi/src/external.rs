//! ArrayBuffers over memory the core has mapped (ring and perf buffers, data sections):
//! V8 reads it in place, and the buffer keeps the mapping's owner alive until it is
//! collected, so it never points at unmapped memory.

use napi::bindgen_prelude::*;
use napi::sys;

/// The finalizer of an external ArrayBuffer: drops what kept its memory mapped.
unsafe extern "C" fn release<K>(
    _env: sys::napi_env,
    _data: *mut std::ffi::c_void,
    hint: *mut std::ffi::c_void,
) {
    // SAFETY: `hint` is the Box `external_arraybuffer` made for this buffer, dropped only here.
    drop(unsafe { Box::from_raw(hint as *mut K) });
}

/// An ArrayBuffer over `len` bytes at `ptr`, keeping `keep` (the mapping's owner) until it
/// is collected; `None` where the runtime allows no external buffers. `what` names the
/// buffer in errors. The caller guarantees the memory stays mapped while `keep` lives.
pub(crate) fn external_arraybuffer<K>(
    env: &Env,
    ptr: *const u8,
    len: usize,
    keep: K,
    what: &str,
) -> Result<Option<sys::napi_value>> {
    let hint = Box::into_raw(Box::new(keep));
    let mut value = std::ptr::null_mut();
    // SAFETY: the caller keeps the memory mapped while `keep` lives; `hint` is handed to
    // the finalizer, which frees it.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env.raw(),
            ptr as *mut std::ffi::c_void,
            len,
            Some(release::<K>),
            hint.cast(),
            &mut value,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: not handed to V8: ours to free.
        drop(unsafe { Box::from_raw(hint) });
        if status == sys::Status::napi_no_external_buffers_allowed {
            return Ok(None);
        }
        return Err(Error::new(
            Status::GenericFailure,
            format!("creating {what}'s ArrayBuffer failed (napi status {status})"),
        ));
    }
    Ok(Some(value))
}
