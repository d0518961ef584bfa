//! Growable arrays: the control block of kind 4 and its append section.
//! FORMAT.md section 9 ("Growable arrays"). Pure logic, no I/O: where the
//! control block is (the locate rule), the header's fixed-width row count,
//! the section layout, and the validators that opening ([`GrowConfig::decode`])
//! and `sharray check` ([`validate`], [`validate_state`]) run.
//!
//! Layout of the section (offsets relative to `SEC = CTRL_OFF + 256`):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | `grow_version` (1) |
//! | 4 | 4 | `max_appenders` `A` (1..=64) |
//! | 8 | 8 | `capacity` (rows, 1..=[`MAX_CAPACITY`]) |
//! | 16 | 8 | `row_bytes` |
//! | 24 | 8 | `count_field`: file offset of the header's 8-byte row count |
//! | 32..128 | | reserved, zero |
//! | 128 | 1 | append lock byte (OFD lock range; content zero) |
//! | 129..256 | | reserved, zero |
//! | 256 | 8 | `reserved_rows` *(j)* |
//! | 264 | 8 | `published` *(j)* |
//! | 272 | 8 | `rollbacks` *(j)* |
//! | 280 | 8 | `journal_len` |
//! | 288..512 | | reserved, zero |
//! | 512 | 4096 | journal: 256 entries of (`file offset` u64, `value` u64) |
//! | 4608 + 64 i | 64 | appender entry `i`: `state`, `start`, `count`, `ticket`, `pid` (u64 each) |

use std::ops::ControlFlow;

use super::control::{self, HEADER_LEN, MAGIC, STATE_READY};
use super::le;
use super::npy::NpyHeader;
use super::sink::Sink;

/// `kind` code of a growable array's control block.
pub const KIND_GROWABLE: u32 = 4;
/// `format_version` of a growable array's control block (version-1 readers
/// refuse it as "newer").
pub const GROW_FORMAT_VERSION: u32 = 2;
/// A growable array's control block is always this long, so it is found
/// from the file length alone: `CTRL_OFF = file length - GROW_CTRL_LEN`.
pub const GROW_CTRL_LEN: u64 = 65536;
/// Version of the append section.
pub const GROW_VERSION: u32 = 1;
/// Most rows a growable array holds: the header's row count is 8 ASCII
/// digits in one aligned 8-byte word, rewritten with one atomic store.
pub const MAX_CAPACITY: u64 = 99_999_999;
/// Most appender entries.
pub const MAX_APPENDERS: u32 = 64;
/// Journal entries.
pub const JOURNAL_CAP: u64 = 256;

/// Section offsets (relative to the section start).
pub mod off {
    /// grow_version (u32)
    pub const VERSION: u64 = 0;
    /// max_appenders (u32)
    pub const MAX_APPENDERS: u64 = 4;
    /// capacity (u64 rows)
    pub const CAPACITY: u64 = 8;
    /// row_bytes (u64)
    pub const ROW_BYTES: u64 = 16;
    /// count_field (u64 file offset)
    pub const COUNT_FIELD: u64 = 24;
    /// The append lock: an OFD lock on this byte.
    pub const LOCK: u64 = 128;
    /// reserved_rows (u64, journaled)
    pub const RESERVED: u64 = 256;
    /// published (u64, journaled)
    pub const PUBLISHED: u64 = 264;
    /// rollbacks (u64, journaled)
    pub const ROLLBACKS: u64 = 272;
    /// journal_len (u64)
    pub const JOURNAL_LEN: u64 = 280;
    /// journal entries
    pub const JOURNAL: u64 = 512;
    /// appender table
    pub const TABLE: u64 = 512 + 16 * super::JOURNAL_CAP;
}

/// Appender entry fields (relative to the entry).
pub mod entry {
    /// 0 free, 1 writing, 2 written
    pub const STATE: u64 = 0;
    /// first row of the reservation
    pub const START: u64 = 8;
    /// rows reserved
    pub const COUNT: u64 = 16;
    /// bumped at every reservation and relocation
    pub const TICKET: u64 = 24;
    /// owner pid (informational)
    pub const PID: u64 = 32;
    /// bytes per entry
    pub const LEN: u64 = 64;
}

/// Entry states.
pub const FREE: u64 = 0;
/// Rows reserved, being written.
pub const WRITING: u64 = 1;
/// Rows written, waiting to be published in order.
pub const WRITTEN: u64 = 2;

