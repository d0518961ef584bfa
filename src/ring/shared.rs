//! The ring's shared state: validated config, participant liveness, reclaim
//! of dead participants, and the wait loop (spin, then park on a futex).
//! The lock that orders every state change is in `lock.rs`.
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::lock::{Participant, RingLock, Txn, lock_deadline};
use crate::error::{Error, ErrorKind, Result};
use crate::fail;
pub(crate) use crate::format::ring::Config;
use crate::format::ring::{self as l, Role, SlotState};
use crate::mapping::Mapping;
use crate::sys;

/// How often a parked participant wakes to look for dead peers.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

type LocalKey = (u64, u64);

/// Entries held by participants of *this* process, per ring inode. OFD locks
/// of our own open file description never conflict with each other, so this
/// set is how a process knows which entries are its own.
fn local_entries() -> &'static Mutex<HashMap<LocalKey, HashSet<u32>>> {
    static M: OnceLock<Mutex<HashMap<LocalKey, HashSet<u32>>>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A random 64-bit value (for registration tokens).
pub(crate) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(sys::monotonic_ns());
    h.write_u32(std::process::id());
    h.finish()
}

/// An opened ring file.
pub(crate) struct RingInner {
    pub map: Mapping,
    pub cfg: Config,
    /// File offset of the section start (for OFD lock bytes).
    sec_file_off: u64,
    key: LocalKey,
}

impl RingInner {
    pub fn new(map: Mapping) -> Result<RingInner> {
        let path = map.path().to_path_buf();
        let bad =
            |m: String| Error::new(ErrorKind::Corrupt, format!("invalid ring: {m}")).at(&path);
        let h = map.header();
        let cfg = Config::decode(
            &map.section_copy(),
            &h.shape,
            h.fortran_order,
            map.nbytes() as u64,
        )
        .map_err(bad)?;
        let (sec_off, _) = map.section().expect("a ring has a section");
        let sec_file_off = map.ctrl_offset().expect("a ring has a control block") + sec_off;
        let meta = map
            .shared_file()
            .file()
            .metadata()
            .map_err(|e| Error::io("cannot stat", e).at(&path))?;
        use std::os::unix::fs::MetadataExt;
        Ok(RingInner {
            map,
            cfg,
            sec_file_off,
            key: (meta.dev(), meta.ino()),
        })
    }

    #[inline]
    pub fn u64(&self, off: u64) -> &AtomicU64 {
        self.map.section_u64(off)
    }

    #[inline]
    pub fn u32(&self, off: u64) -> &AtomicU32 {
        self.map.section_u32(off)
    }

    /// Relaxed load of a section word (under the ring lock, or for stats).
    #[inline]
    pub fn get(&self, off: u64) -> u64 {
        self.u64(off).load(Ordering::Relaxed)
    }

    fn entry_byte(&self, i: u32) -> u64 {
        self.sec_file_off + self.cfg.geo.entry(i)
    }

    /// Is participant entry `i` held by a live process? True if another open
    /// file description holds the OFD lock on its byte, or if it belongs to
    /// this process.
    pub fn alive(&self, i: u32) -> bool {
        if local_entries()
            .lock()
            .get(&self.key)
            .is_some_and(|s| s.contains(&i))
        {
            return true;
        }
        // A probe error (should not happen) counts as alive: never reclaim
        // what we cannot prove dead.
        sys::ofd_probe(
            self.map.shared_file().file(),
            sys::RangeLock::Exclusive,
            self.entry_byte(i),
            1,
        )
        .map_or(true, |c| c.is_some())
    }

    /// Claim a participant entry for this process: the first entry whose byte
    /// we can lock (its previous owner, if any, is gone).
    pub fn claim_entry(&self) -> Result<u32> {
        let mut all = local_entries().lock();
        let mine = all.entry(self.key).or_default();
        for i in 0..self.cfg.geo.max_participants {
            if mine.contains(&i) {
                continue;
            }
            let got = sys::ofd_lock(
                self.map.shared_file().file(),
                sys::RangeLock::Exclusive,
                self.entry_byte(i),
                1,
                false,
            )
            .map_err(|e| {
                Error::io("cannot lock a ring participant entry", e).at(self.map.path())
            })?;
            if got {
                mine.insert(i);
                fail::point("ring.attach.entry_locked");
                return Ok(i);
            }
        }
        Err(Error::new(
            ErrorKind::Full,
            format!(
                "the ring's participant table is full ({} live participants); detach one or create the ring with more participants",
                self.cfg.geo.max_participants
            ),
        )
        .at(self.map.path()))
    }

