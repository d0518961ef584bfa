//! The mapped queue file and the protocol steps on its words: claim,
//! complete, abandon, re-queue, worker registration and the dead-worker rule.
//! `Worker`/`Claim` (queue.rs) and the barrier (barrier.rs) are thin owners
//! around these.
//!
//! # Safety
//!
//! The chunk records live in the `.npy` payload, so their atomics are made
//! here from the data pointer: every record index is checked against the
//! validated chunk count, and records are 16 bytes from the 4096-aligned data
//! offset, so every word is in bounds and naturally aligned. Atomics may alias
//! memory that other processes write.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::QueueProgress;
use crate::error::{Error, ErrorKind, Result};
use crate::file::OpenFlags;
use crate::format::control::Kind;
use crate::format::npy::NpyHeader;
use crate::format::queue::{self as layout, QueueHeader, entry, off};
use crate::mapping::{Mapping, NewFile};
use crate::sys::{self, RangeLock};

/// How long one bounded wait lasts before waiters look for dead workers.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// What this process knows about a queue file that peers cannot see: which
/// worker entries it registered itself (index -> token). F_OFD_GETLK does not
/// report locks of our own open file description, so these entries are alive
/// by our own word. The mutex also serialises registration, reaping and
/// probing within the process.
pub(crate) struct ProcState {
    live: Mutex<HashMap<u32, u64>>,
    /// Serialises completions among this process's threads: an entry has
    /// one `COMPLETING` word.
    completing: Mutex<()>,
}

fn proc_state_for(dev: u64, ino: u64) -> Arc<ProcState> {
    type States = Mutex<HashMap<(u64, u64), Weak<ProcState>>>;
    static STATES: OnceLock<States> = OnceLock::new();
    let mut map = STATES.get_or_init(|| Mutex::new(HashMap::new())).lock();
    if let Some(s) = map.get(&(dev, ino)).and_then(Weak::upgrade) {
        return s;
    }
    map.retain(|_, w| w.strong_count() > 0);
    let s = Arc::new(ProcState {
        live: Mutex::new(HashMap::new()),
        completing: Mutex::new(()),
    });
    map.insert((dev, ino), Arc::downgrade(&s));
    s
}

fn random_token() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one((std::process::id(), sys::monotonic_ns(), n)) | 1
}

/// A mapped, validated queue file.
pub(crate) struct QueueShared {
    pub(crate) map: Mapping,
    pub(crate) hdr: QueueHeader,
    proc: Arc<ProcState>,
    /// Absolute file offset of the kind section (liveness bytes are in it).
    section_abs: u64,
}

impl QueueShared {
    fn finish(map: Mapping, hdr: QueueHeader) -> Result<QueueShared> {
        let meta = map
            .shared_file()
            .file()
            .metadata()
            .map_err(|e| Error::io("cannot stat", e).at(map.path()))?;
        let (section_off, _) = map.section().expect("queue files have a section");
        let section_abs =
            map.ctrl_offset().expect("queue files have a control block") + section_off;
        Ok(QueueShared {
            proc: proc_state_for(meta.dev(), meta.ino()),
            map,
            hdr,
            section_abs,
        })
    }

    pub(crate) fn create(path: &Path, hdr: QueueHeader, mode: u32) -> Result<QueueShared> {
        let header = NpyHeader {
            dtype: layout::record_dtype(),
            fortran_order: false,
            shape: vec![
                usize::try_from(hdr.chunks)
                    .map_err(|_| Error::new(ErrorKind::InvalidInput, "too many chunks").at(path))?,
            ],
        };
        let spec = NewFile {
            header: &header,
            kind: Kind::Queue,
            section_len: layout::section_len(hdr.max_workers),
            mode,
            preallocate: true,
            fill: None,
        };
        let map = Mapping::create(path, &spec, |s| hdr.encode(s))?;
        Self::finish(map, hdr)
    }

