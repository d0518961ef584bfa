//! The ring lock and its redo journal.
//!
//! Every state transition (loan, commit, receive, release, attach, detach,
//! reclaim) changes a few words: a slot's state, the head or tail, a log cell,
//! counters. They all run under one lock word in the control block. Critical
//! sections are a handful of loads and stores (no I/O, no waiting), so the
//! lock is almost always free; the frame data is written and read outside it.
//!
//! A process can die at any instruction, including inside a critical section.
//! Two mechanisms make that harmless:
//!
//! - the lock word names the holder: its participant index and the attach
//!   epoch of its entry (a counter the entry's owner bumps at every attach).
//!   Every participant holds an OFD lock on its entry's byte, which the
//!   kernel drops when the process dies, so a waiter can prove the holder
//!   dead (its entry is not alive, or it has been re-attached under a new
//!   epoch) and take the lock over. A takeover is one compare-and-swap from
//!   the dead holder's word to the new holder's word, so of two processes
//!   that both proved the same holder dead exactly one wins; a process that
//!   re-attaches the dead holder's entry gets a new epoch and takes over the
//!   same way, never by recognising "its own" index in the word;
//! - a critical section that changes more than one word first writes all its
//!   new values into a redo journal, then sets the journal length, then
//!   applies them, then clears the length. Whoever takes the lock and finds a
//!   non-zero length re-applies the entries (the stores are idempotent). So
//!   each critical section takes effect entirely or not at all.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::shared::{Reclaimed, RingInner, reclaim_entry, wake_after_reclaim};
use crate::error::{Error, ErrorKind, Result};
use crate::fail;
use crate::format::ring as l;
use crate::sys;

/// A registered participant: its entry index, and an in-process mutex that
/// serialises this participant's use of the ring lock between our threads.
pub(crate) struct Participant {
    pub ring: Arc<RingInner>,
    pub index: u32,
    /// Our value of the lock word: index and attach epoch.
    word: u32,
    held: Mutex<()>,
}

/// The ring lock, held. Dropping it releases the lock.
pub(crate) struct RingLock<'a> {
    p: &'a Participant,
    _g: parking_lot::MutexGuard<'a, ()>,
}

impl RingLock<'_> {
    /// The ring this lock protects.
    pub fn ring(&self) -> &RingInner {
        &self.p.ring
    }

    /// The participant index holding the lock.
    pub fn holder(&self) -> u32 {
        self.p.index
    }
}

impl Drop for RingLock<'_> {
    fn drop(&mut self) {
        let r = &self.p.ring;
        r.u32(l::lock::LOCK).store(0, Ordering::SeqCst);
        if r.u32(l::lock::LOCK_WAITERS).load(Ordering::SeqCst) > 0 {
            sys::futex_wake(r.u32(l::lock::LOCK), 1);
        }
    }
}

/// A batch of word updates that takes effect all at once (see module docs).
pub(crate) struct Txn<'a> {
    ring: &'a RingInner,
    n: usize,
    offs: [u64; l::JOURNAL_CAP as usize],
    vals: [u64; l::JOURNAL_CAP as usize],
}

impl<'a> Txn<'a> {
    pub fn new(lock: &RingLock<'a>) -> Txn<'a> {
        Txn {
            ring: &lock.p.ring,
            n: 0,
            offs: [0; l::JOURNAL_CAP as usize],
            vals: [0; l::JOURNAL_CAP as usize],
        }
    }

    /// Stage a write.
    ///
    /// # Panics
    ///
    /// If a critical section stages more than `JOURNAL_CAP` words (a bug).
    pub fn set(&mut self, off: u64, val: u64) {
        match self.offs[..self.n].iter().position(|&o| o == off) {
            Some(i) => self.vals[i] = val,
            None => {
                assert!(self.n < self.offs.len(), "ring journal overflow");
                self.offs[self.n] = off;
                self.vals[self.n] = val;
                self.n += 1;
            }
        }
    }

    /// Apply all staged writes, crash-atomically.
    pub fn apply(self) {
        let r = self.ring;
        match self.n {
            0 => return,
            1 => {
                r.u64(self.offs[0]).store(self.vals[0], Ordering::Release);
                fail::point("ring.txn.stored");
                return;
            }
            _ => {}
        }
        for i in 0..self.n {
            r.u64(l::JOURNAL + i as u64 * 16)
                .store(self.offs[i], Ordering::Relaxed);
            r.u64(l::JOURNAL + i as u64 * 16 + 8)
                .store(self.vals[i], Ordering::Relaxed);
        }
        fail::point("ring.txn.journaled");
        r.u64(l::lock::JOURNAL_LEN)
            .store(self.n as u64, Ordering::Release);
        fail::point("ring.txn.armed");
        // Release stores: none may become visible before the journal length.
        for i in 0..self.n {
            r.u64(self.offs[i]).store(self.vals[i], Ordering::Release);
            fail::point("ring.txn.stored");
        }
        r.u64(l::lock::JOURNAL_LEN).store(0, Ordering::Release);
        fail::point("ring.txn.cleared");
    }
}

impl Participant {
    /// A participant for entry `index`, whose liveness lock this process
    /// has just taken: starts a new attach epoch of the entry, so a lock
    /// word left by a dead earlier owner of the entry is not ours.
    pub fn new(ring: Arc<RingInner>, index: u32) -> Participant {
        let epoch = ring.u64(ring.cfg.geo.entry(index) + l::part::EPOCH);
        // Only the holder of the entry's liveness lock writes its epoch.
        let next = epoch.load(Ordering::Acquire).wrapping_add(1);
        epoch.store(next, Ordering::Release);
        Participant {
            word: l::lock_word(index, next),
            ring,
            index,
            held: Mutex::new(()),
        }
    }

