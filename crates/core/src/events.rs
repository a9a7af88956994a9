//! What ring-buffer and perf-buffer consumers share: the batch a consumer hands out (a
//! [`Span`] of one of its data areas, and an [`Index`] of where each record's data is in
//! it), the trait the binding drives them through, the one-consumer-per-map claim, the
//! epoll waiter, and the map slots a consumer fills with its own objects.
//!
//! Record layouts (a ring buffer's, a perf ring's) are known here in Rust only: the walk
//! that finds a batch writes each record's data offset and length into the index, and
//! the reader in JS walks the index, the same for every kind of consumer.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Code, Error, Result};
use crate::sys;
pub use crate::waiter::Wait;
use crate::waiter::Waiter;

/// Records handed out as one batch: `len` bytes from `offset` of data area `buffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Which data area (see [`EventSource::buffer`]).
    pub buffer: usize,
    /// Where the batch's bytes (records with their headers) start in it.
    pub offset: usize,
    pub len: usize,
    /// Records in the index.
    pub records: usize,
}

/// Where a peek puts its records: (data offset in the data area, length) pairs, as many
/// as fit.
pub struct Index<'a> {
    slots: &'a mut [u32],
    records: usize,
}

impl<'a> Index<'a> {
    pub fn new(slots: &'a mut [u32]) -> Self {
        Index { slots, records: 0 }
    }

    /// Adds a record; false (nothing added) when full or it is beyond a u32 offset.
    pub(crate) fn push(&mut self, offset: usize, len: usize) -> bool {
        let (Ok(offset), Ok(len)) = (u32::try_from(offset), u32::try_from(len)) else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(2 * self.records..2 * self.records + 2) else {
            return false;
        };
        slot.copy_from_slice(&[offset, len]);
        self.records += 1;
        true
    }

    pub fn records(&self) -> usize {
        self.records
    }

    /// Offsets made relative to `base` (the batch's bytes copied elsewhere).
    pub fn rebase(&mut self, base: usize) {
        for pair in self.slots[..2 * self.records].chunks_exact_mut(2) {
            pair[0] -= base as u32;
        }
    }
}

/// A consumer of event records, read in place: the binding maps its data areas into JS
/// and walks batches there.
pub trait EventSource: Send + Sync {
    fn consumer(&self) -> &Consumer;

    /// How many data areas batches come from.
    fn buffers(&self) -> usize;

    /// Data area `i`: (start, bytes); mapped while the consumer lives.
    fn buffer(&self, i: usize) -> Option<(*const u8, usize)>;

    /// The next batch, up to `max_bytes` (one record always goes through) and as many
    /// records as `index` holds (it needs room for one), without giving it back: the
    /// next `peek` finds it again until [`EventSource::release`].
    fn peek(&self, max_bytes: usize, index: &mut Index<'_>) -> Result<Option<Span>>;

    /// Gives the first `records` records of the last peek's batch back to the kernel
    /// (all of it when `records` ≥ its count); the rest is found again by the next peek.
    fn release(&self, records: usize) -> Result<()>;

    /// Records the kernel could not write, per CPU, where it counts them (perf buffers).
    fn lost_per_cpu(&self) -> Option<Vec<(u32, u64)>> {
        None
    }

    fn name(&self) -> &str {
        &self.consumer().name
    }

    /// The number of [`wake`](EventSource::wake) calls so far: pass it to `wait`.
    fn wakes(&self) -> u64 {
        self.consumer().waiter.wakes()
    }

    /// Sleeps until records may be there, `timeout_ms` passes (-1: forever), or `wake`
    /// is called after the caller read `since` from `wakes()`.
    fn wait(&self, timeout_ms: i32, since: u64) -> Result<Wait> {
        self.consumer().waiter.wait(timeout_ms, since)
    }

    /// Wakes a thread blocked in `wait` (or the next one to wait).
    fn wake(&self) {
        self.consumer().waiter.wake();
    }

    /// Ends waiting and frees the map for another consumer; memory goes on drop.
    fn close(&self) {
        self.consumer().close();
    }

    fn is_closed(&self) -> bool {
        self.consumer().waiter.is_closed()
    }
}

/// A map's consumer slot, shared by every consumer made on the map: records taken by two
/// consumers would be split between them, or read twice.
#[derive(Default)]
pub struct Claim {
    taken: AtomicBool,
}

/// What every consumer has: its name for errors, its waiter, and its map's claim.
pub struct Consumer {
    pub(crate) name: String,
    pub(crate) waiter: Waiter,
    claim: Arc<Claim>,
}

impl Consumer {
    /// Takes `claim` for `name`, or says who holds it.
    pub(crate) fn claim(claim: &Arc<Claim>, what: &str, name: &str) -> Result<ClaimGuard> {
        if claim.taken.swap(true, Ordering::AcqRel) {
            return Err(Error::new(
                Code::Busy,
                format!(
                    "{what} '{name}' already has a consumer: close it first (records are \
                     delivered once, to one consumer)"
                ),
            ));
        }
        Ok(ClaimGuard(Some(claim.clone())))
    }

