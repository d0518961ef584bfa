//! Zero-copy producer/consumer rings across processes.
//!
//! A ring is a sharray file (control-block kind 2) whose array holds `K`
//! slots of one frame shape: its `.npy` shape is `(K, *frame_shape)`, so
//! `np.load(path, mmap_mode="r")[k]` is slot `k`. Ring state lives in the
//! control block's kind section (byte layout in FORMAT.md, "Rings").
//!
//! - A [`Producer`] loans a free slot ([`WriteLoan`]), fills it in place and
//!   commits it; the ring stamps it with a sequence number and a timestamp.
//! - A [`Consumer`] receives [`ReadLease`]s: the frame in place, read-only,
//!   plus its metadata; dropping the lease releases the slot.
//! - Queue mode gives each frame to exactly one consumer; broadcast mode gives
//!   it to every subscriber registered when it was committed.
//! - Backpressure by default (a producer waits for a free slot); overwrite
//!   mode drops the oldest unread frame instead (latest-value streams), and
//!   consumers are told how many frames they lost.
//!
//! Queue mode hands frames over without a lock (`handoff`: every step one
//! compare-and-swap on a word that names its holder, FORMAT.md 7.7);
//! broadcast mode, attach, close and the reclaim of dead participants run
//! under the ring lock and its redo journal (`lock`, `slot`).
//!
//! Waiting spins briefly, then parks on a shared futex (no CPU while idle).
//! Every participant holds a kernel lock that dies with its process: a dead
//! producer's half-written frame is never delivered, a dead consumer's leases
//! come back. A stream ends only when a producer says so
//! ([`Producer::close`]): consumers drain the committed frames and then see
//! [`ErrorKind::Disconnected`]; producers that come and go (one process per
//! frame, a crash and a restart) leave consumers waiting.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("frames.npy");
//! use sharray::{Dtype, Ring};
//! use std::time::Duration;
//!
//! let ring = Ring::builder(Dtype::parse_user("float32")?, &[480, 640]).slots(4).create(&path)?;
//!
//! // Producer process:
//! let producer = ring.producer()?;
//! let mut loan = producer.loan()?;
//! loan.as_mut_slice::<f32>()?.fill(1.5);
//! loan.set_tag(7);
//! let seq = loan.commit()?;
//!
//! // Consumer process (here the same one):
//! let consumer = Ring::open(&path)?.consumer()?;
//! let frame = consumer.recv_timeout(Duration::from_secs(1))?;
//! assert_eq!((frame.seq(), frame.tag()), (seq, 7));
//! assert!(frame.as_slice::<f32>()?.iter().all(|&x| x == 1.5));
//! drop(frame); // releases the slot
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod aio;
mod consumer;
mod handoff;
mod lock;
mod producer;
mod shared;
mod slot;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::format::ring::Role;
pub use consumer::{Consumer, ReadLease};
pub use producer::{Producer, WriteLoan};

use crate::element::Element;
use crate::error::{Error, ErrorKind, Result};
use crate::file::OpenFlags;
use crate::format::control::Kind;
use crate::format::npy::{Dtype, NpyHeader};
use crate::format::ring as l;
use crate::mapping::{Mapping, NewFile};
use lock::Participant;
use shared::{Config, RingInner, reclaim_dead, wake_after_reclaim};

/// Default spin before parking.
pub(crate) const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// Bytes of slots the default slot count aims for: half of a 32 MiB
/// last-level cache, so a pipelined producer and consumer stay in cache.
const DEFAULT_RING_BYTES: u64 = 16 << 20;

/// Why a non-blocking loan failed.
#[derive(Debug)]
pub enum TryLoanError {
    /// Every slot is busy (backpressure): retry, or use a blocking loan.
    Full,
    /// Any other error (the ring lock could not be taken).
    Error(Error),
}

/// Why a non-blocking receive failed.
#[derive(Debug)]
pub enum TryRecvError {
    /// No frame for us right now.
    Empty,
    /// A producer closed the stream and the frames are drained.
    Disconnected,
    /// Any other error (the ring lock could not be taken).
    Error(Error),
}

