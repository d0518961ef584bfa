//! The ring's kind section: FORMAT.md section 7 ("Rings (kind 2)"), 7.1
//! "Section layout". Offsets, slot and participant encodings, the
//! configuration line ([`Config`] encode/decode) and the validation of the
//! dynamic words ([`validate_state`]). Pure logic, no I/O.
//!
//! All offsets are relative to the start of the kind section (which is
//! `CTRL_OFF + 256` in the file). Every journaled word is a little-endian
//! `u64`; the futex words and waiter counts are `u32`. Hot words live on their
//! own 128-byte lines so producers and consumers do not false-share.
//!
//! ```text
//! 0     config line (written once at creation, read-only afterwards)
//! 128   lock line: lock word, lock waiters, journal length, subscribers,
//!       producers_ever, closed
//! 256   journal: JOURNAL_CAP entries of (offset u64, value u64)
//! 512   commit futex word + receive waiters
//! 640   free futex word + loan waiters
//! 768   tail line: tail (producers' side)
//! 896   head line: head, received, dropped (consumers' side)
//! 1024  K slot lines of 128 bytes
//! ..    log: K u64 cells (position p at cell p % K), rounded up to 128
//! ..    participant table: P entries of 128 bytes
//! ```
//!
//! Broadcast rings change every word under the ring lock (the journal).
//! Queue rings (version 3) hand frames over without it: a slot's state word
//! and a log cell each change by one compare-and-swap (FORMAT.md 7.7); the
//! lock only orders attach, detach, close and the reclaim of dead peers.

use std::ops::ControlFlow;

use super::le;
use super::sink::Sink;

/// Section format version of rings written by this crate.
pub const RING_VERSION: u32 = 3;
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

