//! The one helper module of the integration tests, of the library
//! (`tests/*.rs`: `mod common;`) and of the CLI crate (`cli/tests/*.rs`:
//! `#[path = "../../tests/common/mod.rs"] mod common;`).
//!
//! - here: run this very test binary again as a child process in a named
//!   role, with a watchdog so nothing can hang; read a child's stdout line by
//!   line; a seeded random generator; `python3` and the `sharray` binary;
//! - [`ring`]: self-checking frame payloads for ring tests;
//! - [`corrupt`]: hand-corrupted array files.
//!
//! A test file declares its child roles with [`child_main!`]-style dispatch:
//!
//! ```ignore
//! mod common;
//! #[test]
//! fn child_entry() { common::child_entry(|role, arg| match role { "writer" => writer(arg), _ => panic!() }) }
//! ```
//!
//! and spawns children with `common::spawn_child("child_entry", "writer", "some arg")`.

// Each test file is its own crate and uses a different part of this module;
// what one of them leaves unused is not dead code.
#![allow(dead_code)]

pub mod corrupt;
pub mod ring;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "SHARRAY_TEST_CHILD_ROLE";
const ARG_VAR: &str = "SHARRAY_TEST_CHILD_ARG";

/// In the child process: run `f(role, arg)` and exit. In the parent test
/// run: return at once (the test passes trivially).
pub fn child_entry(f: impl FnOnce(&str, &str)) {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        let arg = std::env::var(ARG_VAR).unwrap_or_default();
        f(&role, &arg);
        std::process::exit(0);
    }
}

/// Spawn this test binary as a child running `entry_test` (the name of the
/// test function that calls [`child_entry`]) in `role` with `arg`.
/// stdout is piped (children report with println!), stderr inherited.
pub fn spawn_child(entry_test: &str, role: &str, arg: &str) -> Child {
    spawn_child_env(entry_test, role, arg, &[])
}

/// [`spawn_child`] with extra environment variables (e.g. armed fail points:
/// `("SHARRAY_FAILPOINTS", "ring.lock.probed=stop")`).
pub fn spawn_child_env(entry_test: &str, role: &str, arg: &str, env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .envs(env.iter().copied())
        .args([
            entry_test,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE_VAR, role)
        .env(ARG_VAR, arg)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child test process")
}

/// Wait for `child` at most `limit`; kill it and panic if it takes longer.
pub fn wait_with_watchdog(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "child process {} hung for more than {limit:?}; killed by the watchdog",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Wait for the child and return its stdout, asserting it exited 0.
pub fn finish(mut child: Child, limit: Duration) -> String {
    use std::io::Read;
    let mut out = String::new();
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut out);
        }
        out
    });
    let st = wait_with_watchdog(&mut child, limit);
    let out = reader.join().unwrap_or_default();
    assert!(st.success(), "child failed with {st}; stdout:\n{out}");
    out
}

/// SIGKILL a child and reap it.
pub fn sigkill(child: &mut Child) {
    // SAFETY-free: kill(2) through std.
    let _ = child.kill();
    let _ = child.wait();
}

/// Run a closure with a watchdog thread that aborts the whole test process if
/// it runs longer than `limit` (for in-process waits that could hang).
pub fn with_watchdog<R>(limit: Duration, f: impl FnOnce() -> R) -> R {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let dog = std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            eprintln!("watchdog: test step hung for more than {limit:?}; aborting");
            std::process::abort();
        }
    });
    let r = f();
    let _ = tx.send(());
    let _ = dog.join();
    r
}

/// Does `python3 -c "import numpy"` work? Interop tests require it (the README
/// test command installs numpy); they fail loudly rather than skip, unless
/// SHARRAY_SKIP_PYTHON=1 is set.
pub fn python_numpy() -> bool {
    if std::env::var("SHARRAY_SKIP_PYTHON").is_ok_and(|v| v == "1") {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import numpy"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with numpy is required for interop tests (run ./scripts/test.sh, which installs it)"
    );
    true
}

/// Run a python3 script with arguments; panic with its stderr on failure.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A python3 process that takes `fcntl.flock(LOCK_EX)` on `path`, says
/// "locked", and releases (saying "released") when its stdin closes.
pub fn python_holding_lock(path: &str) -> (Child, Lines) {
    let script = r#"
import fcntl, sys
f = open(sys.argv[1], "rb")
fcntl.flock(f.fileno(), fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
fcntl.flock(f.fileno(), fcntl.LOCK_UN)
print("released", flush=True)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, path])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = Lines::of(&mut child);
    lines.wait_for("locked", Duration::from_secs(60));
    (child, lines)
}

