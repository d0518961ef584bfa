//! The `SharedArray` handle and the module-level functions (`create`,
//! `open`, `info`, `import_npy`, `export_npy`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use numpy::PyArrayDescr;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyDict, PyTuple};
use sharray::{Dtype, ErrorKind, Info, OpenOptions, Order, UntypedArray};
use sharray::format::npy::shape_repr;

use crate::errors::{self, IntoPy};
use crate::fork::{self, Origin};
use crate::guard::{self, Guard};
use crate::window::{Region, ShadowPool};

/// What a handle shares with its guards and views.
pub(crate) struct Inner {
    pub(crate) array: UntypedArray,
    pub(crate) path: String,
    /// The numpy dtype, built once from the file's descr.
    pub(crate) dtype: Py<PyArrayDescr>,
    pub(crate) fortran: bool,
    pub(crate) pool: ShadowPool,
    /// A copy-on-write handle's one private window (see
    /// `ShadowPool::private_window`), shared by all its guards.
    pub(crate) private_window: Option<Arc<crate::window::Window>>,
    origin: Origin,
}

impl Inner {
    fn new(py: Python<'_>, array: UntypedArray) -> PyResult<Arc<Inner>> {
        let dtype = numpy_dtype(py, array.dtype())?;
        let region = Region::new(array.data_offset(), array.nbytes(), array.is_writable());
        let pool = ShadowPool::new(region);
        let private_window = if array.is_copy_on_write() {
            use std::os::fd::AsFd;
            pool.private_window(array.as_fd())
                .map_err(|e| {
                    errors::new(
                        py,
                        ErrorKind::Io,
                        &format!(
                            "cannot map the data copy-on-write ({e}); free address space or memory"
                        ),
                        Some(&array.path().to_string_lossy()),
                    )
                })?
                .map(Arc::new)
        } else {
            None
        };
        Ok(Arc::new(Inner {
            path: array.path().to_string_lossy().into_owned(),
            fortran: array.order() == Order::F,
            pool,
            private_window,
            dtype,
            array,
            origin: Origin::here(),
        }))
    }

    /// Refuse to lock or wait through a handle inherited by a forked child.
    pub(crate) fn check_pid(&self, py: Python<'_>) -> PyResult<()> {
        self.origin.check(py, fork::HANDLE, &self.path)
    }
}

/// The file's descr literal -> numpy dtype, exactly as `np.load` builds it.
pub(crate) fn numpy_dtype(py: Python<'_>, d: &Dtype) -> PyResult<Py<PyArrayDescr>> {
    let value = py
        .import("ast")?
        .call_method1("literal_eval", (d.descr_literal(),))?;
    let dt = py
        .import("numpy.lib.format")?
        .call_method1("descr_to_dtype", (value,))?;
    Ok(dt.cast_into::<PyArrayDescr>()?.unbind())
}

/// Any numpy dtype spec -> sharray Dtype (through numpy's own descr).
pub(crate) fn sharray_dtype<'py>(
    py: Python<'py>,
    spec: &Bound<'py, PyAny>,
) -> PyResult<(Dtype, Bound<'py, PyAny>)> {
    let np = py.import("numpy")?;
    let dt = np.call_method1("dtype", (spec,))?;
    if dt.getattr("hasobject")?.is_truthy()? {
        return Err(errors::new(
            py,
            ErrorKind::InvalidInput,
            &format!(
                "dtype {} holds Python objects, which cannot be shared between processes; use a fixed-size dtype",
                dt.str()?
            ),
            None,
        ));
    }
    let descr = py
        .import("numpy.lib.format")?
        .call_method1("dtype_to_descr", (&dt,))?;
    let literal = descr.repr()?;
    let parsed = Dtype::from_descr_literal(&literal.extract::<String>()?).map_err(|e| {
        errors::new(
            py,
            ErrorKind::InvalidInput,
            &format!(
                "dtype {} cannot be stored: {e}",
                dt.str().map(|s| s.to_string()).unwrap_or_default()
            ),
            None,
        )
    })?;
    Ok((parsed, dt))
}

/// `str`, `bytes` or `os.PathLike` -> resolved path (`shm:NAME` -> /dev/shm).
pub(crate) fn location(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let s: String = py
        .import("os")?
        .call_method1("fsdecode", (path,))?
        .extract()?;
    sharray::resolve_location(&s).py_err(py)
}

