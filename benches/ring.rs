//! Ring benchmarks across two processes (pinned to CPUs 0 and 1), each next
//! to a baseline measured in the same run:
//!
//! - one-way latency of a 64-byte frame (ping-pong over two rings, /2), p50
//!   and p99, spinning and parked, beside a busy-wait shared-memory ping-pong
//!   and a bare shared-futex wait/wake ping-pong;
//! - throughput of 8 MiB frames, written in full by the producer and read in
//!   full (checksummed) by the consumer, beside a minimal hand-written
//!   shared-memory ring (mmap'd file, K slots, head/tail atomics,
//!   spin + futex) with the same slot count.
//!
//! `cargo bench --bench ring` (about 30 s). `SHARRAY_BENCH_FULL=1` runs 5x
//! more samples and frames.

#![allow(unsafe_code)]

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Table, gbps, ns, percentile};
use sharray::{Dtype, Ring};

const STOP: u64 = u64::MAX;
const SMALL_WORDS: usize = 8; // 64 bytes
const BIG_WORDS: usize = 1 << 20; // 8 MiB
const SPIN_FOREVER: Duration = Duration::from_secs(3600);
/// A case stops sampling after this long (a loaded machine makes spinning
/// hand-offs wait for the scheduler; do not let that run for minutes).
const MAX_CASE_TIME: Duration = Duration::from_secs(4);

/// Work multiplier: 5 with `SHARRAY_BENCH_FULL=1`; 0 (a smoke run with tiny
/// sizes) when not started by `cargo bench` (`cargo test --all-targets` runs
/// this binary without `--bench`).
fn scale() -> u64 {
    if !std::env::args().any(|a| a == "--bench") {
        0
    } else if std::env::var("SHARRAY_BENCH_FULL").is_ok_and(|v| v == "1") {
        5
    } else {
        1
    }
}

// ---------------------------------------------------------------- payload

/// Write every word: `seq + i`. Cheap on purpose (memory-bound, not
/// compute-bound) and never inlined, so both rings run the same machine code.
#[inline(never)]
fn fill(words: &mut [u64], seq: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = seq.wrapping_add(i as u64);
    }
}

/// Read every word and compare the sum with its closed form (a frame mixing
/// two sequence numbers fails).
#[inline(never)]
fn checksum_ok(words: &[u64], seq: u64) -> bool {
    let n = words.len() as u64;
    let sum = words.iter().fold(0u64, |a, &w| a.wrapping_add(w));
    sum == seq.wrapping_mul(n).wrapping_add(n * (n - 1) / 2)
}

// ------------------------------------------------------- latency: rings

fn ring_pong(ping: &str, pong: &str, spin_ns: u64) {
    common::pin(1);
    let spin = Duration::from_nanos(spin_ns);
    let (ping, pong) = (Ring::open(ping).unwrap(), Ring::open(pong).unwrap());
    let mut c = ping.consumer().unwrap();
    let mut p = pong.producer().unwrap();
    c.set_spin(spin);
    p.set_spin(spin);
    println!("ready");
    loop {
        let f = c.recv().unwrap();
        let tag = f.tag();
        let mut l = p.loan().unwrap();
        l.bytes_mut().copy_from_slice(f.bytes());
        l.set_tag(tag);
        l.commit().unwrap();
        drop(f);
        if tag == STOP {
            break;
        }
    }
}

fn ring_latency(dir: &std::path::Path, spin: Duration, n: usize) -> (u64, u64) {
    let mk = |name: &str| {
        let p = dir.join(name);
        Ring::builder(Dtype::parse_user("uint64").unwrap(), &[SMALL_WORDS])
            .slots(4)
            .create(&p)
            .unwrap();
        p.to_str().unwrap().to_string()
    };
    let (ping_path, pong_path) = (
        mk(&format!("ping{}", spin.as_nanos())),
        mk(&format!("pong{}", spin.as_nanos())),
    );
    let spin_ns = spin.as_nanos().to_string();
    let mut child = common::spawn("ring_pong", &[&ping_path, &pong_path, &spin_ns]);
    let ping = Ring::open(&ping_path).unwrap();
    let pong = Ring::open(&pong_path).unwrap();
    let mut p = ping.producer().unwrap();
    let mut c = pong.consumer().unwrap();
    p.set_spin(spin);
    c.set_spin(spin);
    assert_eq!(common::read_line(&mut child), "ready");
    let mut samples = Vec::with_capacity(n);
    let warm = n / 10 + 100;
    let budget = Instant::now() + MAX_CASE_TIME;
    for i in 0..(warm + n) as u64 {
        if Instant::now() > budget && samples.len() >= 100 {
            break;
        }
        let t0 = Instant::now();
        let mut l = p.loan().unwrap();
        l.as_mut_slice::<u64>().unwrap()[0] = i;
        l.set_tag(i);
        l.commit().unwrap();
        let f = c.recv().unwrap();
        let rt = t0.elapsed();
        assert_eq!(f.tag(), i);
        drop(f);
        if i >= warm as u64 {
            samples.push(rt.as_nanos() as u64 / 2);
        }
    }
    let mut l = p.loan().unwrap();
    l.set_tag(STOP);
    l.commit().unwrap();
    drop(c.recv().unwrap());
    common::finish(child);
    (
        percentile(&mut samples, 50.0),
        percentile(&mut samples, 99.0),
    )
}

