//! Rings from Python: `Ring`, `Producer` / `WriteLoan`, `Consumer` /
//! `ReadLease`.
//!
//! Each loan or lease hands out its frame as a numpy view in its own
//! revocable window over the slot (see `lease.rs`, `window.rs`). The view is
//! revoked when the loan is committed or given back, or the lease released,
//! *before* the slot changes hands, so a stale view never reads a frame
//! another process is writing, nor writes into one a consumer is reading.
//! Windows of the first [`SHADOWED_SLOTS`] slots are reused from lease to
//! lease (their page tables move aside at revocation), so a steady stream of
//! leases takes no page faults.

use std::any::Any;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use numpy::PyArrayDescr;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use sharray::ErrorKind;

use crate::errors::{self, IntoPy};
use crate::handle::{location, numpy_dtype, py_tuple, shape_arg, sharray_dtype};
use crate::lease::{self, HasViewSlot, ViewSlot, ViewSource};
use crate::window::{Region, ShadowPool};

/// Slots whose windows are kept ready between leases (per process, per
/// direction). Beyond that, each lease maps its slot afresh (and populates
/// it in one call); the default slot count never exceeds 64.
const SHADOWED_SLOTS: usize = 64;

/// What every object of one ring shares in this process.
pub(crate) struct RingShared {
    ring: sharray::Ring,
    path: String,
    dtype: Py<PyArrayDescr>,
    frame_shape: Vec<usize>,
    itemsize: usize,
    read_pools: Vec<Arc<ShadowPool>>,
    write_pools: Vec<Arc<ShadowPool>>,
    pid: u32,
}

impl RingShared {
    fn new(py: Python<'_>, ring: sharray::Ring) -> PyResult<Arc<RingShared>> {
        let dtype = numpy_dtype(py, ring.dtype())?;
        let pools = |write: bool| {
            (0..ring.slots().min(SHADOWED_SLOTS))
                .map(|k| Arc::new(ShadowPool::for_leases(slot_region(&ring, k, write), 1)))
                .collect()
        };
        Ok(Arc::new(RingShared {
            path: ring.path().to_string_lossy().into_owned(),
            frame_shape: ring.frame_shape().to_vec(),
            itemsize: ring.dtype().itemsize(),
            read_pools: pools(false),
            write_pools: pools(true),
            dtype,
            ring,
            pid: std::process::id(),
        }))
    }

    /// The shadow pool for leases of slot `k`.
    fn pool(&self, k: usize, write: bool) -> Arc<ShadowPool> {
        let pools = if write {
            &self.write_pools
        } else {
            &self.read_pools
        };
        match pools.get(k) {
            Some(p) => p.clone(),
            None => Arc::new(ShadowPool::for_leases(slot_region(&self.ring, k, write), 0)),
        }
    }

    /// Refuse to act through objects inherited by a forked child: the
    /// participant's liveness lock belongs to the parent's open file.
    fn check_pid(&self, py: Python<'_>) -> PyResult<()> {
        if self.pid == std::process::id() {
            return Ok(());
        }
        Err(errors::new(
            py,
            ErrorKind::Unsupported,
            "this ring object was inherited through fork(), so its registration belongs to the parent process; open the ring again in this process with sharray.Ring.open()",
            Some(&self.path),
        ))
    }

    fn view_slot(self: &Arc<Self>, k: usize, write: bool) -> ViewSlot {
        ViewSlot::new(self.pool(k, write), self.clone(), write)
    }
}

fn slot_region(ring: &sharray::Ring, k: usize, write: bool) -> Option<Region> {
    let off = ring.data_offset() + (k as u64) * ring.slot_bytes() as u64;
    Region::new(off, ring.slot_bytes(), write)
}

