//! DLPack export of guards, loans, leases and claims' rows
//! (`__dlpack__`, `__dlpack_device__`), so `np.from_dlpack(lease)`,
//! `torch.from_dlpack(lease)` and `jax.dlpack.from_dlpack` share the view's
//! memory with no copy.
//!
//! The C structs below follow the DLPack header (`dlpack/dlpack.h`, ABI
//! 1.x): `DLManagedTensorVersioned` in a `"dltensor_versioned"` capsule when
//! the consumer passes `max_version >= (1, 0)`, the legacy
//! `DLManagedTensor` in a `"dltensor"` capsule otherwise. Read views carry
//! `DLPACK_FLAG_BITMASK_READ_ONLY`; the legacy struct cannot say read-only,
//! so read views refuse a legacy export (as numpy does) unless `copy=True`.
//!
//! What a consumer holds keeps the numpy view alive (the export owns a
//! reference to it until the consumer calls the deleter), so the view counts
//! as escaped: when its guard or lease ends it is revoked, and the tensor
//! reads zeros from then on, like every other stale view.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_void};

use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

/// `kDLCPU`.
const DL_CPU: i32 = 1;
/// `DLPACK_FLAG_BITMASK_READ_ONLY`.
const FLAG_READ_ONLY: u64 = 1;
/// The DLPack ABI version we produce.
const VERSION: DLPackVersion = DLPackVersion { major: 1, minor: 0 };

const NAME_VERSIONED: &CStr = c"dltensor_versioned";
const NAME_LEGACY: &CStr = c"dltensor";

