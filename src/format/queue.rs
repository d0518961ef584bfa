//! The queue's kind section and chunk table: FORMAT.md section 8 ("Queues
//! (kind 3): worker pools"), 8.1 "The chunk table" and 8.2 "The kind
//! section". The queue header (encode/decode), the chunk records that form
//! the `.npy` payload, and the validation of the dynamic words
//! ([`validate_state`]). Pure logic, no I/O; the constants are checked
//! against the documented layout by `const` asserts.
//!
//! Kind section (offsets relative to the section start, which is
//! `CTRL_OFF + 256`):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | `queue_version` (2) |
//! | 4 | 4 | `mode`: 1 rows, 2 tasks |
//! | 8 | 8 | `chunks` |
//! | 16 | 8 | `rows` (= `chunks` in task mode) |
//! | 24 | 8 | `chunk_rows` (1 in task mode) |
//! | 32 | 4 | `max_workers` |
//! | 36 | 4 | `barrier_parties` (0: no barrier) |
//! | 40..128 | | reserved, zero |
//! | 128 | 8 | `next`: claim cursor (atomic, advanced by compare-and-swap) |
//! | 136 | 8 | `scan`: `tag << 40 \| index`, re-queued chunks are at or above `index` |
//! | 256 | 8 | `claimed` (atomic, total successful claims) |
//! | 264 | 8 | `done_hint` (atomic; exact count: [`done_count`]) |
//! | 272 | 8 | `requeued` (atomic, total re-queues) |
//! | 384 | 4 | `event` futex word |
//! | 388 | 4 | `event_waiters` |
//! | 392 | 4 | `next_worker_id` |
//! | 512 | 4 | `barrier`: generation << 16 \| arrived (futex word) |
//! | 516 | 4 | `barrier_broken` |
//! | 520 | 4 | `barrier_waiters` |
//! | 640 | 128 * max_workers | worker table |

use std::ops::ControlFlow;

use super::le;
use super::npy::{Dtype, NpyHeader};
use super::sink::Sink;

/// Section layout version.
pub const QUEUE_VERSION: u32 = 2;
/// `mode` value: axis 0 of an array split into chunks of rows.
pub const MODE_ROWS: u32 = 1;
/// `mode` value: a number of tasks (chunks of one "row" each).
pub const MODE_TASKS: u32 = 2;
/// Largest `max_workers` accepted.
pub const MAX_WORKERS: u32 = 4096;
/// Largest barrier party count (the arrival count has 16 bits).
pub const MAX_PARTIES: u32 = 0xFFFF;

/// Section offsets.
pub mod off {
    /// queue_version (u32)
    pub const VERSION: u64 = 0;
    /// mode (u32)
    pub const MODE: u64 = 4;
    /// chunks (u64)
    pub const CHUNKS: u64 = 8;
    /// rows (u64)
    pub const ROWS: u64 = 16;
    /// chunk_rows (u64)
    pub const CHUNK_ROWS: u64 = 24;
    /// max_workers (u32)
    pub const MAX_WORKERS: u64 = 32;
    /// barrier_parties (u32)
    pub const PARTIES: u64 = 36;
    /// claim cursor (u64)
    pub const NEXT: u64 = 128;
    /// re-queue scan mark (u64, [`super::scan_word`])
    pub const SCAN: u64 = 136;
    /// successful claims (u64)
    pub const CLAIMED: u64 = 256;
    /// completed chunks, a hint for waking waiters: it can lag the exact
    /// count ([`super::done_count`]) by completions whose process died
    /// (u64)
    pub const DONE: u64 = 264;
    /// re-queue events (u64)
    pub const REQUEUED: u64 = 272;
    /// event futex word (u32)
    pub const EVENT: u64 = 384;
    /// processes parked on `event` (u32)
    pub const EVENT_WAITERS: u64 = 388;
    /// worker id allocator (u32)
    pub const NEXT_WORKER_ID: u64 = 392;
    /// barrier word: generation << 16 | arrived (u32 futex word)
    pub const BARRIER: u64 = 512;
    /// barrier broken flag (u32)
    pub const BARRIER_BROKEN: u64 = 516;
    /// processes parked on the barrier word (u32)
    pub const BARRIER_WAITERS: u64 = 520;
    /// first worker entry
    pub const TABLE: u64 = 640;
}

