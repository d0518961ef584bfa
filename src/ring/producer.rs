//! The producer side: loan a free slot, fill it in place, commit it.

#![allow(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::handoff::{self, CommitError};
use super::lock::{Participant, lock_deadline};
use super::shared::{reclaim_dead, wait_until, wake_after_reclaim};
use super::{DEFAULT_SPIN, TryLoanError, slot, typed_check};
use crate::element::Element;
use crate::error::{Error, ErrorKind, Result};
use crate::fail;
use crate::format::ring as l;
use crate::sys;

/// Ring size (all slots) above which a queue-mode loan prefers the most
/// recently freed slot to the least recently used one.
const HOT_REUSE_ABOVE: u64 = 16 << 20;

/// A registered producer of a [`Ring`](super::Ring).
///
/// Holds an entry in the ring's participant table (and the OFD lock that
/// proves it alive) until it and every [`WriteLoan`] it handed out are
/// dropped. Several producers may share a ring. `Send + Sync`.
pub struct Producer {
    p: Arc<Participant>,
    spin: Duration,
    /// Queue mode: the slot after our last loan, where the next free-slot
    /// scan starts (the least recently used slot when frames are consumed
    /// in order: its lines have had the longest time to leave the
    /// consumers' caches).
    next: AtomicU32,
}

impl Producer {
    pub(crate) fn new(p: Arc<Participant>) -> Producer {
        Producer {
            p,
            spin: DEFAULT_SPIN,
            next: AtomicU32::new(0),
        }
    }

    /// How long a blocking loan spins on the ring before parking (default
    /// 20 us). Zero parks at once; longer spins cut hand-off latency at the
    /// price of CPU.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The participant behind this handle (for the async waits in `aio.rs`).
    pub(crate) fn participant(&self) -> &Arc<Participant> {
        &self.p
    }

    /// This producer's index in the participant table.
    pub fn index(&self) -> u32 {
        self.p.index
    }

    /// Loan a free slot without waiting. In overwrite mode the oldest frame
    /// that no consumer is reading is dropped to make room.
    ///
    /// # Errors
    ///
    /// [`TryLoanError::Full`] if every slot is loaned, committed-and-unread
    /// (backpressure) or leased; [`TryLoanError::Error`] if the ring lock
    /// could not be taken, or ([`ErrorKind::Disconnected`]) if the stream
    /// was closed.
    pub fn try_loan(&self) -> Result<WriteLoan, TryLoanError> {
        match self.try_loan_inner(None).map_err(TryLoanError::Error)? {
            Some(l) => Ok(l),
            None => Err(TryLoanError::Full),
        }
    }

    fn closed_error(&self) -> Error {
        Error::new(
            ErrorKind::Disconnected,
            "the ring's stream was closed; attach a reopening producer (Ring::producer_reopening) to send more",
        )
        .at(self.p.ring.map.path())
    }

    fn try_loan_inner(&self, deadline: Option<Instant>) -> Result<Option<WriteLoan>> {
        let r = &self.p.ring;
        let got = if r.cfg.broadcast() {
            let lock = self.p.lock_or_wait(|| Some(lock_deadline(deadline)))?;
            fail::point("ring.loan.locked");
            if slot::closed(&lock) {
                drop(lock);
                return Err(self.closed_error());
            }
            let got = slot::loan(&lock, self.p.index);
            fail::point("ring.loan.applied");
            got
        } else {
            // Lock-free (FORMAT.md 7.7).
            if r.u64(l::lock::CLOSED).load(Ordering::Acquire) != 0 {
                return Err(self.closed_error());
            }
            let me = self.p.index;
            // A ring that fits in a last-level cache: the least recently
            // used slot (its lines have left the consumer's core). A larger
            // one: the lowest free slot, most often the one just released,
            // whose data is still in some cache rather than in DRAM
            // (BENCHMARKS.md "Small frames (issue 12)").
            let start =
                if r.cfg.slot_bytes.saturating_mul(u64::from(r.cfg.geo.slots)) > HOT_REUSE_ABOVE {
                    0
                } else {
                    self.next.load(Ordering::Relaxed)
                };
            match handoff::loan(r, me, start) {
                Some(k) => Some((k, false)),
                None if r.cfg.overwrite() => handoff::steal_oldest(r, me)
                    .map_err(|m| Error::new(ErrorKind::Corrupt, m).at(r.map.path()))?
                    .map(|k| (k, true)),
                None => None,
            }
        };
        Ok(got.map(|(slot, dropped)| {
            self.next.store(slot + 1, Ordering::Relaxed);
            WriteLoan {
                p: self.p.clone(),
                slot,
                tag: 0,
                valid_len: self.p.ring.cfg.slot_bytes,
                dropped_oldest: dropped,
                done: false,
            }
        }))
    }

