//! Worker-pool benchmark: a memory-bound transform (`out = 2 * in + 1` on
//! f32) by N worker *processes* claiming chunks from a sharray queue, beside
//! the same transform by N *threads* of one process over the same mapped
//! arrays and the same chunking, printed side by side with the ratio; plus
//! the latency of an uncontended claim + complete.
//!
//! ```text
//! cargo bench -p sharray-bench --bench pool -- [--mib 256] [--workers 2] [--rounds 5]
//!     [--chunk-kib 1024] [--claims 1000000] [--json]
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a quick
//! smoke run (8 MiB, 2 rounds) unless sizes are given.
//!
//! Environment: `SHARRAY_BENCH_MIB`, `SHARRAY_BENCH_WORKERS`,
//! `SHARRAY_BENCH_ROUNDS` give defaults for the flags (1 GiB:
//! `SHARRAY_BENCH_MIB=1024`). `--json` adds one machine-readable line
//! (`{"bench":"pool",...}`) for harnesses (`benches/compare.rs` runs the same job
//! through `benches/common/pool.rs`).
//!
//! Method: the arrays live in /dev/shm. Rounds alternate threads and
//! processes so both see the same machine load; before each round the output
//! is poisoned with NaN and after it verified (untimed), so every round must
//! really write all of it. The worker processes start
//! once and stay for every round (each round is a fresh queue file whose
//! barrier includes the parent, which starts the clock when everybody has
//! arrived). Round 1 is a one-shot job: the workers fault pages in as they
//! touch them. Before round 2 (untimed) they map both arrays in bulk
//! (`prefault_read` / `prefault_write`), so later rounds show the steady
//! state of a persistent pool. Threads share the parent's mapping (the parent
//! wrote the input; the first thread round faults in the output).

mod common;

use common::pool::{self, Job};

#[derive(Clone, Debug)]
struct Opts {
    mib: usize,
    workers: usize,
    rounds: usize,
    chunk_kib: usize,
    claims: usize,
    json: bool,
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn parse() -> Opts {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it: then only a quick smoke run with tiny sizes.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let mut o = Opts {
        mib: env_num("SHARRAY_BENCH_MIB", 256),
        workers: env_num("SHARRAY_BENCH_WORKERS", 2),
        rounds: env_num("SHARRAY_BENCH_ROUNDS", 5),
        chunk_kib: 1024,
        claims: 1_000_000,
        json: false,
    };
    if smoke && std::env::var("SHARRAY_BENCH_MIB").is_err() {
        (o.mib, o.rounds, o.claims) = (8, 2, 10_000);
    }
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut num = || -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .unwrap_or_else(|| panic!("{a} needs a positive number"))
        };
        match a.as_str() {
            "--mib" => o.mib = num(),
            "--workers" => o.workers = num(),
            "--rounds" => o.rounds = num(),
            "--chunk-kib" => o.chunk_kib = num(),
            "--claims" => o.claims = num(),
            "--json" => o.json = true,
            "--bench" => {} // passed by `cargo bench`
            _ => {}
        }
    }
    o
}

fn main() {
    if pool::is_worker() {
        pool::worker_main();
        return;
    }
    let o = parse();
    let job = Job {
        mib: o.mib,
        workers: o.workers,
        rounds: o.rounds,
        chunk_kib: o.chunk_kib,
        claims: o.claims,
    };
    let r = pool::run(&job, true);
    println!(
        "GB/s counts bytes read + written. 1 thread: {:.2} GB/s",
        r.one_thread_gbps
    );
    if o.rounds > 1 {
        println!(
            "warm median: threads {:.2} GB/s, processes {:.2} GB/s, processes/threads = {:.3} (target >= 0.9)",
            r.threads_gbps_warm, r.procs_gbps_warm, r.ratio_warm
        );
    }
    println!(
        "claim + complete: {:.0} ns uncontended (one worker, {} tasks); {:.0} ns per claim with {} threads claiming at once",
        r.claim_ns, o.claims, r.claim_contended_ns, o.workers
    );
    if o.json {
        println!("{}", r.json(&job));
    }
}
