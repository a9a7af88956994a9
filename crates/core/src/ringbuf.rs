//! The BPF ring-buffer consumer. It reads records straight from the kernel's mapping,
//! sleeps in `epoll_wait` on the ring's fd, and publishes the consumer position once
//! per drained batch rather than once per record (each publish is a cache-line write
//! the producer side then has to read).
//!
//! Memory never grows with the producer: a drain copies at most `max_bytes`, and what
//! is not drained stays in the kernel ring, whose reservations then fail (the BPF side
//! sees and can count them).
//!
//! Zero copy: [`RingBuf::peek`] finds the committed records from the consumer position
//! on as one [`Span`] of the data area (which the kernel maps twice back to back, so a
//! span never wraps), and [`RingBuf::release`] gives them back to the kernel once read,
//! all of them or up to a record boundary. Records are read where the kernel wrote them,
//! through [`RingBuf::data`]: read-only memory.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{einval, Code, Error, Result};
use crate::maps::Map;
use crate::mmap::Mapping;
use crate::sys;
use crate::waiter::Waiter;

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HDR_SIZE: usize = 8;

/// Size of the per-record header in the batches [`RingBuf::drain_into`] fills:
/// `u32` little-endian length, 4 bytes of padding; data is then padded to 8 bytes.
pub const BATCH_HEADER: usize = 8;

/// Committed records from the consumer position on, in the data area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Byte offset of the first record's header in the data area.
    pub offset: usize,
    /// Bytes of headers and records (each record's header, then its data padded to 8).
    pub len: usize,
    /// Records not discarded by the BPF side.
    pub records: usize,
}

pub use crate::waiter::Wait;

/// A ring-buffer map's consumer slot, shared by every `RingBuf` made on the map: records
/// taken by two consumers would be split between them, or read twice.
#[derive(Default)]
pub struct Claim {
    pub(crate) taken: AtomicBool,
    /// Serializes walks, so a consumer being closed never walks beside its successor.
    walk: Mutex<()>,
}

pub struct RingBuf {
    name: String,
    /// The consumer page (read-write) and the producer page plus the data area, which
    /// the kernel maps twice in a row so no record ever wraps.
    consumer: Mapping,
    producer: Mapping,
    page: usize,
    mask: u64,
    claim: Arc<Claim>,
    waiter: Waiter,
    _fd: OwnedFd,
}

// SAFETY: the mappings are plain shared memory: the positions are only touched through
// atomics, and the record area is read only under the `walk` mutex.
unsafe impl Send for RingBuf {}
// SAFETY: see `Send`; `wake`/`close` only touch an eventfd and an atomic flag.
unsafe impl Sync for RingBuf {}

