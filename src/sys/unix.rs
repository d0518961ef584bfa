//! Linux system calls that the standard library does not wrap.
//!
//! # Safety
//!
//! This is one of the few files allowed to use `unsafe`. Every call here passes
//! pointers that are valid for the duration of the call (stack values or
//! references), and checks the return value. Futex calls take a reference to an
//! `AtomicU32`, which guarantees a valid, aligned, 4-byte word; the kernel only
//! reads it.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Reserve disk (or tmpfs) blocks for `[offset, offset + len)` so later writes
/// through a mapping cannot hit ENOSPC (which would be a SIGBUS).
///
/// See `posix_fallocate(3)`. Returns the error number as an `io::Error`
/// (`ENOSPC` on a full filesystem).
pub fn fallocate(fd: impl AsFd, offset: u64, len: u64) -> io::Result<()> {
    let off =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: plain syscall on a valid fd; no pointers.
    let ret = unsafe { libc::posix_fallocate(fd.as_fd().as_raw_fd(), off, len) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

/// Kind of an OFD byte-range lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeLock {
    /// Shared (read) lock: `F_RDLCK`.
    Shared,
    /// Exclusive (write) lock: `F_WRLCK`.
    Exclusive,
    /// Unlock: `F_UNLCK`.
    Unlock,
}

fn flock_struct(kind: RangeLock, start: u64, len: u64) -> io::Result<libc::flock> {
    let l_type = match kind {
        RangeLock::Shared => libc::F_RDLCK,
        RangeLock::Exclusive => libc::F_WRLCK,
        RangeLock::Unlock => libc::F_UNLCK,
    };
    let start =
        libc::off_t::try_from(start).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `libc::flock` is a plain C struct; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    fl.l_pid = 0; // required for OFD locks
    Ok(fl)
}

/// Set an open-file-description byte-range lock (`F_OFD_SETLK` / `F_OFD_SETLKW`,
/// see `fcntl(2)`). OFD locks belong to the open file description, survive
/// `close` of other descriptors for the same file, and are released by the
/// kernel when the last descriptor of the description closes (process death).
///
/// With `wait == false` a conflicting lock gives `Ok(false)`.
pub fn ofd_lock(
    fd: impl AsFd,
    kind: RangeLock,
    start: u64,
    len: u64,
    wait: bool,
) -> io::Result<bool> {
    let fl = flock_struct(kind, start, len)?;
    let cmd = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    loop {
        // SAFETY: `fl` is a valid flock struct that lives across the call.
        let ret = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), cmd, &fl as *const libc::flock) };
        match cvt(ret) {
            Ok(_) => return Ok(true),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::EACCES) if !wait => return Ok(false),
                _ => return Err(e),
            },
        }
    }
}

/// Is any byte of `[start, start+len)` locked by another open file description
/// in a way that conflicts with `kind`? (`F_OFD_GETLK`.) Returns the kind of the
/// conflicting lock, or `None`.
pub fn ofd_probe(
    fd: impl AsFd,
    kind: RangeLock,
    start: u64,
    len: u64,
) -> io::Result<Option<RangeLock>> {
    let mut fl = flock_struct(kind, start, len)?;
    // SAFETY: `fl` is a valid, writable flock struct that lives across the call.
    let ret = unsafe {
        libc::fcntl(
            fd.as_fd().as_raw_fd(),
            libc::F_OFD_GETLK,
            &mut fl as *mut libc::flock,
        )
    };
    cvt(ret)?;
    Ok(match fl.l_type as libc::c_int {
        libc::F_UNLCK => None,
        libc::F_RDLCK => Some(RangeLock::Shared),
        _ => Some(RangeLock::Exclusive),
    })
}

/// Block while `*word == expected`, at most `timeout` (forever if `None`).
///
/// Uses a *shared* futex (no `FUTEX_PRIVATE_FLAG`), so it pairs with
/// [`futex_wake`] from other processes mapping the same file. Returns early on
/// a wake, a value mismatch, a signal or a spurious wake-up: callers re-check
/// their condition in a loop.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64 / 2) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid aligned u32 for the duration of the call; the
    // timespec (if any) lives on our stack across the call. Errors (EAGAIN on
    // mismatch, ETIMEDOUT, EINTR) all mean "re-check", so the result is ignored.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wake up to `n` waiters blocked in [`futex_wait`] on `word`, in any process.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a valid aligned u32; FUTEX_WAKE does not dereference
    // anything else.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Fault in (and allocate) the pages of `[ptr, ptr+len)` for writing, without
