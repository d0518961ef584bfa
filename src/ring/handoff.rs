//! Queue-mode hand-off without the ring lock (FORMAT.md 7.7).
//!
//! Two kinds of shared words carry a frame from a producer to a consumer,
//! each changed by one compare-and-swap, so a process killed at any
//! instruction leaves every word meaning something:
//!
//! - a slot's state word names its holder, and for a published frame its
//!   position: FREE (0) -> `WRITING | p` (loan, any free slot) ->
//!   `READY | p | pos` -> `READING | c | pos` -> FREE (release);
//! - the log (a bounded queue in commit order, after Vyukov): cell `pos % K`
//!   is `EMPTY(lap)` until a producer publishes its slot there with one CAS
//!   to `FULL(lap, k)`; the consumer that takes the frame turns it into
//!   `EMPTY(lap + 1)` for the position `K` later.
//!
//! `TAIL` and `HEAD` only say where to look: whoever finds them behind the
//! log moves them on, so a process that dies between publishing (or taking)
//! a frame and moving the counter stalls nobody. What a dead process holds
//! (a loaned or leased slot, a frame published but not marked READY) is
//! reclaimed under the ring lock by [`reclaim_slot`], as before.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use super::shared::RingInner;
use super::slot::Frame;
use crate::fail;
use crate::format::ring::{self as l, Cell, SlotState};

/// The state word of a free slot.
const FREE: u64 = 0;

/// Consecutive observations of one unchanged, inconsistent state after
/// which a loop calls the ring corrupt instead of waiting for a peer (a
/// peer between two steps changes the words within a few instructions).
const STUCK: u32 = 100_000;

/// The ring state is not one the protocol can reach.
pub(crate) type Corrupt = &'static str;

fn state(r: &RingInner, k: u32) -> &AtomicU64 {
    r.u64(r.cfg.geo.slot(k) + l::slot::STATE)
}

/// The log cell of position `pos`, and the lap of `pos`.
fn cell(r: &RingInner, pos: u64) -> (&AtomicU64, u64) {
    let n = u64::from(r.cfg.geo.slots);
    (r.u64(r.cfg.geo.cell((pos % n) as u32)), pos / n)
}

fn is_lap(cell_lap: u64, lap: u64) -> bool {
    cell_lap == l::lap_bits(lap)
}

/// Has a `READY` or `READING` word the position `pos`?
fn at_pos(w: u64, pos: u64) -> bool {
    l::state_pos(w) == l::pos_bits(pos)
}

