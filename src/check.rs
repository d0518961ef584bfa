//! Full validation of a sharray or `.npy` file, listing every problem found
//! (what `sharray check` prints). Unlike opening, which stops at the first
//! problem, this reads the file with `pread` into private buffers and keeps
//! going, so a damaged file can be diagnosed.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::file::{LockMode, OpenFlags, SharedFile, Wait};
use crate::format::control::{self, ControlHeader, Kind};
use crate::format::npy::NpyHeader;
use crate::format::sink::{AllProblems, Sink};
use crate::format::{queue, ring};

pub use crate::format::sink::Problem;

/// Collects problems.
#[derive(Default)]
struct Report(AllProblems);

impl Report {
    fn at(&mut self, offset: u64, message: impl Into<String>) {
        let _ = self.0.problem(Some(offset), message.into());
    }

    fn whole(&mut self, message: impl Into<String>) {
        let _ = self.0.problem(None, message.into());
    }

    fn is_empty(&self) -> bool {
        self.0.0.is_empty()
    }

    fn done(self) -> Vec<Problem> {
        self.0.0
    }
}

/// How many times a ring or queue section is re-read to get a snapshot that
/// did not change while it was read (live peers write it without the file
/// lock `check` holds).
const SNAPSHOT_TRIES: usize = 50;

