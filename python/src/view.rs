//! numpy views over a revocable [`Window`]: the array object, its base
//! object, and what revoking does to the array itself. Shared by every
//! front-end object that hands out views (array guards now; ring and pool
//! leases later: give them a `Window` over their slot and call
//! [`make_view`]).

#![allow(unsafe_code)]

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use numpy::PyArrayDescr;
use numpy::npyffi::{self, NPY_ARRAY_WRITEABLE, NpyTypes, PY_ARRAY_API, npy_intp};
use pyo3::prelude::*;

use crate::window::Window;

/// What a view looks like: dtype, shape, order.
pub(crate) struct ViewSpec<'a> {
    pub descr: &'a Py<PyArrayDescr>,
    pub shape: &'a [usize],
    pub itemsize: usize,
    pub fortran: bool,
}

/// The base object of every view: keeps the window (and whatever owns the
/// file) alive as long as any view or derived view exists.
#[pyclass(module = "sharray", name = "_ViewBase", frozen)]
pub(crate) struct ViewBase {
    window: Option<Arc<Window>>,
    _owner: Arc<dyn Any + Send + Sync>,
    label: String,
}

#[pymethods]
impl ViewBase {
    /// Has the guard that made the view ended?
    #[getter]
    fn revoked(&self) -> bool {
        self.window.as_ref().is_none_or(|w| w.is_revoked())
    }

    fn __repr__(&self) -> String {
        format!(
            "<sharray view base of {:?}{}>",
            self.label,
            if self.revoked() { ", revoked" } else { "" }
        )
    }
}

/// Backing for views of arrays without data (never read or written: the
/// array has no elements).
static EMPTY: [u64; 8] = [0; 8];

fn strides(shape: &[usize], itemsize: usize, fortran: bool) -> Vec<npy_intp> {
    let n = shape.len();
    let mut strides = vec![0 as npy_intp; n];
    let mut step = itemsize as npy_intp;
    let mut order: Vec<usize> = (0..n).collect();
    if !fortran {
        order.reverse();
    }
    for i in order {
        strides[i] = step;
        step = step.checked_mul(shape[i].max(1) as npy_intp).unwrap_or(0);
    }
    strides
}

/// A numpy array over the window's data (no copy) with a [`ViewBase`] as
/// its base. `window` is `None` only for arrays without data. `owner` is
/// kept alive by the base (the handle or lease the data belongs to).
pub(crate) fn make_view(
    py: Python<'_>,
    spec: &ViewSpec<'_>,
    window: Option<&Arc<Window>>,
    write: bool,
    owner: Arc<dyn Any + Send + Sync>,
    label: &str,
) -> PyResult<Py<PyAny>> {
    let data = match window {
        Some(w) => w.data_ptr(),
        None => EMPTY.as_ptr() as *mut u8,
    };
    let base = Py::new(
        py,
        ViewBase {
            window: window.cloned(),
            _owner: owner,
            label: label.to_string(),
        },
    )?;
    new_array(py, spec, data, write, base.into_any())
}

/// A numpy array over `data` (which holds the bytes `spec` describes as
/// long as `base` lives) with `base` as its base object.
fn new_array(
    py: Python<'_>,
    spec: &ViewSpec<'_>,
    data: *mut u8,
    write: bool,
    base: Py<PyAny>,
) -> PyResult<Py<PyAny>> {
    let mut dims: Vec<npy_intp> = spec.shape.iter().map(|&d| d as npy_intp).collect();
    let mut strides = strides(spec.shape, spec.itemsize, spec.fortran);
    let flags = if write { NPY_ARRAY_WRITEABLE } else { 0 };
    // SAFETY: numpy C API under the GIL. `descr` is a new reference that
    // PyArray_NewFromDescr steals; dims/strides have `nd` entries and
    // describe exactly the bytes at `data`, which `base` keeps valid (a
    // window, a copy buffer, or an empty array that never touches
    // `EMPTY`). PyArray_SetBaseObject steals `base` in every case, so the
    // memory outlives the array and all views numpy derives from it.
    unsafe {
        let descr = spec.descr.bind(py).clone().into_ptr() as *mut npyffi::PyArray_Descr;
        let arr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, NpyTypes::PyArray_Type),
            descr,
            dims.len() as std::os::raw::c_int,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
            data.cast(),
            flags,
            std::ptr::null_mut(),
        );
        if arr.is_null() {
            return Err(PyErr::fetch(py));
        }
        let arr = Bound::from_owned_ptr(py, arr);
        if PY_ARRAY_API.PyArray_SetBaseObject(
            py,
            arr.as_ptr() as *mut npyffi::PyArrayObject,
            base.into_ptr(),
        ) < 0
        {
            return Err(PyErr::fetch(py));
        }
        Ok(arr.unbind())
    }
}

