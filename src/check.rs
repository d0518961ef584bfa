//! Full validation of a sharray or `.npy` file, listing every problem found
//! (what `sharray check` prints). Unlike opening, which stops at the first
//! problem, this reads the file with `pread` into private buffers and keeps
//! going, so a damaged file can be diagnosed.

use std::fmt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::file::{LockMode, OpenFlags, SharedFile, Wait};
use crate::format::control::{self, ControlHeader, Kind, off};
use crate::format::npy::NpyHeader;

/// One broken invariant found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset in the file where the problem is, if it has one.
    pub offset: Option<u64>,
    /// One sentence saying what is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(f, "at byte {o}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Collects problems.
#[derive(Default)]
struct Report(Vec<Problem>);

impl Report {
    fn at(&mut self, offset: u64, message: impl Into<String>) {
        self.0.push(Problem {
            offset: Some(offset),
            message: message.into(),
        });
    }

    fn whole(&mut self, message: impl Into<String>) {
        self.0.push(Problem {
            offset: None,
            message: message.into(),
        });
    }
}

/// Validate every invariant of the file at `path` that can be checked from
/// its bytes: the `.npy` header (and, for sharray files, that it is the
/// canonical 4096-byte header), sizes against the real file length, every
/// control block field, the state word, zero reserved bytes, zero padding
/// between the data and the control block, and zero bytes after the kind
/// section. Holds a shared (read) lock while reading, waiting at most
/// `lock_timeout` (forever if `None`).
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
            return Ok(report.0);
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
        return Ok(report.0);
    };
    let data_offset = data_offset as u64;
    let nbytes = nbytes as u64;
    let Some(data_end) = data_offset.checked_add(nbytes) else {
        report.whole("the data offset plus the data size overflows");
        return Ok(report.0);
    };
    if data_end > file_len {
        report.whole(format!(
            "file is truncated: the header promises {nbytes} bytes of data from offset {data_offset} (up to {data_end}), but the file has {file_len} bytes"
        ));
        return Ok(report.0);
    }
    if data_offset != control::DATA_OFFSET || file_len == data_end {
        // A plain .npy: nothing more is promised.
        return Ok(report.0);
    }

    // A sharray file.
    match header.emit_padded(control::DATA_OFFSET as usize) {
        Ok(canonical) if canonical[..] == prefix[..canonical.len()] => {}
        Ok(_) => report.at(
            0,
            "the .npy header is valid but not the canonical one sharray writes (version 1.0, the dict exactly as numpy prints it, space padding, newline at byte 4095)",
        ),
        Err(e) => report.at(0, format!("the header cannot be written canonically: {e}")),
    }
    let Some(ctrl_off) = control::ctrl_offset(nbytes) else {
        report.whole("the control block offset overflows");
        return Ok(report.0);
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
        return Ok(report.0);
    }
    let ctrl = read(ctrl_off, control::MAX_CTRL_LEN)?;
    check_zero(
        &read,
        &mut report,
        data_end,
        ctrl_off,
        "padding between the data and the control block",
    )?;
    check_control(&ctrl, ctrl_off, data_offset, nbytes, file_len, &mut report);
    if report.0.is_empty()
        && let Err(e) = ControlHeader::decode(&ctrl, data_offset, nbytes, file_len)
    {
        // Belt and braces: whatever `open` rejects, check must report too.
        report.at(ctrl_off, e.message);
    }
    Ok(report.0)
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Every field of the control block (`ctrl` is a private copy of at least
/// [`control::HEADER_LEN`] bytes from `ctrl_off` to the end of the file).
fn check_control(
    ctrl: &[u8],
    ctrl_off: u64,
    data_offset: u64,
    nbytes: u64,
    file_len: u64,
    report: &mut Report,
) {
    let at = |o: usize| ctrl_off + o as u64;
    if !ControlHeader::has_magic(ctrl) {
        report.at(
            ctrl_off,
            "the control block magic SHARRAY\\0 is missing (damaged file, or bytes appended to a plain .npy)",
        );
        return;
    }
    let version = u32_at(ctrl, off::VERSION);
    if version == 0 {
        report.at(at(off::VERSION), "format_version is 0");
    } else if version > control::FORMAT_VERSION {
        report.at(
            at(off::VERSION),
            format!(
                "format_version {version} is newer than this build understands ({}); upgrade sharray",
                control::FORMAT_VERSION
            ),
        );
        return;
    }
    let kind_code = u32_at(ctrl, off::KIND);
    let kind = Kind::from_code(kind_code);
    if kind.is_none() {
        report.at(
            at(off::KIND),
            format!("unknown kind {kind_code} (1 array, 2 ring, 3 queue)"),
        );
    }
    let ctrl_len = u64_at(ctrl, off::CTRL_LEN);
    let ctrl_len_ok = (control::HEADER_LEN..=control::MAX_CTRL_LEN).contains(&ctrl_len)
        && ctrl_len.is_multiple_of(4096);
    if !ctrl_len_ok {
        report.at(
            at(off::CTRL_LEN),
            format!("ctrl_len {ctrl_len} is not a multiple of 4096 between 256 and 2^30"),
        );
    } else if ctrl_off.checked_add(ctrl_len) != Some(file_len) {
        report.whole(format!(
            "file is {file_len} bytes but the control block at {ctrl_off} of {ctrl_len} bytes ends at {}; it was truncated or extended by something other than sharray",
            ctrl_off.saturating_add(ctrl_len)
        ));
    }
    let hdr_data_offset = u64_at(ctrl, off::DATA_OFFSET);
    if hdr_data_offset != data_offset {
        report.at(
            at(off::DATA_OFFSET),
            format!("data_offset is {hdr_data_offset}, the .npy header says {data_offset}"),
        );
    }
    let data_len = u64_at(ctrl, off::DATA_LEN);
    if data_len != nbytes {
        report.at(
            at(off::DATA_LEN),
            format!("data_len is {data_len}, the .npy header implies {nbytes}"),
        );
    }
    let section_offset = u64_at(ctrl, off::SECTION_OFFSET);
    let section_len = u64_at(ctrl, off::SECTION_LEN);
    let limit = if ctrl_len_ok {
        ctrl_len
    } else {
        ctrl.len() as u64
    };
    let section_ok = if section_len == 0 {
        if section_offset != 0 {
            report.at(
                at(off::SECTION_OFFSET),
                "section_offset is set but section_len is 0",
            );
            false
        } else {
            if kind.is_some_and(|k| k != Kind::Array) {
                report.at(
                    at(off::SECTION_LEN),
                    "a ring or queue needs a kind section, but section_len is 0",
                );
            }
            true
        }
    } else {
        let end = section_offset.checked_add(section_len);
        let ok = section_offset >= control::HEADER_LEN
            && section_offset.is_multiple_of(128)
            && end.is_some_and(|e| e <= limit);
        if !ok {
            report.at(
                at(off::SECTION_OFFSET),
                format!(
                    "the kind section ({section_offset}, {section_len} bytes) is not a 128-aligned range inside the control block after byte 256"
                ),
            );
        }
        ok
    };
    let flags = u32_at(ctrl, off::FLAGS);
    if flags != 0 {
        report.at(
            at(off::FLAGS),
            format!("flags are {flags:#x}; version 1 defines none"),
        );
    }
    let state = u32_at(ctrl, off::STATE);
    if state != control::STATE_READY {
        report.at(
            at(off::STATE),
            format!(
                "state is {state:#x}, not READY ({:#x}): creation never finished",
                control::STATE_READY
            ),
        );
    }
    let mut zero = |from: usize, to: usize, what: &str| {
        let to = to.min(ctrl.len());
        if from >= to {
            return;
        }
        if let Some(i) = ctrl[from..to].iter().position(|&b| b != 0) {
            report.at(
                at(from + i),
                format!("{what} (bytes {from}..{to} of the control block) must be zero"),
            );
        }
    };
    zero(64, off::GENERATION, "reserved");
    zero(
        off::GEN_WAITERS + 4,
        control::HEADER_LEN as usize,
        "reserved",
    );
    let tail_from = if section_len > 0 && section_ok {
        (section_offset + section_len) as usize
    } else {
        control::HEADER_LEN as usize
    };
    zero(
        tail_from,
        limit as usize,
        "the unused rest of the control block",
    );
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