/// changing their contents (`MADV_POPULATE_WRITE`, Linux 5.14; see
/// `madvise(2)`). Errors are returned, never signalled; callers treat this as
/// a hint.
///
/// # Safety
///
/// `ptr..ptr+len` must lie inside one live writable mapping.
pub unsafe fn populate_write(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: forwarded: the caller guarantees the range is inside a live
    // writable mapping.
    unsafe { populate(ptr, len, libc::MADV_POPULATE_WRITE) }
}

/// Fault in the pages of `[ptr, ptr+len)` for reading, without changing
/// their contents (`MADV_POPULATE_READ`, Linux 5.14; see `madvise(2)`).
/// Errors are returned, never signalled; callers treat this as a hint.
///
/// # Safety
///
/// `ptr..ptr+len` must lie inside one live mapping.
pub unsafe fn populate_read(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: forwarded: the caller guarantees the range is inside a live
    // mapping.
    unsafe { populate(ptr, len, libc::MADV_POPULATE_READ) }
}

/// `madvise(advice)` over the pages covering `[ptr, ptr+len)`, for one of
/// the two populate advices (which never change contents).
///
/// # Safety
///
/// As [`populate_read`] / [`populate_write`].
unsafe fn populate(ptr: *mut u8, len: usize, advice: libc::c_int) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is inside a live mapping;
    // populating never changes contents.
    unsafe { madvise(ptr, len, advice) }
}

/// `madvise(advice)` over the pages covering `[ptr, ptr+len)` (the start is
/// rounded down to a page boundary; see `madvise(2)`). For the hint advices
/// (`MADV_NORMAL`, `MADV_SEQUENTIAL`, `MADV_RANDOM`, `MADV_WILLNEED`,
/// `MADV_HUGEPAGE`) and `MADV_DONTNEED` on a `MAP_SHARED` file mapping, which
/// only drops this process's page-table entries: contents never change.
///
/// # Safety
///
/// `ptr..ptr+len` must lie inside one live mapping, and `advice` must not
/// change what the range reads (`MADV_DONTNEED` on a private mapping, or
/// `MADV_REMOVE`/`MADV_FREE`, would: the caller must rule that out).
pub unsafe fn madvise(ptr: *mut u8, len: usize, advice: libc::c_int) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let page = page_size();
    let start = (ptr as usize) & !(page - 1);
    let len = len + (ptr as usize - start);
    // SAFETY: the caller guarantees the range is inside a live mapping and
    // that this advice keeps its contents; the rounded-down start is in the
    // same mapping because mappings are page aligned.
    cvt(unsafe { libc::madvise(start as *mut libc::c_void, len, advice) })?;
    Ok(())
}

