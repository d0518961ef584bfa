//! Fuzz the ring section decoders: `ring::Config::decode` and
//! `ring::validate_state` must never panic on any bytes; whatever decodes
//! survives encode -> decode unchanged; the two sinks agree on the first
//! problem.
//!
//! Input layout: 1 byte mode, then bytes. Bit 0 of the mode: decode the
//! bytes as a raw section (shape `[K]`, `nbytes = K * slot_bytes` as the
//! section says, so valid configurations can be reached). Otherwise the
//! next 3 bytes pick a valid configuration (K, P, flags), which is encoded,
//! and the remaining bytes fill the dynamic part of the section (so the
//! validator sees valid geometry with arbitrary state words).
//! Run with `cargo +nightly fuzz run ring_section`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sharray::format::le;
use sharray::format::ring::{self, Config, Geometry};
use sharray::format::sink::{AllProblems, FirstProblem};

fn validate(sec: &[u8], cfg: &Config) {
    let mut all = AllProblems::default();
    let _ = ring::validate_state(sec, cfg, 65536 + 256, &mut all);
    let mut first = FirstProblem::default();
    let _ = ring::validate_state(sec, cfg, 65536 + 256, &mut first);
    assert_eq!(first.0.as_ref(), all.0.first());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 != 0 {
        let sec = rest;
        let slots = le::u32_or0(sec, ring::cfg::SLOTS) as usize;
        let slot_bytes = le::u64_or0(sec, ring::cfg::SLOT_BYTES);
        let nbytes = slot_bytes.wrapping_mul(slots as u64);
        for shape in [vec![slots], vec![slots.wrapping_add(1)], vec![]] {
            let Ok(cfg) = Config::decode(sec, &shape, mode & 2 != 0, nbytes) else {
                continue;
            };
            assert!(mode & 2 == 0 && cfg.slots() as usize == slots);
            assert!(cfg.geo.used_len <= sec.len() as u64);
            let mut again = sec.to_vec();
            again[..ring::LINE as usize].fill(0);
            cfg.encode(&mut again);
            assert_eq!(Config::decode(&again, &shape, false, nbytes), Ok(cfg));
            validate(sec, &cfg);
        }
        return;
    }
    if rest.len() < 3 {
        return;
    }
    let slots = 1 + u32::from(rest[0] % 8);
    let parts = 1 + u32::from(rest[1] % 64);
    let cfg = Config {
        flags: u32::from(rest[2] % 4),
        slot_bytes: 8,
        geo: Geometry::new(slots, parts),
    };
    let mut sec = vec![0u8; cfg.geo.used_len as usize];
    cfg.encode(&mut sec);
    // Sparse words: (u16 offset, value byte): small values reach the
    // interesting states (codes, owners, bits) far more often than random
    // u64s.
    for m in rest[3..].chunks_exact(3) {
        let off = u64::from(u16::from_le_bytes([m[0], m[1]])) % cfg.geo.used_len / 8 * 8;
        if off >= ring::LINE {
            let v = if m[2] & 0x80 != 0 {
                u64::MAX - u64::from(m[2] & 0x7f)
            } else {
                u64::from(m[2])
            };
            le::put_u64(&mut sec, off, v);
        }
    }
    let nbytes = 8 * u64::from(slots);
    assert_eq!(
        Config::decode(&sec, &[slots as usize], false, nbytes),
        Ok(cfg)
    );
    validate(&sec, &cfg);
});
