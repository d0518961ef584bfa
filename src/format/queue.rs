//! The queue file's layout: the kind section (queue header, counters,
//! barrier, worker table) and the chunk records that form the `.npy` payload.
//! Pure logic, no I/O. FORMAT.md section 8 ("Queues") is the contract; the constants
//! here are checked against it by `const` asserts.
//!
//! Kind section (offsets relative to the section start, which is
//! `CTRL_OFF + 256`):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | `queue_version` (1) |
//! | 4 | 4 | `mode`: 1 rows, 2 tasks |
//! | 8 | 8 | `chunks` |
//! | 16 | 8 | `rows` (= `chunks` in task mode) |
//! | 24 | 8 | `chunk_rows` (1 in task mode) |
//! | 32 | 4 | `max_workers` |
//! | 36 | 4 | `barrier_parties` (0: no barrier) |
//! | 40..128 | | reserved, zero |
//! | 128 | 8 | `next`: claim cursor (atomic) |
//! | 256 | 8 | `claimed` (atomic, total successful claims) |
//! | 264 | 8 | `done` (atomic) |
//! | 272 | 8 | `requeued` (atomic, total re-queues) |
//! | 384 | 4 | `event` futex word |
//! | 388 | 4 | `event_waiters` |
//! | 392 | 4 | `next_worker_id` |
//! | 512 | 4 | `barrier`: generation << 16 \| arrived (futex word) |
//! | 516 | 4 | `barrier_broken` |
//! | 520 | 4 | `barrier_waiters` |
//! | 640 | 64 * max_workers | worker table |

/// Section layout version.
pub const QUEUE_VERSION: u32 = 1;
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
    /// successful claims (u64)
    pub const CLAIMED: u64 = 256;
    /// completed chunks (u64)
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
pub const ENTRY_LEN: u64 = 64;

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
}

/// Entry state: unused.
pub const ENTRY_FREE: u32 = 0;
/// Entry state: registered (alive while its liveness byte is OFD-locked).
pub const ENTRY_LIVE: u32 = 1;
/// Entry flag: the worker is a barrier participant.
pub const FLAG_BARRIER_MEMBER: u32 = 1;

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

fn u32_at(b: &[u8], o: u64) -> u32 {
    let o = o as usize;
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], o: u64) -> u64 {
    let o = o as usize;
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
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
        if self.chunks > (isize::MAX as u64) / RECORD_LEN {
            return Err("too many chunks".into());
        }
        Ok(())
    }

    /// Write the immutable fields (and the initial `next_worker_id` = 1)
    /// into a zeroed section.
    pub fn encode(&self, section: &mut [u8]) {
        let mut put =
            |o: u64, b: &[u8]| section[o as usize..o as usize + b.len()].copy_from_slice(b);
        put(off::VERSION, &QUEUE_VERSION.to_le_bytes());
        put(off::MODE, &self.mode.to_le_bytes());
        put(off::CHUNKS, &self.chunks.to_le_bytes());
        put(off::ROWS, &self.rows.to_le_bytes());
        put(off::CHUNK_ROWS, &self.chunk_rows.to_le_bytes());
        put(off::MAX_WORKERS, &self.max_workers.to_le_bytes());
        put(off::PARTIES, &self.barrier_parties.to_le_bytes());
        put(off::NEXT_WORKER_ID, &1u32.to_le_bytes());
    }

    /// Parse and validate a private copy of the section against the `.npy`
    /// payload's element count (`records`). Never panics.
    pub fn decode(section: &[u8], records: u64) -> Result<QueueHeader, String> {
        if (section.len() as u64) < off::TABLE {
            return Err("queue section is too short".into());
        }
        let version = u32_at(section, off::VERSION);
        if version != QUEUE_VERSION {
            return Err(format!(
                "queue layout version {version} is not supported (this build reads {QUEUE_VERSION})"
            ));
        }
        let h = QueueHeader {
            mode: u32_at(section, off::MODE),
            chunks: u64_at(section, off::CHUNKS),
            rows: u64_at(section, off::ROWS),
            chunk_rows: u64_at(section, off::CHUNK_ROWS),
            max_workers: u32_at(section, off::MAX_WORKERS),
            barrier_parties: u32_at(section, off::PARTIES),
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

// The atomics live on their own 128-byte lines and are naturally aligned.
const _: () = assert!(off::NEXT.is_multiple_of(128));
const _: () = assert!(off::CLAIMED.is_multiple_of(128));
const _: () = assert!(off::EVENT.is_multiple_of(128));
const _: () = assert!(off::BARRIER.is_multiple_of(128));
const _: () = assert!(off::TABLE.is_multiple_of(128) && off::TABLE >= off::BARRIER_WAITERS + 4);
const _: () = assert!(ENTRY_LEN.is_multiple_of(8) && entry::JOINED_NS + 8 <= ENTRY_LEN);

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
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..800), n in any::<u64>()) {
            let _ = QueueHeader::decode(&bytes, n);
        }
    }
}