/// Bytes per worker entry.
pub const ENTRY_LEN: u64 = 128;

/// Worker entry offsets (relative to the entry).
pub mod entry {
    /// state (u32): [`super::ENTRY_FREE`] or [`super::ENTRY_LIVE`]
    pub const STATE: u64 = 0;
    /// worker id (u32, never 0)
    pub const ID: u64 = 4;
    /// process id (u32), informational and for the own-process rule
    pub const PID: u64 = 8;
    /// flags (u32): bit 0 barrier member
    pub const FLAGS: u64 = 12;
    /// random token (u64)
    pub const TOKEN: u64 = 16;
    /// chunks claimed by this worker (u64)
    pub const CLAIMED: u64 = 24;
    /// chunks completed by this worker (u64)
    pub const COMPLETED: u64 = 32;
    /// CLOCK_MONOTONIC at join, ns (u64)
    pub const JOINED_NS: u64 = 40;
    /// completions through this entry, by every worker that ever held it,
    /// and the completion in flight: [`super::done_word`] (u64; never reset)
    pub const DONE_WORD: u64 = 48;
    /// chunk index + 1 of the completion in flight, when `DONE_WORD`'s mark
    /// is set (u64)
    pub const COMPLETING: u64 = 56;
    /// [`super::HELD_SLOTS`] u64 words: chunk index + 1 of each chunk this
    /// worker holds or is about to claim, [`super::HELD_RESERVED`] for a
    /// slot being filled, 0 for a free slot
    pub const HELD: u64 = 64;
}

/// Held-chunk slots per worker entry. A worker that holds more claims at
/// once sets [`FLAG_OVERFLOW`], and a reaper then scans the whole table.
pub const HELD_SLOTS: u32 = 8;
/// A held slot taken by a thread that has not named its chunk yet.
pub const HELD_RESERVED: u64 = u64::MAX;

/// The `done_word` of an entry: `count << 1 | completing` (the low bit says
/// a completion of the chunk in `COMPLETING` is in flight).
pub fn done_word(count: u64, completing: bool) -> u64 {
    (count << 1) | u64::from(completing)
}

/// Split a `done_word` into (count, completion in flight).
pub fn split_done_word(w: u64) -> (u64, bool) {
    (w >> 1, w & 1 == 1)
}

/// Bits of the chunk index in the scan word (chunks are fewer than 2^40).
pub const SCAN_INDEX_BITS: u32 = 40;

/// The scan word: `tag << 40 | index`. Every re-queue lowers `index` and
/// bumps `tag` in one compare-and-swap, so a scanner that raises `index`
/// (also by compare-and-swap) fails if a chunk was re-queued meanwhile.
pub fn scan_word(index: u64, tag: u64) -> u64 {
    (tag << SCAN_INDEX_BITS) | (index & ((1 << SCAN_INDEX_BITS) - 1))
}

/// Split a scan word into (index, tag).
pub fn split_scan_word(w: u64) -> (u64, u64) {
    (w & ((1 << SCAN_INDEX_BITS) - 1), w >> SCAN_INDEX_BITS)
}

/// The exact number of completed chunks: every entry's count, plus its
/// completion in flight if that chunk is already DONE by the entry's worker
/// (`chunk_word(i)` reads chunk `i`'s word; out-of-range indexes count as
/// not done). Saturates instead of overflowing on a corrupt file.
pub fn done_count(
    max_workers: u32,
    entry_u64: impl Fn(u32, u64) -> u64,
    entry_id: impl Fn(u32) -> u32,
    chunk_word: impl Fn(u64) -> Option<u64>,
) -> u64 {
    (0..max_workers).fold(0u64, |acc, i| {
        let (count, completing) = split_done_word(entry_u64(i, entry::DONE_WORD));
        let in_flight = completing
            && entry_u64(i, entry::COMPLETING)
                .checked_sub(1)
                .and_then(&chunk_word)
                == Some(word(DONE, entry_id(i)));
        acc.saturating_add(count)
            .saturating_add(u64::from(in_flight))
    })
}