pub(crate) fn shape_arg(py: Python<'_>, shape: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let bad = |what: String| {
        errors::new(
            py,
            ErrorKind::InvalidInput,
            &format!("invalid shape {what}: give an int or a sequence of non-negative ints"),
            None,
        )
    };
    let items: Vec<Bound<'_, PyAny>> = if let Ok(n) = shape.extract::<i64>() {
        vec![n.into_pyobject(py)?.into_any()]
    } else {
        shape
            .try_iter()
            .map_err(|_| bad(shape.repr().map(|r| r.to_string()).unwrap_or_default()))?
            .collect::<PyResult<_>>()?
    };
    items
        .iter()
        .map(|item| {
            let index = py.import("operator")?.call_method1("index", (item,));
            match index.and_then(|i| i.extract::<i64>()) {
                Ok(n) if n >= 0 => Ok(n as usize),
                _ => Err(bad(shape.repr().map(|r| r.to_string()).unwrap_or_default())),
            }
        })
        .collect()
}

fn info_dict<'py>(py: Python<'py>, info: &Info) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", info.path.to_string_lossy())?;
    d.set_item("kind", info.kind.name())?;
    d.set_item("dtype", info.dtype.descr())?;
    d.set_item("shape", info.shape.clone())?;
    d.set_item("order", info.order.as_str())?;
    d.set_item("data_offset", info.data_offset)?;
    d.set_item("nbytes", info.nbytes)?;
    d.set_item("file_len", info.file_len)?;
    d.set_item("format_version", info.format_version)?;
    d.set_item("generation", info.generation)?;
    Ok(d)
}

/// A handle to a shared array file.
///
/// Made by `sharray.create()` or `sharray.open()`. Read and write the data
/// through guards: `with a.read() as view:` / `with a.write() as view:`.
/// Handles may be shared between threads; after `fork()`, open the path
/// again in the child. Pickling a handle pickles its path: unpickling opens
/// the file again.
#[pyclass(module = "sharray", name = "SharedArray", frozen)]
pub(crate) struct SharedArray {
    inner: Mutex<Option<Arc<Inner>>>,
    path: String,
    readonly: bool,
    /// Opened copy-on-write (mode "c").
    cow: bool,
}

impl SharedArray {
    fn wrap(py: Python<'_>, array: UntypedArray) -> PyResult<SharedArray> {
        let readonly = !array.is_writable();
        let cow = array.is_copy_on_write();
        let inner = Inner::new(py, array)?;
        Ok(SharedArray {
            path: inner.path.clone(),
            inner: Mutex::new(Some(inner)),
            readonly,
            cow,
        })
    }

    pub(crate) fn get(&self, py: Python<'_>) -> PyResult<Arc<Inner>> {
        self.inner.lock().clone().ok_or_else(|| {
            errors::new(
                py,
                ErrorKind::InvalidInput,
                "this handle is closed; open the path again with sharray.open()",
                Some(&self.path),
            )
        })
    }
}

#[pymethods]
impl SharedArray {
    /// The file's path (`shm:NAME` resolved to `/dev/shm/NAME`).
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// The numpy dtype (from the file's header; cached).
    #[getter]
    fn dtype(&self, py: Python<'_>) -> PyResult<Py<PyArrayDescr>> {
        Ok(self.get(py)?.dtype.clone_ref(py))
    }

