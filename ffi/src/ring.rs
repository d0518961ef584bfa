//! Rings: create, open, info and statistics, and the producer side (loan,
//! commit, abandon, close). The consumer side is in `consumer.rs`.

use std::ffi::{CString, c_char, c_int, c_void};

use sharray_core::{Producer, Ring, TryLoanError, WriteLoan};

use crate::{
    Fail, Wait, clear, clear_handle, give, handle, handle_mut, location, put, run, shape_arg,
    sharray_status, take, text, wait_of,
};

/// An open ring (opaque). Thread-safe. Producers, consumers, loans and
/// leases made from it keep what they need: they stay valid after
/// `sharray_ring_free`.
pub struct sharray_ring {
    pub(crate) inner: Ring,
    descr: CString,
}

/// A registered producer (opaque). Thread-safe: several threads may loan
/// through one producer. Its registration ends with `sharray_producer_free`
/// or with its process.
pub struct sharray_producer {
    inner: Producer,
}

/// A loaned slot being filled (opaque). Use it from one thread at a time.
/// End it with exactly one of `sharray_loan_commit` or
/// `sharray_loan_abandon`.
pub struct sharray_loan {
    inner: WriteLoan,
    data: *mut u8,
    len: usize,
}

// SAFETY: `data` points into the ring's mapping, kept alive by the loan
// (which is Send + Sync); the pointer is only handed to C.
unsafe impl Send for sharray_loan {}
// SAFETY: as above; shared references only read the pointer value.
unsafe impl Sync for sharray_loan {}

/// Options of a new ring (`sharray_ring_create`). All zero is the default:
/// a queue-mode ring with backpressure and the default slot count.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct sharray_ring_options {
    /// Number of slots, 1..=65536; 0 for the default (frames that fit in
    /// 16 MiB, at least 4 and at most 64).
    pub slots: u32,
    /// Broadcast mode: every consumer gets every frame committed after it
    /// attached (default: queue mode, each frame to exactly one consumer).
    pub broadcast: bool,
    /// Overwrite-oldest: a producer drops the oldest unread frame instead
    /// of waiting for a free slot (default: backpressure).
    pub overwrite: bool,
}

/// A description of a ring (`sharray_ring_get_info`). The pointers point into
/// the ring handle: valid until `sharray_ring_free`.
#[repr(C)]
pub struct sharray_ring_info {
    /// numpy dtype of the frames, e.g. "<u8" (NUL-terminated).
    pub dtype: *const c_char,
    /// Bytes per element.
    pub itemsize: usize,
    /// Dimensions of one frame.
    pub frame_ndim: usize,
    /// `frame_ndim` sizes.
    pub frame_shape: *const usize,
    /// Number of slots.
    pub slots: usize,
    /// Bytes per slot (one frame).
    pub slot_bytes: usize,
    /// Broadcast mode?
    pub broadcast: bool,
    /// Overwrite-oldest mode?
    pub overwrite: bool,
}

/// A snapshot of a ring's counters (`sharray_ring_get_stats`).
#[repr(C)]
#[derive(Default)]
pub struct sharray_ring_stats {
    /// Frames committed since creation.
    pub committed: u64,
    /// Leases handed out since creation.
    pub received: u64,
    /// Frames dropped by overwrite before every reader had them.
    pub dropped: u64,
    /// Free slots.
    pub free: usize,
    /// Slots loaned to producers.
    pub writing: usize,
    /// Committed slots not yet released by every reader.
    pub ready: usize,
    /// Queue mode: slots leased to consumers.
    pub reading: usize,
    /// Has a producer closed the stream?
    pub closed: bool,
    /// Registered participants.
    pub participants: usize,
    /// Participants whose process is alive.
    pub alive: usize,
    /// Producers registered and alive.
    pub producers_attached: usize,
    /// `CLOCK_MONOTONIC` ns when the snapshot was taken.
    pub timestamp_ns: u64,
}

impl sharray_ring {
    fn new(inner: Ring) -> sharray_ring {
        let descr = CString::new(inner.dtype().descr()).unwrap_or_default();
        sharray_ring { inner, descr }
    }
}