    /// Take the ring lock if it is free right now, without reading the
    /// clock; otherwise wait as [`Participant::lock`] does, until
    /// `deadline()`.
    ///
    /// Every ring operation takes the lock, almost always free, and on
    /// virtual machines a clock read costs tens of nanoseconds: computing
    /// deadlines only when a wait is needed halves the cost of a hand-off.
    pub fn lock_or_wait(&self, deadline: impl FnOnce() -> Option<Instant>) -> Result<RingLock<'_>> {
        if let Some(g) = self.held.try_lock() {
            let word = self.ring.u32(l::lock::LOCK);
            if word
                .compare_exchange(0, self.word, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(self.acquired(g));
            }
        }
        self.lock(deadline())
    }

    /// Take the ring lock, waiting until `deadline` (forever if `None`).
    /// A holder proven dead loses the lock to us; its journal is replayed.
    pub fn lock(&self, deadline: Option<Instant>) -> Result<RingLock<'_>> {
        let g = match deadline {
            Some(d) => self.held.try_lock_until(d),
            None => Some(self.held.lock()),
        }
        .ok_or_else(|| self.lock_timeout())?;
        let r = &self.ring;
        let word = r.u32(l::lock::LOCK);
        let me = self.word;
        let mut spins = 0u32;
        let mut last_probe = Instant::now();
        loop {
            if word
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(self.acquired(g));
            }
            spins += 1;
            if spins < 256 {
                std::hint::spin_loop();
                continue;
            }
            if spins < 320 {
                std::thread::yield_now();
                continue;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(self.lock_timeout());
            }
            let waiters = r.u32(l::lock::LOCK_WAITERS);
            waiters.fetch_add(1, Ordering::SeqCst);
            let v = word.load(Ordering::SeqCst);
            if v != 0 {
                let mut nap = Duration::from_millis(10);
                if let Some(d) = deadline {
                    nap = nap.min(d.saturating_duration_since(now));
                }
                sys::futex_wait(word, v, Some(nap));
            }
            waiters.fetch_sub(1, Ordering::SeqCst);
            if last_probe.elapsed() >= Duration::from_millis(20) {
                last_probe = Instant::now();
                let v = word.load(Ordering::Acquire);
                if v != 0 && self.holder_dead(v) {
                    fail::point("ring.lock.probed");
                    // One atomic step decides the new owner: the word still
                    // names the holder we proved dead, or someone else
                    // (another waiter, a re-attached entry) took over first.
                    if word
                        .compare_exchange(v, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Ok(self.acquired(g));
                    }
                }
            }
        }
    }

    /// The lock is ours: replay what a dead holder left half-done.
    fn acquired<'a>(&'a self, g: parking_lot::MutexGuard<'a, ()>) -> RingLock<'a> {
        self.ring.recover_journal();
        fail::point("ring.lock.acquired");
        RingLock { p: self, _g: g }
    }

    /// Is the holder named by lock word `v` (non-zero, not ours) dead? True
    /// if the word is garbage (no such participant), if the entry it names
    /// has been re-attached since (another epoch), or if nobody holds the
    /// entry's liveness lock.
    fn holder_dead(&self, v: u32) -> bool {
        let r = &self.ring;
        let (i, epoch) = l::split_lock_word(v);
        if i >= r.cfg.geo.max_participants {
            return true;
        }
        if v == self.word {
            // Our own word while no thread of ours holds the lock (they are
            // serialised by `held`): only a corrupt file writes it. It names
            // us, live, so nobody else can take it over: it is ours.
            return true;
        }
        let current = r.get(r.cfg.geo.entry(i) + l::part::EPOCH);
        l::split_lock_word(l::lock_word(i, current)).1 != epoch || !r.alive(i)
    }

    fn lock_timeout(&self) -> Error {
        Error::new(
            ErrorKind::LockTimeout,
            "timed out waiting for the ring lock; another participant holds it (a stopped process?), retry or raise the timeout",
        )
        .at(self.ring.map.path())
    }
}

/// How long an operation waits for the ring lock: until its own deadline,
/// but at least a second (the lock is held for nanoseconds; only a stopped
/// holder makes anyone wait that long).
pub(crate) fn lock_deadline(deadline: Option<Instant>) -> Instant {
    let floor = Instant::now() + Duration::from_secs(1);
    deadline.map_or(floor, |d| d.max(floor))
}

impl Drop for Participant {
    /// Detach: give back every slot and lease of this participant, clear the
    /// entry, drop its OFD lock, and wake peers that may now proceed.
    fn drop(&mut self) {
        let mut got = Reclaimed::default();
        if let Ok(lock) = self.lock_or_wait(|| Some(Instant::now() + Duration::from_secs(10))) {
            reclaim_entry(&lock, self.index, &mut got);
        }
        self.ring.release_entry(self.index);
        wake_after_reclaim(&self.ring, got);
    }
}
