//! The backing file: safe creation and publication, opening with checks, one
//! shared open file description per inode per process, and whole-file locks
//! that exclude both other processes (`flock`) and other threads
//! (an in-process reader/writer lock).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::ranges::{RangeTable, Span};
use crate::sys;

/// How long to wait for a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Do not wait at all.
    No,
    /// Wait at most until this instant.
    Until(Instant),
    /// Wait as long as it takes.
    Forever,
}

impl Wait {
    pub(crate) fn timeout(d: Duration) -> Wait {
        Instant::now()
            .checked_add(d)
            .map_or(Wait::Forever, Wait::Until)
    }

    pub(crate) fn remaining(self) -> Option<Duration> {
        match self {
            Wait::No => Some(Duration::ZERO),
            Wait::Until(t) => Some(t.saturating_duration_since(Instant::now())),
            Wait::Forever => None,
        }
    }
}

/// Whole-file lock mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    Shared,
    Exclusive,
}

/// One open file description shared by every handle to an inode in this
/// process. `flock` locks belong to the description, so sharing it means two
/// handles never deadlock each other; the in-process lock orders our threads.
pub(crate) struct SharedFile {
    file: File,
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Length when opened: sharray and `.npy` files never shrink, so a
    /// shorter file was truncated under us (and touching the lost pages of
    /// the mapping would raise SIGBUS).
    len: u64,
    writable: bool,
    /// The process that opened it: a child made by `fork()` inherits the
    /// registry but must not share its parent's description (the `flock`
    /// would then be shared by both processes and exclude neither).
    pid: u32,
    threads: ThreadLock,
    /// Number of in-process readers; the first takes `LOCK_SH`, the last drops it.
    readers: Mutex<usize>,
    /// Byte of the file whose OFD lock is the writers' turnstile (set once
    /// the layout is known; see [`SharedFile::set_turnstile`]).
    turnstile: OnceLock<u64>,
    /// In-process byte-range table of this inode (shared with row-region
    /// locks and pool claim views, see `ranges.rs`).
    ranges: Arc<RangeTable>,
}

type Registry = Mutex<HashMap<(u64, u64), Weak<SharedFile>>>;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Options for opening an existing file.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OpenFlags {
    pub writable: bool,
    pub allow_foreign_owner: bool,
}

impl SharedFile {
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// The in-process byte-range table of this inode.
    pub(crate) fn ranges(&self) -> &Arc<RangeTable> {
        &self.ranges
    }

