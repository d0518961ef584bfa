//! Fuzz the queue section decoders: `queue::QueueHeader::decode` and
//! `queue::validate_state` must never panic on any bytes; whatever decodes
//! survives encode -> decode unchanged.
//!
//! Input layout: 2 bytes section length (little-endian), then the section
//! bytes, then the chunk table bytes. The record count is the one the
//! section's header says, so valid headers are reached.
//! Run with `cargo +nightly fuzz run queue_section`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sharray::format::le;
use sharray::format::queue::{self, QueueHeader};
use sharray::format::sink::{AllProblems, FirstProblem};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (usize::from(u16::from_le_bytes([data[0], data[1]]))).min(data.len() - 2);
    let (sec, records) = data[2..].split_at(split);
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
        let mut all = AllProblems::default();
        let _ = queue::validate_state(&h, sec, 65536 + 256, records, 4096, &mut all);
        let mut first = FirstProblem::default();
        let _ = queue::validate_state(&h, sec, 65536 + 256, records, 4096, &mut first);
        assert_eq!(first.0.as_ref(), all.0.first());
    }
});