/// Entry state: unused.
pub const ENTRY_FREE: u32 = 0;
/// Entry state: registered (alive while its liveness byte is OFD-locked).
pub const ENTRY_LIVE: u32 = 1;
/// Entry flag: the worker is a barrier participant.
pub const FLAG_BARRIER_MEMBER: u32 = 1;
/// Entry flag: the worker held more claims at once than it has held slots;
/// reaping it scans the whole chunk table.
pub const FLAG_OVERFLOW: u32 = 2;

/// Bytes per chunk record in the `.npy` payload.
pub const RECORD_LEN: u64 = 16;
/// numpy dtype of a chunk record.
pub const RECORD_DTYPE: &str =
    "[('state', '<u4'), ('owner', '<u4'), ('claims', '<u4'), ('requeues', '<u4')]";
/// Chunk record: offset of the `claims` counter.
pub const RECORD_CLAIMS: u64 = 8;
/// Chunk record: offset of the `requeues` counter.
pub const RECORD_REQUEUES: u64 = 12;

/// Chunk state: waiting to be claimed.
pub const PENDING: u32 = 0;
/// Chunk state: claimed by `owner`.
pub const CLAIMED: u32 = 1;
/// Chunk state: completed by `owner`.
pub const DONE: u32 = 2;

/// The chunk word (record bytes 0..8 read as one little-endian u64): state in
/// the low half, owner worker id in the high half.
pub fn word(state: u32, owner: u32) -> u64 {
    u64::from(state) | (u64::from(owner) << 32)
}

/// Split a chunk word into (state, owner).
pub fn split(word: u64) -> (u32, u32) {
    (word as u32, (word >> 32) as u32)
}

/// Section length for `max_workers` entries.
pub fn section_len(max_workers: u32) -> u64 {
    off::TABLE + ENTRY_LEN * u64::from(max_workers)
}

/// The immutable part of a queue header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueHeader {
    /// [`MODE_ROWS`] or [`MODE_TASKS`].
    pub mode: u32,
    /// Number of chunks.
    pub chunks: u64,
    /// Rows along axis 0 (= chunks in task mode).
    pub rows: u64,
    /// Rows per chunk (the last chunk may have fewer; 1 in task mode).
    pub chunk_rows: u64,
    /// Size of the worker table.
    pub max_workers: u32,
    /// Barrier party count, 0 for none.
    pub barrier_parties: u32,
}

impl QueueHeader {
    /// A queue over `rows` rows in chunks of `chunk_rows`.
    pub fn rows(
        rows: u64,
        chunk_rows: u64,
        max_workers: u32,
        parties: u32,
    ) -> Result<Self, String> {
        if chunk_rows == 0 {
            return Err("chunk_rows must be at least 1".into());
        }
        let h = QueueHeader {
            mode: MODE_ROWS,
            chunks: rows.div_ceil(chunk_rows),
            rows,
            chunk_rows,
            max_workers,
            barrier_parties: parties,
        };
        h.check()?;
        Ok(h)
    }

    /// A queue of `tasks` independent tasks.
    pub fn tasks(tasks: u64, max_workers: u32, parties: u32) -> Result<Self, String> {
        let h = QueueHeader {
            mode: MODE_TASKS,
            chunks: tasks,
            rows: tasks,
            chunk_rows: 1,
            max_workers,
            barrier_parties: parties,
        };
        h.check()?;
        Ok(h)
    }

