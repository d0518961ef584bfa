//! The consumer side: receive read leases on committed frames.

#![allow(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::handoff;
use super::lock::{Participant, lock_deadline};
use super::shared::wait_until;
use super::slot::{self, Frame};
use super::{DEFAULT_SPIN, TryRecvError, typed_check};
use crate::element::Element;
use crate::error::{Error, ErrorKind, Result};
use crate::fail;
use crate::format::ring as l;

/// A registered consumer of a [`Ring`](super::Ring): in queue mode it takes
/// frames no other consumer gets; in broadcast mode it is a subscriber that
/// gets every frame committed after it attached.
///
/// `Send + Sync`. Frames arrive whole, and in commit order.
pub struct Consumer {
    p: Arc<Participant>,
    spin: Duration,
    /// Queue mode: the ring's dropped counter at our last receive.
    last_dropped: AtomicU64,
}

impl Consumer {
    pub(crate) fn new(p: Arc<Participant>) -> Consumer {
        let dropped = p.ring.get(l::lock::DROPPED);
        Consumer {
            p,
            spin: DEFAULT_SPIN,
            last_dropped: AtomicU64::new(dropped),
        }
    }

    /// How long a blocking receive spins before parking (default 20 us).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The participant behind this handle (for the async waits in `aio.rs`).
    pub(crate) fn participant(&self) -> &Arc<Participant> {
        &self.p
    }

    /// This consumer's index in the participant table.
    pub fn index(&self) -> u32 {
        self.p.index
    }

    /// Receive the next frame without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let ring = sharray::Ring::builder(sharray::Dtype::parse_user("u1")?, &[4]).slots(2).create(dir.path().join("r.npy"))?;
    /// use sharray::TryRecvError;
    /// let consumer = ring.consumer()?;
    /// let producer = ring.producer()?;
    /// assert!(matches!(consumer.try_recv(), Err(TryRecvError::Empty)));
    ///
    /// producer.loan()?.commit()?;
    /// let frame = consumer.try_recv()?;
    /// assert_eq!(frame.seq(), 0);
    /// drop(frame);
    ///
    /// // A producer that merely goes away does not end the stream...
    /// drop(producer);
    /// assert!(matches!(consumer.try_recv(), Err(TryRecvError::Empty)));
    /// // ...closing it does (once the committed frames are drained).
    /// ring.producer()?.close()?;
    /// assert!(matches!(consumer.try_recv(), Err(TryRecvError::Disconnected)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if no frame is there now;
    /// [`TryRecvError::Disconnected`] if a producer closed the stream
    /// ([`Producer::close`](super::Producer::close)) and it is drained;
    /// [`TryRecvError::Error`] on lock errors.
    pub fn try_recv(&self) -> Result<ReadLease, TryRecvError> {
        match self.attempt(None) {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(TryRecvError::Empty),
            Err(e) if e.kind() == ErrorKind::Disconnected => Err(TryRecvError::Disconnected),
            Err(e) => Err(TryRecvError::Error(e)),
        }
    }

    fn attempt(&self, deadline: Option<Instant>) -> Result<Option<ReadLease>> {
        let r = &self.p.ring;
        let (got, ended) = if r.cfg.broadcast() {
            let lock = self.p.lock_or_wait(|| Some(lock_deadline(deadline)))?;
            fail::point("ring.recv.locked");
            let got = slot::recv(&lock, self.p.index);
            fail::point("ring.recv.applied");
            let ended = matches!(got, Ok(None)) && slot::closed(&lock);
            (got, ended)
        } else {
            // Lock-free (FORMAT.md 7.7). The stream has ended if it is
            // closed and still empty when looked at after seeing it closed
            // (the acquire on CLOSED makes every frame published before the
            // close visible).
            match handoff::recv(r, self.p.index) {
                Ok(None) if r.u64(l::lock::CLOSED).load(Ordering::Acquire) != 0 => {
                    let again = handoff::recv(r, self.p.index);
                    let ended = matches!(again, Ok(None));
                    (again, ended)
                }
                got => (got, false),
            }
        };
        let got = got.map_err(|m| Error::new(ErrorKind::Corrupt, m).at(r.map.path()))?;
        match got {
            Some(mut f) => {
                if !r.cfg.broadcast() {
                    let before = self.last_dropped.swap(f.lost, Ordering::Relaxed);
                    f.lost = f.lost.saturating_sub(before);
                }
                Ok(Some(ReadLease {
                    p: self.p.clone(),
                    f,
                    settled: false,
                }))
            }
            None if ended => Err(self.disconnected()),
            None => Ok(None),
        }
    }

