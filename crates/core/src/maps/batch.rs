//! Many elements per call: `BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_LOOKUP_AND_DELETE_BATCH`,
//! `BPF_MAP_UPDATE_BATCH` and `BPF_MAP_DELETE_BATCH` (5.6), and key by key where a map
//! type or a kernel has no batch command.
//!
//! The kernel's protocol (kernel/bpf/hashtab.c, syscall.c):
//! - A lookup starts with `in_batch` NULL and goes on from the `out_batch` the call before
//!   wrote: a hash map's next bucket (a u32), a generic map's last key. `out_batch` is
//!   written only when the call returned elements.
//! - `ENOENT` ends the walk, and its `count` may still be > 0: those elements are good.
//! - Hash maps copy whole buckets: `ENOSPC` with nothing returned means the next bucket
//!   holds more elements than `count`; the call is repeated with a bigger batch.
//! - A generic walk (arrays) whose element vanished between finding and copying it gives
//!   up with `EINTR`, after the elements before it (`count`).
//! - Per-CPU values are `round_up(value_size, 8)` bytes per possible CPU.
//! - Updates and deletes stop at the first element that fails; `count` is how many went
//!   before it.
//! - A map type without the command answers `ENOTSUPP`, a kernel without the commands
//!   `EINVAL`, and both (like a flag the command does not take) before writing `count`.
//!
//! Hash maps walked by `BPF_MAP_GET_NEXT_KEY` start over at their first key when the key
//! asked from was deleted meanwhile; [`walk_keys`] skips what it has seen and goes on
//! after the latest key still there, so a walk sees every key once.

use std::collections::HashSet;
use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;

use super::Map;
use crate::error::{einval, Error, Result, ENOTSUPP};
use crate::sys::{self, MapBatchAttr};

/// Bytes of keys and values one lookup call asks for when the caller names no batch
/// size: a few syscalls for a map of a million small entries, little memory for big values.
const BATCH_BYTES: usize = 1 << 20;

/// Times a lookup is asked again when the element at its cursor vanished before the
/// kernel could copy it (`EINTR` with nothing returned; the kernel already tried 3 times).
const VANISHED_RETRIES: u32 = 3;

/// Entries of a map as two contiguous buffers: `count` keys of `key_size` bytes, and
/// `count` values of [`Map::value_buffer_size`] bytes (all CPUs' for per-CPU maps).
#[derive(Debug, Default)]
pub struct Entries {
    pub keys: Vec<u8>,
    pub values: Vec<u8>,
    pub count: usize,
    /// Whether the kernel's batch commands did it (else key by key).
    pub batched: bool,
}

/// Whether a batch command's failure says the kernel or the map type has no such command
/// (as opposed to an element failing): the kernel refused it before writing `count`.
fn unsupported(e: &io::Error, attr: &MapBatchAttr, asked: u32) -> bool {
    let errno = e.raw_os_error();
    let no_command =
        errno == Some(libc::EINVAL) || errno == Some(ENOTSUPP) || errno == Some(libc::EOPNOTSUPP);
    no_command && attr.count == asked
}

/// Where a lookup is in the map: the kernel's opaque cursor, or the start.
struct Cursor {
    /// Read by the next call (`in_batch`), once a call returned elements.
    from: Option<Vec<u8>>,
    /// Written by the kernel (`out_batch`).
    to: Vec<u8>,
}

impl Cursor {
    /// A hash map's cursor is a u32 bucket index, a generic map's a key.
    fn new(key_size: usize) -> Self {
        Cursor {
            from: None,
            to: vec![0; key_size.max(size_of::<u32>())],
        }
    }

    /// The kernel wrote `to` (it returned elements): the next call starts there.
    fn advance(&mut self) {
        let len = self.to.len();
        let from = self.from.get_or_insert_with(|| vec![0; len]);
        std::mem::swap(from, &mut self.to);
    }
}

/// `n * size`, or a RANGE error naming what was being sized.
fn bytes(what: &str, n: usize, size: usize) -> Result<usize> {
    n.checked_mul(size)
        .filter(|&b| isize::try_from(b).is_ok())
        .ok_or_else(|| Error::range(what, format!("{n} × {size} bytes"), "what memory holds"))
}