    /// Loan a free slot, waiting as long as it takes (backpressure).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{Dtype, Ring};
    /// let ring = Ring::builder(Dtype::parse_user("float32")?, &[2, 3]).slots(4)
    ///     .create(dir.path().join("r.npy"))?;
    /// let producer = ring.producer()?;
    /// let mut loan = producer.loan()?;             // the slot itself, no copy
    /// loan.as_mut_slice::<f32>()?.fill(0.25);      // or view_mut::<f32>() for ndarray
    /// loan.set_tag(9);                             // any u64 the consumers see
    /// let seq = loan.commit()?;
    ///
    /// let frame = ring.consumer()?.recv()?;
    /// assert_eq!((frame.seq(), frame.tag()), (seq, 9));
    /// assert_eq!(frame.as_slice::<f32>()?, &[0.25; 6]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the stream was closed (before or while
    /// waiting); lock errors (see [`Producer::try_loan`]).
    pub fn loan(&self) -> Result<WriteLoan> {
        self.loan_until(None)
    }

    /// Loan a free slot, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if no slot came free in time.
    pub fn loan_timeout(&self, timeout: Duration) -> Result<WriteLoan> {
        self.loan_until(Instant::now().checked_add(timeout))
    }

    fn loan_until(&self, deadline: Option<Instant>) -> Result<WriteLoan> {
        let got = wait_until(
            &self.p,
            l::free::SEQ,
            l::free::WAITERS,
            deadline,
            self.spin,
            || self.try_loan_inner(deadline),
        )?;
        got.ok_or_else(|| {
            Error::new(
                ErrorKind::Timeout,
                "timed out waiting for a free ring slot; consumers are not keeping up, retry or raise the timeout",
            )
            .at(self.p.ring.map.path())
        })
    }
}

impl Producer {
    /// Close the stream: consumers receive the frames already committed, then
    /// [`ErrorKind::Disconnected`] (end of stream). Until a producer closes
    /// it, a stream never ends: producers that exit or die without closing
    /// leave consumers waiting for the next one. Afterwards no producer of
    /// the ring can loan a slot, and [`Ring::producer`](super::Ring::producer)
    /// refuses to attach; [`Ring::producer_reopening`](super::Ring::producer_reopening)
    /// reopens the stream. Closing a closed stream does nothing. The producer
    /// stays attached until dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let ring = sharray::Ring::builder(sharray::Dtype::parse_user("u1")?, &[4]).slots(2).create(dir.path().join("r.npy"))?;
    /// use sharray::ErrorKind;
    /// let (producer, consumer) = (ring.producer()?, ring.consumer()?);
    /// producer.loan()?.commit()?;
    /// producer.close()?;
    /// assert_eq!(consumer.recv()?.seq(), 0); // committed frames are drained
    /// assert_eq!(consumer.recv().unwrap_err().kind(), ErrorKind::Disconnected);
    /// assert!(ring.stats().closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Only if the ring lock could not be taken.
    pub fn close(&self) -> Result<()> {
        let lock = self.p.lock_or_wait(|| Some(lock_deadline(None)))?;
        slot::close(&lock);
        drop(lock);
        // Every waiting consumer must see the end; waiting loans must fail.
        let r = &self.p.ring;
        r.notify(l::commit::SEQ, l::commit::WAITERS, true);
        r.notify(l::free::SEQ, l::free::WAITERS, true);
        Ok(())
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("path", &self.p.ring.map.path())
            .field("index", &self.p.index)
            .finish()
    }
}