    fn disconnected(&self) -> Error {
        Error::new(
            ErrorKind::Disconnected,
            "the ring's stream was closed by a producer and its frames are drained; stop consuming, or reopen the stream with a reopening producer",
        )
        .at(self.p.ring.map.path())
    }

    /// Receive the next frame, waiting as long as it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("r.npy");
    /// use sharray::{Dtype, ErrorKind, Ring};
    /// let ring = Ring::builder(Dtype::parse_user("u1")?, &[4]).slots(4).create(&path)?;
    /// let consumer = ring.consumer()?;
    ///
    /// // A producer process (here a thread with its own handle) sends 3
    /// // frames, then closes the stream.
    /// let producer = std::thread::spawn(move || -> sharray::Result<()> {
    ///     let p = Ring::open(&path)?.producer()?;
    ///     for i in 0..3u8 {
    ///         let mut loan = p.loan()?;
    ///         loan.bytes_mut().fill(i);
    ///         loan.commit()?;
    ///     }
    ///     p.close()
    /// });
    ///
    /// // Receive until the stream is closed and its frames are drained.
    /// let mut sum = 0;
    /// loop {
    ///     match consumer.recv() {
    ///         Ok(frame) => sum += frame.bytes()[0] as u32, // the lease drops here
    ///         Err(e) if e.kind() == ErrorKind::Disconnected => break,
    ///         Err(e) => return Err(e.into()),
    ///     }
    /// }
    /// producer.join().unwrap()?;
    /// assert_eq!(sum, 0 + 1 + 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] once a producer has closed the stream and
    /// its frames are drained. Producers that exit or die without closing
    /// do not end it: `recv` keeps waiting for the next producer.
    pub fn recv(&self) -> Result<ReadLease> {
        self.recv_until(None)
    }

    /// Receive the next frame, waiting at most `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let ring = sharray::Ring::builder(sharray::Dtype::parse_user("u1")?, &[4]).slots(2).create(dir.path().join("r.npy"))?;
    /// use sharray::ErrorKind;
    /// use std::time::Duration;
    /// let consumer = ring.consumer()?;
    /// let producer = ring.producer()?;
    /// let idle = consumer.recv_timeout(Duration::from_millis(10));
    /// assert_eq!(idle.unwrap_err().kind(), ErrorKind::Timeout);
    ///
    /// producer.loan()?.commit()?;
    /// let frame = consumer.recv_timeout(Duration::from_secs(1))?;
    /// assert_eq!(frame.valid_len(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if none came in time; as [`Consumer::recv`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ReadLease> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<ReadLease> {
        let got = wait_until(
            &self.p,
            l::commit::SEQ,
            l::commit::WAITERS,
            deadline,
            self.spin,
            || self.attempt(deadline),
        )?;
        got.ok_or_else(|| {
            Error::new(
                ErrorKind::Timeout,
                "timed out waiting for a frame; is a producer running?",
            )
            .at(self.p.ring.map.path())
        })
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("path", &self.p.ring.map.path())
            .field("index", &self.p.index)
            .finish()
    }
}

/// A received frame: read it in place; dropping the lease releases the slot.
///
/// The lease owns a reference to its consumer's registration, so it can be
/// stored anywhere and outlive the [`Consumer`] handle.
#[must_use = "dropping the lease releases the slot: the frame is gone unread"]
pub struct ReadLease {
    p: Arc<Participant>,
    f: Frame,
    /// Given back: nothing left to release on drop.
    settled: bool,
}

impl ReadLease {
    /// The frame's sequence number (its position in commit order, from 0).
    pub fn seq(&self) -> u64 {
        self.f.seq
    }

    /// `CLOCK_MONOTONIC` nanoseconds at commit (comparable across processes).
    pub fn timestamp_ns(&self) -> u64 {
        self.f.timestamp_ns
    }

    /// The producer's tag.
    pub fn tag(&self) -> u64 {
        self.f.tag
    }

    /// Valid bytes of the frame (the whole slot unless the producer said less).
    pub fn valid_len(&self) -> usize {
        self.f.valid_len as usize
    }

    /// Frames lost since this consumer's previous receive because the ring
    /// overwrote them (overwrite mode). Broadcast: frames this subscriber
    /// missed. Queue: frames the ring dropped meanwhile.
    pub fn lost(&self) -> u64 {
        self.f.lost
    }

    /// Index of the slot (row of the ring's array).
    pub fn slot(&self) -> usize {
        self.f.slot as usize
    }