impl Map {
    /// A batch command's failure; `done` is how many elements went before the one that
    /// failed, when the kernel got to elements (`count` below what was asked).
    fn batch_op_error(
        &self,
        op: &str,
        start: usize,
        attr: &MapBatchAttr,
        asked: u32,
        e: io::Error,
    ) -> Error {
        if attr.count < asked {
            let at = start + attr.count as usize;
            Error::os(format!("map '{}': {op}, entry {at}", self.name), e)
        } else {
            Error::os(format!("map '{}': {op}", self.name), e)
        }
    }

    fn check_deletes(&self, op: &str) -> Result<()> {
        if self.is_plain_array() {
            return Err(einval(format!(
                "map '{}': {op}: an array's elements cannot be deleted (clear() zeroes them)",
                self.name
            )));
        }
        Ok(())
    }

    /// Maps with keys: the batch commands and the walk need them.
    fn check_keyed(&self, op: &str) -> Result<usize> {
        if self.is_keyless() || self.key_size == 0 {
            return Err(einval(format!(
                "map '{}': {op} needs a map with keys (queues, stacks and bloom filters have none)",
                self.name
            )));
        }
        Ok(self.key_size as usize)
    }

    /// How many entries `keys` holds, whole keys only.
    fn count_keys(&self, op: &str, keys: &[u8]) -> Result<usize> {
        let ks = self.check_keyed(op)?;
        if !keys.len().is_multiple_of(ks) {
            return Err(einval(format!(
                "map '{}': {op}: keys are {} bytes, not a multiple of the key size {ks}",
                self.name,
                keys.len()
            )));
        }
        Ok(keys.len() / ks)
    }

    /// Plain arrays keep every slot: their elements cannot be deleted.
    fn is_plain_array(&self) -> bool {
        matches!(
            self.map_type,
            sys::BPF_MAP_TYPE_ARRAY | sys::BPF_MAP_TYPE_PERCPU_ARRAY
        )
    }

    fn is_hash(&self) -> bool {
        matches!(
            self.map_type,
            sys::BPF_MAP_TYPE_HASH
                | sys::BPF_MAP_TYPE_PERCPU_HASH
                | sys::BPF_MAP_TYPE_LRU_HASH
                | sys::BPF_MAP_TYPE_LRU_PERCPU_HASH
                | sys::BPF_MAP_TYPE_HASH_OF_MAPS
        )
    }

    /// Every entry (libbpf's `bpf_map_lookup_batch` until the end): `batch` entries per
    /// call (default: about [`BATCH_BYTES`] of them), grown where a hash bucket holds more.
    /// Where the kernel or map type has no batch lookup: key by key, each key once.
    pub fn lookup_batch(&self, batch: Option<u32>) -> Result<Entries> {
        self.read_all(false, batch)
    }

    /// Every entry, taken out of the map as it is read (`bpf_map_lookup_and_delete_batch`):
    /// hash maps. Key by key where the kernel or map type has no such command (a lookup,
    /// then a delete: an update between the two is lost).
    pub fn lookup_and_delete_batch(&self, batch: Option<u32>) -> Result<Entries> {
        self.check_deletes("lookup and delete (batch)")?;
        self.read_all(true, batch)
    }

