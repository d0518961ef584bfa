//! `futex_waitv(2)`: wait on several futex words at once (Linux 5.16+),
//! and `eventfd(2)`, the readiness object async waits hand to event loops.
//!
//! # Safety
//!
//! Every word passed in must stay mapped and aligned for the duration of the
//! call; callers keep the mapping alive (the async reactor holds an `Arc` on
//! it while the word is registered).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// `FUTEX2_SIZE_U32`: the word is 32 bits (no `FUTEX2_PRIVATE`: shared
/// futexes, so wakes from other processes mapping the file reach us).
const FUTEX2_SIZE_U32: u32 = 0x02;

/// The kernel's `struct futex_waitv` (include/uapi/linux/futex.h).
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}
const _: () = assert!(std::mem::size_of::<FutexWaitv>() == 24);

/// The most words one `futex_waitv` call accepts (`FUTEX_WAITV_MAX`).
pub const FUTEX_WAITV_MAX: usize = 128;

/// What ended a [`futex_waitv`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitvOutcome {
    /// Word number `i` was woken.
    Woken(usize),
    /// A word did not hold its expected value, the timeout passed, or a
    /// signal arrived: re-check every word.
    Recheck,
    /// The kernel has no `futex_waitv` (older than 5.16): poll instead.
    Unsupported,
}

/// Block until one of `words[i]` (expected to hold `expected[i]`) is woken by
/// a `FUTEX_WAKE` from any process, or `timeout` passes.
///
/// See `futex_waitv(2)`. At most [`FUTEX_WAITV_MAX`] words.
///
/// # Panics
///
/// If more than [`FUTEX_WAITV_MAX`] words are given.
pub fn futex_waitv(words: &[(&AtomicU32, u32)], timeout: Duration) -> WaitvOutcome {
    assert!(
        words.len() <= FUTEX_WAITV_MAX,
        "futex_waitv takes at most 128 words"
    );
    let list: Vec<FutexWaitv> = words
        .iter()
        .map(|(w, v)| FutexWaitv {
            val: u64::from(*v),
            uaddr: w.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    // The timeout is absolute, on CLOCK_MONOTONIC.
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec on our stack.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let ns = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
    let abs = libc::timespec {
        tv_sec: now
            .tv_sec
            .saturating_add(timeout.as_secs().min(i64::MAX as u64 / 4) as libc::time_t)
            .saturating_add((ns / 1_000_000_000) as libc::time_t),
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `list` holds `words.len()` initialised entries whose addresses
    // are valid aligned u32 words (the caller's references, kept alive by the
    // borrow for the whole call); `abs` lives on our stack across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            list.as_ptr(),
            list.len() as libc::c_uint,
            0 as libc::c_uint,
            &abs as *const libc::timespec,
            libc::CLOCK_MONOTONIC,
        )
    };
    if ret >= 0 {
        return WaitvOutcome::Woken(ret as usize);
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) => WaitvOutcome::Unsupported,
        _ => WaitvOutcome::Recheck,
    }
}

/// A non-blocking, close-on-exec `eventfd` in counter mode.
///
/// # Errors
///
/// As `eventfd(2)` (EMFILE when out of descriptors).
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with flags, no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Make an [`eventfd`] readable (add 1 to its counter). Never blocks.
pub fn eventfd_signal(fd: std::os::fd::BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64 on our stack to an fd we borrow.
    // EAGAIN (counter saturated) still leaves it readable: ignored.
    unsafe {
        libc::write(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            (&one as *const u64).cast(),
            8,
        )
    };
}

/// Reset an [`eventfd`] to not readable. Never blocks.
pub fn eventfd_drain(fd: std::os::fd::BorrowedFd<'_>) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a valid u64 on our stack; EAGAIN
    // (already drained) is fine.
    unsafe {
        libc::read(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            (&mut v as *mut u64).cast(),
            8,
        )
    };
}
