//! Growable arrays: several processes append rows at once (FORMAT.md
//! section 9).
//!
//! The algorithm, in crossbeam's two-phase style: an appender **reserves**
//! rows under the append lock (a counter, `reserved_rows`, and its entry in
//! the appender table), **writes** them in place without any lock, marks its
//! entry written, and rows are **published** strictly in order: whoever holds
//! the append lock moves `published` over every written reservation that
//! starts there, then rewrites the `.npy` header's row count (one aligned
//! 8-byte store) and bumps the generation. An appender returns once its rows
//! are published.
//!
//! A dead appender's reservation is **rolled back**, never published: once
//! every live reservation after it is written, the next holder of the lock
//! drops the dead reservations and moves the live ones after them down; their
//! owners (still inside `append`, waiting for publication) see their ticket
//! change and write their rows again at the new place. Published rows never
//! have holes and are never written again.
//!
//! # Safety
//!
//! The whole file is mapped as `MmapRaw`. Rows `[0, published)` are only
//! read (never written by the protocol); rows of a reservation are written
//! only by its owner while the entry is WRITING, and by nobody else; control
//! words are atomics. A process outside the protocol that writes published
//! rows while a [`GrowReadGuard`] slice is alive is undefined behaviour no
//! check here can prevent (the crate's safety model).

#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use parking_lot::Mutex;

use crate::element::Element;
use crate::error::{Error, ErrorKind, Result};
use crate::file::{FileLock, LockMode, OpenFlags, SharedFile, Wait, create_file};
use crate::format::control::{self, HEADER_LEN, MAGIC, STATE_READY};
use crate::format::grow::{
    self, GROW_CTRL_LEN, GROW_FORMAT_VERSION, GrowConfig, KIND_GROWABLE, MAX_CAPACITY, entry, off,
};
use crate::format::le;
use crate::format::npy::{Dtype, NpyHeader};
use crate::sys;

mod check;
mod protocol;

pub(crate) use check::check_file;

/// (process id, device, inode): a child made by `fork()` starts with its
/// own empty set (its parent's entries are not its own).
type Key = (u32, u64, u64);

/// What this process knows about one growable file: the appender entries
/// its handles hold (OFD locks do not tell a process its own locks) and the
/// thread lock that orders its threads before the append lock (OFD locks do
/// not exclude threads sharing a description).
#[derive(Default)]
struct Local {
    own: HashSet<u32>,
    lock: Arc<Mutex<()>>,
}

fn locals() -> &'static Mutex<HashMap<Key, Local>> {
    static M: OnceLock<Mutex<HashMap<Key, Local>>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Does the file of `file_len` bytes behind `f` carry a growable array's
/// control block (FORMAT.md section 1's locate rule)? I/O errors count as no.
pub(crate) fn probe(f: &std::fs::File, file_len: u64) -> bool {
    let Some(at) = grow::candidate_ctrl_offset(file_len) else {
        return false;
    };
    let mut b = [0u8; 16];
    f.read_exact_at(&mut b, at).is_ok() && grow::is_growable_block(&b)
}

/// A snapshot of a growable array's layout and counters (`sharray info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowInfo {
    /// The file.
    pub path: PathBuf,
    /// Element type.
    pub dtype: Dtype,
    /// Shape of one row (the array's shape without its first axis).
    pub row_shape: Vec<usize>,
    /// Published rows: what every reader, numpy included, sees.
    pub rows: u64,
    /// Rows reserved by appenders (published, or being written).
    pub reserved: u64,
    /// Rows the file has room for.
    pub capacity: u64,
    /// Bytes per row.
    pub row_bytes: u64,
    /// Appender entries (concurrent appending handles).
    pub max_appenders: u32,
    /// Appends rolled back because their appender died.
    pub rollbacks: u64,
    /// The generation counter (bumped at every publication).
    pub generation: u64,
    /// File length (sparse: only written rows take disk space).
    pub file_len: u64,
}

struct Inner {
    file: Arc<SharedFile>,
    map: MmapRaw,
    writable: bool,
    map_writable: bool,
    dtype: Dtype,
    row_shape: Vec<usize>,
    cfg: GrowConfig,
    key: Key,
    thread_lock: Arc<Mutex<()>>,
    /// A byte range of the data known to have blocks (this process
    /// allocated it; see `Inner::allocate`).
    allocated: Mutex<(u64, u64)>,
}

