//! The control block: a small binary header after the array data that makes a
//! `.npy` file a sharray file. FORMAT.md section 3 ("The control block").
//! Pure logic, no I/O (fuzzable): [`ControlHeader::decode`] is what opening
//! a file runs (stop at the first problem), [`validate`] what `sharray
//! check` runs (every field, every problem into a [`Sink`]).
//!
//! Layout (all integers little-endian, offsets relative to `CTRL_OFF`; see
//! FORMAT.md for the full contract):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `b"SHARRAY\0"` |
//! | 8 | 4 | `format_version` (1) |
//! | 12 | 4 | `kind` (1 array, 2 ring, 3 queue) |
//! | 16 | 8 | `ctrl_len`: bytes from `CTRL_OFF` to end of file |
//! | 24 | 8 | `data_offset` (4096) |
//! | 32 | 8 | `data_len` (bytes of array data) |
//! | 40 | 8 | `section_offset` (kind-specific section, 0 if none) |
//! | 48 | 8 | `section_len` |
//! | 56 | 4 | `flags` (0) |
//! | 60 | 4 | `state`: 0 while building, [`STATE_READY`] once published |
//! | 64 | 1 | writers' turnstile: an OFD lock range only, content zero |
//! | 65..128 | | reserved, zero |
//! | 128 | 8 | `generation` (atomic u64) |
//! | 136 | 4 | `gen_seq` futex word (atomic u32, bumped with `generation`) |
//! | 140 | 4 | `gen_waiters` (atomic u32, processes parked on `gen_seq`) |
//! | 144..256 | | reserved, zero |
//! | 256.. | | kind-specific section |

use std::fmt;
use std::ops::ControlFlow;

use super::le;
use super::sink::{FirstProblem, Problem, Sink};

/// Magic bytes at the start of the control block.
pub const MAGIC: [u8; 8] = *b"SHARRAY\0";
/// Control block format version written by this crate.
pub const FORMAT_VERSION: u32 = 1;
/// Offset of the array data in every sharray file.
pub const DATA_OFFSET: u64 = 4096;
/// Alignment of the control block.
pub const CTRL_ALIGN: u64 = 65536;
/// Bytes of the generic control header; kind sections start here.
pub const HEADER_LEN: u64 = 256;
/// Value of the `state` word once the file is fully initialised.
pub const STATE_READY: u32 = 0x5944_4552; // "REDY" little-endian
/// Largest control block we accept (a corrupt length must not make us map
/// absurd sizes).
pub const MAX_CTRL_LEN: u64 = 1 << 30;

/// Byte offsets of the generic fields (relative to `CTRL_OFF`).
pub mod off {
    /// magic
    pub const MAGIC: usize = 0;
    /// format_version
    pub const VERSION: usize = 8;
    /// kind
    pub const KIND: usize = 12;
    /// ctrl_len
    pub const CTRL_LEN: usize = 16;
    /// data_offset
    pub const DATA_OFFSET: usize = 24;
    /// data_len
    pub const DATA_LEN: usize = 32;
    /// section_offset
    pub const SECTION_OFFSET: usize = 40;
    /// section_len
    pub const SECTION_LEN: usize = 48;
    /// flags
    pub const FLAGS: usize = 56;
    /// state
    pub const STATE: usize = 60;
    /// The writers' turnstile: a byte range for OFD locks, never written
    /// (its content stays zero).
    pub const TURNSTILE: usize = 64;
    /// generation (u64 atomic)
    pub const GENERATION: usize = 128;
    /// gen_seq (u32 futex word)
    pub const GEN_SEQ: usize = 136;
    /// gen_waiters (u32)
    pub const GEN_WAITERS: usize = 140;
}

/// What a sharray file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A plain shared array.
    Array,
    /// A producer/consumer ring: the array is `(slots, *frame_shape)`.
    Ring,
    /// A worker-pool chunk queue.
    Queue,
}

impl Kind {
    /// The on-disk code.
    pub fn code(self) -> u32 {
        match self {
            Kind::Array => 1,
            Kind::Ring => 2,
            Kind::Queue => 3,
        }
    }

    /// From the on-disk code.
    pub fn from_code(code: u32) -> Option<Kind> {
        match code {
            1 => Some(Kind::Array),
            2 => Some(Kind::Ring),
            3 => Some(Kind::Queue),
            _ => None,
        }
    }

    /// Lower-case name as shown by `sharray info`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Array => "array",
            Kind::Ring => "ring",
            Kind::Queue => "queue",
        }
    }
}

