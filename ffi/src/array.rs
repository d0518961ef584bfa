//! Arrays: create, open, info, read/write guards, generation, flush.

use std::ffi::{CString, c_char, c_int, c_void};

use sharray_core::{
    FileKind, OpenOptions, Order, OwnedUntypedReadGuard, OwnedUntypedWriteGuard, UntypedArray,
};

use crate::{
    Fail, FfiResult, Wait, clear, clear_handle, duration_of, give, handle, location, put, run,
    shape_arg, sharray_status, take, text, wait_of,
};

/// C order (row-major), numpy's default.
pub const SHARRAY_ORDER_C: c_int = 0;
/// Fortran order (column-major).
pub const SHARRAY_ORDER_F: c_int = 1;

/// A plain `.npy` (no control block: whole-array guards only).
pub const SHARRAY_KIND_NPY: c_int = 0;
/// A sharray array file.
pub const SHARRAY_KIND_ARRAY: c_int = 1;
/// A ring file (open it with `sharray_ring_open`).
pub const SHARRAY_KIND_RING: c_int = 2;
/// A work-queue file (open it with `sharray_queue_open`).
pub const SHARRAY_KIND_QUEUE: c_int = 3;

/// An open array (opaque). Thread-safe: any thread may use it, several at
/// once. Free it with `sharray_array_free`; guards taken from it stay
/// valid after that (they keep the mapping).
pub struct sharray_array {
    pub(crate) inner: UntypedArray,
    descr: CString,
}

impl sharray_array {
    fn new(inner: UntypedArray) -> sharray_array {
        let descr = CString::new(inner.dtype().descr()).unwrap_or_default();
        sharray_array { inner, descr }
    }
}

/// A shared (read) lock on a whole array (opaque). While it lives no writer
/// in any process or thread changes the data. Release it with
/// `sharray_read_guard_release`, from any thread.
pub struct sharray_read_guard {
    guard: OwnedUntypedReadGuard,
}

/// An exclusive (write) lock on a whole array (opaque). While it lives no
/// other process or thread reads or writes the data. Releasing it bumps the
/// array's generation (waking `sharray_array_wait_changed`). Release it
/// with `sharray_write_guard_release`, from any thread.
pub struct sharray_write_guard {
    guard: OwnedUntypedWriteGuard,
    data: *mut u8,
    len: usize,
}

/// A description of an array (`sharray_array_get_info`). The pointers point into
/// the array handle: valid until `sharray_array_free`.
#[repr(C)]
pub struct sharray_array_info {
    /// numpy dtype string, e.g. "<f4" (NUL-terminated).
    pub dtype: *const c_char,
    /// Bytes per element.
    pub itemsize: usize,
    /// Number of dimensions.
    pub ndim: usize,
    /// `ndim` sizes.
    pub shape: *const usize,
    /// `SHARRAY_ORDER_C` or `SHARRAY_ORDER_F`.
    pub order: c_int,
    /// Number of elements (product of the shape).
    pub len: usize,
    /// Bytes of data (`len * itemsize`).
    pub nbytes: usize,
    /// Byte offset of the data in the file.
    pub data_offset: u64,
    /// `SHARRAY_KIND_NPY` (a plain `.npy`) or `SHARRAY_KIND_ARRAY` (rings
    /// and queues are not opened as arrays; their kinds are listed for
    /// completeness).
    pub kind: c_int,
    /// Was the handle opened writable?
    pub writable: bool,
}

fn order_of(order: c_int) -> FfiResult<Order> {
    match order {
        SHARRAY_ORDER_C => Ok(Order::C),
        SHARRAY_ORDER_F => Ok(Order::F),
        o => Err(Fail::arg(format!(
            "order {o} is invalid; pass SHARRAY_ORDER_C (0) or SHARRAY_ORDER_F (1)"
        ))),
    }
}

/// Create a new array file at `path` (a file path, or `shm:NAME` for
/// `/dev/shm/NAME`) of numpy dtype `dtype` ("float32", "<f4", "uint8",
/// "complex64", a structured dtype...) and shape `shape[0..ndim]`, filled
/// with zeros, mode 0600. Never overwrites: `SHARRAY_ALREADY_EXISTS` if the
/// path exists. The file is complete before it appears at `path`.
///
/// `order` is `SHARRAY_ORDER_C` or `SHARRAY_ORDER_F`. On success `*out` is a
/// new handle (free it with `sharray_array_free`).
///
/// Blocks while the file is written (proportional to its size).
/// Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_array_create(
    path: *const c_char,
    dtype: *const c_char,
    shape: *const usize,
    ndim: usize,
    order: c_int,
    out: *mut *mut sharray_array,
) -> sharray_status {
    // SAFETY: module contract (see the crate docs) for every pointer below.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: as above.
        let (path, dtype, shape) = unsafe {
            (
                location(path)?,
                text(dtype, "dtype")?,
                shape_arg(shape, ndim)?,
            )
        };
        let dtype = crate::dtype_arg(dtype)?;
        let a = UntypedArray::builder(dtype)
            .shape(&shape)
            .order(order_of(order)?)
            .create(&path)?;
        // SAFETY: as above.
        unsafe { give(out, sharray_array::new(a), "out") }
    })
}