/// Section length for `a` appenders.
pub fn section_len(a: u32) -> u64 {
    off::TABLE + entry::LEN * u64::from(a)
}

/// Offset of entry `i` relative to the section.
pub fn entry_off(i: u32) -> u64 {
    off::TABLE + entry::LEN * u64::from(i)
}

/// The locate rule, step 1: where a growable array's control block would be
/// in a file of `file_len` bytes (`None`: it cannot be one).
pub fn candidate_ctrl_offset(file_len: u64) -> Option<u64> {
    if file_len.is_multiple_of(control::CTRL_ALIGN)
        && file_len >= control::DATA_OFFSET + GROW_CTRL_LEN
    {
        Some(file_len - GROW_CTRL_LEN)
    } else {
        None
    }
}

/// The locate rule, step 2: do these bytes (read at the candidate offset)
/// start a growable array's control block (magic, version 2, kind 4)?
pub fn is_growable_block(bytes: &[u8]) -> bool {
    bytes.len() >= 16
        && bytes[..8] == MAGIC
        && le::u32_or0(bytes, 8) == GROW_FORMAT_VERSION
        && le::u32_or0(bytes, 12) == KIND_GROWABLE
}

/// The 8 ASCII bytes of the header's row count: `rows` right-aligned with
/// spaces (`None` above [`MAX_CAPACITY`]).
pub fn count_text(rows: u64) -> Option<[u8; 8]> {
    if rows > MAX_CAPACITY {
        return None;
    }
    let s = format!("{rows:>8}");
    let mut out = [0u8; 8];
    out.copy_from_slice(s.as_bytes());
    Some(out)
}

/// The count field as the little-endian u64 that is stored atomically.
pub fn count_word(rows: u64) -> Option<u64> {
    count_text(rows).map(u64::from_le_bytes)
}

/// Rows named by a count field's 8 bytes (`None` if it is not spaces then
/// digits with at least one digit).
pub fn parse_count(text: &[u8]) -> Option<u64> {
    if text.len() != 8 {
        return None;
    }
    let digits = text.iter().position(|&b| b != b' ')?;
    let d = &text[digits..];
    if !d.iter().all(u8::is_ascii_digit) || (d.len() > 1 && d[0] == b'0') {
        return None;
    }
    std::str::from_utf8(d).ok()?.parse().ok()
}

/// Why a growable header could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowHeaderError(pub String);

/// The 4096-byte `.npy` header of a growable array with `rows` published
/// rows: numpy's canonical header for that shape, except that the first
/// entry of the shape is written as spaces and the 8-byte count field, which
/// starts at an offset that is a multiple of 8. Returns the header and the
/// count field's offset.
pub fn growable_header(header: &NpyHeader, rows: u64) -> Result<(Vec<u8>, u64), GrowHeaderError> {
    if header.fortran_order || header.shape.is_empty() {
        return Err(GrowHeaderError(
            "a growable array needs C order and at least one dimension".into(),
        ));
    }
    let text = count_text(rows).ok_or_else(|| {
        GrowHeaderError(format!(
            "{rows} rows is more than the {MAX_CAPACITY} a growable array holds"
        ))
    })?;
    let mut zero = header.clone();
    zero.shape[0] = 0;
    let base = zero
        .emit_padded(control::DATA_OFFSET as usize)
        .map_err(|e| GrowHeaderError(e.to_string()))?;
    let key = b"'shape': (0";
    let at = base
        .windows(key.len())
        .rposition(|w| w == key)
        .ok_or_else(|| GrowHeaderError("the header has no shape".into()))?
        + key.len()
        - 1;
    let end = base
        .iter()
        .rposition(|&b| b == b'}')
        .ok_or_else(|| GrowHeaderError("the header has no closing brace".into()))?;
    let mut out = base[..at].to_vec();
    while !out.len().is_multiple_of(8) {
        out.push(b' ');
    }
    let field = out.len() as u64;
    out.extend_from_slice(&text);
    out.extend_from_slice(&base[at + 1..=end]);
    if out.len() + 1 > control::DATA_OFFSET as usize {
        return Err(GrowHeaderError(
            "the .npy header does not fit in 4096 bytes".into(),
        ));
    }
    out.resize(control::DATA_OFFSET as usize - 1, b' ');
    out.push(b'\n');
    Ok((out, field))
}