    fn read_all(&self, delete: bool, batch: Option<u32>) -> Result<Entries> {
        let op = if delete {
            "lookup and delete (batch)"
        } else {
            "lookup (batch)"
        };
        let ks = self.check_keyed(op)?;
        let vs = self.value_buffer_size()?;
        let entry = ks + vs;
        let most = self.max_entries.max(1);
        let mut chunk = match batch {
            Some(0) => return Err(Error::range("batchSize", 0, format!("1..={}", u32::MAX))),
            // More than the map holds at once is never needed.
            Some(n) => n.min(most),
            None => u32::try_from(BATCH_BYTES / entry).map_or(most, |n| n.clamp(1, most)),
        };
        let cmd = if delete {
            sys::BPF_MAP_LOOKUP_AND_DELETE_BATCH
        } else {
            sys::BPF_MAP_LOOKUP_BATCH
        };
        let mut out = Entries {
            batched: true,
            ..Default::default()
        };
        let mut cursor = Cursor::new(ks);
        let mut retries = VANISHED_RETRIES;
        loop {
            let room = out.count + chunk as usize;
            out.keys.resize(bytes("batch keys", room, ks)?, 0);
            out.values.resize(bytes("batch values", room, vs)?, 0);
            let mut attr = MapBatchAttr {
                in_batch: cursor.from.as_ref().map_or(0, |c| sys::ptr(c.as_ptr())),
                out_batch: sys::ptr(cursor.to.as_mut_ptr()),
                keys: sys::ptr(out.keys[out.count * ks..].as_mut_ptr()),
                values: sys::ptr(out.values[out.count * vs..].as_mut_ptr()),
                count: chunk,
                map_fd: self.fd().as_raw_fd() as u32,
                ..Default::default()
            };
            let result = sys::bpf(cmd, &mut attr);
            let errno = result.as_ref().err().and_then(io::Error::raw_os_error);
            // `count` is the kernel's on success and with these; other errors may come
            // before it writes `count` at all.
            let got = match (&result, errno) {
                (Ok(_), _) | (_, Some(libc::ENOENT | libc::ENOSPC | libc::EINTR)) => {
                    attr.count.min(chunk) as usize
                }
                _ => 0,
            };
            out.count += got;
            if got > 0 {
                cursor.advance();
                retries = VANISHED_RETRIES;
            }
            // Two guards against a kernel that does not advance the walk, so that it cannot
            // loop for ever (neither seen on a kernel of the matrix, where a walk ends with
            // ENOENT): a read that returns more than the map can hold goes key by key
            // instead, each key once, and a success that returns nothing ends the walk.
            if !delete && out.count > self.max_entries as usize {
                return self.read_all_by_key(false);
            }
            match result {
                Ok(_) if got == 0 => break,
                Ok(_) => {}
                Err(_) if errno == Some(libc::ENOENT) => break,
                // Elements came before the bucket that did not fit, or the one that vanished:
                // go on from after them.
                Err(_) if got > 0 => {}
                Err(_) if errno == Some(libc::ENOSPC) && chunk < most => {
                    chunk = chunk.saturating_mul(2).min(most);
                }
                Err(_) if errno == Some(libc::EINTR) && retries > 0 => retries -= 1,
                Err(e)
                    if out.count == 0 && cursor.from.is_none() && unsupported(&e, &attr, chunk) =>
                {
                    return self.read_all_by_key(delete);
                }
                Err(e) => return Err(self.batch_op_error(op, out.count - got, &attr, chunk, e)),
            }
        }
        out.keys.truncate(out.count * ks);
        out.values.truncate(out.count * vs);
        Ok(out)
    }

    /// [`Map::read_all`] without batch commands: each key once (see [`walk_keys`]).
    fn read_all_by_key(&self, delete: bool) -> Result<Entries> {
        let mut out = Entries::default();
        self.walk(|key| {
            let Some(value) = self.lookup(key)? else {
                return Ok(false);
            };
            // Someone else took it between the lookup and the delete: theirs, not ours.
            if delete && !self.delete(key)? {
                return Ok(false);
            }
            out.keys.extend_from_slice(key);
            out.values.extend_from_slice(&value);
            out.count += 1;
            Ok(!delete)
        })?;
        Ok(out)
    }

    /// Writes `keys[i]` → `values[i]` (libbpf's `bpf_map_update_batch`); `flags` as
    /// [`Map::update`] takes them. Returns how many; an element that fails stops it (the
    /// error says which, the ones before are written). Key by key where the kernel or map
    /// type has no batch update, or does not take `flags` there (no kernel yet takes
    /// `BPF_NOEXIST`/`BPF_EXIST` in a batch).
    pub fn update_batch(&self, keys: &[u8], values: &[u8], flags: u64) -> Result<usize> {
        const OP: &str = "update (batch)";
        let n = self.count_keys(OP, keys)?;
        let ks = self.key_size as usize;
        let vs = self.value_buffer_size()?;
        if values.len() != bytes("batch values", n, vs)? {
            return Err(einval(format!(
                "map '{}': {OP}: values are {} bytes, {n} values of {vs} bytes are {}{}",
                self.name,
                values.len(),
                n * vs,
                if self.is_percpu() {
                    " (one 8-byte-aligned slot per possible CPU each)"
                } else {
                    ""
                }
            )));
        }
        let mut done = 0;
        while done < n {
            let asked = u32::try_from(n - done).unwrap_or(u32::MAX);
            let mut attr = MapBatchAttr {
                keys: sys::ptr(keys[done * ks..].as_ptr()),
                values: sys::ptr(values[done * vs..].as_ptr()),
                count: asked,
                map_fd: self.fd().as_raw_fd() as u32,
                elem_flags: flags,
                ..Default::default()
            };
            match sys::bpf(sys::BPF_MAP_UPDATE_BATCH, &mut attr) {
                Ok(_) => done += asked as usize,
                Err(e) if unsupported(&e, &attr, asked) => {
                    for i in done..n {
                        self.update(&keys[i * ks..][..ks], &values[i * vs..][..vs], flags)
                            .map_err(|e| Error {
                                message: format!("{}, entry {i}", e.message),
                                ..e
                            })?;
                    }
                    return Ok(n);
                }
                Err(e) => return Err(self.batch_op_error(OP, done, &attr, asked, e)),
            }
        }
        Ok(n)
    }

