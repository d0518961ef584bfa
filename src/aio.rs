//! Async waits: one helper thread per process turns futex wakes into
//! [`Waker`] calls, so any executor (tokio, async-std, smol, a hand-written
//! `block_on`, Python's asyncio through an eventfd) can await a frame, a free
//! slot or a change without a thread per waiter.
//!
//! Every wait in sharray is a shared futex on a word in the mapped file (a
//! ring's commit or free sequence word, an array's `gen_seq`). A waiter
//! snapshots the word, tries its operation, and if that fails *registers*:
//! it adds itself to the word's waiter count in the file (so writers issue
//! `FUTEX_WAKE`, exactly as for a blocked thread) and hands the reactor the
//! word, the snapshot and a waker. The reactor thread waits on up to 127
//! words at once with `futex_waitv(2)` (plus one private word of its own,
//! bumped when the set changes); when a word moves, or a registration's
//! deadline passes, it drops the registration (and the waiter count) and
//! calls the waker. The future then re-checks its condition. Nothing in the
//! file changes: peers wake us with the same `FUTEX_WAKE` they always issue
//! (FORMAT.md §3.4, "Async waiters").
//!
//! Registrations expire after [`SLICE`] (50 ms) at most, like blocked
//! threads: the future then re-checks, and a ring waiter reclaims dead
//! peers, as the blocking calls do. Kernels without `futex_waitv` (< 5.16)
//! fall back to polling the words every 2 ms.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::array::{SharedArray, UntypedArray};
use crate::element::Element;
use crate::error::{Error, ErrorKind, Result};
use crate::format::control;
use crate::sys;

/// The longest a registration lives before its future re-checks (and a ring
/// waiter looks for dead peers), as for blocked threads.
pub(crate) const SLICE: Duration = Duration::from_millis(50);
/// How often words are polled when they cannot be waited on (a read-only
/// handle cannot count itself as a waiter; an old kernel; > 127 words).
const POLL: Duration = Duration::from_millis(2);

/// The futex word a waiter sleeps on, and the file's count of its waiters.
pub(crate) trait WaitWords: Send + Sync + 'static {
    /// The word writers bump, then `FUTEX_WAKE`.
    fn word(&self) -> &AtomicU32;
    /// The waiter count writers read before waking; `None` if we may not
    /// write the file (then the word is polled).
    fn waiters(&self) -> Option<&AtomicU32>;
    /// Periodic upkeep every [`SLICE`] of waiting (rings: reclaim dead peers).
    fn maintain(&self) {}
    /// Would an attempt succeed now? Asked once more after counting a new
    /// waiter, for words whose wakers skip the bump while nobody waits
    /// (queue-mode rings, FORMAT.md 7.5).
    fn ready(&self) -> bool {
        false
    }
}

/// What a registration and its future share.
#[derive(Default)]
struct Slot {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

struct Entry {
    id: u64,
    target: Arc<dyn WaitWords>,
    expected: u32,
    deadline: Instant,
    slot: Arc<Slot>,
}

struct State {
    entries: Vec<Entry>,
}

/// One process's reactor: its registrations and its helper thread.
struct Reactor {
    state: Mutex<State>,
    /// Bumped (and woken) whenever the registration set changes.
    ctl: AtomicU32,
    next_id: AtomicU64,
}

/// The reactor of the process that owns it. A forked child finds its
/// parent's here (whose helper thread it did not inherit, and whose lock
/// that thread may have held at the fork) and starts its own instead; the
/// parent's is leaked in the child (a few bytes).
static CURRENT: Mutex<Option<(u32, &'static Reactor)>> = Mutex::new(None);

/// This process's reactor, started on first use.
fn reactor() -> &'static Reactor {
    let pid = std::process::id();
    let mut cur = CURRENT.lock();
    if let Some((owner, r)) = *cur
        && owner == pid
    {
        return r;
    }
    let r: &'static Reactor = Box::leak(Box::new(Reactor {
        state: Mutex::new(State {
            entries: Vec::new(),
        }),
        ctl: AtomicU32::new(0),
        next_id: AtomicU64::new(1),
    }));
    std::thread::Builder::new()
        .name("sharray-aio".into())
        .spawn(move || r.run(pid))
        .expect("cannot start the sharray async helper thread");
    *cur = Some((pid, r));
    r
}