/// The validated, private copy of a growable array's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrowConfig {
    /// File offset of the control block.
    pub ctrl_off: u64,
    /// Rows the data area holds.
    pub capacity: u64,
    /// Bytes per row.
    pub row_bytes: u64,
    /// Appender entries.
    pub max_appenders: u32,
    /// File offset of the header's count field.
    pub count_field: u64,
}

impl GrowConfig {
    /// File offset of the section.
    pub fn sec(&self) -> u64 {
        self.ctrl_off + HEADER_LEN
    }

    /// Validate (stop at the first problem) the control block `ctrl` (at
    /// least the first `256 + section` bytes of it) of a file of `file_len`
    /// bytes whose `.npy` header is `header`, which started with `header_bytes`.
    pub fn decode(
        ctrl: &[u8],
        ctrl_off: u64,
        header: &NpyHeader,
        header_bytes: &[u8],
        file_len: u64,
    ) -> Result<GrowConfig, String> {
        let mut first = super::sink::FirstProblem::default();
        let cfg = validate(ctrl, ctrl_off, header, header_bytes, file_len, &mut first);
        match (first.0, cfg) {
            (None, Some(c)) => Ok(c),
            (Some(p), _) => Err(p.message),
            (None, None) => Err("invalid growable array".into()),
        }
    }
}

/// A new section for `cfg` with `rows` rows already published.
pub fn encode_section(out: &mut [u8], cfg: &GrowConfig, rows: u64) {
    out.fill(0);
    le::put_u32(out, off::VERSION, GROW_VERSION);
    le::put_u32(out, off::MAX_APPENDERS, cfg.max_appenders);
    le::put_u64(out, off::CAPACITY, cfg.capacity);
    le::put_u64(out, off::ROW_BYTES, cfg.row_bytes);
    le::put_u64(out, off::COUNT_FIELD, cfg.count_field);
    le::put_u64(out, off::RESERVED, rows);
    le::put_u64(out, off::PUBLISHED, rows);
}

/// Row bytes of a header: itemsize times the product of shape[1..].
pub fn row_bytes_of(header: &NpyHeader) -> Option<u64> {
    let mut n = header.dtype.itemsize() as u64;
    for &d in header.shape.iter().skip(1) {
        n = n.checked_mul(d as u64)?;
    }
    Some(n)
}