impl ViewSource for RingShared {
    fn fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
    fn descr(&self) -> &Py<PyArrayDescr> {
        &self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.frame_shape
    }
    fn itemsize(&self) -> usize {
        self.itemsize
    }
    fn label(&self) -> &str {
        &self.path
    }
    fn owner(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

fn spin_arg(py: Python<'_>, spin: Option<f64>) -> PyResult<Option<Duration>> {
    match spin {
        None => Ok(None),
        Some(s) if s.is_finite() && (0.0..=1.0).contains(&s) => {
            Ok(Some(Duration::from_secs_f64(s)))
        }
        Some(s) => Err(errors::new(
            py,
            ErrorKind::InvalidInput,
            &format!("invalid spin {s}: give seconds between 0 and 1 (default 20e-6)"),
            None,
        )),
    }
}

/// A ring file: `K` slots of one frame shape, for zero-copy pipelines.
///
/// `Ring.create(...)` / `Ring.open(path)`; attach with `producer()` and
/// `consumer()`. Pickles as its path (unpickling opens the ring again).
#[pyclass(module = "sharray", name = "Ring", frozen)]
pub(crate) struct Ring {
    shared: Arc<RingShared>,
}

#[pymethods]
impl Ring {
    /// Create a ring of `slots` frames of `frame_shape` and `dtype` (never
    /// overwrites). `slots=None` picks as many as fit in 16 MiB (4 to 64).
    /// `broadcast=True`: every consumer gets every frame (default: each
    /// frame goes to one consumer). `overwrite=True`: a producer drops the
    /// oldest unread frame instead of waiting for a free slot.
    #[staticmethod]
    #[pyo3(signature = (path, frame_shape, dtype, slots=None, broadcast=false, overwrite=false, max_participants=64, mode=0o600, prefault=true))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        frame_shape: &Bound<'_, PyAny>,
        dtype: &Bound<'_, PyAny>,
        slots: Option<u32>,
        broadcast: bool,
        overwrite: bool,
        max_participants: u32,
        mode: u32,
        prefault: bool,
    ) -> PyResult<Ring> {
        let path = location(py, path)?;
        let frame_shape = shape_arg(py, frame_shape)?;
        let (dtype, _) = sharray_dtype(py, dtype)?;
        let mut b = sharray::Ring::builder(dtype, &frame_shape)
            .broadcast(broadcast)
            .overwrite(overwrite)
            .max_participants(max_participants)
            .mode(mode)
            .prefault(prefault);
        if let Some(k) = slots {
            b = b.slots(k);
        }
        let ring = py.detach(|| b.create(&path)).py_err(py)?;
        Ok(Ring {
            shared: RingShared::new(py, ring)?,
        })
    }

    /// Open an existing ring (`sharray.Unsupported` if the file is not one).
    #[staticmethod]
    fn open(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Ring> {
        let path = location(py, path)?;
        let ring = py.detach(|| sharray::Ring::open(&path)).py_err(py)?;
        Ok(Ring {
            shared: RingShared::new(py, ring)?,
        })
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> &str {
        &self.shared.path
    }

    /// The frames' numpy dtype.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyArrayDescr> {
        self.shared.dtype.clone_ref(py)
    }

    /// The shape of one frame.
    #[getter]
    fn frame_shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.shared.frame_shape)
    }

    /// Number of slots.
    #[getter]
    fn slots(&self) -> usize {
        self.shared.ring.slots()
    }

    /// Bytes per frame (per slot).
    #[getter]
    fn frame_nbytes(&self) -> usize {
        self.shared.ring.slot_bytes()
    }

    /// Broadcast mode (every consumer gets every frame)?
    #[getter]
    fn broadcast(&self) -> bool {
        self.shared.ring.is_broadcast()
    }

    /// Overwrite-oldest mode?
    #[getter]
    fn overwrite(&self) -> bool {
        self.shared.ring.is_overwrite()
    }

    /// Size of the participant table.
    #[getter]
    fn max_participants(&self) -> u32 {
        self.shared.ring.max_participants()
    }

