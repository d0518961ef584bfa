//! The slot state machine: every transition, as one crash-atomic transaction
//! under the ring lock.
//!
//! ```text
//!             loan                commit                 recv (queue)
//!   FREE ───────────▶ WRITING(p) ────────▶ READY ─────────────────────▶ READING(c)
//!    ▲  ◀───────────      │                  │ ▲                             │
//!    │   drop loan /      │                  │ │ broadcast: subscribers set  │
//!    │   producer died    │                  │ │ and clear their bit in      │
//!    │                    │                  │ │ LEASED / PENDING            │
//!    └────────────────────┴──────────────────┴─┴─────────────────────────────┘
//!         release (queue) / last subscriber released (broadcast) / owner died
//! ```
//!
//! Positions: the `n`-th commit gets sequence number `n` (= `TAIL` before the
//! commit) and log cell `n % K` names its slot. Queue consumers take positions
//! in order from `HEAD`; every position in `[HEAD, TAIL)` is a READY slot.
//! Subscribers keep their own cursor; their next frame is the READY slot
//! with their bit in `PENDING` (and not in `LEASED`) with the smallest `SEQ`,
//! normally the one log cell `cursor % K` names.

use super::lock::{RingLock, Txn};
use super::shared::{Reclaimed, reclaim_entry};
use crate::format::ring::{self as l, Role, SlotState};
use crate::sys;

/// Metadata of a received frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    pub slot: u32,
    pub seq: u64,
    pub timestamp_ns: u64,
    pub tag: u64,
    pub valid_len: u64,
    /// Subscribers: positions skipped since the last receive. Queue
    /// consumers: the ring's `DROPPED` counter now.
    pub lost: u64,
}

/// Result of a commit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Committed {
    pub seq: u64,
    /// Broadcast with no subscriber: the slot was freed at once.
    pub freed: bool,
}

/// Loan a free slot to participant `me`, or in overwrite mode steal the
/// oldest unleased frame. `None` when every slot is busy.
pub(crate) fn loan(lock: &RingLock<'_>, me: u32) -> Option<(u32, bool)> {
    let r = lock.ring();
    let geo = r.cfg.geo;
    let mut t = Txn::new(lock);
    let writing = l::state_word(SlotState::Writing, me);
    // Scan cyclically from the next commit position: with in-order release
    // that is the least recently used slot, whose cache lines have had the
    // longest time to leave the consumers' caches. (Reusing the slot a
    // consumer has just released makes every write of the next frame steal
    // a cache line back from that consumer's core.)
    let start = (r.get(l::lock::TAIL) % u64::from(geo.slots)) as u32;
    for k in (start..geo.slots).chain(0..start) {
        let s = geo.slot(k);
        if l::unpack_state(r.get(s + l::slot::STATE)).0 == Some(SlotState::Free) {
            t.set(s + l::slot::STATE, writing);
            t.set(
                s + l::slot::LOANS,
                r.get(s + l::slot::LOANS).wrapping_add(1),
            );
            t.apply();
            return Some((k, false));
        }
    }
    if !r.cfg.overwrite() {
        return None;
    }
    // Overwrite-oldest: drop the oldest frame nobody is reading.
    let victim = if r.cfg.broadcast() {
        (0..geo.slots)
            .filter(|&k| {
                let s = geo.slot(k);
                l::unpack_state(r.get(s + l::slot::STATE)).0 == Some(SlotState::Ready)
                    && r.get(s + l::slot::LEASED) == 0
            })
            .min_by_key(|&k| r.get(geo.slot(k) + l::slot::SEQ))
    } else {
        let (head, tail) = (r.get(l::lock::HEAD), r.get(l::lock::TAIL));
        if head < tail {
            let k = slot_index(
                r.get(geo.cell((head % u64::from(geo.slots)) as u32)),
                geo.slots,
            );
            // head < tail, so head + 1 cannot overflow.
            t.set(l::lock::HEAD, head + 1);
            k
        } else {
            None
        }
    }?;
    let s = geo.slot(victim);
    t.set(s + l::slot::STATE, writing);
    t.set(s + l::slot::PENDING, 0);
    t.set(s + l::slot::LEASED, 0);
    t.set(
        s + l::slot::LOANS,
        r.get(s + l::slot::LOANS).wrapping_add(1),
    );
    t.set(l::lock::DROPPED, r.get(l::lock::DROPPED).wrapping_add(1));
    t.apply();
    Some((victim, true))
}

