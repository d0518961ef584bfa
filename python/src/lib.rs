//! `sharray._sharray`: the native part of the `sharray` Python package.
//!
//! Python processes become full sharray peers through the same Rust
//! implementation as Rust programs: the same locks, generation counter,
//! rings and worker pools. numpy views share memory with the file;
//! see `guard.rs` for how a view is revoked when its guard ends and
//! `window.rs` for the mappings behind that.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod aio;
mod dlpack;
mod errors;
mod fork;
mod grow;
mod guard;
mod handle;
mod lease;
mod pool;
mod ring;
mod view;
mod window;

use pyo3::prelude::*;

#[pymodule]
fn _sharray(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<handle::SharedArray>()?;
    m.add_class::<aio::AsyncWaiter>()?;
    m.add_class::<guard::Guard>()?;
    m.add_class::<view::ViewBase>()?;
    m.add_class::<ring::Ring>()?;
    m.add_class::<ring::Producer>()?;
    m.add_class::<ring::WriteLoan>()?;
    m.add_class::<ring::Consumer>()?;
    m.add_class::<ring::ReadLease>()?;
    m.add_class::<pool::WorkQueue>()?;
    m.add_class::<pool::Worker>()?;
    m.add_class::<pool::Claim>()?;
    m.add_class::<pool::ClaimRows>()?;
    m.add_class::<grow::GrowableArray>()?;
    m.add_function(wrap_pyfunction!(grow::_grow_create, m)?)?;
    m.add_function(wrap_pyfunction!(grow::_grow_open, m)?)?;
    m.add_function(wrap_pyfunction!(grow::_grow_detect, m)?)?;
    m.add_function(wrap_pyfunction!(ring::_ring_open, m)?)?;
    m.add_function(wrap_pyfunction!(pool::_queue_open, m)?)?;
    m.add_function(wrap_pyfunction!(view::set_view_policy, m)?)?;
    m.add_function(wrap_pyfunction!(handle::create, m)?)?;
    m.add_function(wrap_pyfunction!(handle::open, m)?)?;
    m.add_function(wrap_pyfunction!(handle::info, m)?)?;
    m.add_function(wrap_pyfunction!(handle::import_npy, m)?)?;
    m.add_function(wrap_pyfunction!(handle::export_npy, m)?)?;
    m.add_function(wrap_pyfunction!(handle::open_raw, m)?)?;
    m.add_function(wrap_pyfunction!(handle::import_raw, m)?)?;
    Ok(())
}