    /// Attach a producer. `spin`: seconds a blocked loan spins before
    /// parking (default 20e-6).
    #[pyo3(signature = (spin=None))]
    fn producer(&self, py: Python<'_>, spin: Option<f64>) -> PyResult<Producer> {
        self.shared.check_pid(py)?;
        let spin = spin_arg(py, spin)?;
        let ring = self.shared.ring.clone();
        let mut p = py.detach(move || ring.producer()).py_err(py)?;
        if let Some(s) = spin {
            p.set_spin(s);
        }
        Ok(Producer {
            shared: self.shared.clone(),
            inner: Mutex::new(Some(Arc::new(p))),
        })
    }

    /// Attach a consumer (a subscriber in broadcast mode: it gets every
    /// frame committed from now on). `spin` as for `producer()`.
    #[pyo3(signature = (spin=None))]
    fn consumer(&self, py: Python<'_>, spin: Option<f64>) -> PyResult<Consumer> {
        self.shared.check_pid(py)?;
        let spin = spin_arg(py, spin)?;
        let ring = self.shared.ring.clone();
        let mut c = py.detach(move || ring.consumer()).py_err(py)?;
        if let Some(s) = spin {
            c.set_spin(s);
        }
        Ok(Consumer {
            shared: self.shared.clone(),
            inner: Mutex::new(Some(Arc::new(c))),
            current: Mutex::new(None),
        })
    }

    /// A snapshot of the ring's counters, slots and participants (the keys
    /// of `sharray info --json`'s `"ring"` object, plus `timestamp_ns`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let ring = &self.shared.ring;
        let st = py.detach(|| ring.stats());
        let d = PyDict::new(py);
        d.set_item("path", &self.shared.path)?;
        d.set_item("dtype", ring.dtype().descr())?;
        d.set_item("frame_shape", self.shared.frame_shape.clone())?;
        d.set_item("slots", st.slots)?;
        d.set_item("slot_bytes", st.slot_bytes)?;
        d.set_item("mode", if st.broadcast { "broadcast" } else { "queue" })?;
        d.set_item("overwrite", st.overwrite)?;
        d.set_item("committed", st.committed)?;
        d.set_item("received", st.received)?;
        d.set_item("dropped", st.dropped)?;
        d.set_item("head", st.head)?;
        d.set_item("tail", st.tail)?;
        d.set_item("slots_free", st.free)?;
        d.set_item("slots_writing", st.writing)?;
        d.set_item("slots_ready", st.ready)?;
        d.set_item("slots_reading", st.reading)?;
        d.set_item("slots_in_use", st.in_use())?;
        d.set_item("participants_alive", st.alive())?;
        let parts = PyList::empty(py);
        for p in &st.participants {
            let e = PyDict::new(py);
            e.set_item("index", p.index)?;
            e.set_item("role", p.role.name())?;
            e.set_item("pid", p.pid)?;
            e.set_item("alive", p.alive)?;
            e.set_item("count", p.count)?;
            e.set_item("lost", p.lost)?;
            e.set_item("lag", p.lag)?;
            parts.append(e)?;
        }
        d.set_item("participants", parts)?;
        d.set_item("timestamp_ns", st.timestamp_ns)?;
        Ok(d)
    }

    /// Reclaim the slots and entries of dead participants now (blocked
    /// participants and new attachments do it by themselves).
    fn reclaim(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.check_pid(py)?;
        let ring = self.shared.ring.clone();
        py.detach(move || ring.reclaim()).py_err(py)
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        Ok((
            py.import("sharray._sharray")?.getattr("_ring_open")?,
            (self.shared.path.clone(),),
        ))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let s = &self.shared;
        let dt = s
            .dtype
            .bind(py)
            .str()
            .map(|s| s.to_string())
            .unwrap_or_default();
        format!(
            "<sharray.Ring {:?} slots={} frame_shape={} dtype={dt} {}{}>",
            s.path,
            s.ring.slots(),
            py_tuple(&s.frame_shape),
            if s.ring.is_broadcast() {
                "broadcast"
            } else {
                "queue"
            },
            if s.ring.is_overwrite() {
                " overwrite"
            } else {
                ""
            }
        )
    }
}