/// Check the static part of a growable array (what opening needs): the
/// generic control header for kind 4, the section's configuration, and the
/// `.npy` header's form (the count field where the section says, C order).
/// `ctrl` holds the control block from `ctrl_off` (at least its header and
/// section). Returns the configuration when everything opening relies on
/// holds. Never panics.
pub fn validate(
    ctrl: &[u8],
    ctrl_off: u64,
    header: &NpyHeader,
    header_bytes: &[u8],
    file_len: u64,
    sink: &mut dyn Sink,
) -> Option<GrowConfig> {
    macro_rules! bad {
        ($o:expr, $($m:tt)*) => {
            if let ControlFlow::Break(()) = sink.problem($o, format!($($m)*)) {
                return None;
            }
        };
    }
    let at = |o: u64| Some(ctrl_off.saturating_add(o));
    if !is_growable_block(ctrl) || (ctrl.len() as u64) < HEADER_LEN {
        bad!(
            at(0),
            "no growable array control block (magic, version 2, kind 4) at {ctrl_off}"
        );
        return None;
    }
    let u32c = |o: u64| le::u32_or0(ctrl, o);
    let u64c = |o: u64| le::u64_or0(ctrl, o);
    let mut ok = true;
    let ctrl_len = u64c(control::off::CTRL_LEN as u64);
    if ctrl_len != GROW_CTRL_LEN || ctrl_off.checked_add(ctrl_len) != Some(file_len) {
        bad!(
            at(16),
            "ctrl_len is {ctrl_len}; a growable array's control block is the last {GROW_CTRL_LEN} bytes of the file"
        );
        ok = false;
    }
    if u64c(control::off::DATA_OFFSET as u64) != control::DATA_OFFSET {
        bad!(at(24), "data_offset must be {}", control::DATA_OFFSET);
        ok = false;
    }
    let data_len = u64c(control::off::DATA_LEN as u64);
    let sec_off = u64c(control::off::SECTION_OFFSET as u64);
    let sec_len = u64c(control::off::SECTION_LEN as u64);
    if u32c(control::off::FLAGS as u64) != 0 {
        bad!(at(56), "flags must be 0");
    }
    let state = u32c(control::off::STATE as u64);
    if state != STATE_READY {
        bad!(
            at(60),
            "state is {state:#x}, not READY: its creation never finished; delete the file and create it again"
        );
        ok = false;
    }
    if let Some(i) = ctrl[64..128].iter().position(|&b| b != 0) {
        bad!(
            at(64 + i as u64),
            "reserved bytes 64..128 of the control block must be zero"
        );
    }
    if let Some(i) = ctrl[144..256].iter().position(|&b| b != 0) {
        bad!(
            at(144 + i as u64),
            "reserved bytes 144..256 of the control block must be zero"
        );
    }
    if sec_off != HEADER_LEN || (ctrl.len() as u64) < HEADER_LEN + 32 {
        bad!(
            at(40),
            "section_offset is {sec_off}, a growable array's section starts at 256"
        );
        return None;
    }
    let sec = &ctrl[HEADER_LEN as usize..];
    let version = le::u32_or0(sec, off::VERSION);
    if version != GROW_VERSION {
        bad!(
            at(256),
            "grow_version is {version}; this build knows {GROW_VERSION}; upgrade sharray"
        );
        return None;
    }
    let a = le::u32_or0(sec, off::MAX_APPENDERS);
    if !(1..=MAX_APPENDERS).contains(&a) {
        bad!(at(260), "max_appenders is {a}, not 1..={MAX_APPENDERS}");
        return None;
    }
    if sec_len < section_len(a)
        || HEADER_LEN + sec_len > GROW_CTRL_LEN
        || (sec.len() as u64) < section_len(a)
    {
        bad!(
            at(48),
            "section_len {sec_len} does not hold {a} appender entries inside the control block"
        );
        return None;
    }
    let capacity = le::u64_or0(sec, off::CAPACITY);
    let row_bytes = le::u64_or0(sec, off::ROW_BYTES);
    let count_field = le::u64_or0(sec, off::COUNT_FIELD);
    if !(1..=MAX_CAPACITY).contains(&capacity) {
        bad!(
            at(264),
            "capacity is {capacity} rows, not 1..={MAX_CAPACITY}"
        );
        ok = false;
    }
    if header.fortran_order || header.shape.is_empty() {
        bad!(
            Some(0),
            "a growable array's .npy header must be C order with at least one dimension"
        );
        ok = false;
    }
    if row_bytes_of(header) != Some(row_bytes) || row_bytes == 0 {
        bad!(
            at(272),
            "row_bytes is {row_bytes}, the .npy header's dtype and row shape give {:?}",
            row_bytes_of(header)
        );
        ok = false;
    }
    if capacity.checked_mul(row_bytes) != Some(data_len) {
        bad!(
            at(32),
            "data_len is {data_len}, not capacity {capacity} times row_bytes {row_bytes}"
        );
        ok = false;
    }
    if control::ctrl_offset(data_len) != Some(ctrl_off) {
        bad!(
            at(0),
            "the control block is at {ctrl_off}, but {data_len} bytes of reserved data put it at {:?}",
            control::ctrl_offset(data_len)
        );
        ok = false;
    }
    let field_ok = count_field.is_multiple_of(8)
        && count_field >= 16
        && count_field + 8 < control::DATA_OFFSET
        && (count_field as usize + 8) <= header_bytes.len();
    if !field_ok {
        bad!(
            at(280),
            "count_field {count_field} is not an 8-aligned offset inside the .npy header"
        );
        ok = false;
    } else {
        let f = &header_bytes[count_field as usize..count_field as usize + 8];
        match parse_count(f) {
            Some(n) if header.shape.first() == Some(&(n as usize)) => {}
            _ => {
                bad!(
                    Some(count_field),
                    "the .npy header's row count is not at byte {count_field} (8 bytes, right-aligned digits)"
                );
                ok = false;
            }
        }
    }
    ok.then_some(GrowConfig {
        ctrl_off,
        capacity,
        row_bytes,
        max_appenders: a,
        count_field,
    })
}

/// A snapshot of the dynamic words (what `check` and `info` show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrowState {
    /// Rows reserved by appenders (published or not).
    pub reserved: u64,
    /// Rows published.
    pub published: u64,
    /// Appends rolled back after their appender died.
    pub rollbacks: u64,
    /// Unfinished journal entries.
    pub journal_len: u64,
}