    /// Deletes `keys` (libbpf's `bpf_map_delete_batch`); keys not in the map are skipped.
    /// Returns how many were deleted. Key by key where the kernel or map type has no
    /// batch delete.
    pub fn delete_batch(&self, keys: &[u8]) -> Result<usize> {
        const OP: &str = "delete (batch)";
        self.check_deletes(OP)?;
        let n = self.count_keys(OP, keys)?;
        let ks = self.key_size as usize;
        let (mut at, mut deleted) = (0, 0);
        while at < n {
            let asked = u32::try_from(n - at).unwrap_or(u32::MAX);
            let mut attr = MapBatchAttr {
                keys: sys::ptr(keys[at * ks..].as_ptr()),
                count: asked,
                map_fd: self.fd().as_raw_fd() as u32,
                ..Default::default()
            };
            match sys::bpf(sys::BPF_MAP_DELETE_BATCH, &mut attr) {
                Ok(_) => {
                    deleted += asked as usize;
                    at += asked as usize;
                }
                // The key after the `count` deleted is not there: skip it.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && attr.count < asked => {
                    deleted += attr.count as usize;
                    at += attr.count as usize + 1;
                }
                Err(e) if unsupported(&e, &attr, asked) => {
                    for key in keys[at * ks..].chunks_exact(ks) {
                        deleted += usize::from(self.delete(key)?);
                    }
                    return Ok(deleted);
                }
                Err(e) => return Err(self.batch_op_error(OP, at, &attr, asked, e)),
            }
        }
        Ok(deleted)
    }

    /// Empties the map; returns how many elements it took out. Arrays cannot delete: their
    /// values are set to zeros instead (all `max_entries`, the count returned).
    pub fn clear(&self) -> Result<usize> {
        if self.is_plain_array() {
            return self.zero_array();
        }
        if self.is_hash() {
            return Ok(self.read_all(true, None)?.count);
        }
        let keys = self.keys()?.concat();
        self.delete_batch(&keys)
    }

    /// Every slot of an array set to zeros, about [`BATCH_BYTES`] per call.
    fn zero_array(&self) -> Result<usize> {
        let vs = self.value_buffer_size()?;
        let total = self.max_entries as usize;
        let chunk = (BATCH_BYTES / (vs + size_of::<u32>())).clamp(1, total.max(1));
        let zeros = vec![0u8; bytes("zeros", chunk, vs)?];
        let mut keys = Vec::with_capacity(bytes("array keys", chunk, size_of::<u32>())?);
        let mut start = 0;
        while start < total {
            let end = (start + chunk).min(total);
            keys.clear();
            // Array keys are u32 indexes in the host's byte order.
            keys.extend((start as u32..end as u32).flat_map(u32::to_ne_bytes));
            self.update_batch(&keys, &zeros[..(end - start) * vs], 0)?;
            start = end;
        }
        Ok(total)
    }

    /// Calls `visit` on each key of the map once (see [`walk_keys`]).
    pub(super) fn walk(&self, visit: impl FnMut(&[u8]) -> Result<bool>) -> Result<()> {
        walk_keys(|k| self.next_key(k), visit)
    }
}