impl fmt::Display for TryLoanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLoanError::Full => {
                f.write_str("every ring slot is busy; retry or wait for a free slot")
            }
            TryLoanError::Error(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no frame is ready; retry or wait for one"),
            TryRecvError::Disconnected => {
                f.write_str("the stream was closed and the ring is drained")
            }
            TryRecvError::Error(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TryLoanError {
    /// The underlying [`Error`] for [`TryLoanError::Error`]; `None` for `Full`.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TryLoanError::Full => None,
            TryLoanError::Error(e) => Some(e),
        }
    }
}

impl std::error::Error for TryRecvError {
    /// The underlying [`Error`] for [`TryRecvError::Error`]; `None` for
    /// `Empty` and `Disconnected`.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TryRecvError::Empty | TryRecvError::Disconnected => None,
            TryRecvError::Error(e) => Some(e),
        }
    }
}

pub(crate) fn typed_check<T: Element>(r: &RingInner) -> Result<()> {
    let d = &r.map.header().dtype;
    if d.descr() != T::DESCR {
        return Err(Error::new(
            ErrorKind::DtypeMismatch,
            format!(
                "dtype mismatch: the ring holds {} but {} was asked for ({}); use the matching type or the byte view",
                d.descr(),
                T::DESCR,
                std::any::type_name::<T>()
            ),
        )
        .at(r.map.path()));
    }
    Ok(())
}

/// Builder for a new ring file. See [`Ring::builder`].
#[must_use = "a builder does nothing until `create` is called"]
#[derive(Debug, Clone)]
pub struct RingBuilder {
    dtype: Dtype,
    frame_shape: Vec<usize>,
    slots: Option<u32>,
    broadcast: bool,
    overwrite: bool,
    max_participants: u32,
    mode: u32,
    prefault: bool,
}

impl RingBuilder {
    /// Number of slots `K`. Default: as many frames as fit in 16 MiB (half
    /// the last-level cache), at least 4 and at most 64.
    pub fn slots(mut self, k: u32) -> Self {
        self.slots = Some(k);
        self
    }

    /// Broadcast mode: every subscriber gets every frame committed after it
    /// attached (default: queue mode, each frame to exactly one consumer).
    pub fn broadcast(mut self, yes: bool) -> Self {
        self.broadcast = yes;
        self
    }

    /// Overwrite-oldest: when every slot is busy, a producer drops the oldest
    /// unread frame instead of waiting (default: backpressure).
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Size of the participant table, 1..=64 (default 64).
    pub fn max_participants(mut self, n: u32) -> Self {
        self.max_participants = n;
        self
    }

    /// Permission bits of the file (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Fault in the slots' pages at creation and on every attach (default
    /// true), so no frame ever pays for page faults.
    pub fn prefault(mut self, yes: bool) -> Self {
        self.prefault = yes;
        self
    }