    /// Open `path` (never following a symlink in any component of it, see
    /// [`sys::open_no_symlinks`]), check it is a regular file of ours, and
    /// return the process-wide shared description for its inode.
    pub(crate) fn open(path: &Path, flags: OpenFlags) -> Result<Arc<SharedFile>> {
        let path = &resolve_path(path)?;
        let ctx = || format!("cannot open {}", path.display());
        let open = |write: bool| {
            let access = if write { libc::O_RDWR } else { libc::O_RDONLY };
            sys::open_no_symlinks(None, path, access | libc::O_NOFOLLOW | libc::O_NONBLOCK, 0)
                .map(File::from)
        };
        // Open read-write when we may, so one description serves readers and
        // writers alike; fall back to read-only for read-only handles.
        let (file, writable) = match open(true) {
            Ok(f) => (f, true),
            Err(e)
                if !flags.writable
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EACCES) | Some(libc::EROFS) | Some(libc::EPERM)
                    ) =>
            {
                (
                    open(false).map_err(|e| Error::io(ctx(), e).at(path))?,
                    false,
                )
            }
            Err(e) => {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    return Err(symlink_error(path));
                }
                if e.raw_os_error() == Some(libc::EISDIR) {
                    return Err(Error::new(
                        ErrorKind::NotARegularFile,
                        "the path is a directory, not an array file",
                    )
                    .at(path));
                }
                return Err(Error::io("cannot open", e).at(path));
            }
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io("cannot stat", e).at(path))?;
        if !meta.file_type().is_file() {
            return Err(Error::new(
                ErrorKind::NotARegularFile,
                "not a regular file (a directory, device, FIFO or socket); sharray arrays are regular files",
            )
            .at(path));
        }
        // Root too: a root daemon opening a file that a user planted is the case
        // this rule matters most for.
        if !flags.allow_foreign_owner && meta.uid() != sys::euid() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "file belongs to uid {} and we are uid {}; open it with allow_other_owner(true) (the command line: --allow-other-owner) if you trust that user",
                    meta.uid(),
                    sys::euid()
                ),
            )
            .at(path));
        }
        if let Ok(fs) = sys::fs_type(&file) {
            const NFS_SUPER_MAGIC: i64 = 0x6969;
            const SMB_SUPER_MAGIC: i64 = 0x517B;
            const CIFS_MAGIC_NUMBER: i64 = 0xFF53_4D42;
            const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
            if matches!(
                fs,
                NFS_SUPER_MAGIC | SMB_SUPER_MAGIC | CIFS_MAGIC_NUMBER | FUSE_SUPER_MAGIC
            ) {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "file is on a network or FUSE filesystem, where shared mappings and locks are not coherent; use a local disk or /dev/shm",
                )
                .at(path));
            }
        }
        Ok(Self::register(file, path, &meta, writable))
    }

    /// Put a freshly opened or created file into the registry, or reuse the
    /// description another handle in this process already has.
    fn register(file: File, path: &Path, meta: &Metadata, writable: bool) -> Arc<SharedFile> {
        let (dev, ino) = (meta.dev(), meta.ino());
        let mut reg = registry().lock();
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = reg.get(&(dev, ino)).and_then(Weak::upgrade)
            && (existing.writable || !writable)
            && existing.pid == std::process::id()
        {
            return existing;
        }
        let shared = Arc::new(SharedFile {
            file,
            path: path.to_path_buf(),
            dev,
            ino,
            len: meta.len(),
            writable,
            pid: std::process::id(),
            threads: ThreadLock::default(),
            readers: Mutex::new(0),
            turnstile: OnceLock::new(),
            ranges: crate::ranges::table_for(dev, ino),
        });
        reg.insert((dev, ino), Arc::downgrade(&shared));
        shared
    }

    /// Take the whole-file lock in `mode`, waiting as `wait` says. The lock is
    /// held until the returned [`FileLock`] is dropped; it owns a reference
    /// to this file, so it may outlive the handle it was taken through.
    pub(crate) fn lock(self: &Arc<Self>, mode: LockMode, wait: Wait) -> Result<FileLock> {
        let timeout_err = || {
            Error::new(
                ErrorKind::LockTimeout,
                format!(
                    "timed out waiting for the {} lock; another process or thread holds it, retry or raise the timeout",
                    if mode == LockMode::Shared { "read" } else { "write" }
                ),
            )
            .at(&self.path)
        };
        match mode {
            LockMode::Exclusive => {
                let threads = ThreadHold::acquire(self, true, wait).ok_or_else(timeout_err)?;
                let span = self.take_span(true, wait, &timeout_err)?;
                if !self.flock(LockMode::Exclusive, wait)? {
                    return Err(timeout_err());
                }
                Ok(FileLock {
                    _span: span,
                    threads,
                    shared_flock: false,
                })
            }
            LockMode::Shared => {
                // Recursive: a thread that already holds a read guard may take
                // another even while a writer waits (no self-deadlock).
                let threads = ThreadHold::acquire(self, false, wait).ok_or_else(timeout_err)?;
                let span = self.take_span(false, wait, &timeout_err)?;
                self.join_shared_flock(wait, &timeout_err)?;
                Ok(FileLock {
                    _span: span,
                    threads,
                    shared_flock: true,
                })
            }
        }
    }

    /// The lock of a copy-on-write handle's write guard: exclusive among
    /// this process's threads and handles, shared (`LOCK_SH`) towards other
    /// processes. Its writes land in private pages, so other readers need
    /// not wait; other writers must, since their changes to pages not yet
    /// copied would show under our slice.
    pub(crate) fn lock_private_write(self: &Arc<Self>, wait: Wait) -> Result<FileLock> {
        let timeout_err = || {
            Error::new(
                ErrorKind::LockTimeout,
                "timed out waiting for the lock of a copy-on-write write guard; another process writes the file or another thread holds it, retry or raise the timeout",
            )
            .at(&self.path)
        };
        let threads = ThreadHold::acquire(self, true, wait).ok_or_else(timeout_err)?;
        let span = self.take_span(true, wait, &timeout_err)?;
        self.join_shared_flock(wait, &timeout_err)?;
        Ok(FileLock {
            _span: span,
            threads,
            shared_flock: true,
        })
    }

    /// Count one more holder of the process's shared `flock`, taking it
    /// (`LOCK_SH`) if this is the first.
    fn join_shared_flock(&self, wait: Wait, timeout_err: &dyn Fn() -> Error) -> Result<()> {
        let mut readers = match wait {
            Wait::No => self.readers.try_lock(),
            Wait::Until(t) => self.readers.try_lock_until(t),
            Wait::Forever => Some(self.readers.lock()),
        }
        .ok_or_else(timeout_err)?;
        if *readers == 0 && !self.flock(LockMode::Shared, wait)? {
            return Err(timeout_err());
        }
        *readers += 1;
        Ok(())
    }

    /// Use the OFD lock on `byte` as a turnstile that gives waiting writers
    /// priority over new readers (`flock` alone lets a stream of overlapping
    /// readers starve writers forever). See FORMAT.md, "Whole-array locks".
    pub(crate) fn set_turnstile(&self, byte: u64) {
        let _ = self.turnstile.set(byte);
    }

    /// Take (`Ok(true)`) the turnstile in `kind`, waiting as `wait` says;
    /// `Ok(false)` means the wait expired. Without a turnstile: `Ok(true)`.
    fn turnstile_enter(&self, kind: sys::RangeLock, wait: Wait) -> Result<bool> {
        let Some(&byte) = self.turnstile.get() else {
            return Ok(true);
        };
        let attempt = |block: bool| {
            sys::ofd_lock(&self.file, kind, byte, 1, block)
                .map_err(|e| Error::io("cannot take the writers' turnstile lock", e).at(&self.path))
        };
        match wait {
            Wait::Forever => attempt(true),
            Wait::No => attempt(false),
            Wait::Until(deadline) => poll_until(deadline, || attempt(false)),
        }
    }

    fn turnstile_leave(&self) {
        if let Some(&byte) = self.turnstile.get() {
            let _ = sys::ofd_lock(&self.file, sys::RangeLock::Unlock, byte, 1, false);
        }
    }

    /// Register the whole file in the in-process range table, so row-region
    /// locks and pool claim views of other threads exclude this guard.
    fn take_span(
        &self,
        exclusive: bool,
        wait: Wait,
        timeout_err: &dyn Fn() -> Error,
    ) -> Result<SpanHold> {
        let ids = self
            .ranges
            .acquire(&[Span::whole(exclusive)], None, wait)
            .map_err(|e| Error::io("cannot lock", e).at(&self.path))?
            .ok_or_else(timeout_err)?;
        Ok(SpanHold {
            ranges: Arc::clone(&self.ranges),
            ids,
        })
    }

    /// Take the `flock` in `mode` (through the turnstile). `Ok(false)` means
    /// the wait expired.
    fn flock(&self, mode: LockMode, wait: Wait) -> Result<bool> {
        match mode {
            LockMode::Exclusive => {
                // Hold the turnstile while waiting, so new readers queue
                // behind us instead of overlapping forever.
                if !self.turnstile_enter(sys::RangeLock::Exclusive, wait)? {
                    return Ok(false);
                }
                let got = self.flock_only(mode, wait);
                self.turnstile_leave();
                got
            }
            LockMode::Shared => {
                // Pass through: blocks only while a writer waits or writes.
                if !self.turnstile_enter(sys::RangeLock::Shared, wait)? {
                    return Ok(false);
                }
                self.turnstile_leave();
                self.flock_only(mode, wait)
            }
        }
    }

    fn flock_only(&self, mode: LockMode, wait: Wait) -> Result<bool> {
        let try_once = || -> Result<bool> {
            let r = match mode {
                LockMode::Shared => self.file.try_lock_shared(),
                LockMode::Exclusive => self.file.try_lock(),
            };
            match r {
                Ok(()) => Ok(true),
                Err(std::fs::TryLockError::WouldBlock) => Ok(false),
                Err(std::fs::TryLockError::Error(e)) => {
                    Err(Error::io("cannot lock", e).at(&self.path))
                }
            }
        };
        let got = match wait {
            Wait::Forever => {
                let r = match mode {
                    LockMode::Shared => self.file.lock_shared(),
                    LockMode::Exclusive => self.file.lock(),
                };
                r.map_err(|e| Error::io("cannot lock", e).at(&self.path))?;
                true
            }
            Wait::No => try_once()?,
            // flock has no timed form: poll.
            Wait::Until(deadline) => poll_until(deadline, try_once)?,
        };
        if got && let Err(e) = self.check_identity() {
            let _ = self.file.unlock();
            return Err(e);
        }
        Ok(got)
    }

    /// After locking, make sure the path still names our inode: if someone
    /// unlinked and recreated the file, our lock protects nothing.
    fn check_identity(&self) -> Result<()> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => self.check_len(m.len()),
            Ok(_) => Err(Error::new(
                ErrorKind::Replaced,
                "the file was replaced by another file while open; locks on the old one protect nothing, reopen the path",
            )
            .at(&self.path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::new(
                ErrorKind::Replaced,
                "the file was deleted while open; reopen or recreate it",
            )
            .at(&self.path)),
            Err(e) => Err(Error::io("cannot stat", e).at(&self.path)),
        }
    }
}