    fn check(&self) -> Result<(), String> {
        match self.mode {
            MODE_ROWS => {
                if self.chunk_rows == 0 || self.chunks != self.rows.div_ceil(self.chunk_rows) {
                    return Err(format!(
                        "queue header says {} chunks of {} rows for {} rows, which does not add up",
                        self.chunks, self.chunk_rows, self.rows
                    ));
                }
            }
            MODE_TASKS => {
                if self.chunk_rows != 1 || self.rows != self.chunks {
                    return Err("a task queue must have chunk_rows 1 and rows == chunks".into());
                }
            }
            m => return Err(format!("unknown queue mode {m}")),
        }
        if !(1..=MAX_WORKERS).contains(&self.max_workers) {
            return Err(format!(
                "max_workers must be between 1 and {MAX_WORKERS}, not {}",
                self.max_workers
            ));
        }
        if self.barrier_parties > self.max_workers || self.barrier_parties > MAX_PARTIES {
            return Err(format!(
                "a barrier of {} parties cannot fit a worker table of {} entries; raise max_workers",
                self.barrier_parties, self.max_workers
            ));
        }
        if self.chunks > (isize::MAX as u64) / RECORD_LEN || self.chunks >= 1 << SCAN_INDEX_BITS {
            return Err("too many chunks (at most 2^40 - 1)".into());
        }
        Ok(())
    }

    /// Write the immutable fields (and the initial `next_worker_id` = 1)
    /// into a zeroed section.
    pub fn encode(&self, section: &mut [u8]) {
        le::put_u32(section, off::VERSION, QUEUE_VERSION);
        le::put_u32(section, off::MODE, self.mode);
        le::put_u64(section, off::CHUNKS, self.chunks);
        le::put_u64(section, off::ROWS, self.rows);
        le::put_u64(section, off::CHUNK_ROWS, self.chunk_rows);
        le::put_u32(section, off::MAX_WORKERS, self.max_workers);
        le::put_u32(section, off::PARTIES, self.barrier_parties);
        le::put_u32(section, off::NEXT_WORKER_ID, 1);
    }

    /// Parse and validate a private copy of the section against the `.npy`
    /// payload's element count (`records`). Never panics.
    pub fn decode(section: &[u8], records: u64) -> Result<QueueHeader, String> {
        if (section.len() as u64) < off::TABLE {
            return Err("queue section is too short".into());
        }
        let u32_at = |o: u64| le::u32_or0(section, o);
        let u64_at = |o: u64| le::u64_or0(section, o);
        let version = u32_at(off::VERSION);
        if version != QUEUE_VERSION {
            return Err(format!(
                "queue layout version {version} is not supported (this build reads {QUEUE_VERSION})"
            ));
        }
        let h = QueueHeader {
            mode: u32_at(off::MODE),
            chunks: u64_at(off::CHUNKS),
            rows: u64_at(off::ROWS),
            chunk_rows: u64_at(off::CHUNK_ROWS),
            max_workers: u32_at(off::MAX_WORKERS),
            barrier_parties: u32_at(off::PARTIES),
        };
        h.check()?;
        if h.chunks != records {
            return Err(format!(
                "queue header says {} chunks but the chunk table holds {records}",
                h.chunks
            ));
        }
        if (section.len() as u64) < section_len(h.max_workers) {
            return Err("queue section is too short for its worker table".into());
        }
        Ok(h)
    }

    /// Rows of chunk `i` (`i < chunks`).
    pub fn chunk_range(&self, i: u64) -> std::ops::Range<u64> {
        let start = i * self.chunk_rows;
        start..start.saturating_add(self.chunk_rows).min(self.rows)
    }

    /// Section offset of worker entry `i`.
    pub fn entry_off(i: u32) -> u64 {
        off::TABLE + ENTRY_LEN * u64::from(i)
    }
}

/// The numpy dtype of a chunk record ([`RECORD_DTYPE`]).
pub fn record_dtype() -> Dtype {
    Dtype::from_descr_literal(RECORD_DTYPE).expect("the record dtype literal is valid")
}