impl Reactor {
    fn register(&self, e: Entry) {
        self.state.lock().entries.push(e);
        self.kick();
    }

    /// Remove registration `id` if it is still there; returns whether it was.
    fn cancel(&self, id: u64) -> bool {
        let mut st = self.state.lock();
        let Some(i) = st.entries.iter().position(|e| e.id == id) else {
            return false;
        };
        let e = st.entries.swap_remove(i);
        drop(st);
        if let Some(w) = e.target.waiters() {
            w.fetch_sub(1, Ordering::SeqCst);
        }
        true
    }

    fn kick(&self) {
        self.ctl.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake(&self.ctl, 1);
    }

    fn run(&'static self, pid: u32) {
        let mut waitv_ok = true;
        loop {
            let ctl = self.ctl.load(Ordering::SeqCst);
            let mut fire = Vec::new();
            let mut watch: Vec<(Arc<dyn WaitWords>, u32)> = Vec::new();
            let mut poll = !waitv_ok;
            let mut until: Option<Instant> = None;
            {
                let mut st = self.state.lock();
                debug_assert_eq!(pid, std::process::id());
                let now = Instant::now();
                let mut i = 0;
                while i < st.entries.len() {
                    let e = &st.entries[i];
                    if e.target.word().load(Ordering::SeqCst) != e.expected || e.deadline <= now {
                        fire.push(st.entries.swap_remove(i));
                        continue;
                    }
                    until = Some(until.map_or(e.deadline, |u| u.min(e.deadline)));
                    if e.target.waiters().is_none() {
                        poll = true;
                    } else if !watch
                        .iter()
                        .any(|(t, _)| std::ptr::eq(t.word(), e.target.word()))
                    {
                        if watch.len() + 1 < sys::FUTEX_WAITV_MAX {
                            watch.push((e.target.clone(), e.expected));
                        } else {
                            poll = true;
                        }
                    }
                    i += 1;
                }
            }
            for e in fire {
                if let Some(w) = e.target.waiters() {
                    w.fetch_sub(1, Ordering::SeqCst);
                }
                e.slot.fired.store(true, Ordering::SeqCst);
                if let Some(w) = e.slot.waker.lock().take() {
                    w.wake();
                }
            }
            let now = Instant::now();
            let mut timeout = until.map_or(Duration::from_secs(3600), |u| u - now.min(u));
            if poll {
                timeout = timeout.min(POLL);
            }
            if timeout.is_zero() {
                continue;
            }
            if watch.is_empty() || !waitv_ok {
                sys::futex_wait(&self.ctl, ctl, Some(timeout));
                continue;
            }
            let mut words: Vec<(&AtomicU32, u32)> = Vec::with_capacity(watch.len() + 1);
            words.push((&self.ctl, ctl));
            words.extend(watch.iter().map(|(t, v)| (t.word(), *v)));
            if sys::futex_waitv(&words, timeout) == sys::WaitvOutcome::Unsupported {
                waitv_ok = false;
            }
        }
    }
}

/// A reusable registration for one futex word of one file: the building
/// block of the `*_async` methods, for front ends that bring their own event
/// loop (the Python package wraps it in an eventfd for asyncio).
///
/// The protocol is: [`Waiter::prepare`], try the operation (for example
/// [`Consumer::try_recv`](crate::Consumer::try_recv)); if it must wait,
/// [`Waiter::park`] with a waker and await [`Waiter::fired`]; repeat.
/// Dropping the waiter (or the future using it) unregisters it; a wake it
/// consumed but did not act on is passed on to another waiter.
pub struct Waiter {
    target: Arc<dyn WaitWords>,
    snap: u32,
    /// The registration: its reactor (of the process that made it), id
    /// and shared slot.
    reg: Option<Registration>,
    last_maintain: Instant,
}