/// `Ring.open` as a module function (what pickled rings call).
#[pyfunction]
pub(crate) fn _ring_open(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Ring> {
    Ring::open(py, path)
}

fn closed_error(py: Python<'_>, what: &str, path: &str) -> PyErr {
    errors::new(
        py,
        ErrorKind::InvalidInput,
        &format!("this {what} is closed; attach a new one with ring.{what}()"),
        Some(path),
    )
}

/// A registered producer of a ring. Loan slots with `loan()`, or copy an
/// array in with `send()`. `close()` (or leaving a `with` block) detaches
/// it; consumers see the ring disconnected once every producer is gone and
/// the frames are drained.
#[pyclass(module = "sharray", name = "Producer", frozen)]
pub(crate) struct Producer {
    shared: Arc<RingShared>,
    inner: Mutex<Option<Arc<sharray::Producer>>>,
}

impl Producer {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<sharray::Producer>> {
        self.shared.check_pid(py)?;
        self.inner
            .lock()
            .clone()
            .ok_or_else(|| closed_error(py, "producer", &self.shared.path))
    }

    fn loan_inner(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        tag: u64,
        valid_len: Option<usize>,
    ) -> PyResult<WriteLoan> {
        let p = self.get(py)?;
        let loan = lease::sliced(py, timeout, ErrorKind::Timeout, |slice| {
            p.loan_timeout(slice)
        })?
        .py_err(py)?;
        WriteLoan::wrap(py, &self.shared, loan, tag, valid_len)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.shared.pid != std::process::id() {
            // Forked child: detaching would release the parent's lock.
            std::mem::forget(self.inner.get_mut().take());
        }
    }
}

#[pymethods]
impl Producer {
    /// Loan a free slot, waiting at most `timeout` seconds (None: as long
    /// as it takes; raises `sharray.Timeout`). `tag` and `valid_len` (bytes)
    /// are delivered with the frame; both can also be set on the loan.
    #[pyo3(signature = (timeout=None, tag=0, valid_len=None))]
    fn loan(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        tag: u64,
        valid_len: Option<usize>,
    ) -> PyResult<WriteLoan> {
        self.loan_inner(py, timeout, tag, valid_len)
    }

    /// Loan a free slot if one is free now; `None` if every slot is busy.
    #[pyo3(signature = (tag=0, valid_len=None))]
    fn try_loan(
        &self,
        py: Python<'_>,
        tag: u64,
        valid_len: Option<usize>,
    ) -> PyResult<Option<WriteLoan>> {
        let p = self.get(py)?;
        match p.try_loan() {
            Ok(loan) => Ok(Some(WriteLoan::wrap(
                py,
                &self.shared,
                loan,
                tag,
                valid_len,
            )?)),
            Err(sharray::TryLoanError::Full) => Ok(None),
            Err(sharray::TryLoanError::Error(e)) => Err(errors::to_py(py, &e)),
        }
    }

    /// Copy `data` (anything numpy can broadcast to the frame shape) into a
    /// loaned slot and commit it; returns the sequence number.
    #[pyo3(signature = (data, timeout=None, tag=0))]
    fn send(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        tag: u64,
    ) -> PyResult<u64> {
        let loan = self.loan_inner(py, timeout, tag, None)?;
        let view = loan.view(py)?;
        if let Err(e) = py
            .import("numpy")?
            .call_method1("copyto", (view.bind(py), data))
        {
            loan.end(py);
            return Err(e);
        }
        loan.commit(py)
    }

    /// This producer's index in the ring's participant table.
    #[getter]
    fn index(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.index())
    }

    /// Has `close()` been called?
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().is_none()
    }

    /// Detach (idempotent). Loans still open keep the registration until
    /// they end.
    fn close(&self, py: Python<'_>) {
        let p = self.inner.lock().take();
        if let Some(p) = p {
            lease::detach_unless_forked(py, self.shared.pid, p);
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<sharray.Producer of {:?}{state}>", self.shared.path)
    }
}

