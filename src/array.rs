//! Shared arrays: typed [`SharedArray<T>`] and [`UntypedArray`] handles,
//! read/write guards that exclude other processes and threads, views,
//! the generation counter and flush.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::element::Element;
use crate::error::{Error, ErrorKind, Result};
use crate::file::{FileLock, LockMode, OpenFlags, Wait};
use crate::format::control::{self, Kind};
use crate::format::npy::{Dtype, NpyHeader};
use crate::mapping::{Mapping, NewFile};
use crate::sys;

/// Memory order of the array data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// Row-major (C order, numpy's default).
    #[default]
    C,
    /// Column-major (Fortran order).
    F,
}

impl Order {
    /// `"C"` or `"F"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::C => "C",
            Order::F => "F",
        }
    }
}

/// What kind of file a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A plain `.npy` written by numpy (no control block): whole-array locks
    /// only, no generation counter. Also the kind of a headerless raw file
    /// opened with [`OpenOptions::open_raw`], which behaves the same way
    /// ([`UntypedArray::is_raw`] tells them apart).
    Npy,
    /// A sharray array.
    Array,
    /// A producer/consumer ring.
    Ring,
    /// A work queue: the file that coordinates a worker pool ([`crate::WorkQueue`]).
    Queue,
}

impl FileKind {
    /// `"npy"`, `"array"`, `"ring"` or `"queue"`.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Npy => "npy",
            FileKind::Array => "array",
            FileKind::Ring => "ring",
            FileKind::Queue => "queue",
        }
    }

    fn of(kind: Option<Kind>) -> FileKind {
        match kind {
            None => FileKind::Npy,
            Some(Kind::Array) => FileKind::Array,
            Some(Kind::Ring) => FileKind::Ring,
            Some(Kind::Queue) => FileKind::Queue,
        }
    }
}

/// A snapshot of a file's layout, as `sharray info` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The path.
    pub path: PathBuf,
    /// What the file holds.
    pub kind: FileKind,
    /// The numpy dtype.
    pub dtype: Dtype,
    /// The shape.
    pub shape: Vec<usize>,
    /// C or Fortran order.
    pub order: Order,
    /// Byte offset of the data.
    pub data_offset: u64,
    /// Bytes of data.
    pub nbytes: u64,
    /// Length of the file.
    pub file_len: u64,
    /// Control block format version (`None` for a plain `.npy`).
    pub format_version: Option<u32>,
    /// Generation counter (0 for a plain `.npy`).
    pub generation: u64,
}

/// Options for opening an existing file.
///
/// ```no_run
/// let a = sharray::OpenOptions::new().read_only(true).open::<f32>("data.npy")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "options do nothing until `open` or `open_untyped` is called"]
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    read_only: bool,
    allow_other_owner: bool,
    copy_on_write: bool,
}

impl OpenOptions {
    /// Defaults: read-write, refuse files owned by another user.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// Map read-only; write guards then fail with [`ErrorKind::PermissionDenied`].
    pub fn read_only(mut self, yes: bool) -> OpenOptions {
        self.read_only = yes;
        self
    }

    /// Map the file copy-on-write (`MAP_PRIVATE`, numpy's mode `"c"`):
    /// write guards change this process's private copy of the pages they
    /// touch, never the file and never what other processes see. Works on
    /// files we may only read; [`OpenOptions::read_only`] is then ignored
    /// (the private pages are always writable). [`UntypedArray::flush`] does nothing and the
    /// generation counter is never bumped by such a handle.
    ///
    /// What the handle sees of other processes' later writes: a page this
    /// process has not written yet shows the file's current content (the
    /// kernel maps the shared page cache until the first write copies the
    /// page); a page it has written shows its private copy from then on,
    /// whatever others write to the file. Read guards take the shared lock
    /// as usual, and a write guard takes the shared lock too (it excludes
    /// writers in other processes, whose changes to pages not yet copied
    /// would otherwise show under it, but not their readers) plus the
    /// exclusive in-process lock.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("a.npy");
    /// use sharray::{OpenOptions, SharedArray};
    /// let a = SharedArray::<i32>::create(&path, &[4])?;
    /// let c = OpenOptions::new().copy_on_write(true).open::<i32>(&path)?;
    /// c.write()?[0] = 7;                           // private to this handle's mapping
    /// assert_eq!(c.read()?[0], 7);
    /// assert_eq!(a.read()?[0], 0);                 // the file is unchanged
    /// a.write()?[3] = 5;                           // others' writes to untouched pages show
    /// assert_eq!(c.read()?[..], [7, 0, 0, 0][..]); // ...except on the page c wrote
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn copy_on_write(mut self, yes: bool) -> OpenOptions {
        self.copy_on_write = yes;
        self
    }

    /// Was [`OpenOptions::copy_on_write`] set?
    pub fn is_copy_on_write(&self) -> bool {
        self.copy_on_write
    }

    /// Accept a file owned by another user (by default refused, since a
    /// peer's bytes decide what this process reads).
    pub fn allow_other_owner(mut self, yes: bool) -> OpenOptions {
        self.allow_other_owner = yes;
        self
    }

    /// [`inspect`] with these options (it always maps read-only; use
    /// [`OpenOptions::allow_other_owner`] for a file of another user).
    ///
    /// # Errors
    ///
    /// As [`inspect`].
    pub fn inspect(self, path: impl AsRef<Path>) -> Result<Info> {
        let map = Mapping::open(path.as_ref(), self.read_only(true).flags())?;
        Ok(info_of(&map))
    }