    /// The shape, as a tuple.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.get(py)?.array.shape())
    }

    /// Number of dimensions.
    #[getter]
    fn ndim(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.get(py)?.array.shape().len())
    }

    /// Number of elements.
    #[getter]
    fn size(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.get(py)?.array.len())
    }

    /// Bytes of data.
    #[getter]
    fn nbytes(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.get(py)?.array.nbytes())
    }

    /// `"C"` or `"F"`.
    #[getter]
    fn order(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.get(py)?.array.order().as_str())
    }

    /// `"array"` for a sharray file, `"npy"` for a plain `.npy`, `"raw"` for
    /// a headerless file opened with `open_raw`.
    #[getter]
    fn kind(&self, py: Python<'_>) -> PyResult<&'static str> {
        let inner = self.get(py)?;
        if inner.array.is_raw() {
            return Ok("raw");
        }
        Ok(inner.array.kind().name())
    }

    /// Was the handle opened read-only?
    #[getter]
    fn readonly(&self) -> bool {
        self.readonly
    }

    /// Has `close()` been called?
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().is_none()
    }

    /// The generation counter: bumped by every write guard whose view was
    /// taken. Always 0 for a plain `.npy`.
    #[getter]
    fn generation(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.array.generation())
    }

    /// Await a generation different from `since` without blocking the
    /// event loop (asyncio); `timeout` and errors as `wait_changed()`.
    /// Cancelling the task unregisters it.
    #[pyo3(signature = (since, timeout=None))]
    fn wait_changed_async<'py>(
        slf: &Bound<'py, Self>,
        since: u64,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::module(slf.py())?.call_method1("wait_changed_async", (slf, since, timeout))
    }

    /// Copy whole rows (`data`: the rows' bytes, C order, as a flat uint8
    /// array) in at row `start` under an exclusive row-region lock on them.
    #[pyo3(signature = (start, data, timeout=None))]
    fn _write_rows(
        &self,
        py: Python<'_>,
        start: usize,
        data: numpy::PyReadonlyArray1<'_, u8>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let inner = self.get(py)?;
        inner.check_pid(py)?;
        let bytes = data.as_slice().map_err(|_| {
            errors::new(
                py,
                ErrorKind::InvalidInput,
                "rows must be C-contiguous; pass np.ascontiguousarray(rows)",
                Some(&self.path),
            )
        })?;
        let timeout = timeout.map(|t| std::time::Duration::from_secs_f64(t.max(0.0)));
        py.detach(|| inner.array.write_rows_bytes(start, bytes, timeout))
            .py_err(py)
    }

    /// Copy rows `[start, stop)` out (a flat uint8 array of their bytes)
    /// under a shared row-region lock on them.
    #[pyo3(signature = (start, stop, timeout=None))]
    fn _read_rows<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        stop: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, numpy::PyArray1<u8>>> {
        let inner = self.get(py)?;
        inner.check_pid(py)?;
        let n = inner.array.shape().first().copied().unwrap_or(0);
        let row = inner.array.nbytes().checked_div(n).unwrap_or(0);
        let len = stop.saturating_sub(start).saturating_mul(row);
        use numpy::PyArrayMethods as _;
        let out = numpy::PyArray1::<u8>::zeros(py, len, false);
        {
            let mut w = out.readwrite();
            let buf = w.as_slice_mut().expect("a fresh array is contiguous");
            let timeout = timeout.map(|t| std::time::Duration::from_secs_f64(t.max(0.0)));
            py.detach(|| inner.array.read_rows_bytes(start..stop, buf, timeout))
                .py_err(py)?;
        }
        Ok(out)
    }

    fn _waiter(&self, py: Python<'_>) -> PyResult<crate::aio::AsyncWaiter> {
        let inner = self.get(py)?;
        inner.check_pid(py)?;
        let w = inner.array.changed_waiter().py_err(py)?;
        crate::aio::AsyncWaiter::new(
            py,
            w,
            "no change within the timeout; retry or raise the timeout",
            &self.path,
        )
    }

    /// Wait until the generation differs from `since` and return it.
    ///
    /// Parks on a shared futex with the GIL released; Ctrl-C interrupts it.
    /// Raises `sharray.Timeout` (a `TimeoutError`) after `timeout` seconds
    /// (None: wait forever), `sharray.Unsupported` on a plain `.npy`.
    #[pyo3(signature = (since, timeout=None))]
    fn wait_changed(&self, py: Python<'_>, since: u64, timeout: Option<f64>) -> PyResult<u64> {
        let inner = self.get(py)?;
        inner.check_pid(py)?;
        let deadline = guard::deadline(py, timeout)?;
        loop {
            let slice = guard::next_slice(deadline);
            let i = Arc::clone(&inner);
            match py.detach(move || i.array.wait_changed(since, slice)) {
                Ok(g) => return Ok(g),
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(errors::new(
                            py,
                            ErrorKind::Timeout,
                            &format!(
                                "no change within {} s (generation still {since}); retry or raise the timeout",
                                timeout.unwrap_or_default()
                            ),
                            Some(&inner.path),
                        ));
                    }
                    py.check_signals()?;
                }
                Err(e) => return Err(errors::to_py(py, &e)),
            }
        }
    }

    /// Write dirty pages to disk (`msync`); a no-op on read-only and
    /// copy-on-write handles. Raises on I/O errors. With `start`/`stop`
    /// (elements of the flat array in memory order) only the pages covering
    /// that range; with `wait=False` the write-back is started and the call
    /// returns at once (`sync_file_range`).
    #[pyo3(signature = (start=None, stop=None, wait=true))]
    fn flush(
        &self,
        py: Python<'_>,
        start: Option<usize>,
        stop: Option<usize>,
        wait: bool,
    ) -> PyResult<()> {
        let inner = self.get(py)?;
        if start.is_none() && stop.is_none() && wait {
            return py.detach(move || inner.array.flush()).py_err(py);
        }
        let r = elements(&inner, start, stop);
        py.detach(move || {
            if wait {
                inner.array.flush_range(r)
            } else {
                inner.array.flush_async(r)
            }
        })
        .py_err(py)
    }

    /// Advise the kernel how this process will access elements
    /// `start:stop` (default all): "normal", "sequential", "random",
    /// "willneed", "dontneed" or "hugepage". Returns "applied", or the
    /// reason nothing changed (e.g. why huge pages are not available).
    #[pyo3(signature = (advice, start=None, stop=None))]
    fn advise(
        &self,
        py: Python<'_>,
        advice: &str,
        start: Option<usize>,
        stop: Option<usize>,
    ) -> PyResult<String> {
        let inner = self.get(py)?;
        let advice = sharray::Advice::parse(advice).py_err(py)?;
        let r = elements(&inner, start, stop);
        let got = {
            let inner = Arc::clone(&inner);
            let r = r.clone();
            py.detach(move || inner.array.advise(r, advice))
                .py_err(py)?
        };
        // Views live in per-guard windows: advice about how this process
        // accesses them must reach those mappings too.
        let madv = match advice {
            sharray::Advice::Normal => Some(libc::MADV_NORMAL),
            sharray::Advice::Sequential => Some(libc::MADV_SEQUENTIAL),
            sharray::Advice::Random => Some(libc::MADV_RANDOM),
            sharray::Advice::HugePage => Some(libc::MADV_HUGEPAGE),
            // Page-cache effects, shared by every mapping.
            sharray::Advice::WillNeed | sharray::Advice::DontNeed => None,
        };
        let item = inner.array.dtype().itemsize();
        let (off, len) = (r.start * item, r.len() * item);
        if let Some(madv) = madv {
            inner.pool.remember_advice(off, len, madv);
            if let Some(w) = &inner.private_window {
                w.advise(off, len, madv);
            }
        } else if advice == sharray::Advice::DontNeed {
            inner.pool.drop_shadow_pages(off, len);
        }
        Ok(match got {
            sharray::Advised::Applied => "applied".to_string(),
            sharray::Advised::Fallback(why) => why,
        })
    }

    /// Fault elements `start:stop` (default all) into this process for
    /// reading now (`MADV_POPULATE_READ`): later reads take no page faults.
    #[pyo3(signature = (start=None, stop=None))]
    fn prefault_read(
        &self,
        py: Python<'_>,
        start: Option<usize>,
        stop: Option<usize>,
    ) -> PyResult<()> {
        let inner = self.get(py)?;
        let r = elements(&inner, start, stop);
        py.detach(move || inner.array.prefault_read(r)).py_err(py)
    }

    /// Fault elements `start:stop` (default all) in for writing now
    /// (`MADV_POPULATE_WRITE`); raises `sharray.PermissionDenied` on
    /// read-only and copy-on-write handles.
    #[pyo3(signature = (start=None, stop=None))]
    fn prefault_write(
        &self,
        py: Python<'_>,
        start: Option<usize>,
        stop: Option<usize>,
    ) -> PyResult<()> {
        let inner = self.get(py)?;
        let r = elements(&inner, start, stop);
        py.detach(move || inner.array.prefault_write(r)).py_err(py)
    }

    /// Drop elements `start:stop` (default all) from the page cache
    /// (`posix_fadvise(DONTNEED)`), so the next read comes from disk: for
    /// cold-read measurements. The data is unchanged.
    #[pyo3(signature = (start=None, stop=None))]
    fn evict(&self, py: Python<'_>, start: Option<usize>, stop: Option<usize>) -> PyResult<()> {
        let inner = self.get(py)?;
        let r = elements(&inner, start, stop);
        let item = inner.array.dtype().itemsize();
        // Ready shadows of earlier guards still map the pages: unmap them
        // first, or the page cache keeps them.
        inner.pool.drop_shadow_pages(r.start * item, r.len() * item);
        py.detach(move || inner.array.evict(r)).py_err(py)
    }

    /// `"r"` (read-only), `"r+"` (read-write) or `"c"` (copy-on-write).
    #[getter]
    fn mode(&self, py: Python<'_>) -> PyResult<&'static str> {
        let inner = self.get(py)?;
        Ok(if inner.array.is_copy_on_write() {
            "c"
        } else if inner.array.is_writable() {
            "r+"
        } else {
            "r"
        })
    }

    /// Take a shared read lock; returns a `Guard` (a context manager whose
    /// view is read-only). Waits at most `timeout` seconds (None: forever,
    /// 0: do not wait), then raises `sharray.LockTimeout`.
    #[pyo3(signature = (timeout=None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Guard> {
        Guard::take(py, &self.get(py)?, false, timeout)
    }

    /// Take the exclusive write lock; returns a `Guard` whose view is
    /// writable. Waits as `read()` does. The generation is bumped when the
    /// guard ends if its view was taken.
    #[pyo3(signature = (timeout=None))]
    fn write(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Guard> {
        Guard::take(py, &self.get(py)?, true, timeout)
    }

    /// Length of the first axis, as `len()` of a numpy array (a 0-d array
    /// has none: `TypeError`).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        match self.get(py)?.array.shape().first() {
            Some(&n) => Ok(n),
            None => Err(pyo3::exceptions::PyTypeError::new_err(
                "len() of unsized object (a 0-d array)",
            )),
        }
    }

    /// `a[key]`: a copy of the selected elements, taken under a read guard
    /// (held only while copying), as numpy indexing returns them (an array
    /// or a scalar). Never a view: views live only inside `with a.read()`.
    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        with_view(py, &self.get(py)?, false, None, |view| {
            let np = py.import("numpy")?;
            let item = view.get_item(key)?;
            // An array or an np.void (a record of a structured array is
            // itself a view into the array, and `np.array(record)` still
            // shares its memory): `.copy()`. Other numpy scalars are values.
            if item.is_instance(&np.getattr("ndarray")?)?
                || item.is_instance(&np.getattr("void")?)?
            {
                Ok(item.call_method0("copy")?.unbind())
            } else {
                Ok(item.unbind())
            }
        })
    }

    /// `a[key] = value`: writes under a write guard (held only while
    /// writing; the generation is bumped), as numpy assignment does.
    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        with_view(py, &self.get(py)?, true, None, |view| {
            view.set_item(key, value)
        })
    }

    /// `np.asarray(a)` / `np.array(a)`: a copy of the whole array, taken
    /// under a read guard. `copy=False` (numpy 2) raises `ValueError`: the
    /// data can only be shared inside `with a.read() as view:`.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__(
        &self,
        py: Python<'_>,
        dtype: Option<&Bound<'_, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        if copy == Some(false) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "a SharedArray cannot be converted without a copy; share the data with `with a.read() as view:`",
            ));
        }
        with_view(py, &self.get(py)?, false, None, |view| {
            let kwargs = PyDict::new(py);
            kwargs.set_item("dtype", dtype)?;
            kwargs.set_item("copy", true)?;
            Ok(py
                .import("numpy")?
                .call_method("array", (view,), Some(&kwargs))?
                .unbind())
        })
    }

    /// The layout and generation, as `sharray.info()` returns them.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        info_dict(py, &self.get(py)?.array.info())
    }

    /// Drop this handle's reference to the file. Guards and views still
    /// alive keep working until they end.
    fn close(&self) {
        self.inner.lock().take();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let module = py.import("sharray")?;
        let mode = if self.cow {
            "c"
        } else if self.readonly {
            "r"
        } else {
            "r+"
        };
        // A raw file reopens with its layout (it has no header to read it from).
        if let Some(inner) = self.inner.lock().clone()
            && inner.array.is_raw()
        {
            let args = (
                self.path.clone(),
                inner.dtype.clone_ref(py),
                PyTuple::new(py, inner.array.shape())?,
                mode,
                inner.array.data_offset(),
                inner.array.order().as_str(),
            );
            return Ok((module.getattr("open_raw")?, args.into_pyobject(py)?));
        }
        let args = (self.path.clone(), false, py.None(), py.None(), false, mode);
        Ok((module.getattr("open")?, args.into_pyobject(py)?))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.inner.lock().clone() {
            Some(i) => {
                let dt = i
                    .dtype
                    .bind(py)
                    .str()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                format!(
                    "<sharray.SharedArray {:?} shape={} dtype={dt} order={}{}>",
                    self.path,
                    shape_repr(i.array.shape()),
                    i.array.order().as_str(),
                    if self.cow {
                        " copy-on-write"
                    } else if self.readonly {
                        " readonly"
                    } else {
                        ""
                    }
                )
            }
            None => format!("<sharray.SharedArray {:?} closed>", self.path),
        }
    }
}

