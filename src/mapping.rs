//! A mapped sharray or `.npy` file: validated layout, raw data pointer, and
//! atomics over the control block.
//!
//! # Safety
//!
//! The mapping is kept as `MmapRaw` (a pointer and a length) because other
//! processes may write the file at any time. This module hands out:
//!
//! - `&AtomicU32` / `&AtomicU64` over control-block words: always sound to
//!   share, as long as the word is in bounds and aligned (checked here);
//! - `&[T]` / `&mut [T]` over data bytes only through `unsafe fn`s whose
//!   callers must hold a lock or lease that gives them exclusive (or shared
//!   read-only) access among cooperating peers.
//!
//! Everything read from the file that decides offsets or sizes was copied into
//! private memory and validated with checked arithmetic against the real file
//! length before the mapping is used. What lies outside our control is
//! spelled out in the crate's "Safety model": a process outside the protocol
//! that writes data bytes while one of these slices lives is undefined
//! behaviour no check here can prevent, and one that truncates the file makes
//! touching the lost pages raise SIGBUS (unavoidable for any shared mapping).

#![allow(unsafe_code)]

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, ErrorKind, Result};
use crate::file::{OpenFlags, SharedFile, create_file};
use crate::format::control::{self, ControlHeader, Kind};
use crate::format::npy::NpyHeader;
use crate::sys;

/// Everything needed to lay out a new file.
pub(crate) struct NewFile<'a> {
    pub header: &'a NpyHeader,
    pub kind: Kind,
    pub section_len: u64,
    pub mode: u32,
    pub preallocate: bool,
    /// Bytes of one element to repeat over the data (zeros if `None`).
    pub fill: Option<&'a [u8]>,
}

/// A mapped file with its validated layout.
pub(crate) struct Mapping {
    file: Arc<SharedFile>,
    map: MmapRaw,
    /// May data be written through this handle?
    writable: bool,
    /// Is the mapping itself writable (control words may be updated)?
    map_writable: bool,
    header: NpyHeader,
    data_offset: usize,
    nbytes: usize,
    file_len: u64,
    ctrl: Option<(u64, ControlHeader)>,
    /// A private (`MAP_PRIVATE`) copy-on-write mapping: data writes stay in
    /// this process, control words are never written.
    cow: bool,
    /// A headerless raw file opened with a caller-given layout.
    raw: bool,
}

/// How [`Mapping::open_with`] maps a file.
#[derive(Debug, Clone, Default)]
pub(crate) struct MapSpec {
    /// `MAP_PRIVATE` instead of `MAP_SHARED` (see [`Mapping`]'s `cow`).
    pub cow: bool,
    /// A headerless file: this header describes the data at this offset,
    /// and the file must end exactly where the data does.
    pub raw: Option<(NpyHeader, u64)>,
}

// SAFETY: the raw mapping is plain shared memory; all access to it goes
// through atomics or through lock/lease-guarded slices.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

/// Writes a new file's data bytes before it is published (see
/// [`Mapping::create_with_data`]).
pub(crate) type InitData<'a> = Option<&'a mut dyn FnMut(&mut [u8])>;

fn corrupt(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, msg)
}

impl Mapping {
    /// Create and publish a new sharray file; `init_section` fills the kind
    /// section (zeroed before the call) while nobody else can see the file.
    pub(crate) fn create(
        path: &Path,
        spec: &NewFile<'_>,
        init_section: impl FnOnce(&mut [u8]),
    ) -> Result<Mapping> {
        Mapping::create_with_data(path, spec, init_section, None)
    }

