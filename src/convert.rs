//! Import a plain `.npy` into a sharray file and export back, byte-exact.

use std::path::Path;
use std::time::Duration;

use crate::array::{OpenOptions, UntypedArray};
use crate::error::{Error, ErrorKind, Result};
use crate::file::{LockMode, Wait, create_file};
use crate::mapping::Mapping;

/// Bytes copied between progress reports.
const CHUNK: usize = 8 << 20;

fn copy_with_progress(src: &[u8], dst: &mut [u8], progress: &mut dyn FnMut(u64, u64)) {
    let total = src.len() as u64;
    let mut done = 0u64;
    progress(0, total);
    for (s, d) in src.chunks(CHUNK).zip(dst.chunks_mut(CHUNK)) {
        d.copy_from_slice(s);
        done += s.len() as u64;
        progress(done, total);
    }
}

/// Options for [`import_npy_with`] and [`export_npy_with`].
///
/// ```
/// use std::time::Duration;
/// let opts = sharray::CopyOptions::new().mode(0o640).lock_timeout(Some(Duration::from_secs(5)));
/// assert_eq!(opts.get_mode(), 0o640);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    mode: u32,
    lock_timeout: Option<Duration>,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions {
            mode: 0o600,
            lock_timeout: None,
        }
    }
}

impl CopyOptions {
    /// Defaults: the new file gets mode `0o600`; wait for locks as long as it takes.
    pub fn new() -> CopyOptions {
        CopyOptions::default()
    }

    /// Permission bits of the new file (applied whatever the umask).
    pub fn mode(mut self, mode: u32) -> CopyOptions {
        self.mode = mode;
        self
    }

    /// Wait at most this long for the source's read lock (and the new
    /// file's write lock); `None` waits forever. A longer wait is an
    /// [`ErrorKind::LockTimeout`] error.
    pub fn lock_timeout(mut self, timeout: Option<Duration>) -> CopyOptions {
        self.lock_timeout = timeout;
        self
    }

    /// The permission bits set by [`CopyOptions::mode`].
    pub fn get_mode(&self) -> u32 {
        self.mode
    }

    fn wait(&self) -> Wait {
        self.lock_timeout.map_or(Wait::Forever, Wait::timeout)
    }
}

/// Copy a `.npy` (or any sharray array) at `src` into a new sharray array at
/// `dst`, keeping dtype, shape, order and bytes exactly. Holds a shared lock
/// on `src` while copying. `progress(done, total)` is called every few MiB.
/// Same as [`import_npy_with`] with `CopyOptions::new().mode(mode)`.
///
/// # Errors
///
/// Errors of opening `src` and of creating `dst` (which is never left half
/// written: it appears only once complete).
pub fn import_npy(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    mode: u32,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<UntypedArray> {
    import_npy_with(src, dst, CopyOptions::new().mode(mode), progress)
}

/// [`import_npy`] with options (lock timeout, mode).
///
/// # Errors
///
/// As [`import_npy`], plus [`ErrorKind::LockTimeout`] if a lock did not come
/// within the timeout.
pub fn import_npy_with(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    opts: CopyOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<UntypedArray> {
    let src = OpenOptions::new().read_only(true).open_untyped(src)?;
    let guard = src.read_wait(opts.wait())?;
    let out = UntypedArray::builder(src.dtype().clone())
        .shape(src.shape())
        .order(src.order())
        .mode(opts.mode)
        .create(dst.as_ref())?;
    {
        // Another process could open the new file as soon as it is
        // published, so take its write lock like any writer; the generation
        // then records the import.
        let mut w = out.write_wait(opts.wait())?;
        copy_with_progress(guard.bytes(), w.bytes_mut(), progress);
    }
    drop(guard);
    Ok(out)
}

/// Write the array at `src` (sharray or `.npy`) to a new plain `.npy` at `dst`
/// with the header numpy itself writes, keeping dtype, shape, order and bytes
/// exactly. Holds a shared lock on `src` while copying.
///
/// Same as [`export_npy_with`] with `CopyOptions::new().mode(mode)`.
///
/// # Errors
///
/// Errors of opening `src`; [`ErrorKind::AlreadyExists`] if `dst` exists;
/// [`ErrorKind::NoSpace`] (nothing is left behind).
pub fn export_npy(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    mode: u32,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    export_npy_with(src, dst, CopyOptions::new().mode(mode), progress)
}

/// [`export_npy`] with options (lock timeout, mode).
///
/// # Errors
///
/// As [`export_npy`], plus [`ErrorKind::LockTimeout`] if the source's read
/// lock did not come within the timeout.
pub fn export_npy_with(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    opts: CopyOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let dst = dst.as_ref();
    let map = Mapping::open(src.as_ref(), OpenOptions::new().read_only(true).flags())?;
    let header = map.header().clone();
    let lock = map.shared_file().lock(LockMode::Shared, opts.wait())?;
    let hdr = header.emit_standard();
    let total = (hdr.len() as u64)
        .checked_add(map.nbytes() as u64)
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "array too large"))?;
    create_file(dst, total, opts.mode, true, |f| {
        use std::io::Write;
        let mut w = std::io::BufWriter::with_capacity(CHUNK, f);
        w.write_all(&hdr)
            .map_err(|e| Error::io("cannot write", e))?;
        // The read lock is held: cooperating peers do not write the data.
        let data = map_bytes(&map);
        let mut done = 0u64;
        progress(0, data.len() as u64);
        for c in data.chunks(CHUNK) {
            w.write_all(c).map_err(|e| Error::io("cannot write", e))?;
            done += c.len() as u64;
            progress(done, data.len() as u64);
        }
        w.flush().map_err(|e| Error::io("cannot write", e))?;
        drop(w);
        f.sync_all().map_err(|e| Error::io("cannot sync", e))?;
        Ok(())
    })?;
    drop(lock);
    Ok(())
}

#[allow(unsafe_code)]
fn map_bytes(map: &Mapping) -> &[u8] {
    // SAFETY: only called by export_npy while it holds the shared whole-file
    // lock, so cooperating peers do not write the data.
    unsafe { map.data_bytes(0, map.nbytes()) }
}