impl SharedFile {
    /// Is the file still as long as when we opened it? Call before touching
    /// the mapping without a lock (a truncated file raises SIGBUS there).
    pub(crate) fn ensure_not_truncated(&self) -> Result<()> {
        let now = self
            .file
            .metadata()
            .map_err(|e| Error::io("cannot stat", e).at(&self.path))?;
        self.check_len(now.len())
    }

    fn check_len(&self, now: u64) -> Result<()> {
        if now >= self.len {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "the file was truncated from {} to {now} bytes while open (by another program?); its data and control block are lost, restore it from a copy or recreate it",
                self.len
            ),
        )
        .at(&self.path))
    }
}

/// Retry `attempt` with a growing sleep (50 us to 5 ms) until it succeeds
/// (`Ok(true)`) or `deadline` passes (`Ok(false)`).
fn poll_until(deadline: Instant, mut attempt: impl FnMut() -> Result<bool>) -> Result<bool> {
    let mut nap = Duration::from_micros(50);
    loop {
        if attempt()? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(5));
    }
}

/// In-process reader/writer exclusion among the threads of this process.
///
/// Unlike a `RwLock` it hands out no guard that borrows it, so a
/// [`FileLock`] owns its share and can live as long as its owner wants
/// (the owned array guards). Readers wait only for a writer that holds the
/// lock, never for one that waits: a thread that holds a read guard may
/// always take another (no self-deadlock). Writers get priority over new
/// readers across processes through the turnstile instead.
#[derive(Default)]
struct ThreadLock {
    state: Mutex<ThreadState>,
    changed: Condvar,
}

