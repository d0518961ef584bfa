//! The two floors of a cross-process hand-off, as payload-free ping-pongs on
//! two u32 words of a shared file: busy-waiting on a cache line (the
//! cache-coherence floor) and a bare shared-futex wait/wake (the wake-up
//! floor for anything that parks).

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::{Samples, spawn};

/// Two u32 words on separate lines of a shared file: ping at 0, pong at 128.
struct Words {
    map: memmap2::MmapRaw,
}

impl Words {
    fn create(path: &std::path::Path) {
        std::fs::write(path, vec![0u8; 4096]).unwrap();
    }

    fn open(path: &str) -> Words {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        Words {
            map: memmap2::MmapRaw::map_raw(&f).unwrap(),
        }
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: 4096-byte shared mapping, aligned offsets < 4096; only
        // accessed atomically.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicU32) }
    }
}

/// Wait until `w == want` (or the stop value), spinning (`park == false`) or
/// parking on the futex.
fn await_word(w: &AtomicU32, want: u32, park: bool) {
    loop {
        let v = w.load(Ordering::Acquire);
        if v == want || v == u32::MAX {
            return;
        }
        if park {
            sharray::sys::futex_wait(w, v, None);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Child role `bare_pong`: answer every ping until the stop value.
pub fn bare_pong(a: &[String]) {
    super::pin(1);
    let park = a[1] == "1";
    let w = Words::open(&a[0]);
    let (ping, pong) = (w.word(0), w.word(128));
    for i in 1.. {
        await_word(ping, i, park);
        if ping.load(Ordering::Acquire) == u32::MAX {
            return;
        }
        pong.store(i, Ordering::Release);
        if park {
            sharray::sys::futex_wake(pong, 1);
        }
    }
}

/// One-way latency samples (round trip / 2) of a bare ping-pong.
pub fn bare_latency(dir: &std::path::Path, park: bool, budget: super::Budget) -> Samples {
    let path = dir.join(format!("words{park}"));
    Words::create(&path);
    let p = path.to_str().unwrap().to_string();
    let child = spawn("bare_pong", &[&p, if park { "1" } else { "0" }]);
    let w = Words::open(&p);
    let (ping, pong) = (w.word(0), w.word(128));
    let s = budget.sample(|i| {
        let i = i as u32 + 1;
        let t0 = Instant::now();
        ping.store(i, Ordering::Release);
        if park {
            sharray::sys::futex_wake(ping, 1);
        }
        await_word(pong, i, park);
        t0.elapsed().as_nanos() as u64 / 2
    });
    ping.store(u32::MAX, Ordering::Release);
    sharray::sys::futex_wake(ping, 1);
    super::finish(child);
    let _ = std::fs::remove_file(&path);
    s
}