/// Why a control block was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlError {
    /// Is this "newer format" (Unsupported) rather than corruption?
    pub newer: bool,
    /// One sentence.
    pub message: String,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ControlError {}

fn corrupt(msg: impl Into<String>) -> ControlError {
    ControlError {
        newer: false,
        message: msg.into(),
    }
}

/// The validated, private copy of a control header's layout fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlHeader {
    /// Format version.
    pub version: u32,
    /// What the file holds.
    pub kind: Kind,
    /// Length of the control block.
    pub ctrl_len: u64,
    /// Offset of the array data.
    pub data_offset: u64,
    /// Bytes of array data.
    pub data_len: u64,
    /// Kind section offset relative to `CTRL_OFF` (0 if none).
    pub section_offset: u64,
    /// Kind section length.
    pub section_len: u64,
}

/// `align_up(x, a)` for a power-of-two `a`, `None` on overflow.
pub fn align_up(x: u64, a: u64) -> Option<u64> {
    debug_assert!(a.is_power_of_two());
    Some(x.checked_add(a - 1)? & !(a - 1))
}

/// Offset of the control block for `data_len` bytes of data at [`DATA_OFFSET`].
pub fn ctrl_offset(data_len: u64) -> Option<u64> {
    align_up(DATA_OFFSET.checked_add(data_len)?, CTRL_ALIGN)
}

/// Control block length for a kind section of `section_len` bytes.
pub fn ctrl_len_for(section_len: u64) -> Option<u64> {
    align_up(HEADER_LEN.checked_add(section_len)?, 4096)
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    le::u32_or0(b, o as u64)
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    le::u64_or0(b, o as u64)
}

impl ControlHeader {
    /// A header for a new file.
    pub fn new(kind: Kind, data_len: u64, section_len: u64) -> Option<ControlHeader> {
        let ctrl_len = ctrl_len_for(section_len)?;
        if ctrl_len > MAX_CTRL_LEN {
            return None;
        }
        Some(ControlHeader {
            version: FORMAT_VERSION,
            kind,
            ctrl_len,
            data_offset: DATA_OFFSET,
            data_len,
            section_offset: if section_len > 0 { HEADER_LEN } else { 0 },
            section_len,
        })
    }

    /// Offset of the control block in the file.
    pub fn ctrl_offset(&self) -> Option<u64> {
        ctrl_offset(self.data_len)
    }

    /// Total file length.
    pub fn file_len(&self) -> Option<u64> {
        self.ctrl_offset()?.checked_add(self.ctrl_len)
    }

    /// Write the generic header into `out` (the first [`HEADER_LEN`] bytes of
    /// the control block), with `state` left at 0: the creator stores
    /// [`STATE_READY`] last, after everything else is written.
    pub fn encode(&self, out: &mut [u8]) {
        out[..HEADER_LEN as usize].fill(0);
        let o = |f: usize| f as u64;
        le::put(out, o(off::MAGIC), &MAGIC);
        le::put_u32(out, o(off::VERSION), self.version);
        le::put_u32(out, o(off::KIND), self.kind.code());
        le::put_u64(out, o(off::CTRL_LEN), self.ctrl_len);
        le::put_u64(out, o(off::DATA_OFFSET), self.data_offset);
        le::put_u64(out, o(off::DATA_LEN), self.data_len);
        le::put_u64(out, o(off::SECTION_OFFSET), self.section_offset);
        le::put_u64(out, o(off::SECTION_LEN), self.section_len);
    }

    /// Does `bytes` start with the control-block magic?
    pub fn has_magic(bytes: &[u8]) -> bool {
        bytes.len() >= 8 && bytes[..8] == MAGIC
    }

    /// Parse and validate a control header against what the `.npy` header says
    /// (`data_offset`, `data_len`) and the real file length. `bytes` is a copy
    /// of at least the first [`HEADER_LEN`] bytes of the control block (shorter
    /// is an error). All arithmetic is checked.
    pub fn decode(
        bytes: &[u8],
        data_offset: u64,
        data_len: u64,
        file_len: u64,
    ) -> Result<ControlHeader, ControlError> {
        // The rules are written once, in `validate`: opening stops at its
        // first problem.
        let ctrl_off = ctrl_offset(data_len).ok_or_else(|| corrupt("sizes overflow"))?;
        let mut first = FirstProblem::default();
        let _ = validate(bytes, ctrl_off, data_offset, data_len, file_len, &mut first);
        if data_offset != DATA_OFFSET {
            first.0.get_or_insert(Problem {
                offset: None,
                message: format!(
                    "the data starts at {data_offset}, a sharray file has it at {DATA_OFFSET}"
                ),
            });
        }
        if let Some(p) = first.0 {
            let version = u32_at(bytes, off::VERSION);
            return Err(ControlError {
                newer: version > FORMAT_VERSION,
                message: p.message,
            });
        }
        let kind =
            Kind::from_code(u32_at(bytes, off::KIND)).ok_or_else(|| corrupt("unknown kind"))?;
        Ok(ControlHeader {
            version: u32_at(bytes, off::VERSION),
            kind,
            ctrl_len: u64_at(bytes, off::CTRL_LEN),
            data_offset,
            data_len,
            section_offset: u64_at(bytes, off::SECTION_OFFSET),
            section_len: u64_at(bytes, off::SECTION_LEN),
        })
    }
}