/// `start..stop` in elements, defaults filled in (bounds are checked by the
/// library, which names the array's length).
fn elements(inner: &Inner, start: Option<usize>, stop: Option<usize>) -> std::ops::Range<usize> {
    start.unwrap_or(0)..stop.unwrap_or(inner.array.len())
}

/// Run `f` on the whole-array view of a guard taken for this call only
/// (read or write), then release the guard (revoking the view) whatever `f`
/// returned.
fn with_view<T>(
    py: Python<'_>,
    inner: &Arc<Inner>,
    write: bool,
    timeout: Option<f64>,
    f: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<T> {
    let g = Guard::take(py, inner, write, timeout)?;
    let out = g.view_or_make(py).and_then(|v| f(v.bind(py)));
    g.release_now(py);
    out
}


/// Create a new shared array file and return a read-write handle.
///
/// `path` may be `shm:NAME` for `/dev/shm/NAME`. `dtype` is anything
/// `numpy.dtype()` accepts (structured and big-endian included; no objects).
/// `fill` is one value for every element (default zeros). The file appears
/// complete or not at all, is never overwritten (`sharray.AlreadyExists`),
/// and gets permission bits `mode` regardless of the umask. With
/// `exist_ok=True` an existing file is opened instead if it holds the same
/// dtype, shape and order (`fill` is then not applied), and refused with
/// `sharray.DtypeMismatch` / `sharray.ShapeMismatch` if not.
#[pyfunction]
#[pyo3(signature = (path, shape, dtype, fill=None, order="C", mode=0o600, exist_ok=false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn create(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    shape: &Bound<'_, PyAny>,
    dtype: &Bound<'_, PyAny>,
    fill: Option<&Bound<'_, PyAny>>,
    order: &str,
    mode: u32,
    exist_ok: bool,
) -> PyResult<SharedArray> {
    let path = location(py, path)?;
    let shape = shape_arg(py, shape)?;
    let (dtype, np_dtype) = sharray_dtype(py, dtype)?;
    let order = match order {
        "C" | "c" => Order::C,
        "F" | "f" => Order::F,
        other => {
            return Err(errors::new(
                py,
                ErrorKind::InvalidInput,
                &format!("invalid order {other:?}: use \"C\" (row-major) or \"F\" (column-major)"),
                None,
            ));
        }
    };
    let mut builder = UntypedArray::builder(dtype)
        .shape(&shape)
        .order(order)
        .mode(mode);
    if let Some(fill) = fill {
        let value = py
            .import("numpy")?
            .call_method(
                "asarray",
                (fill,),
                Some(&[("dtype", &np_dtype)].into_py_dict(py)?),
            )
            .map_err(|e| {
                errors::new(
                    py,
                    ErrorKind::InvalidInput,
                    &format!("fill value cannot be converted to the dtype: {e}"),
                    None,
                )
            })?;
        if value.getattr("size")?.extract::<usize>()? != 1 {
            return Err(errors::new(
                py,
                ErrorKind::InvalidInput,
                "fill must be a single value (a scalar, or one record for structured dtypes)",
                None,
            ));
        }
        let bytes: Vec<u8> = value.call_method0("tobytes")?.extract()?;
        builder = builder.fill_bytes(&bytes);
    }
    let array = match py.detach(|| builder.create(&path)) {
        Err(e) if exist_ok && e.kind() == ErrorKind::AlreadyExists => {
            // Re-running a script: open what is there if it is the same
            // array (the file is never changed, `fill` is not applied).
            let handle = SharedArray::wrap(
                py,
                py.detach(|| OpenOptions::new().open_untyped(&path))
                    .py_err(py)?,
            )?;
            check_layout(py, handle.get(py)?.as_ref(), Some(&np_dtype), Some(&shape))?;
            let have = handle.get(py)?.array.order();
            if have != order {
                return Err(errors::new(
                    py,
                    ErrorKind::ShapeMismatch,
                    &format!(
                        "order mismatch: the file is order {:?} but {:?} was asked for; remove the file or create it with order={:?}",
                        have.as_str(),
                        order.as_str(),
                        have.as_str()
                    ),
                    Some(&handle.path),
                ));
            }
            return Ok(handle);
        }
        other => other.py_err(py)?,
    };
    SharedArray::wrap(py, array)
}

