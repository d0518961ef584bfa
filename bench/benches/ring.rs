//! Ring benchmarks across two processes (pinned to CPUs 0 and 1), each next
//! to a baseline measured in the same run:
//!
//! - one-way latency of a 64-byte frame (ping-pong over two rings, /2; each
//!   side writes and reads every byte of the frame), p50
//!   and p99, spinning and parked, beside a busy-wait shared-memory ping-pong
//!   and a bare shared-futex wait/wake ping-pong;
//! - throughput of 8 MiB frames, written in full by the producer and read in
//!   full (checksummed) by the consumer, beside a minimal hand-written
//!   shared-memory ring (mmap'd file, K slots, head/tail atomics,
//!   spin + futex) with the same slot count.
//!
//! `cargo bench -p sharray-bench --bench ring` (about 30 s). `SHARRAY_BENCH_FULL=1` runs 5x
//! more samples and frames.

mod common;

use std::time::Duration;

use common::link::{self, Case, Kind};
use common::{Budget, Table, floors, ns};

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

fn main() {
    if let Some((role, args)) = common::child_role() {
        assert!(common::run_shared_role(&role, &args), "unknown role {role}");
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
    let budget = |n: usize| Budget {
        warmup: n / 10 + 100,
        samples: n,
        min_samples: 100,
        time: MAX_CASE_TIME,
    };
    let (spin, park) = (
        budget((20_000 * s as usize).max(200)),
        budget((3_000 * s as usize).max(200)),
    );
    let ring = |spin: Duration| Case {
        kind: Kind::Ring,
        words: SMALL_WORDS,
        slots: 4,
        spin,
    };
    let busy = floors::bare_latency(dir, false, spin).stats();
    let ring_spin = link::latency(dir, &ring(SPIN_FOREVER), spin).stats();
    let futex = floors::bare_latency(dir, true, park).stats();
    let ring_park = link::latency(dir, &ring(Duration::ZERO), park).stats();
    let (busy, ring_spin, futex, ring_park) = (
        (busy.1, busy.2),
        (ring_spin.1, ring_spin.2),
        (futex.1, futex.2),
        (ring_park.1, ring_park.2),
    );
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
            let case = |kind| Case {
                kind,
                words: BIG_WORDS,
                slots,
                spin: Duration::from_micros(20),
            };
            if std::env::var("SHARRAY_BENCH_SKIP").as_deref() != Ok("mini") {
                minis.push(link::throughput(dir, &case(Kind::Mini), frames));
            }
            if std::env::var("SHARRAY_BENCH_SKIP").as_deref() != Ok("ring") {
                rings.push(link::throughput(dir, &case(Kind::Ring), frames));
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