    /// The consumer of `fds` (epoll over them), holding `claim`.
    pub(crate) fn new(name: &str, fds: &[i32], claim: ClaimGuard) -> Result<Self> {
        Ok(Consumer {
            name: name.to_string(),
            waiter: Waiter::new(fds)?,
            claim: claim.keep(),
        })
    }

    pub(crate) fn check_open(&self, what: &str) -> Result<()> {
        if self.waiter.is_closed() {
            return Err(Error::new(
                Code::Closed,
                format!("{what} '{}' is closed", self.name),
            ));
        }
        Ok(())
    }

    fn close(&self) {
        if self.waiter.close() {
            self.claim.taken.store(false, Ordering::Release);
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.close();
    }
}

/// The last peek's batch, taken for a release of `records` of it: `None` when there is
/// none and nothing is released; releasing records without a batch is an error.
pub(crate) fn take_last<T>(
    last: &std::sync::Mutex<Option<T>>,
    records: usize,
) -> Result<Option<T>> {
    match last.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(batch) => Ok(Some(batch)),
        None if records == 0 => Ok(None),
        None => Err(crate::error::einval("release without a batch: peek first")),
    }
}

/// Gives the claim back if making the consumer fails after taking it.
pub(crate) struct ClaimGuard(Option<Arc<Claim>>);

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

/// Slots of a map filled with our own objects (a fan-in's rings, a perf buffer's
/// events), deleted on drop: the map holds each object until its slot is cleared.
pub(crate) struct Slots {
    outer: OwnedFd,
    keys: Vec<u32>,
}

impl Slots {
    pub(crate) fn new(outer: OwnedFd) -> Self {
        Slots {
            outer,
            keys: Vec::new(),
        }
    }

    /// Puts `fd` at `key` (a u32) of the map.
    pub(crate) fn fill(&mut self, key: u32, fd: i32, what: &str) -> Result<()> {
        let k = key.to_ne_bytes();
        let v = fd.to_ne_bytes();
        let mut attr = sys::MapElemAttr {
            map_fd: self.outer.as_raw_fd() as u32,
            key: sys::ptr(k.as_ptr()),
            value_or_next_key: sys::ptr(v.as_ptr()),
            ..Default::default()
        };
        sys::bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr)
            .map_err(|e| Error::os(format!("{what}: putting slot {key}"), e))?;
        self.keys.push(key);
        Ok(())
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        for key in &self.keys {
            let key = key.to_ne_bytes();
            let mut attr = sys::MapElemAttr {
                map_fd: self.outer.as_raw_fd() as u32,
                key: sys::ptr(key.as_ptr()),
                ..Default::default()
            };
            // Nothing to do about a failure: the slot was changed under us, so it no
            // longer holds our object either way.
            let _ = sys::bpf(sys::BPF_MAP_DELETE_ELEM, &mut attr);
        }
    }
}