// ------------------------------------------- latency: bare baselines

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

/// Wait until `w == want`, spinning (`park == false`) or parking on the futex.
fn await_word(w: &AtomicU32, want: u32, park: bool) {
    loop {
        let v = w.load(Ordering::Acquire);
        if v == want {
            return;
        }
        if park {
            sharray::sys::futex_wait(w, v, None);
        } else {
            std::hint::spin_loop();
        }
    }
}

fn await_word_or_stop(w: &AtomicU32, want: u32, park: bool) {
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

fn bare_pong(path: &str, park: bool, n: u32) {
    common::pin(1);
    let w = Words::open(path);
    let (ping, pong) = (w.word(0), w.word(128));
    for i in 1..=n {
        await_word_or_stop(ping, i, park);
        if ping.load(Ordering::Acquire) == u32::MAX {
            return;
        }
        pong.store(i, Ordering::Release);
        if park {
            sharray::sys::futex_wake(pong, 1);
        }
    }
}

fn bare_latency(dir: &std::path::Path, park: bool, n: usize) -> (u64, u64) {
    let path = dir.join(format!("words{park}"));
    Words::create(&path);
    let p = path.to_str().unwrap().to_string();
    let warm = n / 10 + 100;
    let total = (warm + n) as u32;
    let child = common::spawn(
        "bare_pong",
        &[&p, if park { "1" } else { "0" }, &total.to_string()],
    );
    let w = Words::open(&p);
    let (ping, pong) = (w.word(0), w.word(128));
    let mut samples = Vec::with_capacity(n);
    let budget = Instant::now() + MAX_CASE_TIME;
    for i in 1..=total {
        if Instant::now() > budget && samples.len() >= 100 {
            break;
        }
        let t0 = Instant::now();
        ping.store(i, Ordering::Release);
        if park {
            sharray::sys::futex_wake(ping, 1);
        }
        await_word(pong, i, park);
        if i as usize > warm {
            samples.push(t0.elapsed().as_nanos() as u64 / 2);
        }
    }
    ping.store(u32::MAX, Ordering::Release);
    sharray::sys::futex_wake(ping, 1);
    common::finish(child);
    (
        percentile(&mut samples, 50.0),
        percentile(&mut samples, 99.0),
    )
}

// ---------------------------------------------- throughput: sharray ring

fn ring_sink(path: &str, n: u64) {
    common::pin(1);
    let ring = Ring::open(path).unwrap();
    let c = ring.consumer().unwrap();
    println!("ready");
    let mut t0 = None;
    let mut bad = 0;
    for _ in 0..n {
        let f = c.recv().unwrap();
        t0.get_or_insert_with(Instant::now);
        if !checksum_ok(f.as_slice::<u64>().unwrap(), f.tag()) {
            bad += 1;
        }
    }
    let d = t0.unwrap().elapsed();
    println!("{} {}", d.as_nanos(), bad);
}

fn ring_throughput(dir: &std::path::Path, slots: u32, n: u64) -> f64 {
    let path = dir.join(format!("big{slots}"));
    let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[BIG_WORDS])
        .slots(slots)
        .create(&path)
        .unwrap();
    let p = path.to_str().unwrap().to_string();
    let mut child = common::spawn("ring_sink", &[&p, &n.to_string()]);
    assert_eq!(common::read_line(&mut child), "ready");
    let prod = ring.producer().unwrap();
    for seq in 0..n {
        let mut l = prod.loan().unwrap();
        fill(l.as_mut_slice::<u64>().unwrap(), seq);
        l.set_tag(seq);
        l.commit().unwrap();
    }
    let line = common::read_line(&mut child);
    common::finish(child);
    drop(prod);
    std::fs::remove_file(&path).unwrap();
    parse_rate(&line, n)
}