/// Read the dynamic words from a copy of the section.
pub fn state_of(sec: &[u8]) -> GrowState {
    GrowState {
        reserved: le::u64_or0(sec, off::RESERVED),
        published: le::u64_or0(sec, off::PUBLISHED),
        rollbacks: le::u64_or0(sec, off::ROLLBACKS),
        journal_len: le::u64_or0(sec, off::JOURNAL_LEN),
    }
}

/// May the journal name this file offset (a journaled word of the section,
/// or the header's count field)?
pub fn journal_target_ok(cfg: &GrowConfig, file_off: u64) -> bool {
    if file_off == cfg.count_field {
        return true;
    }
    let Some(rel) = file_off.checked_sub(cfg.sec()) else {
        return false;
    };
    if !rel.is_multiple_of(8) {
        return false;
    }
    let table_end = section_len(cfg.max_appenders);
    matches!(rel, off::RESERVED | off::PUBLISHED | off::ROLLBACKS)
        || (rel >= off::TABLE && rel < table_end && (rel - off::TABLE) % entry::LEN < entry::PID)
}

/// Apply an unfinished transaction's journal to private copies of the
/// section and the header's count field, as the next holder of the append
/// lock will (FORMAT.md 9.3): the state `check` validates. A journal longer
/// than the journal is left alone (`validate_state` reports it).
pub fn replay_copy(sec: &mut [u8], count: &mut [u8], cfg: &GrowConfig) {
    let len = le::u64_or0(sec, off::JOURNAL_LEN);
    if len == 0 || len > JOURNAL_CAP {
        return;
    }
    for k in 0..len {
        let at = le::u64_or0(sec, off::JOURNAL + 16 * k);
        let value = le::u64_or0(sec, off::JOURNAL + 16 * k + 8);
        if !journal_target_ok(cfg, at) {
            continue;
        }
        if at == cfg.count_field {
            if count.len() == 8 {
                count.copy_from_slice(&value.to_le_bytes());
            }
        } else {
            le::put_u64(sec, at - cfg.sec(), value);
        }
    }
    le::put_u64(sec, off::JOURNAL_LEN, 0);
}