/// `posix_fadvise(fd, offset, len, advice)` (see `posix_fadvise(2)`): a
/// page-cache hint for the file itself, shared by every process.
/// `POSIX_FADV_DONTNEED` drops the clean cached pages of the range that no
/// process maps (starting write-back of dirty ones); `POSIX_FADV_WILLNEED`
/// starts reading the range in. `len == 0` means "to the end of the file".
pub fn fadvise(fd: impl AsFd, offset: u64, len: u64, advice: libc::c_int) -> io::Result<()> {
    let off =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain syscall on a valid fd; no pointers.
    let ret = unsafe { libc::posix_fadvise(fd.as_fd().as_raw_fd(), off, len, advice) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

/// Start writing back the dirty page-cache pages of `[offset, offset+len)`
/// without waiting (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, see
/// `sync_file_range(2)`). Pages dirtied through a shared mapping count: the
/// kernel marks them dirty when they are first written.
pub fn start_writeback(fd: impl AsFd, offset: u64, len: u64) -> io::Result<()> {
    let off =
        libc::off64_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let len =
        libc::off64_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain syscall on a valid fd; no pointers.
    cvt(unsafe {
        libc::sync_file_range(
            fd.as_fd().as_raw_fd(),
            off,
            len,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    })?;
    Ok(())
}

/// The system page size (`sysconf(_SC_PAGESIZE)`, see `sysconf(3)`).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v <= 0 { 4096 } else { v as usize }
}

fn prot(writable: bool) -> libc::c_int {
    if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    }
}

/// Map `len` bytes of `fd` from `offset` (a multiple of [`page_size`]),
/// `MAP_SHARED`, readable and writable if `writable`, at an address the
/// kernel picks (`mmap(2)`). The caller owns the new range and unmaps it
/// with [`munmap`].
pub fn map_shared(
    fd: impl AsFd,
    offset: u64,
    len: usize,
    writable: bool,
) -> io::Result<NonNull<u8>> {
    map_fd(fd, offset, len, prot(writable), libc::MAP_SHARED)
}

/// Map `len` bytes of `fd` from `offset` (a multiple of [`page_size`]),
/// `MAP_PRIVATE`, readable and writable: copy-on-write, so writes through it
/// stay in this process and pages not yet written show the file's current
/// content (`mmap(2)`). The caller owns the new range and unmaps it with
/// [`munmap`].
pub fn map_private(fd: impl AsFd, offset: u64, len: usize) -> io::Result<NonNull<u8>> {
    map_fd(fd, offset, len, prot(true), libc::MAP_PRIVATE)
}

fn map_fd(
    fd: impl AsFd,
    offset: u64,
    len: usize,
    prot: libc::c_int,
    flags: libc::c_int,
) -> io::Result<NonNull<u8>> {
    let off =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a fresh mapping at a kernel-chosen address replaces nothing;
    // the fd is open for the duration of the call.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            flags,
            fd.as_fd().as_raw_fd(),
            off,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(NonNull::new(p.cast()).expect("mmap never returns null on success"))
}

/// Move the page tables of the mapping `[addr, addr+len)` to a new address
/// the kernel picks, and return it, leaving the old range mapped to the same
/// file without page tables (`mremap(MREMAP_MAYMOVE | MREMAP_DONTUNMAP)`,
/// Linux 5.7, for shared mappings 5.13; see `mremap(2)`). Kernels that refuse
/// it for this mapping return `EINVAL` ([`io::ErrorKind::InvalidInput`]).
/// The caller owns the returned range too and unmaps it with [`munmap`].
///
/// # Safety
///
/// `[addr, addr+len)` must be exactly one whole mapping that the caller
/// owns (from [`map_shared`] or this function).
pub unsafe fn mremap_dontunmap(addr: NonNull<u8>, len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: the caller owns this mapping; DONTUNMAP keeps the old range
    // mapped, so no hole appears under pointers into it. The fifth
    // (variadic) argument must be given: with DONTUNMAP the kernel reads it
    // as an address hint and refuses an unaligned one, whatever happened to
    // be in the register.
    let moved = unsafe {
        libc::mremap(
            addr.as_ptr().cast(),
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_DONTUNMAP,
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if moved == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(NonNull::new(moved.cast()).expect("mremap never returns null on success"))
}

/// Replace `[addr, addr+len)` in one step with private zero pages, readable
/// and writable if `writable`, reserving no swap
/// (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)`, see
/// `mmap(2)`). Because the replacement is atomic, no other mapping can
/// appear in the range meanwhile. Errors (`ENOMEM`) leave the old mapping
/// in place.
///
/// # Safety
///
/// The caller must own `[addr, addr+len)` (page aligned): whatever was
/// mapped there is gone, and every pointer into it now sees zero pages.
pub unsafe fn map_zero_fixed(addr: NonNull<u8>, len: usize, writable: bool) -> io::Result<()> {
    // SAFETY: the caller owns the range; MAP_FIXED replaces exactly it.
    let p = unsafe {
        libc::mmap(
            addr.as_ptr().cast(),
            len,
            prot(writable),
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    if p != addr.as_ptr().cast() {
        // MAP_FIXED never places elsewhere; treat it as a failure anyway.
        return Err(io::Error::other("mmap(MAP_FIXED) returned another address"));
    }
    Ok(())
}

/// Unmap `[addr, addr+len)` (`munmap(2)`).
///
/// # Safety
///
/// The caller must own the range (a mapping from [`map_shared`] or
/// [`mremap_dontunmap`]), and nothing may access it afterwards.
pub unsafe fn munmap(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: the caller owns the range and gives it up.
    cvt(unsafe { libc::munmap(addr.as_ptr().cast(), len) })?;
    Ok(())
}

/// Filesystem magic number of the filesystem holding `fd` (`fstatfs(2)`).
pub fn fs_type(fd: impl AsFd) -> io::Result<i64> {
    // SAFETY: all-zero is a valid statfs; the kernel fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid writable struct living across the call.
    cvt(unsafe { libc::fstatfs(fd.as_fd().as_raw_fd(), &mut st) })?;
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
}

/// Bytes an unprivileged user may still allocate on the filesystem holding
/// `fd` (`fstatvfs(2)`: available blocks times the fragment size).
pub fn free_bytes(fd: impl AsFd) -> io::Result<u64> {
    // SAFETY: all-zero is a valid statvfs; the kernel fills it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid writable struct living across the call.
    cvt(unsafe { libc::fstatvfs(fd.as_fd().as_raw_fd(), &mut st) })?;
    #[allow(clippy::unnecessary_cast)]
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Monotonic clock in nanoseconds (`CLOCK_MONOTONIC`), comparable across
/// processes on one machine.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid writable struct.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Resident set size of this process in bytes (from `/proc/self/statm`).
pub fn resident_bytes() -> io::Result<u64> {
    let s = std::fs::read_to_string("/proc/self/statm")?;
    let rss_pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("unexpected /proc/self/statm format"))?;
    Ok(rss_pages * page_size() as u64)
}

/// Send `sig` to the calling thread (`raise(3)`): `SIGKILL` kills the
/// process and `SIGSTOP` stops every thread of it (until `SIGCONT`) before
/// this call returns. (A process-directed `kill(getpid(), ..)` may be taken
/// by another thread, so the caller could run on for a moment.)
pub fn raise(sig: i32) -> io::Result<()> {
    // SAFETY: raise has no memory preconditions; an invalid signal number
    // is reported as an error.
    if unsafe { libc::raise(sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn c_path(path: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path contains a NUL byte"))
}

fn owned(fd: libc::c_int) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let fd = cvt(fd)?;
    // SAFETY: the kernel just returned this new descriptor; nobody else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Open `path` relative to `dir` (the current directory if `None`) with
/// `flags` (`O_CLOEXEC` is added) and `mode` (used with `O_CREAT` /
/// `O_TMPFILE`), refusing a symlink in *any* component of the path
/// (`openat2(2)` with `RESOLVE_NO_SYMLINKS`, Linux >= 5.6: `ELOOP`). On a
/// kernel without `openat2` (`ENOSYS`, or `EPERM` under a seccomp filter
/// that does not know it), falls back to `openat(2)` with `O_NOFOLLOW`,
/// which refuses a symlink in the last component only.
pub fn open_no_symlinks(
    dir: Option<std::os::fd::BorrowedFd<'_>>,
    path: &std::path::Path,
    flags: i32,
    mode: u32,
) -> io::Result<std::os::fd::OwnedFd> {
    let c = c_path(path)?;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let flags = flags | libc::O_CLOEXEC;
    let creates = flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
    /// `struct open_how` of `openat2(2)` (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: flags as u64,
        mode: if creates { u64::from(mode) } else { 0 },
        resolve: libc::RESOLVE_NO_SYMLINKS,
    };
    // SAFETY: `c` is a NUL-terminated path and `how` a valid open_how, both
    // alive for the call; the size passed is the struct's.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    match owned(ret as libc::c_int) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {
            // SAFETY: `c` is a NUL-terminated path alive for the call.
            let fd = unsafe {
                libc::openat(
                    dirfd,
                    c.as_ptr(),
                    flags | libc::O_NOFOLLOW,
                    mode as libc::c_uint,
                )
            };
            owned(fd)
        }
        r => r,
    }
}

/// Give the unnamed file `fd` (from `O_TMPFILE`) the name `name` in `dir`,
/// never replacing an existing entry (`EEXIST`). Uses `linkat(2)` with
/// `AT_EMPTY_PATH` (needs `CAP_DAC_READ_SEARCH`), else through
/// `/proc/self/fd` (`AT_SYMLINK_FOLLOW`), as `open(2)` documents.
pub fn link_unnamed(
    fd: std::os::fd::BorrowedFd<'_>,
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::OsStr,
) -> io::Result<()> {
    let c = c_path(std::path::Path::new(name))?;
    let empty = c"";
    // SAFETY: both strings are NUL-terminated and alive for the call.
    let r = cvt(unsafe {
        libc::linkat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    });
    match r {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EPERM)) => {
            let proc = std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .expect("no NUL in a number");
            // SAFETY: both strings are NUL-terminated and alive for the call.
            cvt(unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    proc.as_ptr(),
                    dir.as_raw_fd(),
                    c.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            })
            .map(drop)
        }
        r => r.map(drop),
    }
}

/// Rename `from` to `to` within `dir`, atomically replacing `to` if it
/// exists (`renameat(2)`).
pub fn rename_replace(
    dir: std::os::fd::BorrowedFd<'_>,
    from: &std::ffi::OsStr,
    to: &std::ffi::OsStr,
) -> io::Result<()> {
    let f = c_path(std::path::Path::new(from))?;
    let t = c_path(std::path::Path::new(to))?;
    let d = dir.as_raw_fd();
    // SAFETY: both strings are NUL-terminated and alive for the call.
    cvt(unsafe { libc::renameat(d, f.as_ptr(), d, t.as_ptr()) }).map(drop)
}

/// Rename `from` to `to` within `dir`, never replacing `to` (`EEXIST`):
/// `renameat2(2)` with `RENAME_NOREPLACE`, or, where the filesystem does not
/// support it (`EINVAL`), `linkat(2)` then `unlinkat(2)` of `from`.
pub fn rename_noreplace(
    dir: std::os::fd::BorrowedFd<'_>,
    from: &std::ffi::OsStr,
    to: &std::ffi::OsStr,
) -> io::Result<()> {
    let f = c_path(std::path::Path::new(from))?;
    let t = c_path(std::path::Path::new(to))?;
    let d = dir.as_raw_fd();
    // SAFETY: both strings are NUL-terminated and alive for the call.
    let r = cvt(unsafe { libc::renameat2(d, f.as_ptr(), d, t.as_ptr(), libc::RENAME_NOREPLACE) });
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // SAFETY: as above.
            cvt(unsafe { libc::linkat(d, f.as_ptr(), d, t.as_ptr(), 0) })?;
            unlink_at(dir, from)
        }
        r => r.map(drop),
    }
}

