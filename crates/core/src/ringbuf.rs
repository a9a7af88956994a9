//! The BPF ring-buffer consumer. JS reads records straight from the kernel's mapping
//! (zero copy), sleeps in `epoll_wait` on the ring's fd, and publishes the consumer
//! position once per batch rather than once per record (each publish is a cache-line
//! write the producer side then has to read).
//!
//! `peek` finds the committed records from the consumer position on as one [`Span`] of a
//! data area (which the kernel maps twice back to back, so a span never wraps), and
//! `release` gives them back to the kernel once read, all of them or up to a record
//! boundary. Memory never grows with the producer: what is not released stays in the
//! kernel ring, whose reservations then fail (the BPF side sees and can count them).
//!
//! Fan-in: one ring per CPU (`ARRAY_OF_MAPS` of ring buffers, each CPU's program writing
//! to its own ring, so producers never share a ring's lock). [`RingBuf::new`] on such a
//! map creates a ring per online CPU from the inner template, puts each in the CPU's
//! slot, and consumes them as one stream: one epoll over all, the rings taking turns
//! batch by batch (order holds within a CPU's ring, not across them).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{einval, Code, Error, Result};
use crate::events::{take_last, ClaimGuard, Consumer, EventSource, Index, Slots, Span};
use crate::map_create::{self, MapDef};
use crate::maps::Map;
use crate::mmap::Mapping;
use crate::sys;

/// Set in the header of a record still being written.
const BUSY_BIT: u32 = 1 << 31;
/// Set in the header of a record the BPF side discarded: skipped.
const DISCARD_BIT: u32 = 1 << 30;
/// A record's header: u32 length with the bits above, 4 bytes the kernel keeps. Data
/// follows, padded to 8 bytes.
const HEADER: usize = 8;

/// One mapped ring: its consumer page (read-write) and its producer page plus the data
/// area, which the kernel maps twice in a row so no record ever wraps.
struct Ring {
    consumer: Mapping,
    producer: Mapping,
    page: usize,
    mask: u64,
    fd: OwnedFd,
}

impl Ring {
    fn new(fd: OwnedFd, size: usize, name: &str) -> Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mmap_err = |e| Error::os(format!("mapping ring buffer '{name}'"), e);
        let consumer = Mapping::new(fd.as_fd(), page, libc::PROT_READ | libc::PROT_WRITE, 0)
            .map_err(mmap_err)?;
        let producer =
            Mapping::new(fd.as_fd(), page + 2 * size, libc::PROT_READ, page).map_err(mmap_err)?;
        Ok(Ring {
            consumer,
            producer,
            page,
            mask: size as u64 - 1,
            fd,
        })
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

    /// The data area, mapped twice: `2 * size` bytes. Read-only: the kernel refuses a
    /// writable mapping, so a write through it faults.
    fn data(&self) -> (*const u8, usize) {
        // SAFETY: the producer mapping is a page plus twice the data area.
        let ptr = unsafe { (self.producer.ptr as *const u8).add(self.page) };
        (ptr, self.producer.len - self.page)
    }

    /// Walks the committed records from `start` to `prod` (see [`walk`]).
    fn walk(
        &self,
        start: u64,
        prod: u64,
        max_bytes: usize,
        take: &mut impl FnMut(usize, usize) -> bool,
    ) -> u64 {
        // SAFETY: the data area is mapped twice back to back, and `prod` is the kernel's
        // producer position, published after the records before it were reserved.
        unsafe { walk(self.data().0, self.mask, start, prod, max_bytes, take) }
    }
}

pub struct RingBuf {
    consumer: Consumer,
    rings: Vec<Ring>,
    /// The ring the next peek looks at first: in a fan-in the rings take turns.
    turn: AtomicUsize,
    /// The last peek's span, until released.
    last: Mutex<Option<Span>>,
    /// A fan-in's slots in its outer map, emptied on drop so the kernel frees the rings.
    _slots: Option<Slots>,
}

// SAFETY: the mappings are plain shared memory: the positions are only touched through
// atomics, and the record areas are only read.
unsafe impl Send for RingBuf {}
// SAFETY: see `Send`; `wake`/`close` only touch an eventfd and an atomic flag.
unsafe impl Sync for RingBuf {}