/// A growable array: a `.npy` file whose first axis grows as processes
/// append rows, while numpy (`np.load(path, mmap_mode="r")`) and every
/// other reader see exactly the published rows.
///
/// ```
/// use sharray::{Dtype, GrowableArray};
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("log.npy");
/// let a = GrowableArray::builder(Dtype::parse_user("float32")?)
///     .row_shape(&[3])
///     .capacity(1000)
///     .create(&path)?;
/// assert_eq!(a.append(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])?, 0); // two rows at index 0
/// let b = GrowableArray::open(&path)?;                             // another handle (or process)
/// assert_eq!(b.append(&[7.0f32, 8.0, 9.0])?, 2);
/// assert_eq!(a.len(), 3);
/// let rows = a.read()?;
/// assert_eq!(rows.as_slice::<f32>()?[6..], [7.0, 8.0, 9.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct GrowableArray {
    inner: Arc<Inner>,
    /// This handle's appender entry (claimed at the first append) and the
    /// lock that serialises this handle's appends.
    slot: Mutex<Option<u32>>,
}

/// Builder for a new growable array; see [`GrowableArray::builder`].
#[must_use = "a builder does nothing until `create` is called"]
#[derive(Debug, Clone)]
pub struct GrowableBuilder {
    dtype: Dtype,
    row_shape: Vec<usize>,
    rows: u64,
    capacity: Option<u64>,
    max_appenders: u32,
    mode: u32,
}

/// Default capacity: as many rows as 64 GiB hold (reserved sparse, so it
/// costs address space, not disk), at most [`GrowableArray::MAX_CAPACITY`].
fn default_capacity(row_bytes: u64) -> u64 {
    ((64u64 << 30) / row_bytes.max(1)).clamp(1, MAX_CAPACITY)
}

impl GrowableBuilder {
    /// The shape of one row (default `[]`: a 1-d array of scalars).
    pub fn row_shape(mut self, shape: &[usize]) -> Self {
        self.row_shape = shape.to_vec();
        self
    }

    /// Rows of zeros already published at creation (default 0).
    pub fn rows(mut self, rows: u64) -> Self {
        self.rows = rows;
        self
    }

    /// Rows the file reserves room for (sparse; default: 64 GiB worth, at
    /// most [`GrowableArray::MAX_CAPACITY`]). Appends past it are refused.
    pub fn capacity(mut self, rows: u64) -> Self {
        self.capacity = Some(rows);
        self
    }

    /// Most handles appending at the same time (default and maximum 64).
    pub fn max_appenders(mut self, n: u32) -> Self {
        self.max_appenders = n;
        self
    }