/// Check the `.npy` header of a queue's chunk table (a 1-d C-order array of
/// [`RECORD_DTYPE`]) and return its record count.
pub fn records_of(h: &NpyHeader) -> Result<u64, String> {
    if h.dtype != record_dtype() || h.shape.len() != 1 || h.fortran_order {
        return Err(format!(
            "a queue's chunk table must be a 1-d array of {RECORD_DTYPE}, not {} {:?}",
            h.dtype, h.shape
        ));
    }
    Ok(h.shape[0] as u64)
}

/// Validate the dynamic words of a queue: the section snapshot `section`
/// (whose header decoded to `hdr`; `section_base` is its file offset) and
/// the chunk table snapshot `records` (16 bytes per chunk; `records_base`
/// is its file offset, the data offset). Read the section before the
/// records: a worker acting between the two reads then only makes a chunk
/// look further along than the section says, which every rule allows.
/// Every rule is something the runtime relies on (FORMAT.md 8.1 to 8.5):
///
/// - a chunk's state is PENDING, CLAIMED or DONE; a PENDING chunk has owner
///   0 (claims compare the whole word); a CLAIMED chunk's owner is the id
///   of a LIVE worker entry that lists it in its held slots or has the
///   overflow flag (reaping that entry is the only way it is re-queued);
/// - a PENDING chunk below the claim cursor is at or above the scan mark,
///   or listed in some entry's held slots (else no claimer finds it);
/// - the exact done count ([`done_count`]) equals the number of DONE
///   chunks in the table; the `done_hint` is at most the sum of the counts
///   (without completions in flight);
/// - worker entries are FREE or LIVE; a LIVE entry has a non-zero id not
///   shared with another LIVE entry and only known flags; a FREE entry holds
///   nothing and has no completion in flight; held slots and the completion
///   in flight name chunks that exist;
/// - the barrier word's arrival count is below the party count (0 without
///   a barrier) and the broken flag is 0 or 1.
pub fn validate_state(
    hdr: &QueueHeader,
    section: &[u8],
    section_base: u64,
    records: &[u8],
    records_base: u64,
    sink: &mut dyn Sink,
) -> ControlFlow<()> {
    let sat = |o: u64| Some(section_base.saturating_add(o));
    let s32 = |o: u64| le::u32_or0(section, o);
    let s64 = |o: u64| le::u64_or0(section, o);
    let chunk_word = |i: u64| {
        if i < hdr.chunks {
            le::u64_at(records, i.saturating_mul(RECORD_LEN))
        } else {
            None
        }
    };
    // id -> (entry, overflow flag)
    let mut live_ids = std::collections::HashMap::new();
    // chunk -> worker id of an entry whose held slots name it
    let mut held = std::collections::HashMap::new();
    for i in 0..hdr.max_workers {
        let e = QueueHeader::entry_off(i);
        let state = s32(e + entry::STATE);
        let id = s32(e + entry::ID);
        let flags = s32(e + entry::FLAGS);
        let (_, completing) = split_done_word(s64(e + entry::DONE_WORD));
        let slots: Vec<u64> = (0..u64::from(HELD_SLOTS))
            .map(|j| s64(e + entry::HELD + 8 * j))
            .collect();
        match state {
            ENTRY_FREE => {
                if completing || slots.iter().any(|&h| h != 0) {
                    sink.problem(
                        sat(e + entry::DONE_WORD),
                        format!("free worker entry {i} still holds chunks or a completion"),
                    )?;
                }
            }
            ENTRY_LIVE => {
                if id == 0 {
                    sink.problem(
                        sat(e + entry::ID),
                        format!("live worker entry {i} has id 0"),
                    )?;
                } else if let Some((j, _)) = live_ids.insert(id, (i, flags & FLAG_OVERFLOW != 0)) {
                    sink.problem(
                        sat(e + entry::ID),
                        format!("live worker entries {j} and {i} share the id {id}"),
                    )?;
                }
                if flags & !(FLAG_BARRIER_MEMBER | FLAG_OVERFLOW) != 0 {
                    sink.problem(
                        sat(e + entry::FLAGS),
                        format!("worker entry {i} has unknown flags {flags:#x}"),
                    )?;
                }
            }
            st => {
                sink.problem(
                    sat(e + entry::STATE),
                    format!("worker entry {i} has unknown state {st} (0 free, 1 live)"),
                )?;
            }
        }
        for (j, &h) in slots.iter().enumerate() {
            if h == 0 || h == HELD_RESERVED {
                continue;
            }
            if h > hdr.chunks {
                sink.problem(
                    sat(e + entry::HELD + 8 * j as u64),
                    format!(
                        "worker entry {i} holds chunk {}, beyond the {} chunks",
                        h - 1,
                        hdr.chunks
                    ),
                )?;
            } else {
                held.insert(h - 1, id);
            }
        }
        let c = s64(e + entry::COMPLETING);
        if completing && !(1..=hdr.chunks).contains(&c) {
            sink.problem(
                sat(e + entry::COMPLETING),
                format!("worker entry {i} is completing chunk {c} - 1, which does not exist"),
            )?;
        }
    }
    let bar = s32(off::BARRIER);
    let arrived = bar & 0xFFFF;
    if (hdr.barrier_parties == 0 && bar != 0)
        || (hdr.barrier_parties > 0 && arrived >= hdr.barrier_parties)
    {
        sink.problem(
            sat(off::BARRIER),
            format!(
                "the barrier word says {arrived} arrived, but the barrier has {} parties",
                hdr.barrier_parties
            ),
        )?;
    }
    let broken = s32(off::BARRIER_BROKEN);
    if broken > 1 {
        sink.problem(
            sat(off::BARRIER_BROKEN),
            format!("the barrier's broken flag is {broken}, not 0 or 1"),
        )?;
    }
    let (mark, _) = split_scan_word(s64(off::SCAN));
    if mark > hdr.chunks {
        sink.problem(
            sat(off::SCAN),
            format!("the scan mark is {mark}, beyond the {} chunks", hdr.chunks),
        )?;
    }
    let cursor = s64(off::NEXT).min(hdr.chunks);
    let mut done = 0u64;
    for i in 0..hdr.chunks {
        let at = Some(records_base.saturating_add(i.saturating_mul(RECORD_LEN)));
        let Some(w) = chunk_word(i) else {
            sink.problem(at, format!("chunk record {i} is missing"))?;
            break;
        };
        let (state, owner) = split(w);
        match state {
            PENDING if owner != 0 => {
                sink.problem(
                    at,
                    format!("pending chunk {i} names owner {owner}; it could never be claimed"),
                )?;
            }
            PENDING if i < cursor && i < mark && !held.contains_key(&i) => {
                sink.problem(
                    at,
                    format!(
                        "pending chunk {i} is below both the claim cursor and the scan mark {mark}; no claimer would find it"
                    ),
                )?;
            }
            PENDING => {}
            CLAIMED => match live_ids.get(&owner) {
                None => {
                    sink.problem(
                        at,
                        format!(
                            "chunk {i} is claimed by worker id {owner}, which no live worker entry has; it would never be re-queued"
                        ),
                    )?;
                }
                Some(&(_, overflow)) if !overflow && held.get(&i) != Some(&owner) => {
                    sink.problem(
                        at,
                        format!(
                            "chunk {i} is claimed by worker id {owner}, whose held slots do not list it; it would never be re-queued"
                        ),
                    )?;
                }
                Some(_) => {}
            },
            DONE => done += 1,
            _ => {
                sink.problem(
                    at,
                    format!("chunk {i} has unknown state {state} (0 pending, 1 claimed, 2 done)"),
                )?;
            }
        }
    }
    // The hint is bumped after the count (by the worker, or by the reaper
    // that counts a dead worker's completion in flight), so it never
    // exceeds the counts alone.
    let hint = s64(off::DONE);
    let counted = (0..hdr.max_workers).fold(0u64, |acc, i| {
        let (count, _) = split_done_word(s64(QueueHeader::entry_off(i) + entry::DONE_WORD));
        acc.saturating_add(count)
    });
    if hint > counted {
        sink.problem(
            sat(off::DONE),
            format!(
                "the done hint is {hint}, but the workers' completion counts add up to {counted} (the chunk table has {done} done chunks of {})",
                hdr.chunks
            ),
        )?;
    }
    let exact = done_count(
        hdr.max_workers,
        |i, o| s64(QueueHeader::entry_off(i) + o),
        |i| s32(QueueHeader::entry_off(i) + entry::ID),
        chunk_word,
    );
    // Exact at every instant: a completion is announced in its entry before
    // the chunk turns DONE and counted in the same store that clears the
    // announcement; the snapshot `check` validates is one during which no
    // entry changed, so every DONE chunk it shows is accounted for.
    if exact != done {
        sink.problem(
            sat(off::TABLE),
            format!(
                "the workers' completion counts add up to {exact}, but the chunk table has {done} done chunks"
            ),
        )?;
    }
    ControlFlow::Continue(())
}