/// Open an existing sharray file or plain `.npy`.
///
/// `mode` is numpy's: `"r+"` (read-write, the default), `"r"` (read-only:
/// `write()` raises `sharray.PermissionDenied`; the same as
/// `readonly=True`) or `"c"` (copy-on-write: writes change this process's
/// private copy of the pages they touch, never the file; pages not yet
/// written show the file's current content, including other processes'
/// later writes; views are not revoked when a guard ends, as with
/// `np.memmap(mode="c")`). `"w+"` is refused: `sharray.create` makes new
/// files and never overwrites. Pass `dtype` and/or `shape` to check what the
/// file holds (`sharray.DtypeMismatch`, a `TypeError`;
/// `sharray.ShapeMismatch`, a `ValueError`). Files owned by another user are
/// refused unless `allow_other_owner=True`.
#[pyfunction]
#[pyo3(signature = (path, readonly=false, dtype=None, shape=None, allow_other_owner=false, mode=None))]
pub(crate) fn open(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    readonly: bool,
    dtype: Option<&Bound<'_, PyAny>>,
    shape: Option<&Bound<'_, PyAny>>,
    allow_other_owner: bool,
    mode: Option<&str>,
) -> PyResult<SharedArray> {
    let path = location(py, path)?;
    let opts = open_mode(py, mode, readonly)?.allow_other_owner(allow_other_owner);
    let array = py.detach(|| opts.open_untyped(&path)).py_err(py)?;
    let handle = SharedArray::wrap(py, array)?;
    let want_shape = shape.map(|s| shape_arg(py, s)).transpose()?;
    check_layout(py, handle.get(py)?.as_ref(), dtype, want_shape.as_deref())?;
    Ok(handle)
}

