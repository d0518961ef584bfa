//! Worker pools over shared arrays: a work queue, row-region locks and a
//! barrier, all of which survive a worker being killed.
//!
//! Terms: a *worker pool* is the pattern (a parent and N worker processes
//! sharing one job); a *work queue* is the file that coordinates it
//! ([`WorkQueue`], file kind `queue`, `sharray queue ...` on the command line).
//! (A ring's *queue mode* is unrelated: see [`crate::ring`].)
//!
//! The everyday job: a parent holds a big input array and wants N worker
//! processes to turn it into an output array, with no copies and no
//! pickling. The parent creates a [`WorkQueue`] (a small companion file)
//! that splits axis 0 into chunks of rows, or declares a number of tasks.
//! Each worker process [`joins`](WorkQueue::join) it, [`claims`](Worker::claim)
//! chunks (one CAS on a word in the mapped file, no lock round trip), writes
//! the chunk's rows of the output in place through the claim
//! ([`Claim::rows_mut`]), and [`completes`](Claim::complete) it. The parent
//! [waits](WorkQueue::wait_all) with a timeout and reads
//! [progress](WorkQueue::progress) at any time.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! use sharray::{SharedArray, WorkQueue};
//! use std::time::Duration;
//!
//! // Parent
//! let input = SharedArray::<f32>::builder().shape(&[1000, 64]).fill(1.0).create(dir.path().join("in.npy"))?;
//! let out = SharedArray::<f32>::create(dir.path().join("out.npy"), &[1000, 64])?;
//! let q = WorkQueue::builder().rows(1000).chunk_rows(100).create(dir.path().join("q.npy"))?;
//!
//! // Each worker (normally another process that opened the three files)
//! let w = q.join()?;
//! let src = input.read()?;                       // nobody writes the input during the job
//! while let Some(c) = w.claim()? {
//!     let r = c.rows();
//!     let x = &src[r.start * 64..r.end * 64];
//!     let mut y = c.rows_mut(&out)?;
//!     for (o, i) in y.iter_mut().zip(x) {
//!         *o = 2.0 * i + 1.0;
//!     }
//!     drop(y);
//!     c.complete()?;
//! }
//!
//! // Parent
//! let p = q.wait_all(Duration::from_secs(60))?;
//! assert_eq!(p.done, 10);
//! assert!(out.read()?.iter().all(|&v| v == 3.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Crashes
//!
//! Every worker holds an OFD byte-range lock on one byte of the queue file
//! (its worker-table entry); the kernel drops it when the process dies. A
//! worker that finds nothing to claim while chunks are still in flight, and
//! the parent's `wait_all`, look for entries whose lock is gone and re-queue
//! their chunks, so the job still finishes with every chunk completed exactly
//! once (a killed worker's chunk may be *processed* twice; it is *completed*
//! once, and the second writer overwrites the rows completely).
//!
//! ## Within one process
//!
//! All handles of a process share one open file description per file, so
//! the kernel cannot tell the threads of a process apart. Workers of the
//! same process are told apart by the random token of their entry, and row
//! access is additionally registered in a per-file, in-process range table
//! shared with whole-array guards and row-region locks, so threads never
//! alias each other's rows.
//!
//! FORMAT.md (section 8, "Queues") specifies the file and the protocol for peers in
//! other languages.

mod barrier;
mod prefault;
mod queue;
mod region;
mod rows_io;
mod shared;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use barrier::{Barrier, BarrierResult};
pub use queue::{Claim, OwnedUntypedRowsMut, RowsMut, UntypedRowsMut, Worker};
pub use region::{RowMode, RowsGuard};

use crate::error::{Error, ErrorKind, Result};
use crate::file::{OpenFlags, Wait};
use crate::format::queue as layout;
use shared::{QueueShared, SLICE};

// Handles are owned and shareable: a binding can keep them in structs and
// move them between threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<WorkQueue>();
    send_sync::<Worker>();
    send_sync::<Claim>();
    send_sync::<Barrier>();
};

/// Default size of a queue's worker table.
pub const DEFAULT_MAX_WORKERS: u32 = 128;