fn parse_rate(line: &str, n: u64) -> f64 {
    let mut it = line.split_whitespace();
    let nanos: u64 = it.next().unwrap().parse().unwrap();
    let bad: u64 = it.next().unwrap().parse().unwrap();
    assert_eq!(bad, 0, "checksum failures");
    // The clock starts at the first frame: n - 1 frames in `nanos`.
    gbps(
        (n - 1) * (BIG_WORDS as u64 * 8),
        Duration::from_nanos(nanos),
    )
}

// ----------------------------------------- throughput: hand-written ring

/// A minimal shared-memory ring: line 0 `head` (u64) + its futex word, line 1
/// `tail` + its futex word, waiter flags; slots from offset 4096.
struct Mini {
    map: memmap2::MmapRaw,
    slots: u64,
}

const HEAD: usize = 0;
const HEAD_SEQ: usize = 8;
const HEAD_WAIT: usize = 12;
const TAIL: usize = 128;
const TAIL_SEQ: usize = 136;
const TAIL_WAIT: usize = 140;
const MINI_DATA: usize = 4096;

impl Mini {
    fn create(path: &std::path::Path, slots: u64) {
        let f = std::fs::File::create(path).unwrap();
        f.set_len(MINI_DATA as u64 + slots * BIG_WORDS as u64 * 8)
            .unwrap();
    }

    fn open(path: &str, slots: u64) -> Mini {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let map = memmap2::MmapRaw::map_raw(&f).unwrap();
        // SAFETY: inside our mapping; populate never changes contents.
        let _ = unsafe { sharray::sys::populate_write(map.as_mut_ptr(), map.len()) };
        Mini { map, slots }
    }

    fn u64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: aligned, inside the mapping, accessed atomically.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicU64) }
    }

    fn u32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicU32) }
    }

    #[allow(clippy::mut_from_ref)]
    fn slot(&self, k: u64) -> &mut [u64] {
        let len = BIG_WORDS;
        // SAFETY: the head/tail protocol gives one side exclusive use of a slot.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.map
                    .as_mut_ptr()
                    .add(MINI_DATA + (k as usize) * len * 8) as *mut u64,
                len,
            )
        }
    }

    /// Spin ~20 us, then park on `seq` until `ready()`.
    fn wait(&self, seq: usize, waiting: usize, ready: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !ready() {
            if t0.elapsed() < Duration::from_micros(20) {
                std::hint::spin_loop();
                continue;
            }
            let s = self.u32(seq).load(Ordering::SeqCst);
            self.u32(waiting).store(1, Ordering::SeqCst);
            if !ready() {
                sharray::sys::futex_wait(self.u32(seq), s, Some(Duration::from_millis(50)));
            }
            self.u32(waiting).store(0, Ordering::SeqCst);
        }
    }

    fn bump(&self, word: usize, seq: usize, waiting: usize, v: u64) {
        self.u64(word).store(v, Ordering::Release);
        self.u32(seq).fetch_add(1, Ordering::SeqCst);
        if self.u32(waiting).load(Ordering::SeqCst) != 0 {
            sharray::sys::futex_wake(self.u32(seq), 1);
        }
    }
}

fn mini_sink(path: &str, slots: u64, n: u64) {
    common::pin(1);
    let m = Mini::open(path, slots);
    println!("ready");
    let mut t0 = None;
    let mut bad = 0;
    for seq in 0..n {
        m.wait(TAIL_SEQ, TAIL_WAIT, || {
            m.u64(TAIL).load(Ordering::Acquire) > seq
        });
        t0.get_or_insert_with(Instant::now);
        if !checksum_ok(m.slot(seq % m.slots), seq) {
            bad += 1;
        }
        m.bump(HEAD, HEAD_SEQ, HEAD_WAIT, seq + 1);
    }
    let d = t0.unwrap().elapsed();
    println!("{} {}", d.as_nanos(), bad);
}

fn mini_throughput(dir: &std::path::Path, slots: u64, n: u64) -> f64 {
    let path = dir.join(format!("mini{slots}"));
    Mini::create(&path, slots);
    let p = path.to_str().unwrap().to_string();
    let mut child = common::spawn("mini_sink", &[&p, &slots.to_string(), &n.to_string()]);
    let m = Mini::open(&p, slots);
    assert_eq!(common::read_line(&mut child), "ready");
    for seq in 0..n {
        m.wait(HEAD_SEQ, HEAD_WAIT, || {
            seq - m.u64(HEAD).load(Ordering::Acquire) < m.slots
        });
        fill(m.slot(seq % m.slots), seq);
        m.bump(TAIL, TAIL_SEQ, TAIL_WAIT, seq + 1);
    }
    let line = common::read_line(&mut child);
    common::finish(child);
    drop(m);
    std::fs::remove_file(&path).unwrap();
    parse_rate(&line, n)
}

