//! numpy views over a revocable [`Window`]: the array object, its base
//! object, and what revoking does to the array itself. Shared by every
//! front-end object that hands out views (array guards now; ring and pool
//! leases later: give them a `Window` over their slot and call
//! [`make_view`]).

#![allow(unsafe_code)]

use std::any::Any;
use std::sync::Arc;

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
    let mut dims: Vec<npy_intp> = spec.shape.iter().map(|&d| d as npy_intp).collect();
    let mut strides = strides(spec.shape, spec.itemsize, spec.fortran);
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
    let flags = if write { NPY_ARRAY_WRITEABLE } else { 0 };
    // SAFETY: numpy C API under the GIL. `descr` is a new reference that
    // PyArray_NewFromDescr steals; dims/strides have `nd` entries and
    // describe exactly the bytes at `data` that the window maps (or an
    // empty array that never touches `EMPTY`). PyArray_SetBaseObject steals
    // `base` in every case, so the window outlives the array and all views
    // numpy derives from it.
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