/// A snapshot of a queue's progress (what `sharray queue status` prints).
///
/// Counters are read one after another while workers run, so a snapshot may
/// be off by a chunk in flight; once the job is over it is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueProgress {
    /// Number of chunks (or tasks).
    pub chunks: u64,
    /// Chunks completed.
    pub done: u64,
    /// Chunks claimed and not yet completed.
    pub in_flight: u64,
    /// Chunks waiting to be claimed (including re-queued ones).
    pub pending: u64,
    /// Times a chunk was re-queued (its worker died or gave it back).
    pub requeued: u64,
    /// Live registered workers.
    pub workers: u32,
    /// `true` for a task queue, `false` for rows of an array.
    pub tasks: bool,
    /// Rows along axis 0 (= `chunks` for a task queue).
    pub rows: u64,
    /// Rows per chunk (1 for a task queue).
    pub chunk_rows: u64,
    /// Barrier party count (0: no barrier).
    pub barrier_parties: u32,
    /// Current barrier generation.
    pub barrier_generation: u32,
    /// Participants arrived in the current generation.
    pub barrier_arrived: u32,
    /// Did a participant die (every barrier wait fails until reset)?
    pub barrier_broken: bool,
}

impl QueueProgress {
    /// Is every chunk done?
    pub fn is_complete(&self) -> bool {
        self.done >= self.chunks
    }
}

/// The state of one chunk, as recorded in the queue file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkState {
    /// Waiting to be claimed.
    Pending,
    /// Claimed by the worker with this id.
    Claimed(u32),
    /// Completed by the worker with this id.
    Done(u32),
    /// A state value this build does not know (a corrupt or newer file).
    Unknown(u32),
}

/// One chunk's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkInfo {
    /// Current state.
    pub state: ChunkState,
    /// Times it was claimed.
    pub claims: u32,
    /// Times it was re-queued.
    pub requeues: u32,
}

/// Builder for a new queue file.
#[must_use = "a builder does nothing until `create` is called"]
#[derive(Debug, Clone)]
pub struct QueueBuilder {
    rows: Option<u64>,
    chunk_rows: Option<u64>,
    tasks: Option<u64>,
    max_workers: u32,
    barrier: u32,
    mode: u32,
}

impl QueueBuilder {
    /// Split `rows` rows of axis 0 (set the chunk size with
    /// [`QueueBuilder::chunk_rows`]).
    pub fn rows(mut self, rows: usize) -> Self {
        self.rows = Some(rows as u64);
        self
    }

    /// Rows per chunk (the last chunk may be shorter).
    pub fn chunk_rows(mut self, chunk_rows: usize) -> Self {
        self.chunk_rows = Some(chunk_rows as u64);
        self
    }

    /// Instead of rows: `tasks` independent tasks (a claim covers one).
    pub fn tasks(mut self, tasks: usize) -> Self {
        self.tasks = Some(tasks as u64);
        self
    }

    /// Size of the worker table (default [`DEFAULT_MAX_WORKERS`]): the most
    /// workers that can be registered at once. Entries of dead workers are
    /// reused.
    pub fn max_workers(mut self, n: u32) -> Self {
        self.max_workers = n;
        self
    }

    /// Give the queue a barrier of `parties` participants (default none).
    pub fn barrier(mut self, parties: u32) -> Self {
        self.barrier = parties;
        self
    }

    /// Permission bits of the file (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Create and publish the queue file (never overwrites).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if neither or both of rows and tasks were
    /// given, for a chunk size of 0, a worker table outside 1..=4096 or more
    /// barrier parties than worker entries; creation errors as
    /// [`crate::UntypedBuilder::create`].
    pub fn create(self, path: impl AsRef<Path>) -> Result<WorkQueue> {
        let path = path.as_ref();
        let invalid = |m: String| Error::new(ErrorKind::InvalidInput, m).at(path);
        let hdr = match (self.rows, self.tasks) {
            (Some(rows), None) => {
                let chunk = self.chunk_rows.ok_or_else(|| {
                    invalid("a row queue needs a chunk size: call chunk_rows(n)".into())
                })?;
                layout::QueueHeader::rows(rows, chunk, self.max_workers, self.barrier)
            }
            (None, Some(tasks)) => {
                layout::QueueHeader::tasks(tasks, self.max_workers, self.barrier)
            }
            _ => {
                return Err(invalid(
                    "give either rows (with chunk_rows) or tasks, not both or neither".into(),
                ));
            }
        }
        .map_err(invalid)?;
        Ok(WorkQueue {
            shared: Arc::new(QueueShared::create(path, hdr, self.mode)?),
        })
    }
}