/// Open an existing array (a sharray array, or any plain `.npy`) at `path`.
/// `read_only` non-zero opens it read-only (write guards are then refused).
/// A ring or a work-queue file is refused with `SHARRAY_UNSUPPORTED`: open
/// it with `sharray_ring_open` / `sharray_queue_open`.
///
/// Does not block on other processes. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_array_open(
    path: *const c_char,
    read_only: c_int,
    out: *mut *mut sharray_array,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let path = unsafe { location(path)? };
        let a = OpenOptions::new()
            .read_only(read_only != 0)
            .open_untyped(&path)?;
        // SAFETY: module contract.
        unsafe { give(out, sharray_array::new(a), "out") }
    })
}

/// Close an array handle. Guards taken from it stay valid until released.
/// NULL is accepted and does nothing.
///
/// # Safety
///
/// `array` is NULL or a live handle, not used by any other thread now and
/// never again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_array_free(array: *mut sharray_array) -> sharray_status {
    if array.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract: a live handle from `give`.
    run(|| unsafe { take(array, "array") }.map(drop))
}

/// Describe the array (dtype, shape, order, sizes). The pointers in
/// `*info` stay valid until `sharray_array_free(array)`.
///
/// Never blocks. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_array_get_info(
    array: *const sharray_array,
    info: *mut sharray_array_info,
) -> sharray_status {
    run(|| {
        // SAFETY: module contract.
        let a = unsafe { handle(array, "array")? };
        let i = &a.inner;
        let value = sharray_array_info {
            dtype: a.descr.as_ptr(),
            itemsize: i.dtype().itemsize(),
            ndim: i.shape().len(),
            shape: i.shape().as_ptr(),
            order: match i.order() {
                Order::C => SHARRAY_ORDER_C,
                Order::F => SHARRAY_ORDER_F,
            },
            len: i.len(),
            nbytes: i.nbytes(),
            data_offset: i.data_offset(),
            kind: match i.kind() {
                FileKind::Npy => SHARRAY_KIND_NPY,
                FileKind::Array => SHARRAY_KIND_ARRAY,
                FileKind::Ring => SHARRAY_KIND_RING,
                FileKind::Queue => SHARRAY_KIND_QUEUE,
            },
            writable: i.is_writable(),
        };
        // SAFETY: module contract.
        unsafe { put(info, value, "info") }
    })
}

/// The array's generation counter: bumped by every write guard released
/// (0 forever for a plain `.npy`). Never blocks. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_array_generation(
    array: *const sharray_array,
    generation: *mut u64,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear(generation) };
    run(|| {
        // SAFETY: module contract.
        let a = unsafe { handle(array, "array")? };
        // SAFETY: module contract.
        unsafe { put(generation, a.inner.generation(), "generation") }
    })
}

/// Wait until the generation differs from `since`, at most `timeout_ms`
/// (`SHARRAY_FOREVER`, `SHARRAY_TRY` or milliseconds); the new generation
/// goes to `*now`. `SHARRAY_TIMEOUT` if it did not change in time,
/// `SHARRAY_UNSUPPORTED` on a plain `.npy`.
///
/// Blocks (parked on a shared futex: no CPU while idle). Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_array_wait_changed(
    array: *const sharray_array,
    since: u64,
    timeout_ms: i64,
    now: *mut u64,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear(now) };
    run(|| {
        // SAFETY: module contract.
        let a = unsafe { handle(array, "array")? };
        let g = a.inner.wait_changed(since, duration_of(timeout_ms)?)?;
        // SAFETY: module contract.
        unsafe { put(now, g, "now") }
    })
}

/// Write the array's dirty pages to disk (`msync`). A no-op for read-only
/// handles. Blocks on I/O. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_array_flush(array: *const sharray_array) -> sharray_status {
    run(|| {
        // SAFETY: module contract.
        let a = unsafe { handle(array, "array")? };
        Ok(a.inner.flush()?)
    })
}