/// Make a view made by [`make_view`] read-only (part of revoking it; the
/// window does the rest).
pub(crate) fn make_read_only(view: &Py<PyAny>) {
    // SAFETY: `view` is an ndarray we created in `make_view`, and holding a
    // `Py` reference means the caller has (or is about to drop it with) the
    // GIL; clearing a flag bit is what numpy's PyArray_CLEARFLAGS does.
    unsafe {
        let arr = view.as_ptr() as *mut npyffi::PyArrayObject;
        (*arr).flags &= !NPY_ARRAY_WRITEABLE;
    }
}

/// Does anything besides its guard or lease hold the view made by
/// [`make_view`]? The guard or lease holds exactly one reference; every
/// variable, derived view (numpy makes the view their base), memoryview and
/// DLPack capsule holds another. With the GIL held and a count of one,
/// nothing else can reach the view's memory through Python objects.
pub(crate) fn escaped(_py: Python<'_>, view: &Py<PyAny>) -> bool {
    // SAFETY: `view` is a live object (we hold a reference); reading its
    // reference count is what `sys.getrefcount` does, with the GIL held.
    unsafe { pyo3::ffi::Py_REFCNT(view.as_ptr()) > 1 }
}

/// How guards and leases end their views (`sharray.set_view_policy`).
static POLICY: AtomicU8 = AtomicU8::new(POLICY_AUTO);
const POLICY_AUTO: u8 = 0;
const POLICY_ALWAYS: u8 = 1;
const POLICY_NEVER: u8 = 2;
const POLICY_NAMES: [&str; 3] = ["auto", "always", "never"];

/// Must the window of `view` be revoked when its guard or lease ends?
/// `auto`: only if the view escaped; `always`: yes (also covers raw
/// addresses taken without a reference); `never`: no (stale views may read
/// later data: the documented opt-out).
pub(crate) fn must_revoke(py: Python<'_>, view: Option<&Py<PyAny>>) -> bool {
    match POLICY.load(Ordering::Relaxed) {
        POLICY_ALWAYS => true,
        POLICY_NEVER => false,
        _ => view.is_some_and(|v| escaped(py, v)),
    }
}

/// Choose what happens to numpy views when their guard or lease ends, for
/// this process.
///
/// - `"auto"` (default): a view that escaped (anything still references it:
///   a variable, a slice, a memoryview, a DLPack capsule or tensor) is
///   revoked and reads zeros; a view nothing references is not revoked and
///   its mapping is reused by the next guard or lease (no system call).
/// - `"always"`: revoke every view, as before 0.2 (two system calls per
///   guard or lease); use it when C code keeps raw addresses of views
///   without holding a reference to them.
/// - `"never"`: revoke nothing: stale views keep reading (and writing!) the
///   shared bytes, which by then belong to a later frame or lock holder.
///   Only for users who accept that; saves the revocation for escaped views.
///
/// `copy_below` (bytes, `"auto"` only): views of guards and leases of at
/// most this many bytes are private copies instead of windows into the file
/// (copied in when the view is made, and back when a write guard, loan or
/// claim ends): no revocation is needed, because a stale copy never reads
/// another owner's data, only the frame it was made from. Default 64 KiB
/// (the measured crossover, BENCHMARKS.md); 0 turns copies off.
///
/// Returns the previous `(policy, copy_below)`; with no arguments, the
/// current ones, unchanged.
#[pyfunction]
#[pyo3(signature = (policy=None, copy_below=None))]
pub(crate) fn set_view_policy(
    py: Python<'_>,
    policy: Option<&str>,
    copy_below: Option<usize>,
) -> PyResult<(&'static str, usize)> {
    let k = match policy {
        None => None,
        Some(p) => match POLICY_NAMES.iter().position(|&n| n == p) {
            Some(k) => Some(k as u8),
            None => {
                return Err(crate::errors::new(
                    py,
                    sharray::ErrorKind::InvalidInput,
                    &format!("unknown view policy {p:?}; use \"auto\", \"always\" or \"never\""),
                    None,
                ));
            }
        },
    };
    let old_copy = match copy_below {
        Some(n) => COPY_BELOW.swap(n, Ordering::Relaxed),
        None => COPY_BELOW.load(Ordering::Relaxed),
    };
    let old = match k {
        Some(k) => POLICY.swap(k, Ordering::Relaxed),
        None => POLICY.load(Ordering::Relaxed),
    };
    Ok((POLICY_NAMES[old as usize], old_copy))
}

/// Views of at most this many bytes are copies (see `set_view_policy`).
static COPY_BELOW: AtomicUsize = AtomicUsize::new(64 << 10);