/// A loaned slot: fill it in place, then [`commit`](WriteLoan::commit).
/// Dropping it without committing gives the slot back (nothing is delivered).
///
/// The loan owns a reference to its producer's registration, so it can be
/// stored anywhere (no lifetime ties it to the [`Producer`]).
#[must_use = "dropping the loan gives the slot back without committing"]
pub struct WriteLoan {
    p: Arc<Participant>,
    slot: u32,
    tag: u64,
    valid_len: u64,
    dropped_oldest: bool,
    done: bool,
}

impl WriteLoan {
    /// Index of the slot (row of the ring's `(K, *frame_shape)` array).
    pub fn slot(&self) -> usize {
        self.slot as usize
    }

    /// Bytes of the slot.
    pub fn len(&self) -> usize {
        self.p.ring.cfg.slot_bytes as usize
    }

    /// Is the frame empty (a zero in the frame shape)?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Did this loan overwrite the oldest unread frame (overwrite mode)?
    pub fn dropped_oldest(&self) -> bool {
        self.dropped_oldest
    }

    /// Set the user tag delivered with the frame (default 0).
    pub fn set_tag(&mut self, tag: u64) {
        self.tag = tag;
    }

    /// Deliver only the first `len` bytes as valid (default: the whole slot).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `len` is larger than the slot.
    pub fn set_valid_len(&mut self, len: usize) -> Result<()> {
        if len as u64 > self.p.ring.cfg.slot_bytes {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "valid length {len} is larger than the slot ({} bytes)",
                    self.p.ring.cfg.slot_bytes
                ),
            ));
        }
        self.valid_len = len as u64;
        Ok(())
    }

    /// The slot's bytes, for reading back what was written.
    pub fn bytes(&self) -> &[u8] {
        let n = self.len();
        // SAFETY: the slot is WRITING by us: by protocol no peer reads or
        // writes it until we commit or give it back.
        unsafe { self.p.ring.map.data_bytes(self.slot as usize * n, n) }
    }

    /// The slot's bytes, to fill in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.len();
        // SAFETY: as `bytes`; `&mut self` makes this the only slice.
        unsafe { self.p.ring.map.data_bytes_mut(self.slot as usize * n, n) }
    }

    /// The slot as a typed slice of the frame's elements.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::DtypeMismatch`] if `T` is not the ring's dtype.
    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T]> {
        typed_check::<T>(&self.p.ring)?;
        Ok(bytemuck::cast_slice_mut(self.bytes_mut()))
    }

    /// The slot as a mutable n-d view of the frame shape.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::DtypeMismatch`] if `T` is not the ring's dtype.
    #[cfg(feature = "ndarray")]
    pub fn view_mut<T: Element>(&mut self) -> Result<ndarray::ArrayViewMutD<'_, T>> {
        let shape = self.p.ring.map.header().shape[1..].to_vec();
        let s = self.as_mut_slice::<T>()?;
        Ok(ndarray::ArrayViewMutD::from_shape(shape, s).expect("slot matches the frame shape"))
    }

    /// Publish the frame: stamp it with the next sequence number and the
    /// commit time, and make it visible to consumers. Returns the sequence
    /// number.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let ring = sharray::Ring::builder(sharray::Dtype::parse_user("u1")?, &[4]).slots(2).create(dir.path().join("r.npy"))?;
    /// let (producer, consumer) = (ring.producer()?, ring.consumer()?);
    ///
    /// // A loan dropped without commit gives its slot back: nothing is delivered.
    /// let mut loan = producer.loan()?;
    /// loan.bytes_mut().fill(1);
    /// drop(loan);
    /// assert!(consumer.try_recv().is_err());
    ///
    /// // Committed frames are numbered in order.
    /// let first = producer.loan()?.commit()?;
    /// let second = producer.loan()?.commit()?;
    /// assert_eq!(second, first + 1);
    /// assert_eq!(consumer.recv()?.seq(), first);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the stream was closed since the loan
    /// (the frame is not delivered, the slot is given back);
    /// [`ErrorKind::Corrupt`] if the slot is no longer ours (a peer wrongly
    /// reclaimed it, e.g. after the file was tampered with); lock errors.
    pub fn commit(mut self) -> Result<u64> {
        let r = self.p.ring.clone();
        let s = r.cfg.geo.slot(self.slot);
        r.u64(s + l::slot::TAG).store(self.tag, Ordering::Relaxed);
        r.u64(s + l::slot::VALID_LEN)
            .store(self.valid_len, Ordering::Relaxed);
        r.u64(s + l::slot::TIMESTAMP)
            .store(sys::monotonic_ns(), Ordering::Relaxed);
        fail::point("ring.commit.written");
        if !r.cfg.broadcast() {
            return self.commit_queue(&r);
        }
        let lock = self.p.lock_or_wait(|| Some(lock_deadline(None)))?;
        fail::point("ring.commit.locked");
        if slot::closed(&lock) {
            // The stream ended while we held the loan: nothing more may be
            // delivered, so the slot goes back unpublished.
            let freed = slot::drop_loan(&lock, self.p.index, self.slot);
            drop(lock);
            self.done = true;
            if freed {
                r.notify(l::free::SEQ, l::free::WAITERS, false);
            }
            return Err(closed_while_loaned(&r));
        }
        let done = slot::commit(&lock, self.p.index, self.slot);
        fail::point("ring.commit.applied");
        drop(lock);
        self.done = true;
        let c = done.map_err(|m| Error::new(ErrorKind::Corrupt, m).at(r.map.path()))?;
        r.notify(l::commit::SEQ, l::commit::WAITERS, r.cfg.broadcast());
        if c.freed {
            r.notify(l::free::SEQ, l::free::WAITERS, false);
        }
        Ok(c.seq)
    }

    /// Queue mode: publish without the ring lock (FORMAT.md 7.7).
    fn commit_queue(mut self, r: &super::shared::RingInner) -> Result<u64> {
        let me = self.p.index;
        if r.u64(l::lock::CLOSED).load(Ordering::Acquire) != 0 {
            self.done = true;
            if handoff::drop_loan(r, me, self.slot) {
                handoff::wake_if_waiting(r, l::free::SEQ, l::free::WAITERS, false);
            }
            return Err(closed_while_loaned(r));
        }
        // A cell held by a frame being given back frees itself within a few
        // instructions; one held by a consumer that died giving a frame
        // back is freed by a reclaim. Anything longer is a corrupt ring.
        let give_up = Instant::now() + Duration::from_secs(10);
        let seq = loop {
            match handoff::commit(r, me, self.slot) {
                Ok(seq) => break seq,
                Err(CommitError::Corrupt(m)) => {
                    self.done = true;
                    return Err(Error::new(ErrorKind::Corrupt, m).at(r.map.path()));
                }
                Err(CommitError::Blocked) if Instant::now() < give_up => {
                    let lock = self.p.lock_or_wait(|| Some(lock_deadline(Some(give_up))))?;
                    let got = reclaim_dead(&lock);
                    drop(lock);
                    wake_after_reclaim(r, got);
                }
                Err(CommitError::Blocked) => {
                    // Not done: dropping the loan gives the slot back.
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        "the ring's log cell for the next frame stays held by an older frame; the ring state is corrupt",
                    )
                    .at(r.map.path()));
                }
            }
        };
        self.done = true;
        handoff::wake_if_waiting(r, l::commit::SEQ, l::commit::WAITERS, false);
        Ok(seq)
    }
}

fn closed_while_loaned(r: &super::shared::RingInner) -> Error {
    Error::new(
        ErrorKind::Disconnected,
        "the ring's stream was closed while this frame was loaned; it was not delivered",
    )
    .at(r.map.path())
}

impl Drop for WriteLoan {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let r = &self.p.ring;
        if !r.cfg.broadcast() {
            if handoff::drop_loan(r, self.p.index, self.slot) {
                handoff::wake_if_waiting(r, l::free::SEQ, l::free::WAITERS, false);
            }
            return;
        }
        let deadline = || Some(Instant::now() + Duration::from_secs(10));
        if let Ok(lock) = self.p.lock_or_wait(deadline) {
            let freed = slot::drop_loan(&lock, self.p.index, self.slot);
            drop(lock);
            if freed {
                r.notify(l::free::SEQ, l::free::WAITERS, false);
            }
        }
        // If the lock could not be taken, the slot stays loaned until this
        // producer detaches (detach reclaims it).
    }
}

impl std::fmt::Debug for WriteLoan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteLoan")
            .field("slot", &self.slot)
            .field("tag", &self.tag)
            .field("valid_len", &self.valid_len)
            .finish()
    }
}
