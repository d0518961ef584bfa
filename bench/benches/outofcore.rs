//! Out-of-core reads: when does mapping help, and what do hints buy?
//!
//! ```text
//! cargo bench -p sharray-bench --bench outofcore -- [--size-gib G] [--sizes 4k,64k,1m]
//!     [--runs N] [--no-python] [--warm-only|--cold-only]
//! ```
//!
//! One array file of `--size-gib` GiB (default 4) on disk (`$SHARRAY_BENCH_DIR`,
//! else the system temporary directory; refused on tmpfs, where nothing can
//! be evicted), filled with a pattern. For each access pattern (sequential
//! scan of the whole data; random reads at offsets from a fixed generator),
//! each read size, and each cache state (cold: the file is evicted from the
//! page cache with `posix_fadvise(DONTNEED)` before the run; warm: read once
//! before), every method reads the same bytes and consumes them the same way
//! (a wrapping sum of u64 words, checked equal across methods):
//!
//! - `pread`: `read_exact_at` into one reused buffer; `+hint` adds
//!   `posix_fadvise(SEQUENTIAL | RANDOM)`;
//! - `sharray`: a `ReadOnlyArray` read guard, the blocks read in place;
//!   `+hint` is the recipe BENCHMARKS.md recommends: for scans a rolling
//!   `advise(WillNeed)` of the next 64 MiB while the current 32 MiB are
//!   consumed; for random reads `advise(Random)` (no read-around: a fault
//!   reads its page only) and, for blocks larger than a page,
//!   `advise(WillNeed)` on the block before touching it (one read for the
//!   whole block instead of a fault per page);
//! - Python (`python/bench/bench_outofcore.py`, one fresh process per case):
//!   `np.memmap(mode="r")` and `sharray.open(mode="r")`, each with the same
//!   recipe (`mmap.madvise` for np.memmap).
//!
//! Each case runs in a fresh handle (nothing of the file mapped before);
//! cases are interleaved over `--runs` rounds and the table shows the median
//! MB/s, then the ratios the issue asks about. Speed is printed, never
//! asserted. Without `--bench` (as `cargo test --all-targets` runs it) it
//! does a smoke run on an 8 MiB file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sharray::{Advice, ReadOnlyArray, SharedArray};

/// Read-ahead window of hinted scans (`SHARRAY_BENCH_AHEAD_MIB` to explore).
fn ahead() -> usize {
    std::env::var("SHARRAY_BENCH_AHEAD_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(64)
        << 20
}
const DATA_OFFSET: u64 = 4096;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pattern {
    Seq,
    Rand,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::Seq => "seq",
            Pattern::Rand => "rand",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    Pread,
    Sharray,
    PyNpMemmap,
    PySharray,
}

impl Method {
    fn label(self, hint: bool) -> String {
        let base = match self {
            Method::Pread => "pread",
            Method::Sharray => "sharray",
            Method::PyNpMemmap => "py np.memmap",
            Method::PySharray => "py sharray",
        };
        if hint {
            format!("{base}+hint")
        } else {
            base.to_string()
        }
    }
}

struct Opts {
    size: usize,
    sizes: Vec<usize>,
    runs: usize,
    python: bool,
    cold: bool,
    warm: bool,
    smoke: bool,
}

fn parse_size(s: &str) -> usize {
    let s = s.trim().to_ascii_lowercase();
    let (n, mul) = if let Some(n) = s.strip_suffix('k') {
        (n, 1 << 10)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 1 << 20)
    } else {
        (s.as_str(), 1)
    };
    n.parse::<usize>()
        .unwrap_or_else(|_| panic!("--sizes: {s:?} is not a size like 4k or 1m"))
        * mul
}

impl Opts {
    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let smoke = !args.iter().any(|a| a == "--bench");
        let mut o = Opts {
            size: if smoke { 8 << 20 } else { 4 << 30 },
            sizes: vec![4 << 10, 64 << 10, 1 << 20],
            runs: if smoke { 1 } else { 3 },
            python: true,
            cold: true,
            warm: true,
            smoke,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().unwrap_or_default();
            match a.as_str() {
                "--size-gib" => {
                    o.size = (val().parse::<f64>().expect("--size-gib: a number")
                        * (1u64 << 30) as f64) as usize
                }
                "--sizes" => o.sizes = val().split(',').map(parse_size).collect(),
                "--runs" => o.runs = val().parse().expect("--runs: an integer"),
                "--no-python" => o.python = false,
                "--warm-only" => o.cold = false,
                "--cold-only" => o.warm = false,
                _ => {}
            }
        }
        o.size -= o.size % (1 << 20);
        o
    }
}

/// Random block indices: a 64-bit LCG, block = (x >> 33) % nblocks (the
/// Python script uses the same generator).
fn offsets(nblocks: usize, count: usize) -> Vec<usize> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((x >> 33) % nblocks as u64) as usize
        })
        .collect()
}

fn checksum(block: &[u8]) -> u64 {
    bytemuck::cast_slice::<u8, u64>(block)
        .iter()
        .fold(0u64, |a, &w| a.wrapping_add(w))
}

