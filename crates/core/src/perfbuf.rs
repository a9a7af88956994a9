//! The perf-buffer consumer (`BPF_MAP_TYPE_PERF_EVENT_ARRAY`, `bpf_perf_event_output`):
//! one `PERF_COUNT_SW_BPF_OUTPUT` event per online CPU, each with its own mmap ring, put
//! in the map at the CPU's index, and one epoll over all of them. Kernels before 5.8 have
//! no ring buffer, and per-CPU rings scale where one shared ring's lock does not.
//!
//! Zero copy where a record is contiguous: a batch is a run of one CPU's records, read
//! where the kernel wrote them (the index gives each sample's data). A perf ring is
//! mapped once, so a record may wrap at its end: such a sample is copied into a bounce
//! buffer, a batch of its own. Like a ring buffer's, the records of a batch go back to
//! the kernel (the CPU's `data_tail` moves) only when the batch is released, all of it or
//! up to a record; `PERF_RECORD_LOST` records are counted per CPU as the tail passes them.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{einval, Code, Error, Result};
use crate::events::{take_last, Consumer, EventSource, Index, Slots, Span};
use crate::maps::Map;
use crate::mmap::Mapping;
use crate::sys::{self, PerfEventAttr};

/// `PERF_COUNT_SW_BPF_OUTPUT`: the software event `bpf_perf_event_output` writes to.
const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
/// `PERF_SAMPLE_RAW`: samples carry the program's bytes.
const PERF_SAMPLE_RAW: u64 = 1 << 10;
/// `perf_event_header.type` of a sample and of a lost-records notice.
const PERF_RECORD_SAMPLE: u32 = 9;
const PERF_RECORD_LOST: u32 = 2;
/// `struct perf_event_mmap_page`: where `data_head` and `data_tail` are.
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;
/// `struct perf_event_header`: u32 type, u16 misc, u16 size.
const HEADER: usize = 8;
/// A sample: `struct { header; u32 size; char data[size]; }`.
const SAMPLE_DATA: usize = HEADER + 4;
/// A lost-records notice: `struct { header; u64 id; u64 lost; }`.
const LOST_COUNT: usize = HEADER + 8;
/// The largest perf record (its size is a u16): the bounce buffer.
const BOUNCE_BYTES: usize = u16::MAX as usize;

struct CpuRing {
    cpu: u32,
    mapping: Mapping,
    /// Bytes of the data area (a power of two, after the metadata page).
    size: usize,
    page: usize,
    event: OwnedFd,
    lost: AtomicU64,
}

impl CpuRing {
    fn pos(&self, at: usize) -> &AtomicU64 {
        // SAFETY: the metadata page is mapped for our lifetime; data_head/data_tail are
        // 8-byte aligned u64s the kernel and we share.
        unsafe { &*((self.mapping.ptr as *const u8).add(at) as *const AtomicU64) }
    }

    fn data(&self) -> *const u8 {
        // SAFETY: the data area follows the metadata page in the mapping.
        unsafe { (self.mapping.ptr as *const u8).add(self.page) }
    }

    fn offset(&self, pos: u64) -> usize {
        // The size is a power of two.
        (pos & (self.size as u64 - 1)) as usize
    }

