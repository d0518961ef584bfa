//! Command line and the size of each mode.

use std::path::PathBuf;
use std::time::Duration;

use super::common::pool::Job;
use super::common::{Budget, gib, kib, mib};

/// How much to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Under `cargo test --all-targets` (no `--bench` argument): a few seconds.
    Smoke,
    /// `--quick` (the default): under a minute.
    Quick,
    /// `--full`: every size, more runs; several minutes.
    Full,
}

/// Which parts to run (`--only a,b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Throughput,
    Latency,
    Python,
    Attach,
    Pool,
}

/// Parsed options.
#[derive(Clone, Debug)]
pub struct Opts {
    pub mode: Mode,
    pub sizes: Vec<u64>,
    pub runs: usize,
    pub parts: Vec<Part>,
    pub slots: Option<u32>,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub md: Option<PathBuf>,
}

pub const USAGE: &str =
    "cargo bench -p sharray-bench --bench compare -- [--quick|--full] [--json FILE] [--plot FILE.svg] [--md FILE]
    [--sizes 64,4k,64k,1m,8m,64m] [--runs N] [--slots K]
    [--only throughput,latency,python,attach,pool]";

/// Parse a size like `64`, `4k`, `1m`, `16g` (binary units).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mul) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (&s[..], 1),
    };
    let v = num.parse::<u64>().ok()?.checked_mul(mul)?;
    (v >= 8 && v % 8 == 0).then_some(v)
}

fn fail(msg: &str) -> ! {
    eprintln!("compare: {msg}\nusage: {USAGE}");
    std::process::exit(2)
}

impl Opts {
    pub fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        // `cargo bench` passes --bench; `cargo test --all-targets` runs this
        // binary without it: then only a smoke run.
        let mut mode = if args.iter().any(|a| a == "--bench") {
            Mode::Quick
        } else {
            Mode::Smoke
        };
        let (mut sizes, mut runs, mut parts, mut slots) = (None, None, None, None);
        let (mut json, mut plot, mut md) = (None, None, None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || {
                it.next()
                    .cloned()
                    .unwrap_or_else(|| fail(&format!("{a} needs a value")))
            };
            match a.as_str() {
                "--bench" => {}
                "--quick" => mode = Mode::Quick,
                "--full" => mode = Mode::Full,
                "--json" => json = Some(PathBuf::from(val())),
                "--plot" => plot = Some(PathBuf::from(val())),
                "--md" => md = Some(PathBuf::from(val())),
                "--sizes" => {
                    let v = val();
                    sizes = Some(
                        v.split(',')
                            .map(|s| {
                                parse_size(s).unwrap_or_else(|| {
                                    fail(&format!(
                                        "{s}: a size is a multiple of 8 bytes, like 64, 4k, 1m"
                                    ))
                                })
                            })
                            .collect(),
                    )
                }
                "--runs" => {
                    runs = Some(
                        val()
                            .parse::<usize>()
                            .ok()
                            .filter(|&n| n > 0)
                            .unwrap_or_else(|| fail("--runs takes a positive number")),
                    )
                }
                "--slots" => {
                    slots = Some(
                        val()
                            .parse::<u32>()
                            .ok()
                            .filter(|&n| n > 0)
                            .unwrap_or_else(|| fail("--slots takes a positive number")),
                    )
                }
                "--only" => {
                    let v = val();
                    parts = Some(
                        v.split(',')
                            .map(|p| match p {
                                "throughput" => Part::Throughput,
                                "latency" => Part::Latency,
                                "python" => Part::Python,
                                "attach" => Part::Attach,
                                "pool" => Part::Pool,
                                _ => fail(&format!("unknown part {p}")),
                            })
                            .collect(),
                    )
                }
                "-h" | "--help" => {
                    println!("usage: {USAGE}");
                    std::process::exit(0)
                }
                other => fail(&format!("unknown argument {other}")),
            }
        }
        let default_sizes: &[u64] = match mode {
            Mode::Smoke => &[64, kib(64)],
            Mode::Quick => &[64, kib(64), mib(1), mib(8)],
            Mode::Full => &[64, kib(4), kib(64), mib(1), mib(8), mib(64)],
        };
        let all = vec![
            Part::Throughput,
            Part::Latency,
            Part::Python,
            Part::Attach,
            Part::Pool,
        ];
        Opts {
            mode,
            sizes: sizes.unwrap_or_else(|| default_sizes.to_vec()),
            runs: runs.unwrap_or(match mode {
                Mode::Smoke => 1,
                Mode::Quick => 3,
                Mode::Full => 7,
            }),
            parts: parts.unwrap_or(if mode == Mode::Smoke {
                // python3 may be missing where `cargo test` runs.
                all.into_iter().filter(|p| *p != Part::Python).collect()
            } else {
                all
            }),
            slots,
            json,
            plot,
            md,
        }
    }

    pub fn has(&self, p: Part) -> bool {
        self.parts.contains(&p)
    }

    /// Ring slots for frames of `size` bytes (every ring-like transport gets
    /// the same count): as many as fit in 4 MiB, 2 to 32. Slots x frame
    /// stays far below the 32 MiB last-level cache where it can.
    pub fn slots_for(&self, size: u64) -> u32 {
        self.slots
            .unwrap_or_else(|| (mib(4) / size).clamp(2, 32) as u32)
    }

    /// Frames per throughput run.
    pub fn frames_for(&self, size: u64) -> u64 {
        let (bytes, lo, hi) = match self.mode {
            Mode::Smoke => (mib(4), 3, 200),
            Mode::Quick => (mib(192), 12, 30_000),
            Mode::Full => (mib(768), 24, 150_000),
        };
        (bytes / size).clamp(lo, hi)
    }

    /// Latency samples for frames of `size` bytes.
    pub fn latency_budget(&self, size: u64) -> Budget {
        let (bytes, hi, time) = match self.mode {
            Mode::Smoke => (mib(4), 100, Duration::from_millis(300)),
            Mode::Quick => (mib(256), 3_000, Duration::from_millis(700)),
            Mode::Full => (gib(1), 20_000, Duration::from_secs(3)),
        };
        let samples = (bytes / size).clamp(20, hi) as usize;
        Budget {
            warmup: samples / 10 + 5,
            samples,
            min_samples: 20.min(samples),
            time,
        }
    }

    /// Interleaved latency rounds (each takes its share of the samples).
    pub fn latency_rounds(&self) -> usize {
        match self.mode {
            Mode::Full => 3,
            _ => 1,
        }
    }

    /// Array sizes for the attach cost.
    pub fn attach_sizes(&self) -> Vec<u64> {
        match self.mode {
            Mode::Smoke => vec![mib(1), mib(64)],
            Mode::Quick => vec![mib(1), mib(256), gib(4), gib(16)],
            Mode::Full => vec![mib(1), mib(16), mib(256), gib(1), gib(4), gib(16)],
        }
    }

    /// Opens per attach size.
    pub fn attach_opens(&self) -> usize {
        match self.mode {
            Mode::Smoke => 5,
            Mode::Quick => 50,
            Mode::Full => 200,
        }
    }

    /// The worker-pool job.
    pub fn pool_job(&self) -> Job {
        let (mib, rounds, claims) = match self.mode {
            Mode::Smoke => (8, 2, 10_000),
            Mode::Quick => (128, 3, 200_000),
            Mode::Full => (1024, 5, 1_000_000),
        };
        Job {
            mib,
            workers: 2,
            rounds,
            chunk_kib: 1024,
            claims,
        }
    }
}
