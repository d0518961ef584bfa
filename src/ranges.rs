//! In-process byte-range locks, one table per inode, shared by every handle
//! of this process: whole-array guards, row-region locks and worker-pool
//! claim views all register here, so no two threads of one process ever hold
//! overlapping `&[T]`/`&mut [T]` over the same bytes, whatever handle or
//! mapping they came through.
//!
//! Why a table of our own: `flock` and OFD byte-range locks belong to the
//! open file description, and all handles of a process share one description
//! per inode (see `file.rs`), so the kernel cannot tell our threads apart.
//!
//! Region locks also take OFD byte-range locks (for other processes). Because
//! OFD locks are not counted (unlocking a byte drops it for every holder in
//! the description), the table keeps the kernel state equal to the union of
//! what our threads hold: a released span unlocks only the bytes that no other
//! OFD-holding entry of the same description still covers. All OFD calls
//! happen under the table's mutex, so table and kernel state change together.

use std::collections::HashMap;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::file::Wait;
use crate::sys::{self, RangeLock};

/// A byte range `[start, end)` (absolute file offsets) and its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u64,
    pub end: u64,
    pub exclusive: bool,
}

impl Span {
    /// Every byte of the file (whole-array guards).
    pub(crate) fn whole(exclusive: bool) -> Span {
        Span {
            start: 0,
            end: u64::MAX,
            exclusive,
        }
    }

    fn conflicts(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end && (self.exclusive || other.exclusive)
    }
}

struct Held {
    id: u64,
    span: Span,
    /// The descriptor through which an OFD lock covers this span, if any.
    ofd: Option<RawFd>,
}

/// The in-process lock table of one inode.
pub(crate) struct RangeTable {
    held: Mutex<Vec<Held>>,
    released: Condvar,
    next_id: AtomicU64,
}

type Tables = Mutex<HashMap<(u64, u64), Weak<RangeTable>>>;

/// The table for inode `(dev, ino)`, shared by the whole process.
pub(crate) fn table_for(dev: u64, ino: u64) -> Arc<RangeTable> {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    let mut map = TABLES.get_or_init(|| Mutex::new(HashMap::new())).lock();
    if let Some(t) = map.get(&(dev, ino)).and_then(Weak::upgrade) {
        return t;
    }
    map.retain(|_, w| w.strong_count() > 0);
    let t = Arc::new(RangeTable {
        held: Mutex::new(Vec::new()),
        released: Condvar::new(),
        next_id: AtomicU64::new(1),
    });
    map.insert((dev, ino), Arc::downgrade(&t));
    t
}

/// Bytes of `span` not covered by any OFD-holding entry of descriptor `fd`.
fn uncovered(held: &[Held], span: Span, fd: RawFd) -> Vec<(u64, u64)> {
    let mut cover: Vec<(u64, u64)> = held
        .iter()
        .filter(|h| h.ofd == Some(fd) && h.span.start < span.end && span.start < h.span.end)
        .map(|h| (h.span.start, h.span.end))
        .collect();
    cover.sort_unstable();
    let mut gaps = Vec::new();
    let mut at = span.start;
    for (s, e) in cover {
        if s > at {
            gaps.push((at, s.min(span.end)));
        }
        at = at.max(e);
        if at >= span.end {
            break;
        }
    }
    if at < span.end {
        gaps.push((at, span.end));
    }
    gaps
}

fn ofd_unlock_gaps(held: &[Held], span: Span, fd: BorrowedFd<'_>, raw: RawFd) {
    for (s, e) in uncovered(held, span, raw) {
        // Unlocking cannot conflict; an error would mean a bad fd, which the
        // holder's lifetime rules out. Nothing useful to do with it in Drop.
        let _ = sys::ofd_lock(fd, RangeLock::Unlock, s, e - s, false);
    }
}

/// A tiny xorshift for backoff jitter (two processes that collide must not
/// retry in lockstep).
fn jitter(nap: Duration) -> Duration {
    use std::cell::Cell;
    thread_local!(static X: Cell<u64> = Cell::new(sys::monotonic_ns() | 1));
    let r = X.with(|x| {
        let mut v = x.get();
        v ^= v << 13;
        v ^= v >> 7;
        v ^= v << 17;
        x.set(v);
        v
    });
    let n = nap.as_nanos() as u64;
    Duration::from_nanos(n / 2 + r % (n / 2 + 1))
}

