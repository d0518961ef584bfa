//! Byte layout of a ring's kind section (see FORMAT.md, "Rings").
//!
//! All offsets are relative to the start of the kind section (which is
//! `CTRL_OFF + 256` in the file). Every journaled word is a little-endian
//! `u64`; the futex words and waiter counts are `u32`. Hot words live on their
//! own 128-byte lines so producers and consumers do not false-share.
//!
//! ```text
//! 0     config line (written once at creation, read-only afterwards)
//! 128   lock line: lock word, lock waiters, journal length, head, tail, subscribers,
//!       producers_ever, committed, received, dropped
//! 256   journal: JOURNAL_CAP entries of (offset u64, value u64)
//! 512   commit futex word + receive waiters
//! 640   free futex word + loan waiters
//! 768   K slot lines of 128 bytes
//! ..    log: K u64 cells (slot index of position p at cell p % K), rounded up to 128
//! ..    participant table: P entries of 128 bytes
//! ```

/// Section format version of rings written by this crate.
pub const RING_VERSION: u32 = 2;
/// Bytes per line (two 64-byte cache lines: adjacent-line prefetch pairs them).
pub const LINE: u64 = 128;
/// Most participants a ring can have (a subscriber set is a `u64` bitmask).
pub const MAX_PARTICIPANTS: u32 = 64;
/// Most slots a ring can have.
pub const MAX_SLOTS: u32 = 65536;
/// Entries in the redo journal.
pub const JOURNAL_CAP: u64 = 16;

/// Config line (offset 0).
pub mod cfg {
    /// u32: [`super::RING_VERSION`].
    pub const VERSION: u64 = 0;
    /// u32: bit 0 broadcast, bit 1 overwrite-oldest.
    pub const FLAGS: u64 = 4;
    /// u32: number of slots K.
    pub const SLOTS: u64 = 8;
    /// u32: size of the participant table P (1..=64).
    pub const MAX_PARTICIPANTS: u64 = 12;
    /// u64: bytes per slot (product of the frame shape times itemsize).
    pub const SLOT_BYTES: u64 = 16;
    /// u64: offset of the first slot line.
    pub const SLOTS_OFF: u64 = 24;
    /// u64: offset of the log.
    pub const LOG_OFF: u64 = 32;
    /// u64: offset of the participant table.
    pub const PARTICIPANTS_OFF: u64 = 40;
    /// u64: bytes of the section this layout uses.
    pub const USED_LEN: u64 = 48;
}

/// Flag bit: broadcast mode.
pub const FLAG_BROADCAST: u32 = 1;
/// Flag bit: overwrite-oldest instead of backpressure.
pub const FLAG_OVERWRITE: u32 = 2;

/// Lock line (offset 128).
pub mod lock {
    /// u32 futex word: 0 free, else the holder's
    /// [`lock_word`](super::lock_word): its participant index + 1 in the low
    /// byte, the low 24 bits of its entry's attach epoch above it.
    pub const LOCK: u64 = 128;
    /// u32: processes parked on `LOCK`.
    pub const LOCK_WAITERS: u64 = 132;
    /// u64: 0, or the number of journal entries to replay.
    pub const JOURNAL_LEN: u64 = 136;
    /// u64: next position a queue consumer takes.
    pub const HEAD: u64 = 144;
    /// u64: next position a commit gets (= frames committed so far).
    pub const TAIL: u64 = 152;
    /// u64: bitmask of registered subscribers (broadcast).
    pub const SUBSCRIBERS: u64 = 160;
    /// u64: producers ever attached (0 means "no producer yet", never disconnected).
    pub const PRODUCERS_EVER: u64 = 168;
    /// u64: frames committed.
    pub const COMMITTED: u64 = 176;
    /// u64: frames received (one per lease handed out).
    pub const RECEIVED: u64 = 184;
    /// u64: frames dropped (overwritten before every reader got them).
    pub const DROPPED: u64 = 192;
}

/// Journal (offset 256): `JOURNAL_CAP` entries of `(offset, value)`.
pub const JOURNAL: u64 = 256;

/// Commit line (offset 512).
pub mod commit {
    /// u32 futex word: bumped after every commit and producer detach.
    pub const SEQ: u64 = 512;
    /// u32: processes parked on `SEQ`.
    pub const WAITERS: u64 = 516;
}