/// A handle to a work queue, the file that coordinates a worker pool: create
/// it, open it, join it as a worker, read its progress, wait for it. Cheap to
/// clone (`Arc` inside), `Send + Sync`.
///
/// # Examples
///
/// A task queue (no array: `n` numbered tasks) shared by two workers, here
/// two threads; normally each is a process that opened the file itself.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("jobs.npy");
/// use sharray::WorkQueue;
/// use std::time::Duration;
///
/// let q = WorkQueue::builder().tasks(20).create(&path)?; // or "shm:jobs"
/// let workers: Vec<_> = (0..2)
///     .map(|_| {
///         let path = path.clone();
///         std::thread::spawn(move || -> sharray::Result<usize> {
///             let me = WorkQueue::open(&path)?.join()?;
///             let mut sum = 0;
///             while let Some(task) = me.claim()? {
///                 sum += task.index();   // the work of task `index`
///                 task.complete()?;
///             }
///             Ok(sum)
///         })
///     })
///     .collect();
///
/// let progress = q.wait_all(Duration::from_secs(60))?;
/// assert_eq!((progress.done, progress.chunks), (20, 20));
/// let total: usize = workers.into_iter().map(|w| w.join().unwrap()).sum::<sharray::Result<_>>()?;
/// assert_eq!(total, (0..20).sum());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Safety
///
/// A [`Claim`] makes its chunk's rows exclusive among cooperating workers
/// only: a process that writes those rows without holding the claim (or a row
/// lock) while a [`RowsMut`] lives causes undefined behaviour. See the
/// crate's [Safety model](crate#safety-model).
#[derive(Clone)]
pub struct WorkQueue {
    shared: Arc<QueueShared>,
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("path", &self.path())
            .field("chunks", &self.chunks())
            .finish()
    }
}

impl WorkQueue {
    /// Start building a new queue file.
    pub fn builder() -> QueueBuilder {
        QueueBuilder {
            rows: None,
            chunk_rows: None,
            tasks: None,
            max_workers: DEFAULT_MAX_WORKERS,
            barrier: 0,
            mode: 0o600,
        }
    }

    /// Open a queue file read-write (needed to join, reap or reset).
    ///
    /// # Errors
    ///
    /// As [`crate::OpenOptions::open_untyped`]; [`ErrorKind::Unsupported`] if
    /// the file is not a queue; [`ErrorKind::Corrupt`] for an invalid queue
    /// header.
    pub fn open(path: impl AsRef<Path>) -> Result<WorkQueue> {
        Self::open_with(path.as_ref(), true)
    }