impl RingBuf {
    pub fn new(map: &Map) -> Result<Self> {
        if map.map_type != sys::BPF_MAP_TYPE_RINGBUF {
            return Err(einval(format!(
                "map '{}' is not a ring buffer (map type {})",
                map.name, map.map_type
            )));
        }
        if map.ring_claim.taken.swap(true, Ordering::AcqRel) {
            return Err(Error::new(
                Code::Busy,
                format!(
                    "ring buffer '{}' already has a consumer: close it first (records are \
                     delivered once, to one consumer)",
                    map.name
                ),
            ));
        }
        let claim = ClaimGuard(Some(map.ring_claim.clone()));
        let fd = map
            .fd()
            .try_clone_to_owned()
            .map_err(|e| Error::os("duplicating the ring-buffer fd", e))?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let size = map.max_entries as usize;
        let mmap_err = |e| Error::os(format!("mapping ring buffer '{}'", map.name), e);
        let consumer = Mapping::new(fd.as_fd(), page, libc::PROT_READ | libc::PROT_WRITE, 0)
            .map_err(mmap_err)?;
        let producer =
            Mapping::new(fd.as_fd(), page + 2 * size, libc::PROT_READ, page).map_err(mmap_err)?;
        let waiter = Waiter::new(&[fd.as_raw_fd()])?;
        Ok(RingBuf {
            name: map.name.clone(),
            consumer,
            producer,
            page,
            mask: size as u64 - 1,
            claim: claim.keep(),
            waiter,
            _fd: fd,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the consumer page is page-aligned, mapped for our lifetime, and its
        // first 8 bytes are the kernel's consumer position.
        unsafe { &*(self.consumer.ptr as *const AtomicU64) }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: as above, for the producer page.
        unsafe { &*(self.producer.ptr as *const AtomicU64) }
    }

    /// The data area: records at `Span` offsets, `2 * max_entries` bytes (mapped twice).
    /// Read-only: the kernel refuses a writable mapping, so a write through it faults.
    pub fn data(&self) -> (*const u8, usize) {
        // SAFETY: the producer mapping is a page plus twice the data area.
        let ptr = unsafe { (self.producer.ptr as *const u8).add(self.page) };
        (ptr, self.producer.len - self.page)
    }

    /// The committed records from the consumer position on, up to `max_bytes` of record
    /// data (one record always goes through), without giving them back: the next `peek`
    /// finds them again until [`RingBuf::release`].
    pub fn peek(&self, max_bytes: usize) -> Result<Option<Span>> {
        self.check_open()?;
        let start = self.consumer_pos().load(Ordering::Relaxed);
        let prod = self.producer_pos().load(Ordering::Acquire);
        let (data, _) = self.data();
        // SAFETY: as in `consume`.
        let (end, records) = unsafe { walk(data, self.mask, start, prod, max_bytes, &mut |_| {}) };
        Ok((end != start).then_some(Span {
            offset: (start & self.mask) as usize,
            len: (end - start) as usize,
            records,
        }))
    }

    /// Gives the first `len` bytes of `span` (from the last `peek`) back to the kernel:
    /// all of it, or the records before a boundary within it.
    pub fn release(&self, span: &Span, len: usize) -> Result<()> {
        self.check_open()?;
        let start = self.consumer_pos().load(Ordering::Relaxed);
        if (start & self.mask) as usize != span.offset || len > span.len {
            return Err(einval(format!(
                "ring buffer '{}': released {len} bytes of a span the consumer is not at",
                self.name
            )));
        }
        if len < span.len {
            // A record boundary: a consumer position in the middle of a record would make
            // the kernel and the next walk read data as a header.
            let (data, _) = self.data();
            // SAFETY: as in `consume`; the span's records are committed.
            let (end, _) = unsafe {
                walk(
                    data,
                    self.mask,
                    start,
                    start + len as u64,
                    usize::MAX,
                    &mut |_| {},
                )
            };
            if end != start + len as u64 {
                return Err(einval(format!(
                    "ring buffer '{}': {len} bytes is not a record boundary",
                    self.name
                )));
            }
        }
        if len > 0 {
            self.consumer_pos()
                .store(start + len as u64, Ordering::Release);
        }
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.waiter.is_closed() {
            return Err(Error::new(
                Code::Closed,
                format!("ring buffer '{}' is closed", self.name),
            ));
        }
        Ok(())
    }

    /// Walks committed records, calling `f` on each, until none is left or `max_bytes`
    /// of record data have been seen (one record always goes through). Returns the count.
    pub fn consume(&self, max_bytes: usize, mut f: impl FnMut(&[u8])) -> Result<usize> {
        if self.waiter.is_closed() {
            return Err(Error::new(
                Code::Closed,
                format!("ring buffer '{}' is closed", self.name),
            ));
        }
        let _guard = self.claim.walk.lock().unwrap_or_else(|p| p.into_inner());
        if self.waiter.is_closed() {
            return Ok(0);
        }
        let start = self.consumer_pos().load(Ordering::Relaxed);
        let prod = self.producer_pos().load(Ordering::Acquire);
        // SAFETY: the data area starts one page into the producer mapping and is mapped
        // twice back to back, and `prod` was published by the kernel after the records
        // before it were reserved.
        let (cons, count) = unsafe {
            let data = (self.producer.ptr as *const u8).add(self.page);
            walk(data, self.mask, start, prod, max_bytes, &mut f)
        };
        if cons != start {
            self.consumer_pos().store(cons, Ordering::Release);
        }
        Ok(count)
    }

    /// Appends available records to `out` in the batch format (see [`BATCH_HEADER`]).
    pub fn drain_into(&self, out: &mut Vec<u8>, max_bytes: usize) -> Result<usize> {
        self.consume(max_bytes, |rec| {
            out.extend_from_slice(&(rec.len() as u32).to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(rec);
            out.resize(out.len().next_multiple_of(8), 0);
        })
    }

    /// The number of [`wake`](RingBuf::wake) calls so far: pass it to [`wait`](RingBuf::wait).
    pub fn wakes(&self) -> u64 {
        self.waiter.wakes()
    }

    /// Sleeps until the ring has data, `timeout_ms` passes (-1: forever), or
    /// [`wake`](RingBuf::wake) is called after the caller read `since` from `wakes()`.
    pub fn wait(&self, timeout_ms: i32, since: u64) -> Result<Wait> {
        self.waiter.wait(timeout_ms, since)
    }

    /// Wakes a thread blocked in [`RingBuf::wait`] (or the next one to wait).
    pub fn wake(&self) {
        self.waiter.wake();
    }

    /// Marks the ring closed and wakes any waiter; memory is released on drop.
    pub fn close(&self) {
        if self.waiter.close() {
            // Walks check `closed` under the walk lock, so a successor never walks beside
            // this consumer.
            self.claim.taken.store(false, Ordering::Release);
        }
    }

    pub fn is_closed(&self) -> bool {
        self.waiter.is_closed()
    }

    /// Blocks until at least one record is drained into `out`, or the ring is closed or
    /// woken after `since` was read from [`wakes`](RingBuf::wakes) (returns 0).
    pub fn next_batch(&self, out: &mut Vec<u8>, max_bytes: usize, since: u64) -> Result<usize> {
        loop {
            let n = self.drain_into(out, max_bytes)?;
            if n > 0 {
                return Ok(n);
            }
            if self.wait(-1, since)? == Wait::Woken {
                return Ok(0);
            }
        }
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        self.close();
    }
}

/// Gives the claim back if `RingBuf::new` fails after taking it.
struct ClaimGuard(Option<Arc<Claim>>);

impl ClaimGuard {
    fn keep(mut self) -> Arc<Claim> {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.taken.store(false, Ordering::Release);
        }
    }
}

/// Walks the committed records between `start` and `prod`, calling `f` on each that was
/// not discarded, until a record still being written (busy), the end, or `max_bytes` of
/// records with their headers and padding (one record always goes through). Returns the new consumer position and
/// the count. Kept apart from the mapping so it runs over a heap buffer in tests.
///
/// # Safety
/// `data` points to a ring data area of `mask + 1` bytes mapped twice back to back (so a
/// record that wraps is contiguous), 8-byte aligned, whose records up to `prod` were
/// reserved by a producer following the kernel's ring-buffer layout.
unsafe fn walk(
    data: *const u8,
    mask: u64,
    start: u64,
    prod: u64,
    max_bytes: usize,
    f: &mut impl FnMut(&[u8]),
) -> (u64, usize) {
    let mut cons = start;
    let mut count = 0;
    let mut bytes = 0;
    while cons < prod {
        let at = (cons & mask) as usize;
        // SAFETY: an 8-byte aligned record header inside the data area (caller's promise).
        let hdr = unsafe { &*(data.add(at) as *const AtomicU32) };
        let len = hdr.load(Ordering::Acquire);
        if len & BUSY_BIT != 0 {
            break;
        }
        let data_len = (len & !(BUSY_BIT | DISCARD_BIT)) as usize;
        let size = (data_len + HDR_SIZE).next_multiple_of(HDR_SIZE);
        if cons != start && bytes + size > max_bytes {
            break;
        }
        if len & DISCARD_BIT == 0 {
            // SAFETY: the record's data follows its header, committed (not busy), and the
            // double mapping keeps it contiguous.
            let rec = unsafe { std::slice::from_raw_parts(data.add(at + HDR_SIZE), data_len) };
            f(rec);
            count += 1;
        }
        bytes += size;
        cons += size as u64;
    }
    (cons, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring data area on the heap, written the way the kernel writes one, and mapped
    /// "twice" by mirroring: `pos` is the producer position.
    struct HeapRing {
        area: Vec<u64>,
        size: usize,
        pos: u64,
    }

    impl HeapRing {
        fn new(size: usize) -> Self {
            HeapRing {
                area: vec![0; 2 * size / 8],
                size,
                pos: 0,
            }
        }

        fn bytes(&mut self) -> &mut [u8] {
            // SAFETY: a u64 buffer seen as bytes, same length in bytes.
            unsafe {
                std::slice::from_raw_parts_mut(
                    self.area.as_mut_ptr() as *mut u8,
                    self.area.len() * 8,
                )
            }
        }

        /// Writes a record (header flags as given) at the producer position, both copies.
        fn push(&mut self, payload: &[u8], flags: u32) {
            let size = self.size;
            let at = (self.pos as usize) & (size - 1);
            let mut rec = ((payload.len() as u32) | flags).to_le_bytes().to_vec();
            rec.extend_from_slice(&[0; 4]);
            rec.extend_from_slice(payload);
            rec.resize(rec.len().next_multiple_of(8), 0);
            for (i, b) in rec.iter().enumerate() {
                let p = (at + i) % size;
                self.bytes()[p] = *b;
                self.bytes()[p + size] = *b;
            }
            self.pos += rec.len() as u64;
        }

        fn walk(&mut self, start: u64, max_bytes: usize) -> (u64, Vec<Vec<u8>>) {
            let mut out = Vec::new();
            let (mask, prod) = (self.size as u64 - 1, self.pos);
            // SAFETY: the heap area is mirrored like the kernel's double mapping.
            let (cons, n) = unsafe {
                walk(
                    self.area.as_ptr() as *const u8,
                    mask,
                    start,
                    prod,
                    max_bytes,
                    &mut |r| out.push(r.to_vec()),
                )
            };
            assert_eq!(n, out.len());
            (cons, out)
        }
    }

    #[test]
    fn records_in_order_discards_skipped_busy_stops() {
        let mut r = HeapRing::new(256);
        r.push(b"one", 0);
        r.push(b"gone", DISCARD_BIT);
        r.push(b"three", 0);
        let busy_at = r.pos;
        r.push(b"pending", BUSY_BIT);
        let (cons, got) = r.walk(0, usize::MAX);
        assert_eq!(got, vec![b"one".to_vec(), b"three".to_vec()]);
        assert_eq!(
            cons, busy_at,
            "stops at the busy record, consuming the discarded one"
        );
    }

    #[test]
    fn a_record_that_wraps_is_whole() {
        let mut r = HeapRing::new(64);
        r.push(&[1; 40], 0); // 48 bytes: the next record starts 16 bytes before the end
        let (cons, _) = r.walk(0, usize::MAX);
        let payload: Vec<u8> = (0..24).collect();
        r.push(&payload, 0); // 32 bytes from offset 48: wraps
        let (end, got) = r.walk(cons, usize::MAX);
        assert_eq!(got, vec![payload]);
        assert_eq!(end, 80);
    }

    #[test]
    fn the_byte_cap_leaves_the_rest_and_one_record_always_goes() {
        let mut r = HeapRing::new(2048); // 10 records of 112 ring bytes fit
        for i in 0..10u8 {
            r.push(&[i; 100], 0);
        }
        let (cons, got) = r.walk(0, 250);
        assert_eq!(got.len(), 2);
        let (_, rest) = r.walk(cons, usize::MAX);
        assert_eq!(rest.len(), 8);
        assert_eq!(rest[0], vec![2; 100]);
        let (_, one) = r.walk(0, 10);
        assert_eq!(
            one.len(),
            1,
            "a record larger than the cap still goes through"
        );
    }
}