    /// Permission bits of the new file (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Create and publish the file (never overwriting anything; FORMAT.md
    /// section 4). The data area is sparse; header and control block are
    /// allocated, so a full disk fails here with [`ErrorKind::NoSpace`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a zero-size row, a capacity of 0,
    /// above [`GrowableArray::MAX_CAPACITY`] or below `rows`, or
    /// `max_appenders` outside 1..=64; [`ErrorKind::AlreadyExists`]; I/O
    /// errors.
    pub fn create(self, path: impl AsRef<Path>) -> Result<GrowableArray> {
        let path = path.as_ref();
        let invalid = |m: String| Error::new(ErrorKind::InvalidInput, m).at(path);
        let header = NpyHeader {
            dtype: self.dtype.clone(),
            fortran_order: false,
            shape: std::iter::once(self.rows as usize)
                .chain(self.row_shape.iter().copied())
                .collect(),
        };
        let row_bytes = grow::row_bytes_of(&header)
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                invalid("a row of a growable array must have at least one byte".into())
            })?;
        let capacity = self
            .capacity
            .unwrap_or_else(|| default_capacity(row_bytes).max(self.rows));
        if capacity == 0 || capacity > MAX_CAPACITY || capacity < self.rows {
            return Err(invalid(format!(
                "capacity {capacity} rows: give 1..={MAX_CAPACITY} rows, at least the {} initial rows",
                self.rows
            )));
        }
        if !(1..=grow::MAX_APPENDERS).contains(&self.max_appenders) {
            return Err(invalid(format!(
                "max_appenders {} is not 1..={}",
                self.max_appenders,
                grow::MAX_APPENDERS
            )));
        }
        let too_large = || invalid("the capacity times the row size is too large".into());
        let data_len = capacity.checked_mul(row_bytes).ok_or_else(too_large)?;
        let ctrl_off = control::ctrl_offset(data_len).ok_or_else(too_large)?;
        let file_len = ctrl_off.checked_add(GROW_CTRL_LEN).ok_or_else(too_large)?;
        if file_len > isize::MAX as u64 {
            return Err(too_large());
        }
        let (npy, count_field) = grow::growable_header(&header, self.rows)
            .map_err(|e| invalid(format!("cannot write the .npy header: {}", e.0)))?;
        let cfg = GrowConfig {
            ctrl_off,
            capacity,
            row_bytes,
            max_appenders: self.max_appenders,
            count_field,
        };
        let initial = self.rows * row_bytes;
        let (file, ()) = create_file(path, file_len, self.mode, false, |f| {
            // The header, the initial rows and the control block get real
            // blocks now (ENOSPC here, not SIGBUS later); the rest of the
            // data area stays sparse until appenders allocate their rows.
            sys::fallocate(f, 0, control::DATA_OFFSET + initial)
                .and_then(|()| sys::fallocate(f, ctrl_off, GROW_CTRL_LEN))
                .map_err(|e| Error::io("cannot allocate the new file", e))?;
            f.write_all_at(&npy, 0)
                .map_err(|e| Error::io("cannot write the new file", e))?;
            let mut ctrl = vec![0u8; (HEADER_LEN + grow::section_len(cfg.max_appenders)) as usize];
            le::put(&mut ctrl, 0, &MAGIC);
            le::put_u32(&mut ctrl, control::off::VERSION as u64, GROW_FORMAT_VERSION);
            le::put_u32(&mut ctrl, control::off::KIND as u64, KIND_GROWABLE);
            le::put_u64(&mut ctrl, control::off::CTRL_LEN as u64, GROW_CTRL_LEN);
            le::put_u64(
                &mut ctrl,
                control::off::DATA_OFFSET as u64,
                control::DATA_OFFSET,
            );
            le::put_u64(&mut ctrl, control::off::DATA_LEN as u64, data_len);
            le::put_u64(&mut ctrl, control::off::SECTION_OFFSET as u64, HEADER_LEN);
            le::put_u64(
                &mut ctrl,
                control::off::SECTION_LEN as u64,
                grow::section_len(cfg.max_appenders),
            );
            grow::encode_section(&mut ctrl[HEADER_LEN as usize..], &cfg, self.rows);
            f.write_all_at(&ctrl, ctrl_off)
                .map_err(|e| Error::io("cannot write the new file", e))?;
            // The state word last: nobody can see the file before publish
            // anyway, but a peer mapping it another way never sees it half-built.
            f.write_all_at(
                &STATE_READY.to_le_bytes(),
                ctrl_off + control::off::STATE as u64,
            )
            .map_err(|e| Error::io("cannot write the new file", e))?;
            Ok(())
        })?;
        GrowableArray::from_file(file, true)
    }
}

impl GrowableArray {
    /// Most rows a growable array holds (the `.npy` header's row count is
    /// 8 digits rewritten with one atomic store; FORMAT.md section 9).
    pub const MAX_CAPACITY: u64 = MAX_CAPACITY;

    /// A builder for a new growable array of `dtype`.
    pub fn builder(dtype: Dtype) -> GrowableBuilder {
        GrowableBuilder {
            dtype,
            row_shape: Vec::new(),
            rows: 0,
            capacity: None,
            max_appenders: grow::MAX_APPENDERS,
            mode: 0o600,
        }
    }

    /// Is the file at `path` a growable array (FORMAT.md section 1's locate
    /// rule)? Reads 16 bytes; takes no lock and validates nothing.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or examined.
    pub fn detect(path: impl AsRef<Path>) -> Result<bool> {
        let path = path.as_ref();
        let f = std::fs::File::open(path).map_err(|e| Error::io("cannot open", e).at(path))?;
        let len = f
            .metadata()
            .map_err(|e| Error::io("cannot stat", e).at(path))?
            .len();
        Ok(probe(&f, len))
    }