/// Check every field of the control block, reporting each problem into
/// `sink` (what `sharray check` lists). `ctrl` is a private copy of at least
/// [`HEADER_LEN`] bytes from `ctrl_off` (the control block's file offset) to
/// the end of the file; `data_offset` and `nbytes` are what the `.npy`
/// header says, `file_len` the real file length. Checks the magic, version,
/// kind, lengths, data fields, section range, flags, the state word, and
/// that reserved bytes and the unused rest of the block are zero. Never
/// panics.
pub fn validate(
    ctrl: &[u8],
    ctrl_off: u64,
    data_offset: u64,
    nbytes: u64,
    file_len: u64,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    let at = |o: usize| Some(ctrl_off.saturating_add(o as u64));
    if ctrl.len() < HEADER_LEN as usize {
        return sink.problem(
            Some(ctrl_off),
            format!(
                "the control block is truncated: {} of its {HEADER_LEN} header bytes are there",
                ctrl.len()
            ),
        );
    }
    if !ControlHeader::has_magic(ctrl) {
        return sink.problem(
            Some(ctrl_off),
            "the control block magic SHARRAY\\0 is missing (damaged file, or bytes appended to a plain .npy)".into(),
        );
    }
    let version = u32_at(ctrl, off::VERSION);
    if version == 0 {
        sink.problem(at(off::VERSION), "format_version is 0".into())?;
    } else if version > FORMAT_VERSION {
        return sink.problem(
            at(off::VERSION),
            format!(
                "format_version {version} is newer than this build understands ({FORMAT_VERSION}); upgrade sharray"
            ),
        );
    }
    let kind_code = u32_at(ctrl, off::KIND);
    let kind = Kind::from_code(kind_code);
    if kind.is_none() {
        sink.problem(
            at(off::KIND),
            format!("unknown kind {kind_code} (1 array, 2 ring, 3 queue)"),
        )?;
    }
    let ctrl_len = u64_at(ctrl, off::CTRL_LEN);
    let ctrl_len_ok =
        (HEADER_LEN..=MAX_CTRL_LEN).contains(&ctrl_len) && ctrl_len.is_multiple_of(4096);
    if !ctrl_len_ok {
        sink.problem(
            at(off::CTRL_LEN),
            format!("ctrl_len {ctrl_len} is not a multiple of 4096 between 256 and 2^30"),
        )?;
    } else if ctrl_off.checked_add(ctrl_len) != Some(file_len) {
        sink.problem(
            None,
            format!(
                "file is {file_len} bytes but the control block at {ctrl_off} of {ctrl_len} bytes ends at {}; it was truncated or extended by something other than sharray",
                ctrl_off.saturating_add(ctrl_len)
            ),
        )?;
    }
    let hdr_data_offset = u64_at(ctrl, off::DATA_OFFSET);
    if hdr_data_offset != data_offset {
        sink.problem(
            at(off::DATA_OFFSET),
            format!("data_offset is {hdr_data_offset}, the .npy header says {data_offset}"),
        )?;
    }
    let data_len = u64_at(ctrl, off::DATA_LEN);
    if data_len != nbytes {
        sink.problem(
            at(off::DATA_LEN),
            format!("data_len is {data_len}, the .npy header implies {nbytes}"),
        )?;
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
            sink.problem(
                at(off::SECTION_OFFSET),
                "section_offset is set but section_len is 0".into(),
            )?;
            false
        } else {
            if kind.is_some_and(|k| k != Kind::Array) {
                sink.problem(
                    at(off::SECTION_LEN),
                    "a ring or queue needs a kind section, but section_len is 0".into(),
                )?;
            }
            true
        }
    } else {
        let end = section_offset.checked_add(section_len);
        let ok = section_offset >= HEADER_LEN
            && section_offset.is_multiple_of(128)
            && end.is_some_and(|e| e <= limit);
        if !ok {
            sink.problem(
                at(off::SECTION_OFFSET),
                format!(
                    "the kind section ({section_offset}, {section_len} bytes) is not a 128-aligned range inside the control block after byte 256"
                ),
            )?;
        }
        ok
    };
    let flags = u32_at(ctrl, off::FLAGS);
    if flags != 0 {
        sink.problem(
            at(off::FLAGS),
            format!("flags are {flags:#x}; version 1 defines none"),
        )?;
    }
    let state = u32_at(ctrl, off::STATE);
    if state != STATE_READY {
        sink.problem(
            at(off::STATE),
            format!(
                "state is {state:#x}, not READY ({STATE_READY:#x}): its creation never finished; delete the file and create it again"
            ),
        )?;
    }
    let mut zero = |from: usize, to: usize, what: &str| {
        let to = to.min(ctrl.len());
        if from >= to {
            return ControlFlow::Continue(());
        }
        match ctrl[from..to].iter().position(|&b| b != 0) {
            Some(i) => sink.problem(
                at(from + i),
                format!("{what} (bytes {from}..{to} of the control block) must be zero"),
            ),
            None => ControlFlow::Continue(()),
        }
    };
    zero(64, off::GENERATION, "reserved")?;
    zero(off::GEN_WAITERS + 4, HEADER_LEN as usize, "reserved")?;
    let tail_from = if section_len > 0 && section_ok {
        // section_ok: the end is at most `limit`, which fits in memory.
        (section_offset + section_len) as usize
    } else {
        HEADER_LEN as usize
    };
    zero(
        tail_from,
        usize::try_from(limit).unwrap_or(usize::MAX),
        "the unused rest of the control block",
    )
}