#[derive(Default)]
struct ThreadState {
    /// Threads holding the lock shared.
    readers: usize,
    /// Does a thread hold it exclusively?
    writer: bool,
}

impl ThreadLock {
    /// Take the lock (exclusively if `write`), waiting as `wait` says;
    /// `false` means the wait expired.
    fn acquire(&self, write: bool, wait: Wait) -> bool {
        let mut s = self.state.lock();
        loop {
            let free = !s.writer && (!write || s.readers == 0);
            if free {
                if write {
                    s.writer = true;
                } else {
                    s.readers += 1;
                }
                return true;
            }
            match wait {
                Wait::No => return false,
                Wait::Forever => self.changed.wait(&mut s),
                Wait::Until(t) => {
                    if Instant::now() >= t {
                        return false;
                    }
                    let _ = self.changed.wait_until(&mut s, t);
                }
            }
        }
    }

    fn release(&self, write: bool) {
        let mut s = self.state.lock();
        if write {
            s.writer = false;
        } else {
            s.readers = s.readers.saturating_sub(1);
        }
        drop(s);
        self.changed.notify_all();
    }
}

/// A held share of a file's [`ThreadLock`], released on drop.
struct ThreadHold {
    file: Arc<SharedFile>,
    write: bool,
}

impl ThreadHold {
    fn acquire(file: &Arc<SharedFile>, write: bool, wait: Wait) -> Option<ThreadHold> {
        file.threads.acquire(write, wait).then(|| ThreadHold {
            file: Arc::clone(file),
            write,
        })
    }
}