    /// [`Mapping::create`] that also fills the array's data with
    /// `init_data` (after the fill value) before the file is published, so
    /// a process killed mid-way never leaves a half-written file at `path`.
    pub(crate) fn create_with_data(
        path: &Path,
        spec: &NewFile<'_>,
        init_section: impl FnOnce(&mut [u8]),
        init_data: InitData<'_>,
    ) -> Result<Mapping> {
        let nbytes = spec.header.nbytes().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "the array is too large: shape times itemsize overflows",
            )
            .at(path)
        })?;
        let ctrl =
            ControlHeader::new(spec.kind, nbytes as u64, spec.section_len).ok_or_else(|| {
                Error::new(ErrorKind::InvalidInput, "the array is too large").at(path)
            })?;
        let ctrl_off = ctrl
            .ctrl_offset()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the array is too large"))?;
        let file_len = ctrl
            .file_len()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the array is too large"))?;
        if file_len > isize::MAX as u64 {
            return Err(
                Error::new(ErrorKind::InvalidInput, "the array is too large to map").at(path),
            );
        }
        let npy = spec
            .header
            .emit_padded(control::DATA_OFFSET as usize)
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("cannot write the .npy header: {e}"),
                )
                .at(path)
            })?;
        let (file, map) = create_file(path, file_len, spec.mode, spec.preallocate, |f| {
            let map = MmapOptions::new()
                .len(file_len as usize)
                .map_raw(f)
                .map_err(|e| Error::io("cannot map the new file", e))?;
            // SAFETY: the file is a fresh temporary file that no cooperating
            // process knows about yet; we are its only user until publish.
            let bytes =
                unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr(), file_len as usize) };
            bytes[..npy.len()].copy_from_slice(&npy);
            if let Some(fill) = spec.fill
                && !fill.is_empty()
                && fill.iter().any(|&b| b != 0)
            {
                let data = &mut bytes
                    [control::DATA_OFFSET as usize..control::DATA_OFFSET as usize + nbytes];
                for chunk in data.chunks_exact_mut(fill.len()) {
                    chunk.copy_from_slice(fill);
                }
            }
            if let Some(init) = init_data {
                init(
                    &mut bytes
                        [control::DATA_OFFSET as usize..control::DATA_OFFSET as usize + nbytes],
                );
            }
            let c = &mut bytes[ctrl_off as usize..];
            ctrl.encode(c);
            if spec.section_len > 0 {
                let s = ctrl.section_offset as usize;
                init_section(&mut c[s..s + spec.section_len as usize]);
            }
            // The state word goes last (a peer that maps a file another way
            // than through the published name still never sees it half-built).
            let state = &c[control::off::STATE..control::off::STATE + 4];
            // SAFETY: 4-byte aligned (CTRL_OFF is 64 KiB aligned, STATE is 60)
            // and inside the mapping.
            let state = unsafe { &*(state.as_ptr() as *const AtomicU32) };
            state.store(control::STATE_READY, Ordering::Release);
            Ok(map)
        })?;
        // Map again through the published name's description (the same
        // pages): the first mapping was made while the file had no name, and
        // `/proc/PID/maps` and `lsof` would show it as deleted for as long as
        // the handle lives.
        drop(map);
        let map = MmapOptions::new()
            .len(file_len as usize)
            .map_raw(file.file())
            .map_err(|e| Error::io("cannot map the new file", e).at(path))?;
        file.set_turnstile(ctrl_off + control::off::TURNSTILE as u64);
        Ok(Mapping {
            file,
            map,
            writable: true,
            map_writable: true,
            header: spec.header.clone(),
            data_offset: control::DATA_OFFSET as usize,
            nbytes,
            file_len,
            ctrl: Some((ctrl_off, ctrl)),
            cow: false,
            raw: false,
        })
    }

    /// Open and validate an existing sharray or plain `.npy` file.
    pub(crate) fn open(path: &Path, flags: OpenFlags) -> Result<Mapping> {
        Mapping::open_with(path, flags, &MapSpec::default())
    }

    /// [`Mapping::open`], copy-on-write or of a raw file as `spec` says.
    pub(crate) fn open_with(path: &Path, flags: OpenFlags, spec: &MapSpec) -> Result<Mapping> {
        // A copy-on-write handle never writes the file: a read-only
        // descriptor serves it (as numpy's mode "c" on a read-only file).
        let file_flags = OpenFlags {
            writable: flags.writable && !spec.cow,
            ..flags
        };
        let file = SharedFile::open(path, file_flags)?;
        if let Some((header, offset)) = &spec.raw {
            return Mapping::open_raw(file, path, flags, spec.cow, header, *offset);
        }
        if file_flags.writable && !file.writable() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "cannot open for writing: no write permission (or already open read-only in this process); open it read-only",
            )
            .at(path));
        }
        let f = file.file();
        let file_len = f
            .metadata()
            .map_err(|e| Error::io("cannot stat", e).at(path))?
            .len();
        let read_prefix = |n: u64| -> Result<Vec<u8>> {
            let n = n.min(file_len) as usize;
            let mut buf = vec![0u8; n];
            f.read_exact_at(&mut buf, 0)
                .map_err(|e| Error::io("cannot read the header", e).at(path))?;
            Ok(buf)
        };
        let mut prefix = read_prefix(65536 + 16)?;
        let mut parsed = NpyHeader::parse(&prefix);
        if parsed.is_err() && file_len > prefix.len() as u64 {
            prefix = read_prefix((1 << 20) + 16)?;
            parsed = NpyHeader::parse(&prefix);
        }
        let (header, data_offset) = parsed.map_err(|e| {
            let msg = if prefix.len() < 6 || &prefix[..6] != b"\x93NUMPY" {
                "not a .npy or sharray file (the magic bytes are missing)".to_string()
            } else {
                format!("invalid .npy header: {e}")
            };
            corrupt(msg).at(path)
        })?;
        let nbytes = header.nbytes().ok_or_else(|| {
            corrupt(format!(
                "the header's shape {:?} with itemsize {} overflows; the file is corrupt",
                header.shape,
                header.dtype.itemsize()
            ))
            .at(path)
        })?;
        let data_end = (data_offset as u64)
            .checked_add(nbytes as u64)
            .ok_or_else(|| corrupt("sizes overflow").at(path))?;
        if data_end > file_len {
            return Err(corrupt(format!(
                "file is truncated: the header promises {nbytes} bytes of data from offset {data_offset}, but the file has only {file_len} bytes"
            ))
            .at(path));
        }
        // A file whose data starts at 4096 and has bytes after the data is a
        // sharray file: it must carry a valid control block. (Only a plain
        // `.npy` that ends right after its data opens without one.)
        let mut ctrl = None;
        if data_offset as u64 == control::DATA_OFFSET && file_len > data_end {
            if crate::growable::probe(f, file_len) {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "this is a growable array (FORMAT.md section 9); open it with GrowableArray (Python: sharray.open, CLI: sharray append / info)",
                )
                .at(path));
            }
            let ctrl_off = control::ctrl_offset(nbytes as u64)
                .ok_or_else(|| corrupt("sizes overflow").at(path))?;
            let header_end = ctrl_off.saturating_add(control::HEADER_LEN);
            if file_len < header_end {
                return Err(corrupt(format!(
                    "file is truncated: {file_len} bytes, but a sharray file with {nbytes} bytes of data has its control block at {ctrl_off}..{header_end} at least; recreate it or restore it from a copy"
                ))
                .at(path));
            }
            let mut buf = vec![0u8; control::HEADER_LEN as usize];
            f.read_exact_at(&mut buf, ctrl_off)
                .map_err(|e| Error::io("cannot read the control block", e).at(path))?;
            if !ControlHeader::has_magic(&buf) {
                return Err(corrupt(format!(
                    "bytes follow the array data but there is no control block at offset {ctrl_off} (magic SHARRAY missing); the file is damaged, run `sharray check` on it"
                ))
                .at(path));
            }
            let h = ControlHeader::decode(&buf, data_offset as u64, nbytes as u64, file_len)
                .map_err(|e| {
                    let kind = if e.newer {
                        ErrorKind::Unsupported
                    } else {
                        ErrorKind::Corrupt
                    };
                    Error::new(kind, format!("invalid control block: {e}")).at(path)
                })?;
            ctrl = Some((ctrl_off, h));
        }
        if file_len > isize::MAX as u64 {
            return Err(corrupt("file is too large to map").at(path));
        }
        let (map, map_writable) = map_file(&file, path, flags, spec.cow, file_len)?;
        file.set_turnstile(match &ctrl {
            Some((ctrl_off, _)) => ctrl_off + control::off::TURNSTILE as u64,
            None => 0,
        });
        Ok(Mapping {
            file,
            map,
            writable: flags.writable || spec.cow,
            map_writable,
            header,
            data_offset,
            nbytes,
            file_len,
            ctrl,
            cow: spec.cow,
            raw: false,
        })
    }

    /// Map a headerless file whose layout the caller gives: no control
    /// block, whole-array locks as for a plain `.npy`, and a file length
    /// that must be exactly `offset + nbytes`.
    fn open_raw(
        file: Arc<SharedFile>,
        path: &Path,
        flags: OpenFlags,
        cow: bool,
        header: &NpyHeader,
        offset: u64,
    ) -> Result<Mapping> {
        if flags.writable && !cow && !file.writable() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "cannot open for writing: no write permission (or already open read-only in this process); open it read-only",
            )
            .at(path));
        }
        let file_len = file
            .file()
            .metadata()
            .map_err(|e| Error::io("cannot stat", e).at(path))?
            .len();
        let nbytes =
            crate::raw::check_raw_size(header, offset, file_len).map_err(|e| e.at(path))?;
        if file_len > isize::MAX as u64 {
            return Err(corrupt("file is too large to map").at(path));
        }
        let (map, map_writable) = map_file(&file, path, flags, cow, file_len)?;
        file.set_turnstile(0);
        Ok(Mapping {
            file,
            map,
            writable: flags.writable || cow,
            map_writable,
            header: header.clone(),
            data_offset: offset as usize,
            nbytes,
            file_len,
            ctrl: None,
            cow,
            raw: true,
        })
    }

    pub(crate) fn shared_file(&self) -> &Arc<SharedFile> {
        &self.file
    }

    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// Is this a private copy-on-write mapping?
    pub(crate) fn is_cow(&self) -> bool {
        self.cow
    }

    /// Was this a headerless raw file opened with a given layout?
    pub(crate) fn is_raw(&self) -> bool {
        self.raw
    }

    /// May control-block atomics be written (false only when the file itself
    /// is not writable by us)?
    pub(crate) fn ctrl_writable(&self) -> bool {
        self.map_writable
    }

    pub(crate) fn header(&self) -> &NpyHeader {
        &self.header
    }

    pub(crate) fn data_offset(&self) -> usize {
        self.data_offset
    }

    pub(crate) fn nbytes(&self) -> usize {
        self.nbytes
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// `None` for a plain `.npy` without a control block.
    pub(crate) fn control(&self) -> Option<&ControlHeader> {
        self.ctrl.as_ref().map(|(_, h)| h)
    }

    /// Offset of the control block in the file (for OFD lock ranges).
    pub(crate) fn ctrl_offset(&self) -> Option<u64> {
        self.ctrl.as_ref().map(|(o, _)| *o)
    }

    /// Pointer to the first data byte.
    pub(crate) fn data_ptr(&self) -> *mut u8 {
        // SAFETY: data_offset + nbytes <= file_len was checked at open/create.
        unsafe { self.map.as_mut_ptr().add(self.data_offset) }
    }

    fn ctrl_word(&self, off: u64, size: u64) -> *mut u8 {
        let (ctrl_off, h) = self
            .ctrl
            .as_ref()
            .expect("control block present (checked by caller)");
        assert!(
            off.is_multiple_of(size) && off + size <= h.ctrl_len,
            "control word {off} out of bounds"
        );
        // SAFETY: ctrl_off + ctrl_len == file_len was validated, and the
        // assert above keeps the word inside the control block.
        unsafe { self.map.as_mut_ptr().add((*ctrl_off + off) as usize) }
    }

    /// The atomic u64 at `off` bytes into the control block.
    ///
    /// # Panics
    ///
    /// If there is no control block or the word is out of bounds or
    /// misaligned (a bug in sharray, never a property of the input file).
    pub(crate) fn ctrl_u64(&self, off: u64) -> &AtomicU64 {
        // SAFETY: in bounds and 8-byte aligned (CTRL_OFF is 64 KiB aligned
        // and `ctrl_word` checks off % 8); atomics may alias shared memory.
        unsafe { &*(self.ctrl_word(off, 8) as *const AtomicU64) }
    }

    /// The atomic u32 at `off` bytes into the control block. Panics as
    /// [`Mapping::ctrl_u64`].
    pub(crate) fn ctrl_u32(&self, off: u64) -> &AtomicU32 {
        // SAFETY: as ctrl_u64, with 4-byte alignment.
        unsafe { &*(self.ctrl_word(off, 4) as *const AtomicU32) }
    }

    /// Offset of the kind section within the control block, and its length.
    pub(crate) fn section(&self) -> Option<(u64, u64)> {
        self.control()
            .filter(|h| h.section_len > 0)
            .map(|h| (h.section_offset, h.section_len))
    }

    /// The atomic u64 at `off` bytes into the kind section.
    pub(crate) fn section_u64(&self, off: u64) -> &AtomicU64 {
        let (s, len) = self.section().expect("section present (checked by caller)");
        assert!(off + 8 <= len, "section word {off} out of bounds");
        self.ctrl_u64(s + off)
    }

    /// The atomic u32 at `off` bytes into the kind section.
    pub(crate) fn section_u32(&self, off: u64) -> &AtomicU32 {
        let (s, len) = self.section().expect("section present (checked by caller)");
        assert!(off + 4 <= len, "section word {off} out of bounds");
        self.ctrl_u32(s + off)
    }

    /// Copy of the kind section's bytes (for validation by the ring/pool
    /// layers: they parse a private copy, never the live bytes).
    pub(crate) fn section_copy(&self) -> Vec<u8> {
        match self.section() {
            Some((s, len)) => {
                let p = self.ctrl_word(s, 1);
                // SAFETY: in bounds (checked by ctrl_word + section validation);
                // volatile byte reads of shared memory into private memory.
                (0..len as usize)
                    .map(|i| unsafe { std::ptr::read_volatile(p.add(i)) })
                    .collect()
            }
            None => Vec::new(),
        }
    }

    /// Data bytes `[off, off+len)` as a shared slice.
    ///
    /// # Safety
    ///
    /// The caller must hold a lock or lease that guarantees no cooperating
    /// peer writes these bytes while the slice lives.
    pub(crate) unsafe fn data_bytes(&self, off: usize, len: usize) -> &[u8] {
        assert!(
            off.checked_add(len).is_some_and(|e| e <= self.nbytes),
            "data range out of bounds"
        );
        // SAFETY: in bounds of the mapping (asserted); exclusivity is the
        // caller's contract.
        unsafe { std::slice::from_raw_parts(self.data_ptr().add(off), len) }
    }

    /// Data bytes `[off, off+len)` as a mutable slice.
    ///
    /// # Safety
    ///
    /// The mapping must be writable, and the caller must hold a lock or lease
    /// that guarantees no other reader or writer touches these bytes while the
    /// slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn data_bytes_mut(&self, off: usize, len: usize) -> &mut [u8] {
        assert!(self.writable, "write access through a read-only mapping");
        assert!(
            off.checked_add(len).is_some_and(|e| e <= self.nbytes),
            "data range out of bounds"
        );
        // SAFETY: in bounds and writable (asserted); exclusivity is the
        // caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr().add(off), len) }
    }

    /// Fault in data pages for writing ahead of use (a hint; errors ignored).
    pub(crate) fn prefault(&self, off: usize, len: usize) {
        if self.writable && off.checked_add(len).is_some_and(|e| e <= self.nbytes) {
            // SAFETY: the range is inside our live writable mapping.
            let _ = unsafe { sys::populate_write(self.data_ptr().add(off), len) };
        }
    }

    /// `madvise(advice)` over data bytes `[off, off+len)` of this mapping.
    ///
    /// # Panics
    ///
    /// If the range is outside the data (callers check ranges first).
    pub(crate) fn madvise_data(
        &self,
        off: usize,
        len: usize,
        advice: libc::c_int,
    ) -> std::io::Result<()> {
        assert!(
            off.checked_add(len).is_some_and(|e| e <= self.nbytes),
            "data range out of bounds"
        );
        assert!(
            !(self.cow && advice == libc::MADV_DONTNEED),
            "MADV_DONTNEED would discard a copy-on-write mapping's private pages"
        );
        // SAFETY: the range is inside our live mapping (asserted); the
        // advices used here keep contents, and DONTNEED is refused above on
        // private mappings (on shared file mappings it only drops our page
        // table entries: the next access reads the same page cache).
        unsafe { sys::madvise(self.data_ptr().add(off), len, advice) }
    }

    /// Byte offset in the file of data byte `off`.
    pub(crate) fn file_offset(&self, off: usize) -> u64 {
        (self.data_offset + off) as u64
    }

    /// Write data bytes `[off, off+len)` (rounded out to pages) to disk:
    /// `msync(MS_SYNC)` and wait, or (`wait == false`) start the write-back
    /// and return (`sync_file_range(SYNC_FILE_RANGE_WRITE)`: Linux's
    /// `msync(MS_ASYNC)` does nothing at all). A no-op for read-only and
    /// copy-on-write handles.
    pub(crate) fn flush_data(&self, off: usize, len: usize, wait: bool) -> Result<()> {
        if !self.writable || self.cow || len == 0 {
            return Ok(());
        }
        let start = self.data_offset + off;
        if wait {
            self.map
                .flush_range(start, len)
                .map_err(|e| Error::io("flush (msync) failed", e).at(self.path()))
        } else {
            sys::start_writeback(self.file.file(), start as u64, len as u64).map_err(|e| {
                Error::io("starting the write-back (sync_file_range) failed", e).at(self.path())
            })
        }
    }

    /// `msync` the whole mapping to disk and report errors.
    pub(crate) fn flush(&self) -> Result<()> {
        if !self.writable || self.cow {
            return Ok(());
        }
        self.map
            .flush()
            .map_err(|e| Error::io("flush (msync) failed", e).at(self.path()))
    }
}