impl RangeTable {
    /// Take every span of `spans` at once (all or nothing), waiting as `wait`
    /// says. With `ofd`, also take OFD byte-range locks on the spans through
    /// that descriptor (zero-length spans are skipped: an OFD length of 0
    /// would mean "to the end of the file"). Returns the entry ids to pass to
    /// [`RangeTable::release`], or `None` if the wait expired.
    ///
    /// Other threads of this process are waited for on a condition variable;
    /// other processes (OFD conflicts) by polling with a growing, jittered
    /// sleep (50 us to 5 ms), because `F_OFD_SETLKW` has no timeout and taking
    /// several ranges one by one with blocking calls could deadlock.
    pub(crate) fn acquire(
        &self,
        spans: &[Span],
        ofd: Option<BorrowedFd<'_>>,
        wait: Wait,
    ) -> io::Result<Option<Vec<u64>>> {
        let raw = ofd.map(|fd| std::os::fd::AsRawFd::as_raw_fd(&fd));
        let mut order: Vec<usize> = (0..spans.len()).collect();
        order.sort_by_key(|&i| spans[i].start);
        let mut nap = Duration::from_micros(50);
        let mut held = self.held.lock();
        loop {
            let local_busy = spans
                .iter()
                .any(|s| held.iter().any(|h| h.span.conflicts(s)));
            if !local_busy {
                let mut remote_busy = false;
                if let (Some(fd), Some(rawfd)) = (ofd, raw) {
                    let mut taken: Vec<Span> = Vec::new();
                    for &i in &order {
                        let s = spans[i];
                        if s.start >= s.end {
                            continue;
                        }
                        let kind = if s.exclusive {
                            RangeLock::Exclusive
                        } else {
                            RangeLock::Shared
                        };
                        match sys::ofd_lock(fd, kind, s.start, s.end - s.start, false) {
                            Ok(true) => taken.push(s),
                            Ok(false) => {
                                remote_busy = true;
                                break;
                            }
                            Err(e) => {
                                for t in taken {
                                    ofd_unlock_gaps(&held, t, fd, rawfd);
                                }
                                return Err(e);
                            }
                        }
                    }
                    if remote_busy {
                        for t in taken {
                            ofd_unlock_gaps(&held, t, fd, rawfd);
                        }
                    }
                }
                if !remote_busy {
                    let ids = spans
                        .iter()
                        .map(|&span| {
                            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                            held.push(Held { id, span, ofd: raw });
                            id
                        })
                        .collect();
                    return Ok(Some(ids));
                }
                // Another process holds part of it: back off without holding
                // anything, then retry everything.
                let pause = match wait.remaining() {
                    Some(left) if left.is_zero() => return Ok(None),
                    Some(left) => jitter(nap).min(left),
                    None => jitter(nap),
                };
                drop(held);
                std::thread::sleep(pause);
                nap = (nap * 2).min(Duration::from_millis(5));
                held = self.held.lock();
                continue;
            }
            match wait {
                Wait::No => return Ok(None),
                Wait::Until(deadline) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    let _ = self.released.wait_until(&mut held, deadline);
                }
                Wait::Forever => self.released.wait(&mut held),
            }
        }
    }

    /// Release entries taken by [`RangeTable::acquire`] (with the same `ofd`
    /// descriptor): OFD locks are dropped on the bytes no other entry of ours
    /// still covers, and waiting threads are woken.
    pub(crate) fn release(&self, ids: &[u64], ofd: Option<BorrowedFd<'_>>) {
        let mut held = self.held.lock();
        let mut gone = Vec::with_capacity(ids.len());
        held.retain(|h| {
            if ids.contains(&h.id) {
                gone.push((h.span, h.ofd));
                false
            } else {
                true
            }
        });
        if let Some(fd) = ofd {
            for (span, raw) in gone {
                if let Some(raw) = raw
                    && span.start < span.end
                {
                    ofd_unlock_gaps(&held, span, fd, raw);
                }
            }
        }
        drop(held);
        self.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(start: u64, end: u64, exclusive: bool) -> Span {
        Span {
            start,
            end,
            exclusive,
        }
    }

    #[test]
    fn shared_spans_coexist_exclusive_ones_do_not() {
        let t = table_for(u64::MAX, 1);
        let a = t
            .acquire(&[sp(0, 10, false)], None, Wait::No)
            .unwrap()
            .unwrap();
        assert!(
            t.acquire(&[sp(5, 15, false)], None, Wait::No)
                .unwrap()
                .is_some()
        );
        assert!(
            t.acquire(&[sp(5, 6, true)], None, Wait::No)
                .unwrap()
                .is_none()
        );
        // disjoint exclusive is fine; all-or-nothing with one busy span fails
        let b = t
            .acquire(&[sp(20, 30, true)], None, Wait::No)
            .unwrap()
            .unwrap();
        assert!(
            t.acquire(&[sp(40, 50, true), sp(25, 26, false)], None, Wait::No)
                .unwrap()
                .is_none()
        );
        assert!(
            t.acquire(&[sp(40, 50, true)], None, Wait::No)
                .unwrap()
                .is_some()
        );
        t.release(&a, None);
        t.release(&b, None);
        // zero-length spans never conflict
        assert!(
            t.acquire(&[sp(3, 3, true)], None, Wait::No)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn uncovered_computes_gaps() {
        let held = vec![
            Held {
                id: 1,
                span: sp(2, 4, false),
                ofd: Some(7),
            },
            Held {
                id: 2,
                span: sp(6, 8, false),
                ofd: Some(7),
            },
            Held {
                id: 3,
                span: sp(0, 100, false),
                ofd: None,
            },
        ];
        assert_eq!(
            uncovered(&held, sp(0, 10, false), 7),
            vec![(0, 2), (4, 6), (8, 10)]
        );
        assert_eq!(uncovered(&held, sp(2, 4, false), 7), vec![]);
        assert_eq!(uncovered(&held, sp(3, 7, false), 7), vec![(4, 6)]);
        assert_eq!(uncovered(&held, sp(3, 7, false), 8), vec![(3, 7)]);
    }

    #[test]
    fn waiting_thread_gets_the_span_after_release() {
        let t = table_for(u64::MAX, 2);
        let a = t
            .acquire(&[sp(0, 10, true)], None, Wait::No)
            .unwrap()
            .unwrap();
        let t2 = t.clone();
        let h = std::thread::spawn(move || {
            t2.acquire(
                &[sp(5, 6, true)],
                None,
                Wait::timeout(Duration::from_secs(30)),
            )
            .unwrap()
            .is_some()
        });
        std::thread::sleep(Duration::from_millis(20));
        t.release(&a, None);
        assert!(h.join().unwrap());
    }
}