// Layout checks: atomics must be naturally aligned and on their own lines.
const _: () = assert!(off::GENERATION.is_multiple_of(128));
const _: () = assert!(off::GEN_SEQ.is_multiple_of(4) && off::GEN_WAITERS.is_multiple_of(4));
const _: () = assert!(off::STATE + 4 <= 64);
const _: () = assert!((DATA_OFFSET as usize).is_multiple_of(4096));

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ready(h: &ControlHeader) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN as usize];
        h.encode(&mut b);
        b[off::STATE..off::STATE + 4].copy_from_slice(&STATE_READY.to_le_bytes());
        b
    }

    #[test]
    fn round_trip() {
        let h = ControlHeader::new(Kind::Ring, 1 << 20, 9000).unwrap();
        let b = ready(&h);
        let d = ControlHeader::decode(&b, DATA_OFFSET, 1 << 20, h.file_len().unwrap()).unwrap();
        assert_eq!(d, h);
        assert_eq!(h.ctrl_offset().unwrap() % CTRL_ALIGN, 0);
    }

    #[test]
    fn rejects_wrong_lengths_and_states() {
        let h = ControlHeader::new(Kind::Array, 100, 0).unwrap();
        let b = ready(&h);
        let len = h.file_len().unwrap();
        assert!(ControlHeader::decode(&b, DATA_OFFSET, 100, len - 1).is_err());
        assert!(ControlHeader::decode(&b, DATA_OFFSET, 101, len).is_err());
        assert!(ControlHeader::decode(&b[..100], DATA_OFFSET, 100, len).is_err());
        let mut nr = b.clone();
        nr[off::STATE] = 0;
        assert!(
            ControlHeader::decode(&nr, DATA_OFFSET, 100, len)
                .unwrap_err()
                .message
                .contains("creation never finished")
        );
        let mut newer = b.clone();
        newer[off::VERSION] = 9;
        assert!(
            ControlHeader::decode(&newer, DATA_OFFSET, 100, len)
                .unwrap_err()
                .newer
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                               data_len in any::<u64>(), file_len in any::<u64>()) {
            let _ = ControlHeader::decode(&bytes, DATA_OFFSET, data_len, file_len);
        }

        #[test]
        fn mutated_headers_never_panic(pos in 0usize..256, val in any::<u8>(), data_len in 0u64..1<<40, sec in 0u64..100_000) {
            let h = ControlHeader::new(Kind::Queue, data_len, sec.max(1)).unwrap();
            let mut b = ready(&h);
            b[pos] = val;
            let _ = ControlHeader::decode(&b, DATA_OFFSET, data_len, h.file_len().unwrap());
        }
    }
}
