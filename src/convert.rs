//! Import a plain `.npy` into a sharray file and export back, byte-exact.

use std::path::Path;
use std::time::Duration;

use crate::array::{OpenOptions, Order, UntypedArray};
use crate::error::{Error, ErrorKind, Result};
use crate::file::{LockMode, Wait, create_file_with};
use crate::format::npy::{Dtype, NpyHeader};
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
#[must_use = "options do nothing until passed to `import_npy_with` or `export_npy_with`"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    mode: u32,
    lock_timeout: Option<Duration>,
    allow_other_owner: bool,
    replace: bool,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions {
            mode: 0o600,
            lock_timeout: None,
            allow_other_owner: false,
            replace: false,
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

    /// Accept a source file owned by another user (refused by default, as
    /// [`OpenOptions::allow_other_owner`]).
    pub fn allow_other_owner(mut self, yes: bool) -> CopyOptions {
        self.allow_other_owner = yes;
        self
    }

    /// For [`export_npy_with`]: replace an existing regular file at `dst`
    /// atomically (the new file is written unnamed and renamed over the old
    /// name; a process that maps the old file keeps it intact). Without it
    /// an existing `dst` is an [`ErrorKind::AlreadyExists`] error.
    /// [`import_npy_with`] never replaces and refuses this option.
    pub fn replace(mut self, yes: bool) -> CopyOptions {
        self.replace = yes;
        self
    }

    fn source(&self) -> OpenOptions {
        OpenOptions::new()
            .read_only(true)
            .allow_other_owner(self.allow_other_owner)
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
/// # Examples
///
/// A plain `.npy` (written by numpy, or here by [`write_npy`]) becomes a
/// sharray file with a generation counter and change waits.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let (plain, shared) = (dir.path().join("plain.npy"), dir.path().join("shared.npy"));
/// use sharray::{Dtype, FileKind, Order, SharedArray};
/// let data: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
/// sharray::write_npy(&plain, &Dtype::parse_user("<f8")?, &[2, 2], Order::C, &data, 0o600)?;
///
/// let mut seen = 0;
/// let a = sharray::import_npy(&plain, &shared, 0o600, &mut |done, _total| seen = done)?;
/// assert_eq!((a.kind(), a.shape(), seen), (FileKind::Array, &[2, 2][..], 32));
/// assert_eq!(&*SharedArray::<f64>::open(&shared)?.read()?, &[1.0, 2.0, 3.0, 4.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    if opts.replace {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "import never replaces a file: CopyOptions::replace is for export_npy_with",
        ));
    }
    let src = opts.source().open_untyped(src)?;
    import_from(src, dst.as_ref(), opts, progress)
}

/// Copy a headerless raw file with the given layout into a new sharray
/// array at `dst` (dtype, shape and order from `layout`; the bytes exactly).
/// The source must be exactly `offset + nbytes` long; it is read under its
/// shared `flock`.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let (raw, out) = (dir.path().join("data.dat"), dir.path().join("data.npy"));
/// use sharray::{CopyOptions, Dtype, RawLayout, SharedArray};
/// let bytes: Vec<u8> = (0..6u16).flat_map(|x| x.to_le_bytes()).collect();
/// std::fs::write(&raw, [&[0xAA; 16][..], &bytes].concat())?; // a 16-byte foreign header
/// let layout = RawLayout::new(Dtype::parse_user("uint16")?, &[2, 3]).offset(16);
/// sharray::import_raw(&raw, &layout, &out, CopyOptions::new(), &mut |_, _| {})?;
/// assert_eq!(&*SharedArray::<u16>::open(&out)?.read()?, &[0, 1, 2, 3, 4, 5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// Those of [`OpenOptions::open_raw_untyped`] for the source (a size that
/// does not match says what would fit) and of [`import_npy_with`].
pub fn import_raw(
    src: impl AsRef<Path>,
    layout: &crate::raw::RawLayout,
    dst: impl AsRef<Path>,
    opts: CopyOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<UntypedArray> {
    if opts.replace {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "import never replaces a file: CopyOptions::replace is for export_npy_with",
        ));
    }
    let src = opts.source().open_raw_untyped(src, layout)?;
    import_from(src, dst.as_ref(), opts, progress)
}