struct LoanHeld {
    loan: sharray::WriteLoan,
    view: ViewSlot,
    tag: u64,
    valid_len: usize,
}

impl HasViewSlot for LoanHeld {
    fn slot(&mut self) -> &mut ViewSlot {
        &mut self.view
    }
}

/// A loaned ring slot: fill the frame in place, then commit it.
///
/// `with producer.loan() as frame:` gives the writable numpy view of the
/// slot; leaving the block normally commits the frame, leaving it with an
/// exception gives the slot back (nothing is delivered). `commit()` and
/// `abandon()` do the same explicitly. Either way the view is revoked first:
/// it becomes read-only and, with every view derived from it, is cut off
/// from the slot (reads zeros; writes through derived views go to private
/// memory).
#[pyclass(module = "sharray", name = "WriteLoan", frozen)]
pub(crate) struct WriteLoan {
    state: Mutex<Option<LoanHeld>>,
    shared: Arc<RingShared>,
    slot: usize,
    dropped_oldest: bool,
    seq: Mutex<Option<u64>>,
}

impl WriteLoan {
    fn wrap(
        py: Python<'_>,
        shared: &Arc<RingShared>,
        loan: sharray::WriteLoan,
        tag: u64,
        valid_len: Option<usize>,
    ) -> PyResult<WriteLoan> {
        let slot = loan.slot();
        let len = loan.len();
        let valid_len = match valid_len {
            Some(v) if v > len => {
                return Err(errors::new(
                    py,
                    ErrorKind::InvalidInput,
                    &format!("valid_len {v} is larger than the frame ({len} bytes)"),
                    Some(&shared.path),
                ));
            }
            Some(v) => v,
            None => len,
        };
        Ok(WriteLoan {
            slot,
            dropped_oldest: loan.dropped_oldest(),
            state: Mutex::new(Some(LoanHeld {
                view: shared.view_slot(slot, true),
                loan,
                tag,
                valid_len,
            })),
            shared: shared.clone(),
            seq: Mutex::new(None),
        })
    }

    fn ended_error(&self, py: Python<'_>) -> PyErr {
        errors::new(
            py,
            ErrorKind::InvalidInput,
            "this loan has ended (committed or given back); take a new one with producer.loan()",
            Some(&self.shared.path),
        )
    }

    fn view(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        lease::view_of(py, &self.state, |py| self.ended_error(py))
    }

    /// Take the loan out of its state with its view revoked.
    fn take(&self) -> Option<(sharray::WriteLoan, u64, usize, Option<Py<PyAny>>)> {
        let mut held = self.state.lock().take()?;
        let view = held.view.revoke();
        Some((held.loan, held.tag, held.valid_len, view))
    }

    /// Give the slot back (idempotent).
    fn end(&self, _py: Python<'_>) {
        if let Some((loan, _, _, view)) = self.take() {
            lease::drop_unless_forked(self.shared.pid, loan);
            drop(view);
        }
    }

    fn commit(&self, py: Python<'_>) -> PyResult<u64> {
        self.shared.check_pid(py)?;
        let Some((mut loan, tag, valid_len, view)) = self.take() else {
            return Err(self.ended_error(py));
        };
        drop(view);
        loan.set_tag(tag);
        loan.set_valid_len(valid_len).py_err(py)?;
        let seq = loan.commit().py_err(py)?;
        *self.seq.lock() = Some(seq);
        Ok(seq)
    }
}

impl Drop for WriteLoan {
    fn drop(&mut self) {
        if let Some(mut held) = self.state.get_mut().take() {
            let view = held.view.revoke();
            lease::drop_unless_forked(self.shared.pid, held.loan);
            drop(view);
        }
    }
}