    pub(crate) fn flags(self) -> OpenFlags {
        OpenFlags {
            writable: !self.read_only,
            allow_foreign_owner: self.allow_other_owner,
        }
    }

    /// Open a typed array.
    ///
    /// # Errors
    ///
    /// As [`OpenOptions::open_untyped`], plus [`ErrorKind::DtypeMismatch`] if
    /// the file's dtype is not `T`'s, and [`ErrorKind::Unsupported`] if the
    /// data is not aligned for `T` (possible only in foreign `.npy` files).
    pub fn open<T: Element>(self, path: impl AsRef<Path>) -> Result<SharedArray<T>> {
        self.open_untyped(path)?.typed()
    }

    /// Open an array of any dtype.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`], [`ErrorKind::NotARegularFile`] (symlinks,
    /// directories), [`ErrorKind::PermissionDenied`], [`ErrorKind::Corrupt`]
    /// for invalid or truncated files, [`ErrorKind::Unsupported`] for rings
    /// and queues (open those with their own types) or newer formats.
    pub fn open_untyped(self, path: impl AsRef<Path>) -> Result<UntypedArray> {
        let path = path.as_ref();
        let spec = crate::mapping::MapSpec {
            cow: self.copy_on_write,
            raw: None,
        };
        let map = Mapping::open_with(path, self.flags(), &spec)?;
        match map.control().map(|c| c.kind) {
            None | Some(Kind::Array) => Ok(UntypedArray { map: Arc::new(map) }),
            Some(k) => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "this is a sharray {}, not an array; open it with the {} API",
                    k.name(),
                    k.name()
                ),
            )
            .at(path)),
        }
    }
}

/// Read the layout of any sharray or `.npy` file without taking locks.
///
/// # Errors
///
/// As [`OpenOptions::open_untyped`] (but rings and queues are accepted).
pub fn inspect(path: impl AsRef<Path>) -> Result<Info> {
    OpenOptions::new().inspect(path)
}

pub(crate) fn info_of(map: &Mapping) -> Info {
    let h = map.header();
    Info {
        path: map.path().to_path_buf(),
        kind: FileKind::of(map.control().map(|c| c.kind)),
        dtype: h.dtype.clone(),
        shape: h.shape.clone(),
        order: if h.fortran_order { Order::F } else { Order::C },
        data_offset: map.data_offset() as u64,
        nbytes: map.nbytes() as u64,
        file_len: map.file_len(),
        format_version: map.control().map(|c| c.version),
        generation: map.control().map_or(0, |_| {
            map.ctrl_u64(control::off::GENERATION as u64)
                .load(Ordering::Acquire)
        }),
    }
}

/// Builder for a new array file of any dtype.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use sharray::{Dtype, UntypedArray};
/// let a = UntypedArray::builder(Dtype::parse_user(">i4")?).shape(&[2, 3]).create(dir.path().join("a.npy"))?;
/// assert_eq!(a.nbytes(), 24);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until `create` is called"]
#[derive(Debug, Clone)]
pub struct UntypedBuilder {
    dtype: Dtype,
    shape: Vec<usize>,
    order: Order,
    fill: Option<Vec<u8>>,
    mode: u32,
    preallocate: bool,
}

impl UntypedBuilder {
    /// The shape (any rank; `&[]` is a 0-d array of one element).
    pub fn shape(mut self, shape: &[usize]) -> Self {
        self.shape = shape.to_vec();
        self
    }

    /// Memory order (default C).
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Initial content: these bytes (one element) repeated. Default zeros.
    pub fn fill_bytes(mut self, element: &[u8]) -> Self {
        self.fill = Some(element.to_vec());
        self
    }

    /// Permission bits of the new file (default `0o600`, whatever the umask).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Reserve the file's blocks at creation (default `true`). With `false`
    /// the file is sparse: creation is instant for huge arrays, but a write
    /// that finds the disk full later kills the writer with SIGBUS.
    pub fn preallocate(mut self, yes: bool) -> Self {
        self.preallocate = yes;
        self
    }

    /// Create and publish the file at `path` (see [`crate::resolve_location`]
    /// for `shm:NAME`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`] (never overwrites; also for a symlink at
    /// the path), [`ErrorKind::NoSpace`] when the disk is full (nothing is
    /// left behind), [`ErrorKind::InvalidInput`] for an overflowing shape or a
    /// fill of the wrong size, I/O errors.
    pub fn create(self, path: impl AsRef<Path>) -> Result<UntypedArray> {
        self.create_with_data(path.as_ref(), None)
    }

    /// [`UntypedBuilder::create`] with the data bytes written by `init_data`
    /// before the file is published (an import killed mid-copy leaves
    /// nothing at the path).
    pub(crate) fn create_with_data(
        self,
        path: &Path,
        init_data: crate::mapping::InitData<'_>,
    ) -> Result<UntypedArray> {
        let header = NpyHeader {
            dtype: self.dtype,
            fortran_order: self.order == Order::F,
            shape: self.shape,
        };
        if let Some(f) = &self.fill
            && f.len() != header.dtype.itemsize()
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "fill value has {} bytes but dtype {} has itemsize {}",
                    f.len(),
                    header.dtype,
                    header.dtype.itemsize()
                ),
            )
            .at(path));
        }
        let spec = NewFile {
            header: &header,
            kind: Kind::Array,
            section_len: 0,
            mode: self.mode,
            preallocate: self.preallocate,
            fill: self.fill.as_deref(),
        };
        Ok(UntypedArray {
            map: Arc::new(Mapping::create_with_data(path, &spec, |_| {}, init_data)?),
        })
    }
}