/// Loan a free slot, scanning from `start`. `None` if none is free.
pub(crate) fn loan(r: &RingInner, me: u32, start: u32) -> Option<u32> {
    let n = r.cfg.geo.slots;
    let writing = l::state_word(SlotState::Writing, me);
    for i in 0..n {
        let k = (start % n + i) % n;
        let s = state(r, k);
        // Acquire: the consumer's reads of the slot happened before its
        // release stored FREE; our writes come after.
        if s.load(Ordering::Relaxed) == FREE
            && s.compare_exchange(FREE, writing, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            fail::point("ring.handoff.claimed");
            let loans = r.u64(r.cfg.geo.slot(k) + l::slot::LOANS);
            loans.store(
                loans.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
            return Some(k);
        }
    }
    None
}

/// Overwrite mode: take the oldest frame (as a consumer would), and keep
/// its slot as a loan of `me`. `None` if there is no frame to take now.
pub(crate) fn steal_oldest(r: &RingInner, me: u32) -> Result<Option<u32>, Corrupt> {
    let Some((k, pos)) = take(r, me)? else {
        return Ok(None);
    };
    let writing = l::state_word(SlotState::Writing, me);
    let taken = l::state_word_at(SlotState::Reading, me, pos);
    if state(r, k)
        .compare_exchange(taken, writing, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return Err("a slot taken for overwrite changed hands; the ring state is corrupt");
    }
    r.u64(l::lock::DROPPED).fetch_add(1, Ordering::Relaxed);
    Ok(Some(k))
}

/// Give an uncommitted loan back. False if the slot was not ours.
pub(crate) fn drop_loan(r: &RingInner, me: u32, k: u32) -> bool {
    state(r, k)
        .compare_exchange(
            l::state_word(SlotState::Writing, me),
            FREE,
            Ordering::Release,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// Why a commit did not publish.
pub(crate) enum CommitError {
    /// The slot is no longer ours, or the ring is corrupt.
    Corrupt(Corrupt),
    /// The log cell for the next position still holds the frame one lap
    /// earlier, which is READY: a consumer is giving it back, or died doing
    /// so. The caller reclaims dead peers and tries again.
    Blocked,
}

/// Publish slot `k` (loaned by `me`, its data and metadata written) as the
/// next position. Returns the position.
pub(crate) fn commit(r: &RingInner, me: u32, k: u32) -> Result<u64, CommitError> {
    let s = state(r, k);
    if s.load(Ordering::Relaxed) != l::state_word(SlotState::Writing, me) {
        return Err(CommitError::Corrupt(
            "the loaned slot was taken away before commit; the ring state was changed outside the protocol",
        ));
    }
    let tail = r.u64(l::lock::TAIL);
    let mut last = (u64::MAX, u64::MAX);
    let mut stuck = 0u32;
    let pos = loop {
        let pos = tail.load(Ordering::Acquire);
        let (c, lap) = cell(r, pos);
        let v = c.load(Ordering::Acquire);
        if (pos, v) == last {
            stuck += 1;
            if stuck >= STUCK {
                return Err(CommitError::Blocked);
            }
            if stuck.is_multiple_of(64) {
                std::thread::yield_now();
            }
        } else {
            (last, stuck) = ((pos, v), 0);
        }
        let next = pos.checked_add(1).ok_or(CommitError::Corrupt(
            "the ring's TAIL is at its largest value; the ring state is corrupt",
        ))?;
        match l::decode_cell(v) {
            // Our position: the cell fixes the frame's place in the order.
            Cell::Empty { lap: cl }
                if is_lap(cl, lap)
                    && c.compare_exchange(
                        v,
                        l::cell_full(lap, k),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok() =>
            {
                break pos;
            }
            Cell::Full { lap: cl, .. } if is_lap(cl, lap) => {
                // Published by a peer that has not moved TAIL yet: help.
                let _ = tail.compare_exchange(pos, next, Ordering::AcqRel, Ordering::Relaxed);
            }
            Cell::Empty { lap: cl } if is_lap(cl, lap.wrapping_add(1)) => {
                // Published, taken and cleaned before its producer (dead,
                // or slow) moved TAIL: help.
                let _ = tail.compare_exchange(pos, next, Ordering::AcqRel, Ordering::Relaxed);
            }
            Cell::Full { lap: cl, slot } if is_lap(cl, lap.wrapping_sub(1)) => {
                // The frame a lap earlier is still in the log: its consumer
                // took it and has not cleaned the cell yet (help), or it is
                // being given back (wait).
                let old = pos.wrapping_sub(u64::from(r.cfg.geo.slots));
                if slot < r.cfg.geo.slots {
                    let w = state(r, slot).load(Ordering::Acquire);
                    if l::unpack_state(w).0 == Some(SlotState::Reading) && at_pos(w, old) {
                        clean(r, c, v, lap.wrapping_sub(1), old);
                    }
                }
            }
            // TAIL moved on since we read it (or the cell is garbage: the
            // stuck counter above ends that).
            _ => {}
        }
    };
    fail::point("ring.handoff.published");
    let line = r.cfg.geo.slot(k);
    r.u64(line + l::slot::SEQ).store(pos, Ordering::Relaxed);
    s.store(
        l::state_word_at(SlotState::Ready, me, pos),
        Ordering::Release,
    );
    fail::point("ring.handoff.ready");
    let _ = tail.compare_exchange(pos, pos + 1, Ordering::AcqRel, Ordering::Relaxed);
    let e = r.cfg.geo.entry(me) + l::part::COUNT;
    r.u64(e).store(r.get(e).wrapping_add(1), Ordering::Relaxed);
    Ok(pos)
}

/// The frame at `pos` was taken (its slot is READING): free its cell for
/// the position a lap later and move `HEAD` past it, unless a peer did.
fn clean(r: &RingInner, c: &AtomicU64, full: u64, lap: u64, pos: u64) {
    let _ = c.compare_exchange(
        full,
        l::cell_empty(lap.wrapping_add(1)),
        Ordering::Release,
        Ordering::Relaxed,
    );
    fail::point("ring.handoff.cleaned");
    let _ = r.u64(l::lock::HEAD).compare_exchange(
        pos,
        pos.wrapping_add(1),
        Ordering::Release,
        Ordering::Relaxed,
    );
}

/// Take the frame at the head of the log for `me`: its slot becomes
/// `READING | me | pos`. `None` if there is none now (or its commit is
/// still in flight: the committer wakes waiters when it is READY).
fn take(r: &RingInner, me: u32) -> Result<Option<(u32, u64)>, Corrupt> {
    let head = r.u64(l::lock::HEAD);
    let mut last = (u64::MAX, u64::MAX);
    let mut stuck = 0u32;
    loop {
        let pos = head.load(Ordering::Acquire);
        let (c, lap) = cell(r, pos);
        let v = c.load(Ordering::Acquire);
        if (pos, v) == last {
            stuck += 1;
            if stuck >= STUCK {
                return Err(
                    "the ring's HEAD and log disagree and nobody moves them; the ring state is corrupt",
                );
            }
        } else {
            (last, stuck) = ((pos, v), 0);
        }
        pos.checked_add(1)
            .ok_or("the ring's HEAD is at its largest value; the ring state is corrupt")?;
        match l::decode_cell(v) {
            Cell::Full { lap: cl, slot } if is_lap(cl, lap) => {
                if slot >= r.cfg.geo.slots {
                    return Err("a ring log cell names no slot; the ring state is corrupt");
                }
                let s = state(r, slot);
                let w = s.load(Ordering::Acquire);
                match l::unpack_state(w).0 {
                    Some(SlotState::Ready) if at_pos(w, pos) => {
                        let mine = l::state_word_at(SlotState::Reading, me, pos);
                        if s.compare_exchange(w, mine, Ordering::Acquire, Ordering::Relaxed)
                            .is_ok()
                        {
                            fail::point("ring.handoff.taken");
                            clean(r, c, v, lap, pos);
                            return Ok(Some((slot, pos)));
                        }
                    }
                    // Taken by a peer that has not cleaned the cell: help.
                    Some(SlotState::Reading) if at_pos(w, pos) => clean(r, c, v, lap, pos),
                    // Published, not READY yet (or our read of the cell is
                    // stale: look again).
                    Some(SlotState::Writing) if c.load(Ordering::Acquire) == v => {
                        return Ok(None);
                    }
                    _ => {}
                }
            }
            Cell::Empty { lap: cl } if is_lap(cl, lap.wrapping_add(1)) => {
                // Taken and cleaned; HEAD not moved yet.
                let _ = head.compare_exchange(pos, pos + 1, Ordering::AcqRel, Ordering::Relaxed);
            }
            // Nothing published here yet, unless HEAD moved meanwhile.
            Cell::Empty { lap: cl } if is_lap(cl, lap) && head.load(Ordering::Acquire) == pos => {
                return Ok(None);
            }
            _ => {}
        }
    }
}

/// Receive the next frame for consumer `me`.
pub(crate) fn recv(r: &RingInner, me: u32) -> Result<Option<Frame>, Corrupt> {
    let Some((k, pos)) = take(r, me)? else {
        return Ok(None);
    };
    let line = r.cfg.geo.slot(k);
    r.u64(l::lock::RECEIVED).fetch_add(1, Ordering::Relaxed);
    let e = r.cfg.geo.entry(me) + l::part::COUNT;
    r.u64(e).store(r.get(e).wrapping_add(1), Ordering::Relaxed);
    Ok(Some(Frame {
        slot: k,
        seq: pos,
        timestamp_ns: r.get(line + l::slot::TIMESTAMP),
        tag: r.get(line + l::slot::TAG),
        valid_len: r.get(line + l::slot::VALID_LEN).min(r.cfg.slot_bytes),
        lost: r.get(l::lock::DROPPED),
    }))
}

/// Release consumer `me`'s lease on slot `k` (frame `pos`). False if the
/// slot was not ours.
pub(crate) fn release(r: &RingInner, me: u32, k: u32, pos: u64) -> bool {
    // Release: our reads of the frame happen before the next loan's writes.
    state(r, k)
        .compare_exchange(
            l::state_word_at(SlotState::Reading, me, pos),
            FREE,
            Ordering::Release,
            Ordering::Relaxed,
        )
        .is_ok()
}

/// Give the frame `pos` in slot `k` back to the head of the log (FORMAT.md
/// 7.7 "Give back"). False if it cannot go back in order (a later frame
/// was taken, or its cell was reused); the lease is still ours then.
pub(crate) fn give_back(r: &RingInner, me: u32, k: u32, pos: u64) -> bool {
    let head = r.u64(l::lock::HEAD);
    let Some(next) = pos.checked_add(1) else {
        return false;
    };
    if head.load(Ordering::Acquire) != next {
        return false;
    }
    let s = state(r, k);
    let reading = l::state_word_at(SlotState::Reading, me, pos);
    let ready = l::state_word_at(SlotState::Ready, me, pos);
    if s.compare_exchange(reading, ready, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    fail::point("ring.handoff.given_ready");
    let (c, lap) = cell(r, pos);
    let full = l::cell_full(lap, k);
    if c.compare_exchange(
        l::cell_empty(lap.wrapping_add(1)),
        full,
        Ordering::AcqRel,
        Ordering::Relaxed,
    )
    .is_err()
    {
        // A producer has reused the cell: keep the lease.
        let _ = s.compare_exchange(ready, reading, Ordering::AcqRel, Ordering::Relaxed);
        return false;
    }
    fail::point("ring.handoff.given_cell");
    if head
        .compare_exchange(next, pos, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        return true;
    }
    // A later frame was taken meanwhile: undo (a producer waiting for the
    // cell may help clean it once the slot is READING again).
    if s.compare_exchange(ready, reading, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return true; // handed out again after all
    }
    let _ = c.compare_exchange(
        full,
        l::cell_empty(lap.wrapping_add(1)),
        Ordering::AcqRel,
        Ordering::Relaxed,
    );
    false
}

/// The position of the published frame a log cell says slot `k` holds.
fn published_at(r: &RingInner, k: u32) -> Option<u64> {
    let n = u64::from(r.cfg.geo.slots);
    let tail = r.get(l::lock::TAIL);
    (0..r.cfg.geo.slots).find_map(|c| match l::decode_cell(r.get(r.cfg.geo.cell(c))) {
        Cell::Full { lap, slot } if slot == k => {
            let low = lap.wrapping_mul(n).wrapping_add(u64::from(c));
            Some(l::position_near(tail, low))
        }
        _ => None,
    })
}

/// Move `TAIL` past every position already published (a producer that
/// died after publishing did not move it), so that it counts the frames
/// committed. At most one lap of steps.
fn settle_tail(r: &RingInner) {
    let tail = r.u64(l::lock::TAIL);
    for _ in 0..r.cfg.geo.slots {
        let pos = tail.load(Ordering::Acquire);
        let (c, lap) = cell(r, pos);
        let done = match l::decode_cell(c.load(Ordering::Acquire)) {
            Cell::Full { lap: cl, .. } => is_lap(cl, lap),
            Cell::Empty { lap: cl } => is_lap(cl, lap.wrapping_add(1)),
            Cell::Bad => false,
        };
        if !done {
            return;
        }
        let _ = tail.compare_exchange(
            pos,
            pos.wrapping_add(1),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// Reclaim what dead participant `i` holds in slot `k` (under the ring
/// lock; every change a CAS from a word only `i` could move on). True if
/// the slot became free.
pub(crate) fn reclaim_slot(r: &RingInner, i: u32, k: u32) -> bool {
    let s = state(r, k);
    let w = s.load(Ordering::Acquire);
    let (st, owner) = l::unpack_state(w);
    if owner != i {
        return false;
    }
    let head = r.get(l::lock::HEAD);
    match st {
        Some(SlotState::Writing) => {
            if let Some(pos) = published_at(r, k) {
                // Died between publishing and marking READY: finish it.
                r.u64(r.cfg.geo.slot(k) + l::slot::SEQ)
                    .store(pos, Ordering::Relaxed);
                let _ = s.compare_exchange(
                    w,
                    l::state_word_at(SlotState::Ready, i, pos),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                settle_tail(r);
                false
            } else {
                s.compare_exchange(w, FREE, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
            }
        }
        Some(st @ (SlotState::Reading | SlotState::Ready)) => {
            let pos = l::position_near(head, l::state_pos(w));
            let (c, lap) = cell(r, pos);
            let full = l::cell_full(lap, k);
            let named = c.load(Ordering::Acquire) == full;
            if st == SlotState::Ready && named && pos >= head {
                // A committed frame of a dead producer stays.
                settle_tail(r);
                return false;
            }
            // A dead consumer's lease, or a frame it was giving back (that
            // lease is lost): free the cell if it still names the slot
            // (`clean` moves HEAD only if it is still at `pos`), then the slot.
            if named {
                clean(r, c, full, lap, pos);
            }
            s.compare_exchange(w, FREE, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        }
        _ => false,
    }
}

/// After publishing (or freeing) something a waiter may want: wake one (or
/// all) of the processes parked on `seq` if there are any. The fence pairs
/// with the one a waiter runs between counting itself and its last try
/// (FORMAT.md 7.5): either it sees our change, or we see it waiting.
pub(crate) fn wake_if_waiting(r: &RingInner, seq: u64, waiters: u64, all: bool) {
    fence(Ordering::SeqCst);
    if r.u32(waiters).load(Ordering::Relaxed) > 0 {
        r.notify(seq, waiters, all);
    }
}

/// Would a receive find a frame now (or the end of the stream)? For
/// waiters that count themselves and must look once more before sleeping.
/// A frame whose commit is still in flight (published, not READY yet) does
/// not count: its committer wakes waiters once it is READY (or a reclaim
/// does, if it died there), so a waiter parks instead of spinning on it.
pub(crate) fn frame_waiting(r: &RingInner) -> bool {
    let pos = r.u64(l::lock::HEAD).load(Ordering::Acquire);
    let (c, lap) = cell(r, pos);
    let takeable = match l::decode_cell(c.load(Ordering::Acquire)) {
        Cell::Empty { lap: cl } => !is_lap(cl, lap),
        Cell::Full { slot, .. } if slot < r.cfg.geo.slots => {
            l::unpack_state(state(r, slot).load(Ordering::Acquire)).0 != Some(SlotState::Writing)
        }
        _ => true,
    };
    takeable || r.u64(l::lock::CLOSED).load(Ordering::Acquire) != 0
}

/// Would a loan find a slot now (or the end of the stream)? See
/// [`frame_waiting`].
pub(crate) fn slot_waiting(r: &RingInner) -> bool {
    (0..r.cfg.geo.slots).any(|k| state(r, k).load(Ordering::Acquire) == FREE)
        || (r.cfg.overwrite() && frame_waiting(r))
        || r.u64(l::lock::CLOSED).load(Ordering::Acquire) != 0
}