    /// Copies `dst.len()` bytes from data position `from` (wrapping at the end).
    fn read(&self, from: u64, dst: &mut [u8]) {
        let start = self.offset(from);
        let first = dst.len().min(self.size - start);
        // SAFETY: both pieces lie in the mapped data area.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data().add(start), dst.as_mut_ptr(), first);
            if first < dst.len() {
                std::ptr::copy_nonoverlapping(
                    self.data(),
                    dst.as_mut_ptr().add(first),
                    dst.len() - first,
                );
            }
        }
    }

    fn u32_at(&self, pos: u64) -> u32 {
        let start = self.offset(pos);
        if start + 4 <= self.size {
            // SAFETY: within the data area, and 4-aligned: records are 8-aligned, and the
            // u32s read are at 0, 4 or 8 into one.
            return unsafe { (self.data().add(start) as *const u32).read() };
        }
        let mut b = [0u8; 4];
        self.read(pos, &mut b);
        u32::from_ne_bytes(b)
    }

    fn u64_at(&self, pos: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(pos, &mut b);
        u64::from_ne_bytes(b)
    }

    /// The record at `pos` (below the head): its type and size.
    fn record(&self, pos: u64) -> (u32, usize) {
        // SAFETY: records are 8-aligned and their sizes multiples of 8 (the kernel rounds
        // them up), so a header is 8 aligned bytes inside the data area, never wrapping.
        let header = unsafe { (self.data().add(self.offset(pos)) as *const [u8; 8]).read() };
        let [t0, t1, t2, t3, _, _, s0, s1] = header;
        (
            u32::from_ne_bytes([t0, t1, t2, t3]),
            usize::from(u16::from_ne_bytes([s0, s1])),
        )
    }
}

/// What a walk of one CPU's ring found.
enum Walked {
    Batch(Taken),
    /// Records that are no samples, taken in: walk again.
    Skipped,
    Nothing,
}

/// The last peek's batch: one CPU's records, from `from` to `to`.
#[derive(Clone, Copy)]
struct Taken {
    ring: usize,
    from: u64,
    to: u64,
    /// `PERF_RECORD_LOST` counts among them.
    lost: u64,
    span: Span,
}

pub struct PerfBuf {
    consumer: Consumer,
    rings: Vec<CpuRing>,
    /// The ring the next peek looks at first: rings take turns.
    turn: AtomicUsize,
    /// Where a sample that wraps is copied: the last data area.
    bounce: Mutex<Box<[u8]>>,
    bounce_ptr: *const u8,
    last: Mutex<Option<Taken>>,
    /// The map's slots of our events, cleared on drop (the map holds each event till then).
    _slots: Slots,
}

// SAFETY: the mappings are shared memory touched through atomics (positions) and read by
// the one consumer; the bounce buffer is written under its lock, between batches.
unsafe impl Send for PerfBuf {}
// SAFETY: see `Send`.
unsafe impl Sync for PerfBuf {}

impl PerfBuf {
    /// Opens the rings: `pages_per_cpu` data pages each (a power of two).
    pub fn new(map: &Map, pages_per_cpu: usize) -> Result<Self> {
        if map.map_type != sys::BPF_MAP_TYPE_PERF_EVENT_ARRAY {
            return Err(einval(format!(
                "map '{}' is not a perf event array: its type is {}",
                map.name,
                sys::names::describe_map_type(map.map_type)
            )));
        }
        if !pages_per_cpu.is_power_of_two() {
            return Err(Error::new(
                Code::Range,
                format!("pagesPerCpu is {pages_per_cpu}, not a power of two"),
            ));
        }
        let claim = Consumer::claim(&map.ring_claim, "perf buffer", &map.name)?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let size = pages_per_cpu
            .checked_mul(page)
            .ok_or_else(|| Error::new(Code::Range, "pagesPerCpu is too large"))?;
        let map_fd = map
            .fd()
            .try_clone_to_owned()
            .map_err(|e| Error::os("duplicating the perf event array's fd", e))?;
        // Slots filled before a failure are cleared as `slots` drops.
        let mut slots = Slots::new(map_fd);
        let mut rings = Vec::new();
        // The map has one slot per possible CPU; an online one beyond it cannot post.
        for cpu in crate::attach::sampling::online_cpus()?
            .into_iter()
            .filter(|&c| c < map.max_entries)
        {
            let mut attr = PerfEventAttr {
                type_: sys::PERF_TYPE_SOFTWARE,
                config: PERF_COUNT_SW_BPF_OUTPUT,
                sample_type: PERF_SAMPLE_RAW,
                sample_period: 1,
                wakeup_events: 1,
                ..Default::default()
            };
            let event = sys::perf_event_open_on(&mut attr, -1, cpu as i32, 0)
                .map_err(|e| Error::os(format!("perf_event_open (BPF output) on CPU {cpu}"), e))?;
            // Writable: the kernel then keeps what is before our tail (no overwriting).
            let mapping = Mapping::new(
                event.as_fd(),
                page + size,
                libc::PROT_READ | libc::PROT_WRITE,
                0,
            )
            .map_err(|e| Error::os(format!("mapping the perf ring of CPU {cpu}"), e))?;
            // SAFETY: PERF_EVENT_IOC_ENABLE on our own perf event fd takes no argument.
            if unsafe { libc::ioctl(event.as_raw_fd(), sys::PERF_EVENT_IOC_ENABLE as _, 0) } < 0 {
                return Err(Error::os(
                    format!("enabling the perf event of CPU {cpu}"),
                    std::io::Error::last_os_error(),
                ));
            }
            slots.fill(cpu, event.as_raw_fd(), &format!("map '{}'", map.name))?;
            rings.push(CpuRing {
                cpu,
                mapping,
                size,
                page,
                event,
                lost: AtomicU64::new(0),
            });
        }
        let fds: Vec<i32> = rings.iter().map(|r| r.event.as_raw_fd()).collect();
        let bounce = vec![0u8; BOUNCE_BYTES].into_boxed_slice();
        Ok(PerfBuf {
            consumer: Consumer::new(&map.name, &fds, claim)?,
            rings,
            turn: AtomicUsize::new(0),
            bounce_ptr: bounce.as_ptr(),
            bounce: Mutex::new(bounce),
            last: Mutex::new(None),
            _slots: slots,
        })
    }