/// Should a view of `nbytes` be a private copy?
pub(crate) fn copies(nbytes: usize) -> bool {
    nbytes > 0
        && POLICY.load(Ordering::Relaxed) == POLICY_AUTO
        && nbytes <= COPY_BELOW.load(Ordering::Relaxed)
}

fn nbytes(spec: &ViewSpec<'_>) -> usize {
    spec.shape.iter().product::<usize>() * spec.itemsize
}

/// The memory of a copied view (16-byte aligned), recycled when the last
/// array using it is gone. Arrays over it do not own their data, so numpy
/// never reallocates it (`resize` refuses).
#[pyclass(module = "sharray", name = "_CopyBase", frozen)]
pub(crate) struct CopyBase {
    ptr: *mut u128,
    words: usize,
}

// SAFETY: the buffer is plain heap memory that this object owns; it is only
// read and written through numpy arrays under the GIL and freed once.
unsafe impl Send for CopyBase {}
// SAFETY: as above: the object itself never touches the bytes.
unsafe impl Sync for CopyBase {}

impl Drop for CopyBase {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`words` come from Box::into_raw of a boxed slice of
        // `words` u128 (copy_buffer), taken back only here.
        let buf =
            unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.words)) };
        recycle(buf);
    }
}

/// Copy buffers whose views are gone, for the next copies (a view that
/// escapes is rebound at the next lease, so two or three buffers are in
/// use at a time). Reusing them saves a malloc and, from 64 KiB on, the
/// page faults of memory glibc gave back to the kernel at free.
static SPARE_COPIES: parking_lot::Mutex<Vec<Box<[u128]>>> = parking_lot::Mutex::new(Vec::new());
const MAX_SPARE_COPIES: usize = 4;

/// A buffer of exactly `words` 16-byte words: a spare one (holding an
/// earlier copy of this process), else a new, zeroed one.
fn copy_buffer(words: usize) -> Box<[u128]> {
    let mut spare = SPARE_COPIES.lock();
    match spare.iter().rposition(|b| b.len() == words) {
        Some(k) => spare.swap_remove(k),
        None => {
            drop(spare);
            vec![0u128; words].into_boxed_slice()
        }
    }
}

fn recycle(buf: Box<[u128]>) {
    // Only copy-sized buffers (views above the copy threshold are windows).
    if buf.len() * 16 > (1 << 20) {
        return;
    }
    let mut spare = SPARE_COPIES.lock();
    if spare.len() == MAX_SPARE_COPIES {
        spare.remove(0);
    }
    spare.push(buf);
}

/// A numpy array over a private copy of the window's data (read-only
/// unless `write`): the view of a small guard or lease. Nothing about it is
/// ever revoked; it keeps the bytes it was made with. Without `copy_in`
/// (a ring loan: its contents are unspecified until written, like
/// `numpy.empty`) the window is not read and the array starts with whatever
/// the buffer holds: zeros, or an earlier copy made in this process.
pub(crate) fn make_copy(
    py: Python<'_>,
    spec: &ViewSpec<'_>,
    window: &Window,
    write: bool,
    copy_in: bool,
) -> PyResult<Py<PyAny>> {
    let n = nbytes(spec);
    let words = n.div_ceil(16).max(1);
    let buf = copy_buffer(words);
    let ptr = Box::into_raw(buf) as *mut u128;
    let base = Py::new(py, CopyBase { ptr, words })?;
    if copy_in {
        // SAFETY: the window maps at least `n` data bytes from `data_ptr()`
        // (its region covers the whole view) and the buffer has >= n bytes;
        // the buffer is ours alone, so they cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(window.data_ptr(), ptr as *mut u8, n) };
    }
    new_array(py, spec, ptr as *mut u8, write, base.into_any())
}

/// Write a copy made by [`make_copy`] back into the window (the end of a
/// write guard, loan or claim whose view is a copy).
pub(crate) fn copy_back(_py: Python<'_>, view: &Py<PyAny>, spec_bytes: usize, window: &Window) {
    // SAFETY: `view` is the contiguous array of `spec_bytes` bytes that
    // make_copy made (over a CopyBase buffer numpy cannot reallocate),
    // read with the GIL held; the window is live, writable (copies are
    // written back only for write guards and loans, whose regions are
    // mapped writable) and maps at least `spec_bytes` data bytes.
    unsafe {
        let a = view.as_ptr() as *mut npyffi::PyArrayObject;
        std::ptr::copy_nonoverlapping((*a).data as *const u8, window.data_ptr(), spec_bytes);
    }
}

/// Bytes of a view described by `spec`.
pub(crate) fn view_bytes(spec: &ViewSpec<'_>) -> usize {
    nbytes(spec)
}
