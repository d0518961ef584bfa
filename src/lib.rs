//! # sharray: share large n-dimensional arrays between processes, zero-copy
//!
//! Several processes map the same file. Advisory file locks and a small
//! control block in the file coordinate them. The file is also a valid `.npy`,
//! so Python's `np.load(path, mmap_mode="r")` sees the data with nothing
//! installed.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("temps.npy");
//! use sharray::SharedArray;
//! use std::time::Duration;
//!
//! // Process A creates and fills an array.
//! let a = SharedArray::<f32>::builder().shape(&[480, 640]).fill(20.0).create(&path)?;
//! let seen = a.generation();
//! {
//!     let mut w = a.write()?;          // excludes every other process and thread
//!     w[0] = 21.5;
//! }                                     // generation bumped here
//!
//! // Process B (here: the same one) opens it and waits for changes.
//! let b = SharedArray::<f32>::open(&path)?;
//! let now = b.wait_changed(seen, Duration::from_secs(1))?;
//! assert!(now > seen);
//! let r = b.read()?;
//! assert_eq!(r[0], 21.5);
//! # #[cfg(feature = "ndarray")]
//! assert_eq!(r.view().shape(), &[480, 640]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Paths may be `shm:NAME` for the RAM-backed file `/dev/shm/NAME`. Plain
//! `.npy` files written by numpy open with the same guards; [`import_npy`]
//! and [`export_npy`] convert between the two, and [`check`] lists every
//! broken invariant of a file. The byte layout and the locking protocol are
//! specified in `FORMAT.md`, precisely enough to write a peer in C or Python.
//!
//! ## Layers
//!
//! - `sys`: the OS calls (flock, OFD locks, futexes, fallocate, madvise);
//! - `file`: creating, publishing, opening; one open file description per inode;
//! - [`format`](mod@format): the `.npy` header and the control block (pure logic);
//! - arrays: [`SharedArray`], [`UntypedArray`], guards and views;
//! - coordination: [`Ring`]s (zero-copy producer/consumer pipelines, see
//!   [`ring`]) and worker pools on top of the control block;
//! - front ends: the `sharray` CLI and the Python package.
//!
//! ## Safety model
//!
//! The mapping is kept as a raw pointer and length. Slices (`&[T]`,
//! `&mut [T]`) and ndarray views exist only inside a lock guard or a lease
//! whose protocol gives the holder exclusive (or shared read-only) access among
//! cooperating processes. Control words are touched only through atomics.
//! Everything read from a file that decides offsets or sizes is copied and
//! validated with checked arithmetic against the real file length. A process
//! that ignores the protocol can cause wrong data, not memory unsafety in ours;
//! a process that *truncates* the file makes the kernel raise SIGBUS in every
//! process touching the lost pages, which no mapping-based tool can prevent.
//!
//! ## Crate features
//!
//! - `ndarray` (default): `view()` / `view_mut()` on guards and leases.
//! - `cli` (default): the `sharray` binary.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]

mod array;
mod check;
mod convert;
mod element;
mod error;
mod file;
pub mod format;
mod mapping;
pub mod pool;
mod ranges;
pub mod ring;
#[doc(hidden)]
pub mod sys;

pub use array::{
    ArrayBuilder, FileKind, Info, OpenOptions, Order, OwnedUntypedReadGuard,
    OwnedUntypedWriteGuard, ReadGuard, SharedArray, UntypedArray, UntypedBuilder, UntypedReadGuard,
    UntypedWriteGuard, WriteGuard, inspect,
};
pub use check::{Problem, check};
pub use convert::{
    CopyOptions, export_npy, export_npy_with, import_npy, import_npy_with, write_npy,
};
pub use element::{Bool, Element};
pub use error::{Error, ErrorKind, Result};
pub use file::{resolve_location, shm_path};
pub use format::npy::Dtype;
#[cfg(feature = "ndarray")]
pub use ndarray;
pub use num_complex::Complex;
pub use pool::{
    Claim, OwnedUntypedRowsMut, QueueProgress, RowMode, RowsGuard, RowsMut, UntypedRowsMut,
    WorkQueue, Worker,
};
pub use ring::{
    Consumer, ParticipantStats, Producer, ReadLease, Ring, RingBuilder, RingStats, TryLoanError,
    TryRecvError, WriteLoan,
};
