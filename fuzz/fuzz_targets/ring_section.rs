//! Fuzz the ring section decoders: `ring::Config::decode` and
//! `ring::validate_state` must never panic on any bytes; whatever decodes
//! survives encode -> decode unchanged.
//!
//! Input layout: 1 byte flags (bit 0: C order), then the section bytes. The
//! array shape is taken as `[K]` with `nbytes = K * slot_bytes` as the
//! section says, so valid configurations are reached.
//! Run with `cargo +nightly fuzz run ring_section`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sharray::format::le;
use sharray::format::ring::{self, Config};
use sharray::format::sink::{AllProblems, FirstProblem};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, sec)) = data.split_first() else {
        return;
    };
    let fortran = mode & 1 != 0;
    let slots = le::u32_or0(sec, ring::cfg::SLOTS) as usize;
    let slot_bytes = le::u64_or0(sec, ring::cfg::SLOT_BYTES);
    let nbytes = slot_bytes.wrapping_mul(slots as u64);
    for shape in [vec![slots], vec![slots.wrapping_add(1)], vec![]] {
        let Ok(cfg) = Config::decode(sec, &shape, fortran, nbytes) else {
            continue;
        };
        assert!(!fortran && cfg.slots() as usize == slots);
        assert!(cfg.geo.used_len <= sec.len() as u64);
        let mut again = sec.to_vec();
        again[..ring::LINE as usize].fill(0);
        cfg.encode(&mut again);
        assert_eq!(Config::decode(&again, &shape, false, nbytes), Ok(cfg));
        let mut all = AllProblems::default();
        let _ = ring::validate_state(sec, &cfg, 65536 + 256, &mut all);
        let mut first = FirstProblem::default();
        let _ = ring::validate_state(sec, &cfg, 65536 + 256, &mut first);
        assert_eq!(first.0.as_ref(), all.0.first());
    }
});