// The atomics live on their own 128-byte lines and are naturally aligned.
const _: () = assert!(off::NEXT.is_multiple_of(128));
const _: () = assert!(off::CLAIMED.is_multiple_of(128));
const _: () = assert!(off::EVENT.is_multiple_of(128));
const _: () = assert!(off::BARRIER.is_multiple_of(128));
const _: () = assert!(off::TABLE.is_multiple_of(128) && off::TABLE >= off::BARRIER_WAITERS + 4);
const _: () =
    assert!(ENTRY_LEN.is_multiple_of(128) && entry::HELD + 8 * HELD_SLOTS as u64 <= ENTRY_LEN);
const _: () = assert!(off::SCAN < off::CLAIMED && off::SCAN.is_multiple_of(8));

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_ranges() {
        let h = QueueHeader::rows(10, 4, 8, 2).unwrap();
        assert_eq!(h.chunks, 3);
        let mut s = vec![0u8; section_len(8) as usize];
        h.encode(&mut s);
        assert_eq!(QueueHeader::decode(&s, 3).unwrap(), h);
        assert!(QueueHeader::decode(&s, 4).is_err());
        assert_eq!(h.chunk_range(2), 8..10);
        assert!(QueueHeader::rows(10, 0, 8, 0).is_err());
        assert!(QueueHeader::tasks(5, 4, 5).is_err());
        assert_eq!(split(word(CLAIMED, 77)), (CLAIMED, 77));
    }

    proptest! {
        #[test]
        fn header_round_trip(rows in 0u64..1 << 40, chunk in 1u64..1000, workers in 1u32..=MAX_WORKERS, parties in 0u32..8, tasks in any::<bool>()) {
            let parties = parties.min(workers);
            let h = if tasks {
                QueueHeader::tasks(rows, workers, parties)
            } else {
                QueueHeader::rows(rows, chunk, workers, parties)
            }
            .unwrap();
            let mut s = vec![0u8; section_len(workers) as usize];
            h.encode(&mut s);
            prop_assert_eq!(QueueHeader::decode(&s, h.chunks), Ok(h));
            // A fresh queue (zero records: every chunk pending) is valid.
            let records = vec![0u8; (h.chunks.min(64) * RECORD_LEN) as usize];
            if h.chunks <= 64 {
                let mut all = crate::format::sink::AllProblems::default();
                let _ = validate_state(&h, &s, 0, &records, 0, &mut all);
                prop_assert!(all.0.is_empty(), "{:?}", all.0);
            }
        }

        #[test]
        fn validate_never_panics(bytes in proptest::collection::vec(any::<u8>(), 640..1200), records in proptest::collection::vec(any::<u8>(), 0..300)) {
            let h = QueueHeader::tasks(20, 8, 2).unwrap();
            let mut all = crate::format::sink::AllProblems::default();
            let _ = validate_state(&h, &bytes, 0, &records, 0, &mut all);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..800), n in any::<u64>()) {
            let _ = QueueHeader::decode(&bytes, n);
        }
    }
}
