//! Honest cross-process benchmarks of sharray against the alternatives.
//!
//! ```text
//! cargo bench -p sharray-bench --bench compare -- [--quick|--full] [--json FILE] [--plot FILE.svg] [--md FILE]
//!     [--sizes 64,4k,64k,1m,8m,64m] [--runs N] [--slots K]
//!     [--only throughput,latency,python,attach,pool]
//! cargo bench -p sharray-bench --bench compare --features iceoryx2 -- ...   # adds iceoryx2 rows
//! ```
//!
//! Every case runs as two real processes, pinned to CPUs 0 and 1 (nice -20
//! when allowed). The producer writes every byte of every frame; the consumer
//! reads every byte and checks a checksum. Nothing is measured with two
//! threads of one process, and nothing skips the payload.
//!
//! - **Throughput** (GB/s and frames/s) for payloads of 64 B to 64 MiB:
//!   streaming, the consumer times the frames after one warm-up lap of
//!   the ring (`link::warm_up`: lazily mapped pages are faulted in before
//!   the clock starts, for every transport alike). Runs are interleaved
//!   (run 1 of every case, then run 2, ...) so machine load hits every
//!   transport alike; tables show the median of the runs, the JSON and the
//!   details table min, median and p99 (with fewer than 50 runs, p99 is the
//!   best run).
//! - **Latency**: ping-pong / 2, each side writing and reading the whole
//!   frame; min, p50 and p99 of the round trips of one run per case.
//! - **Baselines in the same run**: the same writes and reads in one process
//!   (reused buffer); a minimal hand-written shared-memory ring with the same
//!   slot count (the fair ceiling); busy-wait and bare futex ping-pongs (the
//!   floors); a Unix domain socket; a pipe with 1 MiB buffers; iceoryx2
//!   (feature `iceoryx2`); Python `multiprocessing.Queue` and
//!   `multiprocessing.shared_memory` (scripts in `benches/python/`); a Python
//!   sharray consumer once the Python package is importable.
//! - **Attach cost** against array size (1 MiB to 16 GiB sparse files on disk).
//! - **Worker pool**: 2 processes vs 2 threads (`benches/common/pool.rs`).
//!
//! `--quick` (the default) finishes in under a minute; `--full` takes several
//! minutes. Without `--bench` (as `cargo test --all-targets` runs it) it does
//! a smoke run of a few seconds and writes no files unless asked.

#[path = "compare/attach.rs"]
mod attach;
mod common;
#[path = "compare/opts.rs"]
mod opts;
#[path = "compare/plot.rs"]
mod plot;
#[path = "compare/python.rs"]
mod python;
#[path = "compare/report.rs"]
mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use common::link::{self, Case, Kind};
use common::{floors, size_label};
use opts::{Mode, Opts, Part};
use report::{Lat, Results};

/// Spin setting for "spinning" latency (never park).
const SPIN_FOREVER: Duration = Duration::from_secs(3600);
/// The library's default spin before parking (throughput runs).
const DEFAULT_SPIN: Duration = Duration::from_micros(20);

fn main() {
    if common::pool::is_worker() {
        common::pool::worker_main();
        return;
    }
    if let Some((role, args)) = common::child_role() {
        if !common::run_shared_role(&role, &args) {
            match role.as_str() {
                "attach" => attach::child(&args),
                other => panic!("unknown role {other}"),
            }
        }
        return;
    }
    let o = Opts::parse();
    let started = Instant::now();
    let boosted = common::boost();
    let pinned = common::pin(0);
    let dir = common::bench_dir();
    let mut r = Results {
        header: header(&o, pinned, boosted),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        smoke: o.mode == Mode::Smoke,
        ..Results::default()
    };
    if o.has(Part::Throughput) {
        throughput(&o, dir.path(), &mut r);
    }
    if o.has(Part::Latency) {
        latency(&o, dir.path(), &mut r);
    }
    if o.has(Part::Python) {
        python::run(&o, dir.path(), &mut r);
    }
    if o.has(Part::Attach) {
        eprintln!("attach cost");
        r.attach = attach::run(&o.attach_sizes(), o.attach_opens());
    }
    if o.has(Part::Pool) {
        eprintln!("worker pool");
        let job = o.pool_job();
        let p = common::pool::run(&job, false);
        r.pool = Some((job, p));
    }
    if !common::iceoryx::AVAILABLE && o.has(Part::Throughput) {
        r.notes
            .push("iceoryx2 rows need `--features iceoryx2` (not built by default).".into());
    }
    r.notes.push(format!(
        "Wall time {:.0} s; load average at the end: {}.",
        started.elapsed().as_secs_f64(),
        loadavg()
    ));
    let md = report::markdown(&r);
    print!("{md}");
    if let Some(p) = &o.md {
        std::fs::write(p, &md).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }
    if let Some(p) = &o.json {
        let j = serde_json::to_string_pretty(&report::json(&r)).unwrap();
        std::fs::write(p, j + "\n").unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }
    if let Some(p) = &o.plot {
        let sub = format!(
            "sharray vs alternatives: 2 processes pinned to 2 CPUs, every byte written and read ({})",
            cpu_model()
        );
        plot::write(&r, p, &sub).unwrap_or_else(|e| panic!("plot {}: {e}", p.display()));
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into())
}

/// CPUs of the machine (not of our affinity mask: we pin ourselves).
fn cpu_count() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
}

