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
//!
//! Laid out like the core's `ring`: the ring and its shared state here,
//! `producer.rs` (`Producer`, `WriteLoan`), `consumer.rs` (`Consumer`,
//! `ReadLease`).

use std::any::Any;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use numpy::PyArrayDescr;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use sharray::ErrorKind;

use crate::errors::{self, IntoPy};
use crate::fork::{self, Origin};
use crate::handle::{location, numpy_dtype, shape_arg, sharray_dtype};
use crate::lease::{ViewSlot, ViewSource};
use crate::window::{Region, ShadowPool};
use sharray::format::npy::shape_repr;

mod consumer;
mod producer;

pub(crate) use consumer::{Consumer, ReadLease};
pub(crate) use producer::{Producer, WriteLoan};

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
    origin: Origin,
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
            origin: Origin::here(),
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
        self.origin.check(py, fork::RING, &self.path)
    }

    fn view_slot(self: &Arc<Self>, k: usize, write: bool) -> ViewSlot {
        ViewSlot::new(self.pool(k, write), self.clone(), write)
    }
}

/// A numpy array that is exactly one frame: C-contiguous, the ring's dtype
/// and frame shape (and writeable, for `write`). Its data as a pointer and
/// a length, valid while the array is alive and the GIL held: `send` and
/// `recv_into` make it and copy with the GIL held throughout, so no other
/// thread can change the array between the checks and the copy.
pub(crate) struct FrameBuffer<'a> {
    ptr: *mut u8,
    len: usize,
    _array: &'a Bound<'a, PyAny>,
}

impl FrameBuffer<'_> {
    /// Copy `src` (at most the frame's bytes) to the start of the array.
    #[allow(unsafe_code)]
    fn fill_from(&self, src: &[u8]) {
        let n = src.len().min(self.len);
        // SAFETY: `ptr` is the data of a live, writeable, C-contiguous array
        // of `len` bytes (checked by `frame_buffer`); `copy` allows overlap
        // (an array may be a view of the ring file itself).
        unsafe { std::ptr::copy(src.as_ptr(), self.ptr, n) }
    }

    /// Copy the array's bytes into `dst` (at most its length).
    #[allow(unsafe_code)]
    fn copy_to(&self, dst: &mut [u8]) {
        let n = dst.len().min(self.len);
        // SAFETY: as in `fill_from`, reading `len` bytes of a live array.
        unsafe { std::ptr::copy(self.ptr, dst.as_mut_ptr(), n) }
    }
}

impl RingShared {
    /// `obj` as a [`FrameBuffer`], or why it is not one.
    #[allow(unsafe_code)]
    fn frame_buffer<'a>(
        &self,
        py: Python<'_>,
        obj: &'a Bound<'a, PyAny>,
        write: bool,
    ) -> Result<FrameBuffer<'a>, (ErrorKind, String)> {
        use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
        let Ok(arr) = obj.cast::<PyUntypedArray>() else {
            return Err((ErrorKind::InvalidInput, "expected a numpy array".into()));
        };
        let dtype = self.dtype.bind(py);
        if !arr.dtype().is_equiv_to(dtype) {
            return Err((
                ErrorKind::DtypeMismatch,
                format!(
                    "the array has dtype {}, the ring's frames are {dtype}",
                    arr.dtype()
                ),
            ));
        }
        if arr.shape() != self.frame_shape.as_slice() {
            return Err((
                ErrorKind::ShapeMismatch,
                format!(
                    "the array has shape {}, the ring's frames have shape {}",
                    shape_repr(arr.shape()),
                    shape_repr(&self.frame_shape)
                ),
            ));
        }
        if !arr.is_c_contiguous() {
            return Err((
                ErrorKind::InvalidInput,
                "the array is not C-contiguous; pass numpy.ascontiguousarray(a)".into(),
            ));
        }
        // SAFETY: `arr` is a live numpy array (checked by the cast); its
        // object struct holds the data pointer and flags.
        let (ptr, flags) = unsafe {
            let raw = arr.as_array_ptr();
            ((*raw).data.cast::<u8>(), (*raw).flags)
        };
        if write && flags & numpy::npyffi::NPY_ARRAY_WRITEABLE == 0 {
            return Err((
                ErrorKind::InvalidInput,
                "the array is read-only; pass a writeable array".into(),
            ));
        }
        Ok(FrameBuffer {
            ptr,
            len: self.frame_shape.iter().product::<usize>() * self.itemsize,
            _array: obj,
        })
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

    /// Advise the kernel how this process will access the ring's slots:
    /// "normal", "sequential", "random", "willneed", "dontneed" or
    /// "hugepage". Returns "applied" or the reason nothing changed (e.g.
    /// why huge pages are not available). Advice about this process's
    /// mappings reaches the views of leases taken afterwards.
    fn advise(&self, py: Python<'_>, advice: &str) -> PyResult<String> {
        let advice = sharray::Advice::parse(advice).py_err(py)?;
        let shared = self.shared.clone();
        let got = py.detach(move || shared.ring.advise(advice)).py_err(py)?;
        let madv = match advice {
            sharray::Advice::Normal => Some(libc::MADV_NORMAL),
            sharray::Advice::Sequential => Some(libc::MADV_SEQUENTIAL),
            sharray::Advice::Random => Some(libc::MADV_RANDOM),
            sharray::Advice::HugePage => Some(libc::MADV_HUGEPAGE),
            sharray::Advice::WillNeed | sharray::Advice::DontNeed => None,
        };
        let slot = self.shared.ring.slot_bytes();
        for pool in self
            .shared
            .read_pools
            .iter()
            .chain(&self.shared.write_pools)
        {
            match madv {
                Some(m) => pool.remember_advice(0, slot, m),
                None if advice == sharray::Advice::DontNeed => pool.drop_shadow_pages(0, slot),
                None => {}
            }
        }
        Ok(match got {
            sharray::Advised::Applied => "applied".to_string(),
            sharray::Advised::Fallback(why) => why,
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
    /// parking (default 20e-6). A stream a producer has closed refuses new
    /// producers (`sharray.Disconnected`) unless `reopen=True`, which
    /// reopens it.
    #[pyo3(signature = (spin=None, reopen=false))]
    fn producer(&self, py: Python<'_>, spin: Option<f64>, reopen: bool) -> PyResult<Producer> {
        self.shared.check_pid(py)?;
        let spin = spin_arg(py, spin)?;
        let ring = self.shared.ring.clone();
        let mut p = py
            .detach(move || {
                if reopen {
                    ring.producer_reopening()
                } else {
                    ring.producer()
                }
            })
            .py_err(py)?;
        if let Some(s) = spin {
            p.set_spin(s);
        }
        Ok(Producer::new(&self.shared, p))
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
        Ok(Consumer::new(&self.shared, c))
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
        d.set_item("closed", st.closed)?;
        d.set_item("producers_attached", st.producers_attached())?;
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
            shape_repr(&s.frame_shape),
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