/// Free line (offset 640).
pub mod free {
    /// u32 futex word: bumped whenever a slot becomes free.
    pub const SEQ: u64 = 640;
    /// u32: processes parked on `SEQ`.
    pub const WAITERS: u64 = 644;
}

/// First slot line.
pub const SLOTS_OFF: u64 = 768;

/// Fields of a slot line (relative to the line).
pub mod slot {
    /// u64: `state | owner << 8` (see [`super::SlotState`]).
    pub const STATE: u64 = 0;
    /// u64: position (sequence number) of the frame, valid once committed.
    pub const SEQ: u64 = 8;
    /// u64: `CLOCK_MONOTONIC` ns at commit (written by the producer).
    pub const TIMESTAMP: u64 = 16;
    /// u64: user tag (written by the producer).
    pub const TAG: u64 = 24;
    /// u64: valid bytes of the frame (written by the producer).
    pub const VALID_LEN: u64 = 32;
    /// u64: broadcast: subscribers that still hold or have not read the frame.
    pub const PENDING: u64 = 40;
    /// u64: broadcast: subscribers holding a lease on it now.
    pub const LEASED: u64 = 48;
    /// u64: times this slot was loaned.
    pub const LOANS: u64 = 56;
}

/// Fields of a participant entry (relative to the entry).
pub mod part {
    /// u64: [`super::Role`] code, 0 = free.
    pub const ROLE: u64 = 0;
    /// u64: pid of the owner (informational).
    pub const PID: u64 = 8;
    /// u64: random token of this registration (informational).
    pub const TOKEN: u64 = 16;
    /// u64: subscriber: next position to read.
    pub const CURSOR: u64 = 24;
    /// u64: subscriber: frames lost to overwrite.
    pub const LOST: u64 = 32;
    /// u64: frames committed (producer) or received (consumer).
    pub const COUNT: u64 = 40;
    /// u64: `CLOCK_MONOTONIC` ns at attach.
    pub const ATTACHED_NS: u64 = 48;
    /// u64: attach epoch of the entry: `+1` (wrapping) every time a process
    /// takes the entry's liveness lock, written only by that process. Its
    /// low [`super::EPOCH_BITS`] bits name the holder in the lock word.
    pub const EPOCH: u64 = 56;
}

/// Bits of the entry epoch carried in the lock word (above the index byte).
pub const EPOCH_BITS: u32 = 24;

/// The lock word of participant `index` in attach epoch `epoch`:
/// `(epoch mod 2^24) << 8 | (index + 1)`. Never 0.
pub fn lock_word(index: u32, epoch: u64) -> u32 {
    debug_assert!(index < MAX_PARTICIPANTS);
    ((epoch as u32 & ((1 << EPOCH_BITS) - 1)) << 8) | (index + 1)
}

/// Split a non-zero lock word into (participant index, epoch bits). The
/// index may be out of range in a corrupt file; callers check it.
pub fn split_lock_word(w: u32) -> (u32, u32) {
    ((w & 0xFF).wrapping_sub(1), w >> 8)
}

/// Slot states (low byte of the slot state word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Nobody holds it.
    Free,
    /// Loaned to the producer in the owner byte.
    Writing,
    /// Committed, waiting for (or being read by) subscribers / a consumer.
    Ready,
    /// Queue mode: leased to the consumer in the owner byte.
    Reading,
}

impl SlotState {
    /// On-disk code.
    pub fn code(self) -> u64 {
        match self {
            SlotState::Free => 0,
            SlotState::Writing => 1,
            SlotState::Ready => 2,
            SlotState::Reading => 3,
        }
    }

    /// Decode (unknown codes read as `None`).
    pub fn from_code(c: u64) -> Option<SlotState> {
        Some(match c {
            0 => SlotState::Free,
            1 => SlotState::Writing,
            2 => SlotState::Ready,
            3 => SlotState::Reading,
            _ => return None,
        })
    }
}

/// Pack a slot state word.
pub fn state_word(s: SlotState, owner: u32) -> u64 {
    s.code() | (u64::from(owner & 0xff) << 8)
}

/// Unpack a slot state word into (state, owner).
pub fn unpack_state(w: u64) -> (Option<SlotState>, u32) {
    (SlotState::from_code(w & 0xff), ((w >> 8) & 0xff) as u32)
}