fn header(o: &Opts, pinned: bool, boosted: bool) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or("?".into(), |k| format!("{:.0} GiB", k as f64 / 1048576.0));
    format!(
        "# sharray compare ({:?} mode)\n\n{}, {} CPUs, {mem} RAM, Linux {}; 2 processes{}{}; {} runs per throughput case; load average at the start: {}.\n\n",
        o.mode,
        cpu_model(),
        cpu_count(),
        kernel.trim(),
        if pinned {
            " pinned to CPUs 0 and 1"
        } else {
            " (not pinned)"
        },
        if boosted { ", nice -20" } else { "" },
        o.runs,
        loadavg()
    )
}

/// The Rust transports of the throughput table, in the order they run.
fn rust_transports() -> Vec<(&'static str, Option<Kind>)> {
    let mut v = vec![
        ("inproc", None),
        ("mini", Some(Kind::Mini)),
        ("sharray", Some(Kind::Ring)),
        ("socket", Some(Kind::Socket)),
        ("pipe", Some(Kind::Pipe)),
    ];
    if common::iceoryx::AVAILABLE {
        v.push(("iceoryx2", Some(Kind::Iceoryx2)));
    }
    // Profiling switch: `SHARRAY_BENCH_TRANSPORTS=sharray,mini` runs only those.
    if let Ok(only) = std::env::var("SHARRAY_BENCH_TRANSPORTS") {
        v.retain(|(id, _)| only.split(',').any(|o| o == *id));
    }
    v
}

/// Spin before parking in throughput runs: the library default, or
/// `SHARRAY_BENCH_SPIN_US` (a profiling switch).
fn tp_spin() -> Duration {
    std::env::var("SHARRAY_BENCH_SPIN_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(DEFAULT_SPIN, Duration::from_micros)
}

fn throughput(o: &Opts, dir: &Path, r: &mut Results) {
    for run in 0..o.runs {
        for &size in &o.sizes {
            eprintln!(
                "throughput: {}, run {}/{}",
                size_label(size),
                run + 1,
                o.runs
            );
            let (slots, n) = (o.slots_for(size), o.frames_for(size));
            let words = (size / 8) as usize;
            for (id, kind) in rust_transports() {
                let g = match kind {
                    None => link::inproc_throughput(words, n),
                    Some(kind) => {
                        let case = Case {
                            kind,
                            words,
                            slots,
                            spin: tp_spin(),
                        };
                        link::throughput(dir, &case, n)
                    }
                };
                r.add_tp(id, size, slots, n, g);
            }
        }
    }
}

fn latency(o: &Opts, dir: &Path, r: &mut Results) {
    // Rounds interleave the cases (round 1 of every case, then round 2, ...)
    // so a slow phase of the machine hits every transport alike; each case's
    // samples of all rounds are pooled.
    let rounds = o.latency_rounds();
    let smallest = o.sizes.iter().copied().min().unwrap_or(64);
    let mut pooled: Vec<(&'static str, u64, Vec<u64>)> = Vec::new();
    for round in 0..rounds {
        for &size in &o.sizes {
            eprintln!(
                "latency: {}, round {}/{rounds}",
                size_label(size),
                round + 1
            );
            let mut b = o.latency_budget(size);
            b.samples = b.samples.div_ceil(rounds);
            b.time /= rounds as u32;
            let words = (size / 8) as usize;
            let slots = o.slots_for(size);
            let only = std::env::var("SHARRAY_BENCH_TRANSPORTS").ok();
            let want = |id: &str| only.as_ref().is_none_or(|o| o.split(',').any(|x| x == id));
            let mut add = |id, s: common::Samples| match pooled
                .iter_mut()
                .find(|(i, z, _)| *i == id && *z == size)
            {
                Some(p) => p.2.extend(s.0),
                None => pooled.push((id, size, s.0)),
            };
            if want("inproc") {
                add("inproc", link::inproc_latency(words, b));
            }
            if size == smallest && want("busy") {
                add("busy", floors::bare_latency(dir, false, b));
                add("futex", floors::bare_latency(dir, true, b));
            }
            let case = |kind, spin| Case {
                kind,
                words,
                slots,
                spin,
            };
            add(
                "mini",
                link::latency(dir, &case(Kind::Mini, SPIN_FOREVER), b),
            );
            add(
                "sharray",
                link::latency(dir, &case(Kind::Ring, SPIN_FOREVER), b),
            );
            if size == smallest {
                add(
                    "sharray_parked",
                    link::latency(dir, &case(Kind::Ring, Duration::ZERO), b),
                );
            }
            if common::iceoryx::AVAILABLE && want("iceoryx2") {
                add(
                    "iceoryx2",
                    link::latency(dir, &case(Kind::Iceoryx2, SPIN_FOREVER), b),
                );
            }
            add(
                "socket",
                link::latency(dir, &case(Kind::Socket, SPIN_FOREVER), b),
            );
            add(
                "pipe",
                link::latency(dir, &case(Kind::Pipe, SPIN_FOREVER), b),
            );
        }
    }
    for (id, size, v) in pooled {
        r.lat.push(Lat::from_samples(id, size, v));
    }
    if o.mode != Mode::Smoke {
        r.notes.push(format!(
            "Latency: {rounds} interleaved round(s) per case, samples pooled. sharray and the hand-written ring spin while waiting (`set_spin`); iceoryx2 busy-polls `receive()`; sockets and pipes block in the kernel; \"parked\" rows park on a futex at once."
        ));
    }
}