fn import_from(
    src: UntypedArray,
    dst: &Path,
    opts: CopyOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<UntypedArray> {
    let guard = src.read_wait(opts.wait())?;
    // The data is copied into the unpublished file: `dst` appears only once
    // complete, even if this process is killed mid-copy.
    let out = UntypedArray::builder(src.dtype().clone())
        .shape(src.shape())
        .order(src.order())
        .mode(opts.mode)
        .create_with_data(
            dst,
            Some(&mut |data: &mut [u8]| copy_with_progress(guard.bytes(), data, progress)),
        )?;
    drop(guard);
    // The generation records the import, as for any write.
    out.bump_generation();
    Ok(out)
}

/// Write the array at `src` (sharray or `.npy`) to a new plain `.npy` at `dst`
/// with the header numpy itself writes, keeping dtype, shape, order and bytes
/// exactly. Holds a shared lock on `src` while copying.
///
/// Same as [`export_npy_with`] with `CopyOptions::new().mode(mode)`.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let (shared, plain) = (dir.path().join("shared.npy"), dir.path().join("plain.npy"));
/// use sharray::{FileKind, SharedArray};
/// let a = SharedArray::<i32>::builder().shape(&[3]).fill(-1).create(&shared)?;
/// sharray::export_npy(&shared, &plain, 0o644, &mut |_, _| {})?;
///
/// // The copy is the file numpy.save would write: no control block.
/// let info = sharray::inspect(&plain)?;
/// assert_eq!((info.kind, info.shape.as_slice()), (FileKind::Npy, &[3][..]));
/// assert_eq!(std::fs::metadata(&plain)?.len(), 128 + 12);
/// assert_eq!(&*SharedArray::<i32>::open_read_only(&plain)?.read()?, &[-1; 3]);
/// # drop(a);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    let map = Mapping::open(src.as_ref(), opts.source().flags())?;
    let header = map.header().clone();
    let lock = map.shared_file().lock(LockMode::Shared, opts.wait())?;
    // The read lock is held: cooperating peers do not write the data.
    write_npy_file(
        dst,
        &header,
        map_bytes(&map),
        opts.mode,
        opts.replace,
        progress,
    )?;
    drop(lock);
    Ok(())
}

/// Write `data` (the array's bytes in `order`) as a new plain `.npy` at `path`
/// with the header numpy itself writes. Like every file sharray makes, it
/// appears complete or not at all (temporary file, `posix_fallocate`,
/// no-clobber link) with permission bits `mode`.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let p = dir.path().join("frame.npy");
/// let data: Vec<u8> = (0u8..6).collect();
/// sharray::write_npy(&p, &sharray::Dtype::parse_user("uint8")?, &[2, 3], sharray::Order::C, &data, 0o600)?;
/// assert_eq!(sharray::inspect(&p)?.shape, vec![2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] if `data` is not exactly the array's size;
/// [`ErrorKind::AlreadyExists`] if `path` exists (nothing is overwritten);
/// [`ErrorKind::NoSpace`] (nothing is left behind); other I/O errors.
pub fn write_npy(
    path: impl AsRef<Path>,
    dtype: &Dtype,
    shape: &[usize],
    order: Order,
    data: &[u8],
    mode: u32,
) -> Result<()> {
    write_npy_impl(path.as_ref(), dtype, shape, order, data, mode, false)
}

/// [`write_npy`] that replaces an existing regular file at `path`
/// atomically: the new file is written unnamed (or under a temporary name)
/// and renamed over the old name, so a process that maps the old file keeps
/// it intact and readers of the name see the old or the complete new file.
///
/// # Errors
///
/// As [`write_npy`], except that an existing regular file is replaced;
/// [`ErrorKind::NotARegularFile`] if something else is at `path`.
pub fn write_npy_replacing(
    path: impl AsRef<Path>,
    dtype: &Dtype,
    shape: &[usize],
    order: Order,
    data: &[u8],
    mode: u32,
) -> Result<()> {
    write_npy_impl(path.as_ref(), dtype, shape, order, data, mode, true)
}

fn write_npy_impl(
    path: &Path,
    dtype: &Dtype,
    shape: &[usize],
    order: Order,
    data: &[u8],
    mode: u32,
    replace: bool,
) -> Result<()> {
    let header = NpyHeader {
        dtype: dtype.clone(),
        fortran_order: order == Order::F,
        shape: shape.to_vec(),
    };
    if header.nbytes() != Some(data.len()) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} bytes of data do not make an array of dtype {dtype} and shape {shape:?}",
                data.len()
            ),
        )
        .at(path));
    }
    write_npy_file(path, &header, data, mode, replace, &mut |_, _| {})
}

fn write_npy_file(
    dst: &Path,
    header: &NpyHeader,
    data: &[u8],
    mode: u32,
    replace: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let hdr = header.emit_standard();
    let total = (hdr.len() as u64)
        .checked_add(data.len() as u64)
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "array too large"))?;
    create_file_with(dst, total, mode, true, replace, |f| {
        use std::io::Write;
        let mut w = std::io::BufWriter::with_capacity(CHUNK, f);
        w.write_all(&hdr)
            .map_err(|e| Error::io("cannot write", e))?;
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
    Ok(())
}

#[allow(unsafe_code)]
fn map_bytes(map: &Mapping) -> &[u8] {
    // SAFETY: only called by export_npy while it holds the shared whole-file
    // lock, so cooperating peers do not write the data.
    unsafe { map.data_bytes(0, map.nbytes()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_npy_refuses_data_of_the_wrong_size_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.npy");
        let d = Dtype::parse_user("<f4").unwrap();
        let e = write_npy(&p, &d, &[2, 3], Order::C, &[0u8; 20], 0o600).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write_npy(&p, &d, &[2, 3], Order::F, &[0u8; 24], 0o600).unwrap();
        let e = write_npy(&p, &d, &[2, 3], Order::C, &[0u8; 24], 0o600).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        let info = crate::inspect(&p).unwrap();
        assert_eq!((info.shape, info.order), (vec![2, 3], Order::F));
    }
}