/// Validate every invariant of the file at `path` that can be checked from
/// its bytes: the `.npy` header (and, for sharray files, that it is the
/// canonical 4096-byte header), sizes against the real file length, every
/// control block field, the state word, zero reserved bytes, zero padding
/// between the data and the control block, zero bytes after the kind
/// section, and for rings and queues the kind section in depth (the
/// configuration, then every dynamic word the runtime relies on: slot
/// states, head/tail, log, participant table, journal; chunk table, counters,
/// worker table, barrier), so that a file with no problem opens and works.
/// The rules live in `format/` (`control::validate`, `ring::validate_state`,
/// `queue::validate_state`); this function does the I/O. Holds a shared
/// (read) lock while reading, waiting at most `lock_timeout` (forever if
/// `None`); ring and queue peers do not take that lock, so their section is
/// re-read until two reads agree and that snapshot is validated.
///
/// Returns the list of problems; empty means the file is valid. A plain
/// `.npy` (no control block) is checked as such.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("a.npy");
/// sharray::SharedArray::<u16>::create(&path, &[3, 5])?;
/// assert!(sharray::check(&path, None)?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// Only when the file cannot be examined at all: [`crate::ErrorKind::NotFound`],
/// [`crate::ErrorKind::NotARegularFile`] (symlinks, directories),
/// [`crate::ErrorKind::PermissionDenied`], [`crate::ErrorKind::LockTimeout`],
/// I/O errors.
/// Anything wrong *inside* the file is a [`Problem`], not an error.
pub fn check(path: impl AsRef<Path>, lock_timeout: Option<Duration>) -> Result<Vec<Problem>> {
    let path = path.as_ref();
    let file = SharedFile::open(
        path,
        OpenFlags {
            writable: false,
            // Only private copies of the bytes are examined, so a file of
            // another user cannot harm us here.
            allow_foreign_owner: true,
        },
    )?;
    let _lock = file.lock(
        LockMode::Shared,
        lock_timeout.map_or(Wait::Forever, Wait::timeout),
    )?;
    let f = file.file();
    let file_len = f
        .metadata()
        .map_err(|e| Error::io("cannot stat", e).at(path))?
        .len();
    let read = |offset: u64, len: u64| -> Result<Vec<u8>> {
        let len = len.min(file_len.saturating_sub(offset));
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io("cannot read", e).at(path))?;
        Ok(buf)
    };
    let mut report = Report::default();
    let prefix = read(0, (1 << 20) + 16)?;
    let (header, data_offset) = match NpyHeader::parse(&prefix) {
        Ok(v) => v,
        Err(e) => {
            report.at(0, format!("invalid .npy header: {e}"));
            return Ok(report.done());
        }
    };
    let Some(nbytes) = header.nbytes() else {
        report.at(
            0,
            format!(
                "the shape {:?} times the itemsize {} overflows",
                header.shape,
                header.dtype.itemsize()
            ),
        );
        return Ok(report.done());
    };
    let data_offset = data_offset as u64;
    let nbytes = nbytes as u64;
    let Some(data_end) = data_offset.checked_add(nbytes) else {
        report.whole("the data offset plus the data size overflows");
        return Ok(report.done());
    };
    if data_end > file_len {
        report.whole(format!(
            "file is truncated: the header promises {nbytes} bytes of data from offset {data_offset} (up to {data_end}), but the file has {file_len} bytes"
        ));
        return Ok(report.done());
    }
    if data_offset != control::DATA_OFFSET || file_len == data_end {
        // A plain .npy: nothing more is promised, unless sharray made it.
        if file_len == data_end && NpyHeader::padded_like_sharray(&prefix) {
            report.at(
                data_end,
                "the file was made by sharray (its header is padded to 4096 bytes) but has no control block: it was truncated to the end of its data; the data may be intact: `sharray import` it into a new file",
            );
        }
        return Ok(report.done());
    }

    // A growable array: its control block is found from the file length.
    if crate::growable::probe(f, file_len) {
        crate::growable::check_file(&read, &header, &prefix, file_len, &mut report.0)?;
        return Ok(report.done());
    }

    // A sharray file.
    match header.emit_padded(control::DATA_OFFSET as usize) {
        Ok(canonical) if canonical[..] == prefix[..canonical.len()] => {}
        Ok(_) => report.at(
            0,
            "the .npy header is valid but not the canonical one sharray writes (version 1.0, or 3.0 for names beyond Latin-1, the dict exactly as numpy prints it, space padding, newline at byte 4095)",
        ),
        Err(e) => report.at(0, format!("the header cannot be written canonically: {e}")),
    }
    let Some(ctrl_off) = control::ctrl_offset(nbytes) else {
        report.whole("the control block offset overflows");
        return Ok(report.done());
    };
    if file_len < ctrl_off.saturating_add(control::HEADER_LEN) {
        report.whole(format!(
            "file is truncated: {file_len} bytes, but the control block starts at {ctrl_off} and needs at least {} bytes",
            control::HEADER_LEN
        ));
        check_zero(
            &read,
            &mut report,
            data_end,
            file_len.min(ctrl_off),
            "padding after the data",
        )?;
        return Ok(report.done());
    }
    let ctrl = read(ctrl_off, control::MAX_CTRL_LEN)?;
    check_zero(
        &read,
        &mut report,
        data_end,
        ctrl_off,
        "padding between the data and the control block",
    )?;
    let _ = control::validate(
        &ctrl,
        ctrl_off,
        data_offset,
        nbytes,
        file_len,
        &mut report.0,
    );
    if !report.is_empty() {
        return Ok(report.done());
    }
    // `decode` runs the same `validate` (stopping at the first problem), so
    // it fails only if a rule were missing from the report above.
    let ctrl_hdr = match ControlHeader::decode(&ctrl, data_offset, nbytes, file_len) {
        Ok(h) => h,
        Err(e) => {
            report.at(ctrl_off, e.message);
            return Ok(report.done());
        }
    };
    if ctrl_hdr.kind == Kind::Array {
        return Ok(report.done());
    }
    // The kind section, in depth. Peers change it while we read (they take
    // no file lock): validate a snapshot that two reads agree on.
    let sec_off = ctrl_off + ctrl_hdr.section_offset;
    let sec_len = ctrl_hdr.section_len;
    let records_len = if ctrl_hdr.kind == Kind::Queue {
        nbytes
    } else {
        0
    };
    let mut stable = None;
    let mut prev = read(sec_off, sec_len)?;
    for _ in 0..SNAPSHOT_TRIES {
        let records = read(data_offset, records_len)?;
        let again = read(sec_off, sec_len)?;
        if again == prev {
            stable = Some((again, records));
            break;
        }
        prev = again;
        std::thread::yield_now();
    }
    let Some((sec, records)) = stable else {
        // Too busy to take a consistent snapshot: a live file in heavy use;
        // its static parts were checked above.
        return Ok(report.done());
    };
    match ctrl_hdr.kind {
        Kind::Ring => match ring::Config::decode(&sec, &header.shape, header.fortran_order, nbytes)
        {
            Ok(cfg) => {
                let _ = ring::validate_state(&sec, &cfg, sec_off, &mut report.0);
            }
            Err(m) => report.at(sec_off, format!("invalid ring: {m}")),
        },
        Kind::Queue => {
            match queue::records_of(&header).and_then(|n| queue::QueueHeader::decode(&sec, n)) {
                Ok(hdr) => {
                    let _ = queue::validate_state(
                        &hdr,
                        &sec,
                        sec_off,
                        &records,
                        data_offset,
                        &mut report.0,
                    );
                }
                Err(m) => report.at(sec_off, format!("invalid queue header: {m}")),
            }
        }
        Kind::Array => {}
    }
    Ok(report.done())
}

/// Report the first non-zero byte in `[from, to)` of the file.
fn check_zero(
    read: &dyn Fn(u64, u64) -> Result<Vec<u8>>,
    report: &mut Report,
    from: u64,
    to: u64,
    what: &str,
) -> Result<()> {
    const CHUNK: u64 = 1 << 20;
    let mut pos = from;
    while pos < to {
        let n = CHUNK.min(to - pos);
        let buf = read(pos, n)?;
        if let Some(i) = buf.iter().position(|&b| b != 0) {
            report.at(
                pos + i as u64,
                format!("{what} (bytes {from}..{to}) must be zero"),
            );
            return Ok(());
        }
        if buf.is_empty() {
            break;
        }
        pos += n;
    }
    Ok(())
}
