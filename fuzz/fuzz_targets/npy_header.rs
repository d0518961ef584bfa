//! Fuzz the `.npy` header parser: `NpyHeader::parse` must never panic, and
//! whatever it accepts must survive emit -> parse unchanged. The input is also
//! fed, as text, to the dtype parsers.
//!
//! Run with `cargo +nightly fuzz run npy_header` from the crate root.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sharray::format::npy::{Dtype, MAX_HEADER_LEN, NpyHeader};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Dtype::parse_user(text);
        if let Ok(dtype) = Dtype::from_descr_literal(text) {
            // The canonical spelling is a fixed point.
            assert_eq!(Dtype::from_descr_literal(&dtype.descr_literal()), Ok(dtype.clone()));
            assert_eq!(Dtype::parse_user(&dtype.descr_literal()), Ok(dtype));
        }
    }

    let Ok((header, offset)) = NpyHeader::parse(data) else {
        return;
    };
    assert!(offset <= data.len());
    let _ = header.len();
    let _ = header.nbytes();

    // emit_padded may refuse (text longer than 4096 bytes, or not ASCII),
    // but what it emits must parse back to the same header.
    if let Ok(bytes) = header.emit_padded(4096) {
        assert_eq!(bytes.len(), 4096);
        assert_eq!(NpyHeader::parse(&bytes), Ok((header.clone(), 4096)));
    }

    let bytes = header.emit_standard();
    assert_eq!(bytes.len() % 64, 0);
    // Canonical escapes can make the text longer than the input; only a
    // header within the parse limit must round-trip.
    if bytes.len() <= MAX_HEADER_LEN {
        assert_eq!(NpyHeader::parse(&bytes), Ok((header, bytes.len())));
    }
});
