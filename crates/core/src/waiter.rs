//! Waiting for a consumer's fds without a sleep loop: epoll over them and an eventfd that
//! `wake` writes, so a waiter on a blocking thread ends at once on close or abort.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Data may be available.
    Ready,
    Timeout,
    /// `wake` was called (or the consumer closed).
    Woken,
}

pub(crate) struct Waiter {
    epoll: OwnedFd,
    wake: OwnedFd,
    /// Counts `wake` calls: a wait ends when it changed since the waiter began, so a wake
    /// nobody was waiting for (an abort while a batch was being handled) cannot end a
    /// later wait.
    wakes: AtomicU64,
    closed: AtomicBool,
}

impl Waiter {
    /// Waits on `fds` becoming readable.
    pub(crate) fn new(fds: &[RawFd]) -> Result<Self> {
        let epoll = epoll_with(fds)?;
        // SAFETY: eventfd has no memory preconditions.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return Err(Error::os("eventfd", io::Error::last_os_error()));
        }
        // SAFETY: a fresh fd owned by nobody else.
        let wake = unsafe { OwnedFd::from_raw_fd(wake) };
        epoll_add(&epoll, wake.as_raw_fd())?;
        Ok(Waiter {
            epoll,
            wake,
            wakes: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    pub(crate) fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::Acquire)
    }

    /// Sleeps until an fd is readable, `timeout_ms` passes (-1: forever), or `wake` is
    /// called after the caller read `since` from `wakes()`.
    pub(crate) fn wait(&self, timeout_ms: i32, since: u64) -> Result<Wait> {
        const EVENTS: usize = 8;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        loop {
            if self.is_closed() || self.wakes() != since {
                return Ok(Wait::Woken);
            }
            // SAFETY: `events` is a valid buffer of EVENTS entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    EVENTS as i32,
                    timeout_ms,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::os("epoll_wait", e));
            }
            if n == 0 {
                return Ok(Wait::Timeout);
            }
            let ready = &events[..n as usize];
            let wake = self.wake.as_raw_fd() as u64;
            if ready.iter().any(|e| e.u64 == wake) {
                let mut buf = 0u64;
                // SAFETY: reading 8 bytes into a u64 from our own nonblocking eventfd.
                unsafe { libc::read(self.wake.as_raw_fd(), &mut buf as *mut u64 as *mut _, 8) };
                if ready.iter().all(|e| e.u64 == wake) {
                    // A stale wake (counted before `since`) only clears the eventfd.
                    continue;
                }
            }
            return Ok(Wait::Ready);
        }
    }

    /// Wakes a thread blocked in `wait` (or the next one to wait).
    pub(crate) fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::AcqRel);
        let one = 1u64;
        // SAFETY: writing 8 bytes from a u64 to our own eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), &one as *const u64 as *const _, 8) };
    }

    /// Marks it closed and wakes any waiter; `true` the first time.
    pub(crate) fn close(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        self.wake();
        first
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

fn epoll_with(fds: &[i32]) -> Result<OwnedFd> {
    // SAFETY: epoll_create1 has no memory preconditions.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(Error::os("epoll_create1", io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd owned by nobody else.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    for &fd in fds {
        epoll_add(&ep, fd)?;
    }
    Ok(ep)
}

fn epoll_add(ep: &OwnedFd, fd: i32) -> Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: `ev` is a valid epoll_event; both fds are open.
    let rc = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if rc < 0 {
        return Err(Error::os("epoll_ctl", io::Error::last_os_error()));
    }
    Ok(())
}
