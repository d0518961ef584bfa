//! Reusable helpers for cross-process benchmarks: run this very benchmark
//! binary again in a child role, pin processes to CPUs, percentiles, and a
//! markdown table printer; plus the pieces the benchmarks share: the payload
//! discipline (`payload`), the floors (`floors`), the hand-written ring
//! (`mini`), every transport behind one interface with its throughput and
//! latency drivers (`link`, `iceoryx`), and the worker-pool job (`pool`).
//! Used by `benches/ring.rs`, `benches/pool.rs` and `benches/compare.rs`.

// Each benchmark binary is its own crate and uses a different part of this
// module; what one of them leaves unused is not dead code.
#![allow(dead_code)]

pub mod floors;
pub mod iceoryx;
pub mod link;
pub mod mini;
pub mod payload;
pub mod pool;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROLE: &str = "SHARRAY_BENCH_ROLE";
const ARGS: &str = "SHARRAY_BENCH_ARGS";

/// In a child: `Some((role, args))`; in the parent: `None`.
pub fn child_role() -> Option<(String, Vec<String>)> {
    let role = std::env::var(ROLE).ok()?;
    let args = std::env::var(ARGS).unwrap_or_default();
    Some((role, args.split('|').map(str::to_string).collect()))
}

/// Re-run this binary as a child in `role` with `args` (stdout piped).
pub fn spawn(role: &str, args: &[&str]) -> Child {
    spawn_with(role, args, false)
}

/// As [`spawn`], with the child's stdin piped too when `stdin`.
pub fn spawn_with(role: &str, args: &[&str], stdin: bool) -> Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .env(ROLE, role)
        .env(ARGS, args.join("|"))
        .stdin(if stdin {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn benchmark child")
}

/// Run a child role shared by every benchmark binary. Returns false for a
/// role the caller must handle itself.
pub fn run_shared_role(role: &str, args: &[String]) -> bool {
    match role {
        "bare_pong" => floors::bare_pong(args),
        "link_sink" => link::sink(args),
        "link_echo" => link::echo(args),
        _ => return false,
    }
    true
}

/// How many latency samples to take, and for how long at most (a loaded
/// machine makes spinning hand-offs wait for the scheduler: a case stops
/// after `time` once it has `min_samples`).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub warmup: usize,
    pub samples: usize,
    pub min_samples: usize,
    pub time: Duration,
}

impl Budget {
    /// Call `once(i)` for i = 0, 1, ... (warm-up, then samples; stop early
    /// after `time` once there are `min_samples`) and keep what it returns
    /// after the warm-up (nanoseconds).
    pub fn sample(&self, mut once: impl FnMut(u64) -> u64) -> Samples {
        let mut s = Samples::default();
        let until = std::time::Instant::now() + self.time;
        for i in 0..(self.warmup + self.samples) as u64 {
            if std::time::Instant::now() > until && s.len() >= self.min_samples {
                break;
            }
            let v = once(i);
            if i >= self.warmup as u64 {
                s.push(v);
            }
        }
        s
    }
}

/// Latency samples in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<u64>);

impl Samples {
    pub fn push(&mut self, v: u64) {
        self.0.push(v);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// (min, p50, p99).
    pub fn stats(&mut self) -> (u64, u64, u64) {
        let v = &mut self.0;
        (percentile(v, 0.0), percentile(v, 50.0), percentile(v, 99.0))
    }
}

/// Read one line from a child's stdout (blocking).
pub fn read_line(child: &mut Child) -> String {
    use std::io::Read;
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// Wait for a child and insist it succeeded.
pub fn finish(mut child: Child) {
    let st = child.wait().expect("wait for child");
    assert!(st.success(), "benchmark child failed: {st}");
}

/// Pin the calling thread (and so a single-threaded process) to `cpu`, if
/// the machine has it. Returns whether pinning worked.
#[allow(unsafe_code)]
pub fn pin(cpu: usize) -> bool {
    // Not `available_parallelism`: it reports the inherited affinity mask,
    // which in a child of a pinned parent is one CPU.
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it; the syscall
    // reads the struct we pass by reference.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Raise this process's scheduling priority to nice -20 when allowed (root),
/// so a benchmark on a shared, busy machine measures the code rather than
/// the scheduler's time slices. Inherited by children spawned afterwards.
/// Returns whether it worked. `SHARRAY_BENCH_NICE=0` disables it.
#[allow(unsafe_code)]
pub fn boost() -> bool {
    if std::env::var("SHARRAY_BENCH_NICE").is_ok_and(|v| v == "0") {
        return false;
    }
    // SAFETY: plain syscall without pointers.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -20) == 0 }
}

/// The `p`-th percentile (0..=100) of `v` (sorted in place).
pub fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p / 100.0).round() as usize;
    v[i]
}

/// Format nanoseconds for a table.
pub fn ns(v: u64) -> String {
    if v >= 10_000 {
        format!("{:.1} us", v as f64 / 1000.0)
    } else {
        format!("{v} ns")
    }
}

/// GB/s for `bytes` in `d`.
pub fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

/// A markdown table printed at the end.
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Replace the text of header cell `i`.
    pub fn head_mut(&mut self, i: usize, text: &str) {
        self.head[i] = text.to_string();
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        println!("{}", self.render());
    }

    /// The table as markdown (numbers right-aligned: every column but the
    /// first), ending with a blank line.
    pub fn render(&self) -> String {
        let mut s = format!("| {} |\n|---|", self.head.join(" | "));
        s += &"---:|".repeat(self.head.len().saturating_sub(1));
        s.push('\n');
        for r in &self.rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
        s
    }
}

/// A directory for benchmark files: in /dev/shm when it exists (RAM), so
/// results do not depend on a disk.
pub fn bench_dir() -> tempfile::TempDir {
    let base = std::path::Path::new("/dev/shm");
    if base.is_dir() {
        tempfile::tempdir_in(base).expect("tempdir in /dev/shm")
    } else {
        tempfile::tempdir().expect("tempdir")
    }
}

/// `n` KiB in bytes.
pub const fn kib(n: u64) -> u64 {
    n << 10
}

/// `n` MiB in bytes.
pub const fn mib(n: u64) -> u64 {
    n << 20
}

/// `n` GiB in bytes.
pub const fn gib(n: u64) -> u64 {
    n << 30
}

/// A byte count as `64 B`, `4 KiB`, `16 GiB`.
pub fn size_label(b: u64) -> String {
    match b {
        b if b >= gib(1) && b % gib(1) == 0 => format!("{} GiB", b >> 30),
        b if b >= mib(1) && b % mib(1) == 0 => format!("{} MiB", b >> 20),
        b if b >= kib(1) && b % kib(1) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// Make a command's process run on `cpu` only (for children that are not
/// this binary, e.g. Python scripts).
#[allow(unsafe_code)]
pub fn pin_command(cmd: &mut Command, cpu: usize) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only makes one
    // async-signal-safe syscall on a stack value.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            Ok(())
        });
    }
}