/// Create a ring at `path` (or `shm:NAME`) of frames of numpy dtype `dtype`
/// and shape `frame_shape[0..frame_ndim]`. `options` may be NULL for the
/// defaults. Never overwrites. The file is also a `(slots, *frame_shape)`
/// `.npy` array. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_ring_create(
    path: *const c_char,
    dtype: *const c_char,
    frame_shape: *const usize,
    frame_ndim: usize,
    options: *const sharray_ring_options,
    out: *mut *mut sharray_ring,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let (path, dtype, shape, opts) = unsafe {
            (
                location(path)?,
                text(dtype, "dtype")?,
                shape_arg(frame_shape, frame_ndim)?,
                options.as_ref().copied().unwrap_or_default(),
            )
        };
        let mut b = Ring::builder(crate::dtype_arg(dtype)?, &shape)
            .broadcast(opts.broadcast)
            .overwrite(opts.overwrite);
        if opts.slots != 0 {
            b = b.slots(opts.slots);
        }
        let ring = b.create(&path)?;
        // SAFETY: module contract.
        unsafe { give(out, sharray_ring::new(ring), "out") }
    })
}

/// Open an existing ring read-write. `SHARRAY_UNSUPPORTED` if the file is
/// not a ring. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_ring_open(
    path: *const c_char,
    out: *mut *mut sharray_ring,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let path = unsafe { location(path)? };
        let ring = Ring::open(&path)?;
        // SAFETY: module contract.
        unsafe { give(out, sharray_ring::new(ring), "out") }
    })
}

/// Close a ring handle. NULL does nothing.
///
/// # Safety
///
/// `ring` is NULL or a live ring, never used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_ring_free(ring: *mut sharray_ring) -> sharray_status {
    if ring.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract.
    run(|| unsafe { take(ring, "ring") }.map(drop))
}

/// Describe the ring. The pointers in `*info` stay valid until
/// `sharray_ring_free(ring)`. Never blocks. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_ring_get_info(
    ring: *const sharray_ring,
    info: *mut sharray_ring_info,
) -> sharray_status {
    run(|| {
        // SAFETY: module contract.
        let r = unsafe { handle(ring, "ring")? };
        let i = &r.inner;
        let value = sharray_ring_info {
            dtype: r.descr.as_ptr(),
            itemsize: i.dtype().itemsize(),
            frame_ndim: i.frame_shape().len(),
            frame_shape: i.frame_shape().as_ptr(),
            slots: i.slots(),
            slot_bytes: i.slot_bytes(),
            broadcast: i.is_broadcast(),
            overwrite: i.is_overwrite(),
        };
        // SAFETY: module contract.
        unsafe { put(info, value, "info") }
    })
}

/// A snapshot of the ring's counters, read without taking the ring lock
/// (values may be a few operations apart); probes every participant's
/// liveness (a few system calls). Never blocks. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_ring_get_stats(
    ring: *const sharray_ring,
    stats: *mut sharray_ring_stats,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear(stats) };
    run(|| {
        // SAFETY: module contract.
        let r = unsafe { handle(ring, "ring")? };
        let s = r.inner.stats();
        let value = sharray_ring_stats {
            committed: s.committed,
            received: s.received,
            dropped: s.dropped,
            free: s.free,
            writing: s.writing,
            ready: s.ready,
            reading: s.reading,
            closed: s.closed,
            participants: s.participants.len(),
            alive: s.alive(),
            producers_attached: s.producers_attached(),
            timestamp_ns: s.timestamp_ns,
        };
        // SAFETY: module contract.
        unsafe { put(stats, value, "stats") }
    })
}

/// Register as a producer. A ring whose stream was closed refuses with
/// `SHARRAY_DISCONNECTED` unless `reopen` is non-zero (which reopens the
/// stream). `SHARRAY_FULL` if the participant table is full. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_ring_producer(
    ring: *const sharray_ring,
    reopen: c_int,
    out: *mut *mut sharray_producer,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let r = unsafe { handle(ring, "ring")? };
        let p = if reopen != 0 {
            r.inner.producer_reopening()?
        } else {
            r.inner.producer()?
        };
        // SAFETY: module contract.
        unsafe { give(out, sharray_producer { inner: p }, "out") }
    })
}

/// End the stream: consumers drain the committed frames, then get
/// `SHARRAY_DISCONNECTED`. (A producer that merely goes away does not end
/// it.) The producer stays registered until `sharray_producer_free`.
/// Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_producer_close(
    producer: *const sharray_producer,
) -> sharray_status {
    run(|| {
        // SAFETY: module contract.
        let p = unsafe { handle(producer, "producer")? };
        Ok(p.inner.close()?)
    })
}