/// numpy's `mode` (and the older `readonly` flag) as open options.
fn open_mode(py: Python<'_>, mode: Option<&str>, readonly: bool) -> PyResult<OpenOptions> {
    let opts = OpenOptions::new();
    let conflict = |m: &str| {
        errors::new(
            py,
            ErrorKind::InvalidInput,
            &format!("readonly=True contradicts mode={m:?}; pass only mode=\"r\""),
            None,
        )
    };
    Ok(match mode {
        None => opts.read_only(readonly),
        Some("r") => opts.read_only(true),
        Some("r+") if readonly => return Err(conflict("r+")),
        Some("r+") => opts,
        Some("c") if readonly => return Err(conflict("c")),
        Some("c") => opts.copy_on_write(true),
        Some("w+") => {
            return Err(errors::new(
                py,
                ErrorKind::InvalidInput,
                "mode \"w+\" is sharray.create(path, shape, dtype): it makes a new file and never overwrites one",
                None,
            ));
        }
        Some(other) => {
            return Err(errors::new(
                py,
                ErrorKind::InvalidInput,
                &format!(
                    "invalid mode {other:?}: use \"r\" (read-only), \"r+\" (read-write) or \"c\" (copy-on-write)"
                ),
                None,
            ));
        }
    })
}

/// The layout arguments of `open_raw` / `import_raw`.
fn raw_layout(
    py: Python<'_>,
    dtype: &Bound<'_, PyAny>,
    shape: &Bound<'_, PyAny>,
    offset: u64,
    order: &str,
) -> PyResult<sharray::RawLayout> {
    let (dtype, _) = sharray_dtype(py, dtype)?;
    let shape = shape_arg(py, shape)?;
    let order = match order {
        "C" | "c" => Order::C,
        "F" | "f" => Order::F,
        other => {
            return Err(errors::new(
                py,
                ErrorKind::InvalidInput,
                &format!("invalid order {other:?}: use \"C\" (row-major) or \"F\" (column-major)"),
                None,
            ));
        }
    };
    Ok(sharray::RawLayout::new(dtype, &shape)
        .order(order)
        .offset(offset))
}