/// Builder for a new typed array file.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let a = sharray::SharedArray::<f64>::builder().shape(&[4, 4]).fill(1.5).create(dir.path().join("m.npy"))?;
/// assert!(a.read()?.iter().all(|&x| x == 1.5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until `create` is called"]
#[derive(Debug, Clone)]
pub struct ArrayBuilder<T: Element> {
    inner: UntypedBuilder,
    _t: PhantomData<T>,
}

impl<T: Element> ArrayBuilder<T> {
    /// The shape.
    pub fn shape(mut self, shape: &[usize]) -> Self {
        self.inner = self.inner.shape(shape);
        self
    }

    /// Memory order (default C).
    pub fn order(mut self, order: Order) -> Self {
        self.inner = self.inner.order(order);
        self
    }

    /// Initial value of every element (default zero).
    pub fn fill(mut self, value: T) -> Self {
        self.inner = self.inner.fill_bytes(bytemuck::bytes_of(&value));
        self
    }

    /// Permission bits (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.inner = self.inner.mode(mode);
        self
    }

    /// See [`UntypedBuilder::preallocate`].
    pub fn preallocate(mut self, yes: bool) -> Self {
        self.inner = self.inner.preallocate(yes);
        self
    }

    /// Create and publish the file. Errors as [`UntypedBuilder::create`].
    pub fn create(self, path: impl AsRef<Path>) -> Result<SharedArray<T>> {
        self.inner.create(path)?.typed()
    }
}

/// A handle to a shared array of any dtype: its bytes, dtype, shape and order.
///
/// Every fixed-size numpy dtype passes through, structured ones included.
/// Handles are `Send + Sync`; share one between threads with `Arc`, or open the
/// same path again (both handles then share one open file description).
///
/// # Safety
///
/// Guards hand out slices of memory that other processes map too. Among
/// cooperating peers the guard's lock makes them sound; a process that ignores
/// the locks and writes while a guard's slice lives causes undefined
/// behaviour, and one that truncates the file kills us with SIGBUS. See the
/// crate's [Safety model](crate#safety-model).
pub struct UntypedArray {
    /// Shared with the owned guards taken through this handle.
    map: Arc<Mapping>,
}

impl UntypedArray {
    /// Start building a new array of `dtype`.
    pub fn builder(dtype: Dtype) -> UntypedBuilder {
        UntypedBuilder {
            dtype,
            shape: Vec::new(),
            order: Order::C,
            fill: None,
            mode: 0o600,
            preallocate: true,
        }
    }

    /// Open read-write. Errors as [`OpenOptions::open_untyped`].
    pub fn open(path: impl AsRef<Path>) -> Result<UntypedArray> {
        OpenOptions::new().open_untyped(path)
    }

