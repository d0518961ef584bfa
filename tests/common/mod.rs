//! Helpers shared by the integration tests: run this very test binary again
//! as a child process in a named role, with a watchdog so nothing can hang.
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

#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
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

/// A `Command` for the `sharray` binary that cargo built for these tests.
#[cfg(feature = "cli")]
pub fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sharray"))
}

/// Run the `sharray` binary with `args` and collect its output.
#[cfg(feature = "cli")]
pub fn cli_run(args: &[&str]) -> std::process::Output {
    cli().args(args).output().expect("run the sharray binary")
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