    /// Open an existing growable array for reading and appending.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`], [`ErrorKind::PermissionDenied`],
    /// [`ErrorKind::Unsupported`] if the file is another kind of sharray or
    /// `.npy` file, [`ErrorKind::Corrupt`] if it fails validation.
    pub fn open(path: impl AsRef<Path>) -> Result<GrowableArray> {
        GrowableArray::open_with(path.as_ref(), true)
    }

    /// Open an existing growable array read-only ([`GrowableArray::append`]
    /// fails).
    ///
    /// # Errors
    ///
    /// As [`GrowableArray::open`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<GrowableArray> {
        GrowableArray::open_with(path.as_ref(), false)
    }

    fn open_with(path: &Path, writable: bool) -> Result<GrowableArray> {
        let file = SharedFile::open(
            path,
            OpenFlags {
                writable,
                allow_foreign_owner: false,
            },
        )?;
        if writable && !file.writable() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "cannot open for appending: no write permission (or already open read-only in this process); open it read-only",
            )
            .at(path));
        }
        GrowableArray::from_file(file, writable)
    }

    fn from_file(file: Arc<SharedFile>, writable: bool) -> Result<GrowableArray> {
        let path = file.path().to_path_buf();
        let f = file.file();
        let meta = f
            .metadata()
            .map_err(|e| Error::io("cannot stat", e).at(&path))?;
        let file_len = meta.len();
        let corrupt = |m: String| Error::new(ErrorKind::Corrupt, m).at(&path);
        let mut head = vec![0u8; (control::DATA_OFFSET as usize).min(file_len as usize)];
        f.read_exact_at(&mut head, 0)
            .map_err(|e| Error::io("cannot read the header", e).at(&path))?;
        let (header, data_offset) =
            NpyHeader::parse(&head).map_err(|e| corrupt(format!("invalid .npy header: {e}")))?;
        let ctrl_off = grow::candidate_ctrl_offset(file_len)
            .filter(|_| probe(f, file_len) && data_offset as u64 == control::DATA_OFFSET)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    "not a growable array (no growable control block at the end of the file); open it with SharedArray, or create a growable one (`sharray create --growable`)",
                )
                .at(&path)
            })?;
        let mut ctrl = vec![0u8; GROW_CTRL_LEN as usize];
        f.read_exact_at(&mut ctrl, ctrl_off)
            .map_err(|e| Error::io("cannot read the control block", e).at(&path))?;
        let cfg = GrowConfig::decode(&ctrl, ctrl_off, &header, &head, file_len).map_err(|m| {
            corrupt(format!(
                "invalid growable array: {m}; run `sharray check` on it"
            ))
        })?;
        let map_writable = writable || file.writable();
        let mut opts = MmapOptions::new();
        opts.len(file_len as usize);
        let map = if map_writable {
            opts.map_raw(f)
        } else {
            opts.map_raw_read_only(f)
        }
        .map_err(|e| Error::io("cannot map the file", e).at(&path))?;
        file.set_turnstile(ctrl_off + control::off::TURNSTILE as u64);
        let key = (std::process::id(), meta.dev(), meta.ino());
        let thread_lock = locals().lock().entry(key).or_default().lock.clone();
        Ok(GrowableArray {
            inner: Arc::new(Inner {
                file,
                map,
                writable,
                map_writable,
                dtype: header.dtype,
                row_shape: header.shape[1..].to_vec(),
                cfg,
                key,
                thread_lock,
                allocated: Mutex::new((0, 0)),
            }),
            slot: Mutex::new(None),
        })
    }

    /// Published rows: what every reader sees now.
    pub fn len(&self) -> u64 {
        // Never more than the data area holds, whatever a damaged file says.
        self.inner
            .u64(self.inner.sec(off::PUBLISHED))
            .load(Ordering::Acquire)
            .min(self.inner.cfg.capacity)
    }

    /// No rows published yet?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows the file has room for.
    pub fn capacity(&self) -> u64 {
        self.inner.cfg.capacity
    }

    /// Element type.
    pub fn dtype(&self) -> &Dtype {
        &self.inner.dtype
    }

    /// Shape of one row.
    pub fn row_shape(&self) -> &[usize] {
        &self.inner.row_shape
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.inner.cfg.row_bytes as usize
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.inner.file.path()
    }

    /// The generation counter: bumped at every publication.
    pub fn generation(&self) -> u64 {
        self.inner.generation().load(Ordering::Acquire)
    }

    /// Layout and counters.
    pub fn info(&self) -> GrowInfo {
        let i = &self.inner;
        let load = |o| i.u64(i.sec(o)).load(Ordering::Acquire);
        GrowInfo {
            path: self.path().to_path_buf(),
            dtype: i.dtype.clone(),
            row_shape: i.row_shape.clone(),
            rows: load(off::PUBLISHED),
            reserved: load(off::RESERVED),
            capacity: i.cfg.capacity,
            row_bytes: i.cfg.row_bytes,
            max_appenders: i.cfg.max_appenders,
            rollbacks: load(off::ROLLBACKS),
            generation: self.generation(),
            file_len: i.map.len() as u64,
        }
    }

    /// Wait until the generation differs from `since` (rows were published),
    /// at most `timeout`; returns the new generation. Parks on the shared
    /// futex of FORMAT.md section 3.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if nothing was published in time.
    pub fn wait_changed(&self, since: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.inner.gen_seq().load(Ordering::Acquire);
            let g = self.generation();
            if g != since {
                return Ok(g);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("nothing was published within {timeout:?} (generation still {since})"),
                )
                .at(self.path()));
            }
            self.inner.park(s, left.min(Duration::from_millis(50)));
        }
    }

    /// A shared lock on the published rows (`flock(LOCK_SH)`, FORMAT.md
    /// section 5) and a view of them as they are now. Appends go on while
    /// the guard is held (they never touch published rows); the guard keeps
    /// seeing the rows published when it was taken.
    ///
    /// # Errors
    ///
    /// I/O errors from the lock; [`ErrorKind::Replaced`] if the file was
    /// replaced; [`ErrorKind::Unsupported`] through a handle inherited by a
    /// child made by `fork()` (open the path again there).
    pub fn read(&self) -> Result<GrowReadGuard<'_>> {
        self.check_origin()?;
        let lock = self.inner.file.lock(LockMode::Shared, Wait::Forever)?;
        Ok(GrowReadGuard {
            array: self,
            rows: self.len(),
            _lock: lock,
        })
    }

    /// Append rows of `T` (`rows.len()` must be a whole number of rows)
    /// and return the index of the first one, once they are published.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::DtypeMismatch`] if `T` is not the file's dtype, and as
    /// [`GrowableArray::append_bytes`].
    pub fn append<T: Element>(&self, rows: &[T]) -> Result<u64> {
        if self.inner.dtype.descr() != T::DESCR {
            return Err(Error::new(
                ErrorKind::DtypeMismatch,
                format!(
                    "dtype mismatch: the array holds {} but {} rows were given; append rows of its dtype",
                    self.inner.dtype.descr(),
                    T::DESCR
                ),
            )
            .at(self.path()));
        }
        self.append_bytes(bytemuck::cast_slice(rows))
    }

    /// Append rows given as raw bytes (a whole number of rows in the file's
    /// dtype and row shape) and return the index of the first one. Returns
    /// once they are published: readers see them (and the header says so),
    /// and a crash afterwards cannot lose them. Threads appending through
    /// one handle take turns; use a handle per thread to append in parallel.
    ///
    /// Waits (in 50 ms slices, forever) while an earlier appender that died
    /// holds rows before ours and live appenders are still writing after
    /// it: their reservations are rolled back and ours moves down.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the length is not a whole number of
    /// rows; [`ErrorKind::PermissionDenied`] on a read-only handle;
    /// [`ErrorKind::Full`] past the capacity (nothing is written) or when 64
    /// handles already append; [`ErrorKind::NoSpace`] if the disk is full
    /// (the reservation is rolled back); [`ErrorKind::Unsupported`] through
    /// a handle inherited by a child made by `fork()` (open the path again
    /// there); I/O errors.
    pub fn append_bytes(&self, data: &[u8]) -> Result<u64> {
        let i = &*self.inner;
        self.check_origin()?;
        if !i.writable {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "this growable array was opened read-only; open it with GrowableArray::open to append",
            )
            .at(self.path()));
        }
        let rb = i.cfg.row_bytes as usize;
        if !data.len().is_multiple_of(rb) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} bytes are not a whole number of rows of {rb} bytes (dtype {}, row shape {:?})",
                    data.len(),
                    i.dtype.descr(),
                    i.row_shape
                ),
            )
            .at(self.path()));
        }
        let n = (data.len() / rb) as u64;
        if n == 0 {
            return Ok(self.len());
        }
        let mut slot = self.slot.lock();
        let e = match *slot {
            Some(e) => e,
            None => {
                let e = i.claim_entry()?;
                *slot = Some(e);
                e
            }
        };
        let result = i.append_in(e, data, n);
        if result.is_err() && i.entry_word(e, entry::STATE).load(Ordering::Acquire) != grow::FREE {
            // Give the entry up: it now looks dead, and the next holder of
            // the append lock rolls its reservation back (we try at once).
            i.release_entry(e);
            *slot = None;
            if let Ok(g) = i.lock() {
                i.reap(&g);
            }
        }
        result
    }
}