    /// Create and publish the ring at `path` (never overwrites).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("latest.npy");
    /// use sharray::{Dtype, ErrorKind, Ring};
    /// // Latest-value stream: every subscriber sees every frame, and a slow
    /// // one loses the oldest frames instead of holding the producer back.
    /// let ring = Ring::builder(Dtype::parse_user("float64")?, &[3])
    ///     .slots(4)
    ///     .broadcast(true)
    ///     .overwrite(true)
    ///     .create(&path)?; // or "shm:latest" for /dev/shm/latest
    /// assert_eq!((ring.slots(), ring.is_broadcast(), ring.is_overwrite()), (4, true, true));
    /// let again = Ring::builder(Dtype::parse_user("float64")?, &[3]).create(&path);
    /// assert_eq!(again.unwrap_err().kind(), ErrorKind::AlreadyExists);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a slot count outside 1..=65536, a
    /// participant count outside 1..=64 or an overflowing size;
    /// [`ErrorKind::AlreadyExists`], [`ErrorKind::NoSpace`] and I/O errors as
    /// for arrays.
    pub fn create(self, path: impl AsRef<Path>) -> Result<Ring> {
        let path = path.as_ref();
        let invalid = |m: String| Error::new(ErrorKind::InvalidInput, m).at(path);
        let frame_bytes = self
            .frame_shape
            .iter()
            .try_fold(self.dtype.itemsize() as u64, |a, &d| {
                a.checked_mul(d as u64)
            })
            .ok_or_else(|| invalid("the frame shape overflows".into()))?;
        let slots = self
            .slots
            .unwrap_or_else(|| (DEFAULT_RING_BYTES / frame_bytes.max(1)).clamp(4, 64) as u32);
        if slots == 0 || slots > l::MAX_SLOTS {
            return Err(invalid(format!(
                "a ring needs 1 to {} slots, not {slots}",
                l::MAX_SLOTS
            )));
        }
        if self.max_participants == 0 || self.max_participants > l::MAX_PARTICIPANTS {
            return Err(invalid(format!(
                "a ring has 1 to {} participants, not {}",
                l::MAX_PARTICIPANTS,
                self.max_participants
            )));
        }
        let mut shape = vec![slots as usize];
        shape.extend_from_slice(&self.frame_shape);
        let header = NpyHeader {
            dtype: self.dtype,
            fortran_order: false,
            shape,
        };
        let geo = l::Geometry::new(slots, self.max_participants);
        let cfg = Config {
            flags: if self.broadcast { l::FLAG_BROADCAST } else { 0 }
                | if self.overwrite { l::FLAG_OVERWRITE } else { 0 },
            slot_bytes: frame_bytes,
            geo,
        };
        let spec = NewFile {
            header: &header,
            kind: Kind::Ring,
            section_len: geo.used_len,
            mode: self.mode,
            preallocate: true,
            fill: None,
        };
        let map = Mapping::create(path, &spec, |sec| cfg.encode(sec))?;
        if self.prefault {
            map.prefault(0, map.nbytes());
        }
        Ok(Ring {
            inner: Arc::new(RingInner::new(map)?),
            prefault: self.prefault,
        })
    }
}

/// An open ring file. Attach participants with [`Ring::producer`] and
/// [`Ring::consumer`]; read live statistics with [`Ring::stats`].
///
/// Cloning is cheap (the mapping is shared).
///
/// # Safety
///
/// Loans and leases hand out slices of a slot that other processes map too;
/// the ring protocol gives a loan's holder the only access to its slot and a
/// lease's holder a slot that nobody writes. A process that writes slots
/// outside the protocol causes undefined behaviour, and one that truncates the
/// file kills us with SIGBUS. See the crate's
/// [Safety model](crate#safety-model).
#[derive(Clone)]
pub struct Ring {
    inner: Arc<RingInner>,
    prefault: bool,
}