/// Random reads per case: about 64 MiB of them, at least 200.
fn rand_count(size: usize, total: usize) -> usize {
    ((64usize << 20) / size)
        .clamp(200, 16384)
        .min(total / size * 4)
}

/// One table row: (pattern, read size, cache state) and, per method, the
/// MB/s of each round.
type Row = ((Pattern, usize, &'static str), Vec<Vec<f64>>);

struct Sample {
    secs: f64,
    bytes: usize,
    sum: u64,
}

fn run_pread(path: &Path, p: Pattern, size: usize, hint: bool, total: usize) -> Sample {
    let f = File::open(path).expect("open for pread");
    if hint {
        let advice = match p {
            Pattern::Seq => libc::POSIX_FADV_SEQUENTIAL,
            Pattern::Rand => libc::POSIX_FADV_RANDOM,
        };
        sharray::sys::fadvise(&f, DATA_OFFSET, total as u64, advice).expect("fadvise");
    }
    let mut buf = vec![0u64; size / 8];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
    let mut sum = 0u64;
    let mut n = 0;
    let t = Instant::now();
    let mut read = |off: usize, bytes: &mut [u8]| {
        f.read_exact_at(bytes, DATA_OFFSET + off as u64)
            .expect("pread");
        sum = sum.wrapping_add(checksum(bytes));
        n += bytes.len();
    };
    match p {
        Pattern::Seq => {
            for off in (0..total - total % size).step_by(size) {
                read(off, bytes);
            }
        }
        Pattern::Rand => {
            for b in offsets(total / size, rand_count(size, total)) {
                read(b * size, bytes);
            }
        }
    }
    Sample {
        secs: t.elapsed().as_secs_f64(),
        bytes: n,
        sum,
    }
}

fn run_sharray(path: &Path, p: Pattern, size: usize, hint: bool) -> Sample {
    let a = ReadOnlyArray::<u8>::open(path).expect("open");
    let total = a.len();
    if hint && p == Pattern::Rand {
        a.advise(.., Advice::Random).expect("advise");
    }
    let r = a.read().expect("read guard");
    let mut sum = 0u64;
    let mut n = 0;
    let t = Instant::now();
    match p {
        Pattern::Seq => {
            let mut next_ahead = 0;
            let ahead = ahead();
            for off in (0..total - total % size).step_by(size) {
                if hint && off >= next_ahead {
                    // Ask for the next window while this one is consumed.
                    let (lo, hi) = (off + ahead / 2, (off + ahead + ahead / 2).min(total));
                    if lo < hi {
                        a.advise(lo..hi, Advice::WillNeed).expect("willneed");
                    }
                    next_ahead = off + ahead / 2;
                }
                sum = sum.wrapping_add(checksum(&r[off..off + size]));
                n += size;
            }
        }
        Pattern::Rand => {
            let page = sharray::sys::page_size();
            for b in offsets(total / size, rand_count(size, total)) {
                if hint && size > page {
                    a.advise(b * size..(b + 1) * size, Advice::WillNeed)
                        .expect("willneed");
                }
                sum = sum.wrapping_add(checksum(&r[b * size..(b + 1) * size]));
                n += size;
            }
        }
    }
    Sample {
        secs: t.elapsed().as_secs_f64(),
        bytes: n,
        sum,
    }
}

fn python_ok() -> bool {
    Command::new("python3")
        .args(["-c", "import numpy, sharray"])
        .status()
        .is_ok_and(|s| s.success())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/bench/bench_outofcore.py")
}

fn run_python(
    path: &Path,
    p: Pattern,
    size: usize,
    method: &str,
    hint: bool,
    total: usize,
) -> Option<Sample> {
    let out = Command::new("python3")
        .arg(script())
        .arg(path)
        .args([
            p.name(),
            &size.to_string(),
            method,
            if hint { "hint" } else { "none" },
            &rand_count(size, total).to_string(),
            &total.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python {method} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(Sample {
        secs: v["seconds"].as_f64()?,
        bytes: v["bytes"].as_u64()? as usize,
        sum: v["checksum"].as_u64()?,
    })
}

/// Drop the whole file from the page cache (no process maps it now).
fn evict(path: &Path) {
    let a = ReadOnlyArray::<u8>::open(path).expect("open to evict");
    a.evict(..).expect("evict");
}

fn warm(path: &Path) {
    let a = ReadOnlyArray::<u8>::open(path).expect("open to warm");
    a.prefault_read_range(..).expect("prefault");
}

fn make_file(dir: &Path, size: usize) -> PathBuf {
    let path = dir.join("outofcore.npy");
    let a = SharedArray::<u8>::create(&path, &[size]).expect("create the file");
    {
        let mut w = a.write().expect("write guard");
        let words: &mut [u64] = bytemuck::cast_slice_mut(&mut w[..]);
        for (i, x) in words.iter_mut().enumerate() {
            *x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    a.flush().expect("flush");
    path
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn size_label(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{}M", n >> 20)
    } else {
        format!("{}K", n >> 10)
    }
}

fn main() {
    let o = Opts::parse();
    let base = std::env::var_os("SHARRAY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("bench directory");
    {
        let probe = File::open(dir.path()).expect("open bench dir");
        if sharray::sys::fs_type(&probe).ok() == Some(0x0102_1994) {
            eprintln!(
                "{} is tmpfs: pages cannot be evicted there; set SHARRAY_BENCH_DIR to a directory on disk",
                base.display()
            );
            std::process::exit(if o.smoke { 0 } else { 1 });
        }
    }
    let python = o.python && python_ok();
    if o.python && !python {
        eprintln!("python3 with numpy and sharray not importable: Python columns skipped");
    }
    eprintln!(
        "writing a {} MiB file in {} ...",
        o.size >> 20,
        dir.path().display()
    );
    let path = make_file(dir.path(), o.size);
    let total = o.size;

    let mut methods: Vec<(Method, bool)> = vec![
        (Method::Pread, false),
        (Method::Pread, true),
        (Method::Sharray, false),
        (Method::Sharray, true),
    ];
    if python {
        methods.extend([
            (Method::PyNpMemmap, false),
            (Method::PyNpMemmap, true),
            (Method::PySharray, false),
            (Method::PySharray, true),
        ]);
    }
    let mut states = Vec::new();
    if o.cold {
        states.push("cold");
    }
    if o.warm {
        states.push("warm");
    }
    // rows: (pattern, size, state) -> per method: MB/s samples
    let mut rows: Vec<Row> = Vec::new();
    for p in [Pattern::Seq, Pattern::Rand] {
        for &size in &o.sizes {
            for &state in &states {
                rows.push(((p, size, state), vec![Vec::new(); methods.len()]));
            }
        }
    }
    let started = Instant::now();
    for run in 0..o.runs {
        for ((p, size, state), samples) in rows.iter_mut() {
            let mut sums = Vec::new();
            for (mi, &(m, hint)) in methods.iter().enumerate() {
                if *state == "cold" {
                    evict(&path);
                } else {
                    warm(&path);
                }
                let s = match m {
                    Method::Pread => Some(run_pread(&path, *p, *size, hint, total)),
                    Method::Sharray => Some(run_sharray(&path, *p, *size, hint)),
                    Method::PyNpMemmap => run_python(&path, *p, *size, "npmemmap", hint, total),
                    Method::PySharray => run_python(&path, *p, *size, "sharray", hint, total),
                };
                if let Some(s) = s {
                    sums.push((m.label(hint), s.sum));
                    samples[mi].push(s.bytes as f64 / s.secs / 1e6);
                }
            }
            if let Some((_, first)) = sums.first()
                && let Some((who, bad)) = sums.iter().find(|(_, s)| s != first)
            {
                panic!("checksum mismatch: {who} read {bad:#x}, pread read {first:#x}");
            }
        }
        eprintln!(
            "round {} of {} done ({:.0} s)",
            run + 1,
            o.runs,
            started.elapsed().as_secs_f64()
        );
    }
    evict(&path);

    // The table: MB/s per method, median of the rounds.
    let col = 14;
    print!("{:<6}{:>6}{:>6}", "access", "read", "cache");
    for &(m, hint) in &methods {
        print!("{:>col$}", m.label(hint));
    }
    println!();
    for ((p, size, state), samples) in &rows {
        print!("{:<6}{:>6}{:>6}", p.name(), size_label(*size), state);
        for s in samples {
            print!("{:>col$.0}", median(s.clone()));
        }
        println!();
    }
    println!(
        "(MB/s, median of {} rounds; file {} MiB)",
        o.runs,
        total >> 20
    );
    println!();
    // Ratios side by side.
    let idx = |m: Method, hint: bool| methods.iter().position(|&x| x == (m, hint));
    let ratio = |s: &[Vec<f64>], a: Option<usize>, b: Option<usize>| -> String {
        match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", median(s[a].clone()) / median(s[b].clone())),
            _ => "-".into(),
        }
    };
    println!(
        "{:<6}{:>6}{:>6}{:>16}{:>16}{:>18}{:>20}{:>18}",
        "access",
        "read",
        "cache",
        "hint gain (rs)",
        "hint gain (py)",
        "sharray/np.memmap",
        "+hint/np.memmap+hint",
        "sharray/pread"
    );
    for ((p, size, state), s) in &rows {
        println!(
            "{:<6}{:>6}{:>6}{:>16}{:>16}{:>18}{:>20}{:>18}",
            p.name(),
            size_label(*size),
            state,
            ratio(s, idx(Method::Sharray, true), idx(Method::Sharray, false)),
            ratio(
                s,
                idx(Method::PySharray, true),
                idx(Method::PySharray, false)
            ),
            ratio(
                s,
                idx(Method::PySharray, false),
                idx(Method::PyNpMemmap, false)
            ),
            ratio(
                s,
                idx(Method::PySharray, true),
                idx(Method::PyNpMemmap, true)
            ),
            ratio(s, idx(Method::Sharray, false), idx(Method::Pread, false)),
        );
    }
}