    /// Open read-only. Errors as [`OpenOptions::open_untyped`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<UntypedArray> {
        OpenOptions::new().read_only(true).open_untyped(path)
    }

    /// Turn into a typed handle.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::DtypeMismatch`] naming both dtypes; [`ErrorKind::Unsupported`]
    /// if the data offset is not aligned for `T`.
    pub fn typed<T: Element>(self) -> Result<SharedArray<T>> {
        let d = self.dtype();
        if d.descr() != T::DESCR {
            return Err(Error::new(
                ErrorKind::DtypeMismatch,
                format!(
                    "dtype mismatch: the file holds {} but {} was asked for ({}); open it untyped or with the matching type",
                    d.descr(),
                    T::DESCR,
                    std::any::type_name::<T>()
                ),
            )
            .at(self.path()));
        }
        if !(self.map.data_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("the data offset {} is not aligned for {}; import the file into a sharray file first", self.map.data_offset(), std::any::type_name::<T>()),
            )
            .at(self.path()));
        }
        Ok(SharedArray {
            raw: self,
            _t: PhantomData,
        })
    }

    /// The path this handle was opened or created at.
    pub fn path(&self) -> &Path {
        self.map.path()
    }

    /// The numpy dtype.
    pub fn dtype(&self) -> &Dtype {
        &self.map.header().dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.map.header().shape
    }

    /// C or Fortran order.
    pub fn order(&self) -> Order {
        if self.map.header().fortran_order {
            Order::F
        } else {
            Order::C
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Is the array empty (a zero in the shape)?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of data.
    pub fn nbytes(&self) -> usize {
        self.map.nbytes()
    }

    /// Plain `.npy` (or raw file) or sharray array.
    pub fn kind(&self) -> FileKind {
        FileKind::of(self.map.control().map(|c| c.kind))
    }

    /// Was this handle opened as a headerless raw file
    /// ([`OpenOptions::open_raw`])? Its [`kind`](UntypedArray::kind) is
    /// [`FileKind::Npy`]: whole-array locks only, no generation counter.
    pub fn is_raw(&self) -> bool {
        self.map.is_raw()
    }

    /// Was this handle opened copy-on-write ([`OpenOptions::copy_on_write`])?
    pub fn is_copy_on_write(&self) -> bool {
        self.map.is_cow()
    }

    pub(crate) fn from_mapping(map: Mapping) -> UntypedArray {
        UntypedArray { map: Arc::new(map) }
    }

    /// Byte offset of the data in the file: 4096 for sharray files, whatever
    /// numpy wrote for a plain `.npy`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{Dtype, UntypedArray};
    /// let a = UntypedArray::builder(Dtype::parse_user("<f4")?).shape(&[3]).create(dir.path().join("a.npy"))?;
    /// assert_eq!(a.data_offset(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn data_offset(&self) -> u64 {
        self.map.data_offset() as u64
    }

    /// Was this handle opened writable?
    pub fn is_writable(&self) -> bool {
        self.map.writable()
    }

    /// A snapshot of the layout and generation.
    pub fn info(&self) -> Info {
        info_of(&self.map)
    }

    /// The generation counter: bumped by every write guard through which data
    /// was changed. Always 0 for a plain `.npy`.
    pub fn generation(&self) -> u64 {
        match self.map.control() {
            Some(_) => self
                .map
                .ctrl_u64(control::off::GENERATION as u64)
                .load(Ordering::Acquire),
            None => 0,
        }
    }

    /// Wait until the generation differs from `since`, at most `timeout`.
    /// Returns the new generation. Parks on a shared futex: no CPU while idle.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if nothing changed in time;
    /// [`ErrorKind::Unsupported`] on a plain `.npy` (import it first).
    pub fn wait_changed(&self, since: u64, timeout: Duration) -> Result<u64> {
        if self.map.control().is_none() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "a plain .npy has no generation counter; import it into a sharray file (`sharray import`) to wait for changes",
            )
            .at(self.path()));
        }
        let generation = self.map.ctrl_u64(control::off::GENERATION as u64);
        let seq = self.map.ctrl_u32(control::off::GEN_SEQ as u64);
        let waiters = self.map.ctrl_u32(control::off::GEN_WAITERS as u64);
        let wait = Wait::timeout(timeout);
        let mut nap = Duration::from_micros(50);
        loop {
            self.map.shared_file().ensure_not_truncated()?;
            let s = seq.load(Ordering::Acquire);
            let g = generation.load(Ordering::Acquire);
            if g != since {
                return Ok(g);
            }
            // `None`: a timeout too large to be an instant waits forever.
            let left = wait.remaining();
            if left.is_some_and(|d| d.is_zero()) {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("no change within {timeout:?} (generation still {since})"),
                )
                .at(self.path()));
            }
            if self.map.ctrl_writable() {
                waiters.fetch_add(1, Ordering::SeqCst);
                if generation.load(Ordering::SeqCst) == since {
                    sys::futex_wait(seq, s, left);
                }
                waiters.fetch_sub(1, Ordering::SeqCst);
            } else {
                // We cannot register as a waiter in a file we may not write:
                // writers will not wake us, so poll with a growing sleep.
                sys::futex_wait(seq, s, Some(left.map_or(nap, |l| l.min(nap))));
                nap = (nap * 2).min(Duration::from_millis(5));
            }
        }
    }

    /// The mapped file (for the pool layer's row views and region locks).
    pub(crate) fn mapping(&self) -> &Mapping {
        &self.map
    }

    /// A second handle on the same mapping (for owned guards and views,
    /// which keep the mapping alive without borrowing this handle).
    pub(crate) fn share(&self) -> UntypedArray {
        UntypedArray {
            map: Arc::clone(&self.map),
        }
    }

    pub(crate) fn bump_generation(&self) {
        // A copy-on-write handle's control words are private pages: never
        // written, so the handle keeps seeing the file's generation.
        if self.map.control().is_none() || !self.map.ctrl_writable() {
            return;
        }
        self.map
            .ctrl_u64(control::off::GENERATION as u64)
            .fetch_add(1, Ordering::SeqCst);
        let seq = self.map.ctrl_u32(control::off::GEN_SEQ as u64);
        seq.fetch_add(1, Ordering::SeqCst);
        if self
            .map
            .ctrl_u32(control::off::GEN_WAITERS as u64)
            .load(Ordering::SeqCst)
            > 0
        {
            sys::futex_wake(seq, i32::MAX);
        }
    }

    /// Write dirty pages to disk (`msync`). A no-op for read-only handles.
    ///
    /// # Errors
    ///
    /// The I/O error from `msync` (for example EIO), never swallowed.
    pub fn flush(&self) -> Result<()> {
        self.map.flush()
    }

    fn lock(&self, mode: LockMode, wait: Wait) -> Result<FileLock> {
        if mode == LockMode::Exclusive && !self.map.writable() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "this handle was opened read-only; open it read-write to take a write guard",
            )
            .at(self.path()));
        }
        if mode == LockMode::Exclusive && self.map.is_cow() {
            return self.map.shared_file().lock_private_write(wait);
        }
        self.map.shared_file().lock(mode, wait)
    }

    /// Shared read guard; blocks until no writer (process or thread) holds
    /// the array. Errors: I/O errors from `flock`, or [`ErrorKind::Replaced`]
    /// if the path no longer names this file.
    pub fn read(&self) -> Result<UntypedReadGuard<'_>> {
        self.read_with(Wait::Forever)
    }

    /// Shared read guard, or `Ok(None)` right away if a writer holds it.
    pub fn try_read(&self) -> Result<Option<UntypedReadGuard<'_>>> {
        none_on_timeout(self.read_with(Wait::No))
    }

    /// Shared read guard, waiting at most `timeout`
    /// ([`ErrorKind::LockTimeout`] after that).
    pub fn read_timeout(&self, timeout: Duration) -> Result<UntypedReadGuard<'_>> {
        self.read_with(Wait::timeout(timeout))
    }

    pub(crate) fn read_wait(&self, wait: Wait) -> Result<UntypedReadGuard<'_>> {
        self.read_with(wait)
    }

    fn read_with(&self, wait: Wait) -> Result<UntypedReadGuard<'_>> {
        let lock = self.lock(LockMode::Shared, wait)?;
        Ok(UntypedReadGuard {
            owned: OwnedUntypedReadGuard {
                array: self.share(),
                _lock: lock,
            },
            _array: PhantomData,
        })
    }

    /// Exclusive write guard; blocks until nobody else holds the array.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PermissionDenied`] on a read-only handle; lock I/O errors.
    pub fn write(&self) -> Result<UntypedWriteGuard<'_>> {
        self.write_with(Wait::Forever)
    }

    /// Exclusive write guard, or `Ok(None)` right away if anyone holds it.
    pub fn try_write(&self) -> Result<Option<UntypedWriteGuard<'_>>> {
        none_on_timeout(self.write_with(Wait::No))
    }

    /// Exclusive write guard, waiting at most `timeout`.
    pub fn write_timeout(&self, timeout: Duration) -> Result<UntypedWriteGuard<'_>> {
        self.write_with(Wait::timeout(timeout))
    }

    fn write_with(&self, wait: Wait) -> Result<UntypedWriteGuard<'_>> {
        let lock = self.lock(LockMode::Exclusive, wait)?;
        Ok(UntypedWriteGuard {
            owned: OwnedUntypedWriteGuard {
                array: self.share(),
                _lock: lock,
                dirty: false,
            },
            _array: PhantomData,
        })
    }
}