impl Ring {
    /// Start building a ring of frames of `dtype` and `frame_shape`; set
    /// options on the [`RingBuilder`], then [`create`](RingBuilder::create) it.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{Dtype, Ring};
    /// // 8 slots of 480x640 RGB frames; queue mode and backpressure (the defaults).
    /// let ring = Ring::builder(Dtype::parse_user("uint8")?, &[480, 640, 3])
    ///     .slots(8)
    ///     .create(dir.path().join("cam.npy"))?;
    /// assert_eq!(ring.slot_bytes(), 480 * 640 * 3);
    /// // The file is also a (slots, *frame_shape) .npy array.
    /// assert_eq!(sharray::inspect(ring.path())?.shape, [8, 480, 640, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(dtype: Dtype, frame_shape: &[usize]) -> RingBuilder {
        RingBuilder {
            dtype,
            frame_shape: frame_shape.to_vec(),
            slots: None,
            broadcast: false,
            overwrite: false,
            max_participants: l::MAX_PARTICIPANTS,
            mode: 0o600,
            prefault: true,
        }
    }

    /// Open an existing ring read-write.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("cam.npy");
    /// use sharray::{Dtype, ErrorKind, Ring, SharedArray};
    /// Ring::builder(Dtype::parse_user("uint8")?, &[480, 640]).slots(4).create(&path)?;
    ///
    /// // Another process:
    /// let ring = Ring::open(&path)?;
    /// assert_eq!((ring.frame_shape(), ring.slots()), (&[480, 640][..], 4));
    ///
    /// // An array is not a ring.
    /// SharedArray::<u8>::create(dir.path().join("a.npy"), &[4])?;
    /// let not_a_ring = Ring::open(dir.path().join("a.npy"));
    /// assert_eq!(not_a_ring.unwrap_err().kind(), ErrorKind::Unsupported);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] if the file is not a ring; errors of
    /// opening arrays; [`ErrorKind::Corrupt`] for an invalid ring section.
    pub fn open(path: impl AsRef<Path>) -> Result<Ring> {
        Self::open_with(path.as_ref(), false)
    }

    /// Open a ring of another user: [`crate::OpenOptions::allow_other_owner`]
    /// is the only option that applies (participants write control words,
    /// so a ring is always opened read-write).
    ///
    /// # Errors
    ///
    /// As [`Ring::open`].
    pub fn open_with_options(path: impl AsRef<Path>, options: crate::OpenOptions) -> Result<Ring> {
        Self::open_with(path.as_ref(), options.flags().allow_foreign_owner)
    }

    fn open_with(path: &Path, allow_foreign_owner: bool) -> Result<Ring> {
        let map = Mapping::open(
            path,
            OpenFlags {
                writable: true,
                allow_foreign_owner,
            },
        )?;
        match map.control().map(|c| c.kind) {
            Some(Kind::Ring) => {}
            other => {
                let what = other.map_or("a plain .npy file".to_string(), |k| {
                    format!("a sharray {}", k.name())
                });
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("this is {what}, not a ring; create a ring with `sharray ring create`"),
                )
                .at(path));
            }
        }
        Ok(Ring {
            inner: Arc::new(RingInner::new(map)?),
            prefault: true,
        })
    }

    fn attach(&self, role: Role, reopen: bool) -> Result<Arc<Participant>> {
        let r = &self.inner;
        let index = r.claim_entry()?;
        let p = Participant::new(r.clone(), index);
        let token = shared::random_u64();
        // If the lock fails, dropping `p` gives the entry back.
        let got = {
            let lock = p.lock(Some(Instant::now() + Duration::from_secs(10)))?;
            if role == Role::Producer && !reopen && slot::closed(&lock) {
                return Err(Error::new(
                    ErrorKind::Disconnected,
                    "the ring's stream was closed by a producer; to send more, reopen it with Ring::producer_reopening (Python: ring.producer(reopen=True), CLI: sharray ring reopen or push --reopen)",
                )
                .at(self.path()));
            }
            let mut got = slot::register(&lock, index, role, token, reopen);
            let more = reclaim_dead(&lock);
            got.slots += more.slots;
            got.producers += more.producers;
            got
        };
        wake_after_reclaim(r, got);
        if role == Role::Producer {
            // Wake consumers so a reopened stream is seen at once.
            r.notify(l::commit::SEQ, l::commit::WAITERS, true);
        }
        if self.prefault {
            r.map.prefault(0, r.map.nbytes());
        }
        Ok(Arc::new(p))
    }

    /// Attach a producer. Several producers may share a ring, and may come
    /// and go: the stream ends only when one of them closes it
    /// ([`Producer::close`]); consumers then drain the committed frames and
    /// see [`ErrorKind::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let ring = sharray::Ring::builder(sharray::Dtype::parse_user("u1")?, &[4]).slots(2).create(dir.path().join("r.npy"))?;
    /// let producer = ring.producer()?;
    /// let mut loan = producer.loan()?;
    /// loan.bytes_mut().copy_from_slice(b"abcd");
    /// assert_eq!(loan.commit()?, 0); // the first sequence number
    /// assert_eq!(ring.stats().committed, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] if the participant table is full of live
    /// participants (dead ones are reclaimed first);
    /// [`ErrorKind::Disconnected`] if the stream was closed (see
    /// [`Ring::producer_reopening`]).
    pub fn producer(&self) -> Result<Producer> {
        Ok(Producer::new(self.attach(Role::Producer, false)?))
    }

    /// Attach a producer and reopen the stream if a producer had closed it
    /// (in the same transaction): consumers that have not yet seen the end
    /// keep receiving; consumers that saw it may receive again. On an open
    /// stream this is [`Ring::producer`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let ring = sharray::Ring::builder(sharray::Dtype::parse_user("u1")?, &[4]).slots(2).create(dir.path().join("r.npy"))?;
    /// use sharray::ErrorKind;
    /// ring.producer()?.close()?;
    /// assert_eq!(ring.producer().unwrap_err().kind(), ErrorKind::Disconnected);
    /// let producer = ring.producer_reopening()?;
    /// assert!(!ring.stats().closed);
    /// producer.loan()?.commit()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Ring::producer`], except that a closed stream is not an error.
    pub fn producer_reopening(&self) -> Result<Producer> {
        Ok(Producer::new(self.attach(Role::Producer, true)?))
    }

    /// Attach a consumer: a queue consumer, or a subscriber in broadcast mode
    /// (which gets every frame committed from now on).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use sharray::{Dtype, Ring};
    /// let ring = Ring::builder(Dtype::parse_user("u1")?, &[4]).slots(4).broadcast(true)
    ///     .create(dir.path().join("r.npy"))?;
    /// let (a, b) = (ring.consumer()?, ring.consumer()?); // two subscribers
    /// let producer = ring.producer()?;
    /// producer.loan()?.commit()?;
    /// // Broadcast: each subscriber gets the frame (in queue mode, one would).
    /// assert_eq!(a.try_recv()?.seq(), 0);
    /// assert_eq!(b.try_recv()?.seq(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Ring::producer`].
    pub fn consumer(&self) -> Result<Consumer> {
        let role = if self.inner.cfg.broadcast() {
            Role::Subscriber
        } else {
            Role::Consumer
        };
        Ok(Consumer::new(self.attach(role, false)?))
    }

    /// The path.
    pub fn path(&self) -> &Path {
        self.inner.map.path()
    }

    /// The mapped file (for access hints, `advice.rs`).
    pub(crate) fn mapping(&self) -> &crate::mapping::Mapping {
        &self.inner.map
    }

    /// The frames' dtype.
    pub fn dtype(&self) -> &Dtype {
        &self.inner.map.header().dtype
    }

    /// The shape of one frame (the array's shape without its first axis).
    pub fn frame_shape(&self) -> &[usize] {
        &self.inner.map.header().shape[1..]
    }

    /// Number of slots `K`.
    pub fn slots(&self) -> usize {
        self.inner.cfg.slots() as usize
    }

    /// Bytes per slot.
    pub fn slot_bytes(&self) -> usize {
        self.inner.cfg.slot_bytes as usize
    }

    /// Broadcast mode?
    pub fn is_broadcast(&self) -> bool {
        self.inner.cfg.broadcast()
    }

    /// Overwrite-oldest mode?
    pub fn is_overwrite(&self) -> bool {
        self.inner.cfg.overwrite()
    }

    /// Size of the participant table.
    pub fn max_participants(&self) -> u32 {
        self.inner.cfg.geo.max_participants
    }

    /// File offset of slot 0 (4096): slot `k` is the `slot_bytes()` bytes at
    /// `data_offset() + k * slot_bytes()`.
    pub fn data_offset(&self) -> u64 {
        self.inner.map.data_offset() as u64
    }

    /// A snapshot of the ring's counters, slots and participants, read
    /// without taking the ring lock (values may be a few operations apart).
    /// Liveness is probed for every registered participant.
    pub fn stats(&self) -> RingStats {
        let r = &self.inner;
        let geo = r.cfg.geo;
        let mut slots = [0usize; 4];
        for k in 0..geo.slots {
            if let (Some(s), _) = l::unpack_state(r.get(geo.slot(k) + l::slot::STATE)) {
                slots[s.code() as usize] += 1;
            }
        }
        let tail = r.get(l::lock::TAIL);
        let head = r.get(l::lock::HEAD);
        let participants = (0..geo.max_participants)
            .filter_map(|i| {
                let e = geo.entry(i);
                let role = Role::from_code(r.get(e + l::part::ROLE))?;
                let cursor = if role == Role::Subscriber {
                    r.get(e + l::part::CURSOR)
                } else {
                    head
                };
                Some(ParticipantStats {
                    index: i,
                    role,
                    pid: r.get(e + l::part::PID) as u32,
                    alive: r.alive(i),
                    count: r.get(e + l::part::COUNT),
                    lost: r.get(e + l::part::LOST),
                    lag: if role == Role::Producer {
                        0
                    } else {
                        tail.saturating_sub(cursor)
                    },
                })
            })
            .collect();
        RingStats {
            slots: geo.slots as usize,
            slot_bytes: r.cfg.slot_bytes,
            broadcast: r.cfg.broadcast(),
            overwrite: r.cfg.overwrite(),
            committed: tail,
            received: r.get(l::lock::RECEIVED),
            dropped: r.get(l::lock::DROPPED),
            head,
            tail,
            free: slots[0],
            writing: slots[1],
            ready: slots[2],
            reading: slots[3],
            closed: r.get(l::lock::CLOSED) != 0,
            participants,
            timestamp_ns: crate::sys::monotonic_ns(),
        }
    }

    /// Reclaim dead participants now (done automatically by blocked
    /// participants and on attach). Needs a participant entry for the lock,
    /// so it briefly attaches as a consumer.
    ///
    /// # Errors
    ///
    /// As [`Ring::consumer`].
    pub fn reclaim(&self) -> Result<()> {
        drop(self.attach(Role::Consumer, false)?);
        Ok(())
    }
}