/// Remove the name `name` from `dir` (`unlinkat(2)`).
pub fn unlink_at(dir: std::os::fd::BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<()> {
    let c = c_path(std::path::Path::new(name))?;
    // SAFETY: `c` is NUL-terminated and alive for the call.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
}

static CANCELLABLE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static INTERRUPTED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_interrupt(sig: libc::c_int) {
    use std::sync::atomic::Ordering::SeqCst;
    if CANCELLABLE.load(SeqCst) > 0 {
        INTERRUPTED.store(sig, SeqCst);
    } else {
        // Nothing asked to be told: the signal's default action (terminate),
        // as if no handler were installed. Both calls are async-signal-safe.
        // SAFETY: resetting the disposition of the signal being handled and
        // raising it again has no memory preconditions.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// While a `Cancellable` lives, SIGINT and SIGTERM do not terminate the
/// process: they are recorded, and [`interrupted`] returns the signal, so a
/// long operation can stop cleanly (and clean up what it made). With no
/// `Cancellable` alive the signals keep their default action. For front
/// ends (the CLI's copies); a library never installs signal handlers on its
/// own.
#[derive(Debug)]
pub struct Cancellable(());

impl Cancellable {
    /// Start turning SIGINT and SIGTERM into [`interrupted`].
    ///
    /// # Errors
    ///
    /// The error of `sigaction(2)`.
    pub fn new() -> io::Result<Cancellable> {
        static INSTALLED: std::sync::OnceLock<io::Result<()>> = std::sync::OnceLock::new();
        let installed = INSTALLED.get_or_init(|| {
            for sig in [libc::SIGINT, libc::SIGTERM] {
                // SAFETY: a zeroed sigaction is a valid value to fill in; the
                // handler only touches atomics and async-signal-safe calls.
                let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
                act.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as usize;
                // SAFETY: `act.sa_mask` is a valid sigset_t to initialise.
                unsafe { libc::sigemptyset(&mut act.sa_mask) };
                act.sa_flags = libc::SA_RESTART;
                // SAFETY: `act` is fully initialised; the old action is not asked for.
                cvt(unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) })?;
            }
            Ok(())
        });
        if let Err(e) = installed {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        CANCELLABLE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Cancellable(()))
    }
}

impl Drop for Cancellable {
    fn drop(&mut self) {
        CANCELLABLE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The signal (SIGINT or SIGTERM) received while a [`Cancellable`] was
/// alive, if any.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