#[repr(C)]
#[derive(Clone, Copy)]
struct DLPackVersion {
    major: u32,
    minor: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct DLDevice {
    device_type: i32,
    device_id: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct DLDataType {
    code: u8,
    bits: u8,
    lanes: u16,
}

#[repr(C)]
struct DLTensor {
    data: *mut c_void,
    device: DLDevice,
    ndim: i32,
    dtype: DLDataType,
    shape: *mut i64,
    strides: *mut i64,
    byte_offset: u64,
}

#[repr(C)]
struct DLManagedTensor {
    dl_tensor: DLTensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

#[repr(C)]
struct DLManagedTensorVersioned {
    version: DLPackVersion,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    flags: u64,
    dl_tensor: DLTensor,
}

/// One export: the managed tensor first (its address is the export's), then
/// what its pointers point at and the reference that keeps the memory
/// alive.
#[repr(C)]
struct Export<M> {
    managed: M,
    shape: Vec<i64>,
    strides: Vec<i64>,
    _view: Py<PyAny>,
}

/// `(kDLCPU, 0)`: every view lives in host memory.
pub(crate) fn device() -> (i32, i32) {
    (DL_CPU, 0)
}

fn buffer_error(msg: String) -> PyErr {
    PyBufferError::new_err(msg)
}

/// The DLPack type of a numpy dtype (native byte order, plain numbers).
fn dl_dtype(descr: &Bound<'_, numpy::PyArrayDescr>) -> PyResult<DLDataType> {
    let bits = descr.itemsize() * 8;
    let code = match descr.kind() {
        b'i' => 0,
        b'u' => 1,
        b'f' => 2,
        b'c' => 5,
        b'b' => 6,
        _ => {
            return Err(buffer_error(format!(
                "dtype {} cannot be exported through DLPack (only bool, integers, floats and complex)",
                descr.str().map(|s| s.to_string()).unwrap_or_default()
            )));
        }
    };
    if descr.is_native_byteorder() == Some(false) || descr.has_fields() || bits > 255 {
        return Err(buffer_error(
            "only native byte order plain numbers can be exported through DLPack; take a copy with .astype()"
                .to_string(),
        ));
    }
    Ok(DLDataType {
        code,
        bits: bits as u8,
        lanes: 1,
    })
}

/// The body of every `__dlpack__`: export `view` (a numpy array made by
/// `make_view`, read-only unless `writable`).
pub(crate) fn export(
    py: Python<'_>,
    view: Py<PyAny>,
    writable: bool,
    stream: Option<&Bound<'_, PyAny>>,
    max_version: Option<(u32, u32)>,
    dl_device: Option<(i32, i32)>,
    copy: Option<bool>,
) -> PyResult<Py<PyAny>> {
    if stream.is_some_and(|s| !s.is_none()) {
        return Err(buffer_error(
            "stream must be None for host (kDLCPU) memory".to_string(),
        ));
    }
    if let Some(d) = dl_device
        && d != device()
    {
        return Err(buffer_error(format!(
            "cannot export to device {d:?}: sharray data is host memory (kDLCPU, 0); copy it with the consumer's tools"
        )));
    }
    let versioned = max_version.is_some_and(|(major, _)| major >= 1);
    let (view, writable) = if copy == Some(true) {
        (view.bind(py).call_method0("copy")?.unbind(), true)
    } else {
        (view, writable)
    };
    if !versioned && !writable {
        return Err(buffer_error(
            "this consumer asked for a DLPack 0.x capsule, which cannot mark read-only data; \
             use a DLPack 1.x consumer (numpy >= 2.1, recent torch) or pass copy=True"
                .to_string(),
        ));
    }
    let arr = view.bind(py).cast::<PyUntypedArray>()?;
    let dtype = dl_dtype(&arr.dtype())?;
    let itemsize = arr.dtype().itemsize() as isize;
    let shape: Vec<i64> = arr.shape().iter().map(|&d| d as i64).collect();
    let mut strides = Vec::with_capacity(shape.len());
    for &s in arr.strides() {
        if itemsize == 0 || s % itemsize != 0 {
            return Err(buffer_error(
                "strides that are not a multiple of the item size cannot be exported through DLPack"
                    .to_string(),
            ));
        }
        strides.push((s / itemsize) as i64);
    }
    // SAFETY: `arr` is a live ndarray; reading its data pointer is what
    // PyArray_DATA does.
    let data = unsafe { (*arr.as_array_ptr()).data } as *mut c_void;
    let ndim = shape.len() as i32;
    let view = view.clone_ref(py);
    let tensor = |shape: *mut i64, strides: *mut i64| DLTensor {
        data,
        device: DLDevice {
            device_type: DL_CPU,
            device_id: 0,
        },
        ndim,
        dtype,
        shape,
        strides,
        byte_offset: 0,
    };
    if versioned {
        let mut e = Box::new(Export {
            managed: DLManagedTensorVersioned {
                version: VERSION,
                manager_ctx: std::ptr::null_mut(),
                deleter: Some(delete_versioned),
                flags: if writable { 0 } else { FLAG_READ_ONLY },
                dl_tensor: tensor(std::ptr::null_mut(), std::ptr::null_mut()),
            },
            shape,
            strides,
            _view: view,
        });
        e.managed.dl_tensor = tensor(e.shape.as_mut_ptr(), e.strides.as_mut_ptr());
        let ptr = Box::into_raw(e);
        // SAFETY: `ptr` is a live, leaked box; the capsule (or the consumer
        // that renames it) calls the deleter exactly once, which frees it.
        unsafe {
            (*ptr).managed.manager_ctx = ptr.cast();
            capsule(py, ptr.cast(), NAME_VERSIONED, destruct_versioned, || {
                drop(Box::from_raw(ptr))
            })
        }
    } else {
        let mut e = Box::new(Export {
            managed: DLManagedTensor {
                dl_tensor: tensor(std::ptr::null_mut(), std::ptr::null_mut()),
                manager_ctx: std::ptr::null_mut(),
                deleter: Some(delete_legacy),
            },
            shape,
            strides,
            _view: view,
        });
        e.managed.dl_tensor = tensor(e.shape.as_mut_ptr(), e.strides.as_mut_ptr());
        let ptr = Box::into_raw(e);
        // SAFETY: as above.
        unsafe {
            (*ptr).managed.manager_ctx = ptr.cast();
            capsule(py, ptr.cast(), NAME_LEGACY, destruct_legacy, || {
                drop(Box::from_raw(ptr))
            })
        }
    }
}

/// Wrap `ptr` in a capsule named `name`; on failure `free` it.
///
/// # Safety
/// `ptr` must be a leaked export that `free` frees (and nobody else).
unsafe fn capsule(
    py: Python<'_>,
    ptr: *mut c_void,
    name: &'static CStr,
    destructor: unsafe extern "C" fn(*mut ffi::PyObject),
    free: impl FnOnce(),
) -> PyResult<Py<PyAny>> {
    // SAFETY: `name` is 'static as the capsule API requires; the destructor
    // matches the capsule's contents.
    let cap = unsafe { ffi::PyCapsule_New(ptr, name.as_ptr(), Some(destructor)) };
    if cap.is_null() {
        free();
        return Err(PyErr::fetch(py));
    }
    // SAFETY: a new reference we own.
    Ok(unsafe { Bound::from_owned_ptr(py, cap) }.unbind())
}

/// Free an export (with the GIL: it drops a Python reference).
///
/// # Safety
/// `ctx` must be the `manager_ctx` of a live export, freed exactly once.
unsafe fn free_export<M>(ctx: *mut c_void) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: per the contract, `ctx` came from Box::into_raw of Export<M>.
    let b = unsafe { Box::from_raw(ctx as *mut Export<M>) };
    Python::attach(|_py| drop(b));
}

unsafe extern "C" fn delete_versioned(m: *mut DLManagedTensorVersioned) {
    if m.is_null() {
        return;
    }
    // SAFETY: the consumer calls the deleter once, on our managed tensor.
    unsafe { free_export::<DLManagedTensorVersioned>((*m).manager_ctx) }
}

unsafe extern "C" fn delete_legacy(m: *mut DLManagedTensor) {
    if m.is_null() {
        return;
    }
    // SAFETY: as above.
    unsafe { free_export::<DLManagedTensor>((*m).manager_ctx) }
}

/// Capsule destructor: if no consumer took the tensor (the capsule still
/// has its original name), delete it; a consumer renames it to
/// `used_dltensor...` and calls the deleter itself.
unsafe extern "C" fn destruct_versioned(cap: *mut ffi::PyObject) {
    // SAFETY: called by Python with the GIL on our capsule; IsValid checks
    // the name without setting an error.
    unsafe {
        if ffi::PyCapsule_IsValid(cap, NAME_VERSIONED.as_ptr()) == 1 {
            let m = ffi::PyCapsule_GetPointer(cap, NAME_VERSIONED.as_ptr())
                as *mut DLManagedTensorVersioned;
            delete_versioned(m);
        }
    }
}

unsafe extern "C" fn destruct_legacy(cap: *mut ffi::PyObject) {
    // SAFETY: as above.
    unsafe {
        if ffi::PyCapsule_IsValid(cap, NAME_LEGACY.as_ptr()) == 1 {
            let m = ffi::PyCapsule_GetPointer(cap, NAME_LEGACY.as_ptr()) as *mut DLManagedTensor;
            delete_legacy(m);
        }
    }
}