/// The open file description shared by every handle to this file in the
/// process, for front ends that map slots a second time (the Python package
/// maps one revocable window per lease). Never lock, unlock, truncate or
/// close through it: the participants' liveness locks belong to this
/// description.
impl std::os::fd::AsFd for Ring {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.map.shared_file().file().as_fd()
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("path", &self.path())
            .field("dtype", &self.dtype().descr())
            .field("frame_shape", &self.frame_shape())
            .field("slots", &self.slots())
            .field("broadcast", &self.is_broadcast())
            .field("overwrite", &self.is_overwrite())
            .finish()
    }
}

/// A snapshot of a ring (see [`Ring::stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingStats {
    /// Number of slots.
    pub slots: usize,
    /// Bytes per slot.
    pub slot_bytes: u64,
    /// Broadcast mode.
    pub broadcast: bool,
    /// Overwrite-oldest mode.
    pub overwrite: bool,
    /// Frames committed since creation.
    pub committed: u64,
    /// Leases handed out since creation.
    pub received: u64,
    /// Frames dropped by overwrite before every reader had them.
    pub dropped: u64,
    /// Queue mode: next position a consumer takes.
    pub head: u64,
    /// Next sequence number a commit gets.
    pub tail: u64,
    /// Free slots.
    pub free: usize,
    /// Slots loaned to producers.
    pub writing: usize,
    /// Committed slots not yet released by every reader.
    pub ready: usize,
    /// Queue mode: slots leased to consumers.
    pub reading: usize,
    /// Has a producer closed the stream ([`Producer::close`])?
    pub closed: bool,
    /// Registered participants.
    pub participants: Vec<ParticipantStats>,
    /// `CLOCK_MONOTONIC` ns when the snapshot was taken (for rates).
    pub timestamp_ns: u64,
}