fn none_on_timeout<G>(r: Result<G>) -> Result<Option<G>> {
    match r {
        Ok(g) => Ok(Some(g)),
        Err(e) if e.kind() == ErrorKind::LockTimeout => Ok(None),
        Err(e) => Err(e),
    }
}

/// The open file description shared by every handle to this file in the
/// process, for front ends that map the data a second time (the Python
/// package maps one revocable window per guard). Never lock, unlock, truncate
/// or close through it: `flock` locks belong to this description and the
/// guards manage them.
impl std::os::fd::AsFd for UntypedArray {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.map.shared_file().file().as_fd()
    }
}

impl std::fmt::Debug for UntypedArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UntypedArray")
            .field("path", &self.path())
            .field("dtype", &self.dtype().descr())
            .field("shape", &self.shape())
            .field("order", &self.order())
            .finish()
    }
}

/// A shared lock on an [`UntypedArray`]: no writer in any process or thread
/// until it is dropped.
#[must_use = "dropping the guard releases the shared lock at once"]
pub struct UntypedReadGuard<'a> {
    owned: OwnedUntypedReadGuard,
    _array: PhantomData<&'a UntypedArray>,
}

impl UntypedReadGuard<'_> {
    /// The data bytes.
    pub fn bytes(&self) -> &[u8] {
        self.owned.bytes()
    }

    /// Keep the lock without borrowing the handle: the owned guard holds a
    /// reference to the handle's mapping, so it can be stored in a struct or
    /// handed to another thread (front ends such as the Python package keep
    /// one per guard object).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{Dtype, UntypedArray};
    /// let a = UntypedArray::builder(Dtype::parse_user("uint8")?)
    ///     .shape(&[4])
    ///     .create(dir.path().join("a.npy"))?;
    /// let guard = a.read()?.into_owned();
    /// drop(a);                                  // the guard keeps the mapping
    /// assert_eq!(guard.bytes(), &[0, 0, 0, 0]);
    /// assert_eq!(guard.array().shape(), &[4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_owned(self) -> OwnedUntypedReadGuard {
        self.owned
    }
}

/// An exclusive lock on an [`UntypedArray`]. If the data was borrowed
/// mutably, the generation is bumped when the guard is dropped.
#[must_use = "dropping the guard releases the exclusive lock at once (and bumps the generation)"]
pub struct UntypedWriteGuard<'a> {
    owned: OwnedUntypedWriteGuard,
    _array: PhantomData<&'a UntypedArray>,
}

impl UntypedWriteGuard<'_> {
    /// The data bytes.
    pub fn bytes(&self) -> &[u8] {
        self.owned.bytes()
    }

    /// The data bytes, mutably (marks the guard as having changed data).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.owned.bytes_mut()
    }

    /// Keep the lock without borrowing the handle (see
    /// [`UntypedReadGuard::into_owned`]). A change already marked stays
    /// marked: the generation is bumped when the owned guard is dropped.
    pub fn into_owned(self) -> OwnedUntypedWriteGuard {
        self.owned
    }
}

/// A shared lock on an array that owns a reference to the array's mapping
/// instead of borrowing its handle ([`UntypedReadGuard::into_owned`]).
/// `Send + Sync`; the lock is released when it is dropped.
#[must_use = "dropping the guard releases the shared lock at once"]
pub struct OwnedUntypedReadGuard {
    array: UntypedArray,
    _lock: FileLock,
}

impl OwnedUntypedReadGuard {
    /// A handle on the locked array (path, dtype, shape, order...).
    pub fn array(&self) -> &UntypedArray {
        &self.array
    }

    /// The data bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: we hold the shared lock: cooperating peers do not write.
        unsafe { self.array.map.data_bytes(0, self.array.nbytes()) }
    }
}

