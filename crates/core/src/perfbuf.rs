//! The perf-buffer consumer (`BPF_MAP_TYPE_PERF_EVENT_ARRAY`, `bpf_perf_event_output`):
//! one `PERF_COUNT_SW_BPF_OUTPUT` event per online CPU, each with its own mmap ring, put
//! in the map at the CPU's index, and one epoll over all of them. Kernels before 5.8 have
//! no ring buffer, and per-CPU rings scale where one shared ring's lock does not.
//!
//! Records are copied out (a perf ring is mapped once, so a record may wrap at its end)
//! into the same layout as ring-buffer spans (u32 length, 4 bytes, data padded to 8), so
//! one JS reader serves both. Like a ring buffer's, the records of a batch go back to
//! the kernel (each CPU's `data_tail` moves) only when the batch is released, all of it
//! or up to a record; `PERF_RECORD_LOST` records are counted per CPU as the tail passes
//! them.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{einval, Code, Error, Result};
use crate::maps::Map;
use crate::mmap::Mapping;
use crate::ringbuf::{Claim, Span};
use crate::sys::{self, PerfEventAttr};
use crate::waiter::{Wait, Waiter};

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
/// A span record's header, as a ring buffer's: u32 length, 4 bytes.
const SPAN_HEADER: usize = 8;
const ALIGN: usize = 8;

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

    /// Copies `dst.len()` bytes from data offset `from` (wrapping at the end).
    fn read(&self, from: u64, dst: &mut [u8]) {
        // The size is a power of two.
        let start = (from & (self.size as u64 - 1)) as usize;
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
        let start = (pos & (self.size as u64 - 1)) as usize;
        if start + 4 <= self.size {
            // SAFETY: within the data area; records are 8-aligned, so this u32 is too.
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
}

/// One CPU's records in the last peek's span: the span bytes they fill and the ring
/// positions they came from.
struct Segment {
    ring: usize,
    /// Span bytes before and after this CPU's records.
    start: usize,
    end: usize,
    /// The CPU's tail before and after them.
    from: u64,
    to: u64,
    /// `PERF_RECORD_LOST` counts passed on the way.
    lost: u64,
}

pub struct PerfBuf {
    name: String,
    rings: Vec<CpuRing>,
    waiter: Waiter,
    claim: Arc<Claim>,
    /// The last peek's span, CPU by CPU, until released.
    segments: Mutex<Vec<Segment>>,
    map_fd: OwnedFd,
}

// SAFETY: the mappings are shared memory touched through atomics (positions) and copies
// made under the `segments` lock by the one consumer.
unsafe impl Send for PerfBuf {}
// SAFETY: see `Send`.
unsafe impl Sync for PerfBuf {}

impl PerfBuf {
    /// Opens the rings: `pages_per_cpu` data pages each (a power of two).
    pub fn new(map: &Map, pages_per_cpu: usize) -> Result<Self> {
        if map.map_type != sys::BPF_MAP_TYPE_PERF_EVENT_ARRAY {
            return Err(einval(format!(
                "map '{}' is not a perf event array (map type {})",
                map.name, map.map_type
            )));
        }
        if !pages_per_cpu.is_power_of_two() {
            return Err(Error::new(
                Code::Range,
                format!("pagesPerCpu is {pages_per_cpu}, not a power of two"),
            ));
        }
        if map.ring_claim.taken.swap(true, Ordering::AcqRel) {
            return Err(Error::new(
                Code::Busy,
                format!(
                    "perf buffer '{}' already has a consumer: close it first (records are \
                     delivered once, to one consumer)",
                    map.name
                ),
            ));
        }
        let claim = map.ring_claim.clone();
        let opened = Self::open(map, pages_per_cpu, claim.clone());
        if opened.is_err() {
            claim.taken.store(false, Ordering::Release);
        }
        opened
    }

    fn open(map: &Map, pages_per_cpu: usize, claim: Arc<Claim>) -> Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let size = pages_per_cpu
            .checked_mul(page)
            .ok_or_else(|| Error::new(Code::Range, "pagesPerCpu is too large"))?;
        let map_fd = map
            .fd()
            .try_clone_to_owned()
            .map_err(|e| Error::os("duplicating the perf event array's fd", e))?;
        let mut rings = Vec::new();
        for cpu in crate::attach::sampling::online_cpus()? {
            // The map has one slot per possible CPU; an online one beyond it cannot post.
            if cpu >= map.max_entries {
                continue;
            }
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
            map.update(&cpu.to_ne_bytes(), &event.as_raw_fd().to_ne_bytes(), 0)?;
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
        Ok(PerfBuf {
            name: map.name.clone(),
            waiter: Waiter::new(&fds)?,
            rings,
            claim,
            segments: Mutex::new(Vec::new()),
            map_fd,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn check_open(&self) -> Result<()> {
        if self.waiter.is_closed() {
            return Err(Error::new(
                Code::Closed,
                format!("perf buffer '{}' is closed", self.name),
            ));
        }
        Ok(())
    }

    /// Copies the samples not yet released, CPU by CPU, into `out` in the span layout, as
    /// many as fit; `None` when there are none (lost-record notices alone are taken in).
    pub fn peek_into(&self, out: &mut [u8]) -> Result<Option<Span>> {
        self.check_open()?;
        let mut segments = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        segments.clear();
        let (mut len, mut records) = (0usize, 0usize);
        for (i, ring) in self.rings.iter().enumerate() {
            let head = ring.pos(DATA_HEAD).load(Ordering::Acquire);
            let from = ring.pos(DATA_TAIL).load(Ordering::Relaxed);
            let start = len;
            let walked = walk(ring, from, head, &mut |raw_at, raw| {
                let need = SPAN_HEADER + raw.next_multiple_of(ALIGN);
                if len + need > out.len() {
                    return false;
                }
                out[len..len + 4].copy_from_slice(&(raw as u32).to_ne_bytes());
                out[len + 4..len + SPAN_HEADER].fill(0);
                ring.read(raw_at, &mut out[len + SPAN_HEADER..len + SPAN_HEADER + raw]);
                out[len + SPAN_HEADER + raw..len + need].fill(0);
                len += need;
                records += 1;
                true
            });
            if walked.to != from {
                segments.push(Segment {
                    ring: i,
                    start,
                    end: len,
                    from,
                    to: walked.to,
                    lost: walked.lost,
                });
            }
            if walked.full {
                if records == 0 {
                    return Err(Error::new(
                        Code::Range,
                        "a sample does not fit the copy buffer".to_string(),
                    ));
                }
                break;
            }
        }
        if records == 0 {
            // Only lost-record notices (or nothing): count them now.
            self.apply(&segments, usize::MAX)?;
            segments.clear();
            return Ok(None);
        }
        Ok(Some(Span {
            offset: 0,
            len,
            records,
        }))
    }

    /// Gives the first `len` bytes of the last peek's span back: each CPU's tail moves
    /// past its records that end within them.
    pub fn release(&self, len: usize) -> Result<()> {
        self.check_open()?;
        let mut segments = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        self.apply(&segments, len)?;
        segments.clear();
        Ok(())
    }

    fn apply(&self, segments: &[Segment], len: usize) -> Result<()> {
        for seg in segments {
            let ring = &self.rings[seg.ring];
            let (to, lost) = if len >= seg.end {
                (seg.to, seg.lost)
            } else if len <= seg.start {
                continue;
            } else {
                // Cut inside this CPU's records: walk them again to the record boundary.
                let mut bytes = seg.start;
                let walked = walk(ring, seg.from, seg.to, &mut |_, raw| {
                    let need = SPAN_HEADER + raw.next_multiple_of(ALIGN);
                    if bytes + need > len {
                        return false;
                    }
                    bytes += need;
                    true
                });
                if bytes != len {
                    return Err(einval(format!(
                        "perf buffer '{}': {len} bytes is not a record boundary of the last batch",
                        self.name
                    )));
                }
                (walked.to, walked.lost)
            };
            if lost > 0 {
                ring.lost.fetch_add(lost, Ordering::Relaxed);
            }
            ring.pos(DATA_TAIL).store(to, Ordering::Release);
        }
        Ok(())
    }

    /// Records the kernel could not write, per CPU (`PERF_RECORD_LOST`), as (cpu, count).
    pub fn lost(&self) -> Vec<(u32, u64)> {
        self.rings
            .iter()
            .map(|r| (r.cpu, r.lost.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn wakes(&self) -> u64 {
        self.waiter.wakes()
    }

    /// Sleeps until a CPU's ring has data, or closed / woken after `since`.
    pub fn wait(&self, timeout_ms: i32, since: u64) -> Result<Wait> {
        self.waiter.wait(timeout_ms, since)
    }

    pub fn wake(&self) {
        self.waiter.wake();
    }

    /// Ends waiting and frees the map for another consumer; the events go on drop.
    pub fn close(&self) {
        if self.waiter.close() {
            self.claim.taken.store(false, Ordering::Release);
        }
    }
}

/// Where a walk of one CPU's ring stopped.
struct Walked {
    /// The tail after the records taken.
    to: u64,
    /// `PERF_RECORD_LOST` counts among them.
    lost: u64,
    /// `take` refused a sample (the copy buffer is full).
    full: bool,
}

/// Walks `ring`'s records from `from` to `head`, calling `take(raw data position, raw
/// length)` on each sample until it returns false; lost-record notices are summed.
fn walk(ring: &CpuRing, from: u64, head: u64, take: &mut dyn FnMut(u64, usize) -> bool) -> Walked {
    let mut w = Walked {
        to: from,
        lost: 0,
        full: false,
    };
    while w.to < head {
        let kind = ring.u32_at(w.to);
        let size = usize::from((ring.u32_at(w.to + 4) >> 16) as u16);
        if size < HEADER || w.to + size as u64 > head {
            // Not a record the kernel writes: stop reading this ring.
            break;
        }
        match kind {
            PERF_RECORD_SAMPLE => {
                // struct { header; u32 size; char data[size]; }
                let raw = ring.u32_at(w.to + HEADER as u64) as usize;
                let raw = raw.min(size.saturating_sub(HEADER + 4));
                if !take(w.to + (HEADER + 4) as u64, raw) {
                    w.full = true;
                    break;
                }
            }
            // struct { header; u64 id; u64 lost; }
            PERF_RECORD_LOST => w.lost += ring.u64_at(w.to + (HEADER + 8) as u64),
            _ => {}
        }
        w.to += size as u64;
    }
    w
}

impl Drop for PerfBuf {
    fn drop(&mut self) {
        self.close();
        // The map keeps a reference to each event until its slot is cleared.
        for ring in &self.rings {
            let key = ring.cpu.to_ne_bytes();
            let mut attr = sys::MapElemAttr {
                map_fd: self.map_fd.as_raw_fd() as u32,
                key: sys::ptr(key.as_ptr()),
                ..Default::default()
            };
            let _ = sys::bpf(sys::BPF_MAP_DELETE_ELEM, &mut attr);
        }
    }
}
