//! Worker pools: create/open a work queue, join as a worker, claim chunks
//! (with a timeout), write their rows of an output array, complete or
//! abandon them, and wait for the whole job.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use sharray_core::{Claim, OwnedUntypedRowsMut, QueueProgress, WorkQueue, Worker};

use crate::array::sharray_array;
use crate::{
    Fail, Wait, clear, clear_handle, duration_of, give, handle, location, put, run, sharray_status,
    take, wait_of,
};

/// An open work queue (opaque). Thread-safe. Workers made from it stay
/// valid after `sharray_queue_free`.
pub struct sharray_queue {
    inner: WorkQueue,
}

/// A registered worker (opaque). Thread-safe. Its registration ends with
/// `sharray_worker_free` or with its process: the chunks a dead worker held
/// go back to the queue.
pub struct sharray_worker {
    inner: Worker,
}

/// An exclusive claim on one chunk of rows (or one task) (opaque). End it
/// with exactly one of `sharray_claim_complete` or `sharray_claim_abandon`,
/// after releasing its row views.
pub struct sharray_claim {
    inner: Arc<Claim>,
}

/// A writable view of a claim's rows of an output array (opaque). Release
/// it with `sharray_rows_release` before completing the claim.
pub struct sharray_rows {
    inner: OwnedUntypedRowsMut,
    data: *mut u8,
    len: usize,
}

// SAFETY: `data` points into the output array's mapping, which `inner`
// (Send + Sync) keeps alive; the pointer is only handed to C.
unsafe impl Send for sharray_rows {}
// SAFETY: as above; shared references only read the pointer value.
unsafe impl Sync for sharray_rows {}

/// A snapshot of a queue's progress (`sharray_queue_get_progress`).
#[repr(C)]
#[derive(Default)]
pub struct sharray_queue_progress {
    /// Number of chunks (or tasks).
    pub chunks: u64,
    /// Chunks completed.
    pub done: u64,
    /// Chunks claimed and not yet completed.
    pub in_flight: u64,
    /// Chunks waiting to be claimed (including re-queued ones).
    pub pending: u64,
    /// Times a chunk was re-queued (its worker died or gave it back).
    pub requeued: u64,
    /// Live registered workers.
    pub workers: u32,
    /// Rows along axis 0 (= chunks for a task queue).
    pub rows: u64,
    /// Rows per chunk (1 for a task queue).
    pub chunk_rows: u64,
}

impl From<QueueProgress> for sharray_queue_progress {
    fn from(p: QueueProgress) -> Self {
        sharray_queue_progress {
            chunks: p.chunks,
            done: p.done,
            in_flight: p.in_flight,
            pending: p.pending,
            requeued: p.requeued,
            workers: p.workers,
            rows: p.rows,
            chunk_rows: p.chunk_rows,
        }
    }
}

/// Create a work queue at `path` (or `shm:NAME`) that splits `rows` rows of
/// axis 0 into chunks of `chunk_rows` (the last may be shorter); with
/// `chunk_rows` 0, `rows` independent tasks instead. Never overwrites.
/// Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_queue_create(
    path: *const c_char,
    rows: usize,
    chunk_rows: usize,
    out: *mut *mut sharray_queue,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let path = unsafe { location(path)? };
        let b = WorkQueue::builder();
        let b = if chunk_rows == 0 {
            b.tasks(rows)
        } else {
            b.rows(rows).chunk_rows(chunk_rows)
        };
        let q = b.create(&path)?;
        // SAFETY: module contract.
        unsafe { give(out, sharray_queue { inner: q }, "out") }
    })
}

/// Open an existing work queue read-write. `SHARRAY_UNSUPPORTED` if the
/// file is not a queue. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_queue_open(
    path: *const c_char,
    out: *mut *mut sharray_queue,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let path = unsafe { location(path)? };
        let q = WorkQueue::open(&path)?;
        // SAFETY: module contract.
        unsafe { give(out, sharray_queue { inner: q }, "out") }
    })
}

