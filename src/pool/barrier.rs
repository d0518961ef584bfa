//! A reusable, generation-counted barrier for the workers of a queue file,
//! which a dying participant breaks instead of hanging the others.
//!
//! One 32-bit futex word holds `generation << 16 | arrived`. Arriving is a
//! CAS that adds one; the last arrival instead moves to `(generation + 1) << 16`
//! and wakes everyone. Waiters park on the word in bounded slices and, after
//! each, check the liveness of every barrier member (the workers of the
//! queue): a member whose process died sets `barrier_broken` and every wait
//! fails with [`ErrorKind::Disconnected`] until [`WorkQueue::reset_barrier`].
//!
//! A participant that *leaves* cleanly (drops its worker) does not break the
//! barrier; if the others still expected it, they wait until their timeout.
//! Keep workers registered until they have passed their last barrier.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::shared::{QueueShared, SLICE};
use super::{WorkQueue, Worker};
use crate::error::{Error, ErrorKind, Result};
use crate::file::Wait;
use crate::format::queue::off;
use crate::sys;

/// What a completed barrier wait returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierResult {
    /// The generation that completed (counts from 0, wraps at 65536).
    pub generation: u32,
    /// `true` for exactly one participant per generation: the last to arrive.
    pub is_leader: bool,
}

impl QueueShared {
    fn broken_error(&self) -> Error {
        Error::new(
            ErrorKind::Disconnected,
            "the barrier is broken: a participant died; restart the job (the parent can reset the barrier once the workers are replaced)",
        )
        .at(self.path())
    }

    pub(crate) fn break_barrier(&self) {
        self.s32(off::BARRIER_BROKEN).store(1, Ordering::SeqCst);
        sys::futex_wake(self.s32(off::BARRIER), i32::MAX);
    }

    pub(crate) fn reset_barrier(&self) -> Result<()> {
        self.require_writable()?;
        let word = self.s32(off::BARRIER);
        let generation = word.load(Ordering::Acquire) >> 16;
        word.store(((generation + 1) & 0xFFFF) << 16, Ordering::SeqCst);
        self.s32(off::BARRIER_BROKEN).store(0, Ordering::SeqCst);
        sys::futex_wake(word, i32::MAX);
        Ok(())
    }

    pub(crate) fn barrier_wait(&self, wait: Wait) -> Result<BarrierResult> {
        self.require_writable()?;
        let parties = self.hdr.barrier_parties;
        if parties == 0 {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "this queue has no barrier; create it with a barrier party count (`barrier(n)`, `--barrier N`)",
            )
            .at(self.path()));
        }
        let word = self.s32(off::BARRIER);
        let broken = self.s32(off::BARRIER_BROKEN);
        let waiters = self.s32(off::BARRIER_WAITERS);
        if broken.load(Ordering::Acquire) != 0 {
            return Err(self.broken_error());
        }
        let mut w = word.load(Ordering::Acquire);
        let generation = loop {
            let generation = w >> 16;
            let last = (w & 0xFFFF) + 1 >= parties;
            let new = if last {
                ((generation + 1) & 0xFFFF) << 16
            } else {
                w + 1
            };
            match word.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) if last => {
                    sys::futex_wake(word, i32::MAX);
                    return Ok(BarrierResult {
                        generation,
                        is_leader: true,
                    });
                }
                Ok(_) => {
                    crate::fail::point("pool.barrier.arrived");
                    break generation;
                }
                Err(now) => w = now,
            }
        };
        let passed = BarrierResult {
            generation,
            is_leader: false,
        };
        loop {
            let w = word.load(Ordering::Acquire);
            if w >> 16 != generation {
                return Ok(passed);
            }
            if broken.load(Ordering::Acquire) != 0 {
                return Err(self.broken_error());
            }
            if self.dead_member() {
                self.break_barrier();
                return Err(self.broken_error());
            }
            let left = wait.remaining();
            if left.is_some_and(|d| d.is_zero()) {
                // Withdraw our arrival unless the generation completed.
                let mut w = word.load(Ordering::Acquire);
                loop {
                    if w >> 16 != generation {
                        return Ok(passed);
                    }
                    if w & 0xFFFF == 0 {
                        // Our arrival is gone already (a reset, or a word
                        // changed outside the protocol): nothing to withdraw.
                        break;
                    }
                    match word.compare_exchange_weak(w, w - 1, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => break,
                        Err(now) => w = now,
                    }
                }
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "barrier timed out with {} of {parties} participants arrived; a worker is slow or never joined, raise the timeout",
                        w & 0xFFFF
                    ),
                )
                .at(self.path()));
            }
            let nap = left.map_or(SLICE, |d| d.min(SLICE));
            waiters.fetch_add(1, Ordering::SeqCst);
            sys::futex_wait(word, w, Some(nap));
            waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Worker {
    /// Wait until `barrier_parties` workers of this queue have arrived, at
    /// most `timeout` (`None`: as long as it takes; waits are still bounded
    /// slices that check for dead participants).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if a participant (a worker of this queue)
    /// died, now or earlier; [`ErrorKind::Timeout`] (our arrival is
    /// withdrawn); [`ErrorKind::Unsupported`] if the queue has no barrier.
    pub fn barrier_wait(&self, timeout: Option<Duration>) -> Result<BarrierResult> {
        let wait = timeout.map_or(Wait::Forever, Wait::timeout);
        self.shared().barrier_wait(wait)
    }
}

/// A barrier participant: a worker of a queue file created with a barrier
/// (typically with zero tasks).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("sync.npy");
/// use sharray::pool::Barrier;
/// use std::time::Duration;
/// Barrier::create(&path, 1)?;
/// let b = Barrier::join(&path)?;
/// let r = b.wait(Some(Duration::from_secs(5)))?;
/// assert!(r.is_leader);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Barrier {
    worker: Worker,
}

impl Barrier {
    /// Create a queue file with no tasks and a barrier of `parties`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for 0 parties; otherwise as
    /// [`super::QueueBuilder::create`].
    pub fn create(path: impl AsRef<Path>, parties: u32) -> Result<WorkQueue> {
        if parties == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a barrier needs at least one party",
            )
            .at(path.as_ref()));
        }
        WorkQueue::builder()
            .tasks(0)
            .barrier(parties)
            .max_workers(parties.max(1))
            .create(path)
    }

    /// Open a queue file and register as a participant.
    ///
    /// # Errors
    ///
    /// As [`WorkQueue::open`] and [`WorkQueue::join`].
    pub fn join(path: impl AsRef<Path>) -> Result<Barrier> {
        Ok(Barrier {
            worker: WorkQueue::open(path)?.join()?,
        })
    }

    /// See [`Worker::barrier_wait`].
    ///
    /// # Errors
    ///
    /// As [`Worker::barrier_wait`].
    pub fn wait(&self, timeout: Option<Duration>) -> Result<BarrierResult> {
        self.worker.barrier_wait(timeout)
    }

    /// The worker registration behind this participant.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }
}