impl std::fmt::Debug for OwnedUntypedReadGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedUntypedReadGuard")
            .field("path", &self.array.path())
            .finish()
    }
}

/// An exclusive lock on an array that owns a reference to the array's
/// mapping instead of borrowing its handle
/// ([`UntypedWriteGuard::into_owned`]). `Send + Sync`. If the data was
/// borrowed mutably, the generation is bumped when it is dropped.
#[must_use = "dropping the guard releases the exclusive lock at once (and bumps the generation)"]
pub struct OwnedUntypedWriteGuard {
    array: UntypedArray,
    _lock: FileLock,
    dirty: bool,
}

impl OwnedUntypedWriteGuard {
    /// A handle on the locked array (path, dtype, shape, order...).
    pub fn array(&self) -> &UntypedArray {
        &self.array
    }

    /// The data bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: we hold the exclusive lock.
        unsafe { self.array.map.data_bytes(0, self.array.nbytes()) }
    }

    /// The data bytes, mutably (marks the guard as having changed data).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.dirty = true;
        // SAFETY: we hold the exclusive lock and `&mut self` prevents another
        // slice from this guard coexisting.
        unsafe { self.array.map.data_bytes_mut(0, self.array.nbytes()) }
    }
}

impl Drop for OwnedUntypedWriteGuard {
    fn drop(&mut self) {
        if self.dirty {
            // Bump before the lock is released (the fields are dropped after
            // this) so a reader that sees the new generation and then locks
            // sees the new data.
            self.array.bump_generation();
        }
    }
}

impl std::fmt::Debug for OwnedUntypedWriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedUntypedWriteGuard")
            .field("path", &self.array.path())
            .field("dirty", &self.dirty)
            .finish()
    }
}

/// A typed handle to a shared array of `T`.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("a.npy");
/// use sharray::SharedArray;
/// let a = SharedArray::<f32>::create(&path, &[2, 3])?;
/// {
///     let mut w = a.write()?;
///     w[4] = 7.0;            // slices through the guard
/// }
/// let b = SharedArray::<f32>::open(&path)?;
/// assert_eq!(b.read()?[4], 7.0);
/// assert_eq!(b.generation(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Safety
///
/// Guards hand out slices of memory that other processes map too. Among
/// cooperating peers the guard's lock makes them sound; a process that ignores
/// the locks and writes while a guard's slice lives causes undefined
/// behaviour, and one that truncates the file kills us with SIGBUS. See the
/// crate's [Safety model](crate#safety-model).
pub struct SharedArray<T: Element> {
    raw: UntypedArray,
    _t: PhantomData<T>,
}