#[pymethods]
impl WriteLoan {
    /// The writable numpy view of the slot (the frame shape and dtype).
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.view(py)
    }

    /// Commit on a normal exit, give the slot back on an exception. Never
    /// suppresses exceptions.
    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let failed = exc_type.is_some_and(|t| !t.is_none());
        if failed || !self.active() {
            self.end(py);
        } else {
            self.commit(py)?;
        }
        Ok(false)
    }

    /// The writable numpy view of the slot (made on first use, then the
    /// same object).
    #[getter(view)]
    fn view_getter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.view(py)
    }

    /// Publish the frame; returns its sequence number. The view is revoked
    /// first.
    #[pyo3(name = "commit")]
    fn commit_py(&self, py: Python<'_>) -> PyResult<u64> {
        self.commit(py)
    }

    /// Give the slot back without publishing (idempotent; nothing is
    /// delivered). The view is revoked first.
    fn abandon(&self, py: Python<'_>) {
        self.end(py);
    }

    /// The user tag delivered with the frame (default 0).
    #[getter]
    fn tag(&self, py: Python<'_>) -> PyResult<u64> {
        match self.state.lock().as_ref() {
            Some(h) => Ok(h.tag),
            None => Err(self.ended_error(py)),
        }
    }

    #[setter]
    fn set_tag(&self, py: Python<'_>, tag: u64) -> PyResult<()> {
        match self.state.lock().as_mut() {
            Some(h) => {
                h.tag = tag;
                Ok(())
            }
            None => Err(self.ended_error(py)),
        }
    }

    /// Bytes of the frame delivered as valid (default: all of it).
    #[getter]
    fn valid_len(&self, py: Python<'_>) -> PyResult<usize> {
        match self.state.lock().as_ref() {
            Some(h) => Ok(h.valid_len),
            None => Err(self.ended_error(py)),
        }
    }

    #[setter]
    fn set_valid_len(&self, py: Python<'_>, len: usize) -> PyResult<()> {
        let max = self.shared.ring.slot_bytes();
        if len > max {
            return Err(errors::new(
                py,
                ErrorKind::InvalidInput,
                &format!("valid_len {len} is larger than the frame ({max} bytes)"),
                Some(&self.shared.path),
            ));
        }
        match self.state.lock().as_mut() {
            Some(h) => {
                h.valid_len = len;
                Ok(())
            }
            None => Err(self.ended_error(py)),
        }
    }

    /// Index of the slot (row of `np.load(ring.path, mmap_mode="r")`).
    #[getter]
    fn slot(&self) -> usize {
        self.slot
    }

    /// Did taking this slot drop the oldest unread frame (overwrite mode)?
    #[getter]
    fn dropped_oldest(&self) -> bool {
        self.dropped_oldest
    }

    /// The sequence number once committed, else None.
    #[getter]
    fn seq(&self) -> Option<u64> {
        *self.seq.lock()
    }

    /// Is the slot still loaned (not committed or given back)?
    #[getter]
    fn active(&self) -> bool {
        self.state.lock().is_some()
    }

    /// Debug: `(address, length)` of the mapping the view lives in.
    #[getter]
    fn _window(&self) -> Option<(usize, usize)> {
        self.state
            .lock()
            .as_ref()
            .and_then(|h| h.view.window.as_ref())
            .map(|w| w.range())
    }

    fn __repr__(&self) -> String {
        let state = match (self.active(), *self.seq.lock()) {
            (true, _) => "loaned".to_string(),
            (false, Some(s)) => format!("committed seq={s}"),
            (false, None) => "given back".to_string(),
        };
        format!(
            "<sharray.WriteLoan slot={} {state} of {:?}>",
            self.slot, self.shared.path
        )
    }
}

/// A registered consumer of a ring (a subscriber in broadcast mode).
///
/// `with consumer.recv() as frame:` reads one frame in place;
/// `for lease in consumer:` yields `ReadLease`s until every producer has
/// gone and the ring is drained (each lease is released when the loop asks
/// for the next one). `close()` (or leaving a `with` block) detaches.
#[pyclass(module = "sharray", name = "Consumer", frozen)]
pub(crate) struct Consumer {
    shared: Arc<RingShared>,
    inner: Mutex<Option<Arc<sharray::Consumer>>>,
    /// The lease last yielded by iteration (released by the next step).
    current: Mutex<Option<Py<ReadLease>>>,
}

