//! The `.npy` header: parse and emit format versions 1.0, 2.0 and 3.0.
//!
//! Pure logic: no I/O, no `unsafe`, and no panics on any input (fuzzed by
//! `fuzz/fuzz_targets/npy_header.rs`). The layout is numpy's
//! (`numpy/lib/format.py`, NEP 1):
//!
//! | bytes | content |
//! | --- | --- |
//! | 0..6 | magic `\x93NUMPY` |
//! | 6, 7 | major and minor version: 1.0, 2.0 or 3.0 |
//! | 8..10 (v1), 8..12 (v2, v3) | `HEADER_LEN`, a little-endian `u16` (v1) or `u32` |
//! | next `HEADER_LEN` bytes | a Python dict literal (Latin-1 in v1/v2, UTF-8 in v3), padded with spaces, ending in `'\n'` |
//!
//! The array data starts right after the header, at `10 + HEADER_LEN` (v1)
//! or `12 + HEADER_LEN` (v2, v3).
//!
//! Headers are emitted the way numpy writes them (`repr` of the dict with
//! sorted keys, structured descrs re-serialised as Python's `repr` of
//! `dtype.descr`), so a header emitted here is byte-identical to numpy's for
//! the same array.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::fmt;
use std::fmt::Write as _;

mod dtype;
mod header;
mod literal;

pub use dtype::Dtype;
pub use header::NpyHeader;
use literal::*;

/// A shape as Python and numpy print it: `()`, `(5,)`, `(3, 4)`.
pub fn shape_repr(dims: &[usize]) -> String {
    let mut s = String::with_capacity(2 + 22 * dims.len());
    py_repr_shape(dims, &mut s);
    s
}

/// The first six bytes of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The largest `HEADER_LEN` that [`NpyHeader::parse`] accepts (1 MiB); also
/// the longest text that [`Dtype::from_descr_literal`] accepts.
pub const MAX_HEADER_LEN: usize = 1 << 20;
/// The most dimensions a shape (of the array or of a sub-array field) may have.
pub const MAX_NDIM: usize = 64;
/// How deeply tuples, lists and dicts may nest in a header literal.
const MAX_DEPTH: usize = 32;
/// numpy pads the header so that the data starts at a multiple of this.
const ARRAY_ALIGN: usize = 64;
/// numpy leaves room for the growth axis to reach this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// The byte-order character of this machine.
const NATIVE: char = if cfg!(target_endian = "little") {
    '<'
} else {
    '>'
};
/// Largest size of anything in bytes (Rust allocations are limited to this).
const MAX_BYTES: usize = isize::MAX as usize;
/// How many characters of offending input an error message quotes.
const SHOW_CHARS: usize = 40;

// ---------------------------------------------------------------------------
// Errors

/// Error from parsing or emitting an .npy header. Display is one human
/// sentence saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    message: String,
}

impl HeaderError {
    fn new(message: impl Into<String>) -> HeaderError {
        HeaderError {
            message: message.into(),
        }
    }

    /// Prefix the message with context, e.g. "field 'a': ".
    fn context(self, prefix: &str) -> HeaderError {
        HeaderError::new(format!("{prefix}{}", self.message))
    }

    /// The message, one sentence without a final period.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HeaderError {}

/// Quote (a prefix of) untrusted text for an error message.
fn show(s: &str) -> String {
    let head: String = s.chars().take(SHOW_CHARS).collect();
    let mut out = String::new();
    py_repr_str(&head, &mut out);
    if s.chars().nth(SHOW_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    pub(crate) fn d(s: &str) -> Dtype {
        match Dtype::parse_user(s) {
            Ok(d) => d,
            Err(e) => panic!("parse_user({s:?}) failed: {e}"),
        }
    }

    pub(crate) fn lit(s: &str) -> Dtype {
        match Dtype::from_descr_literal(s) {
            Ok(d) => d,
            Err(e) => panic!("from_descr_literal({s:?}) failed: {e}"),
        }
    }

    pub(crate) fn user_err(s: &str) -> String {
        match Dtype::parse_user(s) {
            Ok(d) => panic!("parse_user({s:?}) unexpectedly gave {d}"),
            Err(e) => e.to_string(),
        }
    }

    pub(crate) fn parse_err(bytes: &[u8]) -> String {
        match NpyHeader::parse(bytes) {
            Ok(h) => panic!("parse unexpectedly gave {h:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A file prefix holding `text` padded to a total of at least 128 bytes:
    /// version 1.0, or 2.0 if the text is too long for 1.0.
    pub(crate) fn v1_with_text(text: &str) -> Vec<u8> {
        let total = 128.max((10 + text.len() + 1).div_ceil(64) * 64);
        let mut out = b"\x93NUMPY".to_vec();
        match u16::try_from(total - 10) {
            Ok(len) => {
                out.extend_from_slice(&[1, 0]);
                out.extend_from_slice(&len.to_le_bytes());
            }
            Err(_) => {
                out.extend_from_slice(&[2, 0]);
                out.extend_from_slice(&u32::try_from(total - 10).unwrap().to_le_bytes());
            }
        }
        out.extend_from_slice(text.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        out
    }

    pub(crate) fn header(dtype: &str, fortran_order: bool, shape: &[usize]) -> NpyHeader {
        NpyHeader {
            dtype: d(dtype),
            fortran_order,
            shape: shape.to_vec(),
        }
    }

    pub(crate) fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    pub(crate) const NUMPY_F4_3X4: &[u8] =
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
}