/// Open a headerless binary file as `np.memmap(path, dtype, mode, offset,
/// shape, order)` does, with sharray's locks and guards (whole-array
/// `flock`; no generation counter). The file must hold exactly
/// `offset + nbytes` bytes: otherwise `sharray.ShapeMismatch` says what the
/// file would hold (e.g. "the file holds 1000000 float64 values, e.g.
/// shape (1000, 1000)"). `mode` is `"r+"`, `"r"` or `"c"` as for `open`.
#[pyfunction]
#[pyo3(signature = (path, dtype, shape, mode="r+", offset=0, order="C", allow_other_owner=false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_raw(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    dtype: &Bound<'_, PyAny>,
    shape: &Bound<'_, PyAny>,
    mode: &str,
    offset: u64,
    order: &str,
    allow_other_owner: bool,
) -> PyResult<SharedArray> {
    let path = location(py, path)?;
    let layout = raw_layout(py, dtype, shape, offset, order)?;
    let opts = open_mode(py, Some(mode), false)?.allow_other_owner(allow_other_owner);
    let array = py
        .detach(|| opts.open_raw_untyped(&path, &layout))
        .py_err(py)?;
    SharedArray::wrap(py, array)
}

/// Copy a headerless binary file (layout as for `open_raw`) into a new
/// sharray file at `dst`; returns a read-write handle to `dst`.
#[pyfunction]
#[pyo3(signature = (src, dst, dtype, shape, offset=0, order="C", mode=0o600))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn import_raw(
    py: Python<'_>,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    dtype: &Bound<'_, PyAny>,
    shape: &Bound<'_, PyAny>,
    offset: u64,
    order: &str,
    mode: u32,
) -> PyResult<SharedArray> {
    let (src, dst) = (location(py, src)?, location(py, dst)?);
    let layout = raw_layout(py, dtype, shape, offset, order)?;
    let opts = sharray::CopyOptions::new().mode(mode);
    let array = py
        .detach(|| sharray::import_raw(&src, &layout, &dst, opts, &mut |_, _| {}))
        .py_err(py)?;
    SharedArray::wrap(py, array)
}