// ------------------------------------------------------------------ main

fn child(role: &str, a: &[String]) {
    match role {
        "ring_pong" => ring_pong(&a[0], &a[1], a[2].parse().unwrap()),
        "bare_pong" => bare_pong(&a[0], a[1] == "1", a[2].parse().unwrap()),
        "ring_sink" => ring_sink(&a[0], a[1].parse().unwrap()),
        "mini_sink" => mini_sink(&a[0], a[1].parse().unwrap(), a[2].parse().unwrap()),
        other => panic!("unknown role {other}"),
    }
}

fn main() {
    if let Some((role, args)) = common::child_role() {
        child(&role, &args);
        return;
    }
    let boosted = common::boost();
    let pinned = common::pin(0);
    let dir = common::bench_dir();
    let s = scale();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# sharray ring benchmark (2 processes{}{}; load average {})\n",
        if pinned {
            ", pinned to CPUs 0 and 1"
        } else {
            ""
        },
        if boosted { ", nice -20" } else { "" },
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "Latency: percentiles of one run per case. Throughput: median of 5 interleaved runs.\n"
    );

    // SHARRAY_BENCH_ONLY=throughput skips the latency table (for profiling).
    let only_tp = std::env::var("SHARRAY_BENCH_ONLY").is_ok_and(|v| v == "throughput");
    if !only_tp {
        latency_table(dir.path(), s);
    }
    throughput_table(dir.path(), s);
}

fn latency_table(dir: &std::path::Path, s: u64) {
    let n_spin = (20_000 * s as usize).max(200);
    let n_park = (3_000 * s as usize).max(200);
    let busy = bare_latency(dir, false, n_spin);
    let ring_spin = ring_latency(dir, SPIN_FOREVER, n_spin);
    let futex = bare_latency(dir, true, n_park);
    let ring_park = ring_latency(dir, Duration::ZERO, n_park);
    let ratio = |a: u64, b: u64| format!("{:.2}x", a as f64 / b.max(1) as f64);
    let mut t = Table::new(&["one-way latency, 64 B", "p50", "p99", "p50 vs baseline"]);
    t.row(vec![
        "busy-wait shared memory (baseline)".into(),
        ns(busy.0),
        ns(busy.1),
        "1.00x".into(),
    ]);
    t.row(vec![
        "sharray ring, spinning".into(),
        ns(ring_spin.0),
        ns(ring_spin.1),
        ratio(ring_spin.0, busy.0),
    ]);
    t.row(vec![
        "shared futex wait/wake (baseline)".into(),
        ns(futex.0),
        ns(futex.1),
        "1.00x".into(),
    ]);
    t.row(vec![
        "sharray ring, parked (spin 0)".into(),
        ns(ring_park.0),
        ns(ring_park.1),
        ratio(ring_park.0, futex.0),
    ]);
    t.print();
}

fn throughput_table(dir: &std::path::Path, s: u64) {
    let frames = (500 * s).max(3);
    let mut t = Table::new(&[
        "8 MiB frames, write + checksum",
        "hand-written ring GB/s",
        "sharray ring GB/s",
        "ratio",
    ]);
    let slot_counts: Vec<u32> = match std::env::var("SHARRAY_BENCH_SLOTS") {
        Ok(v) => v.split(',').filter_map(|s| s.parse().ok()).collect(),
        Err(_) if s == 0 => vec![2],
        Err(_) => vec![2, 4, 8],
    };
    for slots in slot_counts {
        let (mut minis, mut rings) = (Vec::new(), Vec::new());
        for _ in 0..if s == 0 { 1 } else { 5 } {
            if std::env::var("SHARRAY_BENCH_SKIP").as_deref() != Ok("mini") {
                minis.push(mini_throughput(dir, u64::from(slots), frames));
            }
            if std::env::var("SHARRAY_BENCH_SKIP").as_deref() != Ok("ring") {
                rings.push(ring_throughput(dir, slots, frames));
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
        };
        if std::env::var("SHARRAY_BENCH_VERBOSE").is_ok() {
            eprintln!("{slots} slots: hand-written {minis:.1?}, sharray {rings:.1?}");
        }
        let (mini, ring) = (med(&mut minis), med(&mut rings));
        t.row(vec![
            format!("{slots} slots ({} MiB)", slots * 8),
            format!("{mini:.1}"),
            format!("{ring:.1}"),
            format!("{:.2}x", ring / mini),
        ]);
    }
    t.print();
}
