//! The append protocol of FORMAT.md 9.3-9.4: the append lock, the redo
//! journal, reserving, publishing in order, rolling back dead appenders.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::{Inner, locals};
use crate::error::{Error, ErrorKind, Result};
use crate::format::control;
use crate::format::grow::{self, entry, off};
use crate::sys;

/// The append lock, held: a thread lock, then the OFD lock on the section's
/// lock byte (FORMAT.md 9.3). Released on drop.
pub(super) struct AppendLock<'a> {
    inner: &'a Inner,
    _thread: parking_lot::MutexGuard<'a, ()>,
}

impl Drop for AppendLock<'_> {
    fn drop(&mut self) {
        let i = self.inner;
        let _ = sys::ofd_lock(
            i.file.file(),
            sys::RangeLock::Unlock,
            i.sec(off::LOCK),
            1,
            false,
        );
    }
}

impl Inner {
    pub(super) fn sec(&self, rel: u64) -> u64 {
        self.cfg.sec() + rel
    }

    pub(super) fn u64(&self, file_off: u64) -> &AtomicU64 {
        assert!(file_off.is_multiple_of(8) && file_off + 8 <= self.map.len() as u64);
        // SAFETY: in bounds and 8-aligned (asserted; the mapping is page
        // aligned); shared words are only ever accessed atomically.
        unsafe { &*(self.map.as_mut_ptr().add(file_off as usize) as *const AtomicU64) }
    }

    pub(super) fn u32(&self, file_off: u64) -> &AtomicU32 {
        assert!(file_off.is_multiple_of(4) && file_off + 4 <= self.map.len() as u64);
        // SAFETY: as in `u64`, 4-aligned.
        unsafe { &*(self.map.as_mut_ptr().add(file_off as usize) as *const AtomicU32) }
    }

    pub(super) fn data_ptr(&self) -> *mut u8 {
        // SAFETY: the data offset is inside the mapping (checked at open).
        unsafe { self.map.as_mut_ptr().add(control::DATA_OFFSET as usize) }
    }

    pub(super) fn generation(&self) -> &AtomicU64 {
        self.u64(self.cfg.ctrl_off + control::off::GENERATION as u64)
    }

    pub(super) fn gen_seq(&self) -> &AtomicU32 {
        self.u32(self.cfg.ctrl_off + control::off::GEN_SEQ as u64)
    }

    pub(super) fn gen_waiters(&self) -> &AtomicU32 {
        self.u32(self.cfg.ctrl_off + control::off::GEN_WAITERS as u64)
    }

    pub(super) fn entry_word(&self, e: u32, field: u64) -> &AtomicU64 {
        self.u64(self.sec(grow::entry_off(e) + field))
    }

    pub(super) fn get(&self, rel: u64) -> u64 {
        self.u64(self.sec(rel)).load(Ordering::Acquire)
    }

    /// Park on `gen_seq` while it still reads `s`, at most `d`.
    pub(super) fn park(&self, s: u32, d: Duration) {
        if self.map_writable {
            self.gen_waiters().fetch_add(1, Ordering::SeqCst);
            if self.gen_seq().load(Ordering::SeqCst) == s {
                sys::futex_wait(self.gen_seq(), s, Some(d));
            }
            self.gen_waiters().fetch_sub(1, Ordering::SeqCst);
        } else {
            sys::futex_wait(self.gen_seq(), s, Some(d.min(Duration::from_millis(5))));
        }
    }

    /// Wake everyone parked on `gen_seq` (and bump the generation if rows
    /// were published).
    pub(super) fn wake(&self, published: bool) {
        if published {
            self.generation().fetch_add(1, Ordering::SeqCst);
        }
        self.gen_seq().fetch_add(1, Ordering::SeqCst);
        if self.gen_waiters().load(Ordering::SeqCst) > 0 {
            sys::futex_wake(self.gen_seq(), i32::MAX);
        }
    }