impl Consumer {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<sharray::Consumer>> {
        self.shared.check_pid(py)?;
        self.inner
            .lock()
            .clone()
            .ok_or_else(|| closed_error(py, "consumer", &self.shared.path))
    }

    fn recv_inner(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<sharray::Result<sharray::ReadLease>> {
        let c = self.get(py)?;
        lease::sliced(py, timeout, ErrorKind::Timeout, |slice| {
            c.recv_timeout(slice)
        })
    }

    fn end_current(&self, py: Python<'_>) {
        let current = self.current.lock().take();
        if let Some(l) = current {
            l.get().end();
            drop(l);
        }
        let _ = py;
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.shared.pid != std::process::id() {
            std::mem::forget(self.inner.get_mut().take());
        }
    }
}

#[pymethods]
impl Consumer {
    /// Receive the next frame, waiting at most `timeout` seconds (None: as
    /// long as it takes). Raises `sharray.Timeout` (a `TimeoutError`), or
    /// `sharray.Disconnected` (a `BrokenPipeError`) once every producer has
    /// gone and the frames are drained.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<ReadLease> {
        let lease = self.recv_inner(py, timeout)?.py_err(py)?;
        Ok(ReadLease::wrap(&self.shared, lease))
    }

    /// Receive a frame if one is ready now; `None` if not. Raises
    /// `sharray.Disconnected` as `recv()` does.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Option<ReadLease>> {
        let c = self.get(py)?;
        match c.try_recv() {
            Ok(l) => Ok(Some(ReadLease::wrap(&self.shared, l))),
            Err(sharray::TryRecvError::Empty) => Ok(None),
            Err(sharray::TryRecvError::Disconnected) => Err(errors::new(
                py,
                ErrorKind::Disconnected,
                "every producer of the ring has gone and its frames are drained; start a producer or stop consuming",
                Some(&self.shared.path),
            )),
            Err(sharray::TryRecvError::Error(e)) => Err(errors::to_py(py, &e)),
        }
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Release the lease yielded last, then wait for the next frame. Ends
    /// (StopIteration) when the ring is disconnected.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<ReadLease>>> {
        self.end_current(py);
        match self.recv_inner(py, None)? {
            Ok(l) => {
                let lease = Py::new(py, ReadLease::wrap(&self.shared, l))?;
                *self.current.lock() = Some(lease.clone_ref(py));
                Ok(Some(lease))
            }
            Err(e) if e.kind() == ErrorKind::Disconnected => Ok(None),
            Err(e) => Err(errors::to_py(py, &e)),
        }
    }

    /// This consumer's index in the ring's participant table.
    #[getter]
    fn index(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.index())
    }

    /// Has `close()` been called?
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().is_none()
    }

    /// Release the lease yielded by iteration (if any) and detach
    /// (idempotent). Leases from `recv()` still open keep the registration
    /// until they end.
    fn close(&self, py: Python<'_>) {
        self.end_current(py);
        let c = self.inner.lock().take();
        if let Some(c) = c {
            lease::detach_unless_forked(py, self.shared.pid, c);
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<sharray.Consumer of {:?}{state}>", self.shared.path)
    }
}

struct LeaseHeld {
    lease: sharray::ReadLease,
    view: ViewSlot,
}

impl HasViewSlot for LeaseHeld {
    fn slot(&mut self) -> &mut ViewSlot {
        &mut self.view
    }
}