impl RingBuf {
    /// The consumer of a ring buffer, or of a fan-in: a map of maps (array or hash) whose
    /// inner template is a ring buffer gets a ring per online CPU (see the module doc).
    pub fn new(map: &Map) -> Result<Self> {
        match map.map_type {
            sys::BPF_MAP_TYPE_RINGBUF => {
                let claim = Consumer::claim(&map.ring_claim, "ring buffer", &map.name)?;
                let fd = map
                    .fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::os("duplicating the ring-buffer fd", e))?;
                let ring = Ring::new(fd, map.max_entries as usize, &map.name)?;
                Self::consume(&map.name, vec![ring], claim, None)
            }
            sys::BPF_MAP_TYPE_ARRAY_OF_MAPS | sys::BPF_MAP_TYPE_HASH_OF_MAPS => match &map.inner {
                Some(inner) if inner.map_type == sys::BPF_MAP_TYPE_RINGBUF => {
                    Self::fan_in(map, inner)
                }
                _ => Err(einval(format!(
                    "map '{}' is a map of maps whose values are not ring buffers",
                    map.name
                ))),
            },
            other => Err(einval(format!(
                "map '{}' is not a ring buffer, nor a map of ring buffers: its type is {}",
                map.name,
                sys::names::describe_map_type(other)
            ))),
        }
    }

    fn fan_in(outer: &Map, inner: &MapDef) -> Result<Self> {
        let claim = Consumer::claim(&outer.ring_claim, "ring buffer", &outer.name)?;
        let cpus = crate::attach::sampling::online_cpus()?;
        let is_array = outer.map_type == sys::BPF_MAP_TYPE_ARRAY_OF_MAPS;
        if !is_array && cpus.len() > outer.max_entries as usize {
            return Err(Error::new(
                Code::Range,
                format!(
                    "map '{}' holds {} rings, and there are {} online CPUs",
                    outer.name,
                    outer.max_entries,
                    cpus.len()
                ),
            ));
        }
        let outer_fd = outer
            .fd()
            .try_clone_to_owned()
            .map_err(|e| Error::os("duplicating the map of ring buffers' fd", e))?;
        // Slots filled before a failure are cleared as `slots` drops.
        let mut slots = Slots::new(outer_fd);
        let mut rings = Vec::new();
        // An array has a slot per index below its size: a CPU beyond it cannot post.
        for cpu in cpus
            .into_iter()
            .filter(|&c| !is_array || c < outer.max_entries)
        {
            let name = format!("{}.{cpu}", outer.name);
            let fd = map_create::create(&name, inner, None, None)?;
            slots.fill(cpu, fd.as_raw_fd(), &format!("map '{}'", outer.name))?;
            rings.push(Ring::new(fd, inner.max_entries as usize, &name)?);
        }
        if rings.is_empty() {
            return Err(einval(format!(
                "map '{}' has no slot for any online CPU",
                outer.name
            )));
        }
        Self::consume(&outer.name, rings, claim, Some(slots))
    }

    fn consume(
        name: &str,
        rings: Vec<Ring>,
        claim: ClaimGuard,
        slots: Option<Slots>,
    ) -> Result<Self> {
        let fds: Vec<i32> = rings.iter().map(|r| r.fd.as_raw_fd()).collect();
        Ok(RingBuf {
            consumer: Consumer::new(name, &fds, claim)?,
            rings,
            turn: AtomicUsize::new(0),
            last: Mutex::new(None),
            _slots: slots,
        })
    }
}

impl EventSource for RingBuf {
    fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// One per ring: 1, or a fan-in's one per CPU.
    fn buffers(&self) -> usize {
        self.rings.len()
    }

    fn buffer(&self, i: usize) -> Option<(*const u8, usize)> {
        self.rings.get(i).map(Ring::data)
    }