    pub(crate) fn open(path: &Path, flags: OpenFlags) -> Result<QueueShared> {
        let map = Mapping::open(path, flags)?;
        match map.control().map(|c| c.kind) {
            Some(Kind::Queue) => {}
            Some(k) => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "this is a sharray {}, not a queue; open it with the {} API",
                        k.name(),
                        k.name()
                    ),
                )
                .at(path));
            }
            None => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "this is a plain .npy file, not a queue; create one with `sharray queue create`",
                )
                .at(path));
            }
        }
        let records = layout::records_of(map.header())
            .map_err(|m| Error::new(ErrorKind::Corrupt, m).at(path))?;
        let hdr = QueueHeader::decode(&map.section_copy(), records).map_err(|e| {
            Error::new(ErrorKind::Corrupt, format!("invalid queue header: {e}")).at(path)
        })?;
        Self::finish(map, hdr)
    }

    pub(crate) fn path(&self) -> &Path {
        self.map.path()
    }

    pub(crate) fn require_writable(&self) -> Result<()> {
        if self.map.writable() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::PermissionDenied,
                "this queue was opened read-only; open it read-write to join, reap or reset",
            )
            .at(self.path()))
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.map.shared_file().file().as_fd()
    }

    pub(crate) fn s32(&self, o: u64) -> &AtomicU32 {
        self.map.section_u32(o)
    }

    pub(crate) fn s64(&self, o: u64) -> &AtomicU64 {
        self.map.section_u64(o)
    }

    fn e32(&self, i: u32, o: u64) -> &AtomicU32 {
        self.s32(QueueHeader::entry_off(i) + o)
    }

    fn e64(&self, i: u32, o: u64) -> &AtomicU64 {
        self.s64(QueueHeader::entry_off(i) + o)
    }

    /// Absolute file offset of worker entry `i`'s liveness byte.
    fn liveness_byte(&self, i: u32) -> u64 {
        self.section_abs + QueueHeader::entry_off(i)
    }

    fn record_ptr(&self, i: u64, o: u64) -> *mut u8 {
        assert!(
            i < self.hdr.chunks && o < layout::RECORD_LEN,
            "chunk {i} out of range"
        );
        // SAFETY: i < chunks == shape[0] (validated at open/create), so the
        // record lies inside the data area of the mapping.
        unsafe {
            self.map
                .data_ptr()
                .add((i * layout::RECORD_LEN + o) as usize)
        }
    }

    /// The state/owner word of chunk `i`.
    pub(crate) fn chunk(&self, i: u64) -> &AtomicU64 {
        // SAFETY: in bounds (record_ptr asserts) and 8-aligned (data at 4096,
        // records of 16 bytes); atomics may alias shared memory.
        unsafe { &*(self.record_ptr(i, 0) as *const AtomicU64) }
    }

    pub(crate) fn chunk_u32(&self, i: u64, o: u64) -> &AtomicU32 {
        // SAFETY: as `chunk`, with o a multiple of 4 below 16.
        unsafe { &*(self.record_ptr(i, o) as *const AtomicU32) }
    }

    /// The exact number of completed chunks (FORMAT.md 8.4): every worker
    /// entry's completion count, plus a completion in flight whose chunk is
    /// already DONE. O(max_workers); the `done_hint` word is the cheap,
    /// possibly lagging, version.
    pub(crate) fn done(&self) -> u64 {
        layout::done_count(
            self.hdr.max_workers,
            |i, o| self.e64(i, o).load(Ordering::Acquire),
            |i| self.e32(i, entry::ID).load(Ordering::Acquire),
            |c| (c < self.hdr.chunks).then(|| self.chunk(c).load(Ordering::Acquire)),
        )
    }

    fn held(&self, slot: u32, j: u32) -> &AtomicU64 {
        self.e64(slot, entry::HELD + 8 * u64::from(j))
    }

    pub(crate) fn event(&self) -> &AtomicU32 {
        self.s32(off::EVENT)
    }

    /// Tell parked claimers and waiters that something changed (a chunk was
    /// re-queued, or the last one completed).
    pub(crate) fn bump_event(&self) {
        let ev = self.event();
        ev.fetch_add(1, Ordering::SeqCst);
        if self.s32(off::EVENT_WAITERS).load(Ordering::SeqCst) > 0 {
            sys::futex_wake(ev, i32::MAX);
        }
    }

    /// Park until `event` moves past `seen`, at most `d`.
    pub(crate) fn wait_event(&self, seen: u32, d: Duration) {
        let waiters = self.s32(off::EVENT_WAITERS);
        waiters.fetch_add(1, Ordering::SeqCst);
        if self.event().load(Ordering::SeqCst) == seen {
            sys::futex_wait(self.event(), seen, Some(d));
        }
        waiters.fetch_sub(1, Ordering::SeqCst);
    }

    fn cas_claim(&self, i: u64, id: u32, slot: u32) -> bool {
        let ok = self
            .chunk(i)
            .compare_exchange(
                layout::word(layout::PENDING, 0),
                layout::word(layout::CLAIMED, id),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        if ok {
            self.chunk_u32(i, layout::RECORD_CLAIMS)
                .fetch_add(1, Ordering::Relaxed);
            self.s64(off::CLAIMED).fetch_add(1, Ordering::Release);
            self.e64(slot, entry::CLAIMED)
                .fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Reserve one of entry `slot`'s held slots for a claim, or set the
    /// overflow flag (a reaper then scans the whole table) if all are taken.
    fn reserve_held(&self, slot: u32) -> Option<&AtomicU64> {
        let free = (0..layout::HELD_SLOTS)
            .map(|j| self.held(slot, j))
            .find(|h| {
                h.compare_exchange(
                    0,
                    layout::HELD_RESERVED,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            });
        if free.is_none() {
            self.e32(slot, entry::FLAGS)
                .fetch_or(layout::FLAG_OVERFLOW, Ordering::AcqRel);
        }
        free
    }

    /// One claim attempt, no waiting (FORMAT.md 8.4). Every candidate chunk
    /// is written to a held slot of our entry before it can become ours, so
    /// a reaper finds whatever we held or were about to claim when we died:
    /// first fresh chunks from the cursor, then re-queued ones, scanning up
    /// from the scan mark (the cursor is at `chunks` by then).
    pub(crate) fn try_claim(&self, id: u32, slot: u32) -> Option<u64> {
        let held = self.reserve_held(slot);
        let name = |i: u64| {
            if let Some(h) = held {
                h.store(i + 1, Ordering::Release);
            }
        };
        let n = self.hdr.chunks;
        let next = self.s64(off::NEXT);
        // Fresh chunks: name the candidate first, then move the cursor past
        // it, then take it.
        loop {
            let i = next.load(Ordering::Acquire);
            if i >= n {
                break;
            }
            name(i);
            if next
                .compare_exchange(i, i + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                crate::fail::point("pool.claim.cursor_moved");
                if self.cas_claim(i, id, slot) {
                    return Some(i);
                }
            }
        }
        // Re-queued chunks (and those of claims that died between moving
        // the cursor and taking their chunk) lie in [mark, cursor).
        let scan = self.s64(off::SCAN);
        let s0 = scan.load(Ordering::Acquire);
        let (mark, tag) = layout::split_scan_word(s0);
        let mut i = mark;
        while i < n {
            if layout::split(self.chunk(i).load(Ordering::Relaxed)).0 == layout::PENDING {
                name(i);
                if self.cas_claim(i, id, slot) {
                    break;
                }
            }
            i += 1;
        }
        if i > mark {
            // Nothing pending in [mark, i): raise the mark, unless a chunk
            // was re-queued meanwhile (the tag moved).
            let _ = scan.compare_exchange(
                s0,
                layout::scan_word(i, tag),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        if i < n {
            return Some(i);
        }
        if let Some(h) = held {
            h.store(0, Ordering::Release);
        }
        None
    }

    /// Empty the held slot of entry `slot` that names chunk `i`.
    fn unhold(&self, slot: u32, i: u64) {
        if let Some(h) = (0..layout::HELD_SLOTS)
            .map(|j| self.held(slot, j))
            .find(|h| h.load(Ordering::Relaxed) == i + 1)
        {
            h.store(0, Ordering::Release);
        }
    }

    /// Mark chunk `i` done (FORMAT.md 8.4). The entry's completion count and
    /// the chunk's state change in an order that an observer, or a reaper
    /// of this entry, can always add up exactly: announce the completion
    /// (`COMPLETING`, then the mark bit), swap the chunk to DONE, then one
    /// store that counts it and clears the mark. Fails if the chunk no
    /// longer belongs to `id` (it was re-queued because this worker was
    /// taken for dead).
    pub(crate) fn complete(&self, i: u64, id: u32, slot: u32) -> Result<()> {
        let serial = self.proc.completing.lock();
        let done_word = self.e64(slot, entry::DONE_WORD);
        let (count, _) = layout::split_done_word(done_word.load(Ordering::Acquire));
        self.e64(slot, entry::COMPLETING)
            .store(i + 1, Ordering::Release);
        done_word.store(layout::done_word(count, true), Ordering::Release);
        crate::fail::point("pool.complete.announced");
        let swapped = self.chunk(i).compare_exchange(
            layout::word(layout::CLAIMED, id),
            layout::word(layout::DONE, id),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        crate::fail::point("pool.complete.chunk_done");
        let counted = count.wrapping_add(u64::from(swapped.is_ok()));
        done_word.store(layout::done_word(counted, false), Ordering::Release);
        drop(serial);
        self.unhold(slot, i);
        match swapped {
            Ok(_) => {
                self.e64(slot, entry::COMPLETED)
                    .fetch_add(1, Ordering::Relaxed);
                // The hint wraps rather than overflow on a corrupt file.
                let before = self.s64(off::DONE).fetch_add(1, Ordering::AcqRel);
                if before.wrapping_add(1) >= self.hdr.chunks {
                    self.bump_event();
                }
                Ok(())
            }
            Err(now) => Err(Error::new(
                ErrorKind::Disconnected,
                format!(
                    "chunk {i} no longer belongs to this worker (its state word is {now:#x}): it was re-queued after this worker was taken for dead; discard the result",
                ),
            )
            .at(self.path())),
        }
    }

    /// Lower the scan mark to `i` (and bump its tag), so claimers find a
    /// chunk that has just become PENDING below the cursor.
    fn lower_mark(&self, i: u64) {
        let scan = self.s64(off::SCAN);
        let mut cur = scan.load(Ordering::Acquire);
        loop {
            let (mark, tag) = layout::split_scan_word(cur);
            let new = layout::scan_word(mark.min(i), tag.wrapping_add(1));
            match scan.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Swap chunk `i` from `from` back to PENDING and make it findable.
    /// The caller's held slot still names `i` until this returns, so a crash
    /// in between leaves a reaper something to finish.
    fn requeue_chunk(&self, i: u64, from: u64) -> bool {
        let ok = self
            .chunk(i)
            .compare_exchange(
                from,
                layout::word(layout::PENDING, 0),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        if ok {
            crate::fail::point("pool.requeue.pending");
            self.lower_mark(i);
            self.chunk_u32(i, layout::RECORD_REQUEUES)
                .fetch_add(1, Ordering::Relaxed);
            self.s64(off::REQUEUED).fetch_add(1, Ordering::Release);
        }
        ok
    }

    /// Give chunk `i` back (the claim was dropped without completing).
    pub(crate) fn abandon(&self, i: u64, id: u32, slot: u32) -> bool {
        let ok = self.requeue_chunk(i, layout::word(layout::CLAIMED, id));
        self.unhold(slot, i);
        if ok {
            self.bump_event();
        }
        ok
    }

    /// The overflow path of reaping: re-queue every chunk claimed by worker
    /// `id`, and make any PENDING chunk below the cursor findable (a claim
    /// that had no held slot may have died between moving the cursor and
    /// taking its chunk). O(chunks).
    fn requeue_owner(&self, id: u32) -> u64 {
        let claimed = layout::word(layout::CLAIMED, id);
        let end = self
            .s64(off::NEXT)
            .load(Ordering::Acquire)
            .min(self.hdr.chunks);
        let mut lowest_pending = None;
        let mut n = 0;
        for i in 0..self.hdr.chunks {
            let w = self.chunk(i).load(Ordering::Relaxed);
            if w == claimed && self.requeue_chunk(i, claimed) {
                n += 1;
            } else if i < end && lowest_pending.is_none() && layout::split(w).0 == layout::PENDING {
                lowest_pending = Some(i);
            }
        }
        if let Some(i) = lowest_pending {
            self.lower_mark(i);
        }
        n
    }

    /// Settle what dead entry `i` (worker `id`) left: count a completion it
    /// had in flight if its chunk is DONE, re-queue the chunks its held
    /// slots name, make an interrupted claim's chunk findable. Each step is
    /// idempotent, so a reaper that dies half-way leaves the rest to the
    /// next one. O(held slots), or O(chunks) if the worker overflowed.
    /// Returns the chunks it made claimable.
    fn settle_dead_entry(&self, i: u32, id: u32, flags: u32) -> u64 {
        let done_word = self.e64(i, entry::DONE_WORD);
        let (count, completing) = layout::split_done_word(done_word.load(Ordering::Acquire));
        if completing {
            let c = self.e64(i, entry::COMPLETING).load(Ordering::Acquire);
            let finished = c
                .checked_sub(1)
                .filter(|&c| c < self.hdr.chunks)
                .is_some_and(|c| {
                    self.chunk(c).load(Ordering::Acquire) == layout::word(layout::DONE, id)
                });
            done_word.store(
                layout::done_word(count.wrapping_add(u64::from(finished)), false),
                Ordering::Release,
            );
            if finished {
                // The dead worker never reached its hint increment.
                self.s64(off::DONE).fetch_add(1, Ordering::AcqRel);
            }
        }
        crate::fail::point("pool.reap.settling");
        let claimed = layout::word(layout::CLAIMED, id);
        let end = self
            .s64(off::NEXT)
            .load(Ordering::Acquire)
            .min(self.hdr.chunks);
        let mut n = 0;
        for j in 0..layout::HELD_SLOTS {
            let h = self.held(i, j);
            let named = h.load(Ordering::Acquire);
            if let Some(c) = named
                .checked_sub(1)
                .filter(|&c| c < self.hdr.chunks && named != layout::HELD_RESERVED)
            {
                let w = self.chunk(c).load(Ordering::Acquire);
                if w == claimed {
                    if self.requeue_chunk(c, claimed) {
                        n += 1;
                    }
                } else if c < end && layout::split(w).0 == layout::PENDING {
                    // Named, cursor moved past it, never taken (or re-queued
                    // by an abandon that died before lowering the mark).
                    self.lower_mark(c);
                    n += 1;
                }
            }
            h.store(0, Ordering::Release);
        }
        if flags & layout::FLAG_OVERFLOW != 0 {
            n += self.requeue_owner(id);
        }
        n
    }

    /// With entry `i`'s liveness byte locked by us: if a worker left it LIVE
    /// (so it died), re-queue its chunks, break the barrier if it was a
    /// member, then mark the entry FREE. Returns the chunks re-queued.
    fn clear_dead_entry(&self, i: u32) -> u64 {
        if self.e32(i, entry::STATE).load(Ordering::Acquire) != layout::ENTRY_LIVE {
            return 0;
        }
        let id = self.e32(i, entry::ID).load(Ordering::Acquire);
        let flags = self.e32(i, entry::FLAGS).load(Ordering::Acquire);
        if flags & layout::FLAG_BARRIER_MEMBER != 0 && self.hdr.barrier_parties > 0 {
            self.break_barrier();
        }
        // Settle before freeing: if we die in between, the entry still
        // names the dead worker and the next reaper finishes the job.
        let n = self.settle_dead_entry(i, id, flags);
        self.e32(i, entry::STATE)
            .store(layout::ENTRY_FREE, Ordering::Release);
        n
    }

    fn lock_byte(&self, i: u32) -> Result<bool> {
        sys::ofd_lock(
            self.fd(),
            RangeLock::Exclusive,
            self.liveness_byte(i),
            1,
            false,
        )
        .map_err(|e| Error::io("cannot take a worker liveness lock", e).at(self.path()))
    }

    fn unlock_byte(&self, i: u32) {
        let _ = sys::ofd_lock(
            self.fd(),
            RangeLock::Unlock,
            self.liveness_byte(i),
            1,
            false,
        );
    }

    /// Find dead workers (LIVE entries whose liveness byte nobody else
    /// holds and that are not ours), re-queue their chunks and free their
    /// entries. Returns the number of chunks re-queued.
    pub(crate) fn reap(&self) -> Result<u64> {
        self.require_writable()?;
        let live = self.proc.live.lock();
        let mut requeued = 0;
        for i in 0..self.hdr.max_workers {
            if self.e32(i, entry::STATE).load(Ordering::Acquire) != layout::ENTRY_LIVE
                || live.contains_key(&i)
            {
                continue;
            }
            // Succeeds only if no other open file description holds the byte:
            // its worker is dead. Holding it gives us the right to clear it.
            if self.lock_byte(i)? {
                requeued += self.clear_dead_entry(i);
                self.unlock_byte(i);
            }
        }
        drop(live);
        if requeued > 0 {
            self.bump_event();
        }
        Ok(requeued)
    }

    /// Register a worker: lock a free (or dead) entry's liveness byte, clear
    /// what a dead predecessor left, fill the entry. Returns (slot, id, token).
    pub(crate) fn register(&self) -> Result<(u32, u32, u64)> {
        self.require_writable()?;
        let mut live = self.proc.live.lock();
        for i in 0..self.hdr.max_workers {
            if live.contains_key(&i) || !self.lock_byte(i)? {
                continue;
            }
            if self.clear_dead_entry(i) > 0 {
                self.bump_event();
            }
            let id = loop {
                let id = self
                    .s32(off::NEXT_WORKER_ID)
                    .fetch_add(1, Ordering::Relaxed);
                if id != 0 {
                    break id;
                }
            };
            let token = random_token();
            let flags = if self.hdr.barrier_parties > 0 {
                layout::FLAG_BARRIER_MEMBER
            } else {
                0
            };
            self.e32(i, entry::PID)
                .store(std::process::id(), Ordering::Relaxed);
            self.e32(i, entry::FLAGS).store(flags, Ordering::Relaxed);
            self.e64(i, entry::TOKEN).store(token, Ordering::Relaxed);
            self.e64(i, entry::CLAIMED).store(0, Ordering::Relaxed);
            self.e64(i, entry::COMPLETED).store(0, Ordering::Relaxed);
            self.e64(i, entry::JOINED_NS)
                .store(sys::monotonic_ns(), Ordering::Relaxed);
            self.e32(i, entry::ID).store(id, Ordering::Relaxed);
            self.e32(i, entry::STATE)
                .store(layout::ENTRY_LIVE, Ordering::Release);
            live.insert(i, token);
            return Ok((i, id, token));
        }
        Err(Error::new(
            ErrorKind::Full,
            format!(
                "all {} worker entries are held by live workers; create the queue with a larger max_workers",
                self.hdr.max_workers
            ),
        )
        .at(self.path()))
    }

    /// A worker leaves cleanly (it holds no claims any more).
    pub(crate) fn deregister(&self, slot: u32) {
        let mut live = self.proc.live.lock();
        self.e32(slot, entry::STATE)
            .store(layout::ENTRY_FREE, Ordering::Release);
        live.remove(&slot);
        self.unlock_byte(slot);
    }

    /// What the kernel does when a worker's process dies: the liveness lock
    /// goes away, the entry and its claims stay as they were.
    pub(crate) fn simulate_death(&self, slot: u32) {
        let mut live = self.proc.live.lock();
        live.remove(&slot);
        self.unlock_byte(slot);
    }

    /// The dead-worker rule. Entry `i` is a live worker iff its state is
    /// LIVE and either we registered it ourselves (same token) or some other
    /// open file description holds an OFD lock on its liveness byte.
    pub(crate) fn entry_alive(&self, live: &HashMap<u32, u64>, i: u32) -> bool {
        if self.e32(i, entry::STATE).load(Ordering::Acquire) != layout::ENTRY_LIVE {
            return false;
        }
        if let Some(&t) = live.get(&i) {
            return self.e64(i, entry::TOKEN).load(Ordering::Relaxed) == t;
        }
        // A probe error (which should not happen on a valid fd) counts as
        // alive: never declare a worker dead without proof.
        !matches!(
            sys::ofd_probe(self.fd(), RangeLock::Exclusive, self.liveness_byte(i), 1),
            Ok(None)
        )
    }

    /// Entries of live workers (probing each LIVE entry).
    pub(crate) fn live_workers(&self) -> Vec<u32> {
        let live = self.proc.live.lock();
        (0..self.hdr.max_workers)
            .filter(|&i| self.entry_alive(&live, i))
            .collect()
    }

    /// Is there a barrier member whose process died?
    pub(crate) fn dead_member(&self) -> bool {
        let live = self.proc.live.lock();
        (0..self.hdr.max_workers).any(|i| {
            self.e32(i, entry::STATE).load(Ordering::Acquire) == layout::ENTRY_LIVE
                && self.e32(i, entry::FLAGS).load(Ordering::Acquire) & layout::FLAG_BARRIER_MEMBER
                    != 0
                && !self.entry_alive(&live, i)
        })
    }

    pub(crate) fn progress(&self) -> QueueProgress {
        let requeued = self.s64(off::REQUEUED).load(Ordering::Acquire);
        let done = self.done().min(self.hdr.chunks);
        let live = self.live_workers();
        // In flight: chunks that registered workers' held slots name and
        // that are still claimed by them, whether the worker is alive or
        // dead and not reaped yet (a worker that overflowed its held slots
        // is counted from its claim counters instead).
        let mut in_flight = 0u64;
        for i in 0..self.hdr.max_workers {
            if self.e32(i, entry::STATE).load(Ordering::Acquire) != layout::ENTRY_LIVE {
                continue;
            }
            let id = self.e32(i, entry::ID).load(Ordering::Acquire);
            if self.e32(i, entry::FLAGS).load(Ordering::Acquire) & layout::FLAG_OVERFLOW != 0 {
                let claimed = self.e64(i, entry::CLAIMED).load(Ordering::Acquire);
                let completed = self.e64(i, entry::COMPLETED).load(Ordering::Acquire);
                in_flight += claimed.saturating_sub(completed);
                continue;
            }
            in_flight += (0..layout::HELD_SLOTS)
                .filter_map(|j| self.held(i, j).load(Ordering::Acquire).checked_sub(1))
                .filter(|&c| {
                    c < self.hdr.chunks
                        && self.chunk(c).load(Ordering::Acquire)
                            == layout::word(layout::CLAIMED, id)
                })
                .count() as u64;
        }
        let in_flight = in_flight.min(self.hdr.chunks - done);
        let bar = self.s32(off::BARRIER).load(Ordering::Acquire);
        QueueProgress {
            chunks: self.hdr.chunks,
            done,
            in_flight,
            pending: self
                .hdr
                .chunks
                .saturating_sub(done.saturating_add(in_flight)),
            requeued,
            workers: live.len() as u32,
            tasks: self.hdr.mode == layout::MODE_TASKS,
            rows: self.hdr.rows,
            chunk_rows: self.hdr.chunk_rows,
            barrier_parties: self.hdr.barrier_parties,
            barrier_generation: bar >> 16,
            barrier_arrived: bar & 0xFFFF,
            barrier_broken: self.s32(off::BARRIER_BROKEN).load(Ordering::Acquire) != 0,
        }
    }
}
