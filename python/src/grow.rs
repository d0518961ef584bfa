//! `sharray.GrowableArray`: a `.npy` whose first axis grows as processes
//! append rows (FORMAT.md section 9). `sharray.create(..., growable=True)`
//! and `sharray.open` on such a file return one (the dispatch is in
//! `sharray/_grow.py`).

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use sharray::ErrorKind;

use crate::errors::{self, IntoPy};
use crate::handle::{location, numpy_dtype, shape_arg, sharray_dtype};

/// A growable array: `append(rows)` from any number of processes at once;
/// `len(a)` is the number of published rows, which is exactly what
/// `numpy.load(path, mmap_mode="r")` shows.
#[pyclass(module = "sharray._sharray", frozen)]
pub(crate) struct GrowableArray {
    inner: sharray::GrowableArray,
    dtype: Py<PyAny>,
    path: String,
    readonly: bool,
}

fn wrap(py: Python<'_>, inner: sharray::GrowableArray, readonly: bool) -> PyResult<GrowableArray> {
    let dtype = numpy_dtype(py, inner.dtype())?.into_any();
    let path = inner.path().to_string_lossy().into_owned();
    Ok(GrowableArray {
        inner,
        dtype,
        path,
        readonly,
    })
}

/// Create a growable array (`sharray.create(..., growable=True)`).
#[pyfunction]
#[pyo3(signature = (path, shape, dtype, capacity=None, mode=0o600, max_appenders=64))]
pub(crate) fn _grow_create(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    shape: &Bound<'_, PyAny>,
    dtype: &Bound<'_, PyAny>,
    capacity: Option<u64>,
    mode: u32,
    max_appenders: u32,
) -> PyResult<GrowableArray> {
    let path = location(py, path)?;
    let shape = shape_arg(py, shape)?;
    let (dtype, _) = sharray_dtype(py, dtype)?;
    let Some((&rows, row_shape)) = shape.split_first() else {
        return Err(errors::new(
            py,
            ErrorKind::InvalidInput,
            "a growable array needs at least one dimension: shape=(0, *row_shape) (the first entry is the initial row count)",
            None,
        ));
    };
    let mut b = sharray::GrowableArray::builder(dtype)
        .row_shape(row_shape)
        .rows(rows as u64)
        .mode(mode)
        .max_appenders(max_appenders);
    if let Some(c) = capacity {
        b = b.capacity(c);
    }
    let inner = py.detach(|| b.create(&path)).py_err(py)?;
    wrap(py, inner, false)
}

/// Open a growable array (`sharray.open` on one).
#[pyfunction]
#[pyo3(signature = (path, readonly=false))]
pub(crate) fn _grow_open(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    readonly: bool,
) -> PyResult<GrowableArray> {
    let path = location(py, path)?;
    let inner = py
        .detach(|| {
            if readonly {
                sharray::GrowableArray::open_read_only(&path)
            } else {
                sharray::GrowableArray::open(&path)
            }
        })
        .py_err(py)?;
    wrap(py, inner, readonly)
}