    /// All bytes of the slot (valid or not).
    pub fn slot_bytes(&self) -> &[u8] {
        let n = self.p.ring.cfg.slot_bytes as usize;
        // SAFETY: the lease keeps the slot READING/leased by us: by protocol
        // no producer writes it until we release it.
        unsafe { self.p.ring.map.data_bytes(self.f.slot as usize * n, n) }
    }

    /// The valid bytes of the frame.
    pub fn bytes(&self) -> &[u8] {
        &self.slot_bytes()[..self.valid_len()]
    }

    /// The valid part of the frame as typed elements.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::DtypeMismatch`] if `T` is not the ring's dtype.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        typed_check::<T>(&self.p.ring)?;
        let n = self.valid_len() / std::mem::size_of::<T>().max(1);
        Ok(&bytemuck::cast_slice(self.slot_bytes())[..n])
    }

    /// The whole frame as an n-d view of the frame shape.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::DtypeMismatch`] if `T` is not the ring's dtype.
    #[cfg(feature = "ndarray")]
    pub fn view<T: Element>(&self) -> Result<ndarray::ArrayViewD<'_, T>> {
        typed_check::<T>(&self.p.ring)?;
        let shape = self.p.ring.map.header().shape[1..].to_vec();
        let s: &[T] = bytemuck::cast_slice(self.slot_bytes());
        Ok(ndarray::ArrayViewD::from_shape(shape, s).expect("slot matches the frame shape"))
    }
}

impl ReadLease {
    /// Give the frame back unconsumed, instead of releasing it: in queue
    /// mode it becomes the next frame the ring hands out (to any consumer);
    /// in broadcast mode this subscriber receives it again. For a consumer
    /// that could not use the frame (a full disk while saving it, say) and
    /// must not lose it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{Dtype, Ring};
    /// let ring = Ring::builder(Dtype::parse_user("uint8")?, &[4]).create(dir.path().join("r.npy"))?;
    /// let (p, c) = (ring.producer()?, ring.consumer()?);
    /// p.loan()?.commit()?;
    /// let lease = c.try_recv()?;
    /// assert_eq!(lease.seq(), 0);
    /// lease.give_back()?;                   // could not save it: keep it
    /// assert_eq!(c.try_recv()?.seq(), 0);    // the same frame, again
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] if the frame cannot go back in order (in
    /// queue mode another consumer has received a later frame since); the
    /// frame is released then. [`ErrorKind::LockTimeout`] if the ring lock
    /// stays held (by a stopped process); the lease is released as on drop.
    pub fn give_back(mut self) -> Result<()> {
        let r = self.p.ring.clone();
        let back = if r.cfg.broadcast() {
            let deadline = || Some(Instant::now() + Duration::from_secs(10));
            let lock = self.p.lock_or_wait(deadline)?;
            fail::point("ring.give_back.locked");
            let back = slot::give_back(&lock, self.p.index, self.f.slot, self.f.seq);
            fail::point("ring.give_back.applied");
            back
        } else {
            handoff::give_back(&r, self.p.index, self.f.slot, self.f.seq)
        };
        if !back {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "frame {} cannot go back: another consumer has received a later frame since; it is released",
                    self.f.seq
                ),
            )
            .at(r.map.path()));
        }
        self.settled = true;
        if r.cfg.broadcast() {
            r.notify(l::commit::SEQ, l::commit::WAITERS, true);
        } else {
            handoff::wake_if_waiting(&r, l::commit::SEQ, l::commit::WAITERS, false);
        }
        Ok(())
    }
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let r = &self.p.ring;
        if !r.cfg.broadcast() {
            if handoff::release(r, self.p.index, self.f.slot, self.f.seq) {
                handoff::wake_if_waiting(r, l::free::SEQ, l::free::WAITERS, false);
            }
            return;
        }
        let deadline = || Some(Instant::now() + Duration::from_secs(10));
        if let Ok(lock) = self.p.lock_or_wait(deadline) {
            fail::point("ring.release.locked");
            let freed = slot::release(&lock, self.p.index, self.f.slot, self.f.seq);
            fail::point("ring.release.applied");
            drop(lock);
            if freed {
                r.notify(l::free::SEQ, l::free::WAITERS, false);
            }
        }
    }
}

impl std::fmt::Debug for ReadLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadLease")
            .field("seq", &self.f.seq)
            .field("slot", &self.f.slot)
            .field("tag", &self.f.tag)
            .field("valid_len", &self.f.valid_len)
            .field("lost", &self.f.lost)
            .finish()
    }
}
