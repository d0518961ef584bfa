//! Import a plain `.npy` into a sharray file and export back, byte-exact.

use std::path::Path;

use crate::array::{OpenOptions, UntypedArray};
use crate::error::{Error, ErrorKind, Result};
use crate::file::create_file;
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

/// Copy a `.npy` (or any sharray array) at `src` into a new sharray array at
/// `dst`, keeping dtype, shape, order and bytes exactly. Holds a shared lock
/// on `src` while copying. `progress(done, total)` is called every few MiB.
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
    let src = OpenOptions::new().read_only(true).open_untyped(src)?;
    let guard = src.read()?;
    let out = UntypedArray::builder(src.dtype().clone())
        .shape(src.shape())
        .order(src.order())
        .mode(mode)
        .create(dst.as_ref())?;
    {
        // Nobody else can hold a lock on the new file yet, but take it anyway
        // so the generation records the import.
        let mut w = out.write()?;
        copy_with_progress(guard.bytes(), w.bytes_mut(), progress);
    }
    drop(guard);
    Ok(out)
}

/// Write the array at `src` (sharray or `.npy`) to a new plain `.npy` at `dst`
/// with the header numpy itself writes, keeping dtype, shape, order and bytes
/// exactly. Holds a shared lock on `src` while copying.
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
    let dst = dst.as_ref();
    let map = Mapping::open(src.as_ref(), OpenOptions::new().read_only(true).flags())?;
    let header = map.header().clone();
    let lock = map
        .shared_file()
        .lock(crate::file::LockMode::Shared, crate::file::Wait::Forever)?;
    let hdr = header.emit_standard();
    let total = (hdr.len() as u64)
        .checked_add(map.nbytes() as u64)
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "array too large"))?;
    create_file(dst, total, mode, true, |f| {
        use std::io::Write;
        let mut w = std::io::BufWriter::with_capacity(CHUNK, f);
        w.write_all(&hdr)
            .map_err(|e| Error::io("cannot write", e))?;
        // SAFETY-free: the read lock is held; we only read through the guard-
        // protected byte view.
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