/// Map the whole of `file`: shared, or private for a copy-on-write handle.
/// Returns the mapping and whether control words may be written through it.
fn map_file(
    file: &SharedFile,
    path: &Path,
    flags: OpenFlags,
    cow: bool,
    file_len: u64,
) -> Result<(MmapRaw, bool)> {
    let f = file.file();
    let mut opts = MmapOptions::new();
    opts.len(file_len as usize);
    if cow {
        // SAFETY: a private mapping: our writes never reach the file. The
        // hazards of other processes changing the file (pages we have not
        // written show their current content) are those of every mapping,
        // covered by the guards' locks and the crate's safety model.
        let map = unsafe { opts.map_copy(f) }
            .map_err(|e| Error::io("cannot map the file copy-on-write", e).at(path))?;
        // Control words live in private pages here: never written (a write
        // would detach them from the file and hide peers' updates).
        return Ok((MmapRaw::from(map), false));
    }
    // Map read-write whenever the descriptor allows, even for read-only
    // handles: waiters must register in the control block's counters.
    // Read-only handles still never hand out mutable data slices.
    let map_writable = flags.writable || file.writable();
    let map = if map_writable {
        opts.map_raw(f)
    } else {
        opts.map_raw_read_only(f)
    }
    .map_err(|e| Error::io("cannot map the file", e).at(path))?;
    Ok((map, map_writable))
}