impl<T: Element> SharedArray<T> {
    /// Start building a new array: set the shape (required), then optionally
    /// the order, a fill value, the file mode; [`ArrayBuilder::create`]
    /// publishes it.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{Order, SharedArray};
    /// let a = SharedArray::<u16>::builder()
    ///     .shape(&[3, 4])
    ///     .order(Order::F)
    ///     .fill(7)
    ///     .mode(0o640)
    ///     .create(dir.path().join("a.npy"))?; // or "shm:a" for /dev/shm/a
    /// assert_eq!((a.shape(), a.order()), (&[3, 4][..], Order::F));
    /// assert!(a.read()?.iter().all(|&x| x == 7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> ArrayBuilder<T> {
        ArrayBuilder {
            inner: UntypedArray::builder(
                Dtype::parse_user(T::DESCR).expect("element descr is valid"),
            ),
            _t: PhantomData,
        }
    }

    /// Create a zero-filled C-order array. Errors as [`UntypedBuilder::create`].
    ///
    /// The file appears complete or not at all, and an existing file is never
    /// overwritten.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("zeros.npy");
    /// use sharray::{ErrorKind, SharedArray};
    /// let a = SharedArray::<f64>::create(&path, &[100, 3])?;
    /// assert_eq!(a.len(), 300);
    /// assert!(a.read()?.iter().all(|&x| x == 0.0));
    /// let again = SharedArray::<f64>::create(&path, &[100, 3]);
    /// assert_eq!(again.unwrap_err().kind(), ErrorKind::AlreadyExists);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(path: impl AsRef<Path>, shape: &[usize]) -> Result<SharedArray<T>> {
        Self::builder().shape(shape).create(path)
    }

    /// Open read-write. Errors as [`OpenOptions::open`].
    ///
    /// Opening reads only the header and control block: it costs the same for
    /// any array size. The element type must match the file's dtype.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("a.npy");
    /// use sharray::{ErrorKind, SharedArray};
    /// SharedArray::<i32>::create(&path, &[4, 4])?;
    /// let a = SharedArray::<i32>::open(&path)?;
    /// assert_eq!(a.shape(), &[4, 4]);
    /// let wrong = SharedArray::<f32>::open(&path);
    /// assert_eq!(wrong.unwrap_err().kind(), ErrorKind::DtypeMismatch);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<SharedArray<T>> {
        OpenOptions::new().open(path)
    }

    /// Open read-only. Errors as [`OpenOptions::open`]. The handle's write
    /// methods fail at run time; [`ReadOnlyArray::open`](crate::ReadOnlyArray::open) gives a handle that
    /// has none.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<SharedArray<T>> {
        OpenOptions::new().read_only(true).open(path)
    }

    /// The untyped handle.
    pub fn untyped(&self) -> &UntypedArray {
        &self.raw
    }

    /// Give up the element type.
    pub fn into_untyped(self) -> UntypedArray {
        self.raw
    }

    /// The path.
    pub fn path(&self) -> &Path {
        self.raw.path()
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.raw.shape()
    }

    /// C or Fortran order.
    pub fn order(&self) -> Order {
        self.raw.order()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Is the array empty?
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// See [`UntypedArray::generation`].
    pub fn generation(&self) -> u64 {
        self.raw.generation()
    }

    /// Wait until the generation differs from `since`, at most `timeout`; see
    /// [`UntypedArray::wait_changed`] (errors included).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("a.npy");
    /// use sharray::{ErrorKind, SharedArray};
    /// use std::time::Duration;
    /// let a = SharedArray::<f32>::create(&path, &[8])?;
    /// let seen = a.generation();
    ///
    /// // Another process (here a thread with its own handle) writes.
    /// let writer = std::thread::spawn(move || -> sharray::Result<()> {
    ///     let b = SharedArray::<f32>::open(&path)?;
    ///     b.write()?[0] = 1.0;
    ///     Ok(())
    /// });
    /// let now = a.wait_changed(seen, Duration::from_secs(10))?;
    /// assert!(now > seen);
    /// writer.join().unwrap()?;
    ///
    /// // Nothing changes any more: the wait times out.
    /// let idle = a.wait_changed(a.generation(), Duration::from_millis(10));
    /// assert_eq!(idle.unwrap_err().kind(), ErrorKind::Timeout);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_changed(&self, since: u64, timeout: Duration) -> Result<u64> {
        self.raw.wait_changed(since, timeout)
    }

    /// See [`UntypedArray::flush`].
    pub fn flush(&self) -> Result<()> {
        self.raw.flush()
    }

    /// A snapshot of the layout.
    pub fn info(&self) -> Info {
        self.raw.info()
    }

    /// Shared read guard: no writer in any process or thread until it is
    /// dropped; other readers share it. Errors as [`UntypedArray::read`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::SharedArray;
    /// let a = SharedArray::<f32>::builder().shape(&[2, 3]).fill(0.5).create(dir.path().join("a.npy"))?;
    /// let r = a.read()?;                  // Deref<Target = [f32]>, memory order
    /// let r2 = a.read()?;                 // readers share the lock
    /// assert_eq!(r.iter().sum::<f32>(), 3.0);
    /// # #[cfg(feature = "ndarray")]
    /// assert_eq!(r2.view()[[1, 2]], 0.5); // or an ndarray view
    /// # drop(r2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(&self) -> Result<ReadGuard<'_, T>> {
        Ok(ReadGuard {
            inner: self.raw.read()?,
            _t: PhantomData,
        })
    }

    /// Shared read guard or `None` without waiting.
    pub fn try_read(&self) -> Result<Option<ReadGuard<'_, T>>> {
        Ok(self.raw.try_read()?.map(|inner| ReadGuard {
            inner,
            _t: PhantomData,
        }))
    }

    /// Shared read guard, waiting at most `timeout`.
    pub fn read_timeout(&self, timeout: Duration) -> Result<ReadGuard<'_, T>> {
        Ok(ReadGuard {
            inner: self.raw.read_timeout(timeout)?,
            _t: PhantomData,
        })
    }

    /// Exclusive write guard: nobody else reads or writes, in any process or
    /// thread, until it is dropped. Dropping a guard through which data was
    /// borrowed mutably bumps the generation and wakes
    /// [`wait_changed`](SharedArray::wait_changed). Errors as
    /// [`UntypedArray::write`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::SharedArray;
    /// let a = SharedArray::<f32>::create(dir.path().join("a.npy"), &[2, 3])?;
    /// {
    ///     let mut w = a.write()?;          // DerefMut<Target = [f32]>
    ///     w[0] = 1.0;                      // `view_mut()` gives an ndarray view
    /// }                                    // dropped: lock released, generation bumped
    /// assert_eq!(a.generation(), 1);
    /// assert_eq!(a.try_read()?.map(|r| r[0]), Some(1.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(&self) -> Result<WriteGuard<'_, T>> {
        Ok(WriteGuard {
            inner: self.raw.write()?,
            _t: PhantomData,
        })
    }

    /// Exclusive write guard or `None` without waiting.
    pub fn try_write(&self) -> Result<Option<WriteGuard<'_, T>>> {
        Ok(self.raw.try_write()?.map(|inner| WriteGuard {
            inner,
            _t: PhantomData,
        }))
    }

    /// Exclusive write guard, waiting at most `timeout`.
    pub fn write_timeout(&self, timeout: Duration) -> Result<WriteGuard<'_, T>> {
        Ok(WriteGuard {
            inner: self.raw.write_timeout(timeout)?,
            _t: PhantomData,
        })
    }
}

impl<T: Element> std::fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedArray")
            .field("path", &self.path())
            .field("dtype", &T::DESCR)
            .field("shape", &self.shape())
            .finish()
    }
}

/// A shared lock with a typed view: `Deref<Target = [T]>` in memory order.
#[must_use = "dropping the guard releases the shared lock at once"]
pub struct ReadGuard<'a, T: Element> {
    inner: UntypedReadGuard<'a>,
    _t: PhantomData<&'a [T]>,
}

impl<T: Element> std::ops::Deref for ReadGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        bytemuck::cast_slice(self.inner.bytes())
    }
}

