//! Whole-array locks: `flock` interoperating with Python's `fcntl.flock` in
//! both directions, handles in one process sharing one open file description
//! (no self-deadlock), threads excluded like processes, locks of a process
//! killed with SIGKILL released, and a replaced file detected. The CLI's
//! `--lock-timeout`: cli/tests/locks_cli.rs.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use sharray::{ErrorKind, SharedArray};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let a = SharedArray::<u32>::open(arg).unwrap();
        match role {
            "hold_write" => {
                let mut w = a.write().unwrap();
                w[0] = 99;
                println!("locked");
                std::thread::sleep(LIMIT); // killed long before this
            }
            "hold_read" => {
                let _r = a.read().unwrap();
                println!("locked");
                std::thread::sleep(LIMIT);
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[test]
fn python_lock_ex_blocks_us() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let p = path.to_str().unwrap();
    let a = SharedArray::<u32>::create(&path, &[16]).unwrap();
    let (mut py, mut rx) = common::python_holding_lock(p);
    common::with_watchdog(LIMIT, || {
        assert!(a.try_write().unwrap().is_none());
        assert!(a.try_read().unwrap().is_none());
        let e = a.write_timeout(Duration::from_millis(200)).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::LockTimeout, "{e}");
        let e = a.read_timeout(Duration::from_millis(100)).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::LockTimeout, "{e}");
        assert!(e.to_string().contains("timed out"), "{e}");
    });
    // Once python lets go, we get the lock (the CLI waiting for it:
    // cli/tests/locks_cli.rs).
    drop(py.stdin.take()); // python releases
    rx.wait_for("released", LIMIT);
    common::wait_with_watchdog(&mut py, LIMIT);
    // And now we get the lock.
    common::with_watchdog(LIMIT, || a.write().unwrap()[0] = 1);
}

fn python_try(path: &str, flags: &str) -> String {
    let script = format!(
        r#"
import fcntl, sys
f = open(sys.argv[1], "rb")
try:
    fcntl.flock(f.fileno(), {flags} | fcntl.LOCK_NB)
    print("acquired")
except BlockingIOError:
    print("blocked")
"#
    );
    common::python(&script, &[path]).trim().to_string()
}

#[test]
fn our_guards_block_python() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let p = path.to_str().unwrap();
    let a = SharedArray::<f64>::create(&path, &[8]).unwrap();
    {
        let _w = a.write().unwrap();
        assert_eq!(python_try(p, "fcntl.LOCK_SH"), "blocked");
        assert_eq!(python_try(p, "fcntl.LOCK_EX"), "blocked");
    }
    {
        let _r = a.read().unwrap();
        assert_eq!(python_try(p, "fcntl.LOCK_SH"), "acquired");
        assert_eq!(python_try(p, "fcntl.LOCK_EX"), "blocked");
    }
    assert_eq!(python_try(p, "fcntl.LOCK_EX"), "acquired");
    // A plain numpy file gets the same locks.
    let npy = dir.path().join("plain.npy");
    common::python(
        "import numpy as np, sys; np.save(sys.argv[1], np.arange(4))",
        &[npy.to_str().unwrap()],
    );
    let b = SharedArray::<i64>::open(&npy).unwrap();
    let _w = b.write().unwrap();
    assert_eq!(
        python_try(npy.to_str().unwrap(), "fcntl.LOCK_SH"),
        "blocked"
    );
}

#[test]
fn two_handles_in_one_process_never_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let created = SharedArray::<u32>::create(&path, &[4]).unwrap();
    let a = SharedArray::<u32>::open(&path).unwrap();
    let b = SharedArray::<u32>::open(&path).unwrap();
    let ro = SharedArray::<u32>::open_read_only(&path).unwrap();
    common::with_watchdog(LIMIT, || {
        {
            let _r = a.read().unwrap();
            assert!(b.try_write().unwrap().is_none());
            assert!(created.try_write().unwrap().is_none());
            // Shared with shared is fine.
            assert!(b.try_read().unwrap().is_some());
            assert!(ro.try_read().unwrap().is_some());
        }
        {
            let mut w = a.write().unwrap();
            w[0] = 5;
            assert!(b.try_read().unwrap().is_none());
            assert!(ro.try_read().unwrap().is_none());
            let e = b.write_timeout(Duration::from_millis(50)).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::LockTimeout);
        }
        // Released: the other handles see the data and the generation.
        assert_eq!(b.write().unwrap()[0], 5);
        assert_eq!(ro.read().unwrap()[0], 5);
        assert_eq!(created.generation(), 1);
        // A read-only handle refuses write guards.
        assert_eq!(
            ro.write().err().unwrap().kind(),
            ErrorKind::PermissionDenied
        );
    });
}

#[test]
fn threads_are_excluded_like_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let shared = Arc::new(SharedArray::<u64>::create(&path, &[1024]).unwrap());
    common::with_watchdog(LIMIT, || {
        let mut handles = Vec::new();
        for t in 0..4 {
            // Half the threads share one handle, half open their own.
            let own = t % 2 == 0;
            let shared = shared.clone();
            let path = path.clone();
            handles.push(std::thread::spawn(move || {
                let mine = own.then(|| SharedArray::<u64>::open(&path).unwrap());
                let a = mine.as_ref().unwrap_or(&shared);
                for _ in 0..200 {
                    {
                        let mut w = a.write().unwrap();
                        let v = w[0];
                        for x in w.iter_mut() {
                            assert_eq!(*x, v, "a writer saw a half-done update");
                            *x = v + 1;
                        }
                    }
                    let r = a.read().unwrap();
                    assert!(
                        r.iter().all(|&x| x == r[0]),
                        "a reader saw a half-done update"
                    );
                }
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
    });
    let r = shared.read().unwrap();
    assert!(r.iter().all(|&x| x == 800), "lost updates: {}", r[0]);
    assert_eq!(shared.generation(), 800);
}

#[test]
fn a_lock_held_by_a_killed_process_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let p = path.to_str().unwrap();
    let a = SharedArray::<u32>::create(&path, &[4]).unwrap();
    for role in ["hold_write", "hold_read"] {
        let mut child = common::spawn_child("child_entry", role, p);
        let mut rx = common::Lines::of(&mut child);
        rx.wait_for("locked", LIMIT);
        common::with_watchdog(LIMIT, || {
            assert!(a.try_write().unwrap().is_none(), "{role}");
            if role == "hold_write" {
                assert!(a.try_read().unwrap().is_none());
            } else {
                assert!(a.try_read().unwrap().is_some());
            }
        });
        common::sigkill(&mut child);
        common::with_watchdog(LIMIT, || {
            let w = a
                .write_timeout(Duration::from_secs(30))
                .expect("the kernel released the dead process's lock");
            assert_eq!(w[0], 99, "the dead writer's change is visible");
        });
    }
}

#[test]
fn a_replaced_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let a = SharedArray::<u8>::create(&path, &[4]).unwrap();
    std::fs::remove_file(&path).unwrap();
    let e = a.write().err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Replaced, "{e}");
    let _b = SharedArray::<u8>::create(&path, &[4]).unwrap();
    let e = a.read().err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Replaced, "{e}");
    std::io::stdout().flush().unwrap();
}
