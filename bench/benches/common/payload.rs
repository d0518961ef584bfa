//! The payload discipline every case follows: the sender writes every word of
//! a frame, the receiver reads every word and checks a checksum.

/// Write every word: `seq + i`. Cheap on purpose (memory-bound, not
/// compute-bound) and never inlined, so every transport runs the same
/// machine code. Word 0 holds `seq`, so a receiver learns which frame it got.
#[inline(never)]
pub fn fill(words: &mut [u64], seq: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = seq.wrapping_add(i as u64);
    }
}

/// Read every word and compare the sum with its closed form (a frame mixing
/// two sequence numbers fails).
#[inline(never)]
pub fn checksum_ok(words: &[u64], seq: u64) -> bool {
    let n = words.len() as u64;
    let sum = words.iter().fold(0u64, |a, &w| a.wrapping_add(w));
    sum == seq
        .wrapping_mul(n)
        .wrapping_add(n.wrapping_mul(n.wrapping_sub(1)) / 2)
}

/// Read a received frame: its sequence number (word 0) and whether every
/// word matches it.
pub fn check(words: &[u64]) -> (u64, bool) {
    let seq = words.first().copied().unwrap_or(0);
    (seq, checksum_ok(words, seq))
}
