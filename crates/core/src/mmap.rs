//! A shared memory mapping of a kernel object's fd (ring buffers, perf events, data-section
//! maps), unmapped on drop.

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

/// `BPF_F_RDONLY` (map flags): user space may not write the map's values.
const BPF_F_RDONLY: u32 = 1 << 3;

/// The one value of an mmapable array map (a data section's: `.data`, `.bss`, `.rodata`)
/// mapped shared: what user space reads and writes there, BPF programs see at once, and
/// the other way round. Read-only when the map is frozen or `BPF_F_RDONLY`. The mapping
/// holds the kernel map alive until dropped, however the map's fd is closed.
pub struct MapValue {
    mapping: Mapping,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is plain shared memory (BPF programs on every CPU use it anyway);
// it hands out a pointer, never a Rust reference into it, and unmaps once, on drop.
unsafe impl Send for MapValue {}
unsafe impl Sync for MapValue {}

impl MapValue {
    /// Maps `map`'s value: `frozen` says it was frozen (`.rodata`), so only read-only
    /// mappings are allowed. The map must be an mmapable single-entry array.
    pub(crate) fn new(map: &crate::Map, frozen: bool) -> io::Result<Self> {
        let writable = !frozen && map.flags & BPF_F_RDONLY == 0;
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let len = map.value_size as usize;
        let mapping = Mapping::new(map.fd(), len, prot, 0)?;
        Ok(MapValue {
            mapping,
            len,
            writable,
        })
    }

    /// Where the value starts; `len()` bytes, writable when `writable()`.
    pub fn as_ptr(&self) -> *mut u8 {
        self.mapping.ptr.cast()
    }

    /// The value's size (the map's value size; the mapping is rounded up to pages).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The value's bytes now (programs may be writing them meanwhile).
    pub fn read(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        // SAFETY: `len` bytes are mapped readable at `ptr` while `self` lives; `out` is ours.
        unsafe { std::ptr::copy_nonoverlapping(self.as_ptr(), out.as_mut_ptr(), self.len) };
        out
    }
}
