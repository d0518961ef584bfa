//! Fuzz the queue section decoders: `queue::QueueHeader::decode` and
//! `queue::validate_state` must never panic on any bytes; whatever decodes
//! survives encode -> decode unchanged; the two sinks agree on the first
//! problem.
//!
//! Input layout: 1 byte mode, then bytes. Bit 0 of the mode: 2 bytes
//! section length, the section bytes, then the chunk table bytes, decoded
//! raw (the record count is the one the section says, so valid headers can
//! be reached). Otherwise the next 3 bytes pick a valid header (chunks,
//! max_workers, barrier parties), and the rest are sparse word writes into
//! the section's dynamic part and the chunk table.
//! Run with `cargo +nightly fuzz run queue_section`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sharray::format::le;
use sharray::format::queue::{self, QueueHeader};
use sharray::format::sink::{AllProblems, FirstProblem};

fn validate(h: &QueueHeader, sec: &[u8], records: &[u8]) {
    let mut all = AllProblems::default();
    let _ = queue::validate_state(h, sec, 65536 + 256, records, 4096, &mut all);
    let mut first = FirstProblem::default();
    let _ = queue::validate_state(h, sec, 65536 + 256, records, 4096, &mut first);
    assert_eq!(first.0.as_ref(), all.0.first());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 != 0 {
        if rest.len() < 2 {
            return;
        }
        let split = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (sec, records) = rest[2..].split_at(split);
        let n = le::u64_or0(sec, queue::off::CHUNKS);
        for records_n in [n, n.wrapping_add(1)] {
            let Ok(h) = QueueHeader::decode(sec, records_n) else {
                continue;
            };
            assert_eq!(h.chunks, records_n);
            assert!(queue::section_len(h.max_workers) <= sec.len() as u64);
            let mut again = vec![0u8; sec.len()];
            h.encode(&mut again);
            assert_eq!(QueueHeader::decode(&again, records_n), Ok(h));
            for i in [0, h.chunks / 2, h.chunks.saturating_sub(1)] {
                if i < h.chunks {
                    let r = h.chunk_range(i);
                    assert!(r.start <= r.end && r.end <= h.rows);
                }
            }
            validate(&h, sec, records);
        }
        return;
    }
    if rest.len() < 3 {
        return;
    }
    let workers = 1 + u32::from(rest[1] % 8);
    let h = QueueHeader::tasks(
        u64::from(rest[0] % 16),
        workers,
        u32::from(rest[2]) % (workers + 1),
    )
    .unwrap();
    let mut sec = vec![0u8; queue::section_len(workers) as usize];
    h.encode(&mut sec);
    let mut records = vec![0u8; (h.chunks * queue::RECORD_LEN) as usize];
    let total = (sec.len() + records.len()) as u64;
    for m in rest[3..].chunks_exact(4) {
        let off = u64::from(u16::from_le_bytes([m[0], m[1]])) % total / 4 * 4;
        let v = u32::from(m[2]) | if m[3] & 1 != 0 { 0xffff_ff00 } else { 0 };
        if off < 128 {
            continue; // the header is covered by the raw mode
        }
        match off.checked_sub(sec.len() as u64) {
            Some(r) => le::put_u32(&mut records, r, v),
            None => le::put_u32(&mut sec, off, v),
        }
    }
    assert_eq!(QueueHeader::decode(&sec, h.chunks), Ok(h));
    validate(&h, &sec, &records);
});