/// Lock line (offset 128), and the head and tail lines. (The names stay in
/// this module: they are the words the ring lock orders in broadcast mode.)
pub mod lock {
    /// u32 futex word: 0 free, else the holder's
    /// [`lock_word`](super::lock_word): its participant index + 1 in the low
    /// byte, the low 24 bits of its entry's attach epoch above it.
    pub const LOCK: u64 = 128;
    /// u32: processes parked on `LOCK`.
    pub const LOCK_WAITERS: u64 = 132;
    /// u64: 0, or the number of journal entries to replay.
    pub const JOURNAL_LEN: u64 = 136;
    /// u64: bitmask of registered subscribers (broadcast).
    pub const SUBSCRIBERS: u64 = 144;
    /// u64: producers ever attached (informational: 0 means "no producer yet").
    pub const PRODUCERS_EVER: u64 = 152;
    /// u64: 1 once a producer closed the stream (consumers drain, then see
    /// the end), 0 while it is open. Only a reopening attach clears it.
    pub const CLOSED: u64 = 160;
    /// u64 (tail line): next position a commit gets (= frames committed so
    /// far; in queue mode it may lag the last published cell by the commits
    /// in flight, FORMAT.md 7.7).
    pub const TAIL: u64 = 768;
    /// u64 (head line): next position a queue consumer takes.
    pub const HEAD: u64 = 896;
    /// u64 (head line): frames received (one per lease handed out).
    pub const RECEIVED: u64 = 904;
    /// u64 (head line): frames dropped (overwritten before every reader got them).
    pub const DROPPED: u64 = 912;
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
pub const SLOTS_OFF: u64 = 1024;

/// Fields of a slot line (relative to the line).
pub mod slot {
    /// u64: `state | owner << 8 | pos << 16` (see [`super::SlotState`];
    /// `pos`, the low 48 bits of the frame's position, only in queue mode).
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

/// Bits of a frame position a queue-mode slot state word carries.
pub const POS_BITS: u32 = 48;
const POS_MASK: u64 = (1 << POS_BITS) - 1;

/// Queue mode: a slot state word naming the position `pos` of the frame
/// it holds (READY, READING): `state | owner << 8 | (pos mod 2^48) << 16`.
pub fn state_word_at(s: SlotState, owner: u32, pos: u64) -> u64 {
    state_word(s, owner) | (pos & POS_MASK) << 16
}

/// The position bits of a slot state word (queue mode).
pub fn state_pos(w: u64) -> u64 {
    w >> 16
}

/// `pos mod 2^48`, as a state word carries it.
pub fn pos_bits(pos: u64) -> u64 {
    pos & POS_MASK
}

/// Bits of a lap number a queue-mode log cell carries.
pub const LAP_BITS: u32 = 47;
const LAP_MASK: u64 = (1 << LAP_BITS) - 1;
/// Queue-mode log cell flag: the cell holds a published frame.
pub const CELL_FULL: u64 = 1 << 63;

/// Queue mode: log cell `c` free for the position `lap * K + c`
/// (`(lap mod 2^47) << 16`; a fresh ring's zeroed cells are free for lap 0).
pub fn cell_empty(lap: u64) -> u64 {
    (lap & LAP_MASK) << 16
}

/// Queue mode: log cell `c` holding the frame at position `lap * K + c`,
/// published in slot `k`: `1 << 63 | (lap mod 2^47) << 16 | k`.
pub fn cell_full(lap: u64, k: u32) -> u64 {
    CELL_FULL | (lap & LAP_MASK) << 16 | u64::from(k & 0xffff)
}

/// A decoded queue-mode log cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Free for the position of this lap (`lap mod 2^47`).
    Empty {
        /// Lap bits.
        lap: u64,
    },
    /// Holds the frame of this lap, in `slot`.
    Full {
        /// Lap bits.
        lap: u64,
        /// Slot index (check it against K).
        slot: u32,
    },
    /// Bits no writer sets (an empty cell with a slot index).
    Bad,
}

/// Decode a queue-mode log cell.
pub fn decode_cell(v: u64) -> Cell {
    let lap = (v >> 16) & LAP_MASK;
    let slot = (v & 0xffff) as u32;
    if v & CELL_FULL != 0 {
        Cell::Full { lap, slot }
    } else if slot == 0 {
        Cell::Empty { lap }
    } else {
        Cell::Bad
    }
}

/// The position nearest `base` whose low 47 bits are those of `low`: a
/// position a cell (lap bits) or a state word (position bits) names, given
/// a counter it is known to lie close to.
pub fn position_near(base: u64, low: u64) -> u64 {
    let m = 1u64 << LAP_BITS;
    let cand = (base & !(m - 1)) | (low & (m - 1));
    [cand.wrapping_sub(m), cand, cand.wrapping_add(m)]
        .into_iter()
        .min_by_key(|&c| c.wrapping_sub(base).min(base.wrapping_sub(c)))
        .unwrap_or(cand)
}

/// `lap mod 2^47`, as a cell carries it.
pub fn lap_bits(lap: u64) -> u64 {
    lap & LAP_MASK
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
const _: () = assert!(lock::LOCK == LINE && lock::CLOSED + 8 <= 2 * LINE);
const _: () = assert!(JOURNAL == 2 * LINE && JOURNAL + JOURNAL_CAP * 16 == commit::SEQ);
const _: () = assert!(commit::SEQ.is_multiple_of(LINE) && free::SEQ == commit::SEQ + LINE);
const _: () = assert!(lock::TAIL == free::SEQ + LINE && lock::HEAD == lock::TAIL + LINE);
const _: () = assert!(lock::DROPPED + 8 <= lock::HEAD + LINE && SLOTS_OFF == lock::HEAD + LINE);
const _: () = assert!(slot::LOANS + 8 <= LINE && part::EPOCH + 8 <= LINE);
const _: () = assert!(lock::JOURNAL_LEN.is_multiple_of(8) && lock::SUBSCRIBERS == FIRST_STATE_WORD);

/// The first word a journal entry may write (everything before it is the
/// lock word, its waiters and the journal length).
pub const FIRST_STATE_WORD: u64 = 144;

/// Can a journal entry write the word at `off`? Only the state words after
/// the journal length (`SUBSCRIBERS` onwards, outside the journal and the
/// futex lines) inside the `used_len` bytes of the layout, 8-aligned. Replaying an
/// entry outside this set would let a garbage journal write anywhere.
pub fn journal_target_ok(off: u64, used_len: u64) -> bool {
    off.is_multiple_of(8)
        && off >= FIRST_STATE_WORD
        && off.checked_add(8).is_some_and(|end| end <= used_len)
        && !(JOURNAL..lock::TAIL).contains(&off)
}

/// The validated, private copy of a ring's configuration line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// [`FLAG_BROADCAST`] | [`FLAG_OVERWRITE`].
    pub flags: u32,
    /// Bytes per slot.
    pub slot_bytes: u64,
    /// Offsets derived from the slot and participant counts.
    pub geo: Geometry,
}

impl Config {
    /// Broadcast mode?
    pub fn broadcast(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }

