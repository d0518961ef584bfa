//! Whole-array locks through the CLI: while a Python process holds
//! `fcntl.flock(LOCK_EX)`, reading commands with `--lock-timeout` exit 3 with
//! one line, and without a timeout they wait until python lets go. The
//! library side: tests/locks.rs.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Stdio;
use std::time::Duration;

use sharray::SharedArray;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn python_lock_ex_blocks_the_cli() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let p = path.to_str().unwrap();
    let a = SharedArray::<u32>::create(&path, &[16]).unwrap();
    let (mut py, mut rx) = common::python_holding_lock(p);
    // The CLI: reading commands with --lock-timeout exit 3 with one line.
    let out_npy = dir.path().join("out.npy");
    for args in [
        vec!["show", p, "--lock-timeout", "0.2"],
        vec!["check", p, "--lock-timeout", "0.2"],
        vec![
            "export",
            p,
            out_npy.to_str().unwrap(),
            "--lock-timeout",
            "0.2",
        ],
        vec![
            "import",
            p,
            "shm:never-made-by-sharray-test",
            "--lock-timeout",
            "0.2",
        ],
    ] {
        let out = common::cli().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("timed out"), "{err}");
    }
    assert!(!out_npy.exists());
    assert!(!std::path::Path::new("/dev/shm/never-made-by-sharray-test").exists());
    // Without a timeout the CLI waits, and finishes once python lets go.
    let waiting = common::cli()
        .args(["show", p])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(py.stdin.take()); // python releases
    rx.wait_for("released", LIMIT);
    let out = common::finish(waiting, LIMIT);
    assert!(out.starts_with("[0 0 0"), "{out}");
    common::wait_with_watchdog(&mut py, LIMIT);
    // And now we get the lock.
    common::with_watchdog(LIMIT, || a.write().unwrap()[0] = 1);
}