/// A `Command` for the `sharray` binary that cargo built for these tests.
/// Only the tests of the CLI crate (`cli/tests/`) have it.
pub fn cli() -> Command {
    // Cargo sets CARGO_BIN_EXE_sharray when it compiles the tests of the
    // package with that binary; the library's own tests never call this.
    let Some(exe) = option_env!("CARGO_BIN_EXE_sharray") else {
        panic!("the sharray binary exists for the tests of sharray-cli (cli/tests/) only")
    };
    Command::new(exe)
}

/// Run the `sharray` binary with `args` and collect its output.
pub fn cli_run(args: &[&str]) -> std::process::Output {
    cli().args(args).output().expect("run the sharray binary")
}

/// Run `sharray` with `args`, which must succeed; its stdout.
pub fn cli_ok(args: &[&str]) -> String {
    let out = cli_run(args);
    assert!(
        out.status.success(),
        "sharray {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `sharray` with `args`, which must exit with `code` and, unless it is
/// a usage error (2, printed by clap), say why in one line starting with
/// `sharray: `; its stderr.
pub fn cli_fails(args: &[&str], code: i32) -> String {
    let out = cli_run(args);
    assert_eq!(out.status.code(), Some(code), "sharray {args:?}: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if code != 2 {
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line expected: {err}"
        );
        assert!(err.starts_with("sharray: "), "{err}");
    }
    err
}

/// Lines of a child's stdout, read by a background thread.
pub struct Lines {
    rx: Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    /// Take over the child's piped stdout.
    pub fn of(child: &mut Child) -> Lines {
        let out = child.stdout.take().expect("child stdout is piped");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Wait for a line starting with `prefix`; panic after `limit`.
    pub fn wait_for(&mut self, prefix: &str, limit: Duration) -> String {
        self.try_wait_for(prefix, limit).unwrap_or_else(|| {
            panic!(
                "no line starting with {prefix:?} within {limit:?}; saw {:?}",
                self.seen
            )
        })
    }

    /// Wait for a line starting with `prefix`; `None` after `limit` or when
    /// the child closed its stdout first (for tests that count hangs).
    pub fn try_wait_for(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.rx.recv_timeout(left).ok()?;
            self.seen.push(l.clone());
            if l.starts_with(prefix) {
                return Some(l);
            }
        }
    }

    /// Panic if a line starting with `prefix` arrives within `d` (a step
    /// that must not happen yet).
    pub fn assert_none_within(&mut self, prefix: &str, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(l) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(l.clone());
            assert!(
                !l.starts_with(prefix),
                "{prefix:?} arrived too early; saw {:?}",
                self.seen
            );
        }
    }

    /// Every remaining line (call after the child exited).
    pub fn rest(&mut self) -> Vec<String> {
        while let Ok(l) = self.rx.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        self.seen.clone()
    }
}

/// A small pseudo-random generator for tests (xorshift64*, no extra crates).
pub struct Rng(u64);

impl Rng {
    /// The same sequence for the same seed (any seed, 0 included).
    pub fn from_seed(seed: u64) -> Rng {
        // splitmix64's finaliser spreads nearby seeds; xorshift needs a
        // non-zero state.
        let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((x ^ (x >> 31)) | 1)
    }

    /// Seeded from SHARRAY_TEST_SEED or the clock; the seed is printed so a
    /// failing run can be replayed.
    pub fn new(name: &str) -> Rng {
        let seed = std::env::var("SHARRAY_TEST_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{name}: SHARRAY_TEST_SEED={seed}");
        Rng::from_seed(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// An env var as a number, or a default.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Wait until process `pid` is stopped (SIGSTOP: state `T` in
/// `/proc/PID/stat`), at most `limit`; panic if it exits or never stops.
pub fn wait_stopped(pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the parenthesised command name.
        match stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()) {
            Some('T') | Some('t') => return,
            Some('Z') | Some('X') | None => panic!("process {pid} exited instead of stopping"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} did not stop within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Send `sig` to process `pid` (SIGCONT to resume a stopped child).
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}