impl Drop for ThreadHold {
    fn drop(&mut self) {
        self.file.threads.release(self.write);
    }
}

/// A whole-file entry in the in-process range table, released on drop.
struct SpanHold {
    ranges: Arc<RangeTable>,
    ids: Vec<u64>,
}

impl Drop for SpanHold {
    fn drop(&mut self) {
        self.ranges.release(&self.ids, None);
    }
}

/// A held whole-file lock: `flock` for other processes plus the in-process
/// locks for other threads. Dropping it releases them (the `flock` first).
/// It owns a reference to the file, so it borrows nothing.
pub(crate) struct FileLock {
    // Field order is drop order: the range entry goes before the thread lock.
    _span: SpanHold,
    /// The thread share, which also holds the file.
    threads: ThreadHold,
    /// Is the `flock` held `LOCK_SH` (counted in `readers`)?
    shared_flock: bool,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let file = &self.threads.file;
        if !self.shared_flock {
            let _ = file.file.unlock();
        } else {
            let mut readers = file.readers.lock();
            *readers = readers.saturating_sub(1);
            if *readers == 0 {
                let _ = file.file.unlock();
            }
        }
        // The thread share is dropped after this, releasing other threads.
    }
}

/// Create a file of `len` bytes at `path` without ever exposing a half-built
/// file and without overwriting anything: a temporary file in the same
/// directory is sized with `posix_fallocate` (so a full disk fails here, not
/// with SIGBUS later), filled by `init`, then linked into place with
/// no-clobber semantics.
///
/// `init` receives the temporary file; it maps and writes it.
pub(crate) fn create_file<R>(
    path: &Path,
    len: u64,
    mode: u32,
    preallocate: bool,
    init: impl FnOnce(&File) -> Result<R>,
) -> Result<(Arc<SharedFile>, R)> {
    create_file_with(path, len, mode, preallocate, false, init)
}

