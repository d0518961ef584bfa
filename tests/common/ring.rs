//! Ring test helpers: self-checking frame payloads, and this process's CPU
//! time (to show that a blocked consumer sleeps).

use std::time::Duration;

/// Tag of the frame that tells test consumers to stop.
pub const STOP: u64 = u64::MAX;

fn mix(tag: u64, i: u64) -> u64 {
    let mut x = tag ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

/// Fill a frame for `tag`: words derived from the tag, then a checksum word
/// written last. A frame cut short anywhere fails [`check`].
pub fn fill(words: &mut [u64], tag: u64) {
    let n = words.len();
    let mut sum = 0u64;
    for (i, w) in words[..n - 1].iter_mut().enumerate() {
        *w = mix(tag, i as u64);
        sum = sum.wrapping_add(*w);
    }
    // Keep the checksum store after the payload stores.
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    words[n - 1] = sum ^ tag;
}

/// Does the frame hold exactly what [`fill`] wrote for `tag`?
pub fn check(words: &[u64], tag: u64) -> bool {
    let n = words.len();
    let mut sum = 0u64;
    for (i, &w) in words[..n - 1].iter().enumerate() {
        if w != mix(tag, i as u64) {
            return false;
        }
        sum = sum.wrapping_add(w);
    }
    words[n - 1] == sum ^ tag
}

/// CPU time (user + system) of this process, from /proc/self/stat.
pub fn cpu_time() -> Duration {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are utime and stime; `rest` starts at field 3.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY-free: sysconf through std is not available; CLK_TCK is 100 on Linux.
    Duration::from_millis(ticks * 10)
}