/// Take a shared (read) lock on the whole array: many readers at once, no
/// writer. `timeout_ms`: `SHARRAY_FOREVER` blocks until no writer holds
/// it, `SHARRAY_TRY` returns `SHARRAY_WOULD_BLOCK` at once if one does, a
/// positive value gives `SHARRAY_LOCK_TIMEOUT` after that many
/// milliseconds.
///
/// Get the data with `sharray_read_guard_data`; release with
/// `sharray_read_guard_release`. Thread-safe. Taking a second guard on the
/// same array from the thread that holds a write guard deadlocks (as with
/// any lock) unless a timeout is given.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_array_read(
    array: *const sharray_array,
    timeout_ms: i64,
    out: *mut *mut sharray_read_guard,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let a = unsafe { handle(array, "array")? };
        let g = match wait_of(timeout_ms)? {
            Wait::Forever => a.inner.read()?,
            Wait::Try => a
                .inner
                .try_read()?
                .ok_or_else(|| Fail::would_block("read guard"))?,
            Wait::For(d) => a.inner.read_timeout(d)?,
        };
        let guard = sharray_read_guard {
            guard: g.into_owned(),
        };
        // SAFETY: module contract.
        unsafe { give(out, guard, "out") }
    })
}

/// The data under a read guard: `*data` (read-only) and `*len` bytes, in
/// the array's order and dtype. Valid until the guard is released; never
/// write through it (other readers share it). Never blocks.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_read_guard_data(
    guard: *const sharray_read_guard,
    data: *mut *const c_void,
    len: *mut usize,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe {
        clear_handle(data as *mut *mut c_void);
        clear(len);
    }
    run(|| {
        // SAFETY: module contract.
        let g = unsafe { handle(guard, "guard")? };
        let bytes = g.guard.bytes();
        // SAFETY: module contract.
        unsafe {
            put(data, bytes.as_ptr() as *const c_void, "data")?;
            put(len, bytes.len(), "len")
        }
    })
}

/// Release a read guard (any thread may). NULL does nothing.
///
/// # Safety
///
/// `guard` is NULL or a live read guard, never used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_read_guard_release(
    guard: *mut sharray_read_guard,
) -> sharray_status {
    if guard.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract.
    run(|| unsafe { take(guard, "guard") }.map(drop))
}

/// Take an exclusive (write) lock on the whole array: no other reader or
/// writer in any process or thread. Timeouts as `sharray_array_read`.
/// `SHARRAY_PERMISSION_DENIED` on a read-only handle.
///
/// Get the data with `sharray_write_guard_data`; release with
/// `sharray_write_guard_release`, which bumps the generation. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_array_write(
    array: *const sharray_array,
    timeout_ms: i64,
    out: *mut *mut sharray_write_guard,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let a = unsafe { handle(array, "array")? };
        let g = match wait_of(timeout_ms)? {
            Wait::Forever => a.inner.write()?,
            Wait::Try => a
                .inner
                .try_write()?
                .ok_or_else(|| Fail::would_block("write guard"))?,
            Wait::For(d) => a.inner.write_timeout(d)?,
        };
        let mut guard = g.into_owned();
        // The C side may write at any time: mark the guard changed now (the
        // generation is bumped on release) and keep the pointer, which
        // points into the mapping, not into the guard.
        let bytes = guard.bytes_mut();
        let (data, len) = (bytes.as_mut_ptr(), bytes.len());
        // SAFETY: module contract.
        unsafe { give(out, sharray_write_guard { guard, data, len }, "out") }
    })
}

/// The data under a write guard: `*data` and `*len` bytes, readable and
/// writable, in the array's order and dtype. Valid until the guard is
/// released; only the thread holding the guard (or threads it hands the
/// work to) may use it meanwhile. Never blocks.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_write_guard_data(
    guard: *const sharray_write_guard,
    data: *mut *mut c_void,
    len: *mut usize,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe {
        clear_handle(data);
        clear(len);
    }
    run(|| {
        // SAFETY: module contract.
        let g = unsafe { handle(guard, "guard")? };
        // SAFETY: module contract.
        unsafe {
            put(data, g.data as *mut c_void, "data")?;
            put(len, g.len, "len")
        }
    })
}

/// Release a write guard (any thread may): bumps the generation, then
/// unlocks. NULL does nothing.
///
/// # Safety
///
/// `guard` is NULL or a live write guard, never used again after this call
/// (nor its data pointer).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_write_guard_release(
    guard: *mut sharray_write_guard,
) -> sharray_status {
    if guard.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract.
    run(|| unsafe { take(guard, "guard") }.map(|g| drop(g.guard)))
}

// SAFETY: the raw pointer points into the mapping that `guard` keeps alive;
// the guard itself is Send + Sync, and the pointer is only handed to C.
unsafe impl Send for sharray_write_guard {}
// SAFETY: as above; `&sharray_write_guard` only reads the pointer value.
unsafe impl Sync for sharray_write_guard {}