    pub(super) fn lock(&self) -> Result<AppendLock<'_>> {
        let thread = self.thread_lock.lock();
        sys::ofd_lock(
            self.file.file(),
            sys::RangeLock::Exclusive,
            self.sec(off::LOCK),
            1,
            true,
        )
        .map_err(|e| Error::io("cannot take the append lock", e).at(self.file.path()))?;
        let g = AppendLock {
            inner: self,
            _thread: thread,
        };
        self.replay();
        // A publisher that died between `published` and the header leaves
        // the header behind; it is always safe to store it again.
        if let Some(w) = grow::count_word(self.get(off::PUBLISHED).min(self.cfg.capacity)) {
            self.u64(self.cfg.count_field).store(w, Ordering::Release);
        }
        Ok(g)
    }

    /// Finish a transaction a dead lock holder left half-done.
    pub(super) fn replay(&self) {
        let len = self.get(off::JOURNAL_LEN);
        if len == 0 {
            return;
        }
        if len <= grow::JOURNAL_CAP {
            for k in 0..len {
                let at = self.get(off::JOURNAL + 16 * k);
                let value = self.get(off::JOURNAL + 16 * k + 8);
                if grow::journal_target_ok(&self.cfg, at) {
                    self.u64(at).store(value, Ordering::Release);
                }
            }
        }
        self.u64(self.sec(off::JOURNAL_LEN))
            .store(0, Ordering::Release);
    }

    /// Store several words as one transaction (FORMAT.md 9.3): entirely or
    /// not at all, even if this process dies half-way. Under the lock.
    pub(super) fn txn(&self, _g: &AppendLock<'_>, writes: &[(u64, u64)]) {
        debug_assert!(writes.len() as u64 <= grow::JOURNAL_CAP);
        if writes.len() > 1 {
            for (k, &(at, value)) in writes.iter().enumerate() {
                let j = off::JOURNAL + 16 * k as u64;
                self.u64(self.sec(j)).store(at, Ordering::Relaxed);
                self.u64(self.sec(j + 8)).store(value, Ordering::Relaxed);
            }
            self.u64(self.sec(off::JOURNAL_LEN))
                .store(writes.len() as u64, Ordering::Release);
        }
        for &(at, value) in writes {
            crate::fail::point("grow.txn.store");
            self.u64(at).store(value, Ordering::Release);
        }
        if writes.len() > 1 {
            self.u64(self.sec(off::JOURNAL_LEN))
                .store(0, Ordering::Release);
        }
    }

    pub(super) fn local_own(&self, e: u32) -> bool {
        locals()
            .lock()
            .get(&self.key)
            .is_some_and(|l| l.own.contains(&e))
    }

    pub(super) fn alive(&self, e: u32) -> bool {
        if self.local_own(e) {
            return true;
        }
        let byte = self.sec(grow::entry_off(e));
        sys::ofd_probe(self.file.file(), sys::RangeLock::Exclusive, byte, 1)
            .map_or(true, |c| c.is_some())
    }

    /// Take a free appender entry for this handle: the first entry whose
    /// byte we can lock and whose state is FREE.
    pub(super) fn claim_entry(&self) -> Result<u32> {
        // Under the append lock, after its journal replay: an appender
        // killed mid-transaction may have left its entry looking FREE until
        // the replay marks it WRITING (taking it then would lose its rows'
        // reservation: a hole nobody fills). Lock order: append lock, then
        // the process table (as `reap` does through `alive`).
        let _g = self.lock()?;
        let mut all = locals().lock();
        let local = all.entry(self.key).or_default();
        for e in 0..self.cfg.max_appenders {
            if local.own.contains(&e) {
                continue;
            }
            let byte = self.sec(grow::entry_off(e));
            let got = sys::ofd_lock(self.file.file(), sys::RangeLock::Exclusive, byte, 1, false)
                .map_err(|err| {
                    Error::io("cannot lock an appender entry", err).at(self.file.path())
                })?;
            if !got {
                continue;
            }
            if self.entry_word(e, entry::STATE).load(Ordering::Acquire) != grow::FREE {
                // A dead appender's reservation: the append lock's holder
                // rolls it back; not ours to reuse before that.
                let _ = sys::ofd_lock(self.file.file(), sys::RangeLock::Unlock, byte, 1, false);
                continue;
            }
            self.entry_word(e, entry::PID)
                .store(u64::from(std::process::id()), Ordering::Relaxed);
            local.own.insert(e);
            return Ok(e);
        }
        Err(Error::new(
            ErrorKind::Full,
            format!(
                "all {} appender entries are taken (or hold a dead appender's rows waiting for rollback); close other appending handles or retry",
                self.cfg.max_appenders
            ),
        )
        .at(self.file.path()))
    }

    pub(super) fn release_entry(&self, e: u32) {
        let mut all = locals().lock();
        if let Some(l) = all.get_mut(&self.key) {
            l.own.remove(&e);
        }
        let byte = self.sec(grow::entry_off(e));
        let _ = sys::ofd_lock(self.file.file(), sys::RangeLock::Unlock, byte, 1, false);
    }

    /// Non-free entries: (start, entry, state, count, ticket).
    pub(super) fn busy(&self) -> Vec<(u64, u32, u64, u64, u64)> {
        (0..self.cfg.max_appenders)
            .filter_map(|e| {
                let state = self.entry_word(e, entry::STATE).load(Ordering::Acquire);
                (state != grow::FREE).then(|| {
                    (
                        self.entry_word(e, entry::START).load(Ordering::Acquire),
                        e,
                        state,
                        self.entry_word(e, entry::COUNT).load(Ordering::Acquire),
                        self.entry_word(e, entry::TICKET).load(Ordering::Acquire),
                    )
                })
            })
            .collect()
    }

    /// Roll back dead appenders' reservations (FORMAT.md 9.4) if every live
    /// reservation after the first dead one is written. Returns `Some(true)`
    /// if it rolled back, `Some(false)` if a dead reservation must wait for
    /// live writers, `None` if there is none.
    pub(super) fn reap(&self, g: &AppendLock<'_>) -> Option<bool> {
        let busy = self.busy();
        let dead: Vec<bool> = busy.iter().map(|b| !self.alive(b.1)).collect();
        let h = busy
            .iter()
            .zip(&dead)
            .filter(|(_, d)| **d)
            .map(|(b, _)| b.0)
            .min()?;
        let mut after: Vec<_> = busy.iter().zip(&dead).filter(|(b, _)| b.0 >= h).collect();
        if after.iter().any(|(b, d)| !**d && b.2 == grow::WRITING) {
            return Some(false);
        }
        after.sort_unstable_by_key(|(b, _)| b.0);
        let mut w = h;
        let mut writes = Vec::new();
        for (&(start, e, _, count, ticket), &is_dead) in after {
            let at = |f| self.sec(grow::entry_off(e) + f);
            if is_dead {
                writes.push((at(entry::STATE), grow::FREE));
                continue;
            }
            if start != w {
                writes.push((at(entry::START), w));
                writes.push((at(entry::TICKET), ticket.wrapping_add(1)));
                writes.push((at(entry::STATE), grow::WRITING));
            }
            w = w.saturating_add(count);
        }
        writes.push((self.sec(off::RESERVED), w));
        writes.push((
            self.sec(off::ROLLBACKS),
            self.get(off::ROLLBACKS).wrapping_add(1),
        ));
        self.txn(g, &writes);
        self.advance(g);
        self.wake(false);
        Some(true)
    }

    /// Publish every written reservation that starts at `published`, in
    /// order. Returns whether anything was published.
    pub(super) fn advance(&self, g: &AppendLock<'_>) -> bool {
        let mut busy = self.busy();
        busy.sort_unstable();
        let old = self.get(off::PUBLISHED);
        let mut p = old;
        let mut writes = Vec::new();
        for &(start, e, state, count, _) in &busy {
            if start != p || state != grow::WRITTEN {
                break;
            }
            writes.push((self.sec(grow::entry_off(e) + entry::STATE), grow::FREE));
            p = p.saturating_add(count);
        }
        if p == old {
            return false;
        }
        let Some(word) = grow::count_word(p) else {
            return false;
        };
        writes.push((self.sec(off::PUBLISHED), p));
        writes.push((self.cfg.count_field, word));
        self.txn(g, &writes);
        self.wake(true);
        true
    }

    /// Give `[off, off + len)` real blocks before writing it (ENOSPC here,
    /// not SIGBUS later). Blocks are never freed (the file never shrinks),
    /// so this process remembers the last run it allocated and allocates
    /// ahead in 1 MiB steps: appends at the end rarely make the call.
    fn allocate(&self, off: u64, len: u64) -> std::io::Result<()> {
        const AHEAD: u64 = 1 << 20;
        let end = off + len;
        let mut run = self.allocated.lock();
        if off >= run.0 && end <= run.1 {
            return Ok(());
        }
        let data_end = control::DATA_OFFSET + self.cfg.capacity * self.cfg.row_bytes;
        let to = end.saturating_add(AHEAD).min(data_end).max(end);
        sys::fallocate(self.file.file(), off, to - off)?;
        *run = if off >= run.0 && off <= run.1 {
            (run.0, to)
        } else {
            (off, to)
        };
        Ok(())
    }

    pub(super) fn append_in(&self, e: u32, data: &[u8], n: u64) -> Result<u64> {
        let path = self.file.path();
        let at = |f| self.sec(grow::entry_off(e) + f);
        // Reserve.
        let (mut start, mut ticket) = loop {
            let s = self.gen_seq().load(Ordering::SeqCst);
            let g = self.lock()?;
            // Only outstanding reservations can be dead ones: skip the
            // liveness probes (a syscall per entry) when there are none.
            let outstanding = self.get(off::PUBLISHED) != self.get(off::RESERVED);
            if outstanding && self.reap(&g) == Some(false) {
                // A dead appender's rows wait for rollback: no new rows
                // until it is done (else it could wait forever).
                drop(g);
                self.park(s, Duration::from_millis(50));
                continue;
            }
            let r = self.get(off::RESERVED);
            if n > self.cfg.capacity.saturating_sub(r) {
                return Err(Error::new(
                    ErrorKind::Full,
                    format!(
                        "the growable array is full: capacity {} rows, {r} reserved, {n} more asked; growing past the capacity is not supported: create a larger one (`sharray create --growable --capacity ROWS`) and copy the rows",
                        self.cfg.capacity
                    ),
                )
                .at(path));
            }
            let ticket = self
                .u64(at(entry::TICKET))
                .load(Ordering::Acquire)
                .wrapping_add(1);
            self.txn(
                &g,
                &[
                    (at(entry::START), r),
                    (at(entry::COUNT), n),
                    (at(entry::TICKET), ticket),
                    (at(entry::STATE), grow::WRITING),
                    (self.sec(off::RESERVED), r + n),
                ],
            );
            break (r, ticket);
        };
        crate::fail::point("grow.append.reserved");
        loop {
            // A peer outside the protocol (or a damaged file) must not make
            // us write outside the data area.
            if start
                .checked_add(n)
                .is_none_or(|end| end > self.cfg.capacity)
            {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "the append section gave rows {start}..+{n} beyond the capacity of {} rows; the file is damaged, run `sharray check` on it",
                        self.cfg.capacity
                    ),
                )
                .at(path));
            }
            // Write, then mark written (under the lock, so a relocation in
            // between is seen).
            let off_bytes = control::DATA_OFFSET + start * self.cfg.row_bytes;
            self.allocate(off_bytes, data.len() as u64).map_err(|err| {
                Error::io("cannot allocate disk space for the new rows", err).at(path)
            })?;
            // SAFETY: rows [start, start + n) are reserved by our entry,
            // which is WRITING: no peer reads or writes them (FORMAT.md 9.4),
            // and they lie inside the data area (start + n <= capacity).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    data.as_ptr(),
                    self.data_ptr().add((start * self.cfg.row_bytes) as usize),
                    data.len(),
                );
            }
            crate::fail::point("grow.append.written");
            let mut s = self.gen_seq().load(Ordering::SeqCst);
            let mut g = self.lock()?;
            loop {
                let now = self.u64(at(entry::TICKET)).load(Ordering::Acquire);
                let state = self.u64(at(entry::STATE)).load(Ordering::Acquire);
                if state == grow::FREE {
                    return Ok(start);
                }
                if now != ticket {
                    // Moved down by a rollback: write again at the new place.
                    ticket = now;
                    start = self.u64(at(entry::START)).load(Ordering::Acquire);
                    break;
                }
                if state == grow::WRITING {
                    self.u64(at(entry::STATE))
                        .store(grow::WRITTEN, Ordering::Release);
                }
                self.advance(&g);
                if self.u64(at(entry::STATE)).load(Ordering::Acquire) == grow::FREE {
                    return Ok(start);
                }
                // Not published: an earlier reservation is unfinished. If its
                // appender is dead, roll it back (we then move and rewrite).
                self.reap(&g);
                if self.u64(at(entry::TICKET)).load(Ordering::Acquire) != ticket {
                    continue;
                }
                if self.u64(at(entry::STATE)).load(Ordering::Acquire) == grow::FREE {
                    return Ok(start);
                }
                drop(g);
                self.park(s, Duration::from_millis(50));
                s = self.gen_seq().load(Ordering::SeqCst);
                g = self.lock()?;
            }
        }
    }
}
