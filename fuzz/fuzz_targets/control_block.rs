//! Fuzz the control block validator: `ControlHeader::decode` must never
//! panic on any bytes, data length or file length, and whatever it accepts
//! must be internally consistent (section inside the block, file length
//! exactly `CTRL_OFF + ctrl_len`) and survive encode -> decode unchanged.
//!
//! Input layout: 8 bytes data_len, 8 bytes file_len (little-endian), then the
//! control block bytes. Run with `cargo +nightly fuzz run control_block`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sharray::format::control::{self, ControlHeader, DATA_OFFSET, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let data_len = u64::from_le_bytes(data[0..8].try_into().unwrap());
    let file_len = u64::from_le_bytes(data[8..16].try_into().unwrap());
    let bytes = &data[16..];
    // Also try the file length the header implies, so valid blocks are reached.
    let implied = control::ctrl_offset(data_len).and_then(|o| {
        bytes
            .get(16..24)
            .map(|b| o.saturating_add(u64::from_le_bytes(b.try_into().unwrap())))
    });
    for file_len in [Some(file_len), implied].into_iter().flatten() {
        let Ok(h) = ControlHeader::decode(bytes, DATA_OFFSET, data_len, file_len) else {
            continue;
        };
        assert_eq!(h.data_len, data_len);
        assert_eq!(h.file_len(), Some(file_len));
        assert!(h.ctrl_len >= HEADER_LEN && h.ctrl_len % 4096 == 0);
        if h.section_len > 0 {
            assert!(h.section_offset >= HEADER_LEN);
            assert!(h.section_offset + h.section_len <= h.ctrl_len);
        }
        let mut again = bytes[..HEADER_LEN as usize].to_vec();
        h.encode(&mut again);
        again[control::off::STATE..control::off::STATE + 4]
            .copy_from_slice(&control::STATE_READY.to_le_bytes());
        assert_eq!(ControlHeader::decode(&again, DATA_OFFSET, data_len, file_len), Ok(h));
    }
});