/// Refuse a file whose dtype or shape is not the one asked for.
fn check_layout(
    py: Python<'_>,
    inner: &Inner,
    dtype: Option<&Bound<'_, PyAny>>,
    shape: Option<&[usize]>,
) -> PyResult<()> {
    if let Some(want) = dtype {
        let want = py.import("numpy")?.call_method1("dtype", (want,))?;
        let have = inner.dtype.bind(py);
        if !have.eq(&want)? {
            return Err(errors::new(
                py,
                ErrorKind::DtypeMismatch,
                &format!(
                    "dtype mismatch: the file holds {} but {} was asked for; open it without dtype= or with the file's dtype",
                    have.str()?,
                    want.str()?
                ),
                Some(&inner.path),
            ));
        }
    }
    if let Some(want) = shape
        && want != inner.array.shape()
    {
        return Err(errors::new(
            py,
            ErrorKind::ShapeMismatch,
            &format!(
                "shape mismatch: the file holds {:?} but {:?} was asked for",
                inner.array.shape(),
                want
            ),
            Some(&inner.path),
        ));
    }
    Ok(())
}

/// The layout of any sharray or `.npy` file, without taking locks: a dict
/// with path, kind, dtype (descr string), shape (list), order, data_offset,
/// nbytes, file_len, format_version (None for a plain `.npy`), generation.
#[pyfunction]
pub(crate) fn info<'py>(py: Python<'py>, path: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let path = location(py, path)?;
    let info = py.detach(|| sharray::inspect(&path)).py_err(py)?;
    info_dict(py, &info)
}

/// Copy a `.npy` (or sharray array) at `src` into a new sharray file at
/// `dst`, byte-exact; returns a read-write handle to `dst`.
#[pyfunction]
#[pyo3(signature = (src, dst, mode=0o600))]
pub(crate) fn import_npy(
    py: Python<'_>,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    mode: u32,
) -> PyResult<SharedArray> {
    let (src, dst) = (location(py, src)?, location(py, dst)?);
    let array = py
        .detach(|| sharray::import_npy(&src, &dst, mode, &mut |_, _| {}))
        .py_err(py)?;
    SharedArray::wrap(py, array)
}

/// Write the array at `src` to a new plain `.npy` at `dst` (as `np.save`
/// would), under a read lock. Never overwrites.
#[pyfunction]
#[pyo3(signature = (src, dst, mode=0o600))]
pub(crate) fn export_npy(
    py: Python<'_>,
    src: &Bound<'_, PyAny>,
    dst: &Bound<'_, PyAny>,
    mode: u32,
) -> PyResult<()> {
    let (src, dst) = (location(py, src)?, location(py, dst)?);
    py.detach(|| sharray::export_npy(&src, &dst, mode, &mut |_, _| {}))
        .py_err(py)
}