/// A received frame: read it in place, then release it.
///
/// `with consumer.recv() as frame:` gives the read-only numpy view of the
/// frame (the frame shape and dtype); leaving the block releases the slot.
/// The metadata stay readable after release: `seq`, `timestamp_ns`, `tag`,
/// `valid_len` (bytes), `lost`, `slot`. When the lease ends (`release()`,
/// `__exit__`, the next iteration step, garbage collection) the view and
/// every view derived from it are revoked first: they read zeros.
#[pyclass(module = "sharray", name = "ReadLease", frozen)]
pub(crate) struct ReadLease {
    state: Mutex<Option<LeaseHeld>>,
    shared: Arc<RingShared>,
    /// The frame's sequence number (commit order, from 0).
    #[pyo3(get)]
    seq: u64,
    /// `CLOCK_MONOTONIC` nanoseconds at commit (`time.monotonic_ns()`
    /// clock, comparable across processes).
    #[pyo3(get)]
    timestamp_ns: u64,
    /// The producer's tag.
    #[pyo3(get)]
    tag: u64,
    /// Valid bytes of the frame (the whole frame unless the producer said
    /// less); the view always covers the whole frame.
    #[pyo3(get)]
    valid_len: usize,
    /// Frames lost since this consumer's previous receive (overwrite mode).
    #[pyo3(get)]
    lost: u64,
    /// Index of the slot.
    #[pyo3(get)]
    slot: usize,
}

impl ReadLease {
    fn wrap(shared: &Arc<RingShared>, lease: sharray::ReadLease) -> ReadLease {
        ReadLease {
            seq: lease.seq(),
            timestamp_ns: lease.timestamp_ns(),
            tag: lease.tag(),
            valid_len: lease.valid_len(),
            lost: lease.lost(),
            slot: lease.slot(),
            state: Mutex::new(Some(LeaseHeld {
                view: shared.view_slot(lease.slot(), false),
                lease,
            })),
            shared: shared.clone(),
        }
    }

    fn ended_error(&self, py: Python<'_>) -> PyErr {
        errors::new(
            py,
            ErrorKind::InvalidInput,
            "this lease was released; receive a new frame with consumer.recv()",
            Some(&self.shared.path),
        )
    }

    /// Revoke the view, then release the slot (idempotent).
    fn end(&self) {
        let held = self.state.lock().take();
        if let Some(mut h) = held {
            let view = h.view.revoke();
            lease::drop_unless_forked(self.shared.pid, h.lease);
            drop(view);
        }
    }
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        self.end();
    }
}

#[pymethods]
impl ReadLease {
    /// The read-only numpy view of the frame.
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        lease::view_of(py, &self.state, |py| self.ended_error(py))
    }

    /// Release the slot (the view is revoked first). Never suppresses
    /// exceptions.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.end();
        false
    }

    /// The read-only numpy view of the frame (made on first use, then the
    /// same object).
    #[getter]
    fn view(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        lease::view_of(py, &self.state, |py| self.ended_error(py))
    }

    /// Release the slot now (idempotent); the view is revoked first.
    fn release(&self) {
        self.end();
    }

    /// Is the slot still leased?
    #[getter]
    fn active(&self) -> bool {
        self.state.lock().is_some()
    }

    /// The frame's sequence number (commit order, from 0).
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    /// `CLOCK_MONOTONIC` nanoseconds at commit (`time.monotonic_ns()`
    /// clock, comparable across processes).
    #[getter]
    fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }

    /// The producer's tag.
    #[getter]
    fn tag(&self) -> u64 {
        self.tag
    }

    /// Valid bytes of the frame (the whole frame unless the producer said
    /// less); the view always covers the whole frame.
    #[getter]
    fn valid_len(&self) -> usize {
        self.valid_len
    }

    /// Frames lost since this consumer's previous receive (overwrite mode).
    #[getter]
    fn lost(&self) -> u64 {
        self.lost
    }

    /// Index of the slot.
    #[getter]
    fn slot(&self) -> usize {
        self.slot
    }

    /// Debug: `(address, length)` of the mapping the view lives in.
    #[getter]
    fn _window(&self) -> Option<(usize, usize)> {
        self.state
            .lock()
            .as_ref()
            .and_then(|h| h.view.window.as_ref())
            .map(|w| w.range())
    }

    fn __repr__(&self) -> String {
        format!(
            "<sharray.ReadLease seq={} tag={} slot={}{} of {:?}>",
            self.seq,
            self.tag,
            self.slot,
            if self.active() { "" } else { " released" },
            self.shared.path
        )
    }
}