/// An exclusive lock with a typed mutable view. Any mutable borrow marks the
/// data changed and bumps the generation on drop.
#[must_use = "dropping the guard releases the exclusive lock at once (and bumps the generation)"]
pub struct WriteGuard<'a, T: Element> {
    inner: UntypedWriteGuard<'a>,
    _t: PhantomData<&'a mut [T]>,
}

impl<T: Element> std::ops::Deref for WriteGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        bytemuck::cast_slice(self.inner.bytes())
    }
}

impl<T: Element> std::ops::DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        bytemuck::cast_slice_mut(self.inner.bytes_mut())
    }
}

#[cfg(feature = "ndarray")]
mod views {
    use super::*;
    use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn, ShapeBuilder};

    fn shape_of(shape: &[usize], order: Order) -> ndarray::Shape<IxDyn> {
        match order {
            Order::C => IxDyn(shape).into_shape_with_order(),
            Order::F => IxDyn(shape).f(),
        }
    }

    impl<T: Element> ReadGuard<'_, T> {
        /// An n-d view with the file's shape and order.
        pub fn view(&self) -> ArrayViewD<'_, T> {
            let array = &self.inner.owned.array;
            ArrayViewD::from_shape(shape_of(array.shape(), array.order()), &self[..])
                .expect("shape matches data length (validated at open)")
        }
    }

    impl<T: Element> WriteGuard<'_, T> {
        /// An n-d view with the file's shape and order.
        pub fn view(&self) -> ArrayViewD<'_, T> {
            let array = &self.inner.owned.array;
            ArrayViewD::from_shape(shape_of(array.shape(), array.order()), &self[..])
                .expect("shape matches data length (validated at open)")
        }

        /// A mutable n-d view (marks the data changed).
        pub fn view_mut(&mut self) -> ArrayViewMutD<'_, T> {
            let array = &self.inner.owned.array;
            let shape = shape_of(array.shape(), array.order());
            ArrayViewMutD::from_shape(shape, &mut self[..])
                .expect("shape matches data length (validated at open)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_array(dir: &Path, len: usize) -> UntypedArray {
        UntypedArray::builder(Dtype::parse_user("uint8").unwrap())
            .shape(&[len])
            .create(dir.join("a.npy"))
            .unwrap()
    }

    #[test]
    fn owned_guards_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<OwnedUntypedReadGuard>();
        check::<OwnedUntypedWriteGuard>();
    }

    #[test]
    fn owned_guards_exclude_like_borrowed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = bytes_array(dir.path(), 8);
        let w = a.write().unwrap().into_owned();
        assert!(a.try_read().unwrap().is_none());
        assert!(a.try_write().unwrap().is_none());
        drop(w);
        let r1 = a.read().unwrap().into_owned();
        let r2 = a.try_read().unwrap().expect("readers share");
        assert!(a.try_write().unwrap().is_none());
        drop(r2);
        assert!(
            a.try_write().unwrap().is_none(),
            "the owned reader still holds it"
        );
        drop(r1);
        assert!(a.try_write().unwrap().is_some(), "dropping releases");
    }

    #[test]
    fn owned_guards_exclude_other_threads_and_handles() {
        let dir = tempfile::tempdir().unwrap();
        let a = bytes_array(dir.path(), 8);
        let other = UntypedArray::open(a.path()).unwrap();
        let w = a.write().unwrap().into_owned();
        let path = a.path().to_path_buf();
        std::thread::spawn(move || {
            let b = UntypedArray::open(&path).unwrap();
            assert!(b.try_read().unwrap().is_none());
            // The guard may be released on another thread.
            drop(w);
            assert!(b.try_write().unwrap().is_some());
        })
        .join()
        .unwrap();
        assert!(other.try_write().unwrap().is_some());
    }

    #[test]
    fn owned_guards_outlive_their_handle_and_bump_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let a = bytes_array(dir.path(), 4);
        let path = a.path().to_path_buf();
        let mut w = a.write().unwrap().into_owned();
        drop(a);
        w.bytes_mut().copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(w.array().shape(), &[4]);
        drop(w);
        let b = UntypedArray::open(&path).unwrap();
        assert_eq!(b.generation(), 1);
        let r = b.read().unwrap().into_owned();
        assert_eq!(r.bytes(), &[1, 2, 3, 4]);
        assert_eq!(r.array().path(), b.path());
        // An owned write guard that never borrowed mutably changes nothing.
        drop(r);
        drop(b.write().unwrap().into_owned());
        assert_eq!(b.generation(), 1);
    }

    #[test]
    fn a_write_marked_before_into_owned_stays_marked() {
        let dir = tempfile::tempdir().unwrap();
        let a = bytes_array(dir.path(), 4);
        let mut w = a.write().unwrap();
        w.bytes_mut()[0] = 9;
        drop(w.into_owned());
        assert_eq!(a.generation(), 1);
    }

    #[test]
    fn timed_waits_expire_and_wake_on_release() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(bytes_array(dir.path(), 4));
        let w = a.write().unwrap().into_owned();
        let e = a
            .read_timeout(Duration::from_millis(20))
            .map(drop)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LockTimeout);
        let a2 = Arc::clone(&a);
        let t = std::thread::spawn(move || a2.read_timeout(Duration::from_secs(10)).map(drop));
        std::thread::sleep(Duration::from_millis(20));
        drop(w);
        t.join().unwrap().unwrap();
    }
}