    /// One CPU's next batch: its run of contiguous records, or the sample at the tail if
    /// it wraps (copied into the bounce buffer). Records that are no samples before any
    /// sample are taken in at once (lost-record notices counted), and the walk goes on.
    fn peek_ring(&self, i: usize, max_bytes: usize, index: &mut Index<'_>) -> Option<Taken> {
        loop {
            match self.walk_ring(i, max_bytes, index) {
                Walked::Batch(taken) => return Some(taken),
                Walked::Skipped => continue,
                Walked::Nothing => return None,
            }
        }
    }

    fn walk_ring(&self, i: usize, max_bytes: usize, index: &mut Index<'_>) -> Walked {
        let ring = &self.rings[i];
        let head = ring.pos(DATA_HEAD).load(Ordering::Acquire);
        let from = ring.pos(DATA_TAIL).load(Ordering::Relaxed);
        let (mut to, mut lost) = (from, 0);
        while to < head {
            let (kind, size) = ring.record(to);
            if size < HEADER || to + size as u64 > head {
                // Not a record the kernel writes: stop reading this ring.
                break;
            }
            let at = ring.offset(to);
            if at + size > ring.size {
                if to == from {
                    return self.bounce(i, from, kind, size, index);
                }
                break;
            }
            if to != from && (to - from) as usize + size > max_bytes {
                break;
            }
            match kind {
                PERF_RECORD_SAMPLE => {
                    let raw = (ring.u32_at(to + HEADER as u64) as usize)
                        .min(size.saturating_sub(SAMPLE_DATA));
                    if !index.push(at + SAMPLE_DATA, raw) {
                        break;
                    }
                }
                PERF_RECORD_LOST => lost += ring.u64_at(to + LOST_COUNT as u64),
                _ => {}
            }
            to += size as u64;
            // A batch is read in one mapping: it ends where the data area does.
            if ring.offset(to) == 0 {
                break;
            }
        }
        if to == from {
            return Walked::Nothing;
        }
        if index.records() == 0 {
            self.advance(ring, to, lost);
            return Walked::Skipped;
        }
        Walked::Batch(Taken {
            ring: i,
            from,
            to,
            lost,
            span: Span {
                buffer: i,
                offset: ring.offset(from),
                len: (to - from) as usize,
                records: index.records(),
            },
        })
    }