/// Is the file a growable array? (Reads 16 bytes; no lock.)
#[pyfunction]
pub(crate) fn _grow_detect(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<bool> {
    let path = location(py, path)?;
    py.detach(|| sharray::GrowableArray::detect(&path))
        .py_err(py)
}

impl GrowableArray {
    /// Appending converts rows only where nothing of their kind is lost:
    /// numpy's `same_kind` casts (float64 -> float32, int8 -> int64), and
    /// integers into any integer type when every value fits (a Python list
    /// of ints is int64). Floats into an integer array, complex into real and
    /// the like are refused instead of truncated.
    fn check_cast(
        &self,
        py: Python<'_>,
        np: &Bound<'_, PyModule>,
        arr: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let dst = self.dtype.bind(py);
        let src = arr.getattr("dtype")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("casting", "same_kind")?;
        let same_kind: bool = np
            .call_method("can_cast", (&src, dst), Some(&kwargs))?
            .extract()?;
        if same_kind {
            return Ok(());
        }
        let kind = |d: &Bound<'_, PyAny>| -> PyResult<String> { d.getattr("kind")?.extract() };
        let (sk, dk) = (kind(&src)?, kind(dst)?);
        if "iub".contains(sk.as_str()) && "iu".contains(dk.as_str()) {
            let size: usize = arr.getattr("size")?.extract()?;
            if size == 0 {
                return Ok(());
            }
            let info = np.call_method1("iinfo", (dst,))?;
            let fits: bool = arr
                .call_method0("min")?
                .ge(info.getattr("min")?)?
                && arr.call_method0("max")?.le(info.getattr("max")?)?;
            if fits {
                return Ok(());
            }
            return Err(errors::new(
                py,
                ErrorKind::InvalidInput,
                &format!("rows hold values outside the range of {dst}; convert or clip them first"),
                Some(&self.path),
            ));
        }
        Err(errors::new(
            py,
            ErrorKind::DtypeMismatch,
            &format!(
                "rows of dtype {src} cannot be appended to a {dst} array without losing data; convert them explicitly (rows.astype(...)) if that is what you want"
            ),
            Some(&self.path),
        ))
    }
}

#[pymethods]
impl GrowableArray {
    /// Append rows (an array-like of shape `(n, *row_shape)`, or one row of
    /// shape `row_shape`, converted to the array's dtype where no data is
    /// lost: see `check_cast`) and return the
    /// index of the first one, once they are published. Releases the GIL.
    fn append(&self, py: Python<'_>, rows: &Bound<'_, PyAny>) -> PyResult<u64> {
        let np = py.import("numpy")?;
        let arr = np.call_method1("asarray", (rows,))?;

        let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
        let row_shape = self.inner.row_shape();
        if shape != row_shape && shape.get(1..) != Some(row_shape) {
            return Err(errors::new(
                py,
                ErrorKind::ShapeMismatch,
                &format!(
                    "rows of shape {shape:?} do not fit: this array's rows have shape {row_shape:?}; give (n, *row_shape) or one row"
                ),
                Some(&self.path),
            ));
        }
        self.check_cast(py, &np, &arr)?;
        let arr = np.call_method1("ascontiguousarray", (arr, self.dtype.bind(py)))?;
        let bytes = arr.call_method0("tobytes")?;
        let data: Vec<u8> = bytes.cast::<PyBytes>()?.as_bytes().to_vec();
        py.detach(|| self.inner.append_bytes(&data)).py_err(py)
    }

    /// Published rows.
    fn __len__(&self) -> usize {
        self.inner.len() as usize
    }

    /// Published rows (same as `len(a)`).
    #[getter]
    fn rows(&self) -> u64 {
        self.inner.len()
    }

    /// Rows the file has room for.
    #[getter]
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }

    /// The numpy dtype.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyAny> {
        self.dtype.clone_ref(py)
    }

    /// Shape of one row.
    #[getter]
    fn row_shape(&self) -> Vec<usize> {
        self.inner.row_shape().to_vec()
    }

    /// `(rows, *row_shape)` as published now.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        std::iter::once(self.inner.len() as usize)
            .chain(self.inner.row_shape().iter().copied())
            .collect()
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// The generation counter, bumped at every publication.
    #[getter]
    fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// Wait until rows are published after generation `since` (at most
    /// `timeout` seconds); returns the new generation. Raises
    /// `TimeoutError` (`sharray.Timeout`) if nothing was published.
    #[pyo3(signature = (since, timeout))]
    fn wait_changed(&self, py: Python<'_>, since: u64, timeout: f64) -> PyResult<u64> {
        let d = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::MAX);
        py.detach(|| self.inner.wait_changed(since, d)).py_err(py)
    }

    /// The published rows as a read-only numpy array mapping the file
    /// (`numpy.memmap`). Published rows are never written again, so the view
    /// stays valid (and unchanged) while appends go on; call again to see
    /// new rows.
    fn view<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let _lock = py.detach(|| self.inner.read()).py_err(py)?;
        let n = _lock.rows() as usize;
        let np = py.import("numpy")?;
        let shape: Vec<usize> = std::iter::once(n)
            .chain(self.inner.row_shape().iter().copied())
            .collect();
        if n == 0 {
            let kw = PyDict::new(py);
            kw.set_item("dtype", self.dtype.bind(py))?;
            let z = np.call_method("zeros", (shape,), Some(&kw))?;
            z.getattr("flags")?.setattr("writeable", false)?;
            return Ok(z);
        }
        let kw = PyDict::new(py);
        kw.set_item("dtype", self.dtype.bind(py))?;
        kw.set_item("mode", "r")?;
        kw.set_item("offset", 4096)?;
        kw.set_item("shape", shape)?;
        np.call_method("memmap", (&self.path,), Some(&kw))
    }

    /// A copy of the published rows.
    fn to_numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.view(py)?.call_method0("copy")
    }

    /// Layout and counters: path, kind ("growable"), dtype, shape (published
    /// rows first), order, data_offset, nbytes, format_version, row_shape,
    /// rows, reserved, capacity, row_bytes, max_appenders, rollbacks,
    /// generation, file_len.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let i = self.inner.info();
        let d = PyDict::new(py);
        d.set_item("path", &self.path)?;
        d.set_item("kind", "growable")?;
        d.set_item("dtype", i.dtype.descr())?;
        let shape: Vec<u64> = std::iter::once(i.rows)
            .chain(i.row_shape.iter().map(|&d| d as u64))
            .collect();
        d.set_item("shape", shape)?;
        d.set_item("order", "C")?;
        d.set_item("data_offset", 4096)?;
        d.set_item("nbytes", i.rows * i.row_bytes)?;
        d.set_item("format_version", 2)?;
        d.set_item("row_shape", i.row_shape)?;
        d.set_item("rows", i.rows)?;
        d.set_item("reserved", i.reserved)?;
        d.set_item("capacity", i.capacity)?;
        d.set_item("row_bytes", i.row_bytes)?;
        d.set_item("max_appenders", i.max_appenders)?;
        d.set_item("rollbacks", i.rollbacks)?;
        d.set_item("generation", i.generation)?;
        d.set_item("file_len", i.file_len)?;
        Ok(d)
    }

    /// Pickles as its path (and read-only flag): unpickling opens the file
    /// again, in the receiving process (`multiprocessing` with spawn or
    /// forkserver).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String, bool))> {
        Ok((
            py.import("sharray")?.getattr("open")?,
            (self.path.clone(), self.readonly),
        ))
    }

    fn __repr__(&self) -> String {
        format!(
            "<sharray.GrowableArray {} rows={} row_shape={:?} capacity={}>",
            self.path,
            self.inner.len(),
            self.inner.row_shape(),
            self.inner.capacity()
        )
    }
}
