//! Reusable helpers for cross-process benchmarks: run this very benchmark
//! binary again in a child role, pin processes to CPUs, percentiles, and a
//! markdown table printer. Used by `benches/ring.rs`; meant to be shared by
//! later cross-tool harnesses.

#![allow(dead_code)]

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
    Command::new(std::env::current_exe().expect("current exe"))
        .env(ROLE, role)
        .env(ARGS, args.join("|"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn benchmark child")
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

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        println!("| {} |", self.head.join(" | "));
        println!("|{}|", vec!["---"; self.head.len()].join("|"));
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
        println!();
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