    /// The record at `from` wraps: a sample is copied into the bounce buffer; anything
    /// else is taken in (a lost-record notice counted).
    fn bounce(&self, i: usize, from: u64, kind: u32, size: usize, index: &mut Index<'_>) -> Walked {
        let ring = &self.rings[i];
        let to = from + size as u64;
        match kind {
            PERF_RECORD_SAMPLE => {
                let raw = (ring.u32_at(from + HEADER as u64) as usize)
                    .min(size.saturating_sub(SAMPLE_DATA));
                let mut bounce = self.bounce.lock().unwrap_or_else(|p| p.into_inner());
                ring.read(from + SAMPLE_DATA as u64, &mut bounce[..raw]);
                index.push(0, raw);
                Walked::Batch(Taken {
                    ring: i,
                    from,
                    to,
                    lost: 0,
                    span: Span {
                        buffer: self.rings.len(),
                        offset: 0,
                        len: raw,
                        records: 1,
                    },
                })
            }
            PERF_RECORD_LOST => {
                self.advance(ring, to, ring.u64_at(from + LOST_COUNT as u64));
                Walked::Skipped
            }
            _ => {
                self.advance(ring, to, 0);
                Walked::Skipped
            }
        }
    }

    /// Moves `ring`'s tail to `to`, counting `lost` records.
    fn advance(&self, ring: &CpuRing, to: u64, lost: u64) {
        if lost > 0 {
            ring.lost.fetch_add(lost, Ordering::Relaxed);
        }
        ring.pos(DATA_TAIL).store(to, Ordering::Release);
    }
}

impl EventSource for PerfBuf {
    fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// Each CPU's data area, then the bounce buffer.
    fn buffers(&self) -> usize {
        self.rings.len() + 1
    }

    fn buffer(&self, i: usize) -> Option<(*const u8, usize)> {
        match self.rings.get(i) {
            Some(ring) => Some((ring.data(), ring.size)),
            None if i == self.rings.len() => Some((self.bounce_ptr, BOUNCE_BYTES)),
            None => None,
        }
    }

    /// The next CPU's batch that has samples (CPUs take turns).
    fn peek(&self, max_bytes: usize, index: &mut Index<'_>) -> Result<Option<Span>> {
        self.consumer.check_open("perf buffer")?;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = None;
        let n = self.rings.len();
        let first = self.turn.load(Ordering::Relaxed);
        for i in (0..n).map(|k| (first + k) % n) {
            if let Some(taken) = self.peek_ring(i, max_bytes, index) {
                self.turn.store((i + 1) % n, Ordering::Relaxed);
                *last = Some(taken);
                return Ok(Some(taken.span));
            }
        }
        Ok(None)
    }

    fn release(&self, records: usize) -> Result<()> {
        self.consumer.check_open("perf buffer")?;
        let Some(t) = take_last(&self.last, records)? else {
            return Ok(());
        };
        let ring = &self.rings[t.ring];
        if records >= t.span.records {
            self.advance(ring, t.to, t.lost);
            return Ok(());
        }
        // Past the first `records` samples of the run (and the notices among them).
        let (mut to, mut lost, mut samples) = (t.from, 0, 0);
        while to < t.to {
            let (kind, size) = ring.record(to);
            if kind == PERF_RECORD_SAMPLE {
                if samples == records {
                    break;
                }
                samples += 1;
            } else if kind == PERF_RECORD_LOST {
                lost += ring.u64_at(to + LOST_COUNT as u64);
            }
            to += size as u64;
        }
        self.advance(ring, to, lost);
        Ok(())
    }

    fn lost_per_cpu(&self) -> Option<Vec<(u32, u64)>> {
        Some(
            self.rings
                .iter()
                .map(|r| (r.cpu, r.lost.load(Ordering::Relaxed)))
                .collect(),
        )
    }
}
