//! Fuzz the growable array's validators: `GrowConfig::decode`, `validate`,
//! `replay_copy` and `validate_state` must never panic on any header and
//! control block bytes, and what `decode` accepts must be consistent (the
//! control block is the last 64 KiB, the reserved rows fit before it, the
//! count field lies inside the header).
//!
//! Input layout: 4096 bytes of `.npy` header, then the control block bytes
//! (the file length is taken as the candidate offset + 65536). Run with
//! `cargo +nightly fuzz run grow_section`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sharray::format::control;
use sharray::format::grow::{self, GROW_CTRL_LEN, GrowConfig};
use sharray::format::npy::NpyHeader;
use sharray::format::sink::AllProblems;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4096 + 16 {
        return;
    }
    let (head, ctrl) = data.split_at(4096);
    let Ok((header, _)) = NpyHeader::parse(head) else {
        return;
    };
    let Some(nbytes) = le_u64(ctrl, 32) else {
        return;
    };
    let Some(ctrl_off) = control::ctrl_offset(nbytes) else {
        return;
    };
    let file_len = ctrl_off.saturating_add(GROW_CTRL_LEN);
    let mut all = AllProblems::default();
    if let Some(cfg) = grow::validate(ctrl, ctrl_off, &header, head, file_len, &mut all) {
        let mut sec = ctrl.get(256..).unwrap_or(&[]).to_vec();
        let mut count = head[(cfg.count_field as usize)..(cfg.count_field as usize + 8)].to_vec();
        grow::replay_copy(&mut sec, &mut count, &cfg);
        let _ = grow::validate_state(&sec, &cfg, 0, &mut all);
    }
    if let Ok(cfg) = GrowConfig::decode(ctrl, ctrl_off, &header, head, file_len) {
        assert_eq!(cfg.ctrl_off + GROW_CTRL_LEN, file_len);
        assert!(control::DATA_OFFSET + cfg.capacity * cfg.row_bytes <= cfg.ctrl_off);
        assert!(cfg.count_field + 8 < control::DATA_OFFSET);
    }
});

fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}