/// Unregister a producer (its open loans stay valid until committed or
/// abandoned). NULL does nothing.
///
/// # Safety
///
/// `producer` is NULL or a live producer, never used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_producer_free(producer: *mut sharray_producer) -> sharray_status {
    if producer.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract.
    run(|| unsafe { take(producer, "producer") }.map(drop))
}

/// Loan a free slot to fill in place. `timeout_ms`: `SHARRAY_FOREVER`
/// waits for a free slot (backpressure), `SHARRAY_TRY` gives
/// `SHARRAY_WOULD_BLOCK` if none is free now, a positive value gives
/// `SHARRAY_TIMEOUT` after that long. In overwrite mode the oldest unread
/// frame is dropped instead of waiting. `SHARRAY_DISCONNECTED` if the
/// stream was closed.
///
/// Blocks as said (spins briefly, then parks on a shared futex).
/// Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_producer_loan(
    producer: *const sharray_producer,
    timeout_ms: i64,
    out: *mut *mut sharray_loan,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let p = unsafe { handle(producer, "producer")? };
        let mut loan = match wait_of(timeout_ms)? {
            Wait::Forever => p.inner.loan()?,
            Wait::Try => match p.inner.try_loan() {
                Ok(l) => l,
                Err(TryLoanError::Full) => return Err(Fail::would_block("loan")),
                Err(TryLoanError::Error(e)) => return Err(e.into()),
            },
            Wait::For(d) => p.inner.loan_timeout(d)?,
        };
        let bytes = loan.bytes_mut();
        let (data, len) = (bytes.as_mut_ptr(), bytes.len());
        let handle = sharray_loan {
            inner: loan,
            data,
            len,
        };
        // SAFETY: module contract.
        unsafe { give(out, handle, "out") }
    })
}

/// The loaned slot: `*data` and `*len` bytes (one whole frame), writable,
/// valid until the loan is committed or abandoned. Never blocks.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_loan_data(
    loan: *const sharray_loan,
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
        let l = unsafe { handle(loan, "loan")? };
        // SAFETY: module contract.
        unsafe {
            put(data, l.data as *mut c_void, "data")?;
            put(len, l.len, "len")
        }
    })
}

/// Set the tag delivered with the frame (default 0). Never blocks.
///
/// # Safety
///
/// See the conventions at the top of the header; not concurrently with
/// another call on the same loan.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_loan_set_tag(loan: *mut sharray_loan, tag: u64) -> sharray_status {
    run(|| {
        // SAFETY: module contract.
        let l = unsafe { handle_mut(loan, "loan")? };
        l.inner.set_tag(tag);
        Ok(())
    })
}

/// Deliver only the first `valid_len` bytes as valid (default: the whole
/// slot). `SHARRAY_INVALID_INPUT` if larger than the slot. Never blocks.
///
/// # Safety
///
/// See the conventions at the top of the header; not concurrently with
/// another call on the same loan.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_loan_set_valid_len(
    loan: *mut sharray_loan,
    valid_len: usize,
) -> sharray_status {
    run(|| {
        // SAFETY: module contract.
        let l = unsafe { handle_mut(loan, "loan")? };
        Ok(l.inner.set_valid_len(valid_len)?)
    })
}

/// Publish the frame; `*seq` (may be NULL) gets its sequence number. Ends
/// the loan whatever the result (on failure the slot goes back to the
/// ring). Wakes waiting consumers. Does not block beyond the ring lock.
///
/// # Safety
///
/// `loan` is NULL or a live loan, never used again after this call (nor
/// its data pointer).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_loan_commit(
    loan: *mut sharray_loan,
    seq: *mut u64,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear(seq) };
    run(|| {
        // SAFETY: module contract.
        let l = unsafe { take(loan, "loan")? };
        let n = l.inner.commit()?;
        if !seq.is_null() {
            // SAFETY: module contract.
            unsafe { put(seq, n, "seq")? };
        }
        Ok(())
    })
}

/// Give the slot back unpublished. Ends the loan. NULL does nothing.
///
/// # Safety
///
/// `loan` is NULL or a live loan, never used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_loan_abandon(loan: *mut sharray_loan) -> sharray_status {
    if loan.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract.
    run(|| unsafe { take(loan, "loan") }.map(drop))
}