/// Give an uncommitted loan back. False if the slot was not ours.
pub(crate) fn drop_loan(lock: &RingLock<'_>, me: u32, k: u32) -> bool {
    let r = lock.ring();
    let s = r.cfg.geo.slot(k);
    if r.get(s + l::slot::STATE) != l::state_word(SlotState::Writing, me) {
        return false;
    }
    let mut t = Txn::new(lock);
    t.set(s + l::slot::STATE, l::state_word(SlotState::Free, 0));
    t.apply();
    true
}

/// Publish slot `k` (written by `me`) as the next position. `Err` with the
/// reason if the slot is not ours (it was reclaimed: our process was thought
/// dead) or the ring state is corrupt.
pub(crate) fn commit(lock: &RingLock<'_>, me: u32, k: u32) -> Result<Committed, &'static str> {
    let r = lock.ring();
    let geo = r.cfg.geo;
    let s = geo.slot(k);
    if r.get(s + l::slot::STATE) != l::state_word(SlotState::Writing, me) {
        return Err(
            "the loaned slot was taken away before commit; the ring state was changed outside the protocol",
        );
    }
    let seq = r.get(l::lock::TAIL);
    let next = seq
        .checked_add(1)
        .ok_or("the ring's TAIL is at its largest value; the ring state is corrupt")?;
    let mut t = Txn::new(lock);
    t.set(s + l::slot::SEQ, seq);
    t.set(geo.cell((seq % u64::from(geo.slots)) as u32), u64::from(k));
    t.set(l::lock::TAIL, next);
    // Statistics counters wrap (FORMAT.md 7.1).
    let e = geo.entry(me) + l::part::COUNT;
    t.set(e, r.get(e).wrapping_add(1));
    let mut freed = false;
    if r.cfg.broadcast() {
        let subs = r.get(l::lock::SUBSCRIBERS);
        t.set(s + l::slot::PENDING, subs);
        t.set(s + l::slot::LEASED, 0);
        if subs == 0 {
            freed = true;
            t.set(s + l::slot::STATE, l::state_word(SlotState::Free, 0));
        } else {
            t.set(s + l::slot::STATE, l::state_word(SlotState::Ready, me));
        }
    } else {
        t.set(s + l::slot::STATE, l::state_word(SlotState::Ready, me));
    }
    t.apply();
    Ok(Committed { seq, freed })
}

fn frame_of(lock: &RingLock<'_>, k: u32, seq: u64, lost: u64) -> Frame {
    let r = lock.ring();
    let s = r.cfg.geo.slot(k);
    Frame {
        slot: k,
        seq,
        timestamp_ns: r.get(s + l::slot::TIMESTAMP),
        tag: r.get(s + l::slot::TAG),
        valid_len: r.get(s + l::slot::VALID_LEN).min(r.cfg.slot_bytes),
        lost,
    }
}

/// The slot index stored in a log cell, if it names a slot.
fn slot_index(cell: u64, slots: u32) -> Option<u32> {
    u32::try_from(cell).ok().filter(|&k| k < slots)
}

/// Take the next frame for `me`, `Ok(None)` if there is none for it now,
/// `Err` with the reason if the ring state is corrupt.
pub(crate) fn recv(lock: &RingLock<'_>, me: u32) -> Result<Option<Frame>, &'static str> {
    let r = lock.ring();
    let geo = r.cfg.geo;
    let k_slots = u64::from(geo.slots);
    let tail = r.get(l::lock::TAIL);
    let e = geo.entry(me);
    let mut t = Txn::new(lock);
    if !r.cfg.broadcast() {
        let head = r.get(l::lock::HEAD);
        if head >= tail {
            return Ok(None);
        }
        let k = slot_index(r.get(geo.cell((head % k_slots) as u32)), geo.slots)
            .ok_or("a ring log cell names no slot; the ring state is corrupt")?;
        let s = geo.slot(k);
        if l::unpack_state(r.get(s + l::slot::STATE)).0 != Some(SlotState::Ready) {
            return Err("the next queued frame's slot is not READY; the ring state is corrupt");
        }
        // head < tail, so head + 1 cannot overflow.
        t.set(l::lock::HEAD, head + 1);
        t.set(s + l::slot::STATE, l::state_word(SlotState::Reading, me));
        t.set(l::lock::RECEIVED, r.get(l::lock::RECEIVED).wrapping_add(1));
        t.set(
            e + l::part::COUNT,
            r.get(e + l::part::COUNT).wrapping_add(1),
        );
        let f = frame_of(lock, k, head, r.get(l::lock::DROPPED));
        t.apply();
        return Ok(Some(f));
    }
    let bit = 1u64 << me;
    let cur = r.get(e + l::part::CURSOR);
    let mine = |k: u32| {
        let s = geo.slot(k);
        l::unpack_state(r.get(s + l::slot::STATE)).0 == Some(SlotState::Ready)
            && r.get(s + l::slot::PENDING) & bit != 0
            && r.get(s + l::slot::LEASED) & bit == 0
    };
    // Fast path: the frame at our cursor, through the log.
    let mut found = None;
    if cur < tail
        && let Some(k) = slot_index(r.get(geo.cell((cur % k_slots) as u32)), geo.slots)
        && mine(k)
        && r.get(geo.slot(k) + l::slot::SEQ) == cur
    {
        found = Some((k, cur));
    }
    // Otherwise (frames were overwritten): the oldest frame still pending
    // for us. Every committed frame carries our bit from the position we
    // registered at, and we always take the oldest, so none is left behind.
    if found.is_none() {
        found = (0..geo.slots)
            .filter(|&k| mine(k))
            .map(|k| (k, r.get(geo.slot(k) + l::slot::SEQ)))
            .min_by_key(|&(_, seq)| seq);
    }
    let Some((k, seq)) = found else {
        return Ok(None);
    };
    let lost = seq.saturating_sub(cur);
    let next = seq.checked_add(1).ok_or(
        "a ring slot's sequence number is at its largest value; the ring state is corrupt",
    )?;
    let s = geo.slot(k);
    t.set(s + l::slot::LEASED, r.get(s + l::slot::LEASED) | bit);
    t.set(e + l::part::CURSOR, next);
    // Statistics counters wrap (FORMAT.md 7.1).
    t.set(l::lock::RECEIVED, r.get(l::lock::RECEIVED).wrapping_add(1));
    t.set(
        e + l::part::COUNT,
        r.get(e + l::part::COUNT).wrapping_add(1),
    );
    t.set(
        e + l::part::LOST,
        r.get(e + l::part::LOST).wrapping_add(lost),
    );
    let f = frame_of(lock, k, seq, lost);
    t.apply();
    Ok(Some(f))
}

/// Release a lease on slot `k` at position `seq`. True if the slot became free.
pub(crate) fn release(lock: &RingLock<'_>, me: u32, k: u32, seq: u64) -> bool {
    let r = lock.ring();
    let s = r.cfg.geo.slot(k);
    let mut t = Txn::new(lock);
    if !r.cfg.broadcast() {
        if r.get(s + l::slot::STATE) != l::state_word(SlotState::Reading, me) {
            return false;
        }
        t.set(s + l::slot::STATE, l::state_word(SlotState::Free, 0));
        t.apply();
        return true;
    }
    let bit = 1u64 << me;
    if r.get(s + l::slot::SEQ) != seq || r.get(s + l::slot::LEASED) & bit == 0 {
        return false;
    }
    let pending = r.get(s + l::slot::PENDING) & !bit;
    t.set(s + l::slot::LEASED, r.get(s + l::slot::LEASED) & !bit);
    t.set(s + l::slot::PENDING, pending);
    let freed = pending == 0;
    if freed {
        t.set(s + l::slot::STATE, l::state_word(SlotState::Free, 0));
    }
    t.apply();
    freed
}

/// Give a received frame back unconsumed (FORMAT.md 7.4, "Give back"):
/// queue mode, it becomes the next frame again if nobody received a later
/// one; broadcast, this subscriber receives it again. False if it cannot go
/// back in order (the caller then releases it).
pub(crate) fn give_back(lock: &RingLock<'_>, me: u32, k: u32, seq: u64) -> bool {
    let r = lock.ring();
    let geo = r.cfg.geo;
    let s = geo.slot(k);
    let mut t = Txn::new(lock);
    let Some(next) = seq.checked_add(1) else {
        return false;
    };
    if !r.cfg.broadcast() {
        let cell = geo.cell((seq % u64::from(geo.slots)) as u32);
        if r.get(s + l::slot::STATE) != l::state_word(SlotState::Reading, me)
            || r.get(l::lock::HEAD) != next
            || r.get(cell) != u64::from(k)
        {
            return false;
        }
        t.set(l::lock::HEAD, seq);
        t.set(s + l::slot::STATE, l::state_word(SlotState::Ready, 0));
        t.apply();
        return true;
    }
    let bit = 1u64 << me;
    let e = geo.entry(me);
    if r.get(s + l::slot::SEQ) != seq
        || r.get(s + l::slot::LEASED) & bit == 0
        || r.get(e + l::part::CURSOR) != next
    {
        return false;
    }
    t.set(s + l::slot::LEASED, r.get(s + l::slot::LEASED) & !bit);
    t.set(e + l::part::CURSOR, seq);
    t.apply();
    true
}

/// Fill in entry `me` for `role` (after reclaiming what a dead earlier owner
/// of the entry left behind). A producer with `reopen` also reopens a closed
/// stream, in the same transaction.
pub(crate) fn register(
    lock: &RingLock<'_>,
    me: u32,
    role: Role,
    token: u64,
    reopen: bool,
) -> Reclaimed {
    let r = lock.ring();
    let e = r.cfg.geo.entry(me);
    let mut got = Reclaimed::default();
    if r.get(e + l::part::ROLE) != 0 {
        reclaim_entry(lock, me, &mut got);
    }
    let mut t = Txn::new(lock);
    t.set(e + l::part::ROLE, role.code());
    t.set(e + l::part::PID, u64::from(std::process::id()));
    t.set(e + l::part::TOKEN, token);
    t.set(e + l::part::CURSOR, r.get(l::lock::TAIL));
    t.set(e + l::part::LOST, 0);
    t.set(e + l::part::COUNT, 0);
    t.set(e + l::part::ATTACHED_NS, sys::monotonic_ns());
    match role {
        Role::Subscriber => {
            t.set(
                l::lock::SUBSCRIBERS,
                r.get(l::lock::SUBSCRIBERS) | (1u64 << me),
            );
        }
        Role::Producer => {
            // Saturates: it only tells "never" (0) from "at least once".
            t.set(
                l::lock::PRODUCERS_EVER,
                r.get(l::lock::PRODUCERS_EVER).saturating_add(1),
            );
            if reopen && r.get(l::lock::CLOSED) != 0 {
                t.set(l::lock::CLOSED, 0);
            }
        }
        Role::Consumer => {}
    }
    t.apply();
    got
}

/// Has a producer closed the stream? Consumers that find no frame for them
/// on a closed ring have reached its end.
pub(crate) fn closed(lock: &RingLock<'_>) -> bool {
    lock.ring().get(l::lock::CLOSED) != 0
}

/// Close the stream (FORMAT.md 7.4 "Close"). False if it was closed already.
pub(crate) fn close(lock: &RingLock<'_>) -> bool {
    if closed(lock) {
        return false;
    }
    let mut t = Txn::new(lock);
    t.set(l::lock::CLOSED, 1);
    t.apply();
    true
}