/// [`create_file`], or with `replace` a file that takes the place of an
/// existing regular file at `path` atomically: the new file is completed
/// unnamed (or under a temporary name) and renamed over the old name, so the
/// old inode stays intact for whoever still maps it, and readers of the name
/// see either the old file or the complete new one.
pub(crate) fn create_file_with<R>(
    path: &Path,
    len: u64,
    mode: u32,
    preallocate: bool,
    replace: bool,
    init: impl FnOnce(&File) -> Result<R>,
) -> Result<(Arc<SharedFile>, R)> {
    let path = &resolve_path(path)?;
    if mode > 0o777 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "mode {mode:#o} has setuid, setgid or sticky bits; give permission bits only (at most 0o777)"
            ),
        )
        .at(path));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "a symlink exists at this path; sharray never overwrites or follows it, remove it or pick another path",
            )
            .at(path));
        }
        Ok(m) if replace && m.file_type().is_file() => {}
        Ok(_) if replace => {
            return Err(Error::new(
                ErrorKind::NotARegularFile,
                "something other than a regular file is at this path; only a regular file is replaced",
            )
            .at(path));
        }
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "a file already exists at this path; sharray never overwrites, remove it first or pick another path",
            )
            .at(path));
        }
        Err(_) => {}
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(Error::new(ErrorKind::InvalidInput, "the path has no file name").at(path));
    };
    let dirfd =
        sys::open_no_symlinks(None, dir, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                symlink_error(path)
            } else {
                Error::io(format!("cannot open the directory {}", dir.display()), e).at(path)
            }
        })?;
    let tmp = Unpublished::new(dirfd, mode).map_err(|e| {
        Error::io(
            format!("cannot create a temporary file in {}", dir.display()),
            e,
        )
        .at(path)
    })?;
    let file = &tmp.file;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("cannot set permissions", e).at(path))?;
    if preallocate {
        sys::fallocate(file, 0, len).map_err(|e| {
            let too_big = e.raw_os_error() == Some(libc::EFBIG);
            let mut err = Error::io(format!("cannot allocate {len} bytes"), e);
            // Say how much was asked and how much there is (the bare
            // "filesystem is full" puzzles on an almost empty disk).
            let free = match sys::free_bytes(file) {
                Ok(f) => format!("{f} bytes ({}) are free there", human_bytes(f)),
                Err(_) => "the free space there is unknown".to_string(),
            };
            let asked = format!("{len} bytes ({})", human_bytes(len));
            if too_big {
                err = Error::new(
                    ErrorKind::InvalidInput,
                    format!("cannot create a file of {asked}: larger than this filesystem allows ({free}); choose a smaller array"),
                );
            } else if err.kind() == ErrorKind::NoSpace {
                err = Error::new(
                    ErrorKind::NoSpace,
                    format!("the filesystem of {} is too full: the file needs {asked}, but only {free}; free space or choose a smaller array", dir.display()),
                );
            } else if err.kind() == ErrorKind::Io {
                // e.g. EOPNOTSUPP on exotic filesystems: say what to do.
                err = Error::new(
                    ErrorKind::Unsupported,
                    format!("cannot preallocate {len} bytes on this filesystem; use a local disk or /dev/shm"),
                );
            }
            err.at(path)
        })?;
    }
    file.set_len(len)
        .map_err(|e| Error::io("cannot size the file", e).at(path))?;
    let made = init(file).map_err(|e| e.at(path))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io("cannot stat", e).at(path))?;
    crate::fail::point("file.create.filled");
    let published = if replace {
        tmp.publish_replacing(name)
    } else {
        tmp.publish(name)
    };
    let file = published.map_err(|err| {
        if err.kind() == io::ErrorKind::AlreadyExists {
            Error::new(
                ErrorKind::AlreadyExists,
                "a file appeared at this path while we were creating ours; nothing was overwritten, pick another path",
            )
            .at(path)
        } else {
            Error::io("cannot publish the new file", err).at(path)
        }
    })?;
    Ok((SharedFile::register(file, path, &meta, true), made))
}

fn symlink_error(path: &Path) -> Error {
    Error::new(
        ErrorKind::NotARegularFile,
        "the path is a symlink or goes through one; sharray refuses to follow symlinks anywhere in a path, pass the real path (see `realpath`)",
    )
    .at(path)
}

/// A random suffix for a temporary name.
fn temp_suffix() -> u64 {
    use std::hash::BuildHasher;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::hash::RandomState::new().hash_one((std::process::id(), sys::monotonic_ns(), n))
}

/// A new file that has no name in its directory yet: an unnamed `O_TMPFILE`
/// file where the filesystem supports it (nothing is left behind even under
/// SIGKILL), else a hidden `.sharray-tmp-*` file that is removed on drop.
struct Unpublished {
    dir: std::os::fd::OwnedFd,
    file: File,
    /// The temporary name, for the fallback.
    named: Option<std::ffi::OsString>,
}