/// Check the dynamic state (a stable copy of the section, after any journal
/// was replayed): `published <= reserved <= capacity`, the header's row
/// count equals `published`, entry states known, and the entries that are
/// not free tile `[published, reserved)` exactly. `header_rows` is the
/// header's first dimension.
pub fn validate_state(
    sec: &[u8],
    cfg: &GrowConfig,
    header_rows: u64,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    let at = |o: u64| Some(cfg.sec() + o);
    let st = state_of(sec);
    if st.journal_len > JOURNAL_CAP {
        sink.problem(
            at(off::JOURNAL_LEN),
            format!(
                "journal_len is {}, more than the {JOURNAL_CAP} entries the journal holds",
                st.journal_len
            ),
        )?;
    }
    if st.published > st.reserved || st.reserved > cfg.capacity {
        sink.problem(
            at(off::RESERVED),
            format!(
                "published {} <= reserved {} <= capacity {} does not hold",
                st.published, st.reserved, cfg.capacity
            ),
        )?;
    }
    // A header behind `published` is a publisher that died between the two
    // stores: the next holder of the append lock stores it again. Ahead of
    // it, numpy would read rows that are not complete.
    if header_rows > st.published {
        sink.problem(
            Some(cfg.count_field),
            format!(
                "the .npy header shows {header_rows} rows but only {} are published: numpy readers would see incomplete rows",
                st.published
            ),
        )?;
    }
    let mut ranges = Vec::new();
    for i in 0..cfg.max_appenders {
        let e = entry_off(i);
        let state = le::u64_or0(sec, e + entry::STATE);
        let start = le::u64_or0(sec, e + entry::START);
        let count = le::u64_or0(sec, e + entry::COUNT);
        match state {
            FREE => {}
            WRITING | WRITTEN => {
                if count == 0 {
                    sink.problem(
                        at(e),
                        format!("appender entry {i} holds an empty reservation"),
                    )?;
                }
                ranges.push((start, count, i));
            }
            s => sink.problem(at(e), format!("appender entry {i} has unknown state {s}"))?,
        }
    }
    ranges.sort_unstable();
    let mut next = st.published;
    for (start, count, i) in ranges {
        if start != next {
            return sink.problem(at(entry_off(i)), format!("appender entry {i} reserves rows from {start}, expected {next}: reservations must tile [published, reserved)"));
        }
        next = start.saturating_add(count);
    }
    if next != st.reserved {
        sink.problem(
            at(off::RESERVED),
            format!(
                "reservations end at row {next}, but reserved is {}",
                st.reserved
            ),
        )?;
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::npy::Dtype;

    #[test]
    fn count_field_round_trips_and_rejects_garbage() {
        for n in [0, 1, 9, 10, 12345, MAX_CAPACITY] {
            assert_eq!(parse_count(&count_text(n).unwrap()), Some(n));
        }
        assert!(count_text(MAX_CAPACITY + 1).is_none());
        for bad in [
            &b"        "[..],
            b"   1 2  ",
            b"    0012",
            b"  12x   ",
            b"123",
        ] {
            assert_eq!(parse_count(bad), None, "{bad:?}");
        }
    }

    fn sample() -> (NpyHeader, Vec<u8>, Vec<u8>, u64) {
        let h = NpyHeader {
            dtype: Dtype::parse_user("<f4").unwrap(),
            fortran_order: false,
            shape: vec![2, 3],
        };
        let (head, field) = growable_header(&h, 2).unwrap();
        let cfg = GrowConfig {
            ctrl_off: 65536,
            capacity: 10,
            row_bytes: 12,
            max_appenders: 4,
            count_field: field,
        };
        let mut ctrl = vec![0u8; GROW_CTRL_LEN as usize];
        le::put(&mut ctrl, 0, &MAGIC);
        le::put_u32(&mut ctrl, 8, GROW_FORMAT_VERSION);
        le::put_u32(&mut ctrl, 12, KIND_GROWABLE);
        le::put_u64(&mut ctrl, 16, GROW_CTRL_LEN);
        le::put_u64(&mut ctrl, 24, control::DATA_OFFSET);
        le::put_u64(&mut ctrl, 32, 120);
        le::put_u64(&mut ctrl, 40, HEADER_LEN);
        le::put_u64(&mut ctrl, 48, section_len(4));
        le::put_u32(&mut ctrl, 60, STATE_READY);
        encode_section(&mut ctrl[HEADER_LEN as usize..], &cfg, 2);
        (h, head, ctrl, 2 * GROW_CTRL_LEN)
    }

    #[test]
    fn a_fresh_block_validates() {
        let (h, head, ctrl, len) = sample();
        let cfg = GrowConfig::decode(&ctrl, 65536, &h, &head, len).unwrap();
        assert_eq!((cfg.capacity, cfg.row_bytes), (10, 12));
        let mut all = crate::format::sink::AllProblems::default();
        let _ = validate_state(&ctrl[HEADER_LEN as usize..], &cfg, 2, &mut all);
        assert!(all.0.is_empty(), "{:?}", all.0);
        assert!(GrowConfig::decode(&ctrl, 65536, &h, &head, len + 1).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        #[test]
        fn damaged_blocks_never_panic(pos in 0usize..(HEADER_LEN as usize + 4608 + 256), val: u8,
                                      hpos in 0usize..4096, hval: u8, cut in 0usize..70000) {
            let (h, mut head, mut ctrl, len) = sample();
            ctrl[pos] = val;
            head[hpos] = hval;
            ctrl.truncate(cut.max(16));
            let mut all = crate::format::sink::AllProblems::default();
            if let Some(cfg) = validate(&ctrl, 65536, &h, &head, len, &mut all) {
                let sec = ctrl.get(HEADER_LEN as usize..).unwrap_or(&[]);
                let _ = validate_state(sec, &cfg, 2, &mut all);
            }
            let _ = GrowConfig::decode(&ctrl, 65536, &h, &head, len);
        }
    }

    #[test]
    fn header_parses_with_numpy_rules_and_field_is_aligned() {
        for shape in [vec![0usize], vec![5, 3], vec![7, 2, 2]] {
            let h = NpyHeader {
                dtype: Dtype::parse_user("<f4").unwrap(),
                fortran_order: false,
                shape: shape.clone(),
            };
            let (bytes, field) = growable_header(&h, shape[0] as u64).unwrap();
            assert_eq!(bytes.len(), 4096);
            assert_eq!(field % 8, 0);
            let (parsed, off) = NpyHeader::parse(&bytes).unwrap();
            assert_eq!(off, 4096);
            assert_eq!(parsed.shape, shape);
            assert_eq!(
                parse_count(&bytes[field as usize..field as usize + 8]),
                Some(shape[0] as u64)
            );
        }
    }
}
