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

    pub(crate) fn done(&self) -> u64 {
        self.s64(off::DONE).load(Ordering::Acquire)
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

    /// One claim attempt, no waiting: first the cursor (fresh chunks), then a
    /// scan for pending chunks below it (re-queued, or orphaned by a claimer
    /// that died between moving the cursor and its CAS).
    pub(crate) fn try_claim(&self, id: u32, slot: u32) -> Option<u64> {
        let n = self.hdr.chunks;
        let next = self.s64(off::NEXT);
        while next.load(Ordering::Relaxed) < n {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            if self.cas_claim(i, id, slot) {
                return Some(i);
            }
        }
        (0..n).find(|&i| {
            layout::split(self.chunk(i).load(Ordering::Relaxed)).0 == layout::PENDING
                && self.cas_claim(i, id, slot)
        })
    }

    /// Mark chunk `i` done. Fails if the chunk no longer belongs to `id`
    /// (it was re-queued because this worker was taken for dead).
    pub(crate) fn complete(&self, i: u64, id: u32, slot: u32) -> Result<()> {
        match self.chunk(i).compare_exchange(
            layout::word(layout::CLAIMED, id),
            layout::word(layout::DONE, id),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                self.e64(slot, entry::COMPLETED)
                    .fetch_add(1, Ordering::Relaxed);
                let before = self.s64(off::DONE).fetch_add(1, Ordering::AcqRel);
                // DONE wraps rather than overflow on a corrupt file.
                if before.wrapping_add(1) == self.hdr.chunks {
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
            self.chunk_u32(i, layout::RECORD_REQUEUES)
                .fetch_add(1, Ordering::Relaxed);
            self.s64(off::REQUEUED).fetch_add(1, Ordering::Release);
        }
        ok
    }

    /// Give chunk `i` back (the claim was dropped without completing).
    pub(crate) fn abandon(&self, i: u64, id: u32) -> bool {
        let ok = self.requeue_chunk(i, layout::word(layout::CLAIMED, id));
        if ok {
            self.bump_event();
        }
        ok
    }

    /// Re-queue every chunk claimed by worker `id`. O(chunks).
    fn requeue_owner(&self, id: u32) -> u64 {
        let claimed = layout::word(layout::CLAIMED, id);
        (0..self.hdr.chunks)
            .filter(|&i| {
                self.chunk(i).load(Ordering::Relaxed) == claimed && self.requeue_chunk(i, claimed)
            })
            .count() as u64
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
        // Re-queue before freeing: if we die in between, the entry still
        // names the dead worker and the next reaper finishes the job.
        let n = self.requeue_owner(id);
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
        let done = self.s64(off::DONE).load(Ordering::Acquire);
        let claimed = self.s64(off::CLAIMED).load(Ordering::Acquire);
        let in_flight = claimed
            .saturating_sub(done.saturating_add(requeued))
            .min(self.hdr.chunks - done.min(self.hdr.chunks));
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
            workers: self.live_workers().len() as u32,
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
