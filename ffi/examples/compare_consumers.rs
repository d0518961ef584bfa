//! The C consumer against the Rust consumer on the same ring, side by side.
//!
//! ```text
//! cargo run --release -p sharray-ffi --example compare_consumers -- [--rounds N] [--sizes 8m,64]
//! ```
//!
//! Builds (if needed) the Rust peer `examples/ring_peer.rs` and the C peer
//! `examples/c/ring_consumer.c` (against `target/release/libsharray.a`),
//! then for each frame size runs, in interleaved rounds, a Rust producer
//! (`ring_peer produce`) feeding either the Rust consumer (`ring_peer
//! consume`) or the C consumer, each a process of its own on a fresh ring
//! in /dev/shm, producer and consumer pinned to CPUs 0 and 1 (taskset, when
//! present). Both consumers read and check every word of every frame and
//! time from their first frame. Prints frames/s of both, the median of the
//! per-round ratios (C / Rust; a round's two runs saw the same machine
//! phase), what the C path costs in percent, and the range of the ratios
//! over the rounds (the machine's noise).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sharray_core::{Dtype, Ring};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) {
    let st = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(st.success(), "{cmd:?} failed");
}

/// `exe` pinned to `cpu` with taskset when there is one (as the benchmark
/// harness pins its two processes), else unpinned.
fn pinned(cpu: usize, exe: &Path) -> Command {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let have_taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if cpus >= 2 && have_taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string()]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One run: a fresh ring, the consumer `consumer` (a command line), the
/// Rust producer; the consumer's frames/s.
fn one_run(dir: &Path, peer: &Path, consumer: &[&Path], words: usize, frames: u64) -> f64 {
    let path = dir.join("compare.npy");
    let _ = std::fs::remove_file(&path);
    let frame_bytes = words * 8;
    let slots = ((4usize << 20) / frame_bytes).clamp(2, 32) as u32;
    let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[words])
        .slots(slots)
        .create(&path)
        .unwrap();
    let mut cons = pinned(1, consumer[0]);
    for a in &consumer[1..] {
        cons.arg(a);
    }
    let mut cons = cons
        .arg(&path)
        .args(["--timeout", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(cons.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "consumer did not start");
    run(pinned(0, peer)
        .args(["produce"])
        .arg(&path)
        .args(["--frames", &frames.to_string()])
        .stdout(Stdio::null()));
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(cons.wait().unwrap().success(), "consumer failed");
    drop(ring);
    let _ = std::fs::remove_file(&path);
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("consumer JSON line");
    assert_eq!(v["frames"], frames, "{line}");
    assert_eq!(v["bad"], 0, "{line}");
    v["frames_per_s"].as_f64().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut rounds = 11;
    let mut sizes = vec![8usize << 20, 64];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--sizes" => {
                sizes = it
                    .next()
                    .expect("--sizes 8m,64")
                    .split(',')
                    .map(|s| {
                        let s = s.to_ascii_lowercase();
                        let (num, mul) = match s.chars().last() {
                            Some('k') => (&s[..s.len() - 1], 1 << 10),
                            Some('m') => (&s[..s.len() - 1], 1 << 20),
                            _ => (&s[..], 1),
                        };
                        num.parse::<usize>().expect("a size such as 64, 4k, 8m") * mul
                    })
                    .collect()
            }
            "-h" | "--help" => {
                println!("usage: compare_consumers [--rounds N] [--sizes 8m,64]");
                return;
            }
            other => {
                eprintln!("compare_consumers: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo)
        .current_dir(repo())
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "sharray",
            "--example",
            "ring_peer",
        ])
        .args(["-p", "sharray-ffi"]));
    // target/release/examples/compare_consumers -> target/release (also
    // under CARGO_TARGET_DIR).
    let exe = std::env::current_exe().unwrap();
    let release_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    run(Command::new("make")
        .args(["-s", "-C"])
        .arg(repo().join("examples/c"))
        .arg(format!("LIBDIR={}", release_dir.display()))
        .arg("ring_consumer"));
    let peer = release_dir.join("examples/ring_peer");
    let c_consumer = repo().join("examples/c/ring_consumer");
    let consume = PathBuf::from("consume");
    let dir = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };

    println!(
        "C consumer (examples/c/ring_consumer) vs Rust consumer (ring_peer consume), Rust producer, {rounds} interleaved rounds"
    );
    println!(
        "{:>8} {:>8} {:>16} {:>16} {:>10} {:>10} {:>16}",
        "frame", "frames", "rust frames/s", "c frames/s", "c / rust", "c costs", "c / rust range"
    );
    for &bytes in &sizes {
        let words = (bytes / 8).max(1);
        // About a second of streaming per run on a 2-core VM.
        let frames = ((8u64 << 30) / bytes as u64).clamp(1000, 1_000_000);
        let (mut rust, mut c, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let run_rust = || one_run(dir.path(), &peer, &[&peer, &consume], words, frames);
            let run_c = || one_run(dir.path(), &peer, &[&c_consumer], words, frames);
            let (r, cc) = if round % 2 == 0 {
                let r = run_rust();
                (r, run_c())
            } else {
                let cc = run_c();
                (run_rust(), cc)
            };
            rust.push(r);
            c.push(cc);
            ratio.push(cc / r);
        }
        let (r, cc, q) = (median(&mut rust), median(&mut c), median(&mut ratio));
        // `ratio` is sorted now: its spread over the rounds.
        let (lo, hi) = (ratio[0], ratio[ratio.len() - 1]);
        let label = if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
            format!("{} MiB", bytes >> 20)
        } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
            format!("{} KiB", bytes >> 10)
        } else {
            format!("{bytes} B")
        };
        println!(
            "{label:>8} {frames:>8} {r:>16.0} {cc:>16.0} {q:>10.3} {:>9.1}% {:>16}",
            (1.0 / q - 1.0) * 100.0,
            format!("{lo:.3}-{hi:.3}")
        );
    }
}
