//! On-disk formats: the `.npy` header and the sharray control block. Pure
//! logic without I/O, so both can be fuzzed.

pub mod control;
pub mod npy;