impl Unpublished {
    fn new(dir: std::os::fd::OwnedFd, mode: u32) -> io::Result<Unpublished> {
        use std::os::fd::AsFd;
        let tmpfile = if crate::fail::forced("file.tmpfile.unsupported") {
            Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
        } else {
            sys::open_no_symlinks(
                Some(dir.as_fd()),
                Path::new("."),
                libc::O_TMPFILE | libc::O_RDWR,
                mode,
            )
        };
        match tmpfile {
            Ok(fd) => {
                return Ok(Unpublished {
                    dir,
                    file: File::from(fd),
                    named: None,
                });
            }
            // Filesystems without O_TMPFILE say so in several ways.
            Err(e)
                if !matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP)
                        | Some(libc::EISDIR)
                        | Some(libc::EINVAL)
                        | Some(libc::ENOENT)
                ) =>
            {
                return Err(e);
            }
            Err(_) => {}
        }
        loop {
            let name = std::ffi::OsString::from(format!(".sharray-tmp-{:016x}", temp_suffix()));
            match sys::open_no_symlinks(
                Some(dir.as_fd()),
                Path::new(&name),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NOFOLLOW,
                mode,
            ) {
                Ok(fd) => {
                    return Ok(Unpublished {
                        dir,
                        file: File::from(fd),
                        named: Some(name),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Put the file in place as `name`, replacing what is there (renaming
    /// over it; an unnamed file first gets a temporary name), and return it.
    fn publish_replacing(mut self, name: &std::ffi::OsStr) -> io::Result<File> {
        use std::os::fd::AsFd;
        let tmp = match self.named.take() {
            Some(tmp) => tmp,
            None => loop {
                let t = std::ffi::OsString::from(format!(".sharray-tmp-{:016x}", temp_suffix()));
                match sys::link_unnamed(self.file.as_fd(), self.dir.as_fd(), &t) {
                    Ok(()) => break t,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            },
        };
        if let Err(e) = sys::rename_replace(self.dir.as_fd(), &tmp, name) {
            // Dropping `self` with the temporary name removes it.
            self.named = Some(tmp);
            return Err(e);
        }
        self.file.try_clone()
    }

    /// Link the file into place as `name`, never replacing an entry, and
    /// return it opened through that name (a description opened while the
    /// file had no name shows as deleted in `/proc/PID/maps` and `lsof`).
    fn publish(mut self, name: &std::ffi::OsStr) -> io::Result<File> {
        use std::os::fd::AsFd;
        match self.named.take() {
            None => sys::link_unnamed(self.file.as_fd(), self.dir.as_fd(), name)?,
            Some(tmp) => {
                let r = sys::rename_noreplace(self.dir.as_fd(), &tmp, name);
                if r.is_err() {
                    self.named = Some(tmp);
                }
                r?
            }
        }
        let named = sys::open_no_symlinks(
            Some(self.dir.as_fd()),
            Path::new(name),
            libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0,
        )
        .map(File::from);
        let ours = self.file.metadata()?;
        let same = |f: &File| {
            f.metadata()
                .is_ok_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino())
        };
        match named {
            Ok(f) if same(&f) => Ok(f),
            // Someone replaced the name already: keep our own file.
            _ => self.file.try_clone(),
        }
    }
}

impl Drop for Unpublished {
    fn drop(&mut self) {
        use std::os::fd::AsFd;
        if let Some(tmp) = &self.named {
            let _ = sys::unlink_at(self.dir.as_fd(), tmp);
        }
    }
}

/// The path of a RAM-backed array called `name` (`/dev/shm/NAME`).
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] if `name` is empty, contains `/`, or is `.`/`..`.
pub fn shm_path(name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid shm name {name:?}: use a plain file name without '/'"),
        ));
    }
    Ok(Path::new("/dev/shm").join(name))
}

/// `shm:NAME` -> `/dev/shm/NAME`; any other path unchanged.
fn resolve_path(path: &Path) -> Result<PathBuf> {
    match path.to_str().and_then(|s| s.strip_prefix("shm:")) {
        Some(name) => shm_path(name).map_err(|e| e.at(path)),
        None => Ok(path.to_path_buf()),
    }
}

/// Resolve a user-facing location: `shm:NAME` means `/dev/shm/NAME`, anything
/// else is a filesystem path. Every function of the crate that takes a path
/// applies this itself; use it to learn the real path.
///
/// ```
/// use std::path::Path;
/// assert_eq!(sharray::resolve_location("shm:frames").unwrap(), Path::new("/dev/shm/frames"));
/// assert_eq!(sharray::resolve_location("data/a.npy").unwrap(), Path::new("data/a.npy"));
/// ```
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] for an invalid shm name.
pub fn resolve_location(loc: &str) -> Result<PathBuf> {
    match loc.strip_prefix("shm:") {
        Some(name) => shm_path(name),
        None => Ok(PathBuf::from(loc)),
    }
}

/// `n` bytes in the largest binary unit that keeps it at least 1
/// (`1.5 GiB`), for messages.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