impl GrowableArray {
    /// Refuse to act through a handle inherited by a child made by `fork()`.
    fn check_origin(&self) -> Result<()> {
        if self.inner.key.0 != std::process::id() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "this handle was inherited through fork(), so its locks belong to the parent process; open the path again in this process",
            )
            .at(self.path()));
        }
        Ok(())
    }
}

impl Drop for GrowableArray {
    fn drop(&mut self) {
        // In a child made by fork() the entry (and its lock, which belongs
        // to the open file description shared with the parent) is the
        // parent's: leave it alone.
        if let Some(e) = self.slot.get_mut().take()
            && self.inner.key.0 == std::process::id()
        {
            self.inner.release_entry(e);
        }
    }
}

impl std::fmt::Debug for GrowableArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrowableArray")
            .field("path", &self.path())
            .field("dtype", &self.inner.dtype.descr())
            .field("row_shape", &self.inner.row_shape)
            .field("rows", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// The published rows of a [`GrowableArray`] under a shared lock; see
/// [`GrowableArray::read`].
pub struct GrowReadGuard<'a> {
    array: &'a GrowableArray,
    rows: u64,
    _lock: FileLock,
}

impl GrowReadGuard<'_> {
    /// Rows in this view (published when the guard was taken).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The rows' bytes.
    pub fn bytes(&self) -> &[u8] {
        let i = &self.array.inner;
        let len = (self.rows * i.cfg.row_bytes) as usize;
        // SAFETY: published rows lie inside the mapping (`len()` is at
        // most the capacity, and the data area holds capacity rows: checked at open) and are never
        // written by cooperating peers (module docs, "Safety"); the shared
        // lock keeps out writers that take whole-array locks.
        unsafe { std::slice::from_raw_parts(i.data_ptr(), len) }
    }

    /// The rows as elements of `T`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::DtypeMismatch`] if `T` is not the file's dtype.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        let d = &self.array.inner.dtype;
        if d.descr() != T::DESCR {
            return Err(Error::new(
                ErrorKind::DtypeMismatch,
                format!(
                    "dtype mismatch: the array holds {} but {} was asked for",
                    d.descr(),
                    T::DESCR
                ),
            )
            .at(self.array.path()));
        }
        // Data at 4096 is aligned for every element type.
        Ok(bytemuck::cast_slice(self.bytes()))
    }

    /// The rows as an n-d view of shape `(rows, *row_shape)`.
    ///
    /// # Errors
    ///
    /// As [`GrowReadGuard::as_slice`].
    #[cfg(feature = "ndarray")]
    pub fn view<T: Element>(&self) -> Result<ndarray::ArrayViewD<'_, T>> {
        let shape: Vec<usize> = std::iter::once(self.rows as usize)
            .chain(self.array.inner.row_shape.iter().copied())
            .collect();
        ndarray::ArrayViewD::from_shape(shape, self.as_slice::<T>()?).map_err(|e| {
            Error::new(
                ErrorKind::ShapeMismatch,
                format!("cannot view the rows: {e}"),
            )
        })
    }
}
