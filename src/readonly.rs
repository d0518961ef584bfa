//! [`ReadOnlyArray`]: a typed handle with no write methods, numpy's mode
//! `"r"` checked by the compiler instead of at run time.

use std::path::Path;
use std::time::Duration;

use crate::array::{Info, OpenOptions, Order, ReadGuard, SharedArray, UntypedArray};
use crate::element::Element;
use crate::error::Result;

/// A typed, read-only handle to a shared array: read guards, the
/// generation, access hints, and no way to write.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("a.npy");
/// use sharray::{ReadOnlyArray, SharedArray};
/// SharedArray::<u8>::builder().shape(&[4]).fill(3).create(&path)?;
/// let r = ReadOnlyArray::<u8>::open(&path)?;
/// assert_eq!(&*r.read()?, &[3, 3, 3, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// It has no `write`:
///
/// ```compile_fail
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("a.npy");
/// # sharray::SharedArray::<u8>::create(&path, &[4])?;
/// let r = sharray::ReadOnlyArray::<u8>::open(&path)?;
/// r.write()?[0] = 1;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Safety
///
/// As [`SharedArray`]: read guards hand out slices of memory that other
/// processes map too; see the crate's [Safety model](crate#safety-model).
pub struct ReadOnlyArray<T: Element> {
    inner: SharedArray<T>,
}

impl<T: Element> ReadOnlyArray<T> {
    /// Open `path` read-only (numpy's mode `"r"`); works on files we may
    /// only read.
    ///
    /// # Errors
    ///
    /// As [`OpenOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnlyArray<T>> {
        Ok(OpenOptions::new()
            .read_only(true)
            .open(path)?
            .into_read_only())
    }

    /// The path.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.inner.shape()
    }

    /// C or Fortran order.
    pub fn order(&self) -> Order {
        self.inner.order()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Is the array empty?
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// A snapshot of the layout.
    pub fn info(&self) -> Info {
        self.inner.info()
    }

    /// See [`UntypedArray::generation`].
    pub fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// See [`UntypedArray::wait_changed`] (errors included).
    pub fn wait_changed(&self, since: u64, timeout: Duration) -> Result<u64> {
        self.inner.wait_changed(since, timeout)
    }

    /// Shared read guard. Errors as [`UntypedArray::read`].
    pub fn read(&self) -> Result<ReadGuard<'_, T>> {
        self.inner.read()
    }

    /// Shared read guard or `None` without waiting.
    pub fn try_read(&self) -> Result<Option<ReadGuard<'_, T>>> {
        self.inner.try_read()
    }

    /// Shared read guard, waiting at most `timeout`.
    pub fn read_timeout(&self, timeout: Duration) -> Result<ReadGuard<'_, T>> {
        self.inner.read_timeout(timeout)
    }

    /// Map every page now for reading; see [`SharedArray::prefault_read`].
    pub fn prefault_read(&self) {
        self.inner.prefault_read()
    }

    pub(crate) fn untyped_ref(&self) -> &UntypedArray {
        self.inner.untyped()
    }
}

impl<T: Element> SharedArray<T> {
    /// Give up the write methods: the same mapping as a [`ReadOnlyArray`].
    pub fn into_read_only(self) -> ReadOnlyArray<T> {
        ReadOnlyArray { inner: self }
    }
}

impl<T: Element> std::fmt::Debug for ReadOnlyArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyArray")
            .field("path", &self.path())
            .field("dtype", &T::DESCR)
            .field("shape", &self.shape())
            .finish()
    }
}