/// Close a queue handle. NULL does nothing.
///
/// # Safety
///
/// `queue` is NULL or a live queue, never used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_queue_free(queue: *mut sharray_queue) -> sharray_status {
    if queue.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract.
    run(|| unsafe { take(queue, "queue") }.map(drop))
}

/// A snapshot of the queue's progress (probes every worker's liveness: a
/// few system calls). Never blocks. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_queue_get_progress(
    queue: *const sharray_queue,
    progress: *mut sharray_queue_progress,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear(progress) };
    run(|| {
        // SAFETY: module contract.
        let q = unsafe { handle(queue, "queue")? };
        // SAFETY: module contract.
        unsafe { put(progress, q.inner.progress().into(), "progress") }
    })
}

/// Wait until every chunk is done, at most `timeout_ms` (`SHARRAY_FOREVER`,
/// `SHARRAY_TRY` or milliseconds), re-queueing the chunks of dead workers
/// meanwhile. `*progress` (may be NULL) gets the final progress.
/// `SHARRAY_TIMEOUT` if the job is not finished in time. Blocks. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_queue_wait_all(
    queue: *const sharray_queue,
    timeout_ms: i64,
    progress: *mut sharray_queue_progress,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear(progress) };
    run(|| {
        // SAFETY: module contract.
        let q = unsafe { handle(queue, "queue")? };
        let p = q.inner.wait_all(duration_of(timeout_ms)?)?;
        if !progress.is_null() {
            // SAFETY: module contract.
            unsafe { put(progress, p.into(), "progress")? };
        }
        Ok(())
    })
}

/// Register this process (or thread) as a worker. `SHARRAY_FULL` if the
/// worker table is full of live workers. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_queue_join(
    queue: *const sharray_queue,
    out: *mut *mut sharray_worker,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let q = unsafe { handle(queue, "queue")? };
        let w = q.inner.join()?;
        // SAFETY: module contract.
        unsafe { give(out, sharray_worker { inner: w }, "out") }
    })
}

/// Unregister a worker (its open claims stay valid until ended). NULL does
/// nothing.
///
/// # Safety
///
/// `worker` is NULL or a live worker, never used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_worker_free(worker: *mut sharray_worker) -> sharray_status {
    if worker.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract.
    run(|| unsafe { take(worker, "worker") }.map(drop))
}

/// Claim the next chunk. `SHARRAY_DONE` once every chunk of the queue is
/// done (the end of a worker loop). `timeout_ms`: `SHARRAY_FOREVER` waits
/// while every remaining chunk is held by other live workers (re-queueing
/// the chunks of dead ones), `SHARRAY_TRY` gives `SHARRAY_WOULD_BLOCK` if
/// none is claimable now, a positive value gives `SHARRAY_TIMEOUT` after
/// that long. Blocks as said. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_worker_claim(
    worker: *const sharray_worker,
    timeout_ms: i64,
    out: *mut *mut sharray_claim,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let w = unsafe { handle(worker, "worker")? };
        let claim = match wait_of(timeout_ms)? {
            Wait::Forever => w.inner.claim()?,
            Wait::Try => match w.inner.try_claim()? {
                Some(c) => Some(c),
                None if w.inner.queue().is_done() => None,
                None => return Err(Fail::would_block("claim")),
            },
            Wait::For(d) => w.inner.claim_timeout(d)?,
        };
        let claim = claim.ok_or_else(|| Fail::done("every chunk of the queue is done"))?;
        let c = sharray_claim {
            inner: Arc::new(claim),
        };
        // SAFETY: module contract.
        unsafe { give(out, c, "out") }
    })
}

/// The claimed chunk's index and its rows `[*row_start, *row_end)` of axis
/// 0 (`index..index + 1` for a task queue). Any out-pointer may be NULL.
/// Never blocks.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_claim_info(
    claim: *const sharray_claim,
    index: *mut usize,
    row_start: *mut usize,
    row_end: *mut usize,
) -> sharray_status {
    run(|| {
        // SAFETY: module contract.
        let c = unsafe { handle(claim, "claim")? };
        let rows = c.inner.rows();
        for (out, v) in [
            (index, c.inner.index()),
            (row_start, rows.start),
            (row_end, rows.end),
        ] {
            if !out.is_null() {
                // SAFETY: module contract.
                unsafe { put(out, v, "out")? };
            }
        }
        Ok(())
    })
}