/// Participant roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Commits frames.
    Producer,
    /// Queue-mode consumer.
    Consumer,
    /// Broadcast-mode subscriber.
    Subscriber,
}

impl Role {
    /// On-disk code (0 means a free entry).
    pub fn code(self) -> u64 {
        match self {
            Role::Producer => 1,
            Role::Consumer => 2,
            Role::Subscriber => 3,
        }
    }

    /// Decode.
    pub fn from_code(c: u64) -> Option<Role> {
        Some(match c {
            1 => Role::Producer,
            2 => Role::Consumer,
            3 => Role::Subscriber,
            _ => return None,
        })
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
            Role::Subscriber => "subscriber",
        }
    }
}

/// Layout derived from (K, P): offsets of the variable parts and total length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Slots.
    pub slots: u32,
    /// Participant table size.
    pub max_participants: u32,
    /// Offset of slot line 0.
    pub slots_off: u64,
    /// Offset of the log.
    pub log_off: u64,
    /// Offset of the participant table.
    pub participants_off: u64,
    /// Bytes used.
    pub used_len: u64,
}

impl Geometry {
    /// Geometry for `slots` and `max_participants` (validated by the caller).
    pub fn new(slots: u32, max_participants: u32) -> Geometry {
        let k = u64::from(slots);
        let log_off = SLOTS_OFF + k * LINE;
        let log_len = (k * 8).div_ceil(LINE) * LINE;
        let participants_off = log_off + log_len;
        let used_len = participants_off + u64::from(max_participants) * LINE;
        Geometry {
            slots,
            max_participants,
            slots_off: SLOTS_OFF,
            log_off,
            participants_off,
            used_len,
        }
    }

    /// Offset of slot `k`'s line.
    pub fn slot(&self, k: u32) -> u64 {
        self.slots_off + u64::from(k) * LINE
    }

    /// Offset of log cell `i`.
    pub fn cell(&self, i: u32) -> u64 {
        self.log_off + u64::from(i) * 8
    }

    /// Offset of participant entry `i`.
    pub fn entry(&self, i: u32) -> u64 {
        self.participants_off + u64::from(i) * LINE
    }
}

// The documented layout, checked at compile time.
const _: () = assert!(lock::LOCK == LINE && lock::DROPPED + 8 <= 2 * LINE);
const _: () = assert!(JOURNAL == 2 * LINE && JOURNAL + JOURNAL_CAP * 16 == commit::SEQ);
const _: () = assert!(commit::SEQ.is_multiple_of(LINE) && free::SEQ == commit::SEQ + LINE);
const _: () = assert!(SLOTS_OFF == free::SEQ + LINE);
const _: () = assert!(slot::LOANS + 8 <= LINE && part::EPOCH + 8 <= LINE);
const _: () = assert!(lock::JOURNAL_LEN.is_multiple_of(8) && lock::HEAD.is_multiple_of(8));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_line_aligned() {
        for (k, p) in [(1, 1), (3, 64), (17, 5), (65536, 64)] {
            let g = Geometry::new(k, p);
            assert_eq!(g.log_off % LINE, 0);
            assert_eq!(g.participants_off % LINE, 0);
            assert_eq!(g.used_len % LINE, 0);
            assert!(g.cell(k - 1) + 8 <= g.participants_off);
        }
        assert_eq!(
            Geometry::new(4, 64).used_len,
            768 + 4 * 128 + 128 + 64 * 128
        );
    }

    #[test]
    fn lock_words_name_index_and_epoch() {
        for (i, e) in [(0, 1u64), (63, 5), (7, (1 << 24) + 3), (1, u64::MAX)] {
            let w = lock_word(i, e);
            assert_ne!(w, 0);
            assert_eq!(split_lock_word(w), (i, (e & 0xFF_FFFF) as u32));
        }
        assert_ne!(lock_word(3, 1), lock_word(3, 2));
        assert_eq!(split_lock_word(0x100).0, u32::MAX);
    }

    #[test]
    fn state_words_round_trip() {
        for s in [
            SlotState::Free,
            SlotState::Writing,
            SlotState::Ready,
            SlotState::Reading,
        ] {
            for o in [0, 5, 63] {
                assert_eq!(unpack_state(state_word(s, o)), (Some(s), o));
            }
        }
    }
}
