//! The consumer side of rings: register, receive leases, read a frame and
//! its metadata in place, release.

use std::ffi::c_void;

use sharray_core::{Consumer, ErrorKind, ReadLease, TryRecvError};

use crate::ring::sharray_ring;
use crate::{
    Fail, Wait, clear, clear_handle, give, handle, put, run, sharray_status, take, wait_of,
};

/// A registered consumer (opaque; a subscriber in broadcast mode).
/// Thread-safe. Its registration ends with `sharray_consumer_free` or with
/// its process; leases it handed out stay valid until released.
pub struct sharray_consumer {
    inner: Consumer,
}

/// A received frame, leased (opaque). End it with `sharray_lease_release`
/// (any thread). A process that dies holding leases gives them back.
pub struct sharray_lease {
    inner: ReadLease,
}

/// Metadata of a received frame (`sharray_lease_get_info`).
#[repr(C)]
#[derive(Default)]
pub struct sharray_lease_info {
    /// Sequence number (position in commit order, from 0).
    pub seq: u64,
    /// `CLOCK_MONOTONIC` ns at commit (comparable across processes).
    pub timestamp_ns: u64,
    /// The producer's tag.
    pub tag: u64,
    /// Valid bytes of the frame.
    pub valid_len: usize,
    /// Frames lost before this one (overwrite mode / broadcast).
    pub lost: u64,
    /// Index of the slot (row of the ring's array).
    pub slot: usize,
}

/// Register as a consumer (a subscriber in broadcast mode).
/// `SHARRAY_FULL` if the participant table is full. Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_ring_consumer(
    ring: *const sharray_ring,
    out: *mut *mut sharray_consumer,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let r = unsafe { handle(ring, "ring")? };
        let c = r.inner.consumer()?;
        // SAFETY: module contract.
        unsafe { give(out, sharray_consumer { inner: c }, "out") }
    })
}

/// Unregister a consumer (its leases stay valid until released). NULL does
/// nothing.
///
/// # Safety
///
/// `consumer` is NULL or a live consumer, never used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_consumer_free(consumer: *mut sharray_consumer) -> sharray_status {
    if consumer.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract.
    run(|| unsafe { take(consumer, "consumer") }.map(drop))
}

/// Receive the next frame as a lease. `timeout_ms`: `SHARRAY_FOREVER`
/// waits for a frame, `SHARRAY_TRY` gives `SHARRAY_WOULD_BLOCK` if none is
/// there now, a positive value gives `SHARRAY_TIMEOUT` after that long.
/// `SHARRAY_DISCONNECTED` once a producer closed the stream and every
/// committed frame was received: the normal end of a consumer loop.
///
/// Blocks as said (spins briefly, then parks on a shared futex).
/// Thread-safe.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_consumer_recv(
    consumer: *const sharray_consumer,
    timeout_ms: i64,
    out: *mut *mut sharray_lease,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear_handle(out) };
    run(|| {
        // SAFETY: module contract.
        let c = unsafe { handle(consumer, "consumer")? };
        let lease = match wait_of(timeout_ms)? {
            Wait::Forever => c.inner.recv()?,
            Wait::Try => match c.inner.try_recv() {
                Ok(l) => l,
                Err(TryRecvError::Empty) => return Err(Fail::would_block("receive")),
                Err(TryRecvError::Disconnected) => {
                    return Err(sharray_core::Error::new(
                        ErrorKind::Disconnected,
                        "the stream was closed by a producer and every frame was received",
                    )
                    .into());
                }
                Err(TryRecvError::Error(e)) => return Err(e.into()),
            },
            Wait::For(d) => c.inner.recv_timeout(d)?,
        };
        // SAFETY: module contract.
        unsafe { give(out, sharray_lease { inner: lease }, "out") }
    })
}

/// The frame: `*data` (read-only) and `*len` valid bytes. Valid until the
/// lease is released; never write through it (in broadcast mode other
/// subscribers read the same bytes). Never blocks.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_lease_data(
    lease: *const sharray_lease,
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
        let l = unsafe { handle(lease, "lease")? };
        let bytes = l.inner.bytes();
        // SAFETY: module contract.
        unsafe {
            put(data, bytes.as_ptr() as *const c_void, "data")?;
            put(len, bytes.len(), "len")
        }
    })
}

/// The frame's metadata (sequence number, timestamp, tag, valid length,
/// frames lost before it, slot). Never blocks.
///
/// # Safety
///
/// See the conventions at the top of the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_lease_get_info(
    lease: *const sharray_lease,
    info: *mut sharray_lease_info,
) -> sharray_status {
    // SAFETY: module contract.
    unsafe { clear(info) };
    run(|| {
        // SAFETY: module contract.
        let l = unsafe { handle(lease, "lease")? };
        let i = &l.inner;
        let value = sharray_lease_info {
            seq: i.seq(),
            timestamp_ns: i.timestamp_ns(),
            tag: i.tag(),
            valid_len: i.valid_len(),
            lost: i.lost(),
            slot: i.slot(),
        };
        // SAFETY: module contract.
        unsafe { put(info, value, "info") }
    })
}

/// Release a lease: the slot goes back to the producers once every reader
/// released it. Any thread may. NULL does nothing.
///
/// # Safety
///
/// `lease` is NULL or a live lease, never used again after this call (nor
/// its data pointer).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sharray_lease_release(lease: *mut sharray_lease) -> sharray_status {
    if lease.is_null() {
        return sharray_status::SHARRAY_OK;
    }
    // SAFETY: module contract.
    run(|| unsafe { take(lease, "lease") }.map(drop))
}