/// Calls `visit` on every key `next_key` (`BPF_MAP_GET_NEXT_KEY`) leads to, each once.
/// `visit` says whether the key stays in the map (a place to go on from).
///
/// A hash map asked for the key after one deleted meanwhile answers with its first key
/// (and an update moves a key to the head of its bucket): a key seen before means the
/// walk went back. It then goes on after the latest kept key still in the map, and
/// failing those from the start, past the keys already seen.
pub(crate) fn walk_keys(
    mut next_key: impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>>,
    mut visit: impl FnMut(&[u8]) -> Result<bool>,
) -> Result<()> {
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut next = next_key(None)?;
    while let Some(key) = next {
        if seen.contains(&key) {
            next = resume(&mut next_key, &mut kept, &seen)?;
            continue;
        }
        let stays = visit(&key)?;
        next = next_key(Some(&key))?;
        seen.insert(key.clone());
        if stays {
            kept.push(key);
        }
    }
    Ok(())
}

/// After the walk went back: the first key not seen after the latest kept key (a kept
/// key deleted since leads back to a seen key again, and the one before it is tried).
fn resume(
    next_key: &mut impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>>,
    kept: &mut Vec<Vec<u8>>,
    seen: &HashSet<Vec<u8>>,
) -> Result<Option<Vec<u8>>> {
    while let Some(last) = kept.last() {
        match next_key(Some(last))? {
            Some(k) if seen.contains(&k) => {
                kept.pop();
            }
            // The key after it, or none: `last` was the last key.
            other => return Ok(other),
        }
    }
    let mut next = next_key(None)?;
    while let Some(k) = next.as_deref().filter(|k| seen.contains(*k)) {
        next = next_key(Some(k))?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A hash map's `BPF_MAP_GET_NEXT_KEY` as the kernel answers it: the key after the one
    /// given in the map's order, or the first key when the one given is not in the map.
    /// `on_call` runs before each answer (another writer at work).
    struct FakeHash {
        order: RefCell<Vec<u32>>,
    }

    impl FakeHash {
        fn new(n: u32) -> Self {
            FakeHash {
                order: RefCell::new((0..n).collect()),
            }
        }

        fn next_key(&self, key: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
            let order = self.order.borrow();
            let at = key
                .map(|k| u32::from_ne_bytes(k.try_into().expect("4-byte key")))
                .and_then(|k| order.iter().position(|&x| x == k));
            let next = match at {
                Some(i) => order.get(i + 1),
                None => order.first(),
            };
            Ok(next.map(|k| k.to_ne_bytes().to_vec()))
        }

        fn remove(&self, k: u32) {
            self.order.borrow_mut().retain(|&x| x != k);
        }
    }

    fn walk(map: &FakeHash, mut between: impl FnMut(&FakeHash, u32)) -> Vec<u32> {
        let mut seen = Vec::new();
        walk_keys(
            |k| map.next_key(k),
            |k| {
                let k = u32::from_ne_bytes(k.try_into().expect("4-byte key"));
                seen.push(k);
                between(map, k);
                Ok(map.order.borrow().contains(&k))
            },
        )
        .expect("walk");
        seen
    }

    #[test]
    fn a_quiet_map_is_walked_in_order() {
        assert_eq!(walk(&FakeHash::new(5), |_, _| {}), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn deleting_the_current_key_neither_restarts_nor_repeats() {
        // Every key deleted right after it is visited: each next_key starts over.
        let map = FakeHash::new(100);
        assert_eq!(walk(&map, |m, k| m.remove(k)), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn deletes_behind_and_ahead_leave_every_other_key_seen_once() {
        let map = FakeHash::new(1000);
        // Each visit deletes itself, the key before it, and every 7th key ahead.
        let seen = walk(&map, |m, k| {
            m.remove(k);
            m.remove(k.wrapping_sub(1));
            if k % 7 == 0 {
                m.remove(k + 3);
            }
        });
        let deleted_ahead: HashSet<u32> = (0..1000).filter(|k| k % 7 == 0).map(|k| k + 3).collect();
        let mut unique = seen.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no key twice");
        for k in 0..1000 {
            if !deleted_ahead.contains(&k) {
                assert!(seen.contains(&k), "key {k} seen");
            }
        }
    }

    #[test]
    fn a_key_moved_back_in_its_bucket_is_not_seen_twice() {
        // An update moves a key to the head of its bucket: here, the visited key moves
        // to the front of the whole order, so the key after it is the first key again.
        let map = FakeHash::new(50);
        let seen = walk(&map, |m, k| {
            let mut order = m.order.borrow_mut();
            order.retain(|&x| x != k);
            order.insert(0, k);
        });
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }
}