    /// The committed records of the next ring that has some (rings take turns).
    fn peek(&self, max_bytes: usize, index: &mut Index<'_>) -> Result<Option<Span>> {
        self.consumer.check_open("ring buffer")?;
        let n = self.rings.len();
        let first = self.turn.load(Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = None;
        for i in (0..n).map(|k| (first + k) % n) {
            let ring = &self.rings[i];
            let start = ring.consumer_pos().load(Ordering::Relaxed);
            let prod = ring.producer_pos().load(Ordering::Acquire);
            let end = ring.walk(start, prod, max_bytes, &mut |at, len| index.push(at, len));
            let records = index.records();
            if end != start {
                self.turn.store((i + 1) % n, Ordering::Relaxed);
                *last = Some(Span {
                    buffer: i,
                    offset: (start & ring.mask) as usize,
                    len: (end - start) as usize,
                    records,
                });
                return Ok(*last);
            }
        }
        Ok(None)
    }

    fn release(&self, records: usize) -> Result<()> {
        self.consumer.check_open("ring buffer")?;
        let Some(span) = take_last(&self.last, records)? else {
            return Ok(());
        };
        let ring = &self.rings[span.buffer];
        let start = ring.consumer_pos().load(Ordering::Relaxed);
        let end = if records >= span.records {
            start + span.len as u64
        } else {
            // Past the first `records` records: a consumer position is always a record
            // boundary, or the kernel and the next walk would read data as a header.
            let mut taken = 0;
            ring.walk(start, start + span.len as u64, usize::MAX, &mut |_, _| {
                taken += 1;
                taken <= records
            })
        };
        if end != start {
            ring.consumer_pos().store(end, Ordering::Release);
        }
        Ok(())
    }
}

/// Walks the committed records between `start` and `prod`, calling `take(data offset,
/// length)` on each that was not discarded, until `take` says no (that record is left), a
/// record still being written (busy), the end, or `max_bytes` of records with their
/// headers and padding (one record always goes through). Returns the position after the
/// last record walked. Kept apart from the mapping so it runs over a heap buffer in tests.
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
    take: &mut impl FnMut(usize, usize) -> bool,
) -> u64 {
    let mut cons = start;
    let mut bytes = 0;
    while cons < prod {
        // Offsets run on from the first record's into the second mapping, so a batch's
        // records are in one piece (copied as one, too).
        let at = ((start & mask) + (cons - start)) as usize;
        // SAFETY: an 8-byte aligned record header inside the double mapping: a walk covers
        // at most one data area's worth of records (caller's promise).
        let hdr = unsafe { &*(data.add(at) as *const AtomicU32) };
        let len = hdr.load(Ordering::Acquire);
        if len & BUSY_BIT != 0 {
            break;
        }
        let data_len = (len & !(BUSY_BIT | DISCARD_BIT)) as usize;
        let size = (data_len + HEADER).next_multiple_of(HEADER);
        if cons != start && bytes + size > max_bytes {
            break;
        }
        // The record's data follows its header, committed (not busy), and the double
        // mapping keeps it contiguous.
        if len & DISCARD_BIT == 0 && !take(at + HEADER, data_len) {
            break;
        }
        bytes += size;
        cons += size as u64;
    }
    cons
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

        /// The records a walk takes (at most `max_records`), as the index gives them.
        fn walk_some(
            &mut self,
            start: u64,
            max_bytes: usize,
            max_records: usize,
        ) -> (u64, Vec<Vec<u8>>) {
            let mut at = Vec::new();
            let (mask, prod) = (self.size as u64 - 1, self.pos);
            // SAFETY: the heap area is mirrored like the kernel's double mapping.
            let cons = unsafe {
                walk(
                    self.area.as_ptr() as *const u8,
                    mask,
                    start,
                    prod,
                    max_bytes,
                    &mut |off, len| {
                        at.push((off, len));
                        at.len() <= max_records
                    },
                )
            };
            at.truncate(max_records);
            let bytes = self.bytes();
            let got = at.iter().map(|&(o, l)| bytes[o..o + l].to_vec()).collect();
            (cons, got)
        }

        fn walk(&mut self, start: u64, max_bytes: usize) -> (u64, Vec<Vec<u8>>) {
            self.walk_some(start, max_bytes, usize::MAX)
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

    #[test]
    fn offsets_run_on_past_the_end_into_the_second_mapping() {
        let mut r = HeapRing::new(64);
        r.push(&[1; 40], 0);
        let (cons, _) = r.walk(0, usize::MAX);
        r.push(&[2; 8], 0); // 16 bytes at 48
        r.push(&[3; 8], 0); // 16 bytes at 64: offset 0 of the ring, 64 of the batch
        let mut at = Vec::new();
        // SAFETY: the heap area is mirrored like the kernel's double mapping.
        unsafe {
            walk(
                r.area.as_ptr() as *const u8,
                63,
                cons,
                r.pos,
                usize::MAX,
                &mut |o, l| {
                    at.push((o, l));
                    true
                },
            )
        };
        assert_eq!(
            at,
            vec![(56, 8), (72, 8)],
            "one piece from the batch's first record"
        );
    }

    #[test]
    fn a_refused_record_is_left_for_the_next_walk() {
        let mut r = HeapRing::new(256);
        for p in [b"a", b"b", b"c"] {
            r.push(p, 0);
        }
        let (cons, got) = r.walk_some(0, usize::MAX, 2);
        assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(cons, 32, "stops before the third record");
        let (_, rest) = r.walk(cons, usize::MAX);
        assert_eq!(rest, vec![b"c".to_vec()]);
    }
}