struct Registration {
    reactor: &'static Reactor,
    pid: u32,
    id: u64,
    slot: Arc<Slot>,
}

impl Registration {
    /// Unregister; returns whether it was still registered. In a forked
    /// child the parent's registration is left alone (its reactor's lock
    /// may be held forever by a thread that no longer exists).
    fn cancel(&self) -> bool {
        self.pid == std::process::id() && self.reactor.cancel(self.id)
    }
}

impl Waiter {
    pub(crate) fn new(target: Arc<dyn WaitWords>) -> Waiter {
        let snap = target.word().load(Ordering::SeqCst);
        Waiter {
            target,
            snap,
            reg: None,
            last_maintain: Instant::now(),
        }
    }

    /// Call before each attempt: drops any registration, runs periodic
    /// upkeep (a ring reclaims dead peers every 50 ms of waiting) and
    /// remembers the word's value, so a change after this call is seen.
    pub fn prepare(&mut self) {
        if let Some(reg) = self.reg.take() {
            reg.cancel();
        }
        if self.last_maintain.elapsed() >= SLICE {
            self.target.maintain();
            self.last_maintain = Instant::now();
        }
        self.snap = self.target.word().load(Ordering::SeqCst);
    }

    /// After a failed attempt: register so `waker` is called when the word
    /// moves, or at `deadline`, or after 50 ms at most (then re-check).
    /// Returns `false` (nothing registered) if the word already moved since
    /// [`Waiter::prepare`]: attempt again at once. Calling it again while
    /// registered only replaces the waker.
    pub fn park(&mut self, waker: &Waker, deadline: Option<Instant>) -> bool {
        if let Some(reg) = &self.reg {
            *reg.slot.waker.lock() = Some(waker.clone());
            if reg.slot.fired.load(Ordering::SeqCst) {
                waker.wake_by_ref();
            }
            return true;
        }
        let word = self.target.word();
        if let Some(w) = self.target.waiters() {
            w.fetch_add(1, Ordering::SeqCst);
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        if word.load(Ordering::SeqCst) != self.snap || self.target.ready() {
            if let Some(w) = self.target.waiters() {
                w.fetch_sub(1, Ordering::SeqCst);
            }
            return false;
        }
        let slice = Instant::now() + SLICE;
        let slot = Arc::new(Slot {
            fired: AtomicBool::new(false),
            waker: Mutex::new(Some(waker.clone())),
        });
        let reactor = reactor();
        let id = reactor.next_id.fetch_add(1, Ordering::Relaxed);
        reactor.register(Entry {
            id,
            target: self.target.clone(),
            expected: self.snap,
            deadline: deadline.map_or(slice, |d| d.min(slice)),
            slot: slot.clone(),
        });
        self.reg = Some(Registration {
            reactor,
            pid: std::process::id(),
            id,
            slot,
        });
        true
    }

    /// Has the registration ended (the word moved, or its deadline or 50 ms
    /// passed)? Then [`Waiter::prepare`] and attempt again. `true` too when
    /// nothing is registered.
    pub fn fired(&self) -> bool {
        self.reg
            .as_ref()
            .is_none_or(|r| r.slot.fired.load(Ordering::SeqCst))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let Some(reg) = self.reg.take() else {
            return;
        };
        if !reg.cancel() && reg.slot.fired.load(Ordering::SeqCst) {
            // We may have swallowed a FUTEX_WAKE meant for one waiter (queue
            // mode) and will never act on it: pass it on.
            let word = self.target.word();
            if word.load(Ordering::SeqCst) != self.snap
                && self
                    .target
                    .waiters()
                    .is_some_and(|w| w.load(Ordering::SeqCst) > 0)
            {
                sys::futex_wake(word, 1);
            }
        }
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("registered", &self.reg.is_some())
            .field("fired", &self.fired())
            .finish()
    }
}

/// Resolves once the waiter's registration has fired (or could not be made).
struct Park<'a> {
    w: &'a mut Waiter,
    deadline: Option<Instant>,
    parked: bool,
}

