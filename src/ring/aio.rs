//! The async forms of the ring's waits (see [`crate::aio`] for the
//! mechanism): `Consumer::recv_async`, `Producer::loan_async`.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use super::handoff;
use super::lock::{Participant, lock_deadline};
use super::shared::{reclaim_dead, wake_after_reclaim};
use super::{Consumer, Producer, ReadLease, TryLoanError, TryRecvError, WriteLoan};
use crate::aio::{WaitWords, Waiter, wait_for};
use crate::error::{Error, ErrorKind, Result};
use crate::format::ring as l;

/// A ring's commit (consumers) or free (producers) sequence word.
struct RingWords {
    p: Arc<Participant>,
    seq: u64,
    waiters: u64,
}

impl WaitWords for RingWords {
    fn word(&self) -> &AtomicU32 {
        self.p.ring.u32(self.seq)
    }
    fn waiters(&self) -> Option<&AtomicU32> {
        Some(self.p.ring.u32(self.waiters))
    }
    fn ready(&self) -> bool {
        let r = &self.p.ring;
        !r.cfg.broadcast()
            && if self.seq == l::commit::SEQ {
                handoff::frame_waiting(r)
            } else {
                handoff::slot_waiting(r)
            }
    }
    fn maintain(&self) {
        // Best effort, as in the blocking wait: a lock we cannot get soon is
        // retried a slice later.
        let soon = Some(Instant::now() + Duration::from_millis(5));
        if let Ok(lock) = self.p.lock(Some(lock_deadline(soon))) {
            let got = reclaim_dead(&lock);
            drop(lock);
            wake_after_reclaim(&self.p.ring, got);
        }
    }
}

impl Consumer {
    /// A [`Waiter`] on this ring's commits (for event loops of other front
    /// ends; Rust code awaits [`Consumer::recv_async`]).
    pub fn waiter(&self) -> Waiter {
        Waiter::new(Arc::new(RingWords {
            p: self.participant().clone(),
            seq: l::commit::SEQ,
            waiters: l::commit::WAITERS,
        }))
    }

    /// Await the next frame, at most `timeout` (`None`: as long as it
    /// takes). The async form of [`Consumer::recv`]: no thread blocks while
    /// waiting (one helper thread per process watches every async waiter's
    /// futex word), any executor works, and dropping the future unregisters
    /// it. Each attempt takes the ring lock briefly, as
    /// [`Consumer::try_recv`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct W(std::thread::Thread);
    /// #     impl std::task::Wake for W { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::sync::Arc::new(W(std::thread::current())).into();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::park(); }
    /// # }
    /// use sharray::{Dtype, ErrorKind, Ring};
    /// let path = dir.path().join("r.npy");
    /// let ring = Ring::builder(Dtype::parse_user("u1")?, &[4]).slots(2).create(&path)?;
    /// let consumer = ring.consumer()?;
    /// let producer = std::thread::spawn(move || -> sharray::Result<()> {
    ///     let p = Ring::open(&path)?.producer()?;
    ///     p.loan()?.commit()?;
    ///     p.close()
    /// });
    /// let frame = block_on(consumer.recv_async(None))?;
    /// assert_eq!(frame.seq(), 0);
    /// drop(frame);
    /// let end = block_on(consumer.recv_async(None)).unwrap_err();
    /// assert_eq!(end.kind(), ErrorKind::Disconnected);
    /// producer.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv_timeout`]: [`ErrorKind::Timeout`],
    /// [`ErrorKind::Disconnected`] once the stream is closed and drained.
    pub async fn recv_async(&self, timeout: Option<Duration>) -> Result<ReadLease> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let got = wait_for(self.waiter(), deadline, || match self.try_recv() {
            Ok(lease) => Ok(Some(lease)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(Error::new(
                ErrorKind::Disconnected,
                "the ring's stream was closed by a producer and its frames are drained; stop consuming, or reopen the stream with a reopening producer",
            )
            .at(self.participant().ring.map.path())),
            Err(TryRecvError::Error(e)) => Err(e),
        })
        .await?;
        got.ok_or_else(|| {
            Error::new(
                ErrorKind::Timeout,
                "timed out waiting for a frame; is a producer running?",
            )
            .at(self.participant().ring.map.path())
        })
    }
}

impl Producer {
    /// A [`Waiter`] on this ring's freed slots (for event loops of other
    /// front ends; Rust code awaits [`Producer::loan_async`]).
    pub fn waiter(&self) -> Waiter {
        Waiter::new(Arc::new(RingWords {
            p: self.participant().clone(),
            seq: l::free::SEQ,
            waiters: l::free::WAITERS,
        }))
    }

    /// Await a free slot, at most `timeout` (`None`: as long as it takes).
    /// The async form of [`Producer::loan`]; see [`Consumer::recv_async`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`]; as [`Producer::loan`]
    /// ([`ErrorKind::Disconnected`] once the stream was closed).
    pub async fn loan_async(&self, timeout: Option<Duration>) -> Result<WriteLoan> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let got = wait_for(self.waiter(), deadline, || match self.try_loan() {
            Ok(loan) => Ok(Some(loan)),
            Err(TryLoanError::Full) => Ok(None),
            Err(TryLoanError::Error(e)) => Err(e),
        })
        .await?;
        got.ok_or_else(|| {
            Error::new(
                ErrorKind::Timeout,
                "timed out waiting for a free ring slot; consumers are not keeping up, retry or raise the timeout",
            )
            .at(self.participant().ring.map.path())
        })
    }
}