    /// Open a queue file read-only: progress and chunk states only.
    ///
    /// # Errors
    ///
    /// As [`WorkQueue::open`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<WorkQueue> {
        Self::open_with(path.as_ref(), false)
    }

    /// Open a queue file with [`crate::OpenOptions`]: read-only or not, and
    /// [`crate::OpenOptions::allow_other_owner`] for a queue of another user.
    ///
    /// # Errors
    ///
    /// As [`WorkQueue::open`].
    pub fn open_with_options(
        path: impl AsRef<Path>,
        options: crate::OpenOptions,
    ) -> Result<WorkQueue> {
        Ok(WorkQueue {
            shared: Arc::new(QueueShared::open(path.as_ref(), options.flags())?),
        })
    }

    fn open_with(path: &Path, writable: bool) -> Result<WorkQueue> {
        let flags = OpenFlags {
            writable,
            allow_foreign_owner: false,
        };
        Ok(WorkQueue {
            shared: Arc::new(QueueShared::open(path, flags)?),
        })
    }

    /// The path of the queue file.
    pub fn path(&self) -> &Path {
        self.shared.path()
    }

    /// The mapped file (for access hints, `advice.rs`).
    pub(crate) fn mapping(&self) -> &crate::mapping::Mapping {
        &self.shared.map
    }

    /// Number of chunks (or tasks).
    pub fn chunks(&self) -> usize {
        self.shared.hdr.chunks as usize
    }

    /// Rows along axis 0 (= chunks for a task queue).
    pub fn rows(&self) -> usize {
        self.shared.hdr.rows as usize
    }

    /// Rows per chunk (1 for a task queue).
    pub fn chunk_rows(&self) -> usize {
        self.shared.hdr.chunk_rows as usize
    }

    /// Is this a task queue (rather than rows of an array)?
    pub fn is_tasks(&self) -> bool {
        self.shared.hdr.mode == layout::MODE_TASKS
    }

    /// Size of the worker table.
    pub fn max_workers(&self) -> u32 {
        self.shared.hdr.max_workers
    }

    /// Barrier party count (0: none).
    pub fn barrier_parties(&self) -> u32 {
        self.shared.hdr.barrier_parties
    }

    /// The rows of chunk `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.chunks()`.
    pub fn chunk_range(&self, i: usize) -> std::ops::Range<usize> {
        assert!(i < self.chunks(), "chunk {i} out of range");
        let r = self.shared.hdr.chunk_range(i as u64);
        r.start as usize..r.end as usize
    }

    /// The record of chunk `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.chunks()`.
    pub fn chunk(&self, i: usize) -> ChunkInfo {
        assert!(i < self.chunks(), "chunk {i} out of range");
        let q = &self.shared;
        let (st, owner) = layout::split(q.chunk(i as u64).load(Ordering::Acquire));
        ChunkInfo {
            state: match st {
                layout::PENDING => ChunkState::Pending,
                layout::CLAIMED => ChunkState::Claimed(owner),
                layout::DONE => ChunkState::Done(owner),
                s => ChunkState::Unknown(s),
            },
            claims: q
                .chunk_u32(i as u64, layout::RECORD_CLAIMS)
                .load(Ordering::Relaxed),
            requeues: q
                .chunk_u32(i as u64, layout::RECORD_REQUEUES)
                .load(Ordering::Relaxed),
        }
    }

    /// A snapshot of the progress (probes the liveness of every registered
    /// worker: a few system calls).
    pub fn progress(&self) -> QueueProgress {
        self.shared.progress()
    }

    /// Is every chunk done?
    pub fn is_done(&self) -> bool {
        self.shared.done() >= self.shared.hdr.chunks
    }

    /// Register this process (or thread) as a worker.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] if the worker table is full of live workers;
    /// [`ErrorKind::PermissionDenied`] on a read-only handle.
    pub fn join(&self) -> Result<Worker> {
        Worker::register(self.shared.clone())
    }

    /// Re-queue the chunks of dead workers now; returns how many. Claimers
    /// and [`WorkQueue::wait_all`] do this by themselves.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PermissionDenied`] on a read-only handle; `fcntl` errors.
    pub fn reap(&self) -> Result<u64> {
        self.shared.reap()
    }

    /// Wait until every chunk is done, at most `timeout`, re-queueing the
    /// chunks of dead workers every 50 ms meanwhile. Returns the final
    /// progress.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] with the progress in the message;
    /// [`ErrorKind::PermissionDenied`] on a read-only handle (reaping writes).
    pub fn wait_all(&self, timeout: Duration) -> Result<QueueProgress> {
        let q = &self.shared;
        let wait = Wait::timeout(timeout);
        loop {
            let seen = q.event().load(Ordering::SeqCst);
            if self.is_done() {
                return Ok(self.progress());
            }
            q.reap()?;
            let left = wait.remaining().unwrap_or(SLICE);
            if left.is_zero() {
                let p = self.progress();
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "queue not finished after {timeout:?}: {} of {} chunks done, {} in flight, {} pending, {} live workers",
                        p.done, p.chunks, p.in_flight, p.pending, p.workers
                    ),
                )
                .at(self.path()));
            }
            q.wait_event(seen, left.min(SLICE));
        }
    }

    /// Clear a broken barrier (after the dead participants were replaced)
    /// and start a new generation. Call it only while nobody waits on the
    /// barrier.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PermissionDenied`] on a read-only handle.
    pub fn reset_barrier(&self) -> Result<()> {
        self.shared.reset_barrier()
    }
}