impl Future for Park<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.parked {
            this.parked = true;
            if !this.w.park(cx.waker(), this.deadline) {
                return Poll::Ready(());
            }
        } else {
            this.w.park(cx.waker(), this.deadline);
        }
        if this.w.fired() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Await `attempt` succeeding, re-trying whenever `w`'s word moves; `None`
/// at `deadline`.
pub(crate) async fn wait_for<T>(
    mut w: Waiter,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    loop {
        w.prepare();
        if let Some(v) = attempt()? {
            return Ok(Some(v));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        Park {
            w: &mut w,
            deadline,
            parked: false,
        }
        .await;
    }
}

/// An array's generation sequence word.
struct GenWords(UntypedArray);

impl WaitWords for GenWords {
    fn word(&self) -> &AtomicU32 {
        self.0.mapping().ctrl_u32(control::off::GEN_SEQ as u64)
    }
    fn waiters(&self) -> Option<&AtomicU32> {
        let m = self.0.mapping();
        m.ctrl_writable()
            .then(|| m.ctrl_u32(control::off::GEN_WAITERS as u64))
    }
}

impl UntypedArray {
    /// A [`Waiter`] on this array's generation (for event loops of other
    /// front ends; Rust code awaits [`UntypedArray::wait_changed_async`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] on a plain `.npy` (no generation counter).
    pub fn changed_waiter(&self) -> Result<Waiter> {
        if self.mapping().control().is_none() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "a plain .npy has no generation counter; import it into a sharray file (`sharray import`) to wait for changes",
            )
            .at(self.path()));
        }
        Ok(Waiter::new(Arc::new(GenWords(self.share()))))
    }

    /// Await a generation different from `since`, at most `timeout` (`None`:
    /// as long as it takes); returns the new generation. The async form of
    /// [`UntypedArray::wait_changed`]: no thread blocks, any executor works,
    /// and dropping the future unregisters it.
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
    /// use sharray::SharedArray;
    /// use std::time::Duration;
    /// let path = dir.path().join("a.npy");
    /// let a = SharedArray::<u8>::builder().shape(&[4]).create(&path)?;
    /// let g = a.generation();
    /// // Another process (here a thread with its own handle) writes.
    /// let writer = std::thread::spawn(move || -> sharray::Result<()> {
    ///     SharedArray::<u8>::open(&path)?.write()?[0] = 1;
    ///     Ok(())
    /// });
    /// let now = block_on(a.wait_changed_async(g, Some(Duration::from_secs(10))))?;
    /// assert!(now > g);
    /// writer.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`UntypedArray::wait_changed`]: [`ErrorKind::Timeout`],
    /// [`ErrorKind::Unsupported`] on a plain `.npy`.
    pub async fn wait_changed_async(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        let w = self.changed_waiter()?;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let generation = self.mapping().ctrl_u64(control::off::GENERATION as u64);
        let got = wait_for(w, deadline, || {
            self.mapping().shared_file().ensure_not_truncated()?;
            let g = generation.load(Ordering::Acquire);
            Ok((g != since).then_some(g))
        })
        .await?;
        got.ok_or_else(|| {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "no change within {:?} (generation still {since})",
                    timeout.unwrap_or_default()
                ),
            )
            .at(self.path())
        })
    }
}

impl<T: Element> SharedArray<T> {
    /// As [`UntypedArray::changed_waiter`].
    ///
    /// # Errors
    ///
    /// As [`UntypedArray::changed_waiter`].
    pub fn changed_waiter(&self) -> Result<Waiter> {
        self.untyped().changed_waiter()
    }

    /// As [`UntypedArray::wait_changed_async`].
    ///
    /// # Errors
    ///
    /// As [`UntypedArray::wait_changed_async`].
    pub async fn wait_changed_async(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        self.untyped().wait_changed_async(since, timeout).await
    }
}