    /// Overwrite-oldest mode?
    pub fn overwrite(&self) -> bool {
        self.flags & FLAG_OVERWRITE != 0
    }

    /// Number of slots K.
    pub fn slots(&self) -> u32 {
        self.geo.slots
    }

    /// Encode into the config line of a fresh section.
    ///
    /// # Panics
    ///
    /// If `sec` is shorter than the config line.
    pub fn encode(&self, sec: &mut [u8]) {
        le::put_u32(sec, cfg::VERSION, RING_VERSION);
        le::put_u32(sec, cfg::FLAGS, self.flags);
        le::put_u32(sec, cfg::SLOTS, self.geo.slots);
        le::put_u32(sec, cfg::MAX_PARTICIPANTS, self.geo.max_participants);
        le::put_u64(sec, cfg::SLOT_BYTES, self.slot_bytes);
        le::put_u64(sec, cfg::SLOTS_OFF, self.geo.slots_off);
        le::put_u64(sec, cfg::LOG_OFF, self.geo.log_off);
        le::put_u64(sec, cfg::PARTICIPANTS_OFF, self.geo.participants_off);
        le::put_u64(sec, cfg::USED_LEN, self.geo.used_len);
    }

    /// Parse and validate a private copy of the section against the array
    /// header (`shape[0]` must be K, `nbytes` must be `K * slot_bytes`).
    /// Never panics.
    pub fn decode(
        sec: &[u8],
        shape: &[usize],
        fortran: bool,
        nbytes: u64,
    ) -> std::result::Result<Config, String> {
        if sec.len() < LINE as usize {
            return Err("the ring section is shorter than its config line".into());
        }
        let u32_at = |o: u64| le::u32_or0(sec, o);
        let u64_at = |o: u64| le::u64_or0(sec, o);
        let version = u32_at(cfg::VERSION);
        if version != RING_VERSION {
            return Err(format!(
                "ring section version {version} is not supported (this build reads {RING_VERSION}): {}",
                if version < RING_VERSION {
                    "the ring was made by an older sharray; let its peers finish, then recreate it (`sharray ring create`, or Ring::create)"
                } else {
                    "the ring was made by a newer sharray; use that release"
                }
            ));
        }
        let flags = u32_at(cfg::FLAGS);
        if flags & !(FLAG_BROADCAST | FLAG_OVERWRITE) != 0 {
            return Err(format!("ring flags {flags:#x} are not understood"));
        }
        let slots = u32_at(cfg::SLOTS);
        let parts = u32_at(cfg::MAX_PARTICIPANTS);
        if slots == 0 || slots > MAX_SLOTS {
            return Err(format!("ring slot count {slots} is out of range"));
        }
        if parts == 0 || parts > MAX_PARTICIPANTS {
            return Err(format!(
                "ring participant table size {parts} is out of range"
            ));
        }
        let geo = Geometry::new(slots, parts);
        if u64_at(cfg::SLOTS_OFF) != geo.slots_off
            || u64_at(cfg::LOG_OFF) != geo.log_off
            || u64_at(cfg::PARTICIPANTS_OFF) != geo.participants_off
            || u64_at(cfg::USED_LEN) != geo.used_len
        {
            return Err("ring section offsets do not match its slot and participant counts".into());
        }
        if geo.used_len > sec.len() as u64 {
            return Err("ring section is shorter than its layout needs".into());
        }
        let slot_bytes = u64_at(cfg::SLOT_BYTES);
        if fortran {
            return Err("a ring's array must be in C order".into());
        }
        if shape.first().copied() != Some(slots as usize) {
            return Err(format!(
                "the array's first dimension is {:?}, the ring has {slots} slots",
                shape.first()
            ));
        }
        if slot_bytes.checked_mul(u64::from(slots)) != Some(nbytes) {
            return Err(format!(
                "{slots} slots of {slot_bytes} bytes do not match the {nbytes} bytes of data"
            ));
        }
        Ok(Config {
            flags,
            slot_bytes,
            geo,
        })
    }
}

/// Validate the dynamic words of a ring section (a private snapshot `sec`
/// whose config line decoded to `cfg`; `base` is the section's file offset,
/// for the offsets reported). Every rule is something the runtime relies on
/// (FORMAT.md 7.1 and 7.4); a state that is legal between two transactions,
/// or after a holder died mid-transaction (an unfinished journal is replayed
/// first, as the next lock holder would), is not reported.
///
/// The rules: the lock word is 0 or names a participant index (its low
/// byte is an index + 1; the epoch above it is anything: a dead holder's
/// word is legal, the next waiter takes it over); the journal
/// length is at most [`JOURNAL_CAP`] and its live entries name state words;
/// every slot state word has a known state and (loaned or leased) an owner
/// whose entry holds the matching role; `HEAD <= TAIL`, `COMMITTED == TAIL`;
/// log cells name slots; queue mode: `TAIL - HEAD <= K`, the positions in
/// `[HEAD, TAIL)` name distinct READY slots and no other slot is READY;
/// broadcast: a READY slot has pending subscribers, `LEASED` within
/// `PENDING` within `SUBSCRIBERS`, a sequence number below `TAIL`, a free
/// or loaned slot has neither; `SUBSCRIBERS` is exactly the set of entries
/// with the subscriber role; roles are known, subscribers only in broadcast
/// mode, a subscriber's cursor is at most `TAIL`, `PRODUCERS_EVER` is not
/// 0 while a producer is registered, and `CLOSED` is 0 or 1.
pub fn validate_state(sec: &[u8], cfg: &Config, base: u64, sink: &mut dyn Sink) -> ControlFlow<()> {
    let geo = cfg.geo;
    let at = |o: u64| Some(base.saturating_add(o));
    let mut sec = sec.to_vec();
    let lock_word = le::u32_or0(&sec, lock::LOCK);
    if lock_word != 0 && split_lock_word(lock_word).0 >= geo.max_participants {
        sink.problem(
            at(lock::LOCK),
            format!(
                "the ring lock word is {lock_word:#x}, whose low byte is not a participant index + 1 (1 to {})",
                geo.max_participants
            ),
        )?;
    }
    let jlen = le::u64_or0(&sec, lock::JOURNAL_LEN);
    if jlen > JOURNAL_CAP {
        sink.problem(
            at(lock::JOURNAL_LEN),
            format!("the journal length is {jlen}, more than its {JOURNAL_CAP} entries"),
        )?;
    } else {
        let mut replay = Vec::new();
        for e in 0..jlen {
            let off = le::u64_or0(&sec, JOURNAL + e * 16);
            if journal_target_ok(off, geo.used_len) {
                replay.push((off, le::u64_or0(&sec, JOURNAL + e * 16 + 8)));
            } else {
                sink.problem(
                    at(JOURNAL + e * 16),
                    format!(
                        "journal entry {e} writes offset {off}, which is not an 8-aligned state word of the section"
                    ),
                )?;
            }
        }
        // An unfinished transaction: validate the state it leads to, as
        // the next lock holder replays it.
        for (off, val) in replay {
            le::put_u64(&mut sec, off, val);
        }
    }
    let sec = &sec[..];
    let get = |o: u64| le::u64_or0(sec, o);
    let k = u64::from(geo.slots);
    let (head, tail) = (get(lock::HEAD), get(lock::TAIL));
    let subscribers = get(lock::SUBSCRIBERS);
    let roles: Vec<Option<Role>> = (0..geo.max_participants)
        .map(|i| Role::from_code(get(geo.entry(i) + part::ROLE)))
        .collect();
    let role_of = |o: u32| roles.get(o as usize).copied().flatten();

    // Participant table.
    let mut producers = 0u32;
    for i in 0..geo.max_participants {
        let e = geo.entry(i);
        let code = get(e + part::ROLE);
        let role = Role::from_code(code);
        if code != 0 && role.is_none() {
            sink.problem(
                at(e + part::ROLE),
                format!("participant {i} has unknown role {code} (0 free, 1 producer, 2 consumer, 3 subscriber)"),
            )?;
        }
        match role {
            Some(Role::Producer) => producers += 1,
            Some(Role::Subscriber) if !cfg.broadcast() => {
                sink.problem(
                    at(e + part::ROLE),
                    format!(
                        "participant {i} is a subscriber, but the ring is not in broadcast mode"
                    ),
                )?;
            }
            Some(Role::Subscriber) if get(e + part::CURSOR) > tail => {
                sink.problem(
                    at(e + part::CURSOR),
                    format!(
                        "subscriber {i}'s cursor {} is past TAIL {tail}",
                        get(e + part::CURSOR)
                    ),
                )?;
            }
            _ => {}
        }
        let bit = subscribers & (1u64 << i) != 0;
        if cfg.broadcast() && bit != (role == Some(Role::Subscriber)) {
            sink.problem(
                at(lock::SUBSCRIBERS),
                format!(
                    "SUBSCRIBERS bit {i} is {}, but participant {i}'s role is {}",
                    if bit { "set" } else { "clear" },
                    role.map_or("free", Role::name)
                ),
            )?;
        }
    }
    if geo.max_participants < 64 && subscribers >> geo.max_participants != 0 {
        sink.problem(
            at(lock::SUBSCRIBERS),
            format!(
                "SUBSCRIBERS {subscribers:#x} names participants beyond the table of {}",
                geo.max_participants
            ),
        )?;
    }
    if !cfg.broadcast() && subscribers != 0 {
        sink.problem(
            at(lock::SUBSCRIBERS),
            format!("SUBSCRIBERS is {subscribers:#x}, but the ring is not in broadcast mode"),
        )?;
    }
    if producers > 0 && get(lock::PRODUCERS_EVER) == 0 {
        sink.problem(
            at(lock::PRODUCERS_EVER),
            "PRODUCERS_EVER is 0 while a producer is registered".into(),
        )?;
    }

    let closed = get(lock::CLOSED);
    if closed > 1 {
        sink.problem(
            at(lock::CLOSED),
            format!("CLOSED is {closed}; it must be 0 (stream open) or 1 (closed)"),
        )?;
    }

    // Positions and counters.
    let parts = u64::from(geo.max_participants);
    if cfg.broadcast() {
        if head > tail {
            sink.problem(at(lock::HEAD), format!("HEAD {head} is past TAIL {tail}"))?;
        }
    } else if head > tail.saturating_add(parts) || tail > head.saturating_add(k + parts) {
        // Lock-free hand-off: TAIL and HEAD may each lag by the commits and
        // receives in flight (at most one per participant).
        sink.problem(
            at(lock::TAIL),
            format!(
                "HEAD {head} and TAIL {tail} are further apart than {k} slots and {parts} participants allow"
            ),
        )?;
    }

    // Log cells. Broadcast: plain slot indexes. Queue: (lap, slot) cells;
    // `full[s]` = the position whose published frame a cell says is in slot s.
    let mut full: Vec<Option<u64>> = vec![None; geo.slots as usize];
    for c in 0..geo.slots {
        let v = get(geo.cell(c));
        if cfg.broadcast() {
            if v >= k {
                sink.problem(
                    at(geo.cell(c)),
                    format!("log cell {c} names slot {v}, but the ring has {k} slots"),
                )?;
            }
            continue;
        }
        match decode_cell(v) {
            Cell::Empty { .. } => {}
            Cell::Bad => {
                sink.problem(
                    at(geo.cell(c)),
                    format!("log cell {c} is {v:#x}: an empty cell with a slot index"),
                )?;
            }
            Cell::Full { lap, slot } => {
                let pos = position_near(head, lap.wrapping_mul(k).wrapping_add(u64::from(c)));
                if pos.saturating_add(parts) < head || pos >= head.saturating_add(k + parts) {
                    sink.problem(
                        at(geo.cell(c)),
                        format!("log cell {c} holds a frame at position {pos}, too far from HEAD {head} for a ring of {k} slots"),
                    )?;
                } else if u64::from(slot) >= k {
                    sink.problem(
                        at(geo.cell(c)),
                        format!("log cell {c} names slot {slot}, but the ring has {k} slots"),
                    )?;
                } else if full[slot as usize].replace(pos).is_some() {
                    sink.problem(
                        at(geo.cell(c)),
                        format!("log cell {c} names slot {slot}, which another log cell names too"),
                    )?;
                }
            }
        }
    }

    // Slots.
    for s in 0..geo.slots {
        let line = geo.slot(s);
        let word = get(line + slot::STATE);
        let (state, owner) = unpack_state(word);
        let Some(state) = state else {
            sink.problem(
                at(line + slot::STATE),
                format!(
                    "slot {s} has unknown state {} (0 free, 1 writing, 2 ready, 3 reading)",
                    word & 0xff
                ),
            )?;
            continue;
        };
        // Position bits: queue mode READY/READING only.
        let pos_ok = !cfg.broadcast() && matches!(state, SlotState::Ready | SlotState::Reading);
        if word >> 16 != 0 && !pos_ok {
            sink.problem(
                at(line + slot::STATE),
                format!(
                    "slot {s}'s state word {word:#x} has bits set above the state and owner bytes"
                ),
            )?;
        }
        let (pending, leased) = (get(line + slot::PENDING), get(line + slot::LEASED));
        let want_role: &[Role] = match state {
            SlotState::Writing => &[Role::Producer],
            // A producer in overwrite mode takes the oldest frame as a
            // consumer would before it loans the slot (queue mode).
            SlotState::Reading => &[Role::Consumer, Role::Producer],
            _ => &[],
        };
        if let Some(&want) = want_role.first() {
            if owner >= geo.max_participants {
                sink.problem(
                    at(line + slot::STATE),
                    format!(
                        "slot {s} is held by participant {owner}, beyond the table of {}",
                        geo.max_participants
                    ),
                )?;
            } else if !role_of(owner).is_some_and(|r| want_role.contains(&r)) {
                sink.problem(
                    at(line + slot::STATE),
                    format!(
                        "slot {s} is held by participant {owner} as a {}, but that entry's role is {}",
                        want.name(),
                        role_of(owner).map_or("free", Role::name)
                    ),
                )?;
            }
        } else if state == SlotState::Free && owner != 0 {
            sink.problem(
                at(line + slot::STATE),
                format!("free slot {s} names owner {owner}; a free slot has none"),
            )?;
        }
        if state == SlotState::Reading && cfg.broadcast() {
            sink.problem(
                at(line + slot::STATE),
                format!(
                    "slot {s} is READING, a queue-mode state, but the ring is in broadcast mode"
                ),
            )?;
        }
        if cfg.broadcast() {
            match state {
                SlotState::Ready => {
                    if pending == 0 {
                        sink.problem(
                            at(line + slot::PENDING),
                            format!("READY slot {s} has no pending subscriber, so nobody would ever free it"),
                        )?;
                    }
                    if leased & !pending != 0 || pending & !subscribers != 0 {
                        sink.problem(
                            at(line + slot::LEASED),
                            format!(
                                "slot {s}: LEASED {leased:#x} must lie within PENDING {pending:#x}, and PENDING within SUBSCRIBERS {subscribers:#x}"
                            ),
                        )?;
                    }
                    let seq = get(line + slot::SEQ);
                    if seq >= tail {
                        sink.problem(
                            at(line + slot::SEQ),
                            format!(
                                "READY slot {s} has sequence number {seq}, not below TAIL {tail}"
                            ),
                        )?;
                    }
                }
                _ if pending != 0 || leased != 0 => {
                    sink.problem(
                        at(line + slot::PENDING),
                        format!("slot {s} is not READY but has PENDING {pending:#x} / LEASED {leased:#x}"),
                    )?;
                }
                _ => {}
            }
            continue;
        }
        // Queue mode: a log cell's frame is in a slot that holds it, and a
        // READY slot is in the log, unless a consumer giving a frame back
        // holds it (live, or dead and reclaimed at the next attach).
        let named = full[s as usize];
        let low = |p: u64| p & ((1 << LAP_BITS) - 1);
        let giver = role_of(owner) == Some(Role::Consumer);
        match (state, named) {
            (SlotState::Free, Some(_)) => {
                sink.problem(
                    at(line + slot::STATE),
                    format!("slot {s} is FREE, but a log cell says it holds a published frame"),
                )?;
            }
            (SlotState::Ready | SlotState::Reading, Some(p)) if low(p) != low(state_pos(word)) => {
                sink.problem(
                    at(line + slot::STATE),
                    format!(
                        "slot {s} holds the frame at position {:#x} (low bits), but the log cell that names it is for position {p:#x}",
                        state_pos(word)
                    ),
                )?;
            }
            (SlotState::Ready, Some(p)) if p < head && !giver => {
                sink.problem(
                    at(line + slot::STATE),
                    format!("slot {s} is READY at position {p}, behind HEAD {head}, so no consumer would ever take it"),
                )?;
            }
            (SlotState::Ready, None) if !giver => {
                sink.problem(
                    at(line + slot::STATE),
                    format!("slot {s} is READY, but no log cell names it, so nobody would ever receive or free it"),
                )?;
            }
            _ => {}
        }
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::sink::{AllProblems, FirstProblem};
    use proptest::prelude::*;

    /// A fresh section for (K, P, flags), as `Ring::create` writes it.
    fn fresh(slots: u32, parts: u32, flags: u32, slot_bytes: u64) -> (Config, Vec<u8>) {
        let cfg = Config {
            flags,
            slot_bytes,
            geo: Geometry::new(slots, parts),
        };
        let mut sec = vec![0u8; cfg.geo.used_len as usize];
        cfg.encode(&mut sec);
        (cfg, sec)
    }

    proptest! {
        #[test]
        fn config_round_trip(slots in 1u32..300, parts in 1u32..=64, flags in 0u32..4, slot_bytes in 0u64..1 << 20) {
            let (cfg, sec) = fresh(slots, parts, flags, slot_bytes);
            let nbytes = slot_bytes * u64::from(slots);
            prop_assert_eq!(Config::decode(&sec, &[slots as usize, 3], false, nbytes), Ok(cfg));
            prop_assert!(Config::decode(&sec, &[slots as usize], true, nbytes).is_err());
            let mut all = AllProblems::default();
            let _ = validate_state(&sec, &cfg, 0, &mut all);
            prop_assert!(all.0.is_empty(), "{:?}", all.0);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000), k in any::<usize>(), n in any::<u64>()) {
            let _ = Config::decode(&bytes, &[k], false, n);
        }

        #[test]
        fn validate_never_panics_and_sinks_agree(
            slots in 1u32..6, parts in 1u32..=64, flags in 0u32..4,
            muts in proptest::collection::vec((any::<u16>(), any::<u64>()), 0..12),
        ) {
            let (cfg, mut sec) = fresh(slots, parts, flags, 8);
            for (off, v) in muts {
                let off = u64::from(off) % cfg.geo.used_len / 8 * 8;
                if off >= LINE {
                    le::put_u64(&mut sec, off, v % 70);
                }
            }
            let mut all = AllProblems::default();
            let _ = validate_state(&sec, &cfg, 0, &mut all);
            let mut first = FirstProblem::default();
            let _ = validate_state(&sec, &cfg, 0, &mut first);
            prop_assert_eq!(first.0.as_ref(), all.0.first());
        }
    }

    #[test]
    fn closed_is_zero_or_one() {
        let (cfg, mut sec) = fresh(2, 2, 0, 8);
        for (v, ok) in [(0u64, true), (1, true), (2, false), (u64::MAX, false)] {
            le::put_u64(&mut sec, lock::CLOSED, v);
            let mut all = AllProblems::default();
            let _ = validate_state(&sec, &cfg, 1000, &mut all);
            assert_eq!(all.0.is_empty(), ok, "CLOSED = {v}: {:?}", all.0);
            if !ok {
                assert_eq!(all.0[0].offset, Some(1000 + lock::CLOSED));
            }
        }
    }

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
            1024 + 4 * 128 + 128 + 64 * 128
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