/// A writable view of the claim's rows of `out_array` (whose axis 0 must
/// have the queue's row count; C order, or one dimension); get the bytes
/// with `sharray_rows_data`. The claim makes those rows exclusive among
/// cooperating workers. `SHARRAY_SHAPE_MISMATCH`, `SHARRAY_UNSUPPORTED`
/// (Fortran order), `SHARRAY_PERMISSION_DENIED` (read-only array) or
/// `SHARRAY_LOCK_TIMEOUT` (another view of these rows is alive in this
/// process). Never blocks.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_claim_rows(
    claim: *const sharray_claim,
    out_array: *const sharray_array,
    out: *mut *mut sharray_rows,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let (c, a) = unsafe { (handle(claim, "claim")?, handle(out_array, "out_array")?) };
        let mut view = c.inner.rows_mut_owned(&a.inner)?;
        let bytes = view.bytes_mut();
        let (data, len) = (bytes.as_mut_ptr(), bytes.len());
        let rows = sharray_rows {
            inner: view,
            data,
            len,
        };
        // SAFETY: module contract.
        unsafe { give(out, rows, "out") }
    })
}

/// The claim's rows: `*data` and `*len` bytes (rows `row_start..row_end`
/// of the output array, contiguous), writable, valid until
/// `sharray_rows_release`. Never blocks.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_rows_data(
    rows: *const sharray_rows,
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
        let r = unsafe { handle(rows, "rows")? };
        // SAFETY: module contract.
        unsafe {
            put(data, r.data as *mut c_void, "data")?;
            put(len, r.len, "len")
        }
    })
}

/// Release a row view (before completing or abandoning its claim). NULL
/// does nothing.
///
/// # Safety
///
/// `rows` is NULL or a live row view, never used again after this call (nor
/// its data pointer).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_rows_release(rows: *mut sharray_rows) -> sharray_status {
    if rows.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract.
    run(|| unsafe { take(rows, "rows") }.map(|r| drop(r.inner)))
}

/// Take the claim back from C, refusing (and leaving it valid) while one of
/// its row views is alive.
///
/// # Safety
///
/// As [`take`].
unsafe fn end_claim(claim: *mut sharray_claim) -> Result<Claim, Fail> {
    // SAFETY: module contract.
    let c = unsafe { handle(claim, "claim")? };
    if Arc::strong_count(&c.inner) != 1 {
        return Err(Fail::arg(
            "a row view of this claim is still alive; release it (sharray_rows_release) first",
        ));
    }
    // SAFETY: module contract.
    let c = unsafe { take(claim, "claim")? };
    Arc::try_unwrap(c.inner)
        .map_err(|_| Fail::arg("a row view of this claim is still alive; release it first"))
}

/// Mark the chunk done. Ends the claim (unless `SHARRAY_INVALID_ARGUMENT`
/// because a row view is still alive: the claim then stays valid).
/// `SHARRAY_DISCONNECTED` if the chunk was taken away (this worker was
/// taken for dead); discard the result then. Never blocks.
///
/// # Safety
///
/// `claim` is NULL or a live claim, never used again after a call that
/// ended it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_claim_complete(claim: *mut sharray_claim) -> sharray_status {
    // SAFETY: module contract.
    run(|| Ok(unsafe { end_claim(claim)? }.complete()?))
}

/// Give the chunk back unprocessed (another worker will claim it). Ends
/// the claim, with the same exception as `sharray_claim_complete`. A claim
/// of a process that dies is given back the same way. Never blocks.
///
/// # Safety
///
/// As `sharray_claim_complete`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_claim_abandon(claim: *mut sharray_claim) -> sharray_status {
    // SAFETY: module contract.
    run(|| Ok(unsafe { end_claim(claim)? }.abandon()?))
}
