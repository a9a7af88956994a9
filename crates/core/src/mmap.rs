//! A shared memory mapping of a kernel object's fd (ring buffers, perf events), unmapped
//! on drop.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

pub(crate) struct Mapping {
    pub(crate) ptr: *mut libc::c_void,
    pub(crate) len: usize,
}

impl Mapping {
    pub(crate) fn new(
        fd: BorrowedFd<'_>,
        len: usize,
        prot: i32,
        offset: usize,
    ) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the ring's fd; the kernel validates length,
        // offset and protection for ring-buffer maps.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` come from a successful mmap that nothing else unmaps.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}
