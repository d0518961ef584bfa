//! The only layer that talks to the operating system directly.
//!
//! Linux is the supported platform (OFD locks, shared futexes,
//! `MADV_POPULATE_WRITE`); other systems fail to compile this module with a
//! clear message rather than silently losing guarantees.

#[cfg(not(target_os = "linux"))]
compile_error!("sharray currently supports Linux only (it needs OFD locks and shared futexes)");

#[allow(unsafe_code)]
mod unix;
pub use unix::*;
#[allow(unsafe_code)]
mod waitv;
pub use waitv::*;