    /// Give an entry back (after its role was cleared under the lock).
    pub fn release_entry(&self, i: u32) {
        let mut all = local_entries().lock();
        let _ = sys::ofd_lock(
            self.map.shared_file().file(),
            sys::RangeLock::Unlock,
            self.entry_byte(i),
            1,
            false,
        );
        if let Some(s) = all.get_mut(&self.key) {
            s.remove(&i);
            if s.is_empty() {
                all.remove(&self.key);
            }
        }
    }

    /// Re-apply a journal left by a holder that died mid-update.
    pub(crate) fn recover_journal(&self) {
        let len = self.u64(l::lock::JOURNAL_LEN).load(Ordering::Acquire);
        if len == 0 {
            return;
        }
        if len <= l::JOURNAL_CAP {
            for e in 0..len {
                let off = self.get(l::JOURNAL + e * 16);
                let val = self.get(l::JOURNAL + e * 16 + 8);
                // Never let a garbage journal write outside the state words.
                if l::journal_target_ok(off, self.cfg.geo.used_len) {
                    self.u64(off).store(val, Ordering::Release);
                }
                if e == 0 {
                    fail::point("ring.recover.midway");
                }
            }
        }
        self.u64(l::lock::JOURNAL_LEN).store(0, Ordering::Release);
    }

    /// Wake waiters on a futex word after bumping it.
    pub fn notify(&self, seq: u64, waiters: u64, all: bool) {
        self.u32(seq).fetch_add(1, Ordering::SeqCst);
        if self.u32(waiters).load(Ordering::SeqCst) > 0 {
            sys::futex_wake(self.u32(seq), if all { i32::MAX } else { 1 });
        }
    }
}

/// What a reclaim pass freed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Reclaimed {
    pub slots: u32,
    pub producers: u32,
    pub participants: u32,
}

/// Free everything entry `i` holds and clear the entry (under the lock).
/// Each step is its own transaction, so a reclaimer that dies half-way leaves
/// a consistent ring and the next reclaimer finishes the job.
pub(crate) fn reclaim_entry(lock: &RingLock<'_>, i: u32, out: &mut Reclaimed) {
    let r = lock.ring();
    let geo = r.cfg.geo;
    let role = Role::from_code(r.get(geo.entry(i) + l::part::ROLE));
    let bit = 1u64 << i;
    for k in 0..geo.slots {
        if !r.cfg.broadcast() {
            // Queue mode: the hand-off words change by CAS only (7.7).
            if super::handoff::reclaim_slot(r, i, k) {
                out.slots += 1;
            }
            fail::point("ring.reclaim.slot");
            continue;
        }
        let s = geo.slot(k);
        let (state, owner) = l::unpack_state(r.get(s + l::slot::STATE));
        let mut t = Txn::new(lock);
        if owner == i && matches!(state, Some(SlotState::Writing) | Some(SlotState::Reading)) {
            t.set(s + l::slot::STATE, l::state_word(SlotState::Free, 0));
            out.slots += 1;
        } else if r.get(s + l::slot::PENDING) & bit != 0 {
            let pending = r.get(s + l::slot::PENDING) & !bit;
            t.set(s + l::slot::PENDING, pending);
            t.set(s + l::slot::LEASED, r.get(s + l::slot::LEASED) & !bit);
            if pending == 0 && state == Some(SlotState::Ready) {
                t.set(s + l::slot::STATE, l::state_word(SlotState::Free, 0));
                out.slots += 1;
            }
        }
        t.apply();
        fail::point("ring.reclaim.slot");
    }
    fail::point("ring.reclaim.slots_done");
    let mut t = Txn::new(lock);
    if r.get(l::lock::SUBSCRIBERS) & bit != 0 {
        t.set(l::lock::SUBSCRIBERS, r.get(l::lock::SUBSCRIBERS) & !bit);
    }
    if role == Some(Role::Producer) {
        out.producers += 1;
    }
    if role.is_some() {
        out.participants += 1;
    }
    t.set(geo.entry(i) + l::part::ROLE, 0);
    t.apply();
}

