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
//!   [`ring`]) and worker pools (coordinated by a [`WorkQueue`] file, see
//!   [`pool`]) on top of the control block, and [`GrowableArray`]s (a
//!   first axis that several processes append to at once, numpy seeing
//!   exactly the published rows);
//! - front ends: the `sharray` CLI, the Python package and the C library.
//!
//! ## Safety model
//!
//! A sharray file is memory shared with every process that maps it, and
//! Rust's rules for `&[T]` and `&mut [T]` assume nobody else changes those
//! bytes while the reference lives. sharray keeps that true among
//! *cooperating* peers (sharray itself in any language, or a peer that follows
//! the locking protocol of `FORMAT.md`); it cannot keep it true against a
//! process that ignores the protocol.
//!
//! What sharray guarantees among cooperating peers:
//!
//! - The mapping is kept as a raw pointer and length. Slices and ndarray
//!   views exist only inside a lock guard ([`ReadGuard`], [`WriteGuard`],
//!   [`RowsGuard`]), a ring [`WriteLoan`] or [`ReadLease`], or a pool
//!   [`Claim`]'s [`RowsMut`], whose protocol gives the holder shared read-only
//!   or exclusive access to those bytes; they end when it ends.
//! - Control words (generation, ring and queue state) are touched only
//!   through atomics, so concurrent access to them is always defined.
//! - Everything read from a file that decides offsets or sizes is copied and
//!   validated with checked arithmetic against the real file length: a
//!   corrupt, truncated or hostile file gives an [`Error`], never an access out
//!   of bounds.
//! - Element types are [`Element`]s (`bytemuck::Pod`): every bit pattern is a
//!   valid value, so any bytes a peer stored read back as some value.
//!
//! What is **undefined behaviour**, and sharray can neither prevent nor
//! detect:
//!
//! - A process (or code in this one, through another mapping or a raw
//!   pointer) that ignores the locks and writes the data while we hold a slice
//!   over it. Our `&[T]` then observes concurrent mutation, and a `&mut [T]`
//!   concurrent access: a data race, which is undefined behaviour in Rust's
//!   memory model, not merely wrong data. The compiler may assume those bytes
//!   do not change, and code optimised under that assumption can fail in ways
//!   unrelated to the values read.
//! - A process that *truncates* (or otherwise shrinks) the file while it is
//!   mapped: the kernel raises SIGBUS in every process that touches the lost
//!   pages, which kills it. No mapping-based tool can prevent this.
//!
//! memmap2 marks `Mmap::map` `unsafe` for exactly these reasons. sharray's
//! constructors are safe functions because its trust model is cooperating
//! processes of one user: files are created `0600`, symlinks are refused, and
//! files of another user are refused unless you ask
//! ([`OpenOptions::allow_other_owner`]). Do not give write access to a shared
//! file to a program you do not trust to follow the protocol, and never
//! truncate, extend or `np.load(..., mmap_mode="w+")` over a shared file.
//! Each handle type's `# Safety` section points back here.
//!
//! ## Crate features
//!
//! - `ndarray` (default): `view()` / `view_mut()` on guards and leases.
//! - `failpoints` (tests only): arms the named fail points of the protocols
//!   from `SHARRAY_FAILPOINTS`, so tests can stop or kill a process at an
//!   exact step. The crate's own tests turn it on; never enable it in a
//!   release build.
//!
//! The `sharray` command-line tool is the workspace crate `sharray-cli`
//! (`cargo install --path cli`); the C library (`libsharray.so`,
//! `libsharray.a`, `include/sharray.h`) is `sharray-ffi`; the benchmark
//! harness is `sharray-bench`.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod advice;
pub mod aio;
mod array;
mod check;
mod convert;
mod element;
mod error;
#[doc(hidden)]
pub mod fail;
mod file;
pub mod format;
mod growable;
mod mapping;
pub mod pool;
mod ranges;
mod raw;
mod readonly;
pub mod ring;
#[doc(hidden)]
pub mod sys;

pub use advice::{Advice, Advised};
pub use array::{
    ArrayBuilder, FileKind, Info, OpenOptions, Order, OwnedUntypedReadGuard,
    OwnedUntypedWriteGuard, ReadGuard, SharedArray, UntypedArray, UntypedBuilder, UntypedReadGuard,
    UntypedWriteGuard, WriteGuard, inspect,
};
pub use check::{Problem, check};
pub use convert::{
    CopyOptions, export_npy, export_npy_with, import_npy, import_npy_with, import_raw, write_npy,
    write_npy_replacing,
};
pub use element::{Bool, Element};
pub use error::{Error, ErrorKind, Result};
pub use file::{resolve_location, shm_path};
/// # Examples
///
/// A `Dtype` names the element type of a file in numpy's terms. Parse what a
/// user typed with [`Dtype::parse_user`]; it is held in numpy's canonical
/// spelling, so equal dtypes compare equal however they were written.
///
/// ```
/// use sharray::{Dtype, UntypedArray};
/// let f = Dtype::parse_user("float32")?;
/// assert_eq!(f, Dtype::parse_user("<f4")?);
/// assert_eq!((f.descr(), f.itemsize(), f.kind()), ("<f4", 4, Some('f')));
///
/// // Big-endian, strings, structured records: any fixed-size numpy dtype.
/// let rec = Dtype::parse_user("[('id', '<u4'), ('xyz', '<f8', (3,))]")?;
/// assert_eq!((rec.itemsize(), rec.is_structured()), (28, true));
/// assert!(!Dtype::parse_user(">i4")?.is_native_endian());
///
/// // Ambiguous or variable-size types are refused with a message saying why.
/// assert!(Dtype::parse_user("u8").is_err()); // 1 byte in Rust, 8 in numpy: write uint64
/// assert!(Dtype::parse_user("O").is_err());  // Python objects
///
/// // Untyped arrays take any dtype; typed ones check it against `T`.
/// # let dir = tempfile::tempdir()?;
/// let a = UntypedArray::builder(rec).shape(&[10]).create(dir.path().join("rec.npy"))?;
/// assert_eq!(a.nbytes(), 280);
/// assert!(a.typed::<f32>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(inline)]
pub use format::npy::Dtype;
pub use growable::{GrowInfo, GrowReadGuard, GrowableArray, GrowableBuilder};
#[cfg(feature = "ndarray")]
pub use ndarray;
pub use num_complex::Complex;
pub use pool::{
    Claim, OwnedUntypedRowsMut, QueueProgress, RowMode, RowsGuard, RowsMut, UntypedRowsMut,
    WorkQueue, Worker,
};
pub use raw::RawLayout;
pub use readonly::ReadOnlyArray;
pub use ring::{
    Consumer, ParticipantStats, Producer, ReadLease, Ring, RingBuilder, RingStats, TryLoanError,
    TryRecvError, WriteLoan,
};

/// The README's Rust examples, compiled and run by `cargo test --doc` (they
/// show ndarray views, so they need the default `ndarray` feature).
#[cfg(all(doctest, feature = "ndarray"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