impl RingStats {
    /// Slots not free.
    pub fn in_use(&self) -> usize {
        self.slots - self.free
    }

    /// Participants whose process is alive.
    pub fn alive(&self) -> usize {
        self.participants.iter().filter(|p| p.alive).count()
    }

    /// Producers attached now (registered and alive). Zero does not end the
    /// stream: only [`closed`](RingStats::closed) does.
    pub fn producers_attached(&self) -> usize {
        self.participants
            .iter()
            .filter(|p| p.alive && p.role == Role::Producer)
            .count()
    }
}

/// One participant in a [`RingStats`] snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantStats {
    /// Index in the participant table.
    pub index: u32,
    /// Producer, consumer or subscriber.
    pub role: Role,
    /// Process id of the owner (informational: pids are per namespace).
    pub pid: u32,
    /// Does its process still hold its liveness lock?
    pub alive: bool,
    /// Frames committed (producer) or received (consumer).
    pub count: u64,
    /// Subscriber: frames it lost to overwrite.
    pub lost: u64,
    /// Consumer/subscriber: committed frames it has not received yet
    /// (queue consumers share the ring's backlog).
    pub lag: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn give_back_returns_the_frame_in_order_or_says_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let dt = Dtype::parse_user("uint8").unwrap();
        // Queue mode, two consumers: a frame goes back only if nobody has
        // received a later one.
        let q = Ring::builder(dt.clone(), &[1])
            .slots(4)
            .create(dir.path().join("q.npy"))
            .unwrap();
        let (p, c1, c2) = (
            q.producer().unwrap(),
            q.consumer().unwrap(),
            q.consumer().unwrap(),
        );
        for _ in 0..2 {
            p.loan().unwrap().commit().unwrap();
        }
        let a = c1.try_recv().unwrap();
        let b = c2.try_recv().unwrap();
        let err = a.give_back().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        b.give_back().unwrap();
        assert_eq!(c1.try_recv().unwrap().seq(), 1);
        assert_eq!(q.stats().free, 4);
        // Broadcast: the subscriber that gives a frame back gets it again;
        // the other one is not affected.
        let b = Ring::builder(dt, &[1])
            .slots(4)
            .broadcast(true)
            .create(dir.path().join("b.npy"))
            .unwrap();
        let (s1, s2) = (b.consumer().unwrap(), b.consumer().unwrap());
        let p = b.producer().unwrap();
        p.loan().unwrap().commit().unwrap();
        s1.try_recv().unwrap().give_back().unwrap();
        assert_eq!(s1.try_recv().unwrap().seq(), 0);
        assert_eq!(s2.try_recv().unwrap().seq(), 0);
        assert!(matches!(s1.try_recv(), Err(TryRecvError::Empty)));
    }

    #[test]
    fn handles_and_leases_are_send_and_sync() {
        // Front ends (the Python binding) keep these in objects shared
        // between threads.
        send_sync::<Ring>();
        send_sync::<Producer>();
        send_sync::<Consumer>();
        send_sync::<WriteLoan>();
        send_sync::<ReadLease>();
    }

    #[test]
    fn loans_take_the_least_recently_used_slot() {
        // A frame read and released at once must not make the next loan
        // reuse its slot (its cache lines are still in the reader's core):
        // slots go round in commit order.
        let dir = tempfile::tempdir().unwrap();
        let ring = Ring::builder(Dtype::parse_user("uint8").unwrap(), &[64])
            .slots(4)
            .create(dir.path().join("r.npy"))
            .unwrap();
        let (p, c) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let mut used = Vec::new();
        for _ in 0..9 {
            let l = p.try_loan().unwrap();
            used.push(l.slot());
            l.commit().unwrap();
            drop(c.try_recv().unwrap());
        }
        assert_eq!(used, [0, 1, 2, 3, 0, 1, 2, 3, 0]);
        // Two loans at once still get two different free slots.
        let (a, b) = (p.try_loan().unwrap(), p.try_loan().unwrap());
        assert_eq!((a.slot(), b.slot()), (1, 2));
    }

    #[test]
    fn try_errors_expose_the_inner_error_as_source() {
        use std::error::Error as _;
        let inner = || Error::new(ErrorKind::LockTimeout, "ring lock busy");
        let e = TryLoanError::Error(inner());
        let src = e.source().expect("the Error variant has a source");
        let src = src
            .downcast_ref::<Error>()
            .expect("the source is sharray::Error");
        assert_eq!(src.kind(), ErrorKind::LockTimeout);
        assert!(TryLoanError::Full.source().is_none());

        let e = TryRecvError::Error(inner());
        let src = e.source().expect("the Error variant has a source");
        assert_eq!(
            src.downcast_ref::<Error>().unwrap().kind(),
            ErrorKind::LockTimeout
        );
        assert!(TryRecvError::Empty.source().is_none());
        assert!(TryRecvError::Disconnected.source().is_none());
    }
}