/// Find participants whose process died and reclaim them (under the lock),
/// then wake whoever may now proceed.
pub(crate) fn reclaim_dead(lock: &RingLock<'_>) -> Reclaimed {
    let r = lock.ring();
    let mut out = Reclaimed::default();
    for i in 0..r.cfg.geo.max_participants {
        if i == lock.holder() || r.get(r.cfg.geo.entry(i) + l::part::ROLE) == 0 {
            continue;
        }
        if !r.alive(i) {
            reclaim_entry(lock, i, &mut out);
        }
    }
    out
}

/// Wake producers/consumers after a reclaim freed something (call unlocked).
pub(crate) fn wake_after_reclaim(r: &RingInner, got: Reclaimed) {
    if got.slots > 0 {
        r.notify(l::free::SEQ, l::free::WAITERS, true);
    }
    if got.producers > 0 || got.slots > 0 {
        r.notify(l::commit::SEQ, l::commit::WAITERS, true);
    }
}

/// Block until `attempt` yields a value, parking on the futex word at `seq`
/// (with the waiter count at `waiters`) between attempts. Spins up to `spin`
/// on the word first. While parked, wakes every [`SLICE`] to reclaim dead
/// peers. Returns `Ok(None)` at `deadline`.
pub(crate) fn wait_until<T>(
    p: &Participant,
    seq: u64,
    waiters: u64,
    deadline: Option<Instant>,
    spin: Duration,
    mut attempt: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let r = &p.ring;
    let word = r.u32(seq);
    let count = r.u32(waiters);
    // Clock reads are deferred until a wait really begins (see
    // `Participant::lock_or_wait`): a hand-off that finds its frame or slot
    // at once reads no clock.
    let mut last_reclaim: Option<Instant> = None;
    // Queue mode: wakers bump the word only when someone is parked (7.5),
    // so a spinning waiter polls the operation itself (a failed attempt is
    // two or three loads of lines that stay in our cache until a peer
    // writes them), on every turn: a pause is ~140 cycles on recent Xeons,
    // so polling every few turns would add hundreds of ns to a hand-off.
    let poll = !r.cfg.broadcast();
    loop {
        let s = word.load(Ordering::SeqCst);
        if let Some(v) = attempt()? {
            return Ok(Some(v));
        }
        if !spin.is_zero() {
            let mut until = None;
            let mut n = 0u32;
            while word.load(Ordering::Relaxed) == s {
                std::hint::spin_loop();
                n = n.wrapping_add(1);
                if poll && let Some(v) = attempt()? {
                    return Ok(Some(v));
                }
                if n.is_multiple_of(64) {
                    let now = Instant::now();
                    if now >= *until.get_or_insert(now + spin) {
                        break;
                    }
                }
            }
            if word.load(Ordering::Acquire) != s {
                continue;
            }
        }
        let now = Instant::now();
        let last_reclaim = last_reclaim.get_or_insert(now);
        let left = deadline.map(|d| d.saturating_duration_since(now));
        if left.is_some_and(|d| d.is_zero()) {
            // We may have swallowed a wake meant for "someone": pass it on.
            if word.load(Ordering::SeqCst) != s && count.load(Ordering::SeqCst) > 0 {
                sys::futex_wake(word, 1);
            }
            return Ok(None);
        }
        count.fetch_add(1, Ordering::SeqCst);
        // Counted: a waker from now on bumps the word. One more try for
        // what it published before it could see us (the fence pairs with
        // the waker's, FORMAT.md 7.5).
        std::sync::atomic::fence(Ordering::SeqCst);
        let last = if poll { attempt() } else { Ok(None) };
        if !matches!(last, Ok(None)) {
            count.fetch_sub(1, Ordering::SeqCst);
            return last;
        }
        if word.load(Ordering::SeqCst) == s {
            sys::futex_wait(word, s, Some(left.map_or(SLICE, |d| d.min(SLICE))));
        }
        count.fetch_sub(1, Ordering::SeqCst);
        if last_reclaim.elapsed() >= SLICE {
            *last_reclaim = Instant::now();
            // Best effort: a lock we cannot get now is retried next slice.
            if let Ok(lock) = p.lock(Some(lock_deadline(deadline))) {
                let got = reclaim_dead(&lock);
                drop(lock);
                wake_after_reclaim(r, got);
            }
        }
    }
}
